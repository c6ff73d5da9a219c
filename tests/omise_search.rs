//! Omise's `GET /search?scope=charge` over real HTTP on both stores: free text, `filters[…]` with whole-unit amounts, `yes`/`no` flags and `..` ranges, page numbers and totals, Omise's errors, account isolation and persistence.

mod common;

use common::server::{OMISE_SECRET_KEY, OTHER_OMISE_SECRET_KEY, OmiseBody, TestServer};
use serde_json::{Value, json};

async fn omise_charge(server: &TestServer, number: &str, body: Value) -> Value {
    let token = server.omise_token(number).await;
    let mut body = body;
    body["card"] = token["id"].clone();
    let charge = server
        .omise("POST", "/charges", OmiseBody::Json(body), OMISE_SECRET_KEY)
        .await;
    assert_eq!(charge.status, 200, "{}", charge.body);
    charge.body
}

async fn search(server: &TestServer, query: &str) -> Value {
    let reply = server
        .omise(
            "GET",
            &format!("/search?{query}"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.body);
    assert_eq!(reply.body["object"], "search");
    reply.body
}

fn ids(result: &Value) -> Vec<String> {
    result["data"]
        .as_array()
        .unwrap_or_else(|| panic!("a search, got {result}"))
        .iter()
        .map(|charge| charge["id"].as_str().unwrap().to_string())
        .collect()
}

fn id(charge: &Value) -> String {
    charge["id"].as_str().unwrap().to_string()
}

async fn omise_search_filters_pages_and_refuses_as_documented() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let data = directory.path().join("data");
    let mut server = TestServer::start(&data);
    let small = omise_charge(
        &server,
        "4242424242424242",
        json!({"amount": 100000, "currency": "thb", "description": "Order 1001 for Somchai"}),
    )
    .await;
    let held = omise_charge(
        &server,
        "5555555555554444",
        json!({"amount": 250000, "currency": "thb", "capture": false,
               "metadata": {"order": "A-77"}}),
    )
    .await;
    let failed = omise_charge(
        &server,
        "4111111111140011",
        json!({"amount": 150050, "currency": "thb"}),
    )
    .await;
    assert_eq!(failed["status"], "failed");
    let yen = omise_charge(
        &server,
        "4242424242424242",
        json!({"amount": 1500, "currency": "jpy"}),
    )
    .await;
    let (small, held, failed, yen) = (id(&small), id(&held), id(&failed), id(&yen));

    // Everything, newest first by default, with Omise's envelope.
    let all = search(&server, "scope=charge").await;
    assert_eq!(
        ids(&all),
        [yen.as_str(), failed.as_str(), held.as_str(), small.as_str()]
    );
    assert_eq!(all["total"], 4);
    assert_eq!(all["total_pages"], 1);
    assert_eq!(all["page"], 1);
    assert_eq!(all["per_page"], 30);
    assert_eq!(all["scope"], "charge");
    assert_eq!(all["query"], "");
    assert_eq!(all["order"], "reverse_chronological");
    assert_eq!(all["location"], "/search");
    assert_eq!(all["filters"], json!({}));
    assert_eq!(all["export"], Value::Null);
    assert_eq!(all["aggregate_level"], Value::Null);
    // The data are the charge objects `GET /charges/{id}` serves.
    let retrieved = server
        .omise(
            "GET",
            &format!("/charges/{small}"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(all["data"][3], retrieved.body);

    // Amounts in whole currency units, per the charge's currency; inclusive and open ranges.
    let ranged = search(&server, "scope=charge&filters[amount]=1000..2000").await;
    assert_eq!(
        ids(&ranged),
        [yen.as_str(), failed.as_str(), small.as_str()]
    );
    assert_eq!(ranged["filters"], json!({"amount": "1000..2000"}));
    let exact = search(&server, "scope=charge&filters[amount]=1500.50").await;
    assert_eq!(ids(&exact), [failed.as_str()]);
    let open = search(&server, "scope=charge&filters[amount]=2000..").await;
    assert_eq!(ids(&open), [held.as_str()]);
    // Flags in natural language, echoed as sent.
    let captured = search(
        &server,
        "scope=charge&filters[captured]=yes&filters[currency]=THB",
    )
    .await;
    assert_eq!(ids(&captured), [small.as_str()]);
    assert_eq!(
        captured["filters"],
        json!({"captured": "yes", "currency": "THB"})
    );
    let uncaptured = search(&server, "scope=charge&filters[captured]=no").await;
    assert_eq!(ids(&uncaptured), [failed.as_str(), held.as_str()]);
    let failures = search(&server, "scope=charge&filters[status]=failed").await;
    assert_eq!(ids(&failures), [failed.as_str()]);
    assert_eq!(
        ids(&search(&server, "scope=charge&filters[card_last_digits]=4444").await),
        [held.as_str()]
    );
    // Free text in the description, metadata and failure code, any case; with filters it narrows.
    assert_eq!(
        ids(&search(&server, "scope=charge&query=order%201001").await),
        [small.as_str()]
    );
    assert_eq!(
        ids(&search(&server, "scope=charge&query=a-77").await),
        [held.as_str()]
    );
    assert_eq!(
        ids(&search(&server, "scope=charge&query=INSUFFICIENT").await),
        [failed.as_str()]
    );
    assert_eq!(
        ids(&search(&server, "scope=charge&query=thb&filters[captured]=false").await),
        [failed.as_str(), held.as_str()]
    );
    let created = search(
        &server,
        "scope=charge&filters[created]=2000-01-01..2999-12-31",
    )
    .await;
    assert_eq!(created["total"], 4);
    assert_eq!(
        search(&server, "scope=charge&filters[created]=..2000-01-01").await["total"],
        0
    );

    // Page numbers, oldest first when asked, and a page past the end.
    let second = search(
        &server,
        "scope=charge&per_page=3&page=2&order=chronological",
    )
    .await;
    assert_eq!(ids(&second), [yen.as_str()]);
    assert_eq!(second["total"], 4);
    assert_eq!(second["total_pages"], 2);
    assert_eq!(second["order"], "chronological");
    let past = search(&server, "scope=charge&per_page=3&page=9").await;
    assert_eq!(ids(&past), Vec::<String>::new());
    assert_eq!(past["total_pages"], 2);
    // omise-python's path, and a JSON body on GET as omise-go sends it.
    let slash = server
        .omise(
            "GET",
            "/search/?scope=charge&filters[amount]=2500",
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(ids(&slash.body), [held.as_str()]);
    let go = server
        .omise(
            "GET",
            "/search",
            OmiseBody::Json(
                json!({"scope": "charge", "filters": {"reversed": "false", "paid": "true"}}),
            ),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(ids(&go.body), [yen.as_str(), small.as_str()]);

    // Omise's errors.
    for (query, status, code, message) in [
        ("", 400, "invalid_scope", "scope can't be blank"),
        (
            "scope=dispute",
            400,
            "invalid_scope",
            "scope dispute is not searchable on this server: only charge is",
        ),
        (
            "scope=charge&filters[captured]=maybe",
            400,
            "invalid_filters",
            "filters[captured] must be yes or no (or true, false, on, off), not 'maybe'",
        ),
        (
            "scope=charge&filters[amount]=ten",
            400,
            "invalid_filters",
            "filters[amount] must be an amount in whole currency units or a range such as 1000..2000, not 'ten'",
        ),
        (
            "scope=charge&filters[colour]=red",
            400,
            "invalid_filters",
            "filters[colour] is not a charge filter; use amount, authorized, captured, card_last_digits, created, currency, customer, failed, paid, refunded, reversed, status, voided",
        ),
        (
            "scope=charge&page=0",
            400,
            "invalid_page",
            "page must be an integer greater than 0",
        ),
    ] {
        let reply = server
            .omise(
                "GET",
                &format!("/search?{query}"),
                OmiseBody::None,
                OMISE_SECRET_KEY,
            )
            .await;
        assert_eq!(reply.status, status, "{query}: {}", reply.body);
        assert_eq!(reply.body["object"], "error");
        assert_eq!(reply.body["code"], code, "{query}");
        assert_eq!(reply.body["message"], message, "{query}");
        assert_eq!(
            reply.body["location"],
            format!("https://www.omise.co/api-errors#{}", code.replace('_', "-"))
        );
    }

    // Another account finds none of these; a restart keeps every answer.
    let other = server
        .omise(
            "GET",
            "/search?scope=charge",
            OmiseBody::None,
            OTHER_OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.body["total"], 0);
    let before = search(&server, "scope=charge&filters[amount]=1000..2000").await;
    assert!(server.stop());
    let server = TestServer::start(&data);
    assert_eq!(
        search(&server, "scope=charge&filters[amount]=1000..2000").await,
        before
    );
}

on_both_backends!(omise_search_filters_pages_and_refuses_as_documented);

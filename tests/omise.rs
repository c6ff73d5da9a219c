//! The Omise dialect over real HTTP: every route and error, in the body shapes the official
//! clients send (omise-ruby's forms, omise-go's and omise-python's JSON, query strings).

mod common;

use chargeledger::ledger::Refusal;
use chargeledger::{AccountPolicy, Ledger, RequestMeta};
use common::server::{
    OMISE_PUBLIC_KEY, OMISE_SECRET_KEY, OTHER_OMISE_SECRET_KEY, OmiseBody, Reply, SECRET_KEY,
    TestServer,
};
use serde_json::{Value, json};

const VISA: &str = "4242424242424242";

fn started() -> (tempfile::TempDir, TestServer) {
    let directory = tempfile::tempdir().unwrap();
    let server = TestServer::start(&directory.path().join("data"));
    (directory, server)
}

async fn token(server: &TestServer, number: &str) -> String {
    let reply = server
        .omise(
            "POST",
            "/tokens",
            OmiseBody::Json(json!({"card": {
                "name": "Somchai Prasert", "number": number, "expiration_month": 10,
                "expiration_year": 2099, "security_code": "123", "city": "Bangkok",
                "postal_code": "10320"
            }})),
            OMISE_PUBLIC_KEY,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["id"].as_str().unwrap().to_string()
}

/// A THB charge paid with a fresh token; `extra` adds JSON parameters.
async fn charge(server: &TestServer, amount: i64, extra: Value) -> Value {
    let mut body = json!({"amount": amount, "currency": "thb", "card": token(server, VISA).await});
    for (name, value) in extra.as_object().unwrap() {
        body[name] = value.clone();
    }
    let reply = server
        .omise("POST", "/charges", OmiseBody::Json(body), OMISE_SECRET_KEY)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

fn assert_error(reply: &Reply, status: u16, code: &str, message: &str) {
    if let Some(mismatch) = error_mismatch(reply, status, code, message) {
        panic!("{mismatch}");
    }
}

/// How `reply` differs from Omise's error of `status`, `code` and `message`, if it does.
fn error_mismatch(reply: &Reply, status: u16, code: &str, message: &str) -> Option<String> {
    let expected = json!({
        "object": "error",
        "location": format!("https://www.omise.co/api-errors#{}", code.replace('_', "-")),
        "code": code,
        "message": message,
    });
    (reply.status != status || reply.body != expected).then(|| {
        format!(
            "expected {status} {expected}, got {} {}",
            reply.status, reply.body
        )
    })
}

/// Fail once, listing every row of an error table whose reply was not as expected.
fn assert_no_mismatches(table: &str, mismatches: &[String]) {
    assert!(
        mismatches.is_empty(),
        "{} rows of {table} do not match:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

async fn event_total(server: &TestServer) -> u64 {
    let reply = server
        .omise("GET", "/events", OmiseBody::None, OMISE_SECRET_KEY)
        .await;
    reply.body["total"].as_u64().unwrap()
}

async fn the_vault_checks_cards_and_keeps_only_what_the_card_object_shows() {
    let (_directory, server) = started();
    let id = token(&server, "4242 4242 4242 4242").await;
    assert!(id.starts_with("tokn_test_"), "{id}");
    let reply = server
        .omise(
            "GET",
            &format!("/tokens/{id}"),
            OmiseBody::None,
            OMISE_PUBLIC_KEY,
        )
        .await;
    assert_eq!(reply.status, 200);
    let body = &reply.body;
    assert_eq!(body["object"], "token");
    assert_eq!(body["used"], false);
    assert_eq!(body["location"], format!("/tokens/{id}"));
    let card = &body["card"];
    assert_eq!(card["object"], "card");
    assert_eq!(card["brand"], "Visa");
    assert_eq!(card["last_digits"], "4242");
    assert_eq!(card["first_digits"], "424242");
    assert_eq!(card["name"], "Somchai Prasert");
    assert_eq!(card["expiration_month"], 10);
    assert_eq!(card["expiration_year"], 2099);
    assert_eq!(card["security_code_check"], true);
    assert_eq!(card["city"], "Bangkok");
    assert!(card["id"].as_str().unwrap().starts_with("card_test_"));
    assert!(
        !body.to_string().contains(VISA),
        "the full number is never shown"
    );

    // omise-ruby's form body works as well as JSON.
    let reply = server
        .omise(
            "POST",
            "/tokens",
            OmiseBody::Form(&[
                ("card[name]", "JOHN DOE"),
                ("card[number]", "5555555555554444"),
                ("card[expiration_month]", "12"),
                ("card[expiration_year]", "2098"),
            ]),
            OMISE_PUBLIC_KEY,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["card"]["brand"], "MasterCard");
    assert_eq!(reply.body["card"]["security_code_check"], false);

    let mut mismatches = Vec::new();
    let bad_card = |number: &'static str, month: i64, year: i64| json!({"card": {"name": "A", "number": number, "expiration_month": month, "expiration_year": year}});
    for (body, message) in [
        (
            bad_card("4242424242424241", 1, 2099),
            "number is invalid and brand not supported (unknown)",
        ),
        (
            bad_card(VISA, 13, 2099),
            "expiration month is not between 1 and 12",
        ),
        (
            bad_card(VISA, 1, 2001),
            "expiration date cannot be in the past",
        ),
        (json!({"card": {"number": VISA}}), "name can't be blank"),
    ] {
        let reply = server
            .omise(
                "POST",
                "/tokens",
                OmiseBody::Json(body.clone()),
                OMISE_PUBLIC_KEY,
            )
            .await;
        if let Some(mismatch) = error_mismatch(&reply, 400, "invalid_card", message) {
            mismatches.push(format!("POST /tokens {body}: {mismatch}"));
        }
    }
    assert_no_mismatches("the card errors", &mismatches);
    let reply = server
        .omise(
            "GET",
            "/tokens/tokn_test_nope",
            OmiseBody::None,
            OMISE_PUBLIC_KEY,
        )
        .await;
    assert_error(
        &reply,
        404,
        "not_found",
        "token tokn_test_nope was not found",
    );
}

async fn charges_are_created_from_json_and_forms_and_refused_with_omise_errors() {
    let (_directory, server) = started();
    let created = charge(
        &server,
        100_000,
        json!({"description": "Order-384", "ip": "127.0.0.1"}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    assert!(
        id.starts_with("chrg_test_")
            && id[10..]
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()),
        "{id}"
    );
    assert_eq!(created["object"], "charge");
    assert_eq!(created["location"], format!("/charges/{id}"));
    assert_eq!(created["currency"], "THB");
    assert_eq!(created["amount"], 100_000);
    assert_eq!(created["status"], "successful");
    assert_eq!(created["paid"], true);
    assert_eq!(created["capture"], true);
    assert_eq!(created["authorized"], true);
    assert_eq!(created["captured_amount"], 100_000);
    assert_eq!(created["metadata"], json!({}));
    assert_eq!(created["ip"], "127.0.0.1");
    assert!(
        created["transaction"]
            .as_str()
            .unwrap()
            .starts_with("trxn_test_")
    );
    assert_eq!(created["card"]["last_digits"], "4242");
    assert_eq!(created["created_at"], created["paid_at"]);
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        created["reversed_at"],
        Value::Null,
        "unset times are null, never \"\""
    );

    // omise-ruby: a form body with bracket nesting, booleans and numbers as text.
    let token_id = token(&server, VISA).await;
    let reply = server
        .omise(
            "POST",
            "/charges",
            OmiseBody::Form(&[
                ("amount", "2000"),
                ("currency", "THB"),
                ("card", &token_id),
                ("capture", "false"),
                ("metadata[order][id]", "7"),
                ("metadata[channel]", "web"),
            ]),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "pending");
    assert_eq!(reply.body["capture"], false);
    assert_eq!(reply.body["paid"], false);
    assert_eq!(reply.body["capturable"], true);
    assert_eq!(reply.body["transaction"], Value::Null);
    assert_eq!(
        reply.body["metadata"],
        json!({"order": {"id": "7"}, "channel": "web"})
    );

    // omise-go: JSON with `"platform_fee":{}` and nested metadata of any JSON type.
    let go_token = token(&server, VISA).await;
    let reply = server
        .omise(
            "POST",
            "/charges",
            OmiseBody::Json(json!({
                "card": go_token, "amount": 204_842, "currency": "thb",
                "description": "initial charge.", "platform_fee": {},
                "metadata": {"items": [{"sku": "A-1", "qty": 2}], "gift": true}
            })),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["metadata"],
        json!({"items": [{"sku": "A-1", "qty": 2}], "gift": true})
    );

    let events_before = event_total(&server).await;
    let used = server
        .omise(
            "POST",
            "/charges",
            OmiseBody::Json(json!({"amount": 2000, "currency": "thb", "card": token_id})),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_error(&used, 400, "used_token", "token was already used");
    let fresh = token(&server, VISA).await;
    let mut mismatches = Vec::new();
    for (body, status, code, message) in [
        (
            json!({"amount": 1999, "currency": "thb", "card": fresh}),
            400,
            "invalid_charge",
            "amount must be greater than or equal to 2000 (thb subunits)",
        ),
        (
            json!({"amount": 5000, "currency": "xyz", "card": fresh}),
            400,
            "invalid_charge",
            "currency is currently not supported",
        ),
        (
            json!({"amount": "lots", "currency": "thb", "card": fresh}),
            400,
            "invalid_charge",
            "amount must be an integer",
        ),
        (
            json!({"amount": 20.5, "currency": "thb", "card": fresh}),
            400,
            "invalid_charge",
            "amount must be an integer",
        ),
        (
            json!({"amount": 5000, "currency": "thb", "card": "tokn_test_nope"}),
            404,
            "not_found",
            "token tokn_test_nope was not found",
        ),
        (
            json!({"amount": 5000, "currency": "thb"}),
            400,
            "invalid_charge",
            "card or customer is required",
        ),
        (
            json!({"amount": 5000, "currency": "thb", "card": fresh, "platform_fee": {"fixed": 100}}),
            400,
            "bad_request",
            "platform_fee is not supported by this ledger",
        ),
    ] {
        let reply = server
            .omise(
                "POST",
                "/charges",
                OmiseBody::Json(body.clone()),
                OMISE_SECRET_KEY,
            )
            .await;
        if let Some(mismatch) = error_mismatch(&reply, status, code, message) {
            mismatches.push(format!("POST /charges {body}: {mismatch}"));
        }
    }
    assert_no_mismatches("the charge creation errors", &mismatches);
    assert_eq!(
        event_total(&server).await,
        events_before,
        "refusals append nothing"
    );
    // The refused requests did not spend the fresh token.
    let reply = server
        .omise(
            "GET",
            &format!("/tokens/{fresh}"),
            OmiseBody::None,
            OMISE_PUBLIC_KEY,
        )
        .await;
    assert_eq!(reply.body["used"], false);
    let reply = server
        .omise(
            "GET",
            &format!("/tokens/{token_id}"),
            OmiseBody::None,
            OMISE_PUBLIC_KEY,
        )
        .await;
    assert_eq!(reply.body["used"], true);
}

async fn patch_replaces_metadata_and_an_empty_description_changes_nothing() {
    let (_directory, server) = started();
    let created = charge(
        &server,
        5000,
        json!({"description": "Order-1", "metadata": {"order": {"id": 1, "lines": [1, 2]}, "channel": "web"}}),
    )
    .await;
    let path = format!("/charges/{}", created["id"].as_str().unwrap());

    // omise-go sends `"description":""` with every metadata-only update.
    let reply = server
        .omise(
            "PATCH",
            &path,
            OmiseBody::Json(
                json!({"description": "", "metadata": {"order": {"id": 1, "lines": [1, 2, 3]}}}),
            ),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["description"], "Order-1",
        "\"\" keeps the description"
    );
    assert_eq!(
        reply.body["metadata"],
        json!({"order": {"id": 1, "lines": [1, 2, 3]}}),
        "metadata is replaced as a whole: `channel` is gone"
    );

    // A description-only update (omise-go omits empty metadata) keeps the metadata.
    let reply = server
        .omise(
            "PATCH",
            &path,
            OmiseBody::Json(json!({"description": "Order-1b"})),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(reply.body["description"], "Order-1b");
    assert_eq!(
        reply.body["metadata"],
        json!({"order": {"id": 1, "lines": [1, 2, 3]}})
    );

    // omise-ruby's form update; and omise-python's explicit nulls mean "not given".
    let reply = server
        .omise(
            "PATCH",
            &path,
            OmiseBody::Form(&[("metadata[note]", "gift")]),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(reply.body["metadata"], json!({"note": "gift"}));
    let reply = server
        .omise(
            "PATCH",
            &path,
            OmiseBody::Json(json!({"description": null, "metadata": {}})),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(reply.body["metadata"], json!({}));
    assert_eq!(reply.body["description"], "Order-1b");

    // An update that changes nothing appends nothing.
    let events_path = format!("{path}/events");
    let before = server
        .omise("GET", &events_path, OmiseBody::None, OMISE_SECRET_KEY)
        .await;
    let reply = server
        .omise(
            "PATCH",
            &path,
            OmiseBody::Json(json!({"description": "Order-1b"})),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(reply.status, 200);
    let after = server
        .omise("GET", &events_path, OmiseBody::None, OMISE_SECRET_KEY)
        .await;
    assert_eq!(before.body["total"], 5);
    assert_eq!(after.body["total"], 5);
    let keys: Vec<&str> = after.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "charge.create",
            "charge.update",
            "charge.update",
            "charge.update",
            "charge.update"
        ]
    );

    let mut mismatches = Vec::new();
    for (body, message) in [
        (json!({"metadata": "x"}), "metadata must be an object"),
        (
            json!({"description": ["x"]}),
            "description must be a string",
        ),
    ] {
        let reply = server
            .omise(
                "PATCH",
                &path,
                OmiseBody::Json(body.clone()),
                OMISE_SECRET_KEY,
            )
            .await;
        if let Some(mismatch) = error_mismatch(&reply, 400, "bad_request", message) {
            mismatches.push(format!("PATCH {path} {body}: {mismatch}"));
        }
    }
    assert_no_mismatches("the update errors", &mismatches);
    let reply = server
        .omise(
            "PATCH",
            "/charges/chrg_test_nope",
            OmiseBody::Json(json!({"description": "x"})),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_error(
        &reply,
        404,
        "not_found",
        "charge chrg_test_nope was not found",
    );
}

async fn capture_in_part_and_reverse_follow_omise_rules() {
    let (_directory, server) = started();
    let authorized = charge(&server, 10_000, json!({"capture": false})).await;
    let path = format!("/charges/{}", authorized["id"].as_str().unwrap());
    assert_eq!(authorized["reversible"], true);

    let reply = server
        .omise(
            "POST",
            &format!("{path}/capture"),
            OmiseBody::Json(json!({"capture_amount": 20_000})),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_error(
        &reply,
        400,
        "failed_capture",
        "capture_amount must be less than or equal to the authorized amount (10000)",
    );
    let reply = server
        .omise(
            "POST",
            &format!("{path}/capture"),
            OmiseBody::Json(json!({"capture_amount": 6_000})),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let captured = &reply.body;
    assert_eq!(captured["status"], "successful");
    assert_eq!(captured["paid"], true);
    assert_eq!(captured["authorized_amount"], 10_000);
    assert_eq!(captured["captured_amount"], 6_000);
    assert_eq!(
        captured["refunded_amount"], 0,
        "the released rest is no refund on Omise"
    );
    assert!(
        captured["transaction"]
            .as_str()
            .unwrap()
            .starts_with("trxn_test_")
    );
    assert!(captured["paid_at"].is_string());
    assert_eq!(captured["capturable"], false);

    let reply = server
        .omise(
            "POST",
            &format!("{path}/capture"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_error(&reply, 400, "failed_capture", "charge was already captured");
    let reply = server
        .omise(
            "POST",
            &format!("{path}/reverse"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_error(
        &reply,
        400,
        "failed_reverse",
        "only uncaptured authorized charges can be reversed",
    );

    let other = charge(&server, 3_000, json!({"capture": false})).await;
    let other_path = format!("/charges/{}", other["id"].as_str().unwrap());
    let reply = server
        .omise(
            "POST",
            &format!("{other_path}/reverse"),
            OmiseBody::Json(json!({})),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "reversed");
    assert_eq!(reply.body["reversed"], true);
    assert_eq!(reply.body["reversible"], false);
    assert!(reply.body["reversed_at"].is_string());
    assert_eq!(reply.body["captured_amount"], 0);
    let reply = server
        .omise(
            "POST",
            &format!("{other_path}/reverse"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_error(
        &reply,
        400,
        "failed_reverse",
        "only uncaptured authorized charges can be reversed",
    );
    let reply = server
        .omise(
            "POST",
            &format!("{other_path}/capture"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_error(&reply, 400, "failed_capture", "charge was already reversed");
    let reply = server
        .omise(
            "POST",
            "/charges/chrg_test_nope/reverse",
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_error(
        &reply,
        404,
        "not_found",
        "charge chrg_test_nope was not found",
    );

    let events = server
        .omise(
            "GET",
            &format!("{other_path}/events"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    let keys: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["charge.create", "charge.reverse"]);
}

async fn lists_page_by_offset_with_a_total_from_json_bodies_on_get_and_query_strings() {
    let (_directory, server) = started();
    let mut ids = Vec::new();
    for amount in [2000, 3000, 4000] {
        ids.push(
            charge(&server, amount, json!({})).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // omise-python: list parameters as a JSON body on GET, with explicit nulls.
    let reply = server
        .omise(
            "GET",
            "/charges",
            OmiseBody::Json(
                json!({"from": null, "limit": 2, "offset": 1, "order": null, "to": null}),
            ),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let list = &reply.body;
    assert_eq!(list["object"], "list");
    assert_eq!(list["location"], "/charges");
    assert_eq!(list["total"], 3);
    assert_eq!(list["limit"], 2);
    assert_eq!(list["offset"], 1);
    assert_eq!(list["order"], "chronological");
    assert_eq!(list["from"], "1970-01-01T00:00:00Z");
    let page: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|charge| charge["id"].as_str().unwrap())
        .collect();
    assert_eq!(page, [ids[1].as_str(), ids[2].as_str()]);

    // omise-node and omise-ruby: a query string.
    let reply = server
        .omise(
            "GET",
            "/charges?order=reverse_chronological&limit=500",
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(reply.body["limit"], 100, "at most 100 per page");
    let page: Vec<&str> = reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|charge| charge["id"].as_str().unwrap())
        .collect();
    assert_eq!(page, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]);

    let reply = server
        .omise(
            "GET",
            "/charges?to=2001-01-01T00:00:00Z",
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(reply.body["total"], 0);
    assert_eq!(reply.body["to"], "2001-01-01T00:00:00Z");
    let reply = server
        .omise(
            "GET",
            "/charges?order=sideways",
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_error(
        &reply,
        400,
        "bad_request",
        "order must be chronological or reverse_chronological, not sideways",
    );

    // Events: every charge's creation, in order, each with its charge as `data`.
    let reply = server
        .omise(
            "GET",
            "/events",
            OmiseBody::Json(json!({"limit": 100, "offset": 0})),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(
        reply.body["total"], 3,
        "vault token events are not Omise events"
    );
    let first = &reply.body["data"][0];
    assert_eq!(first["object"], "event");
    assert_eq!(first["key"], "charge.create");
    assert_eq!(first["data"]["id"], ids[0].as_str());
    let event_id = first["id"].as_str().unwrap();
    assert!(event_id.starts_with("evnt_test_"), "{event_id}");
    assert_eq!(first["location"], format!("/events/{event_id}"));
    let reply = server
        .omise(
            "GET",
            &format!("/events/{event_id}"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(&reply.body, first);
    let reply = server
        .omise(
            "GET",
            "/events/evnt_test_nope",
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_error(
        &reply,
        404,
        "not_found",
        "event evnt_test_nope was not found",
    );
}

async fn keys_headers_and_accounts_stay_in_their_dialect() {
    let (_directory, server) = started();
    let created = charge(&server, 2000, json!({})).await;
    let path = format!("/charges/{}", created["id"].as_str().unwrap());

    let reply = server
        .omise("GET", &path, OmiseBody::None, OMISE_SECRET_KEY)
        .await;
    assert_eq!(reply.header("omise-version"), Some("2019-05-29"));
    assert_eq!(
        reply.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(reply.header("request-id").unwrap().starts_with("req_"));

    for key in [
        "skey_test_unknown00000000",
        SECRET_KEY,
        OMISE_PUBLIC_KEY,
        "",
    ] {
        let reply = server.omise("GET", &path, OmiseBody::None, key).await;
        assert_error(
            &reply,
            401,
            "authentication_failure",
            "authentication failed",
        );
    }
    // An Omise key is no Stripe key.
    let reply = server
        .request("GET", "/v1/charges", &[], Some(OMISE_SECRET_KEY), None)
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.error()["type"], "invalid_request_error");
    // Another Omise account cannot see the charge.
    let reply = server
        .omise("GET", &path, OmiseBody::None, OTHER_OMISE_SECRET_KEY)
        .await;
    assert_error(
        &reply,
        404,
        "not_found",
        &format!("charge {} was not found", created["id"].as_str().unwrap()),
    );
    let reply = server
        .omise("GET", "/charges", OmiseBody::None, OTHER_OMISE_SECRET_KEY)
        .await;
    assert_eq!(reply.body["total"], 0);

    let reply = server
        .omise("DELETE", &path, OmiseBody::None, OMISE_SECRET_KEY)
        .await;
    assert_error(
        &reply,
        404,
        "not_found",
        &format!("DELETE {path} was not found"),
    );
    let reply = server
        .omise("GET", "/nothing/here", OmiseBody::None, OMISE_SECRET_KEY)
        .await;
    assert_error(&reply, 404, "not_found", "GET /nothing/here was not found");
    let request = server
        .client()
        .post(format!("{}/charges", server.base_url))
        .basic_auth(OMISE_SECRET_KEY, Some(""))
        .header("content-type", "application/json")
        .body("{\"amount\": ");
    let reply = server.send(request).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["code"], "bad_request");

    // An Idempotency-Key makes a retried create return the first charge.
    let token_id = token(&server, VISA).await;
    let body = json!({"amount": 2500, "currency": "thb", "card": token_id});
    let send = || {
        server
            .client()
            .post(format!("{}/charges", server.base_url))
            .basic_auth(OMISE_SECRET_KEY, Some(""))
            .header("idempotency-key", "order-77")
            .json(&body)
    };
    let first = server.send(send()).await;
    let retry = server.send(send()).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(retry.body["id"], first.body["id"]);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));

    // The same key with other parameters is refused in Omise's shape and words, not Stripe's.
    let other = server
        .send(
            server
                .client()
                .post(format!("{}/charges", server.base_url))
                .basic_auth(OMISE_SECRET_KEY, Some(""))
                .header("idempotency-key", "order-77")
                .json(&json!({"amount": 9900, "currency": "thb", "card": token_id})),
        )
        .await;
    assert_eq!(other.status, 400, "{}", other.body);
    assert_eq!(
        other.body,
        json!({
            "object": "error",
            "location": "https://www.omise.co/api-errors#bad-request",
            "code": "bad_request",
            "message": "idempotency key order-77 was already used for a different request; use a new key for a new request",
        })
    );
}

async fn freeze_after_capture_refuses_omise_updates_with_invalid_charge() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    {
        let ledger = common::backend::open_ledger_at(&data, Default::default()).await;
        let account = chargeledger::server::auth::account_for_key(OMISE_SECRET_KEY).unwrap();
        ledger
            .set_account_policy(
                &account,
                AccountPolicy {
                    freeze_after_capture: true,
                },
                RequestMeta::library(),
            )
            .await
            .unwrap();
        ledger.close().await.unwrap();
    }
    let server = TestServer::start(&data);
    let authorized = charge(&server, 2000, json!({"capture": false})).await;
    let id = authorized["id"].as_str().unwrap();
    let path = format!("/charges/{id}");
    let reply = server
        .omise(
            "PATCH",
            &path,
            OmiseBody::Json(json!({"description": "before capture"})),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(reply.status, 200, "uncaptured charges stay editable");
    server
        .omise(
            "POST",
            &format!("{path}/capture"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    let reply = server
        .omise(
            "PATCH",
            &path,
            OmiseBody::Json(json!({"metadata": {"a": 1}})),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_error(
        &reply,
        400,
        "invalid_charge",
        &format!(
            "charge {id} was captured and this account freezes captured charges (freeze_after_capture), so it can no longer be updated"
        ),
    );
    let reply = server
        .omise("GET", &path, OmiseBody::None, OMISE_SECRET_KEY)
        .await;
    assert_eq!(reply.body["metadata"], json!({}));
    assert_eq!(reply.body["description"], "before capture");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_charges_on_one_token_spend_it_once() {
    let (_directory, server) = started();
    let token_id = token(&server, VISA).await;
    let server = std::sync::Arc::new(server);
    let mut sends = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let server = server.clone();
        let body = json!({"amount": 2000, "currency": "thb", "card": token_id});
        sends.spawn(async move {
            server
                .omise("POST", "/charges", OmiseBody::Json(body), OMISE_SECRET_KEY)
                .await
        });
    }
    let replies = sends.join_all().await;
    let succeeded = replies.iter().filter(|reply| reply.status == 200).count();
    assert_eq!(succeeded, 1, "exactly one charge spends the token");
    for reply in replies.iter().filter(|reply| reply.status != 200) {
        assert_error(reply, 400, "used_token", "token was already used");
    }
    let list = server
        .omise("GET", "/charges", OmiseBody::None, OMISE_SECRET_KEY)
        .await;
    assert_eq!(list.body["total"], 1);
}

/// A vault token made through the library, and an uncaptured THB 25 charge that would spend it.
async fn library_uncaptured_charge(
    ledger: &Ledger,
    account: &str,
) -> (
    chargeledger::domain::Token,
    chargeledger::domain::omise::CreateOmiseCharge,
) {
    use chargeledger::domain::omise::{CreateOmiseCharge, CreateToken};
    let token = ledger
        .create_token(
            account,
            CreateToken {
                name: Some("A B".into()),
                number: Some(VISA.into()),
                expiration_month: Some(1),
                expiration_year: Some(2099),
                ..CreateToken::default()
            },
            RequestMeta::library(),
        )
        .await
        .unwrap();
    let mut create = CreateOmiseCharge::with_token(2500, "thb", &token.id);
    create.capture = false;
    (token, create)
}

async fn omise_changes_are_in_the_audit_trail_and_time_travel_of_the_library() {
    use chargeledger::domain::omise::UpdateOmiseCharge;
    let directory = tempfile::tempdir().unwrap();
    let ledger = common::backend::open_ledger_at(directory.path(), Default::default()).await;
    let account = "acct_test_omise_library";
    let (token, create) = library_uncaptured_charge(&ledger, account).await;
    let charge = ledger
        .create_omise_charge(account, create, RequestMeta::library())
        .await
        .unwrap();
    let mut metadata = chargeledger::domain::Metadata::new();
    metadata.insert("order".into(), json!({"id": 9}));
    ledger
        .update_omise_charge(
            account,
            &charge.id,
            UpdateOmiseCharge {
                description: None,
                metadata: Some(metadata),
            },
            RequestMeta::library(),
        )
        .await
        .unwrap();
    ledger
        .reverse_charge(account, &charge.id, RequestMeta::library())
        .await
        .unwrap();
    let history = ledger.history(account, &charge.id).await.unwrap();
    let fields: Vec<Vec<String>> = history
        .iter()
        .skip(1)
        .map(|entry| {
            entry
                .changes
                .iter()
                .map(|change| change.field.clone())
                .collect()
        })
        .collect();
    assert_eq!(
        fields,
        [
            vec!["metadata[order]"],
            vec!["lifecycle", "money[released]", "reversed_at"]
        ]
    );
    let at_version_2 = ledger
        .charge_at_version(account, &charge.id, 2)
        .await
        .unwrap();
    assert_eq!(at_version_2.metadata["order"], json!({"id": 9}));
    assert!(at_version_2.reversed_at.is_none());
    assert!(ledger.get_token(account, &token.id).await.unwrap().used());
}

async fn a_charge_of_the_other_dialect_gets_a_typed_refusal_and_nothing_is_appended() {
    use chargeledger::domain::RequestError;
    use chargeledger::domain::omise::{CaptureOmiseCharge, OmiseRefusal};
    use chargeledger::{CaptureCharge, CreateCharge, LedgerError, RefundCharge, UpdateCharge};
    let directory = tempfile::tempdir().unwrap();
    let ledger = common::backend::open_ledger_at(directory.path(), Default::default()).await;
    let account = "acct_test_both_dialects";
    let (_, create) = library_uncaptured_charge(&ledger, account).await;
    let omise_charge = ledger
        .create_omise_charge(account, create, RequestMeta::library())
        .await
        .unwrap();
    ledger
        .reverse_charge(account, &omise_charge.id, RequestMeta::library())
        .await
        .unwrap();
    let stripe_charge = ledger
        .create_charge(
            account,
            CreateCharge::new(2000, "usd")
                .source("tok_visa")
                .capture(false),
            RequestMeta::library(),
        )
        .await
        .unwrap();
    let versions = |ledger: &Ledger| {
        let ledger = ledger.clone();
        let (omise_id, stripe_id) = (omise_charge.id.clone(), stripe_charge.id.clone());
        async move {
            let omise = ledger.history(account, &omise_id).await.unwrap().len();
            let stripe = ledger.history(account, &stripe_id).await.unwrap().len();
            (omise, stripe)
        }
    };
    let before = versions(&ledger).await;

    // Stripe's operations on a reversed Omise authorization: refused by name, never decided.
    let other = |result: Result<_, LedgerError>| match result {
        Err(LedgerError::Refused(Refusal::Request(RequestError::ChargeOfOtherDialect {
            charge_id,
        }))) => charge_id,
        other => panic!("expected a refusal naming the other dialect, got {other:?}"),
    };
    let id = &omise_charge.id;
    let capture = ledger.capture_charge(
        account,
        id,
        CaptureCharge::default(),
        RequestMeta::library(),
    );
    assert_eq!(other(capture.await.map(drop)), *id);
    let refund = ledger.refund_charge(account, id, RefundCharge::default(), RequestMeta::library());
    assert_eq!(other(refund.await.map(drop)), *id);
    let update = ledger.update_charge(
        account,
        id,
        UpdateCharge::new().description("x"),
        RequestMeta::library(),
    );
    assert_eq!(other(update.await.map(drop)), *id);

    // Omise's operations on a Stripe charge: Omise's typed refusal, not a corrupt stream.
    let omise_other = |result: Result<_, LedgerError>| match result {
        Err(LedgerError::Refused(Refusal::OmiseRequest(OmiseRefusal::ChargeOfOtherDialect {
            charge_id,
        }))) => charge_id,
        other => panic!("expected Omise's refusal naming the other dialect, got {other:?}"),
    };
    let id = &stripe_charge.id;
    let reverse = ledger.reverse_charge(account, id, RequestMeta::library());
    assert_eq!(omise_other(reverse.await.map(drop)), *id);
    let capture = ledger.capture_omise_charge(
        account,
        id,
        CaptureOmiseCharge::default(),
        RequestMeta::library(),
    );
    assert_eq!(omise_other(capture.await.map(drop)), *id);

    assert_eq!(versions(&ledger).await, before, "nothing was appended");
    assert!(ledger.verify(&|_, _| {}).await.unwrap().is_sound());
}

on_both_backends!(
    the_vault_checks_cards_and_keeps_only_what_the_card_object_shows,
    charges_are_created_from_json_and_forms_and_refused_with_omise_errors,
    patch_replaces_metadata_and_an_empty_description_changes_nothing,
    capture_in_part_and_reverse_follow_omise_rules,
    lists_page_by_offset_with_a_total_from_json_bodies_on_get_and_query_strings,
    keys_headers_and_accounts_stay_in_their_dialect,
    freeze_after_capture_refuses_omise_updates_with_invalid_charge,
    omise_changes_are_in_the_audit_trail_and_time_travel_of_the_library,
    a_charge_of_the_other_dialect_gets_a_typed_refusal_and_nothing_is_appended,
);

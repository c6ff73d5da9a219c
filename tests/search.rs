//! Stripe search over real HTTP on both stores: `/v1/charges/search` and `/v1/customers/search` with the query language, `search_result` paging, errors in Stripe's shape, results that follow updates and refunds, account isolation, restarts, and a store from before the index.

mod common;

use common::server::{OTHER_SECRET_KEY, SECRET_KEY, TestServer};
use serde_json::Value;

fn server() -> (tempfile::TempDir, TestServer) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(&directory.path().join("data"));
    (directory, server)
}

fn ids(result: &Value) -> Vec<String> {
    result["data"]
        .as_array()
        .unwrap_or_else(|| panic!("a search result, got {result}"))
        .iter()
        .map(|object| object["id"].as_str().unwrap().to_string())
        .collect()
}

async fn search(server: &TestServer, path: &str, params: &[(&str, &str)]) -> Value {
    let reply = server
        .request("GET", path, params, Some(SECRET_KEY), None)
        .await;
    assert_eq!(reply.status, 200, "{params:?}: {}", reply.body);
    assert_eq!(reply.body["object"], "search_result");
    assert_eq!(reply.body["url"], path);
    // stripe-node throws when these disagree.
    assert_eq!(
        reply.body["has_more"].as_bool().unwrap(),
        reply.body["next_page"].is_string(),
        "{}",
        reply.body
    );
    reply.body
}

async fn charges(server: &TestServer, query: &str) -> Vec<String> {
    ids(&search(server, "/v1/charges/search", &[("query", query)]).await)
}

fn id(object: &Value) -> String {
    object["id"].as_str().unwrap().to_string()
}

/// Five charges with metadata, amounts, currencies and a customer; each query's results are
/// exactly the matching charges, newest first.
async fn the_query_language_finds_exactly_the_matching_charges_newest_first() {
    let (_directory, server) = server();
    let customer = server
        .post("/v1/customers", &[("email", "amy@rocketrides.io")])
        .await;
    let customer_id = id(&customer.body);
    let a = id(&server
        .create_charge(&[("amount", "500"), ("metadata[order_id]", "6735")])
        .await);
    let b = id(&server
        .create_charge(&[("amount", "1500"), ("metadata[order_id]", "6736")])
        .await);
    let c = id(&server
        .create_charge(&[
            ("amount", "2500"),
            ("currency", "eur"),
            ("customer", &customer_id),
        ])
        .await);
    let d = id(&server
        .create_charge(&[
            ("amount", "1000"),
            ("metadata[order_id]", "6735"),
            ("capture", "false"),
        ])
        .await);
    let e = id(&server.create_charge(&[("source", "tok_mastercard")]).await);

    assert_eq!(
        charges(&server, "metadata['order_id']:'6735'").await,
        [d.as_str(), a.as_str()]
    );
    assert_eq!(
        charges(&server, r#"metadata["order_id"]:"6736""#).await,
        [b.as_str()]
    );
    assert_eq!(
        charges(&server, "amount>1000").await,
        [e.as_str(), c.as_str(), b.as_str()]
    );
    assert_eq!(
        charges(&server, "amount>=1000 AND amount<=1500").await,
        [d.as_str(), b.as_str()]
    );
    assert_eq!(charges(&server, "amount:500").await, [a.as_str()]);
    assert_eq!(charges(&server, "currency:'EUR'").await, [c.as_str()]);
    assert_eq!(
        charges(&server, &format!("customer:'{customer_id}'")).await,
        [c.as_str()]
    );
    assert_eq!(
        charges(&server, "status:'succeeded' -currency:'usd'").await,
        [c.as_str()]
    );
    assert_eq!(
        charges(&server, "metadata['order_id']:'6736' OR currency:'eur'").await,
        [c.as_str(), b.as_str()]
    );
    assert_eq!(
        charges(&server, "-metadata['order_id']:null").await,
        [d.as_str(), b.as_str(), a.as_str()]
    );
    assert_eq!(
        charges(&server, "metadata['order_id']:null").await,
        [e.as_str(), c.as_str()]
    );
    assert_eq!(
        charges(&server, "payment_method_details.card.brand:'mastercard'").await,
        [e.as_str()]
    );
    assert_eq!(charges(&server, "amount>99999").await, Vec::<String>::new());
    assert_eq!(
        charges(&server, "status:'failed'").await,
        Vec::<String>::new()
    );

    // The data are the charge objects the API serves, expandable as in a list.
    let expanded = search(
        &server,
        "/v1/charges/search",
        &[("query", "currency:'eur'"), ("expand[]", "data.customer")],
    )
    .await;
    let retrieved = server.get(&format!("/v1/charges/{c}")).await.body;
    assert_eq!(expanded["data"][0]["amount"], retrieved["amount"]);
    assert_eq!(
        expanded["data"][0]["customer"]["email"],
        "amy@rocketrides.io"
    );
    let plain = search(&server, "/v1/charges/search", &[("query", "amount:500")]).await;
    assert_eq!(
        plain["data"][0],
        server.get(&format!("/v1/charges/{a}")).await.body
    );
    assert!(plain.get("total_count").is_none(), "{plain}");
}

/// Pages follow `next_page` to the end with no repeats, each token only for its own query;
/// `total_count` is given only when expanded.
async fn pages_follow_next_page_and_tokens_belong_to_their_query() {
    let (_directory, server) = server();
    let mut created = Vec::new();
    for _ in 0..7 {
        created.push(id(&server.create_charge(&[("metadata[batch]", "x")]).await));
    }
    created.push(id(&server.create_charge(&[]).await));
    for query in ["metadata['batch']:'x'", "-metadata['batch']:null"] {
        let mut seen = Vec::new();
        let mut page: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut params = vec![("query", query), ("limit", "3")];
            if let Some(token) = &page {
                params.push(("page", token));
            }
            let result = search(&server, "/v1/charges/search", &params).await;
            seen.extend(ids(&result));
            pages += 1;
            match result["next_page"].as_str() {
                Some(token) => page = Some(token.to_string()),
                None => break,
            }
        }
        let mut expected: Vec<String> = created[..7].to_vec();
        expected.reverse();
        assert_eq!(seen, expected, "{query}");
        assert_eq!(pages, 3, "{query}");
    }

    let first = search(
        &server,
        "/v1/charges/search",
        &[
            ("query", "metadata['batch']:'x'"),
            ("limit", "2"),
            ("expand[]", "total_count"),
        ],
    )
    .await;
    assert_eq!(first["total_count"], 7);
    let token = first["next_page"].as_str().unwrap();
    let reused = server
        .request(
            "GET",
            "/v1/charges/search",
            &[("query", "amount>0"), ("page", token)],
            Some(SECRET_KEY),
            None,
        )
        .await;
    assert_eq!(reused.status, 400, "{}", reused.body);
    assert_eq!(reused.error()["type"], "invalid_request_error");
    assert_eq!(reused.error()["param"], "page");
    assert_eq!(
        reused.error()["message"],
        format!(
            "Invalid page: '{token}' is not a page of this search. Send the previous result's next_page with the same query."
        )
    );
}

/// Malformed queries, unknown fields and wrong operators are refused in Stripe's shape.
async fn bad_queries_get_stripe_errors_naming_the_query() {
    let (_directory, server) = server();
    server.create_charge(&[]).await;
    let missing = server.get("/v1/charges/search").await;
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert_eq!(missing.error()["code"], "parameter_missing");
    assert_eq!(missing.error()["param"], "query");
    assert_eq!(missing.error()["message"], "Missing required param: query.");
    for (query, detail) in [
        (
            "status:succeeded",
            "the value `succeeded` must be quoted (only numbers and null may be unquoted) at character 8",
        ),
        (
            "amount>1 AND currency:'usd' OR status:'failed'",
            "AND and OR can't be combined in the same query at character 29",
        ),
        (
            "description:'x'",
            "`description` is not a field that charge search supports",
        ),
        (
            "currency>'usd'",
            "`>` works only on numeric fields, and `currency` is not one",
        ),
        (
            "amount~'100'",
            "`~` (substring match) works only on string fields, and `amount` is not one",
        ),
    ] {
        let reply = server
            .request(
                "GET",
                "/v1/charges/search",
                &[("query", query)],
                Some(SECRET_KEY),
                None,
            )
            .await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(reply.error()["type"], "invalid_request_error");
        assert_eq!(reply.error()["param"], "query");
        assert_eq!(
            reply.error()["message"],
            format!(
                "Invalid search query: {detail}. See https://docs.stripe.com/search#search-query-language for the syntax."
            ),
            "{query}"
        );
    }
    let short = server
        .request(
            "GET",
            "/v1/customers/search",
            &[("query", "email~'am'")],
            Some(SECRET_KEY),
            None,
        )
        .await;
    assert_eq!(short.status, 400);
    assert!(
        short.error()["message"]
            .as_str()
            .unwrap()
            .contains("at least 3 characters")
    );
    let limit = server
        .request(
            "GET",
            "/v1/charges/search",
            &[("query", "amount>1"), ("limit", "101")],
            Some(SECRET_KEY),
            None,
        )
        .await;
    assert_eq!(limit.status, 400);
    assert_eq!(limit.error()["param"], "limit");
    let unknown = server
        .request(
            "GET",
            "/v1/charges/search",
            &[("query", "amount>1"), ("starting_after", "ch_1")],
            Some(SECRET_KEY),
            None,
        )
        .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.error()["param"], "starting_after");
}

/// An update moves a charge between results at once, a refund changes what `refunded` finds,
/// another account finds nothing of this one's, and a restart keeps everything.
async fn results_follow_updates_and_refunds_per_account_across_restarts() {
    let (directory, mut server) = server();
    let first = id(&server.create_charge(&[("metadata[state]", "new")]).await);
    let second = id(&server.create_charge(&[("metadata[state]", "new")]).await);
    let third = id(&server.create_charge(&[]).await);
    let updated = server
        .post(
            &format!("/v1/charges/{first}"),
            &[("metadata[state]", "shipped")],
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(
        charges(&server, "metadata['state']:'new'").await,
        [second.as_str()]
    );
    assert_eq!(
        charges(&server, "metadata['state']:'shipped'").await,
        [first.as_str()]
    );
    let unset = server
        .post(&format!("/v1/charges/{second}"), &[("metadata[state]", "")])
        .await;
    assert_eq!(unset.status, 200, "{}", unset.body);
    assert_eq!(
        charges(&server, "metadata['state']:'new'").await,
        Vec::<String>::new()
    );

    let partial = server
        .post("/v1/refunds", &[("charge", &second), ("amount", "500")])
        .await;
    assert_eq!(partial.status, 200, "{}", partial.body);
    let full = server.post("/v1/refunds", &[("charge", &third)]).await;
    assert_eq!(full.status, 200, "{}", full.body);
    assert_eq!(charges(&server, "refunded:'true'").await, [third.as_str()]);
    assert_eq!(
        charges(&server, "refunded:'false'").await,
        [second.as_str()]
    );
    assert_eq!(charges(&server, "refunded:null").await, [first.as_str()]);

    let other = server
        .request(
            "GET",
            "/v1/charges/search",
            &[("query", "amount>0")],
            Some(OTHER_SECRET_KEY),
            None,
        )
        .await;
    assert_eq!(other.status, 200);
    assert_eq!(ids(&other.body), Vec::<String>::new());
    let other_customers = server
        .request(
            "GET",
            "/v1/customers/search",
            &[("query", "created>0")],
            Some(OTHER_SECRET_KEY),
            None,
        )
        .await;
    assert_eq!(ids(&other_customers.body), Vec::<String>::new());

    let before = search(&server, "/v1/charges/search", &[("query", "amount>0")]).await;
    assert_eq!(
        ids(&before),
        [third.as_str(), second.as_str(), first.as_str()]
    );
    assert!(server.stop());
    let server = TestServer::start(&directory.path().join("data"));
    assert_eq!(
        charges(&server, "metadata['state']:'shipped'").await,
        [first.as_str()]
    );
    assert_eq!(charges(&server, "refunded:'true'").await, [third.as_str()]);
    let after = search(&server, "/v1/charges/search", &[("query", "amount>0")]).await;
    assert_eq!(after, before);
}

/// Customers by email, name and metadata: word sequences, substrings and case.
async fn customers_are_found_by_email_name_and_metadata() {
    let (_directory, server) = server();
    let amy = server
        .post(
            "/v1/customers",
            &[
                ("email", "Amy@RocketRides.io"),
                ("name", "Amy Tan Lee"),
                ("metadata[tier]", "gold"),
            ],
        )
        .await
        .body;
    let bob = server
        .post(
            "/v1/customers",
            &[("email", "bob@example.com"), ("name", "Bob Lee")],
        )
        .await
        .body;
    let customers = |query: &'static str| {
        let server = &server;
        async move { ids(&search(server, "/v1/customers/search", &[("query", query)]).await) }
    };
    assert_eq!(customers("email:'amy@rocketrides.io'").await, [id(&amy)]);
    assert_eq!(customers("email~'rocket'").await, [id(&amy)]);
    assert_eq!(customers("name:'lee'").await, [id(&bob), id(&amy)]);
    assert_eq!(customers("name:'tan lee'").await, [id(&amy)]);
    assert_eq!(customers("metadata['tier']:'GOLD'").await, [id(&amy)]);
    assert_eq!(
        customers("-metadata['tier']:null OR email~'example'").await,
        [id(&bob), id(&amy)]
    );
    let result = search(&server, "/v1/customers/search", &[("query", "name~'lee'")]).await;
    assert_eq!(result["data"][1], amy);
}

fn forget_the_search_index(data: &std::path::Path) {
    match common::backend::current() {
        common::backend::Backend::Sled => {
            let db = sled::open(data).expect("the store opens with sled");
            db.drop_tree("search_keys").expect("drop a tree");
            db.open_tree("meta")
                .expect("meta tree")
                .insert("format", "chargeledger-sled-4")
                .expect("write meta/format");
            db.flush().expect("flush");
        }
        common::backend::Backend::Postgres => {
            let schema = common::postgres::schema_for(data);
            common::postgres::psql(&format!(
                "DROP TABLE {schema}.chargeledger_search_keys; DELETE FROM {schema}.chargeledger_schema_migrations WHERE version = 4"
            ));
        }
    }
}

/// A store written before the search index gets it on open, with the same answers.
async fn a_store_from_before_the_search_index_gets_it_on_open() {
    let (directory, mut server) = server();
    let a = id(&server.create_charge(&[("metadata[order_id]", "1")]).await);
    let b = id(&server.create_charge(&[("amount", "3000")]).await);
    server
        .post(&format!("/v1/charges/{a}"), &[("metadata[order_id]", "2")])
        .await;
    server
        .post("/v1/customers", &[("email", "amy@rocketrides.io")])
        .await;
    assert!(server.stop());

    let data = directory.path().join("data");
    forget_the_search_index(&data);
    let mut server = TestServer::start(&data);
    assert_eq!(
        charges(&server, "metadata['order_id']:'2'").await,
        [a.as_str()]
    );
    assert_eq!(
        charges(&server, "metadata['order_id']:'1'").await,
        Vec::<String>::new()
    );
    assert_eq!(charges(&server, "amount>2500").await, [b.as_str()]);
    let customers = search(
        &server,
        "/v1/customers/search",
        &[("query", "email:'amy@rocketrides.io'")],
    )
    .await;
    assert_eq!(ids(&customers).len(), 1);
    if common::backend::current() == common::backend::Backend::Sled {
        assert!(server.stop());
        let db = sled::open(&data).expect("the store opens with sled");
        let format = db
            .open_tree("meta")
            .unwrap()
            .get("format")
            .unwrap()
            .unwrap();
        assert_eq!(format.as_ref(), b"chargeledger-sled-5");
    }
}

on_both_backends!(
    the_query_language_finds_exactly_the_matching_charges_newest_first,
    pages_follow_next_page_and_tokens_belong_to_their_query,
    bad_queries_get_stripe_errors_naming_the_query,
    results_follow_updates_and_refunds_per_account_across_restarts,
    customers_are_found_by_email_name_and_metadata,
    a_store_from_before_the_search_index_gets_it_on_open,
);

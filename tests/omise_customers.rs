//! Omise customers over real HTTP on both stores: created with a card token, updated (a second card, the default card, email, metadata), listed with their cards, charged on the default or a named card, Omise's refusals, events, account isolation, and a restart followed by `verify`.

mod common;

use common::server::{
    OMISE_SECRET_KEY, OTHER_OMISE_SECRET_KEY, OmiseBody, Reply, TestServer, verify_data_directory,
};
use serde_json::{Value, json};

async fn call(server: &TestServer, method: &str, path: &str, body: Value) -> Reply {
    let body = if body.is_null() {
        OmiseBody::None
    } else {
        OmiseBody::Json(body)
    };
    server.omise(method, path, body, OMISE_SECRET_KEY).await
}

fn ok(reply: Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

fn refused(reply: &Reply, status: u16, code: &str, message: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["object"], "error");
    assert_eq!(reply.body["code"], code, "{}", reply.body);
    assert_eq!(reply.body["message"], message, "{}", reply.body);
}

async fn omise_customers_keep_cards_and_are_charged_on_them() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let data = directory.path().join("data");
    let mut server = TestServer::start(&data);

    let first = server.omise_token("4242424242424242").await;
    let first_card = first["card"]["id"].as_str().unwrap().to_string();
    let customer = ok(call(
        &server,
        "POST",
        "/customers",
        json!({"email": "somchai@example.com", "description": "VIP", "metadata": {"tier": "gold"},
               "card": first["id"]}),
    )
    .await);
    let customer_id = customer["id"].as_str().unwrap().to_string();
    assert!(customer_id.starts_with("cust_test_"), "{customer_id}");
    assert_eq!(customer["object"], "customer");
    assert_eq!(customer["location"], format!("/customers/{customer_id}"));
    assert_eq!(customer["deleted"], false);
    assert_eq!(customer["livemode"], false);
    assert_eq!(customer["email"], "somchai@example.com");
    assert_eq!(customer["description"], "VIP");
    assert_eq!(customer["metadata"], json!({"tier": "gold"}));
    assert_eq!(customer["default_card"], first_card.as_str());
    assert_eq!(customer["cards"]["object"], "list");
    assert_eq!(customer["cards"]["total"], 1);
    assert_eq!(
        customer["cards"]["location"],
        format!("/customers/{customer_id}/cards")
    );
    let saved = &customer["cards"]["data"][0];
    assert_eq!(saved["id"], first_card.as_str());
    assert_eq!(saved["last_digits"], "4242");
    assert_eq!(
        saved["location"],
        format!("/customers/{customer_id}/cards/{first_card}")
    );
    assert!(customer["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        ok(call(
            &server,
            "GET",
            &format!("/customers/{customer_id}"),
            Value::Null
        )
        .await),
        customer
    );

    // The token is used up: it cannot pay for a charge, nor be saved again.
    refused(
        &call(
            &server,
            "POST",
            "/charges",
            json!({"amount": 100000, "currency": "thb", "card": first["id"]}),
        )
        .await,
        400,
        "used_token",
        "token was already used",
    );
    let other = ok(call(
        &server,
        "POST",
        "/customers",
        json!({"email": "b@example.com"}),
    )
    .await);
    refused(
        &call(
            &server,
            "PATCH",
            &format!("/customers/{}", other["id"].as_str().unwrap()),
            json!({"card": first["id"]}),
        )
        .await,
        400,
        "used_token",
        "token was already used",
    );

    // A second card, then the default moved to it; email and metadata set.
    let second = server.omise_token("5555555555554444").await;
    let second_card = second["card"]["id"].as_str().unwrap().to_string();
    let added = ok(call(
        &server,
        "PATCH",
        &format!("/customers/{customer_id}"),
        json!({"card": second["id"], "email": "new@example.com", "metadata": {"tier": "platinum"}}),
    )
    .await);
    assert_eq!(added["cards"]["total"], 2);
    assert_eq!(added["default_card"], first_card.as_str());
    assert_eq!(added["email"], "new@example.com");
    assert_eq!(added["metadata"], json!({"tier": "platinum"}));
    let moved = ok(call(
        &server,
        "PATCH",
        &format!("/customers/{customer_id}"),
        json!({"default_card": second_card}),
    )
    .await);
    assert_eq!(moved["default_card"], second_card.as_str());
    refused(
        &call(
            &server,
            "PATCH",
            &format!("/customers/{customer_id}"),
            json!({"default_card": "card_test_nothere"}),
        )
        .await,
        404,
        "not_found",
        "card card_test_nothere was not found",
    );
    refused(
        &call(
            &server,
            "PATCH",
            &format!("/customers/{customer_id}"),
            json!({"email": "not an address"}),
        )
        .await,
        400,
        "bad_request",
        "email is invalid",
    );

    // The customer's cards, oldest first, and one of them.
    let cards = ok(call(
        &server,
        "GET",
        &format!("/customers/{customer_id}/cards"),
        Value::Null,
    )
    .await);
    assert_eq!(cards["total"], 2);
    assert_eq!(cards["data"][0]["id"], first_card.as_str());
    assert_eq!(cards["data"][1]["id"], second_card.as_str());
    let one = ok(call(
        &server,
        "GET",
        &format!("/customers/{customer_id}/cards/{second_card}"),
        Value::Null,
    )
    .await);
    assert_eq!(one, cards["data"][1]);
    refused(
        &call(
            &server,
            "GET",
            &format!("/customers/{customer_id}/cards/card_test_nothere"),
            Value::Null,
        )
        .await,
        404,
        "not_found",
        "card card_test_nothere was not found",
    );

    // Charged on the default card, on a named card; refusals for no card and no customer.
    let on_default = ok(call(
        &server,
        "POST",
        "/charges",
        json!({"amount": 150000, "currency": "thb", "customer": customer_id}),
    )
    .await);
    assert_eq!(on_default["status"], "successful");
    assert_eq!(on_default["customer"], customer_id.as_str());
    assert_eq!(on_default["card"]["id"], second_card.as_str());
    let on_first = ok(call(
        &server,
        "POST",
        "/charges",
        json!({"amount": 150000, "currency": "thb", "customer": customer_id, "card": first_card,
               "capture": false}),
    )
    .await);
    assert_eq!(on_first["card"]["id"], first_card.as_str());
    assert_eq!(on_first["status"], "pending");
    refused(
        &call(
            &server,
            "POST",
            "/charges",
            json!({"amount": 150000, "currency": "thb", "customer": other["id"]}),
        )
        .await,
        400,
        "missing_card",
        &format!(
            "customer {} has no card to charge; add one with a card token",
            other["id"].as_str().unwrap()
        ),
    );
    refused(
        &call(
            &server,
            "POST",
            "/charges",
            json!({"amount": 150000, "currency": "thb", "customer": "cust_test_nothere"}),
        )
        .await,
        404,
        "not_found",
        "customer cust_test_nothere was not found",
    );
    refused(
        &call(
            &server,
            "POST",
            "/charges",
            json!({"amount": 150000, "currency": "thb", "customer": customer_id,
                   "card": "card_test_nothere"}),
        )
        .await,
        404,
        "not_found",
        "card card_test_nothere was not found",
    );
    // A failing test card saved to a customer fails the charge, recorded as Omise records it.
    let failing = server.omise_token("4111111111140011").await;
    let poor = ok(call(
        &server,
        "POST",
        "/customers",
        json!({"card": failing["id"]}),
    )
    .await);
    let failed = ok(call(
        &server,
        "POST",
        "/charges",
        json!({"amount": 150000, "currency": "thb", "customer": poor["id"]}),
    )
    .await);
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["failure_code"], "insufficient_fund");

    // One update may save a card and make it the default; the token then shows as used, by
    // no charge.
    let other_id = other["id"].as_str().unwrap().to_string();
    let third = server.omise_token("4242424242424242").await;
    let both = ok(call(
        &server,
        "PATCH",
        &format!("/customers/{other_id}"),
        json!({"card": third["id"], "default_card": third["card"]["id"]}),
    )
    .await);
    assert_eq!(both["default_card"], third["card"]["id"]);
    let spent = ok(call(
        &server,
        "GET",
        &format!("/tokens/{}", third["id"].as_str().unwrap()),
        Value::Null,
    )
    .await);
    assert_eq!(
        (spent["used"].as_bool(), spent["charge_status"].as_str()),
        (Some(true), Some("unknown"))
    );

    // Lists and events.
    let list = ok(call(&server, "GET", "/customers", Value::Null).await);
    assert_eq!(list["total"], 3);
    assert_eq!(list["data"][0]["id"], customer_id.as_str());
    let events = ok(call(&server, "GET", "/events?limit=100", Value::Null).await);
    let keys: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys.iter().filter(|key| **key == "customer.create").count(),
        3
    );
    assert_eq!(
        keys.iter().filter(|key| **key == "customer.update").count(),
        3
    );
    let update = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["key"] == "customer.update")
        .expect("a customer.update event");
    assert_eq!(update["data"]["object"], "customer");

    // Another account finds none of it; a restart keeps it and the chain verifies.
    let foreign = server
        .omise(
            "GET",
            &format!("/customers/{customer_id}"),
            OmiseBody::None,
            OTHER_OMISE_SECRET_KEY,
        )
        .await;
    refused(
        &foreign,
        404,
        "not_found",
        &format!("customer {customer_id} was not found"),
    );
    let before = ok(call(
        &server,
        "GET",
        &format!("/customers/{customer_id}"),
        Value::Null,
    )
    .await);
    assert!(server.stop());
    let (sound, report) = verify_data_directory(&data);
    assert!(sound, "{report}");
    let server = TestServer::start(&data);
    assert_eq!(
        ok(call(
            &server,
            "GET",
            &format!("/customers/{customer_id}"),
            Value::Null
        )
        .await),
        before
    );
}

/// A customer is its account's alone; a create with an idempotency key happens once; a token
/// raced between a customer and a charge is spent by exactly one of them.
async fn customers_are_per_account_idempotent_and_spend_a_token_once() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(&directory.path().join("data"));
    let token = server.omise_token("4242424242424242").await;
    let create = |key: &'static str, token: Value| {
        let request = server
            .client()
            .post(format!("{}/customers", server.base_url))
            .basic_auth(OMISE_SECRET_KEY, Some(""))
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(json!({"email": "once@example.com", "card": token["id"]}).to_string());
        server.send(request)
    };
    let first = create("customer-once", token.clone()).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = create("customer-once", token.clone()).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let listed = ok(call(&server, "GET", "/customers", Value::Null).await);
    assert_eq!(listed["total"], 1, "the replay created nothing");

    // Another account can neither read nor charge this customer.
    let customer_id = first.body["id"].as_str().unwrap().to_string();
    let foreign_charge = server
        .omise(
            "POST",
            "/charges",
            OmiseBody::Json(json!({"amount": 100000, "currency": "thb", "customer": customer_id})),
            OTHER_OMISE_SECRET_KEY,
        )
        .await;
    refused(
        &foreign_charge,
        404,
        "not_found",
        &format!("customer {customer_id} was not found"),
    );

    // One token, saved to a customer and paying a charge at once: exactly one wins.
    for _ in 0..5 {
        let raced = server.omise_token("4242424242424242").await;
        let save = call(&server, "POST", "/customers", json!({"card": raced["id"]}));
        let pay = call(
            &server,
            "POST",
            "/charges",
            json!({"amount": 100000, "currency": "thb", "card": raced["id"]}),
        );
        let (saved, paid) = tokio::join!(save, pay);
        let winners = [saved.status, paid.status]
            .iter()
            .filter(|status| **status == 200)
            .count();
        assert_eq!(winners, 1, "{} / {}", saved.body, paid.body);
        let loser = if saved.status == 200 { &paid } else { &saved };
        refused(loser, 400, "used_token", "token was already used");
    }
}

on_both_backends!(
    omise_customers_keep_cards_and_are_charged_on_them,
    customers_are_per_account_idempotent_and_spend_a_token_once,
);

//! Omise's refunds over real HTTP on both stores: partial and full refunds of a captured charge, the charge's `refunded_amount` and `refunds`, the refund lists and retrieval, `refund.create` events, Omise's refusals, and persistence.

mod common;

use common::server::{OMISE_SECRET_KEY, OTHER_OMISE_SECRET_KEY, OmiseBody, TestServer};
use serde_json::{Value, json};

async fn omise_charge(server: &TestServer, capture: bool) -> String {
    let token = server.omise_token("4242424242424242").await;
    let charge = server
        .omise(
            "POST",
            "/charges",
            OmiseBody::Json(json!({"amount": 100000, "currency": "thb",
                "card": token["id"], "capture": capture})),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(charge.status, 200, "{}", charge.body);
    charge.body["id"].as_str().unwrap().to_string()
}

async fn post_refund(server: &TestServer, charge_id: &str, body: Value) -> common::server::Reply {
    server
        .omise(
            "POST",
            &format!("/charges/{charge_id}/refunds"),
            OmiseBody::Json(body),
            OMISE_SECRET_KEY,
        )
        .await
}

fn refusal(reply: &common::server::Reply) -> (u16, String, String) {
    (
        reply.status,
        reply.body["code"].as_str().unwrap_or_default().to_string(),
        reply.body["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

async fn omise_refunds_partial_and_full_listed_and_refused_as_omise_does() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let data = directory.path().join("data");
    let mut server = TestServer::start(&data);
    let charge_id = omise_charge(&server, true).await;

    let first = post_refund(
        &server,
        &charge_id,
        json!({"amount": 30000, "metadata": {"reason": "damaged"}}),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let refund = &first.body;
    let refund_id = refund["id"].as_str().unwrap().to_string();
    assert!(refund_id.starts_with("rfnd_test_"), "{refund_id}");
    assert_eq!(refund["object"], "refund");
    assert_eq!(
        refund["location"],
        format!("/charges/{charge_id}/refunds/{refund_id}")
    );
    assert_eq!(refund["amount"], 30000);
    assert_eq!(refund["currency"], "THB");
    assert_eq!(refund["charge"], charge_id.as_str());
    assert_eq!(refund["metadata"], json!({"reason": "damaged"}));
    assert_eq!(refund["voided"], false);
    assert_eq!(refund["status"], "closed");
    assert_eq!(refund["funding_amount"], 30000);
    assert!(
        refund["transaction"]
            .as_str()
            .unwrap()
            .starts_with("trxn_test_")
    );
    assert_eq!(refund["capture"], Value::Null);

    let charge = server
        .omise(
            "GET",
            &format!("/charges/{charge_id}"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(charge.body["refunded_amount"], 30000);
    assert_eq!(charge.body["refundable"], true);
    assert_eq!(charge.body["refunds"]["total"], 1);
    assert_eq!(charge.body["refunds"]["data"][0], first.body);

    // More than what is left, nothing, or no amount: refused, nothing appended.
    let too_much = post_refund(&server, &charge_id, json!({"amount": 70001})).await;
    assert_eq!(
        refusal(&too_much),
        (
            400,
            "failed_refund".into(),
            "amount must be less than or equal to the refundable amount (70000)".into()
        )
    );
    let zero = post_refund(&server, &charge_id, json!({"amount": 0})).await;
    assert_eq!(
        refusal(&zero),
        (
            400,
            "failed_refund".into(),
            "amount must be greater than 0".into()
        )
    );
    let missing = post_refund(&server, &charge_id, json!({})).await;
    assert_eq!(
        refusal(&missing),
        (400, "bad_request".into(), "amount can't be blank".into())
    );

    // The rest, sent as a form as omise-ruby does: the charge is then fully refunded.
    let rest = server
        .omise(
            "POST",
            &format!("/charges/{charge_id}/refunds"),
            OmiseBody::Form(&[("amount", "70000")]),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(rest.status, 200, "{}", rest.body);
    let again = post_refund(&server, &charge_id, json!({"amount": 1})).await;
    assert_eq!(
        refusal(&again),
        (
            400,
            "failed_refund".into(),
            "charge can't be refunded".into()
        )
    );
    let charge = server
        .omise(
            "GET",
            &format!("/charges/{charge_id}"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(charge.body["refunded_amount"], 100000);
    assert_eq!(charge.body["refundable"], false);

    // An uncaptured charge is reversed, not refunded.
    let uncaptured = omise_charge(&server, false).await;
    let refused = post_refund(&server, &uncaptured, json!({"amount": 100})).await;
    assert_eq!(
        refusal(&refused),
        (
            400,
            "failed_refund".into(),
            "charge can't be refunded".into()
        )
    );

    // The charge's list (oldest first), one refund, and the account's list.
    let listed = server
        .omise(
            "GET",
            &format!("/charges/{charge_id}/refunds"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(listed.body["object"], "list");
    assert_eq!(listed.body["total"], 2);
    assert_eq!(
        listed.body["location"],
        format!("/charges/{charge_id}/refunds")
    );
    assert_eq!(listed.body["data"], json!([first.body, rest.body]));
    let newest = server
        .omise(
            "GET",
            &format!("/charges/{charge_id}/refunds?order=reverse_chronological&limit=1"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(newest.body["data"], json!([rest.body]));
    let one = server
        .omise(
            "GET",
            &format!("/charges/{charge_id}/refunds/{refund_id}"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(one.body, first.body);
    let unknown = server
        .omise(
            "GET",
            &format!("/charges/{charge_id}/refunds/rfnd_test_nothing"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(
        refusal(&unknown),
        (
            404,
            "not_found".into(),
            "refund rfnd_test_nothing was not found".into()
        )
    );
    let everything = server
        .omise("GET", "/refunds", OmiseBody::None, OMISE_SECRET_KEY)
        .await;
    assert_eq!(everything.body["location"], "/refunds");
    assert_eq!(everything.body["data"], json!([first.body, rest.body]));
    let other = server
        .omise("GET", "/refunds", OmiseBody::None, OTHER_OMISE_SECRET_KEY)
        .await;
    assert_eq!(other.body["total"], 0);

    // Each refund is a refund.create event whose data is the refund.
    let events = server
        .omise(
            "GET",
            &format!("/charges/{charge_id}/events"),
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
    assert_eq!(
        keys,
        vec!["charge.create", "refund.create", "refund.create"]
    );
    assert_eq!(events.body["data"][1]["data"], first.body);

    // All of it survives a restart, and the chain verifies.
    assert!(server.stop());
    let (sound, output) = common::server::verify_data_directory(&data);
    assert!(sound, "{output}");
    let server = TestServer::start(&data);
    let after = server
        .omise("GET", "/refunds", OmiseBody::None, OMISE_SECRET_KEY)
        .await;
    assert_eq!(after.body["data"], json!([first.body, rest.body]));
}

on_both_backends!(omise_refunds_partial_and_full_listed_and_refused_as_omise_does);

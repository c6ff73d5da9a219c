//! Declines are recorded, as Stripe and Omise record them: a failed charge that exists, can be read, listed and updated, and holds no money, over real HTTP on both stores.

mod common;

use common::server::{OMISE_SECRET_KEY, OmiseBody, TestServer};
use serde_json::{Value, json};

fn server() -> (tempfile::TempDir, TestServer) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(&directory.path().join("data"));
    (directory, server)
}

/// A documented decline: the source, then the error's `code`, `decline_code`, `message`, and
/// the charge's `outcome` (`network_status`, `reason`, `type`).
type DeclineRow = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    [&'static str; 3],
);

const STRIPE_DECLINES: [DeclineRow; 9] = [
    (
        "tok_chargeDeclined",
        "card_declined",
        Some("generic_decline"),
        "Your card was declined.",
        ["declined_by_network", "generic_decline", "issuer_declined"],
    ),
    (
        "tok_visa_chargeDeclinedInsufficientFunds",
        "card_declined",
        Some("insufficient_funds"),
        "Your card has insufficient funds.",
        [
            "declined_by_network",
            "insufficient_funds",
            "issuer_declined",
        ],
    ),
    (
        "tok_chargeDeclinedLostCard",
        "card_declined",
        Some("lost_card"),
        "Your card was declined.",
        ["declined_by_network", "lost_card", "issuer_declined"],
    ),
    (
        "tok_chargeDeclinedStolenCard",
        "card_declined",
        Some("stolen_card"),
        "Your card was declined.",
        ["declined_by_network", "stolen_card", "issuer_declined"],
    ),
    (
        "tok_chargeDeclinedExpiredCard",
        "expired_card",
        Some("expired_card"),
        "Your card has expired.",
        ["declined_by_network", "expired_card", "issuer_declined"],
    ),
    (
        "tok_chargeDeclinedIncorrectCvc",
        "incorrect_cvc",
        None,
        "Your card's security code is incorrect.",
        ["declined_by_network", "incorrect_cvc", "issuer_declined"],
    ),
    (
        "tok_chargeDeclinedProcessingError",
        "processing_error",
        None,
        "An error occurred while processing your card. Try again in a little bit.",
        ["declined_by_network", "processing_error", "issuer_declined"],
    ),
    (
        "tok_chargeDeclinedFraudulent",
        "card_declined",
        Some("fraudulent"),
        "Your card was declined.",
        ["not_sent_to_network", "highest_risk_level", "blocked"],
    ),
    (
        "tok_visa_chargeDeclinedVelocityLimitExceeded",
        "card_declined",
        Some("card_velocity_exceeded"),
        "Your card was declined.",
        [
            "declined_by_network",
            "card_velocity_exceeded",
            "issuer_declined",
        ],
    ),
];

async fn every_stripe_decline_is_a_402_naming_a_recorded_failed_charge() {
    let (_directory, server) = server();
    for (source, code, decline_code, message, [network_status, reason, outcome_type]) in
        STRIPE_DECLINES
    {
        let reply = server
            .post(
                "/v1/charges",
                &[
                    ("amount", "2000"),
                    ("currency", "usd"),
                    ("source", source),
                    ("description", "attempt"),
                ],
            )
            .await;
        assert_eq!(reply.status, 402, "{source}: {}", reply.body);
        let error = reply.error();
        assert_eq!(error["type"], "card_error", "{source}");
        assert_eq!(error["code"], code, "{source}");
        assert_eq!(error["decline_code"], json!(decline_code), "{source}");
        assert_eq!(error["message"], message, "{source}");
        assert_eq!(
            error["doc_url"],
            format!(
                "https://stripe.com/docs/error-codes/{}",
                code.replace('_', "-")
            ),
        );
        let charge_id = error["charge"]
            .as_str()
            .expect("the error names the charge");
        assert!(charge_id.starts_with("ch_"), "{charge_id}");

        let charge = server.get(&format!("/v1/charges/{charge_id}")).await;
        assert_eq!(charge.status, 200);
        let charge = charge.body;
        assert_eq!(charge["status"], "failed", "{source}");
        assert_eq!(charge["paid"], false);
        assert_eq!(charge["captured"], false);
        assert_eq!(charge["amount"], 2000);
        assert_eq!(charge["amount_captured"], 0);
        assert_eq!(charge["amount_refunded"], 0);
        assert_eq!(charge["balance_transaction"], Value::Null);
        assert_eq!(charge["failure_code"], code);
        assert_eq!(charge["failure_message"], message);
        assert_eq!(charge["description"], "attempt");
        assert_eq!(
            charge["outcome"]["network_status"], network_status,
            "{source}"
        );
        assert_eq!(charge["outcome"]["reason"], reason, "{source}");
        assert_eq!(charge["outcome"]["type"], outcome_type, "{source}");
        if outcome_type == "blocked" {
            assert_eq!(charge["outcome"]["risk_level"], "highest");
            assert_eq!(charge["outcome"]["rule"], "block_if_high_risk");
            assert_eq!(
                charge["fraud_details"],
                json!({"stripe_report": "fraudulent"})
            );
        }
    }
    // A successful charge still says so.
    let approved = server.create_charge(&[]).await;
    assert_eq!(approved["status"], "succeeded");
    assert_eq!(approved["outcome"]["type"], "authorized");
    assert_eq!(approved["failure_code"], Value::Null);
}

async fn a_failed_charge_is_listed_updated_refused_money_and_in_the_feed() {
    let (directory, mut server) = server();
    let attempt = [
        ("amount", "1500"),
        ("currency", "usd"),
        ("source", "tok_chargeDeclinedInsufficientFunds"),
    ];
    let reply = server
        .post_idempotent("/v1/charges", &attempt, "decline-key")
        .await;
    assert_eq!(reply.status, 402);
    let charge_id = reply.error()["charge"].as_str().unwrap().to_string();

    // The same key again: the same 402 naming the same charge, replayed, and no second charge.
    let again = server
        .post_idempotent("/v1/charges", &attempt, "decline-key")
        .await;
    assert_eq!(again.status, 402);
    assert_eq!(again.body, reply.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    let listed = server.get("/v1/charges").await;
    let ids: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|charge| charge["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![charge_id.as_str()]);

    let path = format!("/v1/charges/{charge_id}");
    let updated = server
        .post(
            &path,
            &[
                ("description", "customer called"),
                ("metadata[ticket]", "T-9"),
            ],
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["status"], "failed");
    assert_eq!(updated.body["description"], "customer called");
    assert_eq!(updated.body["metadata"], json!({"ticket": "T-9"}));

    let capture = server.post(&format!("{path}/capture"), &[]).await;
    assert_eq!(capture.status, 400, "{}", capture.body);
    assert_eq!(
        capture.error()["message"],
        format!(
            "Charge {charge_id} failed (card_declined), so it cannot be captured: nothing was authorized."
        )
    );
    let refund = server.post("/v1/refunds", &[("charge", &charge_id)]).await;
    assert_eq!(refund.status, 400, "{}", refund.body);
    assert_eq!(refund.error()["code"], "charge_not_refundable");
    assert_eq!(
        refund.error()["message"],
        format!(
            "Charge {charge_id} failed (card_declined), so it cannot be refunded: nothing was authorized."
        )
    );

    let events = server.get("/v1/events").await;
    let types: Vec<&str> = events.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["charge.updated", "charge.failed"]);
    let failed = &events.body["data"][1];
    assert_eq!(failed["data"]["object"]["id"], charge_id.as_str());
    assert_eq!(failed["data"]["object"]["status"], "failed");
    assert_eq!(failed["data"].get("previous_attributes"), None);
    let only_failed = server.get("/v1/events?type=charge.failed").await;
    assert_eq!(only_failed.body["data"].as_array().unwrap().len(), 1);

    let history = server.get(&format!("{path}/history")).await;
    let entries = history.body["data"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["type"], "charge.failed");
    assert_eq!(entries[0]["request"]["idempotency_key"], "decline-key");
    assert_eq!(entries[1]["type"], "charge.updated");

    // It is all still there after a restart, and the chain verifies.
    assert!(server.stop());
    let data = directory.path().join("data");
    let (sound, output) = common::server::verify_data_directory(&data);
    assert!(sound, "{output}");
    let server = TestServer::start(&data);
    let charge = server.get(&path).await;
    assert_eq!(charge.body["status"], "failed");
    assert_eq!(charge.body["failure_code"], "card_declined");
    assert_eq!(charge.body["description"], "customer called");
}

async fn card_numbers_decline_as_their_tokens_and_a_bad_number_creates_nothing() {
    let (_directory, server) = server();
    let by_number = |number: &'static str| {
        [
            ("amount", "2000"),
            ("currency", "usd"),
            ("source[object]", "card"),
            ("source[number]", number),
            ("source[exp_month]", "12"),
            ("source[exp_year]", "2034"),
            ("source[cvc]", "123"),
        ]
    };
    let approved = server
        .post("/v1/charges", &by_number("4242424242424242"))
        .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    let card = &approved.body["payment_method_details"]["card"];
    assert_eq!(
        (card["last4"].clone(), card["exp_year"].clone()),
        (json!("4242"), json!(2034))
    );
    assert_eq!(card["brand"], "visa");

    let declined = server
        .post("/v1/charges", &by_number("4000000000009995"))
        .await;
    assert_eq!(declined.status, 402);
    assert_eq!(declined.error()["decline_code"], "insufficient_funds");
    let failed = server
        .get(&format!(
            "/v1/charges/{}",
            declined.error()["charge"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        failed.body["payment_method_details"]["card"]["last4"],
        "9995"
    );

    // Not a test card in a test-mode account: declined as Stripe declines it, and recorded.
    let live = server
        .post("/v1/charges", &by_number("4111111111111111"))
        .await;
    assert_eq!(live.status, 402);
    assert_eq!(live.error()["decline_code"], "test_mode_live_card");

    let bad = server
        .post("/v1/charges", &by_number("4242424242424241"))
        .await;
    assert_eq!(bad.status, 402);
    assert_eq!(
        bad.body,
        json!({"error": {
            "type": "card_error", "code": "incorrect_number", "param": "number",
            "message": "Your card number is incorrect.",
            "doc_url": "https://stripe.com/docs/error-codes/incorrect-number"
        }})
    );
    let mut month = by_number("4242424242424242");
    month[4].1 = "13";
    let bad_month = server.post("/v1/charges", &month).await;
    assert_eq!(bad_month.status, 400);
    assert_eq!(bad_month.error()["param"], "source[exp_month]");
    let listed = server.get("/v1/charges").await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 3);
    let unknown = server
        .post(
            "/v1/charges",
            &[
                ("amount", "2000"),
                ("currency", "usd"),
                ("source[number]", "4242424242424242"),
                ("source[pin]", "1"),
            ],
        )
        .await;
    assert_eq!(
        unknown.error()["message"],
        "Received unknown parameter: source[pin]"
    );
}

async fn omise_failing_test_cards_are_recorded_failed_charges() {
    let (_directory, server) = server();
    let cases = [
        (
            "4111111111140011",
            "insufficient_fund",
            "insufficient funds in the account or the card has reached the credit limit",
        ),
        (
            "4111111111130012",
            "stolen_or_lost_card",
            "card is stolen or lost",
        ),
        ("5555551111190013", "failed_processing", "failed processing"),
        ("3530111111160014", "payment_rejected", "payment rejected"),
    ];
    for (number, code, message) in cases {
        let token = server.omise_token(number).await;
        let reply = server
            .omise(
                "POST",
                "/charges",
                OmiseBody::Json(json!({"amount": 100000, "currency": "thb",
                    "card": token["id"]})),
                OMISE_SECRET_KEY,
            )
            .await;
        // Omise answers a declined card with the charge, not an error.
        assert_eq!(reply.status, 200, "{}", reply.body);
        let charge = &reply.body;
        assert_eq!(charge["status"], "failed", "{number}");
        assert_eq!(charge["failure_code"], code);
        assert_eq!(charge["failure_message"], message);
        assert_eq!(charge["paid"], false);
        assert_eq!(charge["authorized"], false);
        assert_eq!(charge["capturable"], false);
        assert_eq!(charge["transaction"], Value::Null);
        let id = charge["id"].as_str().unwrap();

        let read = server
            .omise(
                "GET",
                &format!("/charges/{id}"),
                OmiseBody::None,
                OMISE_SECRET_KEY,
            )
            .await;
        assert_eq!(read.body, reply.body);
        let capture = server
            .omise(
                "POST",
                &format!("/charges/{id}/capture"),
                OmiseBody::None,
                OMISE_SECRET_KEY,
            )
            .await;
        assert_eq!(
            (
                capture.status,
                capture.body["code"].clone(),
                capture.body["message"].clone()
            ),
            (
                400,
                json!("failed_capture"),
                json!("charge failed and cannot be captured")
            )
        );
        let patched = server
            .omise(
                "PATCH",
                &format!("/charges/{id}"),
                OmiseBody::Json(json!({"description": "declined at checkout"})),
                OMISE_SECRET_KEY,
            )
            .await;
        assert_eq!(patched.body["description"], "declined at checkout");
        assert_eq!(patched.body["status"], "failed");
        // The token was spent by the attempt.
        let reuse = server
            .omise(
                "POST",
                "/charges",
                OmiseBody::Json(json!({"amount": 100000, "currency": "thb",
                    "card": token["id"]})),
                OMISE_SECRET_KEY,
            )
            .await;
        assert_eq!(reuse.body["code"], "used_token");
        let events = server
            .omise(
                "GET",
                &format!("/charges/{id}/events"),
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
        assert_eq!(keys, vec!["charge.create", "charge.update"]);
    }
}

on_both_backends!(
    every_stripe_decline_is_a_402_naming_a_recorded_failed_charge,
    a_failed_charge_is_listed_updated_refused_money_and_in_the_feed,
    card_numbers_decline_as_their_tokens_and_a_bad_number_creates_nothing,
    omise_failing_test_cards_are_recorded_failed_charges,
);

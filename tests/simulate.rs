//! Faults on demand (`Chargeledger-Simulate`): Stripe's 429 `rate_limit` and 500 `api_error`, Omise's `too_many_requests` and `internal_error`, a slow answer, and nothing appended for any of them.

mod common;

use std::time::{Duration, Instant};

use common::server::{OMISE_SECRET_KEY, SECRET_KEY, TestServer};
use serde_json::json;

fn server() -> (tempfile::TempDir, TestServer) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(&directory.path().join("data"));
    (directory, server)
}

const CHARGE: &str = "amount=2000&currency=usd&source=tok_visa";

async fn simulated(
    server: &TestServer,
    fault: &str,
    extra: &[(&str, &str)],
) -> common::server::Reply {
    let mut request = server
        .client()
        .post(format!("{}/v1/charges", server.base_url))
        .bearer_auth(SECRET_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("idempotency-key", format!("simulated-{fault}"))
        .header("chargeledger-simulate", fault)
        .body(CHARGE);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    server.send(request).await
}

async fn stripe_faults_are_answered_in_stripes_shape_and_append_nothing() {
    let (_directory, server) = server();
    let limited = simulated(&server, "rate_limit", &[]).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("stripe-should-retry"), Some("true"));
    assert!(limited.header("request-id").unwrap().starts_with("req_"));
    assert_eq!(
        limited.body,
        json!({"error": {
            "type": "invalid_request_error", "code": "rate_limit",
            "doc_url": "https://stripe.com/docs/error-codes/rate-limit",
            "message": "Request rate limit exceeded (simulated by Chargeledger-Simulate: rate_limit); nothing was applied. Retry with the same idempotency key."
        }})
    );
    let failed = simulated(&server, "api_error", &[]).await;
    assert_eq!(failed.status, 500);
    assert_eq!(failed.header("stripe-should-retry"), Some("true"));
    assert_eq!(failed.error()["type"], "api_error");

    let started = Instant::now();
    let slow = simulated(
        &server,
        "timeout",
        &[("chargeledger-simulate-delay-ms", "400")],
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(slow.status, 500);
    assert!(
        slow.error()["message"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );

    let bad = simulated(&server, "earthquake", &[]).await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.error()["message"],
        "Chargeledger-Simulate must be one of rate_limit, api_error or timeout"
    );
    let too_long = simulated(
        &server,
        "timeout",
        &[("chargeledger-simulate-delay-ms", "600001")],
    )
    .await;
    assert_eq!(too_long.status, 400);

    // Nothing was appended, and the same idempotency key then works normally.
    let listed = server.get("/v1/charges").await;
    assert_eq!(listed.body["data"], json!([]));
    assert_eq!(server.get("/v1/events").await.body["data"], json!([]));
    let real = server
        .post_idempotent(
            "/v1/charges",
            &[
                ("amount", "2000"),
                ("currency", "usd"),
                ("source", "tok_visa"),
            ],
            "simulated-rate_limit",
        )
        .await;
    assert_eq!(real.status, 200);
    assert_eq!(real.header("idempotent-replayed"), None);

    // A fault is for an authenticated caller: without a key the answer is still 401.
    let anonymous = server
        .send(
            server
                .client()
                .get(format!("{}/v1/charges", server.base_url))
                .header("chargeledger-simulate", "rate_limit"),
        )
        .await;
    assert_eq!(anonymous.status, 401);
}

async fn omise_faults_are_answered_in_omises_shape() {
    let (_directory, server) = server();
    let request = |fault: &str| {
        server
            .client()
            .get(format!("{}/charges", server.base_url))
            .basic_auth(OMISE_SECRET_KEY, Some(""))
            .header("chargeledger-simulate", fault)
    };
    let limited = server.send(request("rate_limit")).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["object"], "error");
    assert_eq!(limited.body["code"], "too_many_requests");
    let failed = server.send(request("api_error")).await;
    assert_eq!(
        (failed.status, failed.body["code"].clone()),
        (500, json!("internal_error"))
    );
    let bad = server.send(request("")).await;
    assert_eq!(
        (bad.status, bad.body["code"].clone()),
        (400, json!("bad_request"))
    );
}

on_both_backends!(
    stripe_faults_are_answered_in_stripes_shape_and_append_nothing,
    omise_faults_are_answered_in_omises_shape,
);

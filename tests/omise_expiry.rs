//! Omise authorization expiry on both stores: through the library on a manual clock (due at `expires_at`, never early, a `charge.expired` event, captures and reverses refused with `expired_charge` even before the sweep records it), and over HTTP with a server whose sweep expires an authorization on its own.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chargeledger::clock::ManualClock;
use chargeledger::domain::Lifecycle;
use chargeledger::domain::omise::{
    CaptureOmiseCharge, CreateOmiseCharge, CreateToken, OmiseRefusal,
};
use chargeledger::ledger::{LedgerOptions, Refusal};
use chargeledger::{Ledger, LedgerError, RequestMeta};
use common::server::{OMISE_SECRET_KEY, OmiseBody, TestServer, verify_data_directory};
use serde_json::{Value, json};
use time::OffsetDateTime;

const ACCOUNT: &str = "acct_test_omise_expiry";
const SEVEN_DAYS: Duration = Duration::from_secs(7 * 24 * 3600);

async fn authorization(ledger: &Ledger, capture: bool) -> String {
    let token = ledger
        .create_token(
            ACCOUNT,
            CreateToken {
                name: Some("A B".into()),
                number: Some("4242424242424242".into()),
                expiration_month: Some(1),
                expiration_year: Some(2099),
                ..CreateToken::default()
            },
            RequestMeta::library(),
        )
        .await
        .expect("a token");
    let mut create = CreateOmiseCharge::with_token(250_000, "thb", &token.id);
    create.capture = capture;
    ledger
        .create_omise_charge(ACCOUNT, create, RequestMeta::library())
        .await
        .expect("a charge")
        .id
}

fn is_expired_refusal(result: Result<impl std::fmt::Debug, LedgerError>) -> bool {
    matches!(
        result,
        Err(LedgerError::Refused(Refusal::OmiseRequest(
            OmiseRefusal::ChargeExpired
        )))
    )
}

async fn authorizations_expire_when_due_and_are_then_refused() {
    let directory = tempfile::tempdir().expect("tempdir");
    let start = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a moment");
    let clock = Arc::new(ManualClock::starting_at(start));
    let options = LedgerOptions {
        clock: clock.clone(),
        ..LedgerOptions::default()
    };
    let ledger = common::backend::open_ledger_at(&directory.path().join("data"), options).await;
    let held = authorization(&ledger, false).await;
    let captured = authorization(&ledger, true).await;
    let sweep = || {
        ledger.expire_due_authorizations(ACCOUNT, RequestMeta::library().with_actor("expiry sweep"))
    };

    clock.advance(SEVEN_DAYS - Duration::from_secs(1));
    assert_eq!(sweep().await.expect("a sweep"), 0, "one second early");
    let late = authorization(&ledger, false).await;
    clock.advance(Duration::from_secs(1));
    // Due but not yet swept: a capture is refused by the clock and appends nothing.
    let version_before = ledger
        .get_charge_with_version(ACCOUNT, &held)
        .await
        .expect("read")
        .1;
    assert!(is_expired_refusal(
        ledger
            .capture_omise_charge(
                ACCOUNT,
                &held,
                CaptureOmiseCharge::default(),
                RequestMeta::library()
            )
            .await
    ));
    assert_eq!(
        ledger
            .get_charge_with_version(ACCOUNT, &held)
            .await
            .expect("read")
            .1,
        version_before
    );
    assert_eq!(sweep().await.expect("a sweep"), 1);
    assert_eq!(sweep().await.expect("a sweep again"), 0, "nothing twice");

    let expired = ledger.get_charge(ACCOUNT, &held).await.expect("read");
    assert_eq!(expired.lifecycle, Lifecycle::Reversed);
    assert_eq!(
        expired.expired_at,
        Some(1_800_000_000 + SEVEN_DAYS.as_secs() as i64)
    );
    assert_eq!(expired.money.released, expired.money.authorized);
    let history = ledger.history(ACCOUNT, &held).await.expect("history");
    let last = history.last().expect("entries");
    assert_eq!(last.event_type, "charge.expired");
    assert_eq!(last.request.actor, "expiry sweep");
    assert!(is_expired_refusal(
        ledger
            .capture_omise_charge(
                ACCOUNT,
                &held,
                CaptureOmiseCharge::default(),
                RequestMeta::library()
            )
            .await
    ));
    assert!(is_expired_refusal(
        ledger
            .reverse_charge(ACCOUNT, &held, RequestMeta::library())
            .await
    ));
    // A captured charge never expires; one created later is not due yet.
    let paid = ledger.get_charge(ACCOUNT, &captured).await.expect("read");
    assert_eq!(
        (paid.lifecycle, paid.expired_at),
        (Lifecycle::Captured, None)
    );
    let pending = ledger.get_charge(ACCOUNT, &late).await.expect("read");
    assert_eq!(
        (pending.lifecycle, pending.expired_at),
        (Lifecycle::Authorized, None)
    );
    clock.advance(SEVEN_DAYS);
    assert_eq!(sweep().await.expect("a sweep"), 1);
    ledger.close().await.expect("close");
}

async fn omise_call(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Value,
) -> common::server::Reply {
    let body = if body.is_null() {
        OmiseBody::None
    } else {
        OmiseBody::Json(body)
    };
    server.omise(method, path, body, OMISE_SECRET_KEY).await
}

async fn a_server_expires_uncaptured_authorizations_on_its_own() {
    let directory = tempfile::tempdir().expect("tempdir");
    let data = directory.path().join("data");
    let args = [
        "--omise-authorization-lifetime-secs",
        "1",
        "--expiry-sweep-ms",
        "100",
    ];
    let keys = [OMISE_SECRET_KEY];
    let mut server = TestServer::start_with_args(&data, &keys, &args);
    let token = server.omise_token("4242424242424242").await;
    let held = omise_call(
        &server,
        "POST",
        "/charges",
        json!({"amount": 100000, "currency": "thb", "card": token["id"], "capture": false}),
    )
    .await;
    assert_eq!(held.status, 200, "{}", held.body);
    let id = held.body["id"].as_str().unwrap().to_string();
    assert_eq!(held.body["expired"], false);
    let token = server.omise_token("4242424242424242").await;
    let paid = omise_call(
        &server,
        "POST",
        "/charges",
        json!({"amount": 100000, "currency": "thb", "card": token["id"]}),
    )
    .await;
    assert_eq!(paid.status, 200, "{}", paid.body);

    // The sweep runs every 100 ms; the authorization is due a second after creation.
    let mut charge = Value::Null;
    for _ in 0..100 {
        charge = omise_call(&server, "GET", &format!("/charges/{id}"), Value::Null)
            .await
            .body;
        if charge["status"] == "expired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(charge["status"], "expired", "{charge}");
    assert_eq!(charge["expired"], true);
    assert_eq!(charge["reversed"], false);
    assert_eq!(charge["capturable"], false);
    assert!(charge["expired_at"].is_string(), "{charge}");
    assert_eq!(charge["expires_at"], held.body["expires_at"]);
    let capture = omise_call(
        &server,
        "POST",
        &format!("/charges/{id}/capture"),
        Value::Null,
    )
    .await;
    assert_eq!(capture.status, 400, "{}", capture.body);
    assert_eq!(capture.body["code"], "expired_charge");
    assert_eq!(capture.body["message"], "charge expired");
    let events = omise_call(
        &server,
        "GET",
        &format!("/charges/{id}/events"),
        Value::Null,
    )
    .await
    .body;
    let event_keys: Vec<&str> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["key"].as_str().unwrap())
        .collect();
    assert_eq!(event_keys, ["charge.create", "charge.expire"]);
    let search = omise_call(
        &server,
        "GET",
        "/search?scope=charge&filters[status]=expired",
        Value::Null,
    )
    .await
    .body;
    assert_eq!(search["total"], 1);
    // A captured charge does not expire.
    let paid_now = omise_call(
        &server,
        "GET",
        &format!("/charges/{}", paid.body["id"].as_str().unwrap()),
        Value::Null,
    )
    .await
    .body;
    assert_eq!(
        (paid_now["status"].as_str(), paid_now["expired"].as_bool()),
        (Some("successful"), Some(false))
    );

    assert!(server.stop());
    let (sound, report) = verify_data_directory(&data);
    assert!(sound, "{report}");
    let server = TestServer::start_with_args(&data, &keys, &args);
    let after = omise_call(&server, "GET", &format!("/charges/{id}"), Value::Null)
        .await
        .body;
    assert_eq!(after, charge);
}

on_both_backends!(
    authorizations_expire_when_due_and_are_then_refused,
    a_server_expires_uncaptured_authorizations_on_its_own,
);

//! The stored format v1 of Omise customers and authorization expiry, pinned as `stored_format.rs` pins the older events: `fixtures/omise_customers_v1.jsonl` holds `customer.created` with a saved card, `token.attached`, `customer.updated` (a card added, the default moved, email and metadata), a charge paid with a customer's saved card, a charge with a non-default `expires_at`, and `charge.expired`; `omise_customers_v1_states.json` holds what each stream folds to.
//!
//! Written through the real `Ledger`: `CHARGELEDGER_WRITE_FIXTURES=1 cargo test --release --test
//! stored_format_customers -- --ignored write_the_customers_fixture`. Never regenerated once
//! checked in: that would unpin the bytes it guards.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chargeledger::chain::{ChainVerifier, seal_encoded};
use chargeledger::clock::ManualClock;
use chargeledger::domain::omise::{
    CreateOmiseCharge, CreateOmiseCustomer, CreateToken, UpdateOmiseCustomer,
};
use chargeledger::domain::{Metadata, fold};
use chargeledger::ledger::LedgerOptions;
use chargeledger::{EventPayload, Ledger, RecordedEvent, RequestMeta};
use serde_json::{Value, json};
use time::OffsetDateTime;

const LOG: &str = include_str!("fixtures/omise_customers_v1.jsonl");
const STATES: &str = include_str!("fixtures/omise_customers_v1_states.json");
const ACCOUNT: &str = "acct_test_omise_customers_shop";

fn events() -> Vec<RecordedEvent> {
    LOG.lines()
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("line {}: not a v1 event: {error}", index + 1))
        })
        .collect()
}

/// Each stream of the log folded on its own, as JSON, by stream id.
fn folded_states(events: &[RecordedEvent]) -> BTreeMap<String, Value> {
    let mut streams: BTreeMap<String, Vec<EventPayload>> = BTreeMap::new();
    for event in events {
        streams
            .entry(event.body.stream_id.clone())
            .or_default()
            .push(event.body.payload.clone());
    }
    streams
        .into_iter()
        .map(|(stream_id, payloads)| {
            let state = fold(payloads.iter())
                .expect("every stream folds")
                .expect("a stream has events");
            (stream_id, state.to_json())
        })
        .collect()
}

#[test]
fn the_log_round_trips_byte_for_byte_and_its_chain_verifies() {
    let events = events();
    let mut verifier = ChainVerifier::from_genesis();
    for (index, (line, event)) in LOG.lines().zip(&events).enumerate() {
        assert_eq!(event.body.schema_version, 1, "line {}", index + 1);
        assert_eq!(
            serde_json::to_string(event).expect("encode"),
            line,
            "line {}: re-encoding changed the bytes",
            index + 1
        );
        let (sealed, stored) = seal_encoded(event.body.clone());
        assert_eq!(String::from_utf8(stored).expect("utf-8"), line);
        assert_eq!(sealed.hash, event.hash, "line {}", index + 1);
        verifier
            .check(event)
            .unwrap_or_else(|fault| panic!("line {}: {fault}", index + 1));
    }
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| event.body.payload.event_type())
        .collect();
    for kind in [
        "token.created",
        "token.attached",
        "customer.created",
        "customer.updated",
        "charge.created",
        "charge.expired",
    ] {
        assert!(
            kinds.contains(&kind),
            "the log holds a {kind} event: {kinds:?}"
        );
    }
    assert!(!LOG.contains("4242424242424242"), "no card number is kept");
}

#[test]
fn the_log_folds_to_the_pinned_states() {
    let pinned: BTreeMap<String, Value> =
        serde_json::from_str(STATES).expect("the pinned states are JSON");
    assert_eq!(folded_states(&events()), pinned);
    let customer = pinned
        .values()
        .find(|state| state["object"] == "customer")
        .expect("a customer");
    assert_eq!(customer["cards"].as_array().map(Vec::len), Some(2));
    assert_eq!(customer["default_card"], customer["cards"][1]["card"]["id"]);
    let expired = pinned
        .values()
        .find(|state| !state["expired_at"].is_null())
        .expect("an expired charge");
    assert_eq!(expired["lifecycle"], "reversed");
    let on_card = pinned
        .values()
        .find(|state| state["customer"] == customer["id"])
        .expect("a charge on the customer's card");
    assert_eq!(
        on_card["instrument"]["card"]["id"],
        customer["default_card"]
    );
}

#[tokio::test]
async fn the_log_imports_verifies_and_exports_the_same_bytes() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(directory.path().join("data"))
        .await
        .expect("open");
    let imported = ledger
        .import(&mut LOG.as_bytes(), &|_, _| {})
        .await
        .expect("import");
    assert_eq!(imported, LOG.lines().count() as u64);
    assert!(ledger.verify(&|_, _| {}).await.expect("verify").is_sound());
    let mut exported = Vec::new();
    ledger
        .export(&mut exported, &|_, _| {})
        .await
        .expect("export");
    assert!(
        exported == LOG.as_bytes(),
        "export after import changed the bytes"
    );
    let pinned: BTreeMap<String, Value> = serde_json::from_str(STATES).expect("json");
    for (stream_id, state) in pinned {
        let stored = ledger
            .store()
            .load(ACCOUNT, &stream_id)
            .await
            .expect("load")
            .expect("a projection");
        assert_eq!(stored.projection.to_json(), state, "{stream_id}");
    }
    ledger.close().await.expect("close");
}

/// Today's code, through the same operations, writes events of the pinned shape.
#[tokio::test]
async fn todays_events_have_the_shape_the_fixture_pins() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (log, _) = generate(&directory.path().join("data")).await;
    common::assert_same_shapes(&log, LOG, "omise_customers_v1.jsonl");
}

#[tokio::test]
#[ignore = "writes the customers fixture; run with CHARGELEDGER_WRITE_FIXTURES=1"]
async fn write_the_customers_fixture() {
    assert_eq!(
        std::env::var("CHARGELEDGER_WRITE_FIXTURES").as_deref(),
        Ok("1"),
        "set CHARGELEDGER_WRITE_FIXTURES=1 to overwrite tests/fixtures/omise_customers_v1*"
    );
    let directory = tempfile::tempdir().expect("tempdir");
    let (log, states) = generate(&directory.path().join("data")).await;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::write(fixtures.join("omise_customers_v1.jsonl"), log).expect("write log");
    let states = serde_json::to_string_pretty(&states).expect("json") + "\n";
    std::fs::write(fixtures.join("omise_customers_v1_states.json"), states).expect("write states");
}

/// Run the operations through a real `Ledger` on a manual clock in a fresh store at `path`;
/// return the exported log and what each stream folds to.
async fn generate(path: &Path) -> (String, BTreeMap<String, Value>) {
    let start = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a moment");
    let clock = Arc::new(ManualClock::starting_at(start));
    let options = LedgerOptions {
        clock: clock.clone(),
        ..LedgerOptions::default()
    };
    let ledger = Ledger::open_with(path, options).await.expect("open");
    let token = |name: &str, number: &str| CreateToken {
        name: Some(name.into()),
        number: Some(number.into()),
        expiration_month: Some(10),
        expiration_year: Some(2099),
        security_code: Some("123".into()),
        city: Some("Bangkok".into()),
        postal_code: Some("10320".into()),
        country: Some("TH".into()),
        ..CreateToken::default()
    };
    let metadata = |value: Value| -> Metadata {
        let Value::Object(fields) = value else {
            panic!("metadata is an object")
        };
        fields.into_iter().collect()
    };
    let request = RequestMeta::library;

    let first = ledger
        .create_token(
            ACCOUNT,
            token("Somchai Prasert", "4242424242424242"),
            request(),
        )
        .await
        .expect("token");
    let customer = ledger
        .create_omise_customer(
            ACCOUNT,
            CreateOmiseCustomer {
                email: Some("somchai@example.com".into()),
                description: Some("VIP".into()),
                metadata: metadata(json!({"tier": "gold"})),
                card: Some(first.id.clone()),
            },
            request(),
        )
        .await
        .expect("customer");
    let second = ledger
        .create_token(
            ACCOUNT,
            token("Somchai Prasert", "5555555555554444"),
            request(),
        )
        .await
        .expect("token");
    ledger
        .update_omise_customer(
            ACCOUNT,
            &customer.id,
            UpdateOmiseCustomer {
                email: Some("somchai@shop.example".into()),
                metadata: Some(metadata(json!({"tier": "platinum"}))),
                card: Some(second.id.clone()),
                default_card: Some(second.card.id.clone()),
                ..UpdateOmiseCustomer::default()
            },
            request(),
        )
        .await
        .expect("update");
    let mut on_customer = CreateOmiseCharge::with_token(150_000, "thb", "");
    on_customer.card = None;
    on_customer.customer = Some(customer.id.clone());
    ledger
        .create_omise_charge(ACCOUNT, on_customer, request())
        .await
        .expect("a charge on the customer's card");

    // An authorization held for an hour instead of 7 days, left to expire.
    let short = ledger
        .clone()
        .with_omise_authorization_lifetime(Duration::from_secs(3600));
    let third = short
        .create_token(
            ACCOUNT,
            token("Malee Suksan", "4242424242424242"),
            request(),
        )
        .await
        .expect("token");
    let mut held = CreateOmiseCharge::with_token(200_000, "thb", &third.id);
    held.capture = false;
    short
        .create_omise_charge(ACCOUNT, held, request())
        .await
        .expect("an authorization");
    clock.advance(Duration::from_secs(3600));
    let expired = short
        .expire_due_authorizations(ACCOUNT, RequestMeta::library().with_actor("expiry sweep"))
        .await
        .expect("a sweep");
    assert_eq!(expired, 1);

    let mut log = Vec::new();
    ledger.export(&mut log, &|_, _| {}).await.expect("export");
    ledger.close().await.expect("close");
    let log = String::from_utf8(log).expect("utf-8");
    let events: Vec<RecordedEvent> = log
        .lines()
        .map(|line| serde_json::from_str(line).expect("an event"))
        .collect();
    let states = folded_states(&events);
    (log, states)
}

//! The stored event format v1 is a compatibility boundary: a checked-in log must decode, re-encode
//! byte for byte, keep its hashes, import into a fresh store that verifies and exports the same
//! bytes, and fold to the same charges with every future build.
//!
//! Two logs are pinned, each checked by the same tests:
//! - `fixtures/events_v1.jsonl` (with `charge_v1.json`): the Stripe dialect's events (customer,
//!   charge created, updated, captured, refunded).
//! - `fixtures/omise_events_v1.jsonl` (with `omise_charges_v1.json`): the Omise dialect's events
//!   (token created and used, charge created with its `omise` creation, updated by a PATCH,
//!   captured with `captured_at`, reversed). Written by `generate_omise_log` below through the
//!   real `Ledger`: `CHARGELEDGER_WRITE_FIXTURES=1 cargo test --release --test stored_format --
//!   --ignored write_the_omise_fixture`. A pinned log is never regenerated once checked in (that
//!   would unpin the bytes it guards); a new kind of event gets a new fixture file.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use chargeledger::chain::{ChainVerifier, seal_encoded};
use chargeledger::domain::omise::{
    CaptureOmiseCharge, CreateOmiseCharge, CreateToken, UpdateOmiseCharge,
};
use chargeledger::domain::{Instrument, Lifecycle, Metadata, Origin, Projection, fold};
use chargeledger::server::stripe::charge_object::charge_object;
use chargeledger::{ChargeState, EventPayload, Ledger, RecordedEvent, RequestMeta};
use serde_json::{Value, json};

/// A checked-in log and the charges its charge streams fold to.
struct Fixture {
    name: &'static str,
    log: &'static str,
    /// One charge, or an array of them, as the layout-2 projection stored it when the log was
    /// pinned: Stripe's charge object, plus an `omise` part on Omise charges.
    charges: &'static str,
}

const FIXTURES: [Fixture; 2] = [
    Fixture {
        name: "events_v1.jsonl",
        log: include_str!("fixtures/events_v1.jsonl"),
        charges: include_str!("fixtures/charge_v1.json"),
    },
    Fixture {
        name: "omise_events_v1.jsonl",
        log: include_str!("fixtures/omise_events_v1.jsonl"),
        charges: include_str!("fixtures/omise_charges_v1.json"),
    },
];

const OMISE: &Fixture = &FIXTURES[1];
const OMISE_ACCOUNT: &str = "acct_test_omise_embedded_shop";

impl Fixture {
    fn events(&self) -> Vec<RecordedEvent> {
        self.log
            .lines()
            .enumerate()
            .map(|(index, line)| {
                serde_json::from_str(line).unwrap_or_else(|error| {
                    panic!("{} line {}: not a v1 event: {error}", self.name, index + 1)
                })
            })
            .collect()
    }

    fn expected_charges(&self) -> Vec<Value> {
        match serde_json::from_str(self.charges).expect("fixture charges are JSON") {
            Value::Array(charges) => charges,
            charge => vec![charge],
        }
    }

    /// Each charge stream of the log folded on its own, by charge id.
    fn folded_charges(&self) -> BTreeMap<String, ChargeState> {
        let mut streams: BTreeMap<String, Vec<EventPayload>> = BTreeMap::new();
        for event in self.events() {
            streams
                .entry(event.body.stream_id.clone())
                .or_default()
                .push(event.body.payload);
        }
        streams
            .into_iter()
            .filter_map(|(stream_id, payloads)| {
                match fold(payloads.iter()).expect("every stream folds") {
                    Some(Projection::Charge(charge)) => Some((stream_id, *charge)),
                    _ => None,
                }
            })
            .collect()
    }
}

/// A folded charge agrees with what the layout-2 projection recorded for it: Stripe's charge
/// object field for field, and for Omise charges the `omise` part (vault card, `capture`,
/// `return_uri`, `ip`, `paid_at`, `reversed_at`) and the money and text fields Omise shows.
fn assert_agrees_with_layout_2(charge: &ChargeState, recorded: &Value, context: &str) {
    let Some(omise) = recorded.get("omise") else {
        let rendered = serde_json::to_value(charge_object(charge)).expect("json");
        assert_eq!(&rendered, recorded, "{context}");
        return;
    };
    let details = charge.omise_details().expect("an Omise charge");
    let Instrument::VaultCard { card, token } = &charge.instrument else {
        panic!("{context}: an Omise charge is paid with a vault card")
    };
    let shown = json!({
        "id": charge.id,
        "amount": charge.money.authorized,
        "amount_captured": charge.money.captured,
        "amount_refunded": charge.money.refunded,
        "captured": charge.is_captured(),
        "balance_transaction": charge.transaction,
        "created": charge.created,
        "currency": charge.currency,
        "customer": charge.customer,
        "description": charge.description,
        "livemode": charge.livemode,
        "metadata": charge.metadata,
        "payment_method": card.id,
        "omise": {
            "card": card,
            "return_uri": details.return_uri,
            "ip": details.ip,
            "capture": details.capture,
            "paid_at": charge.captured_at,
            "reversed_at": charge.reversed_at,
        },
    });
    for (field, value) in shown.as_object().expect("an object") {
        let recorded_value = if field == "omise" {
            omise
        } else {
            &recorded[field]
        };
        assert_eq!(value, recorded_value, "{context}: {field}");
    }
    assert!(token.starts_with("tokn_"), "{context}: paid with a token");
}

#[test]
fn version_1_events_round_trip_byte_for_byte() {
    for fixture in &FIXTURES {
        for (index, (line, event)) in fixture.log.lines().zip(fixture.events()).enumerate() {
            assert_eq!(
                event.body.schema_version,
                1,
                "{} line {}",
                fixture.name,
                index + 1
            );
            assert_eq!(
                serde_json::to_string(&event).expect("encode"),
                line,
                "{} line {}: re-encoding changed the bytes",
                fixture.name,
                index + 1
            );
            // The writer seals and stores with one encoding of the body; what it stores must be
            // these same bytes, and their hash the sealed one.
            let (sealed, stored) = seal_encoded(event.body.clone());
            assert_eq!(
                String::from_utf8(stored).expect("utf-8"),
                line,
                "{} line {}: the writer's stored form differs from the event's JSON",
                fixture.name,
                index + 1
            );
            assert_eq!(
                sealed.hash,
                event.hash,
                "{} line {}",
                fixture.name,
                index + 1
            );
        }
    }
}

#[test]
fn version_1_chains_still_verify() {
    for fixture in &FIXTURES {
        let mut verifier = ChainVerifier::from_genesis();
        let events = fixture.events();
        for event in &events {
            verifier.check(event).unwrap_or_else(|fault| {
                panic!(
                    "{}: the stored hashes no longer match: {fault}",
                    fixture.name
                )
            });
        }
        assert!(events.len() >= 5, "{} is a real log", fixture.name);
        assert_eq!(
            verifier.last_sequence(),
            events.len() as u64,
            "{}",
            fixture.name
        );
    }
}

#[test]
fn version_1_events_fold_to_the_recorded_charges() {
    for fixture in &FIXTURES {
        let folded = fixture.folded_charges();
        let expected = fixture.expected_charges();
        assert_eq!(
            folded.len(),
            expected.len(),
            "{}: one recorded charge per charge stream",
            fixture.name
        );
        for expected in expected {
            let id = expected["id"].as_str().expect("a charge id");
            let charge = folded
                .get(id)
                .unwrap_or_else(|| panic!("{}: no stream for charge {id}", fixture.name));
            assert_agrees_with_layout_2(
                charge,
                &expected,
                &format!("{}: charge {id}", fixture.name),
            );
        }
    }
}

#[tokio::test]
async fn version_1_logs_import_verify_and_export_the_same_bytes() {
    for fixture in &FIXTURES {
        let directory = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open(directory.path().join("data"))
            .await
            .expect("open");
        let imported = ledger
            .import(&mut fixture.log.as_bytes(), &|_, _| {})
            .await
            .unwrap_or_else(|error| panic!("{}: import refused: {error}", fixture.name));
        assert_eq!(
            imported,
            fixture.log.lines().count() as u64,
            "{}",
            fixture.name
        );
        let report = ledger.verify(&|_, _| {}).await.expect("verify");
        assert!(
            report.is_sound(),
            "{}: {:?}",
            fixture.name,
            report.first_fault
        );
        let mut exported = Vec::new();
        ledger
            .export(&mut exported, &|_, _| {})
            .await
            .expect("export");
        assert!(
            exported == fixture.log.as_bytes(),
            "{}: export after import changed the bytes",
            fixture.name
        );
        let account = fixture.events()[0].body.account.clone();
        for expected in fixture.expected_charges() {
            let id = expected["id"].as_str().expect("a charge id");
            let charge = ledger.get_charge(&account, id).await.expect("get charge");
            assert_agrees_with_layout_2(
                &charge,
                &expected,
                &format!("{}: imported projection of {id}", fixture.name),
            );
        }
        ledger.close().await.expect("close");
    }
}

#[test]
fn the_omise_log_holds_every_omise_event() {
    let events = OMISE.events();
    let has = |wanted: &dyn Fn(&EventPayload) -> bool| {
        events.iter().any(|event| wanted(&event.body.payload))
    };
    assert!(has(&|payload| matches!(
        payload,
        EventPayload::TokenCreated(_)
    )));
    assert!(has(&|payload| matches!(
        payload,
        EventPayload::TokenUsed(_)
    )));
    assert!(has(&|payload| matches!(
        payload,
        EventPayload::ChargeCreated(created)
            if created.omise.as_ref().is_some_and(|omise| omise.ip.is_some() && omise.return_uri.is_some())
    )));
    assert!(has(&|payload| matches!(
        payload,
        EventPayload::ChargeUpdated(_)
    )));
    assert!(has(&|payload| matches!(
        payload,
        EventPayload::ChargeCaptured(captured) if captured.captured_at.is_some()
    )));
    assert!(has(&|payload| matches!(
        payload,
        EventPayload::ChargeReversed(_)
    )));
    // The vault keeps no card number: the log never shows the one the tokens were made from.
    assert!(!OMISE.log.contains("4242424242424242"));
}

#[test]
fn the_omise_log_folds_to_a_captured_and_a_reversed_charge_and_spent_tokens() {
    let charges: Vec<ChargeState> = OMISE.folded_charges().into_values().collect();
    let captured = charges
        .iter()
        .find(|charge| charge.is_captured())
        .expect("a captured charge");
    assert_eq!(captured.origin(), Origin::Omise);
    assert_eq!(
        (captured.money.authorized, captured.money.captured),
        (2500, 1500)
    );
    assert_eq!(captured.money.released, 1000, "the rest is released");
    assert!(captured.refunds.is_empty(), "and no refund shows it");
    assert!(captured.captured_at.is_some() && captured.reversed_at.is_none());
    assert_eq!(
        captured.description.as_deref(),
        Some("Order #2001, gift wrapped")
    );
    assert_eq!(
        Value::Object(captured.metadata.clone().into_iter().collect()),
        json!({"order": {"id": 2001, "lines": [1, 2]}, "gift": true})
    );

    let reversed = charges
        .iter()
        .find(|charge| !charge.is_captured())
        .expect("an uncaptured charge");
    assert_eq!(reversed.lifecycle, Lifecycle::Reversed);
    assert!(reversed.reversed_at.is_some() && reversed.captured_at.is_none());
    assert_eq!(reversed.money.captured, 0);
    assert_eq!(reversed.money.refunded, 0, "a reverse refunds nothing");
    assert_eq!(
        Value::Object(reversed.metadata.clone().into_iter().collect()),
        json!({"order": {"id": 2002}})
    );

    let mut tokens = BTreeMap::new();
    for event in OMISE.events() {
        tokens
            .entry(event.body.stream_id.clone())
            .or_insert_with(Vec::new)
            .push(event.body.payload);
    }
    let spent: Vec<String> = tokens
        .values()
        .filter_map(|payloads| match fold(payloads.iter()).expect("fold") {
            Some(Projection::Token(token)) => Some(token.charge.clone().expect("token spent")),
            _ => None,
        })
        .collect();
    assert_eq!(spent.len(), 2, "two tokens, each spent");
    assert!(spent.contains(&captured.id) && spent.contains(&reversed.id));
}

/// Today's code, run through the same operations, writes events of the shape the Omise fixture
/// pins: a field added to (or renamed in) these events shows up here, so the fixture is never
/// silently behind what the ledger stores.
#[tokio::test]
async fn todays_omise_events_have_the_shape_the_fixture_pins() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (log, _) = generate_omise_log(&directory.path().join("data")).await;
    common::assert_same_shapes(&log, OMISE.log, OMISE.name);
}

/// Writes `fixtures/omise_events_v1.jsonl` and `fixtures/omise_charges_v1.json`. Only for a new
/// fixture: overwriting a checked-in one unpins its bytes.
#[tokio::test]
#[ignore = "writes the Omise fixture; run with CHARGELEDGER_WRITE_FIXTURES=1"]
async fn write_the_omise_fixture() {
    assert_eq!(
        std::env::var("CHARGELEDGER_WRITE_FIXTURES").as_deref(),
        Ok("1"),
        "set CHARGELEDGER_WRITE_FIXTURES=1 to overwrite tests/fixtures/omise_*"
    );
    let directory = tempfile::tempdir().expect("tempdir");
    let (log, charges) = generate_omise_log(&directory.path().join("data")).await;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::write(fixtures.join("omise_events_v1.jsonl"), log).expect("write log");
    let charges = serde_json::to_string_pretty(&charges).expect("json") + "\n";
    std::fs::write(fixtures.join("omise_charges_v1.json"), charges).expect("write charges");
}

/// Run the Omise operations through the real `Ledger` in a fresh store at `path`; return the
/// exported log and the charges as the ledger then shows them.
async fn generate_omise_log(path: &Path) -> (String, Vec<ChargeState>) {
    let ledger = Ledger::open(path).await.expect("open");
    let account = OMISE_ACCOUNT;
    let token = |name: &str| CreateToken {
        name: Some(name.into()),
        number: Some("4242424242424242".into()),
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

    // Authorized, updated by a PATCH, then captured in part.
    let first_token = ledger
        .create_token(account, token("Somchai Prasert"), RequestMeta::library())
        .await
        .expect("token");
    let mut create = CreateOmiseCharge::with_token(2500, "thb", &first_token.id);
    create.capture = false;
    create.description = Some("Order #2001".into());
    create.metadata = metadata(json!({"order": {"id": 2001}}));
    create.return_uri = Some("https://shop.example/orders/2001/complete".into());
    create.ip = Some("203.0.113.7".into());
    let captured = ledger
        .create_omise_charge(
            account,
            create,
            RequestMeta::library().with_idempotency_key("order-2001-create"),
        )
        .await
        .expect("charge");
    ledger
        .update_omise_charge(
            account,
            &captured.id,
            UpdateOmiseCharge {
                description: Some("Order #2001, gift wrapped".into()),
                metadata: Some(metadata(
                    json!({"order": {"id": 2001, "lines": [1, 2]}, "gift": true}),
                )),
            },
            RequestMeta::library(),
        )
        .await
        .expect("update");
    let captured = ledger
        .capture_omise_charge(
            account,
            &captured.id,
            CaptureOmiseCharge {
                capture_amount: Some(1500),
            },
            RequestMeta::library(),
        )
        .await
        .expect("capture");

    // Authorized, updated, then reversed.
    let second_token = ledger
        .create_token(account, token("Malee Suksan"), RequestMeta::library())
        .await
        .expect("token");
    let mut create = CreateOmiseCharge::with_token(4000, "thb", &second_token.id);
    create.capture = false;
    create.return_uri = Some("https://shop.example/orders/2002/complete".into());
    create.ip = Some("203.0.113.8".into());
    let reversed = ledger
        .create_omise_charge(account, create, RequestMeta::library())
        .await
        .expect("charge");
    ledger
        .update_omise_charge(
            account,
            &reversed.id,
            UpdateOmiseCharge {
                description: None,
                metadata: Some(metadata(json!({"order": {"id": 2002}}))),
            },
            RequestMeta::library(),
        )
        .await
        .expect("update");
    let reversed = ledger
        .reverse_charge(account, &reversed.id, RequestMeta::library())
        .await
        .expect("reverse");

    let mut log = Vec::new();
    ledger.export(&mut log, &|_, _| {}).await.expect("export");
    ledger.close().await.expect("close");
    (
        String::from_utf8(log).expect("UTF-8"),
        vec![captured, reversed],
    )
}

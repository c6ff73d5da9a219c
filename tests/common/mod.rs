//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod backend;
pub mod postgres;
pub mod python;
pub mod raw_http;
pub mod receiver;
pub mod server;

use chargeledger::domain::{ChargeState, DecisionContext, FreshIds};
use chargeledger::{CreateCharge, Ledger, RequestMeta, UpdateCharge};
use serde_json::{Value, json};

pub const ACCOUNT: &str = "sk_test_account_one";
pub const OTHER_ACCOUNT: &str = "sk_test_account_two";

pub fn context() -> DecisionContext {
    DecisionContext {
        now_unix: 1_795_000_000,
        livemode: false,
        ids: FreshIds {
            charge: "ch_test000000000000000000001".into(),
            customer: "cus_test0000000001".into(),
            payment_method: "card_test00000000000000001".into(),
            balance_transaction: "txn_test00000000000000001".into(),
            refund: "re_test000000000000000001".into(),
        },
    }
}

/// A freshly created, captured $20 charge, folded from its creation event.
pub fn captured_charge() -> ChargeState {
    charge_from(CreateCharge::new(2000, "usd").source("tok_visa"))
}

/// An authorized, uncaptured $20 charge.
pub fn uncaptured_charge() -> ChargeState {
    charge_from(
        CreateCharge::new(2000, "usd")
            .source("tok_visa")
            .capture(false),
    )
}

pub fn charge_from(command: CreateCharge) -> ChargeState {
    let payload = chargeledger::domain::stripe::decide::create_charge(&command, None, &context())
        .expect("valid creation");
    match chargeledger::domain::apply(None, &payload).expect("creation folds") {
        chargeledger::domain::Projection::Charge(charge) => *charge,
        other => panic!("not a charge: {other:?}"),
    }
}

/// The test's ledger in `directory`, on the current backend (see `backend`).
pub async fn open_ledger(directory: &tempfile::TempDir) -> Ledger {
    backend::open_ledger_at(
        &directory.path().join("data"),
        chargeledger::ledger::LedgerOptions::default(),
    )
    .await
}

pub async fn create_test_charge(ledger: &Ledger, account: &str) -> ChargeState {
    ledger
        .create_charge(
            account,
            CreateCharge::new(2000, "usd").source("tok_visa"),
            RequestMeta::library(),
        )
        .await
        .expect("create charge")
}

/// Set metadata `key` to 0, 1, … `updates - 1` on a charge, one update each.
pub async fn update_metadata_repeatedly(
    ledger: &Ledger,
    charge_id: &str,
    key: &str,
    updates: usize,
) {
    for index in 0..updates {
        ledger
            .update_charge(
                ACCOUNT,
                charge_id,
                UpdateCharge::new().metadata_set(key, index.to_string()),
                RequestMeta::library(),
            )
            .await
            .expect("update");
    }
}

/// A JSON value's structure with scalars replaced by their type: what stays the same between two
/// runs of a fixture generator (ids, times and hashes differ).
pub fn json_shape(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, value)| (name.clone(), json_shape(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(json_shape).collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => Value::Null,
    }
}

/// Assert that each line of `fresh` (a log today's code wrote) has the shape of the same line
/// of `pinned` (a checked-in fixture).
pub fn assert_same_shapes(fresh: &str, pinned: &str, fixture: &str) {
    let shapes = |log: &str| -> Vec<Value> {
        log.lines()
            .map(|line| json_shape(&serde_json::from_str(line).expect("json")))
            .collect()
    };
    let (fresh, pinned) = (shapes(fresh), shapes(pinned));
    assert_eq!(fresh.len(), pinned.len(), "same number of events");
    for (index, (fresh, pinned)) in fresh.iter().zip(&pinned).enumerate() {
        assert_eq!(
            fresh,
            pinned,
            "event {}: today's code writes a different shape than {fixture}; add a new fixture for it",
            index + 1
        );
    }
}

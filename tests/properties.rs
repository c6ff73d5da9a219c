//! Property tests: for random command sequences (Stripe's on Stripe charges, Omise's on Omise
//! charges), the stored projection equals the fold of the events and `charge_at_version(n)` equals
//! the state after n events, before and after a reopen. And a charge refuses the other dialect's
//! commands: the caller gets a refusal (never a 500-style internal error), nothing is appended,
//! and the ledger still verifies.

mod common;

use std::path::Path;

use chargeledger::domain::omise::{
    CaptureOmiseCharge, CreateOmiseCharge, CreateToken, UpdateOmiseCharge,
};
use chargeledger::domain::{Metadata, OmiseRefusal, Projection, fold};
use chargeledger::ledger::{Failure, Refusal};
use chargeledger::{
    Address, CaptureCharge, ChargeState, CreateCharge, Ledger, LedgerError, RefundCharge,
    RequestMeta, ShippingInput, UpdateCharge,
};
use common::ACCOUNT;
use proptest::prelude::*;
use serde_json::json;

#[derive(Debug, Clone)]
enum Operation {
    SetMetadata(usize, String),
    UnsetMetadata(usize),
    UnsetAllMetadata,
    Description(String),
    ReceiptEmail(bool),
    Shipping(Option<bool>),
    FraudReport(&'static str),
    TransferGroup(&'static str),
    Capture(Option<i64>),
    Refund(Option<i64>),
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        (0..4usize, "[a-z]{0,3}").prop_map(|(key, value)| Operation::SetMetadata(key, value)),
        (0..4usize).prop_map(Operation::UnsetMetadata),
        Just(Operation::UnsetAllMetadata),
        "[a-z ]{0,8}".prop_map(Operation::Description),
        any::<bool>().prop_map(Operation::ReceiptEmail),
        proptest::option::of(any::<bool>()).prop_map(Operation::Shipping),
        prop::sample::select(vec!["", "safe", "fraudulent", "unsure"])
            .prop_map(Operation::FraudReport),
        prop::sample::select(vec!["", "group_a", "group_b"]).prop_map(Operation::TransferGroup),
        proptest::option::of(-10..3000i64).prop_map(Operation::Capture),
        proptest::option::of(-10..3000i64).prop_map(Operation::Refund),
    ]
}

async fn perform(
    ledger: &Ledger,
    account: &str,
    charge_id: &str,
    operation: &Operation,
) -> Result<ChargeState, LedgerError> {
    let update = |command: UpdateCharge| {
        ledger.update_charge(account, charge_id, command, RequestMeta::library())
    };
    match operation {
        Operation::SetMetadata(key, value) => {
            update(UpdateCharge::new().metadata_set(format!("key{key}"), value.clone())).await
        }
        Operation::UnsetMetadata(key) => {
            update(UpdateCharge::new().metadata_unset(format!("key{key}"))).await
        }
        Operation::UnsetAllMetadata => update(UpdateCharge::new().metadata_unset_all()).await,
        Operation::Description(text) => update(UpdateCharge::new().description(text.clone())).await,
        Operation::ReceiptEmail(valid) => {
            update(UpdateCharge::new().receipt_email(if *valid {
                "buyer@example.com"
            } else {
                "buyer"
            }))
            .await
        }
        Operation::Shipping(None) => update(UpdateCharge::new().shipping_unset()).await,
        Operation::Shipping(Some(valid)) => {
            let country = if *valid { "US" } else { "Atlantis" };
            let address = Address {
                country: Some(country.into()),
                ..Address::default()
            };
            update(UpdateCharge::new().shipping(ShippingInput::new("Jenny", address))).await
        }
        Operation::FraudReport(report) => {
            update(UpdateCharge::new().fraud_user_report(*report)).await
        }
        Operation::TransferGroup(group) => update(UpdateCharge::new().transfer_group(*group)).await,
        Operation::Capture(amount) => {
            let command = CaptureCharge {
                amount: *amount,
                ..CaptureCharge::default()
            };
            ledger
                .capture_charge(account, charge_id, command, RequestMeta::library())
                .await
        }
        Operation::Refund(amount) => {
            let command = RefundCharge {
                amount: *amount,
                ..RefundCharge::default()
            };
            ledger
                .refund_charge(account, charge_id, command, RequestMeta::library())
                .await
                .map(|refunded| refunded.charge)
        }
    }
}

async fn check_consistency(
    ledger: &Ledger,
    account: &str,
    charge_id: &str,
    states_by_version: &[ChargeState],
) {
    let (current, version) = ledger
        .get_charge_with_version(account, charge_id)
        .await
        .expect("get");
    assert_eq!(version as usize, states_by_version.len());
    let events = ledger
        .charge_events(account, charge_id, None)
        .await
        .expect("events");
    let folded = fold(events.iter().map(|event| &event.body.payload)).expect("fold");
    assert_eq!(
        folded,
        Some(Projection::Charge(Box::new(current.clone()))),
        "projection == fold of events"
    );
    for (index, expected) in states_by_version.iter().enumerate() {
        let at = ledger
            .charge_at_version(account, charge_id, index as u64 + 1)
            .await
            .expect("at version");
        assert_eq!(&at, expected, "charge_at_version({})", index + 1);
    }
    assert_eq!(states_by_version.last(), Some(&current));
}

#[derive(Debug, Clone)]
enum OmiseOperation {
    /// An empty description changes nothing.
    Description(String),
    /// Replace the metadata with `{"key<n>": {"note": value}}`, or with `{}`.
    Metadata(Option<usize>, String),
    /// `None` captures the whole authorization.
    Capture(Option<i64>),
    Reverse,
}

fn omise_operation() -> impl Strategy<Value = OmiseOperation> {
    prop_oneof![
        "[a-z ]{0,8}".prop_map(OmiseOperation::Description),
        (proptest::option::of(0..3usize), "[a-z]{0,3}")
            .prop_map(|(key, value)| OmiseOperation::Metadata(key, value)),
        // Full, partial, zero, negative and too large; repeated, they capture twice.
        proptest::option::of(-10..3000i64).prop_map(OmiseOperation::Capture),
        Just(OmiseOperation::Reverse),
    ]
}

const OMISE_ACCOUNT: &str = "acct_test_omise_properties";
/// Authorized on every Omise charge here (THB's minimum is 2000).
const OMISE_AMOUNT: i64 = 2500;

async fn perform_omise(
    ledger: &Ledger,
    charge_id: &str,
    operation: &OmiseOperation,
) -> Result<ChargeState, LedgerError> {
    let update = |command: UpdateOmiseCharge| {
        ledger.update_omise_charge(OMISE_ACCOUNT, charge_id, command, RequestMeta::library())
    };
    match operation {
        OmiseOperation::Description(text) => {
            update(UpdateOmiseCharge {
                description: Some(text.clone()),
                metadata: None,
            })
            .await
        }
        OmiseOperation::Metadata(key, value) => {
            let mut metadata = Metadata::new();
            if let Some(key) = key {
                metadata.insert(format!("key{key}"), json!({ "note": value }));
            }
            update(UpdateOmiseCharge {
                description: None,
                metadata: Some(metadata),
            })
            .await
        }
        OmiseOperation::Capture(amount) => {
            let command = CaptureOmiseCharge {
                capture_amount: *amount,
            };
            ledger
                .capture_omise_charge(OMISE_ACCOUNT, charge_id, command, RequestMeta::library())
                .await
        }
        OmiseOperation::Reverse => {
            ledger
                .reverse_charge(OMISE_ACCOUNT, charge_id, RequestMeta::library())
                .await
        }
    }
}

/// The refusal Omise's rules give `operation` on `charge`, or `None` if it must succeed.
fn expected_omise_refusal(
    charge: &ChargeState,
    operation: &OmiseOperation,
) -> Option<OmiseRefusal> {
    let reversed = charge.reversed_at.is_some();
    let captured = charge.is_captured();
    let authorized = charge.money.authorized;
    match operation {
        OmiseOperation::Description(_) | OmiseOperation::Metadata(..) => None,
        OmiseOperation::Capture(_) if reversed => Some(OmiseRefusal::CaptureOfReversedCharge),
        OmiseOperation::Capture(_) if captured => Some(OmiseRefusal::AlreadyCaptured),
        OmiseOperation::Capture(Some(amount)) if *amount <= 0 => {
            Some(OmiseRefusal::CaptureAmountNotPositive)
        }
        OmiseOperation::Capture(Some(amount)) if *amount > authorized => {
            Some(OmiseRefusal::CaptureAmountTooLarge {
                requested: *amount,
                authorized,
            })
        }
        OmiseOperation::Capture(_) => None,
        OmiseOperation::Reverse if captured || reversed => Some(OmiseRefusal::ReverseNotAllowed),
        OmiseOperation::Reverse => None,
    }
}

async fn create_omise_charge(ledger: &Ledger, capture: bool) -> ChargeState {
    let token = ledger
        .create_token(
            OMISE_ACCOUNT,
            CreateToken {
                name: Some("Somchai Prasert".into()),
                number: Some("4242424242424242".into()),
                expiration_month: Some(10),
                expiration_year: Some(2099),
                ..CreateToken::default()
            },
            RequestMeta::library(),
        )
        .await
        .expect("token");
    let mut command = CreateOmiseCharge::with_token(OMISE_AMOUNT, "thb", &token.id);
    command.capture = capture;
    ledger
        .create_omise_charge(OMISE_ACCOUNT, command, RequestMeta::library())
        .await
        .expect("create Omise charge")
}

async fn head(ledger: &Ledger) -> Option<u64> {
    ledger
        .store()
        .head()
        .await
        .expect("head")
        .map(|head| head.sequence)
}

/// Keep `states` (the charge after each of its events) up to date with one request's outcome.
fn record(
    states: &mut Vec<ChargeState>,
    appended: bool,
    outcome: Result<ChargeState, LedgerError>,
    operation: &dyn std::fmt::Debug,
) {
    match outcome {
        Ok(charge) if appended => states.push(charge),
        Ok(charge) => assert_eq!(
            Some(&charge),
            states.last(),
            "{operation:?}: a no-op returns the charge unchanged"
        ),
        Err(_) => assert!(
            !appended,
            "{operation:?}: a refused request appends nothing"
        ),
    }
}

/// Check the charge's events against `states` in the open ledger, close it, reopen, check again
/// and verify the whole store.
async fn check_across_reopen(
    ledger: Ledger,
    path: &Path,
    account: &str,
    charge_id: &str,
    states: &[ChargeState],
) {
    check_consistency(&ledger, account, charge_id, states).await;
    ledger.close().await.expect("close");
    drop(ledger);

    let reopened = reopen(path).await;
    check_consistency(&reopened, account, charge_id, states).await;
    let report = reopened.verify(&|_, _| {}).await.expect("verify");
    assert!(report.is_sound(), "{:?}", report.first_fault);
    reopened.close().await.expect("close");
}

/// Open `path` again just after closing it: the store itself waits out sled's lock release.
async fn reopen(path: &Path) -> Ledger {
    Ledger::open(path).await.expect("reopen right after close")
}

/// An error that is the ledger failing rather than refusing the request: a 500 on the wire.
fn is_internal(error: &LedgerError) -> bool {
    matches!(
        error,
        LedgerError::Failed(Failure::CorruptStream { .. })
            | LedgerError::Failed(Failure::CorruptIdempotencyRecord { .. })
            | LedgerError::Refused(Refusal::Contention { .. })
            | LedgerError::Failed(Failure::Store(_))
            | LedgerError::Failed(Failure::Io(_))
    )
}

/// A command of the other dialect must be refused with a refusal, append nothing (the charge's
/// version and the log's head stay), and leave a store that verifies.
async fn assert_refused_and_nothing_appended(
    ledger: &Ledger,
    account: &str,
    charge_id: &str,
    attempt: &dyn std::fmt::Debug,
    outcome: Result<ChargeState, LedgerError>,
    before: (Option<u64>, u64),
) {
    match &outcome {
        Ok(charge) => panic!(
            "{attempt:?} on a charge of the other dialect succeeded (lifecycle {:?}, money {:?})",
            charge.lifecycle, charge.money
        ),
        Err(error) => assert!(
            !is_internal(error),
            "{attempt:?} on a charge of the other dialect failed internally instead of being refused: {error:?}"
        ),
    }
    let (_, version) = ledger
        .get_charge_with_version(account, charge_id)
        .await
        .expect("get");
    assert_eq!(
        (head(ledger).await, version),
        before,
        "{attempt:?}: a refused request appends nothing"
    );
    let report = ledger.verify(&|_, _| {}).await.expect("verify");
    assert!(report.is_sound(), "{attempt:?}: {:?}", report.first_fault);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn projections_equal_the_fold_of_events_across_reopen(
        capture_on_create in any::<bool>(),
        operations in proptest::collection::vec(operation(), 1..24),
    ) {
        runtime().block_on(async {
            let directory = tempfile::tempdir().expect("tempdir");
            let path = directory.path().join("data");
            let ledger = Ledger::open(&path).await.expect("open");
            let created = ledger
                .create_charge(ACCOUNT, CreateCharge::new(2000, "usd").source("tok_visa").capture(capture_on_create), RequestMeta::library())
                .await
                .expect("create");
            let mut states = vec![created.clone()];
            for operation in &operations {
                let head_before = head(&ledger).await;
                let outcome = perform(&ledger, ACCOUNT, &created.id, operation).await;
                let appended = head(&ledger).await != head_before;
                record(&mut states, appended, outcome, operation);
            }
            check_across_reopen(ledger, &path, ACCOUNT, &created.id, &states).await;
        });
    }

    #[test]
    fn omise_projections_equal_the_fold_of_events_across_reopen(
        capture_on_create in any::<bool>(),
        operations in proptest::collection::vec(omise_operation(), 1..16),
    ) {
        runtime().block_on(async {
            let directory = tempfile::tempdir().expect("tempdir");
            let path = directory.path().join("data");
            let ledger = Ledger::open(&path).await.expect("open");
            let created = create_omise_charge(&ledger, capture_on_create).await;
            let mut states = vec![created.clone()];
            for operation in &operations {
                let before = states.last().expect("created").clone();
                let head_before = head(&ledger).await;
                let outcome = perform_omise(&ledger, &created.id, operation).await;
                let appended = head(&ledger).await != head_before;
                match (&outcome, expected_omise_refusal(&before, operation)) {
                    (Err(LedgerError::Refused(Refusal::OmiseRequest(refusal))), Some(expected)) => {
                        assert_eq!(refusal, &expected, "{operation:?} on {before:?}");
                    }
                    (Ok(_), None) => {}
                    (outcome, expected) => {
                        panic!("{operation:?}: expected refusal {expected:?}, got {outcome:?}")
                    }
                }
                if let Ok(charge) = &outcome {
                    if let OmiseOperation::Capture(amount) = operation {
                        assert!(charge.is_captured() && appended, "{operation:?} captures");
                        assert_eq!(charge.money.captured, amount.unwrap_or(OMISE_AMOUNT));
                        assert_eq!(
                            charge.money.released,
                            OMISE_AMOUNT - charge.money.captured,
                            "an Omise capture releases the rest without a refund"
                        );
                        assert!(charge.refunds.is_empty());
                    }
                    if let OmiseOperation::Reverse = operation {
                        assert!(appended && !charge.is_captured(), "{operation:?} reverses");
                        assert_eq!(charge.lifecycle, chargeledger::domain::Lifecycle::Reversed);
                        assert!(charge.reversed_at.is_some());
                    }
                }
                record(&mut states, appended, outcome, operation);
            }
            check_across_reopen(ledger, &path, OMISE_ACCOUNT, &created.id, &states).await;
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Stripe's update, capture and refund on an Omise charge, whatever its state (authorized,
    /// captured, reversed, updated), are refused and append nothing.
    #[test]
    fn stripe_commands_on_omise_charges_are_refused(
        capture_on_create in any::<bool>(),
        history in proptest::collection::vec(omise_operation(), 0..4),
        attempt in operation(),
    ) {
        runtime().block_on(async {
            let directory = tempfile::tempdir().expect("tempdir");
            let ledger = Ledger::open(directory.path().join("data")).await.expect("open");
            let created = create_omise_charge(&ledger, capture_on_create).await;
            for operation in &history {
                let _ = perform_omise(&ledger, &created.id, operation).await;
            }
            let (_, version) = ledger.get_charge_with_version(OMISE_ACCOUNT, &created.id).await.expect("get");
            let before = (head(&ledger).await, version);
            let outcome = perform(&ledger, OMISE_ACCOUNT, &created.id, &attempt).await;
            assert_refused_and_nothing_appended(&ledger, OMISE_ACCOUNT, &created.id, &attempt, outcome, before).await;
            ledger.close().await.expect("close");
        });
    }

    /// Omise's reverse, update and capture on a Stripe charge, whatever its state, are refused and
    /// append nothing.
    #[test]
    fn omise_commands_on_stripe_charges_are_refused(
        capture_on_create in any::<bool>(),
        history in proptest::collection::vec(operation(), 0..4),
        attempt in omise_operation(),
    ) {
        runtime().block_on(async {
            let directory = tempfile::tempdir().expect("tempdir");
            let ledger = Ledger::open(directory.path().join("data")).await.expect("open");
            let created = ledger
                .create_charge(OMISE_ACCOUNT, CreateCharge::new(2000, "usd").source("tok_visa").capture(capture_on_create), RequestMeta::library())
                .await
                .expect("create");
            for operation in &history {
                let _ = perform(&ledger, OMISE_ACCOUNT, &created.id, operation).await;
            }
            let (_, version) = ledger.get_charge_with_version(OMISE_ACCOUNT, &created.id).await.expect("get");
            let before = (head(&ledger).await, version);
            let outcome = perform_omise(&ledger, &created.id, &attempt).await;
            assert_refused_and_nothing_appended(&ledger, OMISE_ACCOUNT, &created.id, &attempt, outcome, before).await;
            ledger.close().await.expect("close");
        });
    }
}

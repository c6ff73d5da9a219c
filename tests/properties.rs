//! Property tests: for random command sequences, the stored projection equals the fold of the
//! events and `charge_at_version(n)` equals the state after n events, before and after a reopen.

mod common;

use chargeledger::domain::{Projection, fold};
use chargeledger::{
    Address, CaptureCharge, Charge, CreateCharge, Ledger, RefundCharge, RequestMeta, ShippingInput,
    UpdateCharge,
};
use common::ACCOUNT;
use proptest::prelude::*;

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

async fn perform(ledger: &Ledger, charge_id: &str, operation: &Operation) -> Option<Charge> {
    let update = |command: UpdateCharge| {
        ledger.update_charge(ACCOUNT, charge_id, command, RequestMeta::library())
    };
    let outcome = match operation {
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
                .capture_charge(ACCOUNT, charge_id, command, RequestMeta::library())
                .await
        }
        Operation::Refund(amount) => {
            let command = RefundCharge {
                amount: *amount,
                ..RefundCharge::default()
            };
            ledger
                .refund_charge(ACCOUNT, charge_id, command, RequestMeta::library())
                .await
                .map(|refunded| refunded.charge)
        }
    };
    outcome.ok()
}

async fn check_consistency(ledger: &Ledger, charge_id: &str, states_by_version: &[Charge]) {
    let (current, version) = ledger
        .get_charge_with_version(ACCOUNT, charge_id)
        .await
        .expect("get");
    assert_eq!(version as usize, states_by_version.len());
    let events = ledger
        .charge_events(ACCOUNT, charge_id, None)
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
            .charge_at_version(ACCOUNT, charge_id, index as u64 + 1)
            .await
            .expect("at version");
        assert_eq!(&at, expected, "charge_at_version({})", index + 1);
    }
    assert_eq!(states_by_version.last(), Some(&current));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn projections_equal_the_fold_of_events_across_reopen(
        capture_on_create in any::<bool>(),
        operations in proptest::collection::vec(operation(), 1..24),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        runtime.block_on(async {
            let directory = tempfile::tempdir().expect("tempdir");
            let path = directory.path().join("data");
            let ledger = Ledger::open(&path).await.expect("open");
            let created = ledger
                .create_charge(ACCOUNT, CreateCharge::new(2000, "usd").source("tok_visa").capture(capture_on_create), RequestMeta::library())
                .await
                .expect("create");
            let mut states = vec![created.clone()];
            for operation in &operations {
                let head_before = ledger.store().head().await.expect("head").map(|head| head.sequence);
                let outcome = perform(&ledger, &created.id, operation).await;
                let head_after = ledger.store().head().await.expect("head").map(|head| head.sequence);
                match outcome {
                    Some(charge) if head_after != head_before => states.push(charge),
                    Some(charge) => assert_eq!(Some(&charge), states.last(), "a no-op returns the charge unchanged"),
                    None => assert_eq!(head_after, head_before, "a refused request appends nothing"),
                }
            }
            check_consistency(&ledger, &created.id, &states).await;
            ledger.close().await.expect("close");
            drop(ledger);

            let reopened = Ledger::open(&path).await.expect("reopen");
            check_consistency(&reopened, &created.id, &states).await;
            let report = reopened.verify(&|_, _| {}).await.expect("verify");
            assert!(report.is_sound(), "{:?}", report.first_fault);
            reopened.close().await.expect("close");
        });
    }
}

//! Concurrent writers: updates of one charge from many tasks are all kept, none lost or rejected.

mod common;

use chargeledger::ledger::Refusal;
use chargeledger::{RequestMeta, UpdateCharge};
use common::{ACCOUNT, create_test_charge, open_ledger};

async fn concurrent_updates_of_one_charge_lose_nothing() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;
    let tasks = 32;
    let updates_per_task = 8;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let ledger = ledger.clone();
        let charge_id = charge.id.clone();
        handles.push(tokio::spawn(async move {
            for update in 0..updates_per_task {
                // Each task owns distinct metadata keys (at most 50 keys fit on a charge).
                let key = format!("t{task}");
                ledger
                    .update_charge(
                        ACCOUNT,
                        &charge_id,
                        UpdateCharge::new().metadata_set(key, update.to_string()),
                        RequestMeta::library(),
                    )
                    .await
                    .expect("no update is rejected");
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
    let (current, version) = ledger
        .get_charge_with_version(ACCOUNT, &charge.id)
        .await
        .expect("get");
    assert_eq!(
        version,
        1 + tasks * updates_per_task,
        "every update is one version"
    );
    for task in 0..tasks {
        assert_eq!(
            current.metadata[&format!("t{task}")],
            (updates_per_task - 1).to_string()
        );
    }
    let history = ledger.history(ACCOUNT, &charge.id).await.expect("history");
    let versions: Vec<u64> = history.iter().map(|entry| entry.version).collect();
    assert_eq!(
        versions,
        (1..=version).collect::<Vec<u64>>(),
        "gap-free versions"
    );
    let report = ledger.verify(&|_, _| {}).await.expect("verify");
    assert!(report.is_sound());
}

async fn concurrent_writers_on_many_charges_get_gap_free_global_sequences() {
    let directory = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(&directory).await;
    let mut handles = Vec::new();
    for _ in 0..16 {
        let ledger = ledger.clone();
        handles.push(tokio::spawn(async move {
            let charge = create_test_charge(&ledger, ACCOUNT).await;
            for index in 0..10 {
                ledger
                    .update_charge(
                        ACCOUNT,
                        &charge.id,
                        UpdateCharge::new().description(index.to_string()),
                        RequestMeta::library(),
                    )
                    .await
                    .expect("update");
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
    let events = ledger.events_after(0, 10_000).await.expect("events");
    assert_eq!(
        events
            .iter()
            .map(|event| event.body.sequence)
            .collect::<Vec<_>>(),
        (1..=176).collect::<Vec<u64>>()
    );
    assert!(ledger.verify(&|_, _| {}).await.expect("verify").is_sound());
}

/// An update racing a `freeze_after_capture` change: the policy is read with a version the
/// commit checks, so the update either commits before the change or is decided again under it.
/// The policy change is held at its commit (a fault-seam gate) while the update reads the old,
/// unfrozen policy; once the change commits, the update must be refused, never committed
/// after the freeze.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_racing_a_freeze_never_commits_after_it() {
    use chargeledger::domain::{AccountPolicy, RequestError};
    use chargeledger::store::faults::{FaultInjector, FaultPoint};
    use chargeledger::{Ledger, LedgerError};
    use std::time::Duration;

    let directory = tempfile::tempdir().expect("tempdir");
    let faults = FaultInjector::new();
    let ledger = Ledger::open_with_faults(directory.path(), faults.clone())
        .await
        .expect("open");
    let charge = create_test_charge(&ledger, ACCOUNT).await;
    assert!(charge.is_captured());

    let mut gate = faults.close_gate_at(FaultPoint::Commit, faults.calls(FaultPoint::Commit) + 1);
    let freezing = {
        let ledger = ledger.clone();
        tokio::spawn(async move {
            let policy = AccountPolicy {
                freeze_after_capture: true,
            };
            ledger
                .set_account_policy(ACCOUNT, policy, RequestMeta::library())
                .await
        })
    };
    assert!(
        gate.entered(Duration::from_secs(10)).await,
        "the freeze reached its commit"
    );
    let updating = {
        let ledger = ledger.clone();
        let charge_id = charge.id.clone();
        tokio::spawn(async move {
            ledger
                .update_charge(
                    ACCOUNT,
                    &charge_id,
                    UpdateCharge::new().description("after the freeze"),
                    RequestMeta::library(),
                )
                .await
        })
    };
    // Time for the update to read the still-unfrozen policy and queue its append behind the
    // held commit. Were it slower, it would read the frozen policy and be refused all the same.
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.release();
    freezing.await.unwrap().expect("the freeze commits");
    let updated = updating.await.unwrap();
    assert!(
        matches!(
            updated,
            Err(LedgerError::Refused(Refusal::Request(
                RequestError::ChargeFrozenAfterCapture { .. }
            )))
        ),
        "an update decided under the old policy must not commit after the freeze: {updated:?}"
    );
    let history = ledger.history(ACCOUNT, &charge.id).await.unwrap();
    assert_eq!(history.len(), 1, "nothing was appended to the charge");
}

on_both_backends!(
    multi_thread: concurrent_updates_of_one_charge_lose_nothing,
    concurrent_writers_on_many_charges_get_gap_free_global_sequences,
);

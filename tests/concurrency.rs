//! Concurrent writers: updates of one charge from many tasks are all kept, none lost or rejected.

mod common;

use chargeledger::{RequestMeta, UpdateCharge};
use common::{ACCOUNT, create_test_charge, open_ledger};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
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

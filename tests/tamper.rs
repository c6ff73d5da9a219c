//! The hash chain catches an edited, a deleted, an inserted and a reordered event; a damaged store is refused.

mod common;

use std::path::Path;

use chargeledger::chain::ChainFault;
use chargeledger::ledger::Failure;
use chargeledger::{Fault, Ledger, LedgerError, StoreError};
use common::{ACCOUNT, create_test_charge, open_ledger};

/// A store with 1 charge and 5 updates: events #1 to #6.
async fn store_with_six_events(directory: &tempfile::TempDir) {
    let ledger = open_ledger(directory).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;
    common::update_metadata_repeatedly(&ledger, &charge.id, "step", 5).await;
    ledger.close().await.expect("close");
}

/// Change the raw events tree while no ledger has the directory open.
fn tamper(path: &Path, change: impl FnOnce(&sled::Tree)) {
    let db = sled::open(path).expect("raw open");
    let events = db.open_tree("events").expect("events tree");
    change(&events);
    db.flush().expect("flush");
}

/// Rewrite the stored bytes of event `sequence` as text; the edit must change them.
fn edit_event(path: &Path, sequence: u64, edit: impl FnOnce(&str) -> String) {
    tamper(path, |events| {
        let value = events.get(key(sequence)).expect("read").expect("the event");
        let text = String::from_utf8(value.to_vec()).expect("utf8");
        let edited = edit(&text);
        assert_ne!(edited, text, "the edit must land");
        events
            .insert(key(sequence), edited.as_bytes())
            .expect("write");
    });
}

fn key(sequence: u64) -> [u8; 8] {
    sequence.to_be_bytes()
}

async fn verify(directory: &tempfile::TempDir) -> Option<Fault> {
    let ledger = Ledger::open_for_verification(directory.path().join("data"))
        .await
        .expect("open for verification");
    let report = ledger.verify(&|_, _| {}).await.expect("verify runs");
    ledger.close().await.expect("close");
    report.first_fault
}

async fn open_refusal(directory: &tempfile::TempDir) -> StoreError {
    match Ledger::open(directory.path().join("data")).await {
        Err(LedgerError::Failed(Failure::Store(error))) => error,
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a damaged store must be refused"),
    }
}

#[tokio::test]
async fn a_sound_store_verifies() {
    let directory = tempfile::tempdir().expect("tempdir");
    store_with_six_events(&directory).await;
    assert_eq!(verify(&directory).await, None);
}

#[tokio::test]
async fn an_edited_event_is_detected_and_named() {
    let directory = tempfile::tempdir().expect("tempdir");
    store_with_six_events(&directory).await;
    edit_event(&directory.path().join("data"), 3, |text| {
        text.replace("\"step\":\"1\"", "\"step\":\"9\"")
    });
    match verify(&directory).await {
        Some(Fault::Chain(ChainFault::HashMismatch { sequence: 3, .. })) => {}
        other => panic!("expected a hash mismatch at #3, got {other:?}"),
    }
    let refusal = open_refusal(&directory).await;
    assert!(
        refusal.to_string().contains("event #3 was altered"),
        "{refusal}"
    );
}

/// The hash covers the body's bytes as stored, not a re-encoding of what they decode to: a
/// body re-spaced to the same JSON meaning is still an altered record.
#[tokio::test]
async fn a_body_respaced_to_the_same_meaning_is_detected() {
    let directory = tempfile::tempdir().expect("tempdir");
    store_with_six_events(&directory).await;
    edit_event(&directory.path().join("data"), 4, |text| {
        text.replace("\"sequence\":4", "\"sequence\": 4")
    });
    match verify(&directory).await {
        Some(Fault::Chain(ChainFault::HashMismatch { sequence: 4, .. })) => {}
        other => panic!("expected a hash mismatch at #4, got {other:?}"),
    }
    let refusal = open_refusal(&directory).await;
    assert!(
        refusal.to_string().contains("event #4 was altered"),
        "{refusal}"
    );
}

/// Bytes outside the body are not sealed: a record re-spaced around its body (not the frame
/// the writer uses) is read by a full JSON parse and still verifies.
#[tokio::test]
async fn a_record_respaced_outside_its_body_still_verifies() {
    let directory = tempfile::tempdir().expect("tempdir");
    store_with_six_events(&directory).await;
    edit_event(&directory.path().join("data"), 2, |text| {
        let edited = text
            .replacen("{\"body\":", "{ \"body\" : ", 1)
            .replace(",\"hash\":", " , \"hash\" :");
        assert!(edited.starts_with("{ \"body\" : "), "the edit must land");
        assert!(edited.contains(" , \"hash\" :"), "the edit must land");
        edited
    });
    assert_eq!(verify(&directory).await, None);
}

#[tokio::test]
async fn a_deleted_event_is_detected_and_named() {
    let directory = tempfile::tempdir().expect("tempdir");
    store_with_six_events(&directory).await;
    tamper(&directory.path().join("data"), |events| {
        events.remove(key(4)).expect("remove");
    });
    match verify(&directory).await {
        Some(Fault::Chain(ChainFault::SequenceGap {
            previous: 3,
            found: 5,
        })) => {}
        other => panic!("expected a gap after #3, got {other:?}"),
    }
    assert!(matches!(
        open_refusal(&directory).await,
        StoreError::CorruptChain { .. }
    ));
}

#[tokio::test]
async fn a_deleted_newest_event_is_detected() {
    let directory = tempfile::tempdir().expect("tempdir");
    store_with_six_events(&directory).await;
    tamper(&directory.path().join("data"), |events| {
        events.remove(key(6)).expect("remove");
    });
    let refusal = open_refusal(&directory).await;
    assert!(refusal.to_string().contains("#6"), "{refusal}");
}

#[tokio::test]
async fn reordered_events_are_detected() {
    let directory = tempfile::tempdir().expect("tempdir");
    store_with_six_events(&directory).await;
    tamper(&directory.path().join("data"), |events| {
        // Swap #3 and #4 and renumber them so each sits under a matching key.
        let three: serde_json::Value =
            serde_json::from_slice(&events.get(key(3)).expect("read").expect("3")).expect("json");
        let four: serde_json::Value =
            serde_json::from_slice(&events.get(key(4)).expect("read").expect("4")).expect("json");
        let mut moved_four = four.clone();
        moved_four["body"]["sequence"] = 3.into();
        let mut moved_three = three.clone();
        moved_three["body"]["sequence"] = 4.into();
        events
            .insert(key(3), serde_json::to_vec(&moved_four).expect("json"))
            .expect("write");
        events
            .insert(key(4), serde_json::to_vec(&moved_three).expect("json"))
            .expect("write");
    });
    match verify(&directory).await {
        Some(Fault::Chain(ChainFault::HashMismatch { sequence: 3, .. })) => {}
        other => panic!("expected the chain to break at #3, got {other:?}"),
    }
}

#[tokio::test]
async fn an_inserted_event_with_a_recomputed_hash_still_breaks_the_chain() {
    let directory = tempfile::tempdir().expect("tempdir");
    store_with_six_events(&directory).await;
    tamper(&directory.path().join("data"), |events| {
        // A forger copies #3, changes it, and even recomputes its own hash: the next link breaks.
        let mut forged: chargeledger::RecordedEvent =
            serde_json::from_slice(&events.get(key(3)).expect("read").expect("3")).expect("decode");
        forged.body.request.actor = "forger".into();
        forged.hash = chargeledger::chain::hash_body(&forged.body);
        events
            .insert(key(3), serde_json::to_vec(&forged).expect("json"))
            .expect("write");
    });
    match verify(&directory).await {
        Some(Fault::Chain(ChainFault::BrokenLink { sequence: 4, .. })) => {}
        other => panic!("expected a broken link at #4, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_projection_is_reported_by_verify_and_fixed_by_replay() {
    let directory = tempfile::tempdir().expect("tempdir");
    store_with_six_events(&directory).await;
    let path = directory.path().join("data");
    let charge_id = {
        let db = sled::open(&path).expect("raw open");
        let projections = db.open_tree("projections").expect("tree");
        let (key, value) = projections.iter().next().expect("one").expect("read");
        let mut edited = value.to_vec();
        let text = String::from_utf8(edited.split_off(16))
            .expect("utf8")
            .replace("\"step\":\"4\"", "\"step\":\"forged\"");
        edited.extend_from_slice(text.as_bytes());
        projections.insert(&key, edited).expect("write");
        db.flush().expect("flush");
        String::from_utf8_lossy(&key)
            .split('\0')
            .nth(1)
            .expect("stream id")
            .to_string()
    };
    match verify(&directory).await {
        Some(Fault::ProjectionMismatch { stream_id, .. }) => assert_eq!(stream_id, charge_id),
        other => panic!("expected a projection mismatch, got {other:?}"),
    }
    let ledger = Ledger::open(&path)
        .await
        .expect("open: the chain itself is sound");
    let report = ledger.replay(&|_, _| {}).await.expect("replay");
    assert_eq!(report.mismatches.len(), 1);
    assert_eq!(
        ledger
            .get_charge(ACCOUNT, &charge_id)
            .await
            .expect("get")
            .metadata["step"],
        "4"
    );
    ledger.close().await.expect("close");
    drop(ledger);
    assert_eq!(verify(&directory).await, None);
}

/// Every way a stored projection can disagree with the log, each found by `verify` with its
/// reason and put right by `replay` (a projection with no events is reported, never invented
/// away). `verify` folds each stream only until its stored version, so these cover the paths
/// where that comparison happens early, late, or never.
#[tokio::test]
async fn every_kind_of_wrong_projection_is_named_by_verify_and_mended_by_replay() {
    let behind = "it claims version 2, the log has 6";
    let ahead = "it claims version 99, the log has 6";
    let missing = "its projection is missing";
    let orphan = "there are no events for it";
    for (name, expected) in [
        ("behind", behind),
        ("ahead", ahead),
        ("missing", missing),
        ("orphan", orphan),
    ] {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("data");
        // A charge at version 2, its projection record kept, then four more updates.
        let (charge_id, record_at_version_2) = {
            let ledger = open_ledger(&directory).await;
            let charge = create_test_charge(&ledger, ACCOUNT).await;
            common::update_metadata_repeatedly(&ledger, &charge.id, "step", 1).await;
            ledger.close().await.expect("close");
            drop(ledger);
            let db = sled::open(&path).expect("raw open");
            let projections = db.open_tree("projections").expect("tree");
            let (_, value) = projections.iter().next().expect("one").expect("read");
            (charge.id, value.to_vec())
        };
        {
            let ledger = open_ledger(&directory).await;
            common::update_metadata_repeatedly(&ledger, &charge_id, "later", 4).await;
            ledger.close().await.expect("close");
        }
        {
            let db = sled::open(&path).expect("raw open");
            let projections = db.open_tree("projections").expect("tree");
            let (key, value) = projections.iter().next().expect("one").expect("read");
            match name {
                "behind" => {
                    projections
                        .insert(&key, record_at_version_2.clone())
                        .expect("write");
                }
                "ahead" => {
                    let mut edited = value.to_vec();
                    edited[..8].copy_from_slice(&99_u64.to_be_bytes());
                    projections.insert(&key, edited).expect("write");
                }
                "missing" => {
                    projections.remove(&key).expect("remove");
                }
                _ => {
                    let mut ghost = key.to_vec();
                    ghost.extend_from_slice(b"_ghost");
                    projections.insert(ghost, value.to_vec()).expect("write");
                }
            }
            db.flush().expect("flush");
        }
        let stream_id = if name == "orphan" {
            format!("{charge_id}_ghost")
        } else {
            charge_id.clone()
        };
        match verify(&directory).await {
            Some(Fault::ProjectionMismatch {
                stream_id: found,
                detail,
                ..
            }) => {
                assert_eq!(found, stream_id, "{name}");
                assert_eq!(detail, expected, "{name}");
            }
            other => panic!("{name}: expected a projection mismatch, got {other:?}"),
        }
        let ledger = Ledger::open(&path).await.expect("open");
        let report = ledger.replay(&|_, _| {}).await.expect("replay");
        assert_eq!(report.events, 6, "{name}");
        assert_eq!(
            report.mismatches.len(),
            1,
            "{name}: {:?}",
            report.mismatches
        );
        assert_eq!(report.mismatches[0].detail, expected, "{name}");
        let charge = ledger.get_charge(ACCOUNT, &charge_id).await.expect("get");
        assert_eq!(
            charge.metadata["later"], "3",
            "{name}: the charge as the log has it"
        );
        ledger.close().await.expect("close");
        drop(ledger);
        let after = verify(&directory).await;
        if name == "orphan" {
            // Nothing in the log says what the ghost should be: it is reported again, not erased.
            assert!(
                matches!(&after, Some(Fault::ProjectionMismatch { detail, .. }) if detail == orphan),
                "{after:?}"
            );
        } else {
            assert_eq!(after, None, "{name}: replay left the store sound");
        }
    }
}

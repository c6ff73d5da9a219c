//! The stored event format v1 is a compatibility boundary: a checked-in log must decode, re-encode
//! byte for byte, keep its hashes, and fold to the same charge with every future build.

use chargeledger::RecordedEvent;
use chargeledger::chain::ChainVerifier;
use chargeledger::domain::{Projection, fold};

const V1_LOG: &str = include_str!("fixtures/events_v1.jsonl");

#[test]
fn version_1_events_round_trip_byte_for_byte() {
    for line in V1_LOG.lines() {
        let event: RecordedEvent = serde_json::from_str(line).expect("a v1 event decodes");
        assert_eq!(event.body.schema_version, 1);
        assert_eq!(
            serde_json::to_string(&event).expect("encode"),
            line,
            "re-encoding changed the bytes"
        );
    }
}

#[test]
fn version_1_chain_still_verifies() {
    let mut verifier = ChainVerifier::from_genesis();
    for line in V1_LOG.lines() {
        let event: RecordedEvent = serde_json::from_str(line).expect("decode");
        verifier
            .check(&event)
            .expect("the stored hashes still match");
    }
    assert!(verifier.last_sequence() >= 4);
}

#[test]
fn version_1_events_fold_to_the_recorded_charge() {
    let events: Vec<RecordedEvent> = V1_LOG
        .lines()
        .map(|line| serde_json::from_str(line).expect("decode"))
        .collect();
    let charge_events: Vec<_> = events
        .iter()
        .filter(|event| event.body.stream_id.starts_with("ch_"))
        .collect();
    let Some(Projection::Charge(charge)) =
        fold(charge_events.iter().map(|event| &event.body.payload)).expect("fold")
    else {
        panic!("the fixture holds a charge");
    };
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/charge_v1.json")).expect("fixture charge");
    assert_eq!(serde_json::to_value(&*charge).expect("json"), expected);
}

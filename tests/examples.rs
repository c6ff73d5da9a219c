//! Every example in `examples/` runs as part of the test suite, so none can rot.

#[path = "../examples/audit_trail.rs"]
mod audit_trail;
#[path = "../examples/embed.rs"]
mod embed;
#[path = "../examples/replay_debug.rs"]
mod replay_debug;
#[path = "../examples/shared_ledger.rs"]
mod shared_ledger;

mod common;

#[test]
fn embed_example_runs() {
    embed::main().expect("examples/embed.rs runs");
}

#[test]
fn audit_trail_example_runs() {
    audit_trail::main().expect("examples/audit_trail.rs runs");
}

#[test]
fn replay_debug_example_runs() {
    replay_debug::main().expect("examples/replay_debug.rs runs");
}

#[tokio::test]
async fn shared_ledger_example_runs() {
    let directory = tempfile::tempdir().expect("tempdir");
    let url = common::postgres::database_url_for(directory.path());
    shared_ledger::run(&url)
        .await
        .expect("examples/shared_ledger.rs runs");
}

// Its `main` (the listening mode) is for people and benches/outbox_load.sh; the test runs the demo.
#[allow(dead_code)]
#[path = "../examples/webhook_receiver.rs"]
mod webhook_receiver;

#[tokio::test]
async fn webhook_receiver_example_receives_a_verified_delivery() {
    let event = webhook_receiver::demo()
        .await
        .expect("examples/webhook_receiver.rs runs");
    assert_eq!(event["type"], "charge.succeeded");
    // Its check is a real one: a wrong secret or a changed body fails.
    let body = br#"{"id":"evt_1"}"#;
    let header =
        chargeledger::server::delivery::stripe_signature("whsec_right", 1_700_000_000, body);
    assert!(webhook_receiver::verify(&header, body, "whsec_right", 1_700_000_010).is_ok());
    assert!(webhook_receiver::verify(&header, body, "whsec_wrong", 1_700_000_010).is_err());
    assert!(
        webhook_receiver::verify(&header, br#"{"id":"evt_2"}"#, "whsec_right", 1_700_000_010)
            .is_err()
    );
    assert!(webhook_receiver::verify(&header, body, "whsec_right", 1_700_000_400).is_err());
}

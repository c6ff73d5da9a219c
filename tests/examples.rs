//! Every example in `examples/` runs as part of the test suite, so none can rot.

#[path = "../examples/audit_trail.rs"]
mod audit_trail;
#[path = "../examples/embed.rs"]
mod embed;
#[path = "../examples/replay_debug.rs"]
mod replay_debug;

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

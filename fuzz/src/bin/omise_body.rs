//! AFL target `omise_body`: see `fuzz/targets.rs`. Replay one input with
//! `fuzz/target/release/omise_body < FILE`.

#[path = "../../targets.rs"]
mod targets;

fn main() {
    afl::fuzz!(|data: &[u8]| targets::run("omise_body", data));
}

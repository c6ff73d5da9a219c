//! AFL target `update`: see `fuzz/targets.rs`. Replay one input with
//! `fuzz/target/release/update < FILE`.

#[path = "../../targets.rs"]
mod targets;

fn main() {
    afl::fuzz!(|data: &[u8]| targets::run("update", data));
}

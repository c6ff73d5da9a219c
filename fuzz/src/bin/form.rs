//! AFL target `form`: see `fuzz/targets.rs`. Replay one input with
//! `fuzz/target/release/form < FILE`.

#[path = "../../targets.rs"]
mod targets;

fn main() {
    afl::fuzz!(|data: &[u8]| targets::run("form", data));
}

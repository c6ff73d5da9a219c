//! Replays the fuzz corpus (`fuzz/corpus/<target>/*`) through the fuzz targets on every
//! `cargo test`, without AFL: the targets' code is `fuzz/targets.rs`, shared with the AFL
//! binaries. See `fuzz/README.md`.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};

/// The stack of the AFL binaries' main thread (Linux's default), so that an input deep enough
/// to overflow there overflows here too, and one that does not, does not.
const STACK_BYTES: usize = 8 * 1024 * 1024;

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("read {}: {error}", folder.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Run every corpus file of `target` through it, naming the files whose run panicked.
fn replay(target: &'static str) {
    let files = corpus_files(target);
    assert!(!files.is_empty(), "fuzz/corpus/{target}/ has no inputs");
    let failures: Vec<String> = files
        .into_iter()
        .filter_map(|path| {
            let data = std::fs::read(&path).expect("read a corpus file");
            let outcome = std::thread::Builder::new()
                .name(format!("{target}: {}", path.display()))
                .stack_size(STACK_BYTES)
                .spawn(move || targets::run(target, &data))
                .expect("spawn a replay thread")
                .join();
            outcome.is_err().then(|| path.display().to_string())
        })
        .collect();
    assert!(
        failures.is_empty(),
        "fuzz target {target} panicked on: {failures:#?}"
    );
}

#[test]
fn every_corpus_folder_names_a_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for entry in std::fs::read_dir(&root).expect("read fuzz/corpus") {
        let name = entry.expect("a corpus folder").file_name();
        let name = name.to_string_lossy();
        assert!(
            targets::TARGETS.iter().any(|(target, _)| *target == name),
            "fuzz/corpus/{name} is not a fuzz target"
        );
    }
}

#[test]
fn form_corpus_replays() {
    replay("form");
}

#[test]
fn omise_body_corpus_replays() {
    replay("omise_body");
}

#[test]
fn update_corpus_replays() {
    replay("update");
}

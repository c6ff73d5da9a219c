//! Acknowledged writes survive `kill -9`: a child process writes and reports each acknowledgement,
//! the parent kills it with SIGKILL mid-stream, reopens the store and finds every acknowledged write.
//!
//! CI runs 3 kill rounds; set `CHARGELEDGER_CRASH_ROUNDS=50` for a longer soak.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chargeledger::{CreateCharge, Ledger, RequestMeta, UpdateCharge};
use common::ACCOUNT;

const CHILD_DIRECTORY: &str = "CHARGELEDGER_CRASH_CHILD_DIRECTORY";
const WRITERS: usize = 8;

/// The child: runs only when the parent starts this binary with the directory variable set.
#[test]
#[ignore = "runs only as the child of acknowledged_writes_survive_sigkill"]
fn crash_child_writes_until_killed() {
    let Ok(directory) = std::env::var(CHILD_DIRECTORY) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let ledger = Ledger::open(&directory)
            .await
            .expect("child opens the store");
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let ledger = ledger.clone();
            tasks.push(tokio::spawn(async move {
                let charge = ledger
                    .create_charge(
                        ACCOUNT,
                        CreateCharge::new(2000, "usd").source("tok_visa"),
                        RequestMeta::library(),
                    )
                    .await
                    .expect("create");
                println!("charge {writer} {}", charge.id);
                // Bounded so a lost parent can never leave this running for long.
                for counter in 0..200_000u64 {
                    ledger
                        .update_charge(
                            ACCOUNT,
                            &charge.id,
                            UpdateCharge::new().description(counter.to_string()),
                            RequestMeta::library(),
                        )
                        .await
                        .expect("update");
                    // Printed only after the ledger acknowledged the write as durable.
                    println!("ack {writer} {counter}");
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let rounds: usize = std::env::var("CHARGELEDGER_CRASH_ROUNDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3);
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("data");
    for round in 0..rounds {
        let acknowledged = run_child_and_kill(&path, 150 + 97 * round);
        assert!(
            !acknowledged.is_empty(),
            "the child acknowledged writes before it was killed"
        );

        let ledger = Ledger::open(&path)
            .await
            .expect("the store reopens after SIGKILL");
        for (charge_id, last_acknowledged) in &acknowledged {
            let (charge, version) = ledger
                .get_charge_with_version(ACCOUNT, charge_id)
                .await
                .expect("acknowledged charge exists");
            if let Some(counter) = last_acknowledged {
                let stored: u64 = charge
                    .description
                    .as_deref()
                    .unwrap_or("0")
                    .parse()
                    .expect("a counter");
                assert!(
                    stored >= *counter,
                    "round {round}: {charge_id} acknowledged {counter} but holds {stored}"
                );
                assert!(
                    version > counter + 1,
                    "round {round}: {charge_id} is at version {version}, below its acknowledgements"
                );
            }
        }
        let report = ledger.verify(&|_, _| {}).await.expect("verify");
        assert!(report.is_sound(), "round {round}: {:?}", report.first_fault);
        ledger.close().await.expect("close");
    }
}

/// Start the child, read acknowledgements until `kill_after` of them, SIGKILL it. Returns each
/// created charge with its last acknowledged counter.
fn run_child_and_kill(path: &std::path::Path, kill_after: usize) -> HashMap<String, Option<u64>> {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "crash_child_writes_until_killed",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIRECTORY, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut charges: HashMap<usize, String> = HashMap::new();
    let mut acknowledged: HashMap<String, Option<u64>> = HashMap::new();
    let mut acknowledgements = 0;
    let started = Instant::now();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        // libtest prints "test name ... " without a newline before the child's first line.
        let words: Vec<&str> = line.split_whitespace().collect();
        match &words[words.len().saturating_sub(3)..] {
            ["charge", writer, charge_id] => {
                let writer: usize = writer.parse().expect("writer");
                charges.insert(writer, charge_id.to_string());
                acknowledged.insert(charge_id.to_string(), None);
            }
            ["ack", writer, counter] => {
                let writer: usize = writer.parse().expect("writer");
                let charge_id = charges[&writer].clone();
                acknowledged.insert(charge_id, Some(counter.parse().expect("counter")));
                acknowledgements += 1;
            }
            _ => {}
        }
        if acknowledgements >= kill_after || started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    // Child::kill sends SIGKILL on Unix: no destructor, no flush, no goodbye.
    child.kill().expect("kill -9");
    let _ = child.wait();
    acknowledged
}

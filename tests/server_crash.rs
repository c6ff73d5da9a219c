//! Every update the server acknowledged survives `kill -9` of `chargeledger serve` under concurrent load, and the data directory stays sound: clients record each 2xx, the server is killed at a random moment, restarted on the same directory, and every acknowledged update is read back.
//!
//! 5 kill cycles by default (CI); `CHARGELEDGER_LONG_TESTS=1` runs 200. The random kill delays
//! come from a seed that is printed; `CHARGELEDGER_CRASH_SEED=<n>` replays a run's delays.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::{SECRET_KEY, TestServer, verify_data_directory};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Concurrent clients, each with its own connection.
const CLIENTS: usize = 12;
/// Updates per charge before a client moves to a new one; each update adds a metadata key, and
/// Stripe allows 50 keys.
const UPDATES_PER_CHARGE: usize = 40;
/// The kill comes at a random moment this long after the cycle's first acknowledged update.
const KILL_DELAY_MS: std::ops::Range<u64> = 150..1200;
/// How long a restarted server may take to acknowledge its first update.
const FIRST_UPDATE_WAIT: Duration = Duration::from_secs(30);
/// Shorter in the 200-cycle run: every cycle runs `verify` over the whole log, so the log's
/// growth per cycle sets the run's length (about 10 minutes with this range).
const LONG_KILL_DELAY_MS: std::ops::Range<u64> = 100..600;

/// What the server acknowledged: charge id → (metadata key → value) of every 2xx update, and an
/// entry with no keys for a charge whose creation was acknowledged.
type Acknowledged = BTreeMap<String, BTreeMap<String, String>>;

/// splitmix64: a seeded generator, so that a failing run's kill delays can be replayed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    fn in_range(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.next() % (range.end - range.start)
    }
}

fn seed() -> u64 {
    std::env::var("CHARGELEDGER_CRASH_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |elapsed| elapsed.as_nanos() as u64)
        })
}

/// How many kill cycles, and the range of kill delays.
fn cycles() -> (usize, std::ops::Range<u64>) {
    if std::env::var("CHARGELEDGER_LONG_TESTS").is_ok_and(|value| value == "1") {
        (200, LONG_KILL_DELAY_MS)
    } else {
        (5, KILL_DELAY_MS)
    }
}

/// A form POST with the test key; `None` when the server did not answer (it was killed).
async fn post(
    client: &reqwest::Client,
    url: String,
    form: &[(&str, &str)],
) -> Option<(u16, Value)> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let response = client
        .post(url)
        .bearer_auth(SECRET_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body = response.json().await.ok()?;
    Some((status, body))
}

/// One client: create a charge, update it with a new metadata key at a time, move on to a new
/// charge every `UPDATES_PER_CHARGE` updates; record every 2xx, until the server stops answering.
/// Any answer other than 2xx from a live server is a failure of the test.
async fn client_until_killed(
    base_url: String,
    cycle: usize,
    client_number: usize,
    acknowledged: Arc<Mutex<Acknowledged>>,
    updates_acknowledged: Arc<watch::Sender<usize>>,
) -> usize {
    let client = reqwest::Client::new();
    let mut updates = 0;
    for charge_number in 0.. {
        let Some((status, charge)) = post(
            &client,
            format!("{base_url}/v1/charges"),
            &[
                ("amount", "2000"),
                ("currency", "usd"),
                ("source", "tok_visa"),
            ],
        )
        .await
        else {
            return updates;
        };
        assert_eq!(
            status, 200,
            "creation refused while the server ran: {charge}"
        );
        let charge_id = charge["id"].as_str().expect("a charge id").to_string();
        acknowledged
            .lock()
            .expect("lock")
            .entry(charge_id.clone())
            .or_default();
        for update in 0..UPDATES_PER_CHARGE {
            let key = format!("u{update}");
            let value = format!("c{cycle}-k{client_number}-n{charge_number}-u{update}");
            let field = format!("metadata[{key}]");
            let Some((status, body)) = post(
                &client,
                format!("{base_url}/v1/charges/{charge_id}"),
                &[(&field, &value)],
            )
            .await
            else {
                return updates;
            };
            assert!(
                (200..300).contains(&status),
                "update refused while the server ran: {status} {body}"
            );
            acknowledged
                .lock()
                .expect("lock")
                .entry(charge_id.clone())
                .or_default()
                .insert(key, value);
            updates += 1;
            updates_acknowledged.send_modify(|count| *count += 1);
        }
    }
    updates
}

/// Read every acknowledged charge back and compare each acknowledged metadata value; returns
/// how many updates were checked. A charge may hold more (the update in flight at the kill may
/// have landed), never less.
async fn check_acknowledged(server: &TestServer, acknowledged: &Acknowledged) -> usize {
    let server_url = Arc::new(server.base_url.clone());
    let client = server.client().clone();
    let mut checks = JoinSet::new();
    let mut checked = 0;
    for (charge_id, updates) in acknowledged {
        checked += updates.len();
        let (client, base_url, charge_id, updates) = (
            client.clone(),
            server_url.clone(),
            charge_id.clone(),
            updates.clone(),
        );
        checks.spawn(async move {
            let response = client
                .get(format!("{base_url}/v1/charges/{charge_id}"))
                .bearer_auth(SECRET_KEY)
                .send()
                .await
                .expect("the restarted server answers");
            assert_eq!(
                response.status().as_u16(),
                200,
                "acknowledged charge {charge_id} is missing after the crash"
            );
            let charge: Value = response.json().await.expect("a charge");
            for (key, value) in &updates {
                assert_eq!(
                    charge["metadata"][key].as_str(),
                    Some(value.as_str()),
                    "acknowledged update {key}={value} of {charge_id} was lost in the crash"
                );
            }
        });
        // Keep a bounded number of reads in flight.
        if checks.len() >= 32 {
            checks
                .join_next()
                .await
                .expect("a check")
                .expect("the check passed");
        }
    }
    while let Some(check) = checks.join_next().await {
        check.expect("the check passed");
    }
    checked
}

fn assert_verify_sound(data_directory: &Path, when: &str) {
    let (sound, output) = verify_data_directory(data_directory);
    assert!(sound, "`chargeledger verify` {when} failed:\n{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_updates_survive_sigkill_of_the_server_under_load() {
    sigkill_cycles().await;
}

/// The same cycles with the server on PostgreSQL: its commits are the acknowledgements, and a
/// killed server must leave no half-written batch and no broken chain behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_updates_survive_sigkill_of_a_postgres_server_under_load() {
    common::backend::Backend::Postgres
        .run(sigkill_cycles())
        .await;
}

async fn sigkill_cycles() {
    let seed = seed();
    let mut random = Random(seed);
    let (cycles, kill_delays) = cycles();
    println!("server_crash: seed {seed} (CHARGELEDGER_CRASH_SEED={seed} replays the kill delays)");
    let directory = tempfile::tempdir().expect("temp dir");
    let data_directory = directory.path().join("data");
    let acknowledged: Arc<Mutex<Acknowledged>> = Arc::default();
    let started = Instant::now();
    let mut server = TestServer::start(&data_directory);
    let mut checked = 0;
    for cycle in 0..cycles {
        let (updates_acknowledged, mut first_update) = watch::channel(0);
        let updates_acknowledged = Arc::new(updates_acknowledged);
        let mut clients = JoinSet::new();
        for client_number in 0..CLIENTS {
            clients.spawn(client_until_killed(
                server.base_url.clone(),
                cycle,
                client_number,
                acknowledged.clone(),
                updates_acknowledged.clone(),
            ));
        }
        // Start the random delay at the first acknowledged update, not at the start, so that a
        // slow restart (sled recovering its log, a busy machine) cannot make a cycle that kills
        // before anything was acknowledged and so tests nothing.
        // The `Ref` that `wait_for` returns holds the channel's read lock: drop it at once, or
        // the clients' `send_modify` would block on it.
        let first_update_seen =
            tokio::time::timeout(FIRST_UPDATE_WAIT, first_update.wait_for(|count| *count > 0))
                .await
                .is_ok_and(|seen| seen.is_ok());
        assert!(
            first_update_seen,
            "cycle {cycle}: the server acknowledged no update within {FIRST_UPDATE_WAIT:?}"
        );
        let delay = random.in_range(kill_delays.clone());
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill_hard();
        let mut updates_this_cycle = 0;
        while let Some(updates) = clients.join_next().await {
            updates_this_cycle += updates.expect("a client got only 2xx while the server ran");
        }

        assert_verify_sound(
            &data_directory,
            &format!("after kill {cycle} (at {delay} ms)"),
        );
        server = TestServer::start(&data_directory);
        let snapshot = acknowledged.lock().expect("lock").clone();
        checked = check_acknowledged(&server, &snapshot).await;
        println!(
            "server_crash: cycle {cycle}: killed after {delay} ms, {updates_this_cycle} updates acknowledged in the cycle, {checked} checked in total"
        );
    }
    assert!(
        server.stop(),
        "the server stops cleanly after the last restart"
    );
    assert_verify_sound(&data_directory, "after the last clean stop");
    let charges = acknowledged.lock().expect("lock").len();
    println!(
        "server_crash: {cycles} SIGKILL cycles, {checked} acknowledged updates on {charges} charges all present, verify sound every cycle ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

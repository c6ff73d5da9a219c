//! Throughput of durable appends, replay speed and disk use, each beside raw sled measured in the same run.
//!
//! `cargo bench --bench throughput` runs the full measurement (1M events for replay);
//! `cargo bench --bench throughput -- --quick` is the short bounded run CI uses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chargeledger::chain::{GENESIS_HASH, seal};
use chargeledger::domain::stripe::decide::{create_charge, update_charge};
use chargeledger::domain::{AccountPolicy, DecisionContext, Projection, apply};
use chargeledger::events::{EVENT_SCHEMA_VERSION, EventBody};
use chargeledger::store::StoredProjection;
use chargeledger::{CreateCharge, Ledger, RecordedEvent, RequestMeta, UpdateCharge, ids};
use time::OffsetDateTime;

const ACCOUNT: &str = "sk_test_bench";
/// The API key `benches/memory.sh` serves a written synthetic log with: the log's account is
/// the one the server gives this key.
const SYNTHETIC_LOG_KEY: &str = "sk_test_bench";

struct Sizes {
    single_writer_appends: usize,
    concurrent_appends_per_writer: usize,
    replay_events: usize,
    events_per_charge: usize,
    /// Prior events of the long-lived charge whose updates are timed against a fresh charge's.
    long_history_events: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().collect();
    let quick = arguments.iter().any(|argument| argument == "--quick");
    // `--only appends|replay|history|concurrency|declines` runs one section, for profiling it alone.
    let only = arguments
        .iter()
        .position(|argument| argument == "--only")
        .and_then(|index| arguments.get(index + 1).cloned());
    let runs = |section: &str| only.as_deref().is_none_or(|only| only == section);
    let mut sizes = if quick {
        Sizes {
            single_writer_appends: 500,
            concurrent_appends_per_writer: 50,
            replay_events: 20_000,
            events_per_charge: 20,
            long_history_events: 10_000,
        }
    } else {
        Sizes {
            single_writer_appends: 5_000,
            concurrent_appends_per_writer: 500,
            replay_events: 1_000_000,
            events_per_charge: 20,
            long_history_events: 100_000,
        }
    };
    // `REPLAY_EVENTS=N` sizes the replay section alone (a mid-size run while profiling it).
    if let Some(events) = std::env::var("REPLAY_EVENTS")
        .ok()
        .and_then(|events| events.parse().ok())
    {
        sizes.replay_events = events;
    }
    if let Some(per_charge) = std::env::var("EVENTS_PER_CHARGE")
        .ok()
        .and_then(|per_charge| per_charge.parse().ok())
    {
        sizes.events_per_charge = per_charge;
    }
    // `WRITE_SYNTHETIC_LOG=FILE` writes the replay section's log as JSON Lines (what
    // `chargeledger import` reads) and stops: a big store to time the CLI's replay and verify on.
    if let Ok(file) = std::env::var("WRITE_SYNTHETIC_LOG") {
        let account = chargeledger::server::auth::account_for_key(SYNTHETIC_LOG_KEY)
            .ok_or("the synthetic log's key is not a test key")?;
        let (events, _) = synthetic_log(&account, sizes.replay_events, sizes.events_per_charge);
        let mut output = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for event in &events {
            serde_json::to_writer(&mut output, event)?;
            std::io::Write::write_all(&mut output, b"\n")?;
        }
        std::io::Write::flush(&mut output)?;
        println!("wrote {} events to {file}", events.len());
        return Ok(());
    }
    println!(
        "chargeledger throughput ({} mode)",
        if quick { "quick" } else { "full" }
    );

    if runs("appends") {
        appends(&sizes).await?;
    }
    if runs("replay") {
        replay_and_disk(&sizes).await?;
    }
    if runs("history") {
        long_history_updates(sizes.long_history_events).await?;
    }
    if runs("concurrency") {
        throughput_by_concurrency(quick).await?;
    }
    if runs("declines") {
        decline_cost(if quick { 200 } else { 2_000 }).await?;
    }
    Ok(())
}

/// What recording a decline adds to a create: durable creates per second from 8 writers on
/// `tok_visa` and on `tok_chargeDeclined` (a `charge.failed` event), in the same run.
async fn decline_cost(creates_per_writer: usize) -> Result<(), Box<dyn std::error::Error>> {
    println!("\n== creates: success vs recorded decline (8 writers, {creates_per_writer} each) ==");
    let mut rates = Vec::new();
    for source in [
        "tok_visa",
        "tok_chargeDeclined",
        "tok_visa",
        "tok_chargeDeclined",
    ] {
        let directory = tempfile::tempdir()?;
        let ledger = Ledger::open(directory.path().join("data")).await?;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let ledger = ledger.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..creates_per_writer {
                    let charge = ledger
                        .create_charge(
                            ACCOUNT,
                            CreateCharge::new(2000, "usd").source(source),
                            RequestMeta::library(),
                        )
                        .await
                        .expect("create");
                    assert_eq!(charge.failure.is_some(), source != "tok_visa");
                }
            }));
        }
        for task in tasks {
            task.await?;
        }
        let rate = (8 * creates_per_writer) as f64 / started.elapsed().as_secs_f64();
        ledger.close().await?;
        println!("{source:>20}: {rate:>9.0} creates/s");
        rates.push(rate);
    }
    let success = (rates[0] + rates[2]) / 2.0;
    let declined = (rates[1] + rates[3]) / 2.0;
    println!(
        "recorded declines run at {:.0}% of successful creates' throughput (mean of two runs each)",
        declined / success * 100.0
    );
    Ok(())
}

/// Durable appends per second at 1 to 64 concurrent writers, beside raw sled with as many
/// threads each making its insert durable and with one fdatasync per that many inserts. Printed
/// as CSV too (to `CONCURRENCY_CSV` if set), which `benches/plot_concurrency.py` draws.
async fn throughput_by_concurrency(quick: bool) -> Result<(), Box<dyn std::error::Error>> {
    let total_appends = if quick { 640 } else { 6_400 };
    let mut csv = String::from("writers,chargeledger,raw_sled_each_durable,raw_sled_grouped\n");
    println!("durable appends by concurrency ({total_appends} per point):");
    for writers in [1, 2, 4, 8, 16, 32, 64] {
        let per_writer = total_appends / writers;
        let ledger = ledger_appends(writers, per_writer).await?;
        let raw_each = raw_sled_durable_inserts(writers, per_writer)?;
        let raw_grouped = raw_sled_group_commit(total_appends, writers)?;
        println!(
            "  {writers:>2} writers: ledger {ledger:>8.0}/s   raw sled each durable {raw_each:>8.0}/s   raw sled one fdatasync per {writers} {raw_grouped:>8.0}/s"
        );
        csv.push_str(&format!(
            "{writers},{ledger:.0},{raw_each:.0},{raw_grouped:.0}\n"
        ));
    }
    if let Ok(path) = std::env::var("CONCURRENCY_CSV") {
        std::fs::write(&path, &csv)?;
        println!("  written to {path}");
    }
    Ok(())
}

async fn appends(sizes: &Sizes) -> Result<(), Box<dyn std::error::Error>> {
    let single = ledger_appends(1, sizes.single_writer_appends).await?;
    let raw_single = raw_sled_durable_inserts(1, sizes.single_writer_appends)?;
    println!(
        "durable appends, 1 writer:    ledger {single:>9.0}/s   raw sled insert+flush+fdatasync {raw_single:>9.0}/s   ({:.2}x)",
        single / raw_single
    );

    let concurrent = ledger_appends(32, sizes.concurrent_appends_per_writer).await?;
    let raw_concurrent = raw_sled_durable_inserts(32, sizes.concurrent_appends_per_writer)?;
    let raw_grouped = raw_sled_group_commit(32 * sizes.concurrent_appends_per_writer, 32)?;
    println!(
        "durable appends, 32 writers:  ledger {concurrent:>9.0}/s   raw sled 32 threads each fdatasync {raw_concurrent:>9.0}/s   raw sled fdatasync per 32 inserts {raw_grouped:>9.0}/s"
    );
    // The HTTP figure's baseline in the performance issue: one flush + fdatasync per 100 inserts.
    let raw_per_100 = raw_sled_group_commit(100 * sizes.concurrent_appends_per_writer, 100)?;
    println!("raw sled, one flush + fdatasync per 100 inserts: {raw_per_100:>9.0}/s");
    Ok(())
}

/// An update's cost must not grow with a charge's history: time durable updates of a charge
/// with `prior_events` events against updates of a fresh charge, alternating, in one ledger.
async fn long_history_updates(prior_events: usize) -> Result<(), Box<dyn std::error::Error>> {
    const TIMED_UPDATES: usize = 200;
    let directory = tempfile::tempdir()?;
    let ledger = Ledger::open(directory.path().join("data")).await?;
    let (events, projections) = synthetic_log(ACCOUNT, prior_events, prior_events);
    let long_charge = projections[0].1.clone();
    for chunk in events.chunks(10_000) {
        let rows = if chunk.last().map(|event| event.body.sequence) == Some(prior_events as u64) {
            projections.clone()
        } else {
            Vec::new()
        };
        ledger.store().import(chunk.to_vec(), rows).await?;
    }
    let fresh_charge = ledger
        .create_charge(
            ACCOUNT,
            CreateCharge::new(2000, "usd").source("tok_visa"),
            RequestMeta::library(),
        )
        .await?
        .id;
    let mut elapsed = [Duration::ZERO, Duration::ZERO];
    for round in 0..TIMED_UPDATES {
        for (slot, charge_id) in [&long_charge, &fresh_charge].into_iter().enumerate() {
            let started = Instant::now();
            ledger
                .update_charge(
                    ACCOUNT,
                    charge_id,
                    UpdateCharge::new().metadata_set("timed", round.to_string()),
                    RequestMeta::library(),
                )
                .await?;
            elapsed[slot] += started.elapsed();
        }
    }
    let mean_ms = |total: Duration| total.as_secs_f64() * 1000.0 / TIMED_UPDATES as f64;
    println!(
        "update after {prior_events} prior events: {:>6.2} ms   on a fresh charge {:>6.2} ms   ({:.2}x)",
        mean_ms(elapsed[0]),
        mean_ms(elapsed[1]),
        elapsed[0].as_secs_f64() / elapsed[1].as_secs_f64()
    );
    ledger.close().await?;
    Ok(())
}

/// Durable `update_charge` calls per second from `writers` tasks, each on its own charge.
async fn ledger_appends(
    writers: usize,
    appends_per_writer: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let directory = tempfile::tempdir()?;
    let ledger = Ledger::open(directory.path().join("data")).await?;
    let mut charges = Vec::new();
    for _ in 0..writers {
        let charge = ledger
            .create_charge(
                ACCOUNT,
                CreateCharge::new(2000, "usd").source("tok_visa"),
                RequestMeta::library(),
            )
            .await?;
        charges.push(charge.id);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for charge_id in charges {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for index in 0..appends_per_writer {
                ledger
                    .update_charge(
                        ACCOUNT,
                        &charge_id,
                        UpdateCharge::new().metadata_set("step", index.to_string()),
                        RequestMeta::library(),
                    )
                    .await
                    .expect("update");
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let rate = (writers * appends_per_writer) as f64 / started.elapsed().as_secs_f64();
    ledger.close().await?;
    Ok(rate)
}

/// durability.md's method: 16-byte keys, 300-byte values, insert + flush + fdatasync of `<dir>/db`.
fn raw_sled_durable_inserts(
    threads: usize,
    inserts_per_thread: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let directory = tempfile::tempdir()?;
    let db = sled::open(directory.path())?;
    let data_file = Arc::new(std::fs::File::open(directory.path().join("db"))?);
    let value = vec![7u8; 300];
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let db = db.clone();
            let data_file = data_file.clone();
            let value = value.clone();
            scope.spawn(move || {
                for index in 0..inserts_per_thread {
                    let mut key = [0u8; 16];
                    key[..8].copy_from_slice(&(thread as u64).to_be_bytes());
                    key[8..].copy_from_slice(&(index as u64).to_be_bytes());
                    db.insert(key, value.as_slice()).expect("insert");
                    db.flush().expect("flush");
                    data_file.sync_data().expect("fdatasync");
                }
            });
        }
    });
    Ok((threads * inserts_per_thread) as f64 / started.elapsed().as_secs_f64())
}

/// Raw sled with one flush + fdatasync per `group` inserts: the ceiling group commit aims at.
fn raw_sled_group_commit(inserts: usize, group: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let directory = tempfile::tempdir()?;
    let db = sled::open(directory.path())?;
    let data_file = std::fs::File::open(directory.path().join("db"))?;
    let value = vec![7u8; 300];
    let started = Instant::now();
    for index in 0..inserts {
        db.insert((index as u128).to_be_bytes(), value.as_slice())?;
        if (index + 1) % group == 0 {
            db.flush()?;
            data_file.sync_data()?;
        }
    }
    db.flush()?;
    data_file.sync_data()?;
    Ok(inserts as f64 / started.elapsed().as_secs_f64())
}

/// Build a realistic log (charges created then updated), import it, and time replay and scans.
async fn replay_and_disk(sizes: &Sizes) -> Result<(), Box<dyn std::error::Error>> {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("data");
    let (events, projections) =
        synthetic_log(ACCOUNT, sizes.replay_events, sizes.events_per_charge);
    let logical_bytes: usize = events
        .iter()
        .map(|event| serde_json::to_vec(event).map_or(0, |bytes| bytes.len()))
        .sum();
    let ledger = Ledger::open(&path).await?;
    let started = Instant::now();
    let chunk_events = 10_000;
    let mut projection_rows = projections.into_iter();
    for chunk in events.chunks(chunk_events) {
        // Projections go in with the last chunk that touches them; every chunk is its own commit.
        let rows: Vec<_> = if chunk.last().map(|event| event.body.sequence)
            == events.last().map(|event| event.body.sequence)
        {
            projection_rows.by_ref().collect()
        } else {
            Vec::new()
        };
        ledger.store().import(chunk.to_vec(), rows).await?;
    }
    let import_rate = events.len() as f64 / started.elapsed().as_secs_f64();
    let disk_bytes = ledger.store().disk_bytes().await?;

    let started = Instant::now();
    let report = ledger.replay(&|_, _| {}).await?;
    let replay_elapsed = started.elapsed();
    assert_eq!(report.events as usize, events.len());
    assert!(
        report.mismatches.is_empty(),
        "replay found {} mismatches",
        report.mismatches.len()
    );
    let started = Instant::now();
    let verify = ledger.verify(&|_, _| {}).await?;
    let verify_elapsed = started.elapsed();
    assert!(verify.is_sound());
    ledger.close().await?;
    drop(ledger);

    // Raw sled, same data: a plain scan of the events tree, and a scan decoding each event.
    let db = sled::open(&path)?;
    let tree = db.open_tree("events")?;
    let started = Instant::now();
    let mut bytes = 0usize;
    for entry in tree.iter() {
        bytes += entry?.1.len();
    }
    let scan_rate = events.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for entry in tree.iter() {
        let (_, value) = entry?;
        let _: RecordedEvent = serde_json::from_slice(&value)?;
    }
    let decode_rate = events.len() as f64 / started.elapsed().as_secs_f64();
    drop(tree);
    drop(db);
    let raw_disk = raw_sled_disk_bytes(events.len().min(200_000), 300)?;

    let per_second = |elapsed: Duration| events.len() as f64 / elapsed.as_secs_f64();
    println!(
        "replay of {} events:     {:>9.0} events/s (rebuild all projections and compare); verify {:>9.0} events/s",
        events.len(),
        per_second(replay_elapsed),
        per_second(verify_elapsed)
    );
    println!(
        "raw sled scan, same events:   {scan_rate:>9.0} values/s plain ({bytes} bytes), {decode_rate:>9.0} values/s decoded to typed events"
    );
    println!("bulk import:                  {import_rate:>9.0} events/s");
    println!(
        "disk per event:               {:.0} bytes on disk for {:.0} logical bytes of event JSON ({:.1}x); raw sled, 300-byte values: {:.0} bytes each ({:.1}x)",
        disk_bytes as f64 / events.len() as f64,
        logical_bytes as f64 / events.len() as f64,
        disk_bytes as f64 / logical_bytes as f64,
        raw_disk,
        raw_disk / 316.0
    );
    Ok(())
}

fn raw_sled_disk_bytes(
    values: usize,
    value_bytes: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let directory = tempfile::tempdir()?;
    let db = sled::open(directory.path())?;
    let value = vec![7u8; value_bytes];
    for index in 0..values {
        db.insert((index as u128).to_be_bytes(), value.as_slice())?;
    }
    db.flush()?;
    Ok(db.size_on_disk()? as f64 / values as f64)
}

/// A sealed, chained log of `total` events: charges each created and then updated.
fn synthetic_log(
    account: &str,
    total: usize,
    events_per_charge: usize,
) -> (Vec<RecordedEvent>, Vec<(String, String, StoredProjection)>) {
    let mut events = Vec::with_capacity(total);
    let mut projections = Vec::new();
    let mut previous_hash = GENESIS_HASH.to_string();
    let recorded_at = OffsetDateTime::now_utc();
    let request = RequestMeta::library();
    let policy = AccountPolicy::default();
    while events.len() < total {
        let context = DecisionContext {
            now_unix: recorded_at.unix_timestamp(),
            livemode: false,
            ids: chargeledger::ledger::IdSource::stripe_ids(&chargeledger::ledger::RandomIds),
        };
        let charge_id = context.ids.charge.clone();
        let created_sequence = events.len() as u64 + 1;
        let mut state = None;
        let mut payload = create_charge(
            &CreateCharge::new(2000, "usd")
                .source("tok_visa")
                .description("Order")
                .metadata_set("order_id", "1"),
            None,
            &context,
        )
        .expect("valid");
        let mut version = 0;
        loop {
            version += 1;
            let projection = apply(state, &payload).expect("fold");
            let event = seal(EventBody {
                schema_version: EVENT_SCHEMA_VERSION,
                sequence: events.len() as u64 + 1,
                event_id: ids::event_id(),
                account: account.into(),
                stream_id: charge_id.clone(),
                stream_version: version,
                recorded_at,
                request: request.clone(),
                previous_hash: previous_hash.clone(),
                payload: payload.clone(),
            });
            previous_hash = event.hash.clone();
            events.push(event);
            if version as usize == events_per_charge || events.len() == total {
                projections.push((
                    account.to_string(),
                    charge_id.clone(),
                    StoredProjection {
                        version,
                        created_sequence,
                        projection,
                    },
                ));
                break;
            }
            let Projection::Charge(charge) = &projection else {
                unreachable!()
            };
            payload = update_charge(
                charge,
                &UpdateCharge::new()
                    .metadata_set("step", version.to_string())
                    .description(format!("Order v{version}")),
                None,
                &policy,
            )
            .expect("valid")
            .expect("every step changes the charge");
            state = Some(projection);
        }
    }
    (events, projections)
}

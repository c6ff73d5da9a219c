//! Search latency over one account's charges (a metadata match, a narrow and a wide amount range, a query no index serves) beside listing the same account, in the same run.
//!
//! `cargo bench --bench search` measures an account of 1M charges; `-- --quick` (CI) uses
//! 20,000. The account is written as a sealed log through `import`, which indexes each
//! projection as the server's writes do; every query then goes through `Ledger::search_charges`.

use std::time::{Duration, Instant};

use chargeledger::chain::{GENESIS_HASH, seal};
use chargeledger::domain::stripe::decide::create_charge;
use chargeledger::domain::{DecisionContext, apply};
use chargeledger::events::{EVENT_SCHEMA_VERSION, EventBody};
use chargeledger::ledger::{IdSource, ListCharges, RandomIds, SearchRequest};
use chargeledger::store::StoredProjection;
use chargeledger::{CreateCharge, Ledger, RequestMeta, ids};
use time::OffsetDateTime;

const ACCOUNT: &str = "sk_test_bench";
/// Amounts cycle through this many values, so an exact amount matches `charges / AMOUNT_VALUES`.
const AMOUNT_VALUES: usize = 100_000;
const IMPORT_CHUNK_CHARGES: usize = 10_000;

/// A query's text in a given round.
type QueryOfRound = Box<dyn Fn(usize) -> String>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|argument| argument == "--quick");
    let charges = if quick { 20_000 } else { 1_000_000 };
    let queries = if quick { 50 } else { 300 };
    println!(
        "chargeledger search ({} mode): one account of {charges} charges, {queries} queries per row",
        if quick { "quick" } else { "full" }
    );
    let directory = tempfile::tempdir()?;
    let ledger = Ledger::open(directory.path().join("data")).await?;
    let started = Instant::now();
    write_account(&ledger, charges).await?;
    println!(
        "written and indexed in {:.1} s; {} bytes on disk",
        started.elapsed().as_secs_f64(),
        ledger.store().disk_bytes().await?
    );

    let mut rows = Vec::new();
    rows.push((
        "list, first page (baseline)".to_string(),
        time(queries, |_| async {
            let page = ledger
                .list_charges(ACCOUNT, &ListCharges::default())
                .await?;
            assert_eq!(page.data.len(), 10);
            Ok(())
        })
        .await?,
    ));
    rows.push((
        "list, a page after a cursor".to_string(),
        time(queries, |round| {
            let ledger = &ledger;
            async move {
                let first_hundred = ledger
                    .list_charges(
                        ACCOUNT,
                        &ListCharges {
                            limit: 100,
                            ..ListCharges::default()
                        },
                    )
                    .await?;
                let cursor = &first_hundred.data[round % first_hundred.data.len()].id;
                let query = ListCharges {
                    cursor: chargeledger::store::PageCursor::StartingAfter(cursor.clone()),
                    ..ListCharges::default()
                };
                ledger.list_charges(ACCOUNT, &query).await?;
                Ok(())
            }
        })
        .await?,
    ));
    // Each query's label, its text in a given round, and how many results its first page holds
    // (`None`: it depends on the size; never more than 10).
    let searches: [(&str, QueryOfRound, Option<usize>); 4] = [
        (
            "search metadata['order_id'] (1 match)",
            Box::new(move |round| format!("metadata['order_id']:'{}'", (round * 7_919) % charges)),
            Some(1),
        ),
        (
            "search amount range, ~100 matches",
            Box::new(|round| {
                let low = 1_000 + (round * 13) % 50_000;
                format!("amount>={low} AND amount<{}", low + 10)
            }),
            None,
        ),
        (
            "search amount>50000 (half the account)",
            Box::new(|_| "amount>50000".to_string()),
            Some(10),
        ),
        (
            "search -metadata['order_id']:'0' (no index)",
            Box::new(|_| "-metadata['order_id']:'0'".to_string()),
            Some(10),
        ),
    ];
    for (label, query, expected) in &searches {
        let timings = time(queries, |round| {
            let ledger = &ledger;
            let text = query(round);
            async move {
                let request = SearchRequest {
                    text: &text,
                    limit: 10,
                    page: None,
                    count_total: false,
                };
                let page = ledger.search_charges(ACCOUNT, request).await?;
                assert!(page.data.len() <= 10, "{text}");
                if let Some(expected) = expected {
                    assert_eq!(page.data.len(), *expected, "{text}");
                }
                Ok(())
            }
        })
        .await?;
        rows.push((label.to_string(), timings));
    }
    println!("\n{:<46} {:>10} {:>10}", "what", "p50 ms", "p99 ms");
    for (label, mut timings) in rows {
        timings.sort();
        let at = |fraction: f64| {
            let index = ((timings.len() as f64 * fraction) as usize).min(timings.len() - 1);
            timings[index].as_secs_f64() * 1_000.0
        };
        println!("{label:<46} {:>10.3} {:>10.3}", at(0.50), at(0.99));
    }
    ledger.close().await?;
    Ok(())
}

/// Each round's latency, one round at a time.
async fn time<F, Fut>(
    rounds: usize,
    mut round: F,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
{
    let mut timings = Vec::with_capacity(rounds);
    for index in 0..rounds {
        let started = Instant::now();
        round(index).await?;
        timings.push(started.elapsed());
    }
    Ok(timings)
}

/// `charges` charges, one event each, with a unique `order_id` and amounts cycling through
/// `AMOUNT_VALUES` values, imported a chunk at a time so memory stays flat.
async fn write_account(ledger: &Ledger, charges: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut previous_hash = GENESIS_HASH.to_string();
    let recorded_at = OffsetDateTime::now_utc();
    let mut sequence = 0u64;
    let mut written = 0;
    while written < charges {
        let mut events = Vec::new();
        let mut projections = Vec::new();
        for index in written..(written + IMPORT_CHUNK_CHARGES).min(charges) {
            let context = DecisionContext {
                now_unix: recorded_at.unix_timestamp(),
                livemode: false,
                ids: RandomIds.stripe_ids(),
            };
            // Scattered over time, as real amounts are: consecutive charges differ by 35,761.
            let amount = 100 + (index * 2_654_435_761) % AMOUNT_VALUES;
            let command = CreateCharge::new(amount as i64, "usd")
                .source("tok_visa")
                .metadata_set("order_id", index.to_string());
            let payload = create_charge(&command, None, &context).expect("a valid charge");
            let projection = apply(None, &payload).expect("a charge folds");
            sequence += 1;
            let event = seal(EventBody {
                schema_version: EVENT_SCHEMA_VERSION,
                sequence,
                event_id: ids::event_id(),
                account: ACCOUNT.into(),
                stream_id: context.ids.charge.clone(),
                stream_version: 1,
                recorded_at,
                request: RequestMeta::library(),
                previous_hash: previous_hash.clone(),
                payload,
            });
            previous_hash = event.hash.clone();
            events.push(event);
            projections.push((
                ACCOUNT.to_string(),
                context.ids.charge.clone(),
                StoredProjection {
                    version: 1,
                    created_sequence: sequence,
                    projection,
                },
            ));
        }
        written += events.len();
        ledger.store().import(events, projections).await?;
        if written % 100_000 == 0 {
            eprintln!("  {written} charges written");
        }
    }
    Ok(())
}

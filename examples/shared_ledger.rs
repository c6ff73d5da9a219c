//! One ledger shared by several processes through PostgreSQL: what one writes, the others read
//! and are told of, and a race between them loses nothing.
//!
//! Run: `DATABASE_URL=postgres://user:password@localhost/ledger cargo run --example shared_ledger`
//! (the database needs no preparation: the schema is created on first open).

use std::time::Duration;

use chargeledger::ledger::LedgerOptions;
use chargeledger::{CreateCharge, Ledger, RequestMeta, UpdateCharge};

// `tests/examples.rs` calls `run` with a database of its own, so `main` is unused there.
#[allow(dead_code)]
#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(
        |_| "set DATABASE_URL to a PostgreSQL database, e.g. postgres://localhost/ledger",
    )?;
    run(&url).await
}

pub async fn run(database_url: &str) -> Result<(), Box<dyn std::error::Error>> {
    // Two handles on one database, as two servers behind a load balancer would have.
    let first = Ledger::open_postgres(database_url, LedgerOptions::default()).await?;
    let second = Ledger::open_postgres(database_url, LedgerOptions::default()).await?;
    let account = "sk_test_shared_shop";

    let charge = first
        .create_charge(
            account,
            CreateCharge::new(4200, "usd").source("tok_visa"),
            RequestMeta::library(),
        )
        .await?;
    // The second sees the charge at once: every read is of committed state.
    assert_eq!(
        second
            .get_charge(account, &charge.id)
            .await?
            .money
            .authorized,
        4200
    );

    // It is also told of what the first appends (LISTEN/NOTIFY wakes it).
    let head = second.store().head().await?.map_or(0, |head| head.sequence);
    let mut feed = second.subscribe(head);

    // Both update the same charge at once; neither update is lost.
    let (a, b) = tokio::join!(
        first.update_charge(
            account,
            &charge.id,
            UpdateCharge::new().metadata_set("packed_by", "first"),
            RequestMeta::library(),
        ),
        second.update_charge(
            account,
            &charge.id,
            UpdateCharge::new().metadata_set("shipped_by", "second"),
            RequestMeta::library(),
        ),
    );
    a?;
    b?;
    for _ in 0..2 {
        let event = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await?
            .ok_or("the feed closed")??;
        println!(
            "told of event #{}: {} version {}",
            event.body.sequence, event.body.stream_id, event.body.stream_version
        );
    }
    let charge = first.get_charge(account, &charge.id).await?;
    assert_eq!(charge.metadata["packed_by"], "first");
    assert_eq!(charge.metadata["shipped_by"], "second");
    for entry in first.history(account, &charge.id).await? {
        println!("{entry}");
    }
    let report = second.verify(&|_, _| {}).await?;
    assert!(report.is_sound(), "{report:?}");
    first.close().await?;
    second.close().await?;
    Ok(())
}

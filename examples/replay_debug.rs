//! Debug a charge by stepping through its versions and finding which request changed a field.
//!
//! Run: `cargo run --example replay_debug`

use chargeledger::{CreateCharge, Ledger, RequestMeta, UpdateCharge};

#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temporary = tempfile::tempdir()?;
    let ledger = Ledger::open(temporary.path().join("chargeledger-data")).await?;
    let account = "sk_test_debugging";

    let charge = ledger
        .create_charge(
            account,
            CreateCharge::new(999, "usd")
                .source("tok_visa")
                .description("Blue mug"),
            RequestMeta::library(),
        )
        .await?;
    for (actor, description) in [
        ("web", "Blue mug, gift wrapped"),
        ("batch-job", "MUG"),
        ("web", "Blue mug x2"),
    ] {
        ledger
            .update_charge(
                account,
                &charge.id,
                UpdateCharge::new().description(description),
                RequestMeta::library().with_actor(actor),
            )
            .await?;
    }

    // Step through every version of the charge.
    let history = ledger.history(account, &charge.id).await?;
    for entry in &history {
        let at_version = ledger
            .charge_at_version(account, &charge.id, entry.version)
            .await?;
        println!(
            "version {}: description = {:?}",
            entry.version,
            at_version.description.as_deref().unwrap_or("")
        );
    }

    // Which request set the description to "MUG"?
    let culprit = history.iter().find(|entry| {
        entry
            .changes
            .iter()
            .any(|change| change.field == "description" && change.current == "MUG")
    });
    if let Some(entry) = culprit {
        println!(
            "\"MUG\" was written at version {} by {} in request {} at {}",
            entry.version, entry.request.actor, entry.request.request_id, entry.recorded_at
        );
    }

    // Replay rebuilds every projection from the log and finds nothing to fix.
    let report = ledger.replay(&|_, _| {}).await?;
    println!(
        "replay: {} events, {} streams, {} mismatches",
        report.events,
        report.streams,
        report.mismatches.len()
    );
    ledger.close().await?;
    Ok(())
}

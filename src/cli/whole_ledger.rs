//! The verbs that read or move a whole ledger: replay, verify, export, import and migrate, each with progress on a terminal.

use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use super::DataDirectory;
use crate::ledger::{Ledger, LedgerError};

pub(super) async fn replay(data: DataDirectory) -> Result<(), LedgerError> {
    let ledger = data.open().await?;
    let bar = progress_bar("replaying");
    let report = ledger
        .replay(&|done, total| show_progress(&bar, done, total))
        .await?;
    bar.finish_and_clear();
    for mismatch in &report.mismatches {
        println!(
            "rebuilt {} (account {}): {}",
            mismatch.stream_id, mismatch.account, mismatch.detail
        );
    }
    println!(
        "replayed {} events into {} streams; {} projections were wrong and have been rebuilt",
        report.events,
        report.streams,
        report.mismatches.len()
    );
    ledger.close().await?;
    Ok(())
}

/// Exit 0 when sound, 1 naming the first bad record.
pub(super) async fn verify(data: DataDirectory, json: bool) -> Result<ExitCode, LedgerError> {
    let ledger = data.open_for_verification().await?;
    let bar = progress_bar("verifying");
    let report = ledger
        .verify(&|done, total| show_progress(&bar, done, total))
        .await?;
    bar.finish_and_clear();
    ledger.close().await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?
        );
    }
    match &report.first_fault {
        None => {
            if !json {
                println!(
                    "sound: {} events, {} streams, {} projections; hash chain, versions and projections all check",
                    report.events, report.streams, report.projections
                );
            }
        }
        Some(fault) => {
            if !json {
                println!("CORRUPT after {} good events: {fault}", report.events);
            }
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn export(data: DataDirectory) -> Result<(), LedgerError> {
    let ledger = data.open().await?;
    let bar = progress_bar("exporting");
    let mut output = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
    let exported = ledger
        .export(&mut output, &|done, total| show_progress(&bar, done, total))
        .await?;
    bar.finish_and_clear();
    drop(output);
    eprintln!("exported {exported} events");
    ledger.close().await?;
    Ok(())
}

pub(super) async fn import(data: DataDirectory) -> Result<(), LedgerError> {
    let ledger = data.open().await?;
    let bar = progress_bar("importing");
    let mut input = BufReader::with_capacity(1 << 20, std::io::stdin());
    let imported = ledger
        .import(&mut input, &|done, _| {
            bar.set_position(done);
        })
        .await;
    bar.finish_and_clear();
    let imported = imported?;
    ledger.close().await?;
    eprintln!("imported {imported} events; the hash chain checks");
    Ok(())
}

pub(super) async fn migrate(
    from: PathBuf,
    to: String,
    database_ca_file: Option<PathBuf>,
) -> Result<(), LedgerError> {
    let source = Ledger::open(&from).await?;
    let options = crate::ledger::LedgerOptions {
        database_ca_file,
        ..crate::ledger::LedgerOptions::default()
    };
    let target = Ledger::open_postgres(&to, options).await?;
    let bar = progress_bar("migrating");
    let copied = source
        .copy_into(&target, &|done, total| show_progress(&bar, done, total))
        .await;
    bar.finish_and_clear();
    let copied = copied?;
    target.close().await?;
    source.close().await?;
    eprintln!(
        "copied {copied} events from {} into the database; the hash chain checks. Serve it with `chargeledger serve --database-url …`",
        from.display()
    );
    Ok(())
}

/// A progress bar on standard error; indicatif draws nothing when that is not a terminal.
pub(super) fn progress_bar(action: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    let style =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(action.to_string());
    bar
}

pub(super) fn show_progress(bar: &ProgressBar, done: u64, total: u64) {
    bar.set_length(total.max(done));
    bar.set_position(done);
}

//! The `chargeledger` binary: parses the command line and runs it on a tokio runtime.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to standard error so that `export` and `--json` output stay clean. RUST_LOG
    // overrides the default of warnings only.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    chargeledger::cli::run(chargeledger::cli::Cli::parse()).await
}

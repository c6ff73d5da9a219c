//! The `chargeledger` binary: parses the command line and runs it on a tokio runtime.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: a profile of durable HTTP updates spent about a fifth of
/// its samples in glibc's `malloc`/`free` (BENCHMARKS.md). Only the binary chooses; an embedder's
/// allocator is its own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // Everything this process creates (the data directory's sled files, the key file, exports)
    // is for its owner only: it holds metadata, card fingerprints and key digests. Set before
    // any thread could create a file, and only in the binary: an embedder's umask is its own.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    // Logs go to standard error so that `export` and `--json` output stay clean. RUST_LOG
    // overrides the default of warnings only.
    let cli = chargeledger::cli::Cli::parse();
    // A server's operator wants to see it start and stop; the one-shot commands stay quiet.
    let default_level = match cli.command {
        chargeledger::cli::Command::Serve { .. } => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    chargeledger::cli::run(cli).await
}

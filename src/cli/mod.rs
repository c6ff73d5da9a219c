//! The `chargeledger` command line: the server, audit timelines, time travel, and the whole-ledger verbs, on a data directory or a PostgreSQL database.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

mod deliveries;
mod whole_ledger;

use crate::ledger::{Ledger, LedgerError};
use crate::server::{BoundServer, ConnectionLimits, ServeOptions, shutdown_signal};

/// Bytes in a mebibyte.
const MIB: u64 = 1024 * 1024;

/// An event-sourced charge ledger with a full audit trail.
#[derive(Debug, Parser)]
#[command(name = "chargeledger", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct DataDirectory {
    /// The data directory of the ledger (with --database-url, of the server's API key file only).
    #[arg(
        long = "data",
        env = "CHARGELEDGER_DATA",
        default_value = "./chargeledger-data"
    )]
    pub path: PathBuf,
    /// Keep the ledger in this PostgreSQL database instead of the data directory's embedded
    /// store: postgres://user:password@host:port/database (or libpq's key=value form). Any
    /// number of servers may share one database.
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A PEM file of CA certificates the database's TLS certificate may chain to, beside the
    /// system's roots; giving one asks for TLS, as `sslmode=require` in the URL does.
    #[arg(long = "database-ca-file", env = "CHARGELEDGER_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
}

impl DataDirectory {
    /// Open the ledger this names: the database if one is given, else the data directory.
    async fn open(&self) -> Result<Ledger, LedgerError> {
        match &self.database_url {
            Some(url) => Ledger::open_postgres(url, self.database_options()).await,
            None => Ledger::open(&self.path).await,
        }
    }

    fn database_options(&self) -> crate::ledger::LedgerOptions {
        crate::ledger::LedgerOptions {
            database_ca_file: self.database_ca_file.clone(),
            ..crate::ledger::LedgerOptions::default()
        }
    }

    /// Open it only to check it (`verify`): a damaged store opens too.
    async fn open_for_verification(&self) -> Result<Ledger, LedgerError> {
        match &self.database_url {
            Some(url) => Ledger::open_postgres_for_verification(url, self.database_options()).await,
            None => Ledger::open_for_verification(&self.path).await,
        }
    }
}

#[derive(Debug, Args)]
pub struct ChargeSelector {
    /// The charge id (`ch_…`).
    pub charge: String,
    /// The account the charge belongs to; needed only if its id exists in several accounts.
    #[arg(long)]
    pub account: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Stripe's charge API over HTTP (stripe-mock's port by default), persisting every change.
    Serve {
        /// The address to listen on; port 0 picks a free port.
        #[arg(long = "addr", default_value = "127.0.0.1:12111")]
        address: std::net::SocketAddr,
        #[command(flatten)]
        data: DataDirectory,
        /// A secret key to accept, one account each; repeatable: Stripe's sk_test_…/sk_live_…
        /// (its pk_ twin reads) or Omise's skey_test_…/skey_live_… (its pkey_ twin creates vault
        /// tokens). Without any, one test key of each is generated on first start.
        #[arg(
            long = "api-key",
            env = "CHARGELEDGER_API_KEYS",
            value_delimiter = ',',
            hide_env_values = true
        )]
        api_keys: Vec<String>,
        /// A file of secret keys to accept, one per line (`#` starts a comment). Prefer it, or
        /// CHARGELEDGER_API_KEYS, to --api-key: a command line is visible to every user in `ps`.
        #[arg(long)]
        api_keys_file: Option<PathBuf>,
        /// How long an idempotency key's first response is kept, in hours (at least 24).
        #[arg(long, default_value_t = 24)]
        idempotency_retention_hours: u64,
        /// Connections served at once; further clients wait to be accepted.
        #[arg(long, default_value_t = ConnectionLimits::default().max_connections as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        max_connections: u64,
        /// Seconds a client may take to send a request's headers (and to start one on an open
        /// connection).
        #[arg(long, default_value_t = ConnectionLimits::default().header_read_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
        header_read_timeout_secs: u64,
        /// Seconds a client may take to send a request's body.
        #[arg(long, default_value_t = ConnectionLimits::default().body_read_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
        body_read_timeout_secs: u64,
        /// Seconds a connection may stay silent in both directions before it is closed.
        #[arg(long, default_value_t = ConnectionLimits::default().idle_timeout.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
        idle_timeout_secs: u64,
        /// The most memory the store's page cache may hold, in MiB; the process needs this plus
        /// what connections and requests in flight use.
        #[arg(long, default_value_t = crate::store::DEFAULT_CACHE_CAPACITY_BYTES / MIB, value_parser = clap::value_parser!(u64).range(8..=1_048_576))]
        cache_mb: u64,
        /// Writes that may wait for the store at once; more are answered 429 (Stripe's
        /// `rate_limit`, Omise's `too_many_requests`) instead of queueing without bound.
        #[arg(long, default_value_t = crate::ledger::DEFAULT_MAX_PENDING_WRITES as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        max_pending_writes: u64,
        /// How long an uncaptured Omise authorization is held before it expires (Omise: 7 days;
        /// 30 for merchants registered in Japan). Charges keep the expiry they were made with.
        #[arg(long, default_value_t = crate::domain::omise::AUTHORIZATION_LIFETIME_SECONDS.unsigned_abs(), value_parser = clap::value_parser!(u64).range(1..=3_153_600_000))]
        omise_authorization_lifetime_secs: u64,
        /// How often due Omise authorizations are looked for and expired, in milliseconds.
        #[arg(long, default_value_t = crate::server::DEFAULT_EXPIRY_SWEEP_INTERVAL.as_millis() as u64, value_parser = clap::value_parser!(u64).range(10..=86_400_000))]
        expiry_sweep_ms: u64,
        #[command(flatten)]
        deliveries: deliveries::DeliveryArgs,
    },
    /// List the outbox's deliveries (webhooks, receipts) and every attempt made of each.
    Deliveries {
        #[command(flatten)]
        data: DataDirectory,
        /// Only this event's (evt_…, or Omise's evnt_…).
        #[arg(long)]
        event: Option<String>,
        /// Only those in this state.
        #[arg(long, value_parser = ["pending", "delivered", "failed", "cancelled"])]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Deliver an event again to the webhook endpoints that receive it now.
    Resend {
        /// The event (evt_…, or Omise's evnt_…).
        event: String,
        /// The event's account; found from its earlier deliveries when not given.
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        data: DataDirectory,
    },
    /// Print a charge's audit timeline: every version, who made it, and what changed.
    History {
        #[command(flatten)]
        selector: ChargeSelector,
        #[command(flatten)]
        data: DataDirectory,
        /// Print JSON instead of a readable timeline.
        #[arg(long)]
        json: bool,
    },
    /// Print a charge as JSON, now or as it was at a version or a moment.
    Show {
        #[command(flatten)]
        selector: ChargeSelector,
        #[command(flatten)]
        data: DataDirectory,
        /// The charge right after its N-th event.
        #[arg(long, conflicts_with = "as_of")]
        at_version: Option<u64>,
        /// The charge as it was at this RFC 3339 moment (e.g. 2026-11-23T10:00:00Z).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Rebuild every projection from the event log and report the ones that were wrong.
    Replay {
        #[command(flatten)]
        data: DataDirectory,
    },
    /// Check the hash chain, stream versions and projections; exit 1 naming the first bad record.
    Verify {
        #[command(flatten)]
        data: DataDirectory,
        #[arg(long)]
        json: bool,
    },
    /// Write every event to standard output as JSON Lines.
    Export {
        #[command(flatten)]
        data: DataDirectory,
    },
    /// Read JSON Lines from standard input into an empty data directory, verifying the chain.
    Import {
        #[command(flatten)]
        data: DataDirectory,
    },
    /// Copy a data directory's ledger into an empty PostgreSQL database, checking the hash chain
    /// on the way; then serve it with `serve --database-url`.
    Migrate {
        /// The data directory to copy from (it is only read).
        #[arg(long = "from")]
        from: PathBuf,
        /// The PostgreSQL database to copy into; it must hold no events yet.
        #[arg(long = "to", env = "DATABASE_URL", hide_env_values = true)]
        to: String,
        /// A PEM file of CA certificates the database's TLS certificate may chain to.
        #[arg(long = "database-ca-file", env = "CHARGELEDGER_DATABASE_CA_FILE")]
        database_ca_file: Option<PathBuf>,
    },
}

/// Run the server until SIGTERM or Ctrl-C; exit 2 if it cannot start or stops abnormally.
async fn serve(options: ServeOptions) -> ExitCode {
    // Before anything is printed: a signal sent on reading the startup line must be handled.
    let shutdown = shutdown_signal();
    let server = match BoundServer::bind(options).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    println!("{}", server.startup_message());
    match server.run(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

/// Run a parsed command. Errors are printed for an operator; the exit code says what happened.
pub async fn run(cli: Cli) -> ExitCode {
    match run_command(cli.command).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run_command(command: Command) -> Result<ExitCode, LedgerError> {
    match command {
        Command::Serve {
            address,
            data,
            mut api_keys,
            api_keys_file,
            idempotency_retention_hours,
            max_connections,
            header_read_timeout_secs,
            body_read_timeout_secs,
            idle_timeout_secs,
            cache_mb,
            max_pending_writes,
            omise_authorization_lifetime_secs,
            expiry_sweep_ms,
            deliveries,
        } => {
            if let Some(path) = api_keys_file {
                match crate::server::auth::read_api_keys_file(&path) {
                    Ok(keys) => api_keys.extend(keys),
                    Err(error) => {
                        eprintln!("chargeledger: {error}");
                        return Ok(ExitCode::from(2));
                    }
                }
            }
            let seconds = Duration::from_secs;
            let deliveries = deliveries.options(&data.path);
            let options = ServeOptions {
                deliveries,
                address,
                data_directory: data.path,
                database_url: data.database_url,
                database_ca_file: data.database_ca_file,
                api_keys,
                idempotency_retention: seconds(
                    idempotency_retention_hours.saturating_mul(crate::server::SECONDS_PER_HOUR),
                ),
                limits: ConnectionLimits {
                    // At most a million (checked above), so it fits any usize this runs on.
                    max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
                    header_read_timeout: seconds(header_read_timeout_secs),
                    body_read_timeout: seconds(body_read_timeout_secs),
                    idle_timeout: seconds(idle_timeout_secs),
                },
                cache_capacity_bytes: cache_mb * MIB,
                // At most a million (checked above), so it fits any usize this runs on.
                max_pending_writes: usize::try_from(max_pending_writes).unwrap_or(usize::MAX),
                omise_authorization_lifetime: seconds(omise_authorization_lifetime_secs),
                expiry_sweep_interval: Duration::from_millis(expiry_sweep_ms),
            };
            return Ok(serve(options).await);
        }
        Command::History {
            selector,
            data,
            json,
        } => {
            let ledger = data.open().await?;
            let account = resolve_account(&ledger, &selector).await?;
            let entries = ledger.history(&account, &selector.charge).await?;
            let mut output = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut output, &entries)
                    .map_err(std::io::Error::other)?;
                writeln!(output)?;
            } else {
                writeln!(
                    output,
                    "{} (account {account}), {} versions",
                    selector.charge,
                    entries.len()
                )?;
                for entry in &entries {
                    writeln!(output, "{entry}")?;
                }
            }
            ledger.close().await?;
        }
        Command::Show {
            selector,
            data,
            at_version,
            as_of,
        } => {
            let ledger = data.open().await?;
            let account = resolve_account(&ledger, &selector).await?;
            let charge = match (at_version, as_of) {
                (Some(version), _) => {
                    ledger
                        .charge_at_version(&account, &selector.charge, version)
                        .await?
                }
                (None, Some(moment)) => {
                    let moment = OffsetDateTime::parse(&moment, &Rfc3339).map_err(|error| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            format!("--as-of '{moment}' is not an RFC 3339 time such as 2026-11-23T10:00:00Z: {error}"),
                        )
                    })?;
                    ledger
                        .charge_as_of(&account, &selector.charge, moment)
                        .await?
                }
                (None, None) => ledger.get_charge(&account, &selector.charge).await?,
            };
            let mut output = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut output, &charge).map_err(std::io::Error::other)?;
            writeln!(output)?;
            ledger.close().await?;
        }
        Command::Deliveries {
            data,
            event,
            status,
            json,
        } => deliveries::list(data, event, status, json).await?,
        Command::Resend {
            event,
            account,
            data,
        } => deliveries::resend(data, event, account).await?,
        Command::Replay { data } => whole_ledger::replay(data).await?,
        Command::Verify { data, json } => return whole_ledger::verify(data, json).await,
        Command::Export { data } => whole_ledger::export(data).await?,
        Command::Import { data } => whole_ledger::import(data).await?,
        Command::Migrate {
            from,
            to,
            database_ca_file,
        } => whole_ledger::migrate(from, to, database_ca_file).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The account of a charge: as given, or the only account that has it.
async fn resolve_account(
    ledger: &Ledger,
    selector: &ChargeSelector,
) -> Result<String, LedgerError> {
    if let Some(account) = &selector.account {
        return Ok(account.clone());
    }
    let accounts = ledger.store().accounts_owning(&selector.charge).await?;
    match accounts.as_slice() {
        [account] => Ok(account.clone()),
        [] => Err(crate::domain::RequestError::NoSuchCharge {
            id: selector.charge.clone(),
        }
        .into()),
        several => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} exists in several accounts ({}); name one with --account",
                selector.charge,
                several.join(", ")
            ),
        )
        .into()),
    }
}

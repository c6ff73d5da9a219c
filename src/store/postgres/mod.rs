//! The PostgreSQL backend: the same log, projections and idempotency records as sled's, in tables that several chargeledger servers share.
//!
//! Writes go through one writer task per process, which batches the appends waiting in its
//! queue into one transaction (group commit). Every such transaction first locks the single
//! row of `chargeledger_chain_head` (`SELECT … FOR UPDATE`), so appends from all servers are
//! serialized at the head of the chain:
//! - sequence numbers are allocated under that lock from the committed head, so they are
//!   gap-free (a rolled-back batch allocated nothing that anyone else saw), and each batch links
//!   its first event to the previous batch's last hash, whichever server wrote it;
//! - commit order is sequence order: the next batch gets the lock only once this one is
//!   committed and visible, so a reader that sees event N sees every event before it, and a
//!   catch-up reader paging by `sequence > last_seen` never skips one;
//! - stream versions and idempotency keys are checked under the lock against committed state
//!   (`plan::BatchPlan`, the same code as sled's writer), and the unique index on
//!   `(account, stream_id, stream_version)` backs the check up.
//!
//! An append is acknowledged once PostgreSQL commits it (`synchronous_commit` is set on for the
//! writer's session, whatever the server's default). Each commit also sends
//! `NOTIFY chargeledger_events` with the new head; every process listens, so its durable
//! sequence (and with it `subscribe` and waiting readers) follows appends made by any server.

mod batch;
mod event_store;
mod outbox;
mod reads;
mod schema;
mod statements;
mod tls;
mod writer;

use std::sync::{Arc, Mutex};

use deadpool_postgres::{ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::clock::{Clock, SystemClock};
use crate::domain::Projection;
use crate::store::{ChainHead, StoreError, StoredProjection};

pub use schema::SCHEMA_VERSION;

/// The channel every commit notifies with the new head's sequence.
const NOTIFY_CHANNEL: &str = "chargeledger_events";
/// Connections the read pool may hold, beside the writer's and the listener's own.
const READ_POOL_SIZE: usize = 16;
/// How long connecting may take (unless the URL sets `connect_timeout`): a database that does
/// not answer fails requests with an error instead of holding them.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a read waits for a pooled connection when all are busy.
const POOL_WAIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long the listener waits before reconnecting after its connection dropped.
const LISTEN_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// What a caller may choose when opening the store.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The time an event is recorded at (`recorded_at`).
    pub clock: Arc<dyn Clock>,
    /// A PEM file of CA certificates the database's TLS certificate may chain to, beside the
    /// system's roots. Giving one asks for TLS, as `sslmode=require` in the URL does.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            clock: Arc::new(SystemClock),
            ca_file: None,
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;
type ProjectionRows = Vec<(String, String, StoredProjection)>;

enum Job {
    Append(
        Box<crate::store::AppendRequest>,
        Reply<Vec<crate::events::RecordedEvent>>,
    ),
    Import(Vec<crate::events::RecordedEvent>, ProjectionRows, Reply<()>),
    PutProjections(ProjectionRows, Reply<()>),
}

/// A PostgreSQL-backed `EventStore`. Any number of processes may open one database.
pub struct PostgresStore {
    /// The database URL with any password removed, for messages.
    location: String,
    pool: Pool,
    jobs: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    listener: tokio::task::JoinHandle<()>,
    durable_sequence: watch::Receiver<u64>,
}

impl PostgresStore {
    /// Connect to `database_url` (`postgres://user:password@host:port/database`, libpq's
    /// key=value form too), apply pending schema migrations and start the writer and listener.
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        PostgresStore::open_with(database_url, PostgresOptions::default()).await
    }

    /// Open like [`PostgresStore::open`] with a chosen clock.
    pub async fn open_with(
        database_url: &str,
        options: PostgresOptions,
    ) -> Result<Self, StoreError> {
        PostgresStore::open_in_mode(database_url, options, true).await
    }

    /// Open without checking the head against the newest event, so that `verify` can report on
    /// a damaged database. Do not serve requests from such a store.
    pub async fn open_for_verification(
        database_url: &str,
        options: PostgresOptions,
    ) -> Result<Self, StoreError> {
        PostgresStore::open_in_mode(database_url, options, false).await
    }

    async fn open_in_mode(
        database_url: &str,
        options: PostgresOptions,
        check_head: bool,
    ) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = database_url.parse().map_err(|error| {
            StoreError::Database(format!(
                "cannot read the database URL: {error}; expected postgres://user:password@host:port/database"
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let location = describe_config(&config);
        let tls = tls::Tls::for_config(&config, options.ca_file.as_deref())?;
        let mut setup = connect(&config, &tls, &location).await?;
        schema::migrate(&mut setup).await?;
        let fsync: String = setup
            .query_one("SHOW fsync", &[])
            .await
            .map_err(database_error)?
            .get(0);
        if fsync != "on" {
            warn!(%location, "PostgreSQL runs with fsync off: acknowledged writes can be lost in a power failure");
        }
        let head = writer::read_head(&setup).await?;
        if check_head {
            check_head_event(&setup, &head, &location).await?;
        }
        drop(setup);
        let manager = tls.manager(
            config.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(READ_POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|error| StoreError::Database(error.to_string()))?;
        let (durable_sender, durable_sequence) = watch::channel(head.sequence);
        let durable_sender = Arc::new(durable_sender);
        let listener = tokio::spawn(listen(
            config.clone(),
            tls.clone(),
            location.clone(),
            durable_sender.clone(),
        ));
        let (job_sender, job_receiver) = mpsc::unbounded_channel();
        let writer = writer::Writer {
            config,
            tls,
            location: location.clone(),
            connection: None,
            durable_sender,
            clock: options.clock,
        };
        let writer = tokio::spawn(writer.run(job_receiver));
        info!(%location, events = head.sequence, "opened PostgreSQL store");
        Ok(PostgresStore {
            location,
            pool,
            jobs: Mutex::new(Some(job_sender)),
            writer: Mutex::new(Some(writer)),
            listener,
            durable_sequence,
        })
    }

    /// Where the store is: the database URL without its password.
    pub fn location(&self) -> &str {
        &self.location
    }

    async fn submit<T>(&self, make_job: impl FnOnce(Reply<T>) -> Job) -> Result<T, StoreError> {
        let (reply, response) = oneshot::channel();
        {
            let jobs = self.jobs.lock().map_err(|_| StoreError::Closed)?;
            let sender = jobs.as_ref().ok_or(StoreError::Closed)?;
            sender
                .send(make_job(reply))
                .map_err(|_| StoreError::Closed)?;
        }
        response.await.map_err(|_| StoreError::Closed)?
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|error| {
            StoreError::Database(format!(
                "no connection to {} could be had: {error}",
                self.location
            ))
        })
    }

    fn corrupt(&self, location: String, detail: impl ToString) -> StoreError {
        StoreError::CorruptRecord {
            path: self.location.clone(),
            location,
            detail: detail.to_string(),
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Connect one client (its connection driven on a task of its own), with an error that says
/// what to check.
async fn connect(
    config: &tokio_postgres::Config,
    tls: &tls::Tls,
    location: &str,
) -> Result<tokio_postgres::Client, StoreError> {
    tls.connect(config, None).await.map_err(|error| {
        StoreError::Database(format!(
            "cannot connect to {location}: {}. Check that PostgreSQL runs there, that the URL's user, password and database are right, and for TLS that its certificate chains to the system's roots or --database-ca-file",
            describe_error(&error)
        ))
    })
}

/// Refuse a database whose head does not match its newest event (an event edited or removed
/// since it was written), as the sled store does at open: nothing wrong is served.
async fn check_head_event(
    client: &tokio_postgres::Client,
    head: &ChainHead,
    location: &str,
) -> Result<(), StoreError> {
    if head.sequence == 0 {
        return Ok(());
    }
    let row = client
        .query_opt(
            "SELECT record FROM chargeledger_events WHERE sequence = $1",
            &[&to_i64(head.sequence)],
        )
        .await
        .map_err(database_error)?;
    let corrupt = |detail: String| StoreError::CorruptRecord {
        path: location.to_string(),
        location: format!("event #{} (the chain head)", head.sequence),
        detail,
    };
    let Some(row) = row else {
        return Err(corrupt("the head names it, but it is missing".into()));
    };
    let stored = crate::store::stored_event::decode_hashed_record(row.get::<_, &str>(0).as_bytes())
        .map_err(corrupt)?;
    if stored.computed_hash != stored.event.hash || stored.event.hash != head.hash {
        return Err(corrupt(
            "it was altered: its hash does not match its contents or the chain head".into(),
        ));
    }
    Ok(())
}

/// Follow every server's commits: LISTEN for the head each commit notifies, reconnecting (and
/// re-reading the head, so nothing notified meanwhile is missed) whenever the connection drops.
async fn listen(
    config: tokio_postgres::Config,
    tls: tls::Tls,
    location: String,
    durable_sender: Arc<watch::Sender<u64>>,
) {
    loop {
        match listen_once(&config, &tls, &durable_sender).await {
            Ok(()) => warn!(%location, "the LISTEN connection closed; reconnecting"),
            Err(error) => {
                warn!(%location, %error, "cannot listen for other servers' commits; retrying")
            }
        }
        tokio::time::sleep(LISTEN_RETRY_DELAY).await;
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    tls: &tls::Tls,
    durable_sender: &watch::Sender<u64>,
) -> Result<(), StoreError> {
    let (notifications, mut received) = mpsc::unbounded_channel();
    let client = tls
        .connect(config, Some(notifications))
        .await
        .map_err(database_error)?;
    let outcome = async {
        // The head first: on a database without LISTEN (CockroachDB, say) each retry still
        // reads it, so other servers' commits are seen within `LISTEN_RETRY_DELAY`.
        advance(durable_sender, writer::read_head(&client).await?.sequence);
        client
            .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
            .await
            .map_err(database_error)?;
        // Listening from here on; read the head again for what committed in between.
        advance(durable_sender, writer::read_head(&client).await?.sequence);
        while let Some(notification) = received.recv().await {
            match notification.payload().parse::<u64>() {
                Ok(sequence) => advance(durable_sender, sequence),
                Err(_) => warn!(
                    payload = notification.payload(),
                    "ignoring a notification that is not a sequence number"
                ),
            }
        }
        Ok(())
    }
    .await;
    // Dropping the client closes the connection and ends its driver.
    drop(client);
    outcome
}

/// Move the durable sequence forward (never back: notifications may arrive late).
fn advance(durable_sender: &watch::Sender<u64>, sequence: u64) {
    durable_sender.send_if_modified(|durable| {
        let moved = sequence > *durable;
        *durable = (*durable).max(sequence);
        moved
    });
}

/// Where a database URL points (user, host, port, database), never its password.
pub fn describe_database_url(database_url: &str) -> String {
    match database_url.parse::<tokio_postgres::Config>() {
        Ok(config) => describe_config(&config),
        Err(_) => "an unreadable database URL".to_string(),
    }
}

/// The URL's host, port, database and user, never its password.
fn describe_config(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// A PostgreSQL error with the server's own message and SQLSTATE, which `Display` leaves out,
/// or else with its causes (a TLS handshake's reason, say).
fn describe_error(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut described = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        described.push_str(": ");
        described.push_str(&cause.to_string());
        source = cause.source();
    }
    described
}

fn database_error(error: tokio_postgres::Error) -> StoreError {
    StoreError::Database(describe_error(&error))
}

/// The `kind` column: which list a projection belongs to.
fn projection_kind(projection: &Projection) -> &'static str {
    match projection {
        Projection::Charge(_) => "charge",
        Projection::Customer(_) => "customer",
        Projection::AccountPolicy(_) => "policy",
        Projection::Token(_) => "token",
        Projection::WebhookEndpoints(_) => "webhook_endpoints",
    }
}

/// A projection's state as stored: its JSON. Plain data with string keys always encodes.
fn encode_state(projection: &Projection) -> String {
    serde_json::to_string(projection).expect(
        "the store's own records always encode as JSON; failing to is a bug in chargeledger",
    )
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).expect("sequences and versions stay below 2^63")
}

fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value)
        .map_err(|_| StoreError::Database(format!("a negative {what} ({value}) is stored")))
}

/// An empty log's head: sequence 0, linked to the genesis hash.
fn empty_head() -> ChainHead {
    ChainHead {
        sequence: 0,
        hash: crate::chain::GENESIS_HASH.to_string(),
    }
}

//! The embedded default backend: the event log, stream index, projections and idempotency records in sled 0.34.7.
//!
//! All writes go through one writer thread. It takes every append waiting in its queue, checks
//! each against the stream versions and idempotency keys (no sled conflicts are possible with a
//! single writer), allocates gap-free sequence numbers and chains the hashes, applies the whole
//! batch in one sled transaction, then calls `flush()` and `fdatasync` once for the batch before
//! acknowledging anyone (group commit). Readers never see the log beyond the durable head, and a
//! read that meets a projection or idempotency record of a batch still being synced waits for
//! that sync. After a failed flush or fdatasync the store is poisoned: it refuses every write and
//! every read until the process restarts (the writer's steps can be made to fail in tests, see
//! `faults`).
//!
//! Trees (keys are `account 0x00 …`, integers big-endian so byte order is numeric order):
//! - `events`: sequence → `RecordedEvent` JSON
//! - `streams`: account, stream id, version → sequence
//! - `projections`: account, stream id → version, creation sequence, `Projection` JSON
//! - `charges_by_creation`: account, creation sequence → charge id (for newest-first lists)
//! - `customers_by_creation`: account, creation sequence → customer id
//! - `account_events`: account, sequence → event id (an account's events, newest first)
//! - `event_ids`: account, event id → sequence (`GET /v1/events/{id}`, event cursors)
//! - `refunds_by_creation`: account, sequence of the event that recorded the refund → charge
//!   id, refund id (`GET /v1/refunds`, newest first)
//! - `refund_ids`: account, refund id → that sequence, charge id, refund id (`GET /v1/refunds/{id}`, cursors)
//! - `search_keys`: account, search key, creation sequence → charge or customer id (Stripe
//!   search; see `domain::search::keys` and `search.rs`)
//! - `idempotency`: account, key → `IdempotencyRecord` JSON
//! - `owners`: stream id, account → nothing (which account a charge or customer belongs to, for operators' tools)
//! - `outbox`: deliveries (account, event sequence, number → `Delivery` JSON) and the queue of
//!   pending ones by due time (see `outbox.rs`)
//! - `meta`: `head` → `ChainHead`, `format` → the layout version

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use async_trait::async_trait;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::chain::{ChainFault, ChainVerifier, GENESIS_HASH};
use crate::clock::{Clock, SystemClock};
use crate::domain::{ChargeState, Customer, Projection};
use crate::events::RecordedEvent;
use crate::store::durability::DurableSync;
use crate::store::faults::{FaultInjector, FaultPoint};
use crate::store::plan::{
    BatchPlan, PlannedStream, SealedEvent, StoredStreams, StreamState, check_import,
};
use crate::store::{
    AppendRequest, ChainHead, EventStore, HashedEvent, IdempotencyRecord, IndexEntry, IndexScan,
    Page, PageCursor, RefundLocation, StoreError, StoredProjection,
};

mod event_store;
mod keys;
mod layout;
mod outbox;
mod reads;
mod refunds;
mod scan;
mod search;
mod staging;
mod writer;

use keys::*;
use layout::*;
use scan::decode_hashed;
use search::*;
use staging::*;
use writer::*;

/// What a caller may choose when opening a store: the writer's fault seam (tests) and its clock.
#[derive(Debug, Clone)]
pub struct SledOptions {
    pub faults: FaultInjector,
    pub clock: Arc<dyn Clock>,
    /// The most memory sled's page cache may hold, in bytes. sled's own default is 1 GiB.
    pub cache_capacity_bytes: u64,
}

/// The page cache a store gets unless told otherwise: 256 MiB, a quarter of sled's default, so a
/// server's resident memory stays bounded on small machines (`--cache-mb` changes it).
pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 256 * 1024 * 1024;

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            faults: FaultInjector::none(),
            clock: Arc::new(SystemClock),
            cache_capacity_bytes: DEFAULT_CACHE_CAPACITY_BYTES,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpenMode {
    CheckHead,
    SkipHeadCheck,
}

#[derive(Clone)]
struct Trees {
    events: sled::Tree,
    streams: sled::Tree,
    projections: sled::Tree,
    charges_by_creation: sled::Tree,
    customers_by_creation: sled::Tree,
    account_events: sled::Tree,
    event_ids: sled::Tree,
    refunds_by_creation: sled::Tree,
    refund_ids: sled::Tree,
    search_keys: sled::Tree,
    idempotency: sled::Tree,
    owners: sled::Tree,
    outbox: sled::Tree,
    meta: sled::Tree,
}

#[derive(Clone, Copy)]
enum TreeName {
    Events,
    Streams,
    Projections,
    ChargesByCreation,
    CustomersByCreation,
    AccountEvents,
    EventIds,
    RefundsByCreation,
    RefundIds,
    SearchKeys,
    Idempotency,
    Owners,
    Outbox,
    Meta,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;
type ProjectionRows = Vec<(String, String, StoredProjection)>;
type IndexEntries = Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>>;

enum Job {
    Append(Box<AppendRequest>, Reply<Vec<RecordedEvent>>),
    Import(Vec<RecordedEvent>, ProjectionRows, Reply<()>),
    PutProjections(ProjectionRows, Reply<()>),
    /// Remove idempotency records created before this unix time.
    PurgeIdempotency(i64, Reply<usize>),
    /// Write deliveries with their new attempts and state.
    SaveDeliveries(Vec<crate::store::Delivery>, Reply<()>),
}

/// A sled-backed `EventStore`. Only one process may open a data directory at a time.
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    trees: Trees,
    jobs: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    durable_head: Arc<Mutex<Option<ChainHead>>>,
    durable_sequence: watch::Receiver<u64>,
    poisoned: Arc<OnceLock<String>>,
    /// Set by `open` on a store of layout 1 or 2: its projections are in an older shape and are
    /// never read until the ledger has rebuilt them from the log.
    projections_stale: std::sync::atomic::AtomicBool,
    /// Claimed deliveries (record key) and until when, in Unix ms, their claim holds.
    leases: Mutex<std::collections::HashMap<Vec<u8>, i64>>,
}

impl SledStore {
    /// Open (or create) the store in `path`, check the hash chain at its head, and start the writer.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        SledStore::open_with(path, SledOptions::default())
    }

    /// Open like [`SledStore::open`], with the writer's fault seam and clock chosen by the caller.
    pub fn open_with(path: impl AsRef<Path>, options: SledOptions) -> Result<Self, StoreError> {
        SledStore::open_in_mode(path.as_ref(), OpenMode::CheckHead, options)
    }

    /// Open like [`SledStore::open`], with the writer asking `faults` before every commit,
    /// flush and fdatasync, so that tests can make those steps fail or wait
    /// (see [`crate::store::faults`]).
    pub fn open_with_faults(
        path: impl AsRef<Path>,
        faults: FaultInjector,
    ) -> Result<Self, StoreError> {
        SledStore::open_with(
            path,
            SledOptions {
                faults,
                ..SledOptions::default()
            },
        )
    }

    /// Open a store without checking its head, so that `verify` can report on a damaged one.
    /// The head is taken to be the last stored event. Do not serve requests from such a store.
    pub fn open_for_verification(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        SledStore::open_in_mode(
            path.as_ref(),
            OpenMode::SkipHeadCheck,
            SledOptions::default(),
        )
    }

    fn open_in_mode(path: &Path, mode: OpenMode, options: SledOptions) -> Result<Self, StoreError> {
        let SledOptions {
            faults,
            clock,
            cache_capacity_bytes,
        } = options;
        let path = path.to_path_buf();
        if mode == OpenMode::SkipHeadCheck && !path.join("db").exists() {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} holds no chargeledger store", path.display()),
            )));
        }
        crate::store::permissions::create_private_directory(&path)?;
        let db = open_sled(&path, cache_capacity_bytes)?;
        let trees = Trees {
            events: db.open_tree("events")?,
            streams: db.open_tree("streams")?,
            projections: db.open_tree("projections")?,
            charges_by_creation: db.open_tree("charges_by_creation")?,
            customers_by_creation: db.open_tree("customers_by_creation")?,
            account_events: db.open_tree("account_events")?,
            event_ids: db.open_tree("event_ids")?,
            refunds_by_creation: db.open_tree("refunds_by_creation")?,
            refund_ids: db.open_tree("refund_ids")?,
            search_keys: db.open_tree("search_keys")?,
            idempotency: db.open_tree("idempotency")?,
            owners: db.open_tree("owners")?,
            outbox: db.open_tree("outbox")?,
            meta: db.open_tree("meta")?,
        };
        let head = match mode {
            OpenMode::CheckHead => check_format_and_head(&path, &trees)?,
            OpenMode::SkipHeadCheck => last_stored_event(&trees),
        };
        let format = trees.meta.get(FORMAT_KEY)?;
        let upgrading = mode == OpenMode::CheckHead;
        let needs_account_indexes = format.as_deref() == Some(FORMAT_VALUE_WITHOUT_ACCOUNT_INDEXES);
        // Layouts 2 and 3 have every index but the refunds'.
        let needs_refund_indexes = format.as_deref() == Some(FORMAT_VALUE_WITH_STRIPE_PROJECTIONS)
            || format.as_deref() == Some(FORMAT_VALUE_WITHOUT_REFUND_INDEXES);
        if needs_account_indexes && upgrading {
            add_log_indexes(&path, &trees, LogIndexes::All)?;
            info!(path = %path.display(), "added per-account event, customer and refund indexes (layout 1 to 2)");
        }
        if needs_refund_indexes && upgrading {
            add_log_indexes(&path, &trees, LogIndexes::RefundsOnly)?;
            info!(path = %path.display(), "added the refund indexes");
        }
        // Layouts 3 and 4 have current projections but no search index: it is filled from them.
        // (Layouts 1 and 2 get it when their projections are rebuilt.)
        let needs_search_keys = format.as_deref() == Some(FORMAT_VALUE_WITHOUT_REFUND_INDEXES)
            || format.as_deref() == Some(FORMAT_VALUE_WITHOUT_SEARCH_INDEX);
        if needs_search_keys && upgrading {
            let indexed = add_search_keys(&path, &trees)?;
            info!(path = %path.display(), indexed, "added the search index");
        }
        // Layouts 1 and 2 keep projections in an older shape: they are rebuilt from the log
        // before anything is read (see `Ledger::open`), and the layout becomes 5 after that.
        let projections_stale = needs_account_indexes
            || format.as_deref() == Some(FORMAT_VALUE_WITH_STRIPE_PROJECTIONS);
        if format.is_none() {
            trees.meta.insert(FORMAT_KEY, FORMAT_VALUE)?;
            db.flush()?;
        } else if needs_account_indexes && upgrading {
            // The indexes are layout 2's; the layout becomes 5 only once projections are rebuilt.
            trees
                .meta
                .insert(FORMAT_KEY, FORMAT_VALUE_WITH_STRIPE_PROJECTIONS)?;
            db.flush()?;
        } else if needs_search_keys && upgrading {
            trees.meta.insert(FORMAT_KEY, FORMAT_VALUE)?;
            db.flush()?;
        }
        let mut sync = DurableSync::open(&path)?;
        sync.sync()?;
        info!(
            path = %path.display(),
            events = head.as_ref().map_or(0, |head| head.sequence),
            "opened sled store"
        );

        let (job_sender, job_receiver) = mpsc::unbounded_channel();
        let (durable_sender, durable_sequence) =
            watch::channel(head.as_ref().map_or(0, |head| head.sequence));
        let durable_head = Arc::new(Mutex::new(head.clone()));
        let poisoned = Arc::new(OnceLock::new());
        let writer = Writer {
            path: path.display().to_string(),
            db: db.clone(),
            trees: trees.clone(),
            sync,
            head: head.unwrap_or(ChainHead {
                sequence: 0,
                hash: GENESIS_HASH.to_string(),
            }),
            durable_head: durable_head.clone(),
            durable_sender,
            poisoned: poisoned.clone(),
            faults,
            clock,
        };
        let writer_thread = std::thread::Builder::new()
            .name("chargeledger-writer".into())
            .spawn(move || writer.run(job_receiver))?;
        Ok(SledStore {
            path,
            db,
            trees,
            jobs: Mutex::new(Some(job_sender)),
            writer: Mutex::new(Some(writer_thread)),
            durable_head,
            durable_sequence,
            poisoned,
            projections_stale: projections_stale.into(),
            leases: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn submit<T>(&self, make_job: impl FnOnce(Reply<T>) -> Job) -> Result<T, StoreError> {
        if let Some(detail) = self.poisoned.get() {
            return Err(StoreError::Poisoned {
                detail: detail.clone(),
            });
        }
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

    fn durable_limit(&self) -> u64 {
        *self.durable_sequence.borrow()
    }

    /// Refuse reads once a batch failed to become durable: sled still holds that batch in memory
    /// and would serve it, though a crash could take it back. Restarting (then `verify`) is the
    /// way out, as for writes.
    fn refuse_if_poisoned(&self) -> Result<(), StoreError> {
        match self.poisoned.get() {
            Some(detail) => Err(StoreError::Poisoned {
                detail: detail.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Wait until the event `sequence` is durable, so that a read never shows state a crash
    /// could take back. A projection is written in its batch's transaction, before the batch's
    /// flush and fdatasync; a reader that meets it in that window waits for the sync (one group
    /// commit at most), and fails if the sync failed.
    async fn wait_until_durable(&self, sequence: u64) -> Result<(), StoreError> {
        if sequence > self.durable_limit() {
            let mut durable = self.durable_sequence.clone();
            durable
                .wait_for(|durable| *durable >= sequence || self.poisoned.get().is_some())
                .await
                .map_err(|_| StoreError::Closed)?;
        }
        self.refuse_if_poisoned()
    }
}

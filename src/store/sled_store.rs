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
//! - `idempotency`: account, key → `IdempotencyRecord` JSON
//! - `owners`: stream id, account → nothing (which account a charge or customer belongs to, for operators' tools)
//! - `meta`: `head` → `ChainHead`, `format` → the layout version

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use async_trait::async_trait;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info};

use crate::chain::{ChainFault, ChainVerifier, GENESIS_HASH, seal};
use crate::clock::{Clock, SystemClock};
use crate::domain::{ChargeState, Customer, Projection};
use crate::events::{EVENT_SCHEMA_VERSION, EventBody, EventPayload, RecordedEvent, RequestMeta};
use crate::ids;
use crate::store::durability::DurableSync;
use crate::store::faults::{FaultInjector, FaultPoint};
use crate::store::{
    AppendRequest, ChainHead, EventStore, IdempotencyRecord, Page, PageCursor, StoreError,
    StoredProjection,
};

const FORMAT_KEY: &[u8] = b"format";
/// Layout 3: projections hold the dialect-neutral `ChargeState`.
const FORMAT_VALUE: &[u8] = b"chargeledger-sled-3";
/// Layout 2: projections held Stripe's charge object (with an `omise` part). Its events and
/// indexes are layout 3's; only the projections must be rebuilt from the log.
const FORMAT_VALUE_WITH_STRIPE_PROJECTIONS: &[u8] = b"chargeledger-sled-2";
/// Layout 1: layout 2 before per-account event and customer indexes; `open` adds them.
const FORMAT_VALUE_WITHOUT_ACCOUNT_INDEXES: &[u8] = b"chargeledger-sled-1";
const HEAD_KEY: &[u8] = b"head";
/// How many of the newest events `open` re-verifies before serving.
const TAIL_CHECKED_ON_OPEN: u64 = 1024;
/// Upper bound on appends in one group commit, so one batch's latency stays bounded.
const MAX_BATCH_JOBS: usize = 1024;

/// What a caller may choose when opening a store: the writer's fault seam (tests) and its clock.
#[derive(Debug, Clone)]
pub struct SledOptions {
    pub faults: FaultInjector,
    pub clock: Arc<dyn Clock>,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            faults: FaultInjector::none(),
            clock: Arc::new(SystemClock),
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
    idempotency: sled::Tree,
    owners: sled::Tree,
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
    Idempotency,
    Owners,
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
        let SledOptions { faults, clock } = options;
        let path = path.to_path_buf();
        if mode == OpenMode::SkipHeadCheck && !path.join("db").exists() {
            return Err(StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} holds no chargeledger store", path.display()),
            )));
        }
        crate::store::permissions::create_private_directory(&path)?;
        let db = open_sled(&path)?;
        let trees = Trees {
            events: db.open_tree("events")?,
            streams: db.open_tree("streams")?,
            projections: db.open_tree("projections")?,
            charges_by_creation: db.open_tree("charges_by_creation")?,
            customers_by_creation: db.open_tree("customers_by_creation")?,
            account_events: db.open_tree("account_events")?,
            event_ids: db.open_tree("event_ids")?,
            idempotency: db.open_tree("idempotency")?,
            owners: db.open_tree("owners")?,
            meta: db.open_tree("meta")?,
        };
        let head = match mode {
            OpenMode::CheckHead => check_format_and_head(&path, &trees)?,
            OpenMode::SkipHeadCheck => last_stored_event(&trees),
        };
        let format = trees.meta.get(FORMAT_KEY)?;
        let needs_account_indexes = format.as_deref() == Some(FORMAT_VALUE_WITHOUT_ACCOUNT_INDEXES);
        if needs_account_indexes && mode == OpenMode::CheckHead {
            add_account_indexes(&path, &trees)?;
            info!(path = %path.display(), "added per-account event and customer indexes (layout 1 to 2)");
        }
        let projections_stale = format.is_some() && format.as_deref() != Some(FORMAT_VALUE);
        if format.is_none() {
            trees.meta.insert(FORMAT_KEY, FORMAT_VALUE)?;
            db.flush()?;
        } else if needs_account_indexes && mode == OpenMode::CheckHead {
            // The indexes are layout 2's; the layout becomes 3 only once projections are rebuilt.
            trees
                .meta
                .insert(FORMAT_KEY, FORMAT_VALUE_WITH_STRIPE_PROJECTIONS)?;
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

    /// The sequence of the event that brought the stream at `key` to `version` (0 if none).
    /// sled's concurrency control keeps plain reads out while a transaction applies, so once a
    /// projection from a batch is seen, that batch's stream index entries are in place too.
    fn sequence_of_version(&self, key: &[u8], version: u64) -> Result<u64, StoreError> {
        let mut index_key = Vec::with_capacity(key.len() + 9);
        index_key.extend_from_slice(key);
        index_key.push(0);
        index_key.extend_from_slice(&version.to_be_bytes());
        Ok(self
            .trees
            .streams
            .get(index_key)?
            .map_or(0, |sequence| read_u64(&sequence, 0)))
    }

    fn corrupt(&self, location: String, detail: impl ToString) -> StoreError {
        StoreError::CorruptRecord {
            path: self.path.display().to_string(),
            location,
            detail: detail.to_string(),
        }
    }

    fn decode_event(&self, key: &[u8], value: &[u8]) -> Result<RecordedEvent, StoreError> {
        serde_json::from_slice(value)
            .map_err(|error| self.corrupt(format!("event #{}", read_u64(key, 0)), error))
    }

    fn decode_projection(&self, key: &[u8], value: &[u8]) -> Result<StoredProjection, StoreError> {
        decode_projection(value).map_err(|detail| {
            self.corrupt(
                format!(
                    "projection {}",
                    String::from_utf8_lossy(key).replace('\0', "/")
                ),
                detail,
            )
        })
    }

    /// A page of the charges or customers listed in a creation index, newest first, once every
    /// state on it is durable.
    async fn durable_page_of_streams<T>(
        &self,
        index: &sled::Tree,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        select: impl Fn(Projection) -> Option<T>,
    ) -> Result<Page<T>, StoreError> {
        self.refuse_if_poisoned()?;
        let newest_sequence = std::cell::Cell::new(0);
        let page = self.page_of_streams(index, account, cursor, limit, &newest_sequence, select)?;
        self.wait_until_durable(newest_sequence.get()).await?;
        Ok(page)
    }

    /// A page of the charges or customers listed in a creation index, newest first; records in
    /// `newest_sequence` the newest event any state on the page reflects.
    fn page_of_streams<T>(
        &self,
        index: &sled::Tree,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        newest_sequence: &std::cell::Cell<u64>,
        select: impl Fn(Projection) -> Option<T>,
    ) -> Result<Page<T>, StoreError> {
        let cursor_sequence = |stream_id: &str| -> Result<u64, StoreError> {
            Ok(self
                .load_sync(account, stream_id)?
                .map_or(0, |stored| stored.created_sequence))
        };
        self.page_in_index(
            index,
            account,
            cursor,
            limit,
            cursor_sequence,
            |_, value| {
                let stream_id = String::from_utf8_lossy(value);
                let Some((stored, sequence)) = self.load_with_sequence(account, &stream_id)? else {
                    return Ok(None);
                };
                newest_sequence.set(newest_sequence.get().max(sequence));
                Ok(select(stored.projection))
            },
        )
    }

    /// Walk an index keyed `account 0x00 sequence` from the cursor and keep up to `limit` items
    /// that `load` accepts; newest first. A cursor that names nothing known lists nothing, like
    /// a cursor past the end.
    fn page_in_index<T>(
        &self,
        index: &sled::Tree,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        cursor_sequence: impl Fn(&str) -> Result<u64, StoreError>,
        mut load: impl FnMut(u64, &[u8]) -> Result<Option<T>, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let key_at = |sequence: u64| creation_key(account, sequence);
        let (entries, newest_first): (IndexEntries, bool) = match cursor {
            PageCursor::Newest => (
                Box::new(index.range(key_at(0)..=key_at(u64::MAX)).rev()),
                true,
            ),
            PageCursor::StartingAfter(id) => {
                let sequence = cursor_sequence(id)?;
                (
                    Box::new(index.range(key_at(0)..key_at(sequence)).rev()),
                    true,
                )
            }
            PageCursor::EndingBefore(id) => {
                let sequence = cursor_sequence(id)?;
                if sequence == 0 {
                    return Ok(Page {
                        data: Vec::new(),
                        has_more: false,
                    });
                }
                (
                    Box::new(index.range(key_at(sequence + 1)..=key_at(u64::MAX))),
                    false,
                )
            }
        };
        let mut data = Vec::new();
        for entry in entries {
            let (key, value) = entry?;
            let sequence = read_u64(&key, key.len().saturating_sub(8));
            if let Some(item) = load(sequence, &value)? {
                data.push(item);
                if data.len() > limit {
                    break;
                }
            }
        }
        let has_more = data.len() > limit;
        data.truncate(limit);
        if !newest_first {
            data.reverse();
        }
        Ok(Page { data, has_more })
    }

    fn load_sync(
        &self,
        account: &str,
        stream_id: &str,
    ) -> Result<Option<StoredProjection>, StoreError> {
        let key = stream_key(account, stream_id);
        match self.trees.projections.get(&key)? {
            Some(value) => Ok(Some(self.decode_projection(&key, &value)?)),
            None => Ok(None),
        }
    }

    /// A stream's stored state and the sequence of the event it reflects.
    fn load_with_sequence(
        &self,
        account: &str,
        stream_id: &str,
    ) -> Result<Option<(StoredProjection, u64)>, StoreError> {
        let key = stream_key(account, stream_id);
        let Some(value) = self.trees.projections.get(&key)? else {
            return Ok(None);
        };
        let stored = self.decode_projection(&key, &value)?;
        let sequence = self.sequence_of_version(&key, stored.version)?;
        Ok(Some((stored, sequence)))
    }
}

#[async_trait]
impl EventStore for SledStore {
    async fn append(&self, request: AppendRequest) -> Result<Vec<RecordedEvent>, StoreError> {
        self.submit(|reply| Job::Append(Box::new(request), reply))
            .await
    }

    async fn load(
        &self,
        account: &str,
        stream_id: &str,
    ) -> Result<Option<StoredProjection>, StoreError> {
        self.refuse_if_poisoned()?;
        let Some((stored, sequence)) = self.load_with_sequence(account, stream_id)? else {
            return Ok(None);
        };
        self.wait_until_durable(sequence).await?;
        Ok(Some(stored))
    }

    async fn read_stream(
        &self,
        account: &str,
        stream_id: &str,
        max_version: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.refuse_if_poisoned()?;
        let mut prefix = stream_key(account, stream_id);
        prefix.push(0);
        let durable = self.durable_limit();
        let mut events = Vec::new();
        for entry in self.trees.streams.scan_prefix(&prefix) {
            let (key, sequence_bytes) = entry?;
            let version = read_u64(&key, prefix.len());
            if max_version.is_some_and(|max| version > max) {
                break;
            }
            let sequence = read_u64(&sequence_bytes, 0);
            if sequence > durable {
                break;
            }
            let event_key = sequence.to_be_bytes();
            let value = self.trees.events.get(event_key)?.ok_or_else(|| {
                self.corrupt(
                    format!("stream {stream_id} version {version}"),
                    format!("the stream index points at event #{sequence}, which is missing"),
                )
            })?;
            events.push(self.decode_event(&event_key, &value)?);
        }
        Ok(events)
    }

    async fn read_all_after(
        &self,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.refuse_if_poisoned()?;
        let durable = self.durable_limit();
        if after_sequence >= durable {
            return Ok(Vec::new());
        }
        let start = (after_sequence + 1).to_be_bytes();
        let end = durable.to_be_bytes();
        let mut events = Vec::with_capacity(limit.min(4096));
        for entry in self.trees.events.range(start..=end).take(limit) {
            let (key, value) = entry?;
            events.push(self.decode_event(&key, &value)?);
        }
        Ok(events)
    }

    async fn list_charges(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        filter: &(dyn for<'charge> Fn(&'charge ChargeState) -> bool + Send + Sync),
    ) -> Result<Page<ChargeState>, StoreError> {
        self.durable_page_of_streams(
            &self.trees.charges_by_creation,
            account,
            cursor,
            limit,
            |projection| match projection {
                Projection::Charge(charge) if filter(&charge) => Some(*charge),
                _ => None,
            },
        )
        .await
    }

    async fn list_customers(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
    ) -> Result<Page<Customer>, StoreError> {
        self.durable_page_of_streams(
            &self.trees.customers_by_creation,
            account,
            cursor,
            limit,
            |projection| match projection {
                Projection::Customer(customer) => Some(customer),
                _ => None,
            },
        )
        .await
    }

    async fn list_events(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        filter: &(dyn for<'event> Fn(&'event RecordedEvent) -> bool + Send + Sync),
    ) -> Result<Page<RecordedEvent>, StoreError> {
        self.refuse_if_poisoned()?;
        let durable = self.durable_limit();
        let cursor_sequence = |event_id: &str| -> Result<u64, StoreError> {
            Ok(self
                .trees
                .event_ids
                .get(stream_key(account, event_id))?
                .map_or(0, |value| read_u64(&value, 0)))
        };
        self.page_in_index(
            &self.trees.account_events,
            account,
            cursor,
            limit,
            cursor_sequence,
            |sequence, _| {
                if sequence > durable {
                    return Ok(None);
                }
                let key = sequence.to_be_bytes();
                let Some(value) = self.trees.events.get(key)? else {
                    return Ok(None);
                };
                let event = self.decode_event(&key, &value)?;
                Ok(filter(&event).then_some(event))
            },
        )
    }

    async fn event(
        &self,
        account: &str,
        event_id: &str,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        self.refuse_if_poisoned()?;
        let Some(sequence) = self.trees.event_ids.get(stream_key(account, event_id))? else {
            return Ok(None);
        };
        let sequence = read_u64(&sequence, 0);
        if sequence > self.durable_limit() {
            return Ok(None);
        }
        let key = sequence.to_be_bytes();
        match self.trees.events.get(key)? {
            Some(value) => Ok(Some(self.decode_event(&key, &value)?)),
            None => Ok(None),
        }
    }

    async fn purge_idempotency(&self, created_before_unix: i64) -> Result<usize, StoreError> {
        self.submit(|reply| Job::PurgeIdempotency(created_before_unix, reply))
            .await
    }

    async fn idempotency_record(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.refuse_if_poisoned()?;
        let record_key = stream_key(account, key);
        let Some(value) = self.trees.idempotency.get(&record_key)? else {
            return Ok(None);
        };
        let record: IdempotencyRecord = serde_json::from_slice(&value)
            .map_err(|error| self.corrupt(format!("idempotency record {key}"), error))?;
        // A record is written with its request's events; replaying it before they are durable
        // would acknowledge what a crash could take back.
        self.wait_until_durable(record.sequence).await?;
        Ok(Some(record))
    }

    async fn read_projections_after(
        &self,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<ProjectionRows, StoreError> {
        self.refuse_if_poisoned()?;
        let entries = match &after {
            Some((account, stream_id)) => {
                let mut start = stream_key(account, stream_id);
                start.push(0);
                self.trees.projections.range(start..)
            }
            None => self.trees.projections.iter(),
        };
        let mut rows = Vec::new();
        for entry in entries.take(limit) {
            let (key, value) = entry?;
            let stored = self.decode_projection(&key, &value)?;
            let (account, stream_id) = split_stream_key(&key);
            rows.push((account, stream_id, stored));
        }
        Ok(rows)
    }

    async fn put_projections(&self, projections: ProjectionRows) -> Result<(), StoreError> {
        self.submit(|reply| Job::PutProjections(projections, reply))
            .await
    }

    fn projections_are_stale(&self) -> bool {
        self.projections_stale
            .load(std::sync::atomic::Ordering::Acquire)
    }

    async fn mark_projections_current(&self) -> Result<(), StoreError> {
        let (db, meta, path) = (self.db.clone(), self.trees.meta.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            meta.insert(FORMAT_KEY, FORMAT_VALUE)?;
            db.flush()?;
            // sled's flush does not fsync: the layout may say 3 only once it is on the disk.
            DurableSync::open(&path)?.sync()?;
            Ok(())
        })
        .await
        .map_err(|error| StoreError::Io(std::io::Error::other(error)))??;
        self.projections_stale
            .store(false, std::sync::atomic::Ordering::Release);
        info!(path = %self.path.display(), "projections rebuilt in layout 3");
        Ok(())
    }

    async fn import(
        &self,
        events: Vec<RecordedEvent>,
        projections: ProjectionRows,
    ) -> Result<(), StoreError> {
        self.submit(|reply| Job::Import(events, projections, reply))
            .await
    }

    async fn head(&self) -> Result<Option<ChainHead>, StoreError> {
        Ok(self
            .durable_head
            .lock()
            .map_err(|_| StoreError::Closed)?
            .clone())
    }

    fn durable_sequence(&self) -> watch::Receiver<u64> {
        self.durable_sequence.clone()
    }

    async fn accounts_owning(&self, stream_id: &str) -> Result<Vec<String>, StoreError> {
        self.refuse_if_poisoned()?;
        let mut prefix = stream_id.as_bytes().to_vec();
        prefix.push(0);
        let mut accounts = Vec::new();
        for entry in self.trees.owners.scan_prefix(&prefix) {
            let (key, _) = entry?;
            accounts.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        }
        Ok(accounts)
    }

    async fn disk_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Dropping the sender lets the writer finish its queue and exit.
        drop(self.jobs.lock().map_err(|_| StoreError::Closed)?.take());
        let writer = self.writer.lock().map_err(|_| StoreError::Closed)?.take();
        if let Some(writer) = writer {
            tokio::task::spawn_blocking(move || writer.join())
                .await
                .map_err(|error| StoreError::Io(std::io::Error::other(error)))?
                .map_err(|_| StoreError::Io(std::io::Error::other("the writer thread panicked")))?;
        }
        self.db.flush_async().await?;
        info!(path = %self.path.display(), "closed sled store");
        Ok(())
    }
}

/// The writer thread's state: the only code that writes to the trees.
struct Writer {
    path: String,
    db: sled::Db,
    trees: Trees,
    sync: DurableSync,
    head: ChainHead,
    durable_head: Arc<Mutex<Option<ChainHead>>>,
    durable_sender: watch::Sender<u64>,
    poisoned: Arc<OnceLock<String>>,
    faults: FaultInjector,
    /// The time an event is recorded at (`recorded_at`).
    clock: Arc<dyn Clock>,
}

/// Writes staged for one batch, applied together in one transaction.
#[derive(Default)]
struct Staged {
    writes: Vec<(TreeName, Vec<u8>, Vec<u8>)>,
    /// Stream versions and creation sequences as of the staged writes.
    streams: HashMap<Vec<u8>, (u64, u64)>,
    idempotency_keys: HashSet<Vec<u8>>,
}

enum Accepted {
    Append(Reply<Vec<RecordedEvent>>, Vec<RecordedEvent>),
    Done(Reply<()>),
}

impl Accepted {
    fn succeed(self) {
        // A caller that gave up waiting has dropped its receiver; nothing to tell it.
        let _ = match self {
            Accepted::Append(reply, events) => reply.send(Ok(events)).map_err(drop),
            Accepted::Done(reply) => reply.send(Ok(())).map_err(drop),
        };
    }

    fn fail(self, error: StoreError) {
        let _ = match self {
            Accepted::Append(reply, _) => reply.send(Err(error)).map_err(drop),
            Accepted::Done(reply) => reply.send(Err(error)).map_err(drop),
        };
    }
}

impl Writer {
    fn run(mut self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        while let Some(first) = jobs.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH_JOBS {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.process(batch);
        }
        debug!("writer thread finished its queue");
    }

    fn process(&mut self, batch: Vec<Job>) {
        let (purges, writes): (Vec<Job>, Vec<Job>) = batch
            .into_iter()
            .partition(|job| matches!(job, Job::PurgeIdempotency(..)));
        self.process_writes(writes);
        for job in purges {
            if let Job::PurgeIdempotency(created_before_unix, reply) = job {
                let _ = reply.send(self.purge_idempotency(created_before_unix));
            }
        }
    }

    /// Remove expired idempotency records. Run by the writer, so that no append can be checking
    /// a key while its record is removed.
    fn purge_idempotency(&mut self, created_before_unix: i64) -> Result<usize, StoreError> {
        if let Some(detail) = self.poisoned.get() {
            return Err(StoreError::Poisoned {
                detail: detail.clone(),
            });
        }
        let mut removed = 0;
        for entry in self.trees.idempotency.iter() {
            let (key, value) = entry?;
            // A record that cannot be read is kept for `verify` to report, not silently dropped.
            let Ok(record) = serde_json::from_slice::<IdempotencyRecord>(&value) else {
                continue;
            };
            if record.created_at_unix < created_before_unix {
                self.trees.idempotency.remove(key)?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.make_durable().map_err(|detail| {
                error!(path = %self.path, %detail, "could not make a purge durable; refusing further writes");
                self.poison(&detail);
                StoreError::Poisoned { detail }
            })?;
        }
        Ok(removed)
    }

    fn process_writes(&mut self, batch: Vec<Job>) {
        if let Some(detail) = self.poisoned.get() {
            for job in batch {
                reply_error(job, || StoreError::Poisoned {
                    detail: detail.clone(),
                });
            }
            return;
        }
        let mut staged = Staged::default();
        let mut head = self.head.clone();
        let mut accepted = Vec::new();
        let recorded_at = self.clock.now();
        for job in batch {
            match job {
                Job::Append(request, reply) => {
                    match self.stage_append(&request, recorded_at, &mut head, &mut staged) {
                        Ok(events) => accepted.push(Accepted::Append(reply, events)),
                        Err(error) => {
                            let _ = reply.send(Err(error));
                        }
                    }
                }
                Job::Import(events, projections, reply) => {
                    match self.stage_import(events, projections, &mut head, &mut staged) {
                        Ok(()) => accepted.push(Accepted::Done(reply)),
                        Err(error) => {
                            let _ = reply.send(Err(error));
                        }
                    }
                }
                Job::PutProjections(projections, reply) => {
                    for (account, stream_id, stored) in projections {
                        let key = stream_key(&account, &stream_id);
                        staged.writes.push((
                            TreeName::Projections,
                            key,
                            encode_projection(&stored),
                        ));
                    }
                    accepted.push(Accepted::Done(reply));
                }
                Job::PurgeIdempotency(_, reply) => {
                    // `process` runs purges after the batch; one arriving here is a bug.
                    let _ = reply.send(Err(StoreError::Closed));
                }
            }
        }
        if accepted.is_empty() {
            return;
        }
        if head.sequence != self.head.sequence {
            let head_json = encode_json(&head);
            staged
                .writes
                .push((TreeName::Meta, HEAD_KEY.to_vec(), head_json));
        }
        if let Err(error) = self.commit(&staged.writes) {
            // The transaction applied nothing: refuse this batch, keep serving.
            error!(%error, "a batch transaction failed; nothing of it was written");
            for reply in accepted {
                reply.fail(StoreError::Io(std::io::Error::other(error.clone())));
            }
            return;
        }
        if let Err(detail) = self.make_durable() {
            // The batch is in sled's memory but may not be on disk: stop serving writes rather
            // than acknowledge or expose state that a crash could take back.
            error!(path = %self.path, %detail, "could not make a batch durable; refusing further writes");
            self.poison(&detail);
            for reply in accepted {
                reply.fail(StoreError::Poisoned {
                    detail: detail.clone(),
                });
            }
            return;
        }
        // The head only moves forward: a batch that went back would hand out sequence numbers
        // twice. That is a bug in this writer, so stop it rather than acknowledge.
        assert!(
            head.sequence >= self.head.sequence,
            "the chain head would move back from #{} to #{}",
            self.head.sequence,
            head.sequence
        );
        self.head = head.clone();
        if let Ok(mut durable_head) = self.durable_head.lock() {
            *durable_head = (head.sequence > 0).then_some(head.clone());
        }
        self.durable_sender.send_replace(head.sequence);
        for reply in accepted {
            reply.succeed();
        }
    }

    fn make_durable(&mut self) -> Result<(), String> {
        self.faults
            .before(FaultPoint::Flush)
            .and_then(|()| self.db.flush().map_err(std::io::Error::other))
            .map_err(|error| format!("sled flush failed: {error}"))?;
        self.faults
            .before(FaultPoint::Fdatasync)
            .and_then(|()| self.sync.sync())
            .map_err(|error| format!("fdatasync of {}/db failed: {error}", self.path))
    }

    /// Refuse all further writes and reads, and wake every reader waiting for a sequence that
    /// will now never become durable (they see the poison and fail).
    fn poison(&self, detail: &str) {
        let _ = self.poisoned.set(detail.to_string());
        self.durable_sender.send_modify(|_| {});
    }

    /// The stream's version and creation sequence, counting what this batch already staged.
    fn stream_state(&self, key: &[u8], staged: &Staged) -> Result<Option<(u64, u64)>, StoreError> {
        if let Some(state) = staged.streams.get(key) {
            return Ok(Some(*state));
        }
        match self.trees.projections.get(key)? {
            Some(value) if value.len() >= 16 => {
                Ok(Some((read_u64(&value, 0), read_u64(&value, 8))))
            }
            Some(_) => Err(StoreError::CorruptRecord {
                path: self.path.clone(),
                location: format!(
                    "projection {}",
                    String::from_utf8_lossy(key).replace('\0', "/")
                ),
                detail: "the record is shorter than its header".into(),
            }),
            None => Ok(None),
        }
    }

    fn stage_append(
        &self,
        request: &AppendRequest,
        recorded_at: OffsetDateTime,
        head: &mut ChainHead,
        staged: &mut Staged,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Every stream's version is checked before anything is staged, so a refused append
        // leaves no trace in the batch.
        let main = StreamWrite {
            stream_id: &request.stream_id,
            expected_version: request.expected_version,
            payloads: &request.payloads,
            projection: &request.projection,
        };
        let linked = request.linked.iter().map(|linked| StreamWrite {
            stream_id: &linked.stream_id,
            expected_version: linked.expected_version,
            payloads: &linked.payloads,
            projection: &linked.projection,
        });
        let mut streams = Vec::with_capacity(1 + request.linked.len());
        for write in std::iter::once(main).chain(linked) {
            let key = stream_key(&request.account, write.stream_id);
            let state = self.stream_state(&key, staged)?;
            let actual = state.map_or(0, |(version, _)| version);
            if actual != write.expected_version {
                return Err(StoreError::VersionConflict {
                    stream_id: write.stream_id.to_string(),
                    expected: write.expected_version,
                    actual,
                });
            }
            streams.push((write, key, state));
        }
        for read in &request.read_versions {
            let key = stream_key(&request.account, &read.stream_id);
            let actual = self
                .stream_state(&key, staged)?
                .map_or(0, |(version, _)| version);
            if actual != read.version {
                return Err(StoreError::VersionConflict {
                    stream_id: read.stream_id.clone(),
                    expected: read.version,
                    actual,
                });
            }
        }
        let idempotency_key =
            match &request.idempotency {
                Some(record) => {
                    let record_key = stream_key(&request.account, &record.key);
                    if staged.idempotency_keys.contains(&record_key) {
                        return Err(StoreError::IdempotencyKeyInFlight {
                            key: record.key.clone(),
                        });
                    }
                    if let Some(existing) = self.trees.idempotency.get(&record_key)? {
                        let existing: IdempotencyRecord = serde_json::from_slice(&existing)
                            .map_err(|error| StoreError::CorruptRecord {
                                path: self.path.clone(),
                                location: format!("idempotency record {}", record.key),
                                detail: error.to_string(),
                            })?;
                        return Err(StoreError::IdempotencyKeyTaken(Box::new(existing)));
                    }
                    Some(record_key)
                }
                None => None,
            };
        let mut chain = head.clone();
        let mut events = Vec::new();
        let mut writes = Vec::new();
        let mut stream_states = Vec::with_capacity(streams.len());
        for (write, key, state) in streams {
            let stream_state = stage_stream(
                &request.account,
                &request.request,
                recorded_at,
                &write,
                &key,
                state,
                &mut chain,
                &mut writes,
                &mut events,
            );
            stream_states.push((key, stream_state));
        }
        if let (Some(record_key), Some(record)) = (idempotency_key, &request.idempotency) {
            let mut record = record.clone();
            record.sequence = chain.sequence;
            writes.push((
                TreeName::Idempotency,
                record_key.clone(),
                encode_json(&record),
            ));
            staged.idempotency_keys.insert(record_key);
        }
        // Sequence numbers are gap-free: the head advances by exactly the events staged.
        assert_eq!(
            chain.sequence,
            head.sequence + events.len() as u64,
            "an append of {} events moved the head from #{} to #{}",
            events.len(),
            head.sequence,
            chain.sequence
        );
        staged.streams.extend(stream_states);
        staged.writes.extend(writes);
        *head = chain;
        Ok(events)
    }

    fn stage_import(
        &self,
        events: Vec<RecordedEvent>,
        projections: ProjectionRows,
        head: &mut ChainHead,
        staged: &mut Staged,
    ) -> Result<(), StoreError> {
        let mut verifier = ChainVerifier::after(head.sequence, head.hash.clone());
        let mut writes = Vec::with_capacity(events.len() * 2 + projections.len() * 2);
        for event in &events {
            verifier
                .check(event)
                .map_err(|fault| StoreError::ImportRejected {
                    sequence: event.body.sequence,
                    detail: fault.to_string(),
                })?;
            writes.push((
                TreeName::Events,
                event.body.sequence.to_be_bytes().to_vec(),
                encode_json(event),
            ));
            let mut index_key = stream_key(&event.body.account, &event.body.stream_id);
            index_key.push(0);
            index_key.extend_from_slice(&event.body.stream_version.to_be_bytes());
            writes.push((
                TreeName::Streams,
                index_key,
                event.body.sequence.to_be_bytes().to_vec(),
            ));
            writes.extend(account_event_writes(event));
        }
        for (account, stream_id, stored) in &projections {
            let key = stream_key(account, stream_id);
            writes.push((TreeName::Owners, owner_key(stream_id, account), Vec::new()));
            writes.extend(creation_write(
                account,
                stream_id,
                stored.created_sequence,
                &stored.projection,
            ));
            writes.push((
                TreeName::Projections,
                key.clone(),
                encode_projection(stored),
            ));
            staged
                .streams
                .insert(key, (stored.version, stored.created_sequence));
        }
        staged.writes.extend(writes);
        *head = ChainHead {
            sequence: verifier.last_sequence(),
            hash: verifier.last_hash().to_string(),
        };
        Ok(())
    }

    fn commit(&self, writes: &[(TreeName, Vec<u8>, Vec<u8>)]) -> Result<(), String> {
        self.faults
            .before(FaultPoint::Commit)
            .map_err(|error| format!("the batch transaction failed: {error}"))?;
        let trees = &self.trees;
        let outcome: Result<(), TransactionError<()>> = (
            &trees.events,
            &trees.streams,
            &trees.projections,
            &trees.charges_by_creation,
            &trees.customers_by_creation,
            &trees.account_events,
            &trees.event_ids,
            &trees.idempotency,
            &trees.owners,
            &trees.meta,
        )
            .transaction(
                |(
                    events,
                    streams,
                    projections,
                    charges,
                    customers,
                    account_events,
                    event_ids,
                    idempotency,
                    owners,
                    meta,
                )| {
                    for (tree, key, value) in writes {
                        let target = match tree {
                            TreeName::Events => events,
                            TreeName::Streams => streams,
                            TreeName::Projections => projections,
                            TreeName::ChargesByCreation => charges,
                            TreeName::CustomersByCreation => customers,
                            TreeName::AccountEvents => account_events,
                            TreeName::EventIds => event_ids,
                            TreeName::Idempotency => idempotency,
                            TreeName::Owners => owners,
                            TreeName::Meta => meta,
                        };
                        target.insert(key.as_slice(), value.as_slice())?;
                    }
                    Ok::<(), ConflictableTransactionError<()>>(())
                },
            );
        outcome.map_err(|error| match error {
            TransactionError::Storage(error) => error.to_string(),
            TransactionError::Abort(()) => "the transaction was aborted".to_string(),
        })
    }
}

/// How long `open` waits for a lock held by this very process to go: sled 0.34 releases a data
/// directory's lock only once its background flusher has stopped, a moment after the last
/// handle is dropped, so a close followed at once by an open would otherwise fail.
const LOCK_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Open sled in `path`, waiting briefly for a lock that is being released.
fn open_sled(path: &Path) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    loop {
        match sled::Config::new().path(path).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(io_error))
                if io_error.to_string().contains("could not acquire lock") =>
            {
                if started.elapsed() < LOCK_RELEASE_WAIT {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                }
                return Err(StoreError::Io(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!(
                        "{} is already open (sled allows one process per data directory): stop the other chargeledger using it, or use another --data directory",
                        path.display()
                    ),
                )));
            }
            Err(other) => return Err(StoreError::Sled(other)),
        }
    }
}

fn reply_error(job: Job, make_error: impl Fn() -> StoreError) {
    match job {
        Job::Append(_, reply) => {
            let _ = reply.send(Err(make_error()));
        }
        Job::Import(_, _, reply) | Job::PutProjections(_, reply) => {
            let _ = reply.send(Err(make_error()));
        }
        Job::PurgeIdempotency(_, reply) => {
            let _ = reply.send(Err(make_error()));
        }
    }
}

/// The newest stored event as a head, trusting nothing else (for verification of damaged stores).
fn last_stored_event(trees: &Trees) -> Option<ChainHead> {
    let (key, value) = trees.events.last().ok().flatten()?;
    let hash = serde_json::from_slice::<RecordedEvent>(&value)
        .map(|event| event.hash)
        .unwrap_or_default();
    Some(ChainHead {
        sequence: read_u64(&key, 0),
        hash,
    })
}

/// Refuse a store whose layout is unknown or whose newest events do not chain to the recorded head.
fn check_format_and_head(path: &Path, trees: &Trees) -> Result<Option<ChainHead>, StoreError> {
    let path_text = path.display().to_string();
    let corrupt = |location: &str, detail: String| StoreError::CorruptRecord {
        path: path_text.clone(),
        location: location.to_string(),
        detail,
    };
    if let Some(format) = trees.meta.get(FORMAT_KEY)?
        && format.as_ref() != FORMAT_VALUE
        && format.as_ref() != FORMAT_VALUE_WITH_STRIPE_PROJECTIONS
        && format.as_ref() != FORMAT_VALUE_WITHOUT_ACCOUNT_INDEXES
    {
        return Err(corrupt(
            "meta/format",
            format!(
                "unknown layout '{}'; this build reads '{}'",
                String::from_utf8_lossy(&format),
                String::from_utf8_lossy(FORMAT_VALUE)
            ),
        ));
    }
    let head: Option<ChainHead> = match trees.meta.get(HEAD_KEY)? {
        Some(value) => Some(
            serde_json::from_slice(&value)
                .map_err(|error| corrupt("meta/head", error.to_string()))?,
        ),
        None => None,
    };
    let last = trees.events.last()?;
    let head = match (head, last) {
        (None, None) => return Ok(None),
        (None, Some((key, _))) => {
            return Err(corrupt(
                "meta/head",
                format!(
                    "events exist up to #{} but no chain head is recorded",
                    read_u64(&key, 0)
                ),
            ));
        }
        (Some(head), None) => {
            return Err(corrupt(
                "events",
                format!(
                    "the chain head names event #{} but the log is empty",
                    head.sequence
                ),
            ));
        }
        (Some(head), Some((key, _))) => {
            let last_sequence = read_u64(&key, 0);
            if last_sequence != head.sequence {
                return Err(StoreError::CorruptChain {
                    path: path_text.clone(),
                    fault: ChainFault::SequenceGap {
                        previous: head.sequence,
                        found: last_sequence,
                    },
                });
            }
            head
        }
    };
    let tail_start = head
        .sequence
        .saturating_sub(TAIL_CHECKED_ON_OPEN - 1)
        .max(1);
    let mut verifier = if tail_start == 1 {
        ChainVerifier::from_genesis()
    } else {
        let before_key = (tail_start - 1).to_be_bytes();
        let before = trees
            .events
            .get(before_key)?
            .ok_or_else(|| StoreError::CorruptChain {
                path: path_text.clone(),
                fault: ChainFault::SequenceGap {
                    previous: tail_start.saturating_sub(2),
                    found: tail_start,
                },
            })?;
        let before: RecordedEvent = serde_json::from_slice(&before)
            .map_err(|error| corrupt(&format!("event #{}", tail_start - 1), error.to_string()))?;
        ChainVerifier::after(before.body.sequence, before.hash)
    };
    for entry in trees.events.range(tail_start.to_be_bytes()..) {
        let (key, value) = entry?;
        let key_sequence = read_u64(&key, 0);
        let event: RecordedEvent = serde_json::from_slice(&value)
            .map_err(|error| corrupt(&format!("event #{key_sequence}"), error.to_string()))?;
        let chain_error = |fault| StoreError::CorruptChain {
            path: path_text.clone(),
            fault,
        };
        if event.body.sequence != key_sequence {
            return Err(chain_error(ChainFault::MisplacedEvent {
                key: key_sequence,
                found: event.body.sequence,
            }));
        }
        verifier.check(&event).map_err(chain_error)?;
    }
    if verifier.last_hash() != head.hash {
        return Err(StoreError::CorruptChain {
            path: path_text,
            fault: ChainFault::HashMismatch {
                sequence: head.sequence,
                stored: head.hash.clone(),
                computed: verifier.last_hash().to_string(),
            },
        });
    }
    Ok(Some(head))
}

/// One stream's part of an append.
struct StreamWrite<'request> {
    stream_id: &'request str,
    expected_version: u64,
    payloads: &'request [EventPayload],
    projection: &'request Projection,
}

/// Seal one stream's events onto `chain` and collect every write they need (events, stream
/// index, account indexes, projection, owner and creation entries). Returns the stream's new
/// version and creation sequence.
#[allow(clippy::too_many_arguments)]
fn stage_stream(
    account: &str,
    request: &RequestMeta,
    recorded_at: OffsetDateTime,
    write: &StreamWrite<'_>,
    key: &[u8],
    state: Option<(u64, u64)>,
    chain: &mut ChainHead,
    writes: &mut Vec<(TreeName, Vec<u8>, Vec<u8>)>,
    events: &mut Vec<RecordedEvent>,
) -> (u64, u64) {
    let actual = state.map_or(0, |(version, _)| version);
    let created_sequence = state.map_or(chain.sequence + 1, |(_, created)| created);
    let mut version = actual;
    for payload in write.payloads {
        version += 1;
        let body = EventBody {
            schema_version: EVENT_SCHEMA_VERSION,
            sequence: chain.sequence + 1,
            event_id: ids::event_id(),
            account: account.to_string(),
            stream_id: write.stream_id.to_string(),
            stream_version: version,
            recorded_at,
            request: request.clone(),
            previous_hash: chain.hash.clone(),
            payload: payload.clone(),
        };
        let event = seal(body);
        *chain = ChainHead {
            sequence: event.body.sequence,
            hash: event.hash.clone(),
        };
        writes.push((
            TreeName::Events,
            chain.sequence.to_be_bytes().to_vec(),
            encode_json(&event),
        ));
        let mut index_key = key.to_vec();
        index_key.push(0);
        index_key.extend_from_slice(&version.to_be_bytes());
        writes.push((
            TreeName::Streams,
            index_key,
            chain.sequence.to_be_bytes().to_vec(),
        ));
        writes.extend(account_event_writes(&event));
        events.push(event);
    }
    // Stream versions are gap-free: the stream advances by exactly the events it was given.
    assert_eq!(
        version,
        actual + write.payloads.len() as u64,
        "stream {} would skip a version",
        write.stream_id
    );
    let stored = StoredProjection {
        version,
        created_sequence,
        projection: write.projection.clone(),
    };
    writes.push((
        TreeName::Projections,
        key.to_vec(),
        encode_projection(&stored),
    ));
    if actual == 0 {
        writes.push((
            TreeName::Owners,
            owner_key(write.stream_id, account),
            Vec::new(),
        ));
        writes.extend(creation_write(
            account,
            write.stream_id,
            created_sequence,
            write.projection,
        ));
    }
    (version, created_sequence)
}

/// The per-account index entries of one event: its place in the account's list and its id.
fn account_event_writes(event: &RecordedEvent) -> [(TreeName, Vec<u8>, Vec<u8>); 2] {
    let sequence = event.body.sequence;
    [
        (
            TreeName::AccountEvents,
            creation_key(&event.body.account, sequence),
            event.body.event_id.as_bytes().to_vec(),
        ),
        (
            TreeName::EventIds,
            stream_key(&event.body.account, &event.body.event_id),
            sequence.to_be_bytes().to_vec(),
        ),
    ]
}

/// The newest-first list entry of a new charge or customer.
fn creation_write(
    account: &str,
    stream_id: &str,
    created_sequence: u64,
    projection: &Projection,
) -> Option<(TreeName, Vec<u8>, Vec<u8>)> {
    let tree = match projection {
        Projection::Charge(_) => TreeName::ChargesByCreation,
        Projection::Customer(_) => TreeName::CustomersByCreation,
        Projection::AccountPolicy(_) | Projection::Token(_) => return None,
    };
    Some((
        tree,
        creation_key(account, created_sequence),
        stream_id.as_bytes().to_vec(),
    ))
}

/// Bring a layout-1 store up to layout 2: index every event by account and id, and every
/// customer by creation. Idempotent, so an interrupted upgrade is simply run again.
fn add_account_indexes(path: &Path, trees: &Trees) -> Result<(), StoreError> {
    for entry in trees.events.iter() {
        let (key, value) = entry?;
        let event: RecordedEvent =
            serde_json::from_slice(&value).map_err(|error| StoreError::CorruptRecord {
                path: path.display().to_string(),
                location: format!("event #{}", read_u64(&key, 0)),
                detail: error.to_string(),
            })?;
        for (tree, key, value) in account_event_writes(&event) {
            let target = match tree {
                TreeName::AccountEvents => &trees.account_events,
                _ => &trees.event_ids,
            };
            target.insert(key, value)?;
        }
    }
    for entry in trees.projections.iter() {
        let (key, value) = entry?;
        let stored = decode_projection(&value).map_err(|detail| StoreError::CorruptRecord {
            path: path.display().to_string(),
            location: format!("projection {}", String::from_utf8_lossy(&key)),
            detail,
        })?;
        if matches!(stored.projection, Projection::Customer(_)) {
            let (account, stream_id) = split_stream_key(&key);
            trees.customers_by_creation.insert(
                creation_key(&account, stored.created_sequence),
                stream_id.as_bytes(),
            )?;
        }
    }
    Ok(())
}

fn stream_key(account: &str, stream_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(account.len() + stream_id.len() + 1);
    key.extend_from_slice(account.as_bytes());
    key.push(0);
    key.extend_from_slice(stream_id.as_bytes());
    key
}

fn owner_key(stream_id: &str, account: &str) -> Vec<u8> {
    stream_key(stream_id, account)
}

fn split_stream_key(key: &[u8]) -> (String, String) {
    let separator = key.iter().position(|byte| *byte == 0).unwrap_or(key.len());
    let account = String::from_utf8_lossy(&key[..separator]).into_owned();
    let stream_id =
        String::from_utf8_lossy(key.get(separator + 1..).unwrap_or_default()).into_owned();
    (account, stream_id)
}

fn creation_key(account: &str, sequence: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(account.len() + 9);
    key.extend_from_slice(account.as_bytes());
    key.push(0);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// A big-endian u64 at `offset`, or 0 when the bytes are too short (callers check lengths
/// where a short record means corruption).
fn read_u64(bytes: &[u8], offset: usize) -> u64 {
    bytes
        .get(offset..offset + 8)
        .and_then(|slice| <[u8; 8]>::try_from(slice).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Our own stored types as JSON. Plain data with string keys always serializes; if it ever did
/// not, that is a bug, and this stops the writer thread (every later write is refused as closed)
/// rather than store empty bytes where a record should be.
fn encode_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect(
        "the store's own records always encode as JSON; failing to is a bug in chargeledger",
    )
}

fn encode_projection(stored: &StoredProjection) -> Vec<u8> {
    let mut value = Vec::with_capacity(512);
    value.extend_from_slice(&stored.version.to_be_bytes());
    value.extend_from_slice(&stored.created_sequence.to_be_bytes());
    value.extend_from_slice(&encode_json(&stored.projection));
    value
}

fn decode_projection(value: &[u8]) -> Result<StoredProjection, String> {
    if value.len() < 16 {
        return Err("the record is shorter than its header".into());
    }
    let projection = serde_json::from_slice(&value[16..]).map_err(|error| error.to_string())?;
    Ok(StoredProjection {
        version: read_u64(value, 0),
        created_sequence: read_u64(value, 8),
        projection,
    })
}

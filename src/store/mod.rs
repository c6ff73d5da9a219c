//! The storage boundary: the `EventStore` trait every backend implements, and the types that cross it.
//!
//! A store appends sealed events atomically with the stream's new projection and any idempotency
//! record, enforces optimistic concurrency on stream versions, and acknowledges an append only
//! once it is durable. It knows nothing of Stripe's rules; the ledger decides, the store keeps.

pub mod durability;
pub mod faults;
pub mod outbox;
pub mod permissions;
pub mod plan;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sled;
pub mod stored_event;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;

use crate::chain::ChainFault;
use crate::domain::search::SearchKeyChanges;
use crate::domain::{ChargeState, Customer, Projection};
use crate::events::{EventPayload, RecordedEvent, RequestMeta};
pub use outbox::{Attempt, Delivery, DeliveryIntent, DeliveryReason, DeliveryState};

#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
pub use sled::{DEFAULT_CACHE_CAPACITY_BYTES, SledOptions, SledStore};

/// The newest event in the log: what the next event must link to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub sequence: u64,
    pub hash: String,
}

/// An event read for verification, with the hash of its body computed from the bytes stored.
#[derive(Debug, Clone, PartialEq)]
pub struct HashedEvent {
    pub event: RecordedEvent,
    /// `chain::hash_body_json` of the body as stored; `ChainVerifier::check_hashed` compares it
    /// with the hash the event claims.
    pub computed_hash: String,
}

/// A stream's current state as stored, with the version it reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredProjection {
    /// The stream version this state is the fold of.
    pub version: u64,
    /// The global sequence of the stream's first event (its creation order).
    pub created_sequence: u64,
    pub projection: Projection,
}

/// The first response to a request made with an idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub key: String,
    /// A digest of what was asked (operation and parameters): a retry must match it.
    pub fingerprint: String,
    /// What the first request answered, replayed to every retry.
    pub outcome: serde_json::Value,
    pub created_at_unix: i64,
    /// The sequence of the last event the request appended; replies wait until it is durable.
    pub sequence: u64,
}

/// Events for a second stream, appended in the same transaction as the main one: a charge and
/// the vault token it spends are written together or not at all.
#[derive(Debug, Clone)]
pub struct LinkedAppend {
    pub stream_id: String,
    /// The version this stream must be at, checked like the main stream's.
    pub expected_version: u64,
    pub payloads: Vec<EventPayload>,
    pub projection: Projection,
}

/// One atomic append: events for one stream (and any linked streams), the streams' states after
/// them, and optionally the idempotency record of the request that produced them.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub account: String,
    pub stream_id: String,
    /// The version the stream must be at (0: the stream must not exist yet).
    pub expected_version: u64,
    pub payloads: Vec<EventPayload>,
    pub request: RequestMeta,
    /// The stream's state after `payloads`; computed by the caller with `domain::apply`.
    pub projection: Projection,
    pub idempotency: Option<IdempotencyRecord>,
    /// Other streams of the same account written in the same transaction, after the main one.
    pub linked: Vec<LinkedAppend>,
    /// Streams the decision read but does not write (the account's policy), with the version it
    /// read: the append commits only if each is still at that version, so a decision is never
    /// committed on a rule that changed under it.
    pub read_versions: Vec<StreamVersion>,
    /// Side effects of the main stream's events, written pending in the same transaction.
    pub deliveries: Vec<DeliveryIntent>,
    /// The main stream's search index keys gained and lost (`domain::search::key_changes`);
    /// linked streams (vault tokens) are never searched.
    pub search_keys: SearchKeyChanges,
}

/// A stream and the version a decision read it at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamVersion {
    pub stream_id: String,
    pub version: u64,
}

/// Where to start a page of a list (charges, customers, events), newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PageCursor {
    #[default]
    Newest,
    /// Objects older than this one (Stripe's `starting_after`).
    StartingAfter(String),
    /// Objects newer than this one (Stripe's `ending_before`).
    EndingBefore(String),
}

/// Where a refund is kept: refunds live in the stream of the charge they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundLocation {
    pub charge_id: String,
    pub refund_id: String,
    /// The refund's `created` (Unix seconds), so a list can filter by it without loading charges.
    pub created: i64,
}

/// Where to read the search index (`domain::search::keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexScan<'key> {
    /// The entries of one key created before `below_sequence`, newest first.
    Newest {
        key: &'key [u8],
        below_sequence: u64,
    },
    /// The entries with keys in `from..to`, in key order.
    Between { from: &'key [u8], to: &'key [u8] },
}

/// A search index entry: an object that had the key, and its creation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The global sequence of the stream's first event.
    pub created_sequence: u64,
    pub stream_id: String,
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub has_more: bool,
}

/// Why a store refused or failed an operation.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "stream {stream_id} is at version {actual}, but the append expected version {expected}"
    )]
    VersionConflict {
        stream_id: String,
        expected: u64,
        actual: u64,
    },
    #[error("idempotency key '{}' was already used by an earlier request", .0.key)]
    IdempotencyKeyTaken(Box<IdempotencyRecord>),
    #[error("idempotency key '{key}' is being used by a request that has not finished")]
    IdempotencyKeyInFlight { key: String },
    #[error(
        "the store at {path} is corrupt: {fault}. It is refused so that no wrong data is served; run `chargeledger verify --data {path}` for a full report, and restore from an export or backup"
    )]
    CorruptChain { path: String, fault: ChainFault },
    #[error(
        "the store at {path} is corrupt at {location}: {detail}. Run `chargeledger verify --data {path}` for a full report"
    )]
    CorruptRecord {
        path: String,
        location: String,
        detail: String,
    },
    #[error(
        "cannot import: the store already holds {events} events; import only into an empty data directory"
    )]
    NotEmpty { events: u64 },
    #[error("cannot import event #{sequence}: {detail}")]
    ImportRejected { sequence: u64, detail: String },
    #[error(
        "a write could not be made durable ({detail}); the store refuses further writes so that nothing unacknowledged is served. Restart the process, then run `chargeledger verify`"
    )]
    Poisoned { detail: String },
    #[error("the store is closed")]
    Closed,
    #[error("storage error: {0}")]
    Sled(#[from] ::sled::Error),
    #[error("file system error: {0}")]
    Io(#[from] std::io::Error),
    #[error("database error: {0}")]
    Database(String),
}

/// A storage backend for the ledger.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Append atomically and durably. Returns the recorded events once they survive power loss.
    async fn append(&self, request: AppendRequest) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The current state of one stream of one account.
    async fn load(
        &self,
        account: &str,
        stream_id: &str,
    ) -> Result<Option<StoredProjection>, StoreError>;

    /// A stream's events from version 1 up to `max_version` (all when `None`).
    async fn read_stream(
        &self,
        account: &str,
        stream_id: &str,
        max_version: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` durable events with a sequence greater than `after_sequence`, in log order.
    async fn read_all_after(
        &self,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// `read_all_after` for verification and replay: each event with the hash of its body as
    /// stored. A store that keeps the body's bytes hashes those (no re-encoding); this default
    /// hashes a re-encoding, which is the same for every event this crate wrote.
    async fn read_all_after_hashed(
        &self,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<HashedEvent>, StoreError> {
        Ok(self
            .read_all_after(after_sequence, limit)
            .await?
            .into_iter()
            .map(|event| HashedEvent {
                computed_hash: crate::chain::hash_body(&event.body),
                event,
            })
            .collect())
    }

    /// Charges of one account, newest first, that pass `filter`.
    async fn list_charges(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        filter: &(dyn for<'charge> Fn(&'charge ChargeState) -> bool + Send + Sync),
    ) -> Result<Page<ChargeState>, StoreError>;

    /// One page of an account's customers, newest first.
    async fn list_customers(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
    ) -> Result<Page<Customer>, StoreError>;

    /// One page of an account's durable events, newest first, keeping those `filter` accepts.
    /// Cursors are event ids.
    async fn list_events(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        filter: &(dyn for<'event> Fn(&'event RecordedEvent) -> bool + Send + Sync),
    ) -> Result<Page<RecordedEvent>, StoreError>;

    /// One durable event of an account, by its `evt_…` id.
    async fn event(
        &self,
        account: &str,
        event_id: &str,
    ) -> Result<Option<RecordedEvent>, StoreError>;

    /// One page of an account's refunds (and a Stripe partial capture's released remainders),
    /// newest first by the event that recorded each, from an index: no scan. Cursors are refund
    /// ids; only refunds recorded by durable events and accepted by `filter` are listed.
    async fn list_refunds(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        filter: &(dyn for<'refund> Fn(&'refund RefundLocation) -> bool + Send + Sync),
    ) -> Result<Page<RefundLocation>, StoreError>;

    /// The charge holding one of the account's refunds, by its id, once it is durable.
    async fn find_refund(
        &self,
        account: &str,
        refund_id: &str,
    ) -> Result<Option<RefundLocation>, StoreError>;

    /// Up to `limit` entries of the account's search index, as `scan` says; only objects whose
    /// creation is durable. The index holds every key an object has and possibly keys it had:
    /// callers check each candidate against its projection.
    async fn scan_search_index(
        &self,
        account: &str,
        scan: IndexScan<'_>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError>;

    /// Remove idempotency records created before `created_before_unix`; returns how many.
    async fn purge_idempotency(&self, created_before_unix: i64) -> Result<usize, StoreError>;

    /// The first response recorded for an idempotency key, if any, once it is durable.
    async fn idempotency_record(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Every stored projection, in key order, after the given `(account, stream_id)`.
    async fn read_projections_after(
        &self,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<(String, String, StoredProjection)>, StoreError>;

    /// How many projections are stored. This default pages through them; a store that can
    /// count without decoding them does.
    async fn count_projections(&self) -> Result<u64, StoreError> {
        let mut count = 0;
        let mut after = None;
        loop {
            let rows = self.read_projections_after(after, 10_000).await?;
            let Some((account, stream_id, _)) = rows.last() else {
                return Ok(count);
            };
            after = Some((account.clone(), stream_id.clone()));
            count += rows.len() as u64;
        }
    }

    /// Overwrite projections with states rebuilt from the log (used by replay). Events are untouched.
    async fn put_projections(
        &self,
        projections: Vec<(String, String, StoredProjection)>,
    ) -> Result<(), StoreError>;

    /// Whether the stored projections are of an older layout, to be rebuilt from the log (by
    /// `Ledger::open`) before any is read. Stores that never had another layout say no.
    fn projections_are_stale(&self) -> bool {
        false
    }

    /// Record, durably, that every projection is now in the current layout.
    async fn mark_projections_current(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Append already-sealed events (an import), checking that they continue the chain.
    /// `projections` are the states of the touched streams after these events.
    async fn import(
        &self,
        events: Vec<RecordedEvent>,
        projections: Vec<(String, String, StoredProjection)>,
    ) -> Result<(), StoreError>;

    /// The durable head of the log (`None` while empty).
    async fn head(&self) -> Result<Option<ChainHead>, StoreError>;

    /// A channel that always holds the sequence of the newest durable event.
    fn durable_sequence(&self) -> watch::Receiver<u64>;

    /// The accounts that have a stream with this id (one, unless random ids collided).
    /// For operators' tools that are given an object id alone; requests never use it.
    async fn accounts_owning(&self, stream_id: &str) -> Result<Vec<String>, StoreError>;

    /// Bytes the store occupies on disk.
    async fn disk_bytes(&self) -> Result<u64, StoreError>;

    /// Up to `limit` pending deliveries due at `now_ms` (of durable events), oldest due first,
    /// each leased to `claimant` for `lease_ms`: no other claim returns it until the lease ends
    /// or it is saved.
    async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
        claimant: &str,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// End every lease `claimant` holds: a restarted server takes back at once what its
    /// previous run had claimed and not finished. Returns how many.
    async fn release_claims(&self, claimant: &str) -> Result<u64, StoreError>;

    /// Write deliveries (new ones, or ones with new attempts and state) durably, ending their
    /// leases.
    async fn save_deliveries(&self, deliveries: Vec<Delivery>) -> Result<(), StoreError>;

    /// One event's deliveries, by number.
    async fn event_deliveries(
        &self,
        account: &str,
        event_sequence: u64,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Deliveries of every account in key order (account, event sequence, number), after the
    /// given one: for operators' tools.
    async fn deliveries_after(
        &self,
        after: Option<(String, u64, u32)>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Finish pending writes and release the store.
    async fn close(&self) -> Result<(), StoreError>;
}

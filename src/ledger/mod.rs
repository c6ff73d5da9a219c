//! The `Ledger`: the async shell that loads state, calls the pure `decide`/`apply`, and appends through a store.
//!
//! Every write follows one path (`Ledger::execute`): check the idempotency key, load the
//! stream's projection, decide, fold the new events onto it, append with the expected version,
//! and on a version conflict start again from the fresh state. Writes to one stream are also
//! serialized in-process by a striped lock, so concurrent updates of one charge queue instead of
//! failing, and none is lost.

mod account;
mod error;
mod expiry;
mod history;
mod omise;
mod omise_customers;
mod reads;
mod refunds;
mod search;
mod stripe;
mod webhooks;
mod write;

pub use account::{ACCOUNT_NAME_MAX_CHARS, AccountId, account_is_live};
pub use error::{Failure, LedgerError, Refusal};
pub use refunds::ListRefunds;
pub use search::{
    SEARCH_PAGE_MAX_CHARS, SEARCH_TOTAL_COUNT_MAX, SearchPage, SearchRequest, Searched,
};
pub use webhooks::pending_webhook_count;
use write::{existing_charge, fingerprint, fold_charge, fold_new_charge, unexpected_payload};

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use thiserror::Error;
use time::OffsetDateTime;
use tokio::sync::Mutex;
use tracing::{debug, warn};

use crate::audit::{self, HistoryEntry};
use crate::clock::{Clock, SystemClock};
use crate::domain::FreshIds;
use crate::domain::{
    self, AccountPolicy, CaptureCharge, ChargeState, CreateCharge, CreateCustomer, Customer,
    DecisionContext, FoldError, Projection, Refund, RefundCharge, RequestError, UpdateCharge,
};
use crate::events::{AccountPolicySet, EventPayload, RecordedEvent, RequestMeta};
use crate::ids;
use crate::store::SledOptions;
use crate::store::{
    AppendRequest, EventStore, IdempotencyRecord, LinkedAppend, Page, PageCursor, SledStore,
    StoreError, StoredProjection, StreamVersion,
};
use crate::subscription::Subscription;

/// The stream that holds an account's own rules.
pub const POLICY_STREAM: &str = "policy";
/// Locks striping the in-process serialization of writes per stream.
const STREAM_LOCK_STRIPES: usize = 1024;
/// How often a write is retried after losing an optimistic-concurrency race.
const MAX_APPEND_ATTEMPTS: usize = 32;
/// How long a request waits for another request with the same idempotency key to finish.
const IDEMPOTENCY_WAIT: Duration = Duration::from_secs(10);
/// The longest idempotency key accepted, as on Stripe.
pub const IDEMPOTENCY_KEY_MAX_CHARS: usize = 255;

/// Bounds on a `created` timestamp (Unix seconds); `Default` bounds nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreatedRange {
    pub gt: Option<i64>,
    pub gte: Option<i64>,
    pub lt: Option<i64>,
    pub lte: Option<i64>,
}

impl CreatedRange {
    /// Whether `created` (Unix seconds) is within every bound given.
    pub fn contains(&self, created: i64) -> bool {
        self.gt.is_none_or(|bound| created > bound)
            && self.gte.is_none_or(|bound| created >= bound)
            && self.lt.is_none_or(|bound| created < bound)
            && self.lte.is_none_or(|bound| created <= bound)
    }
}

/// Filters and paging for `Ledger::list_charges`; `Default` is Stripe's default page of 10.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCharges {
    /// 1 to 100.
    pub limit: usize,
    pub cursor: PageCursor,
    pub customer: Option<String>,
    pub transfer_group: Option<String>,
    pub created: CreatedRange,
}

impl Default for ListCharges {
    fn default() -> Self {
        ListCharges {
            limit: 10,
            cursor: PageCursor::Newest,
            customer: None,
            transfer_group: None,
            created: CreatedRange::default(),
        }
    }
}

impl ListCharges {
    fn matches(&self, charge: &ChargeState) -> bool {
        self.customer
            .as_ref()
            .is_none_or(|customer| charge.customer.as_ref() == Some(customer))
            && self.transfer_group.as_ref().is_none_or(|group| {
                charge
                    .stripe_details()
                    .and_then(|details| details.transfer_group.as_ref())
                    == Some(group)
            })
            && self.created.contains(charge.created)
    }
}

/// What a refund produced: the refund object and the charge after it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Refunded {
    pub refund: Refund,
    pub charge: ChargeState,
}

/// What a command decided, before it is appended.
// Lives for one decision; boxing the larger variant would only add an allocation per write.
#[allow(clippy::large_enum_variant)]
enum Decision<T> {
    /// Nothing changes; answer with this.
    Unchanged(T),
    /// Append these events; the stream becomes `projection`, the caller gets `outcome`.
    /// `linked` are events for other streams that must be appended in the same transaction.
    Append {
        payloads: Vec<EventPayload>,
        projection: Projection,
        outcome: T,
        linked: Vec<LinkedAppend>,
    },
}

impl<T> Decision<T> {
    /// The same decision answering with `answer(outcome)` instead.
    fn map<U>(self, answer: impl FnOnce(T) -> U) -> Decision<U> {
        match self.try_map(|outcome| Ok::<U, std::convert::Infallible>(answer(outcome))) {
            Ok(decision) => decision,
        }
    }

    /// `map` with an answer that can fail.
    fn try_map<U, E>(self, answer: impl FnOnce(T) -> Result<U, E>) -> Result<Decision<U>, E> {
        Ok(match self {
            Decision::Unchanged(outcome) => Decision::Unchanged(answer(outcome)?),
            Decision::Append {
                payloads,
                projection,
                outcome,
                linked,
            } => Decision::Append {
                payloads,
                projection,
                outcome: answer(outcome)?,
                linked,
            },
        })
    }
}

/// A charge ledger on an event store. Cheap to clone; clones share the store.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<dyn EventStore>,
    stream_locks: Arc<[Mutex<()>]>,
    /// The time decisions are made at and idempotency retention is measured by.
    clock: Arc<dyn Clock>,
    /// Where the ids of new objects come from.
    ids: Arc<dyn IdSource>,
    /// Admission to the write path: one permit per write waiting or running.
    write_slots: Arc<tokio::sync::Semaphore>,
    max_pending_writes: usize,
    /// What side effects (receipts, the Omise webhook) writes queue besides webhooks.
    side_effect_rules: Arc<domain::SideEffectRules>,
    /// How long an uncaptured Omise authorization is held before it expires.
    omise_authorization_lifetime_seconds: i64,
}

/// How many writes may wait for the store at once before more are refused as overloaded.
pub const DEFAULT_MAX_PENDING_WRITES: usize = 4096;

/// Where the ledger draws the ids of the objects a command may create. The domain draws no
/// randomness itself; a simulation or test may give ids of its own choosing.
pub trait IdSource: Send + Sync {
    /// Ids for what one Stripe command might create.
    fn stripe_ids(&self) -> FreshIds;
    /// Ids for what one Omise command might create, in the account's mode.
    fn omise_ids(&self, livemode: bool) -> crate::domain::omise::OmiseIds;
}

/// Random ids in each platform's shape (`ch_` + 24, `chrg_test_` + 19…).
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn stripe_ids(&self) -> FreshIds {
        FreshIds {
            charge: ids::charge_id(),
            customer: ids::customer_id(),
            payment_method: ids::random_id("card_", 24),
            balance_transaction: ids::random_id("txn_", 24),
            refund: ids::random_id("re_", 24),
        }
    }

    fn omise_ids(&self, livemode: bool) -> crate::domain::omise::OmiseIds {
        crate::domain::omise::OmiseIds {
            charge: ids::omise_id("chrg", livemode),
            customer: ids::omise_id("cust", livemode),
            card: ids::omise_id("card", livemode),
            token: ids::omise_id("tokn", livemode),
            transaction: ids::omise_id("trxn", livemode),
            refund: ids::omise_id("rfnd", livemode),
        }
    }
}

/// What a caller may choose when opening a ledger: the store writer's fault seam (tests), the
/// clock and the id source.
#[derive(Clone)]
pub struct LedgerOptions {
    /// The most memory the store's page cache may hold, in bytes.
    pub cache_capacity_bytes: u64,
    /// How many writes may wait at once; further ones are refused (`Refusal::Overloaded`).
    pub max_pending_writes: usize,
    pub faults: crate::store::faults::FaultInjector,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdSource>,
    /// For a PostgreSQL ledger: a PEM file of CA certificates its TLS certificate may chain to
    /// (asks for TLS). The sled store ignores it.
    pub database_ca_file: Option<std::path::PathBuf>,
}

impl LedgerOptions {
    /// What of these options the PostgreSQL store takes.
    #[cfg(feature = "postgres")]
    fn postgres_options(&self) -> crate::store::PostgresOptions {
        crate::store::PostgresOptions {
            clock: self.clock.clone(),
            ca_file: self.database_ca_file.clone(),
        }
    }
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions {
            cache_capacity_bytes: crate::store::DEFAULT_CACHE_CAPACITY_BYTES,
            max_pending_writes: DEFAULT_MAX_PENDING_WRITES,
            faults: crate::store::faults::FaultInjector::none(),
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
            database_ca_file: None,
        }
    }
}

impl Ledger {
    /// Open (or create) a ledger in a data directory with the embedded sled store.
    ///
    /// Refuses a store whose newest events do not match its recorded chain head.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, LedgerError> {
        Ledger::open_with(path, LedgerOptions::default()).await
    }

    /// Open like [`Ledger::open`] with a chosen clock, id source and fault seam.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: LedgerOptions,
    ) -> Result<Self, LedgerError> {
        let path = path.as_ref().to_path_buf();
        let LedgerOptions {
            cache_capacity_bytes,
            max_pending_writes,
            faults,
            clock,
            ids,
            database_ca_file: _,
        } = options;
        let store_options = SledOptions {
            faults,
            clock: clock.clone(),
            cache_capacity_bytes,
        };
        let store = tokio::task::spawn_blocking(move || SledStore::open_with(path, store_options))
            .await??;
        let ledger = Ledger::with_store_clock_and_ids(Arc::new(store), clock, ids)
            .with_max_pending_writes(max_pending_writes);
        ledger.rebuild_stale_projections().await?;
        Ok(ledger)
    }

    /// Open (or create) a ledger in a PostgreSQL database, applying pending schema migrations.
    /// Any number of processes may open one database; their appends are serialized at the
    /// chain's head (see [`crate::store::postgres`]). `options.faults` and
    /// `options.cache_capacity_bytes` are the sled store's and are not used.
    #[cfg(feature = "postgres")]
    pub async fn open_postgres(
        database_url: &str,
        options: LedgerOptions,
    ) -> Result<Self, LedgerError> {
        let store =
            crate::store::PostgresStore::open_with(database_url, options.postgres_options())
                .await?;
        Ok(
            Ledger::with_store_clock_and_ids(Arc::new(store), options.clock, options.ids)
                .with_max_pending_writes(options.max_pending_writes),
        )
    }

    /// Open a PostgreSQL ledger only to check it (`verify`), even if `open_postgres` would refuse it.
    #[cfg(feature = "postgres")]
    pub async fn open_postgres_for_verification(
        database_url: &str,
        options: LedgerOptions,
    ) -> Result<Self, LedgerError> {
        let store = crate::store::PostgresStore::open_for_verification(
            database_url,
            options.postgres_options(),
        )
        .await?;
        Ok(Ledger::with_store(Arc::new(store)))
    }

    /// Open like [`Ledger::open`], with the store's writer asking `faults` before every commit,
    /// flush and fdatasync: for tests that prove what the ledger does when storage fails.
    pub async fn open_with_faults(
        path: impl AsRef<Path>,
        faults: crate::store::faults::FaultInjector,
    ) -> Result<Self, LedgerError> {
        Ledger::open_with(
            path,
            LedgerOptions {
                faults,
                ..LedgerOptions::default()
            },
        )
        .await
    }

    /// Open a data directory only to check it (`verify`), even if `open` would refuse it.
    pub async fn open_for_verification(path: impl AsRef<Path>) -> Result<Self, LedgerError> {
        let path = path.as_ref().to_path_buf();
        let store =
            tokio::task::spawn_blocking(move || SledStore::open_for_verification(path)).await??;
        Ok(Ledger::with_store(Arc::new(store)))
    }

    /// A ledger over any `EventStore` backend.
    pub fn with_store(store: Arc<dyn EventStore>) -> Self {
        Ledger::with_store_clock_and_ids(store, Arc::new(SystemClock), Arc::new(RandomIds))
    }

    /// A ledger over any `EventStore` backend, deciding at `clock`'s time with `ids`' ids.
    pub fn with_store_clock_and_ids(
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
    ) -> Self {
        let stream_locks: Vec<Mutex<()>> =
            (0..STREAM_LOCK_STRIPES).map(|_| Mutex::new(())).collect();
        Ledger {
            store,
            stream_locks: stream_locks.into(),
            clock,
            ids,
            write_slots: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_PENDING_WRITES)),
            max_pending_writes: DEFAULT_MAX_PENDING_WRITES,
            side_effect_rules: Arc::new(domain::SideEffectRules::default()),
            omise_authorization_lifetime_seconds:
                crate::domain::omise::AUTHORIZATION_LIFETIME_SECONDS,
        }
    }

    /// Hold uncaptured Omise authorizations this long before they expire (Omise: 7 days, the
    /// default; 30 for merchants registered in Japan). Charges keep the expiry they were
    /// created with.
    pub fn with_omise_authorization_lifetime(mut self, lifetime: Duration) -> Self {
        self.omise_authorization_lifetime_seconds =
            i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// Queue receipts and Omise webhooks as these rules say (webhooks to an account's own
    /// endpoints are queued whatever they say). Something must deliver them: the server's
    /// delivery worker does.
    pub fn with_side_effect_rules(mut self, rules: domain::SideEffectRules) -> Self {
        self.side_effect_rules = Arc::new(rules);
        self
    }

    /// What side effects writes queue besides webhooks.
    pub fn side_effect_rules(&self) -> &domain::SideEffectRules {
        &self.side_effect_rules
    }

    /// Admit at most `max_pending_writes` (at least 1) writes at once; more are refused as
    /// overloaded rather than queued.
    pub fn with_max_pending_writes(mut self, max_pending_writes: usize) -> Self {
        let max_pending_writes = max_pending_writes.max(1);
        self.write_slots = Arc::new(tokio::sync::Semaphore::new(max_pending_writes));
        self.max_pending_writes = max_pending_writes;
        self
    }

    /// The clock this ledger decides by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The request time, fresh ids, and the account's mode: what `decide` may not look up itself.
    fn decision_context(&self, account: &AccountId<'_>) -> DecisionContext {
        DecisionContext {
            now_unix: self.clock.now_unix(),
            livemode: account.livemode(),
            ids: self.ids.stripe_ids(),
        }
    }

    /// The same for an Omise command.
    pub(crate) fn omise_context(
        &self,
        account: &AccountId<'_>,
    ) -> crate::domain::omise::OmiseContext {
        let livemode = account.livemode();
        crate::domain::omise::OmiseContext {
            now_unix: self.clock.now_unix(),
            livemode,
            authorization_lifetime_seconds: self.omise_authorization_lifetime_seconds,
            ids: self.ids.omise_ids(livemode),
        }
    }

    /// The store under this ledger.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }
}

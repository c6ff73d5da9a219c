//! The `Ledger`: the async shell that loads state, calls the pure `decide`/`apply`, and appends through a store.
//!
//! Every write follows one path (`Ledger::execute`): check the idempotency key, load the
//! stream's projection, decide, fold the new events onto it, append with the expected version,
//! and on a version conflict start again from the fresh state. Writes to one stream are also
//! serialized in-process by a striped lock, so concurrent updates of one charge queue instead of
//! failing, and none is lost.

mod omise;

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

/// Why a ledger operation failed.
#[derive(Debug, Error)]
pub enum LedgerError {
    /// The request broke a rule; nothing was appended.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// An Omise-dialect request broke one of Omise's rules; nothing was appended.
    #[error(transparent)]
    OmiseRequest(#[from] crate::domain::OmiseRefusal),
    #[error(
        "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
    )]
    IdempotencyKeyReused { key: String },
    #[error(
        "There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): {key}. Please try again later."
    )]
    IdempotencyKeyInUse { key: String },
    #[error(
        "Idempotency keys can be at most {IDEMPOTENCY_KEY_MAX_CHARS} characters long; this one has {length_chars}."
    )]
    IdempotencyKeyTooLong { length_chars: usize },
    #[error("charge {charge_id} has no version {version}; its latest version is {latest}")]
    NoSuchVersion {
        charge_id: String,
        version: u64,
        latest: u64,
    },
    #[error("charge {charge_id} did not exist yet at {as_of}; it was created at {created_at}")]
    NotYetCreated {
        charge_id: String,
        as_of: OffsetDateTime,
        created_at: OffsetDateTime,
    },
    #[error(
        "'{account}' is not a valid account name: use 1 to {ACCOUNT_NAME_MAX_CHARS} printable characters"
    )]
    InvalidAccount { account: String },
    #[error(
        "stream {stream_id} kept changing under this write ({attempts} attempts); another process is writing to it"
    )]
    Contention { stream_id: String, attempts: usize },
    #[error("the stored events of {stream_id} cannot be folded: {source}")]
    CorruptStream {
        stream_id: String,
        #[source]
        source: FoldError,
    },
    #[error("stored idempotency result for key '{key}' cannot be read: {detail}")]
    CorruptIdempotencyRecord { key: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl LedgerError {
    /// A stream whose stored events cannot be folded, as a `map_err` adapter.
    pub(crate) fn corrupt_stream(stream_id: &str) -> impl Fn(FoldError) -> LedgerError + Copy + '_ {
        move |source| LedgerError::CorruptStream {
            stream_id: stream_id.to_string(),
            source,
        }
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
    pub created_gt: Option<i64>,
    pub created_gte: Option<i64>,
    pub created_lt: Option<i64>,
    pub created_lte: Option<i64>,
}

impl Default for ListCharges {
    fn default() -> Self {
        ListCharges {
            limit: 10,
            cursor: PageCursor::Newest,
            customer: None,
            transfer_group: None,
            created_gt: None,
            created_gte: None,
            created_lt: None,
            created_lte: None,
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
            && self.created_gt.is_none_or(|bound| charge.created > bound)
            && self.created_gte.is_none_or(|bound| charge.created >= bound)
            && self.created_lt.is_none_or(|bound| charge.created < bound)
            && self.created_lte.is_none_or(|bound| charge.created <= bound)
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

/// A charge ledger on an event store. Cheap to clone; clones share the store.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<dyn EventStore>,
    stream_locks: Arc<[Mutex<()>]>,
    /// The time decisions are made at and idempotency retention is measured by.
    clock: Arc<dyn Clock>,
    /// Where the ids of new objects come from.
    ids: Arc<dyn IdSource>,
}

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
            card: ids::omise_id("card", livemode),
            token: ids::omise_id("tokn", livemode),
            transaction: ids::omise_id("trxn", livemode),
        }
    }
}

/// What a caller may choose when opening a ledger: the store writer's fault seam (tests), the
/// clock and the id source.
#[derive(Clone)]
pub struct LedgerOptions {
    pub faults: crate::store::faults::FaultInjector,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdSource>,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions {
            faults: crate::store::faults::FaultInjector::none(),
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
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
        let LedgerOptions { faults, clock, ids } = options;
        let store_options = SledOptions {
            faults,
            clock: clock.clone(),
        };
        let store = tokio::task::spawn_blocking(move || SledStore::open_with(path, store_options))
            .await
            .map_err(|error| LedgerError::Io(std::io::Error::other(error)))??;
        let ledger = Ledger::with_store_clock_and_ids(Arc::new(store), clock, ids);
        ledger.rebuild_stale_projections().await?;
        Ok(ledger)
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
        let store = tokio::task::spawn_blocking(move || SledStore::open_for_verification(path))
            .await
            .map_err(|error| LedgerError::Io(std::io::Error::other(error)))??;
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
        }
    }

    /// The clock this ledger decides by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The request time, fresh ids, and the account's mode: what `decide` may not look up itself.
    fn decision_context(&self, account: &str) -> DecisionContext {
        DecisionContext {
            now_unix: self.clock.now_unix(),
            livemode: account_is_live(account),
            ids: self.ids.stripe_ids(),
        }
    }

    /// The same for an Omise command.
    pub(crate) fn omise_context(&self, account: &str) -> crate::domain::omise::OmiseContext {
        let livemode = account_is_live(account);
        crate::domain::omise::OmiseContext {
            now_unix: self.clock.now_unix(),
            livemode,
            ids: self.ids.omise_ids(livemode),
        }
    }

    /// The store under this ledger.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Create a charge: authorize it, and capture it unless `command.capture` is false.
    pub async fn create_charge(
        &self,
        account: &str,
        command: CreateCharge,
        request: RequestMeta,
    ) -> Result<ChargeState, LedgerError> {
        check_account(account)?;
        let customer = match &command.customer {
            Some(id) => self.find_customer(account, id).await?,
            None => None,
        };
        let context = self.decision_context(account);
        let charge_id = context.ids.charge.clone();
        self.execute(
            account,
            &charge_id,
            || fingerprint("create_charge", "", &command),
            request,
            |current| {
                if current.is_some() {
                    // A freshly drawn id collided with an existing charge: vanishingly rare, and
                    // refusing is safer than overwriting. The caller may retry.
                    return Err(LedgerError::Contention {
                        stream_id: charge_id.clone(),
                        attempts: 1,
                    });
                }
                let payload =
                    domain::stripe::decide::create_charge(&command, customer.as_ref(), &context)?;
                fold_new_charge(&charge_id, None, payload)
            },
        )
        .await
    }

    /// Update a charge. Parameters left `None` keep their value; an update that changes nothing
    /// appends nothing and returns the charge as it is.
    pub async fn update_charge(
        &self,
        account: &str,
        charge_id: &str,
        command: UpdateCharge,
        request: RequestMeta,
    ) -> Result<ChargeState, LedgerError> {
        check_account(account)?;
        let referenced_customer = match &command.customer {
            Some(id) => self.find_customer(account, id).await?,
            None => None,
        };
        self.execute_with_policy(
            account,
            charge_id,
            || fingerprint("update_charge", charge_id, &command),
            request,
            |current, policy| {
                let charge = existing_charge(charge_id, current)?;
                match domain::stripe::decide::update_charge(
                    &charge,
                    &command,
                    referenced_customer.as_ref(),
                    policy,
                )? {
                    None => Ok(Decision::Unchanged(charge)),
                    Some(payload) => fold_new_charge(charge_id, Some(charge), payload),
                }
            },
        )
        .await
    }

    /// Capture an authorized charge, in full or in part.
    pub async fn capture_charge(
        &self,
        account: &str,
        charge_id: &str,
        command: CaptureCharge,
        request: RequestMeta,
    ) -> Result<ChargeState, LedgerError> {
        check_account(account)?;
        let context = self.decision_context(account);
        self.execute(
            account,
            charge_id,
            || fingerprint("capture_charge", charge_id, &command),
            request,
            |current| {
                let charge = existing_charge(charge_id, current)?;
                let payload = domain::stripe::decide::capture_charge(&charge, &command, &context)?;
                fold_new_charge(charge_id, Some(charge), payload)
            },
        )
        .await
    }

    /// Refund a charge, in full or in part.
    pub async fn refund_charge(
        &self,
        account: &str,
        charge_id: &str,
        command: RefundCharge,
        request: RequestMeta,
    ) -> Result<Refunded, LedgerError> {
        check_account(account)?;
        let context = self.decision_context(account);
        self.execute(
            account,
            charge_id,
            || fingerprint("refund_charge", charge_id, &command),
            request,
            |current| {
                let charge = existing_charge(charge_id, current)?;
                let payload = domain::stripe::decide::refund_charge(&charge, &command, &context)?;
                let EventPayload::ChargeRefunded(refunded) = &payload else {
                    return Err(unexpected_payload(charge_id, &payload, "charge"));
                };
                let refund = refunded.refund.clone();
                match fold_new_charge(charge_id, Some(charge), payload)? {
                    Decision::Append {
                        payloads,
                        projection,
                        outcome,
                        linked,
                    } => Ok(Decision::Append {
                        payloads,
                        projection,
                        outcome: Refunded {
                            refund,
                            charge: outcome,
                        },
                        linked,
                    }),
                    Decision::Unchanged(charge) => {
                        Ok(Decision::Unchanged(Refunded { refund, charge }))
                    }
                }
            },
        )
        .await
    }

    /// Create a customer.
    pub async fn create_customer(
        &self,
        account: &str,
        command: CreateCustomer,
        request: RequestMeta,
    ) -> Result<Customer, LedgerError> {
        check_account(account)?;
        let context = self.decision_context(account);
        let customer_id = context.ids.customer.clone();
        self.execute(
            account,
            &customer_id,
            || fingerprint("create_customer", "", &command),
            request,
            |current| {
                if current.is_some() {
                    return Err(LedgerError::Contention {
                        stream_id: customer_id.clone(),
                        attempts: 1,
                    });
                }
                let payload = domain::stripe::decide::create_customer(&command, &context)?;
                let projection = domain::apply(None, &payload)
                    .map_err(LedgerError::corrupt_stream(&customer_id))?;
                let Projection::Customer(customer) = &projection else {
                    return Err(unexpected_payload(&customer_id, &payload, "customer"));
                };
                Ok(Decision::Append {
                    outcome: customer.clone(),
                    payloads: vec![payload],
                    projection,
                    linked: Vec::new(),
                })
            },
        )
        .await
    }

    /// Set an account's own rules (recorded as an event, so policy changes are audited too).
    pub async fn set_account_policy(
        &self,
        account: &str,
        policy: AccountPolicy,
        request: RequestMeta,
    ) -> Result<AccountPolicy, LedgerError> {
        check_account(account)?;
        self.execute(
            account,
            POLICY_STREAM,
            || fingerprint("set_account_policy", "", &policy),
            request,
            |current| {
                let existing = match current.map(|stored| &stored.projection) {
                    Some(Projection::AccountPolicy(existing)) => *existing,
                    _ => AccountPolicy::default(),
                };
                if current.is_some() && existing == policy {
                    return Ok(Decision::Unchanged(policy));
                }
                Ok(Decision::Append {
                    payloads: vec![EventPayload::AccountPolicySet(AccountPolicySet { policy })],
                    projection: Projection::AccountPolicy(policy),
                    outcome: policy,
                    linked: Vec::new(),
                })
            },
        )
        .await
    }

    /// An account's rules (the defaults until it sets any).
    pub async fn account_policy(&self, account: &str) -> Result<AccountPolicy, LedgerError> {
        check_account(account)?;
        Ok(self.account_policy_with_version(account).await?.0)
    }

    /// An account's rules and the version of its policy stream (0 while it has set none).
    async fn account_policy_with_version(
        &self,
        account: &str,
    ) -> Result<(AccountPolicy, u64), LedgerError> {
        match self.store.load(account, POLICY_STREAM).await? {
            None => Ok((AccountPolicy::default(), 0)),
            Some(StoredProjection {
                projection: Projection::AccountPolicy(policy),
                version,
                ..
            }) => Ok((policy, version)),
            Some(other) => Err(LedgerError::CorruptStream {
                stream_id: POLICY_STREAM.to_string(),
                source: FoldError::WrongStream {
                    event_type: "account.policy_set",
                    stream_kind: other.projection.kind_name(),
                },
            }),
        }
    }

    /// A charge as it is now.
    pub async fn get_charge(
        &self,
        account: &str,
        charge_id: &str,
    ) -> Result<ChargeState, LedgerError> {
        check_account(account)?;
        let stored = self.store.load(account, charge_id).await?;
        existing_charge(charge_id, stored.as_ref())
    }

    /// A charge and the version of its history it reflects.
    pub async fn get_charge_with_version(
        &self,
        account: &str,
        charge_id: &str,
    ) -> Result<(ChargeState, u64), LedgerError> {
        check_account(account)?;
        let stored = self.store.load(account, charge_id).await?;
        let version = stored.as_ref().map_or(0, |stored| stored.version);
        Ok((existing_charge(charge_id, stored.as_ref())?, version))
    }

    /// A customer.
    pub async fn get_customer(
        &self,
        account: &str,
        customer_id: &str,
    ) -> Result<Customer, LedgerError> {
        check_account(account)?;
        self.find_customer(account, customer_id)
            .await?
            .ok_or_else(|| {
                RequestError::NoSuchCustomer {
                    id: customer_id.to_string(),
                }
                .into()
            })
    }

    /// One page of an account's charges, newest first.
    pub async fn list_charges(
        &self,
        account: &str,
        query: &ListCharges,
    ) -> Result<Page<ChargeState>, LedgerError> {
        check_account(account)?;
        let limit = query.limit.clamp(1, 100);
        Ok(self
            .store
            .list_charges(account, &query.cursor, limit, &|charge| {
                query.matches(charge)
            })
            .await?)
    }

    /// One page of an account's customers, newest first.
    pub async fn list_customers(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
    ) -> Result<Page<Customer>, LedgerError> {
        check_account(account)?;
        Ok(self
            .store
            .list_customers(account, cursor, limit.clamp(1, 100))
            .await?)
    }

    /// One page of an account's events, newest first, keeping those `filter` accepts.
    pub async fn list_events(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        filter: &(dyn for<'event> Fn(&'event RecordedEvent) -> bool + Send + Sync),
    ) -> Result<Page<RecordedEvent>, LedgerError> {
        check_account(account)?;
        Ok(self
            .store
            .list_events(account, cursor, limit.clamp(1, 100), filter)
            .await?)
    }

    /// One of an account's events by its `evt_…` id; `None` if the account has no such event.
    pub async fn event(
        &self,
        account: &str,
        event_id: &str,
    ) -> Result<Option<RecordedEvent>, LedgerError> {
        check_account(account)?;
        Ok(self.store.event(account, event_id).await?)
    }

    /// Forget idempotency keys first used more than `retention` ago; returns how many.
    pub async fn purge_idempotency_keys(&self, retention: Duration) -> Result<usize, LedgerError> {
        let retention_seconds = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        let cutoff = self
            .clock
            .now()
            .unix_timestamp()
            .saturating_sub(retention_seconds);
        Ok(self.store.purge_idempotency(cutoff).await?)
    }

    /// Whether a first response is stored for this account's idempotency key.
    pub async fn has_idempotency_record(
        &self,
        account: &str,
        key: &str,
    ) -> Result<bool, LedgerError> {
        check_account(account)?;
        Ok(self.store.idempotency_record(account, key).await?.is_some())
    }

    /// A charge's audit trail: every version with its time, request and field-level changes.
    pub async fn history(
        &self,
        account: &str,
        charge_id: &str,
    ) -> Result<Vec<HistoryEntry>, LedgerError> {
        self.history_in_view(account, charge_id, &audit::LEDGER_VIEW)
            .await
    }

    /// A charge's history as `view` shows each state (a dialect's wire object, say).
    pub async fn history_in_view(
        &self,
        account: &str,
        charge_id: &str,
        view: &audit::HistoryView,
    ) -> Result<Vec<HistoryEntry>, LedgerError> {
        let events = self.charge_events(account, charge_id, None).await?;
        audit::history_in_view(&events, view).map_err(LedgerError::corrupt_stream(charge_id))
    }

    /// The events of one charge, oldest first.
    pub async fn charge_events(
        &self,
        account: &str,
        charge_id: &str,
        max_version: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, LedgerError> {
        check_account(account)?;
        let events = self
            .store
            .read_stream(account, charge_id, max_version)
            .await?;
        let is_charge = events
            .first()
            .is_some_and(|event| matches!(event.body.payload, EventPayload::ChargeCreated(_)));
        if !is_charge {
            return Err(RequestError::NoSuchCharge {
                id: charge_id.to_string(),
            }
            .into());
        }
        Ok(events)
    }

    /// The charge as it was right after its `version`-th event.
    pub async fn charge_at_version(
        &self,
        account: &str,
        charge_id: &str,
        version: u64,
    ) -> Result<ChargeState, LedgerError> {
        let events = self
            .charge_events(account, charge_id, Some(version))
            .await?;
        let latest = events.last().map_or(0, |event| event.body.stream_version);
        if version == 0 || latest < version {
            let (_, latest) = self.get_charge_with_version(account, charge_id).await?;
            return Err(LedgerError::NoSuchVersion {
                charge_id: charge_id.to_string(),
                version,
                latest,
            });
        }
        fold_charge(charge_id, &events)
    }

    /// The charge as it was at a moment: every event recorded at or before `as_of`.
    pub async fn charge_as_of(
        &self,
        account: &str,
        charge_id: &str,
        as_of: OffsetDateTime,
    ) -> Result<ChargeState, LedgerError> {
        let events = self.charge_events(account, charge_id, None).await?;
        let created_at = events[0].body.recorded_at;
        if as_of < created_at {
            return Err(LedgerError::NotYetCreated {
                charge_id: charge_id.to_string(),
                as_of,
                created_at,
            });
        }
        let until: Vec<RecordedEvent> = events
            .into_iter()
            .take_while(|event| event.body.recorded_at <= as_of)
            .collect();
        fold_charge(charge_id, &until)
    }

    /// The state of an event's stream right before and right after it: what event objects show.
    pub async fn states_around(
        &self,
        account: &str,
        event: &RecordedEvent,
    ) -> Result<(Option<Projection>, Projection), LedgerError> {
        check_account(account)?;
        let stream_id = &event.body.stream_id;
        let stream = self
            .store
            .read_stream(account, stream_id, Some(event.body.stream_version))
            .await?;
        let corrupt = LedgerError::corrupt_stream(stream_id);
        let Some((last, earlier)) = stream.split_last() else {
            return Err(corrupt(FoldError::CannotStartStream {
                event_type: event.body.payload.event_type(),
            }));
        };
        let before =
            domain::fold(earlier.iter().map(|event| &event.body.payload)).map_err(corrupt)?;
        let after = domain::apply(before.clone(), &last.body.payload).map_err(corrupt)?;
        Ok((before, after))
    }

    /// Up to `limit` events of the whole log after `after_sequence`, in order.
    pub async fn events_after(
        &self,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LedgerError> {
        Ok(self.store.read_all_after(after_sequence, limit).await?)
    }

    /// Follow the log: first every event after `after_sequence`, then each new one as it
    /// becomes durable, none missed and none twice.
    pub fn subscribe(&self, after_sequence: u64) -> Subscription {
        Subscription::new(self.store.clone(), after_sequence)
    }

    /// Finish pending writes and close the store.
    pub async fn close(&self) -> Result<(), LedgerError> {
        Ok(self.store.close().await?)
    }

    async fn find_customer(
        &self,
        account: &str,
        customer_id: &str,
    ) -> Result<Option<Customer>, LedgerError> {
        Ok(match self.store.load(account, customer_id).await? {
            Some(StoredProjection {
                projection: Projection::Customer(customer),
                ..
            }) => Some(customer),
            _ => None,
        })
    }

    fn stream_lock(&self, account: &str, stream_id: &str) -> &Mutex<()> {
        let mut hasher = DefaultHasher::new();
        (account, stream_id).hash(&mut hasher);
        let stripe = usize::try_from(hasher.finish() % STREAM_LOCK_STRIPES as u64).unwrap_or(0);
        &self.stream_locks[stripe]
    }

    /// The one write path for a command on one stream.
    async fn execute<T>(
        &self,
        account: &str,
        stream_id: &str,
        fingerprint: impl FnOnce() -> String,
        request: RequestMeta,
        mut decide: impl FnMut(Option<&StoredProjection>) -> Result<Decision<T>, LedgerError>,
    ) -> Result<T, LedgerError>
    where
        T: Serialize + DeserializeOwned,
    {
        self.execute_with_linked(
            account,
            stream_id,
            None,
            fingerprint,
            request,
            |current, _| decide(current),
        )
        .await
    }

    /// A write whose decision depends on the account's policy (`freeze_after_capture`). The
    /// policy is read on every attempt, inside the stream's lock, and its version is checked at
    /// commit: an update racing a policy change either commits before it or is decided again
    /// under the new policy.
    async fn execute_with_policy<T>(
        &self,
        account: &str,
        stream_id: &str,
        fingerprint: impl FnOnce() -> String,
        request: RequestMeta,
        mut decide: impl FnMut(
            Option<&StoredProjection>,
            &AccountPolicy,
        ) -> Result<Decision<T>, LedgerError>,
    ) -> Result<T, LedgerError>
    where
        T: Serialize + DeserializeOwned,
    {
        let scope = WriteScope {
            stream_id,
            linked_stream_id: None,
            reads_policy: true,
        };
        self.execute_in(
            account,
            scope,
            fingerprint,
            request,
            |current, _, policy| decide(current, policy),
        )
        .await
    }

    /// A write that may also append to a second stream (the token a charge spends). The linked
    /// stream is re-read on every attempt and its version is checked at commit, so two charges
    /// can never spend one token. It is not locked: taking two striped locks could deadlock, and
    /// optimistic concurrency already makes it safe.
    async fn execute_with_linked<T>(
        &self,
        account: &str,
        stream_id: &str,
        linked_stream_id: Option<&str>,
        fingerprint: impl FnOnce() -> String,
        request: RequestMeta,
        mut decide: impl FnMut(
            Option<&StoredProjection>,
            Option<&StoredProjection>,
        ) -> Result<Decision<T>, LedgerError>,
    ) -> Result<T, LedgerError>
    where
        T: Serialize + DeserializeOwned,
    {
        let scope = WriteScope {
            stream_id,
            linked_stream_id,
            reads_policy: false,
        };
        self.execute_in(
            account,
            scope,
            fingerprint,
            request,
            |current, linked, _| decide(current, linked),
        )
        .await
    }

    /// The one write path: idempotency, load, decide, append, retry on conflict. The decision
    /// is given the stream, the linked stream and (when `scope.reads_policy`) the account's
    /// policy; a scope that does not read the policy is given the default, which no caller
    /// outside `execute_with_policy` can see.
    async fn execute_in<T>(
        &self,
        account: &str,
        scope: WriteScope<'_>,
        fingerprint: impl FnOnce() -> String,
        request: RequestMeta,
        mut decide: impl FnMut(
            Option<&StoredProjection>,
            Option<&StoredProjection>,
            &AccountPolicy,
        ) -> Result<Decision<T>, LedgerError>,
    ) -> Result<T, LedgerError>
    where
        T: Serialize + DeserializeOwned,
    {
        let WriteScope {
            stream_id,
            linked_stream_id,
            reads_policy,
        } = scope;
        // Hashing the parameters costs a serialization: only requests with a key pay it.
        let fingerprint = request.idempotency_key.as_ref().map(|_| fingerprint());
        let fingerprint = fingerprint.as_deref().unwrap_or_default();
        if let Some(key) = &request.idempotency_key {
            let length_chars = key.chars().count();
            if length_chars > IDEMPOTENCY_KEY_MAX_CHARS {
                return Err(LedgerError::IdempotencyKeyTooLong { length_chars });
            }
            if let Some(record) = self.store.idempotency_record(account, key).await? {
                return self.replay_idempotent(record, fingerprint).await;
            }
        }
        let _serialized = self.stream_lock(account, stream_id).lock().await;
        let waited_since = tokio::time::Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let current = self.store.load(account, stream_id).await?;
            let linked_current = match linked_stream_id {
                Some(linked) => self.store.load(account, linked).await?,
                None => None,
            };
            let (policy, read_versions) = if reads_policy {
                let (policy, version) = self.account_policy_with_version(account).await?;
                let read = StreamVersion {
                    stream_id: POLICY_STREAM.to_string(),
                    version,
                };
                (policy, vec![read])
            } else {
                (AccountPolicy::default(), Vec::new())
            };
            let (payloads, projection, outcome, linked) =
                match decide(current.as_ref(), linked_current.as_ref(), &policy)? {
                    Decision::Unchanged(outcome) => return Ok(outcome),
                    Decision::Append {
                        payloads,
                        projection,
                        outcome,
                        linked,
                    } => (payloads, projection, outcome, linked),
                };
            let idempotency = request
                .idempotency_key
                .as_ref()
                .map(|key| IdempotencyRecord {
                    key: key.clone(),
                    fingerprint: fingerprint.to_string(),
                    outcome: serde_json::to_value(&outcome).expect(
                        "a write's outcome (a charge, refund, customer, token or policy) always encodes as JSON",
                    ),
                    created_at_unix: self.clock.now_unix(),
                    sequence: 0,
                });
            let append = AppendRequest {
                account: account.to_string(),
                stream_id: stream_id.to_string(),
                expected_version: current.as_ref().map_or(0, |stored| stored.version),
                payloads,
                request: request.clone(),
                projection,
                idempotency,
                linked,
                read_versions,
            };
            match self.store.append(append).await {
                Ok(events) => {
                    debug!(stream_id, events = events.len(), "appended");
                    return Ok(outcome);
                }
                Err(StoreError::VersionConflict { .. }) if attempts < MAX_APPEND_ATTEMPTS => {
                    debug!(
                        stream_id,
                        attempts, "version conflict; deciding again on fresh state"
                    );
                }
                Err(StoreError::VersionConflict { .. }) => {
                    warn!(
                        stream_id,
                        attempts, "giving up after repeated version conflicts"
                    );
                    return Err(LedgerError::Contention {
                        stream_id: stream_id.to_string(),
                        attempts,
                    });
                }
                Err(StoreError::IdempotencyKeyTaken(record)) => {
                    return self.replay_idempotent(*record, fingerprint).await;
                }
                Err(StoreError::IdempotencyKeyInFlight { key }) => {
                    // Another request with this key is in the commit under way: its record is
                    // readable once that commit is durable, so wait for the durable head to move
                    // (marking the current head seen first, so a commit that already happened is
                    // not waited for again), then read it. If that commit failed, there is no
                    // record and this request is decided afresh.
                    let remaining = IDEMPOTENCY_WAIT.saturating_sub(waited_since.elapsed());
                    if remaining.is_zero() {
                        return Err(LedgerError::IdempotencyKeyInUse { key });
                    }
                    let mut durable = self.store.durable_sequence();
                    durable.borrow_and_update();
                    if let Some(record) = self.store.idempotency_record(account, &key).await? {
                        return self.replay_idempotent(record, fingerprint).await;
                    }
                    let _ = tokio::time::timeout(remaining, durable.changed()).await;
                    if let Some(record) = self.store.idempotency_record(account, &key).await? {
                        return self.replay_idempotent(record, fingerprint).await;
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Answer a retried request from its first result, once that result is durable.
    async fn replay_idempotent<T: DeserializeOwned>(
        &self,
        record: IdempotencyRecord,
        fingerprint: &str,
    ) -> Result<T, LedgerError> {
        if record.fingerprint != fingerprint {
            return Err(LedgerError::IdempotencyKeyReused { key: record.key });
        }
        let mut durable = self.store.durable_sequence();
        let _ = durable
            .wait_for(|sequence| *sequence >= record.sequence)
            .await;
        serde_json::from_value(record.outcome).map_err(|error| {
            LedgerError::CorruptIdempotencyRecord {
                key: record.key,
                detail: error.to_string(),
            }
        })
    }
}

/// The streams a write touches: the one it appends to, a linked one it may also append to, and
/// whether its decision reads the account's policy.
struct WriteScope<'a> {
    stream_id: &'a str,
    linked_stream_id: Option<&'a str>,
    reads_policy: bool,
}

/// A request's identity for idempotency: the operation, its target and its parameters.
fn fingerprint(operation: &str, target: &str, parameters: &impl Serialize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(operation.as_bytes());
    hasher.update([0]);
    hasher.update(target.as_bytes());
    hasher.update([0]);
    // An empty encoding would make every request of this operation look alike: a bug, so stop.
    hasher.update(
        serde_json::to_vec(parameters).expect("a command's parameters always encode as JSON"),
    );
    hex::encode(hasher.finalize())
}

/// The longest account name: a key prefix in storage and a label in logs.
pub const ACCOUNT_NAME_MAX_CHARS: usize = 255;

/// Account names are keys in storage and labels in logs: printable, 1 to 255 characters.
fn check_account(account: &str) -> Result<(), LedgerError> {
    let length = account.chars().count();
    if length == 0 || length > ACCOUNT_NAME_MAX_CHARS || account.chars().any(char::is_control) {
        return Err(LedgerError::InvalidAccount {
            account: account.to_string(),
        });
    }
    Ok(())
}

/// Accounts named after live keys (`sk_live_…`, `skey_…` without `test`) are in live mode.
fn account_is_live(account: &str) -> bool {
    account.contains("_live_")
}

fn existing_charge(
    charge_id: &str,
    stored: Option<&StoredProjection>,
) -> Result<ChargeState, LedgerError> {
    match stored.map(|stored| &stored.projection) {
        Some(Projection::Charge(charge)) => Ok((**charge).clone()),
        _ => Err(RequestError::NoSuchCharge {
            id: charge_id.to_string(),
        }
        .into()),
    }
}

fn fold_new_charge(
    charge_id: &str,
    charge: Option<ChargeState>,
    payload: EventPayload,
) -> Result<Decision<ChargeState>, LedgerError> {
    let projection = domain::apply(
        charge.map(|charge| Projection::Charge(Box::new(charge))),
        &payload,
    )
    .map_err(LedgerError::corrupt_stream(charge_id))?;
    let Projection::Charge(outcome) = &projection else {
        return Err(unexpected_payload(charge_id, &payload, "charge"));
    };
    Ok(Decision::Append {
        outcome: (**outcome).clone(),
        payloads: vec![payload],
        projection,
        linked: Vec::new(),
    })
}

/// A decision produced an event of the wrong kind: a bug, reported rather than panicked on.
fn unexpected_payload(
    stream_id: &str,
    payload: &EventPayload,
    stream_kind: &'static str,
) -> LedgerError {
    LedgerError::CorruptStream {
        stream_id: stream_id.to_string(),
        source: FoldError::WrongStream {
            event_type: payload.event_type(),
            stream_kind,
        },
    }
}

fn fold_charge(charge_id: &str, events: &[RecordedEvent]) -> Result<ChargeState, LedgerError> {
    let corrupt = LedgerError::corrupt_stream(charge_id);
    match domain::fold(events.iter().map(|event| &event.body.payload)).map_err(corrupt)? {
        Some(Projection::Charge(charge)) => Ok(*charge),
        _ => Err(RequestError::NoSuchCharge {
            id: charge_id.to_string(),
        }
        .into()),
    }
}

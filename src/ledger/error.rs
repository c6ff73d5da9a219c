//! Why a ledger operation did not succeed: a refusal (expected; nothing was appended) or a failure (storage or the log broke).
//!
//! Each dialect renders refusals in its own words (`server::stripe::error`,
//! `server::omise::error`) and matches them exhaustively; failures become a 500 whose cause goes
//! to the log. The `Display` texts of the idempotency refusals are Stripe's wording, which the
//! Stripe dialect sends as they are; the Omise dialect has its own.

use super::*;

/// Why a ledger operation did not succeed.
#[derive(Debug, Error)]
pub enum LedgerError {
    /// Expected: the request was refused and nothing was appended.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Fatal for this request: the store or the log failed. Nothing was acknowledged.
    #[error(transparent)]
    Failed(#[from] Failure),
}

/// A request the ledger refused. Nothing was appended for it.
#[derive(Debug, Error)]
pub enum Refusal {
    /// The request broke one of Stripe's rules.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The request broke one of Omise's rules.
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
    /// Retryable: the ledger already has as many writes waiting as it admits.
    #[error("the ledger is busy: {pending} writes are already waiting; retry after a moment")]
    Overloaded { pending: usize },
    /// Retryable: the stream kept changing under the write.
    #[error(
        "stream {stream_id} kept changing under this write ({attempts} attempts); another process is writing to it"
    )]
    Contention { stream_id: String, attempts: usize },
}

/// What broke. The request was not applied, or at least not acknowledged.
#[derive(Debug, Error)]
pub enum Failure {
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
    /// A blocking task (opening the store) panicked or was cancelled.
    #[error("{task} did not finish: {detail}")]
    TaskFailed { task: &'static str, detail: String },
    /// A scan of the whole log (replay, export) met a damaged log.
    #[error("{0}")]
    LogDamaged(String),
    /// The search index names an object its projections do not hold: written wrong, since
    /// entries are written in the same transaction as the projection they index.
    #[error(
        "{0}: the search index disagrees with the charges it indexes; `chargeledger verify` checks the ledger itself, which search does not change"
    )]
    SearchIndexDamaged(String),
    /// Reading an import or writing an export failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl LedgerError {
    /// A stream whose stored events cannot be folded, as a `map_err` adapter.
    pub(crate) fn corrupt_stream(stream_id: &str) -> impl Fn(FoldError) -> LedgerError + Copy + '_ {
        move |source| {
            Failure::CorruptStream {
                stream_id: stream_id.to_string(),
                source,
            }
            .into()
        }
    }

    /// The refusal, if this is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            LedgerError::Refused(refusal) => Some(refusal),
            LedgerError::Failed(_) => None,
        }
    }

    /// Whether the request was refused by a rule (as opposed to failing).
    pub fn is_refusal(&self) -> bool {
        self.refusal().is_some()
    }
}

impl From<RequestError> for LedgerError {
    fn from(refusal: RequestError) -> Self {
        Refusal::Request(refusal).into()
    }
}

impl From<crate::domain::OmiseRefusal> for LedgerError {
    fn from(refusal: crate::domain::OmiseRefusal) -> Self {
        Refusal::OmiseRequest(refusal).into()
    }
}

impl From<StoreError> for LedgerError {
    fn from(failure: StoreError) -> Self {
        Failure::Store(failure).into()
    }
}

impl From<std::io::Error> for LedgerError {
    fn from(failure: std::io::Error) -> Self {
        Failure::Io(failure).into()
    }
}

impl From<tokio::task::JoinError> for LedgerError {
    fn from(failure: tokio::task::JoinError) -> Self {
        Failure::TaskFailed {
            task: "a blocking store task",
            detail: failure.to_string(),
        }
        .into()
    }
}

//! Why a ledger operation did not succeed.

use super::*;

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

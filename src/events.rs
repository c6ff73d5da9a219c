//! The stored event schema (version 1): the ledger's compatibility boundary, separate from any wire format.
//!
//! Every fact the ledger knows is one of these events, appended once and never rewritten. An
//! event is stored as JSON (`serde_json`) so an auditor can read the log with any tool.
//! Changing the serde shape of anything here, including the domain value types it embeds
//! (`Shipping`, `Address`, `FraudDetails`, `Refund`, `Card`, metadata), is a schema change:
//! it needs a new `EVENT_SCHEMA_VERSION` and an upcaster, and `tests/stored_format.rs` pins the
//! current shape byte for byte. Additive changes keep version 1: a new event type, or a new
//! optional field that is left out of the JSON while unset (so every event written before it
//! re-encodes to the same bytes and keeps its hash). The Omise dialect was added that way.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

// The payloads are the domain's vocabulary; the envelope around them is the store's and the
// ledger's. Re-exported so that `events::EventPayload` names the whole stored format.
pub use crate::domain::events::{
    AccountPolicySet, ChargeCaptured, ChargeCreated, ChargeRefunded, ChargeReversed, ChargeUpdated,
    CustomerCreated, EventPayload, FieldChange, OmiseChargeCreation, TokenCreated, TokenUsed,
};

/// The schema version written into every new event.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// Who made a request and through which door; kept with every event for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMeta {
    /// `req_…` for HTTP requests; generated for library and CLI calls too.
    pub request_id: String,
    pub idempotency_key: Option<String>,
    /// A masked API key (`sk_test_****abcd`), `library` or `cli`.
    pub actor: String,
    /// Where the request came from: a peer address, a program name, or `None`.
    pub source: Option<String>,
}

impl RequestMeta {
    /// A call from code embedding the library.
    pub fn library() -> Self {
        RequestMeta {
            request_id: crate::ids::request_id(),
            idempotency_key: None,
            actor: "library".into(),
            source: None,
        }
    }

    /// A call from the `chargeledger` command line.
    pub fn cli() -> Self {
        RequestMeta {
            actor: "cli".into(),
            ..RequestMeta::library()
        }
    }

    /// The same request, retried safely: a second call with the same key and the same
    /// parameters returns the first result and appends nothing.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }
}

/// Everything about an event that its hash covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBody {
    pub schema_version: u32,
    /// Gap-free position in the whole log, 1-based, allocated by the single writer.
    pub sequence: u64,
    /// `evt_…`: the id Stripe's events API shows.
    pub event_id: String,
    pub account: String,
    /// The object this event is about: `ch_…`, `cus_…`, or `policy` for account rules.
    pub stream_id: String,
    /// Gap-free position within the stream, 1-based.
    pub stream_version: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub request: RequestMeta,
    /// The hash of the event at `sequence - 1` (64 zeros for the first event).
    pub previous_hash: String,
    pub payload: EventPayload,
}

/// An event as stored: its body and the SHA-256 over it that links the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub body: EventBody,
    pub hash: String,
}

impl fmt::Display for RecordedEvent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "#{} {} {} v{} {}",
            self.body.sequence,
            self.body.payload.event_type(),
            self.body.stream_id,
            self.body.stream_version,
            self.body.recorded_at
        )
    }
}

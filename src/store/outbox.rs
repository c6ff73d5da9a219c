//! The outbox: side effects of events (webhooks, receipts), written in the same transaction as the event, and every delivery attempt made since.
//!
//! A `Delivery` is created pending by the append that writes its event (`AppendRequest::
//! deliveries`), so an acknowledged event never lacks its side effects and no side effect exists
//! for an event that was not written. A delivery worker claims due deliveries
//! (`EventStore::claim_deliveries`: a lease, so two servers on one database do not both send
//! one), attempts them, and saves each attempt (`save_deliveries`). Deliveries are bookkeeping,
//! not events: they change as attempts are made, are not hash-chained, and `replay` and
//! `verify` do not read them.

use serde::{Deserialize, Serialize};

use crate::domain::Destination;

/// A side effect the ledger asks for with an append: `payload_index` names the event (among
/// the main stream's payloads) it is the side effect of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryIntent {
    pub payload_index: usize,
    pub destination: Destination,
}

/// Why a delivery exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryReason {
    /// Written with its event.
    Event,
    /// Asked for later (`POST /v1/events/{id}/resend`, `chargeledger resend`).
    Resend,
}

/// Where a delivery stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DeliveryState {
    /// To be attempted at (or after) this time, in Unix milliseconds.
    Pending { next_attempt_at_ms: i64 },
    /// An attempt succeeded.
    Delivered { at_ms: i64 },
    /// Every attempt failed and the retries are used up.
    Failed { at_ms: i64, reason: String },
    /// Stopped without success because its destination is gone (a deleted or disabled
    /// endpoint) or cannot be reached as configured.
    Cancelled { at_ms: i64, reason: String },
}

impl DeliveryState {
    pub fn name(&self) -> &'static str {
        match self {
            DeliveryState::Pending { .. } => "pending",
            DeliveryState::Delivered { .. } => "delivered",
            DeliveryState::Failed { .. } => "failed",
            DeliveryState::Cancelled { .. } => "cancelled",
        }
    }

    /// When it is due, while pending.
    pub fn due_at_ms(&self) -> Option<i64> {
        match self {
            DeliveryState::Pending { next_attempt_at_ms } => Some(*next_attempt_at_ms),
            _ => None,
        }
    }
}

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Unix milliseconds when it was sent.
    pub at_ms: i64,
    /// From sending to the answer (or the failure).
    pub latency_ms: u64,
    pub succeeded: bool,
    /// The receiver's HTTP status, or the SMTP server's reply code.
    pub status: Option<u16>,
    /// The start of the answer (at most `RESPONSE_EXCERPT_MAX_BYTES`), or why it failed.
    pub detail: String,
    /// What chaos shaped this attempt (`duplicate`, `delayed 500 ms`, `out of order`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos: Option<String>,
}

/// How much of a receiver's answer an attempt keeps.
pub const RESPONSE_EXCERPT_MAX_BYTES: usize = 500;

/// One side effect of one event and its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub account: String,
    pub event_id: String,
    pub event_sequence: u64,
    /// Numbers the event's deliveries: those written with it first, resends after.
    pub number: u32,
    pub destination: Destination,
    pub reason: DeliveryReason,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    pub state: DeliveryState,
    pub attempts: Vec<Attempt>,
}

impl Delivery {
    /// `dlv_<event sequence>_<number>`: unique in the store, readable in logs.
    pub fn id(&self) -> String {
        delivery_id(self.event_sequence, self.number)
    }
}

pub fn delivery_id(event_sequence: u64, number: u32) -> String {
    format!("dlv_{event_sequence}_{number}")
}

/// Parse `dlv_<sequence>_<number>`.
pub fn parse_delivery_id(id: &str) -> Option<(u64, u32)> {
    let (sequence, number) = id.strip_prefix("dlv_")?.split_once('_')?;
    Some((sequence.parse().ok()?, number.parse().ok()?))
}

/// The stored encoding of a delivery. Plain data with string keys: it always encodes.
pub(crate) fn encode_delivery(delivery: &Delivery) -> Vec<u8> {
    serde_json::to_vec(delivery).expect("a delivery always encodes as JSON")
}

//! What happened to a charge, a customer, a token or an account: the event payloads, the domain's own vocabulary.
//!
//! These payloads are what `decide` produces and `apply` folds. They are stored inside the
//! envelope (`crate::events::EventBody`: sequence, stream version, time, request meta, hash),
//! which lives above the domain; their serde shape is part of the stored format v1 described
//! there, pinned byte for byte by `tests/stored_format.rs`.

use serde::{Deserialize, Serialize};

use crate::domain::webhooks::{ReceiptSent, WebhookEndpointDeleted, WebhookEndpointRecorded};
use crate::domain::{
    AccountPolicy, Card, FraudDetails, Metadata, Refund, SavedCard, Shipping, VaultCard,
};

/// One changed top-level field of a charge: its value before and after.
///
/// For `metadata` only the keys that changed are kept: a key in `previous` but not `current` was
/// removed, one in `current` only was added. That is enough for Stripe's `previous_attributes`
/// and keeps an event's size independent of how much metadata the charge already carries.
// Variants differ in size (shipping is large); boxing would cost an allocation per decoded
// event on the replay path, which matters more than the memory of a value held briefly.
//
// Decoded by `field_change_serde` (tag first, no buffering), in the shape this derive writes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "field", rename_all = "snake_case")]
pub enum FieldChange {
    Customer {
        previous: Option<String>,
        current: Option<String>,
    },
    Description {
        previous: Option<String>,
        current: Option<String>,
    },
    Metadata {
        previous: Metadata,
        current: Metadata,
    },
    ReceiptEmail {
        previous: Option<String>,
        current: Option<String>,
    },
    Shipping {
        previous: Option<Shipping>,
        current: Option<Shipping>,
    },
    FraudDetails {
        previous: FraudDetails,
        current: FraudDetails,
    },
    TransferGroup {
        previous: Option<String>,
        current: Option<String>,
    },
    StatementDescriptor {
        previous: Option<String>,
        current: Option<String>,
    },
    StatementDescriptorSuffix {
        previous: Option<String>,
        current: Option<String>,
    },
}

impl FieldChange {
    /// The change from `before` to `after` metadata, each side holding only the keys that
    /// differ; `None` when they are equal. Both dialects record metadata changes this way.
    pub fn metadata(before: &Metadata, after: &Metadata) -> Option<FieldChange> {
        let mut previous = Metadata::new();
        let mut current = Metadata::new();
        for (key, value) in before {
            if after.get(key) != Some(value) {
                previous.insert(key.clone(), value.clone());
            }
        }
        for (key, value) in after {
            if before.get(key) != Some(value) {
                current.insert(key.clone(), value.clone());
            }
        }
        if previous.is_empty() && current.is_empty() {
            return None;
        }
        Some(FieldChange::Metadata { previous, current })
    }

    /// The charge attribute this change is about, as Stripe names it.
    pub fn field_name(&self) -> &'static str {
        match self {
            FieldChange::Customer { .. } => "customer",
            FieldChange::Description { .. } => "description",
            FieldChange::Metadata { .. } => "metadata",
            FieldChange::ReceiptEmail { .. } => "receipt_email",
            FieldChange::Shipping { .. } => "shipping",
            FieldChange::FraudDetails { .. } => "fraud_details",
            FieldChange::TransferGroup { .. } => "transfer_group",
            FieldChange::StatementDescriptor { .. } => "statement_descriptor",
            FieldChange::StatementDescriptorSuffix { .. } => "statement_descriptor_suffix",
        }
    }
}

/// A charge came into being (authorized, and captured unless `captured` is false).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargeCreated {
    pub charge_id: String,
    pub livemode: bool,
    pub created: i64,
    pub amount: i64,
    pub currency: String,
    pub captured: bool,
    pub customer: Option<String>,
    /// The test token or card the caller paid with: a Stripe token or card, an Omise vault
    /// token (`tokn_…`), or, for an Omise charge of a customer, the saved card (`card_…`).
    pub source: String,
    pub payment_method: String,
    pub card: Card,
    /// `txn_…`, set when the charge is captured on creation.
    pub balance_transaction: Option<String>,
    pub description: Option<String>,
    pub metadata: Metadata,
    pub receipt_email: Option<String>,
    pub shipping: Option<Shipping>,
    pub statement_descriptor: Option<String>,
    pub statement_descriptor_suffix: Option<String>,
    pub transfer_group: Option<String>,
    /// Set only on charges created through the Omise dialect (absent from Stripe charges' JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omise: Option<OmiseChargeCreation>,
}

/// Why the card network (here: the test card the caller named) turned a charge attempt down.
/// Dialect-neutral: Stripe renders it as `failure_code`, `failure_message` and `outcome`, Omise
/// as `failure_code` and `failure_message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeFailure {
    /// The dialect's failure code: Stripe's error `code` (`card_declined`), Omise's
    /// `failure_code` (`insufficient_fund`).
    pub code: String,
    /// The message the dialect shows for it.
    pub message: String,
    /// Stripe's `decline_code`, where the network gave one (`insufficient_funds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
    /// Turned down by risk rules before it reached the network (Stripe's "always blocked" card).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blocked: bool,
}

/// A charge attempt the card network declined. The charge exists (it can be read, listed and
/// updated) but holds no money: nothing was authorized, captured or can be refunded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargeFailed {
    /// The attempt as a creation would have recorded it, with `captured` false and no
    /// balance transaction.
    pub attempt: ChargeCreated,
    pub failure: ChargeFailure,
}

/// What an Omise charge creation records beyond the common fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OmiseChargeCreation {
    /// The vault card it was paid with, as Omise's card object shows it.
    pub card: VaultCard,
    pub return_uri: Option<String>,
    /// The payer's IP address as the merchant reported it.
    pub ip: Option<String>,
    /// When the authorization expires if not captured (Unix seconds). Charges recorded before
    /// it was kept expire 7 days after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// An uncaptured Omise authorization reached its `expires_at` and was let go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargeExpired {
    /// Unix seconds.
    pub expired_at: i64,
}

/// Fields of a charge changed through an update request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargeUpdated {
    pub changes: Vec<FieldChange>,
}

/// An authorized charge was captured, in full or in part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargeCaptured {
    pub amount_captured: i64,
    pub balance_transaction: String,
    /// On a partial capture the uncaptured remainder is released as a refund, as Stripe does.
    pub released_remainder: Option<Refund>,
    /// Fields the capture request also set (receipt_email, statement descriptors, transfer_group).
    pub changes: Vec<FieldChange>,
    /// When the capture was decided, in Unix seconds. Recorded by the Omise dialect, whose
    /// charge object shows `paid_at`; absent on Stripe captures (Stripe shows no capture time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<i64>,
}

/// An uncaptured authorization was released (Omise's reverse). Nothing was ever captured, so
/// nothing is refunded: the charge keeps `amount_refunded` 0 and becomes `reversed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargeReversed {
    pub reversed_at: i64,
}

/// A card was put in the vault (Omise's `POST /tokens`). Only what the card object shows is
/// kept: never the full number or the security code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenCreated {
    pub token_id: String,
    pub livemode: bool,
    pub created: i64,
    pub card: VaultCard,
    /// For Omise's failing test cards: how a charge paid with it is declined. The number is
    /// never kept, so the outcome is decided when the card enters the vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declines_with: Option<ChargeFailure>,
}

/// A token was spent on a charge; a token can be used once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenUsed {
    pub charge_id: String,
}

/// Money went back to the customer (or an uncaptured authorization was released).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargeRefunded {
    pub refund: Refund,
}

/// A refund's metadata was changed (Stripe's `POST /v1/refunds/{id}`). Like a charge's
/// metadata change, each side holds only the keys that differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundUpdated {
    /// `re_…`: a refund of the charge whose stream holds this event.
    pub refund_id: String,
    pub previous_metadata: Metadata,
    pub current_metadata: Metadata,
}

/// A customer was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerCreated {
    pub customer_id: String,
    pub livemode: bool,
    pub created: i64,
    pub email: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: Metadata,
    /// An Omise customer's first card, saved from a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<SavedCard>,
}

/// An Omise customer changed (`PATCH /customers/{id}`): each field present is its new value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Replaced as a whole, as Omise metadata is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// A card saved from a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_added: Option<SavedCard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_card: Option<String>,
}

/// A vault token's card was saved to an Omise customer, which uses the token up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenAttached {
    pub customer_id: String,
}

/// An account changed its own rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountPolicySet {
    pub policy: AccountPolicy,
}

/// What happened. The tag is the Stripe-style event type.
// Unboxed for the same reason as `FieldChange`: replay decodes millions of these.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EventPayload {
    #[serde(rename = "charge.created")]
    ChargeCreated(ChargeCreated),
    #[serde(rename = "charge.failed")]
    ChargeFailed(ChargeFailed),
    #[serde(rename = "charge.updated")]
    ChargeUpdated(ChargeUpdated),
    #[serde(rename = "charge.captured")]
    ChargeCaptured(ChargeCaptured),
    #[serde(rename = "charge.refunded")]
    ChargeRefunded(ChargeRefunded),
    #[serde(rename = "refund.updated")]
    RefundUpdated(RefundUpdated),
    #[serde(rename = "customer.created")]
    CustomerCreated(CustomerCreated),
    #[serde(rename = "customer.updated")]
    CustomerUpdated(CustomerUpdated),
    #[serde(rename = "account.policy_set")]
    AccountPolicySet(AccountPolicySet),
    #[serde(rename = "charge.reversed")]
    ChargeReversed(ChargeReversed),
    #[serde(rename = "charge.expired")]
    ChargeExpired(ChargeExpired),
    #[serde(rename = "token.created")]
    TokenCreated(TokenCreated),
    #[serde(rename = "token.used")]
    TokenUsed(TokenUsed),
    #[serde(rename = "token.attached")]
    TokenAttached(TokenAttached),
    #[serde(rename = "charge.receipt_sent")]
    ReceiptSent(ReceiptSent),
    #[serde(rename = "webhook_endpoint.created")]
    WebhookEndpointCreated(WebhookEndpointRecorded),
    #[serde(rename = "webhook_endpoint.updated")]
    WebhookEndpointUpdated(WebhookEndpointRecorded),
    #[serde(rename = "webhook_endpoint.deleted")]
    WebhookEndpointDeleted(WebhookEndpointDeleted),
}

impl EventPayload {
    /// The event type, as stored and as Stripe names it (`charge.updated`).
    pub fn event_type(&self) -> &'static str {
        match self {
            EventPayload::ChargeCreated(_) => "charge.created",
            EventPayload::ChargeFailed(_) => "charge.failed",
            EventPayload::ChargeUpdated(_) => "charge.updated",
            EventPayload::ChargeCaptured(_) => "charge.captured",
            EventPayload::ChargeRefunded(_) => "charge.refunded",
            EventPayload::RefundUpdated(_) => "refund.updated",
            EventPayload::CustomerCreated(_) => "customer.created",
            EventPayload::CustomerUpdated(_) => "customer.updated",
            EventPayload::AccountPolicySet(_) => "account.policy_set",
            EventPayload::ChargeReversed(_) => "charge.reversed",
            EventPayload::ChargeExpired(_) => "charge.expired",
            EventPayload::TokenCreated(_) => "token.created",
            EventPayload::TokenUsed(_) => "token.used",
            EventPayload::TokenAttached(_) => "token.attached",
            EventPayload::ReceiptSent(_) => "charge.receipt_sent",
            EventPayload::WebhookEndpointCreated(_) => "webhook_endpoint.created",
            EventPayload::WebhookEndpointUpdated(_) => "webhook_endpoint.updated",
            EventPayload::WebhookEndpointDeleted(_) => "webhook_endpoint.deleted",
        }
    }

    /// The refund this event records the creation of, if any: a refund, or the released
    /// remainder of a partial capture (which Stripe lists as a refund). Stores index refunds
    /// by it, so `GET /v1/refunds` needs no scan.
    pub fn refund_recorded(&self) -> Option<&Refund> {
        match self {
            EventPayload::ChargeRefunded(refunded) => Some(&refunded.refund),
            EventPayload::ChargeCaptured(captured) => captured.released_remainder.as_ref(),
            _ => None,
        }
    }
}

//! Omise's rules for the same ledger: vault tokens, charge creation with Omise's minimums, updates that replace free-form metadata, capture, reverse and refunds. Pure.
//!
//! Omise charges are ordinary charge streams folded by the same `apply` into the same
//! `ChargeState`; what only Omise has (the creation's `capture` flag, `return_uri`, `ip`) is its
//! `OmiseDetails`, and the vault card is its `Instrument::VaultCard`. Refusals are `OmiseRefusal`s whose `code()` and `Display` are Omise's own
//! wire strings (see `shared/spec/omise-charges.md`, section 3).

mod commands;
mod customers;
mod decide;
mod refund;
pub mod search;

use crate::domain::events::EventPayload;
use thiserror::Error;

pub use crate::domain::card_number::{card_brand, passes_luhn};
pub use commands::{
    CaptureOmiseCharge, CreateOmiseCharge, CreateToken, RefundOmiseCharge, UpdateOmiseCharge,
};
pub use customers::{
    CreateOmiseCustomer, CustomerDecision, UpdateOmiseCustomer, card_to_charge, create_customer,
    update_customer,
};
pub use decide::{
    OmiseChargeDecision, PaymentSource, capture_charge, create_charge, create_token, expire_charge,
    expires_at, reverse_charge, update_charge,
};
pub use refund::refund_charge;

/// Metadata is free-form JSON on Omise; this bounds what one charge may carry (serialized).
pub const METADATA_MAX_BYTES: usize = 16 * 1024;
/// The longest description accepted.
pub const DESCRIPTION_MAX_CHARS: usize = 5000;
/// Omise's docs: at most 15 refunds per charge.
pub const REFUNDS_PER_CHARGE_MAX: usize = 15;
/// How long an authorization is held before Omise would expire it (shown as `expires_at`).
pub const AUTHORIZATION_LIFETIME_SECONDS: i64 = 7 * 24 * 3600;

/// Omise's currencies and their minimum charge, in subunits. Omise publishes a minimum per
/// currency; THB's 2000 satang is recorded on the wire, the others follow Omise's docs.
pub fn minimum_amount(currency: &str) -> Option<i64> {
    Some(match currency {
        "thb" => 2000,
        "jpy" => 100,
        "sgd" | "usd" | "eur" | "gbp" | "aud" | "cad" | "chf" | "hkd" | "cny" => 100,
        "myr" => 200,
        "dkk" => 500,
        _ => return None,
    })
}

/// The largest amount accepted: 10^12 subunits keeps every sum far from `i64` overflow.
pub const AMOUNT_MAX: i64 = 1_000_000_000_000;

/// Why an Omise request was refused. Nothing is appended for a refused request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OmiseRefusal {
    #[error("number can't be blank")]
    CardNumberMissing,
    #[error("number is invalid and brand not supported (unknown)")]
    CardNumberInvalid,
    #[error("name can't be blank")]
    CardNameMissing,
    #[error("expiration month is not between 1 and 12")]
    ExpirationMonthInvalid,
    #[error("expiration year is invalid")]
    ExpirationYearInvalid,
    #[error("expiration date cannot be in the past")]
    CardExpired,
    #[error("security code is invalid")]
    SecurityCodeInvalid,
    #[error("amount must be greater than or equal to {minimum} ({currency} subunits)")]
    AmountTooSmall { minimum: i64, currency: String },
    #[error("amount must be less than or equal to {maximum} ({currency} subunits)")]
    AmountTooLarge { maximum: i64, currency: String },
    #[error("currency is currently not supported")]
    CurrencyNotSupported,
    #[error("card or customer is required")]
    PaymentMissing,
    #[error("source payments are not supported by this ledger; pay with a card token")]
    SourceNotSupported,
    #[error("token {id} was not found")]
    TokenNotFound { id: String },
    #[error("token was already used")]
    TokenUsed { id: String },
    #[error("customer {id} was not found")]
    CustomerNotFound { id: String },
    #[error("card {card_id} was not found")]
    CustomerCardNotFound { card_id: String },
    // Omise's wording for this case is not documented; `missing_card` is its code.
    #[error("customer {customer_id} has no card to charge; add one with a card token")]
    CustomerHasNoCard { customer_id: String },
    // Omise's wording for this case is not documented.
    #[error("email is invalid")]
    EmailInvalid,
    #[error("charge {id} was not found")]
    ChargeNotFound { id: String },
    #[error("charge was already captured")]
    AlreadyCaptured,
    #[error("charge was already reversed")]
    CaptureOfReversedCharge,
    #[error("charge failed and cannot be captured")]
    CaptureOfFailedCharge,
    #[error("capture_amount must be greater than 0")]
    CaptureAmountNotPositive,
    #[error("capture_amount must be less than or equal to the authorized amount ({authorized})")]
    CaptureAmountTooLarge { requested: i64, authorized: i64 },
    #[error("only uncaptured authorized charges can be reversed")]
    ReverseNotAllowed,
    #[error("charge expired")]
    ChargeExpired,
    /// activemerchant's canned Omise answer; Omise's docs name the cases: uncaptured (reverse
    /// it instead), fully refunded, 15 refunds already.
    #[error("charge can't be refunded")]
    ChargeNotRefundable,
    #[error("amount can't be blank")]
    RefundAmountMissing,
    #[error("amount must be greater than 0")]
    RefundAmountNotPositive,
    // Omise's wording for this case is not documented.
    #[error("amount must be less than or equal to the refundable amount ({refundable})")]
    RefundAmountTooLarge { refundable: i64 },
    #[error("refund {id} was not found")]
    RefundNotFound { id: String },
    #[error(
        "charge {charge_id} was captured and this account freezes captured charges (freeze_after_capture), so it can no longer be updated"
    )]
    FrozenAfterCapture { charge_id: String },
    #[error("metadata is {bytes} bytes of JSON; at most {METADATA_MAX_BYTES} are accepted")]
    MetadataTooLarge { bytes: usize },
    #[error(
        "description is {length_chars} characters; at most {DESCRIPTION_MAX_CHARS} are accepted"
    )]
    DescriptionTooLong { length_chars: usize },
    /// Omise's rules decide only for charges created through Omise's API.
    #[error(
        "charge {charge_id} was created through Stripe's API; Omise's operations cannot change it"
    )]
    ChargeOfOtherDialect { charge_id: String },
}

impl OmiseRefusal {
    /// Omise's error code for this refusal.
    pub fn code(&self) -> &'static str {
        use OmiseRefusal::*;
        match self {
            CardNumberMissing
            | CardNumberInvalid
            | CardNameMissing
            | ExpirationMonthInvalid
            | ExpirationYearInvalid
            | CardExpired
            | SecurityCodeInvalid => "invalid_card",
            AmountTooSmall { .. }
            | AmountTooLarge { .. }
            | CurrencyNotSupported
            | PaymentMissing
            | SourceNotSupported => "invalid_charge",
            // A documented 400 that every client maps to its own exception class
            // (omise-python's InvalidChargeError), so existing handlers catch it.
            FrozenAfterCapture { .. } | ChargeOfOtherDialect { .. } => "invalid_charge",
            TokenNotFound { .. }
            | CustomerNotFound { .. }
            | CustomerCardNotFound { .. }
            | ChargeNotFound { .. }
            | RefundNotFound { .. } => "not_found",
            CustomerHasNoCard { .. } => "missing_card",
            EmailInvalid => "bad_request",
            TokenUsed { .. } => "used_token",
            AlreadyCaptured
            | CaptureOfReversedCharge
            | CaptureOfFailedCharge
            | CaptureAmountNotPositive
            | CaptureAmountTooLarge { .. } => "failed_capture",
            ReverseNotAllowed => "failed_reverse",
            ChargeExpired => "expired_charge",
            ChargeNotRefundable | RefundAmountNotPositive | RefundAmountTooLarge { .. } => {
                "failed_refund"
            }
            RefundAmountMissing => "bad_request",
            MetadataTooLarge { .. } | DescriptionTooLong { .. } => "bad_request",
        }
    }

    /// Whether the refusal is "no such object" (HTTP 404) rather than a bad request (400).
    pub fn is_not_found(&self) -> bool {
        self.code() == "not_found"
    }
}

/// Identifiers the shell drew for what an Omise command may create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OmiseIds {
    pub charge: String,
    pub customer: String,
    pub card: String,
    pub token: String,
    pub transaction: String,
    pub refund: String,
}

/// Everything outside an Omise command that its decision may depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OmiseContext {
    pub now_unix: i64,
    pub livemode: bool,
    /// How long an uncaptured authorization is held before it expires (Omise: 7 days, 30 for
    /// merchants registered in Japan).
    pub authorization_lifetime_seconds: i64,
    pub ids: OmiseIds,
}

/// Omise's event key for a stored event; `None` for events Omise shows no event for (the
/// vault's own token records, account policy changes).
pub fn event_key(payload: &EventPayload) -> Option<&'static str> {
    Some(match payload {
        // Omise records a declined attempt as a created charge whose status is `failed`.
        EventPayload::ChargeCreated(_) | EventPayload::ChargeFailed(_) => "charge.create",
        EventPayload::ChargeUpdated(_) => "charge.update",
        EventPayload::ChargeCaptured(_) => "charge.capture",
        EventPayload::ChargeReversed(_) => "charge.reverse",
        EventPayload::ChargeExpired(_) => "charge.expire",
        EventPayload::ChargeRefunded(_) => "refund.create",
        EventPayload::CustomerCreated(_) => "customer.create",
        EventPayload::CustomerUpdated(_) => "customer.update",
        // Refund updates are Stripe's operation only.
        EventPayload::RefundUpdated(_)
        | EventPayload::AccountPolicySet(_)
        | EventPayload::TokenCreated(_)
        | EventPayload::TokenUsed(_)
        | EventPayload::TokenAttached(_)
        | EventPayload::ReceiptSent(_)
        | EventPayload::WebhookEndpointCreated(_)
        | EventPayload::WebhookEndpointUpdated(_)
        | EventPayload::WebhookEndpointDeleted(_) => return None,
    })
}

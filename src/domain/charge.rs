//! The charge as the ledger knows it, whichever API created it: origin, money, lifecycle, instrument and per-dialect details.
//!
//! `ChargeState` is what `apply` folds and what projections store. It is no API's wire object:
//! Stripe's 45-field charge and Omise's 2019-05-29 charge are rendered from it by pure functions
//! in `server::stripe` and `server::omise`. Each dialect's rules (`domain::stripe`,
//! `domain::omise`) decide only for charges of their own origin.

use serde::{Deserialize, Serialize};

use crate::domain::events::ChargeFailure;
use crate::domain::values::{Card, FraudDetails, Metadata, Refund, Shipping, VaultCard};

/// The API a charge was created through. It never changes, and only that dialect's rules decide
/// for the charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Stripe,
    Omise,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Stripe => "Stripe",
            Origin::Omise => "Omise",
        }
    }
}

/// A charge's money, in the currency's smallest unit.
///
/// `apply` asserts after every event that `0 ≤ refunded ≤ captured ≤ authorized` and that
/// `captured + released ≤ authorized`: money is never negative, never refunded past what was
/// captured, never captured or released past what was authorized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    /// The charge's amount: what the card was authorized for. On a failed charge, what was
    /// asked and declined; its other amounts stay 0 (`apply` checks it).
    pub authorized: i64,
    /// What was captured (0 while only authorized).
    pub captured: i64,
    /// What went back to the customer out of what was captured.
    pub refunded: i64,
    /// What of the authorization was let go uncaptured: the remainder of a partial capture, or
    /// all of it when an authorization is reversed.
    pub released: i64,
}

/// Where a charge stands. Follows from `Money`; `apply` checks that the two agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Authorized and not yet captured.
    Authorized,
    /// Captured, and not all of it refunded.
    Captured,
    /// Captured, and all of what was captured refunded.
    Refunded,
    /// The authorization was released without a capture (Omise's reverse, or a Stripe refund
    /// of an uncaptured charge).
    Reversed,
    /// The card network declined the attempt: nothing was authorized, and nothing can be
    /// captured, refunded or reversed. The charge can still be read and updated.
    Failed,
}

/// What the charge was paid with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Instrument {
    /// A Stripe test token (`tok_visa`) or test card, and the payment method it became.
    TestCard {
        source: String,
        payment_method: String,
        card: Card,
    },
    /// A card from Omise's vault, paid with through a single-use token.
    VaultCard { token: String, card: VaultCard },
}

/// What only one dialect's charges have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "dialect", rename_all = "snake_case")]
pub enum DialectDetails {
    Stripe(StripeDetails),
    Omise(OmiseDetails),
}

/// Stripe-only attributes of a charge created through Stripe's API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeDetails {
    pub fraud_details: FraudDetails,
    pub statement_descriptor: Option<String>,
    pub statement_descriptor_suffix: Option<String>,
    pub transfer_group: Option<String>,
}

/// Omise-only attributes of a charge created through Omise's API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OmiseDetails {
    /// The creation's `capture` flag: whether the charge was to be captured at once.
    pub capture: bool,
    pub return_uri: Option<String>,
    /// The payer's IP address as the merchant reported it.
    pub ip: Option<String>,
    /// When an uncaptured authorization expires (Unix seconds); `None` for charges recorded
    /// before it was kept, which expire `AUTHORIZATION_LIFETIME_SECONDS` after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// One charge, folded from its stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargeState {
    pub id: String,
    pub livemode: bool,
    /// Unix seconds.
    pub created: i64,
    /// Lower-case ISO 4217.
    pub currency: String,
    pub money: Money,
    pub lifecycle: Lifecycle,
    pub instrument: Instrument,
    pub customer: Option<String>,
    pub description: Option<String>,
    pub metadata: Metadata,
    pub receipt_email: Option<String>,
    /// Set once a receipt was sent (`NNNN-NNNN`, the same for every receipt of the charge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_number: Option<String>,
    /// Where the receipt sent last can be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_url: Option<String>,
    pub shipping: Option<Shipping>,
    /// The balance transaction (Stripe's `txn_…`, Omise's `trxn_…`) of the capture.
    pub transaction: Option<String>,
    /// Refund records, oldest first: money returned, and on Stripe charges the released
    /// remainder of a partial capture or an uncaptured authorization, which Stripe lists as refunds.
    pub refunds: Vec<Refund>,
    /// When the charge was captured (Unix seconds), where the event recorded it: at creation,
    /// or by an Omise capture. Stripe captures record no time.
    pub captured_at: Option<i64>,
    /// When the authorization was reversed (Omise's reverse).
    pub reversed_at: Option<i64>,
    /// When an uncaptured Omise authorization expired; the charge is then `Reversed` (the
    /// money is let go the same way) and Omise shows it as `expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<i64>,
    /// Why the attempt was declined; set exactly when `lifecycle` is `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<ChargeFailure>,
    pub details: DialectDetails,
}

impl ChargeState {
    pub fn origin(&self) -> Origin {
        match self.details {
            DialectDetails::Stripe(_) => Origin::Stripe,
            DialectDetails::Omise(_) => Origin::Omise,
        }
    }

    pub fn stripe_details(&self) -> Option<&StripeDetails> {
        match &self.details {
            DialectDetails::Stripe(details) => Some(details),
            DialectDetails::Omise(_) => None,
        }
    }

    pub fn omise_details(&self) -> Option<&OmiseDetails> {
        match &self.details {
            DialectDetails::Omise(details) => Some(details),
            DialectDetails::Stripe(_) => None,
        }
    }

    /// Whether money was captured (even if all of it was refunded since).
    pub fn is_captured(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Captured | Lifecycle::Refunded)
    }

    /// Whether nothing more can go back: all captured money refunded, or the authorization released.
    pub fn is_fully_returned(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Refunded | Lifecycle::Reversed)
    }

    /// What can still go back to the customer: the captured money not yet refunded, or, while
    /// only authorized, the whole authorization (returned by releasing it).
    pub fn refundable_amount(&self) -> i64 {
        match self.lifecycle {
            // Nothing is released while a charge is only authorized (`apply` checks it).
            Lifecycle::Authorized => self.money.authorized,
            Lifecycle::Captured | Lifecycle::Refunded => self.money.captured - self.money.refunded,
            Lifecycle::Reversed | Lifecycle::Failed => 0,
        }
    }

    /// The lifecycle `money` and a recorded failure imply; `apply` requires the recorded one to
    /// agree.
    pub fn lifecycle_of(money: &Money, failure: Option<&ChargeFailure>) -> Lifecycle {
        if failure.is_some() {
            return Lifecycle::Failed;
        }
        if money.captured > 0 {
            if money.refunded == money.captured {
                Lifecycle::Refunded
            } else {
                Lifecycle::Captured
            }
        } else if money.released > 0 && money.released == money.authorized {
            Lifecycle::Reversed
        } else {
            Lifecycle::Authorized
        }
    }
}

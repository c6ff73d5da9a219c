//! The values charges, customers and tokens are made of: addresses, shipping, cards, refunds, metadata. Shared by events and state.
//!
//! These types are part of the stored event format v1 (events embed them), so their serde shape
//! never changes; wire objects are built from them by the server, never serialized from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::events::ChargeFailure;

/// Metadata attached to charges and customers. Values are JSON so Omise's free-form metadata fits;
/// Stripe accounts only ever store strings (validation enforces it). A `BTreeMap` keeps key order
/// deterministic, which the hash chain relies on.
pub type Metadata = BTreeMap<String, serde_json::Value>;

/// A postal address; every part is optional on Stripe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub city: Option<String>,
    pub country: Option<String>,
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub postal_code: Option<String>,
    pub state: Option<String>,
}

/// `charge.shipping`: replaced as a whole by an update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipping {
    pub address: Address,
    pub carrier: Option<String>,
    pub name: String,
    pub phone: Option<String>,
    pub tracking_number: Option<String>,
}

/// `charge.fraud_details`: `{}` until someone reports, then `{"user_report": "safe"}` and so on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FraudDetails {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stripe_report: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_report: Option<String>,
}

/// The card a charge was paid with: what the test token stood for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub brand: String,
    pub country: String,
    pub exp_month: u32,
    pub exp_year: u32,
    pub fingerprint: String,
    pub funding: String,
    pub last4: String,
    pub network: String,
}

/// A refund object (`re_…`), listed inside `charge.refunds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub object: String,
    pub amount: i64,
    pub balance_transaction: Option<String>,
    pub charge: String,
    pub created: i64,
    pub currency: String,
    pub metadata: Metadata,
    pub reason: Option<String>,
    pub status: String,
}

/// A card in the vault, as Omise's card object shows it. Never the full number nor the security code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultCard {
    /// `card_test_…`.
    pub id: String,
    pub livemode: bool,
    /// Omise's brand names: `Visa`, `MasterCard`, `JCB`, `American Express`, ...
    pub brand: String,
    pub first_digits: String,
    pub last_digits: String,
    pub name: String,
    pub expiration_month: u8,
    pub expiration_year: i32,
    /// Stable per card number within an account, so a merchant can spot the same card twice.
    pub fingerprint: String,
    pub financing: String,
    pub security_code_check: bool,
    pub country: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub state: Option<String>,
    pub street1: Option<String>,
    pub street2: Option<String>,
    pub phone_number: Option<String>,
    pub created: i64,
}

/// A vault token (`tokn_…`): a card that can pay for one charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub livemode: bool,
    pub created: i64,
    pub card: VaultCard,
    /// The charge that spent it; a token can be used once.
    pub charge: Option<String>,
    /// The Omise customer it saved its card to (the other way to use it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// How a charge paid with it is declined (Omise's failing test cards); `None`: approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declines_with: Option<ChargeFailure>,
}

impl Token {
    pub fn used(&self) -> bool {
        self.charge.is_some() || self.customer.is_some()
    }
}

/// A customer (`cus_…`) that charges can point at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub description: Option<String>,
    pub email: Option<String>,
    pub livemode: bool,
    pub metadata: Metadata,
    pub name: Option<String>,
    /// An Omise customer's saved cards, oldest first (Stripe customers here have none, and
    /// their stored and wire shapes stay as they were).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cards: Vec<SavedCard>,
    /// The card an Omise charge of this customer uses when it names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_card: Option<String>,
}

/// A card saved to an Omise customer from a vault token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedCard {
    pub card: VaultCard,
    /// How a charge on it is declined (Omise's failing test cards), as its token said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declines_with: Option<crate::domain::events::ChargeFailure>,
}

impl Customer {
    /// One of the customer's saved cards.
    pub fn card(&self, card_id: &str) -> Option<&SavedCard> {
        self.cards.iter().find(|saved| saved.card.id == card_id)
    }
}

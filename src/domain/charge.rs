//! The charge and customer objects as the ledger projects them: Stripe's charge object, field for field.
//!
//! These are the *state* types folded from events. Their serde form is Stripe's JSON shape
//! (`nullable` fields are present as `null`), which is also what projections store; events never
//! embed them, so the stored event schema does not move when this shape does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Metadata attached to charges and customers. Values are JSON so Omise's free-form metadata fits;
/// Stripe accounts only ever store strings (validation enforces it). A `BTreeMap` keeps key order
/// deterministic, which the hash chain relies on.
pub type Metadata = BTreeMap<String, serde_json::Value>;

/// Stripe's `charge.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    Succeeded,
    Pending,
    Failed,
}

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

/// `charge.billing_details`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingDetails {
    pub address: Address,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub tax_id: Option<String>,
}

/// `charge.outcome` for an approved card payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub advice_code: Option<String>,
    pub network_advice_code: Option<String>,
    pub network_decline_code: Option<String>,
    pub network_status: Option<String>,
    pub reason: Option<String>,
    pub risk_level: String,
    pub risk_score: i64,
    pub seller_message: Option<String>,
    #[serde(rename = "type")]
    pub outcome_type: String,
}

impl Outcome {
    /// What Stripe reports for a test card that the network approved.
    pub fn approved() -> Self {
        Outcome {
            advice_code: None,
            network_advice_code: None,
            network_decline_code: None,
            network_status: Some("approved_by_network".into()),
            reason: None,
            risk_level: "normal".into(),
            risk_score: 32,
            seller_message: Some("Payment complete.".into()),
            outcome_type: "authorized".into(),
        }
    }
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

/// `charge.payment_method_details` for a card payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethodDetails {
    pub card: Card,
    #[serde(rename = "type")]
    pub method_type: String,
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

/// `charge.refunds`: a list object, newest refund first as Stripe lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundList {
    pub object: String,
    pub data: Vec<Refund>,
    pub has_more: bool,
    pub total_count: u64,
    pub url: String,
}

impl RefundList {
    pub fn empty(charge_id: &str) -> Self {
        RefundList {
            object: "list".into(),
            data: Vec::new(),
            has_more: false,
            total_count: 0,
            url: format!("/v1/charges/{charge_id}/refunds"),
        }
    }
}

/// Stripe's charge object with all 45 public fields of the 2026-07-29 schema.
///
/// Nullable fields serialize as `null`. Three fields are optional *and* not nullable in the
/// schema (`presentment_details`, `radar_options`, `transfer`): writing `null` would break the
/// schema, so, exactly as Stripe does, they are left out of the JSON while they have no value. The
/// ledger never sets them (no multi-currency presentment, Radar sessions or Connect transfers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Charge {
    pub id: String,
    pub object: String,
    pub amount: i64,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub application: Option<String>,
    pub application_fee: Option<String>,
    pub application_fee_amount: Option<i64>,
    pub balance_transaction: Option<String>,
    pub billing_details: BillingDetails,
    pub calculated_statement_descriptor: Option<String>,
    pub captured: bool,
    pub created: i64,
    pub currency: String,
    pub customer: Option<String>,
    pub description: Option<String>,
    pub disputed: bool,
    pub failure_balance_transaction: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub fraud_details: FraudDetails,
    pub livemode: bool,
    pub metadata: Metadata,
    pub on_behalf_of: Option<String>,
    pub outcome: Option<Outcome>,
    pub paid: bool,
    pub payment_intent: Option<String>,
    pub payment_method: Option<String>,
    pub payment_method_details: Option<PaymentMethodDetails>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub presentment_details: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub radar_options: Option<serde_json::Value>,
    pub receipt_email: Option<String>,
    pub receipt_number: Option<String>,
    pub receipt_url: Option<String>,
    pub refunded: bool,
    pub refunds: RefundList,
    pub review: Option<String>,
    pub shipping: Option<Shipping>,
    pub source_transfer: Option<String>,
    pub statement_descriptor: Option<String>,
    pub statement_descriptor_suffix: Option<String>,
    pub status: ChargeStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transfer: Option<String>,
    pub transfer_data: Option<serde_json::Value>,
    pub transfer_group: Option<String>,
    /// What only Omise's charge object shows; `None`, and absent from the JSON, on Stripe charges.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub omise: Option<OmiseChargeState>,
}

/// The part of a charge created through the Omise dialect that Stripe's object has no field for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OmiseChargeState {
    /// The card as Omise's card object shows it.
    pub card: VaultCard,
    pub return_uri: Option<String>,
    pub ip: Option<String>,
    /// The creation's `capture` flag: whether the charge was to be captured at once.
    pub capture: bool,
    /// When the charge was captured (Unix seconds); `None` while it is only authorized.
    pub paid_at: Option<i64>,
    /// When the authorization was released (Omise's reverse).
    pub reversed_at: Option<i64>,
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
}

impl Token {
    pub fn used(&self) -> bool {
        self.charge.is_some()
    }
}

impl Charge {
    /// The amount that can still be refunded: what was authorized, less what was already
    /// refunded or released (a partial capture releases the uncaptured remainder as a refund).
    pub fn refundable_amount(&self) -> i64 {
        self.amount - self.amount_refunded
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
}

//! What a caller asks the ledger to do: create, update, capture and refund charges, create customers.
//!
//! Commands carry raw, unvalidated input (a missing `shipping[name]` is representable) so that
//! `decide` can refuse it with the exact parameter named. Builders make library calls read like
//! `UpdateCharge::new().metadata_set("shipping", "express")`.

use crate::domain::values::{Address, Metadata};

/// One edit to a charge's or customer's metadata, in request order.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum MetadataEdit {
    /// `metadata[key]=value`: add or overwrite one key.
    Set(String, serde_json::Value),
    /// `metadata[key]=`: remove one key.
    Unset(String),
    /// `metadata=`: remove every key.
    UnsetAll,
}

/// Shipping details as a request gives them; `name` and `address` are required by validation.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ShippingInput {
    pub name: Option<String>,
    pub address: Option<Address>,
    pub carrier: Option<String>,
    pub phone: Option<String>,
    pub tracking_number: Option<String>,
}

impl ShippingInput {
    /// Shipping with the two required parts, recipient name and address.
    pub fn new(name: impl Into<String>, address: Address) -> Self {
        ShippingInput {
            name: Some(name.into()),
            address: Some(address),
            ..ShippingInput::default()
        }
    }

    pub fn carrier(mut self, carrier: impl Into<String>) -> Self {
        self.carrier = Some(carrier.into());
        self
    }

    pub fn phone(mut self, phone: impl Into<String>) -> Self {
        self.phone = Some(phone.into());
        self
    }

    pub fn tracking_number(mut self, tracking_number: impl Into<String>) -> Self {
        self.tracking_number = Some(tracking_number.into());
        self
    }
}

/// What an update does to `shipping`.
// One per request and short-lived: not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum ShippingUpdate {
    /// Replace the whole shipping object.
    Set(ShippingInput),
    /// `shipping=`: remove it.
    Unset,
}

/// A card given by number (`source[number]=…`, the legacy charges API's card hash). Only test
/// numbers make sense here; the number is never stored (the charge keeps brand and last four),
/// and a security code sent with it is not even kept here.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CardInput {
    pub number: String,
    pub exp_month: Option<u32>,
    pub exp_year: Option<u32>,
}

/// Create a charge (`POST /v1/charges`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CreateCharge {
    pub amount: i64,
    pub currency: String,
    pub customer: Option<String>,
    pub source: Option<String>,
    /// A card by number instead of a token in `source`. Left out of the request fingerprint
    /// while absent, so fingerprints of token charges are as before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<CardInput>,
    /// `false` only authorizes; `capture_charge` settles later. Defaults to `true`.
    pub capture: bool,
    pub description: Option<String>,
    pub metadata: Vec<MetadataEdit>,
    pub receipt_email: Option<String>,
    pub shipping: Option<ShippingInput>,
    pub statement_descriptor: Option<String>,
    pub statement_descriptor_suffix: Option<String>,
    pub transfer_group: Option<String>,
}

impl CreateCharge {
    /// A charge of `amount` in the smallest unit of `currency`, captured at once unless
    /// `.capture(false)` says otherwise.
    pub fn new(amount: i64, currency: impl Into<String>) -> Self {
        CreateCharge {
            amount,
            currency: currency.into(),
            capture: true,
            ..CreateCharge::default()
        }
    }

    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn customer(mut self, customer: impl Into<String>) -> Self {
        self.customer = Some(customer.into());
        self
    }

    pub fn capture(mut self, capture: bool) -> Self {
        self.capture = capture;
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    pub fn metadata_set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push(MetadataEdit::Set(
            key.into(),
            serde_json::Value::String(value.into()),
        ));
        self
    }

    pub fn receipt_email(mut self, email: impl Into<String>) -> Self {
        self.receipt_email = Some(email.into());
        self
    }

    pub fn shipping(mut self, shipping: ShippingInput) -> Self {
        self.shipping = Some(shipping);
        self
    }

    pub fn statement_descriptor(mut self, descriptor: impl Into<String>) -> Self {
        self.statement_descriptor = Some(descriptor.into());
        self
    }

    pub fn statement_descriptor_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.statement_descriptor_suffix = Some(suffix.into());
        self
    }

    pub fn transfer_group(mut self, group: impl Into<String>) -> Self {
        self.transfer_group = Some(group.into());
        self
    }
}

/// Update a charge (`POST /v1/charges/{id}`): every `None` leaves that field unchanged.
///
/// An empty string unsets `description` and `receipt_email`, as on Stripe.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct UpdateCharge {
    pub customer: Option<String>,
    pub description: Option<String>,
    pub metadata: Vec<MetadataEdit>,
    pub receipt_email: Option<String>,
    pub shipping: Option<ShippingUpdate>,
    /// `fraud_details[user_report]`; `Some(None)` is a `fraud_details` hash without `user_report`.
    pub fraud_details_user_report: Option<Option<String>>,
    pub transfer_group: Option<String>,
}

impl UpdateCharge {
    pub fn new() -> Self {
        UpdateCharge::default()
    }

    pub fn customer(mut self, customer: impl Into<String>) -> Self {
        self.customer = Some(customer.into());
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    pub fn metadata_set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push(MetadataEdit::Set(
            key.into(),
            serde_json::Value::String(value.into()),
        ));
        self
    }

    pub fn metadata_unset(mut self, key: impl Into<String>) -> Self {
        self.metadata.push(MetadataEdit::Unset(key.into()));
        self
    }

    pub fn metadata_unset_all(mut self) -> Self {
        self.metadata.push(MetadataEdit::UnsetAll);
        self
    }

    pub fn receipt_email(mut self, email: impl Into<String>) -> Self {
        self.receipt_email = Some(email.into());
        self
    }

    pub fn shipping(mut self, shipping: ShippingInput) -> Self {
        self.shipping = Some(ShippingUpdate::Set(shipping));
        self
    }

    pub fn shipping_unset(mut self) -> Self {
        self.shipping = Some(ShippingUpdate::Unset);
        self
    }

    /// `""` clears the report; otherwise `fraudulent` or `safe`.
    pub fn fraud_user_report(mut self, report: impl Into<String>) -> Self {
        self.fraud_details_user_report = Some(Some(report.into()));
        self
    }

    pub fn transfer_group(mut self, group: impl Into<String>) -> Self {
        self.transfer_group = Some(group.into());
        self
    }
}

/// Capture an authorized charge, in full or in part.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CaptureCharge {
    /// At most the authorized amount; `None` captures all of it.
    pub amount: Option<i64>,
    pub receipt_email: Option<String>,
    pub statement_descriptor: Option<String>,
    pub statement_descriptor_suffix: Option<String>,
    pub transfer_group: Option<String>,
}

impl CaptureCharge {
    pub fn full() -> Self {
        CaptureCharge::default()
    }

    pub fn partial(amount: i64) -> Self {
        CaptureCharge {
            amount: Some(amount),
            ..CaptureCharge::default()
        }
    }
}

/// Refund a charge, in full or in part.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RefundCharge {
    /// `None` refunds everything still refundable.
    pub amount: Option<i64>,
    /// `duplicate`, `fraudulent` or `requested_by_customer`.
    pub reason: Option<String>,
    pub metadata: Vec<MetadataEdit>,
}

impl RefundCharge {
    pub fn full() -> Self {
        RefundCharge::default()
    }

    pub fn partial(amount: i64) -> Self {
        RefundCharge {
            amount: Some(amount),
            ..RefundCharge::default()
        }
    }
}

/// Create a customer (`POST /v1/customers`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CreateCustomer {
    pub email: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub metadata: Vec<MetadataEdit>,
}

impl CreateCustomer {
    pub fn new() -> Self {
        CreateCustomer::default()
    }

    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    pub fn metadata_set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push(MetadataEdit::Set(
            key.into(),
            serde_json::Value::String(value.into()),
        ));
        self
    }
}

/// The result of folding metadata edits onto existing metadata.
pub(crate) fn fold_metadata_edits(existing: &Metadata, edits: &[MetadataEdit]) -> Metadata {
    let mut result = existing.clone();
    for edit in edits {
        match edit {
            MetadataEdit::Set(key, value) => {
                result.insert(key.clone(), value.clone());
            }
            MetadataEdit::Unset(key) => {
                result.remove(key);
            }
            MetadataEdit::UnsetAll => result.clear(),
        }
    }
    result
}

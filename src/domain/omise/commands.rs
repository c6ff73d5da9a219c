//! Omise's commands: what `POST /tokens`, `POST /charges`, `PATCH /charges/{id}` and a capture ask for.

use serde::Serialize;

use crate::domain::values::Metadata;

/// `POST /tokens`: a card as the payer typed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CreateToken {
    pub name: Option<String>,
    pub number: Option<String>,
    pub expiration_month: Option<i64>,
    pub expiration_year: Option<i64>,
    pub security_code: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
    pub state: Option<String>,
    pub street1: Option<String>,
    pub street2: Option<String>,
    pub phone_number: Option<String>,
}

/// `POST /charges`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CreateOmiseCharge {
    pub amount: i64,
    pub currency: String,
    /// A `tokn_…` from the vault.
    pub card: Option<String>,
    pub customer: Option<String>,
    pub source: Option<String>,
    /// `false` only authorizes. Defaults to `true`.
    pub capture: bool,
    pub description: Option<String>,
    pub metadata: Metadata,
    pub return_uri: Option<String>,
    pub ip: Option<String>,
}

impl CreateOmiseCharge {
    /// A charge of `amount` subunits of `currency`, paid with a vault token.
    pub fn with_token(amount: i64, currency: impl Into<String>, token: impl Into<String>) -> Self {
        CreateOmiseCharge {
            amount,
            currency: currency.into(),
            card: Some(token.into()),
            customer: None,
            source: None,
            capture: true,
            description: None,
            metadata: Metadata::new(),
            return_uri: None,
            ip: None,
        }
    }
}

/// `PATCH /charges/{id}`: `description` and `metadata`, each `None` when not given.
///
/// `metadata` *replaces* the charge's metadata as a whole; an empty `description` changes
/// nothing (omise-go sends `"description":""` on every metadata-only update).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpdateOmiseCharge {
    pub description: Option<String>,
    pub metadata: Option<Metadata>,
}

/// `POST /charges/{id}/capture`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CaptureOmiseCharge {
    /// At most the authorized amount; `None` captures all of it.
    pub capture_amount: Option<i64>,
}

/// `POST /charges/{id}/refunds`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RefundOmiseCharge {
    /// Required by Omise's docs; `None` is refused rather than read as "everything".
    pub amount: Option<i64>,
    pub metadata: Metadata,
    /// "Only process refund as a void, if possible": never possible here, as the ledger has no
    /// settlement, so every refund is an ordinary one (`voided: false`). Kept in the request's
    /// fingerprint so a retry with another value is told apart.
    pub void: bool,
}

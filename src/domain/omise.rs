//! Omise's rules for the same ledger: vault tokens, charge creation with Omise's minimums, updates that replace free-form metadata, capture and reverse. Pure.
//!
//! Omise charges are ordinary charge streams folded by the same `apply`; only what Omise shows
//! and Stripe does not (the vault card, `paid_at`, `reversed_at`) lives in
//! `Charge::omise`. Refusals are `OmiseRefusal`s whose `code()` and `Display` are Omise's own
//! wire strings (see `shared/spec/omise-charges.md`, section 3).

use serde::Serialize;
use thiserror::Error;

use crate::domain::card_number::card_fingerprint;
pub use crate::domain::card_number::{card_brand, passes_luhn};
use crate::domain::charge::{Card, Charge, Metadata, OmiseChargeState, Token, VaultCard};
use crate::domain::commands::AccountPolicy;
use crate::domain::events::{
    ChargeCaptured, ChargeCreated, ChargeReversed, ChargeUpdated, EventPayload, FieldChange,
    OmiseChargeCreation, TokenCreated, TokenUsed,
};

/// Metadata is free-form JSON on Omise; this bounds what one charge may carry (serialized).
pub const METADATA_MAX_BYTES: usize = 16 * 1024;
/// The longest description accepted.
pub const DESCRIPTION_MAX_CHARS: usize = 5000;
/// How long an authorization is held before Omise would expire it (shown as `expires_at`).
pub const AUTHORIZATION_LIFETIME_SECONDS: i64 = 7 * 24 * 3600;

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
    #[error("charge {id} was not found")]
    ChargeNotFound { id: String },
    #[error("charge was already captured")]
    AlreadyCaptured,
    #[error("charge was already reversed")]
    CaptureOfReversedCharge,
    #[error("capture_amount must be greater than 0")]
    CaptureAmountNotPositive,
    #[error("capture_amount must be less than or equal to the authorized amount ({authorized})")]
    CaptureAmountTooLarge { requested: i64, authorized: i64 },
    #[error("only uncaptured authorized charges can be reversed")]
    ReverseNotAllowed,
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
            TokenNotFound { .. } | CustomerNotFound { .. } | ChargeNotFound { .. } => "not_found",
            TokenUsed { .. } => "used_token",
            AlreadyCaptured
            | CaptureOfReversedCharge
            | CaptureAmountNotPositive
            | CaptureAmountTooLarge { .. } => "failed_capture",
            ReverseNotAllowed => "failed_reverse",
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
    pub card: String,
    pub token: String,
    pub transaction: String,
}

/// Everything outside an Omise command that its decision may depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OmiseContext {
    pub now_unix: i64,
    pub livemode: bool,
    pub ids: OmiseIds,
}

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

/// Decide `POST /tokens`: check the card and keep only what the card object shows.
pub fn create_token(
    command: &CreateToken,
    context: &OmiseContext,
) -> Result<EventPayload, OmiseRefusal> {
    let name = command
        .name
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .ok_or(OmiseRefusal::CardNameMissing)?;
    let number: String = command
        .number
        .as_deref()
        .ok_or(OmiseRefusal::CardNumberMissing)?
        .chars()
        .filter(|character| !matches!(character, ' ' | '-'))
        .collect();
    if number.is_empty() {
        return Err(OmiseRefusal::CardNumberMissing);
    }
    let brand = card_brand(&number).ok_or(OmiseRefusal::CardNumberInvalid)?;
    if !(12..=19).contains(&number.len()) || !passes_luhn(&number) {
        return Err(OmiseRefusal::CardNumberInvalid);
    }
    let month = command
        .expiration_month
        .filter(|month| (1..=12).contains(month))
        .ok_or(OmiseRefusal::ExpirationMonthInvalid)?;
    let year = command
        .expiration_year
        .filter(|year| (1000..=9999).contains(year))
        .ok_or(OmiseRefusal::ExpirationYearInvalid)?;
    let now = time::OffsetDateTime::from_unix_timestamp(context.now_unix)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (this_year, this_month) = (i64::from(now.year()), i64::from(u8::from(now.month())));
    if (year, month) < (this_year, this_month) {
        return Err(OmiseRefusal::CardExpired);
    }
    let security_code_check = match command.security_code.as_deref() {
        None | Some("") => false,
        Some(code) if (3..=4).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()) => {
            true
        }
        Some(_) => return Err(OmiseRefusal::SecurityCodeInvalid),
    };
    let card = VaultCard {
        id: context.ids.card.clone(),
        livemode: context.livemode,
        brand: brand.to_string(),
        first_digits: number[..6].to_string(),
        last_digits: number[number.len() - 4..].to_string(),
        name: name.to_string(),
        // Both checked to fit above.
        expiration_month: u8::try_from(month).unwrap_or(12),
        expiration_year: i32::try_from(year).unwrap_or(9999),
        fingerprint: card_fingerprint(&number),
        financing: "credit".into(),
        security_code_check,
        country: non_empty(&command.country).map(|country| country.to_ascii_lowercase()),
        city: non_empty(&command.city),
        postal_code: non_empty(&command.postal_code),
        state: non_empty(&command.state),
        street1: non_empty(&command.street1),
        street2: non_empty(&command.street2),
        phone_number: non_empty(&command.phone_number),
        created: context.now_unix,
    };
    Ok(EventPayload::TokenCreated(TokenCreated {
        token_id: context.ids.token.clone(),
        livemode: context.livemode,
        created: context.now_unix,
        card,
    }))
}

/// What an Omise charge creation appends: the charge's first event, and the token it spends.
#[derive(Debug, Clone, PartialEq)]
pub struct OmiseChargeDecision {
    pub charge_created: EventPayload,
    pub token_used: EventPayload,
}

/// Decide `POST /charges`. `token` is the vault token `command.card` names, if the account has it.
pub fn create_charge(
    command: &CreateOmiseCharge,
    token: Option<&Token>,
    context: &OmiseContext,
) -> Result<OmiseChargeDecision, OmiseRefusal> {
    let currency = command.currency.to_ascii_lowercase();
    let minimum = minimum_amount(&currency).ok_or(OmiseRefusal::CurrencyNotSupported)?;
    if command.amount < minimum {
        return Err(OmiseRefusal::AmountTooSmall { minimum, currency });
    }
    if command.amount > AMOUNT_MAX {
        return Err(OmiseRefusal::AmountTooLarge {
            maximum: AMOUNT_MAX,
            currency,
        });
    }
    check_description(command.description.as_deref())?;
    check_metadata(&command.metadata)?;
    if command.source.is_some() {
        return Err(OmiseRefusal::SourceNotSupported);
    }
    let token_id = match (&command.card, &command.customer) {
        (Some(token_id), _) => token_id,
        // Omise customers are not kept here, so no customer can be found.
        (None, Some(customer)) => {
            return Err(OmiseRefusal::CustomerNotFound {
                id: customer.clone(),
            });
        }
        (None, None) => return Err(OmiseRefusal::PaymentMissing),
    };
    let token = match token {
        Some(token) if &token.id == token_id => token,
        _ => {
            return Err(OmiseRefusal::TokenNotFound {
                id: token_id.clone(),
            });
        }
    };
    if token.used() {
        return Err(OmiseRefusal::TokenUsed {
            id: token_id.clone(),
        });
    }
    let vault_card = token.card.clone();
    let card = Card {
        brand: vault_card.brand.to_ascii_lowercase(),
        country: vault_card.country.clone().unwrap_or_default(),
        exp_month: u32::from(vault_card.expiration_month),
        exp_year: u32::try_from(vault_card.expiration_year).unwrap_or(0),
        fingerprint: vault_card.fingerprint.clone(),
        funding: vault_card.financing.clone(),
        last4: vault_card.last_digits.clone(),
        network: vault_card.brand.to_ascii_lowercase(),
    };
    let charge_created = EventPayload::ChargeCreated(ChargeCreated {
        charge_id: context.ids.charge.clone(),
        livemode: context.livemode,
        created: context.now_unix,
        amount: command.amount,
        currency,
        captured: command.capture,
        customer: None,
        source: token.id.clone(),
        payment_method: vault_card.id.clone(),
        card,
        balance_transaction: command.capture.then(|| context.ids.transaction.clone()),
        description: non_empty(&command.description),
        metadata: command.metadata.clone(),
        receipt_email: None,
        shipping: None,
        statement_descriptor: None,
        statement_descriptor_suffix: None,
        transfer_group: None,
        omise: Some(OmiseChargeCreation {
            card: vault_card,
            return_uri: non_empty(&command.return_uri),
            ip: non_empty(&command.ip),
        }),
    });
    Ok(OmiseChargeDecision {
        charge_created,
        token_used: EventPayload::TokenUsed(TokenUsed {
            charge_id: context.ids.charge.clone(),
        }),
    })
}

/// Decide `PATCH /charges/{id}`. `Ok(None)`: nothing changes, nothing is appended.
///
/// Metadata is replaced as a whole. Omise metadata is one free-form JSON document with no
/// per-key unset syntax (and JSON `null` means "absent"), so merging could never remove a key or
/// a nested value; replacing lets the caller state the exact document it wants, which is what
/// the clients' `charge.update(metadata=...)` sends. The event still records only the top-level
/// keys that changed.
pub fn update_charge(
    charge: &Charge,
    command: &UpdateOmiseCharge,
    policy: &AccountPolicy,
) -> Result<Option<EventPayload>, OmiseRefusal> {
    check_origin(charge)?;
    check_description(command.description.as_deref())?;
    if let Some(metadata) = &command.metadata {
        check_metadata(metadata)?;
    }
    if policy.freeze_after_capture && charge.captured {
        return Err(OmiseRefusal::FrozenAfterCapture {
            charge_id: charge.id.clone(),
        });
    }
    let mut changes = Vec::new();
    if let Some(description) = non_empty(&command.description)
        && charge.description.as_deref() != Some(description.as_str())
    {
        changes.push(FieldChange::Description {
            previous: charge.description.clone(),
            current: Some(description),
        });
    }
    if let Some(metadata) = &command.metadata
        && let Some(change) = super::decide::metadata_change(&charge.metadata, metadata)
    {
        changes.push(change);
    }
    if changes.is_empty() {
        return Ok(None);
    }
    Ok(Some(EventPayload::ChargeUpdated(ChargeUpdated { changes })))
}

/// Decide `POST /charges/{id}/capture`. A partial capture leaves the rest uncaptured and
/// released; unlike Stripe, Omise shows no refund for it.
pub fn capture_charge(
    charge: &Charge,
    command: &CaptureOmiseCharge,
    context: &OmiseContext,
) -> Result<EventPayload, OmiseRefusal> {
    check_origin(charge)?;
    if is_reversed(charge) {
        return Err(OmiseRefusal::CaptureOfReversedCharge);
    }
    if charge.captured {
        return Err(OmiseRefusal::AlreadyCaptured);
    }
    let amount = match command.capture_amount {
        None => charge.amount,
        Some(amount) if amount <= 0 => return Err(OmiseRefusal::CaptureAmountNotPositive),
        Some(amount) if amount > charge.amount => {
            return Err(OmiseRefusal::CaptureAmountTooLarge {
                requested: amount,
                authorized: charge.amount,
            });
        }
        Some(amount) => amount,
    };
    Ok(EventPayload::ChargeCaptured(ChargeCaptured {
        amount_captured: amount,
        balance_transaction: context.ids.transaction.clone(),
        released_remainder: None,
        changes: Vec::new(),
        captured_at: Some(context.now_unix),
    }))
}

/// Decide `POST /charges/{id}/reverse`: only an uncaptured, unreversed authorization.
pub fn reverse_charge(charge: &Charge, now_unix: i64) -> Result<EventPayload, OmiseRefusal> {
    check_origin(charge)?;
    if charge.captured || is_reversed(charge) || charge.refunded {
        return Err(OmiseRefusal::ReverseNotAllowed);
    }
    Ok(EventPayload::ChargeReversed(ChargeReversed {
        reversed_at: now_unix,
    }))
}

/// The Omise state a charge starts with.
pub fn initial_state(
    creation: &OmiseChargeCreation,
    created: i64,
    captured: bool,
) -> OmiseChargeState {
    OmiseChargeState {
        card: creation.card.clone(),
        return_uri: creation.return_uri.clone(),
        ip: creation.ip.clone(),
        capture: captured,
        paid_at: captured.then_some(created),
        reversed_at: None,
    }
}

/// A charge Stripe's rules created has none of the state Omise's rules read (the vault card,
/// `reversed_at`): refuse it by name rather than decide on a state that is not there.
fn check_origin(charge: &Charge) -> Result<(), OmiseRefusal> {
    match charge.omise {
        Some(_) => Ok(()),
        None => Err(OmiseRefusal::ChargeOfOtherDialect {
            charge_id: charge.id.clone(),
        }),
    }
}

pub fn is_reversed(charge: &Charge) -> bool {
    charge
        .omise
        .as_ref()
        .is_some_and(|state| state.reversed_at.is_some())
}

fn check_description(description: Option<&str>) -> Result<(), OmiseRefusal> {
    if let Some(description) = description {
        let length_chars = description.chars().count();
        if length_chars > DESCRIPTION_MAX_CHARS {
            return Err(OmiseRefusal::DescriptionTooLong { length_chars });
        }
    }
    Ok(())
}

fn check_metadata(metadata: &Metadata) -> Result<(), OmiseRefusal> {
    let bytes = serde_json::to_vec(metadata).map_or(usize::MAX, |json| json.len());
    if bytes > METADATA_MAX_BYTES {
        return Err(OmiseRefusal::MetadataTooLarge { bytes });
    }
    Ok(())
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .filter(|value| !value.is_empty())
        .map(str::to_string)
}

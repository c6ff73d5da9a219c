//! Omise's decisions: tokens, charge creation with Omise's minimums, updates that replace metadata, capture and reverse, for charges of Omise origin only.

use crate::domain::card_number::{card_brand, card_fingerprint, passes_luhn};
use crate::domain::charge::{ChargeState, Lifecycle, OmiseDetails};
use crate::domain::events::{
    ChargeCaptured, ChargeCreated, ChargeExpired, ChargeFailed, ChargeFailure, ChargeReversed,
    ChargeUpdated, EventPayload, FieldChange, OmiseChargeCreation, TokenCreated, TokenUsed,
};
use crate::domain::omise::commands::{
    CaptureOmiseCharge, CreateOmiseCharge, CreateToken, UpdateOmiseCharge,
};
use crate::domain::omise::customers::card_to_charge;
use crate::domain::omise::{
    AMOUNT_MAX, AUTHORIZATION_LIFETIME_SECONDS, DESCRIPTION_MAX_CHARS, METADATA_MAX_BYTES,
    OmiseContext, OmiseRefusal, minimum_amount,
};
use crate::domain::policy::AccountPolicy;
use crate::domain::values::{Card, Customer, Metadata, Token, VaultCard};

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
        expiration_month: u8::try_from(month).expect("checked to be 1..=12 above"),
        expiration_year: i32::try_from(year).expect("checked to be 1000..=9999 above"),
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
        declines_with: test_card_failure(&number),
    }))
}

/// How a charge paid with this number fails, for Omise's documented failing test cards
/// (docs.omise.co/api-testing; the last three rows from third-party lists, unconfirmed).
/// `None`: it succeeds.
fn test_card_failure(number: &str) -> Option<ChargeFailure> {
    let (code, message) = match number {
        "4111111111140011" | "5555551111110011" | "3530111111190011" | "6250947000000014" => (
            "insufficient_fund",
            "insufficient funds in the account or the card has reached the credit limit",
        ),
        "4111111111130012" | "5555551111100012" | "3530111111180012" | "6250947000000022" => {
            ("stolen_or_lost_card", "card is stolen or lost")
        }
        "4111111111120013" | "5555551111190013" | "3530111111170013" | "377138160000009"
        | "6250947000000030" => ("failed_processing", "failed processing"),
        "4111111111110014" | "5555551111180014" | "3530111111160014" => {
            ("payment_rejected", "payment rejected")
        }
        "4111111111160001" => ("invalid_security_code", "the security code is invalid"),
        "4111111111190016" => ("failed_fraud_check", "failed fraud check"),
        "4111111111180017" => ("invalid_account_number", "the account number is invalid"),
        _ => return None,
    };
    Some(ChargeFailure {
        code: code.into(),
        message: message.into(),
        decline_code: None,
        blocked: false,
    })
}

/// What an Omise charge creation appends: the charge's first event, and the token it spends.
#[derive(Debug, Clone, PartialEq)]
pub struct OmiseChargeDecision {
    pub charge_created: EventPayload,
    /// The token the charge spends; `None` for a customer's saved card.
    pub token_used: Option<EventPayload>,
}

/// What pays for a charge, as the ledger loaded it: the vault token `card` names, or the
/// customer `customer` names (whose card `card` then names, or its default card).
#[derive(Debug, Clone, Copy)]
pub enum PaymentSource<'a> {
    Token(&'a Token),
    Customer(&'a Customer),
}

/// Decide `POST /charges`. `paid_with` is what `command.customer` (or else `command.card`)
/// names, if the account has it.
pub fn create_charge(
    command: &CreateOmiseCharge,
    paid_with: Option<PaymentSource<'_>>,
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
    let (vault_card, declines_with, source, customer, spends_token) =
        match (&command.customer, &command.card) {
            (Some(customer_id), card_id) => {
                let customer = match paid_with {
                    Some(PaymentSource::Customer(customer)) if &customer.id == customer_id => {
                        customer
                    }
                    _ => {
                        return Err(OmiseRefusal::CustomerNotFound {
                            id: customer_id.clone(),
                        });
                    }
                };
                let saved = card_to_charge(customer, card_id.as_deref())?;
                (
                    saved.card.clone(),
                    saved.declines_with.clone(),
                    saved.card.id.clone(),
                    Some(customer.id.clone()),
                    false,
                )
            }
            (None, Some(token_id)) => {
                let token = match paid_with {
                    Some(PaymentSource::Token(token)) if &token.id == token_id => token,
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
                (
                    token.card.clone(),
                    token.declines_with.clone(),
                    token.id.clone(),
                    None,
                    true,
                )
            }
            (None, None) => return Err(OmiseRefusal::PaymentMissing),
        };
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
    // A failing test card is recorded as a charge too, as Omise records it: `status: failed`.
    let captured = command.capture && declines_with.is_none();
    let attempt = ChargeCreated {
        charge_id: context.ids.charge.clone(),
        livemode: context.livemode,
        created: context.now_unix,
        amount: command.amount,
        currency,
        captured,
        customer,
        source,
        payment_method: vault_card.id.clone(),
        card,
        balance_transaction: captured.then(|| context.ids.transaction.clone()),
        description: non_empty(&command.description),
        metadata: command.metadata.clone(),
        receipt_email: None,
        shipping: None,
        statement_descriptor: None,
        statement_descriptor_suffix: None,
        transfer_group: None,
        omise: Some(OmiseChargeCreation {
            // Recorded only when it is not the default (7 days after creation), which is what
            // its absence means: events at the default keep the shape the pinned log has.
            expires_at: (context.authorization_lifetime_seconds != AUTHORIZATION_LIFETIME_SECONDS)
                .then(|| {
                    context
                        .now_unix
                        .saturating_add(context.authorization_lifetime_seconds)
                }),
            card: vault_card,
            return_uri: non_empty(&command.return_uri),
            ip: non_empty(&command.ip),
        }),
    };
    let charge_created = match &declines_with {
        None => EventPayload::ChargeCreated(attempt),
        Some(failure) => EventPayload::ChargeFailed(ChargeFailed {
            attempt,
            failure: failure.clone(),
        }),
    };
    Ok(OmiseChargeDecision {
        charge_created,
        token_used: spends_token.then(|| {
            EventPayload::TokenUsed(TokenUsed {
                charge_id: context.ids.charge.clone(),
            })
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
    charge: &ChargeState,
    command: &UpdateOmiseCharge,
    policy: &AccountPolicy,
) -> Result<Option<EventPayload>, OmiseRefusal> {
    omise_details(charge)?;
    check_description(command.description.as_deref())?;
    if let Some(metadata) = &command.metadata {
        check_metadata(metadata)?;
    }
    if policy.freeze_after_capture && charge.is_captured() {
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
        && let Some(change) = FieldChange::metadata(&charge.metadata, metadata)
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
    charge: &ChargeState,
    command: &CaptureOmiseCharge,
    context: &OmiseContext,
) -> Result<EventPayload, OmiseRefusal> {
    refuse_if_expired(charge, context.now_unix)?;
    match charge.lifecycle {
        Lifecycle::Authorized => {}
        Lifecycle::Reversed => return Err(OmiseRefusal::CaptureOfReversedCharge),
        Lifecycle::Captured | Lifecycle::Refunded => return Err(OmiseRefusal::AlreadyCaptured),
        Lifecycle::Failed => return Err(OmiseRefusal::CaptureOfFailedCharge),
    }
    let authorized = charge.money.authorized;
    let amount = match command.capture_amount {
        None => authorized,
        Some(amount) if amount <= 0 => return Err(OmiseRefusal::CaptureAmountNotPositive),
        Some(amount) if amount > authorized => {
            return Err(OmiseRefusal::CaptureAmountTooLarge {
                requested: amount,
                authorized,
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
pub fn reverse_charge(charge: &ChargeState, now_unix: i64) -> Result<EventPayload, OmiseRefusal> {
    refuse_if_expired(charge, now_unix)?;
    if charge.lifecycle != Lifecycle::Authorized {
        return Err(OmiseRefusal::ReverseNotAllowed);
    }
    Ok(EventPayload::ChargeReversed(ChargeReversed {
        reversed_at: now_unix,
    }))
}

/// When an Omise charge's authorization expires if it is not captured first.
pub fn expires_at(charge: &ChargeState, details: &OmiseDetails) -> i64 {
    details
        .expires_at
        .unwrap_or(charge.created + AUTHORIZATION_LIFETIME_SECONDS)
}

/// An authorization that expired (recorded, or due by `now_unix` though not yet recorded by
/// the sweep) can no longer be captured or reversed: Omise's `expired_charge`.
fn refuse_if_expired(charge: &ChargeState, now_unix: i64) -> Result<(), OmiseRefusal> {
    let details = omise_details(charge)?;
    let due = charge.lifecycle == Lifecycle::Authorized && now_unix >= expires_at(charge, details);
    if charge.expired_at.is_some() || due {
        return Err(OmiseRefusal::ChargeExpired);
    }
    Ok(())
}

/// Decide the expiry of an uncaptured authorization at `now_unix`: `None` when it is not an
/// Omise authorization that is due (captured, reversed, failed or expired already, or early).
pub fn expire_charge(charge: &ChargeState, now_unix: i64) -> Option<EventPayload> {
    let details = charge.omise_details()?;
    let due = charge.lifecycle == Lifecycle::Authorized && now_unix >= expires_at(charge, details);
    due.then_some(EventPayload::ChargeExpired(ChargeExpired {
        expired_at: now_unix,
    }))
}

/// A charge Stripe's rules created has none of the state Omise's rules read (the vault card,
/// the `capture` flag): refuse it by name rather than decide on a state that is not there.
pub(super) fn omise_details(charge: &ChargeState) -> Result<&OmiseDetails, OmiseRefusal> {
    charge
        .omise_details()
        .ok_or_else(|| OmiseRefusal::ChargeOfOtherDialect {
            charge_id: charge.id.clone(),
        })
}

pub(super) fn check_description(description: Option<&str>) -> Result<(), OmiseRefusal> {
    if let Some(description) = description {
        let length_chars = description.chars().count();
        if length_chars > DESCRIPTION_MAX_CHARS {
            return Err(OmiseRefusal::DescriptionTooLong { length_chars });
        }
    }
    Ok(())
}

pub(super) fn check_metadata(metadata: &Metadata) -> Result<(), OmiseRefusal> {
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

//! Omise's charge object (API version 2019-05-29), rendered from the ledger's `ChargeState` by a pure function.
//!
//! A typed wire struct, so the compiler checks its fields. It is turned into a JSON value whose
//! keys serde_json orders alphabetically, as every other Omise object here.

use serde::Serialize;
use serde_json::Value;

use super::objects::{card_object, optional_timestamp, refund_object, timestamp};
use crate::domain::omise::AUTHORIZATION_LIFETIME_SECONDS;
use crate::domain::{ChargeState, Instrument, Lifecycle, Metadata};

/// How many refunds an embedded refund list shows, as Omise's default page.
const EMBEDDED_REFUNDS_LIMIT: usize = 20;

/// `charge.refunds`: the charge's refunds, oldest first.
#[derive(Debug, Serialize)]
struct RefundList {
    object: &'static str,
    data: Vec<Value>,
    limit: usize,
    offset: usize,
    total: usize,
    order: &'static str,
    location: String,
}

/// `charge.platform_fee`: the ledger charges none.
#[derive(Debug, Serialize)]
struct PlatformFee {
    fixed: Option<i64>,
    amount: Option<i64>,
    percentage: Option<f64>,
}

/// The charge object in the 2019-05-29 shape.
#[derive(Debug, Serialize)]
struct OmiseCharge<'charge> {
    object: &'static str,
    id: &'charge str,
    location: String,
    livemode: bool,
    amount: i64,
    authorized_amount: i64,
    captured_amount: i64,
    refunded_amount: i64,
    currency: String,
    funding_amount: i64,
    funding_currency: String,
    description: &'charge Option<String>,
    metadata: &'charge Metadata,
    status: &'static str,
    capture: bool,
    authorized: bool,
    paid: bool,
    reversed: bool,
    expired: bool,
    voided: bool,
    disputable: bool,
    capturable: bool,
    reversible: bool,
    refundable: bool,
    partially_refundable: bool,
    transaction: &'charge Option<String>,
    customer: &'charge Option<String>,
    card: Option<Value>,
    source: Option<Value>,
    refunds: RefundList,
    failure_code: Option<String>,
    failure_message: Option<String>,
    ip: Option<&'charge str>,
    return_uri: Option<&'charge str>,
    authorize_uri: Option<String>,
    link: Option<String>,
    schedule: Option<String>,
    dispute: Option<Value>,
    platform_fee: PlatformFee,
    zero_interest_installments: bool,
    created_at: Value,
    authorized_at: Value,
    paid_at: Value,
    reversed_at: Value,
    expires_at: Value,
    expired_at: Value,
}

/// Omise's status for a charge.
pub use crate::domain::omise::search::charge_status;

/// The charge object in the 2019-05-29 shape, as JSON. A charge of Stripe origin (never served
/// by the Omise routes, whose accounts hold only Omise charges) would show no card.
pub fn charge_object(charge: &ChargeState) -> Value {
    let details = charge.omise_details();
    let authorized_uncaptured = charge.lifecycle == Lifecycle::Authorized;
    // As `domain::omise::refund_charge` decides: captured, money left, fewer than 15 refunds.
    let refundable = charge.lifecycle == Lifecycle::Captured
        && charge.refunds.len() < crate::domain::omise::REFUNDS_PER_CHARGE_MAX;
    let currency = charge.currency.to_ascii_uppercase();
    let card = match &charge.instrument {
        Instrument::VaultCard { card, .. } => Some(card_object(card)),
        Instrument::TestCard { .. } => None,
    };
    let refunds: Vec<Value> = charge
        .refunds
        .iter()
        .map(|refund| refund_object(refund, charge.livemode))
        .collect();
    let object = OmiseCharge {
        object: "charge",
        id: &charge.id,
        location: format!("/charges/{}", charge.id),
        livemode: charge.livemode,
        amount: charge.money.authorized,
        authorized_amount: charge.money.authorized,
        captured_amount: charge.money.captured,
        refunded_amount: charge.money.refunded,
        currency: currency.clone(),
        funding_amount: charge.money.authorized,
        funding_currency: currency,
        description: &charge.description,
        metadata: &charge.metadata,
        status: charge_status(charge),
        capture: details.is_some_and(|details| details.capture),
        authorized: charge.failure.is_none(),
        paid: charge.is_captured(),
        // An expired authorization is let go as a reversal is, but Omise shows it as expired.
        reversed: charge.lifecycle == Lifecycle::Reversed && charge.expired_at.is_none(),
        expired: charge.expired_at.is_some(),
        voided: false,
        disputable: refundable,
        capturable: authorized_uncaptured,
        reversible: authorized_uncaptured,
        refundable,
        partially_refundable: refundable,
        transaction: &charge.transaction,
        customer: &charge.customer,
        card,
        source: None,
        refunds: RefundList {
            object: "list",
            total: refunds.len(),
            data: refunds,
            limit: EMBEDDED_REFUNDS_LIMIT,
            offset: 0,
            order: "chronological",
            location: format!("/charges/{}/refunds", charge.id),
        },
        failure_code: charge.failure.as_ref().map(|failure| failure.code.clone()),
        failure_message: charge
            .failure
            .as_ref()
            .map(|failure| failure.message.clone()),
        ip: details.and_then(|details| details.ip.as_deref()),
        return_uri: details.and_then(|details| details.return_uri.as_deref()),
        authorize_uri: None,
        link: None,
        schedule: None,
        dispute: None,
        platform_fee: PlatformFee {
            fixed: None,
            amount: None,
            percentage: None,
        },
        zero_interest_installments: false,
        created_at: timestamp(charge.created),
        authorized_at: if charge.failure.is_none() {
            timestamp(charge.created)
        } else {
            Value::Null
        },
        paid_at: optional_timestamp(charge.captured_at),
        reversed_at: optional_timestamp(charge.reversed_at),
        expires_at: timestamp(
            details.map_or(charge.created + AUTHORIZATION_LIFETIME_SECONDS, |details| {
                crate::domain::omise::expires_at(charge, details)
            }),
        ),
        expired_at: optional_timestamp(charge.expired_at),
    };
    serde_json::to_value(object).expect("Omise's charge object serializes to JSON")
}

//! Stripe's charge object (2026-07-29 schema, all 45 public fields), rendered from the ledger's `ChargeState` by a pure function.
//!
//! A wire type: its shape follows Stripe, and nothing stores it. Nullable fields serialize as
//! `null`. Three fields are optional *and* not nullable in the schema (`presentment_details`,
//! `radar_options`, `transfer`): writing `null` would break the schema, so, exactly as Stripe
//! does, they are left out of the JSON while they have no value. The ledger never sets them (no
//! multi-currency presentment, Radar sessions or Connect transfers).

use serde::Serialize;

use crate::domain::events::ChargeFailure;
use crate::domain::{
    Address, Card, ChargeState, FraudDetails, Instrument, Metadata, Refund, Shipping, StripeDetails,
};

/// What appears on a cardholder's statement when the charge names no descriptor of its own.
pub const DEFAULT_STATEMENT_DESCRIPTOR: &str = "CHARGELEDGER";

/// Stripe's `charge.status`: approved, or declined and recorded as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    Succeeded,
    Failed,
}

/// `charge.billing_details`: the ledger records none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BillingDetails {
    pub address: Address,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub tax_id: Option<String>,
}

/// `charge.outcome`: what the network (or Radar) decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub advice_code: Option<&'static str>,
    pub network_advice_code: Option<&'static str>,
    pub network_decline_code: Option<&'static str>,
    pub network_status: Option<&'static str>,
    pub reason: Option<String>,
    pub risk_level: &'static str,
    pub risk_score: i64,
    /// Radar's rule that blocked the payment (only on blocked payments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
    pub seller_message: Option<String>,
    #[serde(rename = "type")]
    pub outcome_type: &'static str,
}

impl Outcome {
    /// What Stripe reports for a test card that the network approved.
    pub fn approved() -> Self {
        Outcome {
            advice_code: None,
            network_advice_code: None,
            network_decline_code: None,
            network_status: Some("approved_by_network"),
            reason: None,
            risk_level: "normal",
            risk_score: 32,
            rule: None,
            seller_message: Some("Payment complete.".into()),
            outcome_type: "authorized",
        }
    }

    /// What Stripe reports for a declined test card (recorded outcomes; see
    /// `shared/spec/stripe-declines-and-webhooks.md` A3).
    pub fn declined(failure: &ChargeFailure) -> Self {
        if failure.blocked {
            return Outcome {
                advice_code: None,
                network_advice_code: None,
                network_decline_code: None,
                network_status: Some("not_sent_to_network"),
                reason: Some("highest_risk_level".into()),
                risk_level: "highest",
                risk_score: 95,
                rule: Some("block_if_high_risk"),
                seller_message: Some("Stripe blocked this payment as too risky.".into()),
                outcome_type: "blocked",
            };
        }
        let reason = failure
            .decline_code
            .clone()
            .unwrap_or_else(|| failure.code.clone());
        let seller_message = if reason == "generic_decline" {
            "The bank did not return any further details with this decline.".to_string()
        } else {
            format!("The bank returned the decline code `{reason}`.")
        };
        Outcome {
            advice_code: None,
            network_advice_code: None,
            network_decline_code: None,
            network_status: Some("declined_by_network"),
            reason: Some(reason),
            risk_level: "normal",
            risk_score: 32,
            rule: None,
            seller_message: Some(seller_message),
            outcome_type: "issuer_declined",
        }
    }
}

/// `charge.payment_method_details` for a card payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentMethodDetails {
    pub card: Card,
    #[serde(rename = "type")]
    pub method_type: &'static str,
}

/// `charge.refunds`: a list object, newest refund first as Stripe lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefundList {
    pub object: &'static str,
    pub data: Vec<Refund>,
    pub has_more: bool,
    pub total_count: usize,
    pub url: String,
}

/// Stripe's charge object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StripeCharge {
    pub id: String,
    pub object: &'static str,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presentment_details: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<String>,
    pub transfer_data: Option<serde_json::Value>,
    pub transfer_group: Option<String>,
}

/// Stripe's charge object for a charge of Stripe origin.
///
/// Stripe shows a released authorization (the remainder of a partial capture, or an uncaptured
/// charge refunded) as a refund, so `amount_refunded` counts released money too. The Stripe
/// routes serve only Stripe accounts, whose charges are all of Stripe origin; were an Omise
/// charge given, its Stripe-only attributes render empty and its vault card as no payment method.
pub fn charge_object(charge: &ChargeState) -> StripeCharge {
    let no_stripe_details = StripeDetails::default();
    let details = charge.stripe_details().unwrap_or(&no_stripe_details);
    let (payment_method, payment_method_details) = match &charge.instrument {
        Instrument::TestCard {
            payment_method,
            card,
            ..
        } => (
            Some(payment_method.clone()),
            Some(PaymentMethodDetails {
                card: card.clone(),
                method_type: "card",
            }),
        ),
        Instrument::VaultCard { .. } => (None, None),
    };
    StripeCharge {
        id: charge.id.clone(),
        object: "charge",
        amount: charge.money.authorized,
        amount_captured: charge.money.captured,
        amount_refunded: charge.money.refunded + charge.money.released,
        application: None,
        application_fee: None,
        application_fee_amount: None,
        balance_transaction: charge.transaction.clone(),
        billing_details: BillingDetails::default(),
        calculated_statement_descriptor: Some(
            details
                .statement_descriptor
                .clone()
                .unwrap_or_else(|| DEFAULT_STATEMENT_DESCRIPTOR.to_string()),
        ),
        captured: charge.is_captured(),
        created: charge.created,
        currency: charge.currency.clone(),
        customer: charge.customer.clone(),
        description: charge.description.clone(),
        disputed: false,
        failure_balance_transaction: None,
        failure_code: charge.failure.as_ref().map(|failure| failure.code.clone()),
        failure_message: charge
            .failure
            .as_ref()
            .map(|failure| failure.message.clone()),
        fraud_details: details.fraud_details.clone(),
        livemode: charge.livemode,
        metadata: charge.metadata.clone(),
        on_behalf_of: None,
        outcome: Some(
            charge
                .failure
                .as_ref()
                .map_or_else(Outcome::approved, Outcome::declined),
        ),
        paid: charge.failure.is_none(),
        payment_intent: None,
        payment_method,
        payment_method_details,
        presentment_details: None,
        radar_options: None,
        receipt_email: charge.receipt_email.clone(),
        receipt_number: charge.receipt_number.clone(),
        receipt_url: charge.receipt_url.clone(),
        refunded: charge.is_fully_returned(),
        refunds: RefundList {
            object: "list",
            data: newest_first(&charge.refunds),
            has_more: false,
            total_count: charge.refunds.len(),
            url: format!("/v1/charges/{}/refunds", charge.id),
        },
        review: None,
        shipping: charge.shipping.clone(),
        source_transfer: None,
        statement_descriptor: details.statement_descriptor.clone(),
        statement_descriptor_suffix: details.statement_descriptor_suffix.clone(),
        status: if charge.failure.is_some() {
            ChargeStatus::Failed
        } else {
            ChargeStatus::Succeeded
        },
        transfer: None,
        transfer_data: None,
        transfer_group: details.transfer_group.clone(),
    }
}

/// A charge's refunds as Stripe lists them: newest first.
pub fn newest_first(refunds: &[Refund]) -> Vec<Refund> {
    refunds.iter().rev().cloned().collect()
}

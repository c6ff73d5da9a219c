//! `apply`: fold one event onto the state it belongs to. Pure; replay, time travel and projections all use it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::charge::{
    BillingDetails, Charge, ChargeStatus, Customer, FraudDetails, Outcome, PaymentMethodDetails,
    Refund, RefundList, Token,
};
use crate::domain::commands::AccountPolicy;
use crate::domain::events::{ChargeCreated, CustomerCreated, EventPayload, FieldChange};
use crate::domain::omise;

/// The current state of one stream: what the ledger stores as its projection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "state", rename_all = "snake_case")]
pub enum Projection {
    Charge(Box<Charge>),
    Customer(Customer),
    AccountPolicy(AccountPolicy),
    Token(Box<Token>),
}

/// An event that cannot follow the state before it: a sign of a corrupt or foreign log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FoldError {
    #[error("a {event_type} event cannot be the first event of a stream")]
    CannotStartStream { event_type: &'static str },
    #[error("a {event_type} event cannot follow a stream that already exists")]
    StreamAlreadyStarted { event_type: &'static str },
    #[error("a {event_type} event does not apply to a {stream_kind} stream")]
    WrongStream {
        event_type: &'static str,
        stream_kind: &'static str,
    },
}

impl Projection {
    /// The state as JSON: the charge or customer object, the policy, the token.
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            Projection::Charge(charge) => serde_json::to_value(charge),
            Projection::Customer(customer) => serde_json::to_value(customer),
            Projection::AccountPolicy(policy) => serde_json::to_value(policy),
            Projection::Token(token) => serde_json::to_value(token),
        };
        // These types are plain data with string keys: serializing them cannot fail.
        value.unwrap_or(serde_json::Value::Null)
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Projection::Charge(_) => "charge",
            Projection::Customer(_) => "customer",
            Projection::AccountPolicy(_) => "account policy",
            Projection::Token(_) => "token",
        }
    }
}

/// Apply one event to the state of its stream (`None` before the first event).
pub fn apply(state: Option<Projection>, payload: &EventPayload) -> Result<Projection, FoldError> {
    let event_type = payload.event_type();
    match (state, payload) {
        (None, EventPayload::ChargeCreated(created)) => {
            Ok(Projection::Charge(Box::new(charge_from_creation(created))))
        }
        (None, EventPayload::CustomerCreated(created)) => {
            Ok(Projection::Customer(customer_from_creation(created)))
        }
        (None, EventPayload::TokenCreated(created)) => Ok(Projection::Token(Box::new(Token {
            id: created.token_id.clone(),
            livemode: created.livemode,
            created: created.created,
            card: created.card.clone(),
            charge: None,
        }))),
        (Some(Projection::Token(mut token)), EventPayload::TokenUsed(used)) => {
            token.charge = Some(used.charge_id.clone());
            Ok(Projection::Token(token))
        }
        (_, EventPayload::AccountPolicySet(set)) => Ok(Projection::AccountPolicy(set.policy)),
        (None, _) => Err(FoldError::CannotStartStream { event_type }),
        (
            Some(_),
            EventPayload::ChargeCreated(_)
            | EventPayload::CustomerCreated(_)
            | EventPayload::TokenCreated(_),
        ) => Err(FoldError::StreamAlreadyStarted { event_type }),
        (Some(Projection::Charge(charge)), _) => Ok(Projection::Charge(Box::new(apply_to_charge(
            *charge, payload,
        )?))),
        (Some(other), _) => Err(FoldError::WrongStream {
            event_type,
            stream_kind: other.kind_name(),
        }),
    }
}

/// Fold a stream's events from the start.
pub fn fold<'a>(
    payloads: impl IntoIterator<Item = &'a EventPayload>,
) -> Result<Option<Projection>, FoldError> {
    let mut state = None;
    for payload in payloads {
        state = Some(apply(state, payload)?);
    }
    Ok(state)
}

/// Apply a charge event to an existing charge.
pub fn apply_to_charge(mut charge: Charge, payload: &EventPayload) -> Result<Charge, FoldError> {
    match payload {
        EventPayload::ChargeUpdated(updated) => {
            apply_field_changes(&mut charge, &updated.changes);
        }
        EventPayload::ChargeCaptured(captured) => {
            charge.captured = true;
            charge.amount_captured = captured.amount_captured;
            charge.balance_transaction = Some(captured.balance_transaction.clone());
            if let Some(remainder) = &captured.released_remainder {
                record_refund(&mut charge, remainder.clone());
            }
            apply_field_changes(&mut charge, &captured.changes);
            if let Some(state) = &mut charge.omise {
                state.paid_at = captured.captured_at;
            }
        }
        EventPayload::ChargeReversed(reversed) => {
            let Some(state) = &mut charge.omise else {
                // Reversal is Omise's operation; a Stripe charge never records one.
                return Err(FoldError::WrongStream {
                    event_type: payload.event_type(),
                    stream_kind: "Stripe charge",
                });
            };
            state.reversed_at = Some(reversed.reversed_at);
        }
        EventPayload::ChargeRefunded(refunded) => {
            record_refund(&mut charge, refunded.refund.clone());
        }
        EventPayload::ChargeCreated(_) => {
            return Err(FoldError::StreamAlreadyStarted {
                event_type: payload.event_type(),
            });
        }
        EventPayload::CustomerCreated(_)
        | EventPayload::AccountPolicySet(_)
        | EventPayload::TokenCreated(_)
        | EventPayload::TokenUsed(_) => {
            return Err(FoldError::WrongStream {
                event_type: payload.event_type(),
                stream_kind: "charge",
            });
        }
    }
    Ok(charge)
}

fn record_refund(charge: &mut Charge, refund: Refund) {
    charge.amount_refunded += refund.amount;
    charge.refunded = charge.amount_refunded >= charge.amount;
    // Stripe lists refunds newest first.
    charge.refunds.data.insert(0, refund);
    charge.refunds.total_count += 1;
}

fn apply_field_changes(charge: &mut Charge, changes: &[FieldChange]) {
    for change in changes {
        match change {
            FieldChange::Customer { current, .. } => charge.customer = current.clone(),
            FieldChange::Description { current, .. } => charge.description = current.clone(),
            FieldChange::Metadata { previous, current } => {
                for key in previous.keys() {
                    charge.metadata.remove(key);
                }
                for (key, value) in current {
                    charge.metadata.insert(key.clone(), value.clone());
                }
            }
            FieldChange::ReceiptEmail { current, .. } => charge.receipt_email = current.clone(),
            FieldChange::Shipping { current, .. } => charge.shipping = current.clone(),
            FieldChange::FraudDetails { current, .. } => charge.fraud_details = current.clone(),
            FieldChange::TransferGroup { current, .. } => charge.transfer_group = current.clone(),
            FieldChange::StatementDescriptor { current, .. } => {
                charge.statement_descriptor = current.clone();
                charge.calculated_statement_descriptor = calculated_descriptor(current);
            }
            FieldChange::StatementDescriptorSuffix { current, .. } => {
                charge.statement_descriptor_suffix = current.clone();
            }
        }
    }
}

/// What appears on the cardholder's statement: the charge's own descriptor, else the ledger's.
fn calculated_descriptor(statement_descriptor: &Option<String>) -> Option<String> {
    Some(
        statement_descriptor
            .clone()
            .unwrap_or_else(|| "CHARGELEDGER".to_string()),
    )
}

fn charge_from_creation(created: &ChargeCreated) -> Charge {
    Charge {
        id: created.charge_id.clone(),
        object: "charge".into(),
        amount: created.amount,
        amount_captured: if created.captured { created.amount } else { 0 },
        amount_refunded: 0,
        application: None,
        application_fee: None,
        application_fee_amount: None,
        balance_transaction: created.balance_transaction.clone(),
        billing_details: BillingDetails::default(),
        calculated_statement_descriptor: calculated_descriptor(&created.statement_descriptor),
        captured: created.captured,
        created: created.created,
        currency: created.currency.clone(),
        customer: created.customer.clone(),
        description: created.description.clone(),
        disputed: false,
        failure_balance_transaction: None,
        failure_code: None,
        failure_message: None,
        fraud_details: FraudDetails::default(),
        livemode: created.livemode,
        metadata: created.metadata.clone(),
        on_behalf_of: None,
        outcome: Some(Outcome::approved()),
        paid: true,
        payment_intent: None,
        payment_method: Some(created.payment_method.clone()),
        payment_method_details: Some(PaymentMethodDetails {
            card: created.card.clone(),
            method_type: "card".into(),
        }),
        presentment_details: None,
        radar_options: None,
        receipt_email: created.receipt_email.clone(),
        receipt_number: None,
        receipt_url: None,
        refunded: false,
        refunds: RefundList::empty(&created.charge_id),
        review: None,
        shipping: created.shipping.clone(),
        source_transfer: None,
        statement_descriptor: created.statement_descriptor.clone(),
        statement_descriptor_suffix: created.statement_descriptor_suffix.clone(),
        status: ChargeStatus::Succeeded,
        transfer: None,
        transfer_data: None,
        transfer_group: created.transfer_group.clone(),
        omise: created
            .omise
            .as_ref()
            .map(|creation| omise::initial_state(creation, created.created, created.captured)),
    }
}

fn customer_from_creation(created: &CustomerCreated) -> Customer {
    Customer {
        id: created.customer_id.clone(),
        object: "customer".into(),
        created: created.created,
        description: created.description.clone(),
        email: created.email.clone(),
        livemode: created.livemode,
        metadata: created.metadata.clone(),
        name: created.name.clone(),
    }
}

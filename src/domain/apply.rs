//! `apply`: fold one event onto the state it belongs to. Pure; replay, time travel and projections all use it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::apply_streams::{
    apply_customer_update, apply_to_endpoints, customer_from_creation, is_endpoint_event,
};
use crate::domain::charge::{
    ChargeState, DialectDetails, Instrument, Lifecycle, Money, OmiseDetails, Origin, StripeDetails,
};
use crate::domain::events::{ChargeCreated, ChargeFailed, EventPayload, FieldChange};
use crate::domain::policy::AccountPolicy;
use crate::domain::values::{Customer, FraudDetails, Token};
use crate::domain::webhooks::WebhookEndpoints;

/// The current state of one stream: what the ledger stores as its projection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "state", rename_all = "snake_case")]
pub enum Projection {
    Charge(Box<ChargeState>),
    Customer(Customer),
    AccountPolicy(AccountPolicy),
    Token(Box<Token>),
    WebhookEndpoints(WebhookEndpoints),
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
    /// The event would break an invariant of the charge (money, lifecycle): the log disagrees
    /// with the rules that wrote it.
    #[error("a {event_type} event cannot apply to charge {charge_id}: {reason}")]
    InvariantBroken {
        event_type: &'static str,
        charge_id: String,
        reason: &'static str,
    },
    #[error("a {event_type} event names webhook endpoint {endpoint_id}, which does not exist")]
    NoSuchEndpoint {
        event_type: &'static str,
        endpoint_id: String,
    },
    /// A token used twice: the decisions never spend a used token.
    #[error("token {token_id} is used a second time")]
    TokenAlreadyUsed { token_id: String },
    #[error("card {card_id} of customer {customer_id} {detail}")]
    CustomerCard {
        customer_id: String,
        card_id: String,
        detail: &'static str,
    },
}

impl FoldError {
    fn broken(charge: &ChargeState, event_type: &'static str, reason: &'static str) -> Self {
        FoldError::InvariantBroken {
            event_type,
            charge_id: charge.id.clone(),
            reason,
        }
    }
}

impl Projection {
    /// The state as JSON: the charge or customer object, the policy, the token.
    pub fn to_json(&self) -> serde_json::Value {
        let value = match self {
            Projection::Charge(charge) => serde_json::to_value(charge),
            Projection::Customer(customer) => serde_json::to_value(customer),
            Projection::AccountPolicy(policy) => serde_json::to_value(policy),
            Projection::Token(token) => serde_json::to_value(token),
            Projection::WebhookEndpoints(endpoints) => serde_json::to_value(endpoints),
        };
        // Plain data with string keys: serializing cannot fail, and if it did the state would be
        // unreadable, so stop rather than show `null`.
        value.expect("a projection serializes to JSON")
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Projection::Charge(_) => "charge",
            Projection::Customer(_) => "customer",
            Projection::AccountPolicy(_) => "account policy",
            Projection::Token(_) => "token",
            Projection::WebhookEndpoints(_) => "webhook endpoints",
        }
    }
}

/// Apply one event to the state of its stream (`None` before the first event).
pub fn apply(state: Option<Projection>, payload: &EventPayload) -> Result<Projection, FoldError> {
    let event_type = payload.event_type();
    match (state, payload) {
        (None, EventPayload::ChargeCreated(created)) => {
            Ok(Projection::Charge(Box::new(charge_from_creation(created)?)))
        }
        (None, EventPayload::ChargeFailed(failed)) => {
            Ok(Projection::Charge(Box::new(charge_from_failure(failed)?)))
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
            customer: None,
            declines_with: created.declines_with.clone(),
        }))),
        (
            Some(Projection::Token(token)),
            EventPayload::TokenUsed(_) | EventPayload::TokenAttached(_),
        ) if token.used() => Err(FoldError::TokenAlreadyUsed {
            token_id: token.id.clone(),
        }),
        (Some(Projection::Token(mut token)), EventPayload::TokenUsed(used)) => {
            token.charge = Some(used.charge_id.clone());
            Ok(Projection::Token(token))
        }
        (Some(Projection::Token(mut token)), EventPayload::TokenAttached(attached)) => {
            token.customer = Some(attached.customer_id.clone());
            Ok(Projection::Token(token))
        }
        (Some(Projection::Customer(customer)), EventPayload::CustomerUpdated(updated)) => {
            apply_customer_update(customer, updated).map(Projection::Customer)
        }
        (_, EventPayload::AccountPolicySet(set)) => Ok(Projection::AccountPolicy(set.policy)),
        (None, EventPayload::WebhookEndpointCreated(created)) => {
            Ok(Projection::WebhookEndpoints(WebhookEndpoints {
                endpoints: vec![created.endpoint.clone()],
            }))
        }
        (Some(Projection::WebhookEndpoints(endpoints)), payload) if is_endpoint_event(payload) => {
            apply_to_endpoints(endpoints, payload).map(Projection::WebhookEndpoints)
        }
        (None, _) => Err(FoldError::CannotStartStream { event_type }),
        (
            Some(_),
            EventPayload::ChargeCreated(_)
            | EventPayload::ChargeFailed(_)
            | EventPayload::CustomerCreated(_)
            | EventPayload::TokenCreated(_),
        ) => Err(FoldError::StreamAlreadyStarted { event_type }),
        (Some(Projection::Charge(_)), payload) if is_endpoint_event(payload) => {
            Err(FoldError::WrongStream {
                event_type,
                stream_kind: "charge",
            })
        }
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

/// Let an uncaptured Omise authorization go (a reverse or an expiry): Omise's operations, which
/// a Stripe charge never records, on a charge that is authorized and nothing more.
fn release_omise_authorization(
    charge: &mut ChargeState,
    event_type: &'static str,
) -> Result<(), FoldError> {
    if charge.origin() != Origin::Omise {
        return Err(FoldError::WrongStream {
            event_type,
            stream_kind: "Stripe charge",
        });
    }
    if charge.lifecycle != Lifecycle::Authorized {
        return Err(FoldError::broken(
            charge,
            event_type,
            "it is not authorized",
        ));
    }
    charge.money.released = charge.money.authorized;
    charge.lifecycle = Lifecycle::Reversed;
    Ok(())
}

/// Apply a charge event to an existing charge, then check the money invariants.
pub fn apply_to_charge(
    mut charge: ChargeState,
    payload: &EventPayload,
) -> Result<ChargeState, FoldError> {
    let event_type = payload.event_type();
    match payload {
        EventPayload::ChargeUpdated(updated) => {
            apply_field_changes(&mut charge, &updated.changes, event_type)?;
        }
        EventPayload::ChargeCaptured(captured) => {
            if charge.lifecycle != Lifecycle::Authorized {
                return Err(FoldError::broken(
                    &charge,
                    event_type,
                    "it is not authorized",
                ));
            }
            charge.money.captured = captured.amount_captured;
            // Whatever was not captured is let go, whether or not a refund record says so.
            charge.money.released = charge.money.authorized - captured.amount_captured;
            charge.lifecycle = Lifecycle::Captured;
            charge.transaction = Some(captured.balance_transaction.clone());
            charge.captured_at = captured.captured_at;
            if let Some(remainder) = &captured.released_remainder {
                if remainder.amount != charge.money.released {
                    return Err(FoldError::broken(
                        &charge,
                        event_type,
                        "its released remainder is not the uncaptured amount",
                    ));
                }
                charge.refunds.push(remainder.clone());
            }
            apply_field_changes(&mut charge, &captured.changes, event_type)?;
        }
        EventPayload::ChargeReversed(reversed) => {
            release_omise_authorization(&mut charge, event_type)?;
            charge.reversed_at = Some(reversed.reversed_at);
        }
        EventPayload::ChargeExpired(expired) => {
            release_omise_authorization(&mut charge, event_type)?;
            charge.expired_at = Some(expired.expired_at);
        }
        EventPayload::ChargeRefunded(refunded) => {
            let amount = refunded.refund.amount;
            match charge.lifecycle {
                // Refunding an uncaptured charge releases its authorization.
                Lifecycle::Authorized => {
                    charge.money.released += amount;
                    charge.lifecycle = Lifecycle::Reversed;
                }
                Lifecycle::Captured => {
                    charge.money.refunded += amount;
                    charge.lifecycle = ChargeState::lifecycle_of(&charge.money, None);
                }
                Lifecycle::Failed => {
                    return Err(FoldError::broken(
                        &charge,
                        event_type,
                        "it failed, so it holds no money",
                    ));
                }
                Lifecycle::Refunded | Lifecycle::Reversed => {
                    return Err(FoldError::broken(
                        &charge,
                        event_type,
                        "nothing is left to refund",
                    ));
                }
            }
            charge.refunds.push(refunded.refund.clone());
        }
        EventPayload::RefundUpdated(updated) => {
            let Some(refund) = charge
                .refunds
                .iter_mut()
                .find(|refund| refund.id == updated.refund_id)
            else {
                return Err(FoldError::broken(
                    &charge,
                    event_type,
                    "it names a refund the charge does not have",
                ));
            };
            for key in updated.previous_metadata.keys() {
                refund.metadata.remove(key);
            }
            for (key, value) in &updated.current_metadata {
                refund.metadata.insert(key.clone(), value.clone());
            }
        }
        EventPayload::ReceiptSent(sent) => {
            charge.receipt_number = Some(sent.receipt_number.clone());
            charge.receipt_url = Some(sent.receipt_url.clone());
        }
        EventPayload::ChargeCreated(_) | EventPayload::ChargeFailed(_) => {
            return Err(FoldError::StreamAlreadyStarted { event_type });
        }
        EventPayload::CustomerCreated(_)
        | EventPayload::CustomerUpdated(_)
        | EventPayload::AccountPolicySet(_)
        | EventPayload::TokenCreated(_)
        | EventPayload::TokenUsed(_)
        | EventPayload::TokenAttached(_)
        | EventPayload::WebhookEndpointCreated(_)
        | EventPayload::WebhookEndpointUpdated(_)
        | EventPayload::WebhookEndpointDeleted(_) => {
            return Err(FoldError::WrongStream {
                event_type,
                stream_kind: "charge",
            });
        }
    }
    check_money(&charge, event_type)?;
    Ok(charge)
}

/// The money invariants every charge keeps after every event.
fn check_money(charge: &ChargeState, event_type: &'static str) -> Result<(), FoldError> {
    let Money {
        authorized,
        captured,
        refunded,
        released,
    } = charge.money;
    let holds = 0 < authorized
        && 0 <= refunded
        && refunded <= captured
        && captured <= authorized
        && 0 <= released
        && captured
            .checked_add(released)
            .is_some_and(|total| total <= authorized);
    if !holds {
        return Err(FoldError::broken(
            charge,
            event_type,
            "its money would break 0 ≤ refunded ≤ captured ≤ authorized, captured + released ≤ authorized",
        ));
    }
    let holds_nothing = captured == 0 && refunded == 0 && released == 0;
    if charge.lifecycle == Lifecycle::Failed && !holds_nothing {
        return Err(FoldError::broken(
            charge,
            event_type,
            "a failed charge would hold money",
        ));
    }
    if ChargeState::lifecycle_of(&charge.money, charge.failure.as_ref()) != charge.lifecycle {
        return Err(FoldError::broken(
            charge,
            event_type,
            "its lifecycle would disagree with its money",
        ));
    }
    Ok(())
}

fn apply_field_changes(
    charge: &mut ChargeState,
    changes: &[FieldChange],
    event_type: &'static str,
) -> Result<(), FoldError> {
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
            FieldChange::FraudDetails { current, .. } => {
                stripe_details(charge, event_type)?.fraud_details = current.clone();
            }
            FieldChange::TransferGroup { current, .. } => {
                stripe_details(charge, event_type)?.transfer_group = current.clone();
            }
            FieldChange::StatementDescriptor { current, .. } => {
                stripe_details(charge, event_type)?.statement_descriptor = current.clone();
            }
            FieldChange::StatementDescriptorSuffix { current, .. } => {
                stripe_details(charge, event_type)?.statement_descriptor_suffix = current.clone();
            }
        }
    }
    Ok(())
}

/// The Stripe-only part of a charge that a Stripe-only change writes to; an Omise charge has none.
fn stripe_details<'charge>(
    charge: &'charge mut ChargeState,
    event_type: &'static str,
) -> Result<&'charge mut StripeDetails, FoldError> {
    match &mut charge.details {
        DialectDetails::Stripe(details) => Ok(details),
        DialectDetails::Omise(_) => Err(FoldError::WrongStream {
            event_type,
            stream_kind: "Omise charge",
        }),
    }
}

fn charge_from_creation(created: &ChargeCreated) -> Result<ChargeState, FoldError> {
    let (instrument, details) = match &created.omise {
        None => (
            Instrument::TestCard {
                source: created.source.clone(),
                payment_method: created.payment_method.clone(),
                card: created.card.clone(),
            },
            DialectDetails::Stripe(StripeDetails {
                fraud_details: FraudDetails::default(),
                statement_descriptor: created.statement_descriptor.clone(),
                statement_descriptor_suffix: created.statement_descriptor_suffix.clone(),
                transfer_group: created.transfer_group.clone(),
            }),
        ),
        Some(omise) => (
            Instrument::VaultCard {
                token: created.source.clone(),
                card: omise.card.clone(),
            },
            DialectDetails::Omise(OmiseDetails {
                capture: created.captured,
                return_uri: omise.return_uri.clone(),
                ip: omise.ip.clone(),
                expires_at: omise.expires_at,
            }),
        ),
    };
    let money = Money {
        authorized: created.amount,
        captured: if created.captured { created.amount } else { 0 },
        refunded: 0,
        released: 0,
    };
    let charge = ChargeState {
        id: created.charge_id.clone(),
        livemode: created.livemode,
        created: created.created,
        currency: created.currency.clone(),
        money,
        lifecycle: ChargeState::lifecycle_of(&money, None),
        instrument,
        customer: created.customer.clone(),
        description: created.description.clone(),
        metadata: created.metadata.clone(),
        receipt_email: created.receipt_email.clone(),
        receipt_number: None,
        receipt_url: None,
        shipping: created.shipping.clone(),
        transaction: created.balance_transaction.clone(),
        refunds: Vec::new(),
        captured_at: created.captured.then_some(created.created),
        reversed_at: None,
        expired_at: None,
        failure: None,
        details,
    };
    check_money(&charge, "charge.created")?;
    Ok(charge)
}

/// A declined attempt: the charge as its creation would be, holding nothing, with its failure.
fn charge_from_failure(failed: &ChargeFailed) -> Result<ChargeState, FoldError> {
    let attempt = &failed.attempt;
    let mut charge = charge_from_creation(&ChargeCreated {
        captured: false,
        balance_transaction: None,
        ..attempt.clone()
    })?;
    if attempt.captured || attempt.balance_transaction.is_some() {
        return Err(FoldError::broken(
            &charge,
            "charge.failed",
            "a failed attempt cannot be captured",
        ));
    }
    charge.lifecycle = Lifecycle::Failed;
    charge.failure = Some(failed.failure.clone());
    // Radar reports the payments it blocks (`fraud_details.stripe_report`).
    if failed.failure.blocked
        && let DialectDetails::Stripe(details) = &mut charge.details
    {
        details.fraud_details.stripe_report = Some("fraudulent".into());
    }
    check_money(&charge, "charge.failed")?;
    Ok(charge)
}

//! Applying events to the streams that are not charges: customers (Stripe's, and Omise's with saved cards) and an account's webhook endpoints.

use crate::domain::apply::FoldError;
use crate::domain::events::{CustomerCreated, CustomerUpdated, EventPayload};
use crate::domain::values::Customer;
use crate::domain::webhooks::WebhookEndpoints;

pub(super) fn is_endpoint_event(payload: &EventPayload) -> bool {
    matches!(
        payload,
        EventPayload::WebhookEndpointCreated(_)
            | EventPayload::WebhookEndpointUpdated(_)
            | EventPayload::WebhookEndpointDeleted(_)
    )
}

/// An endpoint event onto the account's endpoints: a creation adds one with a new id, an
/// update replaces one that exists, a deletion removes one that exists.
pub(super) fn apply_to_endpoints(
    mut endpoints: WebhookEndpoints,
    payload: &EventPayload,
) -> Result<WebhookEndpoints, FoldError> {
    let event_type = payload.event_type();
    let missing = |endpoint_id: &str| FoldError::NoSuchEndpoint {
        event_type,
        endpoint_id: endpoint_id.to_string(),
    };
    match payload {
        EventPayload::WebhookEndpointCreated(created) => {
            if endpoints.get(&created.endpoint.id).is_some() {
                return Err(FoldError::StreamAlreadyStarted { event_type });
            }
            endpoints.endpoints.push(created.endpoint.clone());
        }
        EventPayload::WebhookEndpointUpdated(updated) => {
            let slot = endpoints
                .endpoints
                .iter_mut()
                .find(|endpoint| endpoint.id == updated.endpoint.id)
                .ok_or_else(|| missing(&updated.endpoint.id))?;
            *slot = updated.endpoint.clone();
        }
        EventPayload::WebhookEndpointDeleted(deleted) => {
            let before = endpoints.endpoints.len();
            endpoints
                .endpoints
                .retain(|endpoint| endpoint.id != deleted.endpoint_id);
            if endpoints.endpoints.len() == before {
                return Err(missing(&deleted.endpoint_id));
            }
        }
        _ => {
            return Err(FoldError::WrongStream {
                event_type,
                stream_kind: "webhook endpoints",
            });
        }
    }
    Ok(endpoints)
}

pub(super) fn customer_from_creation(created: &CustomerCreated) -> Customer {
    Customer {
        id: created.customer_id.clone(),
        object: "customer".into(),
        created: created.created,
        description: created.description.clone(),
        email: created.email.clone(),
        livemode: created.livemode,
        metadata: created.metadata.clone(),
        name: created.name.clone(),
        default_card: created.card.as_ref().map(|saved| saved.card.id.clone()),
        cards: created.card.iter().cloned().collect(),
    }
}

/// An Omise customer's update: new values set, a new card saved (the first becomes the
/// default), the default moved to a card the customer has.
pub(super) fn apply_customer_update(
    mut customer: Customer,
    updated: &CustomerUpdated,
) -> Result<Customer, FoldError> {
    if let Some(email) = &updated.email {
        customer.email = Some(email.clone());
    }
    if let Some(description) = &updated.description {
        customer.description = Some(description.clone());
    }
    if let Some(metadata) = &updated.metadata {
        customer.metadata = metadata.clone();
    }
    if let Some(saved) = &updated.card_added {
        if customer.card(&saved.card.id).is_some() {
            return Err(FoldError::CustomerCard {
                customer_id: customer.id.clone(),
                card_id: saved.card.id.clone(),
                detail: "is saved twice",
            });
        }
        customer.cards.push(saved.clone());
        if customer.default_card.is_none() {
            customer.default_card = Some(saved.card.id.clone());
        }
    }
    if let Some(card_id) = &updated.default_card {
        if customer.card(card_id).is_none() {
            return Err(FoldError::CustomerCard {
                customer_id: customer.id.clone(),
                card_id: card_id.clone(),
                detail: "is made the default but was never saved",
            });
        }
        customer.default_card = Some(card_id.clone());
    }
    Ok(customer)
}

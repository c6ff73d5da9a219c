//! Omise customers, pure: creation with an optional first card saved from a vault token, updates (email, description, metadata replaced, a card added, the default card), and which saved card a charge of the customer uses.

use super::decide::{check_description, check_metadata};
use super::{OmiseContext, OmiseRefusal};
use crate::domain::events::{CustomerCreated, CustomerUpdated, EventPayload, TokenAttached};
use crate::domain::stripe::validation::check_email;
use crate::domain::{Customer, Metadata, SavedCard, Token};

/// `POST /customers`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CreateOmiseCustomer {
    pub email: Option<String>,
    pub description: Option<String>,
    pub metadata: Metadata,
    /// A `tokn_…` whose card is saved as the customer's first (and default) card.
    pub card: Option<String>,
}

/// `PATCH /customers/{id}`: what is given is set; nothing given changes nothing.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct UpdateOmiseCustomer {
    pub email: Option<String>,
    pub description: Option<String>,
    /// Replaces the metadata as a whole, as `PATCH /charges/{id}` does.
    pub metadata: Option<Metadata>,
    /// A `tokn_…` whose card is saved to the customer.
    pub card: Option<String>,
    /// One of the customer's `card_…` ids.
    pub default_card: Option<String>,
}

/// What a customer command appends: the customer's event, and the token it uses up, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerDecision {
    pub customer_event: EventPayload,
    pub token_attached: Option<EventPayload>,
}

/// Decide `POST /customers`. `token` is the vault token `command.card` names, if the account
/// has it.
pub fn create_customer(
    command: &CreateOmiseCustomer,
    token: Option<&Token>,
    context: &OmiseContext,
) -> Result<CustomerDecision, OmiseRefusal> {
    let email = checked_email(command.email.as_deref())?;
    check_description(command.description.as_deref())?;
    check_metadata(&command.metadata)?;
    let customer_id = context.ids.customer.clone();
    let card = command
        .card
        .as_deref()
        .map(|token_id| card_of_unused_token(token_id, token))
        .transpose()?;
    Ok(CustomerDecision {
        token_attached: card.as_ref().map(|_| attach(&customer_id)),
        customer_event: EventPayload::CustomerCreated(CustomerCreated {
            customer_id,
            livemode: context.livemode,
            created: context.now_unix,
            email,
            name: None,
            description: command.description.clone().filter(|text| !text.is_empty()),
            metadata: command.metadata.clone(),
            card,
        }),
    })
}

/// Decide `PATCH /customers/{id}`. `Ok(None)`: nothing changes, nothing is appended.
pub fn update_customer(
    customer: &Customer,
    command: &UpdateOmiseCustomer,
    token: Option<&Token>,
) -> Result<Option<CustomerDecision>, OmiseRefusal> {
    let email = checked_email(command.email.as_deref())?
        .filter(|email| customer.email.as_ref() != Some(email));
    check_description(command.description.as_deref())?;
    // An empty description changes nothing, as on charges (clients send it with every update).
    let description = command
        .description
        .clone()
        .filter(|text| !text.is_empty() && customer.description.as_ref() != Some(text));
    if let Some(metadata) = &command.metadata {
        check_metadata(metadata)?;
    }
    let metadata = command
        .metadata
        .clone()
        .filter(|metadata| *metadata != customer.metadata);
    let card_added = command
        .card
        .as_deref()
        .map(|token_id| card_of_unused_token(token_id, token))
        .transpose()?;
    // The default may be the card this same update saves.
    let saving = |card_id: &str| {
        card_added
            .as_ref()
            .is_some_and(|saved| saved.card.id == card_id)
    };
    let default_card = match &command.default_card {
        Some(card_id) if customer.card(card_id).is_none() && !saving(card_id) => {
            return Err(OmiseRefusal::CustomerCardNotFound {
                card_id: card_id.clone(),
            });
        }
        Some(card_id) if customer.default_card.as_ref() != Some(card_id) => Some(card_id.clone()),
        _ => None,
    };
    let updated = CustomerUpdated {
        email,
        description,
        metadata,
        card_added,
        default_card,
    };
    if updated.email.is_none()
        && updated.description.is_none()
        && updated.metadata.is_none()
        && updated.card_added.is_none()
        && updated.default_card.is_none()
    {
        return Ok(None);
    }
    Ok(Some(CustomerDecision {
        token_attached: updated.card_added.as_ref().map(|_| attach(&customer.id)),
        customer_event: EventPayload::CustomerUpdated(updated),
    }))
}

/// The saved card a charge of `customer` uses: `card_id` if given (it must be the customer's),
/// else the default card.
pub fn card_to_charge<'customer>(
    customer: &'customer Customer,
    card_id: Option<&str>,
) -> Result<&'customer SavedCard, OmiseRefusal> {
    let wanted = match card_id {
        Some(card_id) => card_id,
        None => {
            customer
                .default_card
                .as_deref()
                .ok_or_else(|| OmiseRefusal::CustomerHasNoCard {
                    customer_id: customer.id.clone(),
                })?
        }
    };
    customer
        .card(wanted)
        .ok_or_else(|| OmiseRefusal::CustomerCardNotFound {
            card_id: wanted.to_string(),
        })
}

fn checked_email(email: Option<&str>) -> Result<Option<String>, OmiseRefusal> {
    match email.filter(|email| !email.is_empty()) {
        None => Ok(None),
        Some(email) => {
            check_email("email", email).map_err(|_| OmiseRefusal::EmailInvalid)?;
            Ok(Some(email.to_string()))
        }
    }
}

/// The card of the token `token_id`, which must be this account's and unused.
fn card_of_unused_token(token_id: &str, token: Option<&Token>) -> Result<SavedCard, OmiseRefusal> {
    let token = match token {
        Some(token) if token.id == token_id => token,
        _ => {
            return Err(OmiseRefusal::TokenNotFound {
                id: token_id.to_string(),
            });
        }
    };
    if token.used() {
        return Err(OmiseRefusal::TokenUsed {
            id: token_id.to_string(),
        });
    }
    Ok(SavedCard {
        card: token.card.clone(),
        declines_with: token.declines_with.clone(),
    })
}

fn attach(customer_id: &str) -> EventPayload {
    EventPayload::TokenAttached(TokenAttached {
        customer_id: customer_id.to_string(),
    })
}

//! `/customers`: Omise customers created with a card token, retrieved, updated with `PATCH` (a token's card added, `default_card`), listed, and their saved cards.

use axum::extract::{Extension, Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::error::OmiseError;
use super::objects::{self, ListWindow};
use super::{ListQuery, OmiseInput, respond};
use crate::domain::Customer;
use crate::domain::omise::{CreateOmiseCustomer, OmiseRefusal, UpdateOmiseCustomer};
use crate::server::idempotency::{self, Written};
use crate::server::{App, Call};

/// How many cards a customer object embeds, as Omise's list default.
const EMBEDDED_CARDS_LIMIT: usize = 20;

/// A saved card: the vault card with the customer's `location`.
fn saved_card_object(customer: &Customer, card: &crate::domain::VaultCard) -> Value {
    let mut object = objects::card_object(card);
    object["location"] = json!(format!("/customers/{}/cards/{}", customer.id, card.id));
    object
}

/// The customer object (2019-05-29, as recorded from api.omise.co in 2025).
pub fn customer_object(customer: &Customer) -> Value {
    let cards: Vec<Value> = customer
        .cards
        .iter()
        .take(EMBEDDED_CARDS_LIMIT)
        .map(|saved| saved_card_object(customer, &saved.card))
        .collect();
    let created = objects::timestamp(customer.created);
    // The embedded list's window ends at the newest card saved.
    let newest = customer
        .cards
        .iter()
        .map(|saved| saved.card.created)
        .fold(customer.created, i64::max);
    json!({
        "object": "customer",
        "id": customer.id,
        "livemode": customer.livemode,
        "location": format!("/customers/{}", customer.id),
        "deleted": false,
        "metadata": customer.metadata,
        "cards": {
            "object": "list",
            "data": cards,
            "limit": EMBEDDED_CARDS_LIMIT,
            "offset": 0,
            "total": customer.cards.len(),
            "order": "chronological",
            "from": "1970-01-01T00:00:00Z",
            "to": objects::timestamp(newest),
            "location": format!("/customers/{}/cards", customer.id),
        },
        "default_card": customer.default_card,
        "linked_accounts": {
            "object": "list",
            "data": [],
            "limit": EMBEDDED_CARDS_LIMIT,
            "offset": 0,
            "total": 0,
            "order": "chronological",
            "location": format!("/customers/{}/linked_accounts", customer.id),
        },
        "description": customer.description,
        "email": customer.email,
        "created_at": created,
    })
}

fn respond_with_customer(written: Written<Customer>, call: &Call) -> Response {
    respond(customer_object(&written.value), call, written.replayed)
}

pub(super) async fn create_customer(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    OmiseInput(params): OmiseInput,
) -> Result<Response, OmiseError> {
    let command = CreateOmiseCustomer {
        email: params.string("email")?,
        description: params.string("description")?,
        metadata: params.metadata()?.unwrap_or_default(),
        card: params.string("card")?.filter(|card| !card.is_empty()),
    };
    let written = idempotency::write(
        &app,
        &call,
        app.ledger
            .create_omise_customer(&call.caller.account, command, call.request_meta()),
    )
    .await?;
    Ok(respond_with_customer(written, &call))
}

pub(super) async fn retrieve_customer(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(customer_id): Path<String>,
) -> Result<Response, OmiseError> {
    let customer = app
        .ledger
        .get_omise_customer(&call.caller.account, &customer_id)
        .await?;
    Ok(respond(customer_object(&customer), &call, false))
}

pub(super) async fn update_customer(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(customer_id): Path<String>,
    OmiseInput(params): OmiseInput,
) -> Result<Response, OmiseError> {
    let command = UpdateOmiseCustomer {
        email: params.string("email")?,
        description: params.string("description")?,
        metadata: params.metadata()?,
        card: params.string("card")?.filter(|card| !card.is_empty()),
        default_card: params
            .string("default_card")?
            .filter(|card| !card.is_empty()),
    };
    let written = idempotency::write(
        &app,
        &call,
        app.ledger.update_omise_customer(
            &call.caller.account,
            &customer_id,
            command,
            call.request_meta(),
        ),
    )
    .await?;
    Ok(respond_with_customer(written, &call))
}

pub(super) async fn list_customers(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    OmiseInput(params): OmiseInput,
) -> Result<Response, OmiseError> {
    let query = ListQuery::read(&params)?;
    let mut customers = app.ledger.all_customers(&call.caller.account).await?;
    customers.retain(|customer| query.includes(customer.created));
    customers.reverse();
    let (window, page) = query.page(customers);
    let data = page.iter().map(customer_object).collect();
    Ok(respond(
        objects::list_object(&window, data, "/customers"),
        &call,
        false,
    ))
}

pub(super) async fn list_cards(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(customer_id): Path<String>,
    OmiseInput(params): OmiseInput,
) -> Result<Response, OmiseError> {
    let query = ListQuery::read(&params)?;
    let customer = app
        .ledger
        .get_omise_customer(&call.caller.account, &customer_id)
        .await?;
    let oldest_first: Vec<_> = customer
        .cards
        .iter()
        .filter(|saved| query.includes(saved.card.created))
        .collect();
    let (window, page): (ListWindow, Vec<_>) = query.page(oldest_first);
    let data = page
        .iter()
        .map(|saved| saved_card_object(&customer, &saved.card))
        .collect();
    Ok(respond(
        objects::list_object(&window, data, &format!("/customers/{customer_id}/cards")),
        &call,
        false,
    ))
}

pub(super) async fn retrieve_card(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path((customer_id, card_id)): Path<(String, String)>,
) -> Result<Response, OmiseError> {
    let customer = app
        .ledger
        .get_omise_customer(&call.caller.account, &customer_id)
        .await?;
    let saved = customer.card(&card_id).ok_or_else(|| {
        OmiseError::from(crate::ledger::LedgerError::from(
            OmiseRefusal::CustomerCardNotFound {
                card_id: card_id.clone(),
            },
        ))
    })?;
    Ok(respond(
        saved_card_object(&customer, &saved.card),
        &call,
        false,
    ))
}

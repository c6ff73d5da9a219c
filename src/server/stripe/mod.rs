//! The Stripe dialect: `/v1/charges`, `/v1/refunds`, `/v1/customers`, `/v1/events`, `/v1/webhook_endpoints` and the extensions `/v1/charges/{id}/history`, `/v1/events/{id}/deliveries` and `/resend`.
//!
//! Each handler reads its parameters (unknown ones first), calls the ledger once, and renders
//! Stripe's object. Writes go through `idempotency::write`.

pub mod charge_object;
mod charges;
mod customers;
pub mod error;
pub(crate) mod events;
pub mod objects;
pub mod params;
mod refunds;
mod search;
pub mod webhooks;

use std::future::Future;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use self::error::ApiError;
use self::params::Form;
use crate::domain::ChargeState;
use crate::ledger::LedgerError;
use crate::server::idempotency::{self, Written};
use crate::server::{App, Call, MAX_BODY_BYTES, form, unrecognized_url};

/// Charge fields `expand` accepts. Only `customer` ever holds an id here; the others are always
/// `null` in this ledger, and expanding `null` leaves it `null`, as on Stripe.
const CHARGE_EXPANDABLE: [&str; 10] = [
    "customer",
    "refunds",
    "application",
    "application_fee",
    "failure_balance_transaction",
    "on_behalf_of",
    "payment_intent",
    "review",
    "source_transfer",
    "transfer",
];
const CHARGE_LIST_EXPANDABLE: [&str; 10] = [
    "data.customer",
    "data.refunds",
    "data.application",
    "data.application_fee",
    "data.failure_balance_transaction",
    "data.on_behalf_of",
    "data.payment_intent",
    "data.review",
    "data.source_transfer",
    "data.transfer",
];
const REFUND_EXPANDABLE: [&str; 1] = ["charge"];
const REFUND_LIST_EXPANDABLE: [&str; 1] = ["data.charge"];

/// The Stripe routes. A known path with an unsupported method is an unrecognized URL too.
pub fn routes() -> Router<App> {
    use charges::*;
    use customers::*;
    use events::*;
    use refunds::*;
    use search::*;
    let with_fallback = |methods: MethodRouter<App>| methods.fallback(unrecognized_url);
    Router::new()
        .route(
            "/v1/charges",
            with_fallback(post(create_charge).get(list_charges)),
        )
        // Before `/v1/charges/{id}` would be tried: `search` is not a charge id.
        .route("/v1/charges/search", with_fallback(get(search_charges)))
        .route(
            "/v1/charges/{id}",
            with_fallback(get(retrieve_charge).post(update_charge)),
        )
        .route(
            "/v1/charges/{id}/capture",
            with_fallback(post(capture_charge)),
        )
        .route(
            "/v1/charges/{id}/refunds",
            with_fallback(get(list_charge_refunds)),
        )
        .route(
            "/v1/charges/{id}/history",
            with_fallback(get(charge_history)),
        )
        .route(
            "/v1/charges/{id}/history/{version}",
            with_fallback(get(charge_at_version)),
        )
        .route(
            "/v1/refunds",
            with_fallback(post(create_refund).get(list_refunds)),
        )
        .route(
            "/v1/refunds/{id}",
            with_fallback(get(retrieve_refund).post(update_refund)),
        )
        .route(
            "/v1/customers",
            with_fallback(post(create_customer).get(list_customers)),
        )
        .route("/v1/customers/search", with_fallback(get(search_customers)))
        .route("/v1/customers/{id}", with_fallback(get(retrieve_customer)))
        .route("/v1/events", with_fallback(get(list_events)))
        .route("/v1/events/{id}", with_fallback(get(retrieve_event)))
        .route(
            "/v1/events/{id}/deliveries",
            with_fallback(get(webhooks::event_deliveries)),
        )
        .route(
            "/v1/events/{id}/resend",
            with_fallback(post(webhooks::resend_event)),
        )
        .route(
            "/v1/webhook_endpoints",
            with_fallback(post(webhooks::create_endpoint).get(webhooks::list_endpoints)),
        )
        .route(
            "/v1/webhook_endpoints/{id}",
            with_fallback(
                get(webhooks::retrieve_endpoint)
                    .post(webhooks::update_endpoint)
                    .delete(webhooks::delete_endpoint),
            ),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// The parameters of a request: its query string, then its form body (Rack merges both).
fn read_form(query: Option<String>, body: Result<Bytes, BytesRejection>) -> Result<Form, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::body_too_large(MAX_BODY_BYTES)
        } else {
            ApiError::invalid_request(
                format!("The request body could not be read: {rejection}"),
                None,
                None,
            )
        }
    })?;
    let mut input = query.unwrap_or_default().into_bytes();
    if !body.is_empty() {
        if !input.is_empty() {
            input.push(b'&');
        }
        input.extend_from_slice(&body);
    }
    let params = form::parse(&input).map_err(|refused| {
        ApiError::invalid_request(refused.to_string(), Some(refused.param()), None)
    })?;
    Ok(Form::new(params))
}

fn query_form(query: Option<String>) -> Result<Form, ApiError> {
    read_form(query, Ok(Bytes::new()))
}

/// A 200 with a JSON body, marked as a replay when it is one.
fn respond(body: &impl Serialize, call: &Call, replayed: bool) -> Response {
    let mut response = Json(body).into_response();
    idempotency::stamp_headers(&mut response, call, replayed);
    response
}

fn to_json(value: &impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|error| ApiError::internal(&error, false))
}

/// A charge as JSON, with its customer expanded if asked (`customer` or `data.customer`).
async fn charge_object(
    app: &App,
    account: &str,
    charge: &ChargeState,
    expand: &[String],
) -> Result<Value, ApiError> {
    let mut value = to_json(&charge_object::charge_object(charge))?;
    let expand_customer = expand
        .iter()
        .any(|path| path == "customer" || path == "data.customer");
    if expand_customer && let Some(customer_id) = &charge.customer {
        let customer = app.ledger.get_customer(account, customer_id).await?;
        value["customer"] = to_json(&customer)?;
    }
    Ok(value)
}

/// Run a charge write under the request's idempotency key and answer with the charge.
async fn respond_with_charge(
    app: &App,
    call: &Call,
    expand: &[String],
    write: impl Future<Output = Result<ChargeState, LedgerError>>,
) -> Result<Response, ApiError> {
    let written = idempotency::write(app, call, write).await?;
    charge_response(app, call, expand, written).await
}

async fn charge_response(
    app: &App,
    call: &Call,
    expand: &[String],
    Written { value, replayed }: Written<ChargeState>,
) -> Result<Response, ApiError> {
    let body = charge_object(app, &call.caller.account, &value, expand).await?;
    Ok(respond(&body, call, replayed))
}

/// `respond_with_charge` for a creation, where a declined attempt is recorded (the charge
/// exists, failed) and answered with Stripe's 402 naming it, on a replay too.
async fn respond_with_new_charge(
    app: &App,
    call: &Call,
    expand: &[String],
    write: impl Future<Output = Result<ChargeState, LedgerError>>,
) -> Result<Response, ApiError> {
    let written = idempotency::write(app, call, write).await?;
    if let Some(failure) = &written.value.failure {
        let mut response = ApiError::declined(&written.value.id, failure).into_response();
        idempotency::stamp_headers(&mut response, call, written.replayed);
        return Ok(response);
    }
    charge_response(app, call, expand, written).await
}

/// A missing object reported against the parameter that named it in this request: a refund's
/// `charge` is in the body, a retrieved customer's id is in the URL.
fn missing_object_param(mut error: ApiError, reported: &str, named: &str) -> ApiError {
    if error.body.code.as_deref() == Some("resource_missing")
        && error.body.param.as_deref() == Some(reported)
    {
        error.body.param = Some(named.to_string());
    }
    error
}

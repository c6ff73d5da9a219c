//! The Stripe dialect: `/v1/charges`, `/v1/refunds`, `/v1/customers`, `/v1/events` and the audit extension `/v1/charges/{id}/history`.
//!
//! Each handler reads its parameters (unknown ones first), calls the ledger once, and renders
//! Stripe's object. Writes go through `idempotency::write`.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use crate::domain::{
    self, CaptureCharge, Charge, CreateCharge, CreateCustomer, Projection, RefundCharge,
    RequestError, UpdateCharge,
};
use crate::events::RecordedEvent;
use crate::ledger::{LedgerError, ListCharges};
use crate::server::error::ApiError;
use crate::server::idempotency::{self, Written};
use crate::server::objects::{self, ListObject};
use crate::server::paging;
use crate::server::params::{Form, missing};
use crate::server::{App, Call, MAX_BODY_BYTES, form, unrecognized_url};
use crate::store::PageCursor;

/// Charge fields `expand` accepts. Only `customer` ever holds an id here; the others are always
/// `null` in this ledger, and expanding `null` leaves it `null`, as on Stripe.
const CHARGE_EXPANDABLE: [&str; 9] = [
    "customer",
    "application",
    "application_fee",
    "failure_balance_transaction",
    "on_behalf_of",
    "payment_intent",
    "review",
    "source_transfer",
    "transfer",
];
const CHARGE_LIST_EXPANDABLE: [&str; 9] = [
    "data.customer",
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
    let with_fallback = |methods: MethodRouter<App>| methods.fallback(unrecognized_url);
    Router::new()
        .route(
            "/v1/charges",
            with_fallback(post(create_charge).get(list_charges)),
        )
        .route(
            "/v1/charges/{id}",
            with_fallback(get(retrieve_charge).post(update_charge)),
        )
        .route(
            "/v1/charges/{id}/capture",
            with_fallback(post(capture_charge)),
        )
        .route("/v1/charges/{id}/refunds", with_fallback(get(list_refunds)))
        .route(
            "/v1/charges/{id}/history",
            with_fallback(get(charge_history)),
        )
        .route(
            "/v1/charges/{id}/history/{version}",
            with_fallback(get(charge_at_version)),
        )
        .route("/v1/refunds", with_fallback(post(create_refund)))
        .route(
            "/v1/customers",
            with_fallback(post(create_customer).get(list_customers)),
        )
        .route("/v1/customers/{id}", with_fallback(get(retrieve_customer)))
        .route("/v1/events", with_fallback(get(list_events)))
        .route("/v1/events/{id}", with_fallback(get(retrieve_event)))
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
    charge: &Charge,
    expand: &[String],
) -> Result<Value, ApiError> {
    let mut value = to_json(charge)?;
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
    write: impl Future<Output = Result<Charge, LedgerError>>,
) -> Result<Response, ApiError> {
    let Written { value, replayed } = idempotency::write(app, call, write).await?;
    let body = charge_object(app, &call.caller.account, &value, expand).await?;
    Ok(respond(&body, call, replayed))
}

async fn create_charge(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut form = read_form(query, body)?;
    form.reject_unknown(&[
        "amount",
        "currency",
        "customer",
        "source",
        "capture",
        "description",
        "metadata",
        "receipt_email",
        "shipping",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "transfer_group",
        "expand",
    ])?;
    let expand = form.expand(&CHARGE_EXPANDABLE)?;
    let amount = form.integer("amount")?.ok_or_else(|| missing("amount"))?;
    let currency = form.required_text("currency")?;
    let command = CreateCharge {
        amount,
        currency,
        customer: form.optional_text("customer")?,
        source: form.optional_text("source")?,
        capture: form.boolean("capture")?.unwrap_or(true),
        description: form.optional_text("description")?,
        metadata: form.metadata()?,
        receipt_email: form.optional_text("receipt_email")?,
        shipping: form.shipping()?,
        statement_descriptor: form.optional_text("statement_descriptor")?,
        statement_descriptor_suffix: form.optional_text("statement_descriptor_suffix")?,
        transfer_group: form.optional_text("transfer_group")?,
    };
    let account = &call.caller.account;
    let written = app
        .ledger
        .create_charge(account, command, call.request_meta());
    respond_with_charge(&app, &call, &expand, written).await
}

async fn retrieve_charge(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(charge_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&["expand"])?;
    let expand = form.expand(&CHARGE_EXPANDABLE)?;
    let account = &call.caller.account;
    let charge = app.ledger.get_charge(account, &charge_id).await?;
    let body = charge_object(&app, account, &charge, &expand).await?;
    Ok(respond(&body, &call, false))
}

async fn update_charge(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(charge_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut form = read_form(query, body)?;
    form.reject_unknown(&[
        "customer",
        "description",
        "expand",
        "fraud_details",
        "metadata",
        "receipt_email",
        "shipping",
        "transfer_group",
    ])?;
    let expand = form.expand(&CHARGE_EXPANDABLE)?;
    let command = UpdateCharge {
        customer: form.text("customer")?,
        description: form.text("description")?,
        metadata: form.metadata()?,
        receipt_email: form.text("receipt_email")?,
        shipping: form.shipping_update()?,
        fraud_details_user_report: form.fraud_details()?,
        transfer_group: form.text("transfer_group")?,
    };
    let account = &call.caller.account;
    let written = app
        .ledger
        .update_charge(account, &charge_id, command, call.request_meta());
    respond_with_charge(&app, &call, &expand, written).await
}

async fn capture_charge(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(charge_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut form = read_form(query, body)?;
    form.reject_unknown(&[
        "amount",
        "receipt_email",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "transfer_group",
        "expand",
    ])?;
    let expand = form.expand(&CHARGE_EXPANDABLE)?;
    let command = CaptureCharge {
        amount: form.integer("amount")?,
        receipt_email: form.optional_text("receipt_email")?,
        statement_descriptor: form.optional_text("statement_descriptor")?,
        statement_descriptor_suffix: form.optional_text("statement_descriptor_suffix")?,
        transfer_group: form.optional_text("transfer_group")?,
    };
    let account = &call.caller.account;
    let written = app
        .ledger
        .capture_charge(account, &charge_id, command, call.request_meta());
    respond_with_charge(&app, &call, &expand, written).await
}

async fn list_charges(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&[
        "limit",
        "starting_after",
        "ending_before",
        "customer",
        "created",
        "transfer_group",
        "expand",
    ])?;
    let expand = form.expand(&CHARGE_LIST_EXPANDABLE)?;
    let created = form.created_range()?;
    let query = ListCharges {
        limit: form.limit()?,
        cursor: form.cursor()?,
        customer: form.optional_text("customer")?,
        transfer_group: form.optional_text("transfer_group")?,
        created_gt: created.gt,
        created_gte: created.gte,
        created_lt: created.lt,
        created_lte: created.lte,
    };
    let account = &call.caller.account;
    let page = app.ledger.list_charges(account, &query).await?;
    let mut data = Vec::with_capacity(page.data.len());
    for charge in &page.data {
        data.push(charge_object(&app, account, charge, &expand).await?);
    }
    let list = ListObject::new(data, page.has_more, "/v1/charges");
    Ok(respond(&list, &call, false))
}

/// A refund as JSON, with its charge expanded if asked.
async fn refund_object(
    app: &App,
    account: &str,
    refund: &domain::Refund,
    expand: &[String],
) -> Result<Value, ApiError> {
    let mut value = to_json(refund)?;
    if expand
        .iter()
        .any(|path| path == "charge" || path == "data.charge")
    {
        let charge = app.ledger.get_charge(account, &refund.charge).await?;
        value["charge"] = to_json(&charge)?;
    }
    Ok(value)
}

async fn create_refund(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut form = read_form(query, body)?;
    form.reject_unknown(&["charge", "amount", "reason", "metadata", "expand"])?;
    let expand = form.expand(&REFUND_EXPANDABLE)?;
    let charge_id = form.required_text("charge")?;
    let command = RefundCharge {
        amount: form.integer("amount")?,
        reason: form.optional_text("reason")?,
        metadata: form.metadata()?,
    };
    let account = &call.caller.account;
    let Written { value, replayed } = idempotency::write(
        &app,
        &call,
        app.ledger
            .refund_charge(account, &charge_id, command, call.request_meta()),
    )
    .await
    .map_err(|error| missing_object_param(error.into(), "id", "charge"))?;
    let body = refund_object(&app, account, &value.refund, &expand).await?;
    Ok(respond(&body, &call, replayed))
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

async fn list_refunds(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(charge_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&["limit", "starting_after", "ending_before", "expand"])?;
    let expand = form.expand(&REFUND_LIST_EXPANDABLE)?;
    let limit = form.limit()?;
    let cursor = form.cursor()?;
    let account = &call.caller.account;
    let charge = app.ledger.get_charge(account, &charge_id).await?;
    // Refunds are embedded in the charge, newest first; a charge has few, so page in memory.
    // A cursor naming no refund of this charge gives an empty page.
    let (window, has_more) =
        paging::page_in_memory(&charge.refunds.data, &cursor, limit, |refund| &refund.id)
            .unwrap_or((&[], false));
    let mut data = Vec::new();
    for refund in window {
        data.push(refund_object(&app, account, refund, &expand).await?);
    }
    let list = ListObject::new(data, has_more, format!("/v1/charges/{charge_id}/refunds"));
    Ok(respond(&list, &call, false))
}

async fn create_customer(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut form = read_form(query, body)?;
    form.reject_unknown(&["email", "name", "description", "metadata", "expand"])?;
    form.expand(&[])?;
    let command = CreateCustomer {
        email: form.optional_text("email")?,
        name: form.optional_text("name")?,
        description: form.optional_text("description")?,
        metadata: form.metadata()?,
    };
    let Written { value, replayed } = idempotency::write(
        &app,
        &call,
        app.ledger
            .create_customer(&call.caller.account, command, call.request_meta()),
    )
    .await?;
    Ok(respond(&value, &call, replayed))
}

async fn retrieve_customer(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(customer_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&["expand"])?;
    form.expand(&[])?;
    let customer = app
        .ledger
        .get_customer(&call.caller.account, &customer_id)
        .await
        .map_err(|error| missing_object_param(error.into(), "customer", "id"))?;
    Ok(respond(&customer, &call, false))
}

async fn list_customers(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&["limit", "starting_after", "ending_before", "expand"])?;
    form.expand(&[])?;
    let limit = form.limit()?;
    let cursor = form.cursor()?;
    let page = app
        .ledger
        .list_customers(&call.caller.account, &cursor, limit)
        .await?;
    let list = ListObject::new(page.data, page.has_more, "/v1/customers");
    Ok(respond(&list, &call, false))
}

/// A stored event as Stripe's event object: the object right after it, and for updates the
/// attributes it changed with their previous values.
async fn event_object(
    app: &App,
    call: &Call,
    event: &RecordedEvent,
    event_type: &str,
) -> Result<Value, ApiError> {
    let (before, after) = app
        .ledger
        .states_around(&call.caller.account, event)
        .await?;
    let previous_json = before.as_ref().map(projection_json).transpose()?;
    let object = projection_json(&after)?;
    let previous_attributes = event_type
        .ends_with(".updated")
        .then(|| objects::previous_attributes(&previous_json.unwrap_or(Value::Null), &object));
    Ok(objects::event_object(
        event,
        event_type,
        call.caller.livemode,
        object,
        previous_attributes,
    ))
}

fn projection_json(projection: &Projection) -> Result<Value, ApiError> {
    Ok(projection.to_json())
}

async fn list_events(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&[
        "type",
        "types",
        "created",
        "limit",
        "starting_after",
        "ending_before",
    ])?;
    let mut types: Vec<String> = form.optional_text("type")?.into_iter().collect();
    types.extend(form.string_array("types")?);
    let created = form.created_range()?;
    let limit = form.limit()?;
    let cursor = form.cursor()?;
    let filter = move |event: &RecordedEvent| {
        objects::stripe_event_type(&event.body.payload).is_some_and(|event_type| {
            (types.is_empty()
                || types
                    .iter()
                    .any(|wanted| objects::type_matches(event_type, wanted)))
                && created.contains(event.body.recorded_at.unix_timestamp())
        })
    };
    let page = app
        .ledger
        .list_events(&call.caller.account, &cursor, limit, &filter)
        .await?;
    let mut data = Vec::with_capacity(page.data.len());
    for event in &page.data {
        if let Some(event_type) = objects::stripe_event_type(&event.body.payload) {
            data.push(event_object(&app, &call, event, event_type).await?);
        }
    }
    let list = ListObject::new(data, page.has_more, "/v1/events");
    Ok(respond(&list, &call, false))
}

async fn retrieve_event(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(event_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let form = query_form(query)?;
    form.reject_unknown(&[])?;
    let no_such_event = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            crate::server::error::ErrorType::InvalidRequestError,
            format!("No such event: '{event_id}'"),
            Some("id"),
            Some("resource_missing"),
        )
    };
    let event = app
        .ledger
        .event(&call.caller.account, &event_id)
        .await?
        .ok_or_else(no_such_event)?;
    let event_type = objects::stripe_event_type(&event.body.payload).ok_or_else(no_such_event)?;
    let body = event_object(&app, &call, &event, event_type).await?;
    Ok(respond(&body, &call, false))
}

async fn charge_history(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(charge_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&["limit", "starting_after", "ending_before"])?;
    let limit = form.limit()?;
    let cursor = form.cursor()?;
    let entries = app.ledger.history(&call.caller.account, &charge_id).await?;
    // Oldest first, as a history reads; `starting_after` moves to later versions. Each entry's
    // `id` is its event's id.
    let (window, has_more) = paging::page_in_memory(&entries, &cursor, limit, |entry| {
        &entry.event_id
    })
    .map_err(|missing_id| {
        let param = match &cursor {
            PageCursor::EndingBefore(_) => "ending_before",
            _ => "starting_after",
        };
        ApiError::new(
            StatusCode::NOT_FOUND,
            crate::server::error::ErrorType::InvalidRequestError,
            format!("No such history entry: '{missing_id}' is not an event of charge {charge_id}"),
            Some(param),
            Some("resource_missing"),
        )
    })?;
    let data: Vec<Value> = window
        .iter()
        .map(|entry| objects::history_entry_object(&charge_id, entry))
        .collect();
    let list = ListObject::new(data, has_more, format!("/v1/charges/{charge_id}/history"));
    Ok(respond(&list, &call, false))
}

async fn charge_at_version(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path((charge_id, version)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&["expand"])?;
    let expand = form.expand(&CHARGE_EXPANDABLE)?;
    let account = &call.caller.account;
    let version = version.parse::<u64>().map_err(|_| {
        ApiError::from(RequestError::InvalidInteger {
            param: "version".into(),
            value: version.clone(),
        })
    })?;
    let charge = app
        .ledger
        .charge_at_version(account, &charge_id, version)
        .await?;
    let body = charge_object(&app, account, &charge, &expand).await?;
    Ok(respond(&body, &call, false))
}

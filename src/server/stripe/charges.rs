//! `/v1/charges`: create, retrieve, update, capture and list, and the audit extension: a charge's history and the charge at a version.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::error::ApiError;
use super::objects::ListObject;
use super::params::{UPDATE_CHARGE_PARAMETERS, missing};
use super::{
    CHARGE_EXPANDABLE, CHARGE_LIST_EXPANDABLE, charge_object, objects, query_form, read_form,
    respond, respond_with_charge, respond_with_new_charge,
};
use crate::domain::{CaptureCharge, CreateCharge, RequestError};
use crate::ledger::ListCharges;
use crate::server::paging;
use crate::server::{App, Call};
use crate::store::PageCursor;

pub(super) async fn create_charge(
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
    let (source, card) = form.source()?;
    let command = CreateCharge {
        amount,
        currency,
        customer: form.optional_text("customer")?,
        source,
        card,
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
    respond_with_new_charge(&app, &call, &expand, written).await
}

pub(super) async fn retrieve_charge(
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

pub(super) async fn update_charge(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(charge_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut form = read_form(query, body)?;
    form.reject_unknown(&UPDATE_CHARGE_PARAMETERS)?;
    let expand = form.expand(&CHARGE_EXPANDABLE)?;
    let command = form.update_charge()?;
    let account = &call.caller.account;
    let written = app
        .ledger
        .update_charge(account, &charge_id, command, call.request_meta());
    respond_with_charge(&app, &call, &expand, written).await
}

pub(super) async fn capture_charge(
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

pub(super) async fn list_charges(
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
        created,
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

pub(super) async fn charge_history(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(charge_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&["limit", "starting_after", "ending_before"])?;
    let limit = form.limit()?;
    let cursor = form.cursor()?;
    let entries = app
        .ledger
        .history_in_view(
            &call.caller.account,
            &charge_id,
            &objects::STRIPE_HISTORY_VIEW,
        )
        .await?;
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
            crate::server::stripe::error::ErrorType::InvalidRequestError,
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

pub(super) async fn charge_at_version(
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

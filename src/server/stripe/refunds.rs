//! `/v1/refunds` and a charge's refunds.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::response::Response;
use serde_json::Value;

use super::charge_object;
use super::error::ApiError;
use super::objects::ListObject;
use super::{
    REFUND_EXPANDABLE, REFUND_LIST_EXPANDABLE, missing_object_param, query_form, read_form,
    respond, to_json,
};
use crate::domain::{self, RefundCharge};
use crate::server::idempotency::{self, Written};
use crate::server::paging;
use crate::server::{App, Call};

/// A refund as JSON, with its charge expanded if asked.
pub(super) async fn refund_object(
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
        value["charge"] = to_json(&charge_object::charge_object(&charge))?;
    }
    Ok(value)
}

pub(super) async fn create_refund(
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

pub(super) async fn list_refunds(
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
    // Refunds are kept with the charge and listed newest first; a charge has few, so page in
    // memory. A cursor naming no refund of this charge gives an empty page.
    let refunds = charge_object::newest_first(&charge.refunds);
    let (window, has_more) = paging::page_in_memory(&refunds, &cursor, limit, |refund| &refund.id)
        .unwrap_or((&[], false));
    let mut data = Vec::new();
    for refund in window {
        data.push(refund_object(&app, account, refund, &expand).await?);
    }
    let list = ListObject::new(data, has_more, format!("/v1/charges/{charge_id}/refunds"));
    Ok(respond(&list, &call, false))
}

//! `/v1/refunds` (create, list, retrieve, update) and a charge's refunds.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::response::Response;
use serde_json::Value;

use super::charge_object;
use super::error::{ApiError, ErrorType};
use super::objects::ListObject;
use super::{
    REFUND_EXPANDABLE, REFUND_LIST_EXPANDABLE, missing_object_param, query_form, read_form,
    respond, to_json,
};
use crate::domain::{self, RefundCharge, UpdateRefund};
use crate::ledger::ListRefunds;
use crate::server::idempotency::{self, Written};
use crate::server::paging;
use crate::server::{App, Call};
use crate::store::PageCursor;
use axum::http::StatusCode;

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

/// `GET /v1/charges/{id}/refunds`.
pub(super) async fn list_charge_refunds(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(charge_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&["limit", "starting_after", "ending_before", "expand"])?;
    let expand = form.expand(&REFUND_LIST_EXPANDABLE)?;
    let query = ListRefunds {
        limit: form.limit()?,
        cursor: form.cursor()?,
        ..ListRefunds::default()
    };
    let url = format!("/v1/charges/{charge_id}/refunds");
    let list = refunds_of_charge(&app, &call, &charge_id, &query, &expand, url).await?;
    Ok(respond(&list, &call, false))
}

/// A charge's refunds, newest first, paged in memory: they are kept with the charge, and a
/// charge has few. A cursor naming no refund of this charge gives an empty page.
async fn refunds_of_charge(
    app: &App,
    call: &Call,
    charge_id: &str,
    query: &ListRefunds,
    expand: &[String],
    url: String,
) -> Result<ListObject<Value>, ApiError> {
    let account = &call.caller.account;
    let charge = app.ledger.get_charge(account, charge_id).await?;
    let refunds = charge_object::newest_first(&charge.refunds);
    // The cursor is found among all of the charge's refunds (it may lie outside `created`),
    // then the bounds pick from what lies beyond it, nearest first.
    let beyond =
        paging::page_in_memory(&refunds, &query.cursor, refunds.len(), |refund| &refund.id)
            .map_or(&[][..], |(beyond, _)| beyond);
    let mut matching: Vec<&domain::Refund> = beyond
        .iter()
        .filter(|refund| query.created.contains(refund.created))
        .collect();
    let toward_newer = matches!(query.cursor, PageCursor::EndingBefore(_));
    let has_more = matching.len() > query.limit;
    if toward_newer {
        matching.drain(..matching.len().saturating_sub(query.limit));
    } else {
        matching.truncate(query.limit);
    }
    let mut data = Vec::new();
    for refund in matching {
        data.push(refund_object(app, account, refund, expand).await?);
    }
    Ok(ListObject::new(data, has_more, url))
}

/// `GET /v1/refunds`: the account's refunds newest first, or one charge's with `charge`.
pub(super) async fn list_refunds(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&[
        "charge",
        "payment_intent",
        "created",
        "limit",
        "starting_after",
        "ending_before",
        "expand",
    ])?;
    let expand = form.expand(&REFUND_LIST_EXPANDABLE)?;
    let charge_id = form.optional_text("charge")?;
    // Every charge here is a card charge without a payment intent: any one named is unknown.
    let payment_intent = form.optional_text("payment_intent")?;
    let created = form.created_range()?;
    let query = ListRefunds {
        limit: form.limit()?,
        cursor: form.cursor()?,
        created,
    };
    if let Some(payment_intent) = payment_intent {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorType::InvalidRequestError,
            format!("No such payment_intent: '{payment_intent}'"),
            Some("payment_intent"),
            Some("resource_missing"),
        ));
    }
    let account = &call.caller.account;
    let list = match charge_id {
        Some(charge_id) => refunds_of_charge(
            &app,
            &call,
            &charge_id,
            &query,
            &expand,
            "/v1/refunds".into(),
        )
        .await
        .map_err(|error| missing_object_param(error, "id", "charge"))?,
        None => {
            let page = app.ledger.list_refunds(account, &query).await?;
            let mut data = Vec::with_capacity(page.data.len());
            for refund in &page.data {
                data.push(refund_object(&app, account, refund, &expand).await?);
            }
            ListObject::new(data, page.has_more, "/v1/refunds")
        }
    };
    Ok(respond(&list, &call, false))
}

/// `GET /v1/refunds/{id}`.
pub(super) async fn retrieve_refund(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(refund_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&["expand"])?;
    let expand = form.expand(&REFUND_EXPANDABLE)?;
    let account = &call.caller.account;
    let refund = app.ledger.get_refund(account, &refund_id).await?;
    let body = refund_object(&app, account, &refund, &expand).await?;
    Ok(respond(&body, &call, false))
}

/// `POST /v1/refunds/{id}`: only `metadata` can change, as on Stripe.
pub(super) async fn update_refund(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(refund_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut form = read_form(query, body)?;
    form.reject_unknown(&["metadata", "expand"])?;
    let expand = form.expand(&REFUND_EXPANDABLE)?;
    let command = UpdateRefund {
        metadata: form.metadata()?,
    };
    let account = &call.caller.account;
    let Written { value, replayed } = idempotency::write(
        &app,
        &call,
        app.ledger
            .update_refund(account, &refund_id, command, call.request_meta()),
    )
    .await?;
    let body = refund_object(&app, account, &value, &expand).await?;
    Ok(respond(&body, &call, replayed))
}

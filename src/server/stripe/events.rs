//! `/v1/events`: a stored event as Stripe's event object, listed and retrieved.

use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::error::ApiError;
use super::objects::ListObject;
use super::{objects, query_form, respond};
use crate::domain::Projection;
use crate::events::{EventPayload, RecordedEvent};
use crate::ledger::{Failure, Ledger, LedgerError};
use crate::server::{App, Call};

/// A stored event as Stripe's event object, as the caller's account sees it.
pub(super) async fn event_object(
    app: &App,
    call: &Call,
    event: &RecordedEvent,
    event_type: &str,
) -> Result<Value, ApiError> {
    Ok(render_event(
        &app.ledger,
        &call.caller.account,
        call.caller.livemode,
        event,
        event_type,
    )
    .await?)
}

/// A stored event as Stripe's event object: the object right after it, for updates the
/// attributes it changed with their previous values, and how many endpoints have yet to
/// acknowledge it. The same for API responses and webhook deliveries.
pub(crate) async fn render_event(
    ledger: &Ledger,
    account: &str,
    livemode: bool,
    event: &RecordedEvent,
    event_type: &str,
) -> Result<Value, LedgerError> {
    let (before, after) = ledger.states_around(account, event).await?;
    let pending_webhooks = ledger.pending_webhooks(account, event).await?;
    let (previous_json, object) = match &event.body.payload {
        // A refund's event shows the refund, not the charge that keeps it.
        EventPayload::RefundUpdated(updated) => (
            before
                .as_ref()
                .map(|before| refund_json(before, &updated.refund_id))
                .transpose()?,
            refund_json(&after, &updated.refund_id)?,
        ),
        _ => (
            before.as_ref().map(objects::projection_object),
            objects::projection_object(&after),
        ),
    };
    let previous_attributes = event_type
        .ends_with(".updated")
        .then(|| objects::previous_attributes(&previous_json.unwrap_or(Value::Null), &object));
    Ok(objects::event_object(
        event,
        event_type,
        livemode,
        object,
        previous_attributes,
        pending_webhooks,
    ))
}

/// A refund of a charge's state as Stripe's refund object. `apply` lets a refund event name
/// only a refund the charge has, so a missing one means a damaged log.
fn refund_json(state: &Projection, refund_id: &str) -> Result<Value, LedgerError> {
    let refund = match state {
        Projection::Charge(charge) => charge.refunds.iter().find(|refund| refund.id == refund_id),
        _ => None,
    };
    let refund = refund.ok_or_else(|| {
        Failure::LogDamaged(format!(
            "a refund event names {refund_id}, which its stream does not hold"
        ))
    })?;
    Ok(serde_json::to_value(refund).expect("a refund serializes to JSON"))
}

pub(super) async fn list_events(
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

pub(super) async fn retrieve_event(
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
            crate::server::stripe::error::ErrorType::InvalidRequestError,
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

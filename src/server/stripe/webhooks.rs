//! `/v1/webhook_endpoints` (create, retrieve, update, delete, list) and the outbox extensions on events: `GET /v1/events/{id}/deliveries`, `POST /v1/events/{id}/resend`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::error::ApiError;
use super::objects::ListObject;
use super::params::Form;
use super::{query_form, read_form, respond};
use crate::domain::stripe::webhooks::{ChaosUpdate, CreateWebhookEndpoint, UpdateWebhookEndpoint};
use crate::domain::{RequestError, WebhookEndpoint};
use crate::events::RecordedEvent;
use crate::server::delivery::objects::delivery_object;
use crate::server::form::{Param, Params};
use crate::server::idempotency::{self, Written};
use crate::server::paging::page_in_memory;
use crate::server::{App, Call};

/// An endpoint as Stripe shows it; the secret only when it was just created.
pub fn endpoint_object(endpoint: &WebhookEndpoint, with_secret: bool) -> Value {
    let mut object = json!({
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "api_version": endpoint.api_version,
        "application": null,
        "created": endpoint.created,
        "description": endpoint.description,
        "enabled_events": endpoint.enabled_events,
        "livemode": endpoint.livemode,
        "metadata": endpoint.metadata,
        "status": endpoint.status.name(),
        "url": endpoint.url,
    });
    if with_secret {
        object["secret"] = json!(endpoint.secret);
    }
    if !endpoint.chaos.is_quiet() {
        object["chaos"] = json!(endpoint.chaos);
    }
    object
}

/// `chaos[duplicate]`, `chaos[delay_ms]`, `chaos[out_of_order]`: the delivery-chaos extension.
fn chaos(form: &mut Form) -> Result<ChaosUpdate, ApiError> {
    let Some(param) = form.take("chaos") else {
        return Ok(ChaosUpdate::default());
    };
    let Param::Hash(settings) = param else {
        return Err(ApiError::invalid_request(
            "Invalid chaos: expected chaos[duplicate], chaos[delay_ms] or chaos[out_of_order]",
            Some("chaos"),
            Some("parameter_invalid_hash"),
        ));
    };
    let prefixed: Params = settings
        .into_iter()
        .map(|(name, value)| (format!("chaos[{name}]"), value))
        .collect();
    let mut settings = Form::new(prefixed);
    settings.reject_unknown(&["chaos[duplicate]", "chaos[delay_ms]", "chaos[out_of_order]"])?;
    let delay_ms = match settings.integer("chaos[delay_ms]")? {
        Some(delay) if delay < 0 => {
            return Err(RequestError::InvalidInteger {
                param: "chaos[delay_ms]".into(),
                value: delay.to_string(),
            }
            .into());
        }
        other => other.map(|delay| delay as u64),
    };
    Ok(ChaosUpdate {
        duplicate: settings.boolean("chaos[duplicate]")?,
        delay_ms,
        out_of_order: settings.boolean("chaos[out_of_order]")?,
    })
}

pub(super) async fn create_endpoint(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut form = read_form(query, body)?;
    form.reject_unknown(&[
        "url",
        "enabled_events",
        "description",
        "metadata",
        "api_version",
        "connect",
        "expand",
        "chaos",
    ])?;
    form.expand(&[])?;
    if form.boolean("connect")? == Some(true) {
        return Err(ApiError::invalid_request(
            "Connect webhook endpoints are not supported by this ledger; create the endpoint without connect=true.",
            Some("connect"),
            None,
        ));
    }
    let command = CreateWebhookEndpoint {
        url: form.optional_text("url")?,
        enabled_events: form.string_array("enabled_events")?,
        description: form.optional_text("description")?,
        metadata: form.metadata()?,
        api_version: form.optional_text("api_version")?,
        chaos: chaos(&mut form)?,
    };
    let Written { value, replayed } = idempotency::write(
        &app,
        &call,
        app.ledger
            .create_webhook_endpoint(&call.caller.account, command, call.request_meta()),
    )
    .await?;
    Ok(respond(&endpoint_object(&value, true), &call, replayed))
}

pub(super) async fn retrieve_endpoint(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(endpoint_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&["expand"])?;
    form.expand(&[])?;
    let endpoints = app.ledger.webhook_endpoints(&call.caller.account).await?;
    let endpoint = crate::domain::stripe::webhooks::existing(&endpoints, &endpoint_id)?;
    Ok(respond(&endpoint_object(endpoint, false), &call, false))
}

pub(super) async fn update_endpoint(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(endpoint_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut form = read_form(query, body)?;
    form.reject_unknown(&[
        "url",
        "enabled_events",
        "description",
        "metadata",
        "disabled",
        "expand",
        "chaos",
    ])?;
    form.expand(&[])?;
    let enabled_events = form
        .take("enabled_events")
        .map(|param| {
            let mut single = Form::new(Params::from_iter([("enabled_events".to_string(), param)]));
            single.string_array("enabled_events")
        })
        .transpose()?;
    let command = UpdateWebhookEndpoint {
        url: form.optional_text("url")?,
        enabled_events,
        description: form.text("description")?,
        metadata: form.metadata()?,
        disabled: form.boolean("disabled")?,
        chaos: chaos(&mut form)?,
    };
    let Written { value, replayed } = idempotency::write(
        &app,
        &call,
        app.ledger.update_webhook_endpoint(
            &call.caller.account,
            &endpoint_id,
            command,
            call.request_meta(),
        ),
    )
    .await?;
    Ok(respond(&endpoint_object(&value, false), &call, replayed))
}

pub(super) async fn delete_endpoint(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(endpoint_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    query_form(query)?.reject_unknown(&[])?;
    let Written { value, replayed } = idempotency::write(
        &app,
        &call,
        app.ledger
            .delete_webhook_endpoint(&call.caller.account, &endpoint_id, call.request_meta()),
    )
    .await?;
    let body = json!({"id": value.id, "object": "webhook_endpoint", "deleted": true});
    Ok(respond(&body, &call, replayed))
}

pub(super) async fn list_endpoints(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut form = query_form(query)?;
    form.reject_unknown(&["limit", "starting_after", "ending_before", "expand"])?;
    form.expand(&[])?;
    let limit = form.limit()?;
    let cursor = form.cursor()?;
    let mut endpoints = app
        .ledger
        .webhook_endpoints(&call.caller.account)
        .await?
        .endpoints;
    // Newest first, as Stripe lists.
    endpoints.reverse();
    let (page, has_more) = page_in_memory(&endpoints, &cursor, limit, |endpoint| &endpoint.id)
        .map_err(|id| RequestError::NoSuchWebhookEndpoint { id: id.to_string() })?;
    let data = page
        .iter()
        .map(|endpoint| endpoint_object(endpoint, false))
        .collect();
    let list = ListObject::new(data, has_more, "/v1/webhook_endpoints");
    Ok(respond(&list, &call, false))
}

async fn stripe_event(app: &App, call: &Call, event_id: &str) -> Result<RecordedEvent, ApiError> {
    let missing = || RequestError::NoSuchEvent {
        id: event_id.to_string(),
    };
    let event = app
        .ledger
        .event(&call.caller.account, event_id)
        .await?
        .ok_or_else(missing)?;
    super::objects::stripe_event_type(&event.body.payload).ok_or_else(missing)?;
    Ok(event)
}

/// `GET /v1/events/{id}/deliveries` (extension): every delivery of the event and its attempts.
pub(super) async fn event_deliveries(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(event_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    query_form(query)?.reject_unknown(&[])?;
    let event = stripe_event(&app, &call, &event_id).await?;
    let deliveries = app
        .ledger
        .event_deliveries(&call.caller.account, &event)
        .await?;
    let data = deliveries.iter().map(delivery_object).collect();
    let list = ListObject::new(data, false, format!("/v1/events/{event_id}/deliveries"));
    Ok(respond(&list, &call, false))
}

/// `POST /v1/events/{id}/resend` (extension): deliver the event again to the endpoints that
/// receive its type now; answers with the new deliveries.
pub(super) async fn resend_event(
    State(app): State<App>,
    Extension(call): Extension<Call>,
    Path(event_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    read_form(query, body)?.reject_unknown(&[])?;
    let event = stripe_event(&app, &call, &event_id).await?;
    let deliveries = app
        .ledger
        .resend_event(&call.caller.account, &event)
        .await?;
    let data = deliveries.iter().map(delivery_object).collect();
    let list = ListObject::new(data, false, format!("/v1/events/{event_id}/deliveries"));
    Ok(respond(&list, &call, false))
}

//! Stripe's webhook endpoint rules: create, update and delete an endpoint against the account's endpoints. Pure.

use crate::domain::events::EventPayload;
use crate::domain::stripe::commands::{MetadataEdit, fold_metadata_edits};
use crate::domain::stripe::error::RequestError;
use crate::domain::stripe::validation::{
    DEFAULT_MAX_CHARS, check_length, check_metadata_edits, check_metadata_size, empty_as_none,
};
use crate::domain::values::Metadata;
use crate::domain::webhooks::{
    DeliveryChaos, EndpointStatus, MAX_WEBHOOK_ENDPOINTS, WebhookEndpoint, WebhookEndpointDeleted,
    WebhookEndpointRecorded, WebhookEndpoints,
};

/// The longest URL an endpoint may have.
pub const URL_MAX_CHARS: usize = 2048;

/// The longest added delay an endpoint's chaos may ask for (one minute).
pub const CHAOS_DELAY_MAX_MS: u64 = 60_000;

/// Create a webhook endpoint (`POST /v1/webhook_endpoints`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CreateWebhookEndpoint {
    pub url: Option<String>,
    pub enabled_events: Vec<String>,
    pub description: Option<String>,
    pub metadata: Vec<MetadataEdit>,
    pub api_version: Option<String>,
    pub chaos: ChaosUpdate,
}

/// Update a webhook endpoint (`POST /v1/webhook_endpoints/{id}`); `None` leaves a field as is.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct UpdateWebhookEndpoint {
    pub url: Option<String>,
    pub enabled_events: Option<Vec<String>>,
    pub description: Option<String>,
    pub metadata: Vec<MetadataEdit>,
    pub disabled: Option<bool>,
    pub chaos: ChaosUpdate,
}

/// The chaos extension's parameters (`chaos[duplicate]`, `chaos[delay_ms]`,
/// `chaos[out_of_order]`); `None` leaves a setting as is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChaosUpdate {
    pub duplicate: Option<bool>,
    pub delay_ms: Option<u64>,
    pub out_of_order: Option<bool>,
}

impl ChaosUpdate {
    fn applied_to(self, chaos: DeliveryChaos) -> Result<DeliveryChaos, RequestError> {
        let delay_ms = self.delay_ms.unwrap_or(chaos.delay_ms);
        if delay_ms > CHAOS_DELAY_MAX_MS {
            return Err(RequestError::InvalidInteger {
                param: "chaos[delay_ms]".into(),
                value: format!("{delay_ms} (at most {CHAOS_DELAY_MAX_MS})"),
            });
        }
        Ok(DeliveryChaos {
            duplicate: self.duplicate.unwrap_or(chaos.duplicate),
            delay_ms,
            out_of_order: self.out_of_order.unwrap_or(chaos.out_of_order),
        })
    }
}

/// What the shell draws for a new endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointContext {
    pub now_unix: i64,
    pub livemode: bool,
    /// `we_…`.
    pub endpoint_id: String,
    /// `whsec_…`.
    pub secret: String,
}

/// Decide an endpoint creation.
pub fn create_endpoint(
    endpoints: &WebhookEndpoints,
    command: &CreateWebhookEndpoint,
    context: &EndpointContext,
) -> Result<EventPayload, RequestError> {
    let url = command.url.as_deref().ok_or(RequestError::MissingParam {
        param: "url".into(),
    })?;
    check_url(url)?;
    if command.enabled_events.is_empty() {
        return Err(RequestError::MissingParam {
            param: "enabled_events".into(),
        });
    }
    check_enabled_events(&command.enabled_events)?;
    if endpoints.endpoints.len() >= MAX_WEBHOOK_ENDPOINTS {
        return Err(RequestError::TooManyWebhookEndpoints {
            limit: MAX_WEBHOOK_ENDPOINTS,
        });
    }
    if let Some(description) = &command.description {
        check_length("description", description, DEFAULT_MAX_CHARS)?;
    }
    if let Some(api_version) = &command.api_version {
        check_length("api_version", api_version, 32)?;
    }
    check_metadata_edits(&command.metadata)?;
    let metadata = fold_metadata_edits(&Metadata::new(), &command.metadata);
    check_metadata_size(&metadata)?;
    let endpoint = WebhookEndpoint {
        id: context.endpoint_id.clone(),
        url: url.to_string(),
        enabled_events: command.enabled_events.clone(),
        description: command.description.as_deref().and_then(empty_as_none),
        metadata,
        secret: context.secret.clone(),
        status: EndpointStatus::Enabled,
        api_version: command.api_version.as_deref().and_then(empty_as_none),
        livemode: context.livemode,
        created: context.now_unix,
        chaos: command.chaos.applied_to(DeliveryChaos::default())?,
    };
    Ok(EventPayload::WebhookEndpointCreated(
        WebhookEndpointRecorded { endpoint },
    ))
}

/// Decide an endpoint update; `None` when it changes nothing.
pub fn update_endpoint(
    endpoints: &WebhookEndpoints,
    endpoint_id: &str,
    command: &UpdateWebhookEndpoint,
) -> Result<Option<EventPayload>, RequestError> {
    let current = existing(endpoints, endpoint_id)?;
    let mut endpoint = current.clone();
    if let Some(url) = &command.url {
        check_url(url)?;
        endpoint.url = url.clone();
    }
    if let Some(enabled_events) = &command.enabled_events {
        if enabled_events.is_empty() {
            return Err(RequestError::MissingParam {
                param: "enabled_events".into(),
            });
        }
        check_enabled_events(enabled_events)?;
        endpoint.enabled_events = enabled_events.clone();
    }
    if let Some(description) = &command.description {
        check_length("description", description, DEFAULT_MAX_CHARS)?;
        endpoint.description = empty_as_none(description);
    }
    check_metadata_edits(&command.metadata)?;
    endpoint.metadata = fold_metadata_edits(&endpoint.metadata, &command.metadata);
    check_metadata_size(&endpoint.metadata)?;
    if let Some(disabled) = command.disabled {
        endpoint.status = if disabled {
            EndpointStatus::Disabled
        } else {
            EndpointStatus::Enabled
        };
    }
    endpoint.chaos = command.chaos.applied_to(endpoint.chaos)?;
    if endpoint == *current {
        return Ok(None);
    }
    Ok(Some(EventPayload::WebhookEndpointUpdated(
        WebhookEndpointRecorded { endpoint },
    )))
}

/// Decide an endpoint deletion.
pub fn delete_endpoint(
    endpoints: &WebhookEndpoints,
    endpoint_id: &str,
) -> Result<EventPayload, RequestError> {
    existing(endpoints, endpoint_id)?;
    Ok(EventPayload::WebhookEndpointDeleted(
        WebhookEndpointDeleted {
            endpoint_id: endpoint_id.to_string(),
        },
    ))
}

/// The endpoint, or Stripe's 404 for it.
pub fn existing<'a>(
    endpoints: &'a WebhookEndpoints,
    endpoint_id: &str,
) -> Result<&'a WebhookEndpoint, RequestError> {
    endpoints
        .get(endpoint_id)
        .ok_or_else(|| RequestError::NoSuchWebhookEndpoint {
            id: endpoint_id.to_string(),
        })
}

/// An endpoint URL: `http://` or `https://`, a host, no spaces. A local server allows plain
/// HTTP (Stripe requires HTTPS in live mode).
fn check_url(url: &str) -> Result<(), RequestError> {
    check_length("url", url, URL_MAX_CHARS)?;
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
    let valid = host.is_some_and(|host| !host.is_empty() && !host.starts_with(':'))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(RequestError::InvalidUrl {
            param: "url".into(),
            value: url.to_string(),
        });
    }
    Ok(())
}

/// `*`, or names shaped like Stripe's event types (`charge.updated`). Names this ledger never
/// emits are accepted (Stripe's list is long) and simply never match.
fn check_enabled_events(enabled_events: &[String]) -> Result<(), RequestError> {
    for (index, name) in enabled_events.iter().enumerate() {
        let shaped = name == "*"
            || (name.contains('.')
                && name.split('.').all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                }));
        if !shaped {
            return Err(RequestError::InvalidEnum {
                param: format!("enabled_events[{index}]"),
                value: name.clone(),
                allowed: "*, or an event type such as charge.updated".into(),
            });
        }
    }
    Ok(())
}

/// The Stripe event type of a stored event; `None` for events Stripe has no type for (an
/// account's own policy changes).
pub fn stripe_event_type(payload: &EventPayload) -> Option<&'static str> {
    Some(match payload {
        // A card charge that is authorized (captured or not) is `charge.succeeded` on Stripe.
        EventPayload::ChargeCreated(_) => "charge.succeeded",
        EventPayload::ChargeFailed(_) => "charge.failed",
        EventPayload::ChargeUpdated(_) => "charge.updated",
        EventPayload::ChargeCaptured(_) => "charge.captured",
        EventPayload::ChargeRefunded(_) => "charge.refunded",
        EventPayload::RefundUpdated(_) => "refund.updated",
        EventPayload::CustomerCreated(_) => "customer.created",
        // Omise-dialect events (`charge.reversed`, Omise customer updates, the vault's token
        // events) never occur in a Stripe account.
        EventPayload::AccountPolicySet(_)
        | EventPayload::ChargeReversed(_)
        | EventPayload::ChargeExpired(_)
        | EventPayload::CustomerUpdated(_)
        | EventPayload::TokenCreated(_)
        | EventPayload::TokenUsed(_)
        | EventPayload::TokenAttached(_)
        | EventPayload::ReceiptSent(_)
        | EventPayload::WebhookEndpointCreated(_)
        | EventPayload::WebhookEndpointUpdated(_)
        | EventPayload::WebhookEndpointDeleted(_) => return None,
    })
}

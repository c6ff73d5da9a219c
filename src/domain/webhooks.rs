//! Webhook endpoints as the ledger keeps them, the receipt a charge was sent, and which side effects an event has. Pure.
//!
//! An account's endpoints are one stream (`WEBHOOK_ENDPOINTS_STREAM`) whose projection is the
//! whole set, so a write can see at once which endpoints an event goes to. The signing secret
//! is part of the endpoint: a delivery made after a restart must be signed with it.

use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};

use crate::domain::charge::{ChargeState, Origin};
use crate::domain::events::{EventPayload, FieldChange};
use crate::domain::stripe::webhooks::stripe_event_type;
use crate::domain::values::Metadata;

/// Whether an endpoint receives events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    Enabled,
    Disabled,
}

impl EndpointStatus {
    pub fn name(self) -> &'static str {
        match self {
            EndpointStatus::Enabled => "enabled",
            EndpointStatus::Disabled => "disabled",
        }
    }
}

/// Faults an endpoint asks its deliveries to have, for testing receivers (an extension:
/// Stripe's sandbox has no such thing). Every attempt they shape is recorded as such.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryChaos {
    /// Each successful delivery is sent a second time at once.
    #[serde(default)]
    pub duplicate: bool,
    /// Every attempt waits this long before it is sent.
    #[serde(default)]
    pub delay_ms: u64,
    /// Deliveries are held for a window and sent newest event first.
    #[serde(default)]
    pub out_of_order: bool,
}

impl DeliveryChaos {
    pub fn is_quiet(&self) -> bool {
        *self == DeliveryChaos::default()
    }
}

/// A webhook endpoint of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    /// `we_…`.
    pub id: String,
    pub url: String,
    /// Event types it receives; `*` is all of them.
    pub enabled_events: Vec<String>,
    pub description: Option<String>,
    pub metadata: Metadata,
    /// `whsec_…`: the HMAC key of its signatures, shown once at creation.
    pub secret: String,
    pub status: EndpointStatus,
    pub api_version: Option<String>,
    pub livemode: bool,
    /// Unix seconds.
    pub created: i64,
    #[serde(default, skip_serializing_if = "DeliveryChaos::is_quiet")]
    pub chaos: DeliveryChaos,
}

impl WebhookEndpoint {
    /// Whether an event of this type goes to the endpoint now.
    pub fn receives(&self, event_type: &str) -> bool {
        self.status == EndpointStatus::Enabled
            && self
                .enabled_events
                .iter()
                .any(|enabled| enabled == "*" || enabled == event_type)
    }
}

/// An account's webhook endpoints, oldest first; a deleted endpoint is gone from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoints {
    pub endpoints: Vec<WebhookEndpoint>,
}

impl WebhookEndpoints {
    pub fn get(&self, endpoint_id: &str) -> Option<&WebhookEndpoint> {
        self.endpoints
            .iter()
            .find(|endpoint| endpoint.id == endpoint_id)
    }
}

/// The stream that holds an account's webhook endpoints.
pub const WEBHOOK_ENDPOINTS_STREAM: &str = "webhook_endpoints";

/// The most endpoints an account may have (Stripe's Dashboard limit).
pub const MAX_WEBHOOK_ENDPOINTS: usize = 16;

/// An endpoint as created or as it stands after an update (the whole endpoint, so an audit
/// reader needs no earlier event to know it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpointRecorded {
    pub endpoint: WebhookEndpoint,
}

/// An endpoint was deleted: it receives nothing more, and its pending deliveries stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpointDeleted {
    pub endpoint_id: String,
}

/// A receipt for a charge was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptSent {
    /// The address it went to.
    pub email: String,
    pub receipt_number: String,
    pub receipt_url: String,
    /// The outbox delivery that sent it.
    pub delivery_id: String,
    /// Whether it went over SMTP (`smtp`) or was written as a file (`file`).
    pub transport: String,
}

/// Where an event's side effect goes. Decided when the event is written, so a delivery goes to
/// the endpoints that existed then, as on Stripe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Destination {
    /// A Stripe webhook endpoint of the account.
    Webhook { endpoint_id: String },
    /// A receipt email for the charge.
    Receipt { email: String },
    /// The Omise webhook URL the server was given (`--omise-webhook-url`).
    OmiseWebhook { url: String },
}

impl Destination {
    pub fn describe(&self) -> String {
        match self {
            Destination::Webhook { endpoint_id } => format!("webhook endpoint {endpoint_id}"),
            Destination::Receipt { email } => format!("receipt to {email}"),
            Destination::OmiseWebhook { url } => format!("Omise webhook {url}"),
        }
    }
}

/// What the server's configuration adds to the account's endpoints when deciding side effects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SideEffectRules {
    /// Whether receipts are sent (with SMTP or as files); off, no receipt is queued.
    pub receipts: bool,
    /// Where Omise accounts' charge events go.
    pub omise_webhook_url: Option<String>,
}

impl SideEffectRules {
    /// Whether a charge event can have a side effect other than a webhook.
    pub fn is_active(&self) -> bool {
        self.receipts || self.omise_webhook_url.is_some()
    }
}

/// The Omise event keys that go to the Omise webhook: the charge's own (create, update,
/// capture, reverse).
fn omise_webhook_key(payload: &EventPayload) -> Option<&'static str> {
    crate::domain::omise::event_key(payload).filter(|key| key.starts_with("charge."))
}

/// A charge around one event: before it (`None` for its creation) and after.
#[derive(Debug, Clone, Copy)]
pub struct ChargeTransition<'a> {
    pub before: Option<&'a ChargeState>,
    pub after: &'a ChargeState,
}

/// How long the delivery worker holds an out-of-order endpoint's first deliveries, so that
/// those of several events can be sent newest first.
pub const OUT_OF_ORDER_HOLD_MS: u64 = 1_000;

/// The side effects of one event: `charge` is the charge around it (for a charge event),
/// `endpoints` the account's webhook endpoints.
///
/// Webhooks go to every enabled endpoint whose `enabled_events` has the event's Stripe type
/// (events of Stripe-dialect objects only). A receipt goes out when a charge becomes paid while
/// it has a receipt email, or when a paid charge's receipt email is set to a new address
/// (Stripe: "If this field is updated, then a new email receipt will be sent to the updated
/// address"); never while it is only authorized. The Omise webhook gets an Omise charge's
/// create, update, capture and reverse events.
pub fn side_effects(
    payload: &EventPayload,
    charge: Option<ChargeTransition<'_>>,
    endpoints: &WebhookEndpoints,
    rules: &SideEffectRules,
) -> Vec<Destination> {
    let mut destinations = event_destinations(
        payload,
        charge.map(|charge| charge.after.origin()),
        endpoints,
        rules,
    );
    if rules.receipts
        && let Some(charge) = charge
        && let Some(email) = receipt_due(payload, charge.before, charge.after)
    {
        destinations.push(Destination::Receipt { email });
    }
    destinations
}

/// The webhooks an event goes to: the endpoints receiving its Stripe type (events of Stripe-
/// dialect objects: `origin` is the charge's, `None` for other objects), and the Omise webhook for
/// an Omise charge's own events. Used when the event is written and when it is resent.
pub fn event_destinations(
    payload: &EventPayload,
    origin: Option<Origin>,
    endpoints: &WebhookEndpoints,
    rules: &SideEffectRules,
) -> Vec<Destination> {
    let mut destinations = Vec::new();
    if origin != Some(Origin::Omise)
        && let Some(event_type) = stripe_event_type(payload)
    {
        destinations.extend(
            endpoints
                .endpoints
                .iter()
                .filter(|endpoint| endpoint.receives(event_type))
                .map(|endpoint| Destination::Webhook {
                    endpoint_id: endpoint.id.clone(),
                }),
        );
    }
    if origin == Some(Origin::Omise)
        && omise_webhook_key(payload).is_some()
        && let Some(url) = &rules.omise_webhook_url
    {
        destinations.push(Destination::OmiseWebhook { url: url.clone() });
    }
    destinations
}

/// The address a receipt is due to after this event, if one is.
fn receipt_due(
    payload: &EventPayload,
    before: Option<&ChargeState>,
    after: &ChargeState,
) -> Option<String> {
    let email = after.receipt_email.clone()?;
    if !after.is_captured() {
        return None;
    }
    let was_paid = before.is_some_and(ChargeState::is_captured);
    if !was_paid {
        // It became paid now (captured at creation, or captured by this event).
        return Some(email);
    }
    let changes: &[FieldChange] = match payload {
        EventPayload::ChargeUpdated(updated) => &updated.changes,
        EventPayload::ChargeCaptured(captured) => &captured.changes,
        _ => return None,
    };
    changes
        .iter()
        .any(|change| {
            matches!(
                change,
                FieldChange::ReceiptEmail {
                    current: Some(_),
                    ..
                }
            )
        })
        .then_some(email)
}

/// The receipt number of a charge: derived from its account and id, so every retry of a
/// receipt (and every later receipt of the charge) names the same number. `NNNN-NNNN`.
pub fn receipt_number(account: &str, charge_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(account.as_bytes());
    hasher.update([0]);
    hasher.update(charge_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let value = u64::from_be_bytes(first) % 100_000_000;
    format!("{:04}-{:04}", value / 10_000, value % 10_000)
}

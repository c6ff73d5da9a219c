//! Deliveries as the audit extension shows them (`GET /v1/events/{id}/deliveries`, `chargeledger deliveries --json`). Pure.

use serde_json::{Value, json};

use crate::domain::Destination;
use crate::store::{Attempt, Delivery, DeliveryState};

/// One delivery and every attempt made of it. Times are Unix milliseconds (`*_ms`).
pub fn delivery_object(delivery: &Delivery) -> Value {
    let destination = match &delivery.destination {
        Destination::Webhook { endpoint_id } => {
            json!({"type": "webhook_endpoint", "webhook_endpoint": endpoint_id})
        }
        Destination::Receipt { email } => json!({"type": "receipt", "email": email}),
        Destination::OmiseWebhook { url } => json!({"type": "omise_webhook", "url": url}),
    };
    let (next_attempt_at_ms, settled_at_ms, reason) = match &delivery.state {
        DeliveryState::Pending { next_attempt_at_ms } => (Some(*next_attempt_at_ms), None, None),
        DeliveryState::Delivered { at_ms } => (None, Some(*at_ms), None),
        DeliveryState::Failed { at_ms, reason } | DeliveryState::Cancelled { at_ms, reason } => {
            (None, Some(*at_ms), Some(reason.clone()))
        }
    };
    json!({
        "id": delivery.id(),
        "object": "delivery",
        "event": delivery.event_id,
        "destination": destination,
        "reason": delivery.reason,
        "status": delivery.state.name(),
        "created_ms": delivery.created_at_ms,
        "next_attempt_at_ms": next_attempt_at_ms,
        "settled_at_ms": settled_at_ms,
        "stopped_because": reason,
        "attempts": delivery.attempts.iter().map(attempt_object).collect::<Vec<_>>(),
    })
}

fn attempt_object(attempt: &Attempt) -> Value {
    json!({
        "at_ms": attempt.at_ms,
        "succeeded": attempt.succeeded,
        "status": attempt.status,
        "latency_ms": attempt.latency_ms,
        "response": attempt.detail,
        "chaos": attempt.chaos,
    })
}

/// One line per delivery for a terminal: id, event, destination, status, attempts, last result.
pub fn delivery_line(delivery: &Delivery) -> String {
    let last = delivery.attempts.last().map_or_else(
        || "no attempt yet".to_string(),
        |attempt| {
            let status = attempt
                .status
                .map_or_else(|| "-".to_string(), |status| status.to_string());
            format!(
                "last: {status} in {} ms, {}",
                attempt.latency_ms, attempt.detail
            )
        },
    );
    format!(
        "{} {} {} {} {} {}",
        delivery.id(),
        delivery.event_id,
        delivery.destination.describe(),
        delivery.state.name(),
        delivery.attempts.len(),
        last.replace('\n', " ")
    )
}

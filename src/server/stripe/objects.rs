//! Stripe's wire objects built from the ledger's records: list envelopes, events with `previous_attributes`, and the audit-history extension.
//!
//! These are HTTP shapes, deliberately separate from the stored event schema (`events`): the
//! wire may follow Stripe's changes while stored events stay a fixed compatibility boundary.
//! Everything here is pure.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::charge_object;
use crate::audit::{HistoryEntry, HistoryView};
use crate::domain::Projection;
use crate::events::RecordedEvent;
use crate::json_diff;

/// The API version events say they were rendered with.
pub const API_VERSION: &str = "2026-07-29.dahlia";

/// `{"object": "list", "data": […], "has_more": …, "url": …}`.
#[derive(Debug, Serialize)]
pub struct ListObject<T> {
    object: &'static str,
    pub data: Vec<T>,
    pub has_more: bool,
    pub url: String,
}

impl<T> ListObject<T> {
    pub fn new(data: Vec<T>, has_more: bool, url: impl Into<String>) -> Self {
        ListObject {
            object: "list",
            data,
            has_more,
            url: url.into(),
        }
    }
}

pub use crate::domain::stripe::webhooks::stripe_event_type;

/// Whether an event type matches a `type` filter, which may end in `*` (`charge.*`).
pub fn type_matches(event_type: &str, filter: &str) -> bool {
    match filter.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => event_type == filter,
    }
}

/// A Stripe event object. `previous_attributes` is given for `*.updated` events only.
pub fn event_object(
    event: &RecordedEvent,
    event_type: &str,
    livemode: bool,
    object: Value,
    previous_attributes: Option<Value>,
    pending_webhooks: usize,
) -> Value {
    let mut data = Map::new();
    data.insert("object".into(), object);
    if let Some(previous) = previous_attributes {
        data.insert("previous_attributes".into(), previous);
    }
    json!({
        "id": event.body.event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": event.body.recorded_at.unix_timestamp(),
        "data": data,
        "livemode": livemode,
        "pending_webhooks": pending_webhooks,
        "request": {
            "id": event.body.request.request_id,
            "idempotency_key": event.body.request.idempotency_key,
        },
        "type": event_type,
    })
}

/// For each top-level attribute that differs, its value before. A changed hash (`metadata`,
/// `shipping`) gives the previous value of its changed keys only, with `null` for keys that
/// did not exist before.
pub fn previous_attributes(before: &Value, after: &Value) -> Value {
    let mut previous = Map::new();
    let opened = |_: &str, old: &Value, new: &Value| old.is_object() && new.is_object();
    for difference in json_diff::differences(before, after, opened) {
        match difference.key {
            None => {
                previous.insert(difference.field, difference.previous);
            }
            Some(key) => {
                let changed = previous
                    .entry(difference.field)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(changed) = changed {
                    changed.insert(key, difference.previous);
                }
            }
        }
    }
    Value::Object(previous)
}

/// The object a Stripe event or history shows: a charge as Stripe's charge object, a customer
/// as stored (its stored form is Stripe's customer object).
pub fn projection_object(projection: &Projection) -> Value {
    match projection {
        Projection::Charge(charge) => serde_json::to_value(charge_object::charge_object(charge))
            .expect("Stripe's charge object serializes to JSON"),
        other => other.to_json(),
    }
}

/// A Stripe charge's history shows Stripe's attribute names (`amount_refunded`, `metadata[key]`).
pub const STRIPE_HISTORY_VIEW: HistoryView = HistoryView {
    render: projection_object,
    keyed_fields: &["metadata"],
    requested_on_creation: |field| {
        const REQUESTED: [&str; 13] = [
            "amount",
            "captured",
            "currency",
            "customer",
            "description",
            "payment_method",
            "receipt_email",
            "shipping",
            "statement_descriptor",
            "statement_descriptor_suffix",
            "transfer_group",
            "email",
            "name",
        ];
        REQUESTED.contains(&field) || field.starts_with("metadata[")
    },
};

/// One version of a charge in `GET /v1/charges/{id}/history`.
pub fn history_entry_object(charge_id: &str, entry: &HistoryEntry) -> Value {
    let changes: Vec<Value> = entry
        .changes
        .iter()
        .map(|change| {
            json!({
                "field": change.field,
                "previous": change.previous,
                "current": change.current,
            })
        })
        .collect();
    let recorded_at = entry
        .recorded_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({
        "id": entry.event_id,
        "object": "charge_history_entry",
        "charge": charge_id,
        "version": entry.version,
        "created": entry.recorded_at.unix_timestamp(),
        "recorded_at": recorded_at,
        "event": entry.event_id,
        "type": entry.event_type,
        "request": {
            "id": entry.request.request_id,
            "idempotency_key": entry.request.idempotency_key,
        },
        "actor": entry.request.actor,
        "source": entry.request.source,
        "changes": changes,
        "url": format!("/v1/charges/{charge_id}/history/{}", entry.version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_attributes_name_changed_keys_only() {
        let before = json!({
            "description": "a",
            "metadata": {"kept": "1", "changed": "old", "removed": "x"},
            "amount": 100,
        });
        let after = json!({
            "description": "b",
            "metadata": {"kept": "1", "changed": "new", "added": "y"},
            "amount": 100,
        });
        assert_eq!(
            previous_attributes(&before, &after),
            json!({
                "description": "a",
                "metadata": {"changed": "old", "removed": "x", "added": null},
            })
        );
    }

    #[test]
    fn a_hash_set_for_the_first_time_was_null() {
        let before = json!({"shipping": null});
        let after = json!({"shipping": {"name": "Jenny"}});
        assert_eq!(
            previous_attributes(&before, &after),
            json!({"shipping": null})
        );
    }

    #[test]
    fn wildcard_types() {
        assert!(type_matches("charge.updated", "charge.*"));
        assert!(!type_matches("customer.created", "charge.*"));
        assert!(type_matches("charge.updated", "charge.updated"));
    }
}

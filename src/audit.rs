//! The audit trail: one entry per event of a charge, with who asked, when, and each field's old → new value.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::domain::{FoldError, Projection, apply};
use crate::events::{RecordedEvent, RequestMeta};

/// One field that an event changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDiff {
    /// The charge attribute (`description`), or one metadata key (`metadata[order_id]`).
    pub field: String,
    pub previous: Value,
    pub current: Value,
}

/// One version of a charge in its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub version: u64,
    pub sequence: u64,
    pub event_id: String,
    pub event_type: String,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub request: RequestMeta,
    pub changes: Vec<FieldDiff>,
}

/// Fold a stream's events one at a time, diffing the state before and after each.
pub fn history(events: &[RecordedEvent]) -> Result<Vec<HistoryEntry>, FoldError> {
    let mut state: Option<Projection> = None;
    let mut before = Value::Null;
    let mut entries = Vec::with_capacity(events.len());
    for event in events {
        let is_creation = state.is_none();
        let next = apply(state, &event.body.payload)?;
        let after = projection_value(&next);
        let mut changes = diff_objects(&before, &after);
        if is_creation {
            // Derived and constant fields (ids, outcome, billing details…) would drown what the
            // request actually said.
            changes.retain(|change| is_requested_on_creation(&change.field));
        }
        entries.push(HistoryEntry {
            version: event.body.stream_version,
            sequence: event.body.sequence,
            event_id: event.body.event_id.clone(),
            event_type: event.body.payload.event_type().to_string(),
            recorded_at: event.body.recorded_at,
            request: event.body.request.clone(),
            changes,
        });
        before = after;
        state = Some(next);
    }
    Ok(entries)
}

/// The fields a creation request chooses, which are what its history entry shows.
fn is_requested_on_creation(field: &str) -> bool {
    const REQUESTED: [&str; 14] = [
        "amount",
        "captured",
        "currency",
        "customer",
        "description",
        "email",
        "name",
        "payment_method",
        "receipt_email",
        "shipping",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "transfer_group",
        "freeze_after_capture",
    ];
    REQUESTED.contains(&field) || field.starts_with("metadata[")
}

fn projection_value(projection: &Projection) -> Value {
    projection.to_json()
}

/// Top-level differences between two JSON objects; `metadata` and `omise` are diffed key by key, and the
/// embedded refund list is summarized by its count (its amounts show in `amount_refunded`).
pub fn diff_objects(before: &Value, after: &Value) -> Vec<FieldDiff> {
    let empty = serde_json::Map::new();
    let before = before.as_object().unwrap_or(&empty);
    let after = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut diffs = Vec::new();
    for key in keys {
        let previous = before.get(key).cloned().unwrap_or(Value::Null);
        let current = after.get(key).cloned().unwrap_or(Value::Null);
        if previous == current {
            continue;
        }
        match key.as_str() {
            // Metadata, and the Omise-only part of a charge (`omise[reversed_at]`), change a
            // key at a time: showing whole objects would bury the change.
            "metadata" | "omise" => {
                for nested in diff_objects(&previous, &current) {
                    diffs.push(FieldDiff {
                        field: format!("{key}[{}]", nested.field),
                        ..nested
                    });
                }
            }
            "refunds" => {
                let count = |list: &Value| list.get("total_count").cloned().unwrap_or(Value::Null);
                let (previous_count, current_count) = (count(&previous), count(&current));
                if previous_count != current_count && !previous.is_null() {
                    diffs.push(FieldDiff {
                        field: "refunds.total_count".into(),
                        previous: previous_count,
                        current: current_count,
                    });
                }
            }
            _ => diffs.push(FieldDiff {
                field: key.clone(),
                previous,
                current,
            }),
        }
    }
    diffs
}

impl fmt::Display for HistoryEntry {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let when = self
            .recorded_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| self.recorded_at.to_string());
        write!(
            formatter,
            "v{} {} {} by {} ({}",
            self.version, when, self.event_type, self.request.actor, self.request.request_id
        )?;
        if let Some(key) = &self.request.idempotency_key {
            write!(formatter, ", idempotency key {key}")?;
        }
        if let Some(source) = &self.request.source {
            write!(formatter, ", from {source}")?;
        }
        write!(formatter, ")")?;
        for change in &self.changes {
            write!(
                formatter,
                "\n    {}: {} -> {}",
                change.field,
                compact(&change.previous),
                compact(&change.current)
            )?;
        }
        Ok(())
    }
}

/// JSON on one line, long strings shortened so a timeline stays readable.
fn compact(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 120 {
        let shortened: String = text.chars().take(117).collect();
        format!("{shortened}...")
    } else {
        text
    }
}

//! The audit trail: one entry per event of a charge, with who asked, when, and each field's old → new value.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::domain::{FoldError, Projection, apply};
use crate::events::{RecordedEvent, RequestMeta};
use crate::json_diff;

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

/// How a history presents a state: the JSON it diffs, which of its objects change a key at a
/// time, and which fields a creation entry shows.
pub struct HistoryView {
    /// The state as the reader knows it (the ledger's own state, or a dialect's wire object).
    pub render: fn(&Projection) -> Value,
    /// Objects shown key by key (`metadata[order_id]`): showing them whole would bury the change.
    pub keyed_fields: &'static [&'static str],
    /// The fields a creation request chooses, which are all its history entry shows: derived and
    /// constant fields (ids, outcome, billing details…) would drown what the request said.
    pub requested_on_creation: fn(&str) -> bool,
}

/// The ledger's own view: the dialect-neutral state (`money[captured]`, `details[transfer_group]`).
pub const LEDGER_VIEW: HistoryView = HistoryView {
    render: Projection::to_json,
    keyed_fields: &["metadata", "money", "details", "instrument"],
    requested_on_creation: |field| {
        const REQUESTED: [&str; 20] = [
            "money[authorized]",
            "money[captured]",
            "lifecycle",
            "currency",
            "customer",
            "description",
            "receipt_email",
            "shipping",
            "instrument[source]",
            "instrument[token]",
            "details[statement_descriptor]",
            "details[statement_descriptor_suffix]",
            "details[transfer_group]",
            "details[capture]",
            "details[return_uri]",
            "details[ip]",
            "email",
            "name",
            "freeze_after_capture",
            "card",
        ];
        REQUESTED.contains(&field) || field.starts_with("metadata[")
    },
};

/// Fold a stream's events one at a time, diffing the ledger's state before and after each.
pub fn history(events: &[RecordedEvent]) -> Result<Vec<HistoryEntry>, FoldError> {
    history_in_view(events, &LEDGER_VIEW)
}

/// Fold a stream's events one at a time, diffing the state before and after each as `view` shows it.
pub fn history_in_view(
    events: &[RecordedEvent],
    view: &HistoryView,
) -> Result<Vec<HistoryEntry>, FoldError> {
    let mut state: Option<Projection> = None;
    let mut before = Value::Null;
    let mut entries = Vec::with_capacity(events.len());
    for event in events {
        let is_creation = state.is_none();
        let next = apply(state, &event.body.payload)?;
        let after = (view.render)(&next);
        let mut changes = field_diffs(&before, &after, view);
        if is_creation {
            changes.retain(|change| (view.requested_on_creation)(&change.field));
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

/// What changed between two renderings, as the view shows it. A refund list is summarized by
/// its count (its amounts show in the money fields).
fn field_diffs(before: &Value, after: &Value, view: &HistoryView) -> Vec<FieldDiff> {
    let differences = json_diff::differences(before, after, |field, _, _| {
        view.keyed_fields.contains(&field)
    });
    let mut diffs = Vec::with_capacity(differences.len());
    for difference in differences {
        if difference.field == "refunds" {
            let (previous, current) = (
                refund_count(&difference.previous),
                refund_count(&difference.current),
            );
            if previous != current && !difference.previous.is_null() {
                diffs.push(FieldDiff {
                    field: "refunds.total_count".into(),
                    previous,
                    current,
                });
            }
            continue;
        }
        let field = match &difference.key {
            Some(key) => format!("{}[{key}]", difference.field),
            None => difference.field,
        };
        diffs.push(FieldDiff {
            field,
            previous: difference.previous,
            current: difference.current,
        });
    }
    diffs
}

/// How many refunds a rendered refund list holds: an array's length, or a list object's `total_count`.
fn refund_count(list: &Value) -> Value {
    match list {
        Value::Array(refunds) => Value::from(refunds.len()),
        other => other.get("total_count").cloned().unwrap_or(Value::Null),
    }
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

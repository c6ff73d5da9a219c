//! The one JSON differ: which top-level values of two JSON objects differ, with chosen objects compared key by key.
//!
//! Used by the audit trail (`audit::history`) and by Stripe's `previous_attributes`, which
//! differ only in which objects they open and in how they present the result.

use serde_json::{Map, Value};

/// One value that differs. `key` is `Some` when the difference is inside the object at `field`.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub field: String,
    pub key: Option<String>,
    /// `null` where the value did not exist.
    pub previous: Value,
    pub current: Value,
}

/// The differences between two objects (a non-object counts as an empty one), in key order.
/// A top-level field for which `open(field, previous, current)` is true is compared key by key,
/// a missing or non-object side counting as empty; any other field is compared whole.
pub fn differences(
    before: &Value,
    after: &Value,
    open: impl Fn(&str, &Value, &Value) -> bool,
) -> Vec<Difference> {
    let mut found = Vec::new();
    for (field, previous, current) in changed_entries(before, after) {
        if open(field, previous, current) {
            for (key, previous, current) in changed_entries(previous, current) {
                found.push(Difference {
                    field: field.to_string(),
                    key: Some(key.to_string()),
                    previous: previous.clone(),
                    current: current.clone(),
                });
            }
        } else {
            found.push(Difference {
                field: field.to_string(),
                key: None,
                previous: previous.clone(),
                current: current.clone(),
            });
        }
    }
    found
}

/// The entries whose values differ between two objects, over the union of their keys.
fn changed_entries<'value>(
    before: &'value Value,
    after: &'value Value,
) -> Vec<(&'value str, &'value Value, &'value Value)> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    let empty = EMPTY.get_or_init(Map::new);
    let before = before.as_object().unwrap_or(empty);
    let after = after.as_object().unwrap_or(empty);
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let previous = before.get(key).unwrap_or(&Value::Null);
            let current = after.get(key).unwrap_or(&Value::Null);
            (previous != current).then_some((key.as_str(), previous, current))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn opened_fields_are_compared_key_by_key_and_others_whole() {
        let before = json!({"a": 1, "metadata": {"x": "1", "y": "2"}, "shipping": {"name": "A"}});
        let after = json!({"a": 2, "metadata": {"y": "3", "z": "4"}, "shipping": {"name": "B"}});
        let found = differences(&before, &after, |field, _, _| field == "metadata");
        let shown: Vec<(String, Option<String>, Value, Value)> = found
            .into_iter()
            .map(|d| (d.field, d.key, d.previous, d.current))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("a".into(), None, json!(1), json!(2)),
                ("metadata".into(), Some("x".into()), json!("1"), Value::Null),
                ("metadata".into(), Some("y".into()), json!("2"), json!("3")),
                ("metadata".into(), Some("z".into()), Value::Null, json!("4")),
                (
                    "shipping".into(),
                    None,
                    json!({"name": "A"}),
                    json!({"name": "B"})
                ),
            ]
        );
    }

    #[test]
    fn equal_objects_have_no_differences() {
        let value = json!({"a": {"b": [1, 2]}});
        assert!(differences(&value, &value, |_, _, _| true).is_empty());
    }
}

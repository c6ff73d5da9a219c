//! `FieldChange`'s decoding, reading its `field` tag first instead of buffering the whole object.
//!
//! serde's derived decoding of an internally tagged enum first copies the object into an owned
//! in-memory tree (every string allocated), then decodes the variant from that copy. The
//! stored form always has `field` first (serde writes the tag first), so this reads the tag and
//! decodes `previous` and `current` straight from the input: every replayed update event
//! decodes through here. An object whose tag is not first (a hand-edited export) still decodes,
//! through `serde_json::Value`. The shape is the derived one, pinned by `tests/stored_format.rs`.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, de::value::MapAccessDeserializer};

use crate::domain::events::FieldChange;
use crate::domain::{FraudDetails, Metadata, Shipping};

const TAG: &str = "field";

/// The fields every variant has. Unknown fields are ignored, as the derived decoding did.
#[derive(Deserialize)]
struct Values<T> {
    previous: T,
    current: T,
}

/// Decode the variant named `field` from the object's remaining entries.
fn variant_from<'de, D: Deserializer<'de>>(field: &str, rest: D) -> Result<FieldChange, D::Error> {
    // Each arm: the tag, the variant, and the type of its `previous` and `current`.
    macro_rules! variants {
        ($($tag:literal => $variant:ident($value:ty)),* $(,)?) => {{
            const VARIANTS: &[&str] = &[$($tag),*];
            match field {
                $($tag => {
                    let Values { previous, current } = Values::<$value>::deserialize(rest)?;
                    Ok(FieldChange::$variant { previous, current })
                })*
                other => Err(de::Error::unknown_variant(other, VARIANTS)),
            }
        }};
    }
    variants! {
        "customer" => Customer(Option<String>),
        "description" => Description(Option<String>),
        "metadata" => Metadata(Metadata),
        "receipt_email" => ReceiptEmail(Option<String>),
        "shipping" => Shipping(Option<Shipping>),
        "fraud_details" => FraudDetails(FraudDetails),
        "transfer_group" => TransferGroup(Option<String>),
        "statement_descriptor" => StatementDescriptor(Option<String>),
        "statement_descriptor_suffix" => StatementDescriptorSuffix(Option<String>),
    }
}

struct FieldChangeVisitor;

impl<'de> Visitor<'de> for FieldChangeVisitor {
    type Value = FieldChange;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a field change: an object with `field`, `previous` and `current`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldChange, A::Error> {
        let Some(first_key) = map.next_key::<std::borrow::Cow<'de, str>>()? else {
            return Err(de::Error::missing_field(TAG));
        };
        if first_key == TAG {
            let field = map.next_value::<std::borrow::Cow<'de, str>>()?;
            return variant_from(&field, MapAccessDeserializer::new(map));
        }
        // The tag is elsewhere: gather the object, then decode from the gathered copy.
        let mut object = serde_json::Map::new();
        object.insert(first_key.into_owned(), map.next_value()?);
        while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
            object.insert(key, value);
        }
        let field = match object.remove(TAG) {
            Some(serde_json::Value::String(field)) => field,
            Some(_) => return Err(de::Error::custom("`field` must be a string")),
            None => return Err(de::Error::missing_field(TAG)),
        };
        variant_from(&field, serde_json::Value::Object(object)).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for FieldChange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FieldChangeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn every_variant() -> Vec<FieldChange> {
        let text = |value: &str| Some(value.to_string());
        vec![
            FieldChange::Customer {
                previous: None,
                current: text("cus_1"),
            },
            FieldChange::Description {
                previous: text("a"),
                current: None,
            },
            FieldChange::Metadata {
                previous: Metadata::from([("k".to_string(), json!("old"))]),
                current: Metadata::from([("k".to_string(), json!("new \"quoted\" é"))]),
            },
            FieldChange::ReceiptEmail {
                previous: None,
                current: text("a@example.com"),
            },
            FieldChange::Shipping {
                previous: None,
                current: serde_json::from_value(json!({
                    "address": {"city": null, "country": null, "line1": "1 Main St", "line2": null,
                                "postal_code": null, "state": null},
                    "carrier": null, "name": "Jenny", "phone": null, "tracking_number": null
                }))
                .expect("a shipping value"),
            },
            FieldChange::FraudDetails {
                previous: FraudDetails::default(),
                current: serde_json::from_value(json!({"user_report": "fraudulent"}))
                    .expect("fraud details"),
            },
            FieldChange::TransferGroup {
                previous: None,
                current: text("group"),
            },
            FieldChange::StatementDescriptor {
                previous: None,
                current: text("SHOP"),
            },
            FieldChange::StatementDescriptorSuffix {
                previous: text("X"),
                current: text("Y"),
            },
        ]
    }

    #[test]
    fn every_variant_round_trips_through_its_stored_form() {
        for change in every_variant() {
            let stored = serde_json::to_string(&change).expect("encode");
            assert!(stored.starts_with(r#"{"field":"#), "{stored}");
            let decoded: FieldChange = serde_json::from_str(&stored).expect("decode");
            assert_eq!(decoded, change, "{stored}");
        }
    }

    #[test]
    fn a_tag_that_is_not_first_still_decodes() {
        for change in every_variant() {
            let mut object = serde_json::to_value(&change).expect("encode");
            let field = object
                .as_object_mut()
                .and_then(|object| object.remove("field"))
                .expect("a tag");
            object
                .as_object_mut()
                .expect("an object")
                .insert("field".into(), field);
            let reordered = serde_json::to_string(&object).expect("encode");
            let decoded: FieldChange = serde_json::from_str(&reordered).expect("decode");
            assert_eq!(decoded, change, "{reordered}");
        }
    }

    #[test]
    fn bad_objects_are_refused_with_the_reason() {
        let cases = [
            (
                r#"{"previous":null,"current":null}"#,
                "missing field `field`",
            ),
            (
                r#"{"field":"colour","previous":null,"current":null}"#,
                "unknown variant `colour`",
            ),
            (
                r#"{"field":"metadata","previous":{}}"#,
                "missing field `current`",
            ),
            (
                r#"{"field":7,"previous":null,"current":null}"#,
                "invalid type",
            ),
        ];
        for (input, reason) in cases {
            let error = serde_json::from_str::<FieldChange>(input)
                .expect_err(input)
                .to_string();
            assert!(error.contains(reason), "{input}: {error}");
        }
    }
}

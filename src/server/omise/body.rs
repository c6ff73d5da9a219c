//! Omise request parameters from all four dialects the official clients send: JSON bodies (on any method, GET included), bracket-nested form bodies, and query strings.
//!
//! Everything becomes one JSON object. JSON keeps its types; form and query values are strings
//! (`"true"`, `"2000"`), so the typed readers accept both spellings. A JSON `null` means "not
//! given" (omise-python sends `{"from": null, …}` on every list). Parameters this server does
//! not use are ignored, as Omise ignores them, because clients send extras (omise-go's
//! `"platform_fee":{}` on every create).

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::Metadata;
use crate::server::form;
use crate::server::omise::error::OmiseError;

/// One request's parameters.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OmiseParams {
    values: Map<String, Value>,
}

impl OmiseParams {
    /// Read the query string, then the body (whose values win). The body is JSON when the
    /// content type says so, or when it has none and starts with `{`; otherwise it is a form.
    pub fn parse(
        content_type: Option<&str>,
        query: Option<&str>,
        body: &[u8],
    ) -> Result<Self, OmiseError> {
        let mut values = Map::new();
        if let Some(query) = query.filter(|query| !query.is_empty()) {
            merge(&mut values, form_values(query.as_bytes())?);
        }
        // Bytes are read as sent or refused, never replaced: an audit ledger stores what came.
        let body_text = std::str::from_utf8(body).map_err(|error| {
            OmiseError::bad_request(format!(
                "the request body is not valid UTF-8 (at byte {}); send text as UTF-8",
                error.valid_up_to()
            ))
        })?;
        let trimmed = body_text.trim();
        if !trimmed.is_empty() {
            let is_json = match content_type {
                Some(content_type) => content_type.to_ascii_lowercase().contains("json"),
                None => trimmed.starts_with('{'),
            };
            let body_values = if is_json {
                match serde_json::from_str::<Value>(trimmed) {
                    Ok(Value::Object(object)) => {
                        check_json(&object)?;
                        object
                    }
                    Ok(_) => {
                        return Err(OmiseError::bad_request(
                            "the request body must be a JSON object",
                        ));
                    }
                    Err(error) => {
                        return Err(OmiseError::bad_request(format!(
                            "the request body is not valid JSON: {error}"
                        )));
                    }
                }
            } else {
                form_values(body)?
            };
            merge(&mut values, body_values);
        }
        values.retain(|_, value| !value.is_null());
        Ok(OmiseParams { values })
    }

    /// Parameters built directly (tests, nested objects such as `card`).
    pub fn from_object(values: Map<String, Value>) -> Self {
        let mut values = values;
        values.retain(|_, value| !value.is_null());
        OmiseParams { values }
    }

    /// Every parameter, by name.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.values.iter()
    }

    /// A string parameter. Numbers are accepted as their text (form bodies cannot tell).
    pub fn string(&self, name: &str) -> Result<Option<String>, OmiseError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(Value::Number(number)) => Ok(Some(number.to_string())),
            Some(_) => Err(OmiseError::bad_request(format!("{name} must be a string"))),
        }
    }

    /// An integer given as a JSON integer or as decimal text. `invalid` builds the error.
    pub fn integer_or(
        &self,
        name: &str,
        invalid: impl Fn(String) -> OmiseError,
    ) -> Result<Option<i64>, OmiseError> {
        let parsed = match self.values.get(name) {
            None => return Ok(None),
            Some(Value::Number(number)) => number.as_i64(),
            Some(Value::String(text)) => text.trim().parse::<i64>().ok(),
            Some(_) => None,
        };
        parsed
            .map(Some)
            .ok_or_else(|| invalid(format!("{name} must be an integer")))
    }

    pub fn integer(&self, name: &str) -> Result<Option<i64>, OmiseError> {
        self.integer_or(name, OmiseError::bad_request)
    }

    /// A boolean given as JSON `true`/`false` or as the text `"true"`/`"false"`.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, OmiseError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(Value::String(text)) if text == "true" => Ok(Some(true)),
            Some(Value::String(text)) if text == "false" => Ok(Some(false)),
            Some(_) => Err(OmiseError::bad_request(format!(
                "{name} must be true or false"
            ))),
        }
    }

    /// A nested object (`card[...]` in a form, an object in JSON).
    pub fn object(&self, name: &str) -> Result<Option<OmiseParams>, OmiseError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Value::Object(object)) => Ok(Some(OmiseParams::from_object(object.clone()))),
            Some(_) => Err(OmiseError::bad_request(format!("{name} must be an object"))),
        }
    }

    /// Free-form metadata: any JSON object. A form's `metadata=` (empty) is the empty object.
    pub fn metadata(&self) -> Result<Option<Metadata>, OmiseError> {
        match self.values.get("metadata") {
            None => Ok(None),
            Some(Value::Object(object)) => Ok(Some(
                object
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect(),
            )),
            Some(Value::String(text)) if text.is_empty() => Ok(Some(Metadata::new())),
            Some(_) => Err(OmiseError::bad_request("metadata must be an object")),
        }
    }

    /// A time parameter in ISO 8601 (RFC 3339, or a bare `YYYY-MM-DD` meaning midnight UTC).
    pub fn time(&self, name: &str) -> Result<Option<OffsetDateTime>, OmiseError> {
        let Some(text) = self.string(name)? else {
            return Ok(None);
        };
        let invalid = || {
            OmiseError::bad_request(format!(
                "{name} must be an ISO 8601 time such as 2019-05-29T00:00:00Z"
            ))
        };
        if let Ok(moment) = OffsetDateTime::parse(&text, &Rfc3339) {
            return Ok(Some(moment));
        }
        let date_format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(&text, &date_format)
            .map(|date| Some(date.midnight().assume_utc()))
            .map_err(|_| invalid())
    }
}

/// Form and query values as JSON: strings, objects for `a[b]`, arrays for `a[]`.
fn form_values(input: &[u8]) -> Result<Map<String, Value>, OmiseError> {
    let params =
        form::parse(input).map_err(|refused| OmiseError::bad_request(refused.to_string()))?;
    Ok(params
        .iter()
        .map(|(name, value)| (name.clone(), value.to_json()))
        .collect())
}

/// Hold a JSON body to the rules forms follow: nested at most `MAX_NESTING_DEPTH` levels below
/// its parameter, and no control characters in keys or strings. Walked with an explicit stack:
/// serde_json caps parsing at 128 levels, but this check must not rely on that.
fn check_json(object: &Map<String, Value>) -> Result<(), OmiseError> {
    let refuse = |refused: form::FormError| OmiseError::bad_request(refused.to_string());
    for (name, value) in object {
        form::check_text(name, name, name).map_err(refuse)?;
        let mut pending = vec![(value, 0_usize)];
        while let Some((value, depth)) = pending.pop() {
            if depth > form::MAX_NESTING_DEPTH {
                return Err(refuse(form::FormError::TooDeep {
                    name: name.clone(),
                    depth,
                }));
            }
            match value {
                Value::String(text) => form::check_text(text, name, name).map_err(refuse)?,
                Value::Array(items) => pending.extend(items.iter().map(|item| (item, depth + 1))),
                Value::Object(entries) => {
                    for (key, item) in entries {
                        form::check_text(key, name, name).map_err(refuse)?;
                        pending.push((item, depth + 1));
                    }
                }
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
        }
    }
    Ok(())
}

fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (name, value) in from {
        into.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_nulls_are_absent_and_types_are_kept() {
        let params = OmiseParams::parse(
            Some("application/json"),
            None,
            br#"{"from": null, "limit": 100, "capture": false, "metadata": {"a": {"b": [1, 2]}}}"#,
        )
        .unwrap();
        assert_eq!(params.string("from").unwrap(), None);
        assert_eq!(params.integer("limit").unwrap(), Some(100));
        assert_eq!(params.boolean("capture").unwrap(), Some(false));
        assert_eq!(
            serde_json::to_value(params.metadata().unwrap().unwrap()).unwrap(),
            serde_json::json!({"a": {"b": [1, 2]}})
        );
    }

    #[test]
    fn forms_nest_with_brackets_and_carry_strings() {
        let params = OmiseParams::parse(
            Some("application/x-www-form-urlencoded"),
            Some("limit=5"),
            b"amount=2000&capture=false&metadata[order][id]=7&card[name]=A",
        )
        .unwrap();
        assert_eq!(params.integer("amount").unwrap(), Some(2000));
        assert_eq!(params.integer("limit").unwrap(), Some(5));
        assert_eq!(params.boolean("capture").unwrap(), Some(false));
        assert_eq!(
            serde_json::to_value(params.metadata().unwrap().unwrap()).unwrap(),
            serde_json::json!({"order": {"id": "7"}})
        );
        let card = params.object("card").unwrap().unwrap();
        assert_eq!(card.string("name").unwrap().as_deref(), Some("A"));
    }

    #[test]
    fn a_body_without_content_type_is_sniffed() {
        let params = OmiseParams::parse(None, None, br#"{"amount": 2500}"#).unwrap();
        assert_eq!(params.integer("amount").unwrap(), Some(2500));
        let params = OmiseParams::parse(None, None, b"amount=2500").unwrap();
        assert_eq!(params.integer("amount").unwrap(), Some(2500));
        let refused = OmiseParams::parse(Some("application/json"), None, b"[1]").unwrap_err();
        assert_eq!(refused.code, "bad_request");
    }

    #[test]
    fn times_are_rfc_3339_or_dates() {
        let params =
            OmiseParams::parse(None, Some("from=2019-05-29T01:02:03Z&to=2019-06-01"), b"").unwrap();
        assert_eq!(
            params.time("from").unwrap().unwrap().unix_timestamp(),
            1_559_091_723
        );
        assert_eq!(
            params.time("to").unwrap().unwrap().unix_timestamp(),
            1_559_347_200
        );
        let params = OmiseParams::parse(None, Some("from=yesterday"), b"").unwrap();
        assert_eq!(params.time("from").unwrap_err().code, "bad_request");
    }
}

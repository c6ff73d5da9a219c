//! Rack-style parameters: `metadata[key]=v`, `shipping[address][line1]=…`, `expand[]=a`, `expand[0]=a`, from form bodies and query strings.
//!
//! This module decodes the pairs strictly and nests them, as Rack's `normalize_params` does,
//! into a tree that keeps what a typed deserializer would lose: the difference between
//! `metadata=` (an empty string, which unsets) and no `metadata` at all, and every parameter's
//! name, so that an unknown one can be refused by the name the caller sent.
//!
//! The decoding is strict because this is an audit ledger: text is stored exactly as sent or
//! refused. `form_urlencoded` follows the WHATWG URL standard, which by design passes malformed
//! escapes (`%zz`) through and replaces invalid UTF-8 with U+FFFD, so `metadata[%ff]=1` and
//! `metadata[%fe]=2` would collapse into one key. Here they are refused, as are control
//! characters other than tab, line feed and carriage return (see [`check_text`]), and names
//! nested deeper than [`MAX_NESTING_DEPTH`], which Rack refuses too.

use indexmap::IndexMap;

/// The most bracket levels a parameter name may have (`a[b]` has one), Rack's own limit. It
/// keeps every nested structure far from any recursion limit: serde_json refuses to read
/// documents nested deeper than 128, and stored events wrap parameters a few levels deep.
pub const MAX_NESTING_DEPTH: usize = 100;

/// One parameter value: a string, a hash (`a[b]=…`) or an array (`a[]=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Text(String),
    Hash(IndexMap<String, Param>),
    List(Vec<Param>),
}

/// A request's parameters in the order they first appeared.
pub type Params = IndexMap<String, Param>;

/// Why a form body or query string was refused. Each names the parameter as Stripe's `param`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A name whose parts disagree about its shape (`a=1&a[b]=2`), refused as Rack refuses it.
    #[error("Invalid value for {name}: it is given both as a {first} and as a {second}.")]
    ShapeConflict {
        name: String,
        first: &'static str,
        second: &'static str,
    },
    #[error(
        "Invalid parameter {name}: parameters may be nested at most {MAX_NESTING_DEPTH} levels deep ({name}[…] has {depth})."
    )]
    TooDeep { name: String, depth: usize },
    /// `%` not followed by two hexadecimal digits. `sent` is the name as it arrived.
    #[error(
        "Invalid percent-encoding in {sent}: every '%' must be followed by two hexadecimal digits (send '%25' for a literal '%')."
    )]
    InvalidPercentEncoding { name: String, sent: String },
    #[error("Invalid UTF-8 in {sent}: parameters must be UTF-8 text once percent-decoded.")]
    InvalidUtf8 { name: String, sent: String },
    #[error(
        "Invalid string in {sent}: it contains the control character U+{code_point:04X}; only tab, line feed and carriage return are accepted."
    )]
    ControlCharacter {
        name: String,
        sent: String,
        code_point: u32,
    },
}

impl FormError {
    /// The top-level parameter the error is about, as Stripe names it in `param`.
    pub fn param(&self) -> &str {
        match self {
            FormError::ShapeConflict { name, .. }
            | FormError::TooDeep { name, .. }
            | FormError::InvalidPercentEncoding { name, .. }
            | FormError::InvalidUtf8 { name, .. }
            | FormError::ControlCharacter { name, .. } => name,
        }
    }
}

impl Param {
    fn shape(&self) -> &'static str {
        match self {
            Param::Text(_) => "string",
            Param::Hash(_) => "hash",
            Param::List(_) => "array",
        }
    }

    /// The value as JSON, for error messages that quote what was sent and for Omise's bodies.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Param::Text(text) => serde_json::Value::String(text.clone()),
            Param::Hash(hash) => serde_json::Value::Object(
                hash.iter()
                    .map(|(key, value)| (key.clone(), value.to_json()))
                    .collect(),
            ),
            Param::List(items) => {
                serde_json::Value::Array(items.iter().map(Param::to_json).collect())
            }
        }
    }
}

/// Parse an `application/x-www-form-urlencoded` body or a query string.
pub fn parse(input: &[u8]) -> Result<Params, FormError> {
    let mut params = Params::new();
    for pair in input.split(|byte| *byte == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (raw_name, raw_value) = match pair.iter().position(|byte| *byte == b'=') {
            Some(equals) => (&pair[..equals], &pair[equals + 1..]),
            None => (pair, &b""[..]),
        };
        let name = decode(raw_name, raw_name)?;
        if name.is_empty() {
            continue;
        }
        let value = decode(raw_value, raw_name)?;
        let path = split_name(&name);
        if path.len() > MAX_NESTING_DEPTH + 1 {
            return Err(FormError::TooDeep {
                name: path[0].to_string(),
                depth: path.len() - 1,
            });
        }
        insert(&mut params, &path, value).map_err(|(first, second)| FormError::ShapeConflict {
            name: path[0].to_string(),
            first,
            second,
        })?;
    }
    Ok(params)
}

/// Refuse text an audit ledger should not store: C0 control characters other than tab, line
/// feed and carriage return, and DEL. NUL in particular is cut off or refused by C strings,
/// PostgreSQL `text` and many log pipelines, so a stored NUL would not read back as sent
/// everywhere the ledger's data goes. `name` and `sent` name the parameter in the error.
pub fn check_text(text: &str, name: &str, sent: &str) -> Result<(), FormError> {
    match text
        .chars()
        .find(|c| c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        Some(control) => Err(FormError::ControlCharacter {
            name: name.to_string(),
            sent: sent.to_string(),
            code_point: control as u32,
        }),
        None => Ok(()),
    }
}

/// Percent-decode one name or value (`+` is a space), strictly. `raw_name` is the pair's name
/// as sent, to say which parameter was refused.
fn decode(raw: &[u8], raw_name: &[u8]) -> Result<String, FormError> {
    let refused_name = || {
        let sent = printable(raw_name);
        let name = sent.split('[').next().unwrap_or_default().to_string();
        (name, sent)
    };
    let mut bytes = Vec::with_capacity(raw.len());
    let mut index = 0;
    while index < raw.len() {
        match raw[index] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let high = raw.get(index + 1).and_then(|digit| hex_value(*digit));
                let low = raw.get(index + 2).and_then(|digit| hex_value(*digit));
                let (Some(high), Some(low)) = (high, low) else {
                    let (name, sent) = refused_name();
                    return Err(FormError::InvalidPercentEncoding { name, sent });
                };
                bytes.push(high << 4 | low);
                index += 2;
            }
            byte => bytes.push(byte),
        }
        index += 1;
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        let (name, sent) = refused_name();
        FormError::InvalidUtf8 { name, sent }
    })?;
    let (name, sent) = refused_name();
    check_text(&text, &name, &sent)?;
    Ok(text)
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|value| value as u8)
}

/// A name as sent, for an error message: printable ASCII as is, every other byte as `%XX`.
fn printable(raw: &[u8]) -> String {
    raw.iter()
        .map(|byte| match byte {
            b' '..=b'~' => char::from(*byte).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// `shipping[address][line1]` → `["shipping", "address", "line1"]`; `expand[]` → `["expand", ""]`.
fn split_name(name: &str) -> Vec<&str> {
    let (head, mut rest) = match name.find('[') {
        Some(0) | None => return vec![name],
        Some(position) => (&name[..position], &name[position..]),
    };
    let mut parts = vec![head];
    while let Some(stripped) = rest.strip_prefix('[') {
        match stripped.find(']') {
            Some(end) => {
                parts.push(&stripped[..end]);
                rest = &stripped[end + 1..];
            }
            // An unclosed bracket is part of the last name, as Rack reads it.
            None => {
                parts.push(stripped);
                rest = "";
            }
        }
    }
    parts
}

type Conflict = (&'static str, &'static str);

/// Put `value` at `path`, walking down one level at a time (a loop, not recursion: the depth
/// is capped, but the cap is a policy, not what keeps the stack safe).
fn insert(params: &mut Params, path: &[&str], value: String) -> Result<(), Conflict> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut hash = params;
    for (position, name) in parents.iter().enumerate() {
        let child = if path[position + 1].is_empty() && position + 2 == path.len() {
            // `a[]=v`: append to an array.
            match hash
                .entry(name.to_string())
                .or_insert_with(|| Param::List(Vec::new()))
            {
                Param::List(items) => {
                    items.push(Param::Text(value));
                    return Ok(());
                }
                other => return Err((other.shape(), "array")),
            }
        } else {
            hash.entry(name.to_string())
                .or_insert_with(|| Param::Hash(Params::new()))
        };
        hash = match child {
            Param::Hash(nested) => nested,
            other => return Err((other.shape(), "hash")),
        };
    }
    // `a=v`: the last value wins, as in Rack.
    match hash.get(*last) {
        Some(existing @ (Param::Hash(_) | Param::List(_))) => Err((existing.shape(), "string")),
        _ => {
            hash.insert(last.to_string(), Param::Text(value));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> Param {
        Param::Text(value.to_string())
    }

    #[test]
    fn nests_hashes_and_arrays_and_keeps_empty_strings() {
        let params = parse(
            b"metadata[order]=42&metadata[gone]=&shipping[address][line1]=1%20Main&expand[]=customer&expand[]=x&description=",
        )
        .unwrap();
        let Param::Hash(metadata) = &params["metadata"] else {
            panic!("metadata is a hash")
        };
        assert_eq!(metadata["order"], text("42"));
        assert_eq!(metadata["gone"], text(""));
        let Param::Hash(shipping) = &params["shipping"] else {
            panic!("shipping is a hash")
        };
        let Param::Hash(address) = &shipping["address"] else {
            panic!("address is a hash")
        };
        assert_eq!(address["line1"], text("1 Main"));
        assert_eq!(
            params["expand"],
            Param::List(vec![text("customer"), text("x")])
        );
        assert_eq!(params["description"], text(""));
    }

    #[test]
    fn percent_encoded_brackets_nest_like_plain_ones() {
        // stripe-python percent-encodes brackets; stripe-node does not.
        let params = parse(b"expand%5B0%5D=customer&metadata%5Bk%5D=v").unwrap();
        let Param::Hash(expand) = &params["expand"] else {
            panic!("indexed arrays arrive as hashes")
        };
        assert_eq!(expand["0"], text("customer"));
        assert!(matches!(params["metadata"], Param::Hash(_)));
    }

    #[test]
    fn a_name_used_as_two_shapes_is_refused() {
        let conflict = parse(b"metadata=&metadata[k]=v").unwrap_err();
        assert_eq!(conflict.param(), "metadata");
        assert_eq!(
            conflict.to_string(),
            "Invalid value for metadata: it is given both as a string and as a hash."
        );
        assert!(parse(b"metadata[k]=v&metadata=").is_err());
    }

    #[test]
    fn nesting_is_capped_at_a_hundred_levels_without_recursion() {
        let at_limit = format!("a{}=x", "[b]".repeat(MAX_NESTING_DEPTH));
        assert!(parse(at_limit.as_bytes()).is_ok());
        for levels in [MAX_NESTING_DEPTH + 1, 100_000] {
            let deep = format!("a{}=x", "[b]".repeat(levels));
            let refused = parse(deep.as_bytes()).unwrap_err();
            assert_eq!(
                refused,
                FormError::TooDeep {
                    name: "a".into(),
                    depth: levels
                }
            );
            assert_eq!(refused.param(), "a");
        }
        // A query string and a form body are the same grammar; `expand[]` nests the same way.
        let deep_expand = format!("expand[]{}=customer", "[a]".repeat(100_000));
        assert!(matches!(
            parse(deep_expand.as_bytes()),
            Err(FormError::TooDeep { .. })
        ));
    }

    #[test]
    fn malformed_escapes_invalid_utf8_and_control_characters_are_refused() {
        let invalid_utf8 = parse(b"metadata[%ff]=1&metadata[%fe]=2").unwrap_err();
        assert_eq!(
            invalid_utf8,
            FormError::InvalidUtf8 {
                name: "metadata".into(),
                sent: "metadata[%ff]".into()
            }
        );
        for body in [&b"a=%zz"[..], b"a=%", b"a=%4", b"a%=1"] {
            assert!(
                matches!(parse(body), Err(FormError::InvalidPercentEncoding { .. })),
                "{body:?}"
            );
        }
        assert!(matches!(
            parse(b"a=\xff"),
            Err(FormError::InvalidUtf8 { .. })
        ));
        assert!(matches!(
            parse(b"a=x%00"),
            Err(FormError::ControlCharacter { code_point: 0, .. })
        ));
        assert!(matches!(
            parse(b"a=%7F"),
            Err(FormError::ControlCharacter {
                code_point: 0x7F,
                ..
            })
        ));
        let kept = parse(b"a=%09tab%0Aline%0Dreturn+space%2B%25").unwrap();
        assert_eq!(kept["a"], text("\ttab\nline\rreturn space+%"));
    }

    #[test]
    fn the_last_plain_value_wins() {
        let params = parse(b"description=a&description=b").unwrap();
        assert_eq!(params["description"], text("b"));
    }
}

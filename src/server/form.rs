//! Rack-style parameters: `metadata[key]=v`, `shipping[address][line1]=…`, `expand[]=a`, `expand[0]=a`, from form bodies and query strings.
//!
//! `form_urlencoded` decodes the pairs; this module only nests them, as Rack's
//! `normalize_params` does, into a tree that keeps what a typed deserializer would lose: the
//! difference between `metadata=` (an empty string, which unsets) and no `metadata` at all, and
//! every parameter's name, so that an unknown one can be refused by the name the caller sent.

use indexmap::IndexMap;

/// One parameter value: a string, a hash (`a[b]=…`) or an array (`a[]=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Text(String),
    Hash(IndexMap<String, Param>),
    List(Vec<Param>),
}

/// A request's parameters in the order they first appeared.
pub type Params = IndexMap<String, Param>;

/// A name whose parts disagree about its shape (`a=1&a[b]=2`), refused as Rack refuses it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid value for {name}: it is given both as a {first} and as a {second}.")]
pub struct ShapeConflict {
    /// The top-level parameter, as Stripe names it in `param`.
    pub name: String,
    first: &'static str,
    second: &'static str,
}

impl Param {
    fn shape(&self) -> &'static str {
        match self {
            Param::Text(_) => "string",
            Param::Hash(_) => "hash",
            Param::List(_) => "array",
        }
    }

    /// The value as JSON, for error messages that quote what was sent.
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
pub fn parse(input: &[u8]) -> Result<Params, ShapeConflict> {
    let mut params = Params::new();
    for (name, value) in form_urlencoded::parse(input) {
        if name.is_empty() {
            continue;
        }
        let path = split_name(&name);
        insert(&mut params, &path, value.into_owned()).map_err(|(first, second)| {
            ShapeConflict {
                name: path[0].to_string(),
                first,
                second,
            }
        })?;
    }
    Ok(params)
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

fn insert(hash: &mut Params, path: &[&str], value: String) -> Result<(), Conflict> {
    let (name, rest) = match path.split_first() {
        Some(split) => split,
        None => return Ok(()),
    };
    match rest {
        // `a=v`: the last value wins, as in Rack.
        [] => match hash.get(*name) {
            Some(existing @ (Param::Hash(_) | Param::List(_))) => Err((existing.shape(), "string")),
            _ => {
                hash.insert(name.to_string(), Param::Text(value));
                Ok(())
            }
        },
        // `a[]=v`: append to an array.
        [""] => match hash
            .entry(name.to_string())
            .or_insert_with(|| Param::List(Vec::new()))
        {
            Param::List(items) => {
                items.push(Param::Text(value));
                Ok(())
            }
            other => Err((other.shape(), "array")),
        },
        _ => match hash
            .entry(name.to_string())
            .or_insert_with(|| Param::Hash(Params::new()))
        {
            Param::Hash(nested) => insert(nested, rest, value),
            other => Err((other.shape(), "hash")),
        },
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
        assert_eq!(conflict.name, "metadata");
        assert_eq!(
            conflict.to_string(),
            "Invalid value for metadata: it is given both as a string and as a hash."
        );
        assert!(parse(b"metadata[k]=v&metadata=").is_err());
    }

    #[test]
    fn the_last_plain_value_wins() {
        let params = parse(b"description=a&description=b").unwrap();
        assert_eq!(params["description"], text("b"));
    }
}

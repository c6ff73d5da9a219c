//! The stored form of an event: exactly `chain::seal_encoded`'s bytes, read back with the hash of the body as stored.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::chain::hash_body_json;
use crate::events::{EventBody, RecordedEvent};
use crate::store::HashedEvent;

/// A stored event with its body left as the bytes on disk, so they can be hashed as they are.
#[derive(Deserialize)]
struct StoredEventBytes<'stored> {
    #[serde(borrow)]
    body: &'stored RawValue,
    hash: String,
}

/// The stored form's frame around the body: `{"body":` … `,"hash":"` 64 hex digits `"}`.
const BODY_PREFIX: &[u8] = br#"{"body":"#;
const HASH_PREFIX: &[u8] = br#","hash":""#;
const HASH_SUFFIX: &[u8] = br#""}"#;
const HASH_HEX_LEN: usize = 64;

/// The body's bytes and the claimed hash of a record in exactly the frame the writer stores
/// (`chain::seal_encoded`), found by position without a first JSON pass. `None` for any other
/// shape, which is then parsed as JSON.
fn framed_body(value: &[u8]) -> Option<(&[u8], &str)> {
    let trailer = HASH_PREFIX.len() + HASH_HEX_LEN + HASH_SUFFIX.len();
    let body_end = value.len().checked_sub(trailer)?;
    if body_end <= BODY_PREFIX.len() || !value.starts_with(BODY_PREFIX) {
        return None;
    }
    let (body, frame) = value[BODY_PREFIX.len()..].split_at(body_end - BODY_PREFIX.len());
    let hash = frame.strip_prefix(HASH_PREFIX)?.strip_suffix(HASH_SUFFIX)?;
    if !hash.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    Some((body, std::str::from_utf8(hash).ok()?))
}

/// Decode a stored event and hash its body's bytes as stored. The error says what is wrong
/// with the record; the caller names where it is.
pub fn decode_hashed_record(value: &[u8]) -> Result<HashedEvent, String> {
    let (body_json, hash) = match framed_body(value) {
        Some((body, hash)) => (body, hash.to_string()),
        None => {
            let stored: StoredEventBytes<'_> =
                serde_json::from_slice(value).map_err(|error| error.to_string())?;
            (stored.body.get().as_bytes(), stored.hash)
        }
    };
    // A framed body that is not one whole JSON object fails here, as any bad record does.
    let body: EventBody = serde_json::from_slice(body_json).map_err(|error| error.to_string())?;
    Ok(HashedEvent {
        computed_hash: hash_body_json(body_json),
        event: RecordedEvent { body, hash },
    })
}

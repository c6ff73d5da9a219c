//! Keys and values: account-prefixed big-endian keys and the JSON encoding of stored records.

use super::*;

pub(super) fn stream_key(account: &str, stream_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(account.len() + stream_id.len() + 1);
    key.extend_from_slice(account.as_bytes());
    key.push(0);
    key.extend_from_slice(stream_id.as_bytes());
    key
}

pub(super) fn owner_key(stream_id: &str, account: &str) -> Vec<u8> {
    stream_key(stream_id, account)
}

pub(super) fn split_stream_key(key: &[u8]) -> (String, String) {
    let separator = key.iter().position(|byte| *byte == 0).unwrap_or(key.len());
    let account = String::from_utf8_lossy(&key[..separator]).into_owned();
    let stream_id =
        String::from_utf8_lossy(key.get(separator + 1..).unwrap_or_default()).into_owned();
    (account, stream_id)
}

pub(super) fn creation_key(account: &str, sequence: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(account.len() + 9);
    key.extend_from_slice(account.as_bytes());
    key.push(0);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// A big-endian u64 at `offset`, or 0 when the bytes are too short (callers check lengths
/// where a short record means corruption).
pub(super) fn read_u64(bytes: &[u8], offset: usize) -> u64 {
    bytes
        .get(offset..offset + 8)
        .and_then(|slice| <[u8; 8]>::try_from(slice).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Our own stored types as JSON. Plain data with string keys always serializes; if it ever did
/// not, that is a bug, and this stops the writer thread (every later write is refused as closed)
/// rather than store empty bytes where a record should be.
pub(super) fn encode_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect(
        "the store's own records always encode as JSON; failing to is a bug in chargeledger",
    )
}

pub(super) fn encode_projection(stored: &StoredProjection) -> Vec<u8> {
    encode_projection_parts(stored.version, stored.created_sequence, &stored.projection)
}

/// A projection record: version and creation sequence (big-endian), then the state as JSON.
pub(super) fn encode_projection_parts(
    version: u64,
    created_sequence: u64,
    projection: &Projection,
) -> Vec<u8> {
    let mut value = Vec::with_capacity(2048);
    value.extend_from_slice(&version.to_be_bytes());
    value.extend_from_slice(&created_sequence.to_be_bytes());
    // Encoded straight into the record: no intermediate buffer to copy.
    serde_json::to_writer(&mut value, projection).expect(
        "the store's own records always encode as JSON; failing to is a bug in chargeledger",
    );
    value
}

pub(super) fn decode_projection(value: &[u8]) -> Result<StoredProjection, String> {
    if value.len() < 16 {
        return Err("the record is shorter than its header".into());
    }
    let projection = serde_json::from_slice(&value[16..]).map_err(|error| error.to_string())?;
    Ok(StoredProjection {
        version: read_u64(value, 0),
        created_sequence: read_u64(value, 8),
        projection,
    })
}

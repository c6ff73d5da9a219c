//! The verification scan: pages of the log decoded on every core, each body hashed from its stored bytes.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::*;

/// Below this many events a page is decoded on the calling thread: starting threads would cost
/// more than it saves.
const PARALLEL_DECODE_MIN_EVENTS: usize = 512;

/// A stored event with its body left as the bytes on disk, so they can be hashed as they are.
#[derive(Deserialize)]
struct StoredEventBytes<'stored> {
    #[serde(borrow)]
    body: &'stored RawValue,
    hash: String,
}

impl SledStore {
    /// Up to `limit` durable events after `after_sequence`, decoded on all cores, each with the
    /// hash of its body's stored bytes.
    pub(super) async fn read_hashed_page(
        &self,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<HashedEvent>, StoreError> {
        let records = self.durable_records_after(after_sequence, limit)?;
        let path: Arc<str> = self.path.display().to_string().into();
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        let chunks = if records.len() < PARALLEL_DECODE_MIN_EVENTS {
            1
        } else {
            cores
        };
        // Decoded on tokio's blocking pool, whose threads live on between pages: a fresh thread
        // per page would start each with an empty allocator heap and fault its memory in anew.
        let chunk_len = records.len().div_ceil(chunks).max(1);
        let mut records = records.into_iter();
        let mut decoders = Vec::with_capacity(chunks);
        loop {
            let chunk: Vec<_> = records.by_ref().take(chunk_len).collect();
            if chunk.is_empty() {
                break;
            }
            let path = path.clone();
            decoders.push(tokio::task::spawn_blocking(move || {
                chunk
                    .iter()
                    .map(|(key, value)| decode_hashed(&path, key, value))
                    .collect::<Result<Vec<_>, _>>()
            }));
        }
        let mut events = Vec::with_capacity(limit.min(chunk_len * chunks));
        for decoder in decoders {
            events.extend(
                decoder
                    .await
                    .map_err(|error| StoreError::Io(std::io::Error::other(error)))??,
            );
        }
        Ok(events)
    }
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

pub(super) fn decode_hashed(
    path: &str,
    key: &[u8],
    value: &[u8],
) -> Result<HashedEvent, StoreError> {
    let corrupt = |detail: String| StoreError::CorruptRecord {
        path: path.to_string(),
        location: format!("event #{}", read_u64(key, 0)),
        detail,
    };
    let (body_json, hash) = match framed_body(value) {
        Some((body, hash)) => (body, hash.to_string()),
        None => {
            let stored: StoredEventBytes<'_> =
                serde_json::from_slice(value).map_err(|error| corrupt(error.to_string()))?;
            (stored.body.get().as_bytes(), stored.hash)
        }
    };
    // A framed body that is not one whole JSON object fails here, as any bad record does.
    let body: EventBody =
        serde_json::from_slice(body_json).map_err(|error| corrupt(error.to_string()))?;
    Ok(HashedEvent {
        computed_hash: hash_body_json(body_json),
        event: RecordedEvent { body, hash },
    })
}

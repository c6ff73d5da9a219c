//! The verification scan: pages of the log decoded on every core, each body hashed from its stored bytes.

use super::*;
use crate::store::stored_event::decode_hashed_record;

/// Below this many events a page is decoded on the calling thread: starting threads would cost
/// more than it saves.
const PARALLEL_DECODE_MIN_EVENTS: usize = 512;

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

pub(super) fn decode_hashed(
    path: &str,
    key: &[u8],
    value: &[u8],
) -> Result<HashedEvent, StoreError> {
    decode_hashed_record(value).map_err(|detail| StoreError::CorruptRecord {
        path: path.to_string(),
        location: format!("event #{}", read_u64(key, 0)),
        detail,
    })
}

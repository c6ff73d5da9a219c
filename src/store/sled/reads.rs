//! Reads: projections, stream versions and pages over the creation and event indexes, each within the durable head.

use super::*;

impl SledStore {
    /// The sequence of the event that brought the stream at `key` to `version` (0 if none).
    /// sled's concurrency control keeps plain reads out while a transaction applies, so once a
    /// projection from a batch is seen, that batch's stream index entries are in place too.
    pub(super) fn sequence_of_version(&self, key: &[u8], version: u64) -> Result<u64, StoreError> {
        let mut index_key = Vec::with_capacity(key.len() + 9);
        index_key.extend_from_slice(key);
        index_key.push(0);
        index_key.extend_from_slice(&version.to_be_bytes());
        Ok(self
            .trees
            .streams
            .get(index_key)?
            .map_or(0, |sequence| read_u64(&sequence, 0)))
    }

    /// Up to `limit` stored events after `after_sequence`, as bytes, never past the durable head.
    pub(super) fn durable_records_after(
        &self,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<(sled::IVec, sled::IVec)>, StoreError> {
        self.refuse_if_poisoned()?;
        let durable = self.durable_limit();
        if after_sequence >= durable {
            return Ok(Vec::new());
        }
        let start = (after_sequence + 1).to_be_bytes();
        let end = durable.to_be_bytes();
        Ok(self
            .trees
            .events
            .range(start..=end)
            .take(limit)
            .collect::<Result<Vec<_>, _>>()?)
    }

    pub(super) fn corrupt(&self, location: String, detail: impl ToString) -> StoreError {
        StoreError::CorruptRecord {
            path: self.path.display().to_string(),
            location,
            detail: detail.to_string(),
        }
    }

    pub(super) fn decode_event(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> Result<RecordedEvent, StoreError> {
        serde_json::from_slice(value)
            .map_err(|error| self.corrupt(format!("event #{}", read_u64(key, 0)), error))
    }

    pub(super) fn decode_projection(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> Result<StoredProjection, StoreError> {
        decode_projection(value).map_err(|detail| {
            self.corrupt(
                format!(
                    "projection {}",
                    String::from_utf8_lossy(key).replace('\0', "/")
                ),
                detail,
            )
        })
    }

    /// A page of the charges or customers listed in a creation index, newest first, once every
    /// state on it is durable.
    pub(super) async fn durable_page_of_streams<T>(
        &self,
        index: &sled::Tree,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        select: impl Fn(Projection) -> Option<T>,
    ) -> Result<Page<T>, StoreError> {
        self.refuse_if_poisoned()?;
        let newest_sequence = std::cell::Cell::new(0);
        let page = self.page_of_streams(index, account, cursor, limit, &newest_sequence, select)?;
        self.wait_until_durable(newest_sequence.get()).await?;
        Ok(page)
    }

    /// A page of the charges or customers listed in a creation index, newest first; records in
    /// `newest_sequence` the newest event any state on the page reflects.
    pub(super) fn page_of_streams<T>(
        &self,
        index: &sled::Tree,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        newest_sequence: &std::cell::Cell<u64>,
        select: impl Fn(Projection) -> Option<T>,
    ) -> Result<Page<T>, StoreError> {
        let cursor_sequence = |stream_id: &str| -> Result<u64, StoreError> {
            Ok(self
                .load_sync(account, stream_id)?
                .map_or(0, |stored| stored.created_sequence))
        };
        self.page_in_index(
            index,
            account,
            cursor,
            limit,
            cursor_sequence,
            |_, value| {
                let stream_id = String::from_utf8_lossy(value);
                let Some((stored, sequence)) = self.load_with_sequence(account, &stream_id)? else {
                    return Ok(None);
                };
                newest_sequence.set(newest_sequence.get().max(sequence));
                Ok(select(stored.projection))
            },
        )
    }

    /// Walk an index keyed `account 0x00 sequence` from the cursor and keep up to `limit` items
    /// that `load` accepts; newest first. A cursor that names nothing known lists nothing, like
    /// a cursor past the end.
    pub(super) fn page_in_index<T>(
        &self,
        index: &sled::Tree,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        cursor_sequence: impl Fn(&str) -> Result<u64, StoreError>,
        mut load: impl FnMut(u64, &[u8]) -> Result<Option<T>, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let key_at = |sequence: u64| creation_key(account, sequence);
        let (entries, newest_first): (IndexEntries, bool) = match cursor {
            PageCursor::Newest => (
                Box::new(index.range(key_at(0)..=key_at(u64::MAX)).rev()),
                true,
            ),
            PageCursor::StartingAfter(id) => {
                let sequence = cursor_sequence(id)?;
                (
                    Box::new(index.range(key_at(0)..key_at(sequence)).rev()),
                    true,
                )
            }
            PageCursor::EndingBefore(id) => {
                let sequence = cursor_sequence(id)?;
                if sequence == 0 {
                    return Ok(Page {
                        data: Vec::new(),
                        has_more: false,
                    });
                }
                (
                    Box::new(index.range(key_at(sequence + 1)..=key_at(u64::MAX))),
                    false,
                )
            }
        };
        let mut data = Vec::new();
        for entry in entries {
            let (key, value) = entry?;
            let sequence = read_u64(&key, key.len().saturating_sub(8));
            if let Some(item) = load(sequence, &value)? {
                data.push(item);
                if data.len() > limit {
                    break;
                }
            }
        }
        let has_more = data.len() > limit;
        data.truncate(limit);
        if !newest_first {
            data.reverse();
        }
        Ok(Page { data, has_more })
    }

    pub(super) fn load_sync(
        &self,
        account: &str,
        stream_id: &str,
    ) -> Result<Option<StoredProjection>, StoreError> {
        let key = stream_key(account, stream_id);
        match self.trees.projections.get(&key)? {
            Some(value) => Ok(Some(self.decode_projection(&key, &value)?)),
            None => Ok(None),
        }
    }

    /// A stream's stored state and the sequence of the event it reflects.
    pub(super) fn load_with_sequence(
        &self,
        account: &str,
        stream_id: &str,
    ) -> Result<Option<(StoredProjection, u64)>, StoreError> {
        let key = stream_key(account, stream_id);
        let Some(value) = self.trees.projections.get(&key)? else {
            return Ok(None);
        };
        let stored = self.decode_projection(&key, &value)?;
        let sequence = self.sequence_of_version(&key, stored.version)?;
        Ok(Some((stored, sequence)))
    }
}

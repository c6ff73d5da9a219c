//! The sled search index: entries written with appends, filled from projections on upgrade and rebuild, and read by key or key range.
//!
//! An entry is `account 0x00 · search key · creation sequence (8 bytes, big-endian)` → stream
//! id, so one key's entries read newest first by iterating backwards.

use super::*;
use crate::domain::search::{SearchKeyChanges, index_keys};
use crate::store::{IndexEntry, IndexScan};

/// The tree key of one entry.
pub(super) fn search_entry_key(account: &str, search_key: &[u8], created_sequence: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(account.len() + 1 + search_key.len() + 8);
    key.extend_from_slice(account.as_bytes());
    key.push(0);
    key.extend_from_slice(search_key);
    key.extend_from_slice(&created_sequence.to_be_bytes());
    key
}

/// Stage what one write changes in the index: added keys written, lost keys removed.
pub(super) fn stage_search_keys(
    account: &str,
    stream_id: &str,
    created_sequence: u64,
    changes: &SearchKeyChanges,
    staged: &mut Staged,
) {
    for key in &changes.removed {
        staged.removals.push((
            TreeName::SearchKeys,
            search_entry_key(account, key, created_sequence),
        ));
    }
    push_all_search_keys(
        account,
        stream_id,
        created_sequence,
        &changes.added,
        &mut staged.writes,
    );
}

/// Push an entry for each key.
pub(super) fn push_all_search_keys(
    account: &str,
    stream_id: &str,
    created_sequence: u64,
    keys: &[Vec<u8>],
    writes: &mut Vec<(TreeName, Vec<u8>, Vec<u8>)>,
) {
    for key in keys {
        writes.push((
            TreeName::SearchKeys,
            search_entry_key(account, key, created_sequence),
            stream_id.as_bytes().to_vec(),
        ));
    }
}

/// Index every projection (layouts 3 and 4 → 5). Idempotent: entries are rewritten as they are.
pub(super) fn add_search_keys(path: &Path, trees: &Trees) -> Result<u64, StoreError> {
    let mut indexed = 0;
    for entry in trees.projections.iter() {
        let (key, value) = entry?;
        let stored = decode_projection(&value).map_err(|detail| StoreError::CorruptRecord {
            path: path.display().to_string(),
            location: format!("projection {}", String::from_utf8_lossy(&key)),
            detail,
        })?;
        let keys = index_keys(&stored.projection);
        if keys.is_empty() {
            continue;
        }
        let Some(split) = key.iter().position(|byte| *byte == 0) else {
            return Err(StoreError::CorruptRecord {
                path: path.display().to_string(),
                location: format!("projection {}", String::from_utf8_lossy(&key)),
                detail: "the key is not an account and a stream id".to_string(),
            });
        };
        let account = String::from_utf8_lossy(&key[..split]);
        let stream_id = &key[split + 1..];
        for search_key in keys {
            trees.search_keys.insert(
                search_entry_key(&account, &search_key, stored.created_sequence),
                stream_id,
            )?;
        }
        indexed += 1;
    }
    Ok(indexed)
}

impl SledStore {
    /// The newest event committed to sled, durable or not yet.
    pub(super) fn committed_sequence(&self) -> Result<u64, StoreError> {
        Ok(match self.trees.events.last()? {
            Some((key, _)) if key.len() >= 8 => read_u64(&key, 0),
            Some(_) => {
                return Err(self.corrupt(
                    "the events tree".to_string(),
                    "an event key is shorter than a sequence",
                ));
            }
            None => 0,
        })
    }

    /// Entries of the account's index as `scan` says, up to `limit`, never past the durable head.
    pub(super) fn scan_search_entries(
        &self,
        account: &str,
        scan: IndexScan<'_>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        self.refuse_if_poisoned()?;
        let durable = self.durable_limit();
        let base = search_entry_key(account, &[], 0);
        let prefix = &base[..base.len() - 8];
        let (entries, newest_first): (IndexEntries, bool) = match scan {
            IndexScan::Newest {
                key,
                below_sequence,
            } => {
                let low = search_entry_key(account, key, 0);
                let high = search_entry_key(account, key, below_sequence);
                (
                    Box::new(self.trees.search_keys.range(low..high).rev()),
                    true,
                )
            }
            IndexScan::Between { from, to } => {
                let mut low = prefix.to_vec();
                low.extend_from_slice(from);
                let mut high = prefix.to_vec();
                high.extend_from_slice(to);
                if low >= high {
                    return Ok(Vec::new());
                }
                (Box::new(self.trees.search_keys.range(low..high)), false)
            }
        };
        let mut found = Vec::new();
        for entry in entries {
            let (key, value) = entry?;
            if key.len() < prefix.len() + 8 {
                return Err(self.corrupt(
                    format!("search index of {account}"),
                    "an entry is shorter than a creation sequence",
                ));
            }
            let created_sequence = read_u64(&key, key.len() - 8);
            if created_sequence > durable {
                continue;
            }
            let Ok(stream_id) = String::from_utf8(value.to_vec()) else {
                return Err(self.corrupt(
                    format!("search index of {account}"),
                    "an entry's stream id is not UTF-8",
                ));
            };
            found.push(IndexEntry {
                created_sequence,
                stream_id,
            });
            if found.len() >= limit {
                break;
            }
        }
        debug_assert!(
            !newest_first
                || found
                    .windows(2)
                    .all(|pair| pair[0].created_sequence > pair[1].created_sequence),
            "one key's entries read newest first"
        );
        Ok(found)
    }
}

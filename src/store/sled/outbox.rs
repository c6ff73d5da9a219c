//! The outbox in sled: delivery records and their due queue in the `outbox` tree, staged with appends or saved by the writer, claimed under in-memory leases.
//!
//! Keys: `r` account 0x00 event sequence (8 bytes) number (4 bytes) → `Delivery` JSON; `q` due
//! time in Unix ms (8 bytes) then the same suffix → nothing, for pending deliveries only. One
//! process holds a data directory, so the leases that keep a claimed delivery from being
//! claimed again live in memory.

use std::collections::HashMap;

use super::*;
use crate::store::Delivery;
use crate::store::outbox::encode_delivery;

const RECORD_PREFIX: u8 = b'r';
const QUEUE_PREFIX: u8 = b'q';

fn record_suffix(account: &str, event_sequence: u64, number: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(account.len() + 13);
    key.extend_from_slice(account.as_bytes());
    key.push(0);
    key.extend_from_slice(&event_sequence.to_be_bytes());
    key.extend_from_slice(&number.to_be_bytes());
    key
}

pub(super) fn record_key(delivery: &Delivery) -> Vec<u8> {
    let mut key = vec![RECORD_PREFIX];
    key.extend(record_suffix(
        &delivery.account,
        delivery.event_sequence,
        delivery.number,
    ));
    key
}

/// The queue entry of a pending delivery; `None` for one that is not pending.
pub(super) fn queue_key(delivery: &Delivery) -> Option<Vec<u8>> {
    let due_at_ms = delivery.state.due_at_ms()?;
    let mut key = vec![QUEUE_PREFIX];
    key.extend_from_slice(&(due_at_ms.max(0) as u64).to_be_bytes());
    key.extend(record_suffix(
        &delivery.account,
        delivery.event_sequence,
        delivery.number,
    ));
    Some(key)
}

/// The writes of a new delivery: its record and its queue entry.
pub(super) fn stage_new_delivery(
    delivery: &Delivery,
    writes: &mut Vec<(TreeName, Vec<u8>, Vec<u8>)>,
) {
    writes.push((
        TreeName::Outbox,
        record_key(delivery),
        encode_delivery(delivery),
    ));
    if let Some(queue) = queue_key(delivery) {
        writes.push((TreeName::Outbox, queue, Vec::new()));
    }
}

impl Writer {
    /// Stage saved deliveries (the last save of each in the batch wins): the record, the queue
    /// entry it now has, and the removal of the one it had.
    pub(super) fn stage_saved_deliveries(
        &self,
        deliveries: Vec<Delivery>,
        staged: &mut Staged,
    ) -> Result<(), StoreError> {
        let mut last: HashMap<Vec<u8>, Delivery> = HashMap::new();
        for delivery in deliveries {
            last.insert(record_key(&delivery), delivery);
        }
        for (key, delivery) in last {
            if let Some(stored) = self.trees.outbox.get(&key)? {
                let stored: Delivery =
                    serde_json::from_slice(&stored).map_err(|error| StoreError::CorruptRecord {
                        path: self.path.clone(),
                        location: format!("delivery {}", delivery.id()),
                        detail: error.to_string(),
                    })?;
                if let Some(old_queue) = queue_key(&stored) {
                    staged.removals.push((TreeName::Outbox, old_queue));
                }
            }
            stage_new_delivery(&delivery, &mut staged.writes);
        }
        Ok(())
    }
}

impl SledStore {
    fn decode_delivery(&self, key: &[u8], value: &[u8]) -> Result<Delivery, StoreError> {
        serde_json::from_slice(value).map_err(|error| {
            self.corrupt(
                format!("outbox record {}", String::from_utf8_lossy(key)),
                error,
            )
        })
    }

    pub(super) fn claim_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.refuse_if_poisoned()?;
        let durable = self.durable_limit();
        let mut end = vec![QUEUE_PREFIX];
        end.extend_from_slice(&((now_ms.max(0) as u64) + 1).to_be_bytes());
        let mut leases = self.leases.lock().map_err(|_| StoreError::Closed)?;
        leases.retain(|_, until_ms| *until_ms > now_ms);
        let mut claimed = Vec::new();
        for entry in self.trees.outbox.range(vec![QUEUE_PREFIX]..end) {
            if claimed.len() >= limit {
                break;
            }
            let (queue, _) = entry?;
            let mut key = vec![RECORD_PREFIX];
            key.extend_from_slice(&queue[9..]);
            if leases.contains_key(&key) {
                continue;
            }
            // A queue entry whose record moved on (saved with another due time) is stale.
            let Some(value) = self.trees.outbox.get(&key)? else {
                continue;
            };
            let delivery = self.decode_delivery(&key, &value)?;
            if queue_key(&delivery).as_deref() != Some(&queue[..])
                || delivery.event_sequence > durable
            {
                continue;
            }
            leases.insert(key, now_ms + lease_ms);
            claimed.push(delivery);
        }
        Ok(claimed)
    }

    pub(super) fn release_leases(&self, deliveries: &[Delivery]) {
        if let Ok(mut leases) = self.leases.lock() {
            for delivery in deliveries {
                leases.remove(&record_key(delivery));
            }
        }
    }

    pub(super) fn deliveries_of_event(
        &self,
        account: &str,
        event_sequence: u64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.refuse_if_poisoned()?;
        let mut prefix = vec![RECORD_PREFIX];
        prefix.extend_from_slice(account.as_bytes());
        prefix.push(0);
        prefix.extend_from_slice(&event_sequence.to_be_bytes());
        self.trees
            .outbox
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, value) = entry?;
                self.decode_delivery(&key, &value)
            })
            .collect()
    }

    pub(super) fn deliveries_in_key_order(
        &self,
        after: Option<(String, u64, u32)>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.refuse_if_poisoned()?;
        let start = match &after {
            Some((account, sequence, number)) => {
                let mut key = vec![RECORD_PREFIX];
                key.extend(record_suffix(account, *sequence, *number));
                key.push(0);
                key
            }
            None => vec![RECORD_PREFIX],
        };
        let mut deliveries = Vec::new();
        for entry in self.trees.outbox.range(start..vec![RECORD_PREFIX + 1]) {
            if deliveries.len() >= limit {
                break;
            }
            let (key, value) = entry?;
            deliveries.push(self.decode_delivery(&key, &value)?);
        }
        Ok(deliveries)
    }
}

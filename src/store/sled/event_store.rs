//! `EventStore` for `SledStore`: each operation forwarded to a read or to a writer job.

use super::*;

#[async_trait]
impl EventStore for SledStore {
    async fn append(&self, request: AppendRequest) -> Result<Vec<RecordedEvent>, StoreError> {
        self.submit(|reply| Job::Append(Box::new(request), reply))
            .await
    }

    async fn load(
        &self,
        account: &str,
        stream_id: &str,
    ) -> Result<Option<StoredProjection>, StoreError> {
        self.refuse_if_poisoned()?;
        let Some((stored, sequence)) = self.load_with_sequence(account, stream_id)? else {
            return Ok(None);
        };
        self.wait_until_durable(sequence).await?;
        Ok(Some(stored))
    }

    async fn read_stream(
        &self,
        account: &str,
        stream_id: &str,
        max_version: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.refuse_if_poisoned()?;
        let mut prefix = stream_key(account, stream_id);
        prefix.push(0);
        let durable = self.durable_limit();
        let mut events = Vec::new();
        for entry in self.trees.streams.scan_prefix(&prefix) {
            let (key, sequence_bytes) = entry?;
            let version = read_u64(&key, prefix.len());
            if max_version.is_some_and(|max| version > max) {
                break;
            }
            let sequence = read_u64(&sequence_bytes, 0);
            if sequence > durable {
                break;
            }
            let event_key = sequence.to_be_bytes();
            let value = self.trees.events.get(event_key)?.ok_or_else(|| {
                self.corrupt(
                    format!("stream {stream_id} version {version}"),
                    format!("the stream index points at event #{sequence}, which is missing"),
                )
            })?;
            events.push(self.decode_event(&event_key, &value)?);
        }
        Ok(events)
    }

    async fn read_all_after(
        &self,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.durable_records_after(after_sequence, limit)?
            .iter()
            .map(|(key, value)| self.decode_event(key, value))
            .collect()
    }

    async fn count_projections(&self) -> Result<u64, StoreError> {
        self.refuse_if_poisoned()?;
        // Keys and values are walked but not decoded.
        Ok(self.trees.projections.len() as u64)
    }

    async fn read_all_after_hashed(
        &self,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<HashedEvent>, StoreError> {
        self.read_hashed_page(after_sequence, limit).await
    }

    async fn list_charges(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        filter: &(dyn for<'charge> Fn(&'charge ChargeState) -> bool + Send + Sync),
    ) -> Result<Page<ChargeState>, StoreError> {
        self.durable_page_of_streams(
            &self.trees.charges_by_creation,
            account,
            cursor,
            limit,
            |projection| match projection {
                Projection::Charge(charge) if filter(&charge) => Some(*charge),
                _ => None,
            },
        )
        .await
    }

    async fn list_customers(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
    ) -> Result<Page<Customer>, StoreError> {
        self.durable_page_of_streams(
            &self.trees.customers_by_creation,
            account,
            cursor,
            limit,
            |projection| match projection {
                Projection::Customer(customer) => Some(customer),
                _ => None,
            },
        )
        .await
    }

    async fn list_events(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        filter: &(dyn for<'event> Fn(&'event RecordedEvent) -> bool + Send + Sync),
    ) -> Result<Page<RecordedEvent>, StoreError> {
        self.refuse_if_poisoned()?;
        let durable = self.durable_limit();
        let cursor_sequence = |event_id: &str| -> Result<u64, StoreError> {
            Ok(self
                .trees
                .event_ids
                .get(stream_key(account, event_id))?
                .map_or(0, |value| read_u64(&value, 0)))
        };
        self.page_in_index(
            &self.trees.account_events,
            account,
            cursor,
            limit,
            cursor_sequence,
            |sequence, _| {
                if sequence > durable {
                    return Ok(None);
                }
                let key = sequence.to_be_bytes();
                let Some(value) = self.trees.events.get(key)? else {
                    return Ok(None);
                };
                let event = self.decode_event(&key, &value)?;
                Ok(filter(&event).then_some(event))
            },
        )
    }

    async fn event(
        &self,
        account: &str,
        event_id: &str,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        self.refuse_if_poisoned()?;
        let Some(sequence) = self.trees.event_ids.get(stream_key(account, event_id))? else {
            return Ok(None);
        };
        let sequence = read_u64(&sequence, 0);
        if sequence > self.durable_limit() {
            return Ok(None);
        }
        let key = sequence.to_be_bytes();
        match self.trees.events.get(key)? {
            Some(value) => Ok(Some(self.decode_event(&key, &value)?)),
            None => Ok(None),
        }
    }

    async fn list_refunds(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        filter: &(dyn for<'refund> Fn(&'refund RefundLocation) -> bool + Send + Sync),
    ) -> Result<Page<RefundLocation>, StoreError> {
        self.page_of_refunds(account, cursor, limit, filter)
    }

    async fn find_refund(
        &self,
        account: &str,
        refund_id: &str,
    ) -> Result<Option<RefundLocation>, StoreError> {
        Ok(self
            .located_refund(account, refund_id)?
            .map(|(_, location)| location))
    }

    async fn scan_search_index(
        &self,
        account: &str,
        scan: IndexScan<'_>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        // A key's removal shows in sled once its batch commits, before the batch's sync: wait
        // for the newest committed batch (one group commit at most), so that no answer rests on
        // a change a crash could take back.
        self.wait_until_durable(self.committed_sequence()?).await?;
        self.scan_search_entries(account, scan, limit)
    }

    async fn purge_idempotency(&self, created_before_unix: i64) -> Result<usize, StoreError> {
        self.submit(|reply| Job::PurgeIdempotency(created_before_unix, reply))
            .await
    }

    async fn idempotency_record(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.refuse_if_poisoned()?;
        let record_key = stream_key(account, key);
        let Some(value) = self.trees.idempotency.get(&record_key)? else {
            return Ok(None);
        };
        let record: IdempotencyRecord = serde_json::from_slice(&value)
            .map_err(|error| self.corrupt(format!("idempotency record {key}"), error))?;
        // A record is written with its request's events; replaying it before they are durable
        // would acknowledge what a crash could take back.
        self.wait_until_durable(record.sequence).await?;
        Ok(Some(record))
    }

    async fn read_projections_after(
        &self,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<ProjectionRows, StoreError> {
        self.refuse_if_poisoned()?;
        let entries = match &after {
            Some((account, stream_id)) => {
                let mut start = stream_key(account, stream_id);
                start.push(0);
                self.trees.projections.range(start..)
            }
            None => self.trees.projections.iter(),
        };
        let mut rows = Vec::new();
        for entry in entries.take(limit) {
            let (key, value) = entry?;
            let stored = self.decode_projection(&key, &value)?;
            let (account, stream_id) = split_stream_key(&key);
            rows.push((account, stream_id, stored));
        }
        Ok(rows)
    }

    async fn put_projections(&self, projections: ProjectionRows) -> Result<(), StoreError> {
        self.submit(|reply| Job::PutProjections(projections, reply))
            .await
    }

    fn projections_are_stale(&self) -> bool {
        self.projections_stale
            .load(std::sync::atomic::Ordering::Acquire)
    }

    async fn mark_projections_current(&self) -> Result<(), StoreError> {
        let (db, meta, path) = (self.db.clone(), self.trees.meta.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            meta.insert(FORMAT_KEY, FORMAT_VALUE)?;
            db.flush()?;
            // sled's flush does not fsync: the layout may say 5 only once it is on the disk.
            DurableSync::open(&path)?.sync()?;
            Ok(())
        })
        .await
        .map_err(|error| StoreError::Io(std::io::Error::other(error)))??;
        self.projections_stale
            .store(false, std::sync::atomic::Ordering::Release);
        info!(path = %self.path.display(), "projections rebuilt; the store is now layout 4");
        Ok(())
    }

    async fn import(
        &self,
        events: Vec<RecordedEvent>,
        projections: ProjectionRows,
    ) -> Result<(), StoreError> {
        self.submit(|reply| Job::Import(events, projections, reply))
            .await
    }

    async fn head(&self) -> Result<Option<ChainHead>, StoreError> {
        Ok(self
            .durable_head
            .lock()
            .map_err(|_| StoreError::Closed)?
            .clone())
    }

    fn durable_sequence(&self) -> watch::Receiver<u64> {
        self.durable_sequence.clone()
    }

    async fn accounts_owning(&self, stream_id: &str) -> Result<Vec<String>, StoreError> {
        self.refuse_if_poisoned()?;
        let mut prefix = stream_id.as_bytes().to_vec();
        prefix.push(0);
        let mut accounts = Vec::new();
        for entry in self.trees.owners.scan_prefix(&prefix) {
            let (key, _) = entry?;
            accounts.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        }
        Ok(accounts)
    }

    async fn disk_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
        _claimant: &str,
    ) -> Result<Vec<crate::store::Delivery>, StoreError> {
        // One process holds a data directory: every lease is this process's.
        self.claim_due(now_ms, lease_ms, limit)
    }

    async fn release_claims(&self, _claimant: &str) -> Result<u64, StoreError> {
        // Leases live in this process's memory; an earlier run's ended with it.
        Ok(0)
    }

    async fn save_deliveries(
        &self,
        deliveries: Vec<crate::store::Delivery>,
    ) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let saved = deliveries.clone();
        self.submit(|reply| Job::SaveDeliveries(deliveries, reply))
            .await?;
        self.release_leases(&saved);
        Ok(())
    }

    async fn event_deliveries(
        &self,
        account: &str,
        event_sequence: u64,
    ) -> Result<Vec<crate::store::Delivery>, StoreError> {
        self.deliveries_of_event(account, event_sequence)
    }

    async fn deliveries_after(
        &self,
        after: Option<(String, u64, u32)>,
        limit: usize,
    ) -> Result<Vec<crate::store::Delivery>, StoreError> {
        self.deliveries_in_key_order(after, limit)
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Dropping the sender lets the writer finish its queue and exit.
        drop(self.jobs.lock().map_err(|_| StoreError::Closed)?.take());
        let writer = self.writer.lock().map_err(|_| StoreError::Closed)?.take();
        if let Some(writer) = writer {
            tokio::task::spawn_blocking(move || writer.join())
                .await
                .map_err(|error| StoreError::Io(std::io::Error::other(error)))?
                .map_err(|_| StoreError::Io(std::io::Error::other("the writer thread panicked")))?;
        }
        self.db.flush_async().await?;
        info!(path = %self.path.display(), "closed sled store");
        Ok(())
    }
}

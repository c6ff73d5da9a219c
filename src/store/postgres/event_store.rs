//! `EventStore` for `PostgresStore`: writes go to the writer task, reads are queries on the pool.
//!
//! Everything a query can see is committed, and a commit is durable, so no read waits for a
//! sync as sled's do.

use async_trait::async_trait;
use tokio::sync::watch;

use super::reads::{LIST_CHUNK_ROWS, empty_page, finish_page};
use super::{Job, PostgresStore, to_i64, to_u64, writer};
use crate::domain::{ChargeState, Customer, Projection};
use crate::events::RecordedEvent;
use crate::store::stored_event::decode_hashed_record;
use crate::store::{
    AppendRequest, ChainHead, EventStore, HashedEvent, IdempotencyRecord, IndexEntry, IndexScan,
    Page, PageCursor, RefundLocation, StoreError, StoredProjection,
};

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(&self, request: AppendRequest) -> Result<Vec<RecordedEvent>, StoreError> {
        self.submit(|reply| Job::Append(Box::new(request), reply))
            .await
    }

    async fn load(
        &self,
        account: &str,
        stream_id: &str,
    ) -> Result<Option<StoredProjection>, StoreError> {
        let row = self.query_opt("SELECT account, stream_id, version, created_sequence, state FROM chargeledger_projections
                 WHERE account = $1 AND stream_id = $2", &[&account, &stream_id]).await?;
        row.map(|row| self.decode_projection(&row).map(|(_, _, stored)| stored))
            .transpose()
    }

    async fn read_stream(
        &self,
        account: &str,
        stream_id: &str,
        max_version: Option<u64>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let max_version = max_version.map_or(i64::MAX, |max| to_i64(max.min(i64::MAX as u64)));
        let rows = self
            .query_rows(
                "SELECT sequence, record FROM chargeledger_events
                 WHERE account = $1 AND stream_id = $2 AND stream_version <= $3
                 ORDER BY stream_version",
                &[&account, &stream_id, &max_version],
            )
            .await?;
        rows.iter()
            .map(|row| self.decode_event(row.get(0), row.get(1)))
            .collect()
    }

    async fn read_all_after(
        &self,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.records_after(after_sequence, limit)
            .await?
            .iter()
            .map(|row| self.decode_event(row.get(0), row.get(1)))
            .collect()
    }

    async fn read_all_after_hashed(
        &self,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<HashedEvent>, StoreError> {
        let rows = self.records_after(after_sequence, limit).await?;
        // Decoded off the async workers: a page is thousands of events.
        let location = self.location.clone();
        tokio::task::spawn_blocking(move || {
            rows.iter()
                .map(|row| {
                    let sequence: i64 = row.get(0);
                    let record: &str = row.get(1);
                    decode_hashed_record(record.as_bytes()).map_err(|detail| {
                        StoreError::CorruptRecord {
                            path: location.clone(),
                            location: format!("event #{sequence}"),
                            detail,
                        }
                    })
                })
                .collect()
        })
        .await
        .map_err(|error| StoreError::Io(std::io::Error::other(error)))?
    }

    async fn list_charges(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        filter: &(dyn for<'charge> Fn(&'charge ChargeState) -> bool + Send + Sync),
    ) -> Result<Page<ChargeState>, StoreError> {
        self.page_of_projections(
            account,
            "charge",
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
        self.page_of_projections(
            account,
            "customer",
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
        let sequence_of = |event_id: String| async move {
            let row = self
                .query_opt(
                    "SELECT sequence FROM chargeledger_events WHERE account = $1 AND event_id = $2",
                    &[&account, &event_id],
                )
                .await?;
            Ok::<i64, StoreError>(row.map_or(0, |row| row.get(0)))
        };
        let (mut bound, newest_first) = match cursor {
            PageCursor::Newest => (i64::MAX, true),
            PageCursor::StartingAfter(id) => (sequence_of(id.clone()).await?, true),
            PageCursor::EndingBefore(id) => match sequence_of(id.clone()).await? {
                0 => return Ok(empty_page()),
                sequence => (sequence, false),
            },
        };
        let query = if newest_first {
            "SELECT sequence, record FROM chargeledger_events WHERE account = $1 AND sequence < $2
             ORDER BY sequence DESC LIMIT $3"
        } else {
            "SELECT sequence, record FROM chargeledger_events WHERE account = $1 AND sequence > $2
             ORDER BY sequence ASC LIMIT $3"
        };
        let mut data = Vec::new();
        loop {
            let rows = self
                .query_rows(query, &[&account, &bound, &LIST_CHUNK_ROWS])
                .await?;
            let exhausted = (rows.len() as i64) < LIST_CHUNK_ROWS;
            for row in &rows {
                bound = row.get(0);
                let event = self.decode_event(bound, row.get(1))?;
                if filter(&event) {
                    data.push(event);
                }
                if data.len() > limit {
                    break;
                }
            }
            if data.len() > limit || exhausted {
                break;
            }
        }
        Ok(finish_page(data, limit, newest_first))
    }

    async fn event(
        &self,
        account: &str,
        event_id: &str,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        let row = self.query_opt("SELECT sequence, record FROM chargeledger_events WHERE account = $1 AND event_id = $2", &[&account, &event_id]).await?;
        row.map(|row| self.decode_event(row.get(0), row.get(1)))
            .transpose()
    }

    async fn list_refunds(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        filter: &(dyn for<'refund> Fn(&'refund RefundLocation) -> bool + Send + Sync),
    ) -> Result<Page<RefundLocation>, StoreError> {
        self.page_of_refunds(account, cursor, limit, filter).await
    }

    async fn find_refund(
        &self,
        account: &str,
        refund_id: &str,
    ) -> Result<Option<RefundLocation>, StoreError> {
        let row = self
            .query_opt(
                "SELECT charge_id, created FROM chargeledger_refunds WHERE account = $1 AND refund_id = $2",
                &[&account, &refund_id],
            )
            .await?;
        Ok(row.map(|row| RefundLocation {
            charge_id: row.get(0),
            refund_id: refund_id.to_string(),
            created: row.get(1),
        }))
    }

    async fn scan_search_index(
        &self,
        account: &str,
        scan: IndexScan<'_>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        self.search_entries(account, scan, limit).await
    }

    async fn purge_idempotency(&self, created_before_unix: i64) -> Result<usize, StoreError> {
        let removed = self
            .execute(
                "DELETE FROM chargeledger_idempotency WHERE created_at_unix < $1",
                &[&created_before_unix],
            )
            .await?;
        Ok(removed as usize)
    }

    async fn idempotency_record(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row = self
            .query_opt(
                "SELECT record FROM chargeledger_idempotency WHERE account = $1 AND key = $2",
                &[&account, &key],
            )
            .await?;
        row.map(|row| {
            serde_json::from_str(row.get(0))
                .map_err(|error| self.corrupt(format!("idempotency record {key}"), error))
        })
        .transpose()
    }

    async fn read_projections_after(
        &self,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<(String, String, StoredProjection)>, StoreError> {
        let (account, stream_id) = after.unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Ordered like sled's keys: byte order (the columns are COLLATE "C"); the empty pair
        // sorts before every stored one.
        let rows = self.query_rows("SELECT account, stream_id, version, created_sequence, state FROM chargeledger_projections
                 WHERE (account, stream_id) > ($1, $2)
                 ORDER BY account, stream_id LIMIT $3", &[&account, &stream_id, &limit]).await?;
        rows.iter().map(|row| self.decode_projection(row)).collect()
    }

    async fn count_projections(&self) -> Result<u64, StoreError> {
        let row = self
            .query_one("SELECT count(*) FROM chargeledger_projections", &[])
            .await?;
        to_u64(row.get(0), "projection count")
    }

    async fn put_projections(
        &self,
        projections: Vec<(String, String, StoredProjection)>,
    ) -> Result<(), StoreError> {
        self.submit(|reply| Job::PutProjections(projections, reply))
            .await
    }

    async fn import(
        &self,
        events: Vec<RecordedEvent>,
        projections: Vec<(String, String, StoredProjection)>,
    ) -> Result<(), StoreError> {
        self.submit(|reply| Job::Import(events, projections, reply))
            .await
    }

    async fn head(&self) -> Result<Option<ChainHead>, StoreError> {
        let client = self.client().await?;
        let head = writer::read_head(&client).await?;
        Ok((head.sequence > 0).then_some(head))
    }

    fn durable_sequence(&self) -> watch::Receiver<u64> {
        self.durable_sequence.clone()
    }

    async fn accounts_owning(&self, stream_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = self.query_rows("SELECT account FROM chargeledger_projections WHERE stream_id = $1 ORDER BY account", &[&stream_id]).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn disk_bytes(&self) -> Result<u64, StoreError> {
        let row = self
            .query_one(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind = 'r' AND c.relname LIKE 'chargeledger\\_%'
                   AND n.nspname = current_schema()",
                &[],
            )
            .await?;
        to_u64(row.get(0), "size")
    }

    async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
        claimant: &str,
    ) -> Result<Vec<crate::store::Delivery>, StoreError> {
        self.claim_due(now_ms, lease_ms, limit, claimant).await
    }

    async fn release_claims(&self, claimant: &str) -> Result<u64, StoreError> {
        self.execute(
            "UPDATE chargeledger_deliveries SET lease_until_ms = 0, lease_owner = ''
             WHERE lease_owner = $1 AND next_attempt_at_ms IS NOT NULL",
            &[&claimant],
        )
        .await
    }

    async fn save_deliveries(
        &self,
        deliveries: Vec<crate::store::Delivery>,
    ) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        self.save(deliveries).await
    }

    async fn event_deliveries(
        &self,
        account: &str,
        event_sequence: u64,
    ) -> Result<Vec<crate::store::Delivery>, StoreError> {
        self.deliveries_of_event(account, event_sequence).await
    }

    async fn deliveries_after(
        &self,
        after: Option<(String, u64, u32)>,
        limit: usize,
    ) -> Result<Vec<crate::store::Delivery>, StoreError> {
        self.deliveries_in_key_order(after, limit).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Dropping the sender lets the writer finish its queue and exit.
        drop(self.jobs.lock().map_err(|_| StoreError::Closed)?.take());
        let writer = self.writer.lock().map_err(|_| StoreError::Closed)?.take();
        if let Some(writer) = writer {
            writer
                .await
                .map_err(|error| StoreError::Io(std::io::Error::other(error)))?;
        }
        self.listener.abort();
        self.pool.close();
        Ok(())
    }
}

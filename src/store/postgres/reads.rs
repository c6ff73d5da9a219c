//! The read side of `PostgresStore`: queries through deadpool's statement cache, row decoding and newest-first pages.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PostgresStore, database_error, to_i64, to_u64};
use crate::domain::Projection;
use crate::events::RecordedEvent;
use crate::store::{
    IndexEntry, IndexScan, Page, PageCursor, RefundLocation, StoreError, StoredProjection,
};

/// Rows fetched per query while a filtered list looks for a page's worth of matches.
pub(super) const LIST_CHUNK_ROWS: i64 = 200;

impl PostgresStore {
    /// Run `sql` on a pooled connection, prepared once per connection (deadpool keeps the cache).
    pub(super) async fn query_rows(
        &self,
        sql: &str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(database_error)?;
        client
            .query(&statement, parameters)
            .await
            .map_err(database_error)
    }

    pub(super) async fn query_opt(
        &self,
        sql: &str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let mut rows = self.query_rows(sql, parameters).await?;
        if rows.len() > 1 {
            return Err(StoreError::Database(format!(
                "a query for one row found {}: {sql}",
                rows.len()
            )));
        }
        Ok(rows.pop())
    }

    pub(super) async fn query_one(
        &self,
        sql: &str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, StoreError> {
        self.query_opt(sql, parameters)
            .await?
            .ok_or_else(|| StoreError::Database(format!("a query for one row found none: {sql}")))
    }

    pub(super) async fn execute(
        &self,
        sql: &str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(database_error)?;
        client
            .execute(&statement, parameters)
            .await
            .map_err(database_error)
    }

    pub(super) fn decode_event(
        &self,
        sequence: i64,
        record: &str,
    ) -> Result<RecordedEvent, StoreError> {
        serde_json::from_str(record)
            .map_err(|error| self.corrupt(format!("event #{sequence}"), error))
    }

    pub(super) fn decode_projection(
        &self,
        row: &Row,
    ) -> Result<(String, String, StoredProjection), StoreError> {
        let (account, stream_id): (String, String) = (row.get("account"), row.get("stream_id"));
        let state: String = row.get("state");
        let projection: Projection = serde_json::from_str(&state)
            .map_err(|error| self.corrupt(format!("projection {account}/{stream_id}"), error))?;
        let stored = StoredProjection {
            version: to_u64(row.get("version"), "stream version")?,
            created_sequence: to_u64(row.get("created_sequence"), "creation sequence")?,
            projection,
        };
        Ok((account, stream_id, stored))
    }

    /// The creation sequence of a cursor's stream (0 if unknown: such a cursor lists nothing).
    pub(super) async fn creation_of(
        &self,
        account: &str,
        stream_id: &str,
    ) -> Result<i64, StoreError> {
        let row = self.query_opt("SELECT created_sequence FROM chargeledger_projections WHERE account = $1 AND stream_id = $2", &[&account, &stream_id]).await?;
        Ok(row.map_or(0, |row| row.get(0)))
    }

    /// A newest-first page of an account's charges or customers that `select` keeps.
    pub(super) async fn page_of_projections<T>(
        &self,
        account: &str,
        kind: &str,
        cursor: &PageCursor,
        limit: usize,
        select: impl Fn(Projection) -> Option<T>,
    ) -> Result<Page<T>, StoreError> {
        let (bound, newest_first) = match cursor {
            PageCursor::Newest => (i64::MAX, true),
            PageCursor::StartingAfter(id) => (self.creation_of(account, id).await?, true),
            PageCursor::EndingBefore(id) => match self.creation_of(account, id).await? {
                0 => return Ok(empty_page()),
                sequence => (sequence, false),
            },
        };
        let query = if newest_first {
            "SELECT account, stream_id, version, created_sequence, state FROM chargeledger_projections
             WHERE account = $1 AND kind = $2 AND created_sequence < $3
             ORDER BY created_sequence DESC LIMIT $4"
        } else {
            "SELECT account, stream_id, version, created_sequence, state FROM chargeledger_projections
             WHERE account = $1 AND kind = $2 AND created_sequence > $3
             ORDER BY created_sequence ASC LIMIT $4"
        };
        let data = self
            .collect_in_chunks(
                query,
                &[&account, &kind],
                bound,
                "created_sequence",
                limit,
                |row| {
                    let (_, _, stored) = self.decode_projection(row)?;
                    Ok(select(stored.projection))
                },
            )
            .await?;
        Ok(finish_page(data, limit, newest_first))
    }
}

impl PostgresStore {
    /// A newest-first page of an account's refunds, from the refund index.
    pub(super) async fn page_of_refunds(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        filter: &(dyn for<'refund> Fn(&'refund RefundLocation) -> bool + Send + Sync),
    ) -> Result<Page<RefundLocation>, StoreError> {
        let sequence_of = |refund_id: String| async move {
            let row = self
                .query_opt(
                    "SELECT sequence FROM chargeledger_refunds WHERE account = $1 AND refund_id = $2",
                    &[&account, &refund_id],
                )
                .await?;
            Ok::<i64, StoreError>(row.map_or(0, |row| row.get(0)))
        };
        let (bound, newest_first) = match cursor {
            PageCursor::Newest => (i64::MAX, true),
            PageCursor::StartingAfter(id) => (sequence_of(id.clone()).await?, true),
            PageCursor::EndingBefore(id) => match sequence_of(id.clone()).await? {
                0 => return Ok(empty_page()),
                sequence => (sequence, false),
            },
        };
        let query = if newest_first {
            "SELECT charge_id, refund_id, created, sequence FROM chargeledger_refunds
             WHERE account = $1 AND sequence < $2 ORDER BY sequence DESC LIMIT $3"
        } else {
            "SELECT charge_id, refund_id, created, sequence FROM chargeledger_refunds
             WHERE account = $1 AND sequence > $2 ORDER BY sequence ASC LIMIT $3"
        };
        let data = self
            .collect_in_chunks(query, &[&account], bound, "sequence", limit, |row| {
                let location = RefundLocation {
                    charge_id: row.get(0),
                    refund_id: row.get(1),
                    created: row.get(2),
                };
                Ok(filter(&location).then_some(location))
            })
            .await?;
        Ok(finish_page(data, limit, newest_first))
    }
}

impl PostgresStore {
    /// Up to `limit + 1` items kept by `keep` from a keyset-paged query whose last two
    /// parameters are the bound (`bound_column` of the previous row) and the chunk size: a
    /// filter may skip many rows, so rows are fetched `LIST_CHUNK_ROWS` at a time until a page
    /// (and one more, to tell whether there is more) is found or the rows run out.
    async fn collect_in_chunks<T>(
        &self,
        sql: &str,
        leading: &[&(dyn ToSql + Sync)],
        mut bound: i64,
        bound_column: &str,
        limit: usize,
        mut keep: impl FnMut(&Row) -> Result<Option<T>, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut data = Vec::new();
        loop {
            let mut parameters = leading.to_vec();
            parameters.push(&bound);
            parameters.push(&LIST_CHUNK_ROWS);
            let rows = self.query_rows(sql, &parameters).await?;
            let exhausted = (rows.len() as i64) < LIST_CHUNK_ROWS;
            let mut next_bound = bound;
            for row in &rows {
                next_bound = row.get(bound_column);
                if let Some(item) = keep(row)? {
                    data.push(item);
                }
                if data.len() > limit {
                    return Ok(data);
                }
            }
            if exhausted {
                return Ok(data);
            }
            bound = next_bound;
        }
    }
}

impl PostgresStore {
    /// Up to `limit` search index entries as `scan` says (committed, so durable).
    pub(super) async fn search_entries(
        &self,
        account: &str,
        scan: IndexScan<'_>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match scan {
            IndexScan::Newest {
                key,
                below_sequence,
            } => {
                let below = i64::try_from(below_sequence).unwrap_or(i64::MAX);
                self.query_rows(
                    "SELECT created_sequence, stream_id FROM chargeledger_search_keys
                     WHERE account = $1 AND search_key = $2 AND created_sequence < $3
                     ORDER BY created_sequence DESC LIMIT $4",
                    &[&account, &key, &below, &limit],
                )
                .await?
            }
            IndexScan::Between { from, to } => {
                self.query_rows(
                    "SELECT created_sequence, stream_id FROM chargeledger_search_keys
                     WHERE account = $1 AND search_key >= $2 AND search_key < $3
                     ORDER BY search_key, created_sequence LIMIT $4",
                    &[&account, &from, &to, &limit],
                )
                .await?
            }
        };
        rows.iter()
            .map(|row| {
                Ok(IndexEntry {
                    created_sequence: to_u64(row.get(0), "creation sequence")?,
                    stream_id: row.get(1),
                })
            })
            .collect()
    }
}

pub(super) fn empty_page<T>() -> Page<T> {
    Page {
        data: Vec::new(),
        has_more: false,
    }
}

/// Trim a page collected with one extra item (which says whether there is more), newest first.
pub(super) fn finish_page<T>(mut data: Vec<T>, limit: usize, newest_first: bool) -> Page<T> {
    let has_more = data.len() > limit;
    data.truncate(limit);
    if !newest_first {
        data.reverse();
    }
    Page { data, has_more }
}

impl PostgresStore {
    /// Up to `limit` committed events after `after_sequence`, as `(sequence, record)` rows.
    pub(super) async fn records_after(
        &self,
        after_sequence: u64,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query_rows(
            "SELECT sequence, record FROM chargeledger_events WHERE sequence > $1
                 ORDER BY sequence LIMIT $2",
            &[&to_i64(after_sequence.min(i64::MAX as u64)), &limit],
        )
        .await
    }
}

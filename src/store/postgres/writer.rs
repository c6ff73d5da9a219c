//! The writer task: batches of appends, imports and projection rewrites, each one transaction at the locked head of the chain.

use std::sync::Arc;

use futures_util::{join, try_join};
use tokio::sync::{mpsc, watch};
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;
use tracing::{debug, error, warn};

use super::batch::{Columns, NamedInBatch, fail_all, head_of, plan_batch, prefetched};
use super::statements::Statements;
use super::{Job, advance, connect, database_error, empty_head, to_i64};
use crate::clock::Clock;
use crate::store::stored_event::decode_hashed_record;
use crate::store::{ChainHead, StoreError};

/// Upper bound on jobs in one transaction, so one batch's latency stays bounded.
const MAX_BATCH_JOBS: usize = 1024;
/// A batch slower than this is logged with where its time went.
const SLOW_BATCH_WARNING: std::time::Duration = std::time::Duration::from_millis(100);
/// How long the writer waits before reconnecting after its connection failed.
const RECONNECT_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

pub(super) struct Writer {
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: super::tls::Tls,
    pub(super) location: String,
    /// The writer's own connection and its prepared statements; `None` after it failed, until
    /// the next batch reconnects.
    pub(super) connection: Option<(Client, Statements)>,
    pub(super) durable_sender: Arc<watch::Sender<u64>>,
    pub(super) clock: Arc<dyn Clock>,
}

impl Writer {
    pub(super) async fn run(mut self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        while let Some(first) = jobs.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH_JOBS {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.process(batch).await;
        }
        debug!("PostgreSQL writer finished its queue");
    }

    /// The writer's connection, reconnecting (and preparing its statements) if it was lost.
    async fn connection(&mut self) -> Result<(), StoreError> {
        if let Some((client, _)) = &self.connection
            && !client.is_closed()
        {
            return Ok(());
        }
        self.connection = None;
        self.connection = Some(prepared_connection(&self.config, &self.tls, &self.location).await?);
        Ok(())
    }

    /// One batch in one transaction, in two round trips: BEGIN, the head lock and the reads
    /// the plan needs, pipelined; then every write and COMMIT, pipelined.
    async fn process(&mut self, batch: Vec<Job>) {
        if let Err(error) = self.connection().await {
            error!(%error, "the writer has no connection to the database; refusing this batch");
            fail_all(batch, &error);
            tokio::time::sleep(RECONNECT_DELAY).await;
            return;
        }
        let Some((client, statements)) = &self.connection else {
            unreachable!("connection() leaves a connection or fails");
        };
        let recorded_at = self.clock.now();
        let started = std::time::Instant::now();
        let names = NamedInBatch::of(&batch);
        // Sent in this order on the one connection, so the reads run once the lock is held
        // and see every batch committed before it (READ COMMITTED: each statement's own snapshot).
        let stream_parameters: [&(dyn ToSql + Sync); 2] =
            [&names.stream_accounts, &names.stream_ids];
        let key_parameters: [&(dyn ToSql + Sync); 2] = [&names.key_accounts, &names.keys];
        let read = try_join!(
            client.batch_execute("BEGIN"),
            client.query_one(&statements.lock_head, &[]),
            client.query(&statements.stream_states, &stream_parameters),
            client.query(&statements.idempotency_records, &key_parameters),
        );
        let (before, stored) =
            match read
                .map_err(database_error)
                .and_then(|((), head, streams, records)| {
                    Ok((head_of(&head)?, prefetched(streams, records)?))
                }) {
                Ok(read) => read,
                Err(error) => {
                    error!(%error, "a batch could not read the head; nothing of it was written");
                    rollback(client).await;
                    fail_all(batch, &error);
                    return;
                }
            };
        let locked_at = std::time::Instant::now();
        let (accepted, rows, head) = plan_batch(batch, &stored, &before, recorded_at);
        let planned_at = std::time::Instant::now();
        if accepted.is_empty() {
            // Every job was refused (and told so): nothing to commit.
            rollback(client).await;
            return;
        }
        // The head only moves forward: a batch that went back would hand out sequence numbers
        // twice. That is a bug in this writer, so stop it rather than commit.
        assert!(
            head.sequence >= before.sequence,
            "the chain head would move back from #{} to #{}",
            before.sequence,
            head.sequence
        );
        let columns = Columns::from(rows);
        let moved = head.sequence != before.sequence;
        let head_sequence = to_i64(head.sequence);
        let write_parameters: [&(dyn ToSql + Sync); 36] = [
            &columns.event_sequences,
            &columns.event_accounts,
            &columns.event_streams,
            &columns.event_versions,
            &columns.event_ids,
            &columns.event_records,
            &columns.projection_accounts,
            &columns.projection_streams,
            &columns.projection_kinds,
            &columns.projection_versions,
            &columns.projection_created,
            &columns.projection_states,
            &columns.key_accounts,
            &columns.keys,
            &columns.key_created,
            &columns.key_records,
            &head_sequence,
            &moved,
            &head.hash,
            &columns.delivery_accounts,
            &columns.delivery_sequences,
            &columns.delivery_numbers,
            &columns.delivery_due,
            &columns.delivery_records,
            &columns.refund_accounts,
            &columns.refund_ids,
            &columns.refund_charges,
            &columns.refund_created,
            &columns.refund_sequences,
            &columns.search_accounts,
            &columns.search_keys,
            &columns.search_created,
            &columns.search_streams,
            &columns.unsearch_accounts,
            &columns.unsearch_keys,
            &columns.unsearch_created,
        ];
        let (written, committed) = join!(
            client.query(&statements.write_batch, &write_parameters),
            client.batch_execute("COMMIT"),
        );
        let outcome = match (written, committed) {
            (Ok(_), Ok(())) => Ok(()),
            // A failed statement aborts the transaction, and PostgreSQL then answers COMMIT
            // with a rollback: nothing of the batch was written.
            (Err(error), _) => {
                let error = database_error(error);
                error!(%error, "a batch's writes failed; nothing of it was written");
                rollback(client).await;
                Err(error)
            }
            (Ok(_), Err(error)) => {
                self.resolve_unknown_commit(&head, database_error(error))
                    .await
            }
        };
        log_batch(
            outcome.is_ok(),
            accepted.len(),
            head.sequence - before.sequence,
            [started, locked_at, planned_at, std::time::Instant::now()],
        );
        if outcome.is_ok() {
            advance(&self.durable_sender, head.sequence);
        }
        for job in accepted {
            job.finish(outcome.as_ref().map(|_| ()));
        }
    }

    /// A COMMIT whose answer was lost may or may not have happened. The head it would have
    /// written is unique (its hash chains every event before it), so look for it.
    async fn resolve_unknown_commit(
        &mut self,
        head: &ChainHead,
        error: StoreError,
    ) -> Result<(), StoreError> {
        warn!(%error, sequence = head.sequence, "a batch's COMMIT failed; checking whether it happened");
        self.connection = None;
        let unknown = |detail: &dyn std::fmt::Display| {
            StoreError::Database(format!(
                "the commit of events up to #{} failed ({error}) and whether it happened cannot be told ({detail}); run `chargeledger verify` and retry the request",
                head.sequence
            ))
        };
        let (client, statements) =
            match prepared_connection(&self.config, &self.tls, &self.location).await {
                Ok(connection) => connection,
                Err(reconnect) => return Err(unknown(&reconnect)),
            };
        let stored = client
            .query_opt(&statements.event_record, &[&to_i64(head.sequence)])
            .await
            .map_err(|lookup| unknown(&database_error(lookup)))?;
        self.connection = Some((client, statements));
        let committed = stored.is_some_and(|row| {
            decode_hashed_record(row.get::<_, &str>(0).as_bytes())
                .is_ok_and(|stored| stored.event.hash == head.hash)
        });
        if committed { Ok(()) } else { Err(error) }
    }
}

/// Log a batch's size and where its time went, at debug; at warn when it took longer than
/// `SLOW_BATCH_WARNING`. `moments`: started, head locked and read, planned, committed (or failed).
fn log_batch(committed: bool, jobs: usize, events: u64, moments: [std::time::Instant; 4]) {
    let [started, locked_at, planned_at, committed_at] = moments;
    let micros = |from: std::time::Instant, to: std::time::Instant| (to - from).as_micros() as u64;
    let (lock_and_read_us, planning_us, write_and_commit_us) = (
        micros(started, locked_at),
        micros(locked_at, planned_at),
        micros(planned_at, committed_at),
    );
    debug!(
        committed,
        jobs, events, lock_and_read_us, planning_us, write_and_commit_us, "batch"
    );
    if committed_at - started > SLOW_BATCH_WARNING {
        warn!(
            jobs,
            events,
            lock_and_read_us,
            planning_us,
            write_and_commit_us,
            "a slow batch: its requests waited this long (lock_and_read includes waiting for other servers' batches)"
        );
    }
}

/// Connect the writer and prepare its statements; its transactions always commit durably.
async fn prepared_connection(
    config: &tokio_postgres::Config,
    tls: &super::tls::Tls,
    location: &str,
) -> Result<(Client, Statements), StoreError> {
    let client = connect(config, tls, location).await?;
    client
        .batch_execute("SET synchronous_commit TO on")
        .await
        .map_err(database_error)?;
    let statements = Statements::prepare(&client).await?;
    Ok((client, statements))
}

/// End a failed transaction, so the connection can serve the next batch. If even that fails,
/// the connection is broken and the next batch reconnects.
async fn rollback(client: &Client) {
    if let Err(error) = client.batch_execute("ROLLBACK").await {
        warn!(error = %database_error(error), "ROLLBACK failed; the writer will reconnect");
    }
}

/// The committed head, without a lock.
pub(super) async fn read_head(client: &Client) -> Result<ChainHead, StoreError> {
    let row = client
        .query_opt("SELECT sequence, hash FROM chargeledger_chain_head", &[])
        .await
        .map_err(database_error)?;
    match row {
        Some(row) => head_of(&row),
        None => Ok(empty_head()),
    }
}

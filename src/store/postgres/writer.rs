//! The writer task: batches of appends, imports and projection rewrites, each one transaction at the locked head of the chain.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::{join, try_join};
use tokio::sync::{mpsc, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};
use tracing::{debug, error, warn};

use super::statements::Statements;
use super::{
    Job, ProjectionRows, advance, connect, database_error, empty_head, encode_state,
    projection_kind, to_i64, to_u64,
};
use crate::chain::ChainVerifier;
use crate::clock::Clock;
use crate::domain::Projection;
use crate::events::RecordedEvent;
use crate::store::plan::{BatchPlan, StoredStreams, StreamState};
use crate::store::{ChainHead, IdempotencyRecord, StoreError};

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

/// Rows a batch writes, collected while its jobs are planned.
#[derive(Default)]
struct Rows {
    event_sequences: Vec<i64>,
    event_accounts: Vec<String>,
    event_streams: Vec<String>,
    event_versions: Vec<i64>,
    event_ids: Vec<String>,
    event_records: Vec<String>,
    /// The last state of each stream the batch touches (a stream may be written twice in one
    /// batch; one upsert may change a row only once).
    projections: HashMap<(String, String), (String, StreamState, String)>,
    idempotency: Vec<(String, IdempotencyRecord)>,
}

impl Rows {
    fn append(&mut self, mut other: Rows) {
        self.event_sequences.append(&mut other.event_sequences);
        self.event_accounts.append(&mut other.event_accounts);
        self.event_streams.append(&mut other.event_streams);
        self.event_versions.append(&mut other.event_versions);
        self.event_ids.append(&mut other.event_ids);
        self.event_records.append(&mut other.event_records);
        self.projections.extend(other.projections);
        self.idempotency.append(&mut other.idempotency);
    }

    fn push_event(&mut self, event: &RecordedEvent, stored: Vec<u8>) {
        self.event_sequences.push(to_i64(event.body.sequence));
        self.event_accounts.push(event.body.account.clone());
        self.event_streams.push(event.body.stream_id.clone());
        self.event_versions.push(to_i64(event.body.stream_version));
        self.event_ids.push(event.body.event_id.clone());
        self.event_records.push(
            String::from_utf8(stored).expect("serde_json writes UTF-8, and the writer stores it"),
        );
    }

    fn push_projection(
        &mut self,
        account: &str,
        stream_id: &str,
        state: StreamState,
        projection: &Projection,
    ) {
        self.projections.insert(
            (account.to_string(), stream_id.to_string()),
            (
                projection_kind(projection).to_string(),
                state,
                encode_state(projection),
            ),
        );
    }
}

/// What is stored for the streams and keys a batch names, read under the head lock.
#[derive(Default)]
struct Prefetched {
    streams: HashMap<(String, String), StreamState>,
    idempotency: HashMap<(String, String), IdempotencyRecord>,
}

impl StoredStreams for Prefetched {
    fn stream_state(
        &self,
        account: &str,
        stream_id: &str,
    ) -> Result<Option<StreamState>, StoreError> {
        Ok(self
            .streams
            .get(&(account.to_string(), stream_id.to_string()))
            .copied())
    }

    fn idempotency_record(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self
            .idempotency
            .get(&(account.to_string(), key.to_string()))
            .cloned())
    }
}

/// A job whose part of the batch is planned, waiting for the commit.
enum Accepted {
    Append(super::Reply<Vec<RecordedEvent>>, Vec<RecordedEvent>),
    Done(super::Reply<()>),
}

impl Accepted {
    fn finish(self, outcome: Result<(), &StoreError>) {
        let copy = |error: &StoreError| StoreError::Database(error.to_string());
        // A caller that gave up waiting has dropped its receiver; nothing to tell it.
        let _ = match self {
            Accepted::Append(reply, events) => reply
                .send(outcome.map(|()| events).map_err(copy))
                .map_err(drop),
            Accepted::Done(reply) => reply.send(outcome.map_err(copy)).map_err(drop),
        };
    }
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
        let write_parameters: [&(dyn ToSql + Sync); 19] = [
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
            let record: &str = row.get(0);
            record.ends_with(&format!("\"hash\":\"{}\"}}", head.hash))
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

fn fail_all(batch: Vec<Job>, error: &StoreError) {
    for job in batch {
        let accepted = match job {
            Job::Append(_, reply) => Accepted::Append(reply, Vec::new()),
            Job::Import(_, _, reply) | Job::PutProjections(_, reply) => Accepted::Done(reply),
        };
        accepted.finish(Err(error));
    }
}

/// The streams and idempotency keys a batch's appends name, as arrays for `unnest`.
#[derive(Default)]
struct NamedInBatch {
    stream_accounts: Vec<String>,
    stream_ids: Vec<String>,
    key_accounts: Vec<String>,
    keys: Vec<String>,
}

impl NamedInBatch {
    fn of(jobs: &[Job]) -> Self {
        let mut named = NamedInBatch::default();
        for job in jobs {
            let Job::Append(request, _) = job else {
                continue;
            };
            let streams = std::iter::once(request.stream_id.as_str())
                .chain(
                    request
                        .linked
                        .iter()
                        .map(|linked| linked.stream_id.as_str()),
                )
                .chain(
                    request
                        .read_versions
                        .iter()
                        .map(|read| read.stream_id.as_str()),
                );
            for stream_id in streams {
                named.stream_accounts.push(request.account.clone());
                named.stream_ids.push(stream_id.to_string());
            }
            if let Some(record) = &request.idempotency {
                named.key_accounts.push(request.account.clone());
                named.keys.push(record.key.clone());
            }
        }
        named
    }
}

fn head_of(row: &Row) -> Result<ChainHead, StoreError> {
    Ok(ChainHead {
        sequence: to_u64(row.get(0), "head sequence")?,
        hash: row.get(1),
    })
}

fn prefetched(streams: Vec<Row>, records: Vec<Row>) -> Result<Prefetched, StoreError> {
    let mut prefetched = Prefetched::default();
    for row in streams {
        let state = StreamState {
            version: to_u64(row.get(2), "stream version")?,
            created_sequence: to_u64(row.get(3), "creation sequence")?,
        };
        prefetched.streams.insert((row.get(0), row.get(1)), state);
    }
    for row in records {
        let key: String = row.get(1);
        let record: &str = row.get(2);
        let record: IdempotencyRecord =
            serde_json::from_str(record).map_err(|error| StoreError::CorruptRecord {
                path: "PostgreSQL".into(),
                location: format!("idempotency record {key}"),
                detail: error.to_string(),
            })?;
        prefetched.idempotency.insert((row.get(0), key), record);
    }
    Ok(prefetched)
}

/// Plan every job of the batch against what is stored: refused jobs are answered now; the
/// accepted ones wait for the commit of the rows and head returned.
fn plan_batch(
    batch: Vec<Job>,
    stored: &Prefetched,
    before: &ChainHead,
    recorded_at: time::OffsetDateTime,
) -> (Vec<Accepted>, Rows, ChainHead) {
    let mut plan = BatchPlan::default();
    let mut head = before.clone();
    let mut rows = Rows::default();
    let mut accepted = Vec::new();
    for job in batch {
        match job {
            Job::Append(request, reply) => {
                match plan.plan_append(&request, recorded_at, &mut head, stored) {
                    Ok(planned) => {
                        let mut events = Vec::new();
                        for stream in planned.streams {
                            for sealed in stream.events {
                                rows.push_event(&sealed.event, sealed.stored);
                                events.push(sealed.event);
                            }
                            rows.push_projection(
                                &request.account,
                                stream.stream_id,
                                stream.state,
                                stream.projection,
                            );
                        }
                        if let Some(record) = planned.idempotency {
                            rows.idempotency.push((request.account.clone(), record));
                        }
                        accepted.push(Accepted::Append(reply, events));
                    }
                    Err(refusal) => {
                        let _ = reply.send(Err(refusal));
                    }
                }
            }
            Job::Import(events, projections, reply) => {
                match stage_import(&events, &projections, &mut head, &mut plan, &mut rows) {
                    Ok(()) => accepted.push(Accepted::Done(reply)),
                    Err(refusal) => {
                        let _ = reply.send(Err(refusal));
                    }
                }
            }
            Job::PutProjections(projections, reply) => {
                for (account, stream_id, stored) in &projections {
                    let state = StreamState {
                        version: stored.version,
                        created_sequence: stored.created_sequence,
                    };
                    rows.push_projection(account, stream_id, state, &stored.projection);
                }
                accepted.push(Accepted::Done(reply));
            }
        }
    }
    (accepted, rows, head)
}

fn stage_import(
    events: &[RecordedEvent],
    projections: &ProjectionRows,
    head: &mut ChainHead,
    plan: &mut BatchPlan,
    rows: &mut Rows,
) -> Result<(), StoreError> {
    let mut verifier = ChainVerifier::after(head.sequence, head.hash.clone());
    // Staged apart and added only once the whole import checks, so a refused one adds nothing.
    let mut staged = Rows::default();
    for event in events {
        verifier
            .check(event)
            .map_err(|fault| StoreError::ImportRejected {
                sequence: event.body.sequence,
                detail: fault.to_string(),
            })?;
        let stored = serde_json::to_vec(event).expect(
            "the store's own records always encode as JSON; failing to is a bug in chargeledger",
        );
        staged.push_event(event, stored);
    }
    for (account, stream_id, stored) in projections {
        let state = StreamState {
            version: stored.version,
            created_sequence: stored.created_sequence,
        };
        staged.push_projection(account, stream_id, state, &stored.projection);
        plan.record_stream(account, stream_id, state);
    }
    rows.append(staged);
    *head = ChainHead {
        sequence: verifier.last_sequence(),
        hash: verifier.last_hash().to_string(),
    };
    Ok(())
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

/// A batch's rows as one array per column, the parameters of the write statement.
#[derive(Default)]
struct Columns {
    event_sequences: Vec<i64>,
    event_accounts: Vec<String>,
    event_streams: Vec<String>,
    event_versions: Vec<i64>,
    event_ids: Vec<String>,
    event_records: Vec<String>,
    projection_accounts: Vec<String>,
    projection_streams: Vec<String>,
    projection_kinds: Vec<String>,
    projection_versions: Vec<i64>,
    projection_created: Vec<i64>,
    projection_states: Vec<String>,
    key_accounts: Vec<String>,
    keys: Vec<String>,
    key_created: Vec<i64>,
    key_records: Vec<String>,
}

impl From<Rows> for Columns {
    fn from(rows: Rows) -> Self {
        let mut columns = Columns {
            event_sequences: rows.event_sequences,
            event_accounts: rows.event_accounts,
            event_streams: rows.event_streams,
            event_versions: rows.event_versions,
            event_ids: rows.event_ids,
            event_records: rows.event_records,
            ..Columns::default()
        };
        for ((account, stream_id), (kind, state, json)) in rows.projections {
            columns.projection_accounts.push(account);
            columns.projection_streams.push(stream_id);
            columns.projection_kinds.push(kind);
            columns.projection_versions.push(to_i64(state.version));
            columns
                .projection_created
                .push(to_i64(state.created_sequence));
            columns.projection_states.push(json);
        }
        for (account, record) in rows.idempotency {
            columns.key_accounts.push(account);
            columns.keys.push(record.key.clone());
            columns.key_created.push(record.created_at_unix);
            columns.key_records.push(serde_json::to_string(&record).expect(
                "the store's own records always encode as JSON; failing to is a bug in chargeledger",
            ));
        }
        columns
    }
}

//! The writer task: batches of appends, imports and projection rewrites, each one transaction at the locked head of the chain.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_postgres::{Client, Transaction};
use tracing::{debug, error, warn};

use super::{
    Job, NOTIFY_CHANNEL, ProjectionRows, advance, connect, database_error, empty_head,
    encode_state, projection_kind, to_i64, to_u64,
};
use crate::chain::ChainVerifier;
use crate::clock::Clock;
use crate::domain::Projection;
use crate::events::RecordedEvent;
use crate::store::plan::{BatchPlan, StoredStreams, StreamState};
use crate::store::{ChainHead, IdempotencyRecord, StoreError};

/// Upper bound on jobs in one transaction, so one batch's latency stays bounded.
const MAX_BATCH_JOBS: usize = 1024;
/// How long the writer waits before reconnecting after its connection failed.
const RECONNECT_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

pub(super) struct Writer {
    pub(super) config: tokio_postgres::Config,
    pub(super) location: String,
    pub(super) client: Client,
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

/// The projection rows of a batch, as one array per column for `unnest`.
#[derive(Default)]
struct ProjectionColumns {
    accounts: Vec<String>,
    stream_ids: Vec<String>,
    kinds: Vec<String>,
    versions: Vec<i64>,
    created_sequences: Vec<i64>,
    states: Vec<String>,
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

    async fn process(&mut self, batch: Vec<Job>) {
        if self.client.is_closed() {
            match connect(&self.config, &self.location).await {
                Ok(client) => self.client = client,
                Err(error) => {
                    error!(%error, "the writer cannot reconnect; refusing this batch");
                    fail_all(batch, &error);
                    tokio::time::sleep(RECONNECT_DELAY).await;
                    return;
                }
            }
            if let Err(error) = self
                .client
                .batch_execute("SET synchronous_commit TO on")
                .await
            {
                fail_all(batch, &database_error(error));
                return;
            }
        }
        let recorded_at = self.clock.now();
        let transaction = match self.client.transaction().await {
            Ok(transaction) => transaction,
            Err(error) => {
                fail_all(batch, &database_error(error));
                return;
            }
        };
        let (accepted, planned) = match stage(&transaction, batch, recorded_at).await {
            Ok(staged) => staged,
            Err((accepted, error)) => {
                error!(%error, "a batch failed before its commit; nothing of it was written");
                for job in accepted {
                    job.finish(Err(&error));
                }
                return;
            }
        };
        let Some(head) = planned else {
            // Every job was refused: nothing to commit.
            drop(transaction);
            for job in accepted {
                job.finish(Ok(()));
            }
            return;
        };
        match transaction.commit().await {
            Ok(()) => {
                advance(&self.durable_sender, head.sequence);
                for job in accepted {
                    job.finish(Ok(()));
                }
            }
            Err(error) => {
                let error = database_error(error);
                let outcome = self.resolve_unknown_commit(&head, error).await;
                for job in accepted {
                    job.finish(outcome.as_ref().map(drop));
                }
            }
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
        let client = match connect(&self.config, &self.location).await {
            Ok(client) => client,
            Err(reconnect) => {
                return Err(StoreError::Database(format!(
                    "the commit of event #{} failed ({error}) and whether it happened cannot be told ({reconnect}); check with `chargeledger verify`",
                    head.sequence
                )));
            }
        };
        let stored = client
            .query_opt(
                "SELECT record FROM chargeledger_events WHERE sequence = $1",
                &[&to_i64(head.sequence)],
            )
            .await
            .map_err(database_error)?;
        self.client = client;
        let committed = stored.is_some_and(|row| {
            let record: String = row.get(0);
            record.ends_with(&format!("\"hash\":\"{}\"}}", head.hash))
        });
        if committed {
            advance(&self.durable_sender, head.sequence);
            Ok(())
        } else {
            Err(error)
        }
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

type Staged = (Vec<Accepted>, Option<ChainHead>);

/// Lock the head, plan every job against committed state, and write the batch's rows. Returns
/// the jobs to answer after the commit and the head to commit (`None`: nothing to write). On
/// error, the jobs planned so far are returned to be failed; the others were answered.
async fn stage(
    transaction: &Transaction<'_>,
    batch: Vec<Job>,
    recorded_at: time::OffsetDateTime,
) -> Result<Staged, (Vec<Accepted>, StoreError)> {
    let mut accepted = Vec::new();
    let mut pending: Vec<Job> = batch;
    let outcome: Result<Option<ChainHead>, StoreError> = async {
        let before = read_head_for_update(transaction).await?;
        let stored = prefetch(transaction, &pending).await?;
        let mut plan = BatchPlan::default();
        let mut head = before.clone();
        let mut rows = Rows::default();
        for job in pending.drain(..) {
            match job {
                Job::Append(request, reply) => {
                    match plan.plan_append(&request, recorded_at, &mut head, &stored) {
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
        if accepted.is_empty() {
            return Ok(None);
        }
        // The head only moves forward: a batch that went back would hand out sequence numbers
        // twice. That is a bug in this writer, so stop it rather than commit.
        assert!(
            head.sequence >= before.sequence,
            "the chain head would move back from #{} to #{}",
            before.sequence,
            head.sequence
        );
        write_rows(transaction, rows).await?;
        if head.sequence != before.sequence {
            transaction
                .execute(
                    "UPDATE chargeledger_chain_head SET sequence = $1, hash = $2",
                    &[&to_i64(head.sequence), &head.hash],
                )
                .await
                .map_err(database_error)?;
            transaction
                .execute(
                    "SELECT pg_notify($1, $2)",
                    &[&NOTIFY_CHANNEL, &head.sequence.to_string()],
                )
                .await
                .map_err(database_error)?;
        }
        Ok(Some(head))
    }
    .await;
    match outcome {
        Ok(head) => Ok((accepted, head)),
        Err(error) => {
            // Jobs not yet planned are failed too: the transaction is gone.
            fail_all(pending, &error);
            Err((accepted, error))
        }
    }
}

fn stage_import(
    events: &[RecordedEvent],
    projections: &ProjectionRows,
    head: &mut ChainHead,
    plan: &mut BatchPlan,
    rows: &mut Rows,
) -> Result<(), StoreError> {
    let mut verifier = ChainVerifier::after(head.sequence, head.hash.clone());
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
    rows.event_sequences.append(&mut staged.event_sequences);
    rows.event_accounts.append(&mut staged.event_accounts);
    rows.event_streams.append(&mut staged.event_streams);
    rows.event_versions.append(&mut staged.event_versions);
    rows.event_ids.append(&mut staged.event_ids);
    rows.event_records.append(&mut staged.event_records);
    rows.projections.extend(staged.projections);
    *head = ChainHead {
        sequence: verifier.last_sequence(),
        hash: verifier.last_hash().to_string(),
    };
    Ok(())
}

/// The committed head, locked until this transaction ends: every writer of every server
/// takes this lock first, so batches are serialized at the chain's head.
async fn read_head_for_update(transaction: &Transaction<'_>) -> Result<ChainHead, StoreError> {
    let row = transaction
        .query_one(
            "SELECT sequence, hash FROM chargeledger_chain_head FOR UPDATE",
            &[],
        )
        .await
        .map_err(database_error)?;
    Ok(ChainHead {
        sequence: to_u64(row.get(0), "head sequence")?,
        hash: row.get(1),
    })
}

/// The committed head, without a lock.
pub(super) async fn read_head(client: &Client) -> Result<ChainHead, StoreError> {
    let row = client
        .query_opt("SELECT sequence, hash FROM chargeledger_chain_head", &[])
        .await
        .map_err(database_error)?;
    match row {
        Some(row) => Ok(ChainHead {
            sequence: to_u64(row.get(0), "head sequence")?,
            hash: row.get(1),
        }),
        None => Ok(empty_head()),
    }
}

/// Read, in two queries, the stored state of every stream and idempotency key the batch's
/// appends name.
async fn prefetch(transaction: &Transaction<'_>, jobs: &[Job]) -> Result<Prefetched, StoreError> {
    let (mut stream_accounts, mut stream_ids) = (Vec::new(), Vec::new());
    let (mut key_accounts, mut keys) = (Vec::new(), Vec::new());
    for job in jobs {
        let Job::Append(request, _) = job else {
            continue;
        };
        let named = std::iter::once(request.stream_id.as_str())
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
        for stream_id in named {
            stream_accounts.push(request.account.clone());
            stream_ids.push(stream_id.to_string());
        }
        if let Some(record) = &request.idempotency {
            key_accounts.push(request.account.clone());
            keys.push(record.key.clone());
        }
    }
    let mut prefetched = Prefetched::default();
    if !stream_ids.is_empty() {
        let rows = transaction
            .query(
                "SELECT p.account, p.stream_id, p.version, p.created_sequence
                 FROM chargeledger_projections p
                 JOIN unnest($1::text[], $2::text[]) AS named(account, stream_id)
                   ON p.account = named.account AND p.stream_id = named.stream_id",
                &[&stream_accounts, &stream_ids],
            )
            .await
            .map_err(database_error)?;
        for row in rows {
            let state = StreamState {
                version: to_u64(row.get(2), "stream version")?,
                created_sequence: to_u64(row.get(3), "creation sequence")?,
            };
            prefetched.streams.insert((row.get(0), row.get(1)), state);
        }
    }
    if !keys.is_empty() {
        let rows = transaction
            .query(
                "SELECT i.account, i.key, i.record
                 FROM chargeledger_idempotency i
                 JOIN unnest($1::text[], $2::text[]) AS named(account, key)
                   ON i.account = named.account AND i.key = named.key",
                &[&key_accounts, &keys],
            )
            .await
            .map_err(database_error)?;
        for row in rows {
            let key: String = row.get(1);
            let record: String = row.get(2);
            let record: IdempotencyRecord =
                serde_json::from_str(&record).map_err(|error| StoreError::CorruptRecord {
                    path: "PostgreSQL".into(),
                    location: format!("idempotency record {key}"),
                    detail: error.to_string(),
                })?;
            prefetched.idempotency.insert((row.get(0), key), record);
        }
    }
    Ok(prefetched)
}

/// Insert the batch's events and idempotency records and upsert its projections, one
/// statement each.
async fn write_rows(transaction: &Transaction<'_>, rows: Rows) -> Result<(), StoreError> {
    if !rows.event_sequences.is_empty() {
        transaction
            .execute(
                "INSERT INTO chargeledger_events
                     (sequence, account, stream_id, stream_version, event_id, record)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])",
                &[
                    &rows.event_sequences,
                    &rows.event_accounts,
                    &rows.event_streams,
                    &rows.event_versions,
                    &rows.event_ids,
                    &rows.event_records,
                ],
            )
            .await
            .map_err(database_error)?;
    }
    if !rows.projections.is_empty() {
        let mut columns = ProjectionColumns::default();
        for ((account, stream_id), (kind, state, json)) in rows.projections {
            columns.accounts.push(account);
            columns.stream_ids.push(stream_id);
            columns.kinds.push(kind);
            columns.versions.push(to_i64(state.version));
            columns
                .created_sequences
                .push(to_i64(state.created_sequence));
            columns.states.push(json);
        }
        transaction
            .execute(
                "INSERT INTO chargeledger_projections
                     (account, stream_id, kind, version, created_sequence, state)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[])
                 ON CONFLICT (account, stream_id) DO UPDATE
                 SET kind = excluded.kind, version = excluded.version,
                     created_sequence = excluded.created_sequence, state = excluded.state",
                &[
                    &columns.accounts,
                    &columns.stream_ids,
                    &columns.kinds,
                    &columns.versions,
                    &columns.created_sequences,
                    &columns.states,
                ],
            )
            .await
            .map_err(database_error)?;
    }
    if !rows.idempotency.is_empty() {
        let mut columns: (Vec<String>, Vec<String>, Vec<i64>, Vec<String>) = Default::default();
        for (account, record) in rows.idempotency {
            columns.0.push(account);
            columns.1.push(record.key.clone());
            columns.2.push(record.created_at_unix);
            columns.3.push(serde_json::to_string(&record).expect(
                "the store's own records always encode as JSON; failing to is a bug in chargeledger",
            ));
        }
        transaction
            .execute(
                "INSERT INTO chargeledger_idempotency (account, key, created_at_unix, record)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])",
                &[&columns.0, &columns.1, &columns.2, &columns.3],
            )
            .await
            .map_err(database_error)?;
    }
    Ok(())
}

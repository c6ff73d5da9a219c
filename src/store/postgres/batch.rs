//! One batch's contents: the rows its jobs write, planned against what the head lock let it read, and the jobs waiting for its commit.

use std::collections::HashMap;

use tokio_postgres::Row;

use super::{Job, ProjectionRows, encode_state, projection_kind, to_i64, to_u64};
use crate::domain::Projection;
use crate::domain::search::{SearchKeyChanges, index_keys};
use crate::events::RecordedEvent;
use crate::store::outbox::encode_delivery;
use crate::store::plan::{BatchPlan, StoredStreams, StreamState, check_import};
use crate::store::{ChainHead, Delivery, IdempotencyRecord, StoreError};

/// Rows a batch writes, collected while its jobs are planned.
#[derive(Default)]
pub(super) struct Rows {
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
    deliveries: Vec<Delivery>,
    /// The refund index rows of the batch's events: account, refund id, charge id, created,
    /// sequence.
    refunds: Vec<(String, String, String, i64, i64)>,
    /// The search index entries the batch writes (`Some(stream id)`) or removes (`None`),
    /// by account, key and creation sequence. Netted in batch order, so one statement never
    /// both inserts and deletes a row (PostgreSQL's CTEs share a snapshot), and a key removed
    /// then added back by two appends of one batch stays.
    search: HashMap<(String, Vec<u8>, i64), Option<String>>,
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
        self.deliveries.append(&mut other.deliveries);
        self.refunds.append(&mut other.refunds);
        self.search.extend(other.search);
    }

    /// Entries for every key of `projection` (a rebuild or import: nothing is removed).
    fn push_all_search_keys(
        &mut self,
        account: &str,
        stream_id: &str,
        state: StreamState,
        projection: &Projection,
    ) {
        for key in index_keys(projection) {
            self.search.insert(
                (account.to_string(), key, to_i64(state.created_sequence)),
                Some(stream_id.to_string()),
            );
        }
    }

    fn push_search_changes(
        &mut self,
        account: &str,
        stream_id: &str,
        state: StreamState,
        changes: &SearchKeyChanges,
    ) {
        let created = to_i64(state.created_sequence);
        for key in &changes.removed {
            self.search
                .insert((account.to_string(), key.clone(), created), None);
        }
        for key in &changes.added {
            self.search.insert(
                (account.to_string(), key.clone(), created),
                Some(stream_id.to_string()),
            );
        }
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
        if let Some(refund) = event.body.payload.refund_recorded() {
            self.refunds.push((
                event.body.account.clone(),
                refund.id.clone(),
                event.body.stream_id.clone(),
                refund.created,
                to_i64(event.body.sequence),
            ));
        }
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
pub(super) struct Prefetched {
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
pub(super) enum Accepted {
    Append(super::Reply<Vec<RecordedEvent>>, Vec<RecordedEvent>),
    Done(super::Reply<()>),
}

impl Accepted {
    pub(super) fn finish(self, outcome: Result<(), &StoreError>) {
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

pub(super) fn fail_all(batch: Vec<Job>, error: &StoreError) {
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
pub(super) struct NamedInBatch {
    pub(super) stream_accounts: Vec<String>,
    pub(super) stream_ids: Vec<String>,
    pub(super) key_accounts: Vec<String>,
    pub(super) keys: Vec<String>,
}

impl NamedInBatch {
    pub(super) fn of(jobs: &[Job]) -> Self {
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

pub(super) fn head_of(row: &Row) -> Result<ChainHead, StoreError> {
    Ok(ChainHead {
        sequence: to_u64(row.get(0), "head sequence")?,
        hash: row.get(1),
    })
}

pub(super) fn prefetched(streams: Vec<Row>, records: Vec<Row>) -> Result<Prefetched, StoreError> {
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
pub(super) fn plan_batch(
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
                        if let Some(main) = planned.streams.first() {
                            rows.push_search_changes(
                                &request.account,
                                main.stream_id,
                                main.state,
                                &request.search_keys,
                            );
                        }
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
                        rows.deliveries.extend(planned.deliveries);
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
                    rows.push_all_search_keys(account, stream_id, state, &stored.projection);
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
    let imported_head = check_import(head, events)?;
    let mut staged = Rows::default();
    for event in events {
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
        staged.push_all_search_keys(account, stream_id, state, &stored.projection);
        plan.record_stream(account, stream_id, state);
    }
    rows.append(staged);
    *head = imported_head;
    Ok(())
}

/// A batch's rows as one array per column, the parameters of the write statement.
#[derive(Default)]
pub(super) struct Columns {
    pub(super) event_sequences: Vec<i64>,
    pub(super) event_accounts: Vec<String>,
    pub(super) event_streams: Vec<String>,
    pub(super) event_versions: Vec<i64>,
    pub(super) event_ids: Vec<String>,
    pub(super) event_records: Vec<String>,
    pub(super) projection_accounts: Vec<String>,
    pub(super) projection_streams: Vec<String>,
    pub(super) projection_kinds: Vec<String>,
    pub(super) projection_versions: Vec<i64>,
    pub(super) projection_created: Vec<i64>,
    pub(super) projection_states: Vec<String>,
    pub(super) key_accounts: Vec<String>,
    pub(super) keys: Vec<String>,
    pub(super) key_created: Vec<i64>,
    pub(super) key_records: Vec<String>,
    pub(super) delivery_accounts: Vec<String>,
    pub(super) delivery_sequences: Vec<i64>,
    pub(super) delivery_numbers: Vec<i32>,
    pub(super) delivery_due: Vec<Option<i64>>,
    pub(super) delivery_records: Vec<String>,
    pub(super) refund_accounts: Vec<String>,
    pub(super) refund_ids: Vec<String>,
    pub(super) refund_charges: Vec<String>,
    pub(super) refund_created: Vec<i64>,
    pub(super) refund_sequences: Vec<i64>,
    pub(super) search_accounts: Vec<String>,
    pub(super) search_keys: Vec<Vec<u8>>,
    pub(super) search_created: Vec<i64>,
    pub(super) search_streams: Vec<String>,
    pub(super) unsearch_accounts: Vec<String>,
    pub(super) unsearch_keys: Vec<Vec<u8>>,
    pub(super) unsearch_created: Vec<i64>,
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
        for delivery in rows.deliveries {
            columns.push_delivery(&delivery);
        }
        for (account, refund_id, charge_id, created, sequence) in rows.refunds {
            columns.refund_accounts.push(account);
            columns.refund_ids.push(refund_id);
            columns.refund_charges.push(charge_id);
            columns.refund_created.push(created);
            columns.refund_sequences.push(sequence);
        }
        for ((account, key, created), stream_id) in rows.search {
            match stream_id {
                Some(stream_id) => {
                    columns.search_accounts.push(account);
                    columns.search_keys.push(key);
                    columns.search_created.push(created);
                    columns.search_streams.push(stream_id);
                }
                None => {
                    columns.unsearch_accounts.push(account);
                    columns.unsearch_keys.push(key);
                    columns.unsearch_created.push(created);
                }
            }
        }
        columns
    }
}

impl Columns {
    pub(super) fn push_delivery(&mut self, delivery: &Delivery) {
        self.delivery_accounts.push(delivery.account.clone());
        self.delivery_sequences
            .push(to_i64(delivery.event_sequence));
        self.delivery_numbers.push(delivery.number as i32);
        self.delivery_due.push(delivery.state.due_at_ms());
        self.delivery_records
            .push(String::from_utf8(encode_delivery(delivery)).expect("serde_json writes UTF-8"));
    }
}

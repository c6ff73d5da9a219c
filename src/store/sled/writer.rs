//! The single writer thread: jobs, group commit, durability, poisoning, the idempotency purge and the staging of appends and imports.

use super::*;
use crate::domain::search::index_keys;

/// A group commit slower than this is logged with where its time went, so an operator can tell
/// a slow disk (fdatasync), sled's own I/O (flush) and CPU (staging, the transaction) apart.
const SLOW_COMMIT_WARNING: std::time::Duration = std::time::Duration::from_millis(50);

/// Upper bound on appends in one group commit, so one batch's latency stays bounded.
pub(super) const MAX_BATCH_JOBS: usize = 1024;

/// The writer thread's state: the only code that writes to the trees.
pub(super) struct Writer {
    pub(super) path: String,
    pub(super) db: sled::Db,
    pub(super) trees: Trees,
    pub(super) sync: DurableSync,
    pub(super) head: ChainHead,
    pub(super) durable_head: Arc<Mutex<Option<ChainHead>>>,
    pub(super) durable_sender: watch::Sender<u64>,
    pub(super) poisoned: Arc<OnceLock<String>>,
    pub(super) faults: FaultInjector,
    /// The time an event is recorded at (`recorded_at`).
    pub(super) clock: Arc<dyn Clock>,
}

/// Writes staged for one batch, applied together in one transaction.
#[derive(Default)]
pub(super) struct Staged {
    pub(super) writes: Vec<(TreeName, Vec<u8>, Vec<u8>)>,
    /// Keys removed in the same transaction, before the writes.
    pub(super) removals: Vec<(TreeName, Vec<u8>)>,
    /// Stream versions and idempotency keys as of the staged writes.
    pub(super) plan: BatchPlan,
}

/// The writer plans each append against the trees as they are before its batch.
impl StoredStreams for Writer {
    fn stream_state(
        &self,
        account: &str,
        stream_id: &str,
    ) -> Result<Option<StreamState>, StoreError> {
        let key = stream_key(account, stream_id);
        match self.trees.projections.get(&key)? {
            Some(value) if value.len() >= 16 => Ok(Some(StreamState {
                version: read_u64(&value, 0),
                created_sequence: read_u64(&value, 8),
            })),
            Some(_) => Err(StoreError::CorruptRecord {
                path: self.path.clone(),
                location: format!("projection {account}/{stream_id}"),
                detail: "the record is shorter than its header".into(),
            }),
            None => Ok(None),
        }
    }

    fn idempotency_record(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let Some(existing) = self.trees.idempotency.get(stream_key(account, key))? else {
            return Ok(None);
        };
        serde_json::from_slice(&existing)
            .map(Some)
            .map_err(|error| StoreError::CorruptRecord {
                path: self.path.clone(),
                location: format!("idempotency record {key}"),
                detail: error.to_string(),
            })
    }
}

pub(super) enum Accepted {
    Append(Reply<Vec<RecordedEvent>>, Vec<RecordedEvent>),
    Done(Reply<()>),
}

impl Accepted {
    pub(super) fn succeed(self) {
        // A caller that gave up waiting has dropped its receiver; nothing to tell it.
        let _ = match self {
            Accepted::Append(reply, events) => reply.send(Ok(events)).map_err(drop),
            Accepted::Done(reply) => reply.send(Ok(())).map_err(drop),
        };
    }

    pub(super) fn fail(self, error: StoreError) {
        let _ = match self {
            Accepted::Append(reply, _) => reply.send(Err(error)).map_err(drop),
            Accepted::Done(reply) => reply.send(Err(error)).map_err(drop),
        };
    }
}

impl Writer {
    pub(super) fn run(mut self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        while let Some(first) = jobs.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH_JOBS {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.process(batch);
        }
        debug!("writer thread finished its queue");
    }

    pub(super) fn process(&mut self, batch: Vec<Job>) {
        let (purges, writes): (Vec<Job>, Vec<Job>) = batch
            .into_iter()
            .partition(|job| matches!(job, Job::PurgeIdempotency(..)));
        self.process_writes(writes);
        for job in purges {
            if let Job::PurgeIdempotency(created_before_unix, reply) = job {
                let _ = reply.send(self.purge_idempotency(created_before_unix));
            }
        }
    }

    /// Remove expired idempotency records. Run by the writer, so that no append can be checking
    /// a key while its record is removed.
    pub(super) fn purge_idempotency(
        &mut self,
        created_before_unix: i64,
    ) -> Result<usize, StoreError> {
        if let Some(detail) = self.poisoned.get() {
            return Err(StoreError::Poisoned {
                detail: detail.clone(),
            });
        }
        let mut removed = 0;
        for entry in self.trees.idempotency.iter() {
            let (key, value) = entry?;
            // A record that cannot be read is kept for `verify` to report, not silently dropped.
            let Ok(record) = serde_json::from_slice::<IdempotencyRecord>(&value) else {
                continue;
            };
            if record.created_at_unix < created_before_unix {
                self.trees.idempotency.remove(key)?;
                removed += 1;
            }
        }
        if removed > 0 {
            self.make_durable().map_err(|detail| {
                error!(path = %self.path, %detail, "could not make a purge durable; refusing further writes");
                self.poison(&detail);
                StoreError::Poisoned { detail }
            })?;
        }
        Ok(removed)
    }

    pub(super) fn process_writes(&mut self, batch: Vec<Job>) {
        if let Some(detail) = self.poisoned.get() {
            for job in batch {
                reply_error(job, || StoreError::Poisoned {
                    detail: detail.clone(),
                });
            }
            return;
        }
        let started = std::time::Instant::now();
        let mut staged = Staged::default();
        let mut head = self.head.clone();
        let mut accepted = Vec::new();
        let mut saved = Vec::new();
        let recorded_at = self.clock.now();
        for job in batch {
            match job {
                Job::Append(request, reply) => {
                    match self.stage_append(&request, recorded_at, &mut head, &mut staged) {
                        Ok(events) => accepted.push(Accepted::Append(reply, events)),
                        Err(error) => {
                            let _ = reply.send(Err(error));
                        }
                    }
                }
                Job::Import(events, projections, reply) => {
                    match self.stage_import(events, projections, &mut head, &mut staged) {
                        Ok(()) => accepted.push(Accepted::Done(reply)),
                        Err(error) => {
                            let _ = reply.send(Err(error));
                        }
                    }
                }
                Job::PutProjections(projections, reply) => {
                    for (account, stream_id, stored) in projections {
                        push_all_search_keys(
                            &account,
                            &stream_id,
                            stored.created_sequence,
                            &index_keys(&stored.projection),
                            &mut staged.writes,
                        );
                        let key = stream_key(&account, &stream_id);
                        staged.writes.push((
                            TreeName::Projections,
                            key,
                            encode_projection(&stored),
                        ));
                    }
                    accepted.push(Accepted::Done(reply));
                }
                Job::SaveDeliveries(deliveries, reply) => saved.push((deliveries, reply)),
                Job::PurgeIdempotency(_, reply) => {
                    // `process` runs purges after the batch; one arriving here is a bug.
                    let _ = reply.send(Err(StoreError::Closed));
                }
            }
        }
        if !saved.is_empty() {
            let (deliveries, replies): (Vec<_>, Vec<_>) = saved.into_iter().unzip();
            match self
                .stage_saved_deliveries(deliveries.into_iter().flatten().collect(), &mut staged)
            {
                Ok(()) => accepted.extend(replies.into_iter().map(Accepted::Done)),
                Err(error) => {
                    for reply in replies {
                        let _ = reply.send(Err(StoreError::Io(std::io::Error::other(
                            error.to_string(),
                        ))));
                    }
                }
            }
        }
        if accepted.is_empty() {
            return;
        }
        if head.sequence != self.head.sequence {
            let head_json = encode_json(&head);
            staged
                .writes
                .push((TreeName::Meta, HEAD_KEY.to_vec(), head_json));
        }
        let staged_at = std::time::Instant::now();
        if let Err(error) = self.commit(&staged.removals, &staged.writes) {
            // The transaction applied nothing: refuse this batch, keep serving.
            error!(%error, "a batch transaction failed; nothing of it was written");
            for reply in accepted {
                reply.fail(StoreError::Io(std::io::Error::other(error.clone())));
            }
            return;
        }
        let committed_at = std::time::Instant::now();
        let durable = self.make_durable();
        log_group_commit(
            &accepted,
            staged.writes.len(),
            [started, staged_at, committed_at, std::time::Instant::now()],
        );
        if let Err(detail) = durable {
            // The batch is in sled's memory but may not be on disk: stop serving writes rather
            // than acknowledge or expose state that a crash could take back.
            error!(path = %self.path, %detail, "could not make a batch durable; refusing further writes");
            self.poison(&detail);
            for reply in accepted {
                reply.fail(StoreError::Poisoned {
                    detail: detail.clone(),
                });
            }
            return;
        }
        // The head only moves forward: a batch that went back would hand out sequence numbers
        // twice. That is a bug in this writer, so stop it rather than acknowledge.
        assert!(
            head.sequence >= self.head.sequence,
            "the chain head would move back from #{} to #{}",
            self.head.sequence,
            head.sequence
        );
        self.head = head.clone();
        if let Ok(mut durable_head) = self.durable_head.lock() {
            *durable_head = (head.sequence > 0).then_some(head.clone());
        }
        self.durable_sender.send_replace(head.sequence);
        for reply in accepted {
            reply.succeed();
        }
    }

    pub(super) fn make_durable(&mut self) -> Result<(), String> {
        self.faults
            .before(FaultPoint::Flush)
            .and_then(|()| self.db.flush().map_err(std::io::Error::other))
            .map_err(|error| format!("sled flush failed: {error}"))?;
        self.faults
            .before(FaultPoint::Fdatasync)
            .and_then(|()| self.sync.sync())
            .map_err(|error| format!("fdatasync of {}/db failed: {error}", self.path))
    }

    /// Refuse all further writes and reads, and wake every reader waiting for a sequence that
    /// will now never become durable (they see the poison and fail).
    pub(super) fn poison(&self, detail: &str) {
        let _ = self.poisoned.set(detail.to_string());
        self.durable_sender.send_modify(|_| {});
    }

    pub(super) fn stage_append(
        &self,
        request: &AppendRequest,
        recorded_at: OffsetDateTime,
        head: &mut ChainHead,
        staged: &mut Staged,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let planned = staged.plan.plan_append(request, recorded_at, head, self)?;
        let mut events = Vec::with_capacity(request.payloads.len());
        for (position, stream) in planned.streams.into_iter().enumerate() {
            if position == 0 {
                stage_search_keys(
                    &request.account,
                    stream.stream_id,
                    stream.state.created_sequence,
                    &request.search_keys,
                    staged,
                );
            }
            stage_stream(&request.account, stream, &mut staged.writes, &mut events);
        }
        if let Some(record) = planned.idempotency {
            staged.writes.push((
                TreeName::Idempotency,
                stream_key(&request.account, &record.key),
                encode_json(&record),
            ));
        }
        for delivery in &planned.deliveries {
            super::outbox::stage_new_delivery(delivery, &mut staged.writes);
        }
        Ok(events)
    }

    pub(super) fn stage_import(
        &self,
        events: Vec<RecordedEvent>,
        projections: ProjectionRows,
        head: &mut ChainHead,
        staged: &mut Staged,
    ) -> Result<(), StoreError> {
        let imported_head = check_import(head, &events)?;
        let mut writes = Vec::with_capacity(events.len() * 2 + projections.len() * 2);
        for event in &events {
            writes.push((
                TreeName::Events,
                event.body.sequence.to_be_bytes().to_vec(),
                encode_json(event),
            ));
            let mut index_key = stream_key(&event.body.account, &event.body.stream_id);
            index_key.push(0);
            index_key.extend_from_slice(&event.body.stream_version.to_be_bytes());
            writes.push((
                TreeName::Streams,
                index_key,
                event.body.sequence.to_be_bytes().to_vec(),
            ));
            push_account_event_writes(event, &mut writes);
        }
        for (account, stream_id, stored) in &projections {
            let key = stream_key(account, stream_id);
            writes.push((TreeName::Owners, owner_key(stream_id, account), Vec::new()));
            push_all_search_keys(
                account,
                stream_id,
                stored.created_sequence,
                &index_keys(&stored.projection),
                &mut writes,
            );
            writes.extend(creation_write(
                account,
                stream_id,
                stored.created_sequence,
                &stored.projection,
            ));
            writes.push((
                TreeName::Projections,
                key.clone(),
                encode_projection(stored),
            ));
            staged.plan.record_stream(
                account,
                stream_id,
                StreamState {
                    version: stored.version,
                    created_sequence: stored.created_sequence,
                },
            );
        }
        staged.writes.extend(writes);
        *head = imported_head;
        Ok(())
    }

    pub(super) fn commit(
        &self,
        removals: &[(TreeName, Vec<u8>)],
        writes: &[(TreeName, Vec<u8>, Vec<u8>)],
    ) -> Result<(), String> {
        self.faults
            .before(FaultPoint::Commit)
            .map_err(|error| format!("the batch transaction failed: {error}"))?;
        let trees = &self.trees;
        let outcome: Result<(), TransactionError<()>> = (
            &trees.events,
            &trees.streams,
            &trees.projections,
            &trees.charges_by_creation,
            &trees.customers_by_creation,
            &trees.account_events,
            &trees.event_ids,
            &trees.refunds_by_creation,
            &trees.refund_ids,
            &trees.search_keys,
            &trees.idempotency,
            &trees.owners,
            &trees.outbox,
            &trees.meta,
        )
            .transaction(
                |(
                    events,
                    streams,
                    projections,
                    charges,
                    customers,
                    account_events,
                    event_ids,
                    refunds_by_creation,
                    refund_ids,
                    search_keys,
                    idempotency,
                    owners,
                    outbox,
                    meta,
                )| {
                    let pick = |tree: &TreeName| match tree {
                        TreeName::Events => events,
                        TreeName::Streams => streams,
                        TreeName::Projections => projections,
                        TreeName::ChargesByCreation => charges,
                        TreeName::CustomersByCreation => customers,
                        TreeName::AccountEvents => account_events,
                        TreeName::EventIds => event_ids,
                        TreeName::RefundsByCreation => refunds_by_creation,
                        TreeName::RefundIds => refund_ids,
                        TreeName::SearchKeys => search_keys,
                        TreeName::Idempotency => idempotency,
                        TreeName::Owners => owners,
                        TreeName::Outbox => outbox,
                        TreeName::Meta => meta,
                    };
                    for (tree, key) in removals {
                        pick(tree).remove(key.as_slice())?;
                    }
                    for (tree, key, value) in writes {
                        pick(tree).insert(key.as_slice(), value.as_slice())?;
                    }
                    Ok::<(), ConflictableTransactionError<()>>(())
                },
            );
        outcome.map_err(|error| match error {
            TransactionError::Storage(error) => error.to_string(),
            TransactionError::Abort(()) => "the transaction was aborted".to_string(),
        })
    }
}

/// Log a group commit's size and where its time went, at debug; at warn when callers waited
/// longer than `SLOW_COMMIT_WARNING`. `moments`: started, staged, committed, durable.
fn log_group_commit(accepted: &[Accepted], writes: usize, moments: [std::time::Instant; 4]) {
    let [started, staged_at, committed_at, durable_at] = moments;
    let appends = accepted
        .iter()
        .filter(|job| matches!(job, Accepted::Append(..)))
        .count();
    let micros = |from: std::time::Instant, to: std::time::Instant| (to - from).as_micros() as u64;
    let (staging_us, transaction_us, flush_and_fdatasync_us) = (
        micros(started, staged_at),
        micros(staged_at, committed_at),
        micros(committed_at, durable_at),
    );
    debug!(
        appends,
        writes, staging_us, transaction_us, flush_and_fdatasync_us, "group commit"
    );
    // Imports commit large pages on purpose; only appends have callers waiting.
    if durable_at - started > SLOW_COMMIT_WARNING && appends > 0 {
        warn!(
            appends,
            writes,
            staging_us,
            transaction_us,
            flush_and_fdatasync_us,
            "a slow group commit: its appends waited this long for their acknowledgement"
        );
    }
}

pub(super) fn reply_error(job: Job, make_error: impl Fn() -> StoreError) {
    match job {
        Job::Append(_, reply) => {
            let _ = reply.send(Err(make_error()));
        }
        Job::Import(_, _, reply)
        | Job::PutProjections(_, reply)
        | Job::SaveDeliveries(_, reply) => {
            let _ = reply.send(Err(make_error()));
        }
        Job::PurgeIdempotency(_, reply) => {
            let _ = reply.send(Err(make_error()));
        }
    }
}

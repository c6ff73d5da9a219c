//! The one write path: idempotency, the striped per-stream lock, load, decide, append, retry on a version conflict.

use super::*;
use crate::domain::search;

impl Ledger {
    pub(super) async fn find_customer(
        &self,
        account: &str,
        customer_id: &str,
    ) -> Result<Option<Customer>, LedgerError> {
        Ok(match self.store.load(account, customer_id).await? {
            Some(StoredProjection {
                projection: Projection::Customer(customer),
                ..
            }) => Some(customer),
            _ => None,
        })
    }

    pub(super) fn stream_lock(&self, account: &str, stream_id: &str) -> &Mutex<()> {
        let mut hasher = DefaultHasher::new();
        (account, stream_id).hash(&mut hasher);
        let stripe = usize::try_from(hasher.finish() % STREAM_LOCK_STRIPES as u64).unwrap_or(0);
        &self.stream_locks[stripe]
    }

    /// The one write path for a command on one stream.
    pub(super) async fn execute<T>(
        &self,
        account: &str,
        stream_id: &str,
        fingerprint: impl FnOnce() -> String,
        request: RequestMeta,
        mut decide: impl FnMut(Option<&StoredProjection>) -> Result<Decision<T>, LedgerError>,
    ) -> Result<T, LedgerError>
    where
        T: Serialize + DeserializeOwned,
    {
        self.execute_with_linked(
            account,
            stream_id,
            None,
            fingerprint,
            request,
            |current, _| decide(current),
        )
        .await
    }

    /// A write whose decision depends on the account's policy (`freeze_after_capture`). The
    /// policy is read on every attempt, inside the stream's lock, and its version is checked at
    /// commit: an update racing a policy change either commits before it or is decided again
    /// under the new policy.
    pub(super) async fn execute_with_policy<T>(
        &self,
        account: &str,
        stream_id: &str,
        fingerprint: impl FnOnce() -> String,
        request: RequestMeta,
        mut decide: impl FnMut(
            Option<&StoredProjection>,
            &AccountPolicy,
        ) -> Result<Decision<T>, LedgerError>,
    ) -> Result<T, LedgerError>
    where
        T: Serialize + DeserializeOwned,
    {
        let scope = WriteScope {
            stream_id,
            linked_stream_id: None,
            reads_policy: true,
        };
        self.execute_in(
            account,
            scope,
            fingerprint,
            request,
            |current, _, policy| decide(current, policy),
        )
        .await
    }

    /// A write that may also append to a second stream (the token a charge spends). The linked
    /// stream is re-read on every attempt and its version is checked at commit, so two charges
    /// can never spend one token. It is not locked: taking two striped locks could deadlock, and
    /// optimistic concurrency already makes it safe.
    pub(super) async fn execute_with_linked<T>(
        &self,
        account: &str,
        stream_id: &str,
        linked_stream_id: Option<&str>,
        fingerprint: impl FnOnce() -> String,
        request: RequestMeta,
        mut decide: impl FnMut(
            Option<&StoredProjection>,
            Option<&StoredProjection>,
        ) -> Result<Decision<T>, LedgerError>,
    ) -> Result<T, LedgerError>
    where
        T: Serialize + DeserializeOwned,
    {
        let scope = WriteScope {
            stream_id,
            linked_stream_id,
            reads_policy: false,
        };
        self.execute_in(
            account,
            scope,
            fingerprint,
            request,
            |current, linked, _| decide(current, linked),
        )
        .await
    }

    /// The one write path: idempotency, load, decide, append, retry on conflict. The decision
    /// is given the stream, the linked stream and (when `scope.reads_policy`) the account's
    /// policy; a scope that does not read the policy is given the default, which no caller
    /// outside `execute_with_policy` can see.
    pub(super) async fn execute_in<T>(
        &self,
        account: &str,
        scope: WriteScope<'_>,
        fingerprint: impl FnOnce() -> String,
        request: RequestMeta,
        mut decide: impl FnMut(
            Option<&StoredProjection>,
            Option<&StoredProjection>,
            &AccountPolicy,
        ) -> Result<Decision<T>, LedgerError>,
    ) -> Result<T, LedgerError>
    where
        T: Serialize + DeserializeOwned,
    {
        let WriteScope {
            stream_id,
            linked_stream_id,
            reads_policy,
        } = scope;
        // Hashing the parameters costs a serialization: only requests with a key pay it.
        let fingerprint = request.idempotency_key.as_ref().map(|_| fingerprint());
        let fingerprint = fingerprint.as_deref().unwrap_or_default();
        if let Some(key) = &request.idempotency_key {
            let length_chars = key.chars().count();
            if length_chars > IDEMPOTENCY_KEY_MAX_CHARS {
                return Err(Refusal::IdempotencyKeyTooLong { length_chars }.into());
            }
            if let Some(record) = self.store.idempotency_record(account, key).await? {
                return self.replay_idempotent(record, fingerprint).await;
            }
        }
        // Admission: at most `max_pending_writes` writes wait for a stream lock or the store at
        // once. Past that the request is refused at once, so an overloaded server answers 429
        // instead of queueing without bound (and holding every client's connection meanwhile).
        let Ok(_admitted) = self.write_slots.try_acquire() else {
            return Err(Refusal::Overloaded {
                pending: self.max_pending_writes,
            }
            .into());
        };
        let _serialized = self.stream_lock(account, stream_id).lock().await;
        let waited_since = tokio::time::Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let current = self.store.load(account, stream_id).await?;
            let linked_current = match linked_stream_id {
                Some(linked) => self.store.load(account, linked).await?,
                None => None,
            };
            let (policy, read_versions) = if reads_policy {
                let (policy, version) = self.account_policy_with_version(account).await?;
                let read = StreamVersion {
                    stream_id: POLICY_STREAM.to_string(),
                    version,
                };
                (policy, vec![read])
            } else {
                (AccountPolicy::default(), Vec::new())
            };
            let (payloads, projection, outcome, linked) =
                match decide(current.as_ref(), linked_current.as_ref(), &policy)? {
                    Decision::Unchanged(outcome) => return Ok(outcome),
                    Decision::Append {
                        payloads,
                        projection,
                        outcome,
                        linked,
                    } => (payloads, projection, outcome, linked),
                };
            let deliveries = self
                .plan_side_effects(account, stream_id, current.as_ref(), &payloads)
                .await?;
            let idempotency = request
                .idempotency_key
                .as_ref()
                .map(|key| IdempotencyRecord {
                    key: key.clone(),
                    fingerprint: fingerprint.to_string(),
                    outcome: serde_json::to_value(&outcome).expect(
                        "a write's outcome (a charge, refund, customer, token or policy) always encodes as JSON",
                    ),
                    created_at_unix: self.clock.now_unix(),
                    sequence: 0,
                });
            let search_keys = search::key_changes(
                current.as_ref().map(|stored| &stored.projection),
                &projection,
            );
            let append = AppendRequest {
                account: account.to_string(),
                stream_id: stream_id.to_string(),
                expected_version: current.as_ref().map_or(0, |stored| stored.version),
                payloads,
                request: request.clone(),
                projection,
                idempotency,
                linked,
                read_versions,
                deliveries,
                search_keys,
            };
            match self.store.append(append).await {
                Ok(events) => {
                    debug!(stream_id, events = events.len(), "appended");
                    return Ok(outcome);
                }
                Err(StoreError::VersionConflict { .. }) if attempts < MAX_APPEND_ATTEMPTS => {
                    debug!(
                        stream_id,
                        attempts, "version conflict; deciding again on fresh state"
                    );
                }
                Err(StoreError::VersionConflict { .. }) => {
                    warn!(
                        stream_id,
                        attempts, "giving up after repeated version conflicts"
                    );
                    return Err(Refusal::Contention {
                        stream_id: stream_id.to_string(),
                        attempts,
                    }
                    .into());
                }
                Err(StoreError::IdempotencyKeyTaken(record)) => {
                    return self.replay_idempotent(*record, fingerprint).await;
                }
                Err(StoreError::IdempotencyKeyInFlight { key }) => {
                    // Another request with this key is in the commit under way: its record is
                    // readable once that commit is durable, so wait for the durable head to move
                    // (marking the current head seen first, so a commit that already happened is
                    // not waited for again), then read it. If that commit failed, there is no
                    // record and this request is decided afresh.
                    let remaining = IDEMPOTENCY_WAIT.saturating_sub(waited_since.elapsed());
                    if remaining.is_zero() {
                        return Err(Refusal::IdempotencyKeyInUse { key }.into());
                    }
                    let mut durable = self.store.durable_sequence();
                    durable.borrow_and_update();
                    if let Some(record) = self.store.idempotency_record(account, &key).await? {
                        return self.replay_idempotent(record, fingerprint).await;
                    }
                    let _ = tokio::time::timeout(remaining, durable.changed()).await;
                    if let Some(record) = self.store.idempotency_record(account, &key).await? {
                        return self.replay_idempotent(record, fingerprint).await;
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Answer a retried request from its first result, once that result is durable.
    pub(super) async fn replay_idempotent<T: DeserializeOwned>(
        &self,
        record: IdempotencyRecord,
        fingerprint: &str,
    ) -> Result<T, LedgerError> {
        if record.fingerprint != fingerprint {
            return Err(Refusal::IdempotencyKeyReused { key: record.key }.into());
        }
        let mut durable = self.store.durable_sequence();
        let _ = durable
            .wait_for(|sequence| *sequence >= record.sequence)
            .await;
        serde_json::from_value(record.outcome).map_err(|error| {
            Failure::CorruptIdempotencyRecord {
                key: record.key,
                detail: error.to_string(),
            }
            .into()
        })
    }
}

/// The streams a write touches: the one it appends to, a linked one it may also append to, and
/// whether its decision reads the account's policy.
pub(super) struct WriteScope<'a> {
    pub(super) stream_id: &'a str,
    pub(super) linked_stream_id: Option<&'a str>,
    pub(super) reads_policy: bool,
}

/// A request's identity for idempotency: the operation, its target and its parameters.
pub(super) fn fingerprint(operation: &str, target: &str, parameters: &impl Serialize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(operation.as_bytes());
    hasher.update([0]);
    hasher.update(target.as_bytes());
    hasher.update([0]);
    // An empty encoding would make every request of this operation look alike: a bug, so stop.
    hasher.update(
        serde_json::to_vec(parameters).expect("a command's parameters always encode as JSON"),
    );
    hex::encode(hasher.finalize())
}

pub(super) fn existing_charge(
    charge_id: &str,
    stored: Option<&StoredProjection>,
) -> Result<ChargeState, LedgerError> {
    match stored.map(|stored| &stored.projection) {
        Some(Projection::Charge(charge)) => Ok((**charge).clone()),
        _ => Err(RequestError::NoSuchCharge {
            id: charge_id.to_string(),
        }
        .into()),
    }
}

pub(super) fn fold_new_charge(
    charge_id: &str,
    charge: Option<ChargeState>,
    payload: EventPayload,
) -> Result<Decision<ChargeState>, LedgerError> {
    let projection = domain::apply(
        charge.map(|charge| Projection::Charge(Box::new(charge))),
        &payload,
    )
    .map_err(LedgerError::corrupt_stream(charge_id))?;
    let Projection::Charge(outcome) = &projection else {
        return Err(unexpected_payload(charge_id, &payload, "charge"));
    };
    Ok(Decision::Append {
        outcome: (**outcome).clone(),
        payloads: vec![payload],
        projection,
        linked: Vec::new(),
    })
}

/// A decision produced an event of the wrong kind: a bug, reported rather than panicked on.
pub(super) fn unexpected_payload(
    stream_id: &str,
    payload: &EventPayload,
    stream_kind: &'static str,
) -> LedgerError {
    Failure::CorruptStream {
        stream_id: stream_id.to_string(),
        source: FoldError::WrongStream {
            event_type: payload.event_type(),
            stream_kind,
        },
    }
    .into()
}

pub(super) fn fold_charge(
    charge_id: &str,
    events: &[RecordedEvent],
) -> Result<ChargeState, LedgerError> {
    let corrupt = LedgerError::corrupt_stream(charge_id);
    match domain::fold(events.iter().map(|event| &event.body.payload)).map_err(corrupt)? {
        Some(Projection::Charge(charge)) => Ok(*charge),
        _ => Err(RequestError::NoSuchCharge {
            id: charge_id.to_string(),
        }
        .into()),
    }
}

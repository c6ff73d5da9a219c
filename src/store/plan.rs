//! What every backend's writer decides the same way for an append: version checks, idempotency checks, gap-free sequences and the sealed events.
//!
//! A writer collects a batch of appends, then plans each one here against what is stored (read
//! through a `StoredStreams` lookup) and what the batch already planned. The plan says what to
//! write; the backend only turns it into its own records. Keeping this in one place means the
//! sled store and the PostgreSQL store refuse exactly the same appends and seal exactly the
//! same bytes.

use std::collections::{HashMap, HashSet};

use time::OffsetDateTime;

use crate::chain::{ChainVerifier, seal_encoded};
use crate::domain::Projection;
use crate::events::{EVENT_SCHEMA_VERSION, EventBody, EventPayload, RecordedEvent, RequestMeta};
use crate::ids;
use crate::store::{
    AppendRequest, ChainHead, Delivery, DeliveryReason, DeliveryState, IdempotencyRecord,
    StoreError,
};

/// A stream's version and the global sequence of its first event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamState {
    pub version: u64,
    pub created_sequence: u64,
}

/// What is stored, as a writer sees it while it plans a batch.
pub trait StoredStreams {
    /// The stream's stored state, or `None` if it has no events.
    fn stream_state(
        &self,
        account: &str,
        stream_id: &str,
    ) -> Result<Option<StreamState>, StoreError>;
    /// The stored record of an idempotency key, if the key was used.
    fn idempotency_record(
        &self,
        account: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
}

/// An event sealed onto the chain, with the exact bytes to store.
#[derive(Debug)]
pub struct SealedEvent {
    pub event: RecordedEvent,
    /// `chain::seal_encoded`'s encoding: what the log keeps and `verify` hashes.
    pub stored: Vec<u8>,
}

/// One stream's part of a planned append.
#[derive(Debug)]
pub struct PlannedStream<'request> {
    pub stream_id: &'request str,
    /// `None` when this append creates the stream.
    pub previous: Option<StreamState>,
    pub state: StreamState,
    pub projection: &'request Projection,
    pub events: Vec<SealedEvent>,
}

/// Everything one append writes, in order: the main stream first, then linked streams.
#[derive(Debug)]
pub struct PlannedAppend<'request> {
    pub streams: Vec<PlannedStream<'request>>,
    /// The request's idempotency record, its `sequence` set to the append's last event.
    pub idempotency: Option<IdempotencyRecord>,
    /// The side effects of its events, pending.
    pub deliveries: Vec<Delivery>,
}

impl PlannedAppend<'_> {
    /// The recorded events, in sequence order: what the caller is answered with.
    pub fn recorded_events(&self) -> Vec<RecordedEvent> {
        self.streams
            .iter()
            .flat_map(|stream| stream.events.iter().map(|sealed| sealed.event.clone()))
            .collect()
    }
}

/// What a batch has planned so far: later appends in the batch are checked against it.
#[derive(Debug, Default)]
pub struct BatchPlan {
    streams: HashMap<(String, String), StreamState>,
    idempotency_keys: HashSet<(String, String)>,
}

impl BatchPlan {
    /// Count a stream's state as planned (an import's projections, say).
    pub fn record_stream(&mut self, account: &str, stream_id: &str, state: StreamState) {
        self.streams
            .insert((account.to_string(), stream_id.to_string()), state);
    }

    fn stream_state(
        &self,
        account: &str,
        stream_id: &str,
        stored: &impl StoredStreams,
    ) -> Result<Option<StreamState>, StoreError> {
        match self
            .streams
            .get(&(account.to_string(), stream_id.to_string()))
        {
            Some(state) => Ok(Some(*state)),
            None => stored.stream_state(account, stream_id),
        }
    }

    /// Check `request` against what is stored and planned, then seal its events onto `head`.
    /// A refused append leaves `head` and the plan as they were.
    pub fn plan_append<'request>(
        &mut self,
        request: &'request AppendRequest,
        recorded_at: OffsetDateTime,
        head: &mut ChainHead,
        stored: &impl StoredStreams,
    ) -> Result<PlannedAppend<'request>, StoreError> {
        let writes = std::iter::once((
            request.stream_id.as_str(),
            request.expected_version,
            request.payloads.as_slice(),
            &request.projection,
        ))
        .chain(request.linked.iter().map(|linked| {
            (
                linked.stream_id.as_str(),
                linked.expected_version,
                linked.payloads.as_slice(),
                &linked.projection,
            )
        }));
        // Every stream's version is checked before anything is sealed, so a refused append
        // leaves no trace in the batch.
        let mut checked = Vec::with_capacity(1 + request.linked.len());
        for (stream_id, expected_version, payloads, projection) in writes {
            let previous = self.stream_state(&request.account, stream_id, stored)?;
            let actual = previous.map_or(0, |state| state.version);
            if actual != expected_version {
                return Err(StoreError::VersionConflict {
                    stream_id: stream_id.to_string(),
                    expected: expected_version,
                    actual,
                });
            }
            checked.push((stream_id, previous, payloads, projection));
        }
        for read in &request.read_versions {
            let actual = self
                .stream_state(&request.account, &read.stream_id, stored)?
                .map_or(0, |state| state.version);
            if actual != read.version {
                return Err(StoreError::VersionConflict {
                    stream_id: read.stream_id.clone(),
                    expected: read.version,
                    actual,
                });
            }
        }
        if let Some(record) = &request.idempotency {
            if self
                .idempotency_keys
                .contains(&(request.account.clone(), record.key.clone()))
            {
                return Err(StoreError::IdempotencyKeyInFlight {
                    key: record.key.clone(),
                });
            }
            if let Some(existing) = stored.idempotency_record(&request.account, &record.key)? {
                return Err(StoreError::IdempotencyKeyTaken(Box::new(existing)));
            }
        }
        let mut chain = head.clone();
        let mut streams = Vec::with_capacity(checked.len());
        let mut event_count = 0;
        for (stream_id, previous, payloads, projection) in checked {
            let events = seal_stream_events(
                &request.account,
                stream_id,
                previous.map_or(0, |state| state.version),
                payloads,
                &request.request,
                recorded_at,
                &mut chain,
            );
            event_count += events.len() as u64;
            let first_sequence = events.first().map(|sealed| sealed.event.body.sequence);
            let state = StreamState {
                version: previous.map_or(0, |state| state.version) + payloads.len() as u64,
                created_sequence: match (previous, first_sequence) {
                    (Some(previous), _) => previous.created_sequence,
                    (None, Some(first)) => first,
                    (None, None) => {
                        return Err(StoreError::Io(std::io::Error::other(format!(
                            "an append would create stream {stream_id} without an event"
                        ))));
                    }
                },
            };
            streams.push(PlannedStream {
                stream_id,
                previous,
                state,
                projection,
                events,
            });
        }
        // Sequence numbers are gap-free: the head advances by exactly the events sealed.
        assert_eq!(
            chain.sequence,
            head.sequence + event_count,
            "an append of {event_count} events moved the head from #{} to #{}",
            head.sequence,
            chain.sequence
        );
        // Before anything is recorded in the batch's plan: a refused append leaves no trace.
        let deliveries = plan_deliveries(request, &streams[0].events, recorded_at)?;
        let idempotency = request.idempotency.as_ref().map(|record| {
            self.idempotency_keys
                .insert((request.account.clone(), record.key.clone()));
            IdempotencyRecord {
                sequence: chain.sequence,
                ..record.clone()
            }
        });
        for stream in &streams {
            self.record_stream(&request.account, stream.stream_id, stream.state);
        }
        *head = chain;
        Ok(PlannedAppend {
            streams,
            idempotency,
            deliveries,
        })
    }
}

/// The pending deliveries an append asks for, numbered per event in the order asked.
fn plan_deliveries(
    request: &AppendRequest,
    main_events: &[SealedEvent],
    recorded_at: OffsetDateTime,
) -> Result<Vec<Delivery>, StoreError> {
    let created_at_ms = (recorded_at.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut numbers: HashMap<usize, u32> = HashMap::new();
    request
        .deliveries
        .iter()
        .map(|intent| {
            let Some(sealed) = main_events.get(intent.payload_index) else {
                return Err(StoreError::Io(std::io::Error::other(format!(
                    "a delivery names event {} of an append of {} events",
                    intent.payload_index,
                    main_events.len()
                ))));
            };
            let number = numbers.entry(intent.payload_index).or_insert(0);
            let delivery = Delivery {
                account: request.account.clone(),
                event_id: sealed.event.body.event_id.clone(),
                event_sequence: sealed.event.body.sequence,
                number: *number,
                destination: intent.destination.clone(),
                reason: DeliveryReason::Event,
                created_at_ms,
                state: DeliveryState::Pending {
                    next_attempt_at_ms: created_at_ms,
                },
                attempts: Vec::new(),
            };
            *number += 1;
            Ok(delivery)
        })
        .collect()
}

/// Check that already-sealed events (an import) continue the chain from `head`; the head they
/// leave. Both writers call this before staging an import's rows, so a refused import stages
/// nothing.
pub fn check_import(head: &ChainHead, events: &[RecordedEvent]) -> Result<ChainHead, StoreError> {
    let mut verifier = ChainVerifier::after(head.sequence, head.hash.clone());
    for event in events {
        verifier
            .check(event)
            .map_err(|fault| StoreError::ImportRejected {
                sequence: event.body.sequence,
                detail: fault.to_string(),
            })?;
    }
    Ok(ChainHead {
        sequence: verifier.last_sequence(),
        hash: verifier.last_hash().to_string(),
    })
}

/// Seal one stream's new events onto `chain`, versions following `from_version`.
fn seal_stream_events(
    account: &str,
    stream_id: &str,
    from_version: u64,
    payloads: &[EventPayload],
    request: &RequestMeta,
    recorded_at: OffsetDateTime,
    chain: &mut ChainHead,
) -> Vec<SealedEvent> {
    let mut events = Vec::with_capacity(payloads.len());
    for (offset, payload) in payloads.iter().enumerate() {
        let body = EventBody {
            schema_version: EVENT_SCHEMA_VERSION,
            sequence: chain.sequence + 1,
            event_id: ids::event_id(),
            account: account.to_string(),
            stream_id: stream_id.to_string(),
            stream_version: from_version + 1 + offset as u64,
            recorded_at,
            request: request.clone(),
            previous_hash: chain.hash.clone(),
            payload: payload.clone(),
        };
        let (event, stored) = seal_encoded(body);
        *chain = ChainHead {
            sequence: event.body.sequence,
            hash: event.hash.clone(),
        };
        events.push(SealedEvent { event, stored });
    }
    events
}

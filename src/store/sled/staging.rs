//! What one stream's part of an append writes: sealed events, stream and account indexes, the projection, owner and creation entries.

use super::*;

/// One stream's part of an append.
pub(super) struct StreamWrite<'request> {
    pub(super) stream_id: &'request str,
    pub(super) expected_version: u64,
    pub(super) payloads: &'request [EventPayload],
    pub(super) projection: &'request Projection,
}

/// Seal one stream's events onto `chain` and collect every write they need (events, stream
/// index, account indexes, projection, owner and creation entries). Returns the stream's new
/// version and creation sequence.
#[allow(clippy::too_many_arguments)]
pub(super) fn stage_stream(
    account: &str,
    request: &RequestMeta,
    recorded_at: OffsetDateTime,
    write: &StreamWrite<'_>,
    key: &[u8],
    state: Option<(u64, u64)>,
    chain: &mut ChainHead,
    writes: &mut Vec<(TreeName, Vec<u8>, Vec<u8>)>,
    events: &mut Vec<RecordedEvent>,
) -> (u64, u64) {
    let actual = state.map_or(0, |(version, _)| version);
    let created_sequence = state.map_or(chain.sequence + 1, |(_, created)| created);
    let mut version = actual;
    for payload in write.payloads {
        version += 1;
        let body = EventBody {
            schema_version: EVENT_SCHEMA_VERSION,
            sequence: chain.sequence + 1,
            event_id: ids::event_id(),
            account: account.to_string(),
            stream_id: write.stream_id.to_string(),
            stream_version: version,
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
        writes.push((
            TreeName::Events,
            chain.sequence.to_be_bytes().to_vec(),
            stored,
        ));
        let mut index_key = key.to_vec();
        index_key.push(0);
        index_key.extend_from_slice(&version.to_be_bytes());
        writes.push((
            TreeName::Streams,
            index_key,
            chain.sequence.to_be_bytes().to_vec(),
        ));
        writes.extend(account_event_writes(&event));
        events.push(event);
    }
    // Stream versions are gap-free: the stream advances by exactly the events it was given.
    assert_eq!(
        version,
        actual + write.payloads.len() as u64,
        "stream {} would skip a version",
        write.stream_id
    );
    writes.push((
        TreeName::Projections,
        key.to_vec(),
        encode_projection_parts(version, created_sequence, write.projection),
    ));
    if actual == 0 {
        writes.push((
            TreeName::Owners,
            owner_key(write.stream_id, account),
            Vec::new(),
        ));
        writes.extend(creation_write(
            account,
            write.stream_id,
            created_sequence,
            write.projection,
        ));
    }
    (version, created_sequence)
}

/// The per-account index entries of one event: its place in the account's list and its id.
pub(super) fn account_event_writes(event: &RecordedEvent) -> [(TreeName, Vec<u8>, Vec<u8>); 2] {
    let sequence = event.body.sequence;
    [
        (
            TreeName::AccountEvents,
            creation_key(&event.body.account, sequence),
            event.body.event_id.as_bytes().to_vec(),
        ),
        (
            TreeName::EventIds,
            stream_key(&event.body.account, &event.body.event_id),
            sequence.to_be_bytes().to_vec(),
        ),
    ]
}

/// The newest-first list entry of a new charge or customer.
pub(super) fn creation_write(
    account: &str,
    stream_id: &str,
    created_sequence: u64,
    projection: &Projection,
) -> Option<(TreeName, Vec<u8>, Vec<u8>)> {
    let tree = match projection {
        Projection::Charge(_) => TreeName::ChargesByCreation,
        Projection::Customer(_) => TreeName::CustomersByCreation,
        Projection::AccountPolicy(_) | Projection::Token(_) => return None,
    };
    Some((
        tree,
        creation_key(account, created_sequence),
        stream_id.as_bytes().to_vec(),
    ))
}

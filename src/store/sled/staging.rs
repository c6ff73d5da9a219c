//! What one planned stream writes in sled: sealed events, stream and account indexes, the projection, owner and creation entries.

use super::*;

/// Every write one planned stream needs (events, stream index, account indexes, projection,
/// owner and creation entries); its events are moved into `events`.
pub(super) fn stage_stream(
    account: &str,
    stream: PlannedStream<'_>,
    writes: &mut Vec<(TreeName, Vec<u8>, Vec<u8>)>,
    events: &mut Vec<RecordedEvent>,
) {
    let key = stream_key(account, stream.stream_id);
    for SealedEvent { event, stored } in stream.events {
        let sequence = event.body.sequence;
        writes.push((TreeName::Events, sequence.to_be_bytes().to_vec(), stored));
        let mut index_key = key.clone();
        index_key.push(0);
        index_key.extend_from_slice(&event.body.stream_version.to_be_bytes());
        writes.push((
            TreeName::Streams,
            index_key,
            sequence.to_be_bytes().to_vec(),
        ));
        push_account_event_writes(&event, writes);
        events.push(event);
    }
    writes.push((
        TreeName::Projections,
        key,
        encode_projection_parts(
            stream.state.version,
            stream.state.created_sequence,
            stream.projection,
        ),
    ));
    if stream.previous.is_none() {
        writes.push((
            TreeName::Owners,
            owner_key(stream.stream_id, account),
            Vec::new(),
        ));
        writes.extend(creation_write(
            account,
            stream.stream_id,
            stream.state.created_sequence,
            stream.projection,
        ));
    }
}

/// Pushes the per-account index entries of one event: its place in the account's list, its id,
/// and for an event that records a refund, the refund's place in the account's refunds and its id.
pub(super) fn push_account_event_writes(
    event: &RecordedEvent,
    writes: &mut Vec<(TreeName, Vec<u8>, Vec<u8>)>,
) {
    let sequence = event.body.sequence;
    let account = &event.body.account;
    writes.push((
        TreeName::AccountEvents,
        creation_key(account, sequence),
        event.body.event_id.as_bytes().to_vec(),
    ));
    writes.push((
        TreeName::EventIds,
        stream_key(account, &event.body.event_id),
        sequence.to_be_bytes().to_vec(),
    ));
    if let Some(refund) = event.body.payload.refund_recorded() {
        let charge_id = &event.body.stream_id;
        writes.push((
            TreeName::RefundsByCreation,
            creation_key(account, sequence),
            refund_entry(charge_id, &refund.id, refund.created),
        ));
        let mut located = sequence.to_be_bytes().to_vec();
        located.extend(refund_entry(charge_id, &refund.id, refund.created));
        writes.push((
            TreeName::RefundIds,
            stream_key(account, &refund.id),
            located,
        ));
    }
}

/// A refund index value: `charge id 0x00 refund id 0x00 created` (`created` in decimal;
/// `refund_ids` puts the recording event's sequence first).
pub(super) fn refund_entry(charge_id: &str, refund_id: &str, created: i64) -> Vec<u8> {
    format!("{charge_id}\0{refund_id}\0{created}").into_bytes()
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
        Projection::AccountPolicy(_) | Projection::Token(_) | Projection::WebhookEndpoints(_) => {
            return None;
        }
    };
    Some((
        tree,
        creation_key(account, created_sequence),
        stream_id.as_bytes().to_vec(),
    ))
}

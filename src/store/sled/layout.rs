//! The store's layout on disk: the layout versions, the checks `open` makes (layout, chain head), the index upgrades (layout 1 → 2, layout 2 or 3 → the refund indexes), and opening sled itself.

use super::*;

pub(super) const FORMAT_KEY: &[u8] = b"format";
/// Layout 5: layout 4 with the search index (`search_keys`).
pub(super) const FORMAT_VALUE: &[u8] = b"chargeledger-sled-5";
/// Layout 4: layout 3 with every refund indexed by account (`refunds_by_creation`, `refund_ids`).
pub(super) const FORMAT_VALUE_WITHOUT_SEARCH_INDEX: &[u8] = b"chargeledger-sled-4";
/// Layout 3: projections hold the dialect-neutral `ChargeState`; `open` adds the refund indexes.
pub(super) const FORMAT_VALUE_WITHOUT_REFUND_INDEXES: &[u8] = b"chargeledger-sled-3";
/// Layout 2: projections held Stripe's charge object (with an `omise` part). Its events and
/// indexes are layout 3's; only the projections must be rebuilt from the log.
pub(super) const FORMAT_VALUE_WITH_STRIPE_PROJECTIONS: &[u8] = b"chargeledger-sled-2";
/// Layout 1: layout 2 before per-account event and customer indexes; `open` adds them.
pub(super) const FORMAT_VALUE_WITHOUT_ACCOUNT_INDEXES: &[u8] = b"chargeledger-sled-1";
pub(super) const HEAD_KEY: &[u8] = b"head";
/// How many of the newest events `open` re-verifies before serving.
pub(super) const TAIL_CHECKED_ON_OPEN: u64 = 1024;

/// How long `open` waits for a lock held by this very process to go: sled 0.34 releases a data
/// directory's lock only once its background flusher has stopped, a moment after the last
/// handle is dropped, so a close followed at once by an open would otherwise fail.
pub(super) const LOCK_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Open sled in `path`, waiting briefly for a lock that is being released.
pub(super) fn open_sled(path: &Path, cache_capacity_bytes: u64) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    loop {
        match sled::Config::new()
            .path(path)
            .cache_capacity(cache_capacity_bytes)
            .open()
        {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(io_error))
                if io_error.to_string().contains("could not acquire lock") =>
            {
                if started.elapsed() < LOCK_RELEASE_WAIT {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                }
                return Err(StoreError::Io(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!(
                        "{} is already open (sled allows one process per data directory): stop the other chargeledger using it, or use another --data directory",
                        path.display()
                    ),
                )));
            }
            Err(other) => return Err(StoreError::Sled(other)),
        }
    }
}

/// The newest stored event as a head, trusting nothing else (for verification of damaged stores).
pub(super) fn last_stored_event(trees: &Trees) -> Option<ChainHead> {
    let (key, value) = trees.events.last().ok().flatten()?;
    let hash = serde_json::from_slice::<RecordedEvent>(&value)
        .map(|event| event.hash)
        .unwrap_or_default();
    Some(ChainHead {
        sequence: read_u64(&key, 0),
        hash,
    })
}

/// Refuse a store whose layout is unknown or whose newest events do not chain to the recorded head.
pub(super) fn check_format_and_head(
    path: &Path,
    trees: &Trees,
) -> Result<Option<ChainHead>, StoreError> {
    let path_text = path.display().to_string();
    let corrupt = |location: &str, detail: String| StoreError::CorruptRecord {
        path: path_text.clone(),
        location: location.to_string(),
        detail,
    };
    if let Some(format) = trees.meta.get(FORMAT_KEY)?
        && format.as_ref() != FORMAT_VALUE
        && format.as_ref() != FORMAT_VALUE_WITHOUT_SEARCH_INDEX
        && format.as_ref() != FORMAT_VALUE_WITHOUT_REFUND_INDEXES
        && format.as_ref() != FORMAT_VALUE_WITH_STRIPE_PROJECTIONS
        && format.as_ref() != FORMAT_VALUE_WITHOUT_ACCOUNT_INDEXES
    {
        return Err(corrupt(
            "meta/format",
            format!(
                "unknown layout '{}'; this build reads '{}'",
                String::from_utf8_lossy(&format),
                String::from_utf8_lossy(FORMAT_VALUE)
            ),
        ));
    }
    let head: Option<ChainHead> = match trees.meta.get(HEAD_KEY)? {
        Some(value) => Some(
            serde_json::from_slice(&value)
                .map_err(|error| corrupt("meta/head", error.to_string()))?,
        ),
        None => None,
    };
    let last = trees.events.last()?;
    let head = match (head, last) {
        (None, None) => return Ok(None),
        (None, Some((key, _))) => {
            return Err(corrupt(
                "meta/head",
                format!(
                    "events exist up to #{} but no chain head is recorded",
                    read_u64(&key, 0)
                ),
            ));
        }
        (Some(head), None) => {
            return Err(corrupt(
                "events",
                format!(
                    "the chain head names event #{} but the log is empty",
                    head.sequence
                ),
            ));
        }
        (Some(head), Some((key, _))) => {
            let last_sequence = read_u64(&key, 0);
            if last_sequence != head.sequence {
                return Err(StoreError::CorruptChain {
                    path: path_text.clone(),
                    fault: ChainFault::SequenceGap {
                        previous: head.sequence,
                        found: last_sequence,
                    },
                });
            }
            head
        }
    };
    let tail_start = head
        .sequence
        .saturating_sub(TAIL_CHECKED_ON_OPEN - 1)
        .max(1);
    let mut verifier = if tail_start == 1 {
        ChainVerifier::from_genesis()
    } else {
        let before_key = (tail_start - 1).to_be_bytes();
        let before = trees
            .events
            .get(before_key)?
            .ok_or_else(|| StoreError::CorruptChain {
                path: path_text.clone(),
                fault: ChainFault::SequenceGap {
                    previous: tail_start.saturating_sub(2),
                    found: tail_start,
                },
            })?;
        let before: RecordedEvent = serde_json::from_slice(&before)
            .map_err(|error| corrupt(&format!("event #{}", tail_start - 1), error.to_string()))?;
        ChainVerifier::after(before.body.sequence, before.hash)
    };
    for entry in trees.events.range(tail_start.to_be_bytes()..) {
        let (key, value) = entry?;
        let key_sequence = read_u64(&key, 0);
        // Hashed from its stored bytes, as `verify` does.
        let HashedEvent {
            event,
            computed_hash,
        } = decode_hashed(&path_text, &key, &value)?;
        let chain_error = |fault| StoreError::CorruptChain {
            path: path_text.clone(),
            fault,
        };
        if event.body.sequence != key_sequence {
            return Err(chain_error(ChainFault::MisplacedEvent {
                key: key_sequence,
                found: event.body.sequence,
            }));
        }
        verifier
            .check_hashed(&event, &computed_hash)
            .map_err(chain_error)?;
    }
    if verifier.last_hash() != head.hash {
        return Err(StoreError::CorruptChain {
            path: path_text,
            fault: ChainFault::HashMismatch {
                sequence: head.sequence,
                stored: head.hash.clone(),
                computed: verifier.last_hash().to_string(),
            },
        });
    }
    Ok(Some(head))
}

/// Which index entries an upgrade writes from the log.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum LogIndexes {
    /// Layout 1 → 2: every per-account index of every event (and customers by creation).
    All,
    /// Layout 3 → 4: only the refund indexes.
    RefundsOnly,
}

/// Add per-account indexes derived from the log: layout 1 → 2 adds every one of them and
/// indexes customers by creation, layout 3 → 4 adds the refund indexes. Idempotent, so an
/// interrupted upgrade is simply run again.
pub(super) fn add_log_indexes(
    path: &Path,
    trees: &Trees,
    which: LogIndexes,
) -> Result<(), StoreError> {
    let mut writes = Vec::new();
    for entry in trees.events.iter() {
        let (key, value) = entry?;
        let event: RecordedEvent =
            serde_json::from_slice(&value).map_err(|error| StoreError::CorruptRecord {
                path: path.display().to_string(),
                location: format!("event #{}", read_u64(&key, 0)),
                detail: error.to_string(),
            })?;
        push_account_event_writes(&event, &mut writes);
        for (tree, key, value) in writes.drain(..) {
            let target = match tree {
                TreeName::RefundsByCreation => &trees.refunds_by_creation,
                TreeName::RefundIds => &trees.refund_ids,
                _ if which == LogIndexes::RefundsOnly => continue,
                TreeName::AccountEvents => &trees.account_events,
                TreeName::EventIds => &trees.event_ids,
                _ => unreachable!("push_account_event_writes writes only per-account indexes"),
            };
            target.insert(key, value)?;
        }
    }
    if which == LogIndexes::RefundsOnly {
        return Ok(());
    }
    for entry in trees.projections.iter() {
        let (key, value) = entry?;
        let stored = decode_projection(&value).map_err(|detail| StoreError::CorruptRecord {
            path: path.display().to_string(),
            location: format!("projection {}", String::from_utf8_lossy(&key)),
            detail,
        })?;
        if matches!(stored.projection, Projection::Customer(_)) {
            let (account, stream_id) = split_stream_key(&key);
            trees.customers_by_creation.insert(
                creation_key(&account, stored.created_sequence),
                stream_id.as_bytes(),
            )?;
        }
    }
    Ok(())
}

//! `verify` and `replay` in memory that does not grow with the number of streams: each stream is compared with its stored projection as soon as the fold reaches the stored version, then dropped.
//!
//! Holding every rebuilt state until the end of the log costs about a kilobyte per charge (a
//! million charges: gigabytes). Here a stream's state lives from its first event in the log to
//! the event that brings it to its stored projection's version; what stays afterwards is a
//! 16-byte digest of its key, so that an event beyond that version is still noticed.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

use super::*;

/// A stream being folded, with the projection stored for it (read at its first event).
struct OpenStream {
    rebuilt: StoredProjection,
    stored: Option<StoredProjection>,
}

/// The fold of the whole log, compared stream by stream.
pub(super) struct StreamingComparison {
    open: HashMap<(String, String), OpenStream>,
    /// Digests of streams already compared at their stored version.
    done: HashSet<u128>,
    /// Streams with events past their stored version: refolded from their own events at the end.
    reopened: HashSet<(String, String)>,
    digest: std::collections::hash_map::RandomState,
    /// Whether stored projections are this layout's to compare (a stale layout's are not).
    compare: bool,
    /// Streams of the log that had a stored projection.
    pub(super) with_stored: u64,
    pub(super) mismatches: Vec<(ProjectionMismatch, Option<StoredProjection>)>,
    max_mismatches: usize,
}

impl StreamingComparison {
    pub(super) fn new(compare: bool, max_mismatches: usize) -> Self {
        StreamingComparison {
            open: HashMap::new(),
            done: HashSet::new(),
            reopened: HashSet::new(),
            digest: std::collections::hash_map::RandomState::new(),
            compare,
            with_stored: 0,
            mismatches: Vec::new(),
            max_mismatches,
        }
    }

    /// A 128-bit digest of a stream key: two independent 64-bit SipHashes (random keys per
    /// run), so a false "already compared" needs a collision near 2^-128.
    fn digest_of(&self, account: &str, stream_id: &str) -> u128 {
        let half = |salt: u8| {
            let mut hasher = self.digest.build_hasher();
            hasher.write_u8(salt);
            hasher.write(account.as_bytes());
            hasher.write_u8(0);
            hasher.write(stream_id.as_bytes());
            hasher.finish() as u128
        };
        (half(1) << 64) | half(2)
    }

    /// Fold one event, checked by the chain already; `stored` holds the projections of the
    /// streams this page starts (`pages::Page::started_streams`).
    pub(super) fn fold(
        &mut self,
        event: &RecordedEvent,
        stored: &mut super::pages::StoredByStream,
    ) -> Result<(), Fault> {
        let body = &event.body;
        let key = (body.account.clone(), body.stream_id.clone());
        if self.reopened.contains(&key) {
            return Ok(());
        }
        let previous = match self.open.remove(&key) {
            Some(open) => Some(open),
            None if self.done.contains(&self.digest_of(&key.0, &key.1)) => {
                // An event past the version its projection claims: the stored projection is
                // behind the log. Refold that stream alone once the scan is done.
                self.reopened.insert(key);
                return Ok(());
            }
            None => None,
        };
        let (state, stored_projection) = match previous {
            Some(open) => (Some(open.rebuilt), open.stored),
            None => {
                let found = stored.remove(&key);
                self.with_stored += u64::from(found.is_some());
                (None, found)
            }
        };
        let rebuilt = fold_one(state, event)?;
        match stored_projection {
            Some(stored) if self.compare && stored.version == rebuilt.version => {
                self.done.insert(self.digest_of(&key.0, &key.1));
                let detail = if stored.created_sequence != rebuilt.created_sequence {
                    Some("its creation order differs".to_string())
                } else if stored.projection != rebuilt.projection {
                    Some("its state differs".to_string())
                } else {
                    None
                };
                if let Some(detail) = detail {
                    self.record(key, detail, Some(rebuilt));
                }
            }
            stored => {
                self.open.insert(key, OpenStream { rebuilt, stored });
            }
        }
        Ok(())
    }

    fn record(&mut self, key: (String, String), detail: String, correct: Option<StoredProjection>) {
        if self.mismatches.len() < self.max_mismatches {
            self.mismatches.push((
                ProjectionMismatch {
                    account: key.0,
                    stream_id: key.1,
                    detail,
                },
                correct,
            ));
        }
    }

    /// Streams seen in the log so far.
    pub(super) fn streams(&self) -> u64 {
        self.done.len() as u64 + self.open.len() as u64 + self.reopened.len() as u64
    }

    /// Record a stored projection with no events in the log.
    pub(super) fn orphan(&mut self, account: String, stream_id: String) {
        self.record(
            (account, stream_id),
            "there are no events for it".to_string(),
            None,
        );
    }

    /// After the scan: streams still open never reached their stored version.
    pub(super) fn finish_open_streams(&mut self) {
        let mut open: Vec<_> = self.open.drain().collect();
        open.sort_by(|left, right| left.0.cmp(&right.0));
        for (key, open) in open {
            self.done.insert(self.digest_of(&key.0, &key.1));
            if !self.compare {
                continue;
            }
            let detail = match &open.stored {
                None => "its projection is missing".to_string(),
                Some(stored) => format!(
                    "it claims version {}, the log has {}",
                    stored.version, open.rebuilt.version
                ),
            };
            self.record(key, detail, Some(open.rebuilt));
        }
    }

    /// Streams whose log runs past their stored version, to refold from their own events.
    pub(super) fn take_reopened(&mut self) -> Vec<(String, String)> {
        let mut reopened: Vec<_> = self.reopened.drain().collect();
        reopened.sort();
        reopened
    }

    /// A refolded stream's state against its stored projection.
    pub(super) fn compare_refolded(
        &mut self,
        key: (String, String),
        rebuilt: StoredProjection,
        stored: Option<StoredProjection>,
    ) {
        self.done.insert(self.digest_of(&key.0, &key.1));
        let claimed = stored.map_or(0, |stored| stored.version);
        let detail = format!(
            "it claims version {claimed}, the log has {}",
            rebuilt.version
        );
        self.record(key, detail, Some(rebuilt));
    }

    /// Whether `(account, stream_id)` was folded from the log.
    pub(super) fn saw(&self, account: &str, stream_id: &str) -> bool {
        self.done.contains(&self.digest_of(account, stream_id))
    }

    pub(super) fn is_full(&self) -> bool {
        self.mismatches.len() >= self.max_mismatches
    }

    pub(super) fn compares(&self) -> bool {
        self.compare
    }
}

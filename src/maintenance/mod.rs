//! Whole-log operations: `verify` (hash chain, versions, projections), `replay` (rebuild projections), export, import and copying a ledger to another store.

use std::collections::HashMap;

use serde::Serialize;
use thiserror::Error;

use crate::chain::{ChainFault, ChainVerifier};
use crate::domain::{FoldError, apply};
use crate::events::RecordedEvent;
use crate::ledger::{Failure, Ledger, LedgerError};
use crate::store::{HashedEvent, StoreError, StoredProjection};

mod pages;
mod streaming;
mod transfer;
use pages::{Page, PageReader};
use streaming::StreamingComparison;

/// Events read per page while scanning the log.
const SCAN_PAGE_EVENTS: usize = 10_000;
/// Projections read or written per page.
const PROJECTION_PAGE: usize = 10_000;

/// Reports how far a long operation has come: `(done, total)` events.
pub type ProgressFn<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// The first thing `verify` found wrong, naming the record.
#[derive(Debug, Clone, PartialEq, Error, Serialize)]
pub enum Fault {
    #[error("{0}")]
    Chain(#[serde(serialize_with = "display")] ChainFault),
    #[error(
        "event #{sequence} is version {found} of stream {stream_id} in account {account}, but that stream's next version is {expected}"
    )]
    StreamVersionGap {
        sequence: u64,
        account: String,
        stream_id: String,
        expected: u64,
        found: u64,
    },
    #[error("event #{sequence} cannot be applied to its stream {stream_id}: {detail}")]
    Unfoldable {
        sequence: u64,
        stream_id: String,
        detail: String,
    },
    #[error("{location} cannot be read: {detail}")]
    Unreadable { location: String, detail: String },
    #[error(
        "the stored projection of {stream_id} in account {account} differs from the fold of its events: {detail}"
    )]
    ProjectionMismatch {
        account: String,
        stream_id: String,
        detail: String,
    },
}

fn display<S: serde::Serializer>(fault: &ChainFault, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(fault)
}

/// What `verify` checked and the first fault it found, if any.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub events: u64,
    pub streams: u64,
    pub projections: u64,
    pub first_fault: Option<Fault>,
}

impl VerifyReport {
    pub fn is_sound(&self) -> bool {
        self.first_fault.is_none()
    }
}

/// A projection that `replay` found wrong and rewrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectionMismatch {
    pub account: String,
    pub stream_id: String,
    pub detail: String,
}

/// What `replay` rebuilt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    pub events: u64,
    pub streams: u64,
    pub mismatches: Vec<ProjectionMismatch>,
}

/// Streams rebuilt from the log: `(account, stream id)` → state.
type Rebuilt = HashMap<(String, String), StoredProjection>;

/// Why a scan of the log stopped.
enum ScanStop {
    Fault(Fault),
    Failed(LedgerError),
}

impl From<StoreError> for ScanStop {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::CorruptRecord {
                location, detail, ..
            } => ScanStop::Fault(Fault::Unreadable { location, detail }),
            StoreError::CorruptChain { fault, .. } => ScanStop::Fault(Fault::Chain(fault)),
            other => ScanStop::Failed(other.into()),
        }
    }
}

impl Ledger {
    /// Check everything: the hash chain of every event, gap-free stream versions, and that every
    /// stored projection equals the fold of its events. Stops at the first bad record of the log
    /// and names it; of wrong projections it names the first found in log order. Memory stays
    /// flat in the number of streams (see `streaming`).
    pub async fn verify(&self, progress: ProgressFn<'_>) -> Result<VerifyReport, LedgerError> {
        let total = self.store().head().await?.map_or(0, |head| head.sequence);
        let mut report = VerifyReport {
            events: 0,
            streams: 0,
            projections: 0,
            first_fault: None,
        };
        // An older layout's projections are not this build's to compare: the next open
        // rebuilds them from the log checked here.
        let compare = !self.store().projections_are_stale();
        let comparison = match self
            .fold_and_compare(total, progress, &mut report.events, compare, 1)
            .await
        {
            Ok(comparison) => comparison,
            Err(ScanStop::Fault(fault)) => {
                report.first_fault = Some(fault);
                return Ok(report);
            }
            Err(ScanStop::Failed(error)) => return Err(error),
        };
        report.streams = comparison.streams();
        if !compare {
            return Ok(report);
        }
        report.projections = self.store().count_projections().await?;
        report.first_fault = comparison
            .mismatches
            .into_iter()
            .next()
            .map(|(mismatch, _)| Fault::ProjectionMismatch {
                account: mismatch.account,
                stream_id: mismatch.stream_id,
                detail: mismatch.detail,
            });
        Ok(report)
    }

    /// Rebuild every projection from the log, rewrite the ones that differ, and report them.
    /// The log itself is only read.
    pub async fn replay(&self, progress: ProgressFn<'_>) -> Result<ReplayReport, LedgerError> {
        let total = self.store().head().await?.map_or(0, |head| head.sequence);
        let mut events = 0;
        let comparison = match self
            .fold_and_compare(total, progress, &mut events, true, usize::MAX)
            .await
        {
            Ok(comparison) => comparison,
            Err(ScanStop::Fault(fault)) => {
                return Err(Failure::LogDamaged(format!(
                    "replay stopped: {fault}; run `chargeledger verify` for details"
                ))
                .into());
            }
            Err(ScanStop::Failed(error)) => return Err(error),
        };
        let streams = comparison.streams();
        let mut found = comparison.mismatches;
        found.sort_by(|left, right| {
            (&left.0.account, &left.0.stream_id).cmp(&(&right.0.account, &right.0.stream_id))
        });
        let mut mismatches = Vec::with_capacity(found.len());
        let mut corrections = Vec::new();
        for (mismatch, correct) in found {
            if let Some(correct) = correct {
                corrections.push((
                    mismatch.account.clone(),
                    mismatch.stream_id.clone(),
                    correct,
                ));
            }
            mismatches.push(mismatch);
        }
        for chunk in corrections.chunks(PROJECTION_PAGE) {
            self.store().put_projections(chunk.to_vec()).await?;
        }
        Ok(ReplayReport {
            events,
            streams,
            mismatches,
        })
    }

    /// Fold the whole log in order, checking the chain and stream versions, and compare each
    /// stream with its stored projection (when `compare`) as the fold reaches it.
    async fn fold_and_compare(
        &self,
        total: u64,
        progress: ProgressFn<'_>,
        events_seen: &mut u64,
        compare: bool,
        max_mismatches: usize,
    ) -> Result<StreamingComparison, ScanStop> {
        let mut verifier = ChainVerifier::from_genesis();
        let mut comparison = StreamingComparison::new(compare, max_mismatches);
        let mut pages = PageReader::new(self.store().clone(), compare);
        while let Some(Page {
            events,
            started_streams: mut stored,
        }) = pages.next_page().await?
        {
            for hashed in &events {
                // Counted as they pass, so a report that stops at a fault says how many were good.
                verifier
                    .check_hashed(&hashed.event, &hashed.computed_hash)
                    .map_err(|fault| ScanStop::Fault(Fault::Chain(fault)))?;
                comparison
                    .fold(&hashed.event, &mut stored)
                    .map_err(ScanStop::Fault)?;
                *events_seen += 1;
            }
            progress(verifier.last_sequence(), total);
        }
        if verifier.last_sequence() != total {
            return Err(ScanStop::Fault(Fault::Chain(ChainFault::SequenceGap {
                previous: verifier.last_sequence(),
                found: total,
            })));
        }
        comparison.finish_open_streams();
        for key in comparison.take_reopened() {
            let events = self.store().read_stream(&key.0, &key.1, None).await?;
            let mut state = None;
            for event in &events {
                state = Some(fold_one(state, event).map_err(ScanStop::Fault)?);
            }
            let rebuilt = state.ok_or_else(|| {
                ScanStop::Failed(
                    Failure::LogDamaged(format!(
                        "stream {} of account {} has events in the log but none in its index",
                        key.1, key.0
                    ))
                    .into(),
                )
            })?;
            let stored = self.store().load(&key.0, &key.1).await?;
            comparison.compare_refolded(key, rebuilt, stored);
        }
        if comparison.compares()
            && !comparison.is_full()
            && self.store().count_projections().await? > comparison.with_stored
        {
            // Some stored projection has no events at all: find it among them.
            let mut after = None;
            loop {
                let rows = self
                    .store()
                    .read_projections_after(after.clone(), PROJECTION_PAGE)
                    .await?;
                let Some((account, stream_id, _)) = rows.last() else {
                    break;
                };
                after = Some((account.clone(), stream_id.clone()));
                for (account, stream_id, _) in rows {
                    if !comparison.saw(&account, &stream_id) {
                        comparison.orphan(account, stream_id);
                    }
                }
            }
        }
        Ok(comparison)
    }

    /// Rebuild every projection from the log if the store's are of an older layout (a store
    /// written before layout 3), then mark them current. Run by `Ledger::open` before it serves
    /// anything; a crash half-way leaves the old layout recorded, so the next open starts over.
    pub(crate) async fn rebuild_stale_projections(&self) -> Result<(), LedgerError> {
        if !self.store().projections_are_stale() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let total = self.store().head().await?.map_or(0, |head| head.sequence);
        tracing::info!(
            events = total,
            "rebuilding projections from the log for the current layout"
        );
        let mut events = 0;
        let rebuilt = self
            .rebuild_or_fail(
                total,
                &|_, _| {},
                &mut events,
                "the projections of an older layout cannot be rebuilt (the store is left as it was)",
            )
            .await?;
        let streams = rebuilt.len();
        let rows: Vec<(String, String, StoredProjection)> = rebuilt
            .into_iter()
            .map(|((account, stream_id), projection)| (account, stream_id, projection))
            .collect();
        for chunk in rows.chunks(PROJECTION_PAGE) {
            self.store().put_projections(chunk.to_vec()).await?;
        }
        self.store().mark_projections_current().await?;
        tracing::info!(
            events,
            streams,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "projections rebuilt"
        );
        Ok(())
    }

    /// Visit every durable event in log order, a page at a time, each with the hash of its body
    /// as stored. The next page is read and decoded (on every core) while this one is visited.
    /// Returns how many were visited.
    async fn scan_log<E: From<StoreError>>(
        &self,
        total: u64,
        progress: ProgressFn<'_>,
        mut visit: impl FnMut(&HashedEvent) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut pages = PageReader::new(self.store().clone(), false);
        let mut visited = 0;
        while let Some(Page { events, .. }) = pages.next_page().await? {
            let mut after = 0;
            for event in &events {
                visit(event)?;
                visited += 1;
                after = event.event.body.sequence;
            }
            progress(after, total);
        }
        Ok(visited)
    }

    /// `rebuild`, with a damaged log as a failure that says what stopped (`what`) and why.
    async fn rebuild_or_fail(
        &self,
        total: u64,
        progress: ProgressFn<'_>,
        events_seen: &mut u64,
        what: &str,
    ) -> Result<Rebuilt, LedgerError> {
        match self.rebuild(total, progress, events_seen).await {
            Ok(rebuilt) => Ok(rebuilt),
            Err(ScanStop::Fault(fault)) => Err(Failure::LogDamaged(format!(
                "{what}: {fault}; run `chargeledger verify` for details"
            ))
            .into()),
            Err(ScanStop::Failed(error)) => Err(error),
        }
    }

    /// Fold the whole log, checking the chain and stream versions on the way.
    async fn rebuild(
        &self,
        total: u64,
        progress: ProgressFn<'_>,
        events_seen: &mut u64,
    ) -> Result<Rebuilt, ScanStop> {
        let mut verifier = ChainVerifier::from_genesis();
        let mut states: Rebuilt = HashMap::new();
        // Counted as they pass, so a report that stops at a fault says how many were good.
        self.scan_log(total, progress, |hashed| -> Result<(), ScanStop> {
            verifier
                .check_hashed(&hashed.event, &hashed.computed_hash)
                .map_err(|fault| ScanStop::Fault(Fault::Chain(fault)))?;
            fold_into(&mut states, &hashed.event).map_err(ScanStop::Fault)?;
            *events_seen += 1;
            Ok(())
        })
        .await?;
        if verifier.last_sequence() != total {
            return Err(ScanStop::Fault(Fault::Chain(ChainFault::SequenceGap {
                previous: verifier.last_sequence(),
                found: total,
            })));
        }
        Ok(states)
    }
}

/// Apply one event to the rebuilt state of its stream, checking its stream version.
fn fold_into(states: &mut Rebuilt, event: &RecordedEvent) -> Result<(), Fault> {
    let body = &event.body;
    let key = (body.account.clone(), body.stream_id.clone());
    let previous = states.remove(&key);
    states.insert(key, fold_one(previous, event)?);
    Ok(())
}

/// One event applied to its stream's state so far (`None` before its first), checking that it
/// is the stream's next version.
fn fold_one(
    previous: Option<StoredProjection>,
    event: &RecordedEvent,
) -> Result<StoredProjection, Fault> {
    let body = &event.body;
    let expected = previous.as_ref().map_or(1, |state| state.version + 1);
    if body.stream_version != expected {
        return Err(Fault::StreamVersionGap {
            sequence: body.sequence,
            account: body.account.clone(),
            stream_id: body.stream_id.clone(),
            expected,
            found: body.stream_version,
        });
    }
    let created_sequence = previous
        .as_ref()
        .map_or(body.sequence, |state| state.created_sequence);
    let projection = apply(previous.map(|state| state.projection), &body.payload).map_err(
        |error: FoldError| Fault::Unfoldable {
            sequence: body.sequence,
            stream_id: body.stream_id.clone(),
            detail: error.to_string(),
        },
    )?;
    Ok(StoredProjection {
        version: body.stream_version,
        created_sequence,
        projection,
    })
}

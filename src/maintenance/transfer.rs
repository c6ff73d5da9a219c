//! Moving a whole log: export as JSON Lines, import into an empty store, and copying one ledger into another (`chargeledger migrate`).
//!
//! Every path into a store goes through `EventStore::import`, a page at a time, with the
//! states the page leaves its streams in; the store checks that each page continues its chain.

use std::io::{BufRead, Write};

use super::{PageReader, ProgressFn, Rebuilt, SCAN_PAGE_EVENTS, fold_into};
use crate::chain::ChainVerifier;
use crate::events::RecordedEvent;
use crate::ledger::{Failure, Ledger, LedgerError};
use crate::store::{EventStore, StoreError};

/// Events gathered for the next `import` page, and every stream's state so far.
#[derive(Default)]
struct ImportPages {
    states: Rebuilt,
    batch: Vec<RecordedEvent>,
    touched: Vec<(String, String)>,
    imported: u64,
}

impl ImportPages {
    /// Fold `event` into its stream's state and queue it for the next page.
    fn push(&mut self, event: RecordedEvent) -> Result<(), StoreError> {
        fold_into(&mut self.states, &event).map_err(|fault| StoreError::ImportRejected {
            sequence: event.body.sequence,
            detail: fault.to_string(),
        })?;
        self.touched
            .push((event.body.account.clone(), event.body.stream_id.clone()));
        self.batch.push(event);
        Ok(())
    }

    fn is_full(&self) -> bool {
        self.batch.len() >= SCAN_PAGE_EVENTS
    }

    /// Import the queued events with the states of the streams they touched.
    async fn flush(&mut self, store: &dyn EventStore) -> Result<(), StoreError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.touched.sort();
        self.touched.dedup();
        let projections = self
            .touched
            .drain(..)
            .filter_map(|key| {
                let state = self.states.get(&key)?.clone();
                Some((key.0, key.1, state))
            })
            .collect();
        self.imported += self.batch.len() as u64;
        store
            .import(std::mem::take(&mut self.batch), projections)
            .await
    }
}

/// Refuse to import into a store that already holds events.
async fn require_empty(store: &dyn EventStore) -> Result<(), StoreError> {
    match store.head().await? {
        Some(head) => Err(StoreError::NotEmpty {
            events: head.sequence,
        }),
        None => Ok(()),
    }
}

impl Ledger {
    /// Write every event as one JSON line, in log order. Returns the number written.
    pub async fn export(
        &self,
        output: &mut (dyn Write + Send),
        progress: ProgressFn<'_>,
    ) -> Result<u64, LedgerError> {
        let total = self.store().head().await?.map_or(0, |head| head.sequence);
        let written = self
            .scan_log(total, progress, |hashed| -> Result<(), LedgerError> {
                serde_json::to_writer(&mut *output, &hashed.event)
                    .map_err(std::io::Error::other)?;
                output.write_all(b"\n")?;
                Ok(())
            })
            .await?;
        output.flush()?;
        Ok(written)
    }

    /// Load an export (JSON Lines) into an empty store, verifying the chain as it goes and
    /// rebuilding projections. Returns the number of events imported.
    pub async fn import(
        &self,
        input: &mut (dyn BufRead + Send),
        progress: ProgressFn<'_>,
    ) -> Result<u64, LedgerError> {
        require_empty(self.store().as_ref()).await?;
        let mut pages = ImportPages::default();
        let mut line = String::new();
        let mut line_number = 0_u64;
        loop {
            line.clear();
            let read = input.read_line(&mut line)?;
            if read > 0 && !line.trim().is_empty() {
                line_number += 1;
                let event: RecordedEvent = serde_json::from_str(line.trim()).map_err(|error| {
                    StoreError::ImportRejected {
                        sequence: line_number,
                        detail: format!("line {line_number} is not a chargeledger event: {error}"),
                    }
                })?;
                pages.push(event)?;
            }
            if pages.is_full() || read == 0 {
                pages.flush(self.store().as_ref()).await?;
                progress(pages.imported, pages.imported);
            }
            if read == 0 {
                break;
            }
        }
        Ok(pages.imported)
    }

    /// Copy this whole ledger into `target`, which must be empty: every event as stored (the
    /// hash chain stays the same), and every projection rebuilt from them. This log's chain is
    /// checked as it is read, and `target` checks that each page continues its own. Returns
    /// the number of events copied.
    pub async fn copy_into(
        &self,
        target: &Ledger,
        progress: ProgressFn<'_>,
    ) -> Result<u64, LedgerError> {
        require_empty(target.store().as_ref()).await?;
        let total = self.store().head().await?.map_or(0, |head| head.sequence);
        let mut verifier = ChainVerifier::from_genesis();
        let mut reader = PageReader::new(self.store().clone(), false);
        let mut pages = ImportPages::default();
        while let Some(page) = reader.next_page().await? {
            for hashed in page.events {
                verifier
                    .check_hashed(&hashed.event, &hashed.computed_hash)
                    .map_err(|fault| {
                        Failure::LogDamaged(format!(
                            "the ledger being copied is damaged: {fault}; nothing past event #{} was copied. Run `chargeledger verify` on it",
                            verifier.last_sequence()
                        ))
                    })?;
                pages.push(hashed.event)?;
                if pages.is_full() {
                    pages.flush(target.store().as_ref()).await?;
                    progress(pages.imported, total);
                }
            }
        }
        pages.flush(target.store().as_ref()).await?;
        progress(pages.imported, total);
        if verifier.last_sequence() != total {
            return Err(Failure::LogDamaged(format!(
                "the ledger being copied ends at event #{} but its head says #{total}",
                verifier.last_sequence()
            ))
            .into());
        }
        Ok(pages.imported)
    }
}

//! The log a page at a time for whole-log scans: the next page is read, decoded and (if asked) the stored projections of the streams it starts loaded while the caller works on this one.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::SCAN_PAGE_EVENTS;
use crate::store::{EventStore, HashedEvent, StoreError, StoredProjection};

/// Stored projections by `(account, stream id)`.
pub(super) type StoredByStream = HashMap<(String, String), StoredProjection>;

/// One page of the log, with the stored projections of the streams whose first event it holds.
pub(super) struct Page {
    pub(super) events: Vec<HashedEvent>,
    pub(super) started_streams: StoredByStream,
}

/// Reads the log in order, one page ahead of its caller.
pub(super) struct PageReader {
    store: Arc<dyn EventStore>,
    load_started_streams: bool,
    next: JoinHandle<Result<Page, StoreError>>,
}

impl PageReader {
    pub(super) fn new(store: Arc<dyn EventStore>, load_started_streams: bool) -> Self {
        let next = fetch(store.clone(), 0, load_started_streams);
        PageReader {
            store,
            load_started_streams,
            next,
        }
    }

    /// The next page, or `None` past the durable end of the log.
    pub(super) async fn next_page(&mut self) -> Result<Option<Page>, StoreError> {
        let page = task_result(&mut self.next).await?;
        let Some(last) = page.events.last() else {
            return Ok(None);
        };
        let after = last.event.body.sequence;
        self.next = fetch(self.store.clone(), after, self.load_started_streams);
        Ok(Some(page))
    }
}

async fn task_result<T>(task: &mut JoinHandle<Result<T, StoreError>>) -> Result<T, StoreError> {
    task.await
        .map_err(|error| StoreError::Io(std::io::Error::other(error)))?
}

fn fetch(
    store: Arc<dyn EventStore>,
    after: u64,
    load_started_streams: bool,
) -> JoinHandle<Result<Page, StoreError>> {
    tokio::spawn(async move {
        let events = store.read_all_after_hashed(after, SCAN_PAGE_EVENTS).await?;
        let started_streams = if load_started_streams {
            load_started(&store, &events).await?
        } else {
            StoredByStream::new()
        };
        Ok(Page {
            events,
            started_streams,
        })
    })
}

/// The stored projections of the streams whose first event (version 1) is in `events`: the
/// ones a streaming fold will need. A stream met first at a later version is a gap, found by the
/// fold. Loaded by as many tasks as there are cores: these are random reads.
async fn load_started(
    store: &Arc<dyn EventStore>,
    events: &[HashedEvent],
) -> Result<StoredByStream, StoreError> {
    let mut started: Vec<(String, String)> = events
        .iter()
        .map(|hashed| &hashed.event.body)
        .filter(|body| body.stream_version == 1)
        .map(|body| (body.account.clone(), body.stream_id.clone()))
        .collect();
    started.sort();
    started.dedup();
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let chunk_len = started.len().div_ceil(cores).max(1);
    let mut loaders: Vec<_> = started
        .chunks(chunk_len)
        .map(|keys| {
            let (store, keys) = (store.clone(), keys.to_vec());
            tokio::spawn(async move {
                let mut found = Vec::with_capacity(keys.len());
                for key in keys {
                    if let Some(projection) = store.load(&key.0, &key.1).await? {
                        found.push((key, projection));
                    }
                }
                Ok(found)
            })
        })
        .collect();
    let mut stored = StoredByStream::new();
    for loader in &mut loaders {
        stored.extend(task_result(loader).await?);
    }
    Ok(stored)
}

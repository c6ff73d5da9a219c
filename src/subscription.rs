//! A live feed of the log: catch up from a sequence number, then follow new durable events.
//!
//! The feed always reads from the store by cursor and only uses the store's durable-head
//! channel as a wake-up, so no event is missed or repeated at the switch from catching up to
//! following, and none is seen before it is durable.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;

use crate::events::RecordedEvent;
use crate::store::{EventStore, StoreError};

/// How many events one read fetches while catching up.
const PAGE_EVENTS: usize = 512;

/// Events in log order, from a starting point, forever (until the store closes).
pub struct Subscription {
    store: Arc<dyn EventStore>,
    after_sequence: u64,
    buffered: VecDeque<RecordedEvent>,
    durable_sequence: watch::Receiver<u64>,
}

impl Subscription {
    pub(crate) fn new(store: Arc<dyn EventStore>, after_sequence: u64) -> Self {
        let durable_sequence = store.durable_sequence();
        Subscription {
            store,
            after_sequence,
            buffered: VecDeque::new(),
            durable_sequence,
        }
    }

    /// The sequence of the last event handed out (the starting point before the first).
    pub fn position(&self) -> u64 {
        self.after_sequence
    }

    /// The next event; waits for one if the feed has caught up. `None` once the store is closed.
    pub async fn next(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                self.after_sequence = event.body.sequence;
                return Some(Ok(event));
            }
            match self
                .store
                .read_all_after(self.after_sequence, PAGE_EVENTS)
                .await
            {
                Ok(events) if !events.is_empty() => {
                    self.buffered.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(error) => return Some(Err(error)),
            }
            let after = self.after_sequence;
            if self
                .durable_sequence
                .wait_for(|durable| *durable > after)
                .await
                .is_err()
            {
                return None;
            }
        }
    }
}

//! Out-of-order chaos: an endpoint that asks for it has its first deliveries held for a moment, then sent newest event first.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::Destination;
use crate::domain::webhooks::OUT_OF_ORDER_HOLD_MS;
use crate::ledger::Ledger;
use crate::store::Delivery;

/// Deliveries sent one after another by one task; `reordered` when they were held and turned
/// around (each attempt records it).
pub(super) struct SendGroup {
    pub(super) deliveries: Vec<Delivery>,
    pub(super) reordered: bool,
}

/// Held deliveries per (account, endpoint), with when their hold ends. Their leases keep them
/// from being claimed again meanwhile; a crash ends the hold (they are claimed again after it).
#[derive(Default)]
pub(super) struct Reorder {
    held: HashMap<(String, String), (Instant, Vec<Delivery>)>,
}

impl Reorder {
    /// The claimed deliveries to send now, each on its own; first attempts to an out-of-order
    /// endpoint are held instead.
    pub(super) async fn sort(&mut self, ledger: &Ledger, claimed: Vec<Delivery>) -> Vec<SendGroup> {
        let mut reordering: HashMap<String, Vec<String>> = HashMap::new();
        let mut now = Vec::new();
        for delivery in claimed {
            let endpoint_id = match &delivery.destination {
                Destination::Webhook { endpoint_id } if delivery.attempts.is_empty() => endpoint_id,
                _ => {
                    now.push(single(delivery));
                    continue;
                }
            };
            if !reordering.contains_key(&delivery.account) {
                // An account whose endpoints cannot be read is sent as usual; the attempt
                // itself reports the failure.
                let ids = ledger
                    .webhook_endpoints(&delivery.account)
                    .await
                    .map(|endpoints| {
                        endpoints
                            .endpoints
                            .into_iter()
                            .filter(|endpoint| endpoint.chaos.out_of_order)
                            .map(|endpoint| endpoint.id)
                            .collect()
                    })
                    .unwrap_or_default();
                reordering.insert(delivery.account.clone(), ids);
            }
            if reordering[&delivery.account].contains(endpoint_id) {
                let key = (delivery.account.clone(), endpoint_id.clone());
                let hold_ends = Instant::now() + Duration::from_millis(OUT_OF_ORDER_HOLD_MS);
                self.held
                    .entry(key)
                    .or_insert_with(|| (hold_ends, Vec::new()))
                    .1
                    .push(delivery);
            } else {
                now.push(single(delivery));
            }
        }
        now
    }

    /// When the first hold ends.
    pub(super) fn next_release(&self) -> Option<Instant> {
        self.held.values().map(|(ends, _)| *ends).min()
    }

    /// The groups whose hold has ended, each newest event first.
    pub(super) fn release(&mut self) -> Vec<SendGroup> {
        let now = Instant::now();
        let ended: Vec<_> = self
            .held
            .iter()
            .filter(|(_, (ends, _))| *ends <= now)
            .map(|(key, _)| key.clone())
            .collect();
        ended
            .into_iter()
            .filter_map(|key| self.held.remove(&key))
            .map(|(_, mut deliveries)| {
                deliveries.sort_by_key(|delivery| std::cmp::Reverse(delivery.event_sequence));
                SendGroup {
                    deliveries,
                    reordered: true,
                }
            })
            .collect()
    }
}

fn single(delivery: Delivery) -> SendGroup {
    SendGroup {
        deliveries: vec![delivery],
        reordered: false,
    }
}

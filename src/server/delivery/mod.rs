//! The delivery worker: claims due outbox deliveries, sends webhooks and receipts, records every attempt, and retries with exponential backoff and jitter.
//!
//! The worker never touches the write path: an update returns once its event and outbox entry
//! are durable, and the worker finds the entry through the store (`claim_deliveries`), woken
//! by every commit and by a timer for retries. Delivery is at least once: an attempt whose
//! result was not saved before a crash is made again after the restart (its lease is gone
//! with the process on sled, and runs out on PostgreSQL), so receivers deduplicate by event id.

mod http;
pub mod objects;
mod receipt;
mod reorder;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, info, warn};

use crate::domain::Destination;
use crate::ledger::Ledger;
use crate::store::{Attempt, Delivery, DeliveryState};

pub use http::stripe_signature;
pub use receipt::{ReceiptTransport, receipt_page};

/// How deliveries are made and retried.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// The first retry waits about this long; each later one twice as long as the one before.
    pub retry_base_ms: u64,
    /// No retry waits longer than this.
    pub retry_cap_ms: u64,
    /// Attempts before a delivery is given up as failed.
    pub max_attempts: u32,
    /// How long a receiver may take to answer.
    pub attempt_timeout_ms: u64,
    /// Where receipts go: SMTP, or `.eml` files.
    pub receipts: ReceiptTransport,
    /// The `From:` of receipts.
    pub receipt_from: String,
    /// Where this server is reached, for receipt links (`http://127.0.0.1:12111`).
    pub public_url: String,
    /// Where Omise accounts' charge events are POSTed.
    pub omise_webhook_url: Option<String>,
    /// Who this worker is when it leases deliveries (servers sharing a database each have
    /// their own): the same across restarts of one server, so a restart ends its leases.
    pub claimant: String,
}

impl DeliveryOptions {
    /// Defaults suited to local development: retries after about 1, 2, 4… seconds, at most
    /// an hour apart, 12 attempts in all (about 70 minutes); receipts as files in `outbox_dir`.
    pub fn new(outbox_dir: PathBuf) -> Self {
        DeliveryOptions {
            retry_base_ms: 1_000,
            retry_cap_ms: 3_600_000,
            max_attempts: 12,
            attempt_timeout_ms: 10_000,
            receipts: ReceiptTransport::Files(outbox_dir),
            receipt_from: "chargeledger receipts <receipts@chargeledger.localhost>".into(),
            public_url: "http://127.0.0.1:12111".into(),
            omise_webhook_url: None,
            claimant: "chargeledger".into(),
        }
    }
}

/// How long a claimed delivery is kept from other claims: longer than any attempt takes.
const LEASE_MS: i64 = 120_000;
/// Deliveries claimed at once.
const CLAIM_BATCH: usize = 64;
/// Attempts in flight at once.
const MAX_CONCURRENT_ATTEMPTS: usize = 64;
/// How often the outbox is looked at when no commit wakes the worker (other servers' entries
/// and retries that came due).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// The delivery worker of one server.
pub struct DeliveryWorker {
    ledger: Ledger,
    options: Arc<DeliveryOptions>,
    sender: http::Sender,
    mailer: receipt::Mailer,
}

impl DeliveryWorker {
    pub fn new(ledger: Ledger, options: DeliveryOptions) -> Result<Self, String> {
        let sender = http::Sender::new(Duration::from_millis(options.attempt_timeout_ms))?;
        let mailer = receipt::Mailer::new(&options.receipts)?;
        Ok(DeliveryWorker {
            ledger,
            options: Arc::new(options),
            sender,
            mailer,
        })
    }

    /// Deliver until the task is aborted.
    pub async fn run(self) {
        let worker = Arc::new(self);
        let (saved_sender, saved_receiver) = mpsc::unbounded_channel();
        tokio::spawn(save_results(worker.ledger.clone(), saved_receiver));
        let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_ATTEMPTS));
        match worker
            .ledger
            .store()
            .release_claims(&worker.options.claimant)
            .await
        {
            Ok(0) => {}
            Ok(released) => info!(
                released,
                "took back deliveries this server had claimed before it stopped"
            ),
            Err(error) => {
                warn!(%error, "could not take back this server's earlier claims; they are retried when their leases run out")
            }
        }
        let mut commits = worker.ledger.store().durable_sequence();
        let mut reorder = reorder::Reorder::default();
        loop {
            let now_ms = worker.ledger.clock().now_unix_ms();
            let claimed = match worker
                .ledger
                .store()
                .claim_deliveries(now_ms, LEASE_MS, CLAIM_BATCH, &worker.options.claimant)
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    warn!(%error, "could not read the outbox; trying again in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let idle = claimed.is_empty();
            let mut groups = reorder.sort(&worker.ledger, claimed).await;
            groups.extend(reorder.release());
            for group in groups {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let worker = worker.clone();
                let saved = saved_sender.clone();
                tokio::spawn(async move {
                    for delivery in group.deliveries {
                        let done = worker.attempt(delivery, group.reordered).await;
                        let _ = saved.send(done);
                    }
                    drop(slot);
                });
            }
            if idle {
                commits.borrow_and_update();
                let wake = reorder
                    .next_release()
                    .map_or(IDLE_POLL, |release| {
                        release.saturating_duration_since(tokio::time::Instant::now())
                    })
                    .min(IDLE_POLL);
                let _ = tokio::time::timeout(wake, commits.changed()).await;
            }
        }
    }

    /// Make one attempt (two with duplicate chaos) and return the delivery with its new state.
    async fn attempt(&self, mut delivery: Delivery, reordered: bool) -> Delivery {
        let outcome = match &delivery.destination {
            Destination::Webhook { endpoint_id } => {
                http::stripe_webhook(self, &delivery, endpoint_id, reordered).await
            }
            Destination::OmiseWebhook { url } => http::omise_webhook(self, &delivery, url).await,
            Destination::Receipt { email } => receipt::send(self, &delivery, email).await,
        };
        let now_ms = self.ledger.clock().now_unix_ms();
        match outcome {
            Outcome::Attempted(attempts) => {
                let succeeded = attempts.iter().any(|attempt| attempt.succeeded);
                delivery.attempts.extend(attempts);
                delivery.state = next_state(&delivery, succeeded, now_ms, &self.options);
            }
            Outcome::Cancelled(reason) => {
                delivery.state = DeliveryState::Cancelled {
                    at_ms: now_ms,
                    reason,
                };
            }
        }
        log_attempt(&delivery);
        delivery
    }
}

/// What an attempt came to.
enum Outcome {
    /// Sent (or tried to be): the attempts made, in order.
    Attempted(Vec<Attempt>),
    /// Not sent, and never will be: why.
    Cancelled(String),
}

/// After an attempt: delivered, retried later, or failed for good.
fn next_state(
    delivery: &Delivery,
    succeeded: bool,
    now_ms: i64,
    options: &DeliveryOptions,
) -> DeliveryState {
    if succeeded {
        return DeliveryState::Delivered { at_ms: now_ms };
    }
    let failures = delivery
        .attempts
        .iter()
        .filter(|attempt| !attempt.succeeded)
        .count() as u32;
    if failures >= options.max_attempts {
        return DeliveryState::Failed {
            at_ms: now_ms,
            reason: format!("{failures} attempts failed"),
        };
    }
    DeliveryState::Pending {
        next_attempt_at_ms: now_ms + retry_delay_ms(failures, options, random_unit()),
    }
}

/// The wait before retry `failures` (1 after the first failure): `base × 2^(failures−1)`,
/// capped, then drawn uniformly from its upper half ("equal jitter"), so a crowd of failed
/// deliveries does not retry in step.
pub fn retry_delay_ms(failures: u32, options: &DeliveryOptions, unit: f64) -> i64 {
    let exponent = failures.saturating_sub(1).min(40);
    let full = options
        .retry_base_ms
        .saturating_mul(1u64 << exponent)
        .min(options.retry_cap_ms);
    let half = full / 2;
    (half + (unit.clamp(0.0, 1.0) * (full - half) as f64) as u64) as i64
}

/// A uniform draw from [0, 1).
fn random_unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

fn log_attempt(delivery: &Delivery) {
    let Some(last) = delivery.attempts.last() else {
        info!(
            delivery = %delivery.id(),
            event = %delivery.event_id,
            destination = %delivery.destination.describe(),
            state = delivery.state.name(),
            "delivery stopped"
        );
        return;
    };
    if last.succeeded {
        debug!(
            delivery = %delivery.id(),
            event = %delivery.event_id,
            destination = %delivery.destination.describe(),
            latency_ms = last.latency_ms,
            "delivered"
        );
    } else {
        warn!(
            delivery = %delivery.id(),
            event = %delivery.event_id,
            destination = %delivery.destination.describe(),
            attempts = delivery.attempts.len(),
            state = delivery.state.name(),
            detail = %last.detail,
            "a delivery attempt failed"
        );
    }
}

/// Save attempt results in batches: whatever finished while the last save ran goes in the next.
async fn save_results(ledger: Ledger, mut results: mpsc::UnboundedReceiver<Delivery>) {
    while let Some(first) = results.recv().await {
        let mut batch = vec![first];
        while let Ok(next) = results.try_recv() {
            batch.push(next);
        }
        // A save that fails leaves the leases to run out, so the deliveries are attempted again:
        // at least once, never lost.
        if let Err(error) = ledger.store().save_deliveries(batch).await {
            warn!(%error, "could not record delivery attempts; they will be made again");
        }
    }
}

/// The start of an answer, kept with the attempt: at most `RESPONSE_EXCERPT_MAX_BYTES`, cut at
/// a character boundary; an answer that is not UTF-8 is described rather than altered.
pub(crate) fn excerpt(body: &[u8]) -> String {
    use crate::store::outbox::RESPONSE_EXCERPT_MAX_BYTES;
    let cut = &body[..body.len().min(RESPONSE_EXCERPT_MAX_BYTES)];
    match std::str::from_utf8(cut) {
        Ok(text) => text.to_string(),
        Err(error) if error.error_len().is_none() => {
            // Only the cut split a character: keep what is whole.
            String::from_utf8_lossy(&cut[..error.valid_up_to()]).into_owned()
        }
        Err(_) => format!("({} bytes, not UTF-8)", body.len()),
    }
}

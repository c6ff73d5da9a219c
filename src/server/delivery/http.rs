//! Webhook attempts: the event rendered as its dialect's event object, signed as Stripe signs (`Stripe-Signature: t=…,v1=…`), POSTed, and the answer recorded.

use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{DeliveryWorker, Outcome, excerpt};
use crate::domain::DeliveryChaos;
use crate::ledger::AccountId;
use crate::store::{Attempt, Delivery};

/// Stripe's webhook `User-Agent`, which receivers may check.
const STRIPE_USER_AGENT: &str = "Stripe/1.0 (+https://stripe.com/docs/webhooks)";
const OMISE_USER_AGENT: &str = "chargeledger-omise-webhook/1.0";

/// The HTTP client every webhook goes through.
pub(super) struct Sender {
    client: reqwest::Client,
}

impl Sender {
    pub(super) fn new(timeout: Duration) -> Result<Self, String> {
        // reqwest is built without a crypto provider of its own; ring is the one the crate
        // already uses. Installing it twice is harmless (the first stays).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| format!("cannot set up the webhook HTTP client: {error}"))?;
        Ok(Sender { client })
    }

    /// POST `body` and say how it went. Any 2xx is a success, as on Stripe.
    async fn post(
        &self,
        url: &str,
        body: &[u8],
        headers: &[(&str, String)],
        clock_ms: i64,
    ) -> Attempt {
        let started = Instant::now();
        let mut request = self
            .client
            .post(url)
            .header("Content-Type", "application/json; charset=utf-8")
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let outcome = request.send().await;
        let (succeeded, status, detail) = match outcome {
            Ok(response) => {
                let status = response.status();
                let answer = response.bytes().await.unwrap_or_default();
                (status.is_success(), Some(status.as_u16()), excerpt(&answer))
            }
            Err(error) => (false, None, describe_error(&error)),
        };
        Attempt {
            at_ms: clock_ms,
            latency_ms: started.elapsed().as_millis() as u64,
            succeeded,
            status,
            detail,
            chaos: None,
        }
    }
}

fn describe_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let mut detail = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    detail
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body" keyed with the whole secret>`: what
/// stripe-python's `Webhook.construct_event` and stripe-node's `constructEvent` check.
pub fn stripe_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Deliver to a Stripe webhook endpoint of the delivery's account.
pub(super) async fn stripe_webhook(
    worker: &DeliveryWorker,
    delivery: &Delivery,
    endpoint_id: &str,
) -> Outcome {
    let ledger = &worker.ledger;
    let endpoints = match ledger.webhook_endpoints(&delivery.account).await {
        Ok(endpoints) => endpoints,
        Err(error) => return retry_later(worker, format!("could not read the endpoints: {error}")),
    };
    let Some(endpoint) = endpoints.get(endpoint_id) else {
        return Outcome::Cancelled(format!("webhook endpoint {endpoint_id} was deleted"));
    };
    if endpoint.status != crate::domain::EndpointStatus::Enabled {
        return Outcome::Cancelled(format!("webhook endpoint {endpoint_id} is disabled"));
    }
    let body = match stripe_event_body(worker, delivery).await {
        Ok(body) => body,
        Err(detail) => return retry_later(worker, detail),
    };
    let chaos = endpoint.chaos;
    let held = delivery.attempts.is_empty()
        && chaos.out_of_order
        && delivery
            .state
            .due_at_ms()
            .is_some_and(|due| due > delivery.created_at_ms);
    let mut attempts = Vec::new();
    let sign = |now_ms: i64| {
        vec![
            ("User-Agent", STRIPE_USER_AGENT.to_string()),
            (
                "Stripe-Signature",
                stripe_signature(&endpoint.secret, now_ms.div_euclid(1000), &body),
            ),
        ]
    };
    let mut attempt = send_with_chaos(worker, &endpoint.url, &body, chaos, &sign).await;
    if held {
        attempt.chaos = Some(join_chaos(
            attempt.chaos.take(),
            "out of order: held 1000 ms, sent newest event first",
        ));
    }
    let succeeded = attempt.succeeded;
    attempts.push(attempt);
    if succeeded && chaos.duplicate {
        let now_ms = worker.ledger.clock().now_unix_ms();
        let mut duplicate = worker
            .sender
            .post(&endpoint.url, &body, &sign(now_ms), now_ms)
            .await;
        duplicate.chaos = Some("duplicate: sent again after a successful delivery".into());
        attempts.push(duplicate);
    }
    Outcome::Attempted(attempts)
}

/// Send once, after the endpoint's added delay if it asks for one (recorded on the attempt).
async fn send_with_chaos(
    worker: &DeliveryWorker,
    url: &str,
    body: &[u8],
    chaos: DeliveryChaos,
    headers: &(dyn Fn(i64) -> Vec<(&'static str, String)> + Sync),
) -> Attempt {
    if chaos.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(chaos.delay_ms)).await;
    }
    let now_ms = worker.ledger.clock().now_unix_ms();
    let mut attempt = worker
        .sender
        .post(url, body, &headers(now_ms), now_ms)
        .await;
    if chaos.delay_ms > 0 {
        attempt.chaos = Some(format!("delayed {} ms", chaos.delay_ms));
    }
    attempt
}

fn join_chaos(existing: Option<String>, more: &str) -> String {
    match existing {
        Some(existing) => format!("{existing}; {more}"),
        None => more.to_string(),
    }
}

/// An attempt that could not be made for a reason on this side (the store): counted as a
/// failed attempt, so it is retried with the same backoff.
fn retry_later(worker: &DeliveryWorker, detail: String) -> Outcome {
    Outcome::Attempted(vec![Attempt {
        at_ms: worker.ledger.clock().now_unix_ms(),
        latency_ms: 0,
        succeeded: false,
        status: None,
        detail,
        chaos: None,
    }])
}

async fn stripe_event_body(
    worker: &DeliveryWorker,
    delivery: &Delivery,
) -> Result<Vec<u8>, String> {
    let ledger = &worker.ledger;
    let event = ledger
        .event(&delivery.account, &delivery.event_id)
        .await
        .map_err(|error| format!("could not read event {}: {error}", delivery.event_id))?
        .ok_or_else(|| format!("event {} is not in the log", delivery.event_id))?;
    let event_type = crate::server::stripe::objects::stripe_event_type(&event.body.payload)
        .ok_or_else(|| format!("event {} has no Stripe type", delivery.event_id))?;
    let livemode = livemode_of(&delivery.account);
    let object = crate::server::stripe::events::render_event(
        ledger,
        &delivery.account,
        livemode,
        &event,
        event_type,
    )
    .await
    .map_err(|error| format!("could not render event {}: {error}", delivery.event_id))?;
    Ok(serde_json::to_vec(&object).expect("a JSON value always encodes"))
}

fn livemode_of(account: &str) -> bool {
    AccountId::parse(account).is_ok_and(|account| account.livemode())
}

/// Deliver an Omise event object to the Omise webhook URL.
pub(super) async fn omise_webhook(
    worker: &DeliveryWorker,
    delivery: &Delivery,
    url: &str,
) -> Outcome {
    let ledger = &worker.ledger;
    let event = match ledger.event(&delivery.account, &delivery.event_id).await {
        Ok(Some(event)) => event,
        Ok(None) => {
            return retry_later(
                worker,
                format!("event {} is not in the log", delivery.event_id),
            );
        }
        Err(error) => return retry_later(worker, format!("could not read the event: {error}")),
    };
    let livemode = livemode_of(&delivery.account);
    let object =
        match crate::server::omise::render_event(ledger, &delivery.account, livemode, &event).await
        {
            Ok(Some(object)) => object,
            Ok(None) => return Outcome::Cancelled("Omise shows no event for it".into()),
            Err(error) => {
                return retry_later(worker, format!("could not render the event: {error}"));
            }
        };
    let body = serde_json::to_vec(&object).expect("a JSON value always encodes");
    let now_ms = worker.ledger.clock().now_unix_ms();
    let attempt = worker
        .sender
        .post(
            url,
            &body,
            &[("User-Agent", OMISE_USER_AGENT.to_string())],
            now_ms,
        )
        .await;
    Outcome::Attempted(vec![attempt])
}

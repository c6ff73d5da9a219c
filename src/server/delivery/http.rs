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

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<axum::body::Bytes>,
>;

/// The HTTP client every webhook goes through: HTTP/1.1, TLS by rustls (ring) checked against
/// the system's roots, no redirects followed, every attempt bounded by a timeout.
pub(super) struct Sender {
    client: Client,
    timeout: Duration,
}

/// The most of an answer read; the excerpt kept is shorter still.
const ANSWER_READ_MAX_BYTES: usize = 64 * 1024;

impl Sender {
    pub(super) fn new(timeout: Duration) -> Result<Self, String> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .map_err(|error| format!("cannot load the system's TLS roots for webhooks: {error}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        Ok(Sender { client, timeout })
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
        let (succeeded, status, detail) =
            match tokio::time::timeout(self.timeout, self.exchange(url, body, headers)).await {
                Ok(Ok((status, answer))) => {
                    ((200..300).contains(&status), Some(status), excerpt(&answer))
                }
                Ok(Err(detail)) => (false, None, detail),
                Err(_) => (
                    false,
                    None,
                    format!("timed out after {} ms", self.timeout.as_millis()),
                ),
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

    async fn exchange(
        &self,
        url: &str,
        body: &[u8],
        headers: &[(&str, String)],
    ) -> Result<(u16, Vec<u8>), String> {
        use http_body_util::BodyExt;
        let mut request = axum::http::Request::post(url)
            .header("Content-Type", "application/json; charset=utf-8");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(http_body_util::Full::new(
                axum::body::Bytes::copy_from_slice(body),
            ))
            .map_err(|error| format!("cannot build a request to {url}: {error}"))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| describe_error(&error))?;
        let status = response.status().as_u16();
        let answer = http_body_util::Limited::new(response.into_body(), ANSWER_READ_MAX_BYTES)
            .collect()
            .await
            .map(|collected| collected.to_bytes().to_vec())
            .unwrap_or_default();
        Ok((status, answer))
    }
}

fn describe_error(error: &hyper_util::client::legacy::Error) -> String {
    let kind = if error.is_connect() {
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
    reordered: bool,
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
    if reordered {
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

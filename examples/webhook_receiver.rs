//! A webhook receiver that checks chargeledger's (and Stripe's) signatures as stripe-python's
//! `Webhook.construct_event` does, shown against a server embedded in this program.
//!
//! Run the demo: `cargo run --example webhook_receiver`. It starts a chargeledger server on a
//! temporary directory, registers this receiver as a webhook endpoint, creates a charge, and
//! prints the signed `charge.succeeded` it receives.
//!
//! Or keep it listening, for your own tests or `benches/outbox_load.sh`:
//! `cargo run --release --example webhook_receiver -- --listen 127.0.0.1:4242 --secret-file
//! SECRET --log LOG`: every delivery whose signature matches the `whsec_…` in SECRET (read on
//! each request) is answered 200 and logged as `<event id> <arrival, Unix ms>`; others get 400.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How old a signature may be (stripe-python's default tolerance).
const TOLERANCE_SECONDS: i64 = 300;

/// Check `Stripe-Signature: t=…,v1=…` against the secret: HMAC-SHA256 of `"{t}.{body}"`
/// keyed with the whole secret, compared in constant time, and not older than the tolerance.
pub fn verify(header: &str, body: &[u8], secret: &str, now_unix: i64) -> Result<(), String> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        match item.split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or("Unable to extract timestamp and signatures from header")?;
    if signatures.is_empty() {
        return Err("No signatures found with expected scheme v1".into());
    }
    let matches = signatures.iter().any(|signature| {
        let Ok(signature) = hex::decode(signature) else {
            return false;
        };
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes any key");
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&signature).is_ok()
    });
    if !matches {
        return Err("No signatures found matching the expected signature for payload".into());
    }
    if timestamp < now_unix - TOLERANCE_SECONDS {
        return Err(format!(
            "Timestamp outside the tolerance zone ({timestamp})"
        ));
    }
    Ok(())
}

struct Receiving {
    secret: Box<dyn Fn() -> Option<String> + Send + Sync>,
    /// Each verified event: its id, and when it arrived (Unix ms).
    log: Mutex<Box<dyn Write + Send>>,
    received: tokio::sync::mpsc::UnboundedSender<serde_json::Value>,
}

async fn receive(
    State(receiving): State<Arc<Receiving>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let arrived_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let Some(secret) = (receiving.secret)() else {
        return (StatusCode::BAD_REQUEST, "no secret yet".into());
    };
    let header = headers
        .get("stripe-signature")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if let Err(reason) = verify(header, &body, &secret, now) {
        return (StatusCode::BAD_REQUEST, reason);
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON".into());
    };
    if let Ok(mut log) = receiving.log.lock() {
        let _ = writeln!(log, "{} {arrived_ms}", event["id"].as_str().unwrap_or("?"));
    }
    let _ = receiving.received.send(event);
    (StatusCode::OK, "ok".into())
}

/// Serve the receiver on `listener` until the task is dropped.
async fn serve(listener: tokio::net::TcpListener, receiving: Arc<Receiving>) {
    let app = axum::Router::new()
        .route("/webhooks", axum::routing::post(receive))
        .with_state(receiving);
    let _ = axum::serve(listener, app).await;
}

/// The demo: an embedded server delivers a signed webhook to this receiver.
pub async fn demo() -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    use chargeledger::domain::stripe::webhooks::CreateWebhookEndpoint;
    use chargeledger::server::{BoundServer, ServeOptions};
    use chargeledger::{CreateCharge, Ledger, RequestMeta};

    let directory = tempfile::tempdir()?;
    let data = directory.path().join("data");
    let key = "sk_test_webhook_demo";
    let mut options = ServeOptions::new("127.0.0.1:0".parse()?, &data);
    options.api_keys = vec![key.to_string()];
    let ledger = Ledger::open(&data).await?;
    let server = BoundServer::bind_with_ledger(options, ledger.clone()).await?;
    let running = tokio::spawn(server.run(std::future::pending()));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhooks", listener.local_addr()?);
    let account = chargeledger::server::auth::account_for_key(key).ok_or("a valid key")?;
    let endpoint = ledger
        .create_webhook_endpoint(
            &account,
            CreateWebhookEndpoint {
                url: Some(url),
                enabled_events: vec!["charge.succeeded".into()],
                ..CreateWebhookEndpoint::default()
            },
            RequestMeta::library(),
        )
        .await?;
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let secret = endpoint.secret.clone();
    let receiving = Arc::new(Receiving {
        secret: Box::new(move || Some(secret.clone())),
        log: Mutex::new(Box::new(std::io::sink())),
        received: sender,
    });
    let receiver = tokio::spawn(serve(listener, receiving));

    let charge = ledger
        .create_charge(
            &account,
            CreateCharge::new(2000, "usd").source("tok_visa"),
            RequestMeta::library(),
        )
        .await?;
    let event = tokio::time::timeout(std::time::Duration::from_secs(30), received.recv())
        .await?
        .ok_or("the receiver stopped")?;
    println!(
        "received a verified {} for {} (event {})",
        event["type"], charge.id, event["id"]
    );
    if event["data"]["object"]["id"] != charge.id.as_str() {
        return Err("the webhook is about another charge".into());
    }
    receiver.abort();
    running.abort();
    Ok(event)
}

fn argument(name: &str) -> Option<String> {
    let arguments: Vec<String> = std::env::args().collect();
    arguments
        .iter()
        .position(|argument| argument == name)
        .and_then(|index| arguments.get(index + 1).cloned())
}

#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(address) = argument("--listen") else {
        demo().await?;
        return Ok(());
    };
    let secret_file = PathBuf::from(argument("--secret-file").ok_or("--secret-file FILE")?);
    let log_file = argument("--log").ok_or("--log FILE")?;
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let receiving = Arc::new(Receiving {
        secret: Box::new(move || {
            std::fs::read_to_string(&secret_file)
                .ok()
                .map(|secret| secret.trim().to_string())
        }),
        log: Mutex::new(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_file)?,
        )),
        received: sender,
    });
    tokio::spawn(async move { while received.recv().await.is_some() {} });
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!(
        "receiving webhooks on http://{}/webhooks",
        listener.local_addr()?
    );
    serve(listener, receiving).await;
    Ok(())
}

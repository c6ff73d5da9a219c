//! The outbox against real third-party receivers: every webhook checked by stripe-python's own `Webhook.construct_event`, and receipts accepted by a real SMTP server (aiosmtpd) with a login.
//!
//! Both are installed from PyPI on first use into `target/tmp/sdk` (see `common::python`).

mod common;

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::python::{PythonProcess, json_lines, python_with, wait_for_file};
use common::server::{SECRET_KEY, TestServer};

const STRIPE_PYTHON_VERSION: &str = "16.1.0";
const AIOSMTPD_VERSION: &str = "1.4.6";

fn python() -> std::path::PathBuf {
    python_with(
        "outbox",
        &[
            ("stripe", STRIPE_PYTHON_VERSION),
            ("aiosmtpd", AIOSMTPD_VERSION),
        ],
        &["stripe", "aiosmtpd"],
    )
}

/// Wait until `log` holds at least `count` entries matching `keep`.
fn wait_for_lines(
    log: &std::path::Path,
    count: usize,
    keep: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines: Vec<Value> = json_lines(log)
            .into_iter()
            .filter(|line| keep(line))
            .collect();
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn stripe_python_verifies_every_delivery() {
    let directory = tempfile::tempdir().unwrap();
    let files = directory.path();
    let (port_file, secret_file, log) =
        (files.join("port"), files.join("secret"), files.join("log"));
    let _receiver = PythonProcess::spawn(
        &python(),
        "stripe_webhook_receiver.py",
        &[
            port_file.as_os_str(),
            secret_file.as_os_str(),
            log.as_os_str(),
            OsStr::new("1"),
        ],
    );
    let port = wait_for_file(&port_file);
    let server = TestServer::start_with_args(
        &files.join("data"),
        &[SECRET_KEY],
        &[
            "--webhook-retry-base-ms",
            "100",
            "--webhook-retry-cap-ms",
            "300",
        ],
    );
    let endpoint = server
        .post(
            "/v1/webhook_endpoints",
            &[
                ("url", &format!("http://127.0.0.1:{}/hook", port.trim())),
                ("enabled_events[]", "*"),
            ],
        )
        .await;
    assert_eq!(endpoint.status, 200, "{}", endpoint.body);
    std::fs::write(&secret_file, endpoint.body["secret"].as_str().unwrap()).unwrap();
    let charge = server.create_charge(&[]).await;
    let charge_id = charge["id"].as_str().unwrap();
    server
        .post(
            &format!("/v1/charges/{charge_id}"),
            &[("metadata[checked]", "yes")],
        )
        .await;
    let verified = wait_for_lines(&log, 2, |line| line["outcome"] == "verified");
    let mut types: Vec<&str> = verified
        .iter()
        .map(|line| line["type"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        ["charge.succeeded", "charge.updated"],
        "{verified:?}"
    );
    for line in &verified {
        assert_eq!(line["object_id"], charge_id);
        assert_eq!(
            line["user_agent"],
            "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
        );
        assert_eq!(line["content_type"], "application/json; charset=utf-8");
    }
    let all = json_lines(&log);
    // The first request was refused; the retry was signed afresh and verified.
    assert_eq!(all[0]["outcome"], "refused", "{all:?}");
    assert!(
        all.iter()
            .all(|line| line["outcome"] == "refused" || line["outcome"] == "verified"),
        "a signature failed or a wrong secret passed: {all:?}"
    );
}

async fn receipts_go_through_a_real_smtp_server_with_a_login() {
    let directory = tempfile::tempdir().unwrap();
    let files = directory.path();
    let (port_file, log) = (files.join("smtp-port"), files.join("mail-log"));
    let _sink = PythonProcess::spawn(
        &python(),
        "smtp_sink.py",
        &[
            port_file.as_os_str(),
            log.as_os_str(),
            OsStr::new("receipts"),
            OsStr::new("s3cret"),
        ],
    );
    let port = wait_for_file(&port_file).trim().to_string();
    let smtp_url = format!("smtp://receipts:s3cret@127.0.0.1:{port}");
    let server = TestServer::start_with_args(
        &files.join("data"),
        &[SECRET_KEY],
        &[
            "--smtp-url",
            &smtp_url,
            "--receipt-from",
            "Shop <shop@example.com>",
        ],
    );
    assert!(
        server
            .startup_line
            .contains(&format!("receipts: smtp://127.0.0.1:{port}"))
            && !server.startup_line.contains("s3cret"),
        "{}",
        server.startup_line
    );
    let charge = server
        .create_charge(&[
            ("receipt_email", "payer@example.com"),
            ("description", "Green tea"),
        ])
        .await;
    let charge_id = charge["id"].as_str().unwrap();
    let mails = wait_for_lines(&log, 1, |_| true);
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["payer@example.com"]));
    assert_eq!(mail["mail_from"], "shop@example.com");
    assert_eq!(mail["login"], "receipts");
    let content = mail["content"].as_str().unwrap().replace("=\r\n", "");
    let shown = loop {
        let shown = server.get(&format!("/v1/charges/{charge_id}")).await.body;
        if !shown["receipt_number"].is_null() {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let number = shown["receipt_number"].as_str().unwrap();
    for expected in [
        format!("Subject: Your receipt [#{number}]"),
        "Amount paid: 20.00 USD".to_string(),
        "Description: Green tea".to_string(),
        format!("Charge: {charge_id}"),
    ] {
        assert!(content.contains(&expected), "{expected} in {content}");
    }
    let events = server.get("/v1/events?limit=1").await.body;
    let event_id = events["data"][0]["id"].as_str().unwrap();
    let deliveries = server
        .get(&format!("/v1/events/{event_id}/deliveries"))
        .await
        .body;
    let receipt = &deliveries["data"][0];
    assert_eq!(
        receipt["destination"],
        serde_json::json!({"type": "receipt", "email": "payer@example.com"})
    );
    assert_eq!(receipt["status"], "delivered");
    assert_eq!(receipt["attempts"][0]["status"], 250);
    drop(server);

    // Asking for STARTTLS from a server that offers none fails the attempt, and says why;
    // nothing is sent in the clear.
    let strict = TestServer::start_with_args(
        &files.join("strict-data"),
        &[SECRET_KEY],
        &[
            "--smtp-url",
            &format!("{smtp_url}?tls=required"),
            "--webhook-max-attempts",
            "1",
        ],
    );
    strict
        .create_charge(&[("receipt_email", "payer@example.com")])
        .await;
    let events = strict.get("/v1/events?limit=1").await.body;
    let event_id = events["data"][0]["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let deliveries = strict
            .get(&format!("/v1/events/{event_id}/deliveries"))
            .await
            .body;
        let receipt = deliveries["data"][0].clone();
        if receipt["status"] == "failed" || Instant::now() > deadline {
            break receipt;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed["status"], "failed", "{failed}");
    let detail = failed["attempts"][0]["response"].as_str().unwrap();
    assert!(
        detail.starts_with("SMTP: ") && detail.to_lowercase().contains("tls"),
        "{detail}"
    );
    assert_eq!(json_lines(&log).len(), 1, "the strict server sent nothing");
}

on_both_backends!(
    stripe_python_verifies_every_delivery,
    receipts_go_through_a_real_smtp_server_with_a_login,
);

//! The outbox over HTTP: webhook endpoints in Stripe's shape, signed deliveries with retries, `pending_webhooks`, delivery chaos, resend, Omise webhooks, receipts as files, and deliveries that survive `kill -9`.
//!
//! Receivers run in the test process (`common::receiver`); stripe-python's own verifier and a
//! real SMTP server (aiosmtpd) are in `tests/outbox_python.rs`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use common::receiver::Receiver;
use common::server::{
    OMISE_PUBLIC_KEY, OMISE_SECRET_KEY, OTHER_SECRET_KEY, OmiseBody, SECRET_KEY, TestServer,
};

/// A request's form parameters.
type Params<'a> = &'a [(&'a str, &'a str)];

/// Retries within a fraction of a second, so tests wait little.
const FAST_RETRIES: [&str; 4] = [
    "--webhook-retry-base-ms",
    "50",
    "--webhook-retry-cap-ms",
    "200",
];
const WAIT: Duration = Duration::from_secs(20);

fn start(data: &std::path::Path, extra: &[&str]) -> TestServer {
    let mut arguments = FAST_RETRIES.to_vec();
    arguments.extend_from_slice(extra);
    TestServer::start_with_args(
        data,
        &[SECRET_KEY, OTHER_SECRET_KEY, OMISE_SECRET_KEY],
        &arguments,
    )
}

async fn create_endpoint(server: &TestServer, url: &str, extra: &[(&str, &str)]) -> Value {
    let mut params = vec![("url", url)];
    params.extend_from_slice(extra);
    let reply = server.post("/v1/webhook_endpoints", &params).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {value}"))
}

/// The `v1` HMAC a receiver computes: SHA-256 keyed with the whole `whsec_…` over `t.body`.
fn expected_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn deliveries_of(server: &TestServer, event_id: &str) -> Vec<Value> {
    let reply = server
        .get(&format!("/v1/events/{event_id}/deliveries"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["data"].as_array().unwrap().clone()
}

/// Poll until `check` holds for the event's deliveries.
async fn wait_for_deliveries(
    server: &TestServer,
    event_id: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let deliveries = deliveries_of(server, event_id).await;
        if check(&deliveries) || std::time::Instant::now() > deadline {
            return deliveries;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The account's events, oldest first.
async fn events(server: &TestServer) -> Vec<Value> {
    let reply = server.get("/v1/events?limit=100").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut events = reply.body["data"].as_array().unwrap().clone();
    events.reverse();
    events
}

async fn webhook_endpoints_crud_in_stripes_shape() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let mut server = start(&data, &[]);
    let created = create_endpoint(
        &server,
        "https://example.com/hooks",
        &[
            ("enabled_events[]", "charge.succeeded"),
            ("enabled_events[]", "charge.updated"),
            ("description", "accounting"),
            ("metadata[team]", "finance"),
        ],
    )
    .await;
    let id = text(&created, "id").to_string();
    assert!(id.starts_with("we_") && id.len() == 27, "{id}");
    let secret = text(&created, "secret");
    assert!(
        secret.starts_with("whsec_") && secret.len() == 38,
        "{secret}"
    );
    assert_eq!(
        created,
        json!({
            "id": id, "object": "webhook_endpoint", "api_version": null, "application": null,
            "created": created["created"], "description": "accounting",
            "enabled_events": ["charge.succeeded", "charge.updated"], "livemode": false,
            "metadata": {"team": "finance"}, "secret": secret, "status": "enabled",
            "url": "https://example.com/hooks",
        })
    );
    // The secret is shown once.
    let retrieved = server.get(&format!("/v1/webhook_endpoints/{id}")).await;
    assert_eq!(retrieved.status, 200);
    let mut without_secret = created.clone();
    without_secret.as_object_mut().unwrap().remove("secret");
    assert_eq!(retrieved.body, without_secret);

    let updated = server
        .post(
            &format!("/v1/webhook_endpoints/{id}"),
            &[
                ("url", "http://127.0.0.1:9/other"),
                ("enabled_events[]", "*"),
                ("metadata[team]", ""),
                ("disabled", "true"),
            ],
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["url"], "http://127.0.0.1:9/other");
    assert_eq!(updated.body["enabled_events"], json!(["*"]));
    assert_eq!(updated.body["metadata"], json!({}));
    assert_eq!(updated.body["status"], "disabled");
    assert!(updated.body.get("secret").is_none());

    let second = create_endpoint(
        &server,
        "http://localhost:4242/b",
        &[("enabled_events[]", "*")],
    )
    .await;
    let page = server.get("/v1/webhook_endpoints?limit=1").await;
    assert_eq!(page.body["object"], "list");
    assert_eq!(page.body["url"], "/v1/webhook_endpoints");
    assert_eq!(page.body["has_more"], true);
    assert_eq!(page.body["data"][0]["id"], second["id"], "newest first");
    let rest = server
        .get(&format!(
            "/v1/webhook_endpoints?limit=1&starting_after={}",
            second["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(rest.body["data"][0]["id"], id.as_str());
    assert_eq!(rest.body["has_more"], false);

    // Refusals, each naming its parameter, and nothing created by them.
    let refusals: [(Params, &str, &str); 6] = [
        (
            &[("enabled_events[]", "*")],
            "url",
            "Missing required param: url.",
        ),
        (
            &[("url", "https://x.test/h")],
            "enabled_events",
            "Missing required param: enabled_events.",
        ),
        (
            &[("url", "ftp://x.test/h"), ("enabled_events[]", "*")],
            "url",
            "Invalid URL: ftp://x.test/h. URLs must begin with http:// or https:// and name a host.",
        ),
        (
            &[
                ("url", "https://x.test/h"),
                ("enabled_events[]", "Charge Updated"),
            ],
            "enabled_events[0]",
            "Invalid enabled_events[0]: must be one of *, or an event type such as charge.updated",
        ),
        (
            &[
                ("url", "https://x.test/h"),
                ("enabled_events[]", "*"),
                ("connect", "true"),
            ],
            "connect",
            "Connect webhook endpoints are not supported by this ledger; create the endpoint without connect=true.",
        ),
        (
            &[
                ("url", "https://x.test/h"),
                ("enabled_events[]", "*"),
                ("chaos[delay_ms]", "60001"),
            ],
            "chaos[delay_ms]",
            "Invalid integer: 60001 (at most 60000)",
        ),
    ];
    for (params, param, message) in refusals {
        let reply = server.post("/v1/webhook_endpoints", params).await;
        assert_eq!(reply.status, 400, "{params:?}: {}", reply.body);
        assert_eq!(reply.error()["type"], "invalid_request_error");
        assert_eq!(reply.error()["param"], param, "{params:?}");
        assert_eq!(reply.error()["message"], message, "{params:?}");
    }
    let unknown = server
        .post(
            "/v1/webhook_endpoints",
            &[
                ("url", "https://x.test/h"),
                ("enabled_events[]", "*"),
                ("colour", "red"),
            ],
        )
        .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.error()["param"], "colour");
    let all = server.get("/v1/webhook_endpoints?limit=100").await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 2);

    // Another account sees none of it.
    let foreign = server
        .request(
            "GET",
            &format!("/v1/webhook_endpoints/{id}"),
            &[],
            Some(OTHER_SECRET_KEY),
            None,
        )
        .await;
    assert_eq!(foreign.status, 404);
    assert_eq!(
        foreign.error()["message"],
        format!("No such webhook endpoint: '{id}'")
    );
    assert_eq!(foreign.error()["code"], "resource_missing");

    // Endpoints persist.
    assert!(server.stop());
    let server = start(&data, &[]);
    let after_restart = server.get(&format!("/v1/webhook_endpoints/{id}")).await;
    assert_eq!(after_restart.body, updated.body);

    let deleted = server
        .request(
            "DELETE",
            &format!("/v1/webhook_endpoints/{id}"),
            &[],
            Some(SECRET_KEY),
            None,
        )
        .await;
    assert_eq!(deleted.status, 200);
    assert_eq!(
        deleted.body,
        json!({"id": id, "object": "webhook_endpoint", "deleted": true})
    );
    let again = server
        .request(
            "DELETE",
            &format!("/v1/webhook_endpoints/{id}"),
            &[],
            Some(SECRET_KEY),
            None,
        )
        .await;
    assert_eq!(again.status, 404);
    assert_eq!(
        server
            .get(&format!("/v1/webhook_endpoints/{id}"))
            .await
            .status,
        404
    );
}

async fn signed_deliveries_retry_until_accepted() {
    let directory = tempfile::tempdir().unwrap();
    let server = start(&directory.path().join("data"), &[]);
    // The first two requests fail: each event is retried until the receiver accepts it.
    let receiver = Receiver::start(2).await;
    let endpoint = create_endpoint(
        &server,
        &receiver.url,
        &[
            ("enabled_events[]", "charge.succeeded"),
            ("enabled_events[]", "charge.updated"),
        ],
    )
    .await;
    let secret = text(&endpoint, "secret").to_string();
    let charge = server.create_charge(&[("capture", "false")]).await;
    let charge_id = text(&charge, "id");
    let update = server
        .post(
            &format!("/v1/charges/{charge_id}"),
            &[("description", "delivered")],
        )
        .await;
    assert_eq!(update.status, 200);
    // Not subscribed: captures and customers go nowhere.
    server
        .post(&format!("/v1/charges/{charge_id}/capture"), &[])
        .await;
    server
        .post("/v1/customers", &[("email", "a@example.com")])
        .await;

    let accepted = receiver.wait_for_accepted(2, WAIT).await;
    let types: Vec<&str> = accepted
        .iter()
        .map(|request| text(&request.body, "type"))
        .collect();
    let mut sorted = types.clone();
    sorted.sort();
    assert_eq!(sorted, ["charge.succeeded", "charge.updated"], "{types:?}");
    for request in receiver.received() {
        let signature = request.header("stripe-signature").unwrap();
        let (timestamp, v1) = signature
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(",v1="))
            .unwrap_or_else(|| panic!("{signature}"));
        assert_eq!(
            v1,
            expected_signature(&secret, timestamp, &request.raw),
            "{signature}"
        );
        let age =
            time::OffsetDateTime::now_utc().unix_timestamp() - timestamp.parse::<i64>().unwrap();
        assert!((0..60).contains(&age), "signed {age} s ago");
        assert_eq!(
            request.header("user-agent"),
            Some("Stripe/1.0 (+https://stripe.com/docs/webhooks)")
        );
        assert_eq!(
            request.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(request.body["object"], "event");
        assert_eq!(request.body["data"]["object"]["id"], charge_id);
    }
    let update_event = accepted
        .iter()
        .find(|request| request.body["type"] == "charge.updated")
        .unwrap();
    assert_eq!(
        update_event.body["data"]["previous_attributes"],
        json!({"description": null})
    );
    assert_eq!(
        update_event.body["pending_webhooks"], 1,
        "sent while unacknowledged"
    );
    // Two refusals and two acceptances: every event delivered exactly once successfully.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 4);
    assert_eq!(receiver.accepted().len(), 2);

    // Every attempt is on record.
    let all_events = events(&server).await;
    let created_event = all_events
        .iter()
        .find(|event| event["type"] == "charge.succeeded")
        .unwrap();
    let event_id = text(created_event, "id");
    let deliveries = wait_for_deliveries(&server, event_id, |deliveries| {
        deliveries
            .iter()
            .all(|delivery| delivery["status"] == "delivered")
    })
    .await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let delivery = &deliveries[0];
    assert_eq!(delivery["object"], "delivery");
    assert_eq!(delivery["event"], event_id);
    assert_eq!(delivery["reason"], "event");
    assert_eq!(
        delivery["destination"],
        json!({"type": "webhook_endpoint", "webhook_endpoint": endpoint["id"]})
    );
    let attempts = delivery["attempts"].as_array().unwrap();
    // However the two refusals fell on the two events, this one has 1 to 3 attempts, and
    // every one but the last was refused.
    assert!(!attempts.is_empty() && attempts.len() <= 3, "{attempts:?}");
    for failed in &attempts[..attempts.len() - 1] {
        assert_eq!(failed["succeeded"], false);
        assert_eq!(failed["status"], 500);
        assert_eq!(failed["response"], "refused on purpose");
    }
    let last = attempts.last().unwrap();
    assert_eq!(last["succeeded"], true);
    assert_eq!(last["status"], 200);
    assert_eq!(last["response"], "received");
    // Once delivered, the event has no pending webhook; events nobody subscribed to never had one.
    for event in events(&server).await {
        assert_eq!(event["pending_webhooks"], 0, "{event}");
        let expected = if ["charge.succeeded", "charge.updated"].contains(&text(&event, "type")) {
            1
        } else {
            0
        };
        assert_eq!(
            deliveries_of(&server, text(&event, "id")).await.len(),
            expected,
            "{event}"
        );
    }
}

async fn deliveries_written_before_kill_9_are_made_after_restart() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let mut server = start(&data, &[]);
    let receiver = Receiver::start(usize::MAX).await;
    // Slow answers: when the server dies, attempts are in flight and their deliveries leased.
    receiver.answer_after(Duration::from_secs(2));
    create_endpoint(&server, &receiver.url, &[("enabled_events[]", "*")]).await;
    let charge = server.create_charge(&[]).await;
    let charge_id = text(&charge, "id");
    for index in 0..10 {
        let reply = server
            .post(
                &format!("/v1/charges/{charge_id}"),
                &[("metadata[n]", &index.to_string())],
            )
            .await;
        assert_eq!(reply.status, 200);
    }
    let acknowledged: BTreeSet<String> = events(&server)
        .await
        .iter()
        .map(|event| text(event, "id").to_string())
        .collect();
    assert_eq!(acknowledged.len(), 11);
    // Attempts are being made and refused; then the server dies without a chance to finish.
    let deadline = std::time::Instant::now() + WAIT;
    while receiver.received().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill_hard();
    receiver.refuse_next(0);
    receiver.answer_after(Duration::ZERO);
    let server = start(&data, &[]);
    let accepted = receiver.wait_for_accepted(11, WAIT).await;
    let delivered: BTreeSet<String> = accepted
        .iter()
        .map(|request| text(&request.body, "id").to_string())
        .collect();
    assert_eq!(
        delivered, acknowledged,
        "every acknowledged event is delivered after the crash"
    );
    for event_id in &acknowledged {
        let deliveries = wait_for_deliveries(&server, event_id, |deliveries| {
            deliveries
                .iter()
                .all(|delivery| delivery["status"] == "delivered")
        })
        .await;
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0]["status"], "delivered", "{deliveries:?}");
    }
}

async fn chaos_resend_and_deleted_endpoints() {
    let directory = tempfile::tempdir().unwrap();
    let server = start(&directory.path().join("data"), &[]);
    let receiver = Receiver::start(0).await;
    let endpoint = create_endpoint(
        &server,
        &receiver.url,
        &[
            ("enabled_events[]", "charge.updated"),
            ("chaos[duplicate]", "true"),
        ],
    )
    .await;
    assert_eq!(
        endpoint["chaos"],
        json!({"duplicate": true, "delay_ms": 0, "out_of_order": false})
    );
    let endpoint_id = text(&endpoint, "id");
    let charge = server.create_charge(&[]).await;
    let charge_id = text(&charge, "id");
    let path = format!("/v1/charges/{charge_id}");
    server.post(&path, &[("metadata[step]", "duplicate")]).await;
    let twice = receiver.wait_for_accepted(2, WAIT).await;
    assert_eq!(twice.len(), 2);
    assert_eq!(
        twice[0].body["id"], twice[1].body["id"],
        "the same event twice"
    );
    let duplicated_event = text(&twice[0].body, "id").to_string();
    let deliveries = wait_for_deliveries(&server, &duplicated_event, |d| {
        d[0]["attempts"].as_array().unwrap().len() == 2
    })
    .await;
    let attempts = deliveries[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["chaos"], Value::Null);
    assert_eq!(
        attempts[1]["chaos"],
        "duplicate: sent again after a successful delivery"
    );

    // An added delay, recorded on the attempt.
    let slow = server
        .post(
            &format!("/v1/webhook_endpoints/{endpoint_id}"),
            &[("chaos[duplicate]", "false"), ("chaos[delay_ms]", "300")],
        )
        .await;
    assert_eq!(
        slow.body["chaos"],
        json!({"duplicate": false, "delay_ms": 300, "out_of_order": false})
    );
    server.post(&path, &[("metadata[step]", "delayed")]).await;
    let delayed = receiver.wait_for_accepted(3, WAIT).await;
    let delayed_event = text(&delayed[2].body, "id").to_string();
    let deliveries =
        wait_for_deliveries(&server, &delayed_event, |d| d[0]["status"] == "delivered").await;
    assert_eq!(deliveries[0]["attempts"][0]["chaos"], "delayed 300 ms");

    // Out of order: updates made together arrive newest first.
    server
        .post(
            &format!("/v1/webhook_endpoints/{endpoint_id}"),
            &[("chaos[delay_ms]", "0"), ("chaos[out_of_order]", "true")],
        )
        .await;
    for step in ["1", "2", "3"] {
        server.post(&path, &[("metadata[order]", step)]).await;
    }
    let all = receiver.wait_for_accepted(6, WAIT).await;
    let order: Vec<&str> = all[3..]
        .iter()
        .map(|request| {
            request.body["data"]["object"]["metadata"]["order"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(order, ["3", "2", "1"]);
    let reordered = deliveries_of(&server, text(&all[3].body, "id")).await;
    assert_eq!(
        reordered[0]["attempts"][0]["chaos"],
        "out of order: held 1000 ms, sent newest event first"
    );

    // Resend: a new delivery of the same event, made at once.
    server
        .post(
            &format!("/v1/webhook_endpoints/{endpoint_id}"),
            &[("chaos[out_of_order]", "false")],
        )
        .await;
    let resent = server
        .post(&format!("/v1/events/{duplicated_event}/resend"), &[])
        .await;
    assert_eq!(resent.status, 200, "{}", resent.body);
    let new_deliveries = resent.body["data"].as_array().unwrap();
    assert_eq!(new_deliveries.len(), 1);
    assert_eq!(new_deliveries[0]["reason"], "resend");
    assert_eq!(new_deliveries[0]["status"], "pending");
    let again = receiver.wait_for_accepted(7, WAIT).await;
    assert_eq!(again[6].body["id"], duplicated_event.as_str());
    let missing = server.post("/v1/events/evt_nope/resend", &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error()["message"], "No such event: 'evt_nope'");

    // A deleted endpoint gets nothing more; what was pending for it is cancelled.
    receiver.refuse_next(usize::MAX);
    server.post(&path, &[("metadata[step]", "refused")]).await;
    let refused_event = text(events(&server).await.last().unwrap(), "id").to_string();
    wait_for_deliveries(&server, &refused_event, |d| {
        !d[0]["attempts"].as_array().unwrap().is_empty()
    })
    .await;
    server
        .request(
            "DELETE",
            &format!("/v1/webhook_endpoints/{endpoint_id}"),
            &[],
            Some(SECRET_KEY),
            None,
        )
        .await;
    let cancelled =
        wait_for_deliveries(&server, &refused_event, |d| d[0]["status"] == "cancelled").await;
    assert_eq!(cancelled[0]["status"], "cancelled", "{cancelled:?}");
    assert_eq!(
        cancelled[0]["stopped_because"],
        format!("webhook endpoint {endpoint_id} was deleted")
    );
    let before = receiver.received().len();
    server
        .post(&path, &[("metadata[step]", "after delete")])
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), before);
}

async fn omise_events_go_to_the_omise_webhook() {
    let directory = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0).await;
    let server = start(
        &directory.path().join("data"),
        &["--omise-webhook-url", &receiver.url],
    );
    let token = server
        .omise(
            "POST",
            "/tokens",
            OmiseBody::Json(
                json!({"card": {"name": "Somchai Prasert", "number": "4242424242424242",
                "expiration_month": 10, "expiration_year": 2099, "security_code": "123"}}),
            ),
            OMISE_PUBLIC_KEY,
        )
        .await;
    let charge = server
        .omise(
            "POST",
            "/charges",
            OmiseBody::Json(json!({"amount": 100000, "currency": "thb", "card": token.body["id"], "capture": false})),
            OMISE_SECRET_KEY,
        )
        .await;
    assert_eq!(charge.status, 200, "{}", charge.body);
    let charge_id = text(&charge.body, "id");
    let path = format!("/charges/{charge_id}");
    server
        .omise(
            "PATCH",
            &path,
            OmiseBody::Json(json!({"description": "hooked"})),
            OMISE_SECRET_KEY,
        )
        .await;
    server
        .omise(
            "POST",
            &format!("{path}/capture"),
            OmiseBody::None,
            OMISE_SECRET_KEY,
        )
        .await;
    let accepted = receiver.wait_for_accepted(3, WAIT).await;
    let mut keys: Vec<&str> = accepted
        .iter()
        .map(|request| text(&request.body, "key"))
        .collect();
    keys.sort();
    assert_eq!(keys, ["charge.capture", "charge.create", "charge.update"]);
    for request in &accepted {
        assert_eq!(request.body["object"], "event");
        assert!(text(&request.body, "id").starts_with("evnt_test_"));
        assert_eq!(request.body["data"]["object"], "charge");
        assert_eq!(request.body["data"]["id"], charge_id);
        assert!(request.header("stripe-signature").is_none());
    }
    // Stripe accounts' events never go to the Omise webhook.
    server.create_charge(&[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 3);
}

async fn receipts_are_written_as_files_and_recorded_on_the_charge() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let server = start(&data, &[]);
    let charge = server
        .create_charge(&[
            ("receipt_email", "payer@example.com"),
            ("description", "Blue mug"),
        ])
        .await;
    let charge_id = text(&charge, "id").to_string();
    let number = wait_for_receipt(&server, &charge_id).await;
    assert!(
        number.len() == 9 && number.as_bytes()[4] == b'-',
        "{number}"
    );
    let outbox = data.join("outbox").join("receipts");
    let mails = read_mails(&outbox);
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    for expected in [
        "To: payer@example.com",
        &format!("Subject: Your receipt [#{number}]"),
        "Amount paid: 20.00 USD",
        "Description: Blue mug",
        &format!("Charge: {charge_id}"),
    ] {
        assert!(mail.contains(expected), "{expected} in {mail}");
    }
    // The charge says so, the audit trail shows it, and the link opens the receipt.
    let shown = server.get(&format!("/v1/charges/{charge_id}")).await;
    let url = text(&shown.body, "receipt_url").to_string();
    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains(&format!("Receipt #{number}")) && page.contains("Blue mug"),
        "{page}"
    );
    let history = server
        .get(&format!("/v1/charges/{charge_id}/history"))
        .await;
    let last = history.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["type"] == "charge.receipt_sent");
    assert!(last.is_some(), "{}", history.body);
    assert_eq!(
        reqwest::get(format!(
            "{}/receipts/acct_test_nobody/{charge_id}",
            server.base_url
        ))
        .await
        .unwrap()
        .status(),
        404
    );

    // An authorized charge is not paid: its receipt waits for the capture.
    let held = server
        .create_charge(&[("capture", "false"), ("receipt_email", "later@example.com")])
        .await;
    let held_id = text(&held, "id").to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(read_mails(&outbox).len(), 1);
    server
        .post(&format!("/v1/charges/{held_id}/capture"), &[])
        .await;
    wait_for_receipt(&server, &held_id).await;
    assert!(
        read_mails(&outbox)
            .iter()
            .any(|mail| mail.contains("To: later@example.com"))
    );

    // A new address on a paid charge gets a receipt of its own, with the same number.
    server
        .post(
            &format!("/v1/charges/{charge_id}"),
            &[("receipt_email", "new@example.com")],
        )
        .await;
    let deadline = std::time::Instant::now() + WAIT;
    while !read_mails(&outbox)
        .iter()
        .any(|mail| mail.contains("To: new@example.com"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no receipt to the new address"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        read_mails(&outbox)
            .iter()
            .any(|mail| mail.contains("To: new@example.com") && mail.contains(&number))
    );
    // Other changes send none.
    server
        .post(
            &format!("/v1/charges/{charge_id}"),
            &[("description", "Red mug")],
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(read_mails(&outbox).len(), 3);
}

/// Wait until the charge shows a receipt number; the number.
async fn wait_for_receipt(server: &TestServer, charge_id: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let charge = server.get(&format!("/v1/charges/{charge_id}")).await.body;
        if let Some(number) = charge["receipt_number"].as_str() {
            return number.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no receipt for {charge_id}: {charge}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The receipts written so far, decoded from quoted-printable enough to search.
fn read_mails(directory: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .path()
                .extension()
                .is_some_and(|extension| extension == "eml")
        })
        .map(|entry| {
            std::fs::read_to_string(entry.path())
                .unwrap()
                .replace("=\r\n", "")
                .replace("=\n", "")
        })
        .collect()
}

on_both_backends!(
    webhook_endpoints_crud_in_stripes_shape,
    signed_deliveries_retry_until_accepted,
    deliveries_written_before_kill_9_are_made_after_restart,
    chaos_resend_and_deleted_endpoints,
    omise_events_go_to_the_omise_webhook,
    receipts_are_written_as_files_and_recorded_on_the_charge,
);

fn cli(arguments: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chargeledger"))
        .args(arguments)
        .env_remove("DATABASE_URL")
        .output()
        .expect("chargeledger runs");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test]
async fn the_cli_lists_deliveries_and_resends_an_event() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let data_argument = data.to_str().unwrap();
    let receiver = Receiver::start(1).await;
    let mut server = start(&data, &[]);
    create_endpoint(
        &server,
        &receiver.url,
        &[("enabled_events[]", "charge.succeeded")],
    )
    .await;
    server.create_charge(&[]).await;
    let accepted = receiver.wait_for_accepted(1, WAIT).await;
    let event_id = text(&accepted[0].body, "id").to_string();
    wait_for_deliveries(&server, &event_id, |d| d[0]["status"] == "delivered").await;
    assert!(server.stop());

    let (ok, listing) = cli(&["deliveries", "--data", data_argument]);
    assert!(ok, "{listing}");
    assert!(listing.starts_with("1 deliveries\n"), "{listing}");
    assert!(
        listing.contains(&format!("{event_id} webhook endpoint we_"))
            && listing.contains(" delivered 2 "),
        "{listing}"
    );
    assert!(
        listing.contains("failed 500 in") && listing.contains("ok 200 in"),
        "{listing}"
    );
    let (ok, json) = cli(&[
        "deliveries",
        "--data",
        data_argument,
        "--event",
        &event_id,
        "--json",
    ]);
    assert!(ok, "{json}");
    let parsed: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed[0]["attempts"].as_array().unwrap().len(), 2);
    let (_, pending) = cli(&["deliveries", "--data", data_argument, "--status", "pending"]);
    assert!(pending.starts_with("0 deliveries"), "{pending}");

    let (ok, resent) = cli(&["resend", &event_id, "--data", data_argument]);
    assert!(ok, "{resent}");
    assert!(
        resent.starts_with(&format!("queued 1 deliveries of {event_id}")),
        "{resent}"
    );
    let (_, pending) = cli(&["deliveries", "--data", data_argument, "--status", "pending"]);
    assert!(pending.starts_with("1 deliveries"), "{pending}");
    let (ok, unknown) = cli(&["resend", "evt_unknown", "--data", data_argument]);
    assert!(!ok);
    assert!(
        unknown.contains(
            "has no earlier delivery to find its account by; name the account with --account"
        ),
        "{unknown}"
    );

    // The server sends what was queued while it was stopped, once it starts.
    let _server = start(&data, &[]);
    let again = receiver.wait_for_accepted(2, WAIT).await;
    assert_eq!(again.len(), 2);
    assert_eq!(again[1].body["id"], event_id.as_str());
}

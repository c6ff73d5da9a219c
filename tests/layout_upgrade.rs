//! The sled store's layout 2 is an upgrade boundary: a data directory written by the layout-2
//! server is checked in (`fixtures/layout2_store/`) with the answers that server gave for every
//! read a user can make of it (`fixtures/layout2_answers.json`). Every later build must open a
//! copy of it (upgrading whatever it upgrades), give the same answers, leave it verifying, and
//! give the same answers again after a restart.
//!
//! Both files are written by `write_the_layout2_fixture` below, over real HTTP:
//! `CHARGELEDGER_WRITE_FIXTURES=1 cargo test --release --test layout_upgrade -- --ignored
//! write_the_layout2_fixture`. Only ever with the layout-2 code: a store rewritten by a later
//! layout no longer pins layout 2.
//!
//! Each answer is `{"key", "dialect", "method", "path", "status", "body"}`, `key` naming one of
//! the keys in `tests/common/server.rs`. Omise lists are recorded with an explicit `to`: without
//! one, the list's `to` is the time of the request. Not in the store: an Omise account policy
//! (`freeze_after_capture` is set only through the library, and no read shows it). Not
//! recorded: a single refund (this server has no `GET /v1/refunds/{id}`; each refund is read
//! through its charge's refund list, paged one at a time).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::server::{
    LIVE_SECRET_KEY, OMISE_PUBLIC_KEY, OMISE_SECRET_KEY, OTHER_OMISE_SECRET_KEY, OTHER_SECRET_KEY,
    OmiseBody, Reply, SECRET_KEY, TestServer, verify_data_directory,
};
use serde_json::{Value, json};

const STORE: &str = "layout2_store";
const ANSWERS: &str = "layout2_answers.json";

/// The keys an answer may name, by their constant's name.
const KEYS: [(&str, &str); 6] = [
    ("SECRET_KEY", SECRET_KEY),
    ("OTHER_SECRET_KEY", OTHER_SECRET_KEY),
    ("LIVE_SECRET_KEY", LIVE_SECRET_KEY),
    ("OMISE_SECRET_KEY", OMISE_SECRET_KEY),
    ("OMISE_PUBLIC_KEY", OMISE_PUBLIC_KEY),
    ("OTHER_OMISE_SECRET_KEY", OTHER_OMISE_SECRET_KEY),
];

/// Omise lists are asked for this window, so that their `from` and `to` do not depend on the
/// time of the request.
const WINDOW: [(&str, &str); 2] = [
    ("from", "2000-01-01T00:00:00Z"),
    ("to", "2100-01-01T00:00:00Z"),
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn key_named(name: &str) -> &'static str {
    KEYS.iter()
        .find(|(constant, _)| *constant == name)
        .map(|(_, key)| *key)
        .unwrap_or_else(|| panic!("no test key is named {name}"))
}

/// `path` with `params` as its query string, encoded as it is sent (`[` as `%5B`).
fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return path.to_string();
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("{path}?{query}")
}

/// Copy a directory tree, leaving out empty directories: git keeps none, so the checked-in
/// store has none either (sled's `blobs/` is empty in a store this small, and sled makes it again).
fn copy_directory(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the directory") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            let empty = std::fs::read_dir(entry.path())
                .expect("read the directory")
                .next()
                .is_none();
            if !empty {
                copy_directory(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// A temporary copy of the checked-in store, as a data directory at `<temp>/data`.
fn copy_of_the_store() -> (tempfile::TempDir, PathBuf) {
    let directory = tempfile::tempdir().expect("tempdir");
    let data = directory.path().join("data");
    copy_directory(&fixtures().join(STORE), &data);
    (directory, data)
}

async fn read(server: &TestServer, key_name: &str, dialect: &str, path: &str) -> Reply {
    let key = key_named(key_name);
    match dialect {
        "stripe" => server.request("GET", path, &[], Some(key), None).await,
        "omise" => server.omise("GET", path, OmiseBody::None, key).await,
        other => panic!("no dialect {other}"),
    }
}

fn recorded_answers() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join(ANSWERS)).expect("the recorded answers");
    match serde_json::from_str(&text).expect("the answers are JSON") {
        Value::Array(answers) => answers,
        other => panic!("the answers are an array, not {other}"),
    }
}

fn text<'a>(answer: &'a Value, field: &str) -> &'a str {
    answer[field]
        .as_str()
        .unwrap_or_else(|| panic!("an answer without {field}: {answer}"))
}

/// Where `actual` first differs from `expected`, as a JSON pointer and both values.
fn difference(expected: &Value, actual: &Value, at: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => {
            let extra = actual.keys().filter(|key| !expected.contains_key(*key));
            for key in expected.keys().chain(extra) {
                let pointer = format!("{at}/{key}");
                match (expected.get(key), actual.get(key)) {
                    (Some(expected), Some(actual)) => {
                        if let Some(found) = difference(expected, actual, &pointer) {
                            return Some(found);
                        }
                    }
                    (Some(expected), None) => {
                        return Some(format!("{pointer}: expected {expected}, missing"));
                    }
                    (_, actual) => return Some(format!("{pointer}: unexpected {actual:?}")),
                }
            }
            None
        }
        (Value::Array(expected), Value::Array(actual)) if expected.len() == actual.len() => {
            expected
                .iter()
                .zip(actual)
                .enumerate()
                .find_map(|(index, (expected, actual))| {
                    difference(expected, actual, &format!("{at}/{index}"))
                })
        }
        _ if expected == actual => None,
        _ => {
            let mut found = format!(
                "{}: expected {expected}, got {actual}",
                if at.is_empty() { "/" } else { at }
            );
            if found.len() > 600 {
                found.truncate(600);
                found.push('…');
            }
            Some(found)
        }
    }
}

/// Ask every recorded request again; one line for each answer that is not the recorded one.
async fn replay(server: &TestServer, answers: &[Value]) -> Vec<String> {
    let mut mismatches = Vec::new();
    for answer in answers {
        let (key, dialect, path) = (
            text(answer, "key"),
            text(answer, "dialect"),
            text(answer, "path"),
        );
        assert_eq!(text(answer, "method"), "GET", "only reads are recorded");
        let reply = read(server, key, dialect, path).await;
        let status = answer["status"].as_u64().expect("a recorded status");
        let row = format!("{key} {dialect} GET {path}");
        if u64::from(reply.status) != status {
            mismatches.push(format!("{row}: status {status} became {}", reply.status));
        } else if let Some(found) = difference(&answer["body"], &reply.body, "") {
            mismatches.push(format!("{row}: body differs at {found}"));
        }
    }
    mismatches
}

fn assert_no_mismatches(when: &str, total: usize, mismatches: &[String]) {
    assert!(
        mismatches.is_empty(),
        "{when}: {} of {total} recorded answers differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[tokio::test]
async fn the_layout_2_store_answers_every_read_as_the_layout_2_server_did() {
    let answers = recorded_answers();
    for dialect in ["stripe", "omise"] {
        assert!(
            answers.iter().any(|answer| answer["dialect"] == dialect),
            "the answers cover the {dialect} dialect"
        );
    }
    let (_directory, data) = copy_of_the_store();
    assert_eq!(recorded_layout(&data), "chargeledger-sled-2");

    let mut server = TestServer::start(&data);
    let mismatches = replay(&server, &answers).await;
    assert_no_mismatches(
        "on first opening the layout-2 store",
        answers.len(),
        &mismatches,
    );
    // The upgrade indexed every refund the log holds: `GET /v1/refunds` lists each refund of
    // each charge (a partial capture's released remainder too), the same objects.
    let charges = server.get("/v1/charges?limit=100").await;
    let mut kept: Vec<Value> = Vec::new();
    for charge in charges.body["data"].as_array().expect("a list") {
        kept.extend(
            charge["refunds"]["data"]
                .as_array()
                .expect("a refund list")
                .clone(),
        );
    }
    assert!(kept.len() >= 3, "the fixture holds refunds: {kept:?}");
    let listed = server.get("/v1/refunds?limit=100").await;
    let mut listed = listed.body["data"].as_array().expect("a list").clone();
    let by_id = |refund: &Value| refund["id"].as_str().unwrap_or_default().to_string();
    kept.sort_by_key(by_id);
    listed.sort_by_key(by_id);
    assert_eq!(listed, kept);
    // The rebuilt projections were indexed for search: every charge is found, newest first.
    let all_charges = server.get("/v1/charges?limit=100").await.body;
    let searched = server
        .get("/v1/charges/search?limit=100&query=amount%3E0")
        .await
        .body;
    assert_eq!(searched["object"], "search_result", "{searched}");
    assert_eq!(searched["data"], all_charges["data"]);
    assert!(
        searched["data"]
            .as_array()
            .is_some_and(|data| data.len() >= 3)
    );
    assert!(server.stop(), "the server exits cleanly on SIGTERM");
    assert_eq!(
        recorded_layout(&data),
        "chargeledger-sled-5",
        "the first open indexed the refunds, rebuilt and indexed the projections and recorded layout 5"
    );

    let (sound, report) = verify_data_directory(&data);
    assert!(sound, "chargeledger verify after the first open: {report}");

    let server = TestServer::start(&data);
    let mismatches = replay(&server, &answers).await;
    assert_no_mismatches("after a restart", answers.len(), &mismatches);
}

/// The layout a closed store records in its `meta` tree.
fn recorded_layout(data: &Path) -> String {
    let db = sled::open(data).expect("the store opens with sled");
    let format = db
        .open_tree("meta")
        .expect("meta tree")
        .get("format")
        .expect("read meta/format")
        .expect("a recorded layout");
    String::from_utf8(format.to_vec()).expect("the layout is text")
}

/// Writes `fixtures/layout2_store/` and `fixtures/layout2_answers.json`. Only with the layout-2
/// code: see the top of this file.
#[tokio::test]
#[ignore = "writes the layout-2 fixture; run with CHARGELEDGER_WRITE_FIXTURES=1"]
async fn write_the_layout2_fixture() {
    assert_eq!(
        std::env::var("CHARGELEDGER_WRITE_FIXTURES").as_deref(),
        Ok("1"),
        "set CHARGELEDGER_WRITE_FIXTURES=1 to overwrite tests/fixtures/layout2_*"
    );
    let directory = tempfile::tempdir().expect("tempdir");
    let data = directory.path().join("data");
    let mut server = TestServer::start(&data);
    let content = build_content(&server).await;
    assert!(server.stop(), "the server exits cleanly on SIGTERM");

    let store = fixtures().join(STORE);
    if store.exists() {
        std::fs::remove_dir_all(&store).expect("remove the old store");
    }
    copy_directory(&data, &store);

    // Record from a copy of exactly what is checked in, the way the test reads it: start, read,
    // stop, verify, and the same answers again after a restart a second later (so an answer
    // that depends on the time of the request shows up here).
    let (_copy, replica) = copy_of_the_store();
    let mut server = TestServer::start(&replica);
    let mut recorder = Recorder {
        server: &server,
        answers: Vec::new(),
    };
    recorder.record_stripe(&content).await;
    recorder.record_omise(&content).await;
    let answers = recorder.answers;
    assert!(server.stop(), "the server exits cleanly on SIGTERM");
    let (sound, report) = verify_data_directory(&replica);
    assert!(sound, "{report}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let server = TestServer::start(&replica);
    let mismatches = replay(&server, &answers).await;
    assert_no_mismatches(
        "the same store read again a second later",
        answers.len(),
        &mismatches,
    );

    // One answer a line, what was asked before what came back: a JSON array that diffs row by
    // row.
    let rows: Vec<String> = answers
        .iter()
        .map(|answer| {
            let fields: Vec<String> = ["key", "dialect", "method", "path", "status", "body"]
                .iter()
                .map(|field| format!("{}:{}", json!(field), answer[*field]))
                .collect();
            format!("{{{}}}", fields.join(","))
        })
        .collect();
    let text = format!("[\n{}\n]\n", rows.join(",\n"));
    std::fs::write(fixtures().join(ANSWERS), text).expect("write the answers");
}

/// The ids of what `build_content` made.
struct Content {
    /// Jenny (with charges), Sam.
    customers: Vec<String>,
    /// Under SECRET_KEY: updated, partially captured, fully refunded, partially refunded.
    charges: Vec<String>,
    other_charge: String,
    live_charge: String,
    /// Captured, captured in part after updates, reversed, with `return_uri` and `ip`.
    omise_charges: Vec<String>,
    /// Four spent, the last one unused.
    tokens: Vec<String>,
}

fn id(object: &Value) -> String {
    object["id"].as_str().expect("an id").to_string()
}

async fn stripe_write(
    server: &TestServer,
    key: &str,
    path: &str,
    params: &[(&str, &str)],
    idempotency_key: Option<&str>,
) -> Value {
    let reply = server
        .request("POST", path, params, Some(key), idempotency_key)
        .await;
    assert_eq!(reply.status, 200, "POST {path}: {}", reply.body);
    reply.body
}

async fn omise_write(server: &TestServer, method: &str, path: &str, body: OmiseBody<'_>) -> Value {
    let key = if path == "/tokens" {
        OMISE_PUBLIC_KEY
    } else {
        OMISE_SECRET_KEY
    };
    let reply = server.omise(method, path, body, key).await;
    assert_eq!(reply.status, 200, "{method} {path}: {}", reply.body);
    reply.body
}

async fn omise_token(server: &TestServer, name: &str) -> String {
    let body = json!({"card": {
        "name": name, "number": "4242424242424242", "expiration_month": 10,
        "expiration_year": 2099, "security_code": "123", "city": "Bangkok",
        "postal_code": "10320", "country": "TH"
    }});
    id(&omise_write(server, "POST", "/tokens", OmiseBody::Json(body)).await)
}

/// Representative content of both dialects, written over HTTP.
async fn build_content(server: &TestServer) -> Content {
    let sk = SECRET_KEY;
    let jenny = id(&stripe_write(
        server,
        sk,
        "/v1/customers",
        &[
            ("email", "jenny@example.com"),
            ("name", "Jenny Rosen"),
            ("description", "Repeat customer"),
            ("metadata[tier]", "gold"),
        ],
        Some("customer-jenny"),
    )
    .await);
    let sam = id(&stripe_write(
        server,
        sk,
        "/v1/customers",
        &[("email", "sam@example.com"), ("name", "Sam Lee")],
        None,
    )
    .await);

    // Captured with every creation field, then updated field by field.
    let updated = id(&stripe_write(
        server,
        sk,
        "/v1/charges",
        &[
            ("amount", "2000"),
            ("currency", "usd"),
            ("source", "tok_visa"),
            ("description", "Order 1001"),
            ("metadata[order_id]", "1001"),
            ("metadata[channel]", "web"),
            ("receipt_email", "jenny@example.com"),
            ("shipping[name]", "Jenny Rosen"),
            ("shipping[phone]", "+1 555 0100"),
            ("shipping[address][line1]", "1 Main St"),
            ("shipping[address][city]", "Springfield"),
            ("shipping[address][state]", "IL"),
            ("shipping[address][postal_code]", "62701"),
            ("shipping[address][country]", "US"),
            ("statement_descriptor", "LEDGER ORDER 1001"),
        ],
        Some("order-1001-create"),
    )
    .await);
    let path = format!("/v1/charges/{updated}");
    let updates: [&[(&str, &str)]; 7] = [
        &[("metadata[gift]", "yes")],
        &[("metadata[channel]", "")],
        &[("description", "Order 1001, gift wrapped")],
        &[("fraud_details[user_report]", "safe")],
        &[("transfer_group", "group_1001")],
        &[
            ("shipping[name]", "Jenny Rosen"),
            ("shipping[address][line1]", "2 Elm St"),
            ("shipping[address][line2]", "Apt 3"),
            ("shipping[address][city]", "Springfield"),
            ("shipping[address][country]", "US"),
            ("shipping[carrier]", "UPS"),
            ("shipping[tracking_number]", "1Z999AA10123456784"),
        ],
        &[("customer", &jenny)],
    ];
    for (index, params) in updates.iter().enumerate() {
        let idempotency_key = (index == 6).then_some("order-1001-customer");
        stripe_write(server, sk, &path, params, idempotency_key).await;
    }

    // Authorized, then captured in part: the rest is refunded.
    let partially_captured = id(&stripe_write(
        server,
        sk,
        "/v1/charges",
        &[
            ("amount", "5000"),
            ("currency", "usd"),
            ("source", "tok_visa"),
            ("capture", "false"),
            ("customer", &sam),
            ("description", "Order 1002, backordered"),
        ],
        None,
    )
    .await);
    let captured = stripe_write(
        server,
        sk,
        &format!("/v1/charges/{partially_captured}/capture"),
        &[("amount", "3000")],
        None,
    )
    .await;
    assert_eq!(captured["amount_refunded"], 2000, "{captured}");

    // Refunded in full, in two parts.
    let fully_refunded = id(&stripe_write(
        server,
        sk,
        "/v1/charges",
        &[
            ("amount", "4000"),
            ("currency", "usd"),
            ("source", "tok_visa"),
            ("metadata[order_id]", "1003"),
        ],
        None,
    )
    .await);
    for (amount, idempotency_key) in [("1500", None), ("2500", Some("order-1003-refund-2"))] {
        stripe_write(
            server,
            sk,
            "/v1/refunds",
            &[("charge", &fully_refunded), ("amount", amount)],
            idempotency_key,
        )
        .await;
    }

    // Refunded once, in part, with a reason and metadata.
    let partially_refunded = id(&stripe_write(
        server,
        sk,
        "/v1/charges",
        &[
            ("amount", "3000"),
            ("currency", "usd"),
            ("customer", &jenny),
            ("description", "Order 1004"),
        ],
        None,
    )
    .await);
    stripe_write(
        server,
        sk,
        "/v1/refunds",
        &[
            ("charge", &partially_refunded),
            ("amount", "1000"),
            ("reason", "requested_by_customer"),
            ("metadata[ticket]", "T-77"),
        ],
        None,
    )
    .await;

    let charge_of = |description: &'static str| {
        [
            ("amount", "1500"),
            ("currency", "usd"),
            ("source", "tok_visa"),
            ("description", description),
        ]
    };
    let other_charge = id(&stripe_write(
        server,
        OTHER_SECRET_KEY,
        "/v1/charges",
        &charge_of("Another account's order"),
        None,
    )
    .await);
    let live = stripe_write(
        server,
        LIVE_SECRET_KEY,
        "/v1/charges",
        &charge_of("A live order"),
        None,
    )
    .await;
    assert_eq!(live["livemode"], true, "{live}");

    // Omise: tokens from the vault, then charges paid with them.
    let mut tokens = Vec::new();
    for name in [
        "Somchai Prasert",
        "Malee Suksan",
        "Anan Chaiyaporn",
        "Ploy Srisai",
    ] {
        tokens.push(omise_token(server, name).await);
    }
    let captured = id(&omise_write(
        server,
        "POST",
        "/charges",
        OmiseBody::Json(json!({
            "amount": 10_000, "currency": "thb", "card": tokens[0],
            "description": "Order 3001", "metadata": {"order": {"id": 3001}}
        })),
    )
    .await);

    let captured_in_part = id(&omise_write(
        server,
        "POST",
        "/charges",
        OmiseBody::Json(json!({
            "amount": 25_000, "currency": "thb", "card": tokens[1], "capture": false,
            "description": "Order 3002", "metadata": {"order": {"id": 3002}, "channel": "app"}
        })),
    )
    .await);
    let path = format!("/charges/{captured_in_part}");
    omise_write(
        server,
        "PATCH",
        &path,
        OmiseBody::Json(
            json!({"metadata": {"order": {"id": 3002, "lines": [1, 2]}, "gift": true}}),
        ),
    )
    .await;
    omise_write(
        server,
        "PATCH",
        &path,
        OmiseBody::Form(&[("description", "Order 3002, gift wrapped")]),
    )
    .await;
    let captured_part = omise_write(
        server,
        "POST",
        &format!("{path}/capture"),
        OmiseBody::Json(json!({"capture_amount": 15_000})),
    )
    .await;
    assert_eq!(captured_part["captured_amount"], 15_000, "{captured_part}");

    let reversed = id(&omise_write(
        server,
        "POST",
        "/charges",
        OmiseBody::Json(json!({
            "amount": 4000, "currency": "thb", "card": tokens[2], "capture": false,
            "metadata": {"order": {"id": 3003}}
        })),
    )
    .await);
    omise_write(
        server,
        "POST",
        &format!("/charges/{reversed}/reverse"),
        OmiseBody::None,
    )
    .await;

    let with_return_uri = id(&omise_write(
        server,
        "POST",
        "/charges",
        OmiseBody::Form(&[
            ("amount", "6000"),
            ("currency", "thb"),
            ("card", &tokens[3]),
            ("description", "Order 3004"),
            ("metadata[channel]", "web"),
            ("return_uri", "https://shop.example/orders/3004/complete"),
            ("ip", "203.0.113.9"),
        ]),
    )
    .await);
    tokens.push(omise_token(server, "Unused Card").await);

    Content {
        customers: vec![jenny, sam],
        charges: vec![
            updated,
            partially_captured,
            fully_refunded,
            partially_refunded,
        ],
        other_charge,
        live_charge: id(&live),
        omise_charges: vec![captured, captured_in_part, reversed, with_return_uri],
        tokens,
    }
}

/// Reads a running server and keeps each answer.
struct Recorder<'a> {
    server: &'a TestServer,
    answers: Vec<Value>,
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(id)
        .collect()
}

impl Recorder<'_> {
    /// Read `path` with the key named `key` and keep the answer; returns its body.
    async fn get(&mut self, key: &str, dialect: &str, path: String) -> Value {
        let reply = read(self.server, key, dialect, &path).await;
        self.answers.push(json!({
            "key": key,
            "dialect": dialect,
            "method": "GET",
            "path": path,
            "status": reply.status,
            "body": reply.body,
        }));
        reply.body
    }

    async fn stripe(&mut self, key: &str, path: String) -> Value {
        self.get(key, "stripe", path).await
    }

    async fn omise(&mut self, key: &str, path: String) -> Value {
        self.get(key, "omise", path).await
    }

    /// A list read page by page with `limit` and `starting_after`, then back from its end with
    /// `ending_before`.
    async fn stripe_pages(&mut self, key: &str, path: &str, limit: &str) {
        let mut cursor: Option<String> = None;
        loop {
            let mut params = vec![("limit", limit)];
            if let Some(after) = &cursor {
                params.push(("starting_after", after));
            }
            let page = self.stripe(key, with_query(path, &params)).await;
            cursor = ids(&page).last().cloned();
            if page["has_more"] != true || cursor.is_none() {
                break;
            }
        }
        if let Some(last) = cursor {
            self.stripe(
                key,
                with_query(path, &[("limit", limit), ("ending_before", &last)]),
            )
            .await;
        }
    }

    async fn record_stripe(&mut self, content: &Content) {
        let sk = "SECRET_KEY";
        for charge in &content.charges {
            self.stripe_charge(sk, charge).await;
        }

        let list = self.stripe(sk, "/v1/charges".into()).await;
        self.stripe(sk, with_query("/v1/charges", &[("limit", "100")]))
            .await;
        self.stripe_pages(sk, "/v1/charges", "2").await;
        for params in [
            [("expand[]", "data.customer")],
            [("customer", content.customers[0].as_str())],
            [("customer", content.customers[1].as_str())],
            [("transfer_group", "group_1001")],
        ] {
            self.stripe(sk, with_query("/v1/charges", &params)).await;
        }
        let created: Vec<String> = list["data"]
            .as_array()
            .expect("charges")
            .iter()
            .map(|charge| charge["created"].to_string())
            .collect();
        let (oldest, newest) = (created.last().unwrap(), created.first().unwrap());
        for params in [
            vec![("created[gte]", oldest.as_str())],
            vec![("created[lt]", oldest.as_str())],
            vec![("created[gt]", newest.as_str())],
            vec![("created[gte]", oldest.as_str()), ("created[lte]", newest)],
            vec![("created", oldest.as_str()), ("limit", "3")],
        ] {
            self.stripe(sk, with_query("/v1/charges", &params)).await;
        }

        for customer in &content.customers {
            self.stripe(sk, format!("/v1/customers/{customer}")).await;
        }
        self.stripe(sk, "/v1/customers".into()).await;
        self.stripe_pages(sk, "/v1/customers", "1").await;

        let events = self
            .stripe(sk, with_query("/v1/events", &[("limit", "100")]))
            .await;
        self.stripe(sk, "/v1/events".into()).await;
        self.stripe_pages(sk, "/v1/events", "5").await;
        let created: Vec<String> = events["data"]
            .as_array()
            .expect("events")
            .iter()
            .map(|event| event["created"].to_string())
            .collect();
        let (oldest, newest) = (created.last().unwrap(), created.first().unwrap());
        for params in [
            vec![("type", "charge.updated"), ("limit", "100")],
            vec![("type", "charge.*"), ("limit", "100")],
            vec![("type", "charge.captured")],
            vec![("type", "charge.refunded")],
            vec![
                ("types[]", "charge.refunded"),
                ("types[]", "customer.created"),
            ],
            vec![("created[gte]", oldest.as_str()), ("created[lte]", newest)],
            vec![("created[gt]", newest.as_str())],
        ] {
            self.stripe(sk, with_query("/v1/events", &params)).await;
        }
        for event in ids(&events) {
            self.stripe(sk, format!("/v1/events/{event}")).await;
        }

        // What is not there, and what is another account's.
        for path in [
            "/v1/charges/ch_nonexistent000000000000000",
            "/v1/charges/ch_nonexistent000000000000000/refunds",
            "/v1/charges/ch_nonexistent000000000000000/history",
            "/v1/customers/cus_nonexistent00000",
            "/v1/events/evt_nonexistent000000000000000",
        ] {
            self.stripe(sk, path.into()).await;
        }
        self.stripe(sk, format!("/v1/charges/{}", content.other_charge))
            .await;
        self.stripe(sk, format!("/v1/charges/{}", content.omise_charges[0]))
            .await;
        self.stripe(
            sk,
            format!("/v1/charges/{}/history/notanumber", content.charges[0]),
        )
        .await;

        for (key, charge) in [
            ("OTHER_SECRET_KEY", &content.other_charge),
            ("LIVE_SECRET_KEY", &content.live_charge),
        ] {
            self.stripe(key, "/v1/charges".into()).await;
            self.stripe_charge(key, charge).await;
            self.stripe(key, "/v1/customers".into()).await;
            let events = self
                .stripe(key, with_query("/v1/events", &[("limit", "100")]))
                .await;
            for event in ids(&events) {
                self.stripe(key, format!("/v1/events/{event}")).await;
            }
            self.stripe(key, format!("/v1/charges/{}", content.charges[0]))
                .await;
            self.stripe(key, format!("/v1/customers/{}", content.customers[0]))
                .await;
        }
    }

    /// A charge, its refunds, its history and each of its versions.
    async fn stripe_charge(&mut self, key: &str, charge: &str) {
        let path = format!("/v1/charges/{charge}");
        self.stripe(key, path.clone()).await;
        self.stripe(key, with_query(&path, &[("expand[]", "customer")]))
            .await;

        let refunds_path = format!("{path}/refunds");
        let refunds = self.stripe(key, refunds_path.clone()).await;
        self.stripe(
            key,
            with_query(&refunds_path, &[("expand[]", "data.charge")]),
        )
        .await;
        if !ids(&refunds).is_empty() {
            self.stripe_pages(key, &refunds_path, "1").await;
        }

        let history_path = format!("{path}/history");
        let history = self
            .stripe(key, with_query(&history_path, &[("limit", "100")]))
            .await;
        self.stripe(key, history_path.clone()).await;
        self.stripe_pages(key, &history_path, "3").await;
        let versions = history["data"].as_array().expect("history").len();
        for version in 0..=versions + 1 {
            self.stripe(key, format!("{history_path}/{version}")).await;
        }
        self.stripe(
            key,
            with_query(
                &format!("{history_path}/{versions}"),
                &[("expand[]", "customer")],
            ),
        )
        .await;
    }

    async fn record_omise(&mut self, content: &Content) {
        let sk = "OMISE_SECRET_KEY";
        let window = |extra: &[(&'static str, &'static str)]| {
            let mut params = WINDOW.to_vec();
            params.extend_from_slice(extra);
            params
        };
        for charge in &content.omise_charges {
            let path = format!("/charges/{charge}");
            self.omise(sk, path.clone()).await;
            let events_path = format!("{path}/events");
            self.omise(sk, with_query(&events_path, &window(&[]))).await;
            self.omise(
                sk,
                with_query(
                    &events_path,
                    &window(&[("order", "reverse_chronological"), ("limit", "1")]),
                ),
            )
            .await;
        }

        for extra in [
            &[][..],
            &[("limit", "2")],
            &[("limit", "2"), ("offset", "2")],
            &[("order", "reverse_chronological")],
            &[
                ("order", "reverse_chronological"),
                ("limit", "3"),
                ("offset", "1"),
            ],
            &[("offset", "10")],
        ] {
            self.omise(sk, with_query("/charges", &window(extra))).await;
        }
        // A window before any charge.
        self.omise(
            sk,
            with_query(
                "/charges",
                &[("from", "2001-01-01"), ("to", "2001-01-02T00:00:00Z")],
            ),
        )
        .await;

        let events = self.omise(sk, with_query("/events", &window(&[]))).await;
        for extra in [
            &[("limit", "3"), ("offset", "3")][..],
            &[("order", "reverse_chronological"), ("limit", "5")],
            &[("offset", "100")],
        ] {
            self.omise(sk, with_query("/events", &window(extra))).await;
        }
        for event in ids(&events) {
            self.omise(sk, format!("/events/{event}")).await;
        }

        for token in &content.tokens {
            self.omise(sk, format!("/tokens/{token}")).await;
            self.omise("OMISE_PUBLIC_KEY", format!("/tokens/{token}"))
                .await;
        }

        // What is not there, and what is another account's.
        for path in [
            "/charges/chrg_test_nonexistent0000000000".to_string(),
            with_query(
                "/charges/chrg_test_nonexistent0000000000/events",
                &window(&[]),
            ),
            "/events/evnt_test_nonexistent0000000000".to_string(),
            "/tokens/tokn_test_nonexistent0000000000".to_string(),
            format!("/charges/{}", content.charges[0]),
        ] {
            self.omise(sk, path).await;
        }
        let other = "OTHER_OMISE_SECRET_KEY";
        self.omise(other, with_query("/charges", &window(&[])))
            .await;
        self.omise(other, with_query("/events", &window(&[]))).await;
        self.omise(other, format!("/charges/{}", content.omise_charges[0]))
            .await;
        self.omise(other, format!("/tokens/{}", content.tokens[0]))
            .await;
        if let Some(event) = ids(&events).first() {
            self.omise(other, format!("/events/{event}")).await;
        }
    }
}

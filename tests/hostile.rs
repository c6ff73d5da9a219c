//! A table of hostile requests over raw HTTP: each gets a 4xx with a well-formed body in its dialect's shape (or, where hyper answers before any of our code runs, its own bare 4xx, as documented), appends nothing, and leaves the server serving.

mod common;

use common::raw_http::{RawReply, basic, bearer, exchange, request_bytes};
use common::server::{OMISE_SECRET_KEY, SECRET_KEY, TestServer};

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// `{"error": {"type", "message", …}}`
    Stripe,
    /// `{"object": "error", "code", "message", "location"}`
    Omise,
    /// hyper refuses the request itself, before routing: an empty body (README, "Limits").
    Bare,
}

struct Row {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    shape: Shape,
}

const FORM: &str = "Content-Type: application/x-www-form-urlencoded";
const JSON: &str = "Content-Type: application/json";

fn stripe_post(path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let auth = bearer(SECRET_KEY);
    let mut all = vec![auth.as_str(), FORM];
    all.extend_from_slice(headers);
    request_bytes("POST", path, &all, body)
}

fn stripe_get(target: &str) -> Vec<u8> {
    request_bytes("GET", target, &[&bearer(SECRET_KEY)], b"")
}

fn omise_request(method: &str, target: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let auth = basic(OMISE_SECRET_KEY);
    let mut all = vec![auth.as_str()];
    all.extend_from_slice(headers);
    request_bytes(method, target, &all, body)
}

/// A head written by hand (for framing no helper would produce), then `body` as is.
fn handmade(head_lines: &[&str], body: &[u8]) -> Vec<u8> {
    let mut bytes = head_lines.join("\r\n").into_bytes();
    bytes.extend_from_slice(b"\r\n\r\n");
    bytes.extend_from_slice(body);
    bytes
}

/// `body` in chunks of at most 64 KiB, chunked transfer encoding.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut encoded = Vec::new();
    for chunk in body.chunks(64 * 1024) {
        encoded.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        encoded.extend_from_slice(chunk);
        encoded.extend_from_slice(b"\r\n");
    }
    encoded.extend_from_slice(b"0\r\n\r\n");
    encoded
}

fn many(prefix: &str, count: usize) -> Vec<u8> {
    (0..count)
        .map(|index| format!("{prefix}{index}=1"))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

fn rows(charge_id: &str) -> Vec<Row> {
    let charge = format!("/v1/charges/{charge_id}");
    let auth = bearer(SECRET_KEY);
    let over_limit = format!("description={}", "x".repeat(1024 * 1024));
    let flood: Vec<String> = (0..150)
        .map(|index| format!("X-Flood-{index}: 1"))
        .collect();
    let mut flood_headers: Vec<&str> = flood.iter().map(String::as_str).collect();
    flood_headers.push(&auth);
    let chunked_head = |path: &str| {
        vec![
            format!("POST {path} HTTP/1.1"),
            "Host: 127.0.0.1".into(),
            "Connection: close".into(),
            auth.clone(),
            FORM.into(),
            "Transfer-Encoding: chunked".into(),
        ]
    };
    let lines = |owned: &[String]| owned.iter().map(String::clone).collect::<Vec<_>>();
    let chunked_ok = chunked_head(&charge);
    let long_id = "c".repeat(30_000);
    let stripe = Shape::Stripe;
    let omise = Shape::Omise;
    let row = |name, request, status, shape| Row {
        name,
        request,
        status,
        shape,
    };
    vec![
        row("100,000 parameters", stripe_post(&charge, &[], &many("p", 100_000)), 400, stripe),
        row("40,000 metadata keys", stripe_post(&charge, &[], &many("metadata[k", 40_000)), 400, stripe),
        row("an array and a hash under one name", stripe_post(&charge, &[], b"metadata[]=a&metadata[k]=b"), 400, stripe),
        row("a hash and then a string under one name", stripe_post(&charge, &[], b"metadata[k]=v&metadata="), 400, stripe),
        row("a body one byte over 1 MiB", stripe_post(&charge, &[], over_limit.as_bytes()), 413, stripe),
        row(
            "a Content-Length over the limit, no body sent",
            handmade(&[&format!("POST {charge} HTTP/1.1"), "Host: x", "Connection: close", &auth, FORM, "Content-Length: 5000000"], b""),
            413,
            stripe,
        ),
        row(
            "a chunked body over the limit",
            handmade(&lines(&chunked_ok).iter().map(String::as_str).collect::<Vec<_>>(), &chunked(over_limit.as_bytes())),
            413,
            stripe,
        ),
        row(
            "a malformed chunk size",
            handmade(&lines(&chunked_ok).iter().map(String::as_str).collect::<Vec<_>>(), b"zz\r\nmetadata[a]=1\r\n0\r\n\r\n"),
            400,
            stripe,
        ),
        row(
            "a Content-Length shorter than the body",
            handmade(&[&format!("POST {charge} HTTP/1.1"), "Host: x", "Connection: close", &auth, FORM, "Content-Length: 5"], b"description=x"),
            400,
            stripe,
        ),
        row(
            "two Content-Lengths that disagree",
            handmade(&[&format!("POST {charge} HTTP/1.1"), "Host: x", &auth, FORM, "Content-Length: 5", "Content-Length: 7"], b"metadata"),
            400,
            Shape::Bare,
        ),
        row("a JSON body on a form route", stripe_post(&charge, &[JSON], br#"{"description": "x"}"#), 400, stripe),
        row(
            "a multipart body",
            stripe_post(&charge, &["Content-Type: multipart/form-data; boundary=b"], b"--b\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\nx\r\n--b--\r\n"),
            400,
            stripe,
        ),
        row("an amount past i64", stripe_post("/v1/charges", &[], b"amount=99999999999999999999&currency=usd&source=tok_visa"), 400, stripe),
        row("an amount with letters", stripe_post("/v1/charges", &[], b"amount=12abc&currency=usd&source=tok_visa"), 400, stripe),
        row("an amount in exponent form", stripe_post("/v1/charges", &[], b"amount=1e3&currency=usd&source=tok_visa"), 400, stripe),
        row("a negative amount", stripe_post("/v1/charges", &[], b"amount=-5&currency=usd&source=tok_visa"), 400, stripe),
        row("an id with an encoded slash", stripe_get("/v1/charges/a%2Fb"), 404, stripe),
        row("an id of ..", stripe_get("/v1/charges/.."), 404, stripe),
        row("an id of encoded ../", stripe_get("/v1/charges/%2e%2e%2f"), 404, stripe),
        row("an id with a NUL", stripe_get("/v1/charges/ch_%00"), 404, stripe),
        row("an id of 30,000 characters", stripe_get(&format!("/v1/charges/{long_id}")), 404, stripe),
        row("an id with invalid percent-encoding", stripe_get("/v1/charges/%zz"), 404, stripe),
        row("an id that is not UTF-8", stripe_get("/v1/charges/%ff"), 400, stripe),
        row("150 headers", request_bytes("GET", "/v1/charges", &flood_headers, b""), 431, stripe),
        row("an Idempotency-Key with a C1 control character", stripe_post(&charge, &["Idempotency-Key: a\u{85}b"], b"description=x"), 400, stripe),
        row("a header with DEL in it", stripe_post(&charge, &["Idempotency-Key: a\u{7f}b"], b"description=x"), 400, Shape::Bare),
        row("an unknown method", request_bytes("BREW", "/v1/charges", &[&auth], b""), 404, stripe),
        row("a request line that is not HTTP", b"HELLO THERE\r\n\r\n".to_vec(), 400, Shape::Bare),
        row("an Omise body over 1 MiB", omise_request("POST", "/charges", &[JSON], format!("{{\"description\": \"{}\"}}", "x".repeat(1024 * 1024)).as_bytes()), 413, omise),
        row("an Omise JSON array body", omise_request("POST", "/charges", &[JSON], b"[1, 2]"), 400, omise),
        row("Omise JSON with trailing bytes", omise_request("POST", "/charges", &[JSON], br#"{"amount": 1}xyz"#), 400, omise),
        row("Omise JSON nested 200 deep", omise_request("POST", "/charges", &[JSON], format!("{{\"metadata\": {}{}}}", "[".repeat(200), "]".repeat(200)).as_bytes()), 400, omise),
        row("an Omise fractional amount", omise_request("POST", "/charges", &[JSON], br#"{"amount": 1.5, "currency": "thb", "card": "tokn_x"}"#), 400, omise),
        row("an Omise amount past i64", omise_request("POST", "/charges", &[JSON], br#"{"amount": 1e30, "currency": "thb", "card": "tokn_x"}"#), 400, omise),
        row("an Omise id with an encoded slash", omise_request("GET", "/charges/..%2F..%2Fevents", &[], b""), 404, omise),
        row("an Omise form with invalid percent-encoding", omise_request("POST", "/charges", &[FORM], b"amount=%zz"), 400, omise),
    ]
}

fn event_counts(server: &TestServer) -> (usize, u64) {
    let stripe = exchange(&server.base_url, &stripe_get("/v1/events?limit=100"));
    let omise = exchange(&server.base_url, &omise_request("GET", "/events", &[], b""));
    (
        stripe.json()["data"].as_array().unwrap().len(),
        omise.json()["total"].as_u64().unwrap(),
    )
}

fn check_shape(row: &Row, reply: &RawReply) -> Result<(), String> {
    if reply.status != row.status {
        return Err(format!(
            "status {} (wanted {}): {}",
            reply.status,
            row.status,
            String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)])
        ));
    }
    if row.shape == Shape::Bare {
        return Ok(());
    }
    let body: serde_json::Value = serde_json::from_slice(&reply.body)
        .map_err(|_| format!("not JSON: {}", String::from_utf8_lossy(&reply.body)))?;
    let well_formed = match row.shape {
        Shape::Stripe => body["error"]["type"].is_string() && body["error"]["message"].is_string(),
        Shape::Omise => {
            body["object"] == "error" && body["code"].is_string() && body["message"].is_string()
        }
        Shape::Bare => true,
    };
    if !well_formed {
        return Err(format!("not the dialect's error shape: {body}"));
    }
    Ok(())
}

#[test]
fn every_hostile_request_is_refused_cleanly_and_changes_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let server = TestServer::start(&directory.path().join("data"));
    let created = exchange(
        &server.base_url,
        &stripe_post(
            "/v1/charges",
            &[],
            b"amount=2000&currency=usd&source=tok_visa",
        ),
    );
    let charge_id = created.json()["id"].as_str().unwrap().to_string();
    let counts = event_counts(&server);
    let rows = rows(&charge_id);
    let mut failures = Vec::new();
    for row in &rows {
        let reply = exchange(&server.base_url, &row.request);
        // A refusal may quote what was sent (Stripe echoes a missing id), but never grows
        // past it: no amplification.
        if reply.body.len() > row.request.len() + 4096 {
            failures.push(format!("{}: a {}-byte refusal", row.name, reply.body.len()));
        }
        if let Err(problem) = check_shape(row, &reply) {
            failures.push(format!("{}: {problem}", row.name));
        }
        // Each row is checked on its own: nothing appended, and the server still answers.
        if event_counts(&server) != counts {
            failures.push(format!("{}: the event log changed", row.name));
        }
    }
    println!(
        "hostile: {} requests tried, {} refused as expected",
        rows.len(),
        rows.len() - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let charge = exchange(
        &server.base_url,
        &stripe_get(&format!("/v1/charges/{charge_id}")),
    );
    assert_eq!(charge.status, 200);
    assert_eq!(charge.json()["description"], serde_json::Value::Null);
}

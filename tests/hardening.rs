//! The hardening defects, each reproduced over real HTTP as a hostile client would send it: deep nesting, non-ASCII idempotency keys, bytes that would be altered, publishable keys reading, unbounded history, secrets on disk, and refusals from the HTTP layer.

mod common;

use common::raw_http::{RawReply, basic, bearer, exchange, request_bytes};
use common::server::{OMISE_PUBLIC_KEY, OMISE_SECRET_KEY, PUBLISHABLE_KEY, SECRET_KEY, TestServer};
use serde_json::{Value, json};

fn server() -> (tempfile::TempDir, TestServer) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(&directory.path().join("data"));
    (directory, server)
}

const FORM: &str = "Content-Type: application/x-www-form-urlencoded";
const JSON: &str = "Content-Type: application/json";

fn post(server: &TestServer, path: &str, body: &[u8], extra_headers: &[&str]) -> RawReply {
    let auth = bearer(SECRET_KEY);
    let mut headers = vec![auth.as_str(), FORM];
    headers.extend_from_slice(extra_headers);
    exchange(
        &server.base_url,
        &request_bytes("POST", path, &headers, body),
    )
}

fn get(server: &TestServer, target: &str, key: &str) -> RawReply {
    exchange(
        &server.base_url,
        &request_bytes("GET", target, &[&bearer(key)], b""),
    )
}

fn omise(
    server: &TestServer,
    method: &str,
    target: &str,
    key: &str,
    headers: &[&str],
    body: &[u8],
) -> RawReply {
    let auth = basic(key);
    let mut all = vec![auth.as_str()];
    all.extend_from_slice(headers);
    exchange(&server.base_url, &request_bytes(method, target, &all, body))
}

/// A Stripe error: the status, and the `error` object with its `type` and `message`.
fn stripe_error(reply: &RawReply, status: u16) -> Value {
    assert_eq!(
        reply.status,
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = reply.json();
    let error = body["error"].clone();
    assert!(error["type"].is_string(), "a Stripe error body: {body}");
    assert!(error["message"].is_string(), "a Stripe error body: {body}");
    error
}

/// An Omise error: `{"object": "error", "code", "message", "location"}` with this status.
fn omise_error(reply: &RawReply, status: u16, code: &str) -> Value {
    assert_eq!(
        reply.status,
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = reply.json();
    assert_eq!(body["object"], "error", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].is_string() && body["location"].is_string());
    body
}

fn stripe_event_count(server: &TestServer) -> usize {
    let reply = get(server, "/v1/events?limit=100", SECRET_KEY);
    assert_eq!(reply.status, 200);
    reply.json()["data"].as_array().unwrap().len()
}

fn omise_event_count(server: &TestServer) -> u64 {
    let reply = omise(server, "GET", "/events", OMISE_SECRET_KEY, &[], b"");
    assert_eq!(reply.status, 200);
    reply.json()["total"].as_u64().unwrap()
}

fn create_charge(server: &TestServer) -> String {
    let reply = post(
        server,
        "/v1/charges",
        b"amount=2000&currency=usd&source=tok_visa",
        &[],
    );
    reply.assert_ok();
    reply.json()["id"].as_str().unwrap().to_string()
}

fn omise_token(server: &TestServer) -> String {
    let card = json!({"card": {"name": "Somchai Prasert", "number": "4242424242424242",
        "expiration_month": 10, "expiration_year": 2099, "security_code": "123"}});
    let reply = omise(
        server,
        "POST",
        "/tokens",
        OMISE_PUBLIC_KEY,
        &[JSON],
        card.to_string().as_bytes(),
    );
    reply.assert_ok();
    reply.json()["id"].as_str().unwrap().to_string()
}

/// `name` followed by `[a]` `levels` times.
fn nested_name(name: &str, levels: usize) -> String {
    format!("{name}{}", "[a]".repeat(levels))
}

#[test]
fn nesting_past_a_hundred_levels_is_refused_by_every_parser_in_both_dialects() {
    let (_directory, server) = server();
    let charge_id = create_charge(&server);
    let events_before = stripe_event_count(&server);
    let deep = nested_name("metadata", 100_000);

    // The reproduction from the report: a charge creation whose metadata nests 100,000 deep.
    let body = format!("amount=100&currency=usd&source=tok_visa&{deep}=x");
    let error = stripe_error(&post(&server, "/v1/charges", body.as_bytes(), &[]), 400);
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["param"], "metadata");
    assert_eq!(
        error["message"],
        "Invalid parameter metadata: parameters may be nested at most 100 levels deep (metadata[…] has 100000)."
    );
    // Query strings, `expand[]`, updates and customers go through the same parser. A query
    // string can carry 10,000 levels (30 KB) within the URL limit; the parser itself is tested
    // at 100,000 in its unit tests, and a longer URL is refused before parsing (414).
    let deep_query = nested_name("a", 10_000);
    for target in [
        format!("/v1/charges?{deep_query}=x"),
        format!("/v1/charges/{charge_id}?expand[]{}=x", "[a]".repeat(10_000)),
        format!("/v1/customers?{deep_query}=x"),
    ] {
        let error = stripe_error(&get(&server, &target, SECRET_KEY), 400);
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("at most 100 levels")
        );
    }
    for path in [format!("/v1/charges/{charge_id}"), "/v1/customers".into()] {
        let body = format!("{deep}=x");
        stripe_error(&post(&server, &path, body.as_bytes(), &[]), 400);
    }
    // 100 levels is the limit, not 99: such a name reaches the charge rules, which refuse a
    // nested metadata value for what it is.
    let body = format!("{}=x", nested_name("metadata", 100));
    let error = stripe_error(
        &post(
            &server,
            &format!("/v1/charges/{charge_id}"),
            body.as_bytes(),
            &[],
        ),
        400,
    );
    assert!(!error["message"].as_str().unwrap().contains("levels deep"));

    // Omise: forms on the vault (the public key may use it), JSON bodies, query strings.
    let omise_events_before = omise_event_count(&server);
    let form_body = format!("{}=x", nested_name("card", 100_000));
    let reply = omise(
        &server,
        "POST",
        "/tokens",
        OMISE_PUBLIC_KEY,
        &[FORM],
        form_body.as_bytes(),
    );
    omise_error(&reply, 400, "bad_request");
    let json_body = format!(
        "{{\"amount\": 2000, \"currency\": \"thb\", \"metadata\": {}1{}}}",
        "{\"a\":".repeat(100_000),
        "}".repeat(100_000)
    );
    let reply = omise(
        &server,
        "POST",
        "/charges",
        OMISE_SECRET_KEY,
        &[JSON],
        json_body.as_bytes(),
    );
    omise_error(&reply, 400, "bad_request");
    let reply = omise(
        &server,
        "GET",
        &format!("/charges?{deep_query}=x"),
        OMISE_SECRET_KEY,
        &[],
        b"",
    );
    omise_error(&reply, 400, "bad_request");

    // Nothing was appended, and the server is still there.
    assert_eq!(stripe_event_count(&server), events_before);
    assert_eq!(omise_event_count(&server), omise_events_before);
}

#[test]
fn omise_metadata_nested_to_the_limit_is_stored_and_reads_back_after_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let mut server = TestServer::start(&data);
    // 100 levels below `metadata`, the most a request may nest: the stored event wraps it a
    // few levels deeper still, and must still read back (serde_json stops at 128).
    let mut nested = json!("bottom");
    for _ in 0..100 {
        nested = json!({ "a": nested });
    }
    let body = json!({"amount": 2000, "currency": "thb", "card": omise_token(&server), "metadata": nested});
    let reply = omise(
        &server,
        "POST",
        "/charges",
        OMISE_SECRET_KEY,
        &[JSON],
        body.to_string().as_bytes(),
    );
    reply.assert_ok();
    let charge_id = reply.json()["id"].as_str().unwrap().to_string();
    let too_deep = json!({"metadata": {"a": nested}});
    let reply = omise(
        &server,
        "PATCH",
        &format!("/charges/{charge_id}"),
        OMISE_SECRET_KEY,
        &[JSON],
        too_deep.to_string().as_bytes(),
    );
    omise_error(&reply, 400, "bad_request");
    assert!(server.stop());

    let server = TestServer::start(&data);
    let reply = omise(
        &server,
        "GET",
        &format!("/charges/{charge_id}"),
        OMISE_SECRET_KEY,
        &[],
        b"",
    );
    reply.assert_ok();
    assert_eq!(reply.json()["metadata"], nested);
    let reply = omise(
        &server,
        "GET",
        &format!("/charges/{charge_id}/events"),
        OMISE_SECRET_KEY,
        &[],
        b"",
    );
    reply.assert_ok();
}

#[test]
fn a_utf8_idempotency_key_is_honoured_in_both_dialects() {
    let (_directory, server) = server();
    let key_header = "Idempotency-Key: ключ-1";
    let body = b"amount=2000&currency=usd&source=tok_visa";
    let first = post(&server, "/v1/charges", body, &[key_header]);
    let second = post(&server, "/v1/charges", body, &[key_header]);
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200);
    assert_eq!(
        first.json()["id"],
        second.json()["id"],
        "one charge, not two"
    );
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.header("idempotency-key"), Some("ключ-1"));
    let list = get(&server, "/v1/charges", SECRET_KEY).json();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // Bytes that are not UTF-8 cannot be recorded as sent: refused, nothing created.
    let mut request = request_bytes(
        "POST",
        "/v1/charges",
        &[&bearer(SECRET_KEY), FORM, "Idempotency-Key: k\u{1}"],
        body,
    );
    let position = request
        .windows(2)
        .position(|pair| pair == b"k\x01")
        .unwrap();
    request[position + 1] = 0xFF;
    let error = stripe_error(&exchange(&server.base_url, &request), 400);
    assert_eq!(
        error["message"],
        "The idempotency-key header is not valid UTF-8. Send it as UTF-8 text; it is recorded exactly as sent."
    );
    assert_eq!(
        get(&server, "/v1/charges", SECRET_KEY).json()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Omise's routes honour it the same way.
    let omise_body =
        |token: String| json!({"amount": 2000, "currency": "thb", "card": token}).to_string();
    let token = omise_token(&server);
    let headers = [JSON, "Idempotency-Key: ключ-2"];
    let first = omise(
        &server,
        "POST",
        "/charges",
        OMISE_SECRET_KEY,
        &headers,
        omise_body(token.clone()).as_bytes(),
    );
    let second = omise(
        &server,
        "POST",
        "/charges",
        OMISE_SECRET_KEY,
        &headers,
        omise_body(token).as_bytes(),
    );
    first.assert_ok();
    assert_eq!(first.json()["id"], second.json()["id"]);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.header("idempotency-key"), Some("ключ-2"));
}

#[test]
fn bytes_that_would_be_altered_are_refused_naming_the_parameter() {
    let (_directory, server) = server();
    let charge_id = create_charge(&server);
    let path = format!("/v1/charges/{charge_id}");
    let events_before = stripe_event_count(&server);
    let refusals: [(&[u8], &str, &str); 6] = [
        (
            b"metadata[%ff]=1&metadata[%fe]=2",
            "metadata",
            "Invalid UTF-8 in metadata[%ff]: parameters must be UTF-8 text once percent-decoded.",
        ),
        (
            b"description=%zz",
            "description",
            "Invalid percent-encoding in description: every '%' must be followed by two hexadecimal digits (send '%25' for a literal '%').",
        ),
        (
            b"description=100%",
            "description",
            "Invalid percent-encoding in description: every '%' must be followed by two hexadecimal digits (send '%25' for a literal '%').",
        ),
        (
            b"description=\xff\xfe",
            "description",
            "Invalid UTF-8 in description: parameters must be UTF-8 text once percent-decoded.",
        ),
        (
            b"metadata[\xc3]=1",
            "metadata",
            "Invalid UTF-8 in metadata[%C3]: parameters must be UTF-8 text once percent-decoded.",
        ),
        (
            b"description=a%00b",
            "description",
            "Invalid string in description: it contains the control character U+0000; only tab, line feed and carriage return are accepted.",
        ),
    ];
    for (body, param, message) in refusals {
        let error = stripe_error(&post(&server, &path, body, &[]), 400);
        assert_eq!(error["param"], param, "{}", String::from_utf8_lossy(body));
        assert_eq!(error["message"], message);
    }
    let error = stripe_error(&post(&server, &path, b"metadata[k]=%1B[31m", &[]), 400);
    assert!(error["message"].as_str().unwrap().contains("U+001B"));
    assert_eq!(stripe_event_count(&server), events_before);

    // What is accepted is stored exactly as sent: tabs, newlines, any Unicode.
    let reply = post(
        &server,
        &path,
        b"description=a%09b%0D%0Ac+%E2%9C%93&metadata[%F0%9F%92%B3]=%C3%A9",
        &[],
    );
    reply.assert_ok();
    let charge = get(&server, &path, SECRET_KEY).json();
    assert_eq!(charge["description"], "a\tb\r\nc ✓");
    assert_eq!(charge["metadata"], json!({"💳": "é"}));

    // Omise: a JSON body that is not UTF-8, or carries a NUL, is refused too.
    let omise_events_before = omise_event_count(&server);
    let reply = omise(
        &server,
        "POST",
        "/charges",
        OMISE_SECRET_KEY,
        &[JSON],
        b"{\"amount\": 2000, \"description\": \"\xff\"}",
    );
    let body = omise_error(&reply, 400, "bad_request");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not valid UTF-8")
    );
    let with_nul = json!({"amount": 2000, "currency": "thb", "card": omise_token(&server), "description": "a\u{0}b"});
    let reply = omise(
        &server,
        "POST",
        "/charges",
        OMISE_SECRET_KEY,
        &[JSON],
        with_nul.to_string().as_bytes(),
    );
    let body = omise_error(&reply, 400, "bad_request");
    assert!(
        body["message"].as_str().unwrap().contains("U+0000"),
        "{body}"
    );
    assert_eq!(omise_event_count(&server), omise_events_before);
}

#[test]
fn a_publishable_key_reads_nothing() {
    let (_directory, server) = server();
    let charge_id = create_charge(&server);
    let message = "This API call cannot be made with a publishable API key. Please use a secret API key. You can find a list of your API keys at https://dashboard.stripe.com/account/apikeys.";
    for target in [
        "/v1/charges".to_string(),
        format!("/v1/charges/{charge_id}"),
        format!("/v1/charges/{charge_id}/refunds"),
        format!("/v1/charges/{charge_id}/history"),
        format!("/v1/charges/{charge_id}/history/1"),
        "/v1/customers".into(),
        "/v1/customers/cus_x".into(),
        "/v1/events".into(),
        "/v1/events/evt_x".into(),
    ] {
        let error = stripe_error(&get(&server, &target, PUBLISHABLE_KEY), 403);
        assert_eq!(error["type"], "invalid_request_error", "{target}");
        assert_eq!(error["message"], message, "{target}");
    }
}

#[test]
fn the_audit_history_is_paged_like_every_list() {
    let (_directory, server) = server();
    let charge_id = create_charge(&server);
    let path = format!("/v1/charges/{charge_id}");
    for version in 2..=13 {
        let body = format!("metadata[v]={version}");
        assert_eq!(post(&server, &path, body.as_bytes(), &[]).status, 200);
    }
    let history = |query: &str| get(&server, &format!("{path}/history{query}"), SECRET_KEY);
    let versions = |page: &Value| -> Vec<u64> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["version"].as_u64().unwrap())
            .collect()
    };
    let first = history("").json();
    assert_eq!(first["object"], "list");
    assert_eq!(first["url"], format!("{path}/history"));
    assert_eq!(
        versions(&first),
        (1..=10).collect::<Vec<_>>(),
        "ten, oldest first, by default"
    );
    assert_eq!(first["has_more"], true);
    let last_id = first["data"][9]["id"].as_str().unwrap().to_string();
    assert_eq!(
        first["data"][9]["event"],
        last_id.as_str(),
        "an entry's id is its event's"
    );
    let second = history(&format!("?starting_after={last_id}")).json();
    assert_eq!(versions(&second), vec![11, 12, 13]);
    assert_eq!(second["has_more"], false);
    let eleventh = second["data"][0]["id"].as_str().unwrap().to_string();
    let back = history(&format!("?ending_before={eleventh}&limit=4")).json();
    assert_eq!(versions(&back), vec![7, 8, 9, 10]);
    assert_eq!(back["has_more"], true);
    let all = history("?limit=100").json();
    assert_eq!(versions(&all), (1..=13).collect::<Vec<_>>());

    let error = stripe_error(&history("?limit=0"), 400);
    assert_eq!(error["param"], "limit");
    let error = stripe_error(&history("?limit=101"), 400);
    assert_eq!(error["param"], "limit");
    let error = stripe_error(&history("?starting_after=evt_nope"), 404);
    assert_eq!(error["param"], "starting_after");
    assert_eq!(error["code"], "resource_missing");
    let error = stripe_error(&history("?colour=red"), 400);
    assert_eq!(error["param"], "colour");
}

#[cfg(unix)]
#[test]
fn the_data_directory_is_private_and_keys_can_come_from_a_file() {
    use std::os::unix::fs::PermissionsExt;
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let keys_file = directory.path().join("keys");
    std::fs::write(&keys_file, format!("# the test account\n{SECRET_KEY}\n\n")).unwrap();
    std::fs::set_permissions(&keys_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let keys_file_arg = keys_file.display().to_string();
    let server = TestServer::start_with_args(&data, &[], &["--api-keys-file", &keys_file_arg]);
    create_charge(&server);
    // A key only the file named is accepted; no key was generated.
    assert!(!data.join("api-keys.json").exists());
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
    drop(server);

    // A generated key file is the owner's alone too.
    let generated = directory.path().join("generated");
    let server = TestServer::start_with_keys(&generated, &[]);
    assert_eq!(mode(&generated.join("api-keys.json")), 0o600);
    drop(server);

    // A keys file with no key is refused before anything starts.
    let empty = directory.path().join("empty");
    std::fs::write(&empty, "# nothing\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chargeledger"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(directory.path().join("unused"))
        .arg("--api-keys-file")
        .arg(&empty)
        .env_remove("CHARGELEDGER_API_KEYS")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("holds no key"), "{stderr}");
}

#[test]
fn heads_over_the_limits_get_the_dialects_error_shape() {
    let (_directory, server) = server();
    let auth = bearer(SECRET_KEY);
    let many: Vec<String> = (0..150)
        .map(|index| format!("X-Flood-{index}: 1"))
        .collect();
    let mut headers: Vec<&str> = many.iter().map(String::as_str).collect();
    headers.push(&auth);
    let reply = exchange(
        &server.base_url,
        &request_bytes("GET", "/v1/charges", &headers, b""),
    );
    let error = stripe_error(&reply, 431);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("at most 100 headers")
    );
    let big = format!("X-Big: {}", "b".repeat(70 * 1024));
    let reply = exchange(
        &server.base_url,
        &request_bytes("GET", "/charges", &[&big, &basic(OMISE_SECRET_KEY)], b""),
    );
    omise_error(&reply, 431, "bad_request");
    let long_target = format!("/v1/charges?description={}", "d".repeat(40 * 1024));
    let error = stripe_error(&get(&server, &long_target, SECRET_KEY), 414);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Send large parameters in the body")
    );
    let reply = omise(
        &server,
        "GET",
        &format!("/charges?q={}", "d".repeat(40 * 1024)),
        OMISE_SECRET_KEY,
        &[],
        b"",
    );
    omise_error(&reply, 414, "bad_request");
    // Past 65,534 bytes the `http` crate cannot hold the URL: hyper's own bare 414.
    let longer_target = format!("/v1/charges?description={}", "d".repeat(100 * 1024));
    assert_eq!(get(&server, &longer_target, SECRET_KEY).status, 414);
    // Past what hyper buffers (512 KiB), hyper answers by itself with an empty body: the one
    // documented exception. The server keeps serving.
    let huge = format!("X-Huge: {}", "h".repeat(600 * 1024));
    let reply = exchange(
        &server.base_url,
        &request_bytes("GET", "/v1/charges", &[&huge, &auth], b""),
    );
    assert_eq!(reply.status, 431);
    assert_eq!(get(&server, "/v1/charges", SECRET_KEY).status, 200);
    // A request line hyper cannot parse: its own bare 400, and the server keeps serving.
    let reply = exchange(&server.base_url, b"NOT HTTP AT ALL\r\n\r\n");
    assert_eq!(reply.status, 400);
    assert_eq!(get(&server, "/v1/charges", SECRET_KEY).status, 200);
}

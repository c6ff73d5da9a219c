//! The Stripe dialect over real HTTP: every endpoint, every row of the error table, idempotency,
//! the audit extension, and data that survives a restart.

mod common;

use common::server::{LIVE_SECRET_KEY, OTHER_SECRET_KEY, PUBLISHABLE_KEY, SECRET_KEY, TestServer};
use serde_json::{Value, json};

fn server() -> (tempfile::TempDir, TestServer) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start(&directory.path().join("data"));
    (directory, server)
}

fn id(object: &Value) -> String {
    object["id"].as_str().expect("an id").to_string()
}

async fn create_retrieve_and_update_every_parameter() {
    let (_directory, server) = server();
    let customer = server
        .post(
            "/v1/customers",
            &[("email", "jenny@example.com"), ("name", "Jenny")],
        )
        .await;
    assert_eq!(customer.status, 200);
    assert_eq!(customer.body["object"], "customer");
    let customer_id = id(&customer.body);

    let charge = server.create_charge(&[("capture", "false")]).await;
    let charge_id = id(&charge);
    assert!(charge_id.starts_with("ch_") && charge_id.len() == 27);
    assert_eq!(charge["captured"], false);
    assert_eq!(charge["livemode"], false);
    assert_eq!(charge["metadata"], json!({}));
    assert_eq!(charge["shipping"], Value::Null);

    let path = format!("/v1/charges/{charge_id}");
    let updated = server
        .post(
            &path,
            &[
                ("customer", &customer_id),
                ("description", "Order 42"),
                ("metadata[order_id]", "42"),
                ("metadata[channel]", "web"),
                ("receipt_email", "jenny@example.com"),
                ("shipping[name]", "Jenny Rosen"),
                ("shipping[address][line1]", "1 Main St"),
                ("shipping[address][city]", "Springfield"),
                ("shipping[address][country]", "US"),
                ("shipping[carrier]", "UPS"),
                ("shipping[tracking_number]", "1Z999"),
                ("fraud_details[user_report]", "safe"),
                ("transfer_group", "order_42"),
            ],
        )
        .await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    let body = &updated.body;
    assert_eq!(body["customer"], customer_id.as_str());
    assert_eq!(body["description"], "Order 42");
    assert_eq!(
        body["metadata"],
        json!({"order_id": "42", "channel": "web"})
    );
    assert_eq!(body["receipt_email"], "jenny@example.com");
    assert_eq!(body["shipping"]["name"], "Jenny Rosen");
    assert_eq!(body["shipping"]["address"]["line1"], "1 Main St");
    assert_eq!(body["shipping"]["address"]["line2"], Value::Null);
    assert_eq!(body["shipping"]["carrier"], "UPS");
    assert_eq!(body["fraud_details"], json!({"user_report": "safe"}));
    assert_eq!(body["transfer_group"], "order_42");

    // What was written is what a later read sees.
    let retrieved = server.get(&path).await;
    assert_eq!(retrieved.status, 200);
    assert_eq!(&retrieved.body, body);

    // expand[]=customer and expand[0]=customer both expand.
    let expanded = server.get(&format!("{path}?expand[]=customer")).await;
    assert_eq!(expanded.body["customer"]["email"], "jenny@example.com");
    let expanded = server.post(&path, &[("expand[0]", "customer")]).await;
    assert_eq!(expanded.body["customer"]["id"], customer_id.as_str());
}

async fn empty_values_unset() {
    let (_directory, server) = server();
    let charge = server
        .create_charge(&[
            ("description", "first"),
            ("receipt_email", "a@example.com"),
            ("metadata[a]", "1"),
            ("metadata[b]", "2"),
            ("metadata[c]", "3"),
            ("shipping[name]", "Jenny"),
            ("shipping[address][line1]", "1 Main"),
        ])
        .await;
    let path = format!("/v1/charges/{}", id(&charge));

    let reply = server.post(&path, &[("metadata[a]", "")]).await;
    assert_eq!(reply.body["metadata"], json!({"b": "2", "c": "3"}));

    let reply = server
        .post(
            &path,
            &[("description", ""), ("receipt_email", ""), ("shipping", "")],
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["description"], Value::Null);
    assert_eq!(reply.body["receipt_email"], Value::Null);
    assert_eq!(reply.body["shipping"], Value::Null);

    let reply = server.post(&path, &[("metadata", "")]).await;
    assert_eq!(reply.body["metadata"], json!({}));
    assert_eq!(server.get(&path).await.body["metadata"], json!({}));
}

/// (status, type, code, param, message) of an error reply.
fn error_row(reply: &common::server::Reply) -> (u16, Value, Value, Value, String) {
    let error = reply.error();
    (
        reply.status,
        error["type"].clone(),
        error.get("code").cloned().unwrap_or(Value::Null),
        error.get("param").cloned().unwrap_or(Value::Null),
        error["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// One request of the error table and what its reply must show. A field left `None` is not
/// checked for that row; `Some(Value::Null)` means the error has no such field.
struct ErrorRow {
    description: &'static str,
    method: &'static str,
    path: String,
    params: Vec<(String, String)>,
    api_key: Option<&'static str>,
    status: u16,
    kind: Option<Value>,
    code: Option<Value>,
    param: Option<Value>,
    message: Option<Message>,
}

enum Message {
    Exactly(String),
    StartsWith(&'static str),
}

impl ErrorRow {
    /// A request with the test secret key, expected to get `status`.
    fn new(
        description: &'static str,
        method: &'static str,
        path: &str,
        params: &[(&str, &str)],
        status: u16,
    ) -> Self {
        ErrorRow {
            description,
            method,
            path: path.to_string(),
            params: params
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            api_key: Some(SECRET_KEY),
            status,
            kind: None,
            code: None,
            param: None,
            message: None,
        }
    }

    fn key(mut self, api_key: Option<&'static str>) -> Self {
        self.api_key = api_key;
        self
    }

    /// Every field of the error: type, code, param (each `Value::Null` when absent) and message.
    fn error(mut self, kind: &str, code: Value, param: Value, message: impl Into<String>) -> Self {
        self.kind = Some(json!(kind));
        self.code = Some(code);
        self.param = Some(param);
        self.message = Some(Message::Exactly(message.into()));
        self
    }

    fn param(mut self, param: &str) -> Self {
        self.param = Some(json!(param));
        self
    }

    fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(Message::Exactly(message.into()));
        self
    }

    fn message_starting(mut self, prefix: &'static str) -> Self {
        self.message = Some(Message::StartsWith(prefix));
        self
    }

    /// What differs between this row's expectations and `reply`, one line each.
    fn mismatches(&self, reply: &common::server::Reply) -> Vec<String> {
        let error = reply.error();
        let field = |name: &str| error.get(name).cloned().unwrap_or(Value::Null);
        let mut found = Vec::new();
        if reply.status != self.status {
            found.push(format!(
                "status: expected {}, got {}",
                self.status, reply.status
            ));
        }
        for (name, expected) in [
            ("type", &self.kind),
            ("code", &self.code),
            ("param", &self.param),
        ] {
            if let Some(expected) = expected
                && &field(name) != expected
            {
                found.push(format!("{name}: expected {expected}, got {}", field(name)));
            }
        }
        let message = error["message"].as_str().unwrap_or_default();
        match &self.message {
            Some(Message::Exactly(expected)) if message != expected => {
                found.push(format!("message: expected {expected:?}, got {message:?}"));
            }
            Some(Message::StartsWith(prefix)) if !message.starts_with(prefix) => {
                found.push(format!(
                    "message: expected to start with {prefix:?}, got {message:?}"
                ));
            }
            _ => {}
        }
        found
    }
}

/// Each row runs in order (some depend on the ones before: `customer` may be set only once), and
/// every mismatch is collected, so one run reports all the rows that are wrong.
async fn every_row_of_the_error_table() {
    let (_directory, server) = server();
    let charge = server.create_charge(&[]).await;
    let charge_id = id(&charge);
    let path = format!("/v1/charges/{charge_id}");
    let first_customer = id(&server.post("/v1/customers", &[]).await.body);
    let second_customer = id(&server.post("/v1/customers", &[]).await.body);
    let invalid = "invalid_request_error";
    let long_key = "k".repeat(41);
    let long_key_param = format!("metadata[{long_key}]");
    let long_value = "v".repeat(801);
    let names: Vec<String> = (0..51)
        .map(|index| format!("metadata[key{index}]"))
        .collect();
    let many: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), "v")).collect();

    let rows = [
        ErrorRow::new("an unknown parameter", "POST", &path, &[("foo", "1")], 400).error(
            invalid,
            json!("parameter_unknown"),
            json!("foo"),
            "Received unknown parameter: foo",
        ),
        ErrorRow::new(
            "two unknown parameters",
            "POST",
            &path,
            &[("foo", "1"), ("bar", "2")],
            400,
        )
        .message("Received unknown parameters: foo, bar"),
        ErrorRow::new(
            "an unknown nested parameter",
            "POST",
            &path,
            &[
                ("shipping[name]", "J"),
                ("shipping[address][line1]", "x"),
                ("shipping[color]", "red"),
            ],
            400,
        )
        .message("Received unknown parameter: shipping[color]")
        .param("shipping[color]"),
        ErrorRow::new(
            "shipping without its name",
            "POST",
            &path,
            &[("shipping[address][line1]", "1 Main")],
            400,
        )
        .error(
            invalid,
            json!("parameter_missing"),
            json!("shipping[name]"),
            "Missing required param: shipping[name].",
        ),
        ErrorRow::new(
            "an update of a missing charge",
            "POST",
            "/v1/charges/ch_missing",
            &[("description", "x")],
            404,
        )
        .error(
            invalid,
            json!("resource_missing"),
            json!("id"),
            "No such charge: 'ch_missing'",
        ),
        ErrorRow::new(
            "a read of a missing charge",
            "GET",
            "/v1/charges/ch_missing",
            &[],
            404,
        ),
        ErrorRow::new(
            "a missing customer",
            "POST",
            &path,
            &[("customer", "cus_missing")],
            404,
        )
        .error(
            invalid,
            json!("resource_missing"),
            json!("customer"),
            "No such customer: 'cus_missing'",
        ),
        ErrorRow::new(
            "an invalid receipt email",
            "POST",
            &path,
            &[("receipt_email", "not-an-email")],
            400,
        )
        .error(
            invalid,
            json!("email_invalid"),
            json!("receipt_email"),
            "Invalid email address: not-an-email",
        ),
        ErrorRow::new(
            "a metadata key of 41 characters",
            "POST",
            &path,
            &[(&long_key_param, "v")],
            400,
        )
        .error(
            invalid,
            Value::Null,
            json!("metadata"),
            format!(
                "Metadata keys can have up to 40 characters, but you passed in a key that is 41 characters. Invalid key: {long_key}"
            ),
        ),
        ErrorRow::new(
            "a metadata value of 801 characters",
            "POST",
            &path,
            &[("metadata[k]", &long_value)],
            400,
        )
        .error(
            invalid,
            Value::Null,
            json!("metadata"),
            format!(
                "Metadata values can have up to 500 characters, but you passed in a value that is 801 characters. Invalid value: {long_value}"
            ),
        ),
        ErrorRow::new("51 metadata keys", "POST", &path, &many, 400).error(
            invalid,
            Value::Null,
            json!("metadata"),
            "Metadata can have up to 50 keys, but you've set 51.",
        ),
        ErrorRow::new(
            "an unknown fraud report",
            "POST",
            &path,
            &[("fraud_details[user_report]", "maybe")],
            400,
        )
        .param("fraud_details[user_report]")
        .message("Invalid fraud_details[user_report]: must be one of fraudulent or safe"),
        ErrorRow::new(
            "an expansion that does not exist",
            "POST",
            &path,
            &[("expand[]", "owner")],
            400,
        )
        .error(
            invalid,
            Value::Null,
            json!("expand"),
            "This property cannot be expanded (owner).",
        ),
        // customer and transfer_group may only be set once: this row sets them, the next two
        // try to change them.
        ErrorRow::new(
            "setting customer and transfer_group the first time",
            "POST",
            &path,
            &[("customer", &first_customer), ("transfer_group", "g1")],
            200,
        ),
        ErrorRow::new(
            "changing the customer",
            "POST",
            &path,
            &[("customer", &second_customer)],
            400,
        )
        .param("customer"),
        ErrorRow::new(
            "changing the transfer group",
            "POST",
            &path,
            &[("transfer_group", "g2")],
            400,
        )
        .param("transfer_group"),
        ErrorRow::new("no API key", "GET", &path, &[], 401)
            .key(None)
            .message_starting("You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."),
        ErrorRow::new("an unknown API key", "GET", &path, &[], 401)
            .key(Some("sk_test_wrongwrongwrong9876"))
            .error(
                invalid,
                Value::Null,
                Value::Null,
                "Invalid API Key provided: sk_test_****9876",
            ),
        ErrorRow::new(
            "a write with a publishable key",
            "POST",
            &path,
            &[("description", "x")],
            403,
        )
        .key(Some(PUBLISHABLE_KEY))
        .message_starting(
            "This API call cannot be made with a publishable API key. Please use a secret API key.",
        ),
        // A publishable key reads nothing either (tests/hardening.rs tries every route).
        ErrorRow::new("a read with a publishable key", "GET", &path, &[], 403)
            .key(Some(PUBLISHABLE_KEY)),
        ErrorRow::new("an unknown URL", "POST", "/v1/foo", &[], 404).error(
            invalid,
            Value::Null,
            Value::Null,
            "Unrecognized request URL (POST: /v1/foo).",
        ),
        ErrorRow::new(
            "a method the charges list does not have",
            "DELETE",
            "/v1/charges",
            &[],
            404,
        )
        .message("Unrecognized request URL (DELETE: /v1/charges)."),
    ];

    let mut report = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let params: Vec<(&str, &str)> = row
            .params
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let reply = server
            .request(row.method, &row.path, &params, row.api_key, None)
            .await;
        let mismatches = row.mismatches(&reply);
        if !mismatches.is_empty() {
            report.push(format!(
                "row {} ({}: {} {}):\n    {}\n    reply: {} {}",
                index + 1,
                row.description,
                row.method,
                row.path,
                mismatches.join("\n    "),
                reply.status,
                reply.body
            ));
        }
    }
    assert!(
        report.is_empty(),
        "{} of {} error-table rows do not match:\n{}",
        report.len(),
        rows.len(),
        report.join("\n")
    );

    // Nothing refused above changed the charge: one creation, one update.
    let history = server.get(&format!("{path}/history")).await;
    assert_eq!(history.body["data"].as_array().unwrap().len(), 2);
}

async fn shapes_bodies_and_headers() {
    let (_directory, server) = server();
    let charge = server.create_charge(&[]).await;
    let path = format!("/v1/charges/{}", id(&charge));

    let reply = server
        .post(&path, &[("metadata", ""), ("metadata[k]", "v")])
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error()["param"], "metadata");
    let reply = server
        .post(
            "/v1/charges",
            &[
                ("amount", "abc"),
                ("currency", "usd"),
                ("source", "tok_visa"),
            ],
        )
        .await;
    assert_eq!(
        (reply.status, reply.error()["message"].clone()),
        (400, json!("Invalid integer: abc"))
    );
    let reply = server
        .post(
            "/v1/charges",
            &[("currency", "usd"), ("source", "tok_visa")],
        )
        .await;
    assert_eq!(reply.error()["message"], "Missing required param: amount.");

    let oversized = "a".repeat(1024 * 1024 + 1);
    let reply = server
        .send(
            server
                .client()
                .post(format!("{}{path}", server.base_url))
                .bearer_auth(SECRET_KEY)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("description={oversized}")),
        )
        .await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error()["type"], "invalid_request_error");

    // Request-Id on every answer, errors included; Stripe-Version echoed.
    let reply = server
        .send(
            server
                .client()
                .get(format!("{}/v1/nothing", server.base_url))
                .header("stripe-version", "2024-06-20"),
        )
        .await;
    assert_eq!(reply.status, 401);
    let request_id = reply.header("request-id").unwrap();
    assert!(request_id.starts_with("req_") && request_id.len() == 18);
    assert_eq!(reply.header("stripe-version"), Some("2024-06-20"));

    // Even failures axum itself detects come back in Stripe's shape.
    let reply = server.get("/v1/charges/%FF").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error()["type"], "invalid_request_error");
    assert!(!reply.error()["message"].as_str().unwrap().is_empty());

    // HTTP Basic with the key as user name works like Bearer.
    let reply = server
        .send(
            server
                .client()
                .get(format!("{}{path}", server.base_url))
                .basic_auth(SECRET_KEY, Some("")),
        )
        .await;
    assert_eq!(reply.status, 200);
}

async fn accounts_are_isolated_and_livemode_follows_the_key() {
    let (_directory, server) = server();
    let charge = server.create_charge(&[]).await;
    let path = format!("/v1/charges/{}", id(&charge));
    let reply = server
        .request("GET", &path, &[], Some(OTHER_SECRET_KEY), None)
        .await;
    assert_eq!(reply.status, 404);
    let reply = server
        .request(
            "POST",
            &path,
            &[("description", "x")],
            Some(OTHER_SECRET_KEY),
            None,
        )
        .await;
    assert_eq!(reply.status, 404);
    let list = server
        .request("GET", "/v1/charges", &[], Some(OTHER_SECRET_KEY), None)
        .await;
    assert_eq!(list.body["data"], json!([]));

    let live = server
        .request(
            "POST",
            "/v1/charges",
            &[
                ("amount", "500"),
                ("currency", "usd"),
                ("source", "tok_visa"),
            ],
            Some(LIVE_SECRET_KEY),
            None,
        )
        .await;
    assert_eq!(live.body["livemode"], true);
}

async fn capture_refund_and_their_errors() {
    let (_directory, server) = server();
    let charge = server.create_charge(&[("capture", "false")]).await;
    let charge_id = id(&charge);
    let capture = format!("/v1/charges/{charge_id}/capture");
    let reply = server.post(&capture, &[("amount", "1500")]).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["captured"], true);
    assert_eq!(reply.body["amount_captured"], 1500);
    let reply = server.post(&capture, &[]).await;
    assert_eq!(
        error_row(&reply),
        (
            400,
            json!("invalid_request_error"),
            json!("charge_already_captured"),
            Value::Null,
            format!("Charge {charge_id} has already been captured.")
        )
    );

    let refund = server
        .post("/v1/refunds", &[("charge", &charge_id), ("amount", "500")])
        .await;
    assert_eq!(refund.status, 200, "{:?}", refund.body);
    assert_eq!(refund.body["object"], "refund");
    assert_eq!(refund.body["amount"], 500);
    assert_eq!(refund.body["charge"], charge_id.as_str());
    let expanded = server
        .post(
            "/v1/refunds",
            &[
                ("charge", &charge_id),
                ("amount", "100"),
                ("expand[]", "charge"),
            ],
        )
        .await;
    assert_eq!(expanded.body["charge"]["amount_refunded"], 1100);

    let refunds = server
        .get(&format!("/v1/charges/{charge_id}/refunds"))
        .await;
    assert_eq!(refunds.body["object"], "list");
    assert_eq!(
        refunds.body["url"],
        format!("/v1/charges/{charge_id}/refunds")
    );
    let data = refunds.body["data"].as_array().unwrap();
    // The partial capture released 500 as a refund; then two refunds, newest first.
    assert_eq!(data.len(), 3);
    assert_eq!(data[0]["amount"], 100);
    let page = server
        .get(&format!("/v1/charges/{charge_id}/refunds?limit=1"))
        .await;
    assert_eq!(page.body["has_more"], true);
    let next = server
        .get(&format!(
            "/v1/charges/{charge_id}/refunds?limit=5&starting_after={}",
            id(&page.body["data"][0])
        ))
        .await;
    assert_eq!(next.body["data"].as_array().unwrap().len(), 2);

    let reply = server
        .post(
            "/v1/refunds",
            &[("charge", &charge_id), ("amount", "999999")],
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error()["code"], "amount_too_large");
    let reply = server.post("/v1/refunds", &[("charge", "ch_nope")]).await;
    assert_eq!(
        (reply.status, reply.error()["param"].clone()),
        (404, json!("charge"))
    );
    let reply = server.post("/v1/refunds", &[]).await;
    assert_eq!(reply.error()["message"], "Missing required param: charge.");

    let declined = server
        .post(
            "/v1/charges",
            &[
                ("amount", "2000"),
                ("currency", "usd"),
                ("source", "tok_chargeDeclined"),
            ],
        )
        .await;
    assert_eq!(declined.status, 402);
    assert_eq!(declined.error()["type"], "card_error");
    assert_eq!(declined.error()["code"], "card_declined");
    assert!(
        declined.error()["charge"]
            .as_str()
            .unwrap()
            .starts_with("ch_")
    );
}

async fn lists_page_and_filter() {
    let (_directory, server) = server();
    let customer = id(&server.post("/v1/customers", &[("name", "A")]).await.body);
    let mut ids = Vec::new();
    for index in 0..5 {
        let mut extra = vec![];
        if index % 2 == 0 {
            extra.push(("customer", customer.as_str()));
        }
        if index == 4 {
            extra.push(("transfer_group", "group_4"));
        }
        ids.push(id(&server.create_charge(&extra).await));
    }
    ids.reverse(); // newest first

    let listed = |reply: &common::server::Reply| -> Vec<String> {
        reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(id)
            .collect()
    };
    let all = server.get("/v1/charges").await;
    assert_eq!(all.body["object"], "list");
    assert_eq!(all.body["url"], "/v1/charges");
    assert_eq!(listed(&all), ids);
    assert_eq!(all.body["has_more"], false);

    let page = server.get("/v1/charges?limit=2").await;
    assert_eq!(listed(&page), ids[..2]);
    assert_eq!(page.body["has_more"], true);
    let next = server
        .get(&format!("/v1/charges?limit=2&starting_after={}", ids[1]))
        .await;
    assert_eq!(listed(&next), ids[2..4]);
    let previous = server
        .get(&format!("/v1/charges?limit=2&ending_before={}", ids[2]))
        .await;
    assert_eq!(listed(&previous), ids[..2]);

    let mine = server
        .get(&format!("/v1/charges?customer={customer}"))
        .await;
    assert_eq!(
        listed(&mine),
        vec![ids[0].clone(), ids[2].clone(), ids[4].clone()]
    );
    let grouped = server.get("/v1/charges?transfer_group=group_4").await;
    assert_eq!(listed(&grouped), vec![ids[0].clone()]);
    let created = all.body["data"][0]["created"].as_i64().unwrap();
    let future = server
        .get(&format!("/v1/charges?created[gt]={created}"))
        .await;
    assert_eq!(listed(&future), Vec::<String>::new());
    let since = server
        .get(&format!("/v1/charges?created%5Bgte%5D={}", created - 3600))
        .await;
    assert_eq!(listed(&since).len(), 5);
    let expanded = server
        .get("/v1/charges?limit=1&expand[]=data.customer")
        .await;
    assert_eq!(expanded.body["data"][0]["customer"]["name"], "A");

    let reply = server.get("/v1/charges?limit=101").await;
    assert_eq!(
        (reply.status, reply.error()["param"].clone()),
        (400, json!("limit"))
    );
    let reply = server.get("/v1/charges?colour=red").await;
    assert_eq!(reply.error()["code"], "parameter_unknown");

    let customers = server.get("/v1/customers").await;
    assert_eq!(customers.body["url"], "/v1/customers");
    assert_eq!(listed(&customers), vec![customer.clone()]);
    let fetched = server.get(&format!("/v1/customers/{customer}")).await;
    assert_eq!(fetched.body["name"], "A");
    let missing = server.get("/v1/customers/cus_nobody").await;
    assert_eq!(
        error_row(&missing),
        (
            404,
            json!("invalid_request_error"),
            json!("resource_missing"),
            json!("id"),
            "No such customer: 'cus_nobody'".into()
        )
    );
}

async fn events_carry_objects_previous_attributes_and_requests() {
    let (_directory, server) = server();
    let charge = server
        .create_charge(&[("metadata[kept]", "1"), ("description", "before")])
        .await;
    let charge_id = id(&charge);
    let update = server
        .post_idempotent(
            &format!("/v1/charges/{charge_id}"),
            &[("description", "after"), ("metadata[added]", "2")],
            "update-key-1",
        )
        .await;
    assert_eq!(update.status, 200);
    let update_request_id = update.header("request-id").unwrap().to_string();

    let events = server.get("/v1/events").await;
    assert_eq!(events.body["url"], "/v1/events");
    let data = events.body["data"].as_array().unwrap();
    let types: Vec<&str> = data
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["charge.updated", "charge.succeeded"]);
    let updated = &data[0];
    assert_eq!(updated["object"], "event");
    assert!(updated["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(updated["livemode"], false);
    assert_eq!(updated["pending_webhooks"], 0);
    assert_eq!(
        updated["request"],
        json!({"id": update_request_id, "idempotency_key": "update-key-1"})
    );
    assert_eq!(updated["data"]["object"]["description"], "after");
    assert_eq!(updated["data"]["object"]["id"], charge_id.as_str());
    assert_eq!(
        updated["data"]["previous_attributes"],
        json!({"description": "before", "metadata": {"added": null}})
    );
    assert!(data[1]["data"].get("previous_attributes").is_none());

    let one = server.get(&format!("/v1/events/{}", id(updated))).await;
    assert_eq!(&one.body, updated);
    let filtered = server.get("/v1/events?type=charge.succeeded").await;
    assert_eq!(filtered.body["data"].as_array().unwrap().len(), 1);
    let wildcard = server.get("/v1/events?type=charge.*&limit=1").await;
    assert_eq!(wildcard.body["has_more"], true);
    let next = server
        .get(&format!("/v1/events?starting_after={}", id(updated)))
        .await;
    assert_eq!(next.body["data"][0]["type"], "charge.succeeded");
    let missing = server.get("/v1/events/evt_nothing").await;
    assert_eq!(
        (missing.status, missing.error()["code"].clone()),
        (404, json!("resource_missing"))
    );
    let other = server
        .request(
            "GET",
            &format!("/v1/events/{}", id(updated)),
            &[],
            Some(OTHER_SECRET_KEY),
            None,
        )
        .await;
    assert_eq!(other.status, 404);
}

async fn audit_history_and_versions() {
    let (_directory, server) = server();
    let charge = server.create_charge(&[("description", "v1")]).await;
    let charge_id = id(&charge);
    let path = format!("/v1/charges/{charge_id}");
    server
        .post_idempotent(&path, &[("description", "v2")], "history-key")
        .await;
    server.post(&path, &[("metadata[step]", "3")]).await;

    let history = server.get(&format!("{path}/history")).await;
    assert_eq!(history.status, 200);
    let entries = history.body["data"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    let second = &entries[1];
    assert_eq!(second["object"], "charge_history_entry");
    assert_eq!(second["version"], 2);
    assert_eq!(second["type"], "charge.updated");
    assert_eq!(second["actor"], "sk_test_****0001");
    assert_eq!(second["request"]["idempotency_key"], "history-key");
    assert!(
        second["request"]["id"]
            .as_str()
            .unwrap()
            .starts_with("req_")
    );
    assert!(second["created"].as_i64().unwrap() > 0);
    assert_eq!(
        second["changes"],
        json!([{"field": "description", "previous": "v1", "current": "v2"}])
    );
    assert_eq!(
        entries[2]["changes"],
        json!([{"field": "metadata[step]", "previous": null, "current": "3"}])
    );

    let at_one = server.get(&format!("{path}/history/1")).await;
    assert_eq!(at_one.body["description"], "v1");
    assert_eq!(at_one.body["metadata"], json!({}));
    let at_two = server.get(&format!("{path}/history/2")).await;
    assert_eq!(at_two.body["description"], "v2");
    let beyond = server.get(&format!("{path}/history/9")).await;
    assert_eq!(
        (beyond.status, beyond.error()["code"].clone()),
        (404, json!("resource_missing"))
    );
    let missing = server.get("/v1/charges/ch_missing/history").await;
    assert_eq!(missing.status, 404);
}

async fn idempotency_keys_replay_refuse_and_never_double_apply() {
    let (_directory, server) = server();
    let params = [
        ("amount", "2000"),
        ("currency", "usd"),
        ("source", "tok_visa"),
    ];
    let first = server
        .post_idempotent("/v1/charges", &params, "create-1")
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = server
        .post_idempotent("/v1/charges", &params, "create-1")
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);

    let other = server
        .post_idempotent(
            "/v1/charges",
            &[
                ("amount", "2001"),
                ("currency", "usd"),
                ("source", "tok_visa"),
            ],
            "create-1",
        )
        .await;
    assert_eq!(
        error_row(&other),
        (400, json!("idempotency_error"), Value::Null, Value::Null, "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than 'create-1' if you meant to execute a different request.".into())
    );
    let other_path = server
        .post_idempotent(&format!("/v1/charges/{}", id(&first.body)), &[], "create-1")
        .await;
    assert_eq!(other_path.status, 400);
    assert_eq!(other_path.error()["type"], "idempotency_error");
    // Keys are per account: another account may use the same key for its own request.
    let elsewhere = server
        .request(
            "POST",
            "/v1/charges",
            &params,
            Some(OTHER_SECRET_KEY),
            Some("create-1"),
        )
        .await;
    assert_eq!(elsewhere.status, 200);
    assert_ne!(id(&elsewhere.body), id(&first.body));

    // A request that fails validation is not stored: the key is still free.
    let invalid = server
        .post_idempotent(
            "/v1/charges",
            &[("amount", "2000"), ("currency", "usd")],
            "create-2",
        )
        .await;
    assert_eq!(invalid.status, 400);
    let valid = server
        .post_idempotent("/v1/charges", &params, "create-2")
        .await;
    assert_eq!(valid.status, 200);
    assert_eq!(valid.header("idempotent-replayed"), None);

    // Twenty concurrent sends of one key: each gets the charge or a 409 to retry, and only one
    // charge exists.
    let server = std::sync::Arc::new(server);
    let mut sends = Vec::new();
    for _ in 0..20 {
        let server = server.clone();
        sends.push(tokio::spawn(async move {
            server
                .post_idempotent(
                    "/v1/charges",
                    &[
                        ("amount", "2000"),
                        ("currency", "usd"),
                        ("source", "tok_visa"),
                    ],
                    "create-3",
                )
                .await
        }));
    }
    let mut replies = Vec::new();
    for send in sends {
        replies.push(send.await.expect("the request task finishes"));
    }
    let mut created = std::collections::HashSet::new();
    for reply in &replies {
        match reply.status {
            200 => {
                created.insert(id(&reply.body));
            }
            409 => {
                assert_eq!(reply.error()["code"], "idempotency_key_in_use");
                assert_eq!(reply.header("stripe-should-retry"), Some("true"));
            }
            other => panic!("unexpected {other}: {:?}", reply.body),
        }
    }
    assert_eq!(created.len(), 1);
    let listed = server.get("/v1/charges?limit=100").await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 3);
}

async fn concurrent_updates_of_one_charge_are_all_kept() {
    let (_directory, server) = server();
    let server = std::sync::Arc::new(server);
    let charge_id = id(&server.create_charge(&[]).await);
    let mut tasks = Vec::new();
    for index in 0..32 {
        let server = server.clone();
        let path = format!("/v1/charges/{charge_id}");
        tasks.push(tokio::spawn(async move {
            let key = format!("metadata[writer_{index}]");
            server.post(&path, &[(key.as_str(), "done")]).await.status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let charge = server.get(&format!("/v1/charges/{charge_id}")).await;
    assert_eq!(charge.body["metadata"].as_object().unwrap().len(), 32);
    let history = server
        .get(&format!("/v1/charges/{charge_id}/history?limit=100"))
        .await;
    assert_eq!(history.body["data"].as_array().unwrap().len(), 33);
    assert_eq!(history.body["has_more"], false);
}

async fn data_and_idempotency_survive_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let mut server = TestServer::start(&data);
    let params = [
        ("amount", "2000"),
        ("currency", "usd"),
        ("source", "tok_visa"),
    ];
    let created = server
        .post_idempotent("/v1/charges", &params, "restart-key")
        .await;
    let charge_id = id(&created.body);
    server
        .post(
            &format!("/v1/charges/{charge_id}"),
            &[("metadata[shipped]", "yes")],
        )
        .await;
    assert!(server.stop(), "SIGTERM stops the server cleanly");

    let server = TestServer::start(&data);
    let charge = server.get(&format!("/v1/charges/{charge_id}")).await;
    assert_eq!(charge.status, 200);
    assert_eq!(charge.body["metadata"], json!({"shipped": "yes"}));
    let replay = server
        .post_idempotent("/v1/charges", &params, "restart-key")
        .await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(id(&replay.body), charge_id);
    assert_eq!(
        server.get("/v1/events").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

async fn a_fresh_data_directory_gets_a_generated_key_kept_across_restarts() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let mut server = TestServer::start_with_keys(&data, &[]);
    let line = server
        .next_output_line()
        .expect("the generated key is printed");
    let key = line
        .split_whitespace()
        .find(|word| word.starts_with("sk_test_"))
        .unwrap_or_else(|| panic!("no key in '{line}'"))
        .to_string();
    let reply = server
        .request("GET", "/v1/charges", &[], Some(&key), None)
        .await;
    assert_eq!(reply.status, 200);
    assert!(server.stop());
    let stored = std::fs::read_to_string(data.join("api-keys.json")).unwrap();
    assert!(!stored.contains(&key), "only the key's digest is stored");

    let server = TestServer::start_with_keys(&data, &[]);
    let line = server
        .next_output_line()
        .expect("the accepted key is named");
    assert!(
        line.contains(&format!("sk_test_****{}", &key[key.len() - 4..])),
        "{line}"
    );
    assert!(!line.contains(&key));
    let reply = server
        .request("GET", "/v1/charges", &[], Some(&key), None)
        .await;
    assert_eq!(reply.status, 200);
}

on_both_backends!(
    create_retrieve_and_update_every_parameter,
    empty_values_unset,
    every_row_of_the_error_table,
    shapes_bodies_and_headers,
    accounts_are_isolated_and_livemode_follows_the_key,
    capture_refund_and_their_errors,
    lists_page_and_filter,
    events_carry_objects_previous_attributes_and_requests,
    audit_history_and_versions,
    idempotency_keys_replay_refuse_and_never_double_apply,
    concurrent_updates_of_one_charge_are_all_kept,
    data_and_idempotency_survive_a_restart,
    a_fresh_data_directory_gets_a_generated_key_kept_across_restarts,
);

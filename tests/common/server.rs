//! A real `chargeledger serve` process for tests, and a small form-encoding HTTP client for it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

pub const SECRET_KEY: &str = "sk_test_chargeledgerTestKey0001";
pub const PUBLISHABLE_KEY: &str = "pk_test_chargeledgerTestKey0001";
pub const OTHER_SECRET_KEY: &str = "sk_test_chargeledgerTestKey0002";
pub const LIVE_SECRET_KEY: &str = "sk_live_chargeledgerTestKey0003";
pub const OMISE_SECRET_KEY: &str = "skey_test_5chargeledgertestkey01";
pub const OMISE_PUBLIC_KEY: &str = "pkey_test_5chargeledgertestkey01";
pub const OTHER_OMISE_SECRET_KEY: &str = "skey_test_5chargeledgertestkey02";

/// A request body as one of Omise's clients would send it.
pub enum OmiseBody<'a> {
    None,
    /// omise-python, omise-go, omise-node: `application/json`.
    Json(Value),
    /// omise-ruby, omise-php, curl: bracket-nested `application/x-www-form-urlencoded`.
    Form(&'a [(&'a str, &'a str)]),
}

/// A server started by the test, stopped with SIGTERM when dropped.
pub struct TestServer {
    child: Option<Child>,
    pub base_url: String,
    /// The first line the server printed: where it listens and what it serves.
    pub startup_line: String,
    pub data_directory: PathBuf,
    output: Mutex<mpsc::Receiver<String>>,
    client: reqwest::Client,
}

/// An HTTP answer: status, headers and the JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The `error` object of a Stripe error body.
    pub fn error(&self) -> &Value {
        &self.body["error"]
    }
}

impl TestServer {
    /// Serve `data_directory` with the test keys.
    pub fn start(data_directory: &Path) -> Self {
        TestServer::start_with_keys(
            data_directory,
            &[
                SECRET_KEY,
                OTHER_SECRET_KEY,
                LIVE_SECRET_KEY,
                OMISE_SECRET_KEY,
                OTHER_OMISE_SECRET_KEY,
            ],
        )
    }

    /// Serve with exactly these secret keys (none: the server uses or generates its own).
    pub fn start_with_keys(data_directory: &Path, keys: &[&str]) -> Self {
        TestServer::start_with_args(data_directory, keys, &[])
    }

    /// Serve with these keys and further `serve` arguments (`--idle-timeout-secs 1`, say).
    pub fn start_with_args(data_directory: &Path, keys: &[&str], extra_args: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chargeledger"));
        command
            .arg("serve")
            .arg("--addr")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(data_directory)
            .env_remove("CHARGELEDGER_API_KEYS")
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .args(extra_args);
        for key in keys {
            command.arg("--api-key").arg(key);
        }
        if super::backend::current() == super::backend::Backend::Postgres {
            command
                .arg("--database-url")
                .arg(super::postgres::database_url_for(data_directory));
        }
        let mut child = command.spawn().expect("the server starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        // A thread drains stdout, so the server never blocks on a full pipe, and hands the
        // lines to the test.
        let (sender, output) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let first = output
            .recv_timeout(Duration::from_secs(30))
            .expect("the server prints where it listens");
        let address = first
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in '{first}'"))
            .to_string();
        TestServer {
            child: Some(child),
            base_url: format!("http://{address}"),
            startup_line: first.clone(),
            data_directory: data_directory.to_path_buf(),
            output: Mutex::new(output),
            client: reqwest::Client::new(),
        }
    }

    /// The next line the server printed after its address, if one comes within five seconds.
    pub fn next_output_line(&self) -> Option<String> {
        self.output
            .lock()
            .ok()?
            .recv_timeout(Duration::from_secs(5))
            .ok()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Send SIGKILL and wait for the process to be gone: a crash, with no chance to flush or
    /// close anything. The data directory is free to reopen once this returns.
    pub fn kill_hard(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // `Child::kill` sends SIGKILL on Unix.
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Send SIGTERM and wait; returns whether the server exited successfully.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().map(|status| status.success()).unwrap_or(false)
    }

    pub async fn post(&self, path: &str, params: &[(&str, &str)]) -> Reply {
        self.request("POST", path, params, Some(SECRET_KEY), None)
            .await
    }

    pub async fn post_idempotent(&self, path: &str, params: &[(&str, &str)], key: &str) -> Reply {
        self.request("POST", path, params, Some(SECRET_KEY), Some(key))
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], Some(SECRET_KEY), None).await
    }

    /// Any request: parameters go in the body of a POST and the query of a GET.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        api_key: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Reply {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut url = format!("{}{path}", self.base_url);
        let mut request = if method == reqwest::Method::GET {
            if !encoded.is_empty() {
                url.push(if path.contains('?') { '&' } else { '?' });
                url.push_str(&encoded);
            }
            self.client.request(method, url)
        } else {
            self.client
                .request(method, url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encoded)
        };
        if let Some(key) = api_key {
            request = request.bearer_auth(key);
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        self.send(request).await
    }

    /// Send a request built by the test itself.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("a JSON body, got {status}: {text}"));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// An Omise request with HTTP Basic auth (the key as user name, no password), as every
    /// Omise client sends it, and `Omise-Version: 2019-05-29` as omise-go sends it.
    pub async fn omise(&self, method: &str, path: &str, body: OmiseBody<'_>, key: &str) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let request = self
            .client
            .request(method, format!("{}{path}", self.base_url))
            .basic_auth(key, Some(""))
            .header("omise-version", "2019-05-29");
        let request = match body {
            OmiseBody::None => request,
            OmiseBody::Json(value) => request
                .header("content-type", "application/json")
                .body(value.to_string()),
            OmiseBody::Form(params) => request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(
                    form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(params)
                        .finish(),
                ),
        };
        self.send(request).await
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// A vault token for an Omise test card `number`, made with the public key.
    pub async fn omise_token(&self, number: &str) -> Value {
        let token = self
            .omise(
                "POST",
                "/tokens",
                OmiseBody::Json(serde_json::json!({"card": {
                    "name": "Somchai Prasert", "number": number, "expiration_month": 10,
                    "expiration_year": 2099, "security_code": "123"
                }})),
                OMISE_PUBLIC_KEY,
            )
            .await;
        assert_eq!(token.status, 200, "{}", token.body);
        token.body
    }

    /// A test charge: $20 on `tok_visa`, captured unless `capture` is "false".
    pub async fn create_charge(&self, extra: &[(&str, &str)]) -> Value {
        let mut params = vec![
            ("amount", "2000"),
            ("currency", "usd"),
            ("source", "tok_visa"),
        ];
        params.extend_from_slice(extra);
        let reply = self.post("/v1/charges", &params).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.body
    }
}

/// Run `chargeledger verify --data <directory>`; returns whether it exited 0, and its output.
pub fn verify_data_directory(data_directory: &Path) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chargeledger"));
    command
        .arg("verify")
        .arg("--data")
        .arg(data_directory)
        .env_remove("DATABASE_URL");
    if super::backend::current() == super::backend::Backend::Postgres {
        command
            .arg("--database-url")
            .arg(super::postgres::database_url_for(data_directory));
    }
    let output = command.output().expect("chargeledger verify runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The resident memory of a process in kB, from `/proc/<pid>/status` (`VmRSS`).
pub fn resident_kilobytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

//! A webhook receiver in the test process: records every request it gets and answers 500 to the first ones it is told to refuse.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub raw: Bytes,
    pub body: Value,
    /// The answer it was given.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

#[derive(Default)]
struct Log {
    requests: Vec<Received>,
    /// Answer 500 to this many more requests.
    refuse_next: usize,
    /// Wait this long before answering.
    answer_after: Duration,
}

/// A receiver listening on 127.0.0.1; stops when dropped.
pub struct Receiver {
    pub url: String,
    log: Arc<Mutex<Log>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listen on a free port; the first `refuse_first` requests are answered 500.
    pub async fn start(refuse_first: usize) -> Self {
        Receiver::start_at("127.0.0.1:0", refuse_first).await
    }

    pub async fn start_at(address: &str, refuse_first: usize) -> Self {
        let log = Arc::new(Mutex::new(Log {
            requests: Vec::new(),
            refuse_next: refuse_first,
            answer_after: Duration::ZERO,
        }));
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .expect("the receiver binds");
        let url = format!("http://{}/hook", listener.local_addr().expect("an address"));
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(log.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, log, task }
    }

    /// Answer 500 to the next `count` requests.
    pub fn refuse_next(&self, count: usize) {
        self.log.lock().expect("the log").refuse_next = count;
    }

    /// Wait this long before answering each request (it is recorded on arrival).
    pub fn answer_after(&self, wait: Duration) {
        self.log.lock().expect("the log").answer_after = wait;
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().expect("the log").requests.clone()
    }

    /// The requests answered 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|request| request.status == 200)
            .collect()
    }

    /// Wait until `count` requests were accepted (or `within` passes); the accepted ones.
    pub async fn wait_for_accepted(&self, count: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let accepted = self.accepted();
            if accepted.len() >= count || Instant::now() > deadline {
                return accepted;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(log): State<Arc<Mutex<Log>>>,
    headers: HeaderMap,
    raw: Bytes,
) -> (StatusCode, &'static str) {
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let (status, wait) = {
        let mut log = log.lock().expect("the log");
        let status = if log.refuse_next > 0 {
            log.refuse_next -= 1;
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        log.requests.push(Received {
            headers,
            raw,
            body,
            status: status.as_u16(),
        });
        (status, log.answer_after)
    };
    tokio::time::sleep(wait).await;
    (
        status,
        if status == StatusCode::OK {
            "received"
        } else {
            "refused on purpose"
        },
    )
}

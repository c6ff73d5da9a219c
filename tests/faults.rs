//! What the ledger promises when storage fails: injected commit, flush and fdatasync failures (and gates that hold the writer at a step) prove that nothing un-synced is acknowledged or read, and that a restart recovers every acknowledged write.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chargeledger::ledger::Failure;
use chargeledger::server::{BoundServer, ServeOptions};
use chargeledger::store::faults::{FaultInjector, FaultPoint};
use chargeledger::{
    ChargeState, CreateCharge, Ledger, LedgerError, ListCharges, RequestMeta, StoreError,
    UpdateCharge,
};
use common::server::{OMISE_PUBLIC_KEY, OMISE_SECRET_KEY, SECRET_KEY};
use common::{ACCOUNT, create_test_charge};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Long enough for any healthy writer to reach a gate; only a missing step waits this long.
const GATE_WAIT: Duration = Duration::from_secs(10);

/// The number the next batch's commit, flush and fdatasync calls will have. Aiming at it (not
/// at "the next call") keeps a test's fault on its own batch even if an earlier batch were still
/// being synced, which is exactly what happens if acknowledgements ever run ahead of syncs.
fn next_batch(faults: &FaultInjector) -> u64 {
    faults.calls(FaultPoint::Commit) + 1
}

async fn open_with(directory: &Path, faults: &FaultInjector) -> Ledger {
    Ledger::open_with_faults(directory, faults.clone())
        .await
        .expect("the ledger opens")
}

async fn set_metadata(
    ledger: &Ledger,
    charge_id: &str,
    key: &str,
    value: &str,
) -> Result<ChargeState, LedgerError> {
    ledger
        .update_charge(
            ACCOUNT,
            charge_id,
            UpdateCharge::new().metadata_set(key, value),
            RequestMeta::library(),
        )
        .await
}

fn is_poisoned(result: &Result<impl std::fmt::Debug, LedgerError>) -> bool {
    matches!(
        result,
        Err(LedgerError::Failed(Failure::Store(
            StoreError::Poisoned { .. }
        )))
    )
}

/// The documented recovery: restart (a fresh open of the directory), then `verify`.
async fn reopen_and_verify(directory: &Path) -> Ledger {
    let ledger = Ledger::open(directory)
        .await
        .expect("after a restart the store opens");
    let report = ledger.verify(&|_, _| {}).await.expect("verify runs");
    assert!(
        report.is_sound(),
        "verify after the fault: {:?}",
        report.first_fault
    );
    ledger
}

/// A failed flush or fdatasync: the append fails, every later write and read is refused with
/// the "restart, then verify" error, and after a restart every acknowledged write is there.
async fn durability_failure_poisons_until_restart(point: FaultPoint) {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("data");
    let faults = FaultInjector::new();
    let ledger = open_with(&path, &faults).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;
    set_metadata(&ledger, &charge.id, "acknowledged", "yes")
        .await
        .expect("a healthy update is acknowledged");

    faults.fail_call(point, next_batch(&faults));
    let failed = set_metadata(&ledger, &charge.id, "unsynced", "maybe").await;
    assert!(
        is_poisoned(&failed),
        "the append whose {point:?} failed must fail: {failed:?}"
    );
    let message = failed.unwrap_err().to_string();
    assert!(
        message.contains("Restart") && message.contains("verify"),
        "the error says what to do: {message}"
    );
    assert_eq!(faults.injected(point), 1);

    // sled holds the failed batch in memory; serving it would show what a crash may take back.
    let read = ledger.get_charge(ACCOUNT, &charge.id).await;
    assert!(
        is_poisoned(&read),
        "a read after a failed {point:?} must be refused, got {read:?}"
    );
    let history = ledger.history(ACCOUNT, &charge.id).await;
    assert!(
        is_poisoned(&history),
        "history must be refused too: {history:?}"
    );

    let syncs_before = faults.calls(FaultPoint::Fdatasync);
    let later_update = set_metadata(&ledger, &charge.id, "later", "no").await;
    assert!(
        is_poisoned(&later_update),
        "later writes are refused: {later_update:?}"
    );
    let later_create = ledger
        .create_charge(
            ACCOUNT,
            CreateCharge::new(2000, "usd").source("tok_visa"),
            RequestMeta::library(),
        )
        .await;
    assert!(
        is_poisoned(&later_create),
        "later creations are refused: {later_create:?}"
    );
    assert_eq!(
        faults.calls(FaultPoint::Fdatasync),
        syncs_before,
        "a poisoned store must not try to sync again: a retried fsync can report success for lost pages"
    );
    let _ = ledger.close().await;
    drop(ledger);

    let ledger = reopen_and_verify(&path).await;
    let recovered = ledger
        .get_charge(ACCOUNT, &charge.id)
        .await
        .expect("the acknowledged charge is there");
    assert_eq!(
        recovered
            .metadata
            .get("acknowledged")
            .and_then(Value::as_str),
        Some("yes")
    );
    assert!(
        !recovered.metadata.contains_key("later"),
        "a refused write must never appear"
    );
    println!(
        "faults: {point:?} failure injected once ({}); the unacknowledged update {} the restart",
        faults.summary(),
        if recovered.metadata.contains_key("unsynced") {
            "survived"
        } else {
            "did not survive"
        }
    );
}

#[tokio::test]
async fn failed_fdatasync_poisons_the_store_until_restart() {
    durability_failure_poisons_until_restart(FaultPoint::Fdatasync).await;
}

#[tokio::test]
async fn failed_flush_poisons_the_store_until_restart() {
    durability_failure_poisons_until_restart(FaultPoint::Flush).await;
}

#[tokio::test]
async fn failed_commit_refuses_the_batch_and_keeps_serving() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("data");
    let faults = FaultInjector::new();
    let ledger = open_with(&path, &faults).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;

    faults.fail_call(FaultPoint::Commit, next_batch(&faults));
    let failed = set_metadata(&ledger, &charge.id, "refused", "yes").await;
    assert!(
        matches!(
            failed,
            Err(LedgerError::Failed(Failure::Store(StoreError::Io(_))))
        ),
        "a failed transaction refuses the batch without poisoning: {failed:?}"
    );
    assert_eq!(faults.injected(FaultPoint::Commit), 1);
    let after_failure = ledger
        .get_charge(ACCOUNT, &charge.id)
        .await
        .expect("reads still work");
    assert!(
        !after_failure.metadata.contains_key("refused"),
        "nothing of the batch was written"
    );
    assert_eq!(
        ledger
            .history(ACCOUNT, &charge.id)
            .await
            .expect("history")
            .len(),
        1
    );

    let accepted = set_metadata(&ledger, &charge.id, "accepted", "yes")
        .await
        .expect("the next write is accepted");
    assert_eq!(
        accepted.metadata.get("accepted").and_then(Value::as_str),
        Some("yes")
    );
    let events = ledger.history(ACCOUNT, &charge.id).await.expect("history");
    assert_eq!(
        events.len(),
        2,
        "creation and the accepted update, nothing of the refused one"
    );
    let report = ledger.verify(&|_, _| {}).await.expect("verify runs");
    assert!(report.is_sound(), "{:?}", report.first_fault);
    ledger.close().await.expect("closes cleanly");
    drop(ledger);

    let ledger = reopen_and_verify(&path).await;
    let reopened = ledger
        .get_charge(ACCOUNT, &charge.id)
        .await
        .expect("charge");
    assert_eq!(
        reopened.metadata.get("accepted").and_then(Value::as_str),
        Some("yes")
    );
    assert!(!reopened.metadata.contains_key("refused"));
    println!(
        "faults: commit failure injected once ({})",
        faults.summary()
    );
}

/// Holds the writer at fdatasync and starts an update; returns once the writer is waiting there.
///
/// Why this proves "fdatasync, then acknowledge": the writer runs the steps of a batch in order
/// on one thread. If the reply were sent before the fdatasync, it would be in the reply channel
/// before the gate announces itself, so the `biased` select below, which polls the update first
/// every time it wakes, would see the update complete and fail the test; if the fdatasync were
/// missing from the write path, the gate would never be entered and the bounded wait fails.
/// The gate is aimed at this update's own batch (`next_batch`): were replies to run ahead of
/// syncs, the previous batch's fdatasync could still be pending, and a gate on "the next
/// fdatasync" would catch that one instead and let this update through unobserved. (Each of
/// these orderings was checked by breaking the writer that way: the tests fail.)
macro_rules! hold_update_at_fdatasync {
    ($gate:ident, $update:ident) => {
        tokio::pin!($update);
        let entered = tokio::select! {
            biased;
            early = &mut $update => panic!("the update completed before its fdatasync: {early:?}"),
            entered = $gate.entered(GATE_WAIT) => entered,
        };
        assert!(
            entered,
            "the update never reached fdatasync: the sync is missing from the write path"
        );
    };
}

#[tokio::test]
async fn an_append_is_acknowledged_only_after_its_fdatasync() {
    let directory = tempfile::tempdir().expect("temp dir");
    let faults = FaultInjector::new();
    let ledger = open_with(&directory.path().join("data"), &faults).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;

    let mut gate = faults.close_gate_at(FaultPoint::Fdatasync, next_batch(&faults));
    let update = set_metadata(&ledger, &charge.id, "order", "synced-first");
    hold_update_at_fdatasync!(gate, update);
    let before_release = tokio::time::timeout(Duration::ZERO, &mut update).await;
    assert!(
        before_release.is_err(),
        "acknowledged while its fdatasync had not run: {before_release:?}"
    );

    gate.release();
    let updated = update.await.expect("the update completes once synced");
    assert_eq!(
        updated.metadata.get("order").and_then(Value::as_str),
        Some("synced-first")
    );
}

#[tokio::test]
async fn a_read_waits_for_the_sync_of_the_state_it_would_show() {
    let directory = tempfile::tempdir().expect("temp dir");
    let faults = FaultInjector::new();
    let ledger = open_with(&directory.path().join("data"), &faults).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;

    let mut gate = faults.close_gate_at(FaultPoint::Fdatasync, next_batch(&faults));
    let update = set_metadata(&ledger, &charge.id, "seen", "after-sync");
    hold_update_at_fdatasync!(gate, update);
    // The batch is committed in sled (the writer is past the transaction) but not synced.
    let read = ledger.get_charge(ACCOUNT, &charge.id);
    tokio::pin!(read);
    let early = tokio::time::timeout(Duration::ZERO, &mut read).await;
    assert!(
        early.is_err(),
        "a read showed a state before it was durable: {early:?}"
    );

    gate.release();
    update.await.expect("the update completes");
    let read = read.await.expect("the read completes after the sync");
    assert_eq!(
        read.metadata.get("seen").and_then(Value::as_str),
        Some("after-sync")
    );
}

#[tokio::test]
async fn a_read_during_a_sync_that_fails_never_shows_the_lost_state() {
    let directory = tempfile::tempdir().expect("temp dir");
    let faults = FaultInjector::new();
    let ledger = open_with(&directory.path().join("data"), &faults).await;
    let charge = create_test_charge(&ledger, ACCOUNT).await;
    let listed_before = ledger
        .list_charges(ACCOUNT, &ListCharges::default())
        .await
        .expect("list");
    assert_eq!(listed_before.data.len(), 1);

    let mut gate = faults.close_gate_at(FaultPoint::Fdatasync, next_batch(&faults));
    faults.fail_call(FaultPoint::Fdatasync, next_batch(&faults));
    let update = set_metadata(&ledger, &charge.id, "lost", "yes");
    hold_update_at_fdatasync!(gate, update);
    let read = ledger.get_charge(ACCOUNT, &charge.id);
    let query = ListCharges::default();
    let list = ledger.list_charges(ACCOUNT, &query);
    tokio::pin!(read, list);
    assert!(
        tokio::time::timeout(Duration::ZERO, &mut read)
            .await
            .is_err(),
        "the read must wait for the sync"
    );
    assert!(
        tokio::time::timeout(Duration::ZERO, &mut list)
            .await
            .is_err(),
        "the list must wait for the sync"
    );

    gate.release();
    assert!(is_poisoned(&update.await), "the update's sync failed");
    let read = read.await;
    assert!(
        is_poisoned(&read),
        "the waiting read must fail rather than show the lost update: {read:?}"
    );
    assert!(is_poisoned(&list.await), "the waiting list must fail too");
}

// ---- Over HTTP: an in-process server on a ledger with injected faults ----

struct InProcessServer {
    base_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl InProcessServer {
    async fn start(directory: &Path, ledger: Ledger) -> Self {
        let address: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let options = ServeOptions {
            api_keys: vec![SECRET_KEY.to_string(), OMISE_SECRET_KEY.to_string()],
            idempotency_retention: Duration::from_secs(24 * 3600),
            ..ServeOptions::new(address, directory)
        };
        let server = BoundServer::bind_with_ledger(options, ledger)
            .await
            .expect("the server binds");
        let base_url = format!("http://{}", server.local_address().expect("bound"));
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // A poisoned store cannot close cleanly; the test checks recovery, not this result.
            let _ = server
                .run(async {
                    let _ = stop.await;
                })
                .await;
        });
        InProcessServer {
            base_url,
            shutdown: Some(shutdown),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        tokio::time::timeout(GATE_WAIT, &mut self.task)
            .await
            .expect("the server stops")
            .expect("no panic");
    }
}

/// Status, `Stripe-Should-Retry` and the JSON body of a request.
async fn send(request: reqwest::RequestBuilder) -> (u16, Option<String>, Value) {
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("stripe-should-retry")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON from {status}: {text}"));
    (status, retry, body)
}

fn stripe(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    form: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    client
        .request(method, url)
        .bearer_auth(SECRET_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        )
}

fn omise(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: &str,
    body: Value,
) -> reqwest::RequestBuilder {
    let request = client
        .request(method, url)
        .basic_auth(key, Some(""))
        .header("omise-version", "2019-05-29");
    if body.is_null() {
        return request;
    }
    request
        .header("content-type", "application/json")
        .body(body.to_string())
}

#[tokio::test]
async fn over_http_a_failed_fdatasync_is_a_server_error_in_each_dialect_and_a_restart_recovers() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("data");
    let faults = FaultInjector::new();
    let server = InProcessServer::start(&path, open_with(&path, &faults).await).await;
    let client = reqwest::Client::new();
    let base = server.base_url.clone();
    let post = reqwest::Method::POST;

    let (status, _, stripe_charge) = send(stripe(
        &client,
        post.clone(),
        format!("{base}/v1/charges"),
        &[
            ("amount", "2000"),
            ("currency", "usd"),
            ("source", "tok_visa"),
            ("metadata[acknowledged]", "yes"),
        ],
    ))
    .await;
    assert_eq!(status, 200, "{stripe_charge}");
    let stripe_id = stripe_charge["id"].as_str().expect("an id").to_string();
    let card = json!({"card": {"name": "Somchai Prasert", "number": "4242424242424242",
        "expiration_month": 10, "expiration_year": 2099, "security_code": "123"}});
    let (status, _, token) = send(omise(
        &client,
        post.clone(),
        format!("{base}/tokens"),
        OMISE_PUBLIC_KEY,
        card,
    ))
    .await;
    assert_eq!(status, 200, "{token}");
    let (status, _, omise_charge) = send(omise(&client, post.clone(), format!("{base}/charges"), OMISE_SECRET_KEY,
        json!({"amount": 100000, "currency": "thb", "card": token["id"], "metadata": {"acknowledged": "yes"}}))).await;
    assert_eq!(status, 200, "{omise_charge}");
    let omise_id = omise_charge["id"].as_str().expect("an id").to_string();

    faults.fail_call(FaultPoint::Fdatasync, next_batch(&faults));
    let (status, should_retry, body) = send(stripe(
        &client,
        post.clone(),
        format!("{base}/v1/charges/{stripe_id}"),
        &[("metadata[unsynced]", "maybe")],
    ))
    .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["type"], "api_error", "{body}");
    assert!(
        !body.to_string().contains("fdatasync"),
        "the cause goes to the log, not the client: {body}"
    );
    // Whether the write survived is unknown until a restart, and nothing succeeds before it:
    // the SDKs must not retry into a stopped store, and the client is told to restart.
    let should_retry = should_retry.expect("a Stripe-Should-Retry header on the store failure");
    assert_eq!(should_retry, "false");
    assert_eq!(
        body["error"]["message"],
        chargeledger::server::stripe::error::STORE_STOPPED_MESSAGE
    );
    assert_eq!(faults.injected(FaultPoint::Fdatasync), 1);

    let (status, _, body) = send(omise(
        &client,
        reqwest::Method::PATCH,
        format!("{base}/charges/{omise_id}"),
        OMISE_SECRET_KEY,
        json!({"metadata": {"unsynced": "maybe"}}),
    ))
    .await;
    assert!(
        (500..600).contains(&status),
        "the poisoned store is a server error: {status} {body}"
    );
    assert_eq!(body["object"], "error", "{body}");
    assert_eq!(
        body["message"],
        chargeledger::server::stripe::error::STORE_STOPPED_MESSAGE,
        "the update may survive the restart, so the client is not told it was not applied"
    );
    for field in ["location", "code", "message"] {
        assert!(
            body[field].as_str().is_some_and(|text| !text.is_empty()),
            "Omise errors have {field}: {body}"
        );
    }
    let (status, _, body) = send(
        client
            .get(format!("{base}/v1/charges/{stripe_id}"))
            .bearer_auth(SECRET_KEY),
    )
    .await;
    assert_eq!(
        status, 500,
        "a read from the poisoned store is refused, not served from unsynced memory: {body}"
    );
    server.stop().await;

    let server = InProcessServer::start(&path, reopen_and_verify(&path).await).await;
    let base = server.base_url.clone();
    let (status, _, recovered) = send(
        client
            .get(format!("{base}/v1/charges/{stripe_id}"))
            .bearer_auth(SECRET_KEY),
    )
    .await;
    assert_eq!(status, 200, "{recovered}");
    assert_eq!(recovered["metadata"]["acknowledged"], "yes");
    let (status, _, recovered) = send(omise(
        &client,
        reqwest::Method::GET,
        format!("{base}/charges/{omise_id}"),
        OMISE_SECRET_KEY,
        Value::Null,
    ))
    .await;
    assert_eq!(status, 200, "{recovered}");
    assert_eq!(recovered["metadata"]["acknowledged"], "yes");
    server.stop().await;
    println!(
        "faults over HTTP: Stripe-Should-Retry: {should_retry} on the failed sync; {}",
        faults.summary()
    );
}

/// Under overload the server answers 429 in each dialect's shape at once, rather than queueing
/// without bound; the refused request appends nothing, and a retry after the load passes works.
/// The writer is held at its commit so that the one admitted write stays pending.
#[tokio::test]
async fn over_http_writes_beyond_the_admitted_are_refused_with_429_in_each_dialect() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("data");
    let faults = FaultInjector::new();
    let ledger = open_with(&path, &faults).await.with_max_pending_writes(1);
    let server = InProcessServer::start(&path, ledger).await;
    let client = reqwest::Client::new();
    let base = server.base_url.clone();
    let post = reqwest::Method::POST;
    let charge_params = [
        ("amount", "2000"),
        ("currency", "usd"),
        ("source", "tok_visa"),
    ];
    let (status, _, charge) = send(stripe(
        &client,
        post.clone(),
        format!("{base}/v1/charges"),
        &charge_params,
    ))
    .await;
    assert_eq!(status, 200, "{charge}");
    let charge_url = format!(
        "{base}/v1/charges/{}",
        charge["id"].as_str().expect("an id")
    );

    let mut gate = faults.close_gate_at(FaultPoint::Commit, next_batch(&faults));
    let pending = tokio::spawn(send(stripe(
        &client,
        post.clone(),
        charge_url.clone(),
        &[("metadata[admitted]", "yes")],
    )));
    assert!(
        gate.entered(GATE_WAIT).await,
        "the admitted update reached its commit"
    );

    let (status, should_retry, body) = send(stripe(
        &client,
        post.clone(),
        charge_url.clone(),
        &[("metadata[refused]", "yes")],
    ))
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(body["error"]["code"], "rate_limit", "{body}");
    assert_eq!(should_retry.as_deref(), Some("true"));
    let (status, _, body) = send(omise(
        &client,
        reqwest::Method::POST,
        format!("{base}/tokens"),
        OMISE_PUBLIC_KEY,
        json!({"card": {"name": "Somchai Prasert", "number": "4242424242424242",
            "expiration_month": 10, "expiration_year": 2099}}),
    ))
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["object"], "error", "{body}");
    assert_eq!(body["code"], "too_many_requests", "{body}");

    gate.release();
    let (status, _, body) = pending.await.expect("the admitted update");
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = send(stripe(
        &client,
        post.clone(),
        charge_url.clone(),
        &[("metadata[retried]", "yes")],
    ))
    .await;
    assert_eq!(
        status, 200,
        "once the load has passed a write is admitted again: {body}"
    );
    let (_, _, charge) = send(stripe(&client, reqwest::Method::GET, charge_url, &[])).await;
    assert_eq!(
        charge["metadata"],
        json!({"admitted": "yes", "retried": "yes"})
    );
    server.stop().await;
}

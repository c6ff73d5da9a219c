//! Two `chargeledger serve` processes on one PostgreSQL database: no update lost, versions gap-free, the chain sound, idempotency and subscriptions across servers.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use chargeledger::Ledger;
use chargeledger::ledger::LedgerOptions;
use common::server::{SECRET_KEY, TestServer};
use serde_json::Value;

/// Charges updated at once, and updates each client makes to each charge through each server.
const CHARGES: usize = 6;
const UPDATES_PER_CLIENT: usize = 15;

/// Two servers on one fresh database, each with a data directory of its own (for its keys).
fn two_servers(directory: &tempfile::TempDir) -> (String, TestServer, TestServer) {
    let url = common::postgres::database_url_for(&directory.path().join("database"));
    let start = |name: &str| {
        TestServer::start_with_args(
            &directory.path().join(name),
            &[SECRET_KEY],
            &["--database-url", &url],
        )
    };
    let (first, second) = (start("first"), start("second"));
    (url, first, second)
}

fn verify(url: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_chargeledger"))
        .args(["verify", "--database-url", url])
        .env_remove("DATABASE_URL")
        .output()
        .expect("chargeledger verify runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "verify failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn concurrent_updates_through_two_servers_are_all_kept() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (url, first, second) = two_servers(&directory);
    let mut ids = Vec::new();
    for index in 0..CHARGES {
        let server = if index % 2 == 0 { &first } else { &second };
        let charge = server.create_charge(&[]).await;
        ids.push(charge["id"].as_str().expect("an id").to_string());
    }
    // Two clients per charge, each alternating between the servers, each setting keys of its
    // own: a lost update would leave a key missing.
    let base_urls = [first.base_url.clone(), second.base_url.clone()];
    let mut clients = tokio::task::JoinSet::new();
    for id in &ids {
        for client in 0..2 {
            let (id, base_urls) = (id.clone(), base_urls.clone());
            clients.spawn(async move {
                let http = reqwest::Client::new();
                for update in 0..UPDATES_PER_CLIENT {
                    let base_url = &base_urls[(update + client) % 2];
                    let key = format!("metadata[c{client}_{update}]");
                    let response = http
                        .post(format!("{base_url}/v1/charges/{id}"))
                        .bearer_auth(SECRET_KEY)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(format!(
                            "{}=set",
                            key.replace('[', "%5B").replace(']', "%5D")
                        ))
                        .send()
                        .await
                        .expect("the server answers");
                    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
                }
            });
        }
    }
    while let Some(client) = clients.join_next().await {
        client.expect("a client finished without a failed assertion");
    }

    let servers = [&first, &second];
    for id in &ids {
        for server in servers {
            let charge = server.get(&format!("/v1/charges/{id}")).await;
            let keys: BTreeSet<String> = charge.body["metadata"]
                .as_object()
                .expect("metadata")
                .keys()
                .cloned()
                .collect();
            assert_eq!(
                keys.len(),
                2 * UPDATES_PER_CLIENT,
                "every update of {id} is kept"
            );
        }
        let history = first
            .get(&format!("/v1/charges/{id}/history?limit=100"))
            .await;
        let versions: Vec<u64> = history.body["data"]
            .as_array()
            .expect("history")
            .iter()
            .map(|entry| entry["version"].as_u64().expect("a version"))
            .collect();
        let expected: Vec<u64> = (1..=1 + 2 * UPDATES_PER_CLIENT as u64).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, expected, "{id}'s versions are gap-free");
    }
    let report = verify(&url);
    let events = CHARGES * (1 + 2 * UPDATES_PER_CLIENT);
    assert!(
        report.contains(&format!("sound: {events} events")),
        "{report}"
    );
}

#[tokio::test]
async fn one_idempotency_key_through_both_servers_creates_one_charge() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (_url, first, second) = two_servers(&directory);
    let params = [
        ("amount", "1500"),
        ("currency", "usd"),
        ("source", "tok_visa"),
    ];
    let (a, b) = tokio::join!(
        first.post_idempotent("/v1/charges", &params, "across-servers"),
        second.post_idempotent("/v1/charges", &params, "across-servers"),
    );
    assert_eq!((a.status, b.status), (200, 200), "{} {}", a.body, b.body);
    assert_eq!(
        a.body["id"], b.body["id"],
        "one charge, replayed to the other"
    );
    let list = second.get("/v1/charges").await;
    assert_eq!(list.body["data"].as_array().expect("a list").len(), 1);
}

#[tokio::test]
async fn an_update_through_one_server_reaches_a_subscriber_elsewhere() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (url, first, second) = two_servers(&directory);
    let subscriber = Ledger::open_postgres(&url, LedgerOptions::default())
        .await
        .expect("open the database from a third process's point of view");
    let charge = first.create_charge(&[]).await;
    let id = charge["id"].as_str().expect("an id");
    let mut subscription = subscriber.subscribe(0);
    let first_event = next_event(&mut subscription).await;
    assert_eq!(first_event["stream_id"], id);
    let reply = second
        .post(
            &format!("/v1/charges/{id}"),
            &[("description", "from the second")],
        )
        .await;
    assert_eq!(reply.status, 200);
    let update = next_event(&mut subscription).await;
    assert_eq!(update["stream_id"], id);
    assert_eq!(update["stream_version"], 2);
    subscriber.close().await.expect("close");
}

async fn next_event(subscription: &mut chargeledger::Subscription) -> Value {
    let event = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("an event within 10 s")
        .expect("open")
        .expect("readable");
    serde_json::to_value(&event.body).expect("an event encodes")
}

#[tokio::test]
async fn a_server_rides_out_a_database_crash_and_keeps_what_it_acknowledged() {
    let cluster = common::postgres::Cluster::private("crash");
    let directory = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start_with_args(
        &directory.path().join("data"),
        &[SECRET_KEY],
        &["--database-url", &cluster.url],
    );
    let charge = server.create_charge(&[]).await;
    let id = charge["id"].as_str().expect("an id").to_string();
    let path = format!("/v1/charges/{id}");
    let mut acknowledged = Vec::new();
    for round in 0..3 {
        let key = format!("metadata[before_{round}]");
        let reply = server.post(&path, &[(key.as_str(), "kept")]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        acknowledged.push(format!("before_{round}"));
        cluster.crash_and_restart();
        // The pool's and the writer's connections died with the database; the next requests
        // must get through on new ones, within a few attempts.
        let key = format!("metadata[after_{round}]");
        let mut answered = None;
        for _ in 0..20 {
            let reply = server.post(&path, &[(key.as_str(), "kept")]).await;
            if reply.status == 200 {
                answered = Some(reply);
                break;
            }
            assert_eq!(
                reply.status, 500,
                "a failure while reconnecting is a 500: {}",
                reply.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            answered.is_some(),
            "round {round}: no update got through after the restart"
        );
        acknowledged.push(format!("after_{round}"));
    }
    let charge = server.get(&path).await;
    for key in &acknowledged {
        assert_eq!(
            charge.body["metadata"][key], "kept",
            "{key} survived the crashes"
        );
    }
    assert!(server.stop(), "the server stops cleanly");
    let report = verify(&cluster.url);
    assert!(report.starts_with("sound: 7 events"), "{report}");
}

#[tokio::test]
async fn the_startup_line_names_the_database_but_never_its_password() {
    let directory = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "{} password=hunter2",
        common::postgres::database_url_for(&directory.path().join("database"))
    );
    let server = TestServer::start_with_args(
        &directory.path().join("data"),
        &[SECRET_KEY],
        &["--database-url", &url],
    );
    let line = &server.startup_line;
    assert!(line.contains("(ledger: postgres://chargeledger@"), "{line}");
    assert!(
        line.contains(&format!(
            "keys: {}",
            directory.path().join("data").display()
        )),
        "{line}"
    );
    assert!(!line.contains("hunter2"), "{line}");
}

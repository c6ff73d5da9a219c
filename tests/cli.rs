//! The `chargeledger` binary as an operator uses it: exit codes and output of each command.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chargeledger::{CreateCharge, RequestMeta, UpdateCharge};
use common::ACCOUNT;

/// The command line to run: `arguments`, and on PostgreSQL the database of the ledger the
/// test names with `--data` (see `common::backend`).
fn command_line(arguments: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chargeledger"));
    command
        .args(arguments)
        .env_remove("CHARGELEDGER_DATA")
        .env_remove("DATABASE_URL");
    if common::backend::current() == common::backend::Backend::Postgres {
        let data = arguments
            .iter()
            .position(|argument| *argument == "--data")
            .and_then(|index| arguments.get(index + 1));
        if let Some(data) = data {
            command
                .arg("--database-url")
                .arg(common::postgres::database_url_for(Path::new(data)));
        }
    }
    command
}

fn chargeledger(arguments: &[&str]) -> Output {
    command_line(arguments).output().expect("run chargeledger")
}

fn chargeledger_with_input(arguments: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = command_line(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chargeledger");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// The command failed with exit code 2 (an error) and said `message` on standard error.
fn assert_failed_with(output: &Output, message: &str) {
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains(message),
        "{}",
        text(&output.stderr)
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A store with one charge at 3 versions; returns its path and the charge id.
async fn store(directory: &tempfile::TempDir) -> (PathBuf, String) {
    let path = directory.path().join("data");
    let ledger = common::backend::open_ledger_at(&path, Default::default()).await;
    let charge = ledger
        .create_charge(
            ACCOUNT,
            CreateCharge::new(1500, "usd")
                .source("tok_visa")
                .description("first"),
            RequestMeta::library(),
        )
        .await
        .expect("create");
    ledger
        .update_charge(
            ACCOUNT,
            &charge.id,
            UpdateCharge::new().description("second"),
            RequestMeta::library().with_actor("sk_test_****abcd"),
        )
        .await
        .expect("update");
    ledger
        .update_charge(
            ACCOUNT,
            &charge.id,
            UpdateCharge::new().metadata_set("order", "42"),
            RequestMeta::library().with_idempotency_key("key-7"),
        )
        .await
        .expect("update");
    ledger.close().await.expect("close");
    (path, charge.id)
}

fn data(path: &Path) -> &str {
    path.to_str().expect("utf8 path")
}

async fn history_prints_a_readable_timeline_and_json() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (path, charge_id) = store(&directory).await;
    let output = chargeledger(&["history", &charge_id, "--data", data(&path)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let timeline = text(&output.stdout);
    assert!(
        timeline.starts_with(&format!("{charge_id} (account {ACCOUNT}), 3 versions")),
        "{timeline}"
    );
    assert!(
        timeline.contains("charge.updated by sk_test_****abcd"),
        "{timeline}"
    );
    assert!(
        timeline.contains("    description: \"first\" -> \"second\""),
        "{timeline}"
    );
    assert!(timeline.contains("idempotency key key-7"), "{timeline}");
    assert!(
        timeline.contains("    metadata[order]: null -> \"42\""),
        "{timeline}"
    );

    let output = chargeledger(&["history", &charge_id, "--data", data(&path), "--json"]);
    let entries: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(entries.as_array().map(Vec::len), Some(3));
    assert_eq!(entries[1]["changes"][0]["previous"], "first");
}

async fn show_travels_to_a_version_or_a_moment() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (path, charge_id) = store(&directory).await;
    let output = chargeledger(&[
        "show",
        &charge_id,
        "--data",
        data(&path),
        "--at-version",
        "1",
    ]);
    let charge: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(charge["description"], "first");
    let output = chargeledger(&[
        "show",
        &charge_id,
        "--data",
        data(&path),
        "--as-of",
        "2999-01-01T00:00:00Z",
    ]);
    let charge: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(charge["metadata"]["order"], "42");
    let output = chargeledger(&[
        "show",
        &charge_id,
        "--data",
        data(&path),
        "--as-of",
        "yesterday",
    ]);
    assert_failed_with(&output, "--as-of 'yesterday' is not an RFC 3339 time");
    let output = chargeledger(&["show", "ch_missing", "--data", data(&path)]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr).trim(),
        "error: No such charge: 'ch_missing'"
    );
}

#[tokio::test]
async fn verify_exits_zero_when_sound_and_one_naming_the_first_bad_record() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (path, _) = store(&directory).await;
    let output = chargeledger(&["verify", "--data", data(&path)]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        text(&output.stdout).starts_with("sound: 3 events"),
        "{}",
        text(&output.stdout)
    );

    {
        let db = sled::open(&path).expect("raw open");
        let events = db.open_tree("events").expect("tree");
        let value = events.get(2u64.to_be_bytes()).expect("read").expect("#2");
        let edited = text(&value).replace("second", "SECOND");
        events
            .insert(2u64.to_be_bytes(), edited.as_bytes())
            .expect("write");
        db.flush().expect("flush");
    }
    let output = chargeledger(&["verify", "--data", data(&path)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).starts_with("CORRUPT after 1 good events: event #2 was altered"),
        "{}",
        text(&output.stdout)
    );
    let output = chargeledger(&["history", "ch_any", "--data", data(&path)]);
    assert_failed_with(&output, "is corrupt");
}

async fn export_then_import_reproduces_the_ledger_and_refuses_a_non_empty_target() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (path, charge_id) = store(&directory).await;
    let export = chargeledger(&["export", "--data", data(&path)]);
    assert!(export.status.success());
    assert_eq!(text(&export.stdout).lines().count(), 3);

    let copy = directory.path().join("copy");
    let import = |target: &Path| {
        chargeledger_with_input(&["import", "--data", data(target)], &export.stdout)
    };
    let output = import(&copy);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("imported 3 events"));
    let original = chargeledger(&["show", &charge_id, "--data", data(&path)]);
    let imported = chargeledger(&["show", &charge_id, "--data", data(&copy)]);
    assert_eq!(original.stdout, imported.stdout);
    assert_eq!(
        chargeledger(&["verify", "--data", data(&copy)])
            .status
            .code(),
        Some(0)
    );

    let again = import(&copy);
    assert_failed_with(&again, "already holds 3 events");
}

async fn import_rejects_a_tampered_export() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (path, _) = store(&directory).await;
    let export = chargeledger(&["export", "--data", data(&path)]);
    let tampered = text(&export.stdout).replace("\"first\"", "\"FIRST\"");
    let output = chargeledger_with_input(
        &["import", "--data", data(&directory.path().join("copy"))],
        tampered.as_bytes(),
    );
    assert_failed_with(&output, "cannot import event #1: event #1 was altered");
}

async fn replay_reports_what_it_rebuilt() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (path, _) = store(&directory).await;
    let output = chargeledger(&["replay", "--data", data(&path)]);
    assert!(output.status.success());
    assert_eq!(
        text(&output.stdout).trim(),
        "replayed 3 events into 1 streams; 0 projections were wrong and have been rebuilt"
    );
}

#[test]
fn serve_refuses_a_cache_too_small_to_work_with() {
    let directory = tempfile::tempdir().expect("tempdir");
    let data_directory = directory.path().join("data");
    let output = chargeledger(&["serve", "--data", data(&data_directory), "--cache-mb", "4"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("--cache-mb") && stderr.contains("8..=1048576"),
        "{stderr}"
    );
    assert!(!data_directory.exists(), "nothing was created");
}

#[tokio::test]
async fn a_server_with_a_small_cache_keeps_what_it_acknowledged() {
    use common::server::{SECRET_KEY, TestServer};
    let directory = tempfile::tempdir().expect("tempdir");
    let data_directory = directory.path().join("data");
    let arguments = ["--cache-mb", "8"];
    let mut server = TestServer::start_with_args(&data_directory, &[SECRET_KEY], &arguments);
    let charge = server
        .create_charge(&[("description", "small cache")])
        .await;
    assert!(server.stop(), "the server exits cleanly");
    let server = TestServer::start_with_args(&data_directory, &[SECRET_KEY], &arguments);
    let reply = server
        .get(&format!(
            "/v1/charges/{}",
            charge["id"].as_str().expect("an id")
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["description"], "small cache");
}

/// A supervisor may send SIGTERM the moment it reads the startup line; the server must shut
/// down cleanly (exit 0), not die of the signal's default action because its handler was not
/// yet in place. Repeated, since a late registration loses only a race.
#[test]
fn sigterm_sent_on_the_startup_line_stops_the_server_cleanly() {
    use common::server::{SECRET_KEY, TestServer};
    let directory = tempfile::tempdir().expect("tempdir");
    let data_directory = directory.path().join("data");
    for attempt in 0..5 {
        let mut server = TestServer::start_with_keys(&data_directory, &[SECRET_KEY]);
        assert!(
            server.stop(),
            "attempt {attempt}: the server exits with status 0"
        );
    }
}

#[tokio::test]
async fn verify_on_postgres_names_an_altered_event() {
    let directory = tempfile::tempdir().expect("tempdir");
    common::backend::Backend::Postgres
        .run(async {
            let (path, _) = store(&directory).await;
            let output = chargeledger(&["verify", "--data", data(&path)]);
            assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
            assert!(text(&output.stdout).starts_with("sound: 3 events"));
            let schema = common::postgres::schema_for(&path);
            common::postgres::psql(&format!(
                "UPDATE {schema}.chargeledger_events SET record = replace(record, 'second', 'SECOND') WHERE sequence = 2"
            ));
            let output = chargeledger(&["verify", "--data", data(&path)]);
            assert_eq!(output.status.code(), Some(1));
            assert!(
                text(&output.stdout).starts_with("CORRUPT after 1 good events: event #2 was altered"),
                "{}",
                text(&output.stdout)
            );
            common::postgres::psql(&format!(
                "UPDATE {schema}.chargeledger_events SET record = replace(record, '42', '43') WHERE sequence = 3"
            ));
            let output = chargeledger(&["history", "ch_any", "--data", data(&path)]);
            assert_failed_with(&output, "event #3 (the chain head)");
        })
        .await;
}

#[tokio::test]
async fn migrate_copies_a_data_directory_into_postgres_with_its_chain() {
    let directory = tempfile::tempdir().expect("tempdir");
    let (path, charge_id) = store(&directory).await;
    let database = directory.path().join("database");
    let url = common::postgres::database_url_for(&database);
    let migrate = |from: &Path| {
        Command::new(env!("CARGO_BIN_EXE_chargeledger"))
            .args(["migrate", "--from", data(from), "--to", &url])
            .env_remove("DATABASE_URL")
            .output()
            .expect("run chargeledger migrate")
    };
    let output = migrate(&path);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("copied 3 events from"),
        "{}",
        text(&output.stderr)
    );
    let on_postgres = |arguments: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_chargeledger"))
            .args(arguments)
            .args(["--database-url", &url])
            .env_remove("DATABASE_URL")
            .output()
            .expect("run chargeledger")
    };
    let original = chargeledger(&["show", &charge_id, "--data", data(&path)]);
    let copied = on_postgres(&["show", &charge_id]);
    assert_eq!(text(&copied.stdout), text(&original.stdout));
    let history = on_postgres(&["history", &charge_id, "--json"]);
    let entries: serde_json::Value = serde_json::from_slice(&history.stdout).expect("json");
    assert_eq!(
        entries[1]["request"]["actor"], "sk_test_****abcd",
        "the audit trail came along"
    );
    let verified = on_postgres(&["verify"]);
    assert!(
        text(&verified.stdout).starts_with("sound: 3 events"),
        "{}",
        text(&verified.stdout)
    );
    assert_failed_with(&migrate(&path), "already holds 3 events");
}

on_both_backends!(
    history_prints_a_readable_timeline_and_json,
    show_travels_to_a_version_or_a_moment,
    export_then_import_reproduces_the_ledger_and_refuses_a_non_empty_target,
    import_rejects_a_tampered_export,
    replay_reports_what_it_rebuilt,
);

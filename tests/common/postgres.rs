//! A throwaway PostgreSQL cluster for the tests, and a fresh schema in it per test.
//!
//! `CHARGELEDGER_TEST_DATABASE_URL` names a server to use (`.ci/run` starts one for the whole
//! run). Without it, the first test that needs PostgreSQL starts a cluster of its own for this
//! test process: `initdb` into a temporary directory and `postgres` listening on a Unix socket
//! there only (no TCP port at all), run as the `postgres` user when the tests run as root, and
//! killed when the test process exits (the kernel's parent-death signal, set by `setpriv`).
//! The tests never skip for want of a database: if none can be had, they fail saying why.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The role the throwaway cluster is created with (trust authentication, socket only).
const ROLE: &str = "chargeledger";

/// The server's connection string, without a schema.
pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("CHARGELEDGER_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => start_throwaway_cluster(),
    })
}

/// A connection string whose `search_path` is a schema of its own, made from `name` (a test's
/// data directory, say): the same name gives the same schema, so a test can reopen it.
pub fn database_url_for(name: &Path) -> String {
    let schema = schema_for(name);
    psql(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"));
    with_search_path(server_url(), &schema)
}

/// The schema `database_url_for(name)` uses.
pub fn schema_for(name: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    format!("test_{:016x}", hasher.finish())
}

/// `url` (key=value or postgres:// form) with `search_path` set to `schema`.
pub fn with_search_path(url: &str, schema: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}options=-csearch_path%3D{schema}")
    } else {
        format!("{url} options=-csearch_path={schema}")
    }
}

/// Run one SQL statement against the server with psql, failing the test if it fails.
pub fn psql(sql: &str) {
    let output = Command::new("psql")
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg("-q")
        .arg("-c")
        .arg(sql)
        .arg(server_url())
        .output()
        .expect("psql runs (Debian package postgresql-client)");
    assert!(
        output.status.success(),
        "psql -c {sql:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn bin_directory() -> PathBuf {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let directory = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if directory.join("initdb").exists() {
            return directory;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries (initdb) found: install Debian's postgresql package (`.ci/run` does), or set CHARGELEDGER_TEST_DATABASE_URL"
        )
    })
}

/// `setpriv` arguments that drop to the `postgres` user when running as root.
fn as_cluster_owner(command: &mut Command, directory: &Path) {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false);
    if root {
        // PostgreSQL refuses to run as root.
        let status = Command::new("chown")
            .arg("-R")
            .arg("postgres:")
            .arg(directory)
            .status()
            .expect("chown runs");
        assert!(
            status.success(),
            "cannot give {} to the postgres user",
            directory.display()
        );
        command.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
    }
}

/// Remove the clusters of earlier test processes that are gone (they were killed with them).
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("chargeledger-pg-") else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start_throwaway_cluster() -> String {
    remove_stale_clusters();
    let bin = bin_directory();
    let directory = std::env::temp_dir().join(format!("chargeledger-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).expect("a directory for the cluster");
    let data = directory.join("data");
    let mut initdb = Command::new("setpriv");
    as_cluster_owner(&mut initdb, &directory);
    let output = initdb
        .arg("--")
        .arg(bin.join("initdb"))
        .args([
            "-A",
            "trust",
            "-U",
            ROLE,
            "--no-sync",
            "--no-instructions",
            "-D",
        ])
        .arg(&data)
        .output()
        .expect("initdb runs");
    assert!(
        output.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let socket_directory = directory.clone();
    let log = directory.join("postgres.log");
    let (started, ready) = std::sync::mpsc::channel();
    let server_binary = bin.join("postgres");
    // The server is a child of this thread, which lives as long as the process: the kernel
    // kills the server (parent-death signal) when the thread that started it ends.
    std::thread::spawn(move || {
        let mut postgres = Command::new("setpriv");
        as_cluster_owner(&mut postgres, &socket_directory);
        let log_file = std::fs::File::create(&log).expect("a log file");
        let child = postgres
            .args(["--pdeathsig", "KILL", "--"])
            .arg(&server_binary)
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&socket_directory)
            .args(["-c", "listen_addresses=", "-c", "max_connections=300"])
            .args(["-c", "shared_buffers=64MB"])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(error) => {
                let _ = started.send(Err(error.to_string()));
                return;
            }
        };
        let _ = started.send(Ok(()));
        let _ = child.wait();
        // Parked rather than returning: the thread's exit would signal nothing now, but a
        // finished thread is easy to mistake for one that can be joined.
        loop {
            std::thread::park();
        }
    });
    ready
        .recv()
        .expect("the cluster thread answers")
        .unwrap_or_else(|error| panic!("cannot start postgres: {error}"));
    let url = format!("host={} user={ROLE} dbname=postgres", directory.display());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .arg("-h")
            .arg(&directory)
            .arg("-q")
            .status()
            .is_ok_and(|status| status.success());
        if ready {
            return url;
        }
        assert!(
            Instant::now() < deadline,
            "the throwaway PostgreSQL did not start within 30 s; see {}",
            directory.join("postgres.log").display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

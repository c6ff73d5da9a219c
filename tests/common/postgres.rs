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
        let Some(pid) = name
            .strip_prefix("chargeledger-pg-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start_throwaway_cluster() -> String {
    remove_stale_clusters();
    let directory = std::env::temp_dir().join(format!("chargeledger-pg-{}", std::process::id()));
    let cluster = Cluster::start(directory);
    let url = cluster.url.clone();
    // The shared cluster lives as long as the test process.
    std::mem::forget(cluster);
    url
}

/// A cluster of a test's own, which the test may crash and restart.
pub struct Cluster {
    pub url: String,
    directory: PathBuf,
    port: u16,
    restarts: Option<std::sync::mpsc::Sender<std::sync::mpsc::Sender<()>>>,
    server_thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        drop(self.restarts.take());
        if let Some(thread) = self.server_thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

impl Cluster {
    /// A cluster of this test's own, in a directory named after `name`.
    pub fn private(name: &str) -> Cluster {
        Cluster::start(
            std::env::temp_dir().join(format!("chargeledger-pg-{}-{name}", std::process::id())),
        )
    }

    /// initdb in `directory` and start the server there (Unix socket only).
    pub fn start(directory: PathBuf) -> Cluster {
        Cluster::start_configured(directory, 5432, |_| Vec::new())
    }

    /// A private cluster that also listens on 127.0.0.1 with TLS only (a self-signed
    /// certificate for 127.0.0.1; plain TCP connections are refused by pg_hba.conf). Returns it,
    /// its TCP port and the certificate's PEM file (the CA to trust).
    pub fn private_with_tls(name: &str) -> (Cluster, u16, PathBuf) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let directory =
            std::env::temp_dir().join(format!("chargeledger-pg-{}-{name}", std::process::id()));
        let ca = directory.join("ca.pem");
        let ca_for_setup = ca.clone();
        let cluster = Cluster::start_configured(directory, port, move |data| {
            let (key, certificate) = (data.join("server.key"), data.join("server.crt"));
            let (ca_key, request, extensions) = (
                data.join("ca.key"),
                data.join("server.csr"),
                data.join("server.ext"),
            );
            std::fs::write(
                &extensions,
                "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
            )
            .expect("certificate extensions");
            let openssl = |arguments: &[&std::ffi::OsStr]| {
                let status = Command::new("openssl")
                    .args(arguments)
                    .stderr(Stdio::null())
                    .status()
                    .expect("openssl runs");
                assert!(status.success(), "openssl {arguments:?} failed");
            };
            let text = |value: &'static str| std::ffi::OsStr::new(value);
            // A CA, and a server certificate it signed: a self-signed certificate is a CA and
            // may not serve as the server's own.
            openssl(&[
                text("req"),
                text("-x509"),
                text("-newkey"),
                text("rsa:2048"),
                text("-nodes"),
                text("-days"),
                text("2"),
                text("-subj"),
                text("/CN=chargeledger test CA"),
                text("-keyout"),
                ca_key.as_os_str(),
                text("-out"),
                ca_for_setup.as_os_str(),
            ]);
            openssl(&[
                text("req"),
                text("-newkey"),
                text("rsa:2048"),
                text("-nodes"),
                text("-subj"),
                text("/CN=127.0.0.1"),
                text("-keyout"),
                key.as_os_str(),
                text("-out"),
                request.as_os_str(),
            ]);
            openssl(&[
                text("x509"),
                text("-req"),
                text("-in"),
                request.as_os_str(),
                text("-CA"),
                ca_for_setup.as_os_str(),
                text("-CAkey"),
                ca_key.as_os_str(),
                text("-CAcreateserial"),
                text("-days"),
                text("2"),
                text("-extfile"),
                extensions.as_os_str(),
                text("-out"),
                certificate.as_os_str(),
            ]);
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
                .expect("the key kept private, as PostgreSQL requires");
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
            )
            .expect("pg_hba.conf");
            vec![
                "-c".into(),
                "listen_addresses=127.0.0.1".into(),
                "-c".into(),
                "ssl=on".into(),
            ]
        });
        (cluster, port, ca)
    }

    /// initdb in `directory`, let `configure` change the data directory (before ownership is
    /// handed over) and name more server arguments, then start the server.
    fn start_configured(
        directory: PathBuf,
        port: u16,
        configure: impl FnOnce(&Path) -> Vec<String>,
    ) -> Cluster {
        let bin = bin_directory();
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
        let extra_arguments = configure(&data);
        // The files `configure` wrote go to the cluster's owner too (the key must be theirs).
        as_cluster_owner(&mut Command::new("true"), &directory);
        let (restarts, restart_requests) =
            std::sync::mpsc::channel::<std::sync::mpsc::Sender<()>>();
        let (started, ready) = std::sync::mpsc::channel();
        let socket_directory = directory.clone();
        let server_binary = bin.join("postgres");
        // The server is a child of this thread: the kernel kills it (parent-death signal) when
        // the thread ends, which is when the process ends or the `Cluster` is dropped.
        let server_thread = std::thread::spawn(move || {
            let spawn = || {
                let mut postgres = Command::new("setpriv");
                as_cluster_owner(&mut postgres, &socket_directory);
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(socket_directory.join("postgres.log"))
                    .expect("a log file");
                postgres
                    .args(["--pdeathsig", "KILL", "--"])
                    .arg(&server_binary)
                    .arg("-D")
                    .arg(&data)
                    .arg("-k")
                    .arg(&socket_directory)
                    .args(["-c", "listen_addresses=", "-c", "max_connections=300"])
                    .args(["-c", "shared_buffers=64MB"])
                    .arg("-p")
                    .arg(port.to_string())
                    .args(&extra_arguments)
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
            };
            let mut child = match spawn() {
                Ok(child) => child,
                Err(error) => {
                    let _ = started.send(Err(error.to_string()));
                    return;
                }
            };
            let _ = started.send(Ok(()));
            // Each request crashes the server (immediate shutdown: no checkpoint, recovery at
            // the next start) and starts it again; the channel closing stops it for good.
            while let Ok(done) = restart_requests.recv() {
                signal_quit(child.id());
                let _ = child.wait();
                child = spawn().expect("postgres starts again");
                let _ = done.send(());
            }
            signal_quit(child.id());
            let _ = child.wait();
        });
        ready
            .recv()
            .expect("the cluster thread answers")
            .unwrap_or_else(|error| panic!("cannot start postgres: {error}"));
        let cluster = Cluster {
            url: format!(
                "host={} port={port} user={ROLE} dbname=postgres",
                directory.display()
            ),
            directory,
            port,
            restarts: Some(restarts),
            server_thread: Some(server_thread),
        };
        cluster.wait_until_ready();
        cluster
    }

    /// Crash the server (SIGQUIT: immediate shutdown, as after a power cut PostgreSQL recovers
    /// from its WAL) and start it again; returns once it accepts connections.
    pub fn crash_and_restart(&self) {
        let (done, restarted) = std::sync::mpsc::channel();
        self.restarts
            .as_ref()
            .expect("a running cluster")
            .send(done)
            .expect("the cluster thread runs");
        restarted.recv().expect("the cluster restarted");
        self.wait_until_ready();
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(bin_directory().join("pg_isready"))
                .arg("-h")
                .arg(&self.directory)
                .arg("-p")
                .arg(self.port.to_string())
                .arg("-q")
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start within 30 s; see {}",
                self.directory.join("postgres.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn signal_quit(pid: u32) {
    let _ = Command::new("kill")
        .arg("-QUIT")
        .arg(pid.to_string())
        .status();
}

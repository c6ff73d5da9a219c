//! TLS to PostgreSQL: `sslmode=require` with the database's CA works (and the database refuses
//! anything but TLS, so it was TLS); without that CA the certificate is refused; `prefer` stays
//! plain rather than trying an unverified TLS.

mod common;

use std::process::{Command, Output};

use common::server::{SECRET_KEY, TestServer};

fn chargeledger(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chargeledger"))
        .args(arguments)
        .env_remove("DATABASE_URL")
        .env_remove("CHARGELEDGER_DATABASE_CA_FILE")
        .output()
        .expect("chargeledger runs")
}

#[tokio::test]
async fn the_store_talks_to_postgres_over_verified_tls() {
    let (cluster, port, ca) = common::postgres::Cluster::private_with_tls("tls");
    let tls_url =
        format!("host=127.0.0.1 port={port} user=chargeledger dbname=postgres sslmode=require");
    let directory = tempfile::tempdir().expect("tempdir");
    let ca = ca.to_str().expect("a UTF-8 path");
    let server = TestServer::start_with_args(
        &directory.path().join("data"),
        &[SECRET_KEY],
        &["--database-url", &tls_url, "--database-ca-file", ca],
    );
    let charge = server.create_charge(&[("description", "over TLS")]).await;
    let reply = server
        .get(&format!(
            "/v1/charges/{}",
            charge["id"].as_str().expect("an id")
        ))
        .await;
    assert_eq!(reply.body["description"], "over TLS");
    drop(server);

    let verified = chargeledger(&[
        "verify",
        "--database-url",
        &tls_url,
        "--database-ca-file",
        ca,
    ]);
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(
        stdout.starts_with("sound: 1 events"),
        "{stdout}{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    let untrusted = chargeledger(&["verify", "--database-url", &tls_url]);
    assert_eq!(untrusted.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        stderr.contains("cannot connect") && stderr.contains("certificate"),
        "{stderr}"
    );

    let plain_url = format!("host=127.0.0.1 port={port} user=chargeledger dbname=postgres");
    let plain = chargeledger(&["verify", "--database-url", &plain_url]);
    assert_eq!(plain.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(
        stderr.contains("pg_hba.conf rejects connection") && stderr.contains("no encryption"),
        "{stderr}"
    );
    drop(cluster);
}

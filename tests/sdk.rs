//! The official SDKs, unchanged, against a server started here: stripe-python and stripe-node
//! create, update every parameter, unset, hit errors, capture, refund, page, search, read
//! events, retry idempotently, meet faults on demand, and find everything again after a
//! restart; omise-python tokenizes, creates, updates, captures in part, reverses, refunds,
//! lists, searches, keeps customers and their cards, reads charge events, hits Omise's errors,
//! and sees an authorization expire.
//!
//! The SDKs are installed on first use into `target/tmp/sdk` (a Python virtualenv via pip, and
//! an npm prefix), so `cargo test` needs only `python3` and `npm` on the machine.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::backend::Backend;
use common::python::{INSTALLING, run, sdk_directory};
use common::server::{OMISE_PUBLIC_KEY, OMISE_SECRET_KEY, SECRET_KEY, TestServer};

const STRIPE_PYTHON_VERSION: &str = "16.1.0";
const STRIPE_NODE_VERSION: &str = "23.1.0";
const OMISE_PYTHON_VERSION: &str = "0.16.0";

/// The virtualenv's python with stripe-python installed.
fn stripe_python() -> PathBuf {
    python_with("stripe", STRIPE_PYTHON_VERSION)
}

/// The virtualenv's python with omise-python installed.
fn omise_python() -> PathBuf {
    python_with("omise", OMISE_PYTHON_VERSION)
}

/// A virtualenv of its own for one PyPI package at one version; its python.
fn python_with(package: &str, version: &str) -> PathBuf {
    common::python::python_with(
        &format!("{package}-{version}"),
        &[(package, version)],
        &[package],
    )
}

/// The `node_modules` directory holding stripe-node.
fn stripe_node_modules() -> PathBuf {
    let _installing = INSTALLING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let prefix = sdk_directory().join(format!("node-stripe-{STRIPE_NODE_VERSION}"));
    let modules = prefix.join("node_modules");
    if !modules.join("stripe").join("package.json").exists() {
        std::fs::create_dir_all(&prefix).expect("the SDK directory can be created");
        run(
            Command::new("npm")
                .arg("install")
                .arg("--prefix")
                .arg(&prefix)
                .arg("--no-audit")
                .arg("--no-fund")
                .arg(format!("stripe@{STRIPE_NODE_VERSION}")),
            "npm install stripe (install Node.js and npm)",
        );
    }
    modules
}

/// Run an SDK script's `write` phase, restart the server on the same data, run `verify`.
fn write_restart_verify(program: &Path, script: &str, extra_environment: &[(&str, &Path)]) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let data = directory.path().join("data");
    let state = directory.path().join("state.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("sdk")
        .join(script);
    let mut server = TestServer::start(&data);
    for phase in ["write", "verify"] {
        let mut command = Command::new(program);
        command
            .arg(&script)
            .arg(phase)
            .arg(&state)
            .env("CHARGELEDGER_URL", &server.base_url)
            .env("CHARGELEDGER_KEY", SECRET_KEY)
            .env("CHARGELEDGER_OMISE_SECRET_KEY", OMISE_SECRET_KEY)
            .env("CHARGELEDGER_OMISE_PUBLIC_KEY", OMISE_PUBLIC_KEY);
        for (name, value) in extra_environment {
            command.env(name, value);
        }
        run(&mut command, &format!("{} {phase}", script.display()));
        if phase == "write" {
            assert!(server.stop(), "SIGTERM stops the server cleanly");
            server = TestServer::start(&data);
        }
    }
}

#[test]
fn stripe_python_works_unchanged_on_postgres() {
    let python = stripe_python();
    Backend::Postgres.run_blocking(|| write_restart_verify(&python, "stripe_python_check.py", &[]));
}

#[test]
fn stripe_node_works_unchanged_on_postgres() {
    let modules = stripe_node_modules();
    Backend::Postgres.run_blocking(|| {
        write_restart_verify(
            Path::new("node"),
            "stripe_node_check.js",
            &[("NODE_PATH", &modules)],
        )
    });
}

#[test]
fn omise_python_works_unchanged_on_postgres() {
    let python = omise_python();
    Backend::Postgres.run_blocking(|| write_restart_verify(&python, "omise_python_check.py", &[]));
}

#[test]
fn stripe_python_works_unchanged() {
    let python = stripe_python();
    write_restart_verify(&python, "stripe_python_check.py", &[]);
}

#[test]
fn stripe_node_works_unchanged() {
    let modules = stripe_node_modules();
    write_restart_verify(
        Path::new("node"),
        "stripe_node_check.js",
        &[("NODE_PATH", &modules)],
    );
}

/// An uncaptured charge expires on its own and omise-python sees it, and its capture's error.
#[test]
fn omise_python_sees_an_authorization_expire() {
    let python = omise_python();
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = TestServer::start_with_args(
        &directory.path().join("data"),
        &[OMISE_SECRET_KEY],
        &[
            "--omise-authorization-lifetime-secs",
            "1",
            "--expiry-sweep-ms",
            "100",
        ],
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("sdk")
        .join("omise_python_expiry.py");
    let mut command = Command::new(&python);
    command
        .arg(&script)
        .env("CHARGELEDGER_URL", &server.base_url)
        .env("CHARGELEDGER_OMISE_SECRET_KEY", OMISE_SECRET_KEY)
        .env("CHARGELEDGER_OMISE_PUBLIC_KEY", OMISE_PUBLIC_KEY);
    run(&mut command, &script.display().to_string());
}

#[test]
fn omise_python_works_unchanged() {
    let python = omise_python();
    write_restart_verify(&python, "omise_python_check.py", &[]);
}

//! Which event store a test runs on, so one test body covers both backends.
//!
//! `on_both_backends!(test_a, test_b)` turns each listed `async fn` into two tests,
//! `on_sled::test_a` and `on_postgres::test_a`. The helpers that open a ledger or start a
//! server (`open_ledger`, `TestServer::start`…) ask `current()` which store to use.

use std::path::Path;

use chargeledger::Ledger;
use chargeledger::ledger::LedgerOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sled,
    Postgres,
}

tokio::task_local! {
    static BACKEND: Backend;
}

thread_local! {
    static BLOCKING_BACKEND: std::cell::Cell<Backend> = const { std::cell::Cell::new(Backend::Sled) };
}

impl Backend {
    /// Run an async test body with this backend as the current one.
    pub async fn run(self, test: impl std::future::Future<Output = ()>) {
        BACKEND.scope(self, test).await
    }

    /// Run a blocking test body with this backend as the current one on this thread.
    pub fn run_blocking(self, test: impl FnOnce()) {
        BLOCKING_BACKEND.with(|backend| backend.set(self));
        test();
        BLOCKING_BACKEND.with(|backend| backend.set(Backend::Sled));
    }
}

/// The backend of the running test (sled outside `on_both_backends!` and `run_blocking`).
pub fn current() -> Backend {
    BACKEND
        .try_with(|backend| *backend)
        .unwrap_or_else(|_| BLOCKING_BACKEND.with(std::cell::Cell::get))
}

/// Open the ledger a test keeps in `data_directory`: that directory for sled, a schema named
/// after it for PostgreSQL. Opening the same directory again reopens the same ledger.
pub async fn open_ledger_at(data_directory: &Path, options: LedgerOptions) -> Ledger {
    match current() {
        Backend::Sled => Ledger::open_with(data_directory, options)
            .await
            .expect("open the sled ledger"),
        Backend::Postgres => {
            let url = super::postgres::database_url_for(data_directory);
            Ledger::open_postgres(&url, options)
                .await
                .expect("open the PostgreSQL ledger")
        }
    }
}

/// Generate `on_sled::name` and `on_postgres::name` for each listed `async fn name()`;
/// `on_both_backends!(multi_thread: …)` runs them on tokio's multi-threaded runtime.
#[macro_export]
macro_rules! on_both_backends {
    (multi_thread: $($test:ident),* $(,)?) => {
        $crate::on_both_backends!(@generate (flavor = "multi_thread", worker_threads = 4) $($test),*);
    };
    ($($test:ident),* $(,)?) => {
        $crate::on_both_backends!(@generate () $($test),*);
    };
    (@generate $flavor:tt $($test:ident),*) => {
        mod on_sled {
            $(
                #[tokio::test $flavor]
                async fn $test() {
                    $crate::common::backend::Backend::Sled.run(super::$test()).await
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test $flavor]
                async fn $test() {
                    $crate::common::backend::Backend::Postgres.run(super::$test()).await
                }
            )*
        }
    };
}

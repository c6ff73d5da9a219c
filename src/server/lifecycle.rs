//! What surrounds serving: checks before start, the startup line's wording, the server's identity for leases, shutdown signals and the hourly idempotency purge.

use std::future::Future;
use std::time::Duration;

use tracing::{info, warn};

use super::{
    IDEMPOTENCY_PURGE_INTERVAL, MIN_IDEMPOTENCY_RETENTION_HOURS, SECONDS_PER_HOUR, ServeError,
    ServeOptions,
};
use crate::ledger::Ledger;

/// The startup line's account of where things are kept; never a database password.
pub(super) fn ledger_location(options: &ServeOptions) -> String {
    match &options.database_url {
        None => format!("data: {}", options.data_directory.display()),
        #[cfg(feature = "postgres")]
        Some(url) => format!(
            "ledger: {}, keys: {}",
            crate::store::postgres::describe_database_url(url),
            options.data_directory.display()
        ),
        #[cfg(not(feature = "postgres"))]
        Some(_) => format!("data: {}", options.data_directory.display()),
    }
}

/// Stripe keeps idempotency keys at least 24 hours; refuse a shorter retention before opening anything.
pub(super) fn check_retention(options: &ServeOptions) -> Result<(), ServeError> {
    let retention_hours = options.idempotency_retention.as_secs() / SECONDS_PER_HOUR;
    if retention_hours < MIN_IDEMPOTENCY_RETENTION_HOURS {
        return Err(ServeError::RetentionTooShort {
            hours: retention_hours,
        });
    }
    Ok(())
}

/// A future that resolves on SIGTERM or Ctrl-C. The handlers are registered when this is
/// called, not when the future is first polled: a supervisor may send SIGTERM as soon as it
/// reads the startup line, and a signal that arrives before registration kills the process
/// with the default action instead of shutting it down cleanly.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let (mut interrupt, mut terminate) = match (interrupt, terminate) {
                (Ok(interrupt), Ok(terminate)) => (interrupt, terminate),
                (Err(error), _) | (_, Err(error)) => {
                    warn!(%error, "cannot listen for SIGTERM and Ctrl-C; stop the server with SIGKILL");
                    return std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = interrupt.recv() => info!("Ctrl-C received; finishing in-flight requests"),
                _ = terminate.recv() => info!("SIGTERM received; finishing in-flight requests"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        info!("Ctrl-C received; finishing in-flight requests");
    }
}

/// Forget idempotency keys older than the retention, hourly.
pub(super) async fn purge_idempotency_keys(ledger: Ledger, retention: Duration) {
    let mut interval = tokio::time::interval(IDEMPOTENCY_PURGE_INTERVAL);
    loop {
        interval.tick().await;
        match ledger.purge_idempotency_keys(retention).await {
            Ok(0) => {}
            Ok(removed) => info!(removed, "forgot expired idempotency keys"),
            Err(error) => {
                warn!(%error, "could not purge expired idempotency keys; will try again in an hour")
            }
        }
    }
}

/// Expire the Omise accounts' uncaptured authorizations as they come due, every `interval`.
pub(super) async fn expire_authorizations(
    ledger: Ledger,
    accounts: Vec<String>,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        for account in &accounts {
            let request = crate::events::RequestMeta::library().with_actor("expiry sweep");
            match ledger.expire_due_authorizations(account, request).await {
                Ok(0) => {}
                Ok(expired) => info!(%account, expired, "expired uncaptured Omise authorizations"),
                Err(error) => warn!(
                    %account, %error,
                    "could not expire due Omise authorizations; the next sweep tries again (captures of due ones are refused meanwhile)"
                ),
            }
        }
    }
}

/// This server's name for the deliveries it leases: kept in `<data>/server-id`, made on first
/// start, so that a restart takes back what the last run had claimed.
pub(super) fn server_identity(data_directory: &std::path::Path) -> Result<String, std::io::Error> {
    let path = data_directory.join("server-id");
    match std::fs::read_to_string(&path) {
        Ok(identity) if !identity.trim().is_empty() => Ok(identity.trim().to_string()),
        Ok(_) => Err(std::io::Error::other(format!(
            "{} is empty; delete it and restart to get a new server id",
            path.display()
        ))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let identity = format!("server_{}", uuid::Uuid::new_v4().simple());
            crate::store::permissions::write_private_file(&path, identity.as_bytes())?;
            Ok(identity)
        }
        Err(error) => Err(error),
    }
}

/// An SMTP URL for the startup line: scheme, host and port, never the credentials.
pub(super) fn describe_smtp_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("smtp", url));
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = host.split(['/', '?']).next().unwrap_or_default();
    format!("{scheme}://{host}")
}

//! Connections to PostgreSQL, in plain TCP or a Unix socket, or in TLS verified with rustls.
//!
//! `sslmode=require` in the URL, or a CA file (`--database-ca-file`), asks for TLS: the server's
//! certificate must chain to the system's roots or that file and name the host connected to.
//! Without either (`sslmode=prefer`, the default, or `disable`) connections are plain: unlike
//! libpq, `prefer` does not try an unverified TLS first, since an unverified TLS protects
//! nothing that a private network does not.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls, Notification, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;
use tracing::warn;

use crate::store::StoreError;

/// How this store's connections are made; chosen once, from the URL and the CA file.
#[derive(Clone)]
pub(super) enum Tls {
    Plain,
    Verified(MakeRustlsConnect),
}

impl Tls {
    pub(super) fn for_config(
        config: &tokio_postgres::Config,
        ca_file: Option<&Path>,
    ) -> Result<Tls, StoreError> {
        if config.get_ssl_mode() != SslMode::Require && ca_file.is_none() {
            return Ok(Tls::Plain);
        }
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            warn!(%error, "a system root certificate could not be read");
        }
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = ca_file {
            let unreadable = |detail: String| {
                StoreError::Database(format!(
                    "cannot use {} as the database's CA file: {detail}",
                    path.display()
                ))
            };
            let certificates = CertificateDer::pem_file_iter(path)
                .map_err(|error| unreadable(error.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| unreadable(error.to_string()))?;
            if certificates.is_empty() {
                return Err(unreadable("it holds no PEM certificate".into()));
            }
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|error| unreadable(error.to_string()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| StoreError::Database(format!("TLS setup failed: {error}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls::Verified(MakeRustlsConnect::new(tls)))
    }

    /// Connect one client and drive its connection on a task of its own, forwarding any
    /// notifications (LISTEN) to `notifications`.
    pub(super) async fn connect(
        &self,
        config: &tokio_postgres::Config,
        notifications: Option<mpsc::UnboundedSender<Notification>>,
    ) -> Result<Client, tokio_postgres::Error> {
        match self {
            Tls::Plain => connect_with(config, NoTls, notifications).await,
            Tls::Verified(tls) => connect_with(config, tls.clone(), notifications).await,
        }
    }

    /// The connector for deadpool's pool.
    pub(super) fn manager(
        &self,
        config: tokio_postgres::Config,
        manager_config: deadpool_postgres::ManagerConfig,
    ) -> deadpool_postgres::Manager {
        match self {
            Tls::Plain => deadpool_postgres::Manager::from_config(config, NoTls, manager_config),
            Tls::Verified(tls) => {
                deadpool_postgres::Manager::from_config(config, tls.clone(), manager_config)
            }
        }
    }
}

async fn connect_with<T>(
    config: &tokio_postgres::Config,
    tls: T,
    notifications: Option<mpsc::UnboundedSender<Notification>>,
) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(drive(connection, notifications));
    Ok(client)
}

/// Drive a connection until it closes (its client dropped, or the server gone).
async fn drive<S, T>(
    mut connection: Connection<S, T>,
    notifications: Option<mpsc::UnboundedSender<Notification>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|context| connection.poll_message(context)).await {
            Some(Ok(AsyncMessage::Notification(notification))) => {
                if let Some(notifications) = &notifications
                    && notifications.send(notification).is_err()
                {
                    return;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                warn!(error = %super::describe_error(&error), "a PostgreSQL connection ended with an error");
                return;
            }
            None => return,
        }
    }
}

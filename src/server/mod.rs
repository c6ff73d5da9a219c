//! `chargeledger serve`: the HTTP shell around the ledger, speaking Stripe's and Omise's charge APIs so that the official SDKs work unchanged.
//!
//! Every request passes one middleware (`authenticate`): it gives the request a `req_…` id,
//! tells the dialect from the path (`/v1/…` is Stripe, everything else Omise), recognises the
//! API key (which must belong to that dialect), refuses publishable keys on writes, and stamps
//! `Request-Id` and `Stripe-Version` or `Omise-Version` on the response whatever happened.
//! Stripe handlers (`stripe`) read parameters (`params`), call the `Ledger`, and render Stripe
//! objects (`objects`); Omise handlers live in `omise`. Writes with an `Idempotency-Key` go
//! through `idempotency`.

pub mod auth;
pub mod delivery;
pub mod form;
pub mod idempotency;
mod lifecycle;
pub mod listener;
pub mod omise;
pub mod paging;
mod request;
pub mod simulate;
pub mod stripe;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use thiserror::Error;
use tokio::net::TcpListener;
use tracing::{debug, info};

use crate::events::RequestMeta;
use crate::ledger::{Ledger, LedgerError};
use crate::server::auth::{AuthFailure, Caller, Dialect, KeyError, KeyKind, KeyRing, KeySource};
use crate::server::idempotency::InFlightKeys;
pub use crate::server::lifecycle::shutdown_signal;
use crate::server::lifecycle::{
    check_retention, describe_smtp_url, expire_authorizations, ledger_location,
    purge_idempotency_keys, server_identity,
};
pub use crate::server::listener::ConnectionLimits;
use crate::server::request::{buffer_body, oversized_head, read_call_headers};
use crate::server::stripe::error::ApiError;

/// Request bodies larger than this get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Request targets (path and query) longer than this get 414 in the dialect's shape. hyper
/// (through the `http` crate) cannot hold a target over 65,534 bytes at all and answers those
/// with its own bare 414, so this limit sits below that.
pub const MAX_URI_BYTES: usize = 32 * 1024;
/// Header names and values together larger than this get 431 in the dialect's shape.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// More headers than this get 431 in the dialect's shape (hyper's own default limit).
pub const MAX_HEADER_COUNT: usize = 100;
/// Stripe's guarantee, and the least this server accepts.
pub const MIN_IDEMPOTENCY_RETENTION_HOURS: u64 = 24;
/// How often expired idempotency keys are purged.
const IDEMPOTENCY_PURGE_INTERVAL: Duration = Duration::from_secs(SECONDS_PER_HOUR);
pub const SECONDS_PER_HOUR: u64 = 3600;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub address: SocketAddr,
    pub data_directory: PathBuf,
    /// Secret keys (`sk_test_…`, `sk_live_…`, `skey_test_…`, `skey_live_…`); empty: use or
    /// generate the data directory's keys.
    pub api_keys: Vec<String>,
    /// How long an idempotency key's first response is kept (at least 24 hours).
    pub idempotency_retention: Duration,
    /// Connection limits and timeouts.
    pub limits: ConnectionLimits,
    /// The most memory the store's page cache may hold, in bytes.
    pub cache_capacity_bytes: u64,
    /// How many writes may wait at once; more are answered 429 in the dialect's shape.
    pub max_pending_writes: usize,
    /// A PostgreSQL database to keep the ledger in instead of `data_directory`'s sled store
    /// (which then holds only the API key file). Needs the `postgres` feature.
    pub database_url: Option<String>,
    /// With `database_url`: a PEM file of CA certificates the database's TLS certificate may
    /// chain to (asks for TLS).
    pub database_ca_file: Option<PathBuf>,
    /// How webhooks and receipts are delivered. An empty `public_url` is taken from the bound
    /// address.
    pub deliveries: delivery::DeliveryOptions,
    /// How long an uncaptured Omise authorization is held before it expires.
    pub omise_authorization_lifetime: Duration,
    /// How often due Omise authorizations are looked for and expired.
    pub expiry_sweep_interval: Duration,
}

impl ServeOptions {
    /// Serve `data_directory` on `address` with its own or generated keys and default limits.
    pub fn new(address: SocketAddr, data_directory: impl Into<PathBuf>) -> Self {
        let data_directory: PathBuf = data_directory.into();
        ServeOptions {
            address,
            data_directory: data_directory.clone(),
            api_keys: Vec::new(),
            idempotency_retention: Duration::from_secs(
                MIN_IDEMPOTENCY_RETENTION_HOURS * SECONDS_PER_HOUR,
            ),
            limits: ConnectionLimits::default(),
            cache_capacity_bytes: crate::store::DEFAULT_CACHE_CAPACITY_BYTES,
            max_pending_writes: crate::ledger::DEFAULT_MAX_PENDING_WRITES,
            database_url: None,
            database_ca_file: None,
            deliveries: delivery::DeliveryOptions::new(data_directory_outbox(&data_directory)),
            omise_authorization_lifetime: Duration::from_secs(
                crate::domain::omise::AUTHORIZATION_LIFETIME_SECONDS.unsigned_abs(),
            ),
            expiry_sweep_interval: DEFAULT_EXPIRY_SWEEP_INTERVAL,
        }
    }
}

/// How often due Omise authorizations are expired by default.
pub const DEFAULT_EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Where receipts are written when no SMTP server is given: `<data>/outbox/receipts`.
pub fn data_directory_outbox(data_directory: &std::path::Path) -> PathBuf {
    data_directory.join("outbox").join("receipts")
}

/// Why the server could not start or stopped abnormally.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("cannot open the ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "idempotency keys must be kept at least {MIN_IDEMPOTENCY_RETENTION_HOURS} hours, as on Stripe; {hours} was given"
    )]
    RetentionTooShort { hours: u64 },
    #[error("cannot set up deliveries: {0}")]
    Deliveries(String),
    #[cfg(not(feature = "postgres"))]
    #[error(
        "this chargeledger was built without the `postgres` feature; rebuild with it to use a database URL"
    )]
    NoPostgres,
}

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    pub ledger: Ledger,
    keys: Arc<KeyRing>,
    pub in_flight: InFlightKeys,
    body_read_timeout: Duration,
}

/// Who is calling and how, as the middleware established it.
#[derive(Debug, Clone)]
pub struct Call {
    pub caller: Caller,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    /// The client's `User-Agent`, recorded as the request's source in the audit trail.
    pub user_agent: Option<String>,
}

impl Call {
    /// The audit record of this request.
    pub fn request_meta(&self) -> RequestMeta {
        RequestMeta {
            request_id: self.request_id.clone(),
            idempotency_key: self.idempotency_key.clone(),
            actor: self.caller.masked_key.clone(),
            source: self.user_agent.clone(),
        }
    }
}

/// A server bound to its address, ready to run.
pub struct BoundServer {
    listener: TcpListener,
    app: App,
    limits: ConnectionLimits,
    retention: Duration,
    /// How often due Omise authorizations are expired.
    expiry_sweep_interval: Duration,
    key_source: KeySource,
    data_directory: PathBuf,
    /// Where the ledger is kept, for the startup line: the data directory, or the database.
    ledger_location: String,
    /// Sends what the outbox holds; started by `run`.
    delivery_worker: delivery::DeliveryWorker,
    /// Where receipts go, for the startup line.
    receipts_location: String,
}

impl BoundServer {
    /// Open the ledger, set up the keys and bind the address.
    pub async fn bind(options: ServeOptions) -> Result<Self, ServeError> {
        check_retention(&options)?;
        let ledger_options = crate::ledger::LedgerOptions {
            cache_capacity_bytes: options.cache_capacity_bytes,
            max_pending_writes: options.max_pending_writes,
            database_ca_file: options.database_ca_file.clone(),
            ..crate::ledger::LedgerOptions::default()
        };
        let ledger = match &options.database_url {
            None => Ledger::open_with(&options.data_directory, ledger_options).await?,
            #[cfg(feature = "postgres")]
            Some(url) => {
                // The directory still holds the API key file.
                crate::store::permissions::create_private_directory(&options.data_directory)
                    .map_err(|error| ServeError::Ledger(error.into()))?;
                Ledger::open_postgres(url, ledger_options).await?
            }
            #[cfg(not(feature = "postgres"))]
            Some(_) => return Err(ServeError::NoPostgres),
        };
        BoundServer::bind_with_ledger(options, ledger).await
    }

    /// Serve a ledger the caller opened itself (an embedder's, or a test's with injected
    /// faults). `options.data_directory` must be the ledger's: the keys are kept there.
    pub async fn bind_with_ledger(
        options: ServeOptions,
        ledger: Ledger,
    ) -> Result<Self, ServeError> {
        check_retention(&options)?;
        let (keys, key_source) =
            KeyRing::load_or_generate(&options.api_keys, &options.data_directory)?;
        let listener =
            TcpListener::bind(options.address)
                .await
                .map_err(|source| ServeError::Bind {
                    address: options.address,
                    source,
                })?;
        let mut deliveries = options.deliveries.clone();
        deliveries.claimant = server_identity(&options.data_directory)
            .map_err(|error| ServeError::Ledger(error.into()))?;
        if deliveries.public_url.is_empty() {
            let address = listener.local_addr().map_err(|source| ServeError::Bind {
                address: options.address,
                source,
            })?;
            deliveries.public_url = format!("http://{address}");
        }
        let ledger = ledger
            .with_side_effect_rules(crate::domain::SideEffectRules {
                receipts: true,
                omise_webhook_url: deliveries.omise_webhook_url.clone(),
            })
            .with_omise_authorization_lifetime(options.omise_authorization_lifetime);
        let receipts_location = match &deliveries.receipts {
            delivery::ReceiptTransport::Smtp(url) => {
                format!("receipts: {}", describe_smtp_url(url))
            }
            delivery::ReceiptTransport::Files(directory) => {
                format!("receipts: .eml files in {}", directory.display())
            }
        };
        let delivery_worker = delivery::DeliveryWorker::new(ledger.clone(), deliveries)
            .map_err(ServeError::Deliveries)?;
        Ok(BoundServer {
            delivery_worker,
            receipts_location,
            listener,
            app: App {
                ledger,
                keys: Arc::new(keys),
                in_flight: InFlightKeys::default(),
                body_read_timeout: options.limits.body_read_timeout,
            },
            limits: options.limits,
            retention: options.idempotency_retention,
            expiry_sweep_interval: options.expiry_sweep_interval,
            key_source,
            ledger_location: ledger_location(&options),
            data_directory: options.data_directory,
        })
    }

    pub fn local_address(&self) -> Result<SocketAddr, std::io::Error> {
        self.listener.local_addr()
    }

    /// What to tell the person who started the server: where it listens and which key to use.
    pub fn startup_message(&self) -> String {
        let address = self
            .local_address()
            .map_or_else(|_| "?".to_string(), |address| address.to_string());
        let mut lines = vec![format!(
            "chargeledger listening on http://{address} ({}; {})",
            self.ledger_location, self.receipts_location
        )];
        match &self.key_source {
            KeySource::Generated {
                secret_key,
                omise_secret_key,
            } => {
                lines.push(format!("Generated a test secret key: {secret_key}"));
                lines.push(format!(
                    "Generated an Omise test secret key: {omise_secret_key} (its public key is pkey_test_{})",
                    omise_secret_key.trim_start_matches("skey_test_")
                ));
                lines.push(format!(
                    "They are shown only now; {} keeps only their hashes. The Stripe key's publishable twin is pk_test_{}.",
                    self.data_directory.join(auth::KEY_FILE_NAME).display(),
                    secret_key.trim_start_matches("sk_test_")
                ));
            }
            KeySource::Stored | KeySource::Configured => {
                for (account, masked_key) in self.app.keys.accounts() {
                    lines.push(format!("Accepting {masked_key} (account {account})"));
                }
            }
        }
        lines.join("\n")
    }

    /// Serve until `shutdown` completes, then finish in-flight requests and close the store.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let ledger = self.app.ledger.clone();
        let purger = tokio::spawn(purge_idempotency_keys(ledger.clone(), self.retention));
        let sweeper = tokio::spawn(expire_authorizations(
            ledger.clone(),
            self.app.keys.omise_accounts(),
            self.expiry_sweep_interval,
        ));
        let deliverer = tokio::spawn(self.delivery_worker.run());
        let router = router(self.app);
        listener::serve(self.listener, router, self.limits, shutdown).await;
        purger.abort();
        sweeper.abort();
        // Attempts in flight are abandoned; their leases make them due again after a restart.
        deliverer.abort();
        info!("stopped serving requests; closing the store");
        ledger.close().await?;
        info!("store closed cleanly");
        Ok(())
    }
}

/// The whole HTTP surface.
pub fn router(app: App) -> Router {
    let authenticated = stripe::routes()
        .merge(omise::routes())
        .fallback(unknown_path)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            authenticate,
        ));
    // Receipt links are shared with the payer, who has no key (as Stripe's are).
    Router::new()
        .route(
            "/receipts/{account}/{charge}",
            axum::routing::get(delivery::receipt_page),
        )
        .merge(authenticated)
        .with_state(app)
}

/// Which dialect a path belongs to: Stripe's API lives under `/v1`, Omise's has no prefix.
pub fn path_dialect(path: &str) -> Dialect {
    if path == "/v1" || path.starts_with("/v1/") {
        Dialect::Stripe
    } else {
        Dialect::Omise
    }
}

/// Omise's vault: the only routes its public key (`pkey_`) may use.
fn is_vault_path(path: &str) -> bool {
    path == "/tokens" || path.starts_with("/tokens/")
}

async fn unknown_path(method: Method, uri: axum::http::Uri) -> Response {
    match path_dialect(uri.path()) {
        Dialect::Stripe => unrecognized_url(method, uri).await.into_response(),
        Dialect::Omise => omise::unknown_path(method, uri).await.into_response(),
    }
}

pub(crate) async fn unrecognized_url(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::unrecognized_url(method.as_str(), uri.path())
}

/// The key from `Authorization: Bearer <key>` or HTTP Basic with the key as user name.
fn presented_key(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, credentials) = value.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(credentials.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let user = decoded
            .split_once(':')
            .map_or(decoded.as_str(), |(user, _)| user);
        return Some(user.to_string());
    }
    None
}

/// Request id, authentication, and the headers every response carries.
async fn authenticate(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let request_id = crate::ids::request_id();
    let headers = request.headers();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let dialect = path_dialect(&path);
    let version_header = match dialect {
        Dialect::Stripe => "stripe-version",
        Dialect::Omise => "omise-version",
    };
    let version = headers.get(version_header).cloned().or_else(|| {
        (dialect == Dialect::Omise)
            .then(|| HeaderValue::from_static(omise::objects::OMISE_API_VERSION))
    });
    if let Some((status, message)) = oversized_head(&request) {
        debug!(%request_id, %method, status = status.as_u16(), "refused: the request head is too large");
        let mut response = refusal_in_dialect(dialect, status, message);
        stamp_request_headers(&mut response, &request_id, version_header, version);
        return response;
    }
    let refusal = match app.keys.authenticate(presented_key(headers).as_deref()) {
        Err(failure) => Err(failure),
        // A key of the other dialect is not a key of this API.
        Ok(caller) if caller.dialect != dialect => Err(AuthFailure::Invalid {
            masked_key: caller.masked_key,
        }),
        Ok(caller) => Ok(caller),
    };
    let mut response = match (dialect, refusal) {
        (Dialect::Stripe, Err(failure)) => {
            debug!(%request_id, %method, %path, "refused: no valid API key");
            ApiError::unauthorized(&failure).into_response()
        }
        (Dialect::Omise, Err(_)) => {
            debug!(%request_id, %method, %path, "refused: no valid Omise key");
            omise::error::OmiseError::authentication_failure().into_response()
        }
        // Stripe lets a publishable key create tokens and nothing this server has: reads of
        // charges, refunds, customers, events and the audit history are refused like writes.
        (Dialect::Stripe, Ok(caller)) if caller.kind == KeyKind::Publishable => {
            debug!(%request_id, %method, %path, "refused: a publishable key");
            ApiError::publishable_key().into_response()
        }
        (Dialect::Omise, Ok(caller))
            if caller.kind == KeyKind::Publishable && !is_vault_path(&path) =>
        {
            debug!(%request_id, %method, %path, "refused: an Omise public key outside the vault");
            omise::error::OmiseError::authentication_failure().into_response()
        }
        (_, Ok(caller)) => match (
            read_call_headers(headers, &method),
            simulate::requested_fault(headers),
        ) {
            (_, Err(refused)) => {
                debug!(%request_id, %method, %path, %refused, "refused: a bad Chargeledger-Simulate header");
                simulate::refuse(dialect, refused)
            }
            (Ok(_), Ok(Some(fault))) => {
                debug!(%request_id, %method, %path, ?fault, "answered with a simulated fault");
                simulate::answer(fault, dialect).await
            }
            (Ok((idempotency_key, user_agent)), Ok(None)) => {
                let call = Call {
                    request_id: request_id.clone(),
                    idempotency_key,
                    user_agent,
                    caller,
                };
                request.extensions_mut().insert(call);
                match buffer_body(request, app.body_read_timeout).await {
                    Ok(request) => next.run(request).await,
                    Err((status, message)) => {
                        debug!(%request_id, %method, %path, status = status.as_u16(), "refused: the body");
                        refusal_in_dialect(dialect, status, message)
                    }
                }
            }
            (Err(refused), Ok(_)) => {
                debug!(%request_id, %method, %path, %refused, "refused: an unreadable header");
                match dialect {
                    Dialect::Stripe => {
                        ApiError::invalid_request(refused.to_string(), None, None).into_response()
                    }
                    Dialect::Omise => {
                        omise::error::OmiseError::bad_request(refused.to_string()).into_response()
                    }
                }
            }
        },
    };
    if !is_json(&response)
        && (response.status().is_client_error() || response.status().is_server_error())
    {
        response = error_in_dialect_shape(response, dialect).await;
    }
    stamp_request_headers(&mut response, &request_id, version_header, version);
    debug!(
        %request_id,
        %method,
        %path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "answered"
    );
    response
}

/// `Request-Id` and the dialect's version header, on every response whatever happened.
fn stamp_request_headers(
    response: &mut Response,
    request_id: &str,
    version_header: &'static str,
    version: Option<HeaderValue>,
) {
    let response_headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response_headers.insert("request-id", value);
    }
    if let Some(version) = version {
        response_headers.insert(version_header, version);
    }
}

/// A refusal the server makes before any handler runs, in the dialect's error shape.
fn refusal_in_dialect(dialect: Dialect, status: StatusCode, message: String) -> Response {
    match dialect {
        Dialect::Omise => {
            let code = if status.is_server_error() {
                "internal_error"
            } else {
                "bad_request"
            };
            omise::error::OmiseError::new(status, code, message).into_response()
        }
        Dialect::Stripe => {
            let error_type = if status.is_server_error() {
                stripe::error::ErrorType::ApiError
            } else {
                stripe::error::ErrorType::InvalidRequestError
            };
            ApiError::new(status, error_type, message, None, None).into_response()
        }
    }
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// A plain-text error from axum or hyper (a path that cannot be decoded, say) as the dialect's
/// error body, so that clients only ever see one error shape.
async fn error_in_dialect_shape(response: Response, dialect: Dialect) -> Response {
    const MAX_MESSAGE_BYTES: usize = 64 * 1024;
    let status = response.status();
    let text = axum::body::to_bytes(response.into_body(), MAX_MESSAGE_BYTES)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("Error").to_string()
    } else {
        text
    };
    refusal_in_dialect(dialect, status, message)
}

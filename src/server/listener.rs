//! Accepting connections so that no client can hold the server hostage: a connection limit, header-read and idle timeouts, bounded request heads, and graceful shutdown.
//!
//! `axum::serve` has none of these knobs, so connections are served here with hyper's HTTP/1
//! builder directly. What each limit protects against:
//! - `max_connections`: one client opening sockets until the process runs out of descriptors.
//!   At the limit the server stops accepting (new clients wait in the kernel's backlog) until a
//!   connection closes; the timeouts below guarantee that one does.
//! - `header_read_timeout`: a client sending its request head a byte at a time (slowloris).
//!   hyper starts this timer as soon as it waits for a request, so it also bounds the wait
//!   for the first request on a new connection.
//! - `idle_timeout`: a connection on which nothing moves in either direction, such as an idle
//!   keep-alive connection or a client that never reads its response.
//! - `body_read_timeout` (enforced by the `authenticate` middleware, which buffers bodies): a
//!   body that never finishes, however slowly it trickles.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tracing::{debug, info, warn};

/// The largest request head (request line and headers) hyper buffers. It is larger than the
/// limits the middleware checks (`MAX_URI_BYTES`, `MAX_HEADER_BYTES`), so that a request over
/// those gets an answer in its dialect's shape; only a head over this gets hyper's own bare 431.
pub const MAX_REQUEST_HEAD_BYTES: usize = 512 * 1024;
/// How many headers hyper parses; more get hyper's own bare 431. The middleware refuses more
/// than `MAX_HEADER_COUNT` in the dialect's shape.
pub const MAX_PARSED_HEADERS: usize = 1000;
/// How long a graceful shutdown waits for in-flight requests before closing their connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long to wait before accepting again after `accept` failed (out of descriptors, say).
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// Limits on what one connection may take from the server. All are configurable on the
/// command line (`chargeledger serve --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; further clients wait to be accepted.
    pub max_connections: usize,
    /// How long a client may take to send a request's head, from when the server waits for it.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body once its head has arrived.
    pub body_read_timeout: Duration,
    /// How long a connection may go without a byte read or written before it is closed.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    /// Generous for any real client (the SDKs send a request in one write), short enough that
    /// a stalled one frees its slot within a minute or so.
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
        }
    }
}

/// Serve `router` on `listener` until `shutdown` resolves, then stop accepting, let in-flight
/// requests finish (up to `SHUTDOWN_GRACE`), and return.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_REQUEST_HEAD_BYTES)
        .max_headers(MAX_PARSED_HEADERS);
    let service = TowerToHyperService::new(router);
    tokio::pin!(shutdown);
    loop {
        if slots.available_permits() == 0 {
            warn!(
                max_connections = limits.max_connections,
                "connection limit reached; new connections wait until one closes (raise --max-connections if this is real load)"
            );
        }
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else {
            // The semaphore is never closed; if it were, no connection could be served.
            warn!("the connection limiter was closed; stopping");
            break;
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "cannot accept a connection; retrying shortly");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    continue;
                }
            },
        };
        // Responses are small and latency matters more than packet count.
        if let Err(error) = stream.set_nodelay(true) {
            debug!(%error, %peer, "cannot set TCP_NODELAY");
        }
        let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout));
        let connection = graceful.watch(builder.serve_connection(io, service.clone()));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    info!("stopped accepting connections; waiting for in-flight requests");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "some connections were still busy after the grace period; closing them"
        );
    }
}

/// A TCP stream that fails with `TimedOut` once nothing has been read or written for `idle`.
struct IdleTimeout {
    stream: TcpStream,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl IdleTimeout {
    fn new(stream: TcpStream, idle: Duration) -> Self {
        IdleTimeout {
            stream,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    /// A write's outcome: bytes written count as movement; a write that cannot proceed times
    /// out once the connection has been idle too long (a client that never reads).
    fn after_write(
        &mut self,
        polled: Poll<io::Result<usize>>,
        context: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(result) => {
                if matches!(result, Ok(written) if written > 0) {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_idle(context),
        }
    }

    /// Called when the stream itself is not ready: time out if the deadline has passed.
    fn poll_idle<T>(&mut self, context: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(context) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "nothing was sent or received for {} s",
                    self.idle.as_secs_f64()
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let filled_before = buffer.filled().len();
        match Pin::new(&mut this.stream).poll_read(context, buffer) {
            Poll::Ready(result) => {
                if buffer.filled().len() > filled_before {
                    this.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_idle(context),
        }
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(context, bytes);
        this.after_write(polled, context)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_flush(context) {
            Poll::Pending => this.poll_idle(context),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(context, buffers);
        this.after_write(polled, context)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

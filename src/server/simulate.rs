//! Faults on demand: `Chargeledger-Simulate: rate_limit|api_error|timeout` makes an authenticated request fail the way the real API can fail, so an integration's retry logic can be exercised. Nothing is appended for a simulated fault.
//!
//! An extension of ours; neither Stripe nor Omise has it. The fault is answered before the
//! request reaches any handler, so it never touches the ledger, and a retry without the header
//! (same idempotency key or not) is served normally.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::server::Dialect;
use crate::server::omise::error::OmiseError;
use crate::server::stripe::error::{ApiError, ErrorType};

/// The request header that asks for a fault.
pub const SIMULATE_HEADER: &str = "chargeledger-simulate";
/// How long a simulated `timeout` holds the answer, in milliseconds.
pub const DELAY_HEADER: &str = "chargeledger-simulate-delay-ms";
/// The default hold of `timeout`: longer than the SDKs' usual read timeouts are set to in
/// tests, and under the server's idle timeout.
pub const DEFAULT_DELAY_MS: u64 = 30_000;
/// The longest hold a client may ask for (below the 75 s idle timeout).
pub const MAX_DELAY_MS: u64 = 60_000;

/// A fault a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429: Stripe's `rate_limit`, Omise's `too_many_requests`.
    RateLimit,
    /// 500: Stripe's `api_error`, Omise's `internal_error`.
    ApiError,
    /// No answer for `delay_ms`, then a 500 saying nothing was applied.
    Timeout { delay_ms: u64 },
}

/// The fault the request's headers ask for, if any; `Err` says what is wrong with them.
pub fn requested_fault(headers: &HeaderMap) -> Result<Option<Fault>, String> {
    let Some(value) = headers.get(SIMULATE_HEADER) else {
        return Ok(None);
    };
    let delay_ms = match headers.get(DELAY_HEADER) {
        None => DEFAULT_DELAY_MS,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .filter(|delay| *delay <= MAX_DELAY_MS)
            .ok_or_else(|| {
                format!(
                    "Chargeledger-Simulate-Delay-Ms must be a whole number of milliseconds from 0 to {MAX_DELAY_MS}"
                )
            })?,
    };
    match value.to_str().map(str::trim) {
        Ok("rate_limit") => Ok(Some(Fault::RateLimit)),
        Ok("api_error") => Ok(Some(Fault::ApiError)),
        Ok("timeout") => Ok(Some(Fault::Timeout { delay_ms })),
        _ => {
            Err("Chargeledger-Simulate must be one of rate_limit, api_error or timeout".to_string())
        }
    }
}

/// The answer to a simulated fault, in the dialect's shape, after its delay.
pub async fn answer(fault: Fault, dialect: Dialect) -> Response {
    if let Fault::Timeout { delay_ms } = fault {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    let (status, message) = match fault {
        Fault::RateLimit => (
            StatusCode::TOO_MANY_REQUESTS,
            "Request rate limit exceeded (simulated by Chargeledger-Simulate: rate_limit); nothing was applied. Retry with the same idempotency key.",
        ),
        Fault::ApiError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "An error occurred with our connection to the ledger (simulated by Chargeledger-Simulate: api_error); nothing was applied. Retry with the same idempotency key.",
        ),
        Fault::Timeout { .. } => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "The request timed out (simulated by Chargeledger-Simulate: timeout); nothing was applied. Retry with the same idempotency key.",
        ),
    };
    match dialect {
        Dialect::Stripe => {
            let (error_type, code) = if status == StatusCode::TOO_MANY_REQUESTS {
                (ErrorType::InvalidRequestError, Some("rate_limit"))
            } else {
                (ErrorType::ApiError, None)
            };
            let mut error = ApiError::new(status, error_type, message, None, code);
            // Every simulated fault is safe to retry: nothing was applied.
            error.should_retry = Some(true);
            error.into_response()
        }
        Dialect::Omise => {
            let code = if status == StatusCode::TOO_MANY_REQUESTS {
                "too_many_requests"
            } else {
                "internal_error"
            };
            OmiseError::new(status, code, message).into_response()
        }
    }
}

/// A bad `Chargeledger-Simulate` header: a 400 in the dialect's shape.
pub fn refuse(dialect: Dialect, message: String) -> Response {
    match dialect {
        Dialect::Stripe => ApiError::invalid_request(message, None, None).into_response(),
        Dialect::Omise => OmiseError::bad_request(message).into_response(),
    }
}

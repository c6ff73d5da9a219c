//! Omise's error body, `{"object": "error", "location", "code", "message"}`, and how ledger failures map onto it.
//!
//! Omise's clients (python, node, ruby) ignore the HTTP status and look only for
//! `"object": "error"`; omise-go treats any non-200 as an error. Both are satisfied: errors carry
//! the status Omise uses *and* the error object.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::error;

use crate::domain::RequestError;
use crate::ledger::{Failure, IDEMPOTENCY_KEY_MAX_CHARS, LedgerError, Refusal};
use crate::store::StoreError;

/// An Omise error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OmiseError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl OmiseError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        OmiseError {
            status,
            code,
            message: message.into(),
        }
    }

    /// A malformed request: 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        OmiseError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// A charge parameter Omise checks itself: 400 `invalid_charge`.
    pub fn invalid_charge(message: impl Into<String>) -> Self {
        OmiseError::new(StatusCode::BAD_REQUEST, "invalid_charge", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        OmiseError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn authentication_failure() -> Self {
        OmiseError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_failure",
            "authentication failed",
        )
    }

    pub fn body_too_large(limit_bytes: usize) -> Self {
        OmiseError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad_request",
            format!("the request body is larger than {limit_bytes} bytes"),
        )
    }

    /// The ledger could not do its part; the cause goes to the log, not to the client.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        error!(%detail, "an Omise request failed inside the server");
        OmiseError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server could not complete the request; it was not applied, try again",
        )
    }

    /// The documentation anchor Omise puts in `location`: the code with dashes.
    pub fn location(&self) -> String {
        format!(
            "https://www.omise.co/api-errors#{}",
            self.code.replace('_', "-")
        )
    }
}

impl From<LedgerError> for OmiseError {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::Refused(refusal) => refusal.into(),
            LedgerError::Failed(failure) => failure.into(),
        }
    }
}

/// Refusals in Omise's words: Omise's own codes, and idempotency messages that do not speak of
/// Stripe's "idempotent requests".
impl From<Refusal> for OmiseError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::OmiseRequest(refusal) => {
                let status = if refusal.is_not_found() {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::BAD_REQUEST
                };
                OmiseError::new(status, refusal.code(), refusal.to_string())
            }
            Refusal::Request(RequestError::NoSuchCharge { id }) => {
                OmiseError::not_found(format!("charge {id} was not found"))
            }
            // Only reachable through the library (HTTP keeps accounts to one dialect).
            Refusal::Request(other) => OmiseError::bad_request(other.to_string()),
            Refusal::IdempotencyKeyReused { key } => OmiseError::bad_request(format!(
                "idempotency key {key} was already used for a different request; use a new key for a new request"
            )),
            Refusal::IdempotencyKeyTooLong { length_chars } => OmiseError::bad_request(format!(
                "idempotency key is {length_chars} characters; at most {IDEMPOTENCY_KEY_MAX_CHARS} are accepted"
            )),
            Refusal::IdempotencyKeyInUse { key } => OmiseError::new(
                StatusCode::CONFLICT,
                "bad_request",
                format!(
                    "another request with idempotency key {key} is still in progress; retry once it has finished"
                ),
            ),
            overloaded @ Refusal::Overloaded { .. } => OmiseError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                overloaded.to_string(),
            ),
            contention @ Refusal::Contention { .. } => OmiseError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                contention.to_string(),
            ),
            missing @ (Refusal::NoSuchVersion { .. } | Refusal::NotYetCreated { .. }) => {
                OmiseError::not_found(missing.to_string())
            }
            invalid @ Refusal::InvalidAccount { .. } => {
                OmiseError::bad_request(invalid.to_string())
            }
        }
    }
}

impl From<Failure> for OmiseError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Store(StoreError::Poisoned { .. } | StoreError::Closed) => {
                error!(%failure, "the store has stopped; restart the server, then run `chargeledger verify`");
                OmiseError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    crate::server::stripe::error::STORE_STOPPED_MESSAGE,
                )
            }
            Failure::CorruptStream { .. }
            | Failure::CorruptIdempotencyRecord { .. }
            | Failure::LogDamaged(_)
            | Failure::SearchIndexDamaged(_)
            | Failure::Store(_)
            | Failure::TaskFailed { .. }
            | Failure::Io(_) => OmiseError::internal(&failure),
        }
    }
}

impl From<StoreError> for OmiseError {
    fn from(failure: StoreError) -> Self {
        Failure::Store(failure).into()
    }
}

impl IntoResponse for OmiseError {
    fn into_response(self) -> Response {
        let body = json!({
            "object": "error",
            "location": self.location(),
            "code": self.code,
            "message": self.message,
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static(super::JSON_CONTENT_TYPE),
        );
        response
    }
}

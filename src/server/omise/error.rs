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
use crate::ledger::LedgerError;
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
    fn from(failure: LedgerError) -> Self {
        match failure {
            LedgerError::OmiseRequest(refusal) => {
                let status = if refusal.is_not_found() {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::BAD_REQUEST
                };
                OmiseError::new(status, refusal.code(), refusal.to_string())
            }
            LedgerError::Request(RequestError::NoSuchCharge { id }) => {
                OmiseError::not_found(format!("charge {id} was not found"))
            }
            LedgerError::Request(other) => OmiseError::bad_request(other.to_string()),
            reused @ (LedgerError::IdempotencyKeyReused { .. }
            | LedgerError::IdempotencyKeyTooLong { .. }) => {
                OmiseError::bad_request(reused.to_string())
            }
            in_use @ LedgerError::IdempotencyKeyInUse { .. } => {
                OmiseError::new(StatusCode::CONFLICT, "bad_request", in_use.to_string())
            }
            contention @ LedgerError::Contention { .. } => OmiseError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                contention.to_string(),
            ),
            missing @ (LedgerError::NoSuchVersion { .. } | LedgerError::NotYetCreated { .. }) => {
                OmiseError::not_found(missing.to_string())
            }
            invalid @ LedgerError::InvalidAccount { .. } => {
                OmiseError::bad_request(invalid.to_string())
            }
            LedgerError::Store(StoreError::Poisoned { .. } | StoreError::Closed) => {
                error!(%failure, "the store has stopped; restart the server, then run `chargeledger verify`");
                OmiseError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    crate::server::stripe::error::STORE_STOPPED_MESSAGE,
                )
            }
            LedgerError::CorruptStream { .. }
            | LedgerError::CorruptIdempotencyRecord { .. }
            | LedgerError::Store(_)
            | LedgerError::Io(_) => OmiseError::internal(&failure),
        }
    }
}

impl From<StoreError> for OmiseError {
    fn from(failure: StoreError) -> Self {
        LedgerError::Store(failure).into()
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

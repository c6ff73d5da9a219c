//! Stripe-shaped error responses: every failure a request can cause, as a status and an `{"error": {…}}` body.
//!
//! Request-caused failures are 4xx with Stripe's `type`, `code`, `param` and wording; failures of
//! the store are 500 `api_error`, logged with what an operator needs and shown to the client
//! without internals.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::error;

use crate::domain::events::ChargeFailure;
use crate::domain::{RefusalKind, RequestError};
use crate::ledger::{Failure, LedgerError, Refusal};
use crate::server::auth::AuthFailure;
use crate::store::StoreError;

/// Stripe's error families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    InvalidRequestError,
    ApiError,
    CardError,
    IdempotencyError,
}

/// The body of a Stripe error, under `"error"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorBody {
    #[serde(rename = "type")]
    pub error_type: ErrorType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doc_url: Option<String>,
    /// For a card error, the failed charge the attempt recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charge: Option<String>,
}

/// An error response: status, body, and whether an SDK should retry it (`Stripe-Should-Retry`).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Boxed: errors travel through every `Result` of a request, so they are kept small.
    pub body: Box<ErrorBody>,
    pub should_retry: Option<bool>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: &'a ErrorBody,
}

impl ApiError {
    /// A 400 `invalid_request_error`.
    pub fn invalid_request(
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidRequestError,
            message,
            param,
            code,
        )
    }

    pub fn new(
        status: StatusCode,
        error_type: ErrorType,
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Self {
        ApiError {
            status,
            body: Box::new(ErrorBody {
                error_type,
                code: code.map(str::to_string),
                decline_code: None,
                message: message.into(),
                param: param.map(str::to_string),
                // Stripe's pages spell the code with dashes (`card-declined`).
                doc_url: code.map(|code| {
                    format!(
                        "https://stripe.com/docs/error-codes/{}",
                        code.replace('_', "-")
                    )
                }),
                charge: None,
            }),
            should_retry: None,
        }
    }

    /// `Received unknown parameter: foo` (or `parameters: a, b`). A request with thousands of
    /// unknown names gets the first `MAX_NAMED_UNKNOWN_PARAMETERS` and a count, so a refusal
    /// never grows to the size of a hostile request.
    pub fn unknown_parameters(names: &[String]) -> Self {
        const MAX_NAMED_UNKNOWN_PARAMETERS: usize = 20;
        let message = match names {
            [one] => format!("Received unknown parameter: {one}"),
            many if many.len() > MAX_NAMED_UNKNOWN_PARAMETERS => format!(
                "Received unknown parameters: {} (and {} more)",
                many[..MAX_NAMED_UNKNOWN_PARAMETERS].join(", "),
                many.len() - MAX_NAMED_UNKNOWN_PARAMETERS
            ),
            many => format!("Received unknown parameters: {}", many.join(", ")),
        };
        ApiError::invalid_request(
            message,
            names.first().map(String::as_str),
            Some("parameter_unknown"),
        )
    }

    /// The 402 `card_error` of a declined attempt, naming the failed charge it recorded.
    pub fn declined(charge_id: &str, failure: &ChargeFailure) -> Self {
        // Stripe names the card field at fault for these two (recorded bodies; unconfirmed).
        let param = match failure.code.as_str() {
            "incorrect_cvc" => Some("cvc"),
            "expired_card" => Some("exp_month"),
            _ => None,
        };
        let mut api_error = ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            ErrorType::CardError,
            failure.message.clone(),
            param,
            Some(&failure.code),
        );
        api_error.body.decline_code = failure.decline_code.clone();
        api_error.body.charge = Some(charge_id.to_string());
        api_error
    }

    /// 404 for a path the API does not have.
    pub fn unrecognized_url(method: &str, path: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorType::InvalidRequestError,
            format!("Unrecognized request URL ({method}: {path})."),
            None,
            None,
        )
    }

    pub fn unauthorized(failure: &AuthFailure) -> Self {
        let message = match failure {
            AuthFailure::Missing => "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.".to_string(),
            AuthFailure::Invalid { masked_key } => format!("Invalid API Key provided: {masked_key}"),
        };
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorType::InvalidRequestError,
            message,
            None,
            None,
        )
    }

    pub fn publishable_key() -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorType::InvalidRequestError,
            "This API call cannot be made with a publishable API key. Please use a secret API key. You can find a list of your API keys at https://dashboard.stripe.com/account/apikeys.",
            None,
            None,
        )
    }

    pub fn body_too_large(limit_bytes: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::InvalidRequestError,
            format!("The request body is larger than the {limit_bytes} bytes this server accepts."),
            None,
            None,
        )
    }

    /// A failure inside the server. The client learns it was ours and may retry; the log gets
    /// the details.
    pub fn internal(detail: &dyn std::fmt::Display, should_retry: bool) -> Self {
        error!(%detail, "request failed inside the server");
        let mut api_error = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::ApiError,
            "An unexpected error occurred in the ledger store. The request may be retried with the same idempotency key; if this persists, the server log says why.",
            None,
            None,
        );
        api_error.should_retry = Some(should_retry);
        api_error
    }
}

impl ApiError {
    /// The store has stopped taking writes after one it could not make durable: whether that
    /// write survives is unknown until a restart, so a retry now cannot succeed.
    pub fn store_stopped(detail: &dyn std::fmt::Display) -> Self {
        error!(%detail, "the store has stopped; restart the server, then run `chargeledger verify`");
        let mut api_error = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::ApiError,
            STORE_STOPPED_MESSAGE,
            None,
            None,
        );
        api_error.should_retry = Some(false);
        api_error
    }
}

/// What a client is told when the store has stopped taking writes (both dialects).
pub const STORE_STOPPED_MESSAGE: &str = "The ledger could not make a write durable and has stopped accepting requests; this request may or may not have been applied. The server must be restarted (then `chargeledger verify` checks the data); after that, retry with the same idempotency key.";

impl From<RequestError> for ApiError {
    fn from(refusal: RequestError) -> Self {
        let (status, error_type) = match refusal.kind() {
            RefusalKind::InvalidRequest => {
                (StatusCode::BAD_REQUEST, ErrorType::InvalidRequestError)
            }
            RefusalKind::NotFound => (StatusCode::NOT_FOUND, ErrorType::InvalidRequestError),
            RefusalKind::Card => (StatusCode::PAYMENT_REQUIRED, ErrorType::CardError),
        };
        ApiError::new(
            status,
            error_type,
            refusal.to_string(),
            refusal.param(),
            refusal.code(),
        )
    }
}

impl From<LedgerError> for ApiError {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::Refused(refusal) => refusal.into(),
            LedgerError::Failed(failure) => failure.into(),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Request(refusal) => refusal.into(),
            reused @ Refusal::IdempotencyKeyReused { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorType::IdempotencyError,
                reused.to_string(),
                None,
                None,
            ),
            in_use @ Refusal::IdempotencyKeyInUse { .. } => {
                let mut api_error = ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorType::InvalidRequestError,
                    in_use.to_string(),
                    None,
                    Some("idempotency_key_in_use"),
                );
                api_error.should_retry = Some(true);
                api_error
            }
            too_long @ Refusal::IdempotencyKeyTooLong { .. } => {
                ApiError::invalid_request(too_long.to_string(), None, None)
            }
            missing @ (Refusal::NoSuchVersion { .. } | Refusal::NotYetCreated { .. }) => {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorType::InvalidRequestError,
                    missing.to_string(),
                    Some("version"),
                    Some("resource_missing"),
                )
            }
            overloaded @ Refusal::Overloaded { .. } => {
                let mut api_error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorType::InvalidRequestError,
                    format!("Too many requests hit the API too quickly: {overloaded}."),
                    None,
                    Some("rate_limit"),
                );
                api_error.should_retry = Some(true);
                api_error
            }
            Refusal::Contention { .. } => {
                let mut api_error = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorType::InvalidRequestError,
                    "This object cannot be accessed right now because another API request or Stripe process is currently accessing it. If you see this error intermittently, retry the request. If you see this error frequently and are making multiple concurrent requests to a single object, make your requests serially or at a lower rate.",
                    None,
                    Some("lock_timeout"),
                );
                api_error.should_retry = Some(true);
                api_error
            }
            // Only reachable through the library (HTTP keeps accounts to one dialect); still a
            // refusal, never a 500.
            Refusal::OmiseRequest(refusal) => {
                ApiError::invalid_request(refusal.to_string(), None, None)
            }
            invalid @ Refusal::InvalidAccount { .. } => {
                ApiError::invalid_request(invalid.to_string(), None, None)
            }
        }
    }
}

impl From<Failure> for ApiError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Store(StoreError::Poisoned { .. } | StoreError::Closed) => {
                ApiError::store_stopped(&failure)
            }
            // A damaged record stays damaged: retrying cannot help; the log says which.
            Failure::CorruptStream { .. }
            | Failure::CorruptIdempotencyRecord { .. }
            | Failure::LogDamaged(_)
            | Failure::SearchIndexDamaged(_) => ApiError::internal(&failure, false),
            Failure::Store(_) | Failure::TaskFailed { .. } | Failure::Io(_) => {
                ApiError::internal(&failure, true)
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(failure: StoreError) -> Self {
        Failure::Store(failure).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(Envelope { error: &self.body })).into_response();
        if let Some(should_retry) = self.should_retry {
            response.headers_mut().insert(
                "stripe-should-retry",
                HeaderValue::from_static(if should_retry { "true" } else { "false" }),
            );
        }
        response
    }
}

//! What the middleware reads from a request before any handler runs: the headers it records (as sent, or refused), the head's size, and the whole body within its limit and timeout.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode};
use thiserror::Error;

use crate::server::{MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_HEADER_COUNT, MAX_URI_BYTES};

/// A header this server records that it cannot record as sent.
#[derive(Debug, Error)]
pub(super) enum HeaderRefusal {
    #[error(
        "The {name} header is not valid UTF-8. Send it as UTF-8 text; it is recorded exactly as sent."
    )]
    NotUtf8 { name: &'static str },
    #[error(
        "The {name} header contains the control character U+{code_point:04X}, which is not accepted."
    )]
    ControlCharacter { name: &'static str, code_point: u32 },
}

/// A header's text, exactly as sent. HTTP lets header values carry any byte but control
/// characters, and clients send UTF-8 (`Idempotency-Key: ключ-1`): such a value is honoured,
/// never dropped, because a dropped idempotency key turns a retry into a second charge.
fn header_text(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, HeaderRefusal> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text =
        std::str::from_utf8(value.as_bytes()).map_err(|_| HeaderRefusal::NotUtf8 { name })?;
    // hyper refuses NUL, CR and LF in headers; other controls (such as a tab) pass it.
    if let Some(control) = text.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(HeaderRefusal::ControlCharacter {
            name,
            code_point: control as u32,
        });
    }
    Ok(Some(text.to_string()))
}

/// The `Idempotency-Key` (on writes) and `User-Agent` a request carries, for the audit trail.
pub(super) fn read_call_headers(
    headers: &HeaderMap,
    method: &Method,
) -> Result<(Option<String>, Option<String>), HeaderRefusal> {
    let idempotency_key = if method == Method::POST || method == Method::PATCH {
        header_text(headers, "idempotency-key")?.filter(|key| !key.is_empty())
    } else {
        None
    };
    Ok((idempotency_key, header_text(headers, "user-agent")?))
}

/// A request target or header block over this server's limits: 414 or 431, with a message.
pub(super) fn oversized_head(request: &Request) -> Option<(StatusCode, String)> {
    let target_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target_bytes > MAX_URI_BYTES {
        return Some((
            StatusCode::URI_TOO_LONG,
            format!(
                "The request URL is {target_bytes} bytes long; this server accepts at most {MAX_URI_BYTES}. Send large parameters in the body of a POST."
            ),
        ));
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADER_COUNT || header_bytes > MAX_HEADER_BYTES {
        return Some((
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "The request has {} headers of {header_bytes} bytes in all; this server accepts at most {MAX_HEADER_COUNT} headers of {MAX_HEADER_BYTES} bytes.",
                headers.len()
            ),
        ));
    }
    None
}

/// Read the whole body before any handler runs, within `MAX_BODY_BYTES` and `timeout`: a
/// body that trickles, or a `Content-Length` that promises more than is sent, must not hold
/// a connection and a task forever.
pub(super) async fn buffer_body(
    request: Request,
    timeout: Duration,
) -> Result<Request, (StatusCode, String)> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "The request body is larger than the {MAX_BODY_BYTES} bytes this server accepts."
            ),
        )
    };
    let declared_bytes = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let Some(declared) = declared_bytes
        && declared > MAX_BODY_BYTES as u64
    {
        // A client that writes its whole body before reading the answer (most do) would see a
        // broken pipe instead of the 413 if the connection closed under it: read and discard a
        // body up to twice the limit first, within the body timeout. A larger one is refused
        // at once.
        if declared <= 2 * MAX_BODY_BYTES as u64 {
            let mut body = request.into_body();
            let drain = async {
                while let Some(Ok(_)) = http_body_util::BodyExt::frame(&mut body).await {}
            };
            let _ = tokio::time::timeout(timeout, drain).await;
        }
        return Err(too_large());
    }
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    let collected = tokio::time::timeout(timeout, http_body_util::BodyExt::collect(limited))
        .await
        .map_err(|_| {
            (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "The request body did not arrive within {} s. Send the whole body at once, with a Content-Length that matches it.",
                    timeout.as_secs_f64()
                ),
            )
        })?;
    let bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(error) => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("The request body could not be read: {error}"),
            ));
        }
    };
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

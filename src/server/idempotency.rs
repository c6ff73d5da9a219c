//! Idempotency-Key handling over HTTP: 409 while a key's first request runs, `Idempotent-Replayed` on retries, and nothing applied twice.
//!
//! The ledger already guarantees the essentials: a key's first result is stored in the same
//! transaction as the events it produced, a retry with the same parameters gets that result
//! back, and other parameters get `idempotency_error`. What HTTP adds is Stripe's answer to a
//! retry that arrives while the first request is still running (409 `idempotency_key_in_use`,
//! which the SDKs retry), and telling the client that a response is a replay.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::ledger::{LedgerError, Refusal};
use crate::server::App;
use crate::server::Call;

/// Keys whose first request is running in this process, per account.
#[derive(Clone, Default)]
pub struct InFlightKeys {
    keys: Arc<Mutex<HashSet<(String, String)>>>,
}

/// Holds a key while its request runs; releases it when dropped, however the request ends.
struct InFlight {
    keys: InFlightKeys,
    entry: (String, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut keys) = self.keys.keys.lock() {
            keys.remove(&self.entry);
        }
    }
}

impl InFlightKeys {
    fn claim(&self, account: &str, key: &str) -> Result<InFlight, LedgerError> {
        let entry = (account.to_string(), key.to_string());
        // A panic while the set was held cannot leave it half-changed (one insert or remove),
        // so a poisoned lock still guards a sound set.
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !keys.insert(entry.clone()) {
            return Err(Refusal::IdempotencyKeyInUse {
                key: key.to_string(),
            }
            .into());
        }
        Ok(InFlight {
            keys: self.clone(),
            entry,
        })
    }
}

/// Tell the client which key a response answers (`Idempotency-Key`) and whether it is the replay
/// of an earlier result (`Idempotent-Replayed: true`).
pub fn stamp_headers(response: &mut axum::response::Response, call: &Call, replayed: bool) {
    use axum::http::HeaderValue;
    let headers = response.headers_mut();
    // `from_bytes`, not `from_str`: a key in UTF-8 (`ключ-1`) is echoed as it was sent.
    if let Some(key) = &call.idempotency_key
        && let Ok(value) = HeaderValue::from_bytes(key.as_bytes())
    {
        headers.insert("idempotency-key", value);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
}

/// The result of a write, and whether it is the replay of an earlier request's result.
pub struct Written<T> {
    pub value: T,
    pub replayed: bool,
}

/// Run a ledger write under the request's idempotency key, if it has one. Errors stay ledger
/// errors so that each dialect renders them in its own shape.
pub async fn write<T>(
    app: &App,
    call: &Call,
    operation: impl Future<Output = Result<T, LedgerError>>,
) -> Result<Written<T>, LedgerError> {
    let Some(key) = &call.idempotency_key else {
        return Ok(Written {
            value: operation.await?,
            replayed: false,
        });
    };
    let _in_flight = app.in_flight.claim(&call.caller.account, key)?;
    // With the key held, no other request of this process can store a result for it between
    // this check and the write: a stored result now means the write below is a replay.
    let replayed = app
        .ledger
        .has_idempotency_record(&call.caller.account, key)
        .await?;
    Ok(Written {
        value: operation.await?,
        replayed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_key_is_in_use_until_its_request_ends() {
        let keys = InFlightKeys::default();
        let held = keys.claim("acct_a", "key-1").expect("the first claim");
        let refused = keys.claim("acct_a", "key-1").map(drop).unwrap_err();
        assert!(matches!(
            refused,
            LedgerError::Refused(Refusal::IdempotencyKeyInUse { .. })
        ));
        let refused = crate::server::stripe::error::ApiError::from(refused);
        assert_eq!(refused.status, axum::http::StatusCode::CONFLICT);
        assert_eq!(refused.body.code.as_deref(), Some("idempotency_key_in_use"));
        // Keys are per account.
        assert!(keys.claim("acct_b", "key-1").is_ok());
        drop(held);
        assert!(keys.claim("acct_a", "key-1").is_ok());
    }
}

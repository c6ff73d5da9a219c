//! Omise's wire objects (API version 2019-05-29) built from the ledger's state: charge, card, token, event, list and refund.
//!
//! Pure functions of the projected state. Timestamps are RFC 3339 in UTC and `null` when unset,
//! never `""` (omise-go fails to parse an empty time). Currencies are upper case, as in
//! 2019-05-29. Metadata is always an object.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use super::charge_object::charge_object;
use crate::domain::{Refund, Token, VaultCard};
use crate::events::RecordedEvent;

/// The API version whose shapes these are.
pub const OMISE_API_VERSION: &str = "2019-05-29";

/// Unix seconds as RFC 3339 UTC (`2019-05-29T08:12:34Z`).
pub fn timestamp(unix_seconds: i64) -> Value {
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|moment| moment.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

pub(super) fn optional_timestamp(unix_seconds: Option<i64>) -> Value {
    unix_seconds.map_or(Value::Null, timestamp)
}

/// The card object; `location` is null because vault cards belong to no customer.
pub fn card_object(card: &VaultCard) -> Value {
    json!({
        "object": "card",
        "id": card.id,
        "livemode": card.livemode,
        "location": null,
        "deleted": false,
        "street1": card.street1,
        "street2": card.street2,
        "city": card.city,
        "state": card.state,
        "phone_number": card.phone_number,
        "postal_code": card.postal_code,
        "country": card.country,
        "financing": card.financing,
        "bank": null,
        "brand": card.brand,
        "fingerprint": card.fingerprint,
        "first_digits": card.first_digits,
        "last_digits": card.last_digits,
        "name": card.name,
        "expiration_month": card.expiration_month,
        "expiration_year": card.expiration_year,
        "security_code_check": card.security_code_check,
        "tokenization_method": null,
        "created_at": timestamp(card.created),
    })
}

/// The token object.
pub fn token_object(token: &Token) -> Value {
    json!({
        "object": "token",
        "id": token.id,
        "livemode": token.livemode,
        "location": format!("/tokens/{}", token.id),
        "used": token.used(),
        "charge_status": if token.charge.is_some() { "successful" } else { "unknown" },
        "card": card_object(&token.card),
        "created_at": timestamp(token.created),
    })
}

/// The refund object, with the fields api.omise.co answered with in 2025. The ledger has no
/// settlement, so no refund is ever a void, and no card terminal or acquirer is involved.
pub(super) fn refund_object(refund: &Refund, livemode: bool) -> Value {
    let currency = refund.currency.to_ascii_uppercase();
    json!({
        "object": "refund",
        "id": refund.id,
        "location": format!("/charges/{}/refunds/{}", refund.charge, refund.id),
        "livemode": livemode,
        "voided": false,
        "currency": currency,
        "amount": refund.amount,
        "metadata": refund.metadata,
        "charge": refund.charge,
        "capture": null,
        "terminal": null,
        "transaction": refund.balance_transaction,
        "status": refund.status,
        "funding_amount": refund.amount,
        "funding_currency": currency,
        "created_at": timestamp(refund.created),
        "acquirer_reference_number": null,
        "approval_code": null,
    })
}

pub use crate::domain::omise::event_key;

/// The Omise id of a stored event: `evt_X` is shown as `evnt_test_X` (`evnt_X` in live mode).
pub fn event_id(stored_id: &str, livemode: bool) -> String {
    let suffix = stored_id.strip_prefix("evt_").unwrap_or(stored_id);
    if livemode {
        format!("evnt_{suffix}")
    } else {
        format!("evnt_test_{suffix}")
    }
}

/// The stored id an Omise event id stands for; `None` if it is not an event id.
pub fn stored_event_id(omise_id: &str) -> Option<String> {
    let suffix = omise_id
        .strip_prefix("evnt_test_")
        .or_else(|| omise_id.strip_prefix("evnt_"))?;
    Some(format!("evt_{suffix}"))
}

/// The event object; `data` is the charge right after the event (never null: omise-go panics).
pub fn event_object(event: &RecordedEvent, key: &str, livemode: bool, data: Value) -> Value {
    let id = event_id(&event.body.event_id, livemode);
    json!({
        "object": "event",
        "id": id,
        "livemode": livemode,
        "location": format!("/events/{id}"),
        "key": key,
        "created_at": timestamp(event.body.recorded_at.unix_timestamp()),
        "data": data,
        "webhook_deliveries": [],
    })
}

/// The list envelope: `total` counts every match, `data` is the page.
pub struct ListWindow {
    pub limit: usize,
    pub offset: usize,
    pub total: usize,
    pub order: &'static str,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

pub fn list_object(window: &ListWindow, data: Vec<Value>, location: &str) -> Value {
    json!({
        "object": "list",
        "data": data,
        "limit": window.limit,
        "offset": window.offset,
        "total": window.total,
        "order": window.order,
        "from": timestamp(window.from.unix_timestamp()),
        "to": timestamp(window.to.unix_timestamp()),
        "location": location,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_rfc_3339() {
        assert_eq!(timestamp(1_559_091_723), json!("2019-05-29T01:02:03Z"));
        assert_eq!(optional_timestamp(None), Value::Null);
    }

    #[test]
    fn event_ids_map_both_ways() {
        let omise = event_id("evt_AbC123", false);
        assert_eq!(omise, "evnt_test_AbC123");
        assert_eq!(stored_event_id(&omise).as_deref(), Some("evt_AbC123"));
        assert_eq!(event_id("evt_AbC123", true), "evnt_AbC123");
        assert_eq!(stored_event_id("chrg_test_1"), None);
    }
}

//! Stripe-shaped identifiers (`ch_` + 24 characters and so on), drawn from UUIDv4 randomness.

use crate::domain::FreshIds;

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `prefix` followed by `length` random alphanumerics.
pub fn random_id(prefix: &str, length: usize) -> String {
    let mut id = String::with_capacity(prefix.len() + length);
    id.push_str(prefix);
    while id.len() < prefix.len() + length {
        // 16 random bytes per UUID; 62 symbols, so reject bytes >= 248 to keep the draw uniform.
        for byte in uuid::Uuid::new_v4().into_bytes() {
            if byte < 248 && id.len() < prefix.len() + length {
                id.push(char::from(ALPHABET[usize::from(byte % 62)]));
            }
        }
    }
    id
}

pub fn charge_id() -> String {
    random_id("ch_", 24)
}

pub fn customer_id() -> String {
    random_id("cus_", 14)
}

pub fn event_id() -> String {
    random_id("evt_", 24)
}

pub fn request_id() -> String {
    random_id("req_", 14)
}

/// Fresh identifiers for every object one command might create.
pub fn fresh_ids() -> FreshIds {
    FreshIds {
        charge: charge_id(),
        customer: customer_id(),
        payment_method: random_id("card_", 24),
        balance_transaction: random_id("txn_", 24),
        refund: random_id("re_", 24),
    }
}

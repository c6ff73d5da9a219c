//! Stripe-shaped identifiers (`ch_` + 24 characters and so on) and Omise-shaped ones (`chrg_test_` + 19 lower-case characters), drawn from UUIDv4 randomness.

// A leaf: this module imports nothing from the crate, so every layer may use it. The bundles
// of ids a command needs (`FreshIds`, `OmiseIds`) are put together by the ledger, the shell
// that passes them into the domain.

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Omise ids use digits and lower-case letters only.
const LOWER_CASE_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `prefix` followed by `length` random alphanumerics.
pub fn random_id(prefix: &str, length: usize) -> String {
    random_id_from(ALPHABET, prefix, length)
}

fn random_id_from(alphabet: &[u8], prefix: &str, length: usize) -> String {
    // Bytes at or above the largest multiple of the alphabet size are rejected, so the draw
    // stays uniform (248 for 62 symbols, 252 for 36).
    let symbols = alphabet.len();
    let accepted_below = 256 - 256 % symbols;
    let mut id = String::with_capacity(prefix.len() + length);
    id.push_str(prefix);
    while id.len() < prefix.len() + length {
        for byte in uuid::Uuid::new_v4().into_bytes() {
            if usize::from(byte) < accepted_below && id.len() < prefix.len() + length {
                id.push(char::from(alphabet[usize::from(byte) % symbols]));
            }
        }
    }
    id
}

/// An Omise id: `chrg_test_…` in test mode, `chrg_…` in live mode.
pub fn omise_id(kind: &str, livemode: bool) -> String {
    let prefix = if livemode {
        format!("{kind}_")
    } else {
        format!("{kind}_test_")
    };
    random_id_from(LOWER_CASE_ALPHABET, &prefix, 19)
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

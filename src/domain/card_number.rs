//! Card numbers as the vault checks them: brand from the leading digits, the Luhn checksum, and a per-number fingerprint.

use base64::Engine;
use sha2::{Digest, Sha256};

/// Omise's brand for a card number, from its leading digits.
pub fn card_brand(number: &str) -> Option<&'static str> {
    if !number.bytes().all(|byte| byte.is_ascii_digit()) || number.len() < 6 {
        return None;
    }
    let prefix = |digits: usize| number[..digits].parse::<u32>().unwrap_or(0);
    Some(match (prefix(1), prefix(2), prefix(3), prefix(4)) {
        (4, ..) => "Visa",
        (_, 51..=55, ..) | (.., 2221..=2720) => "MasterCard",
        (_, 34 | 37, ..) => "American Express",
        (.., 3528..=3589) => "JCB",
        (_, 36 | 38, ..) | (_, _, 300..=305, _) => "Diners Club",
        (.., 6011) | (_, 65, ..) => "Discover",
        (_, 62, ..) => "UnionPay",
        _ => return None,
    })
}

/// The Luhn checksum every card number carries.
pub fn passes_luhn(number: &str) -> bool {
    let mut sum = 0;
    for (position, byte) in number.bytes().rev().enumerate() {
        if !byte.is_ascii_digit() {
            return false;
        }
        let mut digit = u32::from(byte - b'0');
        if position % 2 == 1 {
            digit *= 2;
            if digit > 9 {
                digit -= 9;
            }
        }
        sum += digit;
    }
    sum % 10 == 0
}

/// A fingerprint that is the same for the same number. It is a plain hash, so a test vault
/// only: never give this ledger a real card number.
pub(crate) fn card_fingerprint(number: &str) -> String {
    let digest = Sha256::digest(format!("chargeledger card\0{number}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_numbers_and_rejects_a_changed_digit() {
        assert!(passes_luhn("4242424242424242"));
        assert!(passes_luhn("5555555555554444"));
        assert!(passes_luhn("378282246310005"));
        assert!(!passes_luhn("4242424242424241"));
    }

    #[test]
    fn brands_follow_the_leading_digits() {
        assert_eq!(card_brand("4242424242424242"), Some("Visa"));
        assert_eq!(card_brand("5555555555554444"), Some("MasterCard"));
        assert_eq!(card_brand("2223003122003222"), Some("MasterCard"));
        assert_eq!(card_brand("378282246310005"), Some("American Express"));
        assert_eq!(card_brand("3530111333300000"), Some("JCB"));
        assert_eq!(card_brand("9999999999999995"), None);
    }
}

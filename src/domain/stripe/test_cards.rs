//! Stripe's documented test tokens and test card numbers: which card each stands for, and which of them the network declines, and how.
//!
//! Sources: docs.stripe.com/testing (tokens and numbers), /declines and recorded 402 bodies
//! (codes, decline codes, messages, outcomes); see `shared/spec/stripe-declines-and-webhooks.md`.
//! Both token families are accepted: the current `tok_visa_chargeDeclined…` names and the legacy
//! `tok_chargeDeclined…` names public test suites use.

use sha2::{Digest, Sha256};

use crate::domain::card_number::{card_brand, passes_luhn};
use crate::domain::events::ChargeFailure;
use crate::domain::stripe::commands::CardInput;
use crate::domain::stripe::error::RequestError;
use crate::domain::values::Card;

/// What paying with a test token or number gives: the card, and the network's decline if it
/// declines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCard {
    pub card: Card,
    pub decline: Option<ChargeFailure>,
}

/// How a test card is declined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decline {
    code: &'static str,
    decline_code: Option<&'static str>,
    message: &'static str,
    blocked: bool,
}

const GENERIC: Decline = declined("generic_decline", "Your card was declined.");
const INSUFFICIENT_FUNDS: Decline =
    declined("insufficient_funds", "Your card has insufficient funds.");
const LOST_CARD: Decline = declined("lost_card", "Your card was declined.");
const STOLEN_CARD: Decline = declined("stolen_card", "Your card was declined.");
const VELOCITY: Decline = declined("card_velocity_exceeded", "Your card was declined.");
const EXPIRED: Decline = Decline {
    code: "expired_card",
    decline_code: Some("expired_card"),
    message: "Your card has expired.",
    blocked: false,
};
const INCORRECT_CVC: Decline = Decline {
    code: "incorrect_cvc",
    decline_code: None,
    message: "Your card's security code is incorrect.",
    blocked: false,
};
const PROCESSING_ERROR: Decline = Decline {
    code: "processing_error",
    decline_code: None,
    message: "An error occurred while processing your card. Try again in a little bit.",
    blocked: false,
};
/// The "always blocked" card: Radar stops it before it reaches the network.
const FRAUDULENT: Decline = Decline {
    code: "card_declined",
    decline_code: Some("fraudulent"),
    message: "Your card was declined.",
    blocked: true,
};
/// A number that is no test card, sent by a test-mode account.
const LIVE_CARD_IN_TEST_MODE: Decline = declined(
    "test_mode_live_card",
    "Your card was declined. Your request was in test mode, but used a non test (live) card. For a list of valid test cards, visit: https://stripe.com/docs/testing.",
);

const fn declined(decline_code: &'static str, message: &'static str) -> Decline {
    Decline {
        code: "card_declined",
        decline_code: Some(decline_code),
        message,
        blocked: false,
    }
}

/// A test card: brand, last four digits, funding, and how it is declined (`None`: approved).
type Spec = (&'static str, &'static str, &'static str, Option<Decline>);

/// What a test token stands for.
fn token_spec(token: &str) -> Option<Spec> {
    Some(match token {
        "tok_visa" | "tok_us" => ("visa", "4242", "credit", None),
        "tok_visa_debit" => ("visa", "5556", "debit", None),
        "tok_mastercard" => ("mastercard", "4444", "credit", None),
        "tok_mastercard_debit" => ("mastercard", "8210", "debit", None),
        "tok_mastercard_prepaid" => ("mastercard", "5100", "prepaid", None),
        "tok_amex" => ("amex", "8431", "credit", None),
        "tok_discover" => ("discover", "1117", "credit", None),
        "tok_diners" => ("diners", "0004", "credit", None),
        "tok_jcb" => ("jcb", "0505", "credit", None),
        "tok_unionpay" => ("unionpay", "0005", "credit", None),
        "tok_chargeDeclined" | "tok_visa_chargeDeclined" => {
            ("visa", "0002", "credit", Some(GENERIC))
        }
        "tok_chargeDeclinedInsufficientFunds" | "tok_visa_chargeDeclinedInsufficientFunds" => {
            ("visa", "9995", "credit", Some(INSUFFICIENT_FUNDS))
        }
        "tok_chargeDeclinedLostCard" | "tok_visa_chargeDeclinedLostCard" => {
            ("visa", "9987", "credit", Some(LOST_CARD))
        }
        "tok_chargeDeclinedStolenCard" | "tok_visa_chargeDeclinedStolenCard" => {
            ("visa", "9979", "credit", Some(STOLEN_CARD))
        }
        "tok_chargeDeclinedExpiredCard" | "tok_visa_chargeDeclinedExpiredCard" => {
            ("visa", "0069", "credit", Some(EXPIRED))
        }
        "tok_chargeDeclinedIncorrectCvc" | "tok_visa_chargeDeclinedIncorrectCvc" => {
            ("visa", "0127", "credit", Some(INCORRECT_CVC))
        }
        "tok_chargeDeclinedProcessingError" | "tok_visa_chargeDeclinedProcessingError" => {
            ("visa", "0119", "credit", Some(PROCESSING_ERROR))
        }
        "tok_visa_chargeDeclinedVelocityLimitExceeded" => {
            ("visa", "6975", "credit", Some(VELOCITY))
        }
        "tok_chargeDeclinedFraudulent" | "tok_visa_chargeDeclinedFraudulent" | "tok_radarBlock" => {
            ("visa", "0019", "credit", Some(FRAUDULENT))
        }
        _ => return None,
    })
}

/// What a documented test card number stands for.
fn number_spec(number: &str) -> Option<Spec> {
    Some(match number {
        "4242424242424242" => ("visa", "4242", "credit", None),
        "4000056655665556" => ("visa", "5556", "debit", None),
        "5555555555554444" => ("mastercard", "4444", "credit", None),
        "2223003122003222" => ("mastercard", "3222", "credit", None),
        "5200828282828210" => ("mastercard", "8210", "debit", None),
        "5105105105105100" => ("mastercard", "5100", "prepaid", None),
        "378282246310005" => ("amex", "0005", "credit", None),
        "371449635398431" => ("amex", "8431", "credit", None),
        "6011111111111117" => ("discover", "1117", "credit", None),
        "6011000990139424" => ("discover", "9424", "credit", None),
        "3056930009020004" => ("diners", "0004", "credit", None),
        "36227206271667" => ("diners", "1667", "credit", None),
        "3566002020360505" => ("jcb", "0505", "credit", None),
        "6200000000000005" => ("unionpay", "0005", "credit", None),
        "4000000000000002" => ("visa", "0002", "credit", Some(GENERIC)),
        "4000000000009995" => ("visa", "9995", "credit", Some(INSUFFICIENT_FUNDS)),
        "4000000000009987" => ("visa", "9987", "credit", Some(LOST_CARD)),
        "4000000000009979" => ("visa", "9979", "credit", Some(STOLEN_CARD)),
        "4000000000000069" => ("visa", "0069", "credit", Some(EXPIRED)),
        "4000000000000127" => ("visa", "0127", "credit", Some(INCORRECT_CVC)),
        "4000000000000119" => ("visa", "0119", "credit", Some(PROCESSING_ERROR)),
        "4000000000006975" => ("visa", "6975", "credit", Some(VELOCITY)),
        "4100000000000019" => ("visa", "0019", "credit", Some(FRAUDULENT)),
        _ => return None,
    })
}

/// What a test token (`source=tok_…`) stands for.
pub fn from_token(token: &str, now_unix: i64) -> Result<TestCard, RequestError> {
    let spec = token_spec(token).ok_or_else(|| RequestError::NoSuchToken {
        id: token.to_string(),
    })?;
    Ok(test_card(spec, token, None, now_unix))
}

/// What a card given by number (`source[number]=…`) stands for. A number that fails the Luhn
/// check is refused (Stripe's `incorrect_number`, no charge); a valid number that is no test
/// card is declined in test mode as Stripe declines it, and approved in live mode.
pub fn from_number(
    input: &CardInput,
    livemode: bool,
    now_unix: i64,
) -> Result<TestCard, RequestError> {
    let number: String = input
        .number
        .chars()
        .filter(|character| *character != ' ')
        .collect();
    let brand = card_brand(&number);
    if !passes_luhn(&number) || !(12..=19).contains(&number.len()) || brand.is_none() {
        return Err(RequestError::IncorrectNumber);
    }
    let spec = number_spec(&number).unwrap_or_else(|| {
        let brand = match brand {
            Some("MasterCard") => "mastercard",
            Some("American Express") => "amex",
            Some("JCB") => "jcb",
            Some("Diners Club") => "diners",
            Some("Discover") => "discover",
            Some("UnionPay") => "unionpay",
            _ => "visa",
        };
        let decline = (!livemode).then_some(LIVE_CARD_IN_TEST_MODE);
        (brand, "", "credit", decline)
    });
    // The last four digits of the number itself (the table's agree with them).
    let last4 = &number[number.len() - 4..];
    let expiry = match (input.exp_month, input.exp_year) {
        (Some(month), Some(year)) => Some((month, year)),
        _ => None,
    };
    Ok(test_card(
        (spec.0, last4, spec.2, spec.3),
        &format!("card number {number}"),
        expiry,
        now_unix,
    ))
}

fn test_card(
    spec: (&str, &str, &str, Option<Decline>),
    identity: &str,
    expiry: Option<(u32, u32)>,
    now_unix: i64,
) -> TestCard {
    let (brand, last4, funding, decline) = spec;
    let year = time::OffsetDateTime::from_unix_timestamp(now_unix)
        .map(|moment| moment.year())
        .unwrap_or(2026);
    let (exp_month, exp_year) = expiry.unwrap_or((12, u32::try_from(year + 3).unwrap_or(2029)));
    // Fingerprints are stable per card on Stripe; derive one from what identifies it. It is a
    // plain hash: a test vault only.
    let digest = Sha256::digest(identity.as_bytes());
    let fingerprint: String = hex::encode(digest).chars().take(16).collect();
    TestCard {
        card: Card {
            brand: brand.into(),
            country: "US".into(),
            exp_month,
            exp_year,
            fingerprint,
            funding: funding.into(),
            last4: last4.into(),
            network: brand.into(),
        },
        decline: decline.map(|decline| ChargeFailure {
            code: decline.code.into(),
            message: decline.message.into(),
            decline_code: decline.decline_code.map(str::to_string),
            blocked: decline.blocked,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_numbers_of_a_decline_agree() {
        let pairs = [
            ("tok_chargeDeclined", "4000000000000002"),
            (
                "tok_visa_chargeDeclinedInsufficientFunds",
                "4000000000009995",
            ),
            ("tok_chargeDeclinedLostCard", "4000000000009987"),
            ("tok_chargeDeclinedStolenCard", "4000000000009979"),
            ("tok_chargeDeclinedExpiredCard", "4000000000000069"),
            ("tok_chargeDeclinedIncorrectCvc", "4000000000000127"),
            ("tok_chargeDeclinedProcessingError", "4000000000000119"),
            ("tok_chargeDeclinedFraudulent", "4100000000000019"),
        ];
        for (token, number) in pairs {
            let by_token = from_token(token, 0).unwrap();
            let input = CardInput {
                number: number.into(),
                ..CardInput::default()
            };
            let by_number = from_number(&input, false, 0).unwrap();
            assert!(by_token.decline.is_some(), "{token}");
            assert_eq!(by_token.decline, by_number.decline, "{token}");
            assert_eq!(by_token.card.last4, by_number.card.last4, "{token}");
        }
    }

    #[test]
    fn a_bad_checksum_is_refused_and_a_live_number_declined_in_test_mode_only() {
        let input = |number: &str| CardInput {
            number: number.into(),
            ..CardInput::default()
        };
        assert_eq!(
            from_number(&input("4242424242424241"), false, 0),
            Err(RequestError::IncorrectNumber)
        );
        let live = input("4111111111111111");
        let declined = from_number(&live, false, 0).unwrap().decline.unwrap();
        assert_eq!(
            declined.decline_code.as_deref(),
            Some("test_mode_live_card")
        );
        assert_eq!(from_number(&live, true, 0).unwrap().decline, None);
        assert_eq!(
            from_number(&input("4242 4242 4242 4242"), false, 0)
                .unwrap()
                .decline,
            None
        );
    }
}

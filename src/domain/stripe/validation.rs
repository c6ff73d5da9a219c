//! The parameter rules of Stripe's charge API: lengths, metadata limits, emails, countries, currencies.
//!
//! Every check returns the `RequestError` that names the offending parameter. All pure.

use email_address::EmailAddress;
use iso_currency::Currency;
use isocountry::CountryCode;

use crate::domain::stripe::commands::{MetadataEdit, ShippingInput};
use crate::domain::stripe::error::RequestError;
use crate::domain::values::{Address, Metadata, Shipping};

/// Most Stripe strings: `maxLength: 5000` in the OpenAPI schema.
pub const DEFAULT_MAX_CHARS: usize = 5000;
/// `description` on a charge.
pub const DESCRIPTION_MAX_CHARS: usize = 40000;
/// `statement_descriptor` and `statement_descriptor_suffix`.
pub const STATEMENT_DESCRIPTOR_MAX_CHARS: usize = 22;
pub const METADATA_MAX_KEYS: usize = 50;
pub const METADATA_KEY_MAX_CHARS: usize = 40;
pub const METADATA_VALUE_MAX_CHARS: usize = 500;
/// "The amount value supports up to eight digits."
pub const AMOUNT_MAX: i64 = 99_999_999;

/// Refuse `value` if it has more than `max_chars` characters (Unicode scalar values).
pub fn check_length(param: &str, value: &str, max_chars: usize) -> Result<(), RequestError> {
    if value.chars().count() > max_chars {
        return Err(RequestError::StringTooLong {
            param: param.to_string(),
            value: value.to_string(),
            max_chars,
        });
    }
    Ok(())
}

pub fn check_statement_descriptor(param: &str, value: &str) -> Result<(), RequestError> {
    let length_chars = value.chars().count();
    if length_chars > STATEMENT_DESCRIPTOR_MAX_CHARS {
        return Err(RequestError::StatementDescriptorTooLong {
            param: param.to_string(),
            value: value.to_string(),
            length_chars,
        });
    }
    Ok(())
}

/// A syntactically valid address (RFC 5321/5322 via `email_address`) whose domain has a dot,
/// as Stripe requires of receipt addresses.
pub fn check_email(param: &str, value: &str) -> Result<(), RequestError> {
    check_length(param, value, DEFAULT_MAX_CHARS)?;
    let domain_has_dot = value
        .rsplit_once('@')
        .is_some_and(|(_, domain)| domain.contains('.') && !domain.ends_with('.'));
    if !EmailAddress::is_valid(value) || !domain_has_dot {
        return Err(RequestError::InvalidEmail {
            param: param.to_string(),
            value: value.to_string(),
        });
    }
    Ok(())
}

/// An ISO 3166-1 alpha-2 code, in upper case as Stripe stores it.
pub fn check_country(param: &str, value: &str) -> Result<(), RequestError> {
    let is_upper_alpha2 = value.len() == 2 && value.bytes().all(|byte| byte.is_ascii_uppercase());
    if !is_upper_alpha2 || CountryCode::for_alpha2(value).is_err() {
        return Err(RequestError::InvalidCountry {
            param: param.to_string(),
            value: value.to_string(),
        });
    }
    Ok(())
}

/// An ISO 4217 code; Stripe accepts any case and answers in lower case.
pub fn normalize_currency(value: &str) -> Result<String, RequestError> {
    let upper = value.to_ascii_uppercase();
    match Currency::from_code(&upper) {
        Some(_) if value.len() == 3 => Ok(value.to_ascii_lowercase()),
        _ => Err(RequestError::InvalidCurrency {
            value: value.to_string(),
        }),
    }
}

/// Stripe's minimum charge amount in the currency's smallest unit (about $0.50).
pub fn minimum_amount(currency: &str) -> i64 {
    match currency {
        "gbp" => 30,
        "dkk" => 250,
        "hkd" => 400,
        "mxn" | "thb" => 1000,
        "nok" | "sek" => 300,
        "pln" | "myr" | "ron" | "aed" => 200,
        "bgn" => 100,
        "czk" => 1500,
        "huf" => 17500,
        _ => 50,
    }
}

/// `50` in `usd` reads `0.50`; in `jpy` (no minor unit) `50`.
pub fn format_amount(amount: i64, currency: &str) -> String {
    let exponent = Currency::from_code(&currency.to_ascii_uppercase())
        .and_then(|currency| currency.exponent())
        .unwrap_or(2);
    if exponent == 0 {
        return amount.to_string();
    }
    let divisor = 10_i64.pow(u32::from(exponent));
    format!(
        "{}.{:0width$}",
        amount / divisor,
        amount % divisor,
        width = usize::from(exponent)
    )
}

/// Check a charge amount: positive, at most eight digits, at least the currency's minimum.
pub fn check_charge_amount(amount: i64, currency: &str) -> Result<(), RequestError> {
    if amount <= 0 {
        return Err(RequestError::AmountNotPositive {
            param: "amount".into(),
        });
    }
    if amount > AMOUNT_MAX {
        return Err(RequestError::AmountTooLarge);
    }
    let minimum = minimum_amount(currency);
    if amount < minimum {
        return Err(RequestError::AmountTooSmall {
            minimum,
            minimum_formatted: format_amount(minimum, currency),
            currency: currency.to_string(),
        });
    }
    Ok(())
}

/// Check each metadata edit on its own (key length, brackets, value type and length).
pub fn check_metadata_edits(edits: &[MetadataEdit]) -> Result<(), RequestError> {
    for edit in edits {
        let key = match edit {
            MetadataEdit::Set(key, _) | MetadataEdit::Unset(key) => key,
            MetadataEdit::UnsetAll => continue,
        };
        let key_chars = key.chars().count();
        if key_chars > METADATA_KEY_MAX_CHARS {
            return Err(RequestError::MetadataKeyTooLong {
                key: key.clone(),
                length_chars: key_chars,
            });
        }
        if key.contains('[') || key.contains(']') {
            return Err(RequestError::MetadataKeyHasBrackets { key: key.clone() });
        }
        if let MetadataEdit::Set(_, value) = edit {
            let Some(text) = value.as_str() else {
                return Err(RequestError::MetadataValueNotString { key: key.clone() });
            };
            let value_chars = text.chars().count();
            if value_chars > METADATA_VALUE_MAX_CHARS {
                return Err(RequestError::MetadataValueTooLong {
                    value: text.to_string(),
                    length_chars: value_chars,
                });
            }
        }
    }
    Ok(())
}

/// Check the metadata a request would leave behind: at most 50 keys.
pub fn check_metadata_size(metadata: &Metadata) -> Result<(), RequestError> {
    if metadata.len() > METADATA_MAX_KEYS {
        return Err(RequestError::TooManyMetadataKeys {
            count: metadata.len(),
        });
    }
    Ok(())
}

/// Turn requested shipping into a `Shipping`, or name the first missing or bad part.
///
/// `prefix` is the parameter name of the shipping hash (`shipping`).
pub fn validate_shipping(prefix: &str, input: &ShippingInput) -> Result<Shipping, RequestError> {
    let Some(address) = &input.address else {
        return Err(RequestError::MissingParam {
            param: format!("{prefix}[address]"),
        });
    };
    let Some(name) = &input.name else {
        return Err(RequestError::MissingParam {
            param: format!("{prefix}[name]"),
        });
    };
    check_length(&format!("{prefix}[name]"), name, DEFAULT_MAX_CHARS)?;
    let optional_parts = [
        ("carrier", &input.carrier),
        ("phone", &input.phone),
        ("tracking_number", &input.tracking_number),
    ];
    for (part, value) in optional_parts {
        if let Some(value) = value {
            check_length(&format!("{prefix}[{part}]"), value, DEFAULT_MAX_CHARS)?;
        }
    }
    let address = validate_address(&format!("{prefix}[address]"), address)?;
    Ok(Shipping {
        address,
        carrier: input.carrier.clone(),
        name: name.clone(),
        phone: input.phone.clone(),
        tracking_number: input.tracking_number.clone(),
    })
}

fn validate_address(prefix: &str, address: &Address) -> Result<Address, RequestError> {
    let parts = [
        ("city", &address.city),
        ("country", &address.country),
        ("line1", &address.line1),
        ("line2", &address.line2),
        ("postal_code", &address.postal_code),
        ("state", &address.state),
    ];
    for (part, value) in parts {
        if let Some(value) = value {
            check_length(&format!("{prefix}[{part}]"), value, DEFAULT_MAX_CHARS)?;
        }
    }
    if let Some(country) = &address.country {
        check_country(&format!("{prefix}[country]"), country)?;
    }
    Ok(address.clone())
}

/// `""` means "unset" for optional strings on Stripe.
pub fn empty_as_none(value: &str) -> Option<String> {
    if value.is_empty() {
        None
    } else {
        Some(value.to_string())
    }
}

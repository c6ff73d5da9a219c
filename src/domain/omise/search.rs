//! Omise's charge search, pure: free text in a charge's words, and `filters[…]` with amounts in whole currency units, `yes`/`no` booleans and `..` ranges.
//!
//! Omise documents the parameters (docs.omise.co "Search Query and Filters") but not each
//! scope's exact filter list or matching rules; what is chosen here is written in the README:
//! filters narrow (every one must hold, and the query too), bounds are inclusive, either side
//! of `..` may be left open, text matches case-insensitively as a substring.

use iso_currency::Currency;
use time::{Date, Month, Time};

use crate::domain::{ChargeState, Instrument, Lifecycle, Origin};

/// A filter Omise's charge search accepts, with its value read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeFilter {
    /// Whole currency units, possibly with decimals (`10.50`), each bound inclusive.
    Amount(Bound<String>),
    Currency(String),
    /// Money taken (Omise's `paid`).
    Captured(bool),
    Authorized(bool),
    Paid(bool),
    Reversed(bool),
    /// Any money refunded.
    Refunded(bool),
    /// Always false here: the ledger has no settlement to void.
    Voided(bool),
    Failed(bool),
    /// Omise's `status`: `successful`, `pending`, `reversed` or `failed`.
    Status(String),
    /// Unix seconds, inclusive; a date alone covers its whole day (UTC).
    Created(Bound<i64>),
    CardLastDigits(String),
    Customer(String),
}

/// An inclusive range; `None` leaves that side open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound<T> {
    pub low: Option<T>,
    pub high: Option<T>,
}

/// The filter names `ChargeFilter::parse` knows, for the error that lists them.
pub const CHARGE_FILTERS: [&str; 13] = [
    "amount",
    "authorized",
    "captured",
    "card_last_digits",
    "created",
    "currency",
    "customer",
    "failed",
    "paid",
    "refunded",
    "reversed",
    "status",
    "voided",
];

/// Why a filter is not one: Omise's `invalid_filters` with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

impl ChargeFilter {
    /// Read `filters[name]=value`.
    pub fn parse(name: &str, value: &str) -> Result<ChargeFilter, FilterError> {
        let value = value.trim();
        let flag = || parse_flag(name, value);
        Ok(match name {
            "amount" => {
                let bound = parse_range(value, |side| {
                    parse_decimal(side).map(|_| side.to_string())
                })
                .ok_or_else(|| {
                    FilterError(format!(
                        "filters[amount] must be an amount in whole currency units or a range such as 1000..2000, not '{value}'"
                    ))
                })?;
                ChargeFilter::Amount(bound)
            }
            "currency" => ChargeFilter::Currency(value.to_ascii_lowercase()),
            "captured" => ChargeFilter::Captured(flag()?),
            "authorized" => ChargeFilter::Authorized(flag()?),
            "paid" => ChargeFilter::Paid(flag()?),
            "reversed" => ChargeFilter::Reversed(flag()?),
            "refunded" => ChargeFilter::Refunded(flag()?),
            "voided" => ChargeFilter::Voided(flag()?),
            "failed" => ChargeFilter::Failed(flag()?),
            "status" => match value {
                "successful" | "pending" | "reversed" | "failed" | "expired" => {
                    ChargeFilter::Status(value.to_string())
                }
                _ => {
                    return Err(FilterError(format!(
                        "filters[status] must be successful, pending, reversed, failed or expired, not '{value}'"
                    )));
                }
            },
            "created" => {
                let bound = parse_range(value, |side| parse_day(side).map(|_| side))
                    .and_then(|bound| {
                        Some(Bound {
                            low: match bound.low {
                                Some(day) => Some(day_start(parse_day(day)?)),
                                None => None,
                            },
                            high: match bound.high {
                                Some(day) => Some(day_start(parse_day(day)?) + 86_399),
                                None => None,
                            },
                        })
                    })
                    .ok_or_else(|| {
                        FilterError(format!(
                            "filters[created] must be a date (YYYY-MM-DD) or a range such as 2017-01-01..2022-12-21, not '{value}'"
                        ))
                    })?;
                ChargeFilter::Created(bound)
            }
            "card_last_digits" => ChargeFilter::CardLastDigits(value.to_string()),
            "customer" => ChargeFilter::Customer(value.to_string()),
            _ => {
                return Err(FilterError(format!(
                    "filters[{name}] is not a charge filter; use {}",
                    CHARGE_FILTERS.join(", ")
                )));
            }
        })
    }

    /// Whether an Omise charge passes.
    pub fn passes(&self, charge: &ChargeState) -> bool {
        match self {
            ChargeFilter::Amount(bound) => {
                let exponent = Currency::from_code(&charge.currency.to_ascii_uppercase())
                    .and_then(|currency| currency.exponent())
                    .unwrap_or(2);
                let amount = charge.money.authorized;
                // A bound finer than the currency's subunit rounds towards the range's inside.
                let at_least = |low: &String| {
                    parse_decimal(low).is_some_and(|low| amount >= low.ceil_subunits(exponent))
                };
                let at_most = |high: &String| {
                    parse_decimal(high).is_some_and(|high| amount <= high.floor_subunits(exponent))
                };
                bound.low.as_ref().is_none_or(at_least) && bound.high.as_ref().is_none_or(at_most)
            }
            ChargeFilter::Currency(currency) => charge.currency.eq_ignore_ascii_case(currency),
            ChargeFilter::Captured(wanted) | ChargeFilter::Paid(wanted) => {
                charge.is_captured() == *wanted
            }
            ChargeFilter::Authorized(wanted) => charge.failure.is_none() == *wanted,
            ChargeFilter::Reversed(wanted) => (charge.lifecycle == Lifecycle::Reversed) == *wanted,
            ChargeFilter::Refunded(wanted) => (charge.money.refunded > 0) == *wanted,
            ChargeFilter::Voided(wanted) => !*wanted,
            ChargeFilter::Failed(wanted) => charge.failure.is_some() == *wanted,
            ChargeFilter::Status(status) => charge_status(charge) == status,
            ChargeFilter::Created(bound) => {
                bound.low.is_none_or(|low| charge.created >= low)
                    && bound.high.is_none_or(|high| charge.created <= high)
            }
            ChargeFilter::CardLastDigits(digits) => match &charge.instrument {
                Instrument::VaultCard { card, .. } => card.last_digits == *digits,
                Instrument::TestCard { .. } => false,
            },
            ChargeFilter::Customer(customer) => charge.customer.as_deref() == Some(customer),
        }
    }
}

/// Omise's `status` of a charge.
pub fn charge_status(charge: &ChargeState) -> &'static str {
    if charge.expired_at.is_some() {
        return "expired";
    }
    match charge.lifecycle {
        Lifecycle::Reversed => "reversed",
        Lifecycle::Captured | Lifecycle::Refunded => "successful",
        Lifecycle::Authorized => "pending",
        Lifecycle::Failed => "failed",
    }
}

/// A charge search: free text and filters, all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChargeSearch {
    /// Lower-cased; empty finds every charge.
    pub query: String,
    pub filters: Vec<ChargeFilter>,
}

impl ChargeSearch {
    /// Whether `charge` is one of the results: an Omise charge whose words hold the query and
    /// that passes every filter.
    pub fn matches(&self, charge: &ChargeState) -> bool {
        charge.origin() == Origin::Omise
            && self.filters.iter().all(|filter| filter.passes(charge))
            && (self.query.is_empty() || words(charge).any(|word| word.contains(&self.query)))
    }
}

/// The text a query looks in: id, description, customer, transaction, card, failure code and
/// metadata values, each lower-cased.
fn words(charge: &ChargeState) -> impl Iterator<Item = String> + '_ {
    let card = match &charge.instrument {
        Instrument::VaultCard { card, .. } => vec![
            card.brand.clone(),
            card.last_digits.clone(),
            card.name.clone(),
        ],
        Instrument::TestCard { .. } => Vec::new(),
    };
    let metadata = charge.metadata.values().map(|value| match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    });
    [
        Some(charge.id.clone()),
        charge.description.clone(),
        charge.customer.clone(),
        charge.transaction.clone(),
        charge.failure.as_ref().map(|failure| failure.code.clone()),
        Some(charge.currency.clone()),
    ]
    .into_iter()
    .flatten()
    .chain(card)
    .chain(metadata)
    .map(|word| word.to_lowercase())
}

/// `yes`/`on`/`true`/`1` or `no`/`off`/`false`/`0`, any case.
fn parse_flag(name: &str, value: &str) -> Result<bool, FilterError> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "on" | "true" | "1" => Ok(true),
        "no" | "off" | "false" | "0" => Ok(false),
        _ => Err(FilterError(format!(
            "filters[{name}] must be yes or no (or true, false, on, off), not '{value}'"
        ))),
    }
}

/// `a`, `a..b`, `a..` or `..b`, each side read by `side`.
fn parse_range<'a, T>(value: &'a str, side: impl Fn(&'a str) -> Option<T>) -> Option<Bound<T>> {
    match value.split_once("..") {
        None => {
            let one = side(value)?;
            let again = side(value)?;
            Some(Bound {
                low: Some(one),
                high: Some(again),
            })
        }
        Some((low, high)) => {
            let (low, high) = (low.trim(), high.trim());
            if low.is_empty() && high.is_empty() {
                return None;
            }
            Some(Bound {
                low: if low.is_empty() {
                    None
                } else {
                    Some(side(low)?)
                },
                high: if high.is_empty() {
                    None
                } else {
                    Some(side(high)?)
                },
            })
        }
    }
}

/// A non-negative decimal as written: whole part and fractional digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decimal {
    whole: i64,
    fraction: u64,
    fraction_digits: u32,
}

impl Decimal {
    /// The largest number of subunits (of a currency with `exponent` decimals) not above it.
    fn floor_subunits(self, exponent: u16) -> i64 {
        self.subunits(exponent).0
    }

    /// The smallest number of subunits not below it.
    fn ceil_subunits(self, exponent: u16) -> i64 {
        let (floor, exact) = self.subunits(exponent);
        if exact {
            floor
        } else {
            floor.saturating_add(1)
        }
    }

    /// Whole subunits, rounded down, and whether nothing was rounded away. Values too large
    /// for `i64` saturate: no amount is that large.
    fn subunits(self, exponent: u16) -> (i64, bool) {
        let exponent = u32::from(exponent);
        let (fraction, exact) = if self.fraction_digits > exponent {
            let excess = 10_u64.pow(self.fraction_digits - exponent);
            (self.fraction / excess, self.fraction.is_multiple_of(excess))
        } else {
            (
                self.fraction * 10_u64.pow(exponent - self.fraction_digits),
                true,
            )
        };
        let whole = self.whole.saturating_mul(10_i64.pow(exponent));
        let fraction = i64::try_from(fraction).unwrap_or(i64::MAX);
        (whole.saturating_add(fraction), exact)
    }
}

fn parse_decimal(text: &str) -> Option<Decimal> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 18 {
        return None;
    }
    Some(Decimal {
        whole: whole.parse().ok()?,
        fraction: if fraction.is_empty() {
            0
        } else {
            fraction.parse().ok()?
        },
        fraction_digits: fraction.len() as u32,
    })
}

/// `YYYY-MM-DD`.
fn parse_day(text: &str) -> Option<Date> {
    let mut parts = text.splitn(3, '-');
    let year = parts.next()?.parse::<i32>().ok()?;
    let month = Month::try_from(parts.next()?.parse::<u8>().ok()?).ok()?;
    let day = parts.next()?.parse::<u8>().ok()?;
    Date::from_calendar_date(year, month, day).ok()
}

fn day_start(day: Date) -> i64 {
    day.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_whole_units_in_the_charge_currency() {
        let decimal = parse_decimal("10.5").expect("a decimal");
        assert_eq!(decimal.floor_subunits(2), 1050);
        assert_eq!(decimal.ceil_subunits(2), 1050);
        assert_eq!(decimal.floor_subunits(0), 10);
        assert_eq!(decimal.ceil_subunits(0), 11);
        assert_eq!(parse_decimal("1000").unwrap().floor_subunits(2), 100_000);
        assert_eq!(parse_decimal("1000").unwrap().ceil_subunits(0), 1000);
        assert_eq!(parse_decimal("0.005").unwrap().ceil_subunits(2), 1);
        for bad in ["", "-1", "1e3", "1.2.3", "abc", ".5"] {
            assert!(parse_decimal(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn filters_read_ranges_flags_and_days() {
        assert_eq!(
            ChargeFilter::parse("amount", "1000..2000"),
            Ok(ChargeFilter::Amount(Bound {
                low: Some("1000".into()),
                high: Some("2000".into())
            }))
        );
        assert_eq!(
            ChargeFilter::parse("amount", "..20"),
            Ok(ChargeFilter::Amount(Bound {
                low: None,
                high: Some("20".into())
            }))
        );
        assert_eq!(
            ChargeFilter::parse("captured", "YES"),
            Ok(ChargeFilter::Captured(true))
        );
        assert_eq!(
            ChargeFilter::parse("captured", "off"),
            Ok(ChargeFilter::Captured(false))
        );
        assert_eq!(
            ChargeFilter::parse("created", "2017-01-01..2017-01-02"),
            Ok(ChargeFilter::Created(Bound {
                low: Some(1_483_228_800),
                high: Some(1_483_228_800 + 2 * 86_400 - 1)
            }))
        );
        for (name, value) in [
            ("amount", ".."),
            ("amount", "ten"),
            ("captured", "maybe"),
            ("created", "2017-13-01"),
            ("status", "open"),
            ("colour", "red"),
        ] {
            assert!(ChargeFilter::parse(name, value).is_err(), "{name}={value}");
        }
    }
}

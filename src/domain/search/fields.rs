//! The searchable fields of Stripe charges and customers: their types, their values on a projection, and which clauses a field's type allows.

use std::borrow::Cow;

use super::query::{FieldName, Operand, Operator, QueryError};
use crate::domain::{ChargeState, Customer, Instrument, Metadata, Origin};

/// What a search looks through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Charges,
    Customers,
}

impl Resource {
    /// The object name Stripe's docs use for it.
    pub fn object(self) -> &'static str {
        match self {
            Resource::Charges => "charge",
            Resource::Customers => "customer",
        }
    }
}

/// A field's search type (docs.stripe.com/search "Search Syntax").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Exact match only, case-insensitive.
    Token,
    /// Exact match (word-sequence containment) and `~` substring, case-insensitive.
    Text,
    /// Exact match and comparisons.
    Numeric,
}

/// The card-like sources of `payment_method_details.{SOURCE}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardSource {
    Card,
    CardPresent,
    InteracPresent,
}

/// The parts of a card that can be searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardPart {
    Last4,
    ExpMonth,
    ExpYear,
    Brand,
    Fingerprint,
}

/// A searchable field, resolved against its resource's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Amount,
    Created,
    Currency,
    Customer,
    Disputed,
    Refunded,
    Status,
    BillingPostalCode,
    Card(CardSource, CardPart),
    Metadata(String),
    Email,
    Name,
    Phone,
}

impl Field {
    /// Resolve a field name for `resource`; a field Stripe does not search is refused.
    pub fn resolve(resource: Resource, name: &FieldName) -> Result<Field, QueryError> {
        let path = match name {
            FieldName::Metadata(key) => return Ok(Field::Metadata(key.clone())),
            FieldName::Path(path) => path.as_str(),
        };
        let field = match (resource, path) {
            (_, "created") => Some(Field::Created),
            (Resource::Charges, "amount") => Some(Field::Amount),
            (Resource::Charges, "currency") => Some(Field::Currency),
            (Resource::Charges, "customer") => Some(Field::Customer),
            (Resource::Charges, "disputed") => Some(Field::Disputed),
            (Resource::Charges, "refunded") => Some(Field::Refunded),
            (Resource::Charges, "status") => Some(Field::Status),
            (Resource::Charges, "billing_details.address.postal_code") => {
                Some(Field::BillingPostalCode)
            }
            (Resource::Charges, path) => card_field(path),
            (Resource::Customers, "email") => Some(Field::Email),
            (Resource::Customers, "name") => Some(Field::Name),
            (Resource::Customers, "phone") => Some(Field::Phone),
            (Resource::Customers, _) => None,
        };
        field.ok_or_else(|| {
            QueryError(format!(
                "`{path}` is not a field that {} search supports",
                resource.object()
            ))
        })
    }

    /// A field this ledger never records a value for (no billing details, card-present
    /// payments or customer phones): only `:null` or a negation can match it.
    pub fn is_never_set(&self) -> bool {
        matches!(
            self,
            Field::BillingPostalCode
                | Field::Card(CardSource::CardPresent | CardSource::InteracPresent, _)
                | Field::Phone
        )
    }

    pub fn kind(&self) -> FieldKind {
        match self {
            Field::Amount | Field::Created => FieldKind::Numeric,
            Field::Email | Field::Name | Field::Phone => FieldKind::Text,
            _ => FieldKind::Token,
        }
    }

    /// A stable label for index keys and messages.
    pub fn label(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Field::Amount => "amount",
            Field::Created => "created",
            Field::Currency => "currency",
            Field::Customer => "customer",
            Field::Disputed => "disputed",
            Field::Refunded => "refunded",
            Field::Status => "status",
            Field::BillingPostalCode => "billing_details.address.postal_code",
            Field::Card(source, part) => {
                let source = match source {
                    CardSource::Card => "card",
                    CardSource::CardPresent => "card_present",
                    CardSource::InteracPresent => "interac_present",
                };
                let part = match part {
                    CardPart::Last4 => "last4",
                    CardPart::ExpMonth => "exp_month",
                    CardPart::ExpYear => "exp_year",
                    CardPart::Brand => "brand",
                    CardPart::Fingerprint => "fingerprint",
                };
                return Cow::Owned(format!("payment_method_details.{source}.{part}"));
            }
            Field::Metadata(key) => return Cow::Owned(format!("metadata[\"{key}\"]")),
            Field::Email => "email",
            Field::Name => "name",
            Field::Phone => "phone",
        })
    }
}

fn card_field(path: &str) -> Option<Field> {
    let rest = path.strip_prefix("payment_method_details.")?;
    let (source, part) = rest.split_once('.')?;
    let source = match source {
        "card" => CardSource::Card,
        "card_present" => CardSource::CardPresent,
        "interac_present" => CardSource::InteracPresent,
        _ => return None,
    };
    let part = match part {
        "last4" => CardPart::Last4,
        "exp_month" => CardPart::ExpMonth,
        "exp_year" => CardPart::ExpYear,
        "brand" => CardPart::Brand,
        "fingerprint" => CardPart::Fingerprint,
        _ => return None,
    };
    Some(Field::Card(source, part))
}

/// What a clause tests, checked against its field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// `field:null`: the field is empty.
    IsNull,
    /// A token equal to this (lower-cased).
    TokenEquals(String),
    /// A string containing these words in sequence (lower-cased).
    TextEquals(Vec<String>),
    /// A string containing this substring (lower-cased).
    TextContains(String),
    /// A number compared with this.
    Compare(Operator, i64),
}

/// The shortest substring `~` accepts, as on Stripe.
pub const SUBSTRING_MIN_CHARS: usize = 3;

impl Test {
    /// What `field operator operand` tests; refused where the field's type does not allow it.
    pub fn new(field: &Field, operator: Operator, operand: &Operand) -> Result<Test, QueryError> {
        let label = field.label();
        let text = match operand {
            Operand::Quoted(text) | Operand::Number(text) => text.as_str(),
            Operand::Null if operator == Operator::Equals => return Ok(Test::IsNull),
            Operand::Null => {
                return Err(QueryError(format!(
                    "`null` can only be used with `:` (in `{label}{operator}null`)"
                )));
            }
        };
        match (field.kind(), operator) {
            (FieldKind::Numeric, Operator::Contains) | (FieldKind::Token, Operator::Contains) => {
                Err(QueryError(format!(
                    "`~` (substring match) works only on string fields, and `{label}` is not one"
                )))
            }
            (FieldKind::Numeric, _) => match text.trim().parse::<i64>() {
                Ok(number) => Ok(Test::Compare(operator, number)),
                Err(_) => Err(QueryError(format!(
                    "`{label}` is numeric: `{text}` is not an integer"
                ))),
            },
            (_, Operator::Equals) if field.kind() == FieldKind::Token => {
                let lower = text.to_lowercase();
                if *field == Field::Disputed && !matches!(lower.as_str(), "true" | "false") {
                    return Err(QueryError(
                        "`disputed` can only be \"true\" or \"false\"".to_string(),
                    ));
                }
                Ok(Test::TokenEquals(lower))
            }
            (_, Operator::Equals) => Ok(Test::TextEquals(
                text.to_lowercase()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
            )),
            (FieldKind::Text, Operator::Contains) => {
                if text.chars().count() < SUBSTRING_MIN_CHARS {
                    return Err(QueryError(format!(
                        "a substring match needs at least {SUBSTRING_MIN_CHARS} characters (`{label}~\"{text}\"`)"
                    )));
                }
                Ok(Test::TextContains(text.to_lowercase()))
            }
            (_, comparison) => Err(QueryError(format!(
                "`{comparison}` works only on numeric fields, and `{label}` is not one"
            ))),
        }
    }

    /// Whether a field holding `value` passes.
    pub fn passes(&self, value: Option<&FieldValue<'_>>) -> bool {
        match (self, value) {
            (Test::IsNull, value) => value.is_none(),
            (_, None) => false,
            (Test::TokenEquals(wanted), Some(FieldValue::Text(text))) => {
                text.to_lowercase() == *wanted
            }
            // `exp_month:"05"` is the month 5.
            (Test::TokenEquals(wanted), Some(FieldValue::Number(number))) => {
                wanted.trim().parse::<i64>() == Ok(*number)
            }
            (Test::TextEquals(words), Some(FieldValue::Text(text))) => {
                let lower = text.to_lowercase();
                let found: Vec<&str> = lower.split_whitespace().collect();
                !words.is_empty()
                    && found
                        .windows(words.len())
                        .any(|window| window.iter().zip(words).all(|(a, b)| *a == b))
            }
            (Test::TextContains(part), Some(FieldValue::Text(text))) => {
                text.to_lowercase().contains(part.as_str())
            }
            (Test::Compare(operator, bound), Some(FieldValue::Number(number))) => match operator {
                Operator::Equals => number == bound,
                Operator::Greater => number > bound,
                Operator::GreaterOrEqual => number >= bound,
                Operator::Less => number < bound,
                Operator::LessOrEqual => number <= bound,
                Operator::Contains => false,
            },
            _ => false,
        }
    }
}

/// A field's value on one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue<'a> {
    Text(Cow<'a, str>),
    Number(i64),
}

/// Something a search can look at.
pub trait Searchable {
    /// Whether it belongs to `resource` at all (an Omise charge is not found by Stripe search).
    fn is_a(&self, resource: Resource) -> bool;
    /// The field's value, `None` when it is empty.
    fn value(&self, field: &Field) -> Option<FieldValue<'_>>;
}

fn text(value: &str) -> Option<FieldValue<'_>> {
    Some(FieldValue::Text(Cow::Borrowed(value)))
}

/// A metadata value as search sees it: Stripe's values are strings; any other JSON as its text.
fn metadata_value<'a>(metadata: &'a Metadata, key: &str) -> Option<FieldValue<'a>> {
    match metadata.get(key)? {
        serde_json::Value::String(value) => text(value),
        other => Some(FieldValue::Text(Cow::Owned(other.to_string()))),
    }
}

impl Searchable for ChargeState {
    fn is_a(&self, resource: Resource) -> bool {
        resource == Resource::Charges && self.origin() == Origin::Stripe
    }

    fn value(&self, field: &Field) -> Option<FieldValue<'_>> {
        match field {
            Field::Amount => Some(FieldValue::Number(self.money.authorized)),
            Field::Created => Some(FieldValue::Number(self.created)),
            Field::Currency => text(&self.currency),
            Field::Customer => self.customer.as_deref().and_then(text),
            // The ledger records no disputes.
            Field::Disputed => text("false"),
            // Stripe's search semantics, not the charge's boolean: fully refunded is "true",
            // partly refunded "false", never refunded null. Released authorizations count as
            // refunded, as `amount_refunded` counts them.
            Field::Refunded if self.is_fully_returned() => text("true"),
            Field::Refunded if self.money.refunded + self.money.released > 0 => text("false"),
            Field::Refunded => None,
            Field::Status if self.failure.is_some() => text("failed"),
            Field::Status => text("succeeded"),
            // The ledger records no billing details.
            Field::BillingPostalCode => None,
            Field::Card(CardSource::Card, part) => match &self.instrument {
                Instrument::TestCard { card, .. } => match part {
                    CardPart::Last4 => text(&card.last4),
                    CardPart::Brand => text(&card.brand),
                    CardPart::Fingerprint => text(&card.fingerprint),
                    CardPart::ExpMonth => Some(FieldValue::Number(i64::from(card.exp_month))),
                    CardPart::ExpYear => Some(FieldValue::Number(i64::from(card.exp_year))),
                },
                Instrument::VaultCard { .. } => None,
            },
            // Every Stripe charge here is an online card payment.
            Field::Card(CardSource::CardPresent | CardSource::InteracPresent, _) => None,
            Field::Metadata(key) => metadata_value(&self.metadata, key),
            Field::Email | Field::Name | Field::Phone => None,
        }
    }
}

impl Searchable for Customer {
    fn is_a(&self, resource: Resource) -> bool {
        resource == Resource::Customers
    }

    fn value(&self, field: &Field) -> Option<FieldValue<'_>> {
        match field {
            Field::Created => Some(FieldValue::Number(self.created)),
            Field::Email => self.email.as_deref().and_then(text),
            Field::Name => self.name.as_deref().and_then(text),
            Field::Metadata(key) => metadata_value(&self.metadata, key),
            // Customers here record no phone; `phone:null` matches every one.
            _ => None,
        }
    }
}

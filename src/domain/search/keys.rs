//! The search index's keys: which fields of a projection are indexed, how a key is encoded, and the lookup a clause can use.
//!
//! A key is `resource byte · u32 label length · label · value`, the value being `t · u32
//! length · lower-cased text` for a token or `n · 8 bytes` for a number (the sign bit flipped,
//! big-endian, so keys sort as the numbers do). Stores append the object's creation sequence
//! (8 bytes, big-endian) and keep its id, so the entries of one token read newest first and a
//! numeric range is one contiguous span. Keys are derived data: a layout or migration change
//! rebuilds them from projections.

use std::collections::BTreeSet;

use super::Clause;
use super::fields::{CardPart, CardSource, Field, FieldValue, Resource, Searchable, Test};
use super::query::Operator;
use crate::domain::{ChargeState, Customer, Projection};

/// Where to look in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Every entry of this key, newest first.
    Exact(Vec<u8>),
    /// Every entry with a key in `from..to` (in key order, not creation order).
    Range { from: Vec<u8>, to: Vec<u8> },
}

/// The token fields of a charge that are indexed; `amount` is indexed as a number.
const INDEXED_CHARGE_TOKENS: [Field; 7] = [
    Field::Currency,
    Field::Customer,
    Field::Status,
    Field::Refunded,
    Field::Card(CardSource::Card, CardPart::Last4),
    Field::Card(CardSource::Card, CardPart::Brand),
    Field::Card(CardSource::Card, CardPart::Fingerprint),
];

fn is_indexed_token(resource: Resource, field: &Field) -> bool {
    matches!(field, Field::Metadata(_))
        || (resource == Resource::Charges && INDEXED_CHARGE_TOKENS.contains(field))
}

fn prefix(resource: Resource, field: &Field, tag: u8) -> Vec<u8> {
    let label = match field {
        // Metadata keys are the user's text: labelled apart from every fixed field.
        Field::Metadata(key) => format!("m:{key}"),
        other => format!("f:{}", other.label()),
    };
    let mut key = vec![match resource {
        Resource::Charges => b'c',
        Resource::Customers => b'u',
    }];
    key.extend_from_slice(&(label.len() as u32).to_be_bytes());
    key.extend_from_slice(label.as_bytes());
    key.push(tag);
    key
}

/// The key of a token value (`lower` already lower-cased).
pub fn token_key(resource: Resource, field: &Field, lower: &str) -> Vec<u8> {
    let mut key = prefix(resource, field, b't');
    key.extend_from_slice(&(lower.len() as u32).to_be_bytes());
    key.extend_from_slice(lower.as_bytes());
    key
}

fn sortable(number: i64) -> [u8; 8] {
    ((number as u64) ^ (1 << 63)).to_be_bytes()
}

/// The key of a numeric value.
pub fn number_key(resource: Resource, field: &Field, number: i64) -> Vec<u8> {
    let mut key = prefix(resource, field, b'n');
    key.extend_from_slice(&sortable(number));
    key
}

/// The lookup a clause can use, if its field is indexed and it is not negated.
pub(super) fn lookup(resource: Resource, clause: &Clause) -> Option<Lookup> {
    if clause.negated {
        return None;
    }
    match &clause.test {
        Test::TokenEquals(lower) if is_indexed_token(resource, &clause.field) => {
            Some(Lookup::Exact(token_key(resource, &clause.field, lower)))
        }
        Test::Compare(..) if resource == Resource::Charges && clause.field == Field::Amount => {
            let (low, high) = amount_bounds(clause)?;
            Some(amount_range(low, high))
        }
        _ => None,
    }
}

/// The inclusive amounts a comparison allows, `None` for a clause that is not one; an empty
/// range (`amount>i64::MAX`) is `low > high`.
pub(super) fn amount_bounds(clause: &Clause) -> Option<(i64, i64)> {
    let Test::Compare(operator, bound) = &clause.test else {
        return None;
    };
    if clause.negated || clause.field != Field::Amount {
        return None;
    }
    let empty = (i64::MAX, i64::MIN);
    Some(match operator {
        Operator::Equals => (*bound, *bound),
        Operator::Greater => bound.checked_add(1).map_or(empty, |low| (low, i64::MAX)),
        Operator::GreaterOrEqual => (*bound, i64::MAX),
        Operator::Less => bound.checked_sub(1).map_or(empty, |high| (i64::MIN, high)),
        Operator::LessOrEqual => (i64::MIN, *bound),
        Operator::Contains => return None,
    })
}

/// Every charge entry with an amount in `low..=high` (none when `low > high`).
pub(super) fn amount_range(low: i64, high: i64) -> Lookup {
    let from = number_key(Resource::Charges, &Field::Amount, low);
    if low > high {
        return Lookup::Range {
            to: from.clone(),
            from,
        };
    }
    // Past every entry of `high`, whatever its creation sequence.
    let mut to = number_key(Resource::Charges, &Field::Amount, high);
    to.extend_from_slice(&[0xff; 9]);
    Lookup::Range { from, to }
}

/// Which of an `AND` query's lookups to use: lower is likely to match fewer objects. Metadata
/// and customers are nearly unique; an amount range is bounded by a cap on its candidates;
/// currencies and statuses are shared by most charges.
pub(super) fn selectivity_rank(field: &Field) -> u8 {
    match field {
        Field::Metadata(_) | Field::Customer => 0,
        Field::Card(_, CardPart::Fingerprint | CardPart::Last4) => 1,
        Field::Amount => 2,
        Field::Refunded | Field::Card(..) => 3,
        _ => 4,
    }
}

fn object_keys(
    resource: Resource,
    object: &impl Searchable,
    metadata_keys: Vec<&String>,
) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    if resource == Resource::Charges {
        for field in &INDEXED_CHARGE_TOKENS {
            if let Some(FieldValue::Text(text)) = object.value(field) {
                keys.push(token_key(resource, field, &text.to_lowercase()));
            }
        }
        if let Some(FieldValue::Number(amount)) = object.value(&Field::Amount) {
            keys.push(number_key(resource, &Field::Amount, amount));
        }
    }
    for key in metadata_keys {
        let field = Field::Metadata(key.clone());
        if let Some(FieldValue::Text(text)) = object.value(&field) {
            keys.push(token_key(resource, &field, &text.to_lowercase()));
        }
    }
    keys
}

/// Every index key of a projection: the search keys of a Stripe charge or a customer, and
/// the expiry of an Omise authorization still waiting for capture (the sweep's lookup).
pub fn index_keys(projection: &Projection) -> Vec<Vec<u8>> {
    match projection {
        Projection::Charge(charge) if charge.is_a(Resource::Charges) => charge_keys(charge),
        Projection::Charge(charge) => pending_expiry(charge).map(expiry_key).into_iter().collect(),
        Projection::Customer(customer) => customer_keys(customer),
        _ => Vec::new(),
    }
}

/// When an uncaptured Omise authorization expires; `None` for any other charge.
fn pending_expiry(charge: &ChargeState) -> Option<i64> {
    let details = charge.omise_details()?;
    (charge.lifecycle == crate::domain::Lifecycle::Authorized)
        .then(|| crate::domain::omise::expires_at(charge, details))
}

/// The key of an authorization expiring at `expires_at` (Unix seconds): apart from every
/// search key (`x`, not a resource's byte), sorted by time.
pub fn expiry_key(expires_at: i64) -> Vec<u8> {
    let mut key = vec![b'x'];
    key.extend_from_slice(&sortable(expires_at));
    key
}

/// The span of every authorization expiring at or before `now_unix`.
pub fn expired_by(now_unix: i64) -> Lookup {
    let mut to = expiry_key(now_unix);
    to.extend_from_slice(&[0xff; 9]);
    Lookup::Range {
        from: expiry_key(i64::MIN),
        to,
    }
}

fn charge_keys(charge: &ChargeState) -> Vec<Vec<u8>> {
    object_keys(Resource::Charges, charge, charge.metadata.keys().collect())
}

fn customer_keys(customer: &Customer) -> Vec<Vec<u8>> {
    object_keys(
        Resource::Customers,
        customer,
        customer.metadata.keys().collect(),
    )
}

/// What a write changes in the index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchKeyChanges {
    pub added: Vec<Vec<u8>>,
    pub removed: Vec<Vec<u8>>,
}

/// The keys a stream gains and loses going from `before` to `after`.
pub fn key_changes(before: Option<&Projection>, after: &Projection) -> SearchKeyChanges {
    let old: BTreeSet<Vec<u8>> = before
        .map(index_keys)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let new: BTreeSet<Vec<u8>> = index_keys(after).into_iter().collect();
    SearchKeyChanges {
        added: new.difference(&old).cloned().collect(),
        removed: old.difference(&new).cloned().collect(),
    }
}

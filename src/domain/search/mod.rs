//! Stripe's search over charges and customers, pure: a query read and checked against field types, matched against projections, and the index lookups that find candidates without a scan.
//!
//! A search is answered in two steps. `Query::plan` names index lookups (`keys`) that yield a
//! superset of the matches, or `Plan::Scan` when no clause can be looked up (negations, `null`,
//! substrings, `created`); then every candidate is checked with `Query::matches` against its
//! current projection. The index may hold keys a charge no longer has; it never lacks one it has.

pub mod fields;
pub mod keys;
pub mod query;

pub use fields::{Field, FieldKind, FieldValue, Resource, Searchable, Test};
pub use keys::{Lookup, SearchKeyChanges, index_keys, key_changes};
pub use query::{Joiner, QUERY_MAX_CHARS, QUERY_MAX_CLAUSES, QueryError};

/// One clause, its field resolved and its test checked against the field's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub negated: bool,
    pub field: Field,
    pub test: Test,
}

impl Clause {
    fn matches(&self, object: &impl Searchable) -> bool {
        self.test.passes(object.value(&self.field).as_ref()) != self.negated
    }

    /// Whether no object here can pass: a positive test of a value on a field the ledger
    /// never records, or `disputed:"true"` (no charge here is disputed).
    fn can_never_match(&self) -> bool {
        if self.negated || self.test == Test::IsNull {
            return false;
        }
        self.field.is_never_set()
            || (self.field == Field::Disputed && self.test == Test::TokenEquals("true".into()))
    }
}

/// A search query over one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub resource: Resource,
    pub joiner: Joiner,
    pub clauses: Vec<Clause>,
}

/// How to find a query's candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The union of these lookups holds every match.
    Index(Vec<Lookup>),
    /// No clause narrows the search: every object is a candidate.
    Scan,
}

impl Query {
    /// Read `text` as a query over `resource`.
    pub fn parse(resource: Resource, text: &str) -> Result<Query, QueryError> {
        let parsed = query::parse(text)?;
        let clauses = parsed
            .clauses
            .iter()
            .map(|clause| {
                let field = Field::resolve(resource, &clause.field)?;
                let test = Test::new(&field, clause.operator, &clause.operand)?;
                Ok(Clause {
                    negated: clause.negated,
                    field,
                    test,
                })
            })
            .collect::<Result<Vec<_>, QueryError>>()?;
        Ok(Query {
            resource,
            joiner: parsed.joiner,
            clauses,
        })
    }

    /// Whether `object` is one of the query's results.
    pub fn matches(&self, object: &impl Searchable) -> bool {
        object.is_a(self.resource)
            && match self.joiner {
                Joiner::And => self.clauses.iter().all(|clause| clause.matches(object)),
                Joiner::Or => self.clauses.iter().any(|clause| clause.matches(object)),
            }
    }

    /// Where the candidates are: for `AND`, the lookup of the clause likely to match fewest,
    /// every `amount` comparison narrowing one range; for `OR`, one lookup per clause, or a
    /// scan if any clause has none.
    /// A clause that can never match empties an `AND` and drops out of an `OR`.
    pub fn plan(&self) -> Plan {
        let nothing = Plan::Index(Vec::new());
        let possible: Vec<&Clause> = self
            .clauses
            .iter()
            .filter(|clause| !clause.can_never_match())
            .collect();
        if possible.is_empty()
            || (self.joiner == Joiner::And && possible.len() < self.clauses.len())
        {
            return nothing;
        }
        let lookups = possible
            .iter()
            .map(|clause| keys::lookup(self.resource, clause).map(|lookup| (*clause, lookup)));
        match self.joiner {
            Joiner::And => {
                let mut best = lookups
                    .flatten()
                    .filter(|(clause, _)| clause.field != Field::Amount)
                    .min_by_key(|(clause, _)| keys::selectivity_rank(&clause.field))
                    .map(|(clause, lookup)| (keys::selectivity_rank(&clause.field), lookup));
                if let Some(amounts) = self.amount_bounds() {
                    let rank = keys::selectivity_rank(&Field::Amount);
                    if best.as_ref().is_none_or(|(best_rank, _)| rank < *best_rank) {
                        best = Some((rank, keys::amount_range(amounts.0, amounts.1)));
                    }
                }
                best.map_or(Plan::Scan, |(_, lookup)| Plan::Index(vec![lookup]))
            }
            Joiner::Or => {
                let mut lookups = lookups
                    .map(|found| found.map(|(_, lookup)| lookup))
                    .collect::<Option<Vec<_>>>();
                if let Some(lookups) = &mut lookups {
                    // The same lookup twice would only be read twice.
                    let mut seen = Vec::new();
                    lookups.retain(|lookup| {
                        let fresh = !seen.contains(lookup);
                        if fresh {
                            seen.push(lookup.clone());
                        }
                        fresh
                    });
                }
                lookups.map_or(Plan::Scan, Plan::Index)
            }
        }
    }

    /// The amounts every `amount` comparison of an `AND` query allows together, if it has any.
    fn amount_bounds(&self) -> Option<(i64, i64)> {
        if self.resource != Resource::Charges {
            return None;
        }
        self.clauses.iter().filter_map(keys::amount_bounds).reduce(
            |(low, high), (other_low, other_high)| (low.max(other_low), high.min(other_high)),
        )
    }
}

#[cfg(test)]
mod tests;

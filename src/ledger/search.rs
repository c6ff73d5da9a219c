//! Stripe search over an account's charges and customers: candidates from the search index (or a scan when no clause can be looked up), each checked against its current projection, newest first, paged with opaque tokens.
//!
//! Results are strongly consistent: an object is found as soon as the write that gave it the
//! matching value is durable, because index entries are written in the same transaction as the
//! projection. Order is creation order, newest first, stable across pages.

use std::collections::VecDeque;

use base64::Engine;

use super::*;
use crate::domain::search::{Lookup, Plan, Query, Resource, Searchable};
use crate::store::{IndexEntry, IndexScan};

/// The most index entries an amount range reads. A wider range matches so much of the account
/// that walking it newest first (a scan) fills a page sooner than sorting the range would.
const RANGE_CANDIDATES_MAX: usize = 2_000;
/// Index entries read per store call while a page is filled.
const INDEX_CHUNK_ENTRIES: usize = 200;
/// Objects read per store call while a scan looks for matches.
const SCAN_CHUNK_OBJECTS: usize = 100;
/// Stripe's `total_count` is "only accurate up to 10,000": counting stops there.
pub const SEARCH_TOTAL_COUNT_MAX: usize = 10_000;
/// The longest `page` token accepted, as Stripe caps the parameter.
pub const SEARCH_PAGE_MAX_CHARS: usize = 5_000;

/// What to search for and which page.
#[derive(Debug, Clone, Copy)]
pub struct SearchRequest<'a> {
    /// The query as sent: page tokens are bound to it.
    pub text: &'a str,
    /// 1 to 100.
    pub limit: usize,
    /// The previous result's `next_page`, or `None` for the first page.
    pub page: Option<&'a str>,
    /// Whether to count every match (up to `SEARCH_TOTAL_COUNT_MAX`).
    pub count_total: bool,
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage<T> {
    pub data: Vec<T>,
    /// The token of the next page; `None` on the last one.
    pub next_page: Option<String>,
    /// All matches, capped at `SEARCH_TOTAL_COUNT_MAX`, when asked for.
    pub total_count: Option<usize>,
}

/// Where a page starts: after the object last shown.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    created_sequence: u64,
    stream_id: String,
}

/// What search reads from a projection.
pub trait Searched: Searchable + Sized + Send + Sync {
    const RESOURCE: Resource;
    fn from_projection(projection: Projection) -> Option<Self>;
    fn id(&self) -> &str;
}

impl Searched for ChargeState {
    const RESOURCE: Resource = Resource::Charges;
    fn from_projection(projection: Projection) -> Option<Self> {
        match projection {
            Projection::Charge(charge) => Some(*charge),
            _ => None,
        }
    }
    fn id(&self) -> &str {
        &self.id
    }
}

impl Searched for Customer {
    const RESOURCE: Resource = Resource::Customers;
    fn from_projection(projection: Projection) -> Option<Self> {
        match projection {
            Projection::Customer(customer) => Some(customer),
            _ => None,
        }
    }
    fn id(&self) -> &str {
        &self.id
    }
}

/// A match and where it stands in creation order.
struct Found<T> {
    object: T,
    position: Position,
}

/// Where matches go: kept for a page, or only counted (`total_count` holds no objects).
enum Matches<T> {
    Kept(Vec<Found<T>>),
    Counted(usize),
}

impl<T> Matches<T> {
    fn len(&self) -> usize {
        match self {
            Matches::Kept(kept) => kept.len(),
            Matches::Counted(count) => *count,
        }
    }
}

impl Ledger {
    /// Stripe's charge search (`GET /v1/charges/search`).
    pub async fn search_charges(
        &self,
        account: &str,
        request: SearchRequest<'_>,
    ) -> Result<SearchPage<ChargeState>, LedgerError> {
        self.search(account, request).await
    }

    /// Stripe's customer search (`GET /v1/customers/search`).
    pub async fn search_customers(
        &self,
        account: &str,
        request: SearchRequest<'_>,
    ) -> Result<SearchPage<Customer>, LedgerError> {
        self.search(account, request).await
    }

    async fn search<T: Searched>(
        &self,
        account: &str,
        request: SearchRequest<'_>,
    ) -> Result<SearchPage<T>, LedgerError> {
        let account = &AccountId::parse(account)?;
        let query = Query::parse(T::RESOURCE, request.text).map_err(|error| {
            RequestError::InvalidSearchQuery {
                detail: error.0.clone(),
            }
        })?;
        let after = match request.page {
            None => None,
            Some(token) => Some(decode_page(T::RESOURCE, request.text, token)?),
        };
        let limit = request.limit.clamp(1, 100);
        let mut kept = Matches::Kept(Vec::new());
        self.matches_after::<T>(account, &query, after.as_ref(), limit + 1, &mut kept)
            .await?;
        let Matches::Kept(mut found) = kept else {
            unreachable!("a page keeps its matches")
        };
        let next_page = if found.len() > limit {
            found.truncate(limit);
            found
                .last()
                .map(|last| encode_page(T::RESOURCE, request.text, &last.position))
        } else {
            None
        };
        let total_count = if request.count_total {
            let mut counted = Matches::Counted(0);
            self.matches_after::<T>(account, &query, None, SEARCH_TOTAL_COUNT_MAX, &mut counted)
                .await?;
            Some(counted.len())
        } else {
            None
        };
        Ok(SearchPage {
            data: found.into_iter().map(|found| found.object).collect(),
            next_page,
            total_count,
        })
    }

    /// Up to `want` matches created before `after`, newest first, into `matches`.
    async fn matches_after<T: Searched>(
        &self,
        account: &str,
        query: &Query,
        after: Option<&Position>,
        want: usize,
        matches: &mut Matches<T>,
    ) -> Result<(), LedgerError> {
        let below = after.map_or(u64::MAX, |position| position.created_sequence);
        if let Plan::Index(lookups) = query.plan() {
            let mut sources = Vec::with_capacity(lookups.len());
            for lookup in lookups {
                match self.open_source(account, lookup, below).await? {
                    Some(source) => sources.push(source),
                    // A range too wide to sort: scanning finds its matches sooner.
                    None => return self.scan(account, query, after, want, matches).await,
                }
            }
            return self
                .walk_index(account, query, sources, want, matches)
                .await;
        }
        self.scan(account, query, after, want, matches).await
    }

    /// A lookup's candidates below `below`; `None` for a range with too many to sort.
    async fn open_source(
        &self,
        account: &str,
        lookup: Lookup,
        below: u64,
    ) -> Result<Option<Source>, LedgerError> {
        Ok(Some(match lookup {
            Lookup::Exact(key) => Source {
                key: Some(key),
                below,
                buffer: VecDeque::new(),
                exhausted: false,
            },
            Lookup::Range { from, to } => {
                let scan = IndexScan::Between {
                    from: &from,
                    to: &to,
                };
                let mut entries = self
                    .store
                    .scan_search_index(account, scan, RANGE_CANDIDATES_MAX + 1)
                    .await?;
                if entries.len() > RANGE_CANDIDATES_MAX {
                    return Ok(None);
                }
                entries.retain(|entry| entry.created_sequence < below);
                entries.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.created_sequence));
                entries.dedup_by_key(|entry| entry.created_sequence);
                Source {
                    key: None,
                    below,
                    buffer: entries.into(),
                    exhausted: true,
                }
            }
        }))
    }

    /// Merge the sources newest first, keeping candidates whose projection matches.
    async fn walk_index<T: Searched>(
        &self,
        account: &str,
        query: &Query,
        mut sources: Vec<Source>,
        want: usize,
        matches: &mut Matches<T>,
    ) -> Result<(), LedgerError> {
        let mut examined = 0_usize;
        loop {
            examined += 1;
            if examined.is_multiple_of(SCAN_CHUNK_OBJECTS) {
                // A long walk lets the other requests on this worker run.
                tokio::task::yield_now().await;
            }
            for source in &mut sources {
                source.refill(self.store.as_ref(), account).await?;
            }
            let Some(newest) = sources
                .iter()
                .filter_map(|source| source.buffer.front())
                .map(|entry| entry.created_sequence)
                .max()
            else {
                return Ok(());
            };
            let mut candidate = None;
            for source in &mut sources {
                if source.buffer.front().map(|entry| entry.created_sequence) == Some(newest) {
                    candidate = source.buffer.pop_front();
                }
            }
            let Some(entry) = candidate else {
                unreachable!("the newest entry was taken from the source that held it")
            };
            if let Some(object) = self.candidate::<T>(account, query, &entry).await? {
                match matches {
                    Matches::Kept(kept) => kept.push(object),
                    Matches::Counted(count) => *count += 1,
                }
                if matches.len() >= want {
                    return Ok(());
                }
            }
        }
    }

    /// The object an index entry names, if it still matches.
    async fn candidate<T: Searched>(
        &self,
        account: &str,
        query: &Query,
        entry: &IndexEntry,
    ) -> Result<Option<Found<T>>, LedgerError> {
        let Some(stored) = self.store.load(account, &entry.stream_id).await? else {
            return Err(Failure::SearchIndexDamaged(format!(
                "account {account}'s search index names {}, which has no projection",
                entry.stream_id
            ))
            .into());
        };
        if stored.created_sequence != entry.created_sequence {
            return Err(Failure::SearchIndexDamaged(format!(
                "account {account}'s search index places {} at creation {}, but it was created at {}",
                entry.stream_id, entry.created_sequence, stored.created_sequence
            ))
            .into());
        }
        let Some(object) = T::from_projection(stored.projection) else {
            return Ok(None);
        };
        Ok(query.matches(&object).then(|| Found {
            object,
            position: Position {
                created_sequence: entry.created_sequence,
                stream_id: entry.stream_id.clone(),
            },
        }))
    }

    /// Walk the account's objects newest first, keeping matches: for queries no index serves.
    async fn scan<T: Searched>(
        &self,
        account: &str,
        query: &Query,
        after: Option<&Position>,
        want: usize,
        matches: &mut Matches<T>,
    ) -> Result<(), LedgerError> {
        let mut cursor = after.map_or(PageCursor::Newest, |position| {
            PageCursor::StartingAfter(position.stream_id.clone())
        });
        loop {
            // Unfiltered pages, checked here: a store-side filter would walk the whole account
            // in one call when matches are rare, holding this worker thread throughout.
            let page = match T::RESOURCE {
                Resource::Charges => {
                    let page = self
                        .store
                        .list_charges(account, &cursor, SCAN_CHUNK_OBJECTS, &|_| true)
                        .await?;
                    let data = page
                        .data
                        .into_iter()
                        .map(|charge| Projection::Charge(Box::new(charge)));
                    (data.collect::<Vec<_>>(), page.has_more)
                }
                Resource::Customers => {
                    let page = self
                        .store
                        .list_customers(account, &cursor, SCAN_CHUNK_OBJECTS)
                        .await?;
                    let data = page.data.into_iter().map(Projection::Customer);
                    (data.collect::<Vec<_>>(), page.has_more)
                }
            };
            let (objects, has_more) = page;
            let Some(last_id) = objects.last().and_then(|last| match last {
                Projection::Charge(charge) => Some(charge.id.clone()),
                Projection::Customer(customer) => Some(customer.id.clone()),
                _ => None,
            }) else {
                return Ok(());
            };
            for projection in objects {
                let Some(object) = T::from_projection(projection) else {
                    continue;
                };
                if !query.matches(&object) {
                    continue;
                }
                let kept = match matches {
                    Matches::Kept(kept) => kept,
                    Matches::Counted(count) => {
                        *count += 1;
                        if *count >= want {
                            return Ok(());
                        }
                        continue;
                    }
                };
                // Lists name objects by id; the position needs their creation order too.
                let stored = self.store.load(account, object.id()).await?;
                let Some(created_sequence) = stored.map(|stored| stored.created_sequence) else {
                    return Err(Failure::SearchIndexDamaged(format!(
                        "account {account} lists {}, which has no projection",
                        object.id()
                    ))
                    .into());
                };
                let position = Position {
                    created_sequence,
                    stream_id: object.id().to_string(),
                };
                kept.push(Found { object, position });
                if kept.len() >= want {
                    return Ok(());
                }
            }
            if !has_more {
                return Ok(());
            }
            cursor = PageCursor::StartingAfter(last_id);
            // A walk of a large account lets the other requests on this worker run.
            tokio::task::yield_now().await;
        }
    }
}

/// One lookup's candidates, newest first, read from the index a chunk at a time.
struct Source {
    /// The key of an exact lookup (read in chunks); `None` for a range read whole.
    key: Option<Vec<u8>>,
    /// Only entries created before this are still to be read.
    below: u64,
    buffer: VecDeque<IndexEntry>,
    exhausted: bool,
}

impl Source {
    async fn refill(&mut self, store: &dyn EventStore, account: &str) -> Result<(), LedgerError> {
        if !self.buffer.is_empty() || self.exhausted {
            return Ok(());
        }
        let Some(key) = &self.key else {
            self.exhausted = true;
            return Ok(());
        };
        let scan = IndexScan::Newest {
            key,
            below_sequence: self.below,
        };
        let entries = store
            .scan_search_index(account, scan, INDEX_CHUNK_ENTRIES)
            .await?;
        self.exhausted = entries.len() < INDEX_CHUNK_ENTRIES;
        if let Some(last) = entries.last() {
            assert!(
                last.created_sequence < self.below,
                "an index read went back to entries it had passed"
            );
            self.below = last.created_sequence;
        }
        self.buffer.extend(entries);
        Ok(())
    }
}

/// The digest a page token carries: which resource and query it continues.
fn query_digest(resource: Resource, text: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(resource.object().as_bytes());
    hasher.update([0]);
    hasher.update(text.as_bytes());
    hex::encode(&hasher.finalize()[..8])
}

fn encode_page(resource: Resource, text: &str, position: &Position) -> String {
    let plain = format!(
        "{}:{}:{}",
        query_digest(resource, text),
        position.created_sequence,
        position.stream_id
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(plain)
}

fn decode_page(resource: Resource, text: &str, token: &str) -> Result<Position, RequestError> {
    let refused = || RequestError::InvalidSearchPage {
        value: token.chars().take(SEARCH_PAGE_MAX_CHARS).collect(),
    };
    let plain = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(refused)?;
    let mut parts = plain.splitn(3, ':');
    let (Some(digest), Some(sequence), Some(stream_id)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(refused());
    };
    if digest != query_digest(resource, text) || stream_id.is_empty() {
        return Err(refused());
    }
    let created_sequence = sequence.parse::<u64>().map_err(|_| refused())?;
    Ok(Position {
        created_sequence,
        stream_id: stream_id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_token_continues_only_its_own_query() {
        let position = Position {
            created_sequence: 42,
            stream_id: "ch_1:x".into(),
        };
        let token = encode_page(Resource::Charges, "amount>1", &position);
        assert_eq!(
            decode_page(Resource::Charges, "amount>1", &token),
            Ok(position)
        );
        assert!(decode_page(Resource::Charges, "amount>2", &token).is_err());
        assert!(decode_page(Resource::Customers, "amount>1", &token).is_err());
        assert!(decode_page(Resource::Charges, "amount>1", "not a token!").is_err());
        assert!(decode_page(Resource::Charges, "amount>1", "").is_err());
    }
}

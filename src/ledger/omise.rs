//! The Omise dialect's writes and reads on the `Ledger`: vault tokens, charges paid with them, updates, capture, reverse and refunds.
//!
//! Same write path as every other command (`execute`): an Omise update is a `ChargeUpdated`
//! event in the same log, so history, time travel, replay, verify and export cover it. A charge
//! and the token it spends are appended in one transaction (`execute_with_linked`).

use std::future::Future;

use crate::domain::omise::{
    self, CaptureOmiseCharge, CreateOmiseCharge, CreateToken, OmiseRefusal, RefundOmiseCharge,
    UpdateOmiseCharge,
};
use crate::domain::{self, ChargeState, Projection, Token};
use crate::events::{EventPayload, RecordedEvent, RequestMeta};

use crate::store::{LinkedAppend, Page, PageCursor, StoreError, StoredProjection};

use super::{
    AccountId, Decision, Ledger, LedgerError, Refunded, Refusal, existing_charge, fingerprint,
    fold_new_charge, unexpected_payload,
};

impl Ledger {
    /// Put a card in the vault (`POST /tokens`); the token pays for one charge.
    pub async fn create_token(
        &self,
        account: &str,
        command: CreateToken,
        request: RequestMeta,
    ) -> Result<Token, LedgerError> {
        let account = &AccountId::parse(account)?;
        let context = self.omise_context(account);
        let token_id = context.ids.token.clone();
        self.execute(
            account,
            &token_id,
            || fingerprint("create_token", "", &command),
            request,
            |current| {
                if current.is_some() {
                    return Err(Refusal::Contention {
                        stream_id: token_id.clone(),
                        attempts: 1,
                    }
                    .into());
                }
                let payload = omise::create_token(&command, &context)?;
                let projection = fold_stream(&token_id, None, &payload)?;
                let Projection::Token(token) = &projection else {
                    return Err(unexpected_payload(&token_id, &payload, "token"));
                };
                Ok(Decision::Append {
                    outcome: (**token).clone(),
                    payloads: vec![payload],
                    projection,
                    linked: Vec::new(),
                })
            },
        )
        .await
    }

    /// A vault token of this account.
    pub async fn get_token(&self, account: &str, token_id: &str) -> Result<Token, LedgerError> {
        let account = &AccountId::parse(account)?;
        let stored = self.store.load(account, token_id).await?;
        stored.as_ref().and_then(existing_token).ok_or_else(|| {
            OmiseRefusal::TokenNotFound {
                id: token_id.to_string(),
            }
            .into()
        })
    }

    /// Create a charge through the Omise dialect, spending the vault token it names, or on a
    /// customer's saved card.
    pub async fn create_omise_charge(
        &self,
        account: &str,
        command: CreateOmiseCharge,
        request: RequestMeta,
    ) -> Result<ChargeState, LedgerError> {
        let account = &AccountId::parse(account)?;
        let context = self.omise_context(account);
        let charge_id = context.ids.charge.clone();
        // A customer's card is read, not spent, and cards are only ever added: the customer
        // is loaded once, before the decision, and its stream is not appended to.
        let customer = match &command.customer {
            Some(customer_id) => self
                .store
                .load(account, customer_id)
                .await?
                .and_then(|stored| match stored.projection {
                    Projection::Customer(customer) => Some(customer),
                    _ => None,
                }),
            None => None,
        };
        // With a customer, `card` names one of its cards, not a token.
        let token_id = match &command.customer {
            Some(_) => None,
            None => command.card.clone(),
        };
        self.execute_with_linked(
            account,
            &charge_id,
            token_id.as_deref(),
            || fingerprint("create_omise_charge", "", &command),
            request,
            |current, token_stream| {
                if current.is_some() {
                    return Err(Refusal::Contention {
                        stream_id: charge_id.clone(),
                        attempts: 1,
                    }
                    .into());
                }
                let token = token_stream.and_then(existing_token);
                let paid_with = match (&customer, &token) {
                    (Some(customer), _) => Some(omise::PaymentSource::Customer(customer)),
                    (None, Some(token)) => Some(omise::PaymentSource::Token(token)),
                    (None, None) => None,
                };
                let decision = omise::create_charge(&command, paid_with, &context)?;
                let projection = fold_stream(&charge_id, None, &decision.charge_created)?;
                let Projection::Charge(charge) = &projection else {
                    return Err(unexpected_payload(
                        &charge_id,
                        &decision.charge_created,
                        "charge",
                    ));
                };
                let outcome = (**charge).clone();
                let linked = match decision.token_used {
                    None => Vec::new(),
                    Some(token_used) => {
                        // `create_charge` spends a token only when it was loaded from the linked
                        // stream, so this refusal is never reached; it keeps the code free of a
                        // panic.
                        let (Some(token), Some(token_stream)) = (token, token_stream) else {
                            return Err(OmiseRefusal::TokenNotFound {
                                id: token_id.clone().unwrap_or_default(),
                            }
                            .into());
                        };
                        let token_projection =
                            fold_stream(&token.id, Some(token_stream), &token_used)?;
                        vec![LinkedAppend {
                            stream_id: token.id.clone(),
                            expected_version: token_stream.version,
                            payloads: vec![token_used],
                            projection: token_projection,
                        }]
                    }
                };
                Ok(Decision::Append {
                    payloads: vec![decision.charge_created],
                    projection,
                    outcome,
                    linked,
                })
            },
        )
        .await
    }

    /// `PATCH /charges/{id}`: description and metadata (replaced as a whole).
    pub async fn update_omise_charge(
        &self,
        account: &str,
        charge_id: &str,
        command: UpdateOmiseCharge,
        request: RequestMeta,
    ) -> Result<ChargeState, LedgerError> {
        let account = &AccountId::parse(account)?;
        self.execute_with_policy(
            account,
            charge_id,
            || fingerprint("update_omise_charge", charge_id, &command),
            request,
            |current, policy| {
                let charge = existing_charge(charge_id, current)?;
                match omise::update_charge(&charge, &command, policy)? {
                    None => Ok(Decision::Unchanged(charge)),
                    Some(payload) => fold_new_charge(charge_id, Some(charge), payload),
                }
            },
        )
        .await
    }

    /// Capture an authorized Omise charge, in full or in part.
    pub async fn capture_omise_charge(
        &self,
        account: &str,
        charge_id: &str,
        command: CaptureOmiseCharge,
        request: RequestMeta,
    ) -> Result<ChargeState, LedgerError> {
        let account = &AccountId::parse(account)?;
        let context = self.omise_context(account);
        self.execute(
            account,
            charge_id,
            || fingerprint("capture_omise_charge", charge_id, &command),
            request,
            |current| {
                let charge = existing_charge(charge_id, current)?;
                let payload = omise::capture_charge(&charge, &command, &context)?;
                fold_new_charge(charge_id, Some(charge), payload)
            },
        )
        .await
    }

    /// Refund part or all of a captured Omise charge.
    pub async fn refund_omise_charge(
        &self,
        account: &str,
        charge_id: &str,
        command: RefundOmiseCharge,
        request: RequestMeta,
    ) -> Result<Refunded, LedgerError> {
        let account = &AccountId::parse(account)?;
        let context = self.omise_context(account);
        self.execute(
            account,
            charge_id,
            || fingerprint("refund_omise_charge", charge_id, &command),
            request,
            |current| {
                let charge = existing_charge(charge_id, current)?;
                let payload = omise::refund_charge(&charge, &command, &context)?;
                let EventPayload::ChargeRefunded(refunded) = &payload else {
                    return Err(unexpected_payload(charge_id, &payload, "charge"));
                };
                let refund = refunded.refund.clone();
                fold_new_charge(charge_id, Some(charge), payload)
                    .map(|decision| decision.map(|charge| Refunded { refund, charge }))
            },
        )
        .await
    }

    /// Release an uncaptured authorization (Omise's reverse).
    pub async fn reverse_charge(
        &self,
        account: &str,
        charge_id: &str,
        request: RequestMeta,
    ) -> Result<ChargeState, LedgerError> {
        let account = &AccountId::parse(account)?;
        let now_unix = self.clock().now_unix();
        self.execute(
            account,
            charge_id,
            || fingerprint("reverse_charge", charge_id, &()),
            request,
            |current| {
                let charge = existing_charge(charge_id, current)?;
                let payload = omise::reverse_charge(&charge, now_unix)?;
                fold_new_charge(charge_id, Some(charge), payload)
            },
        )
        .await
    }

    /// Every charge of an account that passes `filter`, newest first. Omise lists page by
    /// offset and report a `total`, which needs the whole match set.
    pub async fn all_charges(
        &self,
        account: &str,
        filter: &(dyn for<'charge> Fn(&'charge ChargeState) -> bool + Send + Sync),
    ) -> Result<Vec<ChargeState>, LedgerError> {
        let account = &AccountId::parse(account)?;
        // Pages of every charge, filtered here: a store-side filter would walk the whole
        // account in one call when matches are rare, holding this worker thread throughout.
        collect_pages(
            |cursor| async move {
                self.store
                    .list_charges(account, &cursor, 100, &|_| true)
                    .await
            },
            |charge: &ChargeState| charge.id.clone(),
            |charge| filter(charge),
        )
        .await
    }

    /// How many charges of an account pass `filter`, and the `take` of them after the first
    /// `skip` in the order asked for, holding no more than that page: Omise's search pages by
    /// number and reports a total. Oldest first takes two walks (the first counts).
    pub async fn charges_window(
        &self,
        account: &str,
        filter: &(dyn for<'charge> Fn(&'charge ChargeState) -> bool + Send + Sync),
        newest_first: bool,
        skip: usize,
        take: usize,
    ) -> Result<(usize, Vec<ChargeState>), LedgerError> {
        let account = &AccountId::parse(account)?;
        let window = if newest_first {
            skip..skip.saturating_add(take)
        } else {
            let mut total = 0_usize;
            self.each_charge(account, |charge| {
                if filter(&charge) {
                    total += 1;
                }
            })
            .await?;
            total.saturating_sub(skip.saturating_add(take))..total.saturating_sub(skip)
        };
        let mut position = 0_usize;
        let mut page = Vec::new();
        self.each_charge(account, |charge| {
            if filter(&charge) {
                if window.contains(&position) {
                    page.push(charge);
                }
                position += 1;
            }
        })
        .await?;
        if !newest_first {
            page.reverse();
        }
        Ok((position, page))
    }

    /// Every charge of an account, newest first, a page at a time, each handed to `visit`.
    async fn each_charge(
        &self,
        account: &AccountId<'_>,
        mut visit: impl FnMut(ChargeState),
    ) -> Result<(), LedgerError> {
        let mut cursor = PageCursor::Newest;
        loop {
            let page = self
                .store
                .list_charges(account, &cursor, 100, &|_| true)
                .await?;
            let Some(last) = page.data.last() else {
                return Ok(());
            };
            cursor = PageCursor::StartingAfter(last.id.clone());
            let has_more = page.has_more;
            page.data.into_iter().for_each(&mut visit);
            if !has_more {
                return Ok(());
            }
            // A walk of a large account lets the other requests on this worker run.
            tokio::task::yield_now().await;
        }
    }

    /// Every event of an account that passes `filter`, newest first.
    pub async fn all_events(
        &self,
        account: &str,
        filter: &(dyn for<'event> Fn(&'event RecordedEvent) -> bool + Send + Sync),
    ) -> Result<Vec<RecordedEvent>, LedgerError> {
        let account = &AccountId::parse(account)?;
        collect_pages(
            |cursor| async move {
                self.store
                    .list_events(account, &cursor, 100, &|_| true)
                    .await
            },
            |event: &RecordedEvent| event.body.event_id.clone(),
            |event| filter(event),
        )
        .await
    }
}

/// Follow a newest-first list from its first page to its last, keeping what `keep` accepts.
async fn collect_pages<T, Next, Fetched>(
    mut next_page: Next,
    id_of: impl Fn(&T) -> String,
    keep: impl Fn(&T) -> bool,
) -> Result<Vec<T>, LedgerError>
where
    Next: FnMut(PageCursor) -> Fetched,
    Fetched: Future<Output = Result<Page<T>, StoreError>>,
{
    let mut items = Vec::new();
    let mut cursor = PageCursor::Newest;
    loop {
        let page = next_page(cursor).await?;
        let Some(last) = page.data.last() else {
            break;
        };
        cursor = PageCursor::StartingAfter(id_of(last));
        let has_more = page.has_more;
        items.extend(page.data.into_iter().filter(|item| keep(item)));
        if !has_more {
            break;
        }
        // A walk of a large account lets the other requests on this worker run between pages.
        tokio::task::yield_now().await;
    }
    Ok(items)
}

/// The token a stored projection holds, if it is a token's.
pub(super) fn existing_token(stored: &StoredProjection) -> Option<Token> {
    match &stored.projection {
        Projection::Token(token) => Some((**token).clone()),
        _ => None,
    }
}

pub(super) fn fold_stream(
    stream_id: &str,
    current: Option<&StoredProjection>,
    payload: &crate::events::EventPayload,
) -> Result<Projection, LedgerError> {
    domain::apply(current.map(|stored| stored.projection.clone()), payload)
        .map_err(LedgerError::corrupt_stream(stream_id))
}

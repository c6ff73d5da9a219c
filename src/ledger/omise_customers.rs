//! Omise customers on the `Ledger`: created with a first card from a vault token, updated (a token's card added, the default moved), read and listed; each change an event in the customer's stream, and the token it uses up appended in the same transaction.

use crate::domain::omise::{
    self, CreateOmiseCustomer, CustomerDecision, OmiseRefusal, UpdateOmiseCustomer,
};
use crate::domain::{Customer, Projection};
use crate::events::RequestMeta;
use crate::store::{LinkedAppend, PageCursor, StoredProjection};

use super::omise::{existing_token, fold_stream};
use super::{AccountId, Decision, Ledger, LedgerError, Refusal, fingerprint, unexpected_payload};

impl Ledger {
    /// `POST /customers`: a customer, with the card of the token `command.card` saved.
    pub async fn create_omise_customer(
        &self,
        account: &str,
        command: CreateOmiseCustomer,
        request: RequestMeta,
    ) -> Result<Customer, LedgerError> {
        let account = &AccountId::parse(account)?;
        let context = self.omise_context(account);
        let customer_id = context.ids.customer.clone();
        self.execute_with_linked(
            account,
            &customer_id,
            command.card.as_deref(),
            || fingerprint("create_omise_customer", "", &command),
            request,
            |current, token_stream| {
                if current.is_some() {
                    return Err(Refusal::Contention {
                        stream_id: customer_id.clone(),
                        attempts: 1,
                    }
                    .into());
                }
                let token = token_stream.and_then(existing_token);
                let decision = omise::create_customer(&command, token.as_ref(), &context)?;
                customer_decision(&customer_id, None, token_stream, decision)
            },
        )
        .await
    }

    /// `PATCH /customers/{id}`. An update that changes nothing appends nothing.
    pub async fn update_omise_customer(
        &self,
        account: &str,
        customer_id: &str,
        command: UpdateOmiseCustomer,
        request: RequestMeta,
    ) -> Result<Customer, LedgerError> {
        let account = &AccountId::parse(account)?;
        self.execute_with_linked(
            account,
            customer_id,
            command.card.as_deref(),
            || fingerprint("update_omise_customer", customer_id, &command),
            request,
            |current, token_stream| {
                let customer = existing_customer(customer_id, current)?;
                let token = token_stream.and_then(existing_token);
                match omise::update_customer(&customer, &command, token.as_ref())? {
                    None => Ok(Decision::Unchanged(customer)),
                    Some(decision) => {
                        customer_decision(customer_id, current, token_stream, decision)
                    }
                }
            },
        )
        .await
    }

    /// One Omise customer of the account.
    pub async fn get_omise_customer(
        &self,
        account: &str,
        customer_id: &str,
    ) -> Result<Customer, LedgerError> {
        let account = &AccountId::parse(account)?;
        let stored = self.store.load(account, customer_id).await?;
        existing_customer(customer_id, stored.as_ref())
    }

    /// Every customer of the account, newest first (Omise pages by offset and counts them).
    pub async fn all_customers(&self, account: &str) -> Result<Vec<Customer>, LedgerError> {
        let account = &AccountId::parse(account)?;
        let mut customers = Vec::new();
        let mut cursor = PageCursor::Newest;
        loop {
            let page = self.store.list_customers(account, &cursor, 100).await?;
            let Some(last) = page.data.last() else {
                return Ok(customers);
            };
            cursor = PageCursor::StartingAfter(last.id.clone());
            let has_more = page.has_more;
            customers.extend(page.data);
            if !has_more {
                return Ok(customers);
            }
            tokio::task::yield_now().await;
        }
    }
}

/// The customer a stored projection holds, or Omise's `not_found`.
fn existing_customer(
    customer_id: &str,
    stored: Option<&StoredProjection>,
) -> Result<Customer, LedgerError> {
    match stored.map(|stored| &stored.projection) {
        Some(Projection::Customer(customer)) => Ok(customer.clone()),
        _ => Err(OmiseRefusal::CustomerNotFound {
            id: customer_id.to_string(),
        }
        .into()),
    }
}

/// Append a customer's event, and the token it uses up in the same transaction.
fn customer_decision(
    customer_id: &str,
    current: Option<&StoredProjection>,
    token_stream: Option<&StoredProjection>,
    decision: CustomerDecision,
) -> Result<Decision<Customer>, LedgerError> {
    let projection = fold_stream(customer_id, current, &decision.customer_event)?;
    let Projection::Customer(customer) = &projection else {
        return Err(unexpected_payload(
            customer_id,
            &decision.customer_event,
            "customer",
        ));
    };
    let outcome = customer.clone();
    let linked = match (decision.token_attached, token_stream) {
        (None, _) => Vec::new(),
        (Some(attached), Some(token_stream)) => {
            let Projection::Token(token) = &token_stream.projection else {
                return Err(unexpected_payload(customer_id, &attached, "token"));
            };
            let token_id = token.id.clone();
            vec![LinkedAppend {
                projection: fold_stream(&token_id, Some(token_stream), &attached)?,
                stream_id: token_id,
                expected_version: token_stream.version,
                payloads: vec![attached],
            }]
        }
        // The decision saves a card only from a token loaded from the linked stream.
        (Some(attached), None) => {
            return Err(unexpected_payload(customer_id, &attached, "token"));
        }
    };
    Ok(Decision::Append {
        payloads: vec![decision.customer_event],
        projection,
        outcome,
        linked,
    })
}

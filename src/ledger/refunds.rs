//! Refunds as a resource: listed across an account (from the stores' refund index), read by id, and their metadata updated.

use super::*;
use crate::domain::UpdateRefund;
use crate::store::RefundLocation;

/// Paging and `created` bounds for `Ledger::list_refunds`; `Default` is Stripe's page of 10.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRefunds {
    /// 1 to 100.
    pub limit: usize,
    pub cursor: PageCursor,
    pub created: CreatedRange,
}

impl Default for ListRefunds {
    fn default() -> Self {
        ListRefunds {
            limit: 10,
            cursor: PageCursor::Newest,
            created: CreatedRange::default(),
        }
    }
}

impl Ledger {
    /// One page of an account's refunds, newest first (a Stripe partial capture's released
    /// remainder is one too, as Stripe lists it). Each is read from its charge, so it shows
    /// its current metadata.
    pub async fn list_refunds(
        &self,
        account: &str,
        query: &ListRefunds,
    ) -> Result<Page<Refund>, LedgerError> {
        let account = &AccountId::parse(account)?;
        let limit = query.limit.clamp(1, 100);
        let page = self
            .store
            .list_refunds(account, &query.cursor, limit, &|location| {
                query.created.contains(location.created)
            })
            .await?;
        let mut data = Vec::with_capacity(page.data.len());
        for location in &page.data {
            let charge = self.get_charge(account, &location.charge_id).await?;
            data.push(indexed_refund(&charge, location)?);
        }
        Ok(Page {
            data,
            has_more: page.has_more,
        })
    }

    /// Where every refund of an account is, newest first, read from the refund index alone:
    /// Omise's lists report a `total`, and only the page shown needs its charges loaded.
    pub async fn refund_locations(
        &self,
        account: &str,
    ) -> Result<Vec<RefundLocation>, LedgerError> {
        let account = &AccountId::parse(account)?;
        let mut locations = Vec::new();
        let mut cursor = PageCursor::Newest;
        loop {
            let page = self
                .store
                .list_refunds(account, &cursor, 100, &|_| true)
                .await?;
            let Some(last) = page.data.last() else {
                break;
            };
            cursor = PageCursor::StartingAfter(last.refund_id.clone());
            let has_more = page.has_more;
            locations.extend(page.data);
            if !has_more {
                break;
            }
        }
        Ok(locations)
    }

    /// The refunds at these locations, in their order, each charge loaded once.
    pub async fn refunds_at(
        &self,
        account: &str,
        locations: &[RefundLocation],
    ) -> Result<Vec<Refund>, LedgerError> {
        let mut charges: std::collections::HashMap<&str, ChargeState> = Default::default();
        let mut refunds = Vec::with_capacity(locations.len());
        for location in locations {
            let charge = match charges.entry(&location.charge_id) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(self.get_charge(account, &location.charge_id).await?)
                }
            };
            refunds.push(indexed_refund(charge, location)?);
        }
        Ok(refunds)
    }

    /// One of the account's refunds, by id, read from the charge it belongs to.
    pub async fn get_refund(&self, account: &str, refund_id: &str) -> Result<Refund, LedgerError> {
        let account = &AccountId::parse(account)?;
        let location = self.locate_refund(account, refund_id).await?;
        let charge = self.get_charge(account, &location.charge_id).await?;
        indexed_refund(&charge, &location)
    }

    /// Update a refund's metadata. An update that changes nothing appends nothing.
    pub async fn update_refund(
        &self,
        account: &str,
        refund_id: &str,
        command: UpdateRefund,
        request: RequestMeta,
    ) -> Result<Refund, LedgerError> {
        let account = &AccountId::parse(account)?;
        let location = self.locate_refund(account, refund_id).await?;
        let charge_id = &location.charge_id;
        self.execute(
            account,
            charge_id,
            || fingerprint("update_refund", refund_id, &command),
            request,
            |current| {
                let charge = existing_charge(charge_id, current)?;
                let decided = domain::stripe::refunds::update_refund(&charge, refund_id, &command)?;
                let Some(payload) = decided else {
                    return Ok(Decision::Unchanged(indexed_refund(&charge, &location)?));
                };
                fold_new_charge(charge_id, Some(charge), payload)?
                    .try_map(|charge| indexed_refund(&charge, &location))
            },
        )
        .await
    }

    async fn locate_refund(
        &self,
        account: &AccountId<'_>,
        refund_id: &str,
    ) -> Result<RefundLocation, LedgerError> {
        self.store
            .find_refund(account, refund_id)
            .await?
            .ok_or_else(|| {
                RequestError::NoSuchRefund {
                    id: refund_id.to_string(),
                }
                .into()
            })
    }
}

/// The refund the index says `charge` holds. Refunds are never removed from a charge, so one
/// the index names and the charge lacks means the store is damaged.
fn indexed_refund(charge: &ChargeState, location: &RefundLocation) -> Result<Refund, LedgerError> {
    charge
        .refunds
        .iter()
        .find(|refund| refund.id == location.refund_id)
        .cloned()
        .ok_or_else(|| {
            Failure::LogDamaged(format!(
                "the refund index places {} in charge {}, which does not hold it; run `chargeledger verify`",
                location.refund_id, location.charge_id
            ))
            .into()
        })
}

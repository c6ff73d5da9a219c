//! The expiry of uncaptured Omise authorizations: the due ones found through the index's expiry keys, each expired by a `charge.expired` event through the one write path.

use super::*;
use crate::domain::omise;
use crate::domain::search::keys::{Lookup, expired_by};
use crate::store::IndexScan;

/// Authorizations expired per index read; a sweep reads again until none is left due.
const EXPIRY_BATCH: usize = 200;

impl Ledger {
    /// Expire every uncaptured Omise authorization of `account` whose `expires_at` has
    /// passed, each as a `charge.expired` event recorded by `request`'s actor; returns how
    /// many. A charge captured or reversed meanwhile is left as it is.
    pub async fn expire_due_authorizations(
        &self,
        account: &str,
        request: RequestMeta,
    ) -> Result<usize, LedgerError> {
        let account = &AccountId::parse(account)?;
        let now_unix = self.clock.now_unix();
        let Lookup::Range { from, to } = expired_by(now_unix) else {
            unreachable!("an expiry lookup is a range of times")
        };
        let mut expired = 0;
        loop {
            let due = self
                .store
                .scan_search_index(
                    account,
                    IndexScan::Between {
                        from: &from,
                        to: &to,
                    },
                    EXPIRY_BATCH,
                )
                .await?;
            let mut changed = 0;
            for entry in &due {
                let charge_id = entry.stream_id.as_str();
                let charge = self
                    .execute(
                        account,
                        charge_id,
                        || fingerprint("expire_charge", charge_id, &now_unix),
                        request.clone(),
                        |current| {
                            let charge = existing_charge(charge_id, current)?;
                            match omise::expire_charge(&charge, now_unix) {
                                None => Ok(Decision::Unchanged(charge)),
                                Some(payload) => fold_new_charge(charge_id, Some(charge), payload),
                            }
                        },
                    )
                    .await?;
                if charge.expired_at == Some(now_unix) {
                    changed += 1;
                }
            }
            expired += changed;
            // An entry that expired nothing is stale (its charge moved on): stop rather
            // than read the same entries again.
            if due.len() < EXPIRY_BATCH || changed == 0 {
                return Ok(expired);
            }
        }
    }
}

//! Reads of the refund indexes: an account's refunds newest first, and the charge that holds a refund.

use super::*;

impl SledStore {
    /// A page of the account's refunds, newest first, never past the durable head.
    pub(super) fn page_of_refunds(
        &self,
        account: &str,
        cursor: &PageCursor,
        limit: usize,
        filter: &(dyn for<'refund> Fn(&'refund RefundLocation) -> bool + Send + Sync),
    ) -> Result<Page<RefundLocation>, StoreError> {
        self.refuse_if_poisoned()?;
        let durable = self.durable_limit();
        self.page_in_index(
            &self.trees.refunds_by_creation,
            account,
            cursor,
            limit,
            |refund_id| {
                Ok(self
                    .located_refund(account, refund_id)?
                    .map_or(0, |(sequence, _)| sequence))
            },
            |sequence, value| {
                if sequence > durable {
                    return Ok(None);
                }
                let location = self.decode_refund_entry(account, sequence, value)?;
                Ok(filter(&location).then_some(location))
            },
        )
    }

    /// Where a refund is, and the sequence of the event that recorded it, once that is durable.
    pub(super) fn located_refund(
        &self,
        account: &str,
        refund_id: &str,
    ) -> Result<Option<(u64, RefundLocation)>, StoreError> {
        self.refuse_if_poisoned()?;
        let Some(value) = self.trees.refund_ids.get(stream_key(account, refund_id))? else {
            return Ok(None);
        };
        if value.len() < 8 {
            return Err(self.corrupt(
                format!("refund index {account}/{refund_id}"),
                "the entry is shorter than a sequence",
            ));
        }
        let sequence = read_u64(&value, 0);
        if sequence > self.durable_limit() {
            return Ok(None);
        }
        let location = self.decode_refund_entry(account, sequence, &value[8..])?;
        Ok(Some((sequence, location)))
    }

    fn decode_refund_entry(
        &self,
        account: &str,
        sequence: u64,
        value: &[u8],
    ) -> Result<RefundLocation, StoreError> {
        let text = std::str::from_utf8(value).ok();
        let mut parts = text.into_iter().flat_map(|text| text.split('\0'));
        let (Some(charge_id), Some(refund_id), Some(Ok(created)), None) = (
            parts.next(),
            parts.next(),
            parts.next().map(str::parse::<i64>),
            parts.next(),
        ) else {
            return Err(self.corrupt(
                format!("refund index {account}/#{sequence}"),
                "the entry is not a charge id, a refund id and a creation time",
            ));
        };
        Ok(RefundLocation {
            charge_id: charge_id.to_string(),
            refund_id: refund_id.to_string(),
            created,
        })
    }
}

//! The outbox in PostgreSQL: due deliveries claimed with `FOR UPDATE SKIP LOCKED` and a lease, so servers sharing a database never claim one delivery at once.

use std::collections::HashMap;

use super::batch::Columns;
use super::{PostgresStore, to_i64};
use crate::store::{Delivery, StoreError};

/// Lease the oldest due deliveries whose lease has run out.
const CLAIM_DUE: &str =
    "UPDATE chargeledger_deliveries d SET lease_until_ms = $1 + $2, lease_owner = $4
     FROM (SELECT account, event_sequence, number FROM chargeledger_deliveries
           WHERE next_attempt_at_ms <= $1 AND lease_until_ms <= $1
           ORDER BY next_attempt_at_ms
           LIMIT $3
           FOR UPDATE SKIP LOCKED) due
     WHERE d.account = due.account AND d.event_sequence = due.event_sequence
       AND d.number = due.number
     RETURNING d.record";

/// Write deliveries, new or changed, and end their leases.
const SAVE: &str = "INSERT INTO chargeledger_deliveries
         (account, event_sequence, number, next_attempt_at_ms, lease_until_ms, lease_owner, record)
     SELECT account, event_sequence, number, next_attempt_at_ms, 0, '', record
     FROM unnest($1::text[], $2::bigint[], $3::int[], $4::bigint[], $5::text[])
         AS saved(account, event_sequence, number, next_attempt_at_ms, record)
     ON CONFLICT (account, event_sequence, number) DO UPDATE
     SET next_attempt_at_ms = excluded.next_attempt_at_ms, lease_until_ms = 0, lease_owner = '',
         record = excluded.record";

impl PostgresStore {
    fn decode_delivery(record: &str) -> Result<Delivery, StoreError> {
        serde_json::from_str(record).map_err(|error| StoreError::CorruptRecord {
            path: "PostgreSQL".into(),
            location: "chargeledger_deliveries".into(),
            detail: error.to_string(),
        })
    }

    pub(super) async fn claim_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
        claimant: &str,
    ) -> Result<Vec<Delivery>, StoreError> {
        let limit = limit as i64;
        let rows = self
            .query_rows(CLAIM_DUE, &[&now_ms, &lease_ms, &limit, &claimant])
            .await?;
        let mut claimed = rows
            .iter()
            .map(|row| Self::decode_delivery(row.get(0)))
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|delivery| (delivery.state.due_at_ms(), delivery.event_sequence));
        Ok(claimed)
    }

    pub(super) async fn save(&self, deliveries: Vec<Delivery>) -> Result<(), StoreError> {
        // One upsert may change a row once: the last save of a delivery wins.
        let mut last = HashMap::new();
        for delivery in deliveries {
            last.insert(
                (
                    delivery.account.clone(),
                    delivery.event_sequence,
                    delivery.number,
                ),
                delivery,
            );
        }
        let mut columns = Columns::default();
        for delivery in last.values() {
            columns.push_delivery(delivery);
        }
        self.execute(
            SAVE,
            &[
                &columns.delivery_accounts,
                &columns.delivery_sequences,
                &columns.delivery_numbers,
                &columns.delivery_due,
                &columns.delivery_records,
            ],
        )
        .await?;
        Ok(())
    }

    pub(super) async fn deliveries_of_event(
        &self,
        account: &str,
        event_sequence: u64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let sequence = to_i64(event_sequence);
        let rows = self
            .query_rows(
                "SELECT record FROM chargeledger_deliveries
                 WHERE account = $1 AND event_sequence = $2 ORDER BY number",
                &[&account, &sequence],
            )
            .await?;
        rows.iter()
            .map(|row| Self::decode_delivery(row.get(0)))
            .collect()
    }

    pub(super) async fn deliveries_in_key_order(
        &self,
        after: Option<(String, u64, u32)>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let (account, sequence, number) = after.unwrap_or((String::new(), 0, 0));
        let (sequence, number, limit) = (to_i64(sequence), number as i32, limit as i64);
        let inclusive = account.is_empty() && sequence == 0 && number == 0;
        let rows = self
            .query_rows(
                "SELECT record FROM chargeledger_deliveries
                 WHERE (account, event_sequence, number) > ($1, $2, $3) OR $4
                 ORDER BY account, event_sequence, number LIMIT $5",
                &[&account, &sequence, &number, &inclusive, &limit],
            )
            .await?;
        rows.iter()
            .map(|row| Self::decode_delivery(row.get(0)))
            .collect()
    }
}

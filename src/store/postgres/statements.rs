//! The writer's SQL, prepared once per connection: one round trip fewer per statement, and the plans PostgreSQL keeps for them.

use tokio_postgres::{Client, Statement};

use super::database_error;
use crate::store::StoreError;

/// The committed head, locked until the transaction ends: every writer of every server takes
/// this lock first, so batches are serialized at the chain's head.
const LOCK_HEAD: &str = "SELECT sequence, hash FROM chargeledger_chain_head FOR UPDATE";

/// The stored version and creation sequence of each named stream.
const STREAM_STATES: &str = "SELECT p.account, p.stream_id, p.version, p.created_sequence
     FROM chargeledger_projections p
     JOIN unnest($1::text[], $2::text[]) AS named(account, stream_id)
       ON p.account = named.account AND p.stream_id = named.stream_id";

/// The stored record of each named idempotency key.
const IDEMPOTENCY_RECORDS: &str = "SELECT i.account, i.key, i.record
     FROM chargeledger_idempotency i
     JOIN unnest($1::text[], $2::text[]) AS named(account, key)
       ON i.account = named.account AND i.key = named.key";

/// Everything a batch writes, as one statement: events, projections (upserted), idempotency
/// records, the new head, the events' pending deliveries, the refund index, the search index's
/// gained and lost entries (disjoint: `batch::Rows` nets them), and the notification other
/// servers wait for. Data-modifying CTEs
/// each run exactly once; empty arrays write nothing. The notification is sent only when the
/// head moved ($18), and only on commit.
const WRITE_BATCH: &str = "WITH
  events AS (
    INSERT INTO chargeledger_events (sequence, account, stream_id, stream_version, event_id, record)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])
  ),
  projections AS (
    INSERT INTO chargeledger_projections (account, stream_id, kind, version, created_sequence, state)
    SELECT * FROM unnest($7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::text[])
    ON CONFLICT (account, stream_id) DO UPDATE
    SET kind = excluded.kind, version = excluded.version,
        created_sequence = excluded.created_sequence, state = excluded.state
  ),
  idempotency AS (
    INSERT INTO chargeledger_idempotency (account, key, created_at_unix, record)
    SELECT * FROM unnest($13::text[], $14::text[], $15::bigint[], $16::text[])
  ),
  head AS (
    UPDATE chargeledger_chain_head SET sequence = $17, hash = $19 WHERE $18
  ),
  deliveries AS (
    INSERT INTO chargeledger_deliveries (account, event_sequence, number, next_attempt_at_ms, record)
    SELECT * FROM unnest($20::text[], $21::bigint[], $22::int[], $23::bigint[], $24::text[])
  ),
  refunds AS (
    INSERT INTO chargeledger_refunds (account, refund_id, charge_id, created, sequence)
    SELECT * FROM unnest($25::text[], $26::text[], $27::text[], $28::bigint[], $29::bigint[])
  ),
  search_added AS (
    INSERT INTO chargeledger_search_keys (account, search_key, created_sequence, stream_id)
    SELECT * FROM unnest($30::text[], $31::bytea[], $32::bigint[], $33::text[])
    ON CONFLICT DO NOTHING
  ),
  search_removed AS (
    DELETE FROM chargeledger_search_keys s
    USING unnest($34::text[], $35::bytea[], $36::bigint[]) AS gone(account, search_key, created_sequence)
    WHERE s.account = gone.account AND s.search_key = gone.search_key
      AND s.created_sequence = gone.created_sequence
  )
SELECT pg_notify('chargeledger_events', $17::text) WHERE $18";

/// Whether the event a lost COMMIT would have written is there, with the hash it would have.
const EVENT_RECORD: &str = "SELECT record FROM chargeledger_events WHERE sequence = $1";

pub(super) struct Statements {
    pub(super) lock_head: Statement,
    pub(super) stream_states: Statement,
    pub(super) idempotency_records: Statement,
    pub(super) write_batch: Statement,
    pub(super) event_record: Statement,
}

impl Statements {
    pub(super) async fn prepare(client: &Client) -> Result<Self, StoreError> {
        let prepare = |sql| async move { client.prepare(sql).await.map_err(database_error) };
        Ok(Statements {
            lock_head: prepare(LOCK_HEAD).await?,
            stream_states: prepare(STREAM_STATES).await?,
            idempotency_records: prepare(IDEMPOTENCY_RECORDS).await?,
            write_batch: prepare(WRITE_BATCH).await?,
            event_record: prepare(EVENT_RECORD).await?,
        })
    }
}

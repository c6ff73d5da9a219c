//! The PostgreSQL schema and its versioned migrations, applied at open under an advisory lock.
//!
//! Each migration runs once, in its own transaction, and is recorded in
//! `chargeledger_schema_migrations`; servers starting together on one database take turns on
//! the lock, so exactly one applies each migration. A database whose schema is newer than this
//! build knows is refused rather than written in a shape this build does not understand.
//!
//! Every text key is `COLLATE "C"`: byte order, as the sled store's keys, so that paging by
//! `(account, stream_id)` means the same on every database whatever its default collation.

use tokio_postgres::Client;
use tracing::info;

use futures_util::TryStreamExt;

use super::database_error;
use crate::chain::GENESIS_HASH;
use crate::domain::Projection;
use crate::domain::search::index_keys;
use crate::store::StoreError;

/// Any constant, the same in every build: the key of the advisory lock migrations run under.
const MIGRATION_LOCK_KEY: i64 = 0x6368_6172_6765_6c67; // "chargelg"

/// The migrations, in order. Never edit one that has shipped: add the next.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "event log, chain head, projections and idempotency records",
        r#"
CREATE TABLE chargeledger_chain_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    sequence bigint NOT NULL,
    hash text NOT NULL
);
INSERT INTO chargeledger_chain_head (sequence, hash) VALUES (0, '{GENESIS}');

-- The log. `record` is exactly the bytes the writer sealed (chain::seal_encoded), so verify
-- hashes what is stored; the other columns are copies of the body's fields for indexing.
CREATE TABLE chargeledger_events (
    sequence bigint PRIMARY KEY CHECK (sequence > 0),
    account text COLLATE "C" NOT NULL,
    stream_id text COLLATE "C" NOT NULL,
    stream_version bigint NOT NULL CHECK (stream_version > 0),
    event_id text COLLATE "C" NOT NULL,
    record text NOT NULL,
    -- The optimistic-concurrency guard: one event per stream version, whatever wrote it.
    UNIQUE (account, stream_id, stream_version),
    UNIQUE (account, event_id)
);
CREATE INDEX chargeledger_events_by_account ON chargeledger_events (account, sequence);

CREATE TABLE chargeledger_projections (
    account text COLLATE "C" NOT NULL,
    stream_id text COLLATE "C" NOT NULL,
    kind text COLLATE "C" NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    created_sequence bigint NOT NULL,
    state text NOT NULL,
    PRIMARY KEY (account, stream_id)
);
CREATE INDEX chargeledger_projections_by_creation
    ON chargeledger_projections (account, kind, created_sequence);
CREATE INDEX chargeledger_projections_by_stream ON chargeledger_projections (stream_id);

CREATE TABLE chargeledger_idempotency (
    account text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    created_at_unix bigint NOT NULL,
    record text NOT NULL,
    PRIMARY KEY (account, key)
);
CREATE INDEX chargeledger_idempotency_by_age ON chargeledger_idempotency (created_at_unix);
"#,
    ),
    (
        2,
        "the outbox: deliveries of events' side effects",
        r#"
-- `record` is the `Delivery` JSON; the other columns index it. `next_attempt_at_ms` is NULL
-- once the delivery is settled (delivered, failed, cancelled); `lease_until_ms` keeps a claimed
-- delivery from being claimed by another server until it is saved or the lease runs out, and
-- `lease_owner` names the server holding it (a restarted server ends its own leases at once).
CREATE TABLE chargeledger_deliveries (
    account text COLLATE "C" NOT NULL,
    event_sequence bigint NOT NULL,
    number integer NOT NULL,
    next_attempt_at_ms bigint,
    lease_until_ms bigint NOT NULL DEFAULT 0,
    lease_owner text COLLATE "C" NOT NULL DEFAULT '',
    record text NOT NULL,
    PRIMARY KEY (account, event_sequence, number)
);
CREATE INDEX chargeledger_deliveries_due ON chargeledger_deliveries (next_attempt_at_ms)
    WHERE next_attempt_at_ms IS NOT NULL;
"#,
    ),
    (
        3,
        "the refund index: an account's refunds newest first, and the charge of each",
        r#"
-- One row per refund an event recorded (`EventPayload::refund_recorded`): a refund, or the
-- released remainder of a Stripe partial capture. `sequence` is the recording event's.
CREATE TABLE chargeledger_refunds (
    account text COLLATE "C" NOT NULL,
    refund_id text COLLATE "C" NOT NULL,
    charge_id text COLLATE "C" NOT NULL,
    created bigint NOT NULL,
    sequence bigint NOT NULL,
    PRIMARY KEY (account, refund_id)
);
CREATE INDEX chargeledger_refunds_by_sequence ON chargeledger_refunds (account, sequence);
-- The refunds the log already holds, from the same two payloads. Every writer takes the head
-- lock first, so holding it keeps the log still while it is read. `json`, not `jsonb`: jsonb
-- refuses the `\u0000` a library caller may have stored in a string.
SELECT 1 FROM chargeledger_chain_head FOR UPDATE;
INSERT INTO chargeledger_refunds (account, refund_id, charge_id, created, sequence)
SELECT account, refund ->> 'id', stream_id, (refund ->> 'created')::bigint, sequence FROM (
    SELECT account, stream_id, sequence,
        CASE parsed.event #>> '{body,payload,type}'
            WHEN 'charge.refunded' THEN parsed.event #> '{body,payload,data,refund}'
            WHEN 'charge.captured' THEN parsed.event #> '{body,payload,data,released_remainder}'
        END AS refund
    FROM chargeledger_events
    CROSS JOIN LATERAL (SELECT record::json AS event) parsed
    WHERE record LIKE '%"type":"charge.refunded"%' OR record LIKE '%"type":"charge.captured"%'
) recorded
WHERE json_typeof(refund) = 'object';
"#,
    ),
    (
        SEARCH_INDEX_MIGRATION,
        "the search index: charges and customers by search key",
        r#"
-- `search_key` is `domain::search::keys`' encoding; `created_sequence` orders one key's
-- entries newest first. Filled from the projections by `backfill_search_keys`, in Rust, as
-- the keys are computed there.
CREATE TABLE chargeledger_search_keys (
    account text COLLATE "C" NOT NULL,
    search_key bytea NOT NULL,
    created_sequence bigint NOT NULL,
    stream_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (account, search_key, created_sequence)
);
"#,
    ),
];

/// The migration whose index is filled from projections by Rust code, in its transaction.
const SEARCH_INDEX_MIGRATION: i32 = 4;

/// Projections indexed per insert while the search index is filled.
const BACKFILL_CHUNK_ROWS: usize = 1000;

/// Search index rows waiting to be inserted: accounts, keys, creation sequences, stream ids.
type SearchColumns = (Vec<String>, Vec<Vec<u8>>, Vec<i64>, Vec<String>);

/// Index every charge and customer projection, holding the head lock so no writer moves
/// them meanwhile. Rows are streamed, so memory stays flat however many there are.
async fn backfill_search_keys(
    transaction: &tokio_postgres::Transaction<'_>,
) -> Result<u64, StoreError> {
    transaction
        .execute("SELECT 1 FROM chargeledger_chain_head FOR UPDATE", &[])
        .await
        .map_err(database_error)?;
    let rows = transaction
        .query_raw(
            "SELECT account, stream_id, created_sequence, state FROM chargeledger_projections
             WHERE kind IN ('charge', 'customer')",
            std::iter::empty::<i64>(),
        )
        .await
        .map_err(database_error)?;
    futures_util::pin_mut!(rows);
    let mut columns = SearchColumns::default();
    let mut indexed = 0;
    let flush = |columns: &mut SearchColumns| {
        let taken = std::mem::take(columns);
        async move {
            transaction
                .execute(
                    "INSERT INTO chargeledger_search_keys (account, search_key, created_sequence, stream_id)
                     SELECT * FROM unnest($1::text[], $2::bytea[], $3::bigint[], $4::text[])
                     ON CONFLICT DO NOTHING",
                    &[&taken.0, &taken.1, &taken.2, &taken.3],
                )
                .await
                .map_err(database_error)
        }
    };
    while let Some(row) = rows.try_next().await.map_err(database_error)? {
        let (account, stream_id): (String, String) = (row.get(0), row.get(1));
        let state: &str = row.get(3);
        let projection: Projection =
            serde_json::from_str(state).map_err(|error| StoreError::CorruptRecord {
                path: "PostgreSQL".into(),
                location: format!("projection {account}/{stream_id}"),
                detail: error.to_string(),
            })?;
        for key in index_keys(&projection) {
            columns.0.push(account.clone());
            columns.1.push(key);
            columns.2.push(row.get(2));
            columns.3.push(stream_id.clone());
        }
        indexed += 1;
        if indexed % BACKFILL_CHUNK_ROWS as u64 == 0 {
            flush(&mut columns).await?;
        }
    }
    flush(&mut columns).await?;
    Ok(indexed)
}

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Bring the database's schema up to `SCHEMA_VERSION`, or refuse a newer one.
pub async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(database_error)?;
    let outcome = apply_pending(client).await;
    // Released on every path; a dropped connection releases it too.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(database_error);
    outcome.and(unlocked.map(drop))
}

async fn apply_pending(client: &mut Client) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS chargeledger_schema_migrations (
                version integer PRIMARY KEY,
                description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(database_error)?;
    let applied: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM chargeledger_schema_migrations",
            &[],
        )
        .await
        .map_err(database_error)?
        .get(0);
    if applied > SCHEMA_VERSION {
        return Err(StoreError::Database(format!(
            "the database's chargeledger schema is version {applied}, newer than this build knows ({SCHEMA_VERSION}); run the chargeledger release that wrote it, or a newer one"
        )));
    }
    for (version, description, sql) in MIGRATIONS {
        if *version <= applied {
            continue;
        }
        let transaction = client.transaction().await.map_err(database_error)?;
        transaction
            .batch_execute(&sql.replace("{GENESIS}", GENESIS_HASH))
            .await
            .map_err(database_error)?;
        if *version == SEARCH_INDEX_MIGRATION {
            let indexed = backfill_search_keys(&transaction).await?;
            info!(
                indexed,
                "indexed the stored charges and customers for search"
            );
        }
        transaction
            .execute(
                "INSERT INTO chargeledger_schema_migrations (version, description) VALUES ($1, $2)",
                &[version, description],
            )
            .await
            .map_err(database_error)?;
        transaction.commit().await.map_err(database_error)?;
        info!(version, description, "applied a schema migration");
    }
    Ok(())
}

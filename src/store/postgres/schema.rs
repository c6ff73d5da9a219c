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

use super::database_error;
use crate::chain::GENESIS_HASH;
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
];

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

//! Versioned schema migrations of the PostgreSQL backend.
//!
//! Same rules as the SQLite list ([`crate::store::sqlite::MIGRATIONS`]): append-only, versions
//! 1, 2, 3, ... without gaps, and the same logical schema at each version, so that both
//! backends are at "version N" with the same tables, keys and constraints.
//!
//! At [`PgStore::connect`](super::PgStore::connect), [`apply`] runs inside one transaction
//! (PostgreSQL DDL is transactional) that first takes a transaction-scoped advisory lock, so two
//! nodes starting at once on an empty database cannot both apply a migration: the second waits,
//! then finds the schema up to date. A database whose version is above the newest known one is
//! refused ([`StoreError::Schema`]) and left untouched.
//!
//! # Differences from the SQLite schema (types only, not meaning)
//!
//! * `TEXT` identifier columns are `TEXT COLLATE "C"`: byte order, like SQLite's default
//!   `BINARY` collation, so `ORDER BY id` and keyset paging (`id > $1`) give the same order on
//!   both backends whatever locale the database was created with (and compare faster).
//! * `INTEGER` times, revisions and counters are `BIGINT`; small enumerations (security level,
//!   status codes, alert codes, failure counts) are `INTEGER`.
//! * `BLOB` is `BYTEA`; the 0/1 flags `revoked` and `deleted` are `BOOLEAN`.
//! * `audit.id` is `BIGINT GENERATED ALWAYS AS IDENTITY` instead of `INTEGER PRIMARY KEY
//!   AUTOINCREMENT`. Ids are unique and increasing in allocation order; unlike with SQLite's
//!   single writer, two transactions committing concurrently may commit in the other order.
//! * The append-only rule of `audit` is a PL/pgSQL trigger function raising an exception on
//!   `UPDATE`, `DELETE` and `TRUNCATE` (SQLite: `RAISE(ABORT)` triggers; SQLite has no
//!   `TRUNCATE`).

use tokio_postgres::Client;

use super::map_pg_err;
use crate::store::StoreError;

/// One schema migration.
#[derive(Debug)]
pub struct Migration {
    /// Version reached after this migration; versions are 1, 2, 3, ... without gaps.
    pub version: u32,
    /// What it does, recorded in `schema_version`.
    pub description: &'static str,
    /// SQL run as one batch (simple query protocol).
    pub sql: &'static str,
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "subscribers, terminals, items with history, sync state, maps, sessions",
        sql: r#"
CREATE TABLE subscriber (
    id              TEXT COLLATE "C" PRIMARY KEY,
    display_name    TEXT,
    security_level  INTEGER NOT NULL DEFAULT 0 CHECK (security_level BETWEEN 0 AND 2),
    pin_verifier    TEXT,
    login_verifier  TEXT,
    created_at      BIGINT NOT NULL
);

CREATE TABLE terminal (
    terminal_id     TEXT COLLATE "C" PRIMARY KEY,
    subscriber_id   TEXT COLLATE "C" NOT NULL REFERENCES subscriber(id) ON DELETE CASCADE,
    md5_verifier    TEXT,
    basic_verifier  TEXT,
    registered_by   TEXT NOT NULL CHECK (registered_by IN ('user', 'shop', 'operator')),
    registered_at   BIGINT NOT NULL,
    revoked         BOOLEAN NOT NULL DEFAULT FALSE,
    devinf          BYTEA,
    last_session_at BIGINT,
    next_nonce      TEXT,
    UNIQUE (subscriber_id, terminal_id)
);

CREATE TABLE terminal_class (
    terminal_id     TEXT COLLATE "C" NOT NULL REFERENCES terminal(terminal_id) ON DELETE CASCADE,
    datastore       TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (terminal_id, datastore)
);

CREATE TABLE datastore (
    subscriber_id   TEXT COLLATE "C" NOT NULL REFERENCES subscriber(id) ON DELETE CASCADE,
    name            TEXT COLLATE "C" NOT NULL,
    revision        BIGINT NOT NULL,
    guid_seq        BIGINT NOT NULL,
    PRIMARY KEY (subscriber_id, name)
);

CREATE TABLE item (
    subscriber_id   TEXT COLLATE "C" NOT NULL,
    datastore       TEXT COLLATE "C" NOT NULL,
    guid            TEXT COLLATE "C" NOT NULL,
    content_type    TEXT NOT NULL,
    data            BYTEA NOT NULL,
    revision        BIGINT NOT NULL,
    origin_terminal TEXT COLLATE "C",
    deleted         BOOLEAN NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (subscriber_id, datastore, guid),
    FOREIGN KEY (subscriber_id, datastore)
        REFERENCES datastore(subscriber_id, name) ON DELETE CASCADE
);
CREATE UNIQUE INDEX item_by_revision ON item (subscriber_id, datastore, revision);

CREATE TABLE item_history (
    subscriber_id   TEXT COLLATE "C" NOT NULL,
    datastore       TEXT COLLATE "C" NOT NULL,
    guid            TEXT COLLATE "C" NOT NULL,
    revision        BIGINT NOT NULL,
    content_type    TEXT NOT NULL,
    data            BYTEA NOT NULL,
    origin_terminal TEXT COLLATE "C",
    deleted         BOOLEAN NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (subscriber_id, datastore, guid, revision),
    FOREIGN KEY (subscriber_id, datastore)
        REFERENCES datastore(subscriber_id, name) ON DELETE CASCADE
);

CREATE TABLE sync_state (
    subscriber_id   TEXT COLLATE "C" NOT NULL,
    terminal_id     TEXT COLLATE "C" NOT NULL,
    datastore       TEXT COLLATE "C" NOT NULL,
    client_anchor   TEXT,
    server_anchor   TEXT,
    acked_revision  BIGINT NOT NULL,
    last_sync_type  INTEGER,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (subscriber_id, terminal_id, datastore),
    FOREIGN KEY (subscriber_id, terminal_id)
        REFERENCES terminal(subscriber_id, terminal_id) ON DELETE CASCADE
);

CREATE TABLE luid_map (
    subscriber_id   TEXT COLLATE "C" NOT NULL,
    terminal_id     TEXT COLLATE "C" NOT NULL,
    datastore       TEXT COLLATE "C" NOT NULL,
    luid            TEXT COLLATE "C" NOT NULL,
    guid            TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (subscriber_id, terminal_id, datastore, luid),
    UNIQUE (subscriber_id, terminal_id, datastore, guid),
    FOREIGN KEY (subscriber_id, terminal_id)
        REFERENCES terminal(subscriber_id, terminal_id) ON DELETE CASCADE
);

CREATE TABLE session (
    key             TEXT COLLATE "C" PRIMARY KEY,
    subscriber_id   TEXT COLLATE "C" NOT NULL,
    terminal_id     TEXT COLLATE "C" NOT NULL,
    state           BYTEA NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    FOREIGN KEY (subscriber_id, terminal_id)
        REFERENCES terminal(subscriber_id, terminal_id) ON DELETE CASCADE
);
CREATE INDEX session_by_expiry ON session (expires_at);
CREATE INDEX session_by_terminal ON session (subscriber_id, terminal_id);
"#,
    },
    Migration {
        version: 2,
        description: "append-only audit log and brute-force lockout counters",
        sql: r#"
CREATE TABLE audit (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              BIGINT NOT NULL,
    subscriber_id   TEXT COLLATE "C",
    terminal_id     TEXT COLLATE "C",
    kind            TEXT NOT NULL,
    status          INTEGER,
    reason          TEXT NOT NULL,
    remote_addr     TEXT
);
CREATE INDEX audit_by_subscriber ON audit (subscriber_id, id);
CREATE INDEX audit_by_terminal ON audit (terminal_id, id);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only';
END;
$$;
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE TABLE lockout (
    kind            TEXT COLLATE "C" NOT NULL CHECK (kind IN ('terminal', 'subscriber')),
    id              TEXT COLLATE "C" NOT NULL,
    failures        INTEGER NOT NULL,
    last_failure_at BIGINT NOT NULL,
    locked_until    BIGINT,
    PRIMARY KEY (kind, id)
);
"#,
    },
    Migration {
        version: 3,
        description:
            "pending package-4 commands of a session, one row each, and the items acknowledged",
        sql: r#"
CREATE TABLE session_pending (
    session_key     TEXT COLLATE "C" NOT NULL REFERENCES session(key) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    size            BIGINT NOT NULL,
    datastore       TEXT COLLATE "C",
    guid            TEXT COLLATE "C",
    revision        BIGINT,
    data            BYTEA NOT NULL,
    PRIMARY KEY (session_key, seq)
);

CREATE TABLE session_delivered (
    session_key     TEXT COLLATE "C" NOT NULL REFERENCES session(key) ON DELETE CASCADE,
    datastore       TEXT COLLATE "C" NOT NULL,
    guid            TEXT COLLATE "C" NOT NULL,
    revision        BIGINT NOT NULL,
    PRIMARY KEY (session_key, datastore, guid)
);
"#,
    },
    Migration {
        version: 4,
        description: "none here: SQLite's migration 4 clusters tables on their keys \
                      (WITHOUT ROWID), which PostgreSQL's heap tables have no form of",
        // Kept so that both backends number their schema alike.
        sql: "SELECT 1;",
    },
    Migration {
        version: 5,
        description: "none here: SQLite's migration 5 keys the LUID map by an integer scope; \
                      PostgreSQL keeps its (subscriber, terminal, datastore, luid) keys",
        // Kept so that both backends number their schema alike.
        sql: "SELECT 1;",
    },
    Migration {
        version: 6,
        description: "none here: SQLite's migration 6 stores pending commands in chunks; \
                      PostgreSQL keeps a row per command",
        // Kept so that both backends number their schema alike.
        sql: "SELECT 1;",
    },
];

/// The schema version this build writes (the newest migration's version).
pub const SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Key of the transaction-scoped advisory lock that serialises migrations between nodes
/// (ASCII "SYNCMLDB").
const MIGRATION_LOCK: i64 = 0x5359_4E43_4D4C_4442;

const CREATE_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  BIGINT NOT NULL
)";

/// The version recorded in the database (0 when the `schema_version` table does not exist).
pub(crate) async fn current_version(client: &Client) -> Result<u32, StoreError> {
    let row = client
        .query_one(
            "SELECT CASE WHEN to_regclass('schema_version') IS NULL THEN 0
                         ELSE (SELECT COALESCE(MAX(version), 0) FROM schema_version) END",
            &[],
        )
        .await;
    // `to_regclass` resolves through the search path; the sub-select is only planned when
    // the table exists, so a fresh database answers 0 instead of an error.
    match row {
        Ok(row) => {
            let v: i32 = row
                .try_get(0)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("schema version {v}")))
        }
        Err(e) => Err(map_pg_err(&e)),
    }
}

/// Applies the pending migrations of `list` on `client` (no transaction open). Returns the
/// versions applied, empty when the schema was up to date.
///
/// `applied_at` is the database server's clock: bookkeeping about the database, not
/// application data.
pub(crate) async fn apply(client: &Client, list: &[Migration]) -> Result<Vec<u32>, StoreError> {
    client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| map_pg_err(&e))?;
    let result = apply_in_tx(client, list).await;
    let end = match &result {
        Ok(_) => client.batch_execute("COMMIT").await,
        Err(_) => client.batch_execute("ROLLBACK").await,
    };
    let applied = result?;
    end.map_err(|e| map_pg_err(&e))?;
    Ok(applied)
}

async fn apply_in_tx(client: &Client, list: &[Migration]) -> Result<Vec<u32>, StoreError> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| map_pg_err(&e))?;
    client
        .batch_execute(CREATE_VERSION_TABLE)
        .await
        .map_err(|e| map_pg_err(&e))?;
    let current = current_version(client).await?;
    let newest = list.last().map_or(0, |m| m.version);
    if current > newest {
        return Err(StoreError::Schema(format!(
            "database schema version {current} is newer than this build supports ({newest})"
        )));
    }
    let mut applied = Vec::new();
    for m in list.iter().filter(|m| m.version > current) {
        tracing::debug!(
            version = m.version,
            description = m.description,
            "applying migration"
        );
        client
            .batch_execute(m.sql)
            .await
            .map_err(|e| StoreError::Schema(format!("migration {} failed: {e:#}", m.version)))?;
        let version = i32::try_from(m.version)
            .map_err(|_| StoreError::Schema(format!("migration version {}", m.version)))?;
        client
            .execute(
                "INSERT INTO schema_version (version, description, applied_at)
                 VALUES ($1, $2, extract(epoch FROM now())::bigint)",
                &[&version, &m.description],
            )
            .await
            .map_err(|e| map_pg_err(&e))?;
        applied.push(m.version);
    }
    Ok(applied)
}

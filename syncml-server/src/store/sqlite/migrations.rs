//! Versioned schema migrations of the SQLite backend.
//!
//! The list is append-only: a released migration is never edited, a change of schema is a new
//! entry with the next version. At open, [`apply`] runs every migration above the version
//! recorded in the `schema_version` table, each in order, all inside one `BEGIN IMMEDIATE`
//! transaction (so two processes opening the same file cannot both apply them) with foreign keys
//! off (so a later migration may rebuild a table the SQLite way) and a `PRAGMA
//! foreign_key_check` before commit. A database whose version is above the newest known one is
//! refused ([`StoreError::Schema`]).

use rusqlite::Connection;

use super::map_err;
use crate::store::StoreError;

/// One schema migration.
#[derive(Debug)]
pub struct Migration {
    /// Version reached after this migration; versions are 1, 2, 3, ... without gaps.
    pub version: u32,
    /// What it does, recorded in `schema_version`.
    pub description: &'static str,
    /// SQL run as one batch.
    pub sql: &'static str,
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "subscribers, terminals, items with history, sync state, maps, sessions",
        sql: r#"
CREATE TABLE subscriber (
    id              TEXT PRIMARY KEY NOT NULL,
    display_name    TEXT,
    security_level  INTEGER NOT NULL DEFAULT 0 CHECK (security_level BETWEEN 0 AND 2),
    pin_verifier    TEXT,
    login_verifier  TEXT,
    created_at      INTEGER NOT NULL
);

CREATE TABLE terminal (
    terminal_id     TEXT PRIMARY KEY NOT NULL,
    subscriber_id   TEXT NOT NULL REFERENCES subscriber(id) ON DELETE CASCADE,
    md5_verifier    TEXT,
    basic_verifier  TEXT,
    registered_by   TEXT NOT NULL CHECK (registered_by IN ('user', 'shop', 'operator')),
    registered_at   INTEGER NOT NULL,
    revoked         INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    devinf          BLOB,
    last_session_at INTEGER,
    next_nonce      TEXT,
    UNIQUE (subscriber_id, terminal_id)
);

CREATE TABLE terminal_class (
    terminal_id     TEXT NOT NULL REFERENCES terminal(terminal_id) ON DELETE CASCADE,
    datastore       TEXT NOT NULL,
    PRIMARY KEY (terminal_id, datastore)
);

CREATE TABLE datastore (
    subscriber_id   TEXT NOT NULL REFERENCES subscriber(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    revision        INTEGER NOT NULL,
    guid_seq        INTEGER NOT NULL,
    PRIMARY KEY (subscriber_id, name)
);

CREATE TABLE item (
    subscriber_id   TEXT NOT NULL,
    datastore       TEXT NOT NULL,
    guid            TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    data            BLOB NOT NULL,
    revision        INTEGER NOT NULL,
    origin_terminal TEXT,
    deleted         INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (subscriber_id, datastore, guid),
    FOREIGN KEY (subscriber_id, datastore)
        REFERENCES datastore(subscriber_id, name) ON DELETE CASCADE
);
CREATE UNIQUE INDEX item_by_revision ON item (subscriber_id, datastore, revision);

CREATE TABLE item_history (
    subscriber_id   TEXT NOT NULL,
    datastore       TEXT NOT NULL,
    guid            TEXT NOT NULL,
    revision        INTEGER NOT NULL,
    content_type    TEXT NOT NULL,
    data            BLOB NOT NULL,
    origin_terminal TEXT,
    deleted         INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (subscriber_id, datastore, guid, revision),
    FOREIGN KEY (subscriber_id, datastore)
        REFERENCES datastore(subscriber_id, name) ON DELETE CASCADE
);

CREATE TABLE sync_state (
    subscriber_id   TEXT NOT NULL,
    terminal_id     TEXT NOT NULL,
    datastore       TEXT NOT NULL,
    client_anchor   TEXT,
    server_anchor   TEXT,
    acked_revision  INTEGER NOT NULL,
    last_sync_type  INTEGER,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (subscriber_id, terminal_id, datastore),
    FOREIGN KEY (subscriber_id, terminal_id)
        REFERENCES terminal(subscriber_id, terminal_id) ON DELETE CASCADE
);

CREATE TABLE luid_map (
    subscriber_id   TEXT NOT NULL,
    terminal_id     TEXT NOT NULL,
    datastore       TEXT NOT NULL,
    luid            TEXT NOT NULL,
    guid            TEXT NOT NULL,
    PRIMARY KEY (subscriber_id, terminal_id, datastore, luid),
    UNIQUE (subscriber_id, terminal_id, datastore, guid),
    FOREIGN KEY (subscriber_id, terminal_id)
        REFERENCES terminal(subscriber_id, terminal_id) ON DELETE CASCADE
);

CREATE TABLE session (
    key             TEXT PRIMARY KEY NOT NULL,
    subscriber_id   TEXT NOT NULL,
    terminal_id     TEXT NOT NULL,
    state           BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
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
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    subscriber_id   TEXT,
    terminal_id     TEXT,
    kind            TEXT NOT NULL,
    status          INTEGER,
    reason          TEXT NOT NULL,
    remote_addr     TEXT
);
CREATE INDEX audit_by_subscriber ON audit (subscriber_id, id);
CREATE INDEX audit_by_terminal ON audit (terminal_id, id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;

CREATE TABLE lockout (
    kind            TEXT NOT NULL CHECK (kind IN ('terminal', 'subscriber')),
    id              TEXT NOT NULL,
    failures        INTEGER NOT NULL,
    last_failure_at INTEGER NOT NULL,
    locked_until    INTEGER,
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
    session_key     TEXT NOT NULL REFERENCES session(key) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    datastore       TEXT,
    guid            TEXT,
    revision        INTEGER,
    data            BLOB NOT NULL,
    PRIMARY KEY (session_key, seq)
);

CREATE TABLE session_delivered (
    session_key     TEXT NOT NULL REFERENCES session(key) ON DELETE CASCADE,
    datastore       TEXT NOT NULL,
    guid            TEXT NOT NULL,
    revision        INTEGER NOT NULL,
    PRIMARY KEY (session_key, datastore, guid)
);
"#,
    },
    Migration {
        version: 4,
        description: "LUID map and pending commands clustered on their keys (WITHOUT ROWID), \
                      delivered items one row per batch",
        // A rowid table with a text primary key is two B-trees (rows by rowid, the key's
        // index), and every insert writes both: clustered on the key, the LUID map is two
        // (key, GUID index) instead of three and the pending rows one instead of two. The
        // items a long package 4 delivered were 10,000 rows written, then deleted with the
        // session; now a row per message.
        sql: r#"
CREATE TABLE luid_map_v4 (
    subscriber_id   TEXT NOT NULL,
    terminal_id     TEXT NOT NULL,
    datastore       TEXT NOT NULL,
    luid            TEXT NOT NULL,
    guid            TEXT NOT NULL,
    PRIMARY KEY (subscriber_id, terminal_id, datastore, luid),
    UNIQUE (subscriber_id, terminal_id, datastore, guid),
    FOREIGN KEY (subscriber_id, terminal_id)
        REFERENCES terminal(subscriber_id, terminal_id) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO luid_map_v4 (subscriber_id, terminal_id, datastore, luid, guid)
    SELECT subscriber_id, terminal_id, datastore, luid, guid FROM luid_map;
DROP TABLE luid_map;
ALTER TABLE luid_map_v4 RENAME TO luid_map;

CREATE TABLE session_pending_v4 (
    session_key     TEXT NOT NULL REFERENCES session(key) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    datastore       TEXT,
    guid            TEXT,
    revision        INTEGER,
    data            BLOB NOT NULL,
    PRIMARY KEY (session_key, seq)
) WITHOUT ROWID;
INSERT INTO session_pending_v4 (session_key, seq, size, datastore, guid, revision, data)
    SELECT session_key, seq, size, datastore, guid, revision, data FROM session_pending;
DROP TABLE session_pending;
ALTER TABLE session_pending_v4 RENAME TO session_pending;

-- Items acknowledged in a session: one row per batch (a message's worth), as a JSON array
-- of [datastore, GUID, revision], instead of one row per item written and deleted again.
CREATE TABLE session_delivered_batch (
    session_key     TEXT NOT NULL REFERENCES session(key) ON DELETE CASCADE,
    batch           INTEGER NOT NULL,
    items           TEXT NOT NULL,
    PRIMARY KEY (session_key, batch)
) WITHOUT ROWID;
INSERT INTO session_delivered_batch (session_key, batch, items)
    SELECT session_key, 1, json_group_array(json_array(datastore, guid, revision))
    FROM session_delivered GROUP BY session_key;
DROP TABLE session_delivered;
"#,
    },
    Migration {
        version: 5,
        description: "LUID map keyed by an integer scope (subscriber, terminal, datastore)",
        // Every key of the map began with the same three strings, compared at each step
        // of every B-tree search: an insert into the map (four searches, for the key and
        // the GUID's uniqueness) cost ~24,000 instructions, a fifth of a 10,000-contact
        // download. Keyed by (scope, LUID) the rows are a third as long, too.
        sql: r#"
CREATE TABLE map_scope (
    id              INTEGER PRIMARY KEY,
    subscriber_id   TEXT NOT NULL,
    terminal_id     TEXT NOT NULL,
    datastore       TEXT NOT NULL,
    UNIQUE (subscriber_id, terminal_id, datastore),
    FOREIGN KEY (subscriber_id, terminal_id)
        REFERENCES terminal(subscriber_id, terminal_id) ON DELETE CASCADE
);
CREATE TABLE luid_map_v5 (
    scope           INTEGER NOT NULL REFERENCES map_scope(id) ON DELETE CASCADE,
    luid            TEXT NOT NULL,
    guid            TEXT NOT NULL,
    PRIMARY KEY (scope, luid),
    UNIQUE (scope, guid)
) WITHOUT ROWID;
INSERT INTO map_scope (subscriber_id, terminal_id, datastore)
    SELECT DISTINCT subscriber_id, terminal_id, datastore FROM luid_map;
INSERT INTO luid_map_v5 (scope, luid, guid)
    SELECT s.id, m.luid, m.guid FROM luid_map m JOIN map_scope s
        ON s.subscriber_id = m.subscriber_id AND s.terminal_id = m.terminal_id
       AND s.datastore = m.datastore;
DROP TABLE luid_map;
ALTER TABLE luid_map_v5 RENAME TO luid_map;
"#,
    },
    Migration {
        version: 6,
        description: "pending package 4 stored up to 64 commands (16 KiB of data) per row",
        // A row per command was a B-tree insert, a search and a delete per item of a
        // download: 16 % of the instructions of a 10,000-contact one. The commands of a
        // chunk are in `tx::pending_chunk` form: per command, big-endian seq and size
        // (8 bytes each), then revision, datastore and GUID each behind a presence byte
        // (a revision 8 bytes, a string a 4-byte length and its UTF-8), then the data
        // behind a 4-byte length. Rows are grouped by 64 and by 16 KiB of data (as
        // `tx::pending_chunks` does), so the chunks of a large object keep a row each.
        sql: r#"
CREATE TABLE session_pending_chunk (
    session_key     TEXT NOT NULL REFERENCES session(key) ON DELETE CASCADE,
    first_seq       INTEGER NOT NULL,
    last_seq        INTEGER NOT NULL,
    commands        INTEGER NOT NULL,
    data            BLOB NOT NULL,
    PRIMARY KEY (session_key, first_seq)
) WITHOUT ROWID;
INSERT INTO session_pending_chunk (session_key, first_seq, last_seq, commands, data)
    SELECT session_key, MIN(seq), MAX(seq), COUNT(*), unhex(group_concat(command, '' ORDER BY seq))
    FROM (SELECT session_key, seq,
                 printf('%016X%016X', seq, size)
                 || CASE WHEN revision IS NULL THEN '00'
                         ELSE '01' || printf('%016X', revision) END
                 || CASE WHEN datastore IS NULL THEN '00'
                         ELSE '01' || printf('%08X', length(CAST(datastore AS BLOB)))
                              || hex(datastore) END
                 || CASE WHEN guid IS NULL THEN '00'
                         ELSE '01' || printf('%08X', length(CAST(guid AS BLOB))) || hex(guid) END
                 || printf('%08X', length(data)) || hex(data) AS command,
                 (SUM(length(data)) OVER (PARTITION BY session_key ORDER BY seq)
                  - length(data)) / 16384 AS bytes_before
          FROM session_pending)
    GROUP BY session_key, seq / 64, bytes_before;
DROP TABLE session_pending;
"#,
    },
];

/// The schema version this build writes (the newest migration's version).
pub const SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

const CREATE_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    applied_at  INTEGER NOT NULL
)";

/// The version recorded in the database (0 for a new file).
pub(crate) fn current_version(conn: &Connection) -> Result<u32, StoreError> {
    conn.execute_batch(CREATE_VERSION_TABLE).map_err(map_err)?;
    let v: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |r| r.get(0),
        )
        .map_err(map_err)?;
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("schema version {v}")))
}

/// Applies the pending migrations of `list` to `conn` (which must have `foreign_keys` off and
/// no open transaction). Returns the versions applied, empty when the schema was up to date.
///
/// `applied_at` is taken from the database's own clock (`unixepoch()`): it is bookkeeping about
/// the file, not application data.
pub(crate) fn apply(conn: &mut Connection, list: &[Migration]) -> Result<Vec<u32>, StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let current = current_version(&tx)?;
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
        tx.execute_batch(m.sql)
            .map_err(|e| StoreError::Schema(format!("migration {} failed: {e}", m.version)))?;
        tx.execute(
            "INSERT INTO schema_version (version, description, applied_at)
             VALUES (?1, ?2, unixepoch())",
            rusqlite::params![i64::from(m.version), m.description],
        )
        .map_err(map_err)?;
        applied.push(m.version);
    }
    if !applied.is_empty() {
        let violations: i64 = tx
            .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .map_err(map_err)?;
        if violations != 0 {
            return Err(StoreError::Schema(format!(
                "migrations left {violations} foreign key violations"
            )));
        }
    }
    tx.commit().map_err(map_err)?;
    Ok(applied)
}

//! [`Tx`] over one open SQLite transaction.
//!
//! Every statement goes through `prepare_cached`, so a batch reuses one compiled statement in a
//! loop inside the single transaction. Every per-subscriber statement carries the subscriber id
//! in its `WHERE` clause (or in the inserted key, checked by a foreign key).

use std::collections::{BTreeMap, HashSet};

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::map_err;
use crate::store::types::{lockout_next, validate_id};
use crate::store::{
    AuditEvent, AuditFilter, AuditRecord, Change, ChangeKind, DatastoreInfo, DatastoreKey,
    DeliveredItem, Item, ItemSize, ItemStats, LockoutKey, LockoutState, MapEntry, NewItem,
    NewSubscriber, NewTerminal, PendingCommand, PutResult, RegisteredBy, Secret, SessionRecord,
    StoreError, Subscriber, SyncKey, SyncState, Terminal, Timestamp, Tx, MAX_SECURITY_LEVEL,
};

pub(super) struct SqliteTx<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteTx<'c> {
    pub(super) fn new(conn: &'c Connection) -> Self {
        SqliteTx { conn }
    }

    /// Runs a cached statement that changes rows; returns the number changed.
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(map_err)?;
        stmt.execute(params).map_err(map_err)
    }

    /// The LUID map's scope of a (subscriber, terminal, datastore), if it has one.
    fn map_scope(&self, key: SyncKey<'_>) -> Result<Option<i64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id FROM map_scope
                 WHERE subscriber_id = ?1 AND terminal_id = ?2 AND datastore = ?3",
            )
            .map_err(map_err)?;
        stmt.query_row(params![key.subscriber, key.terminal, key.datastore], |r| {
            r.get(0)
        })
        .optional()
        .map_err(map_err)
    }

    /// The LUID map's scope, created on first use (the terminal must exist).
    fn map_scope_create(&self, key: SyncKey<'_>) -> Result<i64, StoreError> {
        if let Some(id) = self.map_scope(key)? {
            return Ok(id);
        }
        self.exec(
            "INSERT INTO map_scope (subscriber_id, terminal_id, datastore) VALUES (?1, ?2, ?3)",
            params![key.subscriber, key.terminal, key.datastore],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Runs a cached statement that must change exactly one row of `what`.
    fn exec_one(
        &self,
        what: &str,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<(), StoreError> {
        match self.exec(sql, params)? {
            0 => Err(StoreError::NotFound(what.to_string())),
            _ => Ok(()),
        }
    }

    fn terminal_classes(&self, terminal: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT datastore FROM terminal_class WHERE terminal_id = ?1")
            .map_err(map_err)?;
        let rows = stmt
            .query_map(params![terminal], |r| r.get::<_, String>(0))
            .map_err(map_err)?;
        let mut classes = rows.collect::<Result<Vec<_>, _>>().map_err(map_err)?;
        classes.sort_unstable();
        Ok(classes)
    }

    fn terminal_exists(&self, subscriber: &str, terminal: &str) -> Result<bool, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM terminal WHERE subscriber_id = ?1 AND terminal_id = ?2")
            .map_err(map_err)?;
        stmt.exists(params![subscriber, terminal]).map_err(map_err)
    }

    /// Reserves `revisions` revisions and `guids` GUID numbers of a datastore (creating it).
    /// Returns the first reserved revision and the first reserved GUID number.
    fn reserve(
        &self,
        ds: DatastoreKey<'_>,
        revisions: i64,
        guids: i64,
    ) -> Result<(i64, i64), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO datastore (subscriber_id, name, revision, guid_seq)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (subscriber_id, name) DO UPDATE
                   SET revision = revision + excluded.revision,
                       guid_seq = guid_seq + excluded.guid_seq
                 RETURNING revision, guid_seq",
            )
            .map_err(map_err)?;
        let (last_rev, last_guid): (i64, i64) = stmt
            .query_row(
                params![ds.subscriber, ds.datastore, revisions, guids],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(map_err)?;
        Ok((last_rev - revisions + 1, last_guid - guids + 1))
    }

    /// Copies the current version of an item into the history; returns whether it existed.
    fn archive(&self, ds: DatastoreKey<'_>, guid: &str) -> Result<bool, StoreError> {
        let n = self.exec(
            "INSERT INTO item_history (subscriber_id, datastore, guid, revision, content_type,
                                       data, origin_terminal, deleted, updated_at)
             SELECT subscriber_id, datastore, guid, revision, content_type,
                    data, origin_terminal, deleted, updated_at
             FROM item WHERE subscriber_id = ?1 AND datastore = ?2 AND guid = ?3",
            params![ds.subscriber, ds.datastore, guid],
        )?;
        Ok(n > 0)
    }

    fn query_items(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Item>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(map_err)?;
        let rows = stmt.query_map(params, item_from_row).map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }
}

const SUBSCRIBER_COLUMNS: &str =
    "id, display_name, security_level, pin_verifier, login_verifier, created_at";

fn subscriber_from_row(r: &Row<'_>) -> rusqlite::Result<Subscriber> {
    let level: i64 = r.get(2)?;
    Ok(Subscriber {
        id: r.get(0)?,
        display_name: r.get(1)?,
        security_level: u8::try_from(level)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(2, level))?,
        pin_verifier: r.get::<_, Option<String>>(3)?.map(Secret::new),
        login_verifier: r.get::<_, Option<String>>(4)?.map(Secret::new),
        created_at: Timestamp(r.get(5)?),
    })
}

const TERMINAL_COLUMNS: &str = "terminal_id, subscriber_id, md5_verifier, basic_verifier, \
     registered_by, registered_at, revoked, last_session_at, next_nonce";

/// A terminal row without its classes (filled in by the caller).
fn terminal_from_row(r: &Row<'_>) -> rusqlite::Result<Terminal> {
    let by: String = r.get(4)?;
    let registered_by = RegisteredBy::parse(&by).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            rusqlite::types::Type::Text,
            format!("unknown registered_by {by:?}").into(),
        )
    })?;
    Ok(Terminal {
        terminal_id: r.get(0)?,
        subscriber_id: r.get(1)?,
        md5_verifier: r.get::<_, Option<String>>(2)?.map(Secret::new),
        basic_verifier: r.get::<_, Option<String>>(3)?.map(Secret::new),
        classes: Vec::new(),
        registered_by,
        registered_at: Timestamp(r.get(5)?),
        revoked: r.get(6)?,
        last_session_at: r.get::<_, Option<i64>>(7)?.map(Timestamp),
        next_nonce: r.get(8)?,
    })
}

const ITEM_COLUMNS: &str =
    "guid, content_type, data, revision, origin_terminal, deleted, updated_at";

fn item_from_row(r: &Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        guid: r.get(0)?,
        content_type: r.get(1)?,
        data: r.get(2)?,
        revision: r.get(3)?,
        origin_terminal: r.get(4)?,
        deleted: r.get(5)?,
        updated_at: Timestamp(r.get(6)?),
    })
}

fn sync_state_from_row(r: &Row<'_>, base: usize) -> rusqlite::Result<SyncState> {
    let sync_type: Option<i64> = r.get(base + 3)?;
    Ok(SyncState {
        client_anchor: r.get(base)?,
        server_anchor: r.get(base + 1)?,
        acked_revision: r.get(base + 2)?,
        last_sync_type: sync_type
            .map(|v| {
                u16::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(base + 3, v))
            })
            .transpose()?,
        updated_at: Timestamp(r.get(base + 4)?),
    })
}

const SESSION_COLUMNS: &str = "key, subscriber_id, terminal_id, state, created_at, expires_at";

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        key: r.get(0)?,
        subscriber_id: r.get(1)?,
        terminal_id: r.get(2)?,
        state: r.get(3)?,
        created_at: Timestamp(r.get(4)?),
        expires_at: Timestamp(r.get(5)?),
    })
}

fn audit_from_row(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    let status: Option<i64> = r.get(5)?;
    Ok(AuditRecord {
        id: r.get(0)?,
        event: AuditEvent {
            at: Timestamp(r.get(1)?),
            subscriber_id: r.get(2)?,
            terminal_id: r.get(3)?,
            kind: r.get(4)?,
            status: status
                .map(|v| {
                    u16::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(5, v))
                })
                .transpose()?,
            reason: r.get(6)?,
            remote_addr: r.get(7)?,
        },
    })
}

fn lockout_from_row(r: &Row<'_>) -> rusqlite::Result<LockoutState> {
    let failures: i64 = r.get(0)?;
    Ok(LockoutState {
        failures: u32::try_from(failures)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, failures))?,
        last_failure_at: Timestamp(r.get(1)?),
        locked_until: r.get::<_, Option<i64>>(2)?.map(Timestamp),
    })
}

/// Splits a batch into runs of 64, 16, 4 and 1: the sizes of the multi-row statements
/// below, so a batch takes a few statements and only four statement texts per kind reach
/// the statement cache. Every statement inside the message's transaction keeps a
/// statement journal (foreign keys, conflict clauses) and copies each page it changes into
/// it: per row, that copying and the statement's setup were most of what a row cost.
fn batch_runs<T>(mut rest: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let size = [64usize, 16, 4, 1].into_iter().find(|s| rest.len() >= *s)?;
        let (run, after) = rest.split_at(size);
        rest = after;
        Some(run)
    })
}

/// `n` placeholders: `?, ?, ...`.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `keys` without repeats, in first-seen order.
fn distinct(keys: &[String]) -> Vec<&str> {
    let mut seen = HashSet::with_capacity(keys.len());
    keys.iter()
        .map(String::as_str)
        .filter(|k| seen.insert(*k))
        .collect()
}

/// Runs `{sql} IN (?, ...)` over runs of the distinct `keys` ([`batch_runs`]), `prefix`
/// bound before them, handing `each` every statement and its values.
fn in_runs(
    conn: &Connection,
    sql: &str,
    prefix: &[&dyn rusqlite::ToSql],
    keys: &[String],
    mut each: impl FnMut(
        &mut rusqlite::CachedStatement<'_>,
        &[&dyn rusqlite::ToSql],
    ) -> rusqlite::Result<()>,
) -> Result<(), StoreError> {
    for run in batch_runs(&distinct(keys)) {
        let mut stmt = conn
            .prepare_cached(&format!("{sql} IN ({})", placeholders(run.len())))
            .map_err(map_err)?;
        let mut values = prefix.to_vec();
        values.extend(run.iter().map(|k| k as &dyn rusqlite::ToSql));
        each(&mut stmt, &values).map_err(map_err)?;
    }
    Ok(())
}

/// Every row of the query `{sql} IN (...)` over the distinct `keys` ([`in_runs`]),
/// mapped by `f`.
fn query_in<T>(
    conn: &Connection,
    sql: &str,
    prefix: &[&dyn rusqlite::ToSql],
    keys: &[String],
    mut f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::with_capacity(keys.len());
    in_runs(conn, sql, prefix, keys, |stmt, values| {
        let mut rows = stmt.query(values)?;
        while let Some(r) = rows.next()? {
            out.push(f(r)?);
        }
        Ok(())
    })?;
    Ok(out)
}

/// Runs the change `{sql} IN (...)` over the distinct `keys` ([`in_runs`]); the number
/// of rows changed.
fn execute_in(
    conn: &Connection,
    sql: &str,
    prefix: &[&dyn rusqlite::ToSql],
    keys: &[String],
) -> Result<usize, StoreError> {
    let mut n = 0;
    in_runs(conn, sql, prefix, keys, |stmt, values| {
        n += stmt.execute(values)?;
        Ok(())
    })?;
    Ok(n)
}

/// Inserts `rows` (each `width` values, in the column order of `head`) with multi-row
/// `INSERT`s ([`batch_runs`]). Rows are inserted in order, so a conflict clause in `tail`
/// sees them as if they were inserted one by one.
fn insert_rows(
    conn: &Connection,
    head: &str,
    tail: &str,
    width: usize,
    rows: &[Vec<&dyn rusqlite::ToSql>],
) -> Result<(), StoreError> {
    let one = format!("({})", placeholders(width));
    for run in batch_runs(rows) {
        let sql = format!(
            "{head} VALUES {} {tail}",
            vec![one.as_str(); run.len()].join(", ")
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(map_err)?;
        let values: Vec<&dyn rusqlite::ToSql> = run.iter().flatten().copied().collect();
        stmt.execute(values.as_slice()).map_err(map_err)?;
    }
    Ok(())
}

fn check_level(level: u8) -> Result<(), StoreError> {
    if level > MAX_SECURITY_LEVEL {
        return Err(StoreError::InvalidInput(format!(
            "security level {level} is above {MAX_SECURITY_LEVEL}"
        )));
    }
    Ok(())
}

fn check_ds(ds: DatastoreKey<'_>) -> Result<(), StoreError> {
    validate_id("subscriber id", ds.subscriber)?;
    validate_id("datastore name", ds.datastore)
}

fn check_sync_key(key: SyncKey<'_>) -> Result<(), StoreError> {
    validate_id("subscriber id", key.subscriber)?;
    validate_id("terminal id", key.terminal)?;
    validate_id("datastore name", key.datastore)
}

fn to_i64(n: usize) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::InvalidInput("batch too large".into()))
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn count_to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative count {v}")))
}

impl Tx for SqliteTx<'_> {
    // ----- subscribers ----------------------------------------------------------------------

    fn subscriber_create(
        &mut self,
        new: &NewSubscriber,
        now: Timestamp,
    ) -> Result<Subscriber, StoreError> {
        validate_id("subscriber id", &new.id)?;
        check_level(new.security_level)?;
        let n = self.exec(
            "INSERT INTO subscriber (id, display_name, security_level, created_at)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO NOTHING",
            params![
                new.id,
                new.display_name,
                i64::from(new.security_level),
                now.0
            ],
        )?;
        if n == 0 {
            return Err(StoreError::AlreadyExists(format!("subscriber {}", new.id)));
        }
        Ok(Subscriber {
            id: new.id.clone(),
            display_name: new.display_name.clone(),
            security_level: new.security_level,
            pin_verifier: None,
            login_verifier: None,
            created_at: now,
        })
    }

    fn subscriber_get(&mut self, id: &str) -> Result<Option<Subscriber>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SUBSCRIBER_COLUMNS} FROM subscriber WHERE id = ?1"
            ))
            .map_err(map_err)?;
        stmt.query_row(params![id], subscriber_from_row)
            .optional()
            .map_err(map_err)
    }

    fn subscriber_list(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Subscriber>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SUBSCRIBER_COLUMNS} FROM subscriber
                 WHERE ?1 IS NULL OR id > ?1 ORDER BY id LIMIT ?2"
            ))
            .map_err(map_err)?;
        let rows = stmt
            .query_map(params![after, i64::from(limit)], subscriber_from_row)
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    fn subscriber_set_pin_verifier(
        &mut self,
        id: &str,
        verifier: Option<&Secret>,
    ) -> Result<(), StoreError> {
        self.exec_one(
            "subscriber",
            "UPDATE subscriber SET pin_verifier = ?2 WHERE id = ?1",
            params![id, verifier.map(Secret::expose)],
        )
    }

    fn subscriber_set_login_verifier(
        &mut self,
        id: &str,
        verifier: Option<&Secret>,
    ) -> Result<(), StoreError> {
        self.exec_one(
            "subscriber",
            "UPDATE subscriber SET login_verifier = ?2 WHERE id = ?1",
            params![id, verifier.map(Secret::expose)],
        )
    }

    fn subscriber_set_security_level(&mut self, id: &str, level: u8) -> Result<(), StoreError> {
        check_level(level)?;
        self.exec_one(
            "subscriber",
            "UPDATE subscriber SET security_level = ?2 WHERE id = ?1",
            params![id, i64::from(level)],
        )
    }

    fn subscriber_delete(&mut self, id: &str) -> Result<(), StoreError> {
        self.exec_one(
            "subscriber",
            "DELETE FROM subscriber WHERE id = ?1",
            params![id],
        )
    }

    // ----- terminals ------------------------------------------------------------------------

    fn terminal_register(
        &mut self,
        new: &NewTerminal,
        now: Timestamp,
    ) -> Result<Terminal, StoreError> {
        validate_id("terminal id", &new.terminal_id)?;
        validate_id("subscriber id", &new.subscriber_id)?;
        for class in &new.classes {
            validate_id("datastore name", class)?;
        }
        if self.subscriber_get(&new.subscriber_id)?.is_none() {
            return Err(StoreError::NotFound(format!(
                "subscriber {}",
                new.subscriber_id
            )));
        }
        let n = self.exec(
            "INSERT INTO terminal (terminal_id, subscriber_id, md5_verifier, basic_verifier,
                                   registered_by, registered_at, revoked)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0) ON CONFLICT (terminal_id) DO NOTHING",
            params![
                new.terminal_id,
                new.subscriber_id,
                new.md5_verifier.as_ref().map(Secret::expose),
                new.basic_verifier.as_ref().map(Secret::expose),
                new.registered_by.as_str(),
                now.0
            ],
        )?;
        if n == 0 {
            return Err(StoreError::AlreadyExists(format!(
                "terminal {} is already registered",
                new.terminal_id
            )));
        }
        self.terminal_set_classes(&new.subscriber_id, &new.terminal_id, &new.classes)?;
        self.terminal_get(&new.subscriber_id, &new.terminal_id)?
            .ok_or_else(|| StoreError::Backend("registered terminal vanished".into()))
    }

    fn terminal_get(
        &mut self,
        subscriber: &str,
        terminal: &str,
    ) -> Result<Option<Terminal>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {TERMINAL_COLUMNS} FROM terminal
                 WHERE subscriber_id = ?1 AND terminal_id = ?2"
            ))
            .map_err(map_err)?;
        let found = stmt
            .query_row(params![subscriber, terminal], terminal_from_row)
            .optional()
            .map_err(map_err)?;
        match found {
            Some(mut t) => {
                t.classes = self.terminal_classes(&t.terminal_id)?;
                Ok(Some(t))
            }
            None => Ok(None),
        }
    }

    fn terminal_find(&mut self, terminal: &str) -> Result<Option<Terminal>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {TERMINAL_COLUMNS} FROM terminal WHERE terminal_id = ?1"
            ))
            .map_err(map_err)?;
        let found = stmt
            .query_row(params![terminal], terminal_from_row)
            .optional()
            .map_err(map_err)?;
        match found {
            Some(mut t) => {
                t.classes = self.terminal_classes(&t.terminal_id)?;
                Ok(Some(t))
            }
            None => Ok(None),
        }
    }

    fn terminal_list(&mut self, subscriber: &str) -> Result<Vec<Terminal>, StoreError> {
        let mut terminals = {
            let mut stmt = self
                .conn
                .prepare_cached(&format!(
                    "SELECT {TERMINAL_COLUMNS} FROM terminal
                     WHERE subscriber_id = ?1 ORDER BY terminal_id"
                ))
                .map_err(map_err)?;
            let rows = stmt
                .query_map(params![subscriber], terminal_from_row)
                .map_err(map_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_err)?
        };
        let mut classes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT c.terminal_id, c.datastore FROM terminal_class c
                     JOIN terminal t ON t.terminal_id = c.terminal_id
                     WHERE t.subscriber_id = ?1 ORDER BY c.terminal_id, c.datastore",
                )
                .map_err(map_err)?;
            let rows = stmt
                .query_map(params![subscriber], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(map_err)?;
            for row in rows {
                let (terminal, class) = row.map_err(map_err)?;
                classes.entry(terminal).or_default().push(class);
            }
        }
        for t in &mut terminals {
            t.classes = classes.remove(&t.terminal_id).unwrap_or_default();
        }
        Ok(terminals)
    }

    fn terminal_set_verifiers(
        &mut self,
        subscriber: &str,
        terminal: &str,
        md5: Option<&Secret>,
        basic: Option<&Secret>,
    ) -> Result<(), StoreError> {
        self.exec_one(
            "terminal",
            "UPDATE terminal SET md5_verifier = ?3, basic_verifier = ?4
             WHERE subscriber_id = ?1 AND terminal_id = ?2",
            params![
                subscriber,
                terminal,
                md5.map(Secret::expose),
                basic.map(Secret::expose)
            ],
        )
    }

    fn terminal_set_classes(
        &mut self,
        subscriber: &str,
        terminal: &str,
        classes: &[String],
    ) -> Result<(), StoreError> {
        for class in classes {
            validate_id("datastore name", class)?;
        }
        if !self.terminal_exists(subscriber, terminal)? {
            return Err(StoreError::NotFound("terminal".into()));
        }
        self.exec(
            "DELETE FROM terminal_class WHERE terminal_id IN
               (SELECT terminal_id FROM terminal WHERE subscriber_id = ?1 AND terminal_id = ?2)",
            params![subscriber, terminal],
        )?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO terminal_class (terminal_id, datastore)
                 SELECT terminal_id, ?3 FROM terminal
                 WHERE subscriber_id = ?1 AND terminal_id = ?2",
            )
            .map_err(map_err)?;
        for class in classes {
            stmt.execute(params![subscriber, terminal, class])
                .map_err(map_err)?;
        }
        Ok(())
    }

    fn terminal_set_devinf(
        &mut self,
        subscriber: &str,
        terminal: &str,
        devinf: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        self.exec_one(
            "terminal",
            "UPDATE terminal SET devinf = ?3 WHERE subscriber_id = ?1 AND terminal_id = ?2",
            params![subscriber, terminal, devinf],
        )
    }

    fn terminal_devinf(
        &mut self,
        subscriber: &str,
        terminal: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT devinf FROM terminal WHERE subscriber_id = ?1 AND terminal_id = ?2",
            )
            .map_err(map_err)?;
        let row: Option<Option<Vec<u8>>> = stmt
            .query_row(params![subscriber, terminal], |r| r.get(0))
            .optional()
            .map_err(map_err)?;
        Ok(row.flatten())
    }

    fn terminal_set_nonce(
        &mut self,
        subscriber: &str,
        terminal: &str,
        nonce: Option<&str>,
    ) -> Result<(), StoreError> {
        self.exec_one(
            "terminal",
            "UPDATE terminal SET next_nonce = ?3 WHERE subscriber_id = ?1 AND terminal_id = ?2",
            params![subscriber, terminal, nonce],
        )
    }

    fn terminal_touch_last_session(
        &mut self,
        subscriber: &str,
        terminal: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.exec_one(
            "terminal",
            "UPDATE terminal SET last_session_at = ?3
             WHERE subscriber_id = ?1 AND terminal_id = ?2",
            params![subscriber, terminal, now.0],
        )
    }

    fn terminal_set_revoked(
        &mut self,
        subscriber: &str,
        terminal: &str,
        revoked: bool,
    ) -> Result<(), StoreError> {
        self.exec_one(
            "terminal",
            "UPDATE terminal SET revoked = ?3 WHERE subscriber_id = ?1 AND terminal_id = ?2",
            params![subscriber, terminal, revoked],
        )
    }

    fn terminal_remove(&mut self, subscriber: &str, terminal: &str) -> Result<(), StoreError> {
        self.exec_one(
            "terminal",
            "DELETE FROM terminal WHERE subscriber_id = ?1 AND terminal_id = ?2",
            params![subscriber, terminal],
        )
    }

    // ----- items ----------------------------------------------------------------------------

    fn item_get(&mut self, ds: DatastoreKey<'_>, guid: &str) -> Result<Option<Item>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM item
                 WHERE subscriber_id = ?1 AND datastore = ?2 AND guid = ?3"
            ))
            .map_err(map_err)?;
        stmt.query_row(params![ds.subscriber, ds.datastore, guid], item_from_row)
            .optional()
            .map_err(map_err)
    }

    fn items_get(
        &mut self,
        ds: DatastoreKey<'_>,
        guids: &[String],
    ) -> Result<Vec<Item>, StoreError> {
        // `guid IN (...)` over runs of GUIDs, not a statement per GUID.
        query_in(
            self.conn,
            &format!(
                "SELECT {ITEM_COLUMNS} FROM item
                 WHERE subscriber_id = ? AND datastore = ? AND guid"
            ),
            &[&ds.subscriber, &ds.datastore],
            guids,
            item_from_row,
        )
    }

    fn items_at_revisions(
        &mut self,
        ds: DatastoreKey<'_>,
        wanted: &[(String, i64)],
    ) -> Result<Vec<Item>, StoreError> {
        let (Some(lo), Some(hi)) = (
            wanted.iter().map(|(_, r)| *r).min(),
            wanted.iter().map(|(_, r)| *r).max(),
        ) else {
            return Ok(Vec::new());
        };
        // A download asks for runs of consecutive revisions: one range of the revision
        // index then reads them in order, instead of a search of the GUID key per item.
        // Sparse asks (a few changes far apart) go by GUID.
        let span = hi.saturating_sub(lo).saturating_add(1);
        if span > 2 * (wanted.len() as i64) + 64 {
            return crate::store::items_at_revisions_by_guid(self, ds, wanted);
        }
        let revisions: HashSet<(&str, i64)> =
            wanted.iter().map(|(g, r)| (g.as_str(), *r)).collect();
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM item
                 WHERE subscriber_id = ?1 AND datastore = ?2 AND revision BETWEEN ?3 AND ?4"
            ))
            .map_err(map_err)?;
        let rows = stmt
            .query_map(params![ds.subscriber, ds.datastore, lo, hi], item_from_row)
            .map_err(map_err)?;
        let mut out = Vec::with_capacity(wanted.len());
        for item in rows {
            let item = item.map_err(map_err)?;
            if revisions.contains(&(item.guid.as_str(), item.revision)) {
                out.push(item);
            }
        }
        Ok(out)
    }

    fn items_put(
        &mut self,
        ds: DatastoreKey<'_>,
        origin: Option<&str>,
        items: &[NewItem],
        now: Timestamp,
    ) -> Result<Vec<PutResult>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        check_ds(ds)?;
        for item in items {
            if let Some(guid) = &item.guid {
                validate_id("guid", guid)?;
            }
        }
        let new_count = to_i64(items.iter().filter(|i| i.guid.is_none()).count())?;
        let (first_rev, first_guid) = self.reserve(ds, to_i64(items.len())?, new_count)?;

        let mut insert = self
            .conn
            .prepare_cached(
                "INSERT INTO item (subscriber_id, datastore, guid, content_type, data, revision,
                                   origin_terminal, deleted, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8)",
            )
            .map_err(map_err)?;
        let mut update = self
            .conn
            .prepare_cached(
                "UPDATE item SET content_type = ?4, data = ?5, revision = ?6,
                                 origin_terminal = ?7, deleted = 0, updated_at = ?8
                 WHERE subscriber_id = ?1 AND datastore = ?2 AND guid = ?3",
            )
            .map_err(map_err)?;

        let mut out = Vec::with_capacity(items.len());
        let mut next_guid = first_guid;
        for (revision, item) in (first_rev..).zip(items) {
            let guid = match &item.guid {
                None => {
                    let guid = next_guid.to_string();
                    next_guid += 1;
                    insert
                        .execute(params![
                            ds.subscriber,
                            ds.datastore,
                            guid,
                            item.content_type,
                            item.data,
                            revision,
                            origin,
                            now.0
                        ])
                        .map_err(map_err)?;
                    guid
                }
                Some(guid) => {
                    if !self.archive(ds, guid)? {
                        return Err(StoreError::NotFound(format!("item {guid}")));
                    }
                    update
                        .execute(params![
                            ds.subscriber,
                            ds.datastore,
                            guid,
                            item.content_type,
                            item.data,
                            revision,
                            origin,
                            now.0
                        ])
                        .map_err(map_err)?;
                    guid.clone()
                }
            };
            out.push(PutResult { guid, revision });
        }
        tracing::trace!(
            subscriber = ds.subscriber,
            datastore = ds.datastore,
            count = items.len(),
            last_revision = first_rev + to_i64(items.len())? - 1,
            "items put"
        );
        Ok(out)
    }

    fn items_delete(
        &mut self,
        ds: DatastoreKey<'_>,
        origin: Option<&str>,
        guids: &[String],
        now: Timestamp,
    ) -> Result<Vec<Option<i64>>, StoreError> {
        if guids.is_empty() {
            return Ok(Vec::new());
        }
        // Decide first which GUIDs are live, so that only real deletes take a revision.
        let mut live = Vec::with_capacity(guids.len());
        {
            let mut seen = HashSet::new();
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT deleted FROM item
                     WHERE subscriber_id = ?1 AND datastore = ?2 AND guid = ?3",
                )
                .map_err(map_err)?;
            for guid in guids {
                let deleted: Option<bool> = stmt
                    .query_row(params![ds.subscriber, ds.datastore, guid], |r| r.get(0))
                    .optional()
                    .map_err(map_err)?;
                live.push(deleted == Some(false) && seen.insert(guid.as_str()));
            }
        }
        let count = to_i64(live.iter().filter(|l| **l).count())?;
        if count == 0 {
            return Ok(vec![None; guids.len()]);
        }
        let (first_rev, _) = self.reserve(ds, count, 0)?;
        let mut tombstone = self
            .conn
            .prepare_cached(
                "UPDATE item SET data = X'', revision = ?4, origin_terminal = ?5, deleted = 1,
                                 updated_at = ?6
                 WHERE subscriber_id = ?1 AND datastore = ?2 AND guid = ?3",
            )
            .map_err(map_err)?;
        let mut out = Vec::with_capacity(guids.len());
        let mut revision = first_rev;
        for (guid, is_live) in guids.iter().zip(live) {
            if !is_live {
                out.push(None);
                continue;
            }
            self.archive(ds, guid)?;
            tombstone
                .execute(params![
                    ds.subscriber,
                    ds.datastore,
                    guid,
                    revision,
                    origin,
                    now.0
                ])
                .map_err(map_err)?;
            out.push(Some(revision));
            revision += 1;
        }
        Ok(out)
    }

    fn items_list_live(&mut self, ds: DatastoreKey<'_>) -> Result<Vec<Item>, StoreError> {
        let mut items = self.query_items(
            &format!(
                "SELECT {ITEM_COLUMNS} FROM item
                 WHERE subscriber_id = ?1 AND datastore = ?2 AND deleted = 0"
            ),
            params![ds.subscriber, ds.datastore],
        )?;
        items.sort_unstable_by_key(|i| i.revision);
        Ok(items)
    }

    fn items_list_live_sizes(&mut self, ds: DatastoreKey<'_>) -> Result<Vec<ItemSize>, StoreError> {
        // `octet_length` of a BLOB reads the record header, not the value.
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT guid, content_type, revision, octet_length(data) FROM item
                 WHERE subscriber_id = ?1 AND datastore = ?2 AND deleted = 0",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map(params![ds.subscriber, ds.datastore], |r| {
                Ok(ItemSize {
                    guid: r.get(0)?,
                    content_type: r.get(1)?,
                    revision: r.get(2)?,
                    size: r.get::<_, i64>(3)?.max(0) as u64,
                })
            })
            .map_err(map_err)?;
        let mut items = rows.collect::<Result<Vec<_>, _>>().map_err(map_err)?;
        items.sort_unstable_by_key(|i| i.revision);
        Ok(items)
    }

    fn items_stats(&mut self, ds: DatastoreKey<'_>) -> Result<ItemStats, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(length(data)), 0) FROM item
                 WHERE subscriber_id = ?1 AND datastore = ?2 AND deleted = 0",
            )
            .map_err(map_err)?;
        let (count, bytes): (i64, i64) = stmt
            .query_row(params![ds.subscriber, ds.datastore], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(map_err)?;
        Ok(ItemStats {
            count: count_to_u64(count)?,
            total_bytes: count_to_u64(bytes)?,
        })
    }

    fn changes_since(
        &mut self,
        ds: DatastoreKey<'_>,
        after: i64,
        exclude_origin: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<Change>, StoreError> {
        // ORDER BY and LIMIT with bound values make SQLite (built with STAT4) prepare the
        // statement anew at every run; the rows are sorted here instead, and only a
        // limited query (rare) pays for that.
        let sql = match limit {
            None => {
                "SELECT guid, revision, deleted, content_type, data, origin_terminal FROM item
                 WHERE subscriber_id = ?1 AND datastore = ?2 AND revision > ?3
                   AND (?4 IS NULL OR origin_terminal IS NOT ?4) AND ?5 IS NULL"
            }
            Some(_) => {
                "SELECT guid, revision, deleted, content_type, data, origin_terminal FROM item
                 WHERE subscriber_id = ?1 AND datastore = ?2 AND revision > ?3
                   AND (?4 IS NULL OR origin_terminal IS NOT ?4)
                 ORDER BY revision LIMIT ?5"
            }
        };
        let mut stmt = self.conn.prepare_cached(sql).map_err(map_err)?;
        let rows = stmt
            .query_map(
                params![ds.subscriber, ds.datastore, after, exclude_origin, limit],
                |r| {
                    let deleted: bool = r.get(2)?;
                    Ok(Change {
                        guid: r.get(0)?,
                        revision: r.get(1)?,
                        kind: if deleted {
                            ChangeKind::Delete
                        } else {
                            ChangeKind::Upsert
                        },
                        content_type: r.get(3)?,
                        data: r.get(4)?,
                        origin_terminal: r.get(5)?,
                    })
                },
            )
            .map_err(map_err)?;
        let mut changes = rows.collect::<Result<Vec<_>, _>>().map_err(map_err)?;
        changes.sort_unstable_by_key(|c| c.revision);
        Ok(changes)
    }

    fn changes_count_since(
        &mut self,
        ds: DatastoreKey<'_>,
        after: i64,
        exclude_origin: Option<&str>,
    ) -> Result<u64, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM item
                 WHERE subscriber_id = ?1 AND datastore = ?2 AND revision > ?3
                   AND (?4 IS NULL OR origin_terminal IS NOT ?4)",
            )
            .map_err(map_err)?;
        let n: i64 = stmt
            .query_row(
                params![ds.subscriber, ds.datastore, after, exclude_origin],
                |r| r.get(0),
            )
            .map_err(map_err)?;
        count_to_u64(n)
    }

    fn datastore_revision(&mut self, ds: DatastoreKey<'_>) -> Result<i64, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT revision FROM datastore WHERE subscriber_id = ?1 AND name = ?2")
            .map_err(map_err)?;
        let rev: Option<i64> = stmt
            .query_row(params![ds.subscriber, ds.datastore], |r| r.get(0))
            .optional()
            .map_err(map_err)?;
        Ok(rev.unwrap_or(0))
    }

    fn datastores(&mut self, subscriber: &str) -> Result<Vec<DatastoreInfo>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT d.name, d.revision, COUNT(i.guid), COALESCE(SUM(length(i.data)), 0)
                 FROM datastore d
                 LEFT JOIN item i ON i.subscriber_id = d.subscriber_id
                                 AND i.datastore = d.name AND i.deleted = 0
                 WHERE d.subscriber_id = ?1
                 GROUP BY d.name, d.revision ORDER BY d.name",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map(params![subscriber], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(map_err)?;
        let mut out = Vec::new();
        for row in rows {
            let (name, revision, count, bytes) = row.map_err(map_err)?;
            out.push(DatastoreInfo {
                name,
                revision,
                stats: ItemStats {
                    count: count_to_u64(count)?,
                    total_bytes: count_to_u64(bytes)?,
                },
            });
        }
        Ok(out)
    }

    fn item_history(&mut self, ds: DatastoreKey<'_>, guid: &str) -> Result<Vec<Item>, StoreError> {
        self.query_items(
            &format!(
                "SELECT {ITEM_COLUMNS} FROM item_history
                 WHERE subscriber_id = ?1 AND datastore = ?2 AND guid = ?3
                 ORDER BY revision DESC"
            ),
            params![ds.subscriber, ds.datastore, guid],
        )
    }

    // ----- sync state -----------------------------------------------------------------------

    fn sync_state_get(&mut self, key: SyncKey<'_>) -> Result<Option<SyncState>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT client_anchor, server_anchor, acked_revision, last_sync_type, updated_at
                 FROM sync_state
                 WHERE subscriber_id = ?1 AND terminal_id = ?2 AND datastore = ?3",
            )
            .map_err(map_err)?;
        stmt.query_row(params![key.subscriber, key.terminal, key.datastore], |r| {
            sync_state_from_row(r, 0)
        })
        .optional()
        .map_err(map_err)
    }

    fn sync_state_put(&mut self, key: SyncKey<'_>, state: &SyncState) -> Result<(), StoreError> {
        check_sync_key(key)?;
        self.exec(
            "INSERT INTO sync_state (subscriber_id, terminal_id, datastore, client_anchor,
                                     server_anchor, acked_revision, last_sync_type, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (subscriber_id, terminal_id, datastore) DO UPDATE SET
                 client_anchor = excluded.client_anchor,
                 server_anchor = excluded.server_anchor,
                 acked_revision = excluded.acked_revision,
                 last_sync_type = excluded.last_sync_type,
                 updated_at = excluded.updated_at",
            params![
                key.subscriber,
                key.terminal,
                key.datastore,
                state.client_anchor,
                state.server_anchor,
                state.acked_revision,
                state.last_sync_type.map(i64::from),
                state.updated_at.0
            ],
        )?;
        Ok(())
    }

    fn sync_state_delete(&mut self, key: SyncKey<'_>) -> Result<bool, StoreError> {
        let n = self.exec(
            "DELETE FROM sync_state
             WHERE subscriber_id = ?1 AND terminal_id = ?2 AND datastore = ?3",
            params![key.subscriber, key.terminal, key.datastore],
        )?;
        Ok(n > 0)
    }

    fn sync_states_for_terminal(
        &mut self,
        subscriber: &str,
        terminal: &str,
    ) -> Result<Vec<(String, SyncState)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT datastore, client_anchor, server_anchor, acked_revision, last_sync_type,
                        updated_at
                 FROM sync_state WHERE subscriber_id = ?1 AND terminal_id = ?2
                 ORDER BY datastore",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map(params![subscriber, terminal], |r| {
                Ok((r.get::<_, String>(0)?, sync_state_from_row(r, 1)?))
            })
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    // ----- LUID↔GUID map --------------------------------------------------------------------

    fn map_put(&mut self, key: SyncKey<'_>, entries: &[MapEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        check_sync_key(key)?;
        for e in entries {
            validate_id("luid", &e.luid)?;
            validate_id("guid", &e.guid)?;
        }
        let scope = self.map_scope_create(key)?;
        // REPLACE removes the pairs that hold this LUID or this GUID (the key and the
        // UNIQUE constraint) before inserting each row: two index lookups. (A
        // `DELETE ... WHERE luid = ? OR guid = ?` scans the terminal's whole map on a
        // WITHOUT ROWID table: SQLite's OR-by-union plan needs rowids.)
        let rows: Vec<Vec<&dyn rusqlite::ToSql>> = entries
            .iter()
            .map(|e| {
                let row: Vec<&dyn rusqlite::ToSql> = vec![&scope, &e.luid, &e.guid];
                row
            })
            .collect();
        insert_rows(
            self.conn,
            "INSERT OR REPLACE INTO luid_map (scope, luid, guid)",
            "",
            3,
            &rows,
        )
    }

    fn map_remove_luids(&mut self, key: SyncKey<'_>, luids: &[String]) -> Result<u64, StoreError> {
        let Some(scope) = self.map_scope(key)? else {
            return Ok(0);
        };
        let n = execute_in(
            self.conn,
            "DELETE FROM luid_map WHERE scope = ? AND luid",
            &[&scope],
            luids,
        )?;
        Ok(to_u64(n))
    }

    fn map_remove_guids(&mut self, key: SyncKey<'_>, guids: &[String]) -> Result<u64, StoreError> {
        let Some(scope) = self.map_scope(key)? else {
            return Ok(0);
        };
        let n = execute_in(
            self.conn,
            "DELETE FROM luid_map WHERE scope = ? AND guid",
            &[&scope],
            guids,
        )?;
        Ok(to_u64(n))
    }

    fn map_guids_for_luids(
        &mut self,
        key: SyncKey<'_>,
        luids: &[String],
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let Some(scope) = self.map_scope(key)? else {
            return Ok(Default::default());
        };
        // `luid IN (...)` over runs of LUIDs, not a statement per LUID.
        let pairs = query_in(
            self.conn,
            "SELECT luid, guid FROM luid_map WHERE scope = ? AND luid",
            &[&scope],
            luids,
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )?;
        Ok(pairs.into_iter().collect())
    }

    fn map_guid_for_luid(
        &mut self,
        key: SyncKey<'_>,
        luid: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT m.guid FROM map_scope s JOIN luid_map m ON m.scope = s.id
                 WHERE s.subscriber_id = ?1 AND s.terminal_id = ?2 AND s.datastore = ?3
                   AND m.luid = ?4",
            )
            .map_err(map_err)?;
        stmt.query_row(
            params![key.subscriber, key.terminal, key.datastore, luid],
            |r| r.get(0),
        )
        .optional()
        .map_err(map_err)
    }

    fn map_luid_for_guid(
        &mut self,
        key: SyncKey<'_>,
        guid: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT m.luid FROM map_scope s JOIN luid_map m ON m.scope = s.id
                 WHERE s.subscriber_id = ?1 AND s.terminal_id = ?2 AND s.datastore = ?3
                   AND m.guid = ?4",
            )
            .map_err(map_err)?;
        stmt.query_row(
            params![key.subscriber, key.terminal, key.datastore, guid],
            |r| r.get(0),
        )
        .optional()
        .map_err(map_err)
    }

    fn map_list(&mut self, key: SyncKey<'_>) -> Result<Vec<MapEntry>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT m.luid, m.guid FROM map_scope s JOIN luid_map m ON m.scope = s.id
                 WHERE s.subscriber_id = ?1 AND s.terminal_id = ?2 AND s.datastore = ?3",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map(params![key.subscriber, key.terminal, key.datastore], |r| {
                Ok(MapEntry {
                    luid: r.get(0)?,
                    guid: r.get(1)?,
                })
            })
            .map_err(map_err)?;
        let mut entries = rows.collect::<Result<Vec<_>, _>>().map_err(map_err)?;
        entries.sort_unstable_by(|a, b| a.luid.cmp(&b.luid));
        Ok(entries)
    }

    fn map_clear(&mut self, key: SyncKey<'_>) -> Result<u64, StoreError> {
        let n = self.exec(
            "DELETE FROM luid_map WHERE scope =
                 (SELECT id FROM map_scope
                  WHERE subscriber_id = ?1 AND terminal_id = ?2 AND datastore = ?3)",
            params![key.subscriber, key.terminal, key.datastore],
        )?;
        Ok(to_u64(n))
    }

    // ----- sessions -------------------------------------------------------------------------

    fn session_save(&mut self, s: &SessionRecord) -> Result<(), StoreError> {
        validate_id("session key", &s.key)?;
        validate_id("subscriber id", &s.subscriber_id)?;
        validate_id("terminal id", &s.terminal_id)?;
        let n = self.exec(
            "INSERT INTO session (key, subscriber_id, terminal_id, state, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (key) DO UPDATE SET state = excluded.state,
                                             expires_at = excluded.expires_at
             WHERE session.subscriber_id = excluded.subscriber_id
               AND session.terminal_id = excluded.terminal_id",
            params![
                s.key,
                s.subscriber_id,
                s.terminal_id,
                s.state,
                s.created_at.0,
                s.expires_at.0
            ],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict(
                "session key belongs to another terminal".into(),
            ));
        }
        Ok(())
    }

    fn session_load(
        &mut self,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM session WHERE key = ?1 AND expires_at > ?2"
            ))
            .map_err(map_err)?;
        stmt.query_row(params![key, now.0], session_from_row)
            .optional()
            .map_err(map_err)
    }

    fn session_delete(&mut self, key: &str) -> Result<bool, StoreError> {
        Ok(self.exec("DELETE FROM session WHERE key = ?1", params![key])? > 0)
    }

    fn sessions_purge_expired(&mut self, now: Timestamp) -> Result<u64, StoreError> {
        let n = self.exec("DELETE FROM session WHERE expires_at <= ?1", params![now.0])?;
        Ok(to_u64(n))
    }

    fn sessions_for_terminal(
        &mut self,
        subscriber: &str,
        terminal: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT created_at, key FROM session
                 WHERE subscriber_id = ?1 AND terminal_id = ?2 AND expires_at > ?3",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map(params![subscriber, terminal, now.0], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(map_err)?;
        let mut keys = rows.collect::<Result<Vec<_>, _>>().map_err(map_err)?;
        keys.sort_unstable();
        Ok(keys.into_iter().map(|(_, k)| k).collect())
    }

    fn sessions_count_live(&mut self, now: Timestamp) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM session WHERE expires_at > ?1")
            .and_then(|mut st| st.query_row(params![now.0], |r| r.get(0)))
            .map_err(map_err)?;
        Ok(n.max(0) as u64)
    }

    fn session_pending_put(
        &mut self,
        session_key: &str,
        commands: &[PendingCommand],
    ) -> Result<(), StoreError> {
        if commands.is_empty() {
            return Ok(());
        }
        validate_id("session key", session_key)?;
        let mut sorted: Vec<&PendingCommand> = commands.iter().collect();
        sorted.sort_by_key(|c| c.seq);
        if sorted.windows(2).any(|w| w[0].seq == w[1].seq) {
            return Err(StoreError::InvalidInput(
                "pending commands: a seq given twice".into(),
            ));
        }
        let (first, last) = (sorted[0].seq, sorted[sorted.len() - 1].seq);
        let overlap: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT first_seq FROM session_pending_chunk
                 WHERE session_key = ?1 AND first_seq <= ?3 AND last_seq >= ?2 LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(params![session_key, first, last], |r| r.get(0))
                    .optional()
            })
            .map_err(map_err)?;
        if overlap.is_some() {
            return Err(StoreError::AlreadyExists(format!(
                "pending commands {first}..={last} of a session"
            )));
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO session_pending_chunk (session_key, first_seq, last_seq, commands, data)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(map_err)?;
        for chunk in pending_chunks(&sorted) {
            let (first, last) = (chunk[0].seq, chunk[chunk.len() - 1].seq);
            let data = pending_chunk::encode(chunk.iter().copied())?;
            stmt.execute(params![session_key, first, last, chunk.len() as i64, data])
                .map_err(map_err)?;
        }
        Ok(())
    }

    fn session_pending_head(
        &mut self,
        session_key: &str,
        budget: u64,
    ) -> Result<Vec<PendingCommand>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT data FROM session_pending_chunk WHERE session_key = ?1 ORDER BY first_seq",
            )
            .map_err(map_err)?;
        let mut chunks = stmt.query(params![session_key]).map_err(map_err)?;
        let mut out = Vec::new();
        let mut total: u64 = 0;
        while total < budget {
            let Some(r) = chunks.next().map_err(map_err)? else {
                break;
            };
            let data =
                r.get_ref(0).map_err(map_err)?.as_blob().map_err(|e| {
                    StoreError::Corrupt(format!("a chunk of pending commands: {e}"))
                })?;
            for c in pending_chunk::decode(data)? {
                if total >= budget {
                    break;
                }
                total = total.saturating_add(c.size.max(1) as u64);
                out.push(c);
            }
        }
        Ok(out)
    }

    fn session_pending_remove_through(
        &mut self,
        session_key: &str,
        through: i64,
    ) -> Result<u64, StoreError> {
        let mut removed: i64 = 0;
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "DELETE FROM session_pending_chunk WHERE session_key = ?1 AND last_seq <= ?2
                     RETURNING commands",
                )
                .map_err(map_err)?;
            let counts = stmt
                .query_map(params![session_key, through], |r| r.get::<_, i64>(0))
                .map_err(map_err)?;
            for n in counts {
                removed += n.map_err(map_err)?;
            }
        }
        // The chunk the sent commands end in, if they end inside one: keep its rest.
        let straddling: Option<(i64, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT first_seq, data FROM session_pending_chunk
                 WHERE session_key = ?1 AND first_seq <= ?2 ORDER BY first_seq LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(params![session_key, through], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(map_err)?;
        if let Some((first, data)) = straddling {
            let (sent, rest): (Vec<_>, Vec<_>) = pending_chunk::decode(&data)?
                .into_iter()
                .partition(|c| c.seq <= through);
            removed += sent.len() as i64;
            self.exec(
                "DELETE FROM session_pending_chunk WHERE session_key = ?1 AND first_seq = ?2",
                params![session_key, first],
            )?;
            if let (Some(a), Some(b)) = (rest.first(), rest.last()) {
                self.exec(
                    "INSERT INTO session_pending_chunk
                         (session_key, first_seq, last_seq, commands, data)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        session_key,
                        a.seq,
                        b.seq,
                        rest.len() as i64,
                        pending_chunk::encode(rest.iter())?
                    ],
                )?;
            }
        }
        Ok(removed.max(0) as u64)
    }

    fn session_pending_count(&mut self, session_key: &str) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT COALESCE(SUM(commands), 0) FROM session_pending_chunk
                 WHERE session_key = ?1",
            )
            .and_then(|mut st| st.query_row(params![session_key], |r| r.get(0)))
            .map_err(map_err)?;
        Ok(n.max(0) as u64)
    }

    fn session_pending_clear(&mut self, session_key: &str) -> Result<u64, StoreError> {
        let n = self.session_pending_count(session_key)?;
        self.exec(
            "DELETE FROM session_pending_chunk WHERE session_key = ?1",
            params![session_key],
        )?;
        Ok(n)
    }

    fn session_delivered_put(
        &mut self,
        session_key: &str,
        items: &[DeliveredItem],
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        validate_id("session key", session_key)?;
        // One row per batch: [[datastore, GUID, revision], ...]; a later record of an item
        // (in this batch or a later one) wins when they are read back.
        let batch: Vec<(&str, &str, i64)> = items
            .iter()
            .map(|i| (i.datastore.as_str(), i.guid.as_str(), i.revision))
            .collect();
        let json = serde_json::to_string(&batch)
            .map_err(|e| StoreError::Backend(format!("delivered items: {e}")))?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO session_delivered_batch (session_key, batch, items)
                 VALUES (?1, (SELECT COALESCE(MAX(batch), 0) + 1 FROM session_delivered_batch
                              WHERE session_key = ?1), ?2)",
            )
            .map_err(map_err)?;
        stmt.execute(params![session_key, json]).map_err(map_err)?;
        Ok(())
    }

    fn session_delivered_list(
        &mut self,
        session_key: &str,
    ) -> Result<Vec<DeliveredItem>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT items FROM session_delivered_batch WHERE session_key = ?1 ORDER BY batch",
            )
            .map_err(map_err)?;
        let batches = stmt
            .query_map(params![session_key], |r| r.get::<_, String>(0))
            .map_err(map_err)?;
        let mut latest: BTreeMap<(String, String), i64> = BTreeMap::new();
        for json in batches {
            let json = json.map_err(map_err)?;
            let batch: Vec<(String, String, i64)> = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("delivered items of a session: {e}")))?;
            for (datastore, guid, revision) in batch {
                latest.insert((datastore, guid), revision);
            }
        }
        Ok(latest
            .into_iter()
            .map(|((datastore, guid), revision)| DeliveredItem {
                datastore,
                guid,
                revision,
            })
            .collect())
    }

    // ----- audit ----------------------------------------------------------------------------

    fn audit_append(&mut self, e: &AuditEvent) -> Result<i64, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO audit (at, subscriber_id, terminal_id, kind, status, reason,
                                    remote_addr)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            )
            .map_err(map_err)?;
        stmt.query_row(
            params![
                e.at.0,
                e.subscriber_id,
                e.terminal_id,
                e.kind,
                e.status.map(i64::from),
                e.reason,
                e.remote_addr
            ],
            |r| r.get(0),
        )
        .map_err(map_err)
    }

    fn audit_list(&mut self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        // One statement per filter shape, so each can use its index.
        let sql = match (&filter.subscriber_id, &filter.terminal_id) {
            (Some(_), Some(_)) => {
                "SELECT id, at, subscriber_id, terminal_id, kind, status, reason, remote_addr
                 FROM audit WHERE subscriber_id = ?1 AND terminal_id = ?2
                   AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
            }
            (Some(_), None) => {
                "SELECT id, at, subscriber_id, terminal_id, kind, status, reason, remote_addr
                 FROM audit WHERE subscriber_id = ?1
                   AND ?2 IS NULL AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
            }
            (None, Some(_)) => {
                "SELECT id, at, subscriber_id, terminal_id, kind, status, reason, remote_addr
                 FROM audit WHERE terminal_id = ?2
                   AND ?1 IS NULL AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
            }
            (None, None) => {
                "SELECT id, at, subscriber_id, terminal_id, kind, status, reason, remote_addr
                 FROM audit WHERE ?1 IS NULL AND ?2 IS NULL
                   AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
            }
        };
        let mut stmt = self.conn.prepare_cached(sql).map_err(map_err)?;
        let rows = stmt
            .query_map(
                params![
                    filter.subscriber_id,
                    filter.terminal_id,
                    filter.before_id,
                    i64::from(filter.limit)
                ],
                audit_from_row,
            )
            .map_err(map_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
    }

    // ----- lockout --------------------------------------------------------------------------

    fn lockout_record_failure(
        &mut self,
        key: LockoutKey<'_>,
        now: Timestamp,
    ) -> Result<LockoutState, StoreError> {
        validate_id("lockout id", key.id())?;
        let next = lockout_next(self.lockout_get(key)?, now);
        self.exec(
            "INSERT INTO lockout (kind, id, failures, last_failure_at, locked_until)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (kind, id) DO UPDATE SET failures = excluded.failures,
                 last_failure_at = excluded.last_failure_at,
                 locked_until = excluded.locked_until",
            params![
                key.kind(),
                key.id(),
                i64::from(next.failures),
                next.last_failure_at.0,
                next.locked_until.map(|t| t.0)
            ],
        )?;
        Ok(next)
    }

    fn lockout_reset(&mut self, key: LockoutKey<'_>) -> Result<bool, StoreError> {
        let n = self.exec(
            "DELETE FROM lockout WHERE kind = ?1 AND id = ?2",
            params![key.kind(), key.id()],
        )?;
        Ok(n > 0)
    }

    fn lockout_get(&mut self, key: LockoutKey<'_>) -> Result<Option<LockoutState>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT failures, last_failure_at, locked_until FROM lockout
                 WHERE kind = ?1 AND id = ?2",
            )
            .map_err(map_err)?;
        stmt.query_row(params![key.kind(), key.id()], lockout_from_row)
            .optional()
            .map_err(map_err)
    }
}

/// Commands of a pending package 4 stored per chunk row: at most this many, and at most
/// [`PENDING_CHUNK_BYTES`] of their data (a command above it has a row of its own), so
/// that a message reads and rewrites about what it sends: the chunks of a large object
/// are as big as a message each.
const PENDING_CHUNK: usize = 64;
/// See [`PENDING_CHUNK`].
const PENDING_CHUNK_BYTES: usize = 16 * 1024;

/// `sorted` cut into runs for chunk rows: at most [`PENDING_CHUNK`] commands and, unless
/// one command alone is bigger, [`PENDING_CHUNK_BYTES`] of data each.
fn pending_chunks<'a, 'c>(
    mut rest: &'a [&'c PendingCommand],
) -> impl Iterator<Item = &'a [&'c PendingCommand]> {
    std::iter::from_fn(move || {
        let mut bytes = 0usize;
        let n = rest
            .iter()
            .take(PENDING_CHUNK)
            .take_while(|c| {
                bytes = bytes.saturating_add(c.data.len());
                bytes <= PENDING_CHUNK_BYTES
            })
            .count()
            .max(1)
            .min(rest.len());
        if n == 0 {
            return None;
        }
        let (run, after) = rest.split_at(n);
        rest = after;
        Some(run)
    })
}

/// The form of a chunk of pending commands (migration 6 writes the same from SQL): per
/// command, big-endian `seq` and `size` (8 bytes each), then `revision`, `datastore` and
/// `guid` each behind a presence byte (0 or 1; a revision 8 bytes, a string a 4-byte
/// length and its UTF-8), then `data` behind a 4-byte length.
mod pending_chunk {
    use crate::binform::{put_bytes, Malformed, Reader};
    use crate::store::{PendingCommand, StoreError};

    pub(super) fn encode<'a>(
        commands: impl Iterator<Item = &'a PendingCommand>,
    ) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        for c in commands {
            out.extend_from_slice(&c.seq.to_be_bytes());
            out.extend_from_slice(&c.size.to_be_bytes());
            match c.revision {
                Some(r) => {
                    out.push(1);
                    out.extend_from_slice(&r.to_be_bytes());
                }
                None => out.push(0),
            }
            for s in [&c.datastore, &c.guid] {
                match s {
                    Some(s) => {
                        out.push(1);
                        put_bytes(&mut out, s.as_bytes()).map_err(invalid)?;
                    }
                    None => out.push(0),
                }
            }
            put_bytes(&mut out, &c.data).map_err(invalid)?;
        }
        Ok(out)
    }

    pub(super) fn decode(b: &[u8]) -> Result<Vec<PendingCommand>, StoreError> {
        let mut r = Reader(b);
        let mut out = Vec::new();
        while !r.is_empty() {
            out.push(command(&mut r).map_err(corrupt)?);
        }
        Ok(out)
    }

    fn command(r: &mut Reader<'_>) -> Result<PendingCommand, Malformed> {
        let seq = r.i64()?;
        let size = r.i64()?;
        let revision = if r.flag()? { Some(r.i64()?) } else { None };
        let datastore = if r.flag()? { Some(r.string()?) } else { None };
        let guid = if r.flag()? { Some(r.string()?) } else { None };
        let data = r.bytes()?.to_vec();
        Ok(PendingCommand {
            seq,
            size,
            datastore,
            guid,
            revision,
            data,
        })
    }

    fn corrupt(e: Malformed) -> StoreError {
        StoreError::Corrupt(format!("a chunk of pending commands: {e}"))
    }

    fn invalid(e: Malformed) -> StoreError {
        StoreError::InvalidInput(format!("a pending command: {e}"))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn command(seq: i64, by_reference: bool) -> PendingCommand {
            PendingCommand {
                seq,
                size: 300 + seq,
                datastore: by_reference.then(|| "contacts".into()),
                guid: by_reference.then(|| format!("g\u{e9}{seq}")),
                revision: by_reference.then_some(seq * 3),
                data: if by_reference {
                    Vec::new()
                } else {
                    vec![seq as u8; 40]
                },
            }
        }

        #[test]
        fn a_chunk_of_pending_commands_reads_back_as_written() {
            let commands: Vec<_> = (0..64).map(|s| command(s, s % 3 != 0)).collect();
            let bytes = encode(commands.iter()).unwrap();
            assert_eq!(decode(&bytes).unwrap(), commands);
            assert_eq!(decode(&[]).unwrap(), vec![]);
        }

        #[test]
        fn a_truncated_or_malformed_chunk_is_corrupt_not_a_panic() {
            let bytes = encode([command(1, true), command(2, false)].iter()).unwrap();
            let first = encode([command(1, true)].iter()).unwrap().len();
            for cut in (1..bytes.len()).filter(|&c| c != first) {
                assert!(
                    matches!(decode(&bytes[..cut]), Err(StoreError::Corrupt(_))),
                    "cut at {cut}"
                );
            }
            let mut bad = bytes.clone();
            bad[16] = 7; // the revision's presence byte
            assert!(matches!(decode(&bad), Err(StoreError::Corrupt(_))));
        }
    }
}

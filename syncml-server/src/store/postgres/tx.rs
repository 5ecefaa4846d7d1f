//! [`Tx`] over one open PostgreSQL transaction.
//!
//! Every statement goes through the pooled connection's statement cache (`prepare_cached`), and
//! every per-subscriber statement carries the subscriber id in its `WHERE` clause or takes it
//! from a row it found under that id (`INSERT ... SELECT ... FROM terminal WHERE subscriber_id =
//! $1 ...`). Expected failures are answered without an SQL error (see the module documentation
//! of [`super`]), so the transaction stays usable after them, as on SQLite.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use deadpool_postgres::ClientWrapper;
use tokio::runtime::Handle;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Error as PgError, Row, Statement};

use super::{is_retryable, map_pg_err};
use crate::store::types::{lockout_next, validate_id};
use crate::store::{
    AuditEvent, AuditFilter, AuditRecord, Change, ChangeKind, DatastoreInfo, DatastoreKey,
    DeliveredItem, Item, ItemSize, ItemStats, LockoutKey, LockoutState, MapEntry, NewItem,
    NewSubscriber, NewTerminal, PendingCommand, PutResult, RegisteredBy, Secret, SessionRecord,
    StoreError, Subscriber, SyncKey, SyncState, Terminal, Timestamp, Tx, MAX_SECURITY_LEVEL,
};

type Param<'p> = &'p (dyn ToSql + Sync);

/// The first SQL error of a transaction: PostgreSQL has aborted the transaction, so every later
/// call answers with it and the transaction is rolled back (or run again when retryable).
pub(super) struct Failure {
    pub(super) retryable: bool,
    pub(super) error: StoreError,
}

pub(super) struct PgTx<'a> {
    rt: &'a Handle,
    client: &'a ClientWrapper,
    failure: Option<Failure>,
}

impl<'a> PgTx<'a> {
    pub(super) fn new(rt: &'a Handle, client: &'a ClientWrapper) -> Self {
        PgTx {
            rt,
            client,
            failure: None,
        }
    }

    /// The first SQL error the transaction hit, if any.
    pub(super) fn into_failure(self) -> Option<Failure> {
        self.failure
    }

    /// Drives `fut` to completion on the store's runtime; records the first SQL error.
    fn block<T>(&mut self, fut: impl Future<Output = Result<T, PgError>>) -> Result<T, StoreError> {
        if let Some(f) = &self.failure {
            return Err(replay(&f.error));
        }
        match self.rt.block_on(fut) {
            Ok(v) => Ok(v),
            Err(e) => {
                let error = map_pg_err(&e);
                self.failure = Some(Failure {
                    retryable: is_retryable(&e),
                    error: replay(&error),
                });
                Err(error)
            }
        }
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let c = self.client;
        self.block(async move {
            let st = c.prepare_cached(sql).await?;
            c.query(&st, params).await
        })
    }

    fn query_opt(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, StoreError> {
        let c = self.client;
        self.block(async move {
            let st = c.prepare_cached(sql).await?;
            c.query_opt(&st, params).await
        })
    }

    fn query_one(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Row, StoreError> {
        let c = self.client;
        self.block(async move {
            let st = c.prepare_cached(sql).await?;
            c.query_one(&st, params).await
        })
    }

    /// Runs a statement that changes rows; returns the number changed.
    fn exec(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let c = self.client;
        self.block(async move {
            let st = c.prepare_cached(sql).await?;
            c.execute(&st, params).await
        })
    }

    /// Runs a statement that must change at least one row of `what`.
    fn exec_one(&mut self, what: &str, sql: &str, params: &[Param<'_>]) -> Result<(), StoreError> {
        match self.exec(sql, params)? {
            0 => Err(StoreError::NotFound(what.to_string())),
            _ => Ok(()),
        }
    }

    /// Runs the statements in order, pipelined: every request is sent before the first answer
    /// is awaited, so N statements cost about one round trip. Returns the row counts. The
    /// server executes them in the order given; the first error ends the batch.
    fn pipeline(&mut self, ops: &[(&str, Vec<Param<'_>>)]) -> Result<Vec<u64>, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.client;
        self.block(async move {
            let mut statements: Vec<(&str, Statement)> = Vec::new();
            for (sql, _) in ops {
                if !statements.iter().any(|(s, _)| s == sql) {
                    statements.push((sql, c.prepare_cached(sql).await?));
                }
            }
            let mut futs = Vec::with_capacity(ops.len());
            for (sql, params) in ops {
                let st = statements
                    .iter()
                    .find(|(s, _)| s == sql)
                    .map(|(_, st)| st)
                    .expect("every statement of the batch was prepared above");
                futs.push(Box::pin(c.execute(st, params.as_slice())));
            }
            in_order(futs).await
        })
    }

    fn terminal_exists(&mut self, subscriber: &str, terminal: &str) -> Result<bool, StoreError> {
        Ok(self
            .query_opt(
                "SELECT 1 FROM terminal WHERE subscriber_id = $1 AND terminal_id = $2",
                &[&subscriber, &terminal],
            )?
            .is_some())
    }

    fn terminals(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Terminal>, StoreError> {
        self.query(sql, params)?
            .iter()
            .map(terminal_from_row)
            .collect()
    }

    /// Reserves `revisions` revisions and `guids` GUID numbers of a datastore (creating it):
    /// `UPDATE ... RETURNING` takes the datastore row's lock until commit, so concurrent
    /// writers of one datastore, on any node, queue behind it. Returns the first reserved
    /// revision and the first reserved GUID number; [`StoreError::NotFound`] if the subscriber
    /// does not exist.
    fn reserve(
        &mut self,
        ds: DatastoreKey<'_>,
        revisions: i64,
        guids: i64,
    ) -> Result<(i64, i64), StoreError> {
        let params: [Param<'_>; 4] = [&ds.subscriber, &ds.datastore, &revisions, &guids];
        let mut row = self.query_opt(
            "UPDATE datastore SET revision = revision + $3, guid_seq = guid_seq + $4
             WHERE subscriber_id = $1 AND name = $2
             RETURNING revision, guid_seq",
            &params,
        )?;
        if row.is_none() {
            // First write to this datastore. ON CONFLICT covers a concurrent first write
            // (at REPEATABLE READ it becomes a serialization failure and a re-run).
            row = self.query_opt(
                "INSERT INTO datastore (subscriber_id, name, revision, guid_seq)
                 SELECT s.id, $2::text, $3::bigint, $4::bigint FROM subscriber s
                 WHERE s.id = $1::text
                 ON CONFLICT (subscriber_id, name) DO UPDATE
                   SET revision = datastore.revision + excluded.revision,
                       guid_seq = datastore.guid_seq + excluded.guid_seq
                 RETURNING revision, guid_seq",
                &params,
            )?;
        }
        let row =
            row.ok_or_else(|| StoreError::NotFound(format!("subscriber {}", ds.subscriber)))?;
        let last_rev: i64 = col(&row, 0)?;
        let last_guid: i64 = col(&row, 1)?;
        Ok((last_rev - revisions + 1, last_guid - guids + 1))
    }

    fn items(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Item>, StoreError> {
        self.query(sql, params)?.iter().map(item_from_row).collect()
    }
}

/// Awaits the futures in order after polling each once in order (which sends its request).
async fn in_order<F>(mut futs: Vec<Pin<Box<F>>>) -> Result<Vec<u64>, PgError>
where
    F: Future<Output = Result<u64, PgError>>,
{
    let mut early: Vec<Option<Result<u64, PgError>>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (f, slot) in futs.iter_mut().zip(early.iter_mut()) {
            if let Poll::Ready(r) = f.as_mut().poll(cx) {
                *slot = Some(r);
            }
        }
        Poll::Ready(())
    })
    .await;
    let mut out = Vec::with_capacity(futs.len());
    for (f, slot) in futs.iter_mut().zip(early) {
        let r = match slot {
            Some(r) => r,
            None => f.await,
        };
        out.push(r?);
    }
    Ok(out)
}

/// A copy of an error (for answering again with the first error of an aborted transaction).
fn replay(e: &StoreError) -> StoreError {
    match e {
        StoreError::NotFound(s) => StoreError::NotFound(s.clone()),
        StoreError::AlreadyExists(s) => StoreError::AlreadyExists(s.clone()),
        StoreError::Conflict(s) => StoreError::Conflict(s.clone()),
        StoreError::InvalidInput(s) => StoreError::InvalidInput(s.clone()),
        StoreError::Busy(s) => StoreError::Busy(s.clone()),
        StoreError::Corrupt(s) => StoreError::Corrupt(s.clone()),
        StoreError::Schema(s) => StoreError::Schema(s.clone()),
        StoreError::Aborted => StoreError::Aborted,
        StoreError::Backend(s) => StoreError::Backend(s.clone()),
    }
}

/// Reads column `idx`; a type mismatch means the database holds something this build did not
/// write.
fn col<'r, T: FromSql<'r>>(row: &'r Row, idx: usize) -> Result<T, StoreError> {
    row.try_get(idx)
        .map_err(|e| StoreError::Corrupt(format!("column {idx}: {e}")))
}

/// Whether any of these lookup keys contains NUL. PostgreSQL text cannot hold it, so no stored
/// row can match; answering "absent" up front keeps the transaction usable (sending it would be
/// an SQL error that aborts the transaction), the same answer SQLite gives.
fn nul(keys: &[&str]) -> bool {
    keys.iter().any(|k| k.contains('\0'))
}

/// Refuses text PostgreSQL cannot store (NUL characters).
fn check_text(what: &str, value: &str) -> Result<(), StoreError> {
    if value.contains('\0') {
        return Err(StoreError::InvalidInput(format!(
            "{what} contains a NUL character"
        )));
    }
    Ok(())
}

fn check_opt_text(what: &str, value: Option<&str>) -> Result<(), StoreError> {
    value.map_or(Ok(()), |v| check_text(what, v))
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

fn count_to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative count {v}")))
}

fn small<T: TryFrom<i32>>(v: i32, what: &str) -> Result<T, StoreError> {
    T::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} out of range")))
}

const SUBSCRIBER_COLUMNS: &str =
    "id, display_name, security_level, pin_verifier, login_verifier, created_at";

fn subscriber_from_row(r: &Row) -> Result<Subscriber, StoreError> {
    Ok(Subscriber {
        id: col(r, 0)?,
        display_name: col(r, 1)?,
        security_level: small(col(r, 2)?, "security level")?,
        pin_verifier: col::<Option<String>>(r, 3)?.map(Secret::new),
        login_verifier: col::<Option<String>>(r, 4)?.map(Secret::new),
        created_at: Timestamp(col(r, 5)?),
    })
}

/// Terminal columns plus its classes, sorted, as one array column: one round trip.
const TERMINAL_SELECT: &str = "SELECT t.terminal_id, t.subscriber_id, t.md5_verifier, \
     t.basic_verifier, t.registered_by, t.registered_at, t.revoked, t.last_session_at, \
     t.next_nonce, ARRAY(SELECT c.datastore FROM terminal_class c \
                        WHERE c.terminal_id = t.terminal_id ORDER BY c.datastore) \
     FROM terminal t";

fn terminal_from_row(r: &Row) -> Result<Terminal, StoreError> {
    let by: String = col(r, 4)?;
    let registered_by = RegisteredBy::parse(&by)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown registered_by {by:?}")))?;
    Ok(Terminal {
        terminal_id: col(r, 0)?,
        subscriber_id: col(r, 1)?,
        md5_verifier: col::<Option<String>>(r, 2)?.map(Secret::new),
        basic_verifier: col::<Option<String>>(r, 3)?.map(Secret::new),
        classes: col(r, 9)?,
        registered_by,
        registered_at: Timestamp(col(r, 5)?),
        revoked: col(r, 6)?,
        last_session_at: col::<Option<i64>>(r, 7)?.map(Timestamp),
        next_nonce: col(r, 8)?,
    })
}

const ITEM_COLUMNS: &str =
    "guid, content_type, data, revision, origin_terminal, deleted, updated_at";

fn item_from_row(r: &Row) -> Result<Item, StoreError> {
    Ok(Item {
        guid: col(r, 0)?,
        content_type: col(r, 1)?,
        data: col(r, 2)?,
        revision: col(r, 3)?,
        origin_terminal: col(r, 4)?,
        deleted: col(r, 5)?,
        updated_at: Timestamp(col(r, 6)?),
    })
}

fn sync_state_from_row(r: &Row, base: usize) -> Result<SyncState, StoreError> {
    Ok(SyncState {
        client_anchor: col(r, base)?,
        server_anchor: col(r, base + 1)?,
        acked_revision: col(r, base + 2)?,
        last_sync_type: col::<Option<i32>>(r, base + 3)?
            .map(|v| small(v, "sync type"))
            .transpose()?,
        updated_at: Timestamp(col(r, base + 4)?),
    })
}

const SESSION_COLUMNS: &str = "key, subscriber_id, terminal_id, state, created_at, expires_at";

fn session_from_row(r: &Row) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        key: col(r, 0)?,
        subscriber_id: col(r, 1)?,
        terminal_id: col(r, 2)?,
        state: col(r, 3)?,
        created_at: Timestamp(col(r, 4)?),
        expires_at: Timestamp(col(r, 5)?),
    })
}

const AUDIT_COLUMNS: &str = "id, at, subscriber_id, terminal_id, kind, status, reason, remote_addr";

fn audit_from_row(r: &Row) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        id: col(r, 0)?,
        event: AuditEvent {
            at: Timestamp(col(r, 1)?),
            subscriber_id: col(r, 2)?,
            terminal_id: col(r, 3)?,
            kind: col(r, 4)?,
            status: col::<Option<i32>>(r, 5)?
                .map(|v| small(v, "status"))
                .transpose()?,
            reason: col(r, 6)?,
            remote_addr: col(r, 7)?,
        },
    })
}

fn lockout_from_row(r: &Row) -> Result<LockoutState, StoreError> {
    Ok(LockoutState {
        failures: small(col(r, 0)?, "failure count")?,
        last_failure_at: Timestamp(col(r, 1)?),
        locked_until: col::<Option<i64>>(r, 2)?.map(Timestamp),
    })
}

// Batch writes are set-based: one statement per kind of write whatever the batch size, the
// per-row values passed as parallel arrays and expanded with `unnest`.

/// New items: $3 GUIDs, $4 content types, $5 bodies, $6 revisions.
const INSERT_ITEMS: &str = "INSERT INTO item (subscriber_id, datastore, guid, content_type, data,
                                  revision, origin_terminal, deleted, updated_at)
     SELECT $1::text, $2::text, u.guid, u.content_type, u.data, u.revision, $7::text, FALSE,
            $8::bigint
     FROM unnest($3::text[], $4::text[], $5::bytea[], $6::bigint[])
          AS u(guid, content_type, data, revision)";

/// Copies the current versions of the items with GUIDs in $3 into the history.
const ARCHIVE_ITEMS: &str = "INSERT INTO item_history (subscriber_id, datastore, guid, revision,
                          content_type, data, origin_terminal, deleted, updated_at)
     SELECT subscriber_id, datastore, guid, revision, content_type, data, origin_terminal,
            deleted, updated_at
     FROM item WHERE subscriber_id = $1 AND datastore = $2 AND guid = ANY($3::text[])";

/// Replaces items (distinct GUIDs): $3 GUIDs, $4 content types, $5 bodies, $6 revisions.
const UPDATE_ITEMS: &str = "UPDATE item SET content_type = u.content_type, data = u.data,
                    revision = u.revision, origin_terminal = $7::text, deleted = FALSE,
                    updated_at = $8::bigint
     FROM unnest($3::text[], $4::text[], $5::bytea[], $6::bigint[])
          AS u(guid, content_type, data, revision)
     WHERE item.subscriber_id = $1 AND item.datastore = $2 AND item.guid = u.guid";

/// Tombstones (distinct GUIDs): $3 GUIDs, $4 revisions.
const TOMBSTONE_ITEMS: &str = "UPDATE item SET data = ''::bytea, revision = u.revision,
                    origin_terminal = $5::text, deleted = TRUE, updated_at = $6::bigint
     FROM unnest($3::text[], $4::bigint[]) AS u(guid, revision)
     WHERE item.subscriber_id = $1 AND item.datastore = $2 AND item.guid = u.guid";

/// Parallel arrays of one kind of item write, for the set-based statements.
#[derive(Default)]
struct Columns<'a> {
    guids: Vec<&'a String>,
    types: Vec<&'a String>,
    data: Vec<&'a Vec<u8>>,
    revisions: Vec<i64>,
}

impl<'a> Columns<'a> {
    /// Parameters of [`INSERT_ITEMS`] / [`UPDATE_ITEMS`].
    fn params<'p>(
        &'p self,
        ds: &'p DatastoreKey<'_>,
        origin: &'p Option<&str>,
        now: &'p i64,
    ) -> Vec<Param<'p>> {
        vec![
            &ds.subscriber,
            &ds.datastore,
            &self.guids,
            &self.types,
            &self.data,
            &self.revisions,
            origin,
            now,
        ]
    }
}

impl Tx for PgTx<'_> {
    // ----- subscribers ----------------------------------------------------------------------

    fn subscriber_create(
        &mut self,
        new: &NewSubscriber,
        now: Timestamp,
    ) -> Result<Subscriber, StoreError> {
        validate_id("subscriber id", &new.id)?;
        check_level(new.security_level)?;
        check_opt_text("display name", new.display_name.as_deref())?;
        let n = self.exec(
            "INSERT INTO subscriber (id, display_name, security_level, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
            &[
                &new.id,
                &new.display_name,
                &i32::from(new.security_level),
                &now.0,
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
        if nul(&[id]) {
            return Ok(None);
        }
        self.query_opt(
            &format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscriber WHERE id = $1"),
            &[&id],
        )?
        .as_ref()
        .map(subscriber_from_row)
        .transpose()
    }

    fn subscriber_list(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Subscriber>, StoreError> {
        let limit = i64::from(limit);
        let rows = match after {
            Some(after) => {
                // No stored id contains NUL, so "after `abc\0…`" is exactly "after `abc`".
                let after = after.split('\0').next().unwrap_or_default();
                self.query(
                    &format!(
                        "SELECT {SUBSCRIBER_COLUMNS} FROM subscriber
                         WHERE id > $1 ORDER BY id LIMIT $2"
                    ),
                    &[&after, &limit],
                )?
            }
            None => self.query(
                &format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscriber ORDER BY id LIMIT $1"),
                &[&limit],
            )?,
        };
        rows.iter().map(subscriber_from_row).collect()
    }

    fn subscriber_set_pin_verifier(
        &mut self,
        id: &str,
        verifier: Option<&Secret>,
    ) -> Result<(), StoreError> {
        let verifier = verifier.map(Secret::expose);
        check_opt_text("PIN verifier", verifier)?;
        if nul(&[id]) {
            return Err(StoreError::NotFound("subscriber".into()));
        }
        self.exec_one(
            "subscriber",
            "UPDATE subscriber SET pin_verifier = $2 WHERE id = $1",
            &[&id, &verifier],
        )
    }

    fn subscriber_set_login_verifier(
        &mut self,
        id: &str,
        verifier: Option<&Secret>,
    ) -> Result<(), StoreError> {
        let verifier = verifier.map(Secret::expose);
        check_opt_text("login verifier", verifier)?;
        if nul(&[id]) {
            return Err(StoreError::NotFound("subscriber".into()));
        }
        self.exec_one(
            "subscriber",
            "UPDATE subscriber SET login_verifier = $2 WHERE id = $1",
            &[&id, &verifier],
        )
    }

    fn subscriber_set_security_level(&mut self, id: &str, level: u8) -> Result<(), StoreError> {
        check_level(level)?;
        if nul(&[id]) {
            return Err(StoreError::NotFound("subscriber".into()));
        }
        self.exec_one(
            "subscriber",
            "UPDATE subscriber SET security_level = $2 WHERE id = $1",
            &[&id, &i32::from(level)],
        )
    }

    fn subscriber_delete(&mut self, id: &str) -> Result<(), StoreError> {
        if nul(&[id]) {
            return Err(StoreError::NotFound("subscriber".into()));
        }
        self.exec_one("subscriber", "DELETE FROM subscriber WHERE id = $1", &[&id])
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
        let md5 = new.md5_verifier.as_ref().map(Secret::expose);
        let basic = new.basic_verifier.as_ref().map(Secret::expose);
        check_opt_text("md5 verifier", md5)?;
        check_opt_text("basic verifier", basic)?;
        if self
            .query_opt(
                "SELECT 1 FROM subscriber WHERE id = $1",
                &[&new.subscriber_id],
            )?
            .is_none()
        {
            return Err(StoreError::NotFound(format!(
                "subscriber {}",
                new.subscriber_id
            )));
        }
        let n = self.exec(
            "INSERT INTO terminal (terminal_id, subscriber_id, md5_verifier, basic_verifier,
                                   registered_by, registered_at, revoked)
             VALUES ($1, $2, $3, $4, $5, $6, FALSE) ON CONFLICT (terminal_id) DO NOTHING",
            &[
                &new.terminal_id,
                &new.subscriber_id,
                &md5,
                &basic,
                &new.registered_by.as_str(),
                &now.0,
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
        if nul(&[subscriber, terminal]) {
            return Ok(None);
        }
        Ok(self
            .terminals(
                &format!("{TERMINAL_SELECT} WHERE t.subscriber_id = $1 AND t.terminal_id = $2"),
                &[&subscriber, &terminal],
            )?
            .pop())
    }

    fn terminal_find(&mut self, terminal: &str) -> Result<Option<Terminal>, StoreError> {
        if nul(&[terminal]) {
            return Ok(None);
        }
        Ok(self
            .terminals(
                &format!("{TERMINAL_SELECT} WHERE t.terminal_id = $1"),
                &[&terminal],
            )?
            .pop())
    }

    fn terminal_list(&mut self, subscriber: &str) -> Result<Vec<Terminal>, StoreError> {
        if nul(&[subscriber]) {
            return Ok(Vec::new());
        }
        self.terminals(
            &format!("{TERMINAL_SELECT} WHERE t.subscriber_id = $1 ORDER BY t.terminal_id"),
            &[&subscriber],
        )
    }

    fn terminal_set_verifiers(
        &mut self,
        subscriber: &str,
        terminal: &str,
        md5: Option<&Secret>,
        basic: Option<&Secret>,
    ) -> Result<(), StoreError> {
        let md5 = md5.map(Secret::expose);
        let basic = basic.map(Secret::expose);
        check_opt_text("md5 verifier", md5)?;
        check_opt_text("basic verifier", basic)?;
        if nul(&[subscriber, terminal]) {
            return Err(StoreError::NotFound("terminal".into()));
        }
        self.exec_one(
            "terminal",
            "UPDATE terminal SET md5_verifier = $3, basic_verifier = $4
             WHERE subscriber_id = $1 AND terminal_id = $2",
            &[&subscriber, &terminal, &md5, &basic],
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
        if nul(&[subscriber, terminal]) || !self.terminal_exists(subscriber, terminal)? {
            return Err(StoreError::NotFound("terminal".into()));
        }
        self.pipeline(&[
            (
                "DELETE FROM terminal_class c USING terminal t
                 WHERE c.terminal_id = t.terminal_id
                   AND t.subscriber_id = $1 AND t.terminal_id = $2",
                vec![&subscriber, &terminal],
            ),
            (
                "INSERT INTO terminal_class (terminal_id, datastore)
                 SELECT t.terminal_id, c.name FROM terminal t, unnest($3::text[]) AS c(name)
                 WHERE t.subscriber_id = $1 AND t.terminal_id = $2
                 ON CONFLICT DO NOTHING",
                vec![&subscriber, &terminal, &classes],
            ),
        ])?;
        Ok(())
    }

    fn terminal_set_devinf(
        &mut self,
        subscriber: &str,
        terminal: &str,
        devinf: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        if nul(&[subscriber, terminal]) {
            return Err(StoreError::NotFound("terminal".into()));
        }
        self.exec_one(
            "terminal",
            "UPDATE terminal SET devinf = $3 WHERE subscriber_id = $1 AND terminal_id = $2",
            &[&subscriber, &terminal, &devinf],
        )
    }

    fn terminal_devinf(
        &mut self,
        subscriber: &str,
        terminal: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if nul(&[subscriber, terminal]) {
            return Ok(None);
        }
        let row = self.query_opt(
            "SELECT devinf FROM terminal WHERE subscriber_id = $1 AND terminal_id = $2",
            &[&subscriber, &terminal],
        )?;
        Ok(row
            .as_ref()
            .map(|r| col::<Option<Vec<u8>>>(r, 0))
            .transpose()?
            .flatten())
    }

    fn terminal_set_nonce(
        &mut self,
        subscriber: &str,
        terminal: &str,
        nonce: Option<&str>,
    ) -> Result<(), StoreError> {
        check_opt_text("nonce", nonce)?;
        if nul(&[subscriber, terminal]) {
            return Err(StoreError::NotFound("terminal".into()));
        }
        self.exec_one(
            "terminal",
            "UPDATE terminal SET next_nonce = $3 WHERE subscriber_id = $1 AND terminal_id = $2",
            &[&subscriber, &terminal, &nonce],
        )
    }

    fn terminal_touch_last_session(
        &mut self,
        subscriber: &str,
        terminal: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if nul(&[subscriber, terminal]) {
            return Err(StoreError::NotFound("terminal".into()));
        }
        self.exec_one(
            "terminal",
            "UPDATE terminal SET last_session_at = $3
             WHERE subscriber_id = $1 AND terminal_id = $2",
            &[&subscriber, &terminal, &now.0],
        )
    }

    fn terminal_set_revoked(
        &mut self,
        subscriber: &str,
        terminal: &str,
        revoked: bool,
    ) -> Result<(), StoreError> {
        if nul(&[subscriber, terminal]) {
            return Err(StoreError::NotFound("terminal".into()));
        }
        self.exec_one(
            "terminal",
            "UPDATE terminal SET revoked = $3 WHERE subscriber_id = $1 AND terminal_id = $2",
            &[&subscriber, &terminal, &revoked],
        )
    }

    fn terminal_remove(&mut self, subscriber: &str, terminal: &str) -> Result<(), StoreError> {
        if nul(&[subscriber, terminal]) {
            return Err(StoreError::NotFound("terminal".into()));
        }
        self.exec_one(
            "terminal",
            "DELETE FROM terminal WHERE subscriber_id = $1 AND terminal_id = $2",
            &[&subscriber, &terminal],
        )
    }

    // ----- items ----------------------------------------------------------------------------

    fn item_get(&mut self, ds: DatastoreKey<'_>, guid: &str) -> Result<Option<Item>, StoreError> {
        if nul(&[ds.subscriber, ds.datastore, guid]) {
            return Ok(None);
        }
        self.query_opt(
            &format!(
                "SELECT {ITEM_COLUMNS} FROM item
                 WHERE subscriber_id = $1 AND datastore = $2 AND guid = $3"
            ),
            &[&ds.subscriber, &ds.datastore, &guid],
        )?
        .as_ref()
        .map(item_from_row)
        .transpose()
    }

    fn items_get(
        &mut self,
        ds: DatastoreKey<'_>,
        guids: &[String],
    ) -> Result<Vec<Item>, StoreError> {
        let guids: Vec<&str> = guids
            .iter()
            .map(String::as_str)
            .filter(|g| !nul(&[g]))
            .collect();
        if guids.is_empty() || nul(&[ds.subscriber, ds.datastore]) {
            return Ok(Vec::new());
        }
        self.query(
            &format!(
                "SELECT {ITEM_COLUMNS} FROM item
                 WHERE subscriber_id = $1 AND datastore = $2 AND guid = ANY($3::text[])"
            ),
            &[&ds.subscriber, &ds.datastore, &guids],
        )?
        .iter()
        .map(item_from_row)
        .collect()
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
        check_opt_text("origin terminal", origin)?;
        let mut replaced: Vec<&str> = Vec::new();
        for item in items {
            check_text("content type", &item.content_type)?;
            if let Some(guid) = &item.guid {
                validate_id("guid", guid)?;
                replaced.push(guid);
            }
        }
        // Every replaced item must exist; checked before anything is written.
        if !replaced.is_empty() {
            let found: HashSet<String> = self
                .query(
                    "SELECT guid FROM item
                     WHERE subscriber_id = $1 AND datastore = $2 AND guid = ANY($3)",
                    &[&ds.subscriber, &ds.datastore, &replaced],
                )?
                .iter()
                .map(|r| col::<String>(r, 0))
                .collect::<Result<_, _>>()?;
            if let Some(missing) = replaced.iter().find(|g| !found.contains(**g)) {
                return Err(StoreError::NotFound(format!("item {missing}")));
            }
        }
        let new_count = to_i64(items.len() - replaced.len())?;
        let (first_rev, first_guid) = self.reserve(ds, to_i64(items.len())?, new_count)?;

        let revisions: Vec<i64> = (first_rev..).take(items.len()).collect();
        let mut next_guid = first_guid;
        let guids: Vec<String> = items
            .iter()
            .map(|item| match &item.guid {
                Some(guid) => guid.clone(),
                None => {
                    next_guid += 1;
                    (next_guid - 1).to_string()
                }
            })
            .collect();
        // Split the batch into new items and replacements, each as parallel arrays.
        let mut new = Columns::default();
        let mut rep = Columns::default();
        for ((item, guid), revision) in items.iter().zip(&guids).zip(&revisions) {
            let cols = if item.guid.is_some() {
                &mut rep
            } else {
                &mut new
            };
            cols.guids.push(guid);
            cols.types.push(&item.content_type);
            cols.data.push(&item.data);
            cols.revisions.push(*revision);
        }
        // The same GUID more than once in the batch: each replacement must archive the one
        // before it, so those go one by one, in order (pipelined all the same).
        let singles: Vec<Columns<'_>> =
            if replaced.iter().collect::<HashSet<_>>().len() == replaced.len() {
                Vec::new()
            } else {
                (0..rep.guids.len())
                    .map(|i| Columns {
                        guids: vec![rep.guids[i]],
                        types: vec![rep.types[i]],
                        data: vec![rep.data[i]],
                        revisions: vec![rep.revisions[i]],
                    })
                    .collect()
            };
        // (statement, parameters, whether its row count counts as item writes)
        let mut ops: Vec<(&str, Vec<Param<'_>>)> = Vec::new();
        let mut counted: Vec<bool> = Vec::new();
        if !new.guids.is_empty() {
            ops.push((INSERT_ITEMS, new.params(&ds, &origin, &now.0)));
            counted.push(true);
        }
        let replacements = if singles.is_empty() {
            std::slice::from_ref(&rep)
        } else {
            singles.as_slice()
        };
        for cols in replacements.iter().filter(|c| !c.guids.is_empty()) {
            ops.push((
                ARCHIVE_ITEMS,
                vec![&ds.subscriber, &ds.datastore, &cols.guids],
            ));
            ops.push((UPDATE_ITEMS, cols.params(&ds, &origin, &now.0)));
            counted.extend([false, true]);
        }
        let counts = self.pipeline(&ops)?;
        let written: u64 = counts
            .iter()
            .zip(&counted)
            .filter(|(_, c)| **c)
            .map(|(n, _)| n)
            .sum();
        if written != items.len() as u64 {
            // Cannot happen after the existence check: the datastore row's lock (taken by
            // `reserve`) serialises writers, and one whose snapshot predates another's
            // commit fails there and runs again. Never let half a
            // batch commit, even if the caller ignores this error.
            let error = StoreError::Backend(format!(
                "{written} of {} item writes took effect",
                items.len()
            ));
            self.failure = Some(Failure {
                retryable: false,
                error: replay(&error),
            });
            return Err(error);
        }
        tracing::trace!(
            subscriber = ds.subscriber,
            datastore = ds.datastore,
            count = items.len(),
            last_revision = first_rev + to_i64(items.len())? - 1,
            "items put"
        );
        Ok(guids
            .into_iter()
            .zip(revisions)
            .map(|(guid, revision)| PutResult { guid, revision })
            .collect())
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
        if nul(&[ds.subscriber, ds.datastore]) {
            return Ok(vec![None; guids.len()]);
        }
        check_opt_text("origin terminal", origin)?;
        let lookup: Vec<&str> = guids
            .iter()
            .map(String::as_str)
            .filter(|g| !g.contains('\0'))
            .collect();
        // Decide first which GUIDs are live, so that only real deletes take a revision.
        let state: HashMap<String, bool> = self
            .query(
                "SELECT guid, deleted FROM item
                 WHERE subscriber_id = $1 AND datastore = $2 AND guid = ANY($3)",
                &[&ds.subscriber, &ds.datastore, &lookup],
            )?
            .iter()
            .map(|r| Ok((col::<String>(r, 0)?, col::<bool>(r, 1)?)))
            .collect::<Result<_, StoreError>>()?;
        let mut seen = HashSet::new();
        let live: Vec<bool> = guids
            .iter()
            .map(|g| state.get(g) == Some(&false) && seen.insert(g.as_str()))
            .collect();
        let count = to_i64(live.iter().filter(|l| **l).count())?;
        if count == 0 {
            return Ok(vec![None; guids.len()]);
        }
        let (first_rev, _) = self.reserve(ds, count, 0)?;
        let mut out = Vec::with_capacity(guids.len());
        let mut doomed: Vec<&str> = Vec::new();
        let mut revisions: Vec<i64> = Vec::new();
        let mut next = first_rev;
        for (guid, is_live) in guids.iter().zip(&live) {
            if *is_live {
                out.push(Some(next));
                doomed.push(guid);
                revisions.push(next);
                next += 1;
            } else {
                out.push(None);
            }
        }
        // The live GUIDs are distinct (repeats were not live the second time).
        self.pipeline(&[
            (ARCHIVE_ITEMS, vec![&ds.subscriber, &ds.datastore, &doomed]),
            (
                TOMBSTONE_ITEMS,
                vec![
                    &ds.subscriber,
                    &ds.datastore,
                    &doomed,
                    &revisions,
                    &origin,
                    &now.0,
                ],
            ),
        ])?;
        Ok(out)
    }

    fn items_list_live(&mut self, ds: DatastoreKey<'_>) -> Result<Vec<Item>, StoreError> {
        if nul(&[ds.subscriber, ds.datastore]) {
            return Ok(Vec::new());
        }
        self.items(
            &format!(
                "SELECT {ITEM_COLUMNS} FROM item
                 WHERE subscriber_id = $1 AND datastore = $2 AND NOT deleted ORDER BY revision"
            ),
            &[&ds.subscriber, &ds.datastore],
        )
    }

    fn items_list_live_sizes(&mut self, ds: DatastoreKey<'_>) -> Result<Vec<ItemSize>, StoreError> {
        if nul(&[ds.subscriber, ds.datastore]) {
            return Ok(Vec::new());
        }
        let rows = self.query(
            "SELECT guid, content_type, revision, octet_length(data)::bigint FROM item
             WHERE subscriber_id = $1 AND datastore = $2 AND NOT deleted ORDER BY revision",
            &[&ds.subscriber, &ds.datastore],
        )?;
        rows.iter()
            .map(|r| {
                Ok(ItemSize {
                    guid: col(r, 0)?,
                    content_type: col(r, 1)?,
                    revision: col(r, 2)?,
                    size: count_to_u64(col(r, 3)?)?,
                })
            })
            .collect()
    }

    fn items_stats(&mut self, ds: DatastoreKey<'_>) -> Result<ItemStats, StoreError> {
        if nul(&[ds.subscriber, ds.datastore]) {
            return Ok(ItemStats::default());
        }
        let row = self.query_one(
            "SELECT COUNT(*), COALESCE(SUM(octet_length(data)), 0)::bigint FROM item
             WHERE subscriber_id = $1 AND datastore = $2 AND NOT deleted",
            &[&ds.subscriber, &ds.datastore],
        )?;
        Ok(ItemStats {
            count: count_to_u64(col(&row, 0)?)?,
            total_bytes: count_to_u64(col(&row, 1)?)?,
        })
    }

    fn changes_since(
        &mut self,
        ds: DatastoreKey<'_>,
        after: i64,
        exclude_origin: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<Change>, StoreError> {
        if nul(&[ds.subscriber, ds.datastore]) {
            return Ok(Vec::new());
        }
        // No stored origin can contain NUL: excluding such a value excludes nothing.
        let exclude = exclude_origin.filter(|o| !o.contains('\0'));
        let limit = limit.map(i64::from);
        let rows = self.query(
            "SELECT guid, revision, deleted, content_type, data, origin_terminal FROM item
             WHERE subscriber_id = $1 AND datastore = $2 AND revision > $3
               AND ($4::text IS NULL OR origin_terminal IS DISTINCT FROM $4::text)
             ORDER BY revision LIMIT $5",
            &[&ds.subscriber, &ds.datastore, &after, &exclude, &limit],
        )?;
        rows.iter()
            .map(|r| {
                let deleted: bool = col(r, 2)?;
                Ok(Change {
                    guid: col(r, 0)?,
                    revision: col(r, 1)?,
                    kind: if deleted {
                        ChangeKind::Delete
                    } else {
                        ChangeKind::Upsert
                    },
                    content_type: col(r, 3)?,
                    data: col(r, 4)?,
                    origin_terminal: col(r, 5)?,
                })
            })
            .collect()
    }

    fn changes_count_since(
        &mut self,
        ds: DatastoreKey<'_>,
        after: i64,
        exclude_origin: Option<&str>,
    ) -> Result<u64, StoreError> {
        if nul(&[ds.subscriber, ds.datastore]) {
            return Ok(0);
        }
        let exclude = exclude_origin.filter(|o| !o.contains('\0'));
        let row = self.query_one(
            "SELECT COUNT(*) FROM item
             WHERE subscriber_id = $1 AND datastore = $2 AND revision > $3
               AND ($4::text IS NULL OR origin_terminal IS DISTINCT FROM $4::text)",
            &[&ds.subscriber, &ds.datastore, &after, &exclude],
        )?;
        count_to_u64(col(&row, 0)?)
    }

    fn datastore_revision(&mut self, ds: DatastoreKey<'_>) -> Result<i64, StoreError> {
        if nul(&[ds.subscriber, ds.datastore]) {
            return Ok(0);
        }
        let row = self.query_opt(
            "SELECT revision FROM datastore WHERE subscriber_id = $1 AND name = $2",
            &[&ds.subscriber, &ds.datastore],
        )?;
        Ok(row.as_ref().map(|r| col(r, 0)).transpose()?.unwrap_or(0))
    }

    fn datastores(&mut self, subscriber: &str) -> Result<Vec<DatastoreInfo>, StoreError> {
        if nul(&[subscriber]) {
            return Ok(Vec::new());
        }
        let rows = self.query(
            "SELECT d.name, d.revision, COUNT(i.guid),
                    COALESCE(SUM(octet_length(i.data)), 0)::bigint
             FROM datastore d
             LEFT JOIN item i ON i.subscriber_id = d.subscriber_id
                             AND i.datastore = d.name AND NOT i.deleted
             WHERE d.subscriber_id = $1
             GROUP BY d.name, d.revision ORDER BY d.name",
            &[&subscriber],
        )?;
        rows.iter()
            .map(|r| {
                Ok(DatastoreInfo {
                    name: col(r, 0)?,
                    revision: col(r, 1)?,
                    stats: ItemStats {
                        count: count_to_u64(col(r, 2)?)?,
                        total_bytes: count_to_u64(col(r, 3)?)?,
                    },
                })
            })
            .collect()
    }

    fn item_history(&mut self, ds: DatastoreKey<'_>, guid: &str) -> Result<Vec<Item>, StoreError> {
        if nul(&[ds.subscriber, ds.datastore, guid]) {
            return Ok(Vec::new());
        }
        self.items(
            &format!(
                "SELECT {ITEM_COLUMNS} FROM item_history
                 WHERE subscriber_id = $1 AND datastore = $2 AND guid = $3
                 ORDER BY revision DESC"
            ),
            &[&ds.subscriber, &ds.datastore, &guid],
        )
    }

    // ----- sync state -----------------------------------------------------------------------

    fn sync_state_get(&mut self, key: SyncKey<'_>) -> Result<Option<SyncState>, StoreError> {
        if nul(&[key.subscriber, key.terminal, key.datastore]) {
            return Ok(None);
        }
        self.query_opt(
            "SELECT client_anchor, server_anchor, acked_revision, last_sync_type, updated_at
             FROM sync_state
             WHERE subscriber_id = $1 AND terminal_id = $2 AND datastore = $3",
            &[&key.subscriber, &key.terminal, &key.datastore],
        )?
        .as_ref()
        .map(|r| sync_state_from_row(r, 0))
        .transpose()
    }

    fn sync_state_put(&mut self, key: SyncKey<'_>, state: &SyncState) -> Result<(), StoreError> {
        check_sync_key(key)?;
        check_opt_text("client anchor", state.client_anchor.as_deref())?;
        check_opt_text("server anchor", state.server_anchor.as_deref())?;
        let n = self.exec(
            "INSERT INTO sync_state (subscriber_id, terminal_id, datastore, client_anchor,
                                     server_anchor, acked_revision, last_sync_type, updated_at)
             SELECT t.subscriber_id, t.terminal_id, $3::text, $4::text, $5::text, $6::bigint,
                    $7::integer, $8::bigint
             FROM terminal t WHERE t.subscriber_id = $1 AND t.terminal_id = $2
             ON CONFLICT (subscriber_id, terminal_id, datastore) DO UPDATE SET
                 client_anchor = excluded.client_anchor,
                 server_anchor = excluded.server_anchor,
                 acked_revision = excluded.acked_revision,
                 last_sync_type = excluded.last_sync_type,
                 updated_at = excluded.updated_at",
            &[
                &key.subscriber,
                &key.terminal,
                &key.datastore,
                &state.client_anchor,
                &state.server_anchor,
                &state.acked_revision,
                &state.last_sync_type.map(i32::from),
                &state.updated_at.0,
            ],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "terminal {} of subscriber {}",
                key.terminal, key.subscriber
            )));
        }
        Ok(())
    }

    fn sync_state_delete(&mut self, key: SyncKey<'_>) -> Result<bool, StoreError> {
        if nul(&[key.subscriber, key.terminal, key.datastore]) {
            return Ok(false);
        }
        let n = self.exec(
            "DELETE FROM sync_state
             WHERE subscriber_id = $1 AND terminal_id = $2 AND datastore = $3",
            &[&key.subscriber, &key.terminal, &key.datastore],
        )?;
        Ok(n > 0)
    }

    fn sync_states_for_terminal(
        &mut self,
        subscriber: &str,
        terminal: &str,
    ) -> Result<Vec<(String, SyncState)>, StoreError> {
        if nul(&[subscriber, terminal]) {
            return Ok(Vec::new());
        }
        let rows = self.query(
            "SELECT datastore, client_anchor, server_anchor, acked_revision, last_sync_type,
                    updated_at
             FROM sync_state WHERE subscriber_id = $1 AND terminal_id = $2
             ORDER BY datastore",
            &[&subscriber, &terminal],
        )?;
        rows.iter()
            .map(|r| Ok((col::<String>(r, 0)?, sync_state_from_row(r, 1)?)))
            .collect()
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
        // The pairs of the batch that survive it: a later pair displaces an earlier one with
        // the same LUID or the same GUID, exactly as if they were written one by one.
        let mut by_luid: HashMap<&str, &str> = HashMap::new();
        let mut by_guid: HashMap<&str, &str> = HashMap::new();
        for e in entries {
            if let Some(old_guid) = by_luid.remove(e.luid.as_str()) {
                by_guid.remove(old_guid);
            }
            if let Some(old_luid) = by_guid.remove(e.guid.as_str()) {
                by_luid.remove(old_luid);
            }
            by_luid.insert(&e.luid, &e.guid);
            by_guid.insert(&e.guid, &e.luid);
        }
        let all_luids: Vec<&str> = entries.iter().map(|e| e.luid.as_str()).collect();
        let all_guids: Vec<&str> = entries.iter().map(|e| e.guid.as_str()).collect();
        let (luids, guids): (Vec<&str>, Vec<&str>) = by_luid.into_iter().unzip();
        // Every stored pair sharing a LUID or a GUID with the batch goes; then the survivors
        // are inserted, through the terminal row, so nothing is written for a terminal that is
        // not the subscriber's (the deletes cannot match anything then either).
        let counts = self.pipeline(&[
            (
                // One statement (a BitmapOr of the two indexes), not one per column.
                "DELETE FROM luid_map
                 WHERE subscriber_id = $1 AND terminal_id = $2 AND datastore = $3
                   AND (luid = ANY($4::text[]) OR guid = ANY($5::text[]))",
                vec![
                    &key.subscriber,
                    &key.terminal,
                    &key.datastore,
                    &all_luids,
                    &all_guids,
                ],
            ),
            (
                "INSERT INTO luid_map (subscriber_id, terminal_id, datastore, luid, guid)
                 SELECT t.subscriber_id, t.terminal_id, $3::text, u.luid, u.guid
                 FROM terminal t, unnest($4::text[], $5::text[]) AS u(luid, guid)
                 WHERE t.subscriber_id = $1 AND t.terminal_id = $2",
                vec![
                    &key.subscriber,
                    &key.terminal,
                    &key.datastore,
                    &luids,
                    &guids,
                ],
            ),
        ])?;
        if counts[1] == 0 {
            return Err(StoreError::NotFound(format!(
                "terminal {} of subscriber {}",
                key.terminal, key.subscriber
            )));
        }
        Ok(())
    }

    fn map_remove_luids(&mut self, key: SyncKey<'_>, luids: &[String]) -> Result<u64, StoreError> {
        if luids.is_empty() || nul(&[key.subscriber, key.terminal, key.datastore]) {
            return Ok(0);
        }
        let luids: Vec<&str> = luids
            .iter()
            .map(String::as_str)
            .filter(|l| !l.contains('\0'))
            .collect();
        self.exec(
            "DELETE FROM luid_map
             WHERE subscriber_id = $1 AND terminal_id = $2 AND datastore = $3
               AND luid = ANY($4)",
            &[&key.subscriber, &key.terminal, &key.datastore, &luids],
        )
    }

    fn map_remove_guids(&mut self, key: SyncKey<'_>, guids: &[String]) -> Result<u64, StoreError> {
        if guids.is_empty() || nul(&[key.subscriber, key.terminal, key.datastore]) {
            return Ok(0);
        }
        let guids: Vec<&str> = guids
            .iter()
            .map(String::as_str)
            .filter(|g| !g.contains('\0'))
            .collect();
        self.exec(
            "DELETE FROM luid_map
             WHERE subscriber_id = $1 AND terminal_id = $2 AND datastore = $3
               AND guid = ANY($4)",
            &[&key.subscriber, &key.terminal, &key.datastore, &guids],
        )
    }

    fn map_guids_for_luids(
        &mut self,
        key: SyncKey<'_>,
        luids: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        let luids: Vec<&str> = luids
            .iter()
            .map(String::as_str)
            .filter(|l| !nul(&[l]))
            .collect();
        if luids.is_empty() || nul(&[key.subscriber, key.terminal, key.datastore]) {
            return Ok(HashMap::new());
        }
        self.query(
            "SELECT luid, guid FROM luid_map
             WHERE subscriber_id = $1 AND terminal_id = $2 AND datastore = $3
               AND luid = ANY($4::text[])",
            &[&key.subscriber, &key.terminal, &key.datastore, &luids],
        )?
        .iter()
        .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
        .collect()
    }

    fn map_guid_for_luid(
        &mut self,
        key: SyncKey<'_>,
        luid: &str,
    ) -> Result<Option<String>, StoreError> {
        if nul(&[key.subscriber, key.terminal, key.datastore, luid]) {
            return Ok(None);
        }
        self.query_opt(
            "SELECT guid FROM luid_map
             WHERE subscriber_id = $1 AND terminal_id = $2 AND datastore = $3 AND luid = $4",
            &[&key.subscriber, &key.terminal, &key.datastore, &luid],
        )?
        .as_ref()
        .map(|r| col(r, 0))
        .transpose()
    }

    fn map_luid_for_guid(
        &mut self,
        key: SyncKey<'_>,
        guid: &str,
    ) -> Result<Option<String>, StoreError> {
        if nul(&[key.subscriber, key.terminal, key.datastore, guid]) {
            return Ok(None);
        }
        self.query_opt(
            "SELECT luid FROM luid_map
             WHERE subscriber_id = $1 AND terminal_id = $2 AND datastore = $3 AND guid = $4",
            &[&key.subscriber, &key.terminal, &key.datastore, &guid],
        )?
        .as_ref()
        .map(|r| col(r, 0))
        .transpose()
    }

    fn map_list(&mut self, key: SyncKey<'_>) -> Result<Vec<MapEntry>, StoreError> {
        if nul(&[key.subscriber, key.terminal, key.datastore]) {
            return Ok(Vec::new());
        }
        let rows = self.query(
            "SELECT luid, guid FROM luid_map
             WHERE subscriber_id = $1 AND terminal_id = $2 AND datastore = $3
             ORDER BY luid",
            &[&key.subscriber, &key.terminal, &key.datastore],
        )?;
        rows.iter()
            .map(|r| {
                Ok(MapEntry {
                    luid: col(r, 0)?,
                    guid: col(r, 1)?,
                })
            })
            .collect()
    }

    fn map_clear(&mut self, key: SyncKey<'_>) -> Result<u64, StoreError> {
        if nul(&[key.subscriber, key.terminal, key.datastore]) {
            return Ok(0);
        }
        self.exec(
            "DELETE FROM luid_map WHERE subscriber_id = $1 AND terminal_id = $2 AND datastore = $3",
            &[&key.subscriber, &key.terminal, &key.datastore],
        )
    }

    // ----- sessions -------------------------------------------------------------------------

    fn session_save(&mut self, s: &SessionRecord) -> Result<(), StoreError> {
        validate_id("session key", &s.key)?;
        validate_id("subscriber id", &s.subscriber_id)?;
        validate_id("terminal id", &s.terminal_id)?;
        let n = self.exec(
            "INSERT INTO session (key, subscriber_id, terminal_id, state, created_at, expires_at)
             SELECT $1::text, t.subscriber_id, t.terminal_id, $4::bytea, $5::bigint, $6::bigint
             FROM terminal t WHERE t.subscriber_id = $2 AND t.terminal_id = $3
             ON CONFLICT (key) DO UPDATE SET state = excluded.state,
                                             expires_at = excluded.expires_at
             WHERE session.subscriber_id = excluded.subscriber_id
               AND session.terminal_id = excluded.terminal_id",
            &[
                &s.key,
                &s.subscriber_id,
                &s.terminal_id,
                &s.state,
                &s.created_at.0,
                &s.expires_at.0,
            ],
        )?;
        if n == 0 {
            // Either the key is someone else's, or the terminal is not the subscriber's.
            let taken = self
                .query_opt("SELECT 1 FROM session WHERE key = $1", &[&s.key])?
                .is_some();
            return Err(if taken {
                StoreError::Conflict("session key belongs to another terminal".into())
            } else {
                StoreError::NotFound(format!(
                    "terminal {} of subscriber {}",
                    s.terminal_id, s.subscriber_id
                ))
            });
        }
        Ok(())
    }

    fn session_load(
        &mut self,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        if nul(&[key]) {
            return Ok(None);
        }
        self.query_opt(
            &format!("SELECT {SESSION_COLUMNS} FROM session WHERE key = $1 AND expires_at > $2"),
            &[&key, &now.0],
        )?
        .as_ref()
        .map(session_from_row)
        .transpose()
    }

    fn session_delete(&mut self, key: &str) -> Result<bool, StoreError> {
        if nul(&[key]) {
            return Ok(false);
        }
        Ok(self.exec("DELETE FROM session WHERE key = $1", &[&key])? > 0)
    }

    fn sessions_purge_expired(&mut self, now: Timestamp) -> Result<u64, StoreError> {
        self.exec("DELETE FROM session WHERE expires_at <= $1", &[&now.0])
    }

    fn sessions_for_terminal(
        &mut self,
        subscriber: &str,
        terminal: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        if nul(&[subscriber, terminal]) {
            return Ok(Vec::new());
        }
        // Whoever looks at a terminal's sessions to supersede them holds the terminal's
        // row lock to the end of the transaction: two first messages of one terminal on
        // two nodes are serialised here (at REPEATABLE READ neither would see the other's
        // new session otherwise).
        self.query(
            "SELECT 1 FROM terminal WHERE subscriber_id = $1 AND terminal_id = $2 FOR UPDATE",
            &[&subscriber, &terminal],
        )?;
        self.query(
            "SELECT key FROM session
             WHERE subscriber_id = $1 AND terminal_id = $2 AND expires_at > $3
             ORDER BY created_at, key",
            &[&subscriber, &terminal, &now.0],
        )?
        .iter()
        .map(|r| col(r, 0))
        .collect()
    }

    fn sessions_count_live(&mut self, now: Timestamp) -> Result<u64, StoreError> {
        let row = self.query_one(
            "SELECT count(*) FROM session WHERE expires_at > $1",
            &[&now.0],
        )?;
        let n: i64 = col(&row, 0)?;
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
        check_text("session key", session_key)?;
        for c in commands {
            check_opt_text("datastore", c.datastore.as_deref())?;
            check_opt_text("guid", c.guid.as_deref())?;
        }
        // One set-based statement for the whole batch: one round trip.
        let seqs: Vec<i64> = commands.iter().map(|c| c.seq).collect();
        let sizes: Vec<i64> = commands.iter().map(|c| c.size).collect();
        let stores: Vec<Option<&str>> = commands.iter().map(|c| c.datastore.as_deref()).collect();
        let guids: Vec<Option<&str>> = commands.iter().map(|c| c.guid.as_deref()).collect();
        let revisions: Vec<Option<i64>> = commands.iter().map(|c| c.revision).collect();
        let data: Vec<&[u8]> = commands.iter().map(|c| c.data.as_slice()).collect();
        self.exec(
            "INSERT INTO session_pending (session_key, seq, size, datastore, guid, revision, data)
             SELECT $1::text, u.seq, u.size, u.datastore, u.guid, u.revision, u.data
             FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[],
                         $7::bytea[]) AS u(seq, size, datastore, guid, revision, data)",
            &[
                &session_key,
                &seqs,
                &sizes,
                &stores,
                &guids,
                &revisions,
                &data,
            ],
        )?;
        Ok(())
    }

    fn session_pending_head(
        &mut self,
        session_key: &str,
        budget: u64,
    ) -> Result<Vec<PendingCommand>, StoreError> {
        if nul(&[session_key]) {
            return Ok(Vec::new());
        }
        // Pages in key order until the budget is reached: a message's worth costs one or
        // two round trips, whatever is left behind it.
        let mut out = Vec::new();
        let mut total: u64 = 0;
        let mut after = i64::MIN;
        let mut page: i64 = 64;
        while total < budget {
            let rows = self.query(
                "SELECT seq, size, datastore, guid, revision, data FROM session_pending
                 WHERE session_key = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&session_key, &after, &page],
            )?;
            let got = rows.len();
            for r in &rows {
                if total >= budget {
                    break;
                }
                let c = PendingCommand {
                    seq: col(r, 0)?,
                    size: col(r, 1)?,
                    datastore: col(r, 2)?,
                    guid: col(r, 3)?,
                    revision: col(r, 4)?,
                    data: col(r, 5)?,
                };
                total = total.saturating_add(c.size.max(1) as u64);
                after = c.seq;
                out.push(c);
            }
            if (got as i64) < page {
                break;
            }
            page = (page * 2).min(4096);
        }
        Ok(out)
    }

    fn session_pending_remove_through(
        &mut self,
        session_key: &str,
        through: i64,
    ) -> Result<u64, StoreError> {
        if nul(&[session_key]) {
            return Ok(0);
        }
        self.exec(
            "DELETE FROM session_pending WHERE session_key = $1 AND seq <= $2",
            &[&session_key, &through],
        )
    }

    fn session_pending_count(&mut self, session_key: &str) -> Result<u64, StoreError> {
        if nul(&[session_key]) {
            return Ok(0);
        }
        let row = self.query_one(
            "SELECT count(*) FROM session_pending WHERE session_key = $1",
            &[&session_key],
        )?;
        let n: i64 = col(&row, 0)?;
        Ok(n.max(0) as u64)
    }

    fn session_pending_clear(&mut self, session_key: &str) -> Result<u64, StoreError> {
        if nul(&[session_key]) {
            return Ok(0);
        }
        self.exec(
            "DELETE FROM session_pending WHERE session_key = $1",
            &[&session_key],
        )
    }

    fn session_delivered_put(
        &mut self,
        session_key: &str,
        items: &[DeliveredItem],
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        check_text("session key", session_key)?;
        // Last write wins within the batch too: one row per (datastore, GUID).
        let mut latest: HashMap<(&str, &str), i64> = HashMap::new();
        for i in items {
            check_text("datastore", &i.datastore)?;
            check_text("guid", &i.guid)?;
            latest.insert((i.datastore.as_str(), i.guid.as_str()), i.revision);
        }
        let stores: Vec<&str> = latest.keys().map(|k| k.0).collect();
        let guids: Vec<&str> = latest.keys().map(|k| k.1).collect();
        let revisions: Vec<i64> = latest.values().copied().collect();
        self.exec(
            "INSERT INTO session_delivered (session_key, datastore, guid, revision)
             SELECT $1::text, u.datastore, u.guid, u.revision
             FROM unnest($2::text[], $3::text[], $4::bigint[]) AS u(datastore, guid, revision)
             ON CONFLICT (session_key, datastore, guid) DO UPDATE SET revision = excluded.revision",
            &[&session_key, &stores, &guids, &revisions],
        )?;
        Ok(())
    }

    fn session_delivered_list(
        &mut self,
        session_key: &str,
    ) -> Result<Vec<DeliveredItem>, StoreError> {
        if nul(&[session_key]) {
            return Ok(Vec::new());
        }
        let rows = self.query(
            "SELECT datastore, guid, revision FROM session_delivered
             WHERE session_key = $1 ORDER BY datastore, guid",
            &[&session_key],
        )?;
        rows.iter()
            .map(|r| {
                Ok(DeliveredItem {
                    datastore: col(r, 0)?,
                    guid: col(r, 1)?,
                    revision: col(r, 2)?,
                })
            })
            .collect()
    }

    // ----- audit ----------------------------------------------------------------------------

    fn audit_append(&mut self, e: &AuditEvent) -> Result<i64, StoreError> {
        check_opt_text("subscriber id", e.subscriber_id.as_deref())?;
        check_opt_text("terminal id", e.terminal_id.as_deref())?;
        check_text("audit kind", &e.kind)?;
        check_text("audit reason", &e.reason)?;
        check_opt_text("remote address", e.remote_addr.as_deref())?;
        let row = self.query_one(
            "INSERT INTO audit (at, subscriber_id, terminal_id, kind, status, reason, remote_addr)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[
                &e.at.0,
                &e.subscriber_id,
                &e.terminal_id,
                &e.kind,
                &e.status.map(i32::from),
                &e.reason,
                &e.remote_addr,
            ],
        )?;
        col(&row, 0)
    }

    fn audit_list(&mut self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let subscriber = filter.subscriber_id.as_deref();
        let terminal = filter.terminal_id.as_deref();
        if nul(&[subscriber.unwrap_or(""), terminal.unwrap_or("")]) {
            return Ok(Vec::new());
        }
        let limit = i64::from(filter.limit);
        // One statement per filter shape, so each can use its index (and every parameter of a
        // prepared statement is used, so its type is known).
        let mut params: Vec<Param<'_>> = Vec::with_capacity(4);
        let mut conditions = Vec::with_capacity(3);
        if let Some(s) = &subscriber {
            params.push(s);
            conditions.push(format!("subscriber_id = ${}", params.len()));
        }
        if let Some(t) = &terminal {
            params.push(t);
            conditions.push(format!("terminal_id = ${}", params.len()));
        }
        if let Some(before) = &filter.before_id {
            params.push(before);
            conditions.push(format!("id < ${}", params.len()));
        }
        params.push(&limit);
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit {filter_sql} ORDER BY id DESC LIMIT ${}",
            params.len()
        );
        self.query(&sql, &params)?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    // ----- lockout --------------------------------------------------------------------------

    fn lockout_record_failure(
        &mut self,
        key: LockoutKey<'_>,
        now: Timestamp,
    ) -> Result<LockoutState, StoreError> {
        validate_id("lockout id", key.id())?;
        let next = lockout_next(self.lockout_get(key)?, now);
        let failures = i32::try_from(next.failures).unwrap_or(i32::MAX);
        self.exec(
            "INSERT INTO lockout (kind, id, failures, last_failure_at, locked_until)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (kind, id) DO UPDATE SET failures = excluded.failures,
                 last_failure_at = excluded.last_failure_at,
                 locked_until = excluded.locked_until",
            &[
                &key.kind(),
                &key.id(),
                &failures,
                &next.last_failure_at.0,
                &next.locked_until.map(|t| t.0),
            ],
        )?;
        Ok(next)
    }

    fn lockout_reset(&mut self, key: LockoutKey<'_>) -> Result<bool, StoreError> {
        if nul(&[key.id()]) {
            return Ok(false);
        }
        let n = self.exec(
            "DELETE FROM lockout WHERE kind = $1 AND id = $2",
            &[&key.kind(), &key.id()],
        )?;
        Ok(n > 0)
    }

    fn lockout_get(&mut self, key: LockoutKey<'_>) -> Result<Option<LockoutState>, StoreError> {
        if nul(&[key.id()]) {
            return Ok(None);
        }
        self.query_opt(
            "SELECT failures, last_failure_at, locked_until FROM lockout
             WHERE kind = $1 AND id = $2",
            &[&key.kind(), &key.id()],
        )?
        .as_ref()
        .map(lockout_from_row)
        .transpose()
    }
}

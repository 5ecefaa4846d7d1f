//! The OMA DS server session, sans I/O: a decoded message and a store transaction in,
//! the reply message out.
//!
//! [`Engine::handle`] runs inside one store transaction per incoming message (the HTTP
//! layer opens it), so every item, map entry and mark a message changes commits or
//! rolls back together. The session's state lives in the store between messages
//! ([`state::SessionState`]), so any node can take the next message of any session.
//!
//! Change semantics (DESIGN §4): each terminal receives exactly the revisions of a
//! datastore above the mark it has acknowledged, except those it wrote itself; anchors
//! and the mark move only when the session completes (package 5 answered). The one
//! exception: a slow or refresh sync drops the terminal's map and, with it, its stored
//! anchors at the Alert, so a session that does not complete is followed by a slow
//! sync, never by a normal sync over an empty map. A slow sync the server forces (the
//! client asked for a normal sync with a Last anchor that is not ours: the answer to its
//! last message was lost after we committed it) keeps the map and the mark and drops
//! only the client's anchor; its items are matched by LUID and judged against the
//! version the terminal acknowledged (`kept_map_step`), so an unchanged copy of an
//! item changed or deleted elsewhere gets our version or a Delete instead of coming
//! back as an item of its own.
//!
//! Conflicts (a change from this terminal to an item another terminal changed since
//! this terminal's mark) follow the datastore's policy ([`EngineConfig::policy_for`]:
//! server-wins 419, client-wins 208, duplicate 209, newer-wins by the item's
//! `REV`/`LAST-MODIFIED`); a Delete of such an item loses unless the client wins (419,
//! and the item goes back to the client).
//!
//! Suspend/resume (SUS): Alert 224 ends the session with 200 and Final, no anchor or
//! mark moved, and keeps its state per terminal; Alert 225 of a later session of the
//! terminal takes the datastore's state back (200, same sync type) and the session goes
//! on from package 3, so package 4 is built anew and whatever the client never
//! acknowledged is sent again. With nothing to resume: 509 and a two-way sync, or 508
//! and a slow sync when the anchors do not match.
//! A message the client sends again (same `MsgID`, no answer received) gets the stored
//! answer and is not processed twice.
//!
//! Large objects (LOB items): a client item with `MoreData` is buffered in the session
//! state (so it survives a restart) and answered 213 until its last chunk, then stored
//! and answered as a whole item; 411 (no Size on the first chunk), 416 (above our
//! MaxObjSize) and 424 (size mismatch) store nothing, and a new item or the end of the
//! client's package before the last chunk drops it with Alert 223. Our items that do not
//! fit the client's MaxMsgSize go out in chunks, one message each, unless they exceed
//! its MaxObjSize or its DevInf lacks SupportLargeObjs (then they are not sent, with a
//! warning); a client status other than 213 for a chunk ends that object.

mod outbound;
mod pending;
pub mod state;
pub mod summary;

use crate::datastores::{self, DatastoreDef};
use crate::store::{
    AuditEvent, ChangeKind, DatastoreKey, DeliveredItem, LockoutKey, MapEntry, NewItem,
    PendingCommand, SessionRecord, StoreError, SyncKey, SyncState, Terminal, Timestamp, Tx,
};
use state::{DsState, PendingLob, Phase, SentItem, SessionState};
use syncml_core::auth;
use syncml_core::content::split_content_line;
use syncml_core::model::{
    Alert, Anchor, Chal, Command, Data, Delete, GetPut, Item, ItemCommand, Meta, Results, Source,
    Status, Sync, SyncHdr, SyncMl, Target,
};
use syncml_core::tree::SyncMlVersion;
use syncml_core::{AlertCode, Encoding, StatusCode};
use tracing::{debug, info, warn};

/// How a conflict (the client changed an item another terminal changed since this
/// terminal last synced) is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictPolicy {
    /// The server's version stays; the client gets 419 and receives the server version.
    #[default]
    ServerWins,
    /// The client's version is stored; 208.
    ClientWins,
    /// The client's version is stored as a new item next to the server's; 209.
    Duplicate,
    /// The newer version wins: the client's modification time (`REV:` in vCard,
    /// `LAST-MODIFIED:` in iCalendar/vCalendar) against the server item's `updated_at`.
    /// A newer client version is stored (208); otherwise, and when the client's data
    /// carries no time, the server's version stays (419).
    NewerWins,
}

/// Engine settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// MaxMsgSize we advertise (the HTTP body limit must be at least this).
    pub max_msg_size: u64,
    /// MaxObjSize we advertise.
    pub max_obj_size: u64,
    /// Seconds a session may stay idle before it expires.
    pub session_ttl: i64,
    /// Accept `syncml:auth-basic` on plain HTTP (it sends the password in clear).
    pub allow_basic_without_tls: bool,
    /// Conflict resolution, for datastores without an entry in `datastore_policies`.
    pub conflict_policy: ConflictPolicy,
    /// Conflict resolution per datastore (our canonical name: `contacts`, `calendar`).
    pub datastore_policies: std::collections::BTreeMap<String, ConflictPolicy>,
    /// Seconds a suspended session (Alert 224) stays resumable.
    pub suspend_ttl: i64,
}

impl EngineConfig {
    /// The conflict policy of datastore `name` (canonical name).
    pub fn policy_for(&self, name: &str) -> ConflictPolicy {
        self.datastore_policies
            .get(name)
            .copied()
            .unwrap_or(self.conflict_policy)
    }
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            max_msg_size: 1024 * 1024,
            max_obj_size: 16 * 1024 * 1024,
            session_ttl: 15 * 60,
            allow_basic_without_tls: false,
            conflict_policy: ConflictPolicy::ServerWins,
            datastore_policies: std::collections::BTreeMap::new(),
            suspend_ttl: 7 * 24 * 3600,
        }
    }
}

/// A reply as it goes out ([`Engine::answer`]).
#[derive(Debug)]
pub struct Answer {
    /// The reply.
    pub message: SyncMl,
    /// The reply in the request's encoding.
    pub body: Vec<u8>,
}

/// One incoming message with what the transport knows about it.
#[derive(Debug)]
pub struct Incoming<'a> {
    /// The decoded message.
    pub msg: &'a SyncMl,
    /// Its encoding (the reply uses the same).
    pub encoding: Encoding,
    /// The RespURI token it was posted with.
    pub session_token: Option<&'a str>,
    /// The URL it was posted to (without query), to build our RespURI.
    pub base_url: &'a str,
    /// True over TLS.
    pub tls: bool,
    /// The peer's address, for the audit log.
    pub remote: &'a str,
}

/// The server DS engine.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    cfg: EngineConfig,
}

/// Builds the reply message: numbers commands, holds statuses and commands apart.
struct Reply {
    next_cmd: u32,
    statuses: Vec<Command>,
    commands: Vec<Command>,
}

impl Reply {
    fn empty() -> Reply {
        Reply {
            next_cmd: 0,
            statuses: Vec::new(),
            commands: Vec::new(),
        }
    }

    fn id(&mut self) -> String {
        self.next_cmd += 1;
        self.next_cmd.to_string()
    }

    fn status(&mut self, msg_ref: &str, cmd: &Command, code: StatusCode) -> usize {
        let mut s = Status::new(self.id(), msg_ref, cmd.cmd_id(), cmd.name(), code);
        if cmd.items().len() == 1 {
            let it = &cmd.items()[0];
            if let Some(t) = &it.target {
                s.target_refs.push(t.loc_uri.clone());
            }
            if let Some(src) = &it.source {
                s.source_refs.push(src.loc_uri.clone());
            }
        }
        self.statuses.push(Command::Status(s));
        self.statuses.len() - 1
    }

    fn item_status(&mut self, msg_ref: &str, cmd: &Command, item: &Item, code: StatusCode) {
        let mut s = Status::new(self.id(), msg_ref, cmd.cmd_id(), cmd.name(), code);
        if let Some(t) = &item.target {
            s.target_refs.push(t.loc_uri.clone());
        }
        if let Some(src) = &item.source {
            s.source_refs.push(src.loc_uri.clone());
        }
        self.statuses.push(Command::Status(s));
    }
}

fn fmt_anchor(now: Timestamp) -> String {
    // ISO 8601 basic UTC (REP-36), from Unix seconds without a date library.
    let secs = now.unix_secs().max(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}{mo:02}{d:02}T{h:02}{m:02}{s:02}Z")
}

/// The session key under which a terminal's suspended session is kept. Not a RespURI
/// token: a state loaded by token that is marked suspended is not continued.
fn suspend_key(subscriber: &str, terminal: &str) -> String {
    format!("suspended.{subscriber}.{terminal}")
}

/// The modification time a vCard (`REV`) or iCalendar/vCalendar (`LAST-MODIFIED`)
/// item carries, as Unix seconds (UTC; a time without `Z` is taken as UTC too).
fn modified_at(data: &[u8]) -> Option<Timestamp> {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        // `item1.REV;VALUE=timestamp` → `REV`.
        let name = name.split(';').next().unwrap_or("");
        let name = name.rsplit('.').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("REV") || name.eq_ignore_ascii_case("LAST-MODIFIED") {
            if let Some(t) = parse_iso_time(value.trim()) {
                return Some(t);
            }
        }
    }
    None
}

/// Parses ISO 8601 basic or extended UTC (`20261126T193431Z`, `2026-11-26T19:34:31Z`,
/// `20261126`).
fn parse_iso_time(v: &str) -> Option<Timestamp> {
    let digits: String = v
        .chars()
        .take_while(|c| *c != '+' && *c != '.')
        .filter(|c| c.is_ascii_digit())
        .collect();
    if digits.len() != 8 && digits.len() != 14 {
        return None;
    }
    let n = |a: usize, b: usize| digits[a..b].parse::<i64>().ok();
    let (y, mo, d) = (n(0, 4)?, n(4, 6)?, n(6, 8)?);
    let (h, mi, s) = if digits.len() == 14 {
        (n(8, 10)?, n(10, 12)?, n(12, 14)?)
    } else {
        (0, 0, 0)
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days-from-civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(Timestamp::from_unix_secs(
        days * 86_400 + h * 3600 + mi * 60 + s,
    ))
}

/// A slow sync's pool of our items the client has not matched yet, by content key
/// ([`format_key`]): several items may share a key (true duplicates), each is matched once.
struct Unmatched(std::collections::HashMap<Vec<u8>, Vec<String>>);

impl Unmatched {
    /// Our live items that the terminal's map does not name yet.
    fn load(
        tx: &mut dyn Tx,
        def: &DatastoreDef,
        dsk: DatastoreKey<'_>,
        sk: SyncKey<'_>,
    ) -> Result<Self, StoreError> {
        let mapped: std::collections::HashSet<String> =
            tx.map_list(sk)?.into_iter().map(|m| m.guid).collect();
        let mut pool: std::collections::HashMap<Vec<u8>, Vec<String>> = Default::default();
        // Newest last, so `take` hands out the oldest of equal items first.
        for it in tx.items_list_live(dsk)?.into_iter().rev() {
            if !mapped.contains(&it.guid) {
                pool.entry(format_key(def, &it.content_type, &it.data))
                    .or_default()
                    .push(it.guid);
            }
        }
        Ok(Unmatched(pool))
    }

    /// One unmatched item with this key, taken out of the pool.
    fn take(&mut self, key: &[u8]) -> Option<String> {
        let guids = self.0.get_mut(key)?;
        let g = guids.pop();
        if guids.is_empty() {
            self.0.remove(key);
        }
        g
    }
}

/// Properties that change on every write or that clients rewrite at will; they do
/// not tell two items apart.
const VOLATILE_PROPERTIES: &[&str] = &[
    "REV",
    "PRODID",
    "UID",
    "DTSTAMP",
    "LAST-MODIFIED",
    "CREATED",
];

/// Item content reduced to what identifies it, for slow-sync matching: the same item
/// written by two different clients must give the same key.
///
/// vCard / iCalendar text is unfolded, property names and parameters are upper-cased,
/// `X-*` and volatile properties ([`VOLATILE_PROPERTIES`]) are dropped, as are empty
/// values (`NICKNAME:`, `ADR:;;;;;;`: the Synthesis engine pads what it sends with
/// every property its profile knows) and trailing empty components (`N:Doe;John;;;`
/// = `N:Doe;John`); a `DESCRIPTION` that repeats the `SUMMARY` is dropped too (the
/// Synthesis engine adds it for peers without CTCap). The remaining lines are sorted.
/// Other content is compared line by line the same way.
fn content_key(data: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(data);
    let mut unfolded: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        match (raw.strip_prefix([' ', '\t']), unfolded.last_mut()) {
            (Some(cont), Some(prev)) => prev.push_str(cont),
            _ => unfolded.push(raw.to_string()),
        }
    }
    let mut props: Vec<(String, String)> = unfolded
        .iter()
        .filter_map(|line| {
            let line = line.trim_end();
            if line.is_empty() {
                return None;
            }
            let (name_part, value) = split_content_line(line);
            let name_part = name_part.to_ascii_uppercase();
            let name = name_part.split(';').next().unwrap_or("");
            let name = name.rsplit('.').next().unwrap_or(name);
            if name.starts_with("X-") || VOLATILE_PROPERTIES.contains(&name) {
                return None;
            }
            let mut value = value.trim();
            while value.ends_with(';') && !value.ends_with("\\;") {
                value = &value[..value.len() - 1];
            }
            if value
                .chars()
                .all(|c| c == ';' || c == ',' || c.is_whitespace())
            {
                return None;
            }
            Some((name_part, value.to_string()))
        })
        .collect();
    let summary = props
        .iter()
        .find(|(n, _)| n == "SUMMARY")
        .map(|(_, v)| v.clone());
    props.retain(|(n, v)| !(n == "DESCRIPTION" && Some(v) == summary.as_ref()));
    let mut lines: Vec<String> = props.into_iter().map(|(n, v)| format!("{n}:{v}")).collect();
    lines.sort_unstable();
    lines.join("\n").into_bytes()
}

/// [`content_key`] of the item in the datastore's preferred format: a handset that sends
/// back, in its own format, what it received converted (`session::outbound`) sends what
/// we hold. Items in a format with no conversion to the preferred one keep their key.
fn format_key(def: &DatastoreDef, ctype: &str, data: &[u8]) -> Vec<u8> {
    use syncml_core::content::{self, ContentType};
    let from = ContentType::new(ctype, "");
    let to = ContentType::new(def.preferred.0, def.preferred.1);
    if !from.same_as(&to) && content::can_convert(&from, &to) {
        if let Ok(c) = content::convert(data, &from, &to) {
            return content_key(&c);
        }
    }
    content_key(data)
}

/// Whether two items hold the same content: equal [`content_key`]s, or, only when their
/// formats differ, equal [`format_key`]s (converting costs a parse of both; an edit sent
/// in the format we hold, the common case, never pays for it).
fn same_content(def: &DatastoreDef, a: (&str, &[u8]), b: (&str, &[u8])) -> bool {
    use syncml_core::content::ContentType;
    if content_key(a.1) == content_key(b.1) {
        return true;
    }
    if ContentType::new(a.0, "").same_as(&ContentType::new(b.0, "")) {
        return false;
    }
    format_key(def, a.0, a.1) == format_key(def, b.0, b.1)
}

fn item_bytes(item: &Item, meta: Option<&Meta>) -> Vec<u8> {
    let b64 = item
        .meta
        .as_ref()
        .and_then(|m| m.format.as_deref())
        .or_else(|| meta.and_then(|m| m.format.as_deref()))
        .is_some_and(|f| f.trim().eq_ignore_ascii_case("b64"));
    let raw = item.data.as_ref().and_then(Data::as_bytes).unwrap_or(&[]);
    if b64 {
        use base64::Engine as _;
        let cleaned: Vec<u8> = raw
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if let Ok(d) = base64::engine::general_purpose::STANDARD.decode(cleaned) {
            return d;
        }
    }
    raw.to_vec()
}

/// The item's content type: its own or its command's Meta Type, else the type of
/// the datastore whose version matches the item's `VERSION:` line (a vCard 2.1 sent
/// without a type is `text/x-vcard`, not the preferred `text/vcard`), else the
/// datastore's preferred type.
fn content_type(item: &Item, meta: Option<&Meta>, def: &DatastoreDef, data: &[u8]) -> String {
    item.meta
        .as_ref()
        .and_then(|m| m.r#type.clone())
        .or_else(|| meta.and_then(|m| m.r#type.clone()))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(data);
            let version = text.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("VERSION")
                    .then(|| value.trim().to_string())
            });
            std::iter::once(&def.preferred)
                .chain(def.others)
                .find(|(_, v)| version.as_deref() == Some(*v))
                .map_or(def.preferred.0, |(t, _)| *t)
                .to_string()
        })
}

impl Engine {
    /// An engine with these settings.
    pub fn new(cfg: EngineConfig) -> Engine {
        Engine { cfg }
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Handles one message inside the caller's transaction and returns the reply.
    ///
    /// `rng` fills buffers with random bytes (nonces, session keys); `now` is the
    /// current time. Store errors abort the message (the transaction rolls back).
    pub fn handle(
        &self,
        tx: &mut dyn Tx,
        inc: &Incoming<'_>,
        now: Timestamp,
        rng: &mut dyn FnMut(&mut [u8]),
    ) -> Result<SyncMl, StoreError> {
        self.handle_inner(tx, inc, now, rng, &mut None)
    }

    /// [`Engine::handle`], with the reply also encoded in the request's encoding: the
    /// engine encodes it anyway to keep it for a retransmission, so the caller does not
    /// encode it again.
    pub fn answer(
        &self,
        tx: &mut dyn Tx,
        inc: &Incoming<'_>,
        now: Timestamp,
        rng: &mut dyn FnMut(&mut [u8]),
    ) -> Result<Answer, StoreError> {
        let mut wire = None;
        let message = self.handle_inner(tx, inc, now, rng, &mut wire)?;
        let body = match wire {
            Some(body) => body,
            None => syncml_core::encode(&message, inc.encoding)
                .map_err(|e| StoreError::Backend(format!("encoding our reply: {e}")))?,
        };
        Ok(Answer { message, body })
    }

    /// `wire` receives the reply's encoding when the engine made it.
    fn handle_inner(
        &self,
        tx: &mut dyn Tx,
        inc: &Incoming<'_>,
        now: Timestamp,
        rng: &mut dyn FnMut(&mut [u8]),
        wire: &mut Option<Vec<u8>>,
    ) -> Result<SyncMl, StoreError> {
        let msg = inc.msg;
        let hdr = &msg.header;
        let terminal_id = hdr.source.loc_uri.trim().to_string();

        // The session: continue a stored one, or start anew.
        let mut st = match inc.session_token {
            Some(tok) => match tx.session_load(tok, now)? {
                Some(rec) if rec.terminal_id == terminal_id => {
                    match SessionState::from_record(&rec.state) {
                        Ok(s) if s.client_session_id == hdr.session_id && !s.suspended => s,
                        Ok(_) => {
                            debug!(token = tok, "client started a new session");
                            self.new_state(hdr, rng)
                        }
                        Err(e) => {
                            warn!(token = tok, error = %e, "unreadable session state; starting anew");
                            self.new_state(hdr, rng)
                        }
                    }
                }
                Some(_) => {
                    warn!(token = tok, terminal = %terminal_id, "session token of another terminal");
                    self.new_state(hdr, rng)
                }
                None => self.new_state(hdr, rng),
            },
            None => self.new_state(hdr, rng),
        };
        if st.phase == Phase::Done {
            st = self.new_state(hdr, rng);
        }
        // A client that gets no answer sends the same message again (the Synthesis
        // engine does, after `RetryInterval`). It was processed and committed already, so
        // it gets the same answer and is not processed twice: taken for the next message
        // of the session, a resent package 3 would be read as package 5 and complete the
        // session (anchors and mark moved) before the client ever saw package 4.
        if st.last_client_msg_id.as_deref() == Some(hdr.msg_id.trim()) {
            if let Some(bytes) = st.last_reply.take() {
                let reply = syncml_core::decode(&bytes)
                    .map_err(|e| StoreError::Corrupt(format!("stored reply: {e}")))?;
                let stored = if st.last_reply_xml {
                    Encoding::Xml
                } else {
                    Encoding::Wbxml
                };
                if stored == inc.encoding {
                    *wire = Some(bytes);
                }
                info!(terminal = %terminal_id, msg_id = %hdr.msg_id, "retransmitted message; resending our answer");
                return Ok(reply);
            }
        }
        // Our messages are numbered 1, 2, 3... within the session (REP-10).
        st.next_msg_id += 1;
        st.client_max_msg_size = hdr
            .meta
            .as_ref()
            .and_then(|m| m.max_msg_size)
            .or(st.client_max_msg_size);
        st.client_max_obj_size = hdr
            .meta
            .as_ref()
            .and_then(|m| m.max_obj_size)
            .or(st.client_max_obj_size);

        let mut reply = Reply {
            next_cmd: 0,
            statuses: Vec::new(),
            commands: Vec::new(),
        };
        let msg_ref = hdr.msg_id.clone();

        // Authentication (once per session).
        let hdr_status_idx;
        {
            let mut s = Status::new(reply.id(), &msg_ref, "0", "SyncHdr", StatusCode::OK);
            s.target_refs.push(hdr.target.loc_uri.clone());
            s.source_refs.push(hdr.source.loc_uri.clone());
            reply.statuses.push(Command::Status(s));
            hdr_status_idx = 0;
        }
        if !st.authenticated {
            match self.authenticate(tx, inc, &terminal_id, now, rng)? {
                AuthOutcome::Accepted { subscriber, nonce } => {
                    // One live session per terminal, whichever node takes its messages:
                    // a new session supersedes the terminal's older ones (a handset that
                    // starts again has given them up). Their next message finds no
                    // session and is refused for want of credentials, so a late message
                    // of an abandoned session never acts after a newer one.
                    let suspended = suspend_key(&subscriber, &terminal_id);
                    for key in tx.sessions_for_terminal(&subscriber, &terminal_id, now)? {
                        if key != st.key && key != suspended {
                            tx.session_delete(&key)?;
                            info!(terminal = %terminal_id, "older session of the terminal superseded");
                        }
                    }
                    st.authenticated = true;
                    st.subscriber = Some(subscriber);
                    if let Some(Command::Status(s)) = reply.statuses.get_mut(hdr_status_idx) {
                        s.data = StatusCode::AUTHENTICATION_ACCEPTED;
                        s.chal = Some(Box::new(md5_chal(&nonce)));
                    }
                }
                AuthOutcome::Refused { code, nonce, why } => {
                    if let Some(Command::Status(s)) = reply.statuses.get_mut(hdr_status_idx) {
                        s.data = code;
                        if code != StatusCode::FORBIDDEN {
                            s.chal = Some(Box::new(md5_chal(&nonce)));
                        }
                        if let Some(why) = why {
                            s.items.push(Item {
                                data: Some(Data::Text(why)),
                                ..Item::default()
                            });
                        }
                    }
                    // Nothing of this message is processed and the session is not kept;
                    // AUTH-13: one Status, with the header's code, for every command.
                    for cmd in &msg.body.commands {
                        if !matches!(cmd, Command::Status(_)) {
                            reply.status(&msg_ref, cmd, code);
                        }
                    }
                    return Ok(self.finish(&st, inc, reply, true));
                }
            }
        }
        let Some(subscriber) = st.subscriber.clone() else {
            return Ok(self.finish(&st, inc, reply, true));
        };
        let terminal = match tx.terminal_get(&subscriber, &terminal_id)? {
            Some(t) if !t.revoked => t,
            _ => {
                if let Some(Command::Status(s)) = reply.statuses.get_mut(hdr_status_idx) {
                    s.data = StatusCode::INVALID_CREDENTIALS;
                }
                tx.session_delete(&st.key)?;
                return Ok(self.finish(&st, inc, reply, true));
            }
        };

        note_delivered(tx, &mut st, msg)?;
        let mut saw_sync = false;
        let mut asked_next = false;
        let mut suspend = false;
        for cmd in &msg.body.commands {
            if suspend && !matches!(cmd, Command::Status(_)) {
                // SUS-06: what follows the suspend request is not executed; the client
                // repeats it in the session that resumes.
                reply.status(
                    &msg_ref,
                    cmd,
                    StatusCode::OPERATION_CANCELLED_BEFORE_PROCESSING,
                );
                continue;
            }
            match cmd {
                Command::Status(_) => {}
                Command::Put(p) => {
                    self.put_devinf(tx, &subscriber, &terminal_id, &msg_ref, cmd, p, &mut reply)?
                }
                Command::Results(r) => {
                    if let Some(Data::DevInf(d)) = r.items.first().and_then(|i| i.data.as_ref()) {
                        store_devinf(tx, &subscriber, &terminal_id, d)?;
                    }
                    reply.status(&msg_ref, cmd, StatusCode::OK);
                }
                Command::Get(g) if summary::is_body_get(g) => {
                    summary::answer_get(tx, &terminal, inc.encoding, &msg_ref, cmd, g, &mut reply)?
                }
                Command::Get(g) => self.get(&st, inc, &msg_ref, cmd, g, &mut reply),
                Command::Alert(a) => {
                    let code = a.data.map(|c| c.0).unwrap_or(0);
                    if code == 222 {
                        asked_next = true;
                        reply.status(&msg_ref, cmd, StatusCode::OK);
                    } else if code == 224 {
                        suspend = true;
                        reply.status(&msg_ref, cmd, StatusCode::OK);
                    } else {
                        self.alert(tx, &mut st, &terminal, &msg_ref, cmd, a, now, &mut reply)?;
                    }
                }
                Command::Sync(s) => {
                    saw_sync = true;
                    self.client_sync(tx, &mut st, &terminal, &msg_ref, cmd, s, now, &mut reply)?;
                }
                Command::Map(m) => {
                    let code = match datastores::resolve(&m.target.loc_uri)
                        .and_then(|d| st.stores.iter().find(|s| s.name == d.name))
                    {
                        Some(ds) => {
                            // A malformed entry (empty, over-long or control characters)
                            // is the client's error, not the store's: keep the others and
                            // say so, instead of failing the whole message.
                            let (entries, bad): (Vec<MapEntry>, Vec<MapEntry>) = m
                                .map_items
                                .iter()
                                .map(|mi| {
                                    MapEntry::new(
                                        mi.source.loc_uri.trim(),
                                        mi.target.loc_uri.trim(),
                                    )
                                })
                                .partition(|e| valid_id(&e.luid) && valid_id(&e.guid));
                            tx.map_put(
                                SyncKey::new(&subscriber, &terminal_id, &ds.name),
                                &entries,
                            )?;
                            if bad.is_empty() {
                                StatusCode::OK
                            } else {
                                warn!(terminal = %terminal_id, datastore = %ds.name, rejected = bad.len(), "malformed Map items");
                                StatusCode::INCOMPLETE_COMMAND
                            }
                        }
                        None => StatusCode::NOT_FOUND,
                    };
                    let i = reply.status(&msg_ref, cmd, code);
                    if let Some(Command::Status(s)) = reply.statuses.get_mut(i) {
                        s.target_refs = vec![m.target.loc_uri.clone()];
                        s.source_refs = vec![m.source.loc_uri.clone()];
                    }
                }
                Command::Add(_)
                | Command::Replace(_)
                | Command::Delete(_)
                | Command::Copy(_)
                | Command::Move(_) => {
                    // Data commands belong inside a Sync.
                    reply.status(&msg_ref, cmd, StatusCode::COMMAND_NOT_ALLOWED);
                }
                _ => {
                    reply.status(&msg_ref, cmd, StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED);
                }
            }
        }

        if suspend {
            return self.suspend(tx, st, inc, reply, &subscriber, now);
        }

        if msg.body.is_final {
            // A chunked object cannot outlast the client's package: its last chunk never
            // came, so nothing of it is stored.
            lob_abandon(&mut st, &mut reply);
        }

        let mut is_final = msg.body.is_final;
        // While package 4 goes out over several messages, every client message asks for
        // the next one, with or without Alert 222: the Synthesis engine (SyncEvolution)
        // answers a non-final package-4 message with its statuses and early Map items
        // but no Alert 222. Answering that with our own Alert 222 cost a round trip per
        // message and asked the client for a package it was not sending.
        let pkg4_pending = st.phase == Phase::ServerSync;
        // Package 4 begun in this message: what it did not send, stored once the session is.
        let mut unsent: Vec<PendingCommand> = Vec::new();
        if msg.body.is_final || asked_next || pkg4_pending {
            match st.phase {
                Phase::Init => {
                    st.phase = Phase::ClientSync;
                    if saw_sync {
                        // Combined initialisation: package 2 and 4 in one reply.
                        (is_final, unsent) =
                            self.start_pkg4(tx, &mut st, &terminal, inc, now, &mut reply)?;
                    }
                }
                Phase::ClientSync => {
                    if saw_sync || msg.body.is_final {
                        (is_final, unsent) =
                            self.start_pkg4(tx, &mut st, &terminal, inc, now, &mut reply)?;
                    }
                }
                Phase::ServerSync => {
                    is_final = self.continue_pkg4(tx, &mut st, &terminal, inc, &mut reply)?;
                }
                Phase::Map => {
                    if msg.body.is_final {
                        self.complete(tx, &mut st, &terminal, now)?;
                        st.phase = Phase::Done;
                        info!(subscriber = %subscriber, terminal = %terminal_id, "session complete");
                    }
                }
                Phase::Done => {}
            }
        } else {
            // A message of a multi-message package: ask for the next one.
            let id = reply.id();
            reply.commands.push(Command::Alert(Alert {
                cmd_id: id,
                data: Some(AlertCode(222)),
                items: vec![Item {
                    target: Some(Target::new(hdr.source.loc_uri.clone())),
                    source: Some(Source::new(hdr.target.loc_uri.clone())),
                    ..Item::default()
                }],
                ..Alert::default()
            }));
            is_final = false;
        }

        // Persist (or drop) the session.
        let out = self.finish(&st, inc, reply, is_final);
        if st.phase == Phase::Done {
            tx.session_delete(&st.key)?;
            tx.terminal_touch_last_session(&subscriber, &terminal_id, now)?;
        } else {
            st.last_client_msg_id = Some(hdr.msg_id.trim().to_string());
            let body = syncml_core::encode(&out, inc.encoding)
                .map_err(|e| StoreError::Backend(format!("encoding our reply: {e}")))?;
            st.last_reply_xml = inc.encoding == Encoding::Xml;
            st.last_reply = Some(body);
            let state = st
                .to_record()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            *wire = st.last_reply.take();
            tx.session_save(&SessionRecord {
                key: st.key.clone(),
                subscriber_id: subscriber.clone(),
                terminal_id: terminal_id.clone(),
                state,
                created_at: now,
                expires_at: Timestamp::from_unix_secs(now.unix_secs() + self.cfg.session_ttl),
            })?;
            // After the session row: a session's first message may begin package 4.
            tx.session_pending_put(&st.key, &unsent)?;
        }
        Ok(out)
    }

    /// The answer to a message the store could not take now (busy signalling, SP11
    /// §2.12.1): only a Status 101 (In progress) for the SyncHdr and no `Final`, so the
    /// client sends the same message again later. Nothing of the message was processed.
    pub fn busy_reply(&self, inc: &Incoming<'_>) -> SyncMl {
        let hdr = &inc.msg.header;
        let version = SyncMlVersion::from_ver_dtd(hdr.ver_dtd.trim()).unwrap_or_default();
        let mut h = SyncHdr::new(
            version,
            hdr.session_id.clone(),
            hdr.msg_id.clone(),
            hdr.source.loc_uri.clone(),
            hdr.target.loc_uri.clone(),
        );
        if !hdr.ver_proto.trim().is_empty() {
            h.ver_proto = hdr.ver_proto.trim().to_string();
        }
        h.target.loc_name = hdr.source.loc_name.clone();
        if let Some(tok) = inc.session_token {
            h.resp_uri = Some(format!("{}?s={}", inc.base_url, tok));
        }
        let mut s = Status::new("1", &hdr.msg_id, "0", "SyncHdr", StatusCode::IN_PROGRESS);
        s.target_refs.push(hdr.target.loc_uri.clone());
        s.source_refs.push(hdr.source.loc_uri.clone());
        SyncMl {
            header: h,
            body: syncml_core::model::SyncBody {
                commands: vec![Command::Status(s)],
                is_final: false,
            },
        }
    }

    /// Suspends the session (Alert 224, SUS-01/02): its state is kept under the
    /// terminal's suspend key for a later Alert 225; the live session ends here, with
    /// no anchor or mark moved. What was in flight is dropped: an incoming large object
    /// (the client sends it again), the rest of package 4 (built anew on resume).
    fn suspend(
        &self,
        tx: &mut dyn Tx,
        mut st: SessionState,
        inc: &Incoming<'_>,
        reply: Reply,
        subscriber: &str,
        now: Timestamp,
    ) -> Result<SyncMl, StoreError> {
        let delivered = tx.session_delivered_list(&st.key)?;
        tx.session_delete(&st.key)?;
        if !st.stores.is_empty() {
            let mut kept = st.clone();
            for d in delivered {
                if let Some(ds) = kept.store_mut(&d.datastore) {
                    ds.delivered.insert(d.guid, d.revision);
                }
            }
            kept.suspended = true;
            kept.pending_lob = None;
            kept.pending_pkg4 = None;
            kept.chunk_sent = None;
            kept.last_client_msg_id = None;
            kept.last_reply = None;
            kept.pkg4_items.clear();
            kept.in_flight.clear();
            let key = suspend_key(subscriber, &st.terminal);
            kept.key = key.clone();
            let state = kept
                .to_record()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            tx.session_save(&SessionRecord {
                key,
                subscriber_id: subscriber.to_string(),
                terminal_id: st.terminal.clone(),
                state,
                created_at: now,
                expires_at: now.plus_secs(self.cfg.suspend_ttl),
            })?;
        }
        info!(subscriber = %subscriber, terminal = %st.terminal, phase = ?st.phase, "session suspended");
        st.phase = Phase::Done;
        Ok(self.finish(&st, inc, reply, true))
    }

    /// Takes datastore `name` out of the terminal's suspended session, if there is one
    /// that holds it (Alert 225).
    fn take_suspended(
        &self,
        tx: &mut dyn Tx,
        terminal: &Terminal,
        name: &str,
        now: Timestamp,
    ) -> Result<Option<DsState>, StoreError> {
        let key = suspend_key(&terminal.subscriber_id, &terminal.terminal_id);
        let Some(mut rec) = tx.session_load(&key, now)? else {
            return Ok(None);
        };
        let Ok(mut sus) = SessionState::from_record(&rec.state) else {
            tx.session_delete(&key)?;
            return Ok(None);
        };
        let Some(pos) = sus.stores.iter().position(|d| d.name == name) else {
            return Ok(None);
        };
        let ds = sus.stores.remove(pos);
        if sus.stores.is_empty() {
            tx.session_delete(&key)?;
        } else {
            rec.state = sus
                .to_record()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            tx.session_save(&rec)?;
        }
        Ok(Some(ds))
    }

    fn new_state(&self, hdr: &SyncHdr, rng: &mut dyn FnMut(&mut [u8])) -> SessionState {
        let mut key = [0u8; 18];
        rng(&mut key);
        use base64::Engine as _;
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
        SessionState {
            key,
            client_session_id: hdr.session_id.clone(),
            terminal: hdr.source.loc_uri.trim().to_string(),
            ver_dtd: if hdr.ver_dtd.trim().is_empty() {
                "1.2".into()
            } else {
                hdr.ver_dtd.trim().to_string()
            },
            ver_proto: if hdr.ver_proto.trim().is_empty() {
                "SyncML/1.2".into()
            } else {
                hdr.ver_proto.trim().to_string()
            },
            next_msg_id: 0,
            ..SessionState::default()
        }
    }

    /// Assembles the reply: header, statuses (header status first), commands, Final.
    fn finish(
        &self,
        st: &SessionState,
        inc: &Incoming<'_>,
        reply: Reply,
        is_final: bool,
    ) -> SyncMl {
        let hdr = &inc.msg.header;
        let version = SyncMlVersion::from_ver_dtd(&st.ver_dtd).unwrap_or_default();
        let mut h = SyncHdr::new(
            version,
            hdr.session_id.clone(),
            st.next_msg_id.to_string(),
            hdr.source.loc_uri.clone(),
            hdr.target.loc_uri.clone(),
        );
        h.ver_proto = st.ver_proto.clone();
        h.target.loc_name = hdr.source.loc_name.clone();
        if st.authenticated && st.phase != Phase::Done {
            h.resp_uri = Some(format!("{}?s={}", inc.base_url, st.key));
        }
        h.meta = Some(Meta {
            max_msg_size: Some(self.cfg.max_msg_size),
            max_obj_size: Some(self.cfg.max_obj_size),
            ..Meta::default()
        });
        let mut commands = reply.statuses;
        commands.extend(reply.commands);
        SyncMl {
            header: h,
            body: syncml_core::model::SyncBody { commands, is_final },
        }
    }

    /// Server-layer authentication of a session's first message (FIG. 13-14): lockout,
    /// the terminal's registration and binding, its password, then what the
    /// subscriber's [`security_level`] adds. Every refusal is audited with its reason
    /// and writes nothing else but the next nonce and the failure counters.
    fn authenticate(
        &self,
        tx: &mut dyn Tx,
        inc: &Incoming<'_>,
        terminal_id: &str,
        now: Timestamp,
        rng: &mut dyn FnMut(&mut [u8]),
    ) -> Result<AuthOutcome, StoreError> {
        let hdr = &inc.msg.header;
        let claimed_user = hdr.source.loc_name.as_deref().map(str::trim);
        // Printable nonces (22 characters, 132 bits): the Synthesis engine (SyncEvolution)
        // keeps the decoded nonce as a C string, so a NUL byte in a binary nonce truncates
        // it and the client's next md5 credential fails with 401 (seen on the wire: the
        // client logged "use nonce='{\xb4^'" for a 16-byte nonce with a zero 4th byte).
        let new_nonce = |rng: &mut dyn FnMut(&mut [u8])| {
            auth::nonce::encode_next_nonce(&auth::nonce::generate_printable(rng, 22))
        };
        let audit = |tx: &mut dyn Tx, sub: Option<&str>, code: StatusCode, reason: &str| {
            warn!(terminal = terminal_id, subscriber = ?sub, status = code.0, reason, "authentication refused");
            tx.audit_append(&AuditEvent {
                at: now,
                subscriber_id: sub.map(str::to_string),
                terminal_id: Some(terminal_id.to_string()),
                kind: "auth".into(),
                status: Some(code.0),
                reason: reason.to_string(),
                remote_addr: Some(inc.remote.to_string()),
            })
            .map(|_| ())
        };
        let terminal: Option<Terminal> = tx.terminal_find(terminal_id)?;
        // Refusal with a fresh nonce; `failure` counts it towards the lockout, of the
        // claimed terminal ID whether or not it is registered (so a lock says nothing
        // about registration) and of the terminal's subscriber.
        let refuse = |tx: &mut dyn Tx,
                      rng: &mut dyn FnMut(&mut [u8]),
                      code: StatusCode,
                      reason: &str,
                      why: Option<String>,
                      failure: bool| {
            let nonce = new_nonce(rng);
            if let Some(t) = &terminal {
                tx.terminal_set_nonce(&t.subscriber_id, &t.terminal_id, Some(&nonce))?;
                if failure {
                    tx.lockout_record_failure(LockoutKey::Subscriber(&t.subscriber_id), now)?;
                }
            }
            if failure {
                tx.lockout_record_failure(LockoutKey::Terminal(terminal_id), now)?;
            }
            audit(tx, claimed_user, code, reason)?;
            Ok::<_, StoreError>(AuthOutcome::Refused { code, nonce, why })
        };

        // Locked attempts are refused before any credential is looked at. Which of the
        // two keys have failures on record at all (only those need a reset on success).
        let terminal_record = tx.lockout_get(LockoutKey::Terminal(terminal_id))?;
        let mut had_failures = (terminal_record.is_some(), false);
        let mut locked_until = terminal_record
            .filter(|l| l.is_locked(now))
            .and_then(|l| l.locked_until);
        if let (None, Some(t)) = (locked_until, &terminal) {
            let record = tx.lockout_get(LockoutKey::Subscriber(&t.subscriber_id))?;
            had_failures.1 = record.is_some();
            locked_until = record
                .filter(|l| l.is_locked(now))
                .and_then(|l| l.locked_until);
        }
        if let Some(until) = locked_until {
            let secs = (until.unix_secs() - now.unix_secs()).max(1);
            return refuse(
                tx,
                rng,
                StatusCode::RETRY_LATER,
                "locked out after repeated failures",
                Some(format!(
                    "locked after repeated authentication failures; retry in {secs} s"
                )),
                false,
            );
        }

        let Some(cred) = &hdr.cred else {
            return refuse(
                tx,
                rng,
                StatusCode::MISSING_CREDENTIALS,
                "no credentials",
                None,
                false,
            );
        };
        let scheme = cred
            .meta
            .as_ref()
            .and_then(|m| m.r#type.clone())
            .unwrap_or_else(|| auth::TYPE_BASIC.to_string());
        let scheme = scheme.trim();
        let data = cred.data.as_bytes().unwrap_or(&[]).to_vec();

        let Some(t) = terminal.clone() else {
            return refuse(
                tx,
                rng,
                StatusCode::INVALID_CREDENTIALS,
                "unknown terminal",
                None,
                true,
            );
        };
        if t.revoked {
            return refuse(
                tx,
                rng,
                StatusCode::INVALID_CREDENTIALS,
                "terminal revoked",
                None,
                true,
            );
        }
        let nonce_bytes = t
            .next_nonce
            .as_deref()
            .map(auth::nonce::decode_next_nonce)
            .transpose()
            .unwrap_or(None)
            .unwrap_or_default();
        let ok = if scheme.eq_ignore_ascii_case(auth::TYPE_MD5) {
            if claimed_user != Some(t.subscriber_id.as_str()) {
                return refuse(
                    tx,
                    rng,
                    StatusCode::INVALID_CREDENTIALS,
                    "LocName is not the terminal's subscriber",
                    None,
                    true,
                );
            }
            match &t.md5_verifier {
                Some(v) => auth::md5::verify(&data, v.expose(), &nonce_bytes),
                None => false,
            }
        } else if scheme.eq_ignore_ascii_case(auth::TYPE_BASIC) {
            if !inc.tls && !self.cfg.allow_basic_without_tls {
                return refuse(
                    tx,
                    rng,
                    StatusCode::INVALID_CREDENTIALS,
                    "auth-basic refused without TLS",
                    Some("syncml:auth-basic needs HTTPS; use syncml:auth-md5".into()),
                    true,
                );
            }
            match auth::basic::decode(&data) {
                Ok((user, pass)) => {
                    user == t.subscriber_id
                        && claimed_user.is_none_or(|u| u == t.subscriber_id)
                        && t.basic_verifier
                            .as_ref()
                            .is_some_and(|v| crate::password::verify(v.expose(), &pass))
                }
                Err(_) => false,
            }
        } else {
            // AUTH-14: an unknown scheme gets 406 with the scheme named.
            return refuse(
                tx,
                rng,
                StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED,
                "unsupported authentication type",
                Some(scheme.to_string()),
                false,
            );
        };
        if !ok {
            return refuse(
                tx,
                rng,
                StatusCode::INVALID_CREDENTIALS,
                "wrong credentials",
                None,
                true,
            );
        }

        // What the subscriber's security level adds (FIG. 14, para. 0057).
        let sub = tx.subscriber_get(&t.subscriber_id)?;
        let level = sub.as_ref().map(|s| s.security_level).unwrap_or(0);
        if level >= security_level::TLS && !inc.tls {
            return refuse(
                tx,
                rng,
                StatusCode::FORBIDDEN,
                "security level requires TLS",
                Some("this subscriber syncs over HTTPS only".into()),
                false,
            );
        }
        if level >= security_level::PIN {
            let emi = hdr.meta.as_ref().and_then(|m| auth::pin::find(&m.emi));
            let Some(digest) = emi else {
                return refuse(
                    tx,
                    rng,
                    StatusCode::MISSING_CREDENTIALS,
                    "PIN required but not sent",
                    Some(format!(
                        "PIN required: send SyncHdr/Meta/EMI {PIN_EMI_PREFIX}<digest>"
                    )),
                    false,
                );
            };
            let verifier = sub
                .as_ref()
                .and_then(|s| s.pin_verifier.as_ref())
                .map(|v| v.expose().to_string())
                .filter(|v| v.starts_with("md5:"));
            let Some(verifier) = verifier else {
                return refuse(
                    tx,
                    rng,
                    StatusCode::FORBIDDEN,
                    "PIN required but none is set for the subscriber",
                    Some("no PIN is set for this subscriber; ask the operator".into()),
                    false,
                );
            };
            if !auth::pin::verify(digest, &verifier, &nonce_bytes) {
                return refuse(
                    tx,
                    rng,
                    StatusCode::INVALID_CREDENTIALS,
                    "wrong PIN",
                    None,
                    true,
                );
            }
        }

        // Only keys with failures on record are reset (a write less per session for the
        // usual handset). A failure another node records meanwhile stays on record and
        // counts towards a lock-out until the next success.
        if had_failures.0 {
            tx.lockout_reset(LockoutKey::Terminal(&t.terminal_id))?;
        }
        if had_failures.1 {
            tx.lockout_reset(LockoutKey::Subscriber(&t.subscriber_id))?;
        }
        let nonce = new_nonce(rng);
        tx.terminal_set_nonce(&t.subscriber_id, &t.terminal_id, Some(&nonce))?;
        tx.audit_append(&AuditEvent {
            at: now,
            subscriber_id: Some(t.subscriber_id.clone()),
            terminal_id: Some(t.terminal_id.clone()),
            kind: "auth".into(),
            status: Some(212),
            reason: format!("accepted ({scheme}, level {level})"),
            remote_addr: Some(inc.remote.to_string()),
        })?;
        Ok(AuthOutcome::Accepted {
            subscriber: t.subscriber_id,
            nonce,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn put_devinf(
        &self,
        tx: &mut dyn Tx,
        subscriber: &str,
        terminal: &str,
        msg_ref: &str,
        cmd: &Command,
        p: &GetPut,
        reply: &mut Reply,
    ) -> Result<(), StoreError> {
        let code = match p.items.first().and_then(|i| i.data.as_ref()) {
            Some(Data::DevInf(d)) => {
                store_devinf(tx, subscriber, terminal, d)?;
                StatusCode::OK
            }
            _ => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        };
        reply.status(msg_ref, cmd, code);
        Ok(())
    }

    fn get(
        &self,
        st: &SessionState,
        inc: &Incoming<'_>,
        msg_ref: &str,
        cmd: &Command,
        g: &GetPut,
        reply: &mut Reply,
    ) {
        let target = g
            .items
            .first()
            .and_then(|i| i.target.as_ref())
            .map(|t| t.loc_uri.trim().to_string())
            .unwrap_or_default();
        if target != "./devinf12" && target != "./devinf11" && target != "./devinf10" {
            reply.status(msg_ref, cmd, StatusCode::NOT_FOUND);
            return;
        }
        reply.status(msg_ref, cmd, StatusCode::OK);
        let v11 = st.ver_dtd == "1.1" || target == "./devinf11";
        let devinf = datastores::server_devinf(v11, inc.base_url, &client_uris(st, inc.msg));
        let id = reply.id();
        reply.commands.push(Command::Results(Results {
            cmd_id: id,
            msg_ref: msg_ref.to_string(),
            cmd_ref: g.cmd_id.clone(),
            meta: Some(Meta::of_type(inc.encoding.devinf_mime_type())),
            target_ref: None,
            source_ref: None,
            items: vec![Item {
                source: Some(Source::new(target)),
                data: Some(Data::DevInf(Box::new(devinf))),
                ..Item::default()
            }],
        }));
    }

    #[allow(clippy::too_many_arguments)]
    fn alert(
        &self,
        tx: &mut dyn Tx,
        st: &mut SessionState,
        terminal: &Terminal,
        msg_ref: &str,
        cmd: &Command,
        a: &Alert,
        now: Timestamp,
        reply: &mut Reply,
    ) -> Result<(), StoreError> {
        let code = a.data.map(|c| c.0).unwrap_or(0);
        let Some(item) = a.items.first() else {
            reply.status(msg_ref, cmd, StatusCode::INCOMPLETE_COMMAND);
            return Ok(());
        };
        let summary = match summary::requested(item) {
            Ok(s) => s,
            Err(code) => {
                reply.status(msg_ref, cmd, code);
                return Ok(());
            }
        };
        let server_uri = item
            .target
            .as_ref()
            .map(|t| t.loc_uri.clone())
            .unwrap_or_default();
        let client_uri = item
            .source
            .as_ref()
            .map(|s| s.loc_uri.clone())
            .unwrap_or_default();
        // Server-alerted codes answered by the client map to their client equivalents.
        let requested = match code {
            206 => 200,
            207 => 202,
            208 => 203,
            209 => 204,
            210 => 205,
            // Resume (SUS-04): the suspended session's sync type, else a two-way sync
            // answered 509 (SUS-05).
            225 => 200,
            c => c,
        };
        if !(200..=205).contains(&requested) {
            reply.status(msg_ref, cmd, StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED);
            return Ok(());
        }
        let Some(def) = datastores::resolve(&server_uri) else {
            info!(uri = %server_uri, "alert for an unknown datastore");
            reply.status(msg_ref, cmd, StatusCode::NOT_FOUND);
            return Ok(());
        };
        if !may_sync(terminal, def.name) {
            info!(datastore = def.name, terminal = %terminal.terminal_id, "datastore outside the terminal's classes");
            tx.audit_append(&AuditEvent {
                at: now,
                subscriber_id: Some(terminal.subscriber_id.clone()),
                terminal_id: Some(terminal.terminal_id.clone()),
                kind: "datastore".into(),
                status: Some(403),
                reason: format!("{} is not among the terminal's data classes", def.name),
                remote_addr: None,
            })?;
            reply.status(msg_ref, cmd, StatusCode::FORBIDDEN);
            return Ok(());
        }
        let anchor = item
            .meta
            .as_ref()
            .and_then(|m| m.anchor.clone())
            .unwrap_or(Anchor {
                last: None,
                next: String::new(),
            });
        if code == 225 {
            if let Some(mut ds) = self.take_suspended(tx, terminal, def.name, now)? {
                // Continue where the suspended session stood: its sync type, its mark
                // (nothing was acknowledged since), what the client wrote in it. The
                // client's package 3 follows, then package 4 is built anew, so what the
                // client never acknowledged is sent again.
                ds.client_uri = client_uri.clone();
                ds.server_uri = server_uri.clone();
                ds.client_next = anchor.next.trim().to_string();
                ds.snapshot_rev = None;
                ds.client_sync_seen = false;
                ds.sent_changes = 0;
                ds.summary = summary;
                let (effective, server_last, server_next) =
                    (ds.alert, ds.server_last.clone(), ds.server_next.clone());
                st.stores.retain(|s| s.name != def.name);
                st.stores.push(ds);
                info!(datastore = def.name, effective, "suspended session resumed");
                self.answer_alert(
                    reply,
                    msg_ref,
                    cmd,
                    StatusCode::OK,
                    &anchor.next,
                    effective,
                    AlertUris {
                        client_uri,
                        server_uri,
                    },
                    Anchor {
                        last: server_last,
                        next: server_next,
                    },
                );
                return Ok(());
            }
            info!(
                datastore = def.name,
                "nothing to resume; two-way or slow sync instead"
            );
        }
        let key = SyncKey::new(&terminal.subscriber_id, &terminal.terminal_id, def.name);
        let prev = tx.sync_state_get(key)?;
        let anchors_match = match (&prev, &anchor.last) {
            (Some(p), Some(last)) => p.client_anchor.as_deref().map(str::trim) == Some(last.trim()),
            _ => false,
        };
        let mut effective = requested;
        let mut status = StatusCode::OK;
        // The revision the terminal acknowledged, when its map is kept (see below).
        let mut map_kept_acked = None;
        if matches!(requested, 200 | 202 | 204) && !anchors_match {
            // First sync or anchor mismatch: refresh required, slow sync (SRV, SP11 §2.2.1).
            effective = 201;
            status = StatusCode::REFRESH_REQUIRED;
            // The map is kept only for a client that says it synced before (a Last
            // anchor): one that has none holds nothing it got from us under a LUID.
            if anchor.last.as_deref().is_some_and(|l| !l.trim().is_empty()) {
                map_kept_acked = prev.as_ref().map(|p| p.acked_revision);
            }
        } else if code == 225 {
            // Resume refused: a normal two-way sync instead (SUS-05).
            status = StatusCode(509);
        }
        match (&prev, map_kept_acked) {
            (Some(p), Some(acked)) => {
                // We force this slow sync: the client asked for a normal one, so it still
                // holds its LUIDs, but our anchors moved in a session whose last answer it
                // never got (or it lost its own). Its map stays, so its items are matched
                // by LUID and judged against the revision it acknowledged: an unchanged
                // copy of an item changed or deleted here since gets our version, and is
                // not merged back as an item of its own. Only the client's anchor goes:
                // should this session not complete, the next is made slow again (508),
                // against the same revision.
                info!(
                    datastore = def.name,
                    acked, "server-forced slow sync keeps the map"
                );
                tx.sync_state_put(
                    key,
                    &SyncState {
                        client_anchor: None,
                        updated_at: now,
                        ..p.clone()
                    },
                )?;
            }
            _ if matches!(effective, 201 | 203 | 205) => {
                // The client's item IDs are re-established by this sync. The stored
                // anchors go with the old map: should this session not complete, the
                // next one must not be a normal sync over an empty map (every known item
                // would come back as new, a duplicate), so it finds no anchors and is
                // made slow (508).
                tx.map_clear(key)?;
                tx.sync_state_delete(key)?;
            }
            _ => {}
        }
        let server_next = fmt_anchor(now);
        let ds = DsState {
            name: def.name.to_string(),
            client_uri: client_uri.clone(),
            server_uri: server_uri.clone(),
            alert: effective,
            client_next: anchor.next.trim().to_string(),
            server_next: server_next.clone(),
            server_last: prev.as_ref().and_then(|p| p.server_anchor.clone()),
            acked_before: if matches!(effective, 201 | 203 | 205) {
                0
            } else {
                prev.as_ref().map(|p| p.acked_revision).unwrap_or(0)
            },
            snapshot_rev: None,
            client_sync_seen: false,
            written: Vec::new(),
            sent_changes: 0,
            summary,
            delivered: Default::default(),
            accepts: Vec::new(),
            map_kept_acked,
            send_back: Vec::new(),
            send_delete: Vec::new(),
        };
        st.stores.retain(|s| s.name != def.name);
        let server_last = ds.server_last.clone();
        st.stores.push(ds);
        debug!(datastore = def.name, requested, effective, "alert");
        self.answer_alert(
            reply,
            msg_ref,
            cmd,
            status,
            &anchor.next,
            effective,
            AlertUris {
                client_uri,
                server_uri,
            },
            Anchor {
                last: server_last,
                next: server_next,
            },
        );
        Ok(())
    }

    /// Answers a sync Alert: its Status echoes the client's Next anchor (in the Status
    /// item), and our own Alert carries the sync type in effect with our anchors.
    #[allow(clippy::too_many_arguments)]
    fn answer_alert(
        &self,
        reply: &mut Reply,
        msg_ref: &str,
        cmd: &Command,
        status: StatusCode,
        client_next: &str,
        effective: u32,
        uris: AlertUris,
        ours: Anchor,
    ) {
        let i = reply.status(msg_ref, cmd, status);
        if let Some(Command::Status(s)) = reply.statuses.get_mut(i) {
            s.items = vec![Item {
                data: Some(Data::Anchor(Anchor {
                    last: None,
                    next: client_next.to_string(),
                })),
                ..Item::default()
            }];
        }
        let id = reply.id();
        reply.commands.push(Command::Alert(Alert {
            cmd_id: id,
            data: Some(AlertCode(effective)),
            items: vec![Item {
                target: Some(Target::new(uris.client_uri)),
                source: Some(Source::new(uris.server_uri)),
                meta: Some(Meta {
                    anchor: Some(ours),
                    max_obj_size: Some(self.cfg.max_obj_size),
                    ..Meta::default()
                }),
                ..Item::default()
            }],
            ..Alert::default()
        }));
    }

    #[allow(clippy::too_many_arguments)]
    fn client_sync(
        &self,
        tx: &mut dyn Tx,
        st: &mut SessionState,
        terminal: &Terminal,
        msg_ref: &str,
        cmd: &Command,
        s: &Sync,
        now: Timestamp,
        reply: &mut Reply,
    ) -> Result<(), StoreError> {
        let target = s
            .target
            .as_ref()
            .map(|t| t.loc_uri.clone())
            .unwrap_or_default();
        let def = datastores::resolve(&target);
        let Some(def) = def.filter(|d| st.stores.iter().any(|x| x.name == d.name)) else {
            reply.status(msg_ref, cmd, StatusCode::NOT_FOUND);
            for c in &s.commands {
                reply.status(msg_ref, c, StatusCode::NOT_FOUND);
            }
            return Ok(());
        };
        let i = reply.status(msg_ref, cmd, StatusCode::OK);
        if let Some(Command::Status(x)) = reply.statuses.get_mut(i) {
            x.target_refs = vec![target.clone()];
            x.source_refs = s.source.iter().map(|x| x.loc_uri.clone()).collect();
        }
        let sub = terminal.subscriber_id.as_str();
        let term = terminal.terminal_id.as_str();
        let dsk = DatastoreKey::new(sub, def.name);
        let sk = SyncKey::new(sub, term, def.name);
        let Some(ds) = st.store_mut(def.name) else {
            return Ok(());
        };
        ds.client_sync_seen = true;
        let alert = ds.alert;
        if matches!(alert, 204 | 205) {
            // One-way / refresh from server: the client must not send changes.
            for c in &s.commands {
                reply.status(msg_ref, c, StatusCode::COMMAND_NOT_ALLOWED);
            }
            return Ok(());
        }
        // Slow sync and refresh from client match the client's items against ours by
        // content: our unmapped items, keyed on the first client item that needs them (a
        // client that sends nothing, as in a download to an empty handset, costs nothing).
        let mut unmatched: Option<Unmatched> = None;
        // Slow sync over a kept map: content keys of the mapped live items, read only if
        // a LUID we do not know matches no unmapped item.
        let mut mapped_keys: Option<Vec<(Vec<u8>, String)>> = None;
        let mut conflict_set: Option<std::collections::HashSet<String>> = None;
        let policy = self.cfg.policy_for(def.name);
        let acked = st
            .stores
            .iter()
            .find(|d| d.name == def.name)
            .map(|d| d.acked_before)
            .unwrap_or(0);
        // A slow sync the server forced keeps the terminal's map (see `alert`): a mapped
        // item is judged against the revision the terminal acknowledged.
        let kept_acked = st
            .stores
            .iter()
            .find(|d| d.name == def.name)
            .and_then(|d| d.map_kept_acked)
            .filter(|_| alert == 201);
        // The LUIDs of this Sync, looked up in one round trip, and the client's items,
        // written in one batch (see `WriteBatch`).
        let luids: Vec<String> = s
            .commands
            .iter()
            .flat_map(|c| match c {
                Command::Add(ic) | Command::Replace(ic) => ic.items.as_slice(),
                Command::Delete(d) => d.items.as_slice(),
                _ => &[],
            })
            .map(item_luid)
            .filter(|l| valid_id(l))
            .collect();
        let mut lookup = LuidLookup {
            known: Some(tx.map_guids_for_luids(sk, &luids)?),
            seen: Default::default(),
        };
        let mut batch = WriteBatch::default();
        let keys = (dsk, sk, term);
        for c in &s.commands {
            let meta = match c {
                Command::Add(x) | Command::Replace(x) => x.meta.as_ref(),
                Command::Delete(d) => d.meta.as_ref(),
                _ => None,
            };
            match c {
                Command::Add(ic) | Command::Replace(ic) => {
                    let is_add = matches!(c, Command::Add(_));
                    for item in &ic.items {
                        // Large objects arrive in chunks (LOB items): buffer them in the
                        // session until the last one, then take the whole object.
                        let whole;
                        let item = match self.lob_chunk(st, def.name, c, item, meta, msg_ref, reply)
                        {
                            LobStep::Whole => item,
                            LobStep::Complete(i) => {
                                whole = i;
                                &whole
                            }
                            LobStep::Handled => continue,
                        };
                        let luid = item_luid(item);
                        if !valid_id(&luid) {
                            // Without a usable LUID the item could never be mapped, so
                            // the server would send it back as new: refuse it instead.
                            debug!(luid = %luid, "data item without a usable LUID");
                            reply.item_status(msg_ref, c, item, StatusCode::INCOMPLETE_COMMAND);
                            continue;
                        }
                        let data = item_bytes(item, meta);
                        if data.len() as u64 > self.cfg.max_obj_size {
                            reply.item_status(
                                msg_ref,
                                c,
                                item,
                                StatusCode::REQUEST_ENTITY_TOO_LARGE,
                            );
                            continue;
                        }
                        let ctype = content_type(item, meta, def, &data);
                        let mut guid = lookup.guid(tx, keys, &mut batch, st, now, &luid)?;
                        let mut code = if is_add {
                            StatusCode::ITEM_ADDED
                        } else {
                            StatusCode::OK
                        };
                        if let (Some(kept), Some(g)) = (kept_acked, guid.clone()) {
                            let step = kept_map_step(
                                tx,
                                KeptItem {
                                    def,
                                    dsk,
                                    term,
                                    kept,
                                    guid: &g,
                                    client: (&ctype, &data),
                                    policy,
                                },
                                &mut conflict_set,
                            )?;
                            debug!(guid = %g, ?step, "slow sync over a kept map");
                            let (guid, status) = match step {
                                KeptStep::Same => (g, code),
                                KeptStep::SendBack(conflict) => {
                                    if let Some(ds) = st.store_mut(def.name) {
                                        push_once(&mut ds.send_back, &g);
                                    }
                                    reply.item_status(msg_ref, c, item, conflict.unwrap_or(code));
                                    continue;
                                }
                                KeptStep::SendDelete => {
                                    if let Some(ds) = st.store_mut(def.name) {
                                        push_once(&mut ds.send_delete, &g);
                                    }
                                    reply.item_status(msg_ref, c, item, code);
                                    continue;
                                }
                                KeptStep::Write(over, conflict) => {
                                    let status = match (conflict, &over) {
                                        (Some(s), _) => s,
                                        (None, None) => StatusCode::ITEM_ADDED,
                                        (None, Some(_)) => code,
                                    };
                                    // Written with the Sync's other items; the GUID
                                    // joins `written` then.
                                    batch.push(over, luid, ctype, data);
                                    reply.item_status(msg_ref, c, item, status);
                                    continue;
                                }
                            };
                            if let Some(ds) = st.store_mut(def.name) {
                                ds.written.push(guid);
                            }
                            reply.item_status(msg_ref, c, item, status);
                            continue;
                        }
                        if guid.is_none() && matches!(alert, 201 | 203) {
                            let k = format_key(def, &ctype, &data);
                            let pool = match &mut unmatched {
                                Some(pool) => pool,
                                None => unmatched.insert(Unmatched::load(tx, def, dsk, sk)?),
                            };
                            let mut found = pool.take(&k);
                            if found.is_none() && kept_acked.is_some() {
                                // Over a kept map, a LUID we do not know may still name
                                // an item we hold under another one (the client gave it a
                                // new LUID): one that no LUID of this sync has claimed.
                                let keys = match &mut mapped_keys {
                                    Some(keys) => keys,
                                    None => {
                                        mapped_keys.insert(mapped_content_keys(tx, def, dsk, sk)?)
                                    }
                                };
                                let claimed = |g: &String| {
                                    st.stores.iter().any(|d| {
                                        d.name == def.name
                                            && (d.written.contains(g)
                                                || d.send_back.contains(g)
                                                || d.send_delete.contains(g))
                                    })
                                };
                                found = keys
                                    .iter()
                                    .position(|(ck, g)| *ck == k && !claimed(g))
                                    .map(|pos| keys.swap_remove(pos).1);
                            }
                            if let Some(g) = found {
                                // Same content already on the server: map, don't duplicate
                                // (a pair with this GUID and another LUID goes).
                                tx.map_put(sk, &[MapEntry::new(luid.clone(), g.clone())])?;
                                lookup.known = None;
                                if let Some(ds) = st.store_mut(def.name) {
                                    ds.written.push(g);
                                }
                                reply.item_status(msg_ref, c, item, code);
                                continue;
                            }
                        }
                        if let Some(g) = guid.clone() {
                            match tx.item_get(dsk, &g)?.filter(|i| !i.deleted) {
                                None => guid = None,
                                Some(cur)
                                    if same_content(
                                        def,
                                        (&cur.content_type, &cur.data),
                                        (&ctype, &data),
                                    ) =>
                                {
                                    // The client sends what we hold already (SyncEvolution
                                    // reports an item it received one-way from the server
                                    // as an Add in its next upload): no new revision, so
                                    // the other handsets are not sent a change that
                                    // changes nothing, and no conflict can arise.
                                    if let Some(ds) = st.store_mut(def.name) {
                                        ds.written.push(g);
                                    }
                                    reply.item_status(msg_ref, c, item, code);
                                    continue;
                                }
                                Some(_) => {}
                            }
                        }
                        if guid.is_none() {
                            code = StatusCode::ITEM_ADDED;
                        } else if alert == 200 {
                            // Conflict: another terminal changed this item since our mark.
                            let conflicted = match &guid {
                                Some(g) => {
                                    changed_elsewhere(&mut conflict_set, tx, dsk, acked, term)?
                                        .contains(g)
                                }
                                None => false,
                            };
                            let policy = match (conflicted, policy, &guid) {
                                (true, ConflictPolicy::NewerWins, Some(g)) => {
                                    let server_at = tx.item_get(dsk, g)?.map(|i| i.updated_at);
                                    match (modified_at(&data), server_at) {
                                        (Some(c), Some(s)) if c > s => ConflictPolicy::ClientWins,
                                        _ => ConflictPolicy::ServerWins,
                                    }
                                }
                                (_, p, _) => p,
                            };
                            if conflicted {
                                match policy {
                                    ConflictPolicy::ServerWins => {
                                        reply.item_status(
                                            msg_ref,
                                            c,
                                            item,
                                            StatusCode::CONFLICT_RESOLVED_WITH_SERVER_DATA,
                                        );
                                        continue;
                                    }
                                    ConflictPolicy::ClientWins => {
                                        code = StatusCode::CONFLICT_RESOLVED_CLIENT_WINNING
                                    }
                                    ConflictPolicy::Duplicate => {
                                        guid = None;
                                        code = StatusCode::CONFLICT_RESOLVED_WITH_DUPLICATE;
                                    }
                                    ConflictPolicy::NewerWins => unreachable!("resolved above"),
                                }
                            }
                        }
                        batch.push(guid, luid, ctype, data);
                        reply.item_status(msg_ref, c, item, code);
                    }
                }
                Command::Delete(d) => {
                    lob_abandon(st, reply);
                    for item in &d.items {
                        let luid = item_luid(item);
                        let code = match lookup.guid(tx, keys, &mut batch, st, now, &luid)? {
                            Some(g)
                                if alert == 200
                                    && policy != ConflictPolicy::ClientWins
                                    && changed_elsewhere(
                                        &mut conflict_set,
                                        tx,
                                        dsk,
                                        acked,
                                        term,
                                    )?
                                    .contains(&g)
                                    && tx.item_get(dsk, &g)?.is_some_and(|i| !i.deleted) =>
                            {
                                // Another terminal changed the item the client deleted:
                                // the change wins over the delete (nothing is lost). The
                                // client's LUID is forgotten, so package 4 sends the item
                                // back to it as an Add.
                                debug!(guid = %g, "delete of an item changed elsewhere refused");
                                tx.map_remove_luids(sk, std::slice::from_ref(&luid))?;
                                StatusCode::CONFLICT_RESOLVED_WITH_SERVER_DATA
                            }
                            Some(g) => {
                                let r = tx.items_delete(
                                    dsk,
                                    Some(term),
                                    std::slice::from_ref(&g),
                                    now,
                                )?;
                                tx.map_remove_luids(sk, std::slice::from_ref(&luid))?;
                                if r.first().copied().flatten().is_some() {
                                    StatusCode::OK
                                } else {
                                    StatusCode::ITEM_NOT_DELETED
                                }
                            }
                            None => StatusCode::ITEM_NOT_DELETED,
                        };
                        reply.item_status(msg_ref, c, item, code);
                    }
                }
                other => {
                    lob_abandon(st, reply);
                    reply.status(msg_ref, other, StatusCode::COMMAND_NOT_ALLOWED);
                }
            }
        }
        batch.flush(tx, keys, st, now)
    }

    /// Takes one Add/Replace item through large-object reassembly (LOB-08 to LOB-14).
    #[allow(clippy::too_many_arguments)]
    fn lob_chunk(
        &self,
        st: &mut SessionState,
        datastore: &str,
        c: &Command,
        item: &Item,
        meta: Option<&Meta>,
        msg_ref: &str,
        reply: &mut Reply,
    ) -> LobStep {
        let chunk = item.data.as_ref().and_then(Data::as_bytes).unwrap_or(&[]);
        if let Some(p) = st.pending_lob.as_mut() {
            let (target, source) = item_key(item);
            if p.datastore == datastore
                && p.cmd == c.name()
                && p.target == target
                && p.source == source
            {
                p.bytes.extend_from_slice(chunk);
                let received = p.bytes.len() as u64;
                let declared = p.declared;
                if received > declared || (!item.more_data && received != declared) {
                    warn!(declared, received, "large object size mismatch; not stored");
                    st.pending_lob = None;
                    reply.item_status(msg_ref, c, item, StatusCode::SIZE_MISMATCH);
                    return LobStep::Handled;
                }
                if item.more_data {
                    reply.item_status(msg_ref, c, item, StatusCode::CHUNKED_ITEM_ACCEPTED);
                    return LobStep::Handled;
                }
                let Some(p) = st.pending_lob.take() else {
                    return LobStep::Handled;
                };
                debug!(datastore, size = declared, "large object complete");
                return LobStep::Complete(Item {
                    target: p.target.map(Target::new),
                    source: p.source.map(Source::new),
                    meta: Some(Meta {
                        r#type: p.content_type,
                        format: p.format,
                        ..Meta::default()
                    }),
                    data: Some(Data::Binary(p.bytes)),
                    ..Item::default()
                });
            }
            // A new object before the last chunk of the pending one.
            lob_abandon(st, reply);
        }
        if !item.more_data {
            return LobStep::Whole;
        }
        let item_meta = item.meta.as_ref();
        let Some(declared) = item_meta.and_then(|m| m.size).or(meta.and_then(|m| m.size)) else {
            reply.item_status(msg_ref, c, item, StatusCode::SIZE_REQUIRED);
            return LobStep::Handled;
        };
        if declared > self.cfg.max_obj_size {
            reply.item_status(msg_ref, c, item, StatusCode::REQUESTED_SIZE_TOO_BIG);
            return LobStep::Handled;
        }
        if chunk.len() as u64 > declared {
            reply.item_status(msg_ref, c, item, StatusCode::SIZE_MISMATCH);
            return LobStep::Handled;
        }
        let (target, source) = item_key(item);
        st.pending_lob = Some(PendingLob {
            datastore: datastore.to_string(),
            cmd: c.name().to_string(),
            target,
            source,
            content_type: item_meta
                .and_then(|m| m.r#type.clone())
                .or_else(|| meta.and_then(|m| m.r#type.clone())),
            format: item_meta
                .and_then(|m| m.format.clone())
                .or_else(|| meta.and_then(|m| m.format.clone())),
            declared,
            bytes: chunk.to_vec(),
        });
        reply.item_status(msg_ref, c, item, StatusCode::CHUNKED_ITEM_ACCEPTED);
        LobStep::Handled
    }

    /// The smallest message a chunk of a large object shares: our header and the
    /// SyncHdr Status we put in every reply, twice (room for one more Status, such as
    /// that of the client's Alert 222).
    fn lob_template(&self, st: &SessionState, inc: &Incoming<'_>, reply: &Reply) -> SyncMl {
        let mut r = Reply::empty();
        if let Some(h) = reply.statuses.first() {
            r.statuses = vec![h.clone(), h.clone()];
        }
        self.finish(st, inc, r, true)
    }

    /// Builds package 4 (the server's modifications) and sends as much as fits. Returns
    /// whether that was all of it, and the rows of the rest, for
    /// [`Tx::session_pending_put`] once the session is saved.
    fn start_pkg4(
        &self,
        tx: &mut dyn Tx,
        st: &mut SessionState,
        terminal: &Terminal,
        inc: &Incoming<'_>,
        now: Timestamp,
        reply: &mut Reply,
    ) -> Result<(bool, Vec<PendingCommand>), StoreError> {
        let sub = terminal.subscriber_id.clone();
        let term = terminal.terminal_id.clone();
        // What the client can take: MaxObjSize, and whether it accepts chunked items
        // (its DevInf's SupportLargeObjs; without a DevInf we assume it does).
        let limit = msg_limit(st);
        let empty = self.lob_template(st, inc, reply);
        let max_obj = st.client_max_obj_size;
        // Its DevInf, read once: SupportLargeObjs, and the content types each data store
        // receives (items in another format are converted, see `outbound`).
        let devinf = client_devinf(tx, &sub, &term)?;
        let large_ok = devinf.as_ref().is_none_or(|d| d.support_large_objs);
        let mut syncs = Vec::new();
        let mut ids = BuildIds::default();
        for ds in st.stores.iter_mut() {
            let dsk = DatastoreKey::new(&sub, &ds.name);
            let sk = SyncKey::new(&sub, &term, &ds.name);
            let snapshot = tx.datastore_revision(dsk)?;
            ds.snapshot_rev = Some(snapshot);
            if ds.alert == 203 {
                // Refresh from client: the server keeps exactly what the client sent.
                let keep: std::collections::HashSet<&String> = ds.written.iter().collect();
                let doomed: Vec<String> = tx
                    .items_list_live(dsk)?
                    .into_iter()
                    .map(|i| i.guid)
                    .filter(|g| !keep.contains(g))
                    .collect();
                if !doomed.is_empty() {
                    tx.items_delete(dsk, Some(&term), &doomed, now)?;
                }
                ds.snapshot_rev = Some(tx.datastore_revision(dsk)?);
            }
            let mut cmds: Vec<Command> = Vec::new();
            let mut out = outbound::Outbound::new(devinf.as_ref(), &ds.client_uri, &ds.name);
            ds.accepts = out.accepts();
            let want_changes = matches!(ds.alert, 200 | 201 | 204 | 205);
            if want_changes {
                let mapped: std::collections::HashMap<String, String> = tx
                    .map_list(sk)?
                    .into_iter()
                    .map(|m| (m.guid, m.luid))
                    .collect();
                if matches!(ds.alert, 201 | 205) {
                    // A slow sync over a kept map (see `alert`): besides what the client
                    // does not hold, our newer versions of its unchanged copies go as
                    // Replaces and items deleted here as Deletes, to its LUIDs.
                    let kept = ds.alert == 201 && ds.map_kept_acked.is_some();
                    let ours: std::collections::HashSet<&str> = ds
                        .send_back
                        .iter()
                        .chain(&ds.send_delete)
                        .map(String::as_str)
                        .collect();
                    let held: std::collections::HashSet<&str> =
                        ds.written.iter().map(String::as_str).collect();
                    let mut gone = Vec::new();
                    let mut live = std::collections::HashSet::new();
                    // Planned from the items' sizes: the data of most items is read only
                    // when a message of package 4 sends them (`pending::rows`).
                    let mut plan = Planner::new(limit, max_obj, ds.summary.is_none());
                    // In package order: a planned Add, or an item whose command goes
                    // with its data now (a Replace of the client's copy, to its LUID; an
                    // item too large to plan, chunked or checked against MaxObjSize
                    // below), read in one go after the listing.
                    enum Slot {
                        /// CmdID, GUID, content type.
                        Planned(String, String, String),
                        /// CmdID, the client's LUID for a Replace, GUID, revision.
                        Now(String, Option<String>, String, i64),
                    }
                    let mut slots = Vec::new();
                    for it in tx.items_list_live_sizes(dsk)? {
                        if kept {
                            live.insert(it.guid.clone());
                        }
                        if ds.delivered.get(&it.guid) == Some(&it.revision) {
                            // Acknowledged in the session this one resumes.
                            continue;
                        }
                        let luid = mapped.get(&it.guid);
                        match luid {
                            Some(l) if kept && ours.contains(it.guid.as_str()) => {
                                let cid = ids.item(&ds.name, &it.guid, it.revision);
                                slots.push(Slot::Now(cid, Some(l.clone()), it.guid, it.revision));
                                continue;
                            }
                            Some(_) if !kept || held.contains(it.guid.as_str()) => continue,
                            // Mapped, but the client did not send it in this slow sync:
                            // it no longer holds it. Its map entry goes (the client maps
                            // the Add anew in package 5).
                            Some(_) => gone.push(it.guid.clone()),
                            None => {}
                        }
                        slots.push(match plan.estimate(&it, inc.encoding) {
                            Some(size) => {
                                let cid = ids.planned(&ds.name, &it.guid, it.revision, size);
                                Slot::Planned(cid, it.guid, it.content_type)
                            }
                            None => {
                                let cid = ids.item(&ds.name, &it.guid, it.revision);
                                Slot::Now(cid, None, it.guid, it.revision)
                            }
                        });
                    }
                    let now: Vec<String> = slots
                        .iter()
                        .filter_map(|s| match s {
                            Slot::Now(_, _, guid, _) => Some(guid.clone()),
                            Slot::Planned(..) => None,
                        })
                        .collect();
                    let mut read: std::collections::HashMap<String, crate::store::Item> =
                        if now.is_empty() {
                            Default::default()
                        } else {
                            tx.items_get(dsk, &now)?
                                .into_iter()
                                .map(|i| (i.guid.clone(), i))
                                .collect()
                        };
                    for slot in slots {
                        match slot {
                            Slot::Planned(cid, guid, ctype) => {
                                cmds.push(add_cmd(cid, inc.encoding, &guid, &ctype, Vec::new()))
                            }
                            Slot::Now(cid, luid, guid, revision) => {
                                // One snapshot: the item is as listed. Should it have
                                // changed all the same, it is left out (its newer revision
                                // is above this session's mark: the next session sends it).
                                let Some(it) = read
                                    .remove(&guid)
                                    .filter(|i| i.revision == revision && !i.deleted)
                                else {
                                    continue;
                                };
                                let (ctype, data) = out.prepare(&guid, &it.content_type, it.data);
                                cmds.push(match luid {
                                    Some(l) => replace_cmd(cid, inc.encoding, &l, &ctype, data),
                                    None => add_cmd(cid, inc.encoding, &guid, &ctype, data),
                                });
                            }
                        }
                    }
                    if !gone.is_empty() {
                        debug!(datastore = %ds.name, items = gone.len(), "mapped items the client no longer holds go as Adds");
                        tx.map_remove_guids(sk, &gone)?;
                    }
                    // Deleted here (also: a version to send back that another terminal
                    // deleted since package 3): the client's copy goes.
                    let doomed: std::collections::BTreeSet<&String> = ds
                        .send_delete
                        .iter()
                        .chain(&ds.send_back)
                        .filter(|g| !live.contains(*g))
                        .collect();
                    for g in doomed {
                        let (Some(l), Some(tomb)) = (mapped.get(g), tx.item_get(dsk, g)?) else {
                            continue;
                        };
                        if !kept || !tomb.deleted || ds.delivered.get(g) == Some(&tomb.revision) {
                            continue;
                        }
                        let cid = ids.item(&ds.name, g, tomb.revision);
                        cmds.push(delete_cmd(cid, l));
                    }
                } else {
                    for ch in tx.changes_since(dsk, ds.acked_before, Some(&term), None)? {
                        if ds.delivered.get(&ch.guid) == Some(&ch.revision) {
                            // Acknowledged in the session this one resumes.
                            continue;
                        }
                        let cid = ids.item(&ds.name, &ch.guid, ch.revision);
                        let luid = mapped.get(&ch.guid);
                        let (ctype, data) = match ch.kind {
                            ChangeKind::Upsert => out.prepare(&ch.guid, &ch.content_type, ch.data),
                            ChangeKind::Delete => (ch.content_type, ch.data),
                        };
                        match (ch.kind, luid) {
                            (ChangeKind::Upsert, Some(l)) => {
                                cmds.push(replace_cmd(cid, inc.encoding, l, &ctype, data))
                            }
                            (ChangeKind::Upsert, None) => {
                                cmds.push(add_cmd(cid, inc.encoding, &ch.guid, &ctype, data))
                            }
                            (ChangeKind::Delete, Some(l)) => cmds.push(delete_cmd(cid, l)),
                            (ChangeKind::Delete, None) => {}
                        }
                    }
                }
            }
            if let Some(props) = &ds.summary {
                summary::summarise(&mut cmds, props);
            }
            let mut shell = Sync {
                cmd_id: ids.plain(),
                target: Some(Target::new(ds.client_uri.clone())),
                source: Some(Source::new(ds.server_uri.clone())),
                number_of_changes: Some(cmds.len() as u32),
                ..Sync::default()
            };
            cmds.retain(|c| {
                sendable(
                    &empty,
                    &shell,
                    c,
                    limit,
                    max_obj,
                    large_ok,
                    inc.encoding,
                    &ds.name,
                )
            });
            ds.sent_changes = cmds.len() as u32;
            shell.number_of_changes = Some(cmds.len() as u32);
            shell.commands = cmds;
            syncs.push(Command::Sync(shell));
        }
        st.phase = Phase::ServerSync;
        let mut syncs = self.chunk_large_items(st, inc, reply, syncs);
        let (items, planned) = pending::number(&mut syncs, |id| ids.get(id));
        tx.session_pending_clear(&st.key)?;
        let unsent = if planned.is_empty() {
            let (rest, _) = self.send_pkg4(st, inc, reply, syncs, &items)?;
            // The rest waits in the store, one pending command each: each later message
            // reads and removes only about what it sends.
            pending::rows(rest, &items, st.chunk_sent.is_some(), &planned)?
        } else {
            // Planned Adds hold no data: the whole package becomes rows, and this
            // message sends the head of them as every later one does.
            let mut all = pending::rows(syncs, &items, false, &planned)?;
            let head = pending::head_len(&all, limit as u64);
            let decoded = self.pending_commands(tx, st, terminal, &all[..head], inc.encoding)?;
            let (_, sent) = self.send_pkg4(st, inc, reply, decoded.cmds, &decoded.items)?;
            let done: std::collections::HashSet<i64> =
                sent.iter().chain(&decoded.skipped).copied().collect();
            let through = all[..head]
                .iter()
                .take_while(|r| done.contains(&r.seq))
                .count();
            all.split_off(through)
        };
        if unsent.is_empty() {
            st.phase = Phase::Map;
        }
        Ok((unsent.is_empty(), unsent))
    }

    /// Items too large for a message go out as large-object chunks (MoreData, Size on
    /// the first), one message each; the client's 213 for a chunk asks for the next.
    /// Done once, when package 4 is built: the pending rest is stored chunked.
    fn chunk_large_items(
        &self,
        st: &SessionState,
        inc: &Incoming<'_>,
        reply: &Reply,
        cmds: Vec<Command>,
    ) -> Vec<Command> {
        let limit = msg_limit(st);
        let empty = self.lob_template(st, inc, reply);
        cmds.into_iter()
            .map(|c| match c {
                Command::Sync(mut sync) => {
                    let commands = std::mem::take(&mut sync.commands);
                    let shell = sync.clone();
                    // What a message holding one Add with an empty item takes: most items
                    // fit beside it by their lengths alone, without being encoded.
                    let base = encoded_need(&empty, &shell, &empty_add(), inc.encoding);
                    let mut out = Vec::with_capacity(commands.len());
                    for inner in commands {
                        if base.saturating_add(need_bound(&inner, inc.encoding)) <= limit {
                            out.push(inner);
                            continue;
                        }
                        match chunk_cmd(&empty, &shell, &inner, limit, inc.encoding) {
                            Some(chunks) => {
                                debug!(chunks = chunks.len(), "large object sent in chunks");
                                out.extend(chunks)
                            }
                            None => out.push(inner),
                        }
                    }
                    sync.commands = out;
                    Command::Sync(sync)
                }
                other => other,
            })
            .collect()
    }

    /// Sends the next message's worth of package 4 from the pending rows: only the head
    /// of the list is read and decoded, and only the rows sent are removed.
    fn continue_pkg4(
        &self,
        tx: &mut dyn Tx,
        st: &mut SessionState,
        terminal: &Terminal,
        inc: &Incoming<'_>,
        reply: &mut Reply,
    ) -> Result<bool, StoreError> {
        if let Some(b) = st.pending_pkg4.take() {
            // A session persisted by an older build: its rest of package 4 is one encoded
            // message in the state. Move it to rows once.
            let mut cmds = syncml_core::decode(&b)
                .map(|m| m.body.commands)
                .map_err(|e| StoreError::Corrupt(format!("pending package 4: {e}")))?;
            let built = std::mem::take(&mut st.pkg4_items);
            let (items, _) =
                pending::number(&mut cmds, |id| built.get(id).map(|i| (i.clone(), None)));
            tx.session_pending_clear(&st.key)?;
            let rows = pending::rows(cmds, &items, st.chunk_sent.is_some(), &Default::default())?;
            tx.session_pending_put(&st.key, &rows)?;
        }
        let limit = msg_limit(st);
        // The client's status for the chunk we sent last: 213 asks for the next one;
        // an error refuses the object, so its remaining chunks are not sent.
        if let Some((msg_id, cmd_id)) = st.chunk_sent.take() {
            let refusal = inc.msg.body.commands.iter().find_map(|c| match c {
                Command::Status(s)
                    if s.msg_ref.trim() == msg_id
                        && s.cmd_ref.trim() == cmd_id
                        && s.data != StatusCode::CHUNKED_ITEM_ACCEPTED
                        && !s.data.is_success() =>
                {
                    Some(s.data)
                }
                _ => None,
            });
            if let Some(code) = refusal {
                warn!(
                    status = code.0,
                    "client refused a chunk; the rest of that object is not sent"
                );
                drop_leading_chunks(tx, &st.key, limit)?;
            }
        }
        // About one message's worth by stored sizes (more in XML, which takes more room
        // than the WBXML the sizes are measured in): what does not fit stays pending.
        let budget = limit as u64;
        let head = tx.session_pending_head(&st.key, budget)?;
        let fetched: u64 = head.iter().map(|r| r.size.max(1) as u64).sum();
        let exhausted = fetched < budget;
        let last_fetched = head.last().map(|r| r.seq);
        let decoded = self.pending_commands(tx, st, terminal, &head, inc.encoding)?;
        let (_, sent) = self.send_pkg4(st, inc, reply, decoded.cmds, &decoded.items)?;
        // Rows sent or skipped, from the head on: those are done with.
        let done: std::collections::HashSet<i64> =
            sent.iter().chain(&decoded.skipped).copied().collect();
        let through = head
            .iter()
            .map(|r| r.seq)
            .take_while(|seq| done.contains(seq))
            .last();
        if let Some(through) = through {
            tx.session_pending_remove_through(&st.key, through)?;
        }
        if exhausted && last_fetched <= through {
            st.pkg4_items.clear();
            st.phase = Phase::Map;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// The commands of a message's worth of pending rows; rows by reference are built
    /// again from the items' current versions, read in one go per datastore, as
    /// `start_pkg4` built them (content converted for the client, titles-first filter).
    fn pending_commands(
        &self,
        tx: &mut dyn Tx,
        st: &SessionState,
        terminal: &Terminal,
        head: &[PendingCommand],
        enc: Encoding,
    ) -> Result<pending::Decoded, StoreError> {
        let mut wanted: std::collections::BTreeMap<&str, Vec<(String, i64)>> = Default::default();
        for r in head.iter().filter(|r| pending::is_reference(r)) {
            if let (Some(ds), Some(guid), Some(rev)) = (&r.datastore, &r.guid, r.revision) {
                wanted
                    .entry(ds.as_str())
                    .or_default()
                    .push((guid.clone(), rev));
            }
        }
        let sub = terminal.subscriber_id.as_str();
        // Only the versions the rows name: an item changed since is left out, and its row
        // skipped below.
        let mut current: std::collections::HashMap<
            &str,
            std::collections::HashMap<String, crate::store::Item>,
        > = Default::default();
        for (ds, guids) in &wanted {
            let items = tx.items_at_revisions(DatastoreKey::new(sub, ds), guids)?;
            current.insert(ds, items.into_iter().map(|i| (i.guid.clone(), i)).collect());
        }
        let store_of = |row: &PendingCommand| -> Result<&DsState, StoreError> {
            let name = row.datastore.as_deref().unwrap_or_default();
            st.stores.iter().find(|d| d.name == name).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "pending package 4: row {} of datastore {name} not in the session",
                    row.seq
                ))
            })
        };
        let mut outbound: std::collections::HashMap<String, outbound::Outbound> =
            Default::default();
        let rebuild = |row: &PendingCommand| {
            let (Some(name), Some(guid), Some(revision)) =
                (&row.datastore, &row.guid, row.revision)
            else {
                return Err(StoreError::Corrupt(format!(
                    "pending package 4: row {} by reference names no item",
                    row.seq
                )));
            };
            let ds = store_of(row)?;
            let found = current
                .get_mut(name.as_str())
                .and_then(|items| items.remove(guid.as_str()));
            let item = match found {
                Some(it) if !it.deleted && it.revision == revision => it,
                other => {
                    debug!(
                        datastore = %name,
                        guid = %guid,
                        now = ?other.map(|i| (i.revision, i.deleted)),
                        "item changed since package 4 was built; the next session sends it"
                    );
                    return Ok(None);
                }
            };
            let out = match outbound.get_mut(name.as_str()) {
                Some(out) => out,
                None => outbound
                    .entry(name.clone())
                    .or_insert_with(|| outbound::Outbound::from_accepts(name, &ds.accepts)),
            };
            let (ctype, data) = out.prepare(guid, &item.content_type, item.data);
            let mut cmd = add_cmd(row.seq.to_string(), enc, guid, &ctype, data);
            if let Some(props) = &ds.summary {
                summary::summarise(std::slice::from_mut(&mut cmd), props);
            }
            Ok(Some(cmd))
        };
        let shell = |row: &PendingCommand| {
            let ds = store_of(row)?;
            Ok(Sync {
                cmd_id: row.seq.to_string(),
                target: Some(Target::new(ds.client_uri.clone())),
                source: Some(Source::new(ds.server_uri.clone())),
                number_of_changes: Some(ds.sent_changes),
                ..Sync::default()
            })
        };
        pending::decode(head, rebuild, shell)
    }

    /// Sends as much of `cmds` (numbered by [`pending::number`]) as fits in the client's
    /// MaxMsgSize. Returns what did not fit, and the `seq`s of what was sent.
    fn send_pkg4(
        &self,
        st: &mut SessionState,
        inc: &Incoming<'_>,
        reply: &mut Reply,
        cmds: Vec<Command>,
        items: &std::collections::HashMap<i64, SentItem>,
    ) -> Result<(Vec<Command>, Vec<i64>), StoreError> {
        let limit = msg_limit(st);
        // Renumber so CmdIDs follow the statuses of this message.
        let template_reply = Reply {
            next_cmd: reply.next_cmd,
            statuses: reply.statuses.clone(),
            commands: reply.commands.clone(),
        };
        let template = self.finish(st, inc, template_reply, true);
        // Only this message's share is measured: the rest stays as it is (a long
        // package 4 costs per message what the message holds, not what is left).
        let (first, rest) = syncml_core::size::split_first(&template, cmds, limit, inc.encoding)
            .map_err(|e| {
                StoreError::InvalidInput(format!("package 4 does not fit MaxMsgSize: {e}"))
            })?;
        let sent = pending::sent_seqs(&first)?;
        st.chunk_sent = None;
        let msg_id = st.next_msg_id.to_string();
        for mut c in first {
            let built: Vec<i64> = match &c {
                Command::Sync(sync) => sync
                    .commands
                    .iter()
                    .map(|x| pending::seq_of(x.cmd_id()))
                    .collect::<Result<_, _>>()?,
                _ => Vec::new(),
            };
            renumber(&mut c, reply);
            if let Command::Sync(sync) = &c {
                for (seq, now) in built.iter().zip(&sync.commands) {
                    // Chunks carry their object's item too: the client's 213 for one is
                    // not a delivery (see `note_delivered`), its status for the last is.
                    if let Some(item) = items.get(seq) {
                        st.in_flight
                            .push((msg_id.clone(), now.cmd_id().to_string(), item.clone()));
                    }
                }
                // A chunk with more to follow ends this message (LOB-11): remember it
                // to read the client's status for it.
                if let Some(last) = sync.commands.last() {
                    if last.items().first().is_some_and(|i| i.more_data) {
                        st.chunk_sent =
                            Some((st.next_msg_id.to_string(), last.cmd_id().to_string()));
                    }
                }
            }
            reply.commands.push(c);
        }
        Ok((rest, sent))
    }

    /// The session is complete: move anchors and marks.
    fn complete(
        &self,
        tx: &mut dyn Tx,
        st: &mut SessionState,
        terminal: &Terminal,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        for ds in &st.stores {
            let key = SyncKey::new(&terminal.subscriber_id, &terminal.terminal_id, &ds.name);
            let acked = match ds.alert {
                // One-way from client: the client did not receive the others' changes.
                202 => ds.acked_before,
                _ => ds.snapshot_rev.unwrap_or(ds.acked_before),
            };
            if !ds.send_delete.is_empty() {
                // Deleted on the client in this session (kept until now: a session that
                // does not complete is followed by another slow sync that must still
                // know the client's copy).
                tx.map_remove_guids(key, &ds.send_delete)?;
            }
            tx.sync_state_put(
                key,
                &SyncState {
                    client_anchor: Some(ds.client_next.clone()),
                    server_anchor: Some(ds.server_next.clone()),
                    acked_revision: acked,
                    last_sync_type: Some(ds.alert as u16),
                    updated_at: now,
                },
            )?;
        }
        Ok(())
    }
}

/// What [`Engine::lob_chunk`] made of an incoming Add/Replace item.
// The item is moved straight out by the caller; boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum LobStep {
    /// Not chunked: process the item as it is.
    Whole,
    /// The last chunk of a large object: process the reassembled item.
    Complete(Item),
    /// A chunk was buffered (213) or refused (411, 416, 424): its status is in the reply.
    Handled,
}

/// CmdIDs for package 4 as it is built (1001, 1002, ...; [`pending::number`] gives the
/// final ones), and what each command sends: the item, and for a planned Add (no data
/// yet, see [`pending::rows`]) its estimated size. Indexed by CmdID, not keyed by text.
#[derive(Default)]
struct BuildIds {
    sent: Vec<Option<(SentItem, Option<i64>)>>,
}

impl BuildIds {
    const FIRST: usize = 1001;

    fn plain(&mut self) -> String {
        self.push(None)
    }

    fn push(&mut self, what: Option<(SentItem, Option<i64>)>) -> String {
        let id = Self::FIRST + self.sent.len();
        self.sent.push(what);
        id.to_string()
    }

    fn item(&mut self, datastore: &str, guid: &str, revision: i64) -> String {
        self.sent_item(datastore, guid, revision, None)
    }

    /// The CmdID of an Add planned from its item's size, whose data is read when a
    /// message sends it.
    fn planned(&mut self, datastore: &str, guid: &str, revision: i64, size: i64) -> String {
        self.sent_item(datastore, guid, revision, Some(size))
    }

    fn sent_item(
        &mut self,
        datastore: &str,
        guid: &str,
        revision: i64,
        size: Option<i64>,
    ) -> String {
        let item = SentItem {
            datastore: datastore.to_string(),
            guid: guid.to_string(),
            revision,
        };
        self.push(Some((item, size)))
    }

    /// What the command built as `cmd_id` sends (the chunks of a large object all
    /// send its item).
    fn get(&self, cmd_id: &str) -> Option<(SentItem, Option<i64>)> {
        let id: usize = cmd_id.parse().ok()?;
        let at = id.checked_sub(Self::FIRST)?;
        self.sent.get(at)?.clone()
    }
}

/// Which Adds of a download are planned from their items' sizes (their data read only
/// when a message sends them), and the sizes they are planned with.
struct Planner {
    /// Largest stored size planned without the data: a quarter of what a message or
    /// object may hold, so that whatever the item becomes (converted to the client's
    /// format, escaped in XML, Base64) it fits whole and unchunked, and within the
    /// client's MaxObjSize. Larger items are read now, to be chunked or refused.
    max_size: u64,
    /// Items go whole (titles-first items are cut to their summary when built: those
    /// are never planned).
    whole_items: bool,
    /// What an Add takes besides its data and GUID, per content type (WBXML, as
    /// [`pending::rows`] measures).
    base: std::collections::HashMap<String, i64>,
    meter: Option<syncml_core::size::CommandMeter>,
}

impl Planner {
    fn new(limit: usize, max_obj: Option<u64>, whole_items: bool) -> Planner {
        let by_msg = (limit as u64).saturating_sub(2048) / 4;
        let by_obj = max_obj.map_or(u64::MAX, |m| m / 4);
        Planner {
            whole_items,
            max_size: by_msg.min(by_obj),
            base: Default::default(),
            meter: None,
        }
    }

    /// The size to plan `it`'s Add with, or `None` when it is not planned.
    fn estimate(&mut self, it: &crate::store::ItemSize, enc: Encoding) -> Option<i64> {
        if !self.whole_items || it.size > self.max_size {
            return None;
        }
        let base = match self.base.get(&it.content_type) {
            Some(b) => *b,
            None => {
                let meter = self.meter.get_or_insert_with(pending::meter);
                let empty = add_cmd("1001".into(), enc, "", &it.content_type, Vec::new());
                let b = meter.measure(&empty).ok()?.saturating_sub(2) as i64;
                self.base.insert(it.content_type.clone(), b);
                b
            }
        };
        // The GUID's and the data's bytes, and the data's length prefix (WBXML OPAQUE).
        Some(base + it.guid.len() as i64 + it.size as i64 + 3)
    }
}

/// Reads the client's statuses for the package-4 commands of our previous message: an
/// item it took (or already had) is delivered, and a resumed session does not send it
/// again. Statuses that do not come in the next message are not waited for.
fn note_delivered(tx: &mut dyn Tx, st: &mut SessionState, msg: &SyncMl) -> Result<(), StoreError> {
    if st.in_flight.is_empty() {
        return Ok(());
    }
    let flight = std::mem::take(&mut st.in_flight);
    if st.phase != Phase::ServerSync {
        // Package 4 is complete: a suspend from here on resumes after it, and the
        // items' maps go first, so nothing needs remembering (most sessions: package 4
        // in one message, its statuses in package 5).
        return Ok(());
    }
    let by_ref: std::collections::HashMap<(&str, &str), &SentItem> = flight
        .iter()
        .map(|(m, c, item)| ((m.as_str(), c.as_str()), item))
        .collect();
    let mut took = Vec::new();
    for c in &msg.body.commands {
        let Command::Status(s) = c else { continue };
        let ok = (s.data.is_success() && s.data != StatusCode::CHUNKED_ITEM_ACCEPTED)
            || s.data == StatusCode::ALREADY_EXISTS;
        if !ok {
            continue;
        }
        if let Some(item) = by_ref.get(&(s.msg_ref.trim(), s.cmd_ref.trim())) {
            took.push(DeliveredItem {
                datastore: item.datastore.clone(),
                guid: item.guid.clone(),
                revision: item.revision,
            });
        }
    }
    // Beside the session record, not in it: a long package 4 would make the state grow
    // with every message. Read back only when the session is suspended.
    if took.is_empty() {
        return Ok(());
    }
    tx.session_delivered_put(&st.key, &took)
}

fn item_key(item: &Item) -> (Option<String>, Option<String>) {
    (
        item.target.as_ref().map(|t| t.loc_uri.trim().to_string()),
        item.source.as_ref().map(|s| s.loc_uri.trim().to_string()),
    )
}

/// Drops an incomplete incoming large object and tells the client with Alert 223 (No
/// End Of Data) naming the object's Source and Target (a Status cannot: there is no
/// CmdID to refer to; LOB-14).
fn lob_abandon(st: &mut SessionState, reply: &mut Reply) {
    let Some(p) = st.pending_lob.take() else {
        return;
    };
    warn!(
        datastore = %p.datastore,
        declared = p.declared,
        received = p.bytes.len(),
        "large object interrupted before its last chunk; dropped"
    );
    let id = reply.id();
    reply.commands.push(Command::Alert(Alert {
        cmd_id: id,
        data: Some(AlertCode(223)),
        items: vec![Item {
            target: p.target.map(Target::new),
            source: p.source.map(Source::new),
            ..Item::default()
        }],
        ..Alert::default()
    }));
}

/// The two datastore URIs of a sync Alert, as the client named them.
struct AlertUris {
    /// The client's datastore (our Alert's Target).
    client_uri: String,
    /// Ours, as the client addressed it (our Alert's Source).
    server_uri: String,
}

enum AuthOutcome {
    Accepted {
        subscriber: String,
        nonce: String,
    },
    Refused {
        code: StatusCode,
        nonce: String,
        /// Shown to the user by clients that display status items (why, what to do).
        why: Option<String>,
    },
}

pub use syncml_core::auth::pin::EMI_PREFIX as PIN_EMI_PREFIX;

/// The stored form of a subscriber's PIN ([`syncml_core::auth::pin::verifier`]).
pub fn pin_verifier(subscriber: &str, pin: &str) -> String {
    auth::pin::verifier(subscriber, pin)
}

/// The `EMI` value a client sends for the PIN ([`syncml_core::auth::pin::emi`]).
pub fn pin_emi(subscriber: &str, pin: &str, nonce: &[u8]) -> String {
    auth::pin::emi(subscriber, pin, nonce)
}

/// Security levels of a subscriber (`subscriber security-level`, FIG. 13-14, para.
/// 0057): what a session must show beyond a registered terminal bound to the subscriber
/// and that terminal's password, which every level checks.
pub mod security_level {
    /// Terminal binding and terminal password: every standard SyncML client.
    pub const PASSWORD: u8 = 0;
    /// As [`PASSWORD`], over TLS only.
    pub const TLS: u8 = 1;
    /// As [`TLS`], plus the subscriber's PIN through the EMI extension
    /// ([`super::PIN_EMI_PREFIX`]).
    pub const PIN: u8 = 2;
}

/// [`format_key`]s of the live items mapped in the terminal's map `sk`, with their GUIDs.
fn mapped_content_keys(
    tx: &mut dyn Tx,
    def: &DatastoreDef,
    dsk: DatastoreKey<'_>,
    sk: SyncKey<'_>,
) -> Result<Vec<(Vec<u8>, String)>, StoreError> {
    let mapped: std::collections::HashSet<String> =
        tx.map_list(sk)?.into_iter().map(|m| m.guid).collect();
    Ok(tx
        .items_list_live(dsk)?
        .into_iter()
        .filter(|it| mapped.contains(&it.guid))
        .map(|it| (format_key(def, &it.content_type, &it.data), it.guid))
        .collect())
}

/// The LUID an item of the client names: its Source, else its Target.
fn item_luid(item: &Item) -> String {
    item.source
        .as_ref()
        .map(|s| s.loc_uri.trim().to_string())
        .or_else(|| item.target.as_ref().map(|t| t.loc_uri.trim().to_string()))
        .unwrap_or_default()
}

/// The client's items of one `Sync` that go to the store as they are (new items and
/// plain replacements), written together when the `Sync` ends: one `items_put` and one
/// `map_put` for all of them instead of a few statements per item (on PostgreSQL those
/// were most of a two-way session's round trips). The statuses are answered at once;
/// a store error fails the whole message anyway.
#[derive(Default)]
struct WriteBatch {
    items: Vec<NewItem>,
    /// The client's LUID of each item (mapped when the item is new).
    luids: Vec<String>,
}

impl WriteBatch {
    fn push(&mut self, guid: Option<String>, luid: String, content_type: String, data: Vec<u8>) {
        self.items.push(NewItem {
            guid,
            content_type,
            data,
        });
        self.luids.push(luid);
    }

    /// Writes what waits; the GUIDs written join the datastore's `written`.
    fn flush(
        &mut self,
        tx: &mut dyn Tx,
        (dsk, sk, term): (DatastoreKey<'_>, SyncKey<'_>, &str),
        st: &mut SessionState,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if self.items.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.items);
        let luids = std::mem::take(&mut self.luids);
        let new: Vec<bool> = items.iter().map(|i| i.guid.is_none()).collect();
        let put = tx.items_put(dsk, Some(term), &items, now)?;
        let entries: Vec<MapEntry> = put
            .iter()
            .zip(luids)
            .zip(new)
            .filter(|(_, new)| *new)
            .map(|((p, luid), _)| MapEntry::new(luid, p.guid.clone()))
            .collect();
        tx.map_put(sk, &entries)?;
        if let Some(ds) = st.store_mut(dsk.datastore) {
            ds.written.extend(put.into_iter().map(|p| p.guid));
        }
        Ok(())
    }
}

/// LUID → GUID for the items of one `Sync`: read in one round trip at its start; a LUID
/// met a second time (its pair may be waiting in the [`WriteBatch`]), or any LUID after
/// a pair moved from one LUID to another, is read from the store again.
struct LuidLookup {
    known: Option<std::collections::HashMap<String, String>>,
    seen: std::collections::HashSet<String>,
}

impl LuidLookup {
    fn guid(
        &mut self,
        tx: &mut dyn Tx,
        keys: (DatastoreKey<'_>, SyncKey<'_>, &str),
        batch: &mut WriteBatch,
        st: &mut SessionState,
        now: Timestamp,
        luid: &str,
    ) -> Result<Option<String>, StoreError> {
        let again = !self.seen.insert(luid.to_string());
        match &self.known {
            Some(known) if !again => Ok(known.get(luid).cloned()),
            _ => {
                if again {
                    batch.flush(tx, keys, st, now)?;
                }
                tx.map_guid_for_luid(keys.1, luid)
            }
        }
    }
}

fn push_once(list: &mut Vec<String>, guid: &str) {
    if !list.iter().any(|g| g == guid) {
        list.push(guid.to_string());
    }
}

/// A client item of a slow sync over a kept map (see [`kept_map_step`]).
struct KeptItem<'a> {
    def: &'static DatastoreDef,
    dsk: DatastoreKey<'a>,
    /// The terminal.
    term: &'a str,
    /// The revision the terminal had acknowledged before this sync.
    kept: i64,
    /// The GUID the client's LUID is mapped to.
    guid: &'a str,
    /// The client's content type and data.
    client: (&'a str, &'a [u8]),
    policy: ConflictPolicy,
}

/// What a slow sync over a kept map does with a client item whose LUID is mapped.
#[derive(Debug, PartialEq, Eq)]
enum KeptStep {
    /// We hold what the client sent: nothing to write.
    Same,
    /// Our version goes to the client (a `Replace` to its LUID in package 4); the item is
    /// answered with the command's own status, or this conflict status.
    SendBack(Option<StatusCode>),
    /// Deleted here, and the client's copy is one it got from us: a `Delete` goes to it.
    SendDelete,
    /// The client's data is stored over the GUID (or as a new item, `None`), answered with
    /// the command's own status (201 for a new item), or this conflict status.
    Write(Option<String>, Option<StatusCode>),
}

/// Three-way decision for a client item of a slow sync that the server forced, its LUID
/// still mapped to `it.guid`: the client's copy, our current version, and the version the
/// terminal last acknowledged (the newest live one at or below `it.kept`, the "base").
///
/// * Ours is the same content: nothing to do.
/// * Ours is live and unchanged elsewhere since `kept`: the client changed it; its data
///   is stored.
/// * Ours is live and changed elsewhere, the client's is one we gave it (the base, or a
///   later version of ours: sent in a session that did not complete): ours goes back.
///   Both changed: the datastore's policy, as in a two-way sync.
/// * Ours is deleted and the client's is one we gave it: it is deleted on the client.
///   The client changed it: it comes back as a new item (nothing is lost).
fn kept_map_step(
    tx: &mut dyn Tx,
    it: KeptItem<'_>,
    conflict_set: &mut Option<std::collections::HashSet<String>>,
) -> Result<KeptStep, StoreError> {
    let current = tx.item_get(it.dsk, it.guid)?;
    let live = current.as_ref().filter(|c| !c.deleted);
    if let Some(cur) = live {
        if same_content(it.def, (&cur.content_type, &cur.data), it.client) {
            return Ok(KeptStep::Same);
        }
    }
    let changed = changed_elsewhere(conflict_set, tx, it.dsk, it.kept, it.term)?.contains(it.guid);
    if live.is_some() && !changed {
        return Ok(KeptStep::Write(Some(it.guid.to_string()), None));
    }
    // The versions the client may hold unchanged: the base and every later one of ours.
    let history = tx.item_history(it.dsk, it.guid)?;
    let mut ours = Vec::new();
    for v in history.iter().filter(|v| !v.deleted) {
        ours.push(v);
        if v.revision <= it.kept {
            break; // the base: older versions were acknowledged as replaced
        }
    }
    let unchanged = ours
        .iter()
        .any(|v| same_content(it.def, (&v.content_type, &v.data), it.client));
    let Some(cur) = live else {
        return Ok(if unchanged && current.is_some() {
            KeptStep::SendDelete
        } else {
            KeptStep::Write(None, None)
        });
    };
    if unchanged {
        return Ok(KeptStep::SendBack(None));
    }
    let policy = match it.policy {
        ConflictPolicy::NewerWins => match modified_at(it.client.1) {
            Some(c) if c > cur.updated_at => ConflictPolicy::ClientWins,
            _ => ConflictPolicy::ServerWins,
        },
        p => p,
    };
    Ok(match policy {
        ConflictPolicy::ClientWins | ConflictPolicy::NewerWins => KeptStep::Write(
            Some(it.guid.to_string()),
            Some(StatusCode::CONFLICT_RESOLVED_CLIENT_WINNING),
        ),
        ConflictPolicy::ServerWins => {
            KeptStep::SendBack(Some(StatusCode::CONFLICT_RESOLVED_WITH_SERVER_DATA))
        }
        ConflictPolicy::Duplicate => {
            // Ours goes to the client as an Add: its LUID now names the new item.
            KeptStep::Write(None, Some(StatusCode::CONFLICT_RESOLVED_WITH_DUPLICATE))
        }
    })
}

/// The GUIDs of a datastore that another terminal changed (or deleted) after revision
/// `acked`, the terminal's mark: what a change from `term` in this session conflicts
/// with. Computed once per Sync and kept in `cache`.
fn changed_elsewhere<'c>(
    cache: &'c mut Option<std::collections::HashSet<String>>,
    tx: &mut dyn Tx,
    dsk: DatastoreKey<'_>,
    acked: i64,
    term: &str,
) -> Result<&'c std::collections::HashSet<String>, StoreError> {
    if cache.is_none() {
        let set = tx
            .changes_since(dsk, acked, Some(term), None)?
            .into_iter()
            .map(|ch| ch.guid)
            .collect();
        *cache = Some(set);
    }
    Ok(cache.get_or_insert_with(Default::default))
}

/// Whether `terminal` may sync datastore `name`: it is among the terminal's data classes
/// (none listed: all), rights data following application data (para. 0033).
fn may_sync(terminal: &Terminal, name: &str) -> bool {
    terminal.classes.is_empty()
        || terminal
            .classes
            .iter()
            .any(|c| c == name || (name == "rights" && c == "apps"))
}

/// Whether a client-supplied LUID or GUID can be stored (non-empty, at most
/// [`MAX_ID_LEN`](crate::store::MAX_ID_LEN) bytes, no control characters).
fn valid_id(id: &str) -> bool {
    crate::store::validate_id("id", id).is_ok()
}

/// The URIs the client uses for our datastores: those alerted earlier in the session
/// and those alerted in this message (SyncEvolution sends its `Get` of our DevInf
/// before its `Alert`s, in the same message).
fn client_uris(st: &SessionState, msg: &SyncMl) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let earlier = st.stores.iter().map(|ds| ds.server_uri.as_str());
    let alerted = msg.body.commands.iter().filter_map(|c| match c {
        Command::Alert(a) => a
            .items
            .first()
            .and_then(|i| i.target.as_ref())
            .map(|t| t.loc_uri.as_str()),
        _ => None,
    });
    for uri in earlier.chain(alerted) {
        if let Some(def) = datastores::resolve(uri) {
            if !out.iter().any(|(n, _)| *n == def.name) {
                out.push((def.name, uri.trim().to_string()));
            }
        }
    }
    out
}

fn md5_chal(nonce: &str) -> Chal {
    Chal {
        meta: Meta {
            format: Some("b64".into()),
            r#type: Some(auth::TYPE_MD5.into()),
            next_nonce: Some(nonce.to_string()),
            ..Meta::default()
        },
    }
}

fn store_devinf(
    tx: &mut dyn Tx,
    subscriber: &str,
    terminal: &str,
    d: &syncml_core::model::DevInf,
) -> Result<(), StoreError> {
    let mut b = syncml_core::tree::TreeBuilder::new();
    d.write(&mut b);
    let bytes = b.finish().and_then(|el| {
        syncml_core::xml::encode_element(&el, &syncml_core::xml::EncodeOptions::default()).ok()
    });
    tx.terminal_set_devinf(subscriber, terminal, bytes.as_deref())
}

fn data_item(target: Option<String>, source: Option<String>, enc: Encoding, data: Vec<u8>) -> Item {
    let (data, format) = match (enc, String::from_utf8(data)) {
        (_, Ok(s)) => (Data::Binary(s.into_bytes()), None),
        (Encoding::Wbxml, Err(e)) => (Data::Binary(e.into_bytes()), None),
        (Encoding::Xml, Err(e)) => {
            use base64::Engine as _;
            (
                Data::Text(base64::engine::general_purpose::STANDARD.encode(e.into_bytes())),
                Some("b64".to_string()),
            )
        }
    };
    Item {
        target: target.map(Target::new),
        source: source.map(Source::new),
        meta: format.map(|f| Meta {
            format: Some(f),
            ..Meta::default()
        }),
        data: Some(data),
        ..Item::default()
    }
}

fn add_cmd(id: String, enc: Encoding, guid: &str, ctype: &str, data: Vec<u8>) -> Command {
    Command::Add(ItemCommand {
        cmd_id: id,
        meta: Some(Meta::of_type(ctype.to_string())),
        items: vec![data_item(None, Some(guid.to_string()), enc, data)],
        ..ItemCommand::default()
    })
}

fn replace_cmd(id: String, enc: Encoding, luid: &str, ctype: &str, data: Vec<u8>) -> Command {
    Command::Replace(ItemCommand {
        cmd_id: id,
        meta: Some(Meta::of_type(ctype.to_string())),
        items: vec![data_item(Some(luid.to_string()), None, enc, data)],
        ..ItemCommand::default()
    })
}

fn delete_cmd(id: String, luid: &str) -> Command {
    Command::Delete(Delete {
        cmd_id: id,
        items: vec![Item {
            target: Some(Target::new(luid.to_string())),
            ..Item::default()
        }],
        ..Delete::default()
    })
}

/// The size limit for our messages: the client's MaxMsgSize (at least 2 KiB, at most
/// 16 MiB).
fn msg_limit(st: &SessionState) -> usize {
    st.client_max_msg_size
        .unwrap_or(u64::MAX)
        .clamp(2048, 16 * 1024 * 1024) as usize
}

/// Room kept free in every message for what changes between messages (MsgID, CmdIDs).
const MSG_SLACK: usize = 64;

/// Bytes a message made of `empty` (see [`Engine::lob_template`]) and `shell` holding `cmd` takes, as
/// [`syncml_core::size::split_commands`] measures it.
fn encoded_need(empty: &SyncMl, shell: &Sync, cmd: &Command, enc: Encoding) -> usize {
    let mut m = empty.clone();
    let mut s = shell.clone();
    s.commands = vec![cmd.clone()];
    m.body.commands.push(Command::Sync(s));
    m.body.is_final = true;
    syncml_core::size::encoded_len(&m, enc).map_or(usize::MAX, |n| n + 2 + MSG_SLACK)
}

/// An Add with one empty item: the part of [`need_bound`] that does not depend on the item.
fn empty_add() -> Command {
    Command::Add(ItemCommand {
        cmd_id: "0".into(),
        items: vec![Item::default()],
        ..ItemCommand::default()
    })
}

/// An upper bound of what `cmd` adds to a message beyond [`empty_add`]: every string it
/// carries at its longest escaped form (XML escapes a byte as at most 6: `&quot;`; base64
/// takes 4 per 3) plus the tags, opaque lengths and CmdID around them (256 bytes).
/// `usize::MAX` for anything but a single-item Add or Replace.
fn need_bound(cmd: &Command, enc: Encoding) -> usize {
    let (Command::Add(ic) | Command::Replace(ic)) = cmd else {
        return usize::MAX;
    };
    let [item] = ic.items.as_slice() else {
        return usize::MAX;
    };
    if item.meta.is_some()
        || item.source_parent.is_some()
        || item.target_parent.is_some()
        || ic.cred.is_some()
    {
        return usize::MAX;
    }
    let content_type = match &ic.meta {
        None => 0,
        Some(m) => {
            let t = m.r#type.as_deref().unwrap_or("");
            if *m != Meta::of_type(t.to_string()) {
                return usize::MAX;
            }
            t.len()
        }
    };
    let per_byte = match enc {
        Encoding::Xml => 6,
        Encoding::Wbxml => 1,
    };
    let data = item.data.as_ref().map_or(0, |d| match d {
        Data::Text(t) => t.len(),
        Data::Binary(b) => b.len().div_ceil(3) * 4,
        _ => usize::MAX / 16,
    });
    let strings = data
        .saturating_add(content_type)
        .saturating_add(item.source.as_ref().map_or(0, |x| {
            x.loc_uri.len() + x.loc_name.as_ref().map_or(0, String::len)
        }))
        .saturating_add(item.target.as_ref().map_or(0, |x| {
            x.loc_uri.len() + x.loc_name.as_ref().map_or(0, String::len)
        }))
        .saturating_add(ic.cmd_id.len());
    strings.saturating_mul(per_byte).saturating_add(256)
}

/// Whether a package-4 command can go to the client: an object larger than its
/// MaxObjSize cannot (LOB-16), and one that only fits in chunks cannot go to a client
/// whose DevInf does not declare SupportLargeObjs.
#[allow(clippy::too_many_arguments)]
fn sendable(
    empty: &SyncMl,
    shell: &Sync,
    cmd: &Command,
    limit: usize,
    max_obj: Option<u64>,
    large_ok: bool,
    enc: Encoding,
    datastore: &str,
) -> bool {
    let (Command::Add(ic) | Command::Replace(ic)) = cmd else {
        return true;
    };
    let len = ic
        .items
        .iter()
        .map(|i| {
            i.data
                .as_ref()
                .and_then(Data::as_bytes)
                .map_or(0, <[u8]>::len)
        })
        .max()
        .unwrap_or(0) as u64;
    let id = || {
        ic.items
            .first()
            .and_then(|i| i.source.as_ref().or(None).map(|s| s.loc_uri.clone()))
            .or_else(|| {
                ic.items
                    .first()
                    .and_then(|i| i.target.as_ref().map(|t| t.loc_uri.clone()))
            })
            .unwrap_or_default()
    };
    if let Some(max) = max_obj.filter(|m| len > *m) {
        warn!(datastore, item = %id(), size = len, max_obj_size = max, "item larger than the client's MaxObjSize; cannot send it");
        return false;
    }
    if !large_ok && encoded_need(empty, shell, cmd, enc) > limit {
        warn!(datastore, item = %id(), size = len, "item needs chunking but the client's DevInf has no SupportLargeObjs; not sent");
        return false;
    }
    true
}

/// Cuts the single item of an Add/Replace too large for a message into large-object
/// chunks, one command each, every one fitting (with `shell`) in a message of `limit`
/// bytes that holds `empty` (see [`Engine::lob_template`]). `None` when the command fits whole or cannot be cut.
fn chunk_cmd(
    empty: &SyncMl,
    shell: &Sync,
    cmd: &Command,
    limit: usize,
    enc: Encoding,
) -> Option<Vec<Command>> {
    let (Command::Add(ic) | Command::Replace(ic)) = cmd else {
        return None;
    };
    if ic.items.len() != 1 || encoded_need(empty, shell, cmd, enc) <= limit {
        return None;
    }
    let mut item = ic.items[0].clone();
    if enc == Encoding::Xml {
        // Cut text on character boundaries: XML cannot carry half a character.
        if let Some(Data::Binary(b)) = &item.data {
            if let Ok(t) = std::str::from_utf8(b) {
                item.data = Some(Data::Text(t.to_string()));
            }
        }
    }
    let with = |it: Item| {
        let mut c = cmd.clone();
        if let Command::Add(x) | Command::Replace(x) = &mut c {
            x.items = vec![it];
        }
        c
    };
    let mut bare = item.clone();
    bare.data = Some(Data::Text(String::new()));
    bare.more_data = true;
    let mut meta = bare.meta.clone().unwrap_or_default();
    meta.size = Some(u64::MAX);
    bare.meta = Some(meta);
    let fixed = encoded_need(empty, shell, &with(bare), enc);
    let mut size = limit.checked_sub(fixed)?;
    for _ in 0..8 {
        if size < 64 {
            break;
        }
        let chunks = syncml_core::size::chunk_item(item.clone(), size).ok()?;
        let cmds: Vec<Command> = chunks.into_iter().map(with).collect();
        let worst = cmds
            .iter()
            .map(|c| encoded_need(empty, shell, c, enc))
            .max()
            .unwrap_or(0);
        if worst <= limit {
            return Some(cmds);
        }
        // Escaping made some chunk larger than its bytes: cut smaller.
        size = size.checked_sub(worst - limit + 16)?;
    }
    warn!("large object could not be cut to fit the client's MaxMsgSize");
    None
}

/// Drops the chunks of a large object at the head of the pending package 4 (up to and
/// including its last chunk, the first without `MoreData`).
fn drop_leading_chunks(tx: &mut dyn Tx, key: &str, limit: usize) -> Result<(), StoreError> {
    loop {
        let head = tx.session_pending_head(key, limit as u64)?;
        let mut through = None;
        let mut done = head.is_empty();
        for r in &head {
            match pending::is_leading_chunk(r)? {
                Some(more) => {
                    through = Some(r.seq);
                    if !more {
                        done = true;
                        break;
                    }
                }
                None => {
                    done = true;
                    break;
                }
            }
        }
        match through {
            Some(t) => {
                tx.session_pending_remove_through(key, t)?;
            }
            None => return Ok(()),
        }
        if done {
            return Ok(());
        }
    }
}

fn renumber(c: &mut Command, reply: &mut Reply) {
    c.set_cmd_id(reply.id());
    if let Command::Sync(s) = c {
        for inner in &mut s.commands {
            inner.set_cmd_id(reply.id());
        }
    }
}

/// Consecutive parts of one Sync split across messages belong together again.
/// The client's DevInf as the terminal last sent it, if it is readable.
fn client_devinf(
    tx: &mut dyn Tx,
    subscriber: &str,
    terminal: &str,
) -> Result<Option<syncml_core::model::DevInf>, StoreError> {
    Ok(match tx.terminal_devinf(subscriber, terminal)? {
        Some(bytes) => syncml_core::xml::decode_document(&bytes)
            .ok()
            .and_then(|d| syncml_core::model::DevInf::from_element(d.root).ok()),
        None => None,
    })
}

fn merge_syncs(cmds: Vec<Command>) -> Vec<Command> {
    let mut out: Vec<Command> = Vec::new();
    for c in cmds {
        if let (Some(Command::Sync(prev)), Command::Sync(next)) = (out.last_mut(), &c) {
            if prev.target == next.target && prev.source == next.source {
                if let Command::Sync(n) = c {
                    prev.commands.extend(n.commands);
                }
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_iso8601_basic_utc() {
        assert_eq!(fmt_anchor(Timestamp::from_unix_secs(0)), "19700101T000000Z");
        assert_eq!(
            fmt_anchor(Timestamp::from_unix_secs(1_795_705_315)),
            "20261126T150155Z"
        );
    }

    #[test]
    fn modification_times_are_read_from_rev_and_last_modified() {
        for secs in [0, 951_782_400, 1_795_705_315, 4_102_444_800] {
            let t = Timestamp::from_unix_secs(secs);
            assert_eq!(parse_iso_time(&fmt_anchor(t)), Some(t));
        }
        assert_eq!(
            parse_iso_time("2026-11-26T15:01:55Z"),
            Some(Timestamp::from_unix_secs(1_795_705_315))
        );
        let vcard = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nREV:20261126T150155Z\r\nEND:VCARD\r\n";
        assert_eq!(
            modified_at(vcard),
            Some(Timestamp::from_unix_secs(1_795_705_315))
        );
        let ical = b"BEGIN:VEVENT\nLAST-MODIFIED;X=1:19700101T000000Z\nEND:VEVENT\n";
        assert_eq!(modified_at(ical), Some(Timestamp::from_unix_secs(0)));
        assert_eq!(modified_at(b"BEGIN:VCARD\nFN:A\nEND:VCARD\n"), None);
        assert_eq!(modified_at(b"REV:garbage"), None);
    }

    /// An engine over a fresh SQLite store with subscriber `test` and terminal `dev1`
    /// (md5 and basic password `secret`), driving one client session at a time.
    pub(super) struct Fixture {
        _dir: tempfile::TempDir,
        pub(super) store: crate::store::SqliteStore,
        engine: Engine,
        session: u32,
        msg: u32,
        token: Option<String>,
        nonce: Vec<u8>,
        seed: u8,
    }

    impl Fixture {
        pub(super) fn new() -> Fixture {
            use crate::store::{NewSubscriber, NewTerminal, RegisteredBy, Secret, StoreExt};
            let dir = tempfile::tempdir().expect("tempdir");
            let store = crate::store::SqliteStore::open_in_dir(dir.path()).expect("store");
            store
                .transaction(|tx| {
                    let t0 = Timestamp::from_unix_secs(1);
                    tx.subscriber_create(
                        &NewSubscriber {
                            id: "test".into(),
                            display_name: None,
                            security_level: 0,
                        },
                        t0,
                    )?;
                    tx.terminal_register(
                        &NewTerminal {
                            terminal_id: "dev1".into(),
                            subscriber_id: "test".into(),
                            md5_verifier: Some(Secret::new(auth::md5::user_digest(
                                "test", "secret",
                            ))),
                            basic_verifier: None,
                            classes: vec![],
                            registered_by: RegisteredBy::Operator,
                        },
                        t0,
                    )
                })
                .expect("provision");
            Fixture {
                _dir: dir,
                store,
                engine: Engine::default(),
                session: 0,
                msg: 0,
                token: None,
                nonce: Vec::new(),
                seed: 0,
            }
        }

        /// Starts a new client session (the next `send` is its message 1).
        pub(super) fn new_session(&mut self) {
            self.session += 1;
            self.msg = 0;
            self.token = None;
        }

        fn message(&mut self, commands: Vec<Command>, is_final: bool) -> SyncMl {
            self.msg += 1;
            let mut h = SyncHdr::new(
                SyncMlVersion::V1_2,
                self.session.to_string(),
                self.msg.to_string(),
                "http://srv/sync",
                "dev1",
            );
            h.source.loc_name = Some("test".into());
            h.meta = Some(Meta {
                max_msg_size: Some(4096),
                ..Meta::default()
            });
            if self.msg == 1 {
                h.cred = Some(syncml_core::model::Cred {
                    meta: Some(Meta {
                        r#type: Some(auth::TYPE_MD5.into()),
                        format: Some("b64".into()),
                        ..Meta::default()
                    }),
                    data: Data::Text(auth::md5::credential("test", "secret", &self.nonce)),
                });
            }
            SyncMl {
                header: h,
                body: syncml_core::model::SyncBody { commands, is_final },
            }
        }

        /// Hands `msg` to the engine in one transaction, as the HTTP layer does.
        fn post(&mut self, msg: &SyncMl) -> Result<SyncMl, StoreError> {
            use crate::store::StoreExt;
            let inc = Incoming {
                msg,
                encoding: Encoding::Xml,
                session_token: self.token.as_deref(),
                base_url: "http://srv/sync",
                tls: false,
                remote: "127.0.0.1:1",
            };
            let engine = self.engine.clone();
            let seed = &mut self.seed;
            let reply = self.store.transaction(|tx| {
                let mut rng = |buf: &mut [u8]| {
                    for b in buf.iter_mut() {
                        *seed = seed.wrapping_add(1);
                        *b = *seed;
                    }
                };
                engine.handle(tx, &inc, Timestamp::from_unix_secs(1_800_000_000), &mut rng)
            })?;
            if let Some(uri) = &reply.header.resp_uri {
                self.token = uri.split_once("?s=").map(|(_, t)| t.to_string());
            }
            for c in &reply.body.commands {
                if let Command::Status(s) = c {
                    if let Some(n) = s.chal.as_ref().and_then(|c| c.meta.next_nonce.as_deref()) {
                        self.nonce = auth::nonce::decode_next_nonce(n).expect("nonce");
                    }
                }
            }
            Ok(reply)
        }

        pub(super) fn send(&mut self, commands: Vec<Command>, is_final: bool) -> SyncMl {
            let msg = self.message(commands, is_final);
            self.post(&msg).expect("message handled")
        }

        /// Writes `n` contacts of about 600 bytes as another terminal would.
        pub(super) fn seed_items(&self, n: usize) {
            use crate::store::StoreExt;
            let items: Vec<NewItem> = (0..n)
                .map(|i| NewItem {
                    guid: None,
                    content_type: "text/vcard".into(),
                    data: format!(
                        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:P{i}\r\nNOTE:{}\r\nEND:VCARD\r\n",
                        "x".repeat(600)
                    )
                    .into_bytes(),
                })
                .collect();
            self.store
                .transaction(|tx| {
                    tx.items_put(
                        DatastoreKey::new("test", "contacts"),
                        Some("other"),
                        &items,
                        Timestamp::from_unix_secs(2),
                    )
                })
                .expect("seed");
        }

        fn anchor(&self) -> Option<String> {
            use crate::store::StoreExt;
            self.store
                .read(|tx| tx.sync_state_get(SyncKey::new("test", "dev1", "contacts")))
                .expect("sync state")
                .and_then(|s| s.client_anchor)
        }
    }

    pub(super) fn alert(code: u32, last: Option<&str>, next: &str) -> Command {
        Command::Alert(Alert {
            cmd_id: "1".into(),
            data: Some(AlertCode(code)),
            items: vec![Item {
                target: Some(Target::new("addressbook")),
                source: Some(Source::new("./contacts")),
                meta: Some(Meta {
                    anchor: Some(Anchor {
                        last: last.map(str::to_string),
                        next: next.into(),
                    }),
                    ..Meta::default()
                }),
                ..Item::default()
            }],
            ..Alert::default()
        })
    }

    pub(super) fn client_sync(commands: Vec<Command>) -> Command {
        Command::Sync(Sync {
            cmd_id: "2".into(),
            target: Some(Target::new("addressbook")),
            source: Some(Source::new("./contacts")),
            commands,
            ..Sync::default()
        })
    }

    pub(super) fn codes(m: &SyncMl, cmd: &str) -> Vec<u16> {
        m.body
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::Status(s) if s.cmd == cmd => Some(s.data.0),
                _ => None,
            })
            .collect()
    }

    fn alert_codes(m: &SyncMl) -> Vec<u32> {
        m.body
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::Alert(a) => a.data.map(|d| d.0),
                _ => None,
            })
            .collect()
    }

    fn server_adds(m: &SyncMl) -> usize {
        m.body
            .commands
            .iter()
            .map(|c| match c {
                Command::Sync(s) => s.commands.len(),
                _ => 0,
            })
            .sum()
    }

    /// A slow sync with one client Add, completed through package 5.
    fn complete_slow_sync(f: &mut Fixture, next: &str) {
        f.new_session();
        f.send(vec![alert(201, None, next)], true);
        let add = Command::Add(ItemCommand {
            cmd_id: "3".into(),
            meta: Some(Meta::of_type("text/vcard")),
            items: vec![Item {
                source: Some(Source::new("c1")),
                data: Some(Data::Text("BEGIN:VCARD\r\nFN:C1\r\nEND:VCARD\r\n".into())),
                ..Item::default()
            }],
            ..ItemCommand::default()
        });
        f.send(vec![client_sync(vec![add])], true);
        let done = f.send(vec![], true);
        assert!(done.header.resp_uri.is_none(), "session complete");
        assert_eq!(f.anchor().as_deref(), Some(next));
    }

    #[test]
    fn nonces_are_printable_so_c_string_clients_keep_them_whole() {
        let mut f = Fixture::new();
        f.seed = 255; // the first random byte would be 0
        f.new_session();
        let r = f.send(vec![alert(201, None, "a1")], true);
        assert_eq!(codes(&r, "SyncHdr"), [212]);
        assert_eq!(f.nonce.len(), 22);
        assert!(f
            .nonce
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(b)));
    }

    #[test]
    fn devinf_names_datastores_as_the_client_alerts_them() {
        let mut f = Fixture::new();
        f.new_session();
        let get = Command::Get(GetPut {
            cmd_id: "9".into(),
            items: vec![Item {
                target: Some(Target::new("./devinf12")),
                ..Item::default()
            }],
            ..GetPut::default()
        });
        let r = f.send(vec![get, alert(201, None, "a1")], true);
        let devinf = r.body.commands.iter().find_map(|c| match c {
            Command::Results(res) => match res.items.first().and_then(|i| i.data.as_ref()) {
                Some(Data::DevInf(d)) => Some(d.clone()),
                _ => None,
            },
            _ => None,
        });
        let refs: Vec<String> = devinf
            .expect("DevInf in Results")
            .data_stores
            .iter()
            .map(|d| d.source_ref.clone())
            .collect();
        assert_eq!(
            refs[..2],
            ["./addressbook".to_string(), "./calendar".to_string()]
        );
    }

    #[test]
    fn every_client_message_during_package_4_gets_the_next_part() {
        let mut f = Fixture::new();
        f.seed_items(12);
        f.new_session();
        f.send(vec![alert(201, None, "a1")], true);
        let mut got = server_adds(&f.send(vec![client_sync(vec![])], true));
        // The client answers each part with statuses only: no Final, no Alert 222.
        for _ in 0..20 {
            let r = f.send(vec![], false);
            assert!(
                !alert_codes(&r).contains(&222),
                "no Alert 222 from us: {r:?}"
            );
            got += server_adds(&r);
            if r.body.is_final {
                break;
            }
        }
        assert_eq!(got, 12, "every item once");
        let done = f.send(vec![], true);
        assert!(
            done.header.resp_uri.is_none(),
            "package 5 completes the session"
        );
        assert_eq!(f.anchor().as_deref(), Some("a1"));
    }

    /// Pending package-4 rows of the session `key`, and the size of its stored state.
    fn pending_and_state(f: &Fixture, key: &str) -> (u64, Option<usize>) {
        use crate::store::StoreExt;
        f.store
            .read(|tx| {
                let n = tx.session_pending_count(key)?;
                let rec = tx.session_load(key, Timestamp::from_unix_secs(0))?;
                Ok((n, rec.map(|r| r.state.len())))
            })
            .expect("pending rows")
    }

    #[test]
    fn a_long_package_4_waits_in_the_store_and_the_session_state_stays_small() {
        let mut f = Fixture::new();
        f.seed_items(60); // ~40 KB of vCards, ~5 to a 4 KiB message
        f.new_session();
        f.send(vec![alert(201, None, "a1")], true);
        let mut got = server_adds(&f.send(vec![client_sync(vec![])], true));
        let key = f.token.clone().expect("session key");
        let (mut left, _) = pending_and_state(&f, &key);
        assert_eq!(left as usize, 60 - got, "one row per command not sent");
        let mut messages = 1;
        loop {
            let (_, state) = pending_and_state(&f, &key);
            let state = state.expect("session kept");
            // The state holds our latest reply (one message) and no pending commands.
            assert!(
                state < 8 * 1024,
                "session state of {state} bytes with {left} commands pending"
            );
            let r = f.send(vec![], false);
            got += server_adds(&r);
            messages += 1;
            let (now, _) = pending_and_state(&f, &key);
            if r.body.is_final {
                assert_eq!(now, 0, "nothing pending after the last part");
                break;
            }
            assert!(
                now < left,
                "every message takes its rows: {now} after {left}"
            );
            assert_eq!(
                now as usize,
                60 - got,
                "what was sent is gone, the rest kept"
            );
            left = now;
            assert!(messages < 40, "package 4 ends");
        }
        assert!(messages > 5, "package 4 spans messages ({messages})");
        assert_eq!(got, 60, "every item once");
        let done = f.send(vec![], true);
        assert!(done.header.resp_uri.is_none(), "package 5 completes");
        assert_eq!(
            pending_and_state(&f, &key),
            (0, None),
            "session and rows gone"
        );
        assert_eq!(f.anchor().as_deref(), Some("a1"));
    }

    /// (GUID, Meta Type, data) of every Add the server sends.
    fn server_adds_by_guid(m: &SyncMl) -> Vec<(String, String, String)> {
        m.body
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::Sync(s) => Some(s.commands.iter()),
                _ => None,
            })
            .flatten()
            .filter_map(|c| match c {
                Command::Add(ic) => Some(ic),
                _ => None,
            })
            .map(|ic| {
                let item = ic.items.first().expect("one item");
                (
                    item.source.as_ref().expect("GUID").loc_uri.clone(),
                    ic.meta
                        .as_ref()
                        .and_then(|m| m.r#type.clone())
                        .unwrap_or_default(),
                    String::from_utf8_lossy(
                        item.data
                            .as_ref()
                            .and_then(Data::as_bytes)
                            .unwrap_or_default(),
                    )
                    .into_owned(),
                )
            })
            .collect()
    }

    /// The session's pending rows.
    fn pending_rows(f: &Fixture, key: &str) -> Vec<PendingCommand> {
        use crate::store::StoreExt;
        f.store
            .read(|tx| tx.session_pending_head(key, u64::MAX))
            .expect("pending rows")
    }

    /// Seeds `n` items and starts a slow sync that downloads them: the Adds of the first
    /// message of package 4, and the session key.
    fn start_download(f: &mut Fixture, n: usize) -> (Vec<(String, String, String)>, String) {
        f.seed_items(n);
        f.new_session();
        f.send(vec![alert(201, None, "a1")], true);
        let first = server_adds_by_guid(&f.send(vec![client_sync(vec![])], true));
        (first, f.token.clone().expect("session key"))
    }

    /// Runs package 4 to its end; every Add sent, by GUID.
    fn download_rest(
        f: &mut Fixture,
        mut got: Vec<(String, String, String)>,
    ) -> Vec<(String, String, String)> {
        for _ in 0..100 {
            let r = f.send(vec![], false);
            got.extend(server_adds_by_guid(&r));
            if r.body.is_final {
                return got;
            }
        }
        panic!("package 4 does not end");
    }

    #[test]
    fn whole_item_adds_wait_by_reference_and_go_out_as_stored() {
        use crate::store::StoreExt;
        let mut f = Fixture::new();
        let (first, key) = start_download(&mut f, 40);
        let rows = pending_rows(&f, &key);
        assert_eq!(rows.len(), 40 - first.len());
        assert!(
            rows.iter()
                .all(|r| r.data.is_empty() && r.guid.is_some() && r.revision.is_some()),
            "a pending Add holds the item's GUID and revision, not a copy of it"
        );
        let got = download_rest(&mut f, first);
        let stored = f
            .store
            .read(|tx| tx.items_list_live(DatastoreKey::new("test", "contacts")))
            .expect("items");
        let mut want: Vec<(String, String, String)> = stored
            .into_iter()
            .map(|i| {
                (
                    i.guid,
                    i.content_type,
                    String::from_utf8_lossy(&i.data).into_owned(),
                )
            })
            .collect();
        let mut got = got;
        got.sort();
        want.sort();
        assert_eq!(got, want, "every item once, as stored");
    }

    #[test]
    fn whole_item_adds_by_reference_are_converted_like_the_first_message() {
        let mut f = Fixture::new();
        f.seed_items(20);
        f.new_session();
        let put = devinf_put(contacts_devinf(&[("text/x-vcard", "2.1")]));
        f.send(vec![put, alert(201, None, "a1")], true);
        let first = server_adds_by_guid(&f.send(vec![client_sync(vec![])], true));
        assert!(first.len() < 20, "package 4 spans messages");
        let got = download_rest(&mut f, first);
        assert_eq!(got.len(), 20);
        for (guid, ty, data) in &got {
            assert_eq!(ty, "text/x-vcard", "{guid}");
            assert!(data.contains("VERSION:2.1\r\n"), "{guid}: {data}");
        }
    }

    #[test]
    fn an_item_changed_during_a_download_goes_out_in_the_next_session_not_twice() {
        use crate::store::StoreExt;
        let mut f = Fixture::new();
        let (first, key) = start_download(&mut f, 30);
        let rows = pending_rows(&f, &key);
        let changed = rows[0].guid.clone().expect("guid");
        let deleted = rows[1].guid.clone().expect("guid");
        let ds = DatastoreKey::new("test", "contacts");
        f.store
            .transaction(|tx| {
                tx.items_put(
                    ds,
                    Some("other"),
                    &[NewItem {
                        guid: Some(changed.clone()),
                        content_type: "text/vcard".into(),
                        data: b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Changed\r\nEND:VCARD\r\n".to_vec(),
                    }],
                    Timestamp::from_unix_secs(3),
                )?;
                tx.items_delete(
                    ds,
                    Some("other"),
                    std::slice::from_ref(&deleted),
                    Timestamp::from_unix_secs(3),
                )
            })
            .expect("changes during the download");
        let got = download_rest(&mut f, first);
        assert_eq!(
            got.len(),
            28,
            "the changed and the deleted item are not sent now"
        );
        assert!(got.iter().all(|(g, _, _)| *g != changed && *g != deleted));
        let done = f.send(vec![], true);
        assert!(done.header.resp_uri.is_none(), "package 5 completes");
        // The next session brings the changed item, in its new version, once.
        f.new_session();
        f.send(vec![alert(200, Some("a1"), "a2")], true);
        let next = f.send(vec![client_sync(vec![])], true);
        let adds = server_adds_by_guid(&next);
        assert_eq!(adds.len(), 1, "{adds:?}");
        assert_eq!(adds[0].0, changed);
        assert!(adds[0].2.contains("FN:Changed"));
        assert!(
            !next.body.commands.iter().any(|c| matches!(c, Command::Sync(s) if s.commands.iter().any(|x| matches!(x, Command::Delete(_))))),
            "no Delete for an item the handset never got"
        );
    }

    #[test]
    fn pending_package_4_goes_with_its_session_when_suspended_or_superseded() {
        let mut f = Fixture::new();
        f.seed_items(30);
        // Suspended: the kept session builds package 4 anew on resume.
        f.new_session();
        f.send(vec![alert(201, None, "a1")], true);
        f.send(vec![client_sync(vec![])], true);
        let key = f.token.clone().expect("session key");
        assert!(pending_and_state(&f, &key).0 > 0);
        f.send(vec![alert(224, None, "a1")], true);
        assert_eq!(
            pending_and_state(&f, &key),
            (0, None),
            "suspended: rows gone"
        );
        // Superseded by a new session of the terminal.
        f.new_session();
        f.send(vec![alert(201, None, "a2")], true);
        f.send(vec![client_sync(vec![])], true);
        let key = f.token.clone().expect("session key");
        assert!(pending_and_state(&f, &key).0 > 0);
        f.new_session();
        f.send(vec![alert(201, None, "a3")], true);
        assert_eq!(
            pending_and_state(&f, &key),
            (0, None),
            "superseded: rows gone"
        );
    }

    #[test]
    fn a_retransmitted_package_3_gets_package_4_again_and_moves_no_anchor() {
        let mut f = Fixture::new();
        complete_slow_sync(&mut f, "a1");
        f.seed_items(1);
        f.new_session();
        f.send(vec![alert(200, Some("a1"), "a2")], true);
        let pkg3 = f.message(vec![client_sync(vec![])], true);
        let first = f.post(&pkg3).expect("package 3");
        let again = f.post(&pkg3).expect("package 3 again");
        assert_eq!(first, again, "the same answer");
        assert_eq!(server_adds(&again), 1);
        assert!(again.header.resp_uri.is_some(), "the session goes on");
        assert_eq!(f.anchor().as_deref(), Some("a1"), "no anchor moved");
        f.send(vec![], true);
        assert_eq!(f.anchor().as_deref(), Some("a2"));
    }

    #[test]
    fn a_client_change_equal_to_what_we_hold_makes_no_new_revision() {
        use crate::store::StoreExt;
        let mut f = Fixture::new();
        complete_slow_sync(&mut f, "a1");
        let dsk = DatastoreKey::new("test", "contacts");
        let rev = f.store.read(|tx| tx.datastore_revision(dsk)).expect("rev");
        f.new_session();
        f.send(vec![alert(202, Some("a1"), "a2")], true);
        // SyncEvolution's quirk: an item it holds already goes up again as an Add.
        let same = |kind: fn(ItemCommand) -> Command| {
            kind(ItemCommand {
                cmd_id: "3".into(),
                meta: Some(Meta::of_type("text/vcard")),
                items: vec![Item {
                    source: Some(Source::new("c1")),
                    data: Some(Data::Text("BEGIN:VCARD\r\nFN:C1\r\nEND:VCARD\r\n".into())),
                    ..Item::default()
                }],
                ..ItemCommand::default()
            })
        };
        let r = f.send(vec![client_sync(vec![same(Command::Add)])], true);
        assert_eq!(codes(&r, "Add"), [201]);
        f.send(vec![], true);
        let after = f.store.read(|tx| tx.datastore_revision(dsk)).expect("rev");
        assert_eq!(after, rev, "no new revision for an unchanged item");
        let items = f.store.read(|tx| tx.items_list_live(dsk)).expect("items");
        assert_eq!(items.len(), 1, "and no duplicate");
    }

    fn client_delete(luid: &str) -> Command {
        Command::Delete(Delete {
            cmd_id: "4".into(),
            items: vec![Item {
                source: Some(Source::new(luid)),
                ..Item::default()
            }],
            ..Delete::default()
        })
    }

    /// The live contacts as (data) strings, sorted.
    fn live_contacts(f: &Fixture) -> Vec<String> {
        use crate::store::StoreExt;
        let mut v: Vec<String> = f
            .store
            .read(|tx| tx.items_list_live(DatastoreKey::new("test", "contacts")))
            .expect("items")
            .into_iter()
            .map(|i| String::from_utf8_lossy(&i.data).into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_syncs_items_are_written_together_and_all_mapped() {
        use crate::store::StoreExt;
        let mut f = Fixture::new();
        complete_slow_sync(&mut f, "a1");
        let dsk = DatastoreKey::new("test", "contacts");
        let before = f.store.read(|tx| tx.datastore_revision(dsk)).expect("rev");
        f.new_session();
        f.send(vec![alert(200, Some("a1"), "a2")], true);
        let adds: Vec<Command> = (0..5)
            .map(|i| {
                client_item(
                    false,
                    &format!("n{i}"),
                    &format!("BEGIN:VCARD\r\nFN:N{i}\r\nEND:VCARD\r\n"),
                )
            })
            .collect();
        let r = f.send(vec![client_sync(adds)], true);
        assert_eq!(codes(&r, "Add"), [201; 5]);
        f.send(vec![], true);
        let after = f.store.read(|tx| tx.datastore_revision(dsk)).expect("rev");
        assert_eq!(after - before, 5, "one revision per item");
        let luids: Vec<String> = (0..5).map(|i| format!("n{i}")).collect();
        let map = f
            .store
            .read(|tx| tx.map_guids_for_luids(SyncKey::new("test", "dev1", "contacts"), &luids))
            .expect("map");
        assert_eq!(map.len(), 5, "every new item mapped to its LUID: {map:?}");
    }

    #[test]
    fn one_luid_added_replaced_and_deleted_in_one_sync_takes_effect_in_order() {
        let mut f = Fixture::new();
        complete_slow_sync(&mut f, "a1");
        let base = live_contacts(&f);
        f.new_session();
        f.send(vec![alert(200, Some("a1"), "a2")], true);
        let r = f.send(
            vec![client_sync(vec![
                client_item(false, "x1", "BEGIN:VCARD\r\nFN:First\r\nEND:VCARD\r\n"),
                client_item(true, "x1", "BEGIN:VCARD\r\nFN:Second\r\nEND:VCARD\r\n"),
                client_item(false, "x2", "BEGIN:VCARD\r\nFN:Kept\r\nEND:VCARD\r\n"),
                client_item(false, "x3", "BEGIN:VCARD\r\nFN:Gone\r\nEND:VCARD\r\n"),
                client_delete("x3"),
            ])],
            true,
        );
        assert_eq!(codes(&r, "Add"), [201, 201, 201]);
        assert_eq!(
            codes(&r, "Replace"),
            [200],
            "the Replace finds the item just added"
        );
        assert_eq!(
            codes(&r, "Delete"),
            [200],
            "the Delete finds the item just added"
        );
        f.send(vec![], true);
        let mut want = base;
        want.push("BEGIN:VCARD\r\nFN:Second\r\nEND:VCARD\r\n".into());
        want.push("BEGIN:VCARD\r\nFN:Kept\r\nEND:VCARD\r\n".into());
        want.sort();
        assert_eq!(live_contacts(&f), want, "no First, no Gone, no duplicate");
    }

    #[test]
    fn an_unknown_session_token_without_credentials_gets_407_and_writes_nothing() {
        let mut f = Fixture::new();
        complete_slow_sync(&mut f, "a1");
        let before = live_contacts(&f);
        f.new_session();
        f.msg = 1; // the next message is a later one: no credentials
        f.token = Some("forged-token".into());
        let r = f.send(
            vec![
                alert(200, Some("a1"), "a2"),
                client_sync(vec![client_item(
                    false,
                    "f1",
                    "BEGIN:VCARD\r\nFN:Forged\r\nEND:VCARD\r\n",
                )]),
            ],
            true,
        );
        assert_eq!(codes(&r, "SyncHdr"), [407]);
        assert!(
            codes(&r, "Sync").iter().all(|c| *c == 407),
            "{:?}",
            codes(&r, "Sync")
        );
        assert_eq!(live_contacts(&f), before, "nothing written");
        assert_eq!(f.anchor().as_deref(), Some("a1"), "no anchor moved");
    }

    #[test]
    fn commands_after_a_suspend_request_are_cancelled_with_514() {
        let mut f = Fixture::new();
        complete_slow_sync(&mut f, "a1");
        f.new_session();
        f.send(vec![alert(200, Some("a1"), "a2")], true);
        let add = Command::Add(ItemCommand {
            cmd_id: "3".into(),
            meta: Some(Meta::of_type("text/vcard")),
            items: vec![Item {
                source: Some(Source::new("c2")),
                data: Some(Data::Text("BEGIN:VCARD\r\nFN:C2\r\nEND:VCARD\r\n".into())),
                ..Item::default()
            }],
            ..ItemCommand::default()
        });
        let r = f.send(vec![alert(224, None, "a2"), client_sync(vec![add])], true);
        assert_eq!(codes(&r, "Alert"), [200]);
        assert_eq!(codes(&r, "Sync"), [514], "SUS-06");
        use crate::store::StoreExt;
        let n = f
            .store
            .read(|tx| tx.items_list_live(DatastoreKey::new("test", "contacts")))
            .expect("items")
            .len();
        assert_eq!(n, 1, "the cancelled Add was not executed");
    }

    #[test]
    fn an_abandoned_slow_sync_makes_the_next_sync_slow() {
        let mut f = Fixture::new();
        complete_slow_sync(&mut f, "a1");
        // A slow sync that never gets past package 1: the map is gone...
        f.new_session();
        f.send(vec![alert(201, Some("a1"), "a2")], true);
        // ...so a two-way sync with the old anchors must not be taken as normal.
        f.new_session();
        let r = f.send(vec![alert(200, Some("a1"), "a3")], true);
        assert_eq!(codes(&r, "Alert"), [508]);
        assert_eq!(alert_codes(&r), [201]);
    }

    #[test]
    fn malformed_luids_get_item_and_map_statuses_not_a_failed_message() {
        let mut f = Fixture::new();
        f.seed_items(1);
        f.new_session();
        f.send(vec![alert(201, None, "a1")], true);
        let add = Command::Add(ItemCommand {
            cmd_id: "3".into(),
            meta: Some(Meta::of_type("text/vcard")),
            items: vec![Item {
                data: Some(Data::Text(
                    "BEGIN:VCARD\r\nFN:NoLuid\r\nEND:VCARD\r\n".into(),
                )),
                ..Item::default()
            }],
            ..ItemCommand::default()
        });
        let r = f.send(vec![client_sync(vec![add])], true);
        assert_eq!(codes(&r, "Add"), [412]);
        let map = Command::Map(syncml_core::model::Map {
            cmd_id: "4".into(),
            target: Target::new("addressbook"),
            source: Source::new("./contacts"),
            map_items: vec![
                syncml_core::model::MapItem::new("1", ""),
                syncml_core::model::MapItem::new("1", "l1"),
            ],
            ..syncml_core::model::Map::default()
        });
        let r = f.send(vec![map], true);
        assert_eq!(codes(&r, "Map"), [412]);
        assert!(r.header.resp_uri.is_none(), "the session still completes");
    }

    #[test]
    fn a_delete_of_an_item_changed_elsewhere_loses_and_the_item_comes_back() {
        use crate::store::StoreExt;
        let mut f = Fixture::new();
        f.seed_items(1);
        f.new_session();
        f.send(vec![alert(201, None, "a1")], true);
        let r = f.send(vec![client_sync(vec![])], true);
        let guid = r
            .body
            .commands
            .iter()
            .find_map(|c| match c {
                Command::Sync(s) => s.commands.first().and_then(|c| c.items().first().cloned()),
                _ => None,
            })
            .and_then(|i| i.source)
            .map(|s| s.loc_uri)
            .expect("the seeded item in package 4");
        let map = Command::Map(syncml_core::model::Map {
            cmd_id: "4".into(),
            target: Target::new("addressbook"),
            source: Source::new("./contacts"),
            map_items: vec![syncml_core::model::MapItem::new(guid.clone(), "c1")],
            ..syncml_core::model::Map::default()
        });
        f.send(vec![map], true);
        // Another terminal edits the item; this one deletes it.
        f.store
            .transaction(|tx| {
                tx.items_put(
                    DatastoreKey::new("test", "contacts"),
                    Some("other"),
                    &[NewItem {
                        guid: Some(guid.clone()),
                        content_type: "text/vcard".into(),
                        data: b"BEGIN:VCARD\r\nFN:Edited\r\nEND:VCARD\r\n".to_vec(),
                    }],
                    Timestamp::from_unix_secs(3),
                )
            })
            .expect("edit");
        f.new_session();
        f.send(vec![alert(200, Some("a1"), "a2")], true);
        let delete = Command::Delete(Delete {
            cmd_id: "3".into(),
            items: vec![Item {
                source: Some(Source::new("c1")),
                ..Item::default()
            }],
            ..Delete::default()
        });
        let r = f.send(vec![client_sync(vec![delete])], true);
        assert_eq!(codes(&r, "Delete"), [419]);
        let back = r.body.commands.iter().any(|c| match c {
            Command::Sync(s) => s.commands.iter().any(|c| matches!(c, Command::Add(_))),
            _ => false,
        });
        assert!(
            back,
            "the edited item goes back to the client as an Add: {r:?}"
        );
        let live = f
            .store
            .read(|tx| tx.item_get(DatastoreKey::new("test", "contacts"), &guid))
            .expect("item");
        assert!(live.is_some_and(|i| !i.deleted), "nothing is lost");
    }

    #[test]
    fn untyped_items_get_the_type_their_version_says() {
        let contacts = datastores::resolve("contacts").expect("contacts");
        let item = Item::default();
        let ct = |data: &str| content_type(&item, None, contacts, data.as_bytes());
        assert_eq!(
            ct("BEGIN:VCARD\r\nVERSION:2.1\r\nEND:VCARD\r\n"),
            "text/x-vcard"
        );
        assert_eq!(
            ct("BEGIN:VCARD\r\nVERSION:3.0\r\nEND:VCARD\r\n"),
            "text/vcard"
        );
        assert_eq!(ct("no version at all"), "text/vcard");
        let typed = Item {
            meta: Some(Meta::of_type("text/x-vcard")),
            ..Item::default()
        };
        assert_eq!(
            content_type(&typed, None, contacts, b"VERSION:3.0"),
            "text/x-vcard",
            "an explicit type wins"
        );
    }

    #[test]
    fn content_key_ignores_volatile_lines() {
        let a = b"BEGIN:VCARD\r\nREV:1\r\nN:A;B\r\nEND:VCARD\r\n";
        let b = b"BEGIN:VCARD\r\nN:A;B\r\nREV:2\r\nPRODID:x\r\nEND:VCARD\r\n";
        assert_eq!(content_key(a), content_key(b));
    }

    #[test]
    fn content_key_matches_the_same_item_as_written_by_different_clients() {
        // As another handset stored it, and as SyncEvolution sends it back.
        let plain = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Bob Example\r\nN:Example;Bob;;;\r\n\
                     NOTE:a long note\\, folded\r\n  in two\r\nEND:VCARD\r\n";
        let padded =
            "BEGIN:VCARD\nVERSION:3.0\nPRODID:-//Synthesis AG//NONSGML SyncML Engine//EN\n\
                      REV:20100328T103410Z\nN:Example;Bob;;;\nFN:Bob Example\n\
                      X-EVOLUTION-FILE-AS:\nNICKNAME:\nORG:;;;\nTEL:\nADR:;;;;;;\n\
                      NOTE:a long note\\, folded in two\nGEO:;\nEND:VCARD\n";
        assert_eq!(
            content_key(plain.as_bytes()),
            content_key(padded.as_bytes())
        );
        let other = padded.replace("Bob Example", "Rob Example");
        assert_ne!(content_key(plain.as_bytes()), content_key(other.as_bytes()));
        let event = "BEGIN:VEVENT\r\nSUMMARY:Lunch\r\nDTSTART:20240103T120000Z\r\nEND:VEVENT\r\n";
        let with_description = event.replace(
            "SUMMARY:Lunch\r\n",
            "SUMMARY:Lunch\r\nDESCRIPTION:Lunch\r\n",
        );
        assert_eq!(
            content_key(event.as_bytes()),
            content_key(with_description.as_bytes())
        );
        let real_description = event.replace(
            "SUMMARY:Lunch\r\n",
            "SUMMARY:Lunch\r\nDESCRIPTION:Pizza\r\n",
        );
        assert_ne!(
            content_key(event.as_bytes()),
            content_key(real_description.as_bytes())
        );
    }

    // -----------------------------------------------------------------------------
    // Package 4 content types follow the terminal's DevInf.
    // -----------------------------------------------------------------------------

    /// A DevInf whose `./contacts` receives `rx` (first = Rx-Pref).
    fn contacts_devinf(rx: &[(&str, &str)]) -> syncml_core::model::DevInf {
        use syncml_core::model::{CtTypeVer, DataStore, DevInf};
        let ct = |(t, v): &(&str, &str)| CtTypeVer::new(*t, *v);
        DevInf {
            ver_dtd: "1.2".into(),
            dev_id: "dev1".into(),
            dev_typ: "phone".into(),
            data_stores: vec![DataStore {
                source_ref: "./contacts".into(),
                rx_pref: ct(&rx[0]),
                rx: rx[1..].iter().map(ct).collect(),
                tx_pref: ct(&rx[0]),
                ..DataStore::default()
            }],
            ..DevInf::default()
        }
    }

    fn devinf_put(d: syncml_core::model::DevInf) -> Command {
        Command::Put(GetPut {
            cmd_id: "5".into(),
            meta: Some(Meta::of_type("application/vnd.syncml-devinf+xml")),
            items: vec![Item {
                source: Some(Source::new("./devinf12")),
                data: Some(Data::DevInf(Box::new(d))),
                ..Item::default()
            }],
            ..GetPut::default()
        })
    }

    /// (command name, Meta Type, data) of every Add/Replace the server sends.
    fn server_items(m: &SyncMl) -> Vec<(&'static str, String, String)> {
        m.body
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::Sync(s) => Some(s.commands.iter()),
                _ => None,
            })
            .flatten()
            .filter_map(|c| match c {
                Command::Add(ic) => Some(("Add", ic)),
                Command::Replace(ic) => Some(("Replace", ic)),
                _ => None,
            })
            .map(|(n, ic)| {
                let ty = ic.meta.as_ref().and_then(|m| m.r#type.clone());
                let data = ic
                    .items
                    .first()
                    .and_then(|i| i.data.as_ref())
                    .and_then(Data::as_bytes)
                    .map(|b| String::from_utf8_lossy(b).into_owned());
                (n, ty.unwrap_or_default(), data.unwrap_or_default())
            })
            .collect()
    }

    #[test]
    fn package_4_converts_a_stored_vcard_30_to_the_vcard_21_the_devinf_asks_for() {
        let mut f = Fixture::new();
        f.seed_items(1); // vCard 3.0, text/vcard, from another terminal
        f.new_session();
        let put = devinf_put(contacts_devinf(&[("text/x-vcard", "2.1")]));
        f.send(vec![put, alert(201, None, "a1")], true);
        let r = f.send(vec![client_sync(vec![])], true);
        let items = server_items(&r);
        assert_eq!(items.len(), 1, "{items:?}");
        let (cmd, ty, data) = &items[0];
        assert_eq!((*cmd, ty.as_str()), ("Add", "text/x-vcard"));
        assert!(data.contains("VERSION:2.1\r\n"), "{data}");
        assert!(!data.contains("VERSION:3.0"), "{data}");
        // Stored as written: the conversion is for the wire only.
        use crate::store::StoreExt;
        let stored = f
            .store
            .read(|tx| tx.items_list_live(DatastoreKey::new("test", "contacts")))
            .expect("items");
        assert_eq!(stored[0].content_type, "text/vcard");
        assert!(String::from_utf8_lossy(&stored[0].data).contains("VERSION:3.0"));
    }

    #[test]
    fn package_4_sends_as_stored_what_the_devinf_receives_or_without_devinf() {
        for put in [
            Some(devinf_put(contacts_devinf(&[
                ("text/x-vcard", "2.1"),
                ("text/vcard", "3.0"),
            ]))),
            None,
        ] {
            let mut f = Fixture::new();
            f.seed_items(1);
            f.new_session();
            let mut first: Vec<Command> = put.into_iter().collect();
            first.push(alert(201, None, "a1"));
            f.send(first, true);
            let r = f.send(vec![client_sync(vec![])], true);
            let items = server_items(&r);
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].1, "text/vcard");
            assert!(items[0].2.contains("VERSION:3.0\r\n"));
        }
    }

    #[test]
    fn package_4_converts_replaces_too() {
        use crate::store::StoreExt;
        let mut f = Fixture::new();
        f.new_session();
        let put = devinf_put(contacts_devinf(&[("text/x-vcard", "2.1")]));
        f.send(vec![put, alert(201, None, "a1")], true);
        let add = Command::Add(ItemCommand {
            cmd_id: "3".into(),
            meta: Some(Meta::of_type("text/x-vcard")),
            items: vec![Item {
                source: Some(Source::new("c1")),
                data: Some(Data::Text(
                    "BEGIN:VCARD\r\nVERSION:2.1\r\nN:One;C\r\nEND:VCARD\r\n".into(),
                )),
                ..Item::default()
            }],
            ..ItemCommand::default()
        });
        f.send(vec![client_sync(vec![add])], true);
        f.send(vec![], true);
        // Another terminal rewrites the item as vCard 3.0.
        let dsk = DatastoreKey::new("test", "contacts");
        let guid = f.store.read(|tx| tx.items_list_live(dsk)).expect("items")[0]
            .guid
            .clone();
        f.store
            .transaction(|tx| {
                tx.items_put(
                    dsk,
                    Some("other"),
                    &[NewItem {
                        guid: Some(guid.clone()),
                        content_type: "text/vcard".into(),
                        data: b"BEGIN:VCARD\r\nVERSION:3.0\r\nN:One;C\r\nFN:C One\r\n\
NOTE:two\\nlines\r\nEND:VCARD\r\n"
                            .to_vec(),
                    }],
                    Timestamp::from_unix_secs(3),
                )
            })
            .expect("rewrite");
        f.new_session();
        f.send(vec![alert(200, Some("a1"), "a2")], true);
        let r = f.send(vec![client_sync(vec![])], true);
        let items = server_items(&r);
        assert_eq!(items.len(), 1, "{items:?}");
        let (cmd, ty, data) = &items[0];
        assert_eq!((*cmd, ty.as_str()), ("Replace", "text/x-vcard"));
        assert!(
            data.contains("VERSION:2.1\r\n")
                && data.contains("NOTE;ENCODING=QUOTED-PRINTABLE:two=0D=0Alines\r\n"),
            "{data}"
        );
    }

    #[test]
    fn a_slow_sync_matches_a_converted_copy_to_the_stored_original_instead_of_duplicating() {
        use crate::store::StoreExt;
        use syncml_core::content::{convert, ContentType};
        let mut f = Fixture::new();
        f.seed_items(1); // vCard 3.0
        let dsk = DatastoreKey::new("test", "contacts");
        let original = f.store.read(|tx| tx.items_list_live(dsk)).expect("items")[0]
            .data
            .clone();
        let as21 = convert(
            &original,
            &ContentType::new("text/vcard", ""),
            &ContentType::new("text/x-vcard", "2.1"),
        )
        .expect("convert");
        assert!(String::from_utf8_lossy(&as21).contains("VERSION:2.1"));
        f.new_session();
        f.send(vec![alert(201, None, "a1")], true);
        let add = Command::Add(ItemCommand {
            cmd_id: "3".into(),
            meta: Some(Meta::of_type("text/x-vcard")),
            items: vec![Item {
                source: Some(Source::new("c1")),
                data: Some(Data::Binary(as21)),
                ..Item::default()
            }],
            ..ItemCommand::default()
        });
        let r = f.send(vec![client_sync(vec![add])], true);
        assert_eq!(
            server_items(&r).len(),
            0,
            "matched, so nothing to send back"
        );
        let items = f.store.read(|tx| tx.items_list_live(dsk)).expect("items");
        assert_eq!(items.len(), 1, "no duplicate");
        assert_eq!(items[0].content_type, "text/vcard", "the original is kept");
    }

    // ----- slow syncs the server forces keep the terminal's map ---------------------------

    fn card(name: &str) -> String {
        format!("BEGIN:VCARD\r\nFN:{name}\r\nEND:VCARD\r\n")
    }

    fn client_item(replace: bool, luid: &str, data: &str) -> Command {
        let ic = ItemCommand {
            cmd_id: "3".into(),
            meta: Some(Meta::of_type("text/vcard")),
            items: vec![Item {
                source: Some(Source::new(luid)),
                data: Some(Data::Text(data.into())),
                ..Item::default()
            }],
            ..ItemCommand::default()
        };
        if replace {
            Command::Replace(ic)
        } else {
            Command::Add(ic)
        }
    }

    /// Package 4's commands: (command, target or source LocURI, data).
    fn package_4(m: &SyncMl) -> Vec<(String, String, String)> {
        m.body
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::Sync(s) => Some(s.commands.iter()),
                _ => None,
            })
            .flatten()
            .map(|c| {
                let item = c.items().first();
                let uri = item
                    .and_then(|i| i.target.as_ref().map(|t| t.loc_uri.clone()))
                    .or_else(|| item.and_then(|i| i.source.as_ref().map(|s| s.loc_uri.clone())))
                    .unwrap_or_default();
                let data = item
                    .and_then(|i| i.data.as_ref())
                    .and_then(Data::as_bytes)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                (c.name().to_string(), uri, data)
            })
            .collect()
    }

    const CONTACTS: DatastoreKey<'static> = DatastoreKey {
        subscriber: "test",
        datastore: "contacts",
    };

    fn map_of(f: &Fixture) -> Vec<(String, String)> {
        use crate::store::StoreExt;
        f.store
            .read(|tx| tx.map_list(SyncKey::new("test", "dev1", "contacts")))
            .expect("map")
            .into_iter()
            .map(|e| (e.luid, e.guid))
            .collect()
    }

    fn live_cards(f: &Fixture) -> Vec<String> {
        use crate::store::StoreExt;
        let mut v: Vec<String> = f
            .store
            .read(|tx| tx.items_list_live(CONTACTS))
            .expect("items")
            .into_iter()
            .map(|i| String::from_utf8_lossy(&i.data).into_owned())
            .collect();
        v.sort();
        v
    }

    fn other_writes(f: &Fixture, guid: &str, data: &str, at: i64) {
        use crate::store::StoreExt;
        f.store
            .transaction(|tx| {
                tx.items_put(
                    CONTACTS,
                    Some("other"),
                    &[NewItem {
                        guid: Some(guid.to_string()),
                        content_type: "text/vcard".into(),
                        data: data.as_bytes().to_vec(),
                    }],
                    Timestamp::from_unix_secs(at),
                )
            })
            .expect("edit elsewhere");
    }

    fn other_deletes(f: &Fixture, guid: &str) {
        use crate::store::StoreExt;
        f.store
            .transaction(|tx| {
                tx.items_delete(
                    CONTACTS,
                    Some("other"),
                    &[guid.to_string()],
                    Timestamp::from_unix_secs(3),
                )
            })
            .expect("delete elsewhere");
    }

    /// The terminal holds `c1` (FN:C1, mapped to the returned GUID) and the server's
    /// anchors have moved past the client's: a two-way session completed here whose last
    /// answer the handset never got (it still has anchor `a1`, we have `a2`).
    fn lost_last_answer(f: &mut Fixture) -> String {
        complete_slow_sync(f, "a1");
        f.new_session();
        f.send(vec![alert(200, Some("a1"), "a2")], true);
        f.send(vec![client_sync(vec![])], true);
        let done = f.send(vec![], true);
        assert!(done.header.resp_uri.is_none(), "complete on the server");
        let map = map_of(f);
        assert_eq!(map.len(), 1);
        map[0].1.clone()
    }

    /// The handset's next session: it asks for a two-way sync with its old anchor and
    /// is made slow (508, 201).
    fn forced_slow_sync(f: &mut Fixture) {
        f.new_session();
        let r = f.send(vec![alert(200, Some("a1"), "a3")], true);
        assert_eq!(codes(&r, "Alert"), [508]);
        assert_eq!(alert_codes(&r), [201]);
    }

    fn finish_session(f: &mut Fixture, commands: Vec<Command>) {
        let done = f.send(commands, true);
        assert!(done.header.resp_uri.is_none(), "session complete: {done:?}");
        assert_eq!(f.anchor().as_deref(), Some("a3"));
    }

    #[test]
    fn a_server_forced_slow_sync_keeps_the_map_and_sends_a_newer_version_as_replace() {
        let mut f = Fixture::new();
        let g = lost_last_answer(&mut f);
        other_writes(&f, &g, &card("C1-v2"), 3);
        forced_slow_sync(&mut f);
        assert_eq!(map_of(&f), [("c1".to_string(), g.clone())], "map kept");
        let r = f.send(
            vec![client_sync(vec![client_item(true, "c1", &card("C1"))])],
            true,
        );
        assert_eq!(codes(&r, "Replace"), [200]);
        assert_eq!(
            package_4(&r),
            [("Replace".to_string(), "c1".to_string(), card("C1-v2"))],
            "our newer version to the client's LUID, nothing new"
        );
        finish_session(&mut f, vec![]);
        assert_eq!(live_cards(&f), [card("C1-v2")], "no old version anywhere");
        assert_eq!(map_of(&f), [("c1".to_string(), g)]);
    }

    #[test]
    fn a_server_forced_slow_sync_does_not_resurrect_an_item_deleted_elsewhere() {
        let mut f = Fixture::new();
        let g = lost_last_answer(&mut f);
        other_deletes(&f, &g);
        forced_slow_sync(&mut f);
        let r = f.send(
            vec![client_sync(vec![client_item(true, "c1", &card("C1"))])],
            true,
        );
        assert_eq!(codes(&r, "Replace"), [200]);
        assert_eq!(
            package_4(&r),
            [("Delete".to_string(), "c1".to_string(), String::new())]
        );
        assert!(live_cards(&f).is_empty(), "not brought back");
        finish_session(&mut f, vec![]);
        assert!(map_of(&f).is_empty(), "the deleted item's map entry went");
    }

    #[test]
    fn a_server_forced_slow_sync_keeps_a_client_edit_of_an_item_deleted_elsewhere() {
        let mut f = Fixture::new();
        let g = lost_last_answer(&mut f);
        other_deletes(&f, &g);
        forced_slow_sync(&mut f);
        let r = f.send(
            vec![client_sync(vec![client_item(true, "c1", &card("C1-mine"))])],
            true,
        );
        assert_eq!(codes(&r, "Replace"), [201], "stored as a new item");
        assert!(package_4(&r).is_empty());
        finish_session(&mut f, vec![]);
        assert_eq!(live_cards(&f), [card("C1-mine")], "nothing is lost");
        let map = map_of(&f);
        assert_eq!(map.len(), 1);
        assert_ne!(map[0].1, g, "c1 names the new item");
    }

    #[test]
    fn a_server_forced_slow_sync_applies_the_clients_own_edit() {
        let mut f = Fixture::new();
        let g = lost_last_answer(&mut f);
        forced_slow_sync(&mut f);
        let r = f.send(
            vec![client_sync(vec![client_item(true, "c1", &card("C1-mine"))])],
            true,
        );
        assert_eq!(codes(&r, "Replace"), [200]);
        assert!(package_4(&r).is_empty(), "nothing to send: {r:?}");
        finish_session(&mut f, vec![]);
        assert_eq!(live_cards(&f), [card("C1-mine")]);
        assert_eq!(map_of(&f), [("c1".to_string(), g)]);
    }

    #[test]
    fn a_server_forced_slow_sync_takes_an_unchanged_item_as_it_is() {
        let mut f = Fixture::new();
        let g = lost_last_answer(&mut f);
        let rev = |f: &Fixture| {
            use crate::store::StoreExt;
            f.store
                .read(|tx| tx.datastore_revision(CONTACTS))
                .expect("rev")
        };
        let before = rev(&f);
        forced_slow_sync(&mut f);
        let r = f.send(
            vec![client_sync(vec![client_item(true, "c1", &card("C1"))])],
            true,
        );
        assert_eq!(codes(&r, "Replace"), [200]);
        assert!(package_4(&r).is_empty());
        finish_session(&mut f, vec![]);
        assert_eq!(rev(&f), before, "no new revision");
        assert_eq!(map_of(&f), [("c1".to_string(), g)]);
    }

    #[test]
    fn a_server_forced_slow_sync_resolves_an_edit_on_both_sides_by_policy() {
        /// What the client sent, its status, package 4 (command, to the client's LUID
        /// or else from our GUID, data) and the database after.
        type Case<'a> = (
            ConflictPolicy,
            &'a str,
            u16,
            Vec<(&'a str, bool, String)>,
            Vec<String>,
        );
        let newer = "BEGIN:VCARD\r\nFN:C1-mine\r\nREV:20300101T000000Z\r\nEND:VCARD\r\n";
        let older = "BEGIN:VCARD\r\nFN:C1-mine\r\nREV:19800101T000000Z\r\nEND:VCARD\r\n";
        let cases: Vec<Case> = vec![
            (
                ConflictPolicy::ServerWins,
                newer,
                419,
                vec![("Replace", true, card("C1-v2"))],
                vec![card("C1-v2")],
            ),
            (
                ConflictPolicy::ClientWins,
                older,
                208,
                vec![],
                vec![older.to_string()],
            ),
            (
                ConflictPolicy::Duplicate,
                newer,
                209,
                vec![("Add", false, card("C1-v2"))],
                vec![card("C1-v2"), newer.to_string()],
            ),
            (
                ConflictPolicy::NewerWins,
                newer,
                208,
                vec![],
                vec![newer.to_string()],
            ),
            (
                ConflictPolicy::NewerWins,
                older,
                419,
                vec![("Replace", true, card("C1-v2"))],
                vec![card("C1-v2")],
            ),
        ];
        for (policy, mine, status, sent, after) in cases {
            let mut f = Fixture::new();
            f.engine = Engine::new(EngineConfig {
                conflict_policy: policy,
                ..EngineConfig::default()
            });
            let g = lost_last_answer(&mut f);
            other_writes(&f, &g, &card("C1-v2"), 1_850_000_000);
            forced_slow_sync(&mut f);
            let r = f.send(vec![client_sync(vec![client_item(true, "c1", mine)])], true);
            assert_eq!(codes(&r, "Replace"), [status], "{policy:?}");
            let want: Vec<(String, String, String)> = sent
                .into_iter()
                .map(|(cmd, to_luid, data)| {
                    let uri = if to_luid { "c1".to_string() } else { g.clone() };
                    (cmd.to_string(), uri, data)
                })
                .collect();
            assert_eq!(package_4(&r), want, "{policy:?}");
            let mut maps = vec![];
            if policy == ConflictPolicy::Duplicate {
                // Our version arrived as an Add; the client maps it.
                maps.push(Command::Map(syncml_core::model::Map {
                    cmd_id: "4".into(),
                    target: Target::new("addressbook"),
                    source: Source::new("./contacts"),
                    map_items: vec![syncml_core::model::MapItem::new(g.clone(), "c2")],
                    ..syncml_core::model::Map::default()
                }));
            }
            finish_session(&mut f, maps);
            let mut after = after;
            after.sort();
            assert_eq!(live_cards(&f), after, "{policy:?}");
            let map = map_of(&f);
            match policy {
                ConflictPolicy::Duplicate => {
                    assert_eq!(map.len(), 2);
                    assert!(map.contains(&("c2".to_string(), g.clone())));
                }
                _ => assert_eq!(map, [("c1".to_string(), g.clone())], "{policy:?}"),
            }
        }
    }

    #[test]
    fn a_server_forced_slow_sync_sends_back_a_mapped_item_the_client_no_longer_holds() {
        let mut f = Fixture::new();
        let g = lost_last_answer(&mut f);
        forced_slow_sync(&mut f);
        let r = f.send(vec![client_sync(vec![])], true);
        assert_eq!(
            package_4(&r),
            [("Add".to_string(), g.clone(), card("C1"))],
            "as new, to be mapped anew"
        );
        assert!(map_of(&f).is_empty(), "the old LUID is forgotten");
        let map = Command::Map(syncml_core::model::Map {
            cmd_id: "4".into(),
            target: Target::new("addressbook"),
            source: Source::new("./contacts"),
            map_items: vec![syncml_core::model::MapItem::new(g.clone(), "c9")],
            ..syncml_core::model::Map::default()
        });
        finish_session(&mut f, vec![map]);
        assert_eq!(map_of(&f), [("c9".to_string(), g)]);
        assert_eq!(live_cards(&f), [card("C1")]);
    }

    #[test]
    fn a_server_forced_slow_sync_that_does_not_complete_is_followed_by_another() {
        use crate::store::StoreExt;
        let mut f = Fixture::new();
        let g = lost_last_answer(&mut f);
        let key = SyncKey::new("test", "dev1", "contacts");
        let acked = |f: &Fixture| {
            f.store
                .read(|tx| tx.sync_state_get(key))
                .expect("state")
                .map(|s| (s.client_anchor, s.acked_revision))
        };
        let (_, rev) = acked(&f).expect("state");
        other_writes(&f, &g, &card("C1-v2"), 3);
        // Abandoned after package 1: the client anchor went, the mark and map stayed...
        forced_slow_sync(&mut f);
        assert_eq!(acked(&f), Some((None, rev)));
        // ...so the next session is slow again, judged against the same mark.
        forced_slow_sync(&mut f);
        let r = f.send(
            vec![client_sync(vec![client_item(true, "c1", &card("C1"))])],
            true,
        );
        assert_eq!(
            package_4(&r),
            [("Replace".to_string(), "c1".to_string(), card("C1-v2"))]
        );
        finish_session(&mut f, vec![]);
        assert_eq!(live_cards(&f), [card("C1-v2")]);
    }

    #[test]
    fn a_server_forced_slow_sync_matches_an_item_under_a_new_luid_by_content() {
        let mut f = Fixture::new();
        let g = lost_last_answer(&mut f);
        forced_slow_sync(&mut f);
        let r = f.send(
            vec![client_sync(vec![
                client_item(true, "c7", &card("C1")),
                client_item(true, "c8", &card("C1")),
            ])],
            true,
        );
        assert_eq!(
            codes(&r, "Replace"),
            [200, 201],
            "the second is a copy of its own"
        );
        assert!(package_4(&r).is_empty(), "nothing sent back: {r:?}");
        finish_session(&mut f, vec![]);
        let map = map_of(&f);
        assert!(map.contains(&("c7".to_string(), g)), "{map:?}");
        assert_eq!(map.len(), 2);
        assert_eq!(live_cards(&f), [card("C1"), card("C1")]);
    }

    #[test]
    fn a_suspended_server_forced_slow_sync_resumes_over_the_kept_map() {
        let mut f = Fixture::new();
        let g = lost_last_answer(&mut f);
        other_writes(&f, &g, &card("C1-v2"), 3);
        forced_slow_sync(&mut f);
        let r = f.send(
            vec![client_sync(vec![client_item(true, "c1", &card("C1"))])],
            true,
        );
        let replace = vec![("Replace".to_string(), "c1".to_string(), card("C1-v2"))];
        assert_eq!(package_4(&r), replace);
        // Suspended instead of package 5; resumed in the next session.
        let r = f.send(vec![alert(224, None, "a3")], true);
        assert!(r.header.resp_uri.is_none(), "suspended");
        f.new_session();
        let r = f.send(vec![alert(225, Some("a1"), "a3")], true);
        assert_eq!(codes(&r, "Alert"), [200]);
        assert_eq!(alert_codes(&r), [201]);
        let r = f.send(vec![client_sync(vec![])], true);
        assert_eq!(
            package_4(&r),
            replace,
            "still a Replace to the client's LUID, not an Add"
        );
        finish_session(&mut f, vec![]);
        assert_eq!(live_cards(&f), [card("C1-v2")]);
        assert_eq!(map_of(&f), [("c1".to_string(), g)]);
    }

    #[test]
    fn a_client_requested_slow_sync_still_clears_the_map() {
        use crate::store::StoreExt;
        let mut f = Fixture::new();
        let g = lost_last_answer(&mut f);
        other_writes(&f, &g, &card("C1-v2"), 3);
        f.new_session();
        let r = f.send(vec![alert(201, Some("a1"), "a3")], true);
        assert_eq!(codes(&r, "Alert"), [200]);
        assert!(map_of(&f).is_empty(), "the client's LUIDs may be new");
        let state = f
            .store
            .read(|tx| tx.sync_state_get(SyncKey::new("test", "dev1", "contacts")))
            .expect("state");
        assert_eq!(state, None);
        // Matched by content only, as before: the older copy is an item of its own.
        let r = f.send(
            vec![client_sync(vec![client_item(true, "c1", &card("C1"))])],
            true,
        );
        assert_eq!(codes(&r, "Replace"), [201]);
        assert_eq!(
            package_4(&r),
            [("Add".to_string(), g, card("C1-v2"))],
            "{r:?}"
        );
    }

    #[test]
    fn a_slow_sync_without_a_last_anchor_clears_the_map() {
        let mut f = Fixture::new();
        lost_last_answer(&mut f);
        f.new_session();
        let r = f.send(vec![alert(200, None, "a3")], true);
        assert_eq!(codes(&r, "Alert"), [508]);
        assert!(
            map_of(&f).is_empty(),
            "a client without anchors holds no LUID of ours"
        );
    }
}

//! In-memory implementations of the handset traits: for tests, simulators and examples.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::StoreError;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::handset::{
    Clock, DeviceStatus, Notice, Permission, PinResult, Sim, Terminal, Ui, Warning,
};
use crate::store::{
    Applied, Change, ChangeId, ChangeKind, DataStore, LocalItem, ServerChange, SyncState,
};

/// A data store held in memory, with a change log of local edits.
///
/// It supports titles first ([`crate::summary`]): items received as summaries are kept
/// apart ([`is_summary_only`](MemoryStore::is_summary_only)) until their body is stored,
/// and local edits of such items are refused.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    local_uri: String,
    server_uri: String,
    content_type: (String, String),
    items: BTreeMap<String, Vec<u8>>,
    changes: BTreeMap<String, Change>,
    /// LUIDs of pending Adds handed to a session ([`DataStore::changes`]): the server may
    /// hold them even though no acknowledgement came back (its answer was lost).
    offered: BTreeSet<String>,
    /// Items held only as summaries: LUID → full size on the server.
    summaries: BTreeMap<String, u64>,
    next_luid: u64,
    next_version: u64,
    state: SyncState,
    /// When set, local edits are flagged as made without the SIM (para. 0068).
    pub sim_mounted: bool,
}

impl MemoryStore {
    /// An empty store `local_uri` (`./contacts`) synced with the server's `server_uri`
    /// (`contacts`), holding items of `content_type` version `version`.
    pub fn new(local_uri: &str, server_uri: &str, content_type: &str, version: &str) -> Self {
        MemoryStore {
            local_uri: local_uri.to_string(),
            server_uri: server_uri.to_string(),
            content_type: (content_type.to_string(), version.to_string()),
            items: BTreeMap::new(),
            changes: BTreeMap::new(),
            offered: BTreeSet::new(),
            summaries: BTreeMap::new(),
            next_luid: 1,
            next_version: 1,
            state: SyncState::default(),
            sim_mounted: true,
        }
    }

    /// A contacts store (`./contacts` ↔ `contacts`, vCard 2.1).
    pub fn contacts() -> Self {
        MemoryStore::new("./contacts", "contacts", "text/x-vcard", "2.1")
    }

    fn log(&mut self, luid: &str, kind: ChangeKind, data: Option<Vec<u8>>) {
        let version = self.next_version;
        self.next_version += 1;
        // Collapse: an Add later replaced is still an Add; an Add later deleted vanishes,
        // unless a session took the Add: the server may have stored it (the answer got
        // lost), so it must hear of the delete.
        let kind = match (self.changes.get(luid).map(|c| c.kind), kind) {
            (Some(ChangeKind::Add), ChangeKind::Replace) => ChangeKind::Add,
            (Some(ChangeKind::Add), ChangeKind::Delete) if !self.offered.contains(luid) => {
                self.changes.remove(luid);
                return;
            }
            (_, k) => k,
        };
        self.changes.insert(
            luid.to_string(),
            Change {
                luid: luid.to_string(),
                kind,
                data,
                content_type: None,
                version,
                sim_less: !self.sim_mounted,
            },
        );
    }

    /// Adds an item locally (logged); returns its LUID.
    pub fn add(&mut self, data: impl Into<Vec<u8>>) -> String {
        let luid = self.next_luid.to_string();
        self.next_luid += 1;
        let data = data.into();
        self.items.insert(luid.clone(), data.clone());
        self.log(&luid, ChangeKind::Add, Some(data));
        luid
    }

    /// Replaces an item locally (logged); `false` if there is no such item, or if it is
    /// held only as a summary (titles first: fetch its body first, or the summary would
    /// overwrite the full item on the server).
    pub fn update(&mut self, luid: &str, data: impl Into<Vec<u8>>) -> bool {
        if self.summaries.contains_key(luid) {
            return false;
        }
        let data = data.into();
        match self.items.get_mut(luid) {
            Some(d) => {
                *d = data.clone();
                self.log(luid, ChangeKind::Replace, Some(data));
                true
            }
            None => false,
        }
    }

    /// Deletes an item locally (logged); `false` if there is no such item. A summary-only
    /// item can be deleted: the whole item goes.
    pub fn delete(&mut self, luid: &str) -> bool {
        if self.items.remove(luid).is_some() {
            self.summaries.remove(luid);
            self.log(luid, ChangeKind::Delete, None);
            true
        } else {
            false
        }
    }

    /// The item `luid`.
    pub fn get(&self, luid: &str) -> Option<&[u8]> {
        self.items.get(luid).map(Vec::as_slice)
    }

    /// Every item's content, sorted (for comparing stores regardless of LUIDs).
    pub fn contents(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .items
            .values()
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .collect();
        v.sort();
        v
    }

    /// The LUID of the first item whose content equals `data`.
    pub fn find(&self, data: &[u8]) -> Option<String> {
        self.items
            .iter()
            .find(|(_, d)| d.as_slice() == data)
            .map(|(l, _)| l.clone())
    }

    /// True when item `luid` is held only as a summary (titles first).
    pub fn is_summary_only(&self, luid: &str) -> bool {
        self.summaries.contains_key(luid)
    }

    /// The full size the server declared for summary-only item `luid`.
    pub fn full_size(&self, luid: &str) -> Option<u64> {
        self.summaries.get(luid).copied()
    }

    /// The number of pending local changes.
    pub fn pending(&self) -> usize {
        self.changes.len()
    }

    /// The sync state (anchors, cached maps).
    pub fn state(&self) -> &SyncState {
        &self.state
    }
}

impl DataStore for MemoryStore {
    fn local_uri(&self) -> &str {
        &self.local_uri
    }

    fn server_uri(&self) -> &str {
        &self.server_uri
    }

    fn content_type(&self) -> (&str, &str) {
        (&self.content_type.0, &self.content_type.1)
    }

    fn changes(&mut self) -> Result<Vec<Change>, StoreError> {
        for c in self.changes.values() {
            if c.kind == ChangeKind::Add {
                self.offered.insert(c.luid.clone());
            }
        }
        Ok(self.changes.values().cloned().collect())
    }

    fn all_items(&mut self) -> Result<Vec<LocalItem>, StoreError> {
        Ok(self
            .items
            .iter()
            .map(|(l, d)| LocalItem {
                luid: l.clone(),
                data: d.clone(),
                content_type: None,
            })
            .collect())
    }

    fn apply(&mut self, change: ServerChange) -> Result<Applied, StoreError> {
        // A full server version (or a delete) ends a summary.
        if let ServerChange::Replace { luid, .. } | ServerChange::Delete { luid } = &change {
            self.summaries.remove(luid);
        }
        Ok(match change {
            ServerChange::Add { data, .. } => {
                let luid = self.next_luid.to_string();
                self.next_luid += 1;
                self.items.insert(luid.clone(), data);
                Applied::Added { luid }
            }
            ServerChange::Replace { luid, data, .. } => match self.items.get_mut(&luid) {
                Some(d) => {
                    *d = data;
                    Applied::Replaced
                }
                None => {
                    let luid = self.next_luid.to_string();
                    self.next_luid += 1;
                    self.items.insert(luid.clone(), data);
                    Applied::ReplacedAsNew { luid }
                }
            },
            ServerChange::Delete { luid } => {
                if self.items.remove(&luid).is_some() {
                    self.changes.remove(&luid);
                    self.offered.remove(&luid);
                    Applied::Deleted
                } else {
                    Applied::NotFound
                }
            }
        })
    }

    fn acknowledge(&mut self, changes: &[ChangeId]) -> Result<(), StoreError> {
        for id in changes {
            if self
                .changes
                .get(&id.luid)
                .is_some_and(|c| c.version <= id.version)
            {
                self.changes.remove(&id.luid);
                self.offered.remove(&id.luid);
            }
        }
        Ok(())
    }

    fn erase_local(&mut self) -> Result<(), StoreError> {
        self.items.clear();
        self.changes.clear();
        self.offered.clear();
        Ok(())
    }

    fn item_count(&mut self) -> Result<usize, StoreError> {
        Ok(self.items.len())
    }

    fn sync_state(&mut self) -> Result<SyncState, StoreError> {
        Ok(self.state.clone())
    }

    fn set_sync_state(&mut self, state: &SyncState) -> Result<(), StoreError> {
        self.state = state.clone();
        Ok(())
    }

    fn supports_summaries(&self) -> bool {
        true
    }

    fn apply_summary(
        &mut self,
        change: ServerChange,
        full_size: u64,
    ) -> Result<Applied, StoreError> {
        let applied = self.apply(change.clone())?;
        let luid = match (&applied, &change) {
            (Applied::Added { luid } | Applied::ReplacedAsNew { luid }, _) => luid.clone(),
            (Applied::Replaced, ServerChange::Replace { luid, .. }) => luid.clone(),
            _ => return Ok(applied),
        };
        self.summaries.insert(luid, full_size);
        Ok(applied)
    }

    fn is_summary(&mut self, luid: &str) -> Result<bool, StoreError> {
        Ok(self.summaries.contains_key(luid))
    }

    fn store_body(
        &mut self,
        luid: &str,
        data: Vec<u8>,
        _content_type: Option<String>,
    ) -> Result<(), StoreError> {
        match self.items.get_mut(luid) {
            Some(d) => {
                *d = data;
                self.summaries.remove(luid);
                Ok(())
            }
            None => Err(StoreError::new(&self.local_uri, format!("no item {luid}"))),
        }
    }
}

/// A SIM card in memory.
#[derive(Debug, Clone)]
pub struct MemorySim {
    subscriber_id: String,
    pin: String,
    tries_left: u8,
    terminals: Vec<String>,
}

impl MemorySim {
    /// A SIM of `subscriber_id` with `pin` and three PIN attempts.
    pub fn new(subscriber_id: &str, pin: &str) -> MemorySim {
        MemorySim {
            subscriber_id: subscriber_id.to_string(),
            pin: pin.to_string(),
            tries_left: 3,
            terminals: Vec::new(),
        }
    }
}

impl Sim for MemorySim {
    fn subscriber_id(&self) -> String {
        self.subscriber_id.clone()
    }

    fn collate_pin(&mut self, pin: &str) -> PinResult {
        if self.tries_left == 0 {
            return PinResult::Blocked;
        }
        if syncml_core::auth::constant_time_eq(pin.as_bytes(), self.pin.as_bytes()) {
            self.tries_left = 3;
            PinResult::Ok
        } else {
            self.tries_left -= 1;
            if self.tries_left == 0 {
                PinResult::Blocked
            } else {
                PinResult::Wrong {
                    tries_left: self.tries_left,
                }
            }
        }
    }

    fn registered_terminal_ids(&self) -> Vec<String> {
        self.terminals.clone()
    }

    fn register_terminal_id(&mut self, terminal_id: &str) {
        if !self.terminals.iter().any(|t| t == terminal_id) {
            self.terminals.push(terminal_id.to_string());
        }
    }
}

/// A terminal in memory.
#[derive(Debug, Clone)]
pub struct MemoryTerminal {
    terminal_id: String,
    password: String,
    subscriber: Option<String>,
}

impl MemoryTerminal {
    /// A terminal `terminal_id` whose terminal password is `password`.
    pub fn new(terminal_id: &str, password: &str) -> MemoryTerminal {
        MemoryTerminal {
            terminal_id: terminal_id.to_string(),
            password: password.to_string(),
            subscriber: None,
        }
    }
}

impl Terminal for MemoryTerminal {
    fn terminal_id(&self) -> String {
        self.terminal_id.clone()
    }

    fn collate_password(&self, password: &str) -> bool {
        syncml_core::auth::constant_time_eq(password.as_bytes(), self.password.as_bytes())
    }

    fn registered_subscriber_id(&self) -> Option<String> {
        self.subscriber.clone()
    }

    fn register_subscriber_id(&mut self, subscriber_id: &str) {
        self.subscriber = Some(subscriber_id.to_string());
    }
}

/// A user interface that answers from a script and records what it was told.
#[derive(Debug, Clone, Default)]
pub struct ScriptedUi {
    /// PINs to answer, in order (`None` entries cancel); the last one repeats; empty
    /// means cancel.
    pub pins: Vec<Option<String>>,
    /// Terminal passwords to answer, in order; the last one repeats; empty means cancel.
    pub passwords: Vec<Option<String>>,
    /// The answer to every permission question.
    pub permit: bool,
    /// Prompts asked, in order (`"pin"`, `"password"`, `"permission"`).
    pub asked: Vec<&'static str>,
    /// Notices received.
    pub notices: Vec<Notice>,
    /// Warnings received.
    pub warnings: Vec<Warning>,
}

impl ScriptedUi {
    /// A user who always types `pin` and `password` and permits everything.
    pub fn answering(pin: &str, password: &str) -> ScriptedUi {
        ScriptedUi {
            pins: vec![Some(pin.to_string())],
            passwords: vec![Some(password.to_string())],
            permit: true,
            ..ScriptedUi::default()
        }
    }
}

fn next_answer(script: &mut Vec<Option<String>>) -> Option<String> {
    match script.len() {
        0 => None,
        1 => script[0].clone(),
        _ => script.remove(0),
    }
}

impl Ui for ScriptedUi {
    fn ask_pin(&mut self, _tries_left: Option<u8>) -> Option<String> {
        self.asked.push("pin");
        next_answer(&mut self.pins)
    }

    fn ask_terminal_password(&mut self) -> Option<String> {
        self.asked.push("password");
        next_answer(&mut self.passwords)
    }

    fn ask_permission(&mut self, _what: &Permission) -> bool {
        self.asked.push("permission");
        self.permit
    }

    fn notify(&mut self, notice: &Notice) {
        self.notices.push(notice.clone());
    }

    fn warn(&mut self, warning: &Warning) {
        self.warnings.push(warning.clone());
    }
}

/// A battery and idle state set by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryDevice {
    /// Battery remaining amount, percent.
    pub battery_percent: u8,
    /// At or below this percentage the battery is low.
    pub low_at: u8,
    /// The terminal is idle.
    pub idle: bool,
}

impl Default for MemoryDevice {
    fn default() -> Self {
        MemoryDevice {
            battery_percent: 100,
            low_at: 15,
            idle: false,
        }
    }
}

impl DeviceStatus for MemoryDevice {
    fn battery_percent(&self) -> u8 {
        self.battery_percent
    }

    fn battery_low(&self) -> bool {
        self.battery_percent <= self.low_at
    }

    fn is_idle(&self) -> bool {
        self.idle
    }
}

/// A clock set by hand, shared between its clones; each reading can advance it by a
/// fixed step (to make time pass between the messages of a session).
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
    step: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock at `now` (Unix seconds) that does not move by itself.
    pub fn at(now: i64) -> ManualClock {
        let c = ManualClock::default();
        c.set(now);
        c
    }

    /// Sets the time.
    pub fn set(&self, now: i64) {
        self.now.store(now, Ordering::SeqCst);
    }

    /// Moves the time forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.now.fetch_add(secs, Ordering::SeqCst);
    }

    /// Every later reading advances the clock by `secs` after returning it.
    pub fn step_each_reading(&self, secs: i64) {
        self.step.store(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> i64 {
        let step = self.step.load(Ordering::SeqCst);
        self.now.fetch_add(step, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_log_collapses_and_acknowledges_by_version() {
        let mut s = MemoryStore::contacts();
        let a = s.add("A");
        assert!(s.update(&a, "A2"));
        let ch = s.changes().unwrap();
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].kind, ChangeKind::Add);
        let sent = ch[0].id();
        assert!(s.update(&a, "A3")); // edited during the session
        s.acknowledge(&[sent]).unwrap();
        assert_eq!(s.pending(), 1, "the newer edit stays pending");
        let b = s.add("B");
        assert!(s.delete(&b));
        assert_eq!(s.pending(), 1, "add then delete leaves nothing to send");
    }

    #[test]
    fn server_changes_are_not_logged() {
        let mut s = MemoryStore::contacts();
        let r = s
            .apply(ServerChange::Add {
                guid: "g1".into(),
                data: b"X".to_vec(),
                content_type: None,
            })
            .unwrap();
        assert!(matches!(r, Applied::Added { .. }));
        assert_eq!(s.pending(), 0);
        s.erase_local().unwrap();
        assert_eq!(s.item_count().unwrap(), 0);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn summary_only_items_refuse_local_edits_until_their_body_is_stored() {
        let mut s = MemoryStore::contacts();
        let r = s
            .apply_summary(
                ServerChange::Add {
                    guid: "g1".into(),
                    data: b"N:A".to_vec(),
                    content_type: None,
                },
                500,
            )
            .unwrap();
        let Applied::Added { luid } = r else {
            panic!("added: {r:?}")
        };
        assert!(s.is_summary_only(&luid));
        assert_eq!(s.full_size(&luid), Some(500));
        assert!(!s.update(&luid, "N:B"), "edit of a summary refused");
        assert_eq!(s.pending(), 0);
        s.store_body(&luid, b"N:A\nNOTE:long".to_vec(), None)
            .unwrap();
        assert!(!s.is_summary_only(&luid));
        assert!(s.update(&luid, "N:B"), "the full item can be edited");
        assert_eq!(s.pending(), 1);
    }

    #[test]
    fn sim_pin_counts_down_to_a_block() {
        let mut sim = MemorySim::new("sub", "1234");
        assert_eq!(sim.collate_pin("0000"), PinResult::Wrong { tries_left: 2 });
        assert_eq!(sim.collate_pin("1234"), PinResult::Ok);
        assert_eq!(sim.collate_pin("0"), PinResult::Wrong { tries_left: 2 });
        assert_eq!(sim.collate_pin("0"), PinResult::Wrong { tries_left: 1 });
        assert_eq!(sim.collate_pin("0"), PinResult::Blocked);
        assert_eq!(sim.collate_pin("1234"), PinResult::Blocked);
    }

    #[test]
    fn an_add_never_handed_to_a_session_and_then_deleted_vanishes() {
        let mut m = MemoryStore::contacts();
        let l = m.add("a");
        assert!(m.delete(&l));
        assert_eq!(m.pending(), 0);
    }

    #[test]
    fn an_add_handed_to_a_session_and_then_deleted_is_a_delete() {
        let mut m = MemoryStore::contacts();
        let l = m.add("a");
        // A session took it; no acknowledgement came back (the answer was lost).
        assert_eq!(m.changes().unwrap()[0].kind, ChangeKind::Add);
        assert!(m.delete(&l));
        let c = m.changes().unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].luid.as_str(), c[0].kind),
            (l.as_str(), ChangeKind::Delete)
        );
    }

    #[test]
    fn an_acknowledged_add_is_no_longer_offered() {
        let mut m = MemoryStore::contacts();
        let l = m.add("a");
        let c = m.changes().unwrap();
        m.acknowledge(&[ChangeId {
            luid: l.clone(),
            version: c[0].version,
        }])
        .unwrap();
        let l2 = m.add("b");
        assert!(m.delete(&l2), "a fresh Add, never offered");
        assert_eq!(m.pending(), 0);
        assert!(m.offered.is_empty());
    }
}

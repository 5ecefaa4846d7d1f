//! When to sync, sans I/O (para. 0041-0044, 0068, FIG. 21-22): events in, [`Action`]s
//! out.
//!
//! [`TriggerPolicy::on_event`] takes what happened on the handset (the SIM is about to be
//! removed or was inserted, the clock ticked, a local update, a user request, the
//! terminal went idle, the battery ran low, a data class was opened) and answers with the
//! syncs to run ([`Plan`]: which data stores, which mode, which [`Budget`]) and what to
//! tell the user. The caller runs the plans (see [`crate::executor`]) and feeds each
//! result back with [`TriggerPolicy::on_outcome`]. The policy never touches a store, a
//! socket or a clock.
//!
//! | trigger | spec | plan |
//! |---|---|---|
//! | user's directive before removing the SIM | a1 | upload (202) of the stores with updates |
//! | every `upload_every` seconds | a2 | upload of the stores with updates |
//! | each local update | a3 | upload of that store |
//! | pending update bytes reach `upload_threshold` | a4 | upload of the stores with updates |
//! | user request | a5 | two-way (200) of the stores asked, never asks permission |
//! | SIM inserted | 0043 | once per insertion: download (204), two-way for stores with local updates (0044, 0068) |
//! | first access to a data class | 0043 | download of that class only, once per insertion |
//! | SIM inserted, downloads not automatic | 0044 | a probe, then a notice of the server's updates |
//! | idle after `interval` (or idle again after a missed turn) | FIG. 21 | two-way under the idle [`Budget`] |
//! | battery low | FIG. 22 | upload only; downloads wait for the next insertion |
//!
//! Combinations (a6) are the flags set together. With [`TriggerConfig::ask_permission`]
//! every automatic plan asks the user first (para. 0042, 0091). Without the SIM nothing
//! is planned; a local update then is flagged SIM-less by the store and, when the server
//! is known to hold changes for that class not yet downloaded, warned about as a possible
//! conflict (para. 0068).

use std::collections::{BTreeMap, BTreeSet};

use crate::budget::{Budget, CutShort};
use crate::error::GateRefusal;
use crate::handset::{DeviceStatus, Notice, Warning};
use crate::mode::SyncMode;
use crate::session::SessionReport;

/// `every` seconds have passed since `last` (or it never happened).
fn elapsed(last: Option<i64>, every: u64, now: i64) -> bool {
    last.is_none_or(|l| now.saturating_sub(l) >= every as i64)
}

/// Idle-state sync (FIG. 21).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleSync {
    /// Seconds between two idle syncs (S91): a tick after the interval syncs when the
    /// terminal is idle, else the next idle start does (para. 0087); an idle start after
    /// the interval syncs too. 0: only idle starts sync, each of them (para. 0082: the
    /// S91 check left out).
    pub interval: u64,
    /// The caps of one idle sync (para. 0085).
    pub budget: Budget,
}

/// What triggers syncs (see the module docs). The default triggers nothing automatically:
/// only user requests sync, and the user is reminded of updates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TriggerConfig {
    /// The data stores (local URIs, `./contacts`) the handset syncs.
    pub stores: Vec<String>,
    /// a1: upload when the user says the SIM is about to be removed.
    pub upload_on_sim_removal: bool,
    /// a2: upload every so many seconds.
    pub upload_every: Option<u64>,
    /// a3: upload after each local update.
    pub upload_on_update: bool,
    /// a4: upload once the pending updates hold this many payload bytes.
    pub upload_threshold: Option<u64>,
    /// Ask the user before every automatic sync (para. 0042, 0091).
    pub ask_permission: bool,
    /// Download once when the SIM is inserted (para. 0043).
    pub download_on_insertion: bool,
    /// Download a data class when it is first accessed after the insertion (para. 0043).
    pub download_on_first_access: bool,
    /// When downloads are not automatic, probe the server at insertion and tell the user
    /// of its updates (para. 0044).
    pub check_on_insertion: bool,
    /// Remind the user of updates not yet synced every so many seconds (para. 0044).
    pub remind_every: Option<u64>,
    /// Idle-state sync (FIG. 21).
    pub idle: Option<IdleSync>,
    /// Low battery: upload now, download at the next insertion (FIG. 22).
    pub low_battery_upload: bool,
}

impl TriggerConfig {
    /// Nothing automatic, for `stores`.
    pub fn new<S: Into<String>>(stores: impl IntoIterator<Item = S>) -> TriggerConfig {
        TriggerConfig {
            stores: stores.into_iter().map(Into::into).collect(),
            ..TriggerConfig::default()
        }
    }
}

/// Something that happened on the handset.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The SIM was inserted (mounted).
    SimInserted,
    /// The user said the SIM is about to be removed (a1).
    SimRemoving,
    /// The SIM was removed.
    SimRemoved,
    /// Time passed (drive periodic triggers with it).
    Tick,
    /// A data store was updated locally (after the store logged the change).
    LocalUpdate {
        /// The store's local URI.
        store: String,
        /// Payload bytes of the update.
        bytes: u64,
    },
    /// The user asked for a sync of these stores (all when empty).
    UserRequest {
        /// Local URIs.
        stores: Vec<String>,
    },
    /// The terminal became idle.
    IdleStart,
    /// The terminal is in use again.
    IdleStop,
    /// The battery fell to the low level.
    BatteryLow,
    /// The battery is above the low level again.
    BatteryOk,
    /// A data class was opened by an application.
    FirstAccess {
        /// The store's local URI.
        store: String,
    },
}

/// Why a plan was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// a1.
    SimRemoval,
    /// a2.
    Periodic,
    /// a3.
    Update,
    /// a4.
    Threshold,
    /// a5.
    User,
    /// The download after the SIM was inserted.
    Insertion,
    /// The download of one class on first access.
    FirstAccess,
    /// The probe of the server's updates at insertion.
    Check,
    /// FIG. 21.
    Idle,
    /// FIG. 22.
    LowBattery,
}

impl Reason {
    /// A short text for the permission prompt.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SimRemoval => "SIM removal",
            Reason::Periodic => "periodic",
            Reason::Update => "local update",
            Reason::Threshold => "update amount",
            Reason::User => "user request",
            Reason::Insertion => "SIM insertion",
            Reason::FirstAccess => "first access",
            Reason::Check => "server check",
            Reason::Idle => "idle",
            Reason::LowBattery => "low battery",
        }
    }
}

/// One sync to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Why.
    pub reason: Reason,
    /// The stores (local URIs) and the mode for each.
    pub stores: Vec<(String, SyncMode)>,
    /// The session's caps.
    pub budget: Budget,
    /// Ask the user before running it.
    pub ask_permission: bool,
}

/// What the policy wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Action {
    /// Run a sync.
    Sync(Plan),
    /// Tell the user.
    Notify(Notice),
    /// Warn the user.
    Warn(Warning),
}

/// Pending local updates of one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalPending {
    /// Changes.
    pub count: usize,
    /// Payload bytes.
    pub bytes: u64,
}

/// The result of running a [`Plan`], fed back to [`TriggerPolicy::on_outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The session report; `None` when the sync failed or was refused.
    pub report: Option<SessionReport>,
    /// A gate or the user refused the sync (not retried automatically).
    pub refused: bool,
    /// The pending local changes of each store of the plan after the run.
    pub local: Vec<(String, LocalPending)>,
}

/// The trigger policy's state machine (see the module docs).
#[derive(Debug, Clone)]
pub struct TriggerPolicy {
    cfg: TriggerConfig,
    sim: bool,
    battery_low: bool,
    idle: bool,
    local: BTreeMap<String, LocalPending>,
    server: BTreeMap<String, usize>,
    /// Stores downloaded since the SIM was inserted.
    downloaded: BTreeSet<String>,
    insertion_due: bool,
    /// A download skipped on low battery, owed at the next insertion.
    download_owed: bool,
    low_battery_done: bool,
    last_upload: Option<i64>,
    last_idle: Option<i64>,
    idle_due: bool,
    last_reminder: Option<i64>,
}

impl TriggerPolicy {
    /// A policy; `sim_inserted` says whether the SIM is in the handset now (no insertion
    /// event is implied).
    pub fn new(cfg: TriggerConfig, sim_inserted: bool) -> TriggerPolicy {
        TriggerPolicy {
            cfg,
            sim: sim_inserted,
            battery_low: false,
            idle: false,
            local: BTreeMap::new(),
            server: BTreeMap::new(),
            downloaded: BTreeSet::new(),
            insertion_due: false,
            download_owed: false,
            low_battery_done: false,
            last_upload: None,
            last_idle: None,
            idle_due: false,
            last_reminder: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TriggerConfig {
        &self.cfg
    }

    /// Tells the policy what a store holds pending (at start-up; after each run the
    /// [`Outcome`] does it).
    pub fn observe_local(&mut self, store: &str, pending: LocalPending) {
        self.local.insert(store.to_string(), pending);
    }

    /// Pending local updates the policy knows of, per store.
    pub fn local_pending(&self, store: &str) -> LocalPending {
        self.local.get(store).copied().unwrap_or_default()
    }

    /// Server updates not yet downloaded that the policy knows of.
    pub fn server_pending(&self, store: &str) -> usize {
        self.server.get(store).copied().unwrap_or(0)
    }

    /// The events that bring the policy up to date with what `device` shows now
    /// (battery low or back, idle start or stop), for handsets that poll their status
    /// (the battery remaining amount detecting section 15, FIG. 22 S101; the idle
    /// conditions of para. 0081) instead of signalling each change.
    pub fn device_events(&self, device: &dyn DeviceStatus) -> Vec<Event> {
        let mut out = Vec::new();
        match (self.battery_low, device.battery_low()) {
            (false, true) => out.push(Event::BatteryLow),
            (true, false) => out.push(Event::BatteryOk),
            _ => {}
        }
        match (self.idle, device.is_idle()) {
            (false, true) => out.push(Event::IdleStart),
            (true, false) => out.push(Event::IdleStop),
            _ => {}
        }
        out
    }

    /// A download is owed to the next insertion (skipped on low battery, FIG. 22).
    pub fn download_owed(&self) -> bool {
        self.download_owed
    }

    fn with_updates(&self) -> Vec<String> {
        self.cfg
            .stores
            .iter()
            .filter(|s| self.local_pending(s).count > 0)
            .cloned()
            .collect()
    }

    fn upload(&self, reason: Reason, stores: Vec<String>) -> Option<Action> {
        if stores.is_empty() {
            return None;
        }
        Some(
            self.plan(
                reason,
                stores
                    .into_iter()
                    .map(|s| (s, SyncMode::OneWayFromClient))
                    .collect(),
                Budget::UNLIMITED,
            ),
        )
    }

    fn plan(&self, reason: Reason, stores: Vec<(String, SyncMode)>, budget: Budget) -> Action {
        Action::Sync(Plan {
            reason,
            stores,
            budget,
            ask_permission: self.cfg.ask_permission && reason != Reason::User,
        })
    }

    /// Download, or two-way where local updates wait (para. 0044, 0068).
    fn download_modes(&self, stores: &[String]) -> Vec<(String, SyncMode)> {
        stores
            .iter()
            .map(|s| {
                let m = if self.local_pending(s).count > 0 {
                    SyncMode::TwoWay
                } else {
                    SyncMode::OneWayFromServer
                };
                (s.clone(), m)
            })
            .collect()
    }

    fn insertion(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.battery_low {
            // FIG. 22 / para. 0090: no download on a low battery; upload what waits.
            self.download_owed |= self.cfg.download_on_insertion;
            out.extend(self.upload(Reason::LowBattery, self.with_updates()));
            return out;
        }
        if self.cfg.download_on_insertion || self.download_owed {
            self.insertion_due = true;
            let stores = self.cfg.stores.clone();
            out.push(self.plan(
                Reason::Insertion,
                self.download_modes(&stores),
                Budget::UNLIMITED,
            ));
            return out;
        }
        if self.cfg.check_on_insertion {
            let stores = self
                .cfg
                .stores
                .iter()
                .map(|s| (s.clone(), SyncMode::OneWayFromServer))
                .collect();
            out.push(self.plan(Reason::Check, stores, Budget::probe()));
        }
        out.extend(self.local_notices());
        out
    }

    fn local_notices(&self) -> Vec<Action> {
        self.cfg
            .stores
            .iter()
            .filter_map(|s| {
                let n = self.local_pending(s).count;
                (n > 0).then(|| {
                    Action::Notify(Notice::LocalUpdatesPending {
                        store: s.clone(),
                        count: n,
                    })
                })
            })
            .collect()
    }

    fn server_notices(&self) -> Vec<Action> {
        self.server
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| {
                Action::Notify(Notice::ServerUpdatesPending {
                    store: s.clone(),
                    count: *n,
                })
            })
            .collect()
    }

    fn automatic_upload(&self) -> bool {
        self.cfg.upload_on_sim_removal
            || self.cfg.upload_every.is_some()
            || self.cfg.upload_on_update
            || self.cfg.upload_threshold.is_some()
    }

    fn idle_plan(&mut self, now: i64, budget: Budget) -> Vec<Action> {
        self.last_idle = Some(now);
        self.idle_due = false;
        let stores: Vec<(String, SyncMode)> = if self.battery_low {
            self.with_updates()
                .into_iter()
                .map(|s| (s, SyncMode::OneWayFromClient))
                .collect()
        } else {
            self.cfg
                .stores
                .iter()
                .map(|s| (s.clone(), SyncMode::TwoWay))
                .collect()
        };
        if stores.is_empty() {
            return Vec::new();
        }
        vec![self.plan(Reason::Idle, stores, budget)]
    }

    /// What to do about `event` at time `now` (Unix seconds).
    pub fn on_event(&mut self, event: Event, now: i64) -> Vec<Action> {
        match event {
            Event::SimInserted => {
                self.sim = true;
                self.downloaded.clear();
                self.insertion()
            }
            Event::SimRemoved => {
                self.sim = false;
                self.idle_due = false;
                self.insertion_due = false;
                Vec::new()
            }
            _ if !self.sim => self.without_sim(event),
            Event::SimRemoving => {
                if self.cfg.upload_on_sim_removal {
                    self.upload(Reason::SimRemoval, self.with_updates())
                        .into_iter()
                        .collect()
                } else {
                    // Leaving with updates not uploaded: tell the user (para. 0044).
                    self.local_notices()
                }
            }
            Event::LocalUpdate { store, bytes } => {
                let p = self.local.entry(store.clone()).or_default();
                p.count += 1;
                p.bytes += bytes;
                if self.cfg.upload_on_update {
                    return self
                        .upload(Reason::Update, vec![store])
                        .into_iter()
                        .collect();
                }
                if let Some(t) = self.cfg.upload_threshold {
                    let total: u64 = self.local.values().map(|p| p.bytes).sum();
                    if total >= t {
                        return self
                            .upload(Reason::Threshold, self.with_updates())
                            .into_iter()
                            .collect();
                    }
                }
                if self.automatic_upload() {
                    Vec::new()
                } else {
                    // Manual uploads: prompt the user to reflect the update (para. 0044).
                    vec![Action::Notify(Notice::LocalUpdatesPending {
                        count: self.local_pending(&store).count,
                        store,
                    })]
                }
            }
            Event::Tick => self.tick(now),
            Event::UserRequest { stores } => {
                let stores = if stores.is_empty() {
                    self.cfg.stores.clone()
                } else {
                    stores
                };
                let modes = stores.into_iter().map(|s| (s, SyncMode::TwoWay)).collect();
                vec![self.plan(Reason::User, modes, Budget::UNLIMITED)]
            }
            Event::IdleStart => {
                self.idle = true;
                match self.cfg.idle {
                    // A turn missed while busy (para. 0087), or the interval is over.
                    Some(i) if self.idle_due || elapsed(self.last_idle, i.interval, now) => {
                        self.idle_plan(now, i.budget)
                    }
                    _ => Vec::new(),
                }
            }
            Event::IdleStop => {
                self.idle = false;
                Vec::new()
            }
            Event::BatteryLow => {
                self.battery_low = true;
                if !self.cfg.low_battery_upload || self.low_battery_done {
                    return Vec::new();
                }
                self.low_battery_done = true;
                // Whatever the server holds now is downloaded after the next insertion.
                self.download_owed = true;
                self.upload(Reason::LowBattery, self.with_updates())
                    .into_iter()
                    .collect()
            }
            Event::BatteryOk => {
                self.battery_low = false;
                self.low_battery_done = false;
                Vec::new()
            }
            Event::FirstAccess { store } => {
                if !self.cfg.download_on_first_access
                    || self.battery_low
                    || self.downloaded.contains(&store)
                {
                    return Vec::new();
                }
                let modes = self.download_modes(&[store]);
                vec![self.plan(Reason::FirstAccess, modes, Budget::UNLIMITED)]
            }
        }
    }

    /// Events while no SIM is mounted: nothing can sync.
    fn without_sim(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::LocalUpdate { store, bytes } => {
                let p = self.local.entry(store.clone()).or_default();
                p.count += 1;
                p.bytes += bytes;
                // Para. 0068: the update is kept (flagged SIM-less by the store) and syncs
                // at the next insertion; warn when the server is known to hold changes of
                // the same class this handset has not seen.
                if self.server_pending(&store) > 0 {
                    vec![Action::Warn(Warning::PossibleConflict { store })]
                } else {
                    Vec::new()
                }
            }
            Event::UserRequest { .. } => {
                vec![Action::Notify(Notice::Refused(GateRefusal::NoSim))]
            }
            Event::IdleStart => {
                self.idle = true;
                Vec::new()
            }
            Event::IdleStop => {
                self.idle = false;
                Vec::new()
            }
            Event::BatteryLow => {
                self.battery_low = true;
                Vec::new()
            }
            Event::BatteryOk => {
                self.battery_low = false;
                self.low_battery_done = false;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn tick(&mut self, now: i64) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(every) = self.cfg.upload_every {
            if elapsed(self.last_upload, every, now) {
                self.last_upload = Some(now);
                out.extend(self.upload(Reason::Periodic, self.with_updates()));
            }
        }
        if self.insertion_due && !self.battery_low {
            // The insertion download failed: try again.
            let stores = self.cfg.stores.clone();
            out.push(self.plan(
                Reason::Insertion,
                self.download_modes(&stores),
                Budget::UNLIMITED,
            ));
        }
        if let Some(idle) = self.cfg.idle.filter(|i| i.interval > 0) {
            if elapsed(self.last_idle, idle.interval, now) {
                if self.idle {
                    out.extend(self.idle_plan(now, idle.budget));
                } else {
                    // S92 No: run when the terminal next becomes idle (para. 0087).
                    self.idle_due = true;
                }
            }
        }
        if let Some(every) = self.cfg.remind_every {
            if elapsed(self.last_reminder, every, now) {
                self.last_reminder = Some(now);
                out.extend(self.local_notices());
                out.extend(self.server_notices());
            }
        }
        out
    }

    /// Takes the result of running `plan`; answers with notices for the user.
    pub fn on_outcome(&mut self, plan: &Plan, outcome: &Outcome) -> Vec<Action> {
        for (s, p) in &outcome.local {
            self.local.insert(s.clone(), *p);
        }
        let mut out = Vec::new();
        if outcome.refused && plan.reason == Reason::Insertion {
            // The user said no (PIN, password, permission): not asked again at every
            // tick; a user request or the next insertion syncs.
            self.insertion_due = false;
        }
        let Some(report) = &outcome.report else {
            return out;
        };
        let left: BTreeMap<String, usize> = report.server_changes_left().into_iter().collect();
        for st in &report.stores {
            let Some(mode) = st.mode.filter(|_| st.failed.is_none()) else {
                continue;
            };
            let receives = !matches!(
                mode,
                SyncMode::OneWayFromClient | SyncMode::RefreshFromClient
            );
            if !receives {
                continue;
            }
            match left.get(&st.local_uri) {
                Some(n) => {
                    self.server.insert(st.local_uri.clone(), *n);
                    out.push(Action::Notify(Notice::ServerUpdatesPending {
                        store: st.local_uri.clone(),
                        count: *n,
                    }));
                }
                None if !report.cut_short.is_some_and(CutShort::stopped_download) => {
                    self.server.insert(st.local_uri.clone(), 0);
                    self.downloaded.insert(st.local_uri.clone());
                }
                None => {}
            }
        }
        if plan.reason == Reason::Insertion
            && self.cfg.stores.iter().all(|s| self.downloaded.contains(s))
        {
            self.insertion_due = false;
            self.download_owed = false;
        }
        let uploads = plan
            .stores
            .iter()
            .any(|(_, m)| m.sends_changes() || m.sends_all());
        if uploads && report.cut_short.is_some() {
            // A capped upload left changes behind: say so (para. 0044).
            out.extend(
                plan.stores
                    .iter()
                    .filter(|(s, _)| self.local_pending(s).count > 0)
                    .map(|(s, _)| {
                        Action::Notify(Notice::LocalUpdatesPending {
                            store: s.clone(),
                            count: self.local_pending(s).count,
                        })
                    }),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "./contacts";
    const K: &str = "./calendar";

    fn cfg() -> TriggerConfig {
        TriggerConfig::new([C, K])
    }

    fn update(store: &str, bytes: u64) -> Event {
        Event::LocalUpdate {
            store: store.into(),
            bytes,
        }
    }

    fn plans(actions: &[Action]) -> Vec<&Plan> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Sync(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    fn one(actions: &[Action]) -> &Plan {
        let p = plans(actions);
        assert_eq!(p.len(), 1, "{actions:?}");
        p[0]
    }

    fn up(stores: &[&str]) -> Vec<(String, SyncMode)> {
        stores
            .iter()
            .map(|s| (s.to_string(), SyncMode::OneWayFromClient))
            .collect()
    }

    #[test]
    fn a1_upload_on_sim_removal_only_when_configured() {
        let mut p = TriggerPolicy::new(cfg(), true);
        p.on_event(update(C, 10), 0);
        let a = p.on_event(Event::SimRemoving, 1);
        assert!(plans(&a).is_empty(), "not configured: no sync");
        assert!(a.contains(&Action::Notify(Notice::LocalUpdatesPending {
            store: C.into(),
            count: 1
        })));
        let mut c = cfg();
        c.upload_on_sim_removal = true;
        let mut p = TriggerPolicy::new(c, true);
        assert!(
            p.on_event(Event::SimRemoving, 0).is_empty(),
            "nothing to upload"
        );
        p.on_event(update(C, 10), 0);
        let a = p.on_event(Event::SimRemoving, 1);
        let plan = one(&a);
        assert_eq!(plan.reason, Reason::SimRemoval);
        assert_eq!(plan.stores, up(&[C]));
    }

    #[test]
    fn a2_periodic_upload_waits_for_the_interval() {
        let mut c = cfg();
        c.upload_every = Some(600);
        let mut p = TriggerPolicy::new(c, true);
        assert!(
            plans(&p.on_event(Event::Tick, 1000)).is_empty(),
            "nothing pending"
        );
        p.on_event(update(K, 5), 1001);
        assert!(
            plans(&p.on_event(Event::Tick, 1300)).is_empty(),
            "too early"
        );
        let a = p.on_event(Event::Tick, 1600);
        assert_eq!(one(&a).reason, Reason::Periodic);
        assert_eq!(one(&a).stores, up(&[K]));
        assert!(
            plans(&p.on_event(Event::Tick, 1700)).is_empty(),
            "interval restarts"
        );
    }

    #[test]
    fn a3_upload_after_each_update_of_that_store() {
        let mut c = cfg();
        c.upload_on_update = true;
        let mut p = TriggerPolicy::new(c, true);
        let a = p.on_event(update(K, 5), 0);
        assert_eq!(one(&a).reason, Reason::Update);
        assert_eq!(one(&a).stores, up(&[K]));
    }

    #[test]
    fn a4_upload_once_the_update_amount_reaches_the_threshold() {
        let mut c = cfg();
        c.upload_threshold = Some(100);
        let mut p = TriggerPolicy::new(c, true);
        assert!(p.on_event(update(C, 60), 0).is_empty());
        let a = p.on_event(update(K, 40), 0);
        assert_eq!(one(&a).reason, Reason::Threshold);
        assert_eq!(one(&a).stores, up(&[C, K]));
    }

    #[test]
    fn a5_user_request_is_two_way_and_never_asks_permission() {
        let mut c = cfg();
        c.ask_permission = true;
        let mut p = TriggerPolicy::new(c, true);
        let a = p.on_event(Event::UserRequest { stores: vec![] }, 0);
        let plan = one(&a);
        assert!(!plan.ask_permission);
        assert_eq!(
            plan.stores,
            vec![(C.into(), SyncMode::TwoWay), (K.into(), SyncMode::TwoWay)]
        );
        let a = p.on_event(update(C, 1), 0);
        assert!(plans(&a).is_empty());
    }

    #[test]
    fn a6_combinations_and_permission_for_automatic_syncs() {
        let mut c = cfg();
        c.upload_threshold = Some(1000);
        c.upload_every = Some(60);
        c.ask_permission = true;
        let mut p = TriggerPolicy::new(c, true);
        let a = p.on_event(update(C, 10), 0);
        assert!(
            a.is_empty(),
            "under the threshold, automatic: no prompt either"
        );
        let a = p.on_event(Event::Tick, 100);
        assert_eq!(one(&a).reason, Reason::Periodic);
        assert!(one(&a).ask_permission);
        let a = p.on_event(update(C, 2000), 101);
        assert_eq!(one(&a).reason, Reason::Threshold);
    }

    #[test]
    fn manual_uploads_prompt_the_user_on_each_update() {
        let mut p = TriggerPolicy::new(cfg(), true);
        p.on_event(update(C, 1), 0);
        let a = p.on_event(update(C, 1), 0);
        assert_eq!(
            a,
            vec![Action::Notify(Notice::LocalUpdatesPending {
                store: C.into(),
                count: 2
            })]
        );
    }

    #[test]
    fn insertion_downloads_once_and_two_way_where_updates_wait() {
        let mut c = cfg();
        c.download_on_insertion = true;
        let mut p = TriggerPolicy::new(c, false);
        p.on_event(update(K, 3), 0);
        let a = p.on_event(Event::SimInserted, 1);
        let plan = one(&a).clone();
        assert_eq!(plan.reason, Reason::Insertion);
        assert_eq!(
            plan.stores,
            vec![
                (C.into(), SyncMode::OneWayFromServer),
                (K.into(), SyncMode::TwoWay)
            ]
        );
        // Failed: tried again at the next tick.
        p.on_outcome(
            &plan,
            &Outcome {
                report: None,
                refused: false,
                local: vec![],
            },
        );
        assert_eq!(one(&p.on_event(Event::Tick, 2)).reason, Reason::Insertion);
        // Refused by the user: not retried at every tick.
        p.on_outcome(
            &plan,
            &Outcome {
                report: None,
                refused: true,
                local: vec![],
            },
        );
        assert!(plans(&p.on_event(Event::Tick, 3)).is_empty());
    }

    #[test]
    fn lazy_download_of_one_class_on_first_access() {
        let mut c = cfg();
        c.download_on_first_access = true;
        let mut p = TriggerPolicy::new(c, false);
        let a = p.on_event(Event::SimInserted, 0);
        assert!(plans(&a).is_empty(), "no download at insertion");
        let a = p.on_event(Event::FirstAccess { store: K.into() }, 1);
        let plan = one(&a);
        assert_eq!(plan.reason, Reason::FirstAccess);
        assert_eq!(plan.stores, vec![(K.into(), SyncMode::OneWayFromServer)]);
    }

    #[test]
    fn check_at_insertion_is_a_probe() {
        let mut c = cfg();
        c.check_on_insertion = true;
        let mut p = TriggerPolicy::new(c, false);
        let a = p.on_event(Event::SimInserted, 0);
        let plan = one(&a);
        assert_eq!(plan.reason, Reason::Check);
        assert!(plan.budget.probe);
    }

    #[test]
    fn nothing_is_planned_without_the_sim() {
        let mut c = cfg();
        c.upload_on_update = true;
        c.upload_every = Some(1);
        c.download_on_first_access = true;
        c.low_battery_upload = true;
        let mut p = TriggerPolicy::new(c, false);
        for e in [
            update(C, 1),
            Event::Tick,
            Event::SimRemoving,
            Event::FirstAccess { store: C.into() },
            Event::BatteryLow,
            Event::IdleStart,
        ] {
            assert!(plans(&p.on_event(e.clone(), 100)).is_empty(), "{e:?}");
        }
        assert_eq!(
            p.on_event(Event::UserRequest { stores: vec![] }, 0),
            vec![Action::Notify(Notice::Refused(GateRefusal::NoSim))]
        );
        assert_eq!(p.local_pending(C).count, 1, "the update is kept");
    }

    #[test]
    fn idle_sync_waits_for_interval_and_idle_state() {
        let budget = Budget {
            total_bytes: Some(1000),
            ..Budget::UNLIMITED
        };
        let mut c = cfg();
        c.idle = Some(IdleSync {
            interval: 300,
            budget,
        });
        let mut p = TriggerPolicy::new(c, true);
        // S91 yes, S92 no: deferred to the next idle start.
        assert!(plans(&p.on_event(Event::Tick, 1000)).is_empty());
        let a = p.on_event(Event::IdleStart, 1010);
        let plan = one(&a);
        assert_eq!(plan.reason, Reason::Idle);
        assert_eq!(plan.budget, budget);
        assert_eq!(plan.stores[0].1, SyncMode::TwoWay);
        // Still idle, interval not elapsed: nothing.
        assert!(plans(&p.on_event(Event::Tick, 1100)).is_empty());
        assert!(plans(&p.on_event(Event::IdleStart, 1101)).is_empty());
        // Interval elapsed while idle: runs at the tick.
        assert_eq!(one(&p.on_event(Event::Tick, 1400)).reason, Reason::Idle);
        p.on_event(Event::IdleStop, 1401);
        assert!(plans(&p.on_event(Event::Tick, 1800)).is_empty(), "busy");
    }

    #[test]
    fn low_battery_uploads_only_and_owes_the_download_to_the_next_insertion() {
        let mut c = cfg();
        c.low_battery_upload = true;
        c.download_on_first_access = true;
        c.idle = Some(IdleSync {
            interval: 0,
            budget: Budget::UNLIMITED,
        });
        let mut p = TriggerPolicy::new(c, true);
        p.on_event(update(C, 10), 0);
        let a = p.on_event(Event::BatteryLow, 1);
        let plan = one(&a);
        assert_eq!(plan.reason, Reason::LowBattery);
        assert_eq!(plan.stores, up(&[C]));
        assert!(p.download_owed());
        assert!(p.on_event(Event::BatteryLow, 2).is_empty(), "once");
        // Downloads are off while the battery is low: idle sync uploads only, no lazy
        // download.
        assert!(plans(&p.on_event(Event::FirstAccess { store: K.into() }, 3)).is_empty());
        let a = p.on_event(Event::IdleStart, 4);
        assert_eq!(one(&a).reason, Reason::Idle);
        assert_eq!(one(&a).stores, up(&[C]));
        assert!(
            plans(&p.on_event(Event::Tick, 5)).is_empty(),
            "interval 0: idle starts only"
        );
        // Battery back, SIM moved and back: the owed download runs.
        p.on_event(Event::BatteryOk, 6);
        p.on_event(Event::SimRemoved, 7);
        let a = p.on_event(Event::SimInserted, 8);
        let plan = one(&a).clone();
        assert_eq!(plan.reason, Reason::Insertion);
        assert_eq!(plan.stores[1], (K.into(), SyncMode::OneWayFromServer));
    }

    #[test]
    fn insertion_on_low_battery_uploads_and_keeps_the_download_owed() {
        let mut c = cfg();
        c.download_on_insertion = true;
        c.low_battery_upload = true;
        let mut p = TriggerPolicy::new(c, false);
        p.on_event(Event::BatteryLow, 0);
        p.on_event(update(C, 1), 0);
        let a = p.on_event(Event::SimInserted, 1);
        assert_eq!(one(&a).reason, Reason::LowBattery);
        assert_eq!(one(&a).stores, up(&[C]));
        assert!(p.download_owed());
    }

    #[test]
    fn sim_less_update_warns_only_when_the_server_is_known_to_have_news() {
        let mut p = TriggerPolicy::new(cfg(), false);
        assert!(
            p.on_event(update(C, 1), 0).is_empty(),
            "no known server news"
        );
        // A probe learned that the server holds 2 calendar changes.
        let plan = Plan {
            reason: Reason::Check,
            stores: vec![(K.into(), SyncMode::OneWayFromServer)],
            budget: Budget::probe(),
            ask_permission: false,
        };
        let report = SessionReport {
            stores: vec![crate::session::StoreReport {
                local_uri: K.into(),
                requested: SyncMode::OneWayFromServer,
                mode: Some(SyncMode::OneWayFromServer),
                failed: None,
                sent: Default::default(),
                received: Default::default(),
                rejected: 0,
                maps_acknowledged: 0,
                server_changes: Some(2),
                unsent: 0,
            }],
            warnings: vec![],
            messages_sent: 2,
            cut_short: Some(CutShort::Probe),
        };
        let a = p.on_outcome(
            &plan,
            &Outcome {
                report: Some(report),
                refused: false,
                local: vec![],
            },
        );
        assert_eq!(
            a,
            vec![Action::Notify(Notice::ServerUpdatesPending {
                store: K.into(),
                count: 2
            })]
        );
        assert_eq!(
            p.on_event(update(K, 1), 1),
            vec![Action::Warn(Warning::PossibleConflict { store: K.into() })]
        );
        assert!(p.on_event(update(C, 1), 1).is_empty());
    }

    #[test]
    fn device_status_changes_become_events() {
        let mut p = TriggerPolicy::new(cfg(), true);
        let mut d = crate::mem::MemoryDevice::default();
        assert!(p.device_events(&d).is_empty(), "full battery, busy");
        d.battery_percent = 10;
        d.idle = true;
        let ev = p.device_events(&d);
        assert_eq!(ev, vec![Event::BatteryLow, Event::IdleStart]);
        for e in ev {
            p.on_event(e, 0);
        }
        assert!(p.device_events(&d).is_empty(), "only changes");
        d.battery_percent = 80;
        d.idle = false;
        assert_eq!(p.device_events(&d), vec![Event::BatteryOk, Event::IdleStop]);
    }

    #[test]
    fn an_upload_capped_two_way_sync_still_completes_the_download() {
        let mut c = cfg();
        c.download_on_insertion = true;
        let mut p = TriggerPolicy::new(c, false);
        p.on_event(update(C, 1), 0);
        let a = p.on_event(Event::SimInserted, 1);
        let plan = one(&a).clone();
        let store = |uri: &str, mode| crate::session::StoreReport {
            local_uri: uri.into(),
            requested: mode,
            mode: Some(mode),
            failed: None,
            sent: Default::default(),
            received: Default::default(),
            rejected: 0,
            maps_acknowledged: 0,
            server_changes: Some(0),
            unsent: 1,
        };
        let report = SessionReport {
            stores: vec![
                store(C, SyncMode::TwoWay),
                store(K, SyncMode::OneWayFromServer),
            ],
            warnings: vec![],
            messages_sent: 3,
            cut_short: Some(CutShort::UploadBytes),
        };
        p.on_outcome(
            &plan,
            &Outcome {
                report: Some(report),
                refused: false,
                local: vec![(C.into(), LocalPending { count: 1, bytes: 1 })],
            },
        );
        assert!(
            plans(&p.on_event(Event::Tick, 2)).is_empty(),
            "downloaded: not retried"
        );
        assert!(plans(&p.on_event(Event::FirstAccess { store: C.into() }, 3)).is_empty());
    }

    #[test]
    fn reminders_of_updates_not_yet_synced() {
        let mut c = cfg();
        c.remind_every = Some(3600);
        let mut p = TriggerPolicy::new(c, true);
        assert!(p.on_event(Event::Tick, 0).is_empty(), "nothing to remind");
        p.on_event(update(C, 1), 1);
        assert!(p.on_event(Event::Tick, 100).is_empty(), "too early");
        assert_eq!(
            p.on_event(Event::Tick, 3600),
            vec![Action::Notify(Notice::LocalUpdatesPending {
                store: C.into(),
                count: 1
            })]
        );
    }
}

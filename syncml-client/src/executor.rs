//! Carries out the [`TriggerPolicy`]'s decisions on an [`Engine`]: asks the user's
//! permission where the plan says so, picks the plan's data stores, runs the gates and
//! one capped session ([`Engine::sync_with_budget`]), then feeds the outcome back to the
//! policy and shows its notices.

use std::collections::VecDeque;

use tracing::{info, warn};

use crate::engine::{Engine, Handset};
use crate::error::{ClientError, GateRefusal};
use crate::handset::{Clock, DeviceStatus, Notice, Permission, Sim};
use crate::mode::SyncMode;
use crate::policy::{Action, Event, LocalPending, Outcome, Plan, TriggerPolicy};
use crate::session::SessionReport;
use crate::store::DataStore;
use crate::transport::Transport;

/// What a store holds pending now.
pub fn local_pending(store: &mut dyn DataStore) -> Result<LocalPending, ClientError> {
    let changes = store.changes()?;
    Ok(LocalPending {
        count: changes.len(),
        bytes: changes
            .iter()
            .map(|c| c.data.as_ref().map_or(0, |d| d.len() as u64))
            .sum(),
    })
}

/// Tells `policy` what each of `stores` holds pending (at start-up, or after the stores
/// changed behind the policy's back).
pub fn observe_stores(
    policy: &mut TriggerPolicy,
    stores: &mut [&mut dyn DataStore],
) -> Result<(), ClientError> {
    for s in stores.iter_mut() {
        let p = local_pending(&mut **s)?;
        policy.observe_local(s.local_uri(), p);
    }
    Ok(())
}

impl<T: Transport, C: Clock> Engine<T, C> {
    /// Runs one plan over those of `stores` it names (in the order of `stores`). When the
    /// plan asks for permission and the user refuses, nothing is sent and the result is
    /// [`GateRefusal::PermissionDenied`]. A plan naming none of `stores` sends nothing
    /// and reports no store.
    pub async fn run_plan(
        &mut self,
        handset: Handset<'_>,
        stores: &mut [&mut dyn DataStore],
        plan: &Plan,
    ) -> Result<SessionReport, ClientError> {
        let Handset { sim, terminal, ui } = handset;
        let mut chosen: Vec<&mut dyn DataStore> = Vec::new();
        let mut modes: Vec<SyncMode> = Vec::new();
        for s in stores.iter_mut() {
            if let Some((_, m)) = plan.stores.iter().find(|(u, _)| u == s.local_uri()) {
                modes.push(*m);
                chosen.push(&mut **s);
            }
        }
        if chosen.is_empty() {
            return Ok(SessionReport {
                stores: Vec::new(),
                warnings: Vec::new(),
                messages_sent: 0,
                cut_short: None,
            });
        }
        if plan.ask_permission {
            let what = Permission::Sync {
                reason: plan.reason.as_str().to_string(),
            };
            if !ui.ask_permission(&what) {
                info!(
                    reason = plan.reason.as_str(),
                    "the user did not permit the sync"
                );
                let r = GateRefusal::PermissionDenied;
                ui.notify(&Notice::Refused(r.clone()));
                return Err(r.into());
            }
        }
        info!(
            reason = plan.reason.as_str(),
            stores = chosen.len(),
            "running a planned sync"
        );
        self.sync_with_budget(
            Handset { sim, terminal, ui },
            &mut chosen,
            &modes,
            plan.budget,
        )
        .await
    }

    /// Polls `device` and feeds what changed ([`TriggerPolicy::device_events`]), then an
    /// [`Event::Tick`], to `policy`, carrying out what it decides. Call it periodically.
    pub async fn poll(
        &mut self,
        policy: &mut TriggerPolicy,
        device: &dyn DeviceStatus,
        handset: Handset<'_>,
        stores: &mut [&mut dyn DataStore],
    ) -> Vec<(Plan, Result<SessionReport, ClientError>)> {
        let Handset {
            mut sim,
            terminal,
            ui,
        } = handset;
        let mut events = policy.device_events(device);
        events.push(Event::Tick);
        let mut runs = Vec::new();
        for e in events {
            let h = Handset {
                sim: sim.as_deref_mut().map(|s| s as &mut dyn Sim),
                terminal: &mut *terminal,
                ui: &mut *ui,
            };
            runs.extend(self.handle_event(policy, h, stores, e).await);
        }
        runs
    }

    /// Feeds `event` to `policy` at the engine clock's time and carries out what it
    /// decides: syncs ([`run_plan`](Self::run_plan)), notices and warnings. Returns each
    /// plan run with its result.
    pub async fn handle_event(
        &mut self,
        policy: &mut TriggerPolicy,
        handset: Handset<'_>,
        stores: &mut [&mut dyn DataStore],
        event: Event,
    ) -> Vec<(Plan, Result<SessionReport, ClientError>)> {
        let Handset {
            mut sim,
            terminal,
            ui,
        } = handset;
        let now = self.clock().now_unix();
        let mut actions: VecDeque<Action> = policy.on_event(event, now).into();
        let mut runs = Vec::new();
        while let Some(a) = actions.pop_front() {
            match a {
                Action::Notify(n) => ui.notify(&n),
                Action::Warn(w) => ui.warn(&w),
                Action::Sync(plan) => {
                    let result = self
                        .run_plan(
                            Handset {
                                sim: sim.as_deref_mut().map(|s| s as &mut dyn Sim),
                                terminal: &mut *terminal,
                                ui: &mut *ui,
                            },
                            stores,
                            &plan,
                        )
                        .await;
                    let mut local = Vec::new();
                    for s in stores.iter_mut() {
                        if plan.stores.iter().any(|(u, _)| u == s.local_uri()) {
                            match local_pending(&mut **s) {
                                Ok(p) => local.push((s.local_uri().to_string(), p)),
                                Err(e) => warn!(error = %e, "reading pending changes"),
                            }
                        }
                    }
                    let outcome = Outcome {
                        report: result.as_ref().ok().cloned(),
                        refused: matches!(result, Err(ClientError::Refused(_))),
                        local,
                    };
                    actions.extend(policy.on_outcome(&plan, &outcome));
                    runs.push((plan, result));
                }
            }
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::MemoryStore;
    use crate::policy::TriggerConfig;

    #[test]
    fn observing_stores_tells_the_policy_their_pending_changes() {
        let mut contacts = MemoryStore::contacts();
        contacts.add("0123456789");
        contacts.add("abc");
        let mut p = TriggerPolicy::new(TriggerConfig::new(["./contacts"]), true);
        assert_eq!(p.local_pending("./contacts").count, 0);
        observe_stores(&mut p, &mut [&mut contacts as &mut dyn DataStore]).unwrap();
        assert_eq!(
            p.local_pending("./contacts"),
            LocalPending {
                count: 2,
                bytes: 13
            }
        );
    }
}

//! Collective erase (FIG. 20, para. 0072-0077): before the handset changes hands, its
//! personal data is saved to the server and then wiped locally.
//!
//! [`Engine::collective_erase`] runs the engine's gates (FIG. 20 S82-S83, S87: the
//! subscriber match of FIG. 10-B, or the FIG. 11-B / FIG. 12 gates, para. 0077), uploads
//! the chosen stores (one-way from client, S84-S85), confirms that the server holds all
//! of it (the session completed, not cut short, no store failed, no change refused, no
//! change left pending), and only then wipes the stores with
//! [`DataStore::erase_local`] (S86) and forgets their anchors. The wipe never reaches the
//! server: it is not in the change log, and without anchors the next sync (at the next
//! SIM insertion) is a slow sync that brings everything back. If anything is not
//! confirmed, nothing is wiped.

use tracing::{info, warn};

use crate::budget::Budget;
use crate::engine::{Engine, Handset};
use crate::error::{ClientError, StoreError};
use crate::handset::{Clock, Notice, Sim};
use crate::mode::SyncMode;
use crate::session::SessionReport;
use crate::store::{DataStore, SyncState};
use crate::transport::Transport;

/// Why the collective erase wiped nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EraseError {
    /// The gates refused or the upload failed.
    #[error("upload before erase failed: {0}")]
    Upload(#[from] ClientError),
    /// The upload ran but did not save everything.
    #[error("the server did not confirm {store}: {reason}")]
    NotConfirmed {
        /// The store's local URI.
        store: String,
        /// What was missing.
        reason: String,
    },
    /// A store failed while checking or wiping.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the collective erase did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EraseReport {
    /// The upload session.
    pub upload: SessionReport,
    /// The wiped stores (local URIs) and how many items each held.
    pub wiped: Vec<(String, usize)>,
}

impl<T: Transport, C: Clock> Engine<T, C> {
    /// Saves `stores` to the server, then wipes them locally (see the module docs).
    pub async fn collective_erase(
        &mut self,
        handset: Handset<'_>,
        stores: &mut [&mut dyn DataStore],
    ) -> Result<EraseReport, EraseError> {
        let Handset { sim, terminal, ui } = handset;
        let report = self
            .sync_with_budget(
                Handset {
                    sim: sim.map(|s| s as &mut dyn Sim),
                    terminal,
                    ui: &mut *ui,
                },
                stores,
                &[SyncMode::OneWayFromClient],
                Budget::UNLIMITED,
            )
            .await?;
        let refuse = |store: &str, reason: String| {
            warn!(store, %reason, "collective erase refused");
            EraseError::NotConfirmed {
                store: store.to_string(),
                reason,
            }
        };
        if let Some(why) = report.cut_short {
            return Err(refuse("*", format!("session cut short: {why:?}")));
        }
        for (st, store) in report.stores.iter().zip(stores.iter_mut()) {
            if let Some(code) = st.failed {
                return Err(refuse(&st.local_uri, format!("server answered {}", code.0)));
            }
            if st.mode.is_none() {
                return Err(refuse(&st.local_uri, "not synced".into()));
            }
            if st.rejected > 0 {
                return Err(refuse(
                    &st.local_uri,
                    format!("{} changes refused", st.rejected),
                ));
            }
            let left = store.changes()?.len();
            if left > 0 {
                return Err(refuse(
                    &st.local_uri,
                    format!("{left} changes not uploaded"),
                ));
            }
        }
        if report.stores.len() != stores.len() {
            return Err(refuse("*", "not every store was synced".into()));
        }
        let mut wiped = Vec::new();
        for store in stores.iter_mut() {
            let n = store.item_count()?;
            store.erase_local()?;
            store.set_sync_state(&SyncState::default())?;
            info!(store = store.local_uri(), items = n, "erased locally");
            wiped.push((store.local_uri().to_string(), n));
        }
        ui.notify(&Notice::Erased {
            stores: wiped.iter().map(|(s, _)| s.clone()).collect(),
        });
        Ok(EraseReport {
            upload: report,
            wiped,
        })
    }
}

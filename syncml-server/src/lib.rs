//! `syncml-server`: an OMA DS 1.2 / SyncML sync server for SIM-gated multi-handset sync.
//!
//! One subscriber (the SIM's IMSI or MSISDN) owns several terminals (handsets); each terminal
//! syncs the datastores chosen for it through this server, so that after every SIM move the new
//! handset downloads exactly what it has not yet seen.
//!
//! Modules:
//! - [`store`]: persistent storage behind the [`store::Store`] / [`store::Tx`] traits, with the
//!   embedded SQLite backend [`store::SqliteStore`] as the zero-configuration default.
#![deny(missing_docs)]

pub mod store;

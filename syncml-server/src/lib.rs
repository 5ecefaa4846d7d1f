//! `syncml-server`: an OMA DS 1.2 / SyncML sync server for SIM-gated multi-handset sync.
//!
//! One subscriber (the SIM's IMSI or MSISDN) owns several terminals (handsets); each terminal
//! syncs the datastores chosen for it through this server, so that after every SIM move the new
//! handset downloads exactly what it has not yet seen.
//!
//! Modules:
//! - [`store`]: persistent storage behind the [`store::Store`] / [`store::Tx`] traits, with the
//!   embedded SQLite backend [`store::SqliteStore`] as the zero-configuration default.
//! - [`session`]: the DS session engine, sans I/O (a message and a transaction in, a reply out).
//! - [`http`]: the SyncML HTTP binding (hyper, rustls).
//! - [`service`]: the glue between the two.
//! - [`metrics`]: the node's operations metrics (Prometheus text at `/metrics`).
//! - [`datastores`]: the datastores offered, their aliases and the server's DevInf.
//! - [`password`]: Argon2id verifiers.
//! - [`provision`]: subscriber and terminal provisioning shared by the CLI and the API.
//! - [`registration`]: the registration API for handsets and shops (FIG. 8, 18-19).
#![deny(missing_docs)]

mod binform;
pub mod datastores;
pub mod http;
pub mod metrics;
pub mod password;
pub mod provision;
pub mod registration;
pub mod service;
pub mod session;
pub mod store;

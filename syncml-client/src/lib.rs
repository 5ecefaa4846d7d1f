//! `syncml-client`: the handset sync engine of a SIM-gated OMA DS 1.2 / SyncML stack.
//!
//! One subscriber, one SIM, several handsets: only the handset holding the SIM may sync,
//! and only after the gates of the specification (FIG. 9-12) said yes. Then a DS session
//! (packages 1, 3, 5) exchanges the changes of each data store with the server.
//!
//! Layers, each usable on its own:
//!
//! - [`handset`]: the traits the handset implements: [`Sim`], [`Terminal`], [`Ui`],
//!   [`Clock`], [`DeviceStatus`] (battery, idle); [`store`]: one [`DataStore`] per data
//!   class.
//! - [`gate`]: the gates ([`GatePolicy`], FIG. 9-13) and the registration flows of FIG. 10-A
//!   and 11-A.
//! - [`session`]: the client DS session, sans I/O: decoded server messages in, our next
//!   message out ([`ClientSession`]).
//! - [`transport`]: [`Transport`], the default [`HttpTransport`] (feature `http`), an
//!   in-memory [`FnTransport`] and a request-counting wrapper.
//! - [`Engine`]: gates, then a session over a transport.
//! - [`budget`]: caps on one session (bytes and time, per direction or in total; the
//!   probe), and how a capped session stops cleanly (FIG. 21, para. 0085).
//! - [`policy`]: when to sync, sans I/O: SIM removal and insertion, periodic, per
//!   update, update amount, user request, first access, idle state, low battery, with
//!   optional permission and user notices (para. 0041-0044, 0068, FIG. 21-22).
//! - [`executor`]: runs the policy's plans on an [`Engine`] ([`Engine::run_plan`],
//!   [`Engine::handle_event`]).
//! - [`erase`]: collective erase: upload, confirm, then wipe locally (FIG. 20,
//!   [`Engine::collective_erase`]).
//! - [`summary`]: titles first (para. 0094): summaries on download, bodies on access
//!   ([`Engine::fetch_body`]).
//! - [`mem`]: in-memory SIM, terminal, UI and data store for tests and simulators.
//! - `registration` (feature `http`): FIG. 8 registration with the server from the
//!   handset, and the shop path of FIG. 19, over the server's registration API.
//! - [`fs`]: a file-backed handset (data stores, SIM, terminal in directories), the
//!   library behind the `syncml-handset` command.
//!
//! ```
//! use syncml_client::mem::{MemorySim, MemoryTerminal, ScriptedUi};
//! use syncml_client::{gate, GatePolicy, GateRefusal};
//!
//! let mut sim = MemorySim::new("001010123456789", "1234");
//! let mut terminal = MemoryTerminal::new("IMEI:356938035643809", "secret");
//! let mut ui = ScriptedUi::answering("1234", "secret");
//! // FIG. 10-B refuses until the SIM's subscriber ID is registered in the terminal.
//! assert_eq!(
//!     gate::check(&GatePolicy::FIG10B, Some(&mut sim), &terminal, &mut ui).unwrap_err(),
//!     GateRefusal::SubscriberNotRegistered
//! );
//! gate::register_subscriber_in_terminal(&mut sim, &mut terminal, &mut ui).unwrap();
//! assert!(gate::check(&GatePolicy::FIG10B, Some(&mut sim), &terminal, &mut ui).is_ok());
//! ```
//!
//! # Embedding the engine
//!
//! A handset implements [`Sim`], [`Terminal`], [`Ui`] and one [`DataStore`] per data
//! class (here the in-memory ones of [`mem`]), and runs an [`Engine`] over a transport.
//! This example is complete and runs: it starts our server on 127.0.0.1 (a throwaway
//! SQLite file), provisions the subscriber and the terminal as an operator would, and
//! syncs one contact up over real HTTP.
//!
//! ```
//! # #[cfg(feature = "http")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use syncml_client::mem::{MemorySim, MemoryStore, MemoryTerminal, ScriptedUi};
//! use syncml_client::{DataStore, Engine, EngineConfig, Handset, HttpTransport, SyncMode};
//! use syncml_server::store::{RegisteredBy, SqliteStore, Store, StoreExt, Timestamp};
//! use syncml_server::{http, provision, service::SyncService, session};
//!
//! let rt = tokio::runtime::Runtime::new()?;
//! // The server side: what `syncml-server subscriber add` / `terminal register` do.
//! let dir = tempfile::tempdir()?;
//! let store = Arc::new(SqliteStore::open_in_dir(dir.path())?);
//! store.transaction_with_error(|tx| {
//!     let t0 = Timestamp::from_unix_secs(0);
//!     provision::add_subscriber(tx, "001010123456789", None, t0)?;
//!     provision::register_terminal(tx, "001010123456789", "IMEI:356938035643809",
//!         "secret", &[], RegisteredBy::Operator, t0)?;
//!     Ok::<_, provision::ProvisionError>(())
//! })?;
//! let svc = Arc::new(SyncService::new(store.clone() as Arc<dyn Store>, session::Engine::default()));
//! let server = rt.block_on(async {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!     http::serve(listener, svc, http::HttpOptions::default(), None).map_err(std::io::Error::other)
//! })?;
//! let url = format!("http://{}/sync", server.local_addr);
//!
//! // The handset side.
//! let mut engine = Engine::new(EngineConfig::new(url), HttpTransport::new());
//! let mut sim = MemorySim::new("001010123456789", "1234");
//! let mut terminal = MemoryTerminal::new("IMEI:356938035643809", "secret");
//! let mut ui = ScriptedUi::answering("1234", "secret"); // the PIN and terminal password
//! let mut contacts = MemoryStore::contacts();
//! contacts.add("BEGIN:VCARD\r\nVERSION:2.1\r\nN:Doe;John\r\nEND:VCARD\r\n");
//! let report = rt.block_on(engine.sync(
//!     Handset { sim: Some(&mut sim), terminal: &mut terminal, ui: &mut ui },
//!     &mut [&mut contacts as &mut dyn DataStore],
//!     &[SyncMode::TwoWay],
//! ))?;
//! assert!(report.is_success());
//! assert_eq!(report.sent(), 1); // the first sync was a slow sync that uploaded John
//! rt.block_on(server.shutdown());
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "http"))]
//! # fn main() {}
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod budget;
mod engine;
pub mod erase;
mod error;
pub mod executor;
pub mod fs;
pub mod gate;
pub mod handset;
pub mod mem;
mod mode;
pub mod policy;
#[cfg(feature = "http")]
pub mod registration;
pub mod session;
pub mod store;
pub mod summary;
pub mod transport;

pub use budget::{Budget, CutShort};
pub use engine::{Engine, EngineConfig, Handset};
pub use erase::{EraseError, EraseReport};
pub use error::{ClientError, GateRefusal, SessionError, StoreError, TransportError};
pub use gate::{GatePass, GatePolicy};
pub use handset::{
    Clock, DeviceStatus, Notice, Permission, PinResult, Sim, SystemClock, Terminal, Ui, Warning,
};
pub use mode::{AuthScheme, SyncMode};
pub use policy::{Action, Event, Plan, Reason, TriggerConfig, TriggerPolicy};
pub use session::{
    ClientSession, Counts, DeviceInfo, Outgoing, SessionConfig, SessionReport, Step, StoreReport,
};
pub use store::{
    Applied, Change, ChangeId, ChangeKind, DataStore, LocalItem, MapEntry, ServerChange, SyncState,
};
pub use summary::TitlesFirst;
#[cfg(feature = "http")]
pub use transport::HttpTransport;
pub use transport::{Counting, FnTransport, Transport};

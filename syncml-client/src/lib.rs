//! `syncml-client`: the handset sync engine of a SIM-gated OMA DS 1.2 / SyncML stack.
//!
//! One subscriber, one SIM, several handsets: only the handset holding the SIM may sync,
//! and only after the gates of the specification (FIG. 9-12) said yes. Then a DS session
//! (packages 1, 3, 5) exchanges the changes of each data store with the server.
//!
//! Layers, each usable on its own:
//!
//! - [`handset`]: the traits the handset implements: [`Sim`], [`Terminal`], [`Ui`],
//!   [`Clock`]; [`store`]: one [`DataStore`] per data class.
//! - [`gate`]: the gates ([`GatePolicy`], FIG. 9-13) and the registration flows of FIG. 10-A
//!   and 11-A.
//! - [`session`]: the client DS session, sans I/O: decoded server messages in, our next
//!   message out ([`ClientSession`]).
//! - [`transport`]: [`Transport`], the default [`HttpTransport`] (feature `http`), an
//!   in-memory [`FnTransport`] and a request-counting wrapper.
//! - [`Engine`]: gates, then a session over a transport.
//! - [`mem`]: in-memory SIM, terminal, UI and data store for tests and simulators.
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
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod engine;
mod error;
pub mod fs;
pub mod gate;
pub mod handset;
pub mod mem;
mod mode;
pub mod session;
pub mod store;
pub mod transport;

pub use engine::{Engine, EngineConfig, Handset};
pub use error::{ClientError, GateRefusal, SessionError, StoreError, TransportError};
pub use gate::{GatePass, GatePolicy};
pub use handset::{Clock, Notice, Permission, PinResult, Sim, SystemClock, Terminal, Ui, Warning};
pub use mode::{AuthScheme, SyncMode};
pub use session::{
    ClientSession, Counts, DeviceInfo, Outgoing, SessionConfig, SessionReport, Step, StoreReport,
};
pub use store::{
    Applied, Change, ChangeId, ChangeKind, DataStore, LocalItem, MapEntry, ServerChange, SyncState,
};
#[cfg(feature = "http")]
pub use transport::HttpTransport;
pub use transport::{Counting, FnTransport, Transport};

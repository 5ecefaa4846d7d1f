//! `syncml-client`: the handset sync engine (SIM gating, registration flows, triggers,
//! data-store traits, client DS session, transport).
//!
//! **Not built yet** — this crate is reserved by the workspace layout and is filled by the
//! client issue. It exports nothing, so nothing here can be mistaken for working code. Until
//! then, `syncml_core` gives handset software the message model, both codecs and the auth
//! digests a client needs.
#![deny(missing_docs)]

//! Conformance and interop kit: test vectors and tests that drive third-party SyncML
//! software (libwbxml's `wbxml2xml`/`xml2wbxml` today; SyncEvolution with the server)
//! against our implementation. The library holds the harnesses ([`syncevolution`]
//! drives the Debian SyncEvolution client and server); the tests live in `tests/`.
#![deny(missing_docs)]

pub mod scratch;
pub mod syncevolution;

//! Conformance and interop kit: test vectors and tests that drive third-party SyncML
//! software (libwbxml's `wbxml2xml`/`xml2wbxml` today; SyncEvolution with the server)
//! against our implementation. The tests live in `tests/`; this library holds nothing
//! yet but their shared documentation.
#![deny(missing_docs)]

pub mod syncevolution;

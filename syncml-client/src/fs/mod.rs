//! A file-backed handset: data stores, SIM and terminal kept in plain directories, so a
//! person (or a script) can look at and edit the handset's data with ordinary tools.
//!
//! Layout of a handset directory (see [`FsHandset`]):
//!
//! ```text
//! HANDSET/
//!   handset.conf          server URL, gate policy, encoding, server URIs (key = value)
//!   sim-slot              path of the mounted SIM directory (absent: no SIM)
//!   contacts/             one vCard per file; the file name is the LUID
//!   calendar/             one iCalendar object per file
//!   terminal/
//!     id                  terminal ID (IMEI)
//!     password            terminal password verifier
//!     subscriber          registered subscriber ID (area 6b; absent: none)
//!     nonce               the server's last NextNonce
//!     contacts.index      change tracking: LUID + content hash as last synced (journal)
//!     contacts.state      anchors and unacknowledged maps
//!     ...
//! SIM/
//!   subscriber            subscriber ID (IMSI)
//!   pin                   PIN verifier
//!   tries                 PIN attempts left
//!   terminals             terminal IDs registered on the SIM, one a line
//! ```
//!
//! Edits made directly in a data directory (a file added, changed or removed) are found at
//! the next sync by comparing the directory with the index of what was last synced
//! ([`FsStore`]). This is a simulator: the verifiers are unsalted md5 digests, not a
//! secure store.

mod handset;
mod sim;
mod store;
mod terminal;

pub use handset::{DataClass, FsHandset, HandsetConfig, HandsetError, SyncOutcome};
pub use sim::FsSim;
pub use store::FsStore;
pub use terminal::FsTerminal;

use std::path::{Path, PathBuf};

/// A file-backed handset part could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// Reading or writing a file failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        message: String,
    },
    /// A file exists but its content is not what it should be.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The handset or SIM directory was never created (`init`, `new-sim`).
    #[error("{0} is not initialised")]
    NotInitialised(PathBuf),
    /// A value given by the user cannot be used.
    #[error("{0}")]
    Invalid(String),
}

impl FsError {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> FsError {
        FsError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }

    pub(crate) fn format(path: &Path, message: impl Into<String>) -> FsError {
        FsError::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Writes `data` to `path` through a temporary file and a rename, so a crash leaves the old
/// or the new content, never half of it.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FsError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, data).map_err(|e| FsError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| FsError::io(path, e))
}

/// Reads a one-line text file, trimmed; `None` if it does not exist.
pub(crate) fn read_line(path: &Path) -> Result<Option<String>, FsError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError::io(path, e)),
    }
}

/// Escapes `%`, tab, CR and LF so a value fits one field of a tab-separated line.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\t' => out.push_str("%09"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`escape`].
pub(crate) fn unescape(s: &str) -> String {
    s.replace("%09", "\t")
        .replace("%0A", "\n")
        .replace("%0D", "\r")
        .replace("%25", "%")
}

/// FNV-1a, 64 bits: the content fingerprint of the change index (not cryptographic; it
/// only has to notice edits).
pub(crate) fn fingerprint(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Never 0: 0 marks a delete in the change versions.
    h.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips() {
        for s in ["plain", "a\tb", "100%", "x\r\ny", "%09"] {
            assert_eq!(unescape(&escape(s)), s);
            assert!(!escape(s).contains(['\t', '\n', '\r']));
        }
    }

    #[test]
    fn fingerprints_differ_for_different_content() {
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
        assert_eq!(fingerprint(b"same"), fingerprint(b"same"));
        assert_ne!(fingerprint(b""), 0);
    }
}

//! [`FsTerminal`]: the terminal's own state in a directory (its ID, the terminal password
//! verifier and the subscriber ID registration area 6b).

use std::path::{Path, PathBuf};

use syncml_core::auth::{constant_time_eq, md5};
use tracing::warn;

use super::{read_line, write_atomic, FsError};
use crate::handset::Terminal;

/// A terminal kept in a directory: `id`, `password` (verifier), `subscriber`.
///
/// [`Terminal::register_subscriber_id`] cannot report I/O errors: a failed write is kept
/// and returned by [`FsTerminal::take_error`].
#[derive(Debug)]
pub struct FsTerminal {
    dir: PathBuf,
    terminal_id: String,
    password_verifier: String,
    subscriber: Option<String>,
    error: Option<FsError>,
}

impl FsTerminal {
    /// Creates the terminal state `terminal_id` with `password` in `dir`.
    pub fn create(dir: &Path, terminal_id: &str, password: &str) -> Result<FsTerminal, FsError> {
        let id = terminal_id.trim();
        if id.is_empty() || id.contains(['\n', '\r']) {
            return Err(FsError::Invalid("the terminal ID must be one line".into()));
        }
        if password.is_empty() {
            return Err(FsError::Invalid(
                "the terminal password must not be empty".into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| FsError::io(dir, e))?;
        let t = FsTerminal {
            dir: dir.to_path_buf(),
            terminal_id: id.to_string(),
            password_verifier: md5::user_digest(id, password),
            subscriber: None,
            error: None,
        };
        write_atomic(&dir.join("password"), t.password_verifier.as_bytes())?;
        write_atomic(&dir.join("id"), t.terminal_id.as_bytes())?;
        Ok(t)
    }

    /// Opens the terminal state in `dir`.
    pub fn open(dir: &Path) -> Result<FsTerminal, FsError> {
        let terminal_id = read_line(&dir.join("id"))?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| FsError::NotInitialised(dir.to_path_buf()))?;
        let pw = dir.join("password");
        let password_verifier = read_line(&pw)?.ok_or_else(|| FsError::format(&pw, "missing"))?;
        let subscriber = read_line(&dir.join("subscriber"))?.filter(|s| !s.is_empty());
        Ok(FsTerminal {
            dir: dir.to_path_buf(),
            terminal_id,
            password_verifier,
            subscriber,
            error: None,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The first write error since the last call, if any.
    pub fn take_error(&mut self) -> Option<FsError> {
        self.error.take()
    }
}

impl Terminal for FsTerminal {
    fn terminal_id(&self) -> String {
        self.terminal_id.clone()
    }

    fn collate_password(&self, password: &str) -> bool {
        let given = md5::user_digest(&self.terminal_id, password);
        constant_time_eq(given.as_bytes(), self.password_verifier.as_bytes())
    }

    fn registered_subscriber_id(&self) -> Option<String> {
        self.subscriber.clone()
    }

    fn register_subscriber_id(&mut self, subscriber_id: &str) {
        self.subscriber = Some(subscriber_id.to_string());
        if let Err(e) = write_atomic(&self.dir.join("subscriber"), subscriber_id.as_bytes()) {
            warn!(error = %e, "terminal write failed");
            self.error.get_or_insert(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_terminal_directory_keeps_the_registration_area() {
        let d = tempfile::tempdir().unwrap();
        let mut t = FsTerminal::create(d.path(), "IMEI:1", "pw").unwrap();
        assert!(t.collate_password("pw"));
        assert!(!t.collate_password("nope"));
        assert_eq!(t.registered_subscriber_id(), None);
        t.register_subscriber_id("001");
        let t = FsTerminal::open(d.path()).unwrap();
        assert_eq!(t.registered_subscriber_id().as_deref(), Some("001"));
        assert_eq!(t.terminal_id(), "IMEI:1");
    }
}

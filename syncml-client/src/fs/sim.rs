//! [`FsSim`]: a SIM card kept in a directory, so it can be "moved" between handset
//! directories (`insert-sim`, `remove-sim`).

use std::path::{Path, PathBuf};

use syncml_core::auth::{constant_time_eq, md5};
use tracing::warn;

use super::{read_line, write_atomic, FsError};
use crate::handset::{PinResult, Sim};

/// PIN attempts of a fresh or unblocked SIM.
const PIN_TRIES: u8 = 3;

/// A SIM card in a directory: `subscriber`, `pin` (verifier), `tries`, `terminals`.
///
/// Every change is written through at once. The [`Sim`] trait cannot report I/O errors, so
/// a failed write is kept and returned by [`FsSim::take_error`].
#[derive(Debug)]
pub struct FsSim {
    dir: PathBuf,
    subscriber_id: String,
    pin_verifier: String,
    tries_left: u8,
    terminals: Vec<String>,
    error: Option<FsError>,
}

fn pin_verifier(subscriber_id: &str, pin: &str) -> String {
    md5::user_digest(subscriber_id, pin)
}

impl FsSim {
    /// Creates a SIM of `subscriber_id` with `pin` in `dir` (which must not hold a SIM yet).
    pub fn create(dir: &Path, subscriber_id: &str, pin: &str) -> Result<FsSim, FsError> {
        if subscriber_id.trim().is_empty() || subscriber_id.contains(['\n', '\r']) {
            return Err(FsError::Invalid(
                "the subscriber ID must be one line".into(),
            ));
        }
        if pin.is_empty() {
            return Err(FsError::Invalid("the PIN must not be empty".into()));
        }
        std::fs::create_dir_all(dir).map_err(|e| FsError::io(dir, e))?;
        if dir.join("subscriber").exists() {
            return Err(FsError::Invalid(format!(
                "{} already holds a SIM",
                dir.display()
            )));
        }
        let sim = FsSim {
            dir: dir.to_path_buf(),
            subscriber_id: subscriber_id.trim().to_string(),
            pin_verifier: pin_verifier(subscriber_id.trim(), pin),
            tries_left: PIN_TRIES,
            terminals: Vec::new(),
            error: None,
        };
        write_atomic(&dir.join("pin"), sim.pin_verifier.as_bytes())?;
        sim.save_tries()?;
        sim.save_terminals()?;
        write_atomic(&dir.join("subscriber"), sim.subscriber_id.as_bytes())?;
        Ok(sim)
    }

    /// Opens the SIM in `dir`.
    pub fn open(dir: &Path) -> Result<FsSim, FsError> {
        let subscriber_id = read_line(&dir.join("subscriber"))?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| FsError::NotInitialised(dir.to_path_buf()))?;
        let pin_path = dir.join("pin");
        let pin_verifier =
            read_line(&pin_path)?.ok_or_else(|| FsError::format(&pin_path, "missing"))?;
        let tries_path = dir.join("tries");
        let tries_left = match read_line(&tries_path)? {
            None => PIN_TRIES,
            Some(t) => t
                .parse()
                .map_err(|_| FsError::format(&tries_path, "not a number"))?,
        };
        let terminals = read_line(&dir.join("terminals"))?
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        Ok(FsSim {
            dir: dir.to_path_buf(),
            subscriber_id,
            pin_verifier,
            tries_left,
            terminals,
            error: None,
        })
    }

    /// The SIM's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// PIN attempts left before the SIM blocks.
    pub fn tries_left(&self) -> u8 {
        self.tries_left
    }

    /// The first write error since the last call, if any.
    pub fn take_error(&mut self) -> Option<FsError> {
        self.error.take()
    }

    fn save_tries(&self) -> Result<(), FsError> {
        write_atomic(
            &self.dir.join("tries"),
            self.tries_left.to_string().as_bytes(),
        )
    }

    fn save_terminals(&self) -> Result<(), FsError> {
        let mut text = self.terminals.join("\n");
        text.push('\n');
        write_atomic(&self.dir.join("terminals"), text.as_bytes())
    }

    fn keep(&mut self, r: Result<(), FsError>) {
        if let Err(e) = r {
            warn!(error = %e, "SIM write failed");
            self.error.get_or_insert(e);
        }
    }
}

impl Sim for FsSim {
    fn subscriber_id(&self) -> String {
        self.subscriber_id.clone()
    }

    fn collate_pin(&mut self, pin: &str) -> PinResult {
        if self.tries_left == 0 {
            return PinResult::Blocked;
        }
        let given = pin_verifier(&self.subscriber_id, pin);
        let result = if constant_time_eq(given.as_bytes(), self.pin_verifier.as_bytes()) {
            self.tries_left = PIN_TRIES;
            PinResult::Ok
        } else {
            self.tries_left -= 1;
            if self.tries_left == 0 {
                PinResult::Blocked
            } else {
                PinResult::Wrong {
                    tries_left: self.tries_left,
                }
            }
        };
        let r = self.save_tries();
        self.keep(r);
        result
    }

    fn registered_terminal_ids(&self) -> Vec<String> {
        self.terminals.clone()
    }

    fn register_terminal_id(&mut self, terminal_id: &str) {
        if !self.terminals.iter().any(|t| t == terminal_id) {
            self.terminals.push(terminal_id.to_string());
            let r = self.save_terminals();
            self.keep(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sim_directory_keeps_its_pin_tries_and_terminals() {
        let d = tempfile::tempdir().unwrap();
        let mut sim = FsSim::create(d.path(), "001010123456789", "1234").unwrap();
        assert_eq!(sim.collate_pin("0000"), PinResult::Wrong { tries_left: 2 });
        sim.register_terminal_id("IMEI:1");
        sim.register_terminal_id("IMEI:1");
        let mut sim = FsSim::open(d.path()).unwrap();
        assert_eq!(sim.tries_left(), 2, "a wrong PIN is remembered");
        assert_eq!(sim.registered_terminal_ids(), vec!["IMEI:1".to_string()]);
        assert_eq!(sim.collate_pin("1234"), PinResult::Ok);
        assert_eq!(FsSim::open(d.path()).unwrap().tries_left(), 3);
        assert!(!std::fs::read_to_string(d.path().join("pin"))
            .unwrap()
            .contains("1234"));
        assert!(
            FsSim::create(d.path(), "x", "1").is_err(),
            "one SIM a directory"
        );
        assert!(sim.take_error().is_none());
    }
}

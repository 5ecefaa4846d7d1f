//! What the handset implements: the SIM card, the terminal, the user interface and the
//! clock (specification FIG. 3-5, para. 0028-0031).
//!
//! The engine only talks to the hardware through these traits, so several engines can run
//! in one process (the three-handset simulator of FIG. 16) and tests can use the
//! in-memory versions of [`crate::mem`].

/// The result of collating a PIN on the SIM (FIG. 8 S2, FIG. 9 S12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinResult {
    /// The PIN matches.
    Ok,
    /// The PIN does not match; the SIM blocks after `tries_left` more wrong PINs.
    Wrong {
        /// Attempts left.
        tries_left: u8,
    },
    /// The SIM is blocked (no more attempts).
    Blocked,
}

/// The SIM card mounted in the handset (read through the SIM reader/writer 11).
pub trait Sim: Send {
    /// The subscriber ID (IMSI or MSISDN): `SyncHdr/Source/LocName` and the user name of
    /// the credentials (DESIGN §3).
    fn subscriber_id(&self) -> String;

    /// Collates `pin` with the PIN held by the SIM; wrong PINs count down to a block.
    fn collate_pin(&mut self, pin: &str) -> PinResult;

    /// The terminal IDs registered on the SIM (FIG. 11-A S26a), read for FIG. 11-B.
    fn registered_terminal_ids(&self) -> Vec<String>;

    /// Registers a terminal ID on the SIM (FIG. 11-A S26a). Registering an ID already
    /// listed changes nothing.
    fn register_terminal_id(&mut self, terminal_id: &str);
}

/// The terminal (handset) itself: its ID, its password and the subscriber ID registration
/// area 6b in its flash memory.
pub trait Terminal: Send {
    /// The terminal ID (IMEI): `SyncHdr/Source/LocURI` and DevInf `DevID`, for example
    /// `IMEI:356938035643809`.
    fn terminal_id(&self) -> String;

    /// Collates `password` with the terminal password registered in the terminal
    /// (FIG. 9 S14). Implementations compare in constant time.
    fn collate_password(&self, password: &str) -> bool;

    /// The subscriber ID registered in area 6b (FIG. 10-A S26), if any.
    fn registered_subscriber_id(&self) -> Option<String>;

    /// Writes a subscriber ID into area 6b (FIG. 10-A S26).
    fn register_subscriber_id(&mut self, subscriber_id: &str);
}

/// What the engine may ask the user to permit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Permission {
    /// Start an automatic sync now (para. 0042: permission even for automatic uploads).
    Sync {
        /// Why the sync was triggered (`"SIM removal"`, `"periodic"`...).
        reason: String,
    },
}

/// Something the engine tells the user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// A gate refused the sync (FIG. 9 S17, FIG. 10-B S35): shown as "sync rejected".
    Refused(crate::GateRefusal),
    /// A sync session completed.
    SyncCompleted {
        /// Items sent to the server.
        sent: usize,
        /// Items received from the server.
        received: usize,
    },
    /// A sync session failed.
    SyncFailed(String),
    /// Local updates not yet reflected to the server (para. 0044: prompt the user to
    /// upload them, or remind periodically).
    LocalUpdatesPending {
        /// The data store's local URI.
        store: String,
        /// Pending local changes.
        count: usize,
    },
    /// Server updates not yet reflected to this handset (para. 0044), known from the
    /// `NumberOfChanges` of a probe or of a download cut short.
    ServerUpdatesPending {
        /// The data store's local URI.
        store: String,
        /// Changes the server holds for this handset.
        count: usize,
    },
    /// The collective erase (FIG. 20) wiped these data stores after the server confirmed
    /// it holds their data.
    Erased {
        /// The local URIs of the wiped stores.
        stores: Vec<String>,
    },
}

/// A warning for the user (para. 0068: an edit that may conflict).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// Local changes made without the SIM may conflict with another terminal's.
    PossibleConflict {
        /// The data store.
        store: String,
    },
    /// The server resolved a conflict in its own favour (status 419).
    ConflictResolvedByServer {
        /// The data store.
        store: String,
        /// The local ID of the item.
        luid: String,
    },
    /// A local edit of an item held only as a summary (titles first) was not uploaded:
    /// it would overwrite the full item on the server. Fetch the body, then edit.
    SummaryNotUploaded {
        /// The data store.
        store: String,
        /// The local ID of the item.
        luid: String,
    },
}

/// The user interface: prompts, permissions, notices and warnings.
pub trait Ui: Send {
    /// Asks for the SIM PIN; `None` when the user cancels. `tries_left` is known after a
    /// wrong PIN.
    fn ask_pin(&mut self, tries_left: Option<u8>) -> Option<String>;

    /// Asks for the terminal password; `None` when the user cancels.
    fn ask_terminal_password(&mut self) -> Option<String>;

    /// Asks the user to permit something; `false` refuses.
    fn ask_permission(&mut self, what: &Permission) -> bool;

    /// Tells the user something.
    fn notify(&mut self, notice: &Notice);

    /// Warns the user.
    fn warn(&mut self, warning: &Warning);
}

/// The handset's battery and activity (the battery remaining amount detecting section 15
/// of FIG. 3; the idle state of para. 0080-0081).
pub trait DeviceStatus: Send {
    /// The battery remaining amount, in percent.
    fn battery_percent(&self) -> u8;

    /// The battery is at or below the level that triggers FIG. 22.
    fn battery_low(&self) -> bool;

    /// The terminal is idle (waiting state: no application running, no recent user
    /// operation, or the flip closed; para. 0081).
    fn is_idle(&self) -> bool;
}

/// The current time, injected (no global clock in the engine).
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now_unix(&self) -> i64;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// ISO 8601 basic UTC (`20261126T150158Z`) of Unix seconds, the anchor format SyncEvolution
/// and our server use.
pub fn iso8601_basic(unix: i64) -> String {
    let secs = unix.max(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}{mo:02}{d:02}T{h:02}{m:02}{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_iso8601_basic() {
        assert_eq!(iso8601_basic(0), "19700101T000000Z");
        assert_eq!(iso8601_basic(1_795_705_315), "20261126T150155Z");
    }
}

//! Caps on one sync session (FIG. 21, para. 0085): an upper limit on the data moved and
//! on the time taken, per direction or in total, and the "probe" that only asks the
//! server how much it has for us (para. 0044).
//!
//! A capped session stops cleanly instead of breaking off:
//!
//! - **upload bytes**: package 3 carries local changes only while their payload fits the
//!   budget (the first change always goes, so a capped session always makes progress);
//!   the others stay pending in the change log and go in a later session.
//! - **time** while package 3 goes out over several messages: the message in flight is
//!   the last one (sent with `Final`); the changes of the messages not sent stay pending.
//! - **download bytes** and **time** while package 4 comes in over several messages: the
//!   session is suspended (`Alert 224`, SUS-01/02) at the next message boundary. Anchors
//!   do not move; the maps of the items applied so far are kept and sent first next time;
//!   local changes the server already acknowledged are cleared. The next session resumes
//!   (`Alert 225`) and our server sends only what the client has not acknowledged (it
//!   keeps each acknowledged GUID and revision with the suspended session), so equally
//!   capped sessions move the download on until it is complete (test
//!   `equally_capped_sessions_progress_until_the_download_is_complete`). A server that
//!   rebuilds package 4 from scratch on resume sends the applied items again, as
//!   replaces of the same items (their maps went first), never as duplicates.
//!
//! Bytes are item payload bytes (the `Data` of `Add`/`Replace`), not message bytes; a
//! delete carries none. A download cap is checked after each server message, so the
//! session may overshoot it by up to one message (our `MaxMsgSize`). Slow syncs and
//! refreshes from the client send every item whatever the budget (the server matches,
//! or keeps exactly, what it gets: a partial package 3 would lose data). Packages 1, 2,
//! 5 and 6 are never cut.

/// Limits for one session; `None` is unlimited. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    /// Payload bytes we upload.
    pub upload_bytes: Option<u64>,
    /// Payload bytes we download.
    pub download_bytes: Option<u64>,
    /// Payload bytes both ways.
    pub total_bytes: Option<u64>,
    /// Seconds for the whole session.
    pub total_secs: Option<u64>,
    /// Seconds for the upload (package 3), counted from the session's start.
    pub upload_secs: Option<u64>,
    /// Seconds for the download (package 4), counted from its first message.
    pub download_secs: Option<u64>,
    /// Apply nothing: read the server's `NumberOfChanges` from package 4 and suspend
    /// (para. 0044: check the server for updates not yet downloaded).
    pub probe: bool,
}

impl Budget {
    /// No limit.
    pub const UNLIMITED: Budget = Budget {
        upload_bytes: None,
        download_bytes: None,
        total_bytes: None,
        total_secs: None,
        upload_secs: None,
        download_secs: None,
        probe: false,
    };

    /// Only ask the server how many changes it has for us.
    pub fn probe() -> Budget {
        Budget {
            probe: true,
            ..Budget::UNLIMITED
        }
    }

    /// True when nothing is limited.
    pub fn is_unlimited(&self) -> bool {
        *self == Budget::UNLIMITED
    }

    /// Payload bytes still allowed upwards after `up` and `down` bytes moved.
    pub fn upload_left(&self, up: u64, down: u64) -> Option<u64> {
        let a = self.upload_bytes.map(|b| b.saturating_sub(up));
        let t = self.total_bytes.map(|b| b.saturating_sub(up + down));
        min_opt(a, t)
    }

    /// Payload bytes still allowed downwards after `up` and `down` bytes moved.
    pub fn download_left(&self, up: u64, down: u64) -> Option<u64> {
        let a = self.download_bytes.map(|b| b.saturating_sub(down));
        let t = self.total_bytes.map(|b| b.saturating_sub(up + down));
        min_opt(a, t)
    }

    /// The time by which the upload must end, for a session started at `start`.
    pub fn upload_deadline(&self, start: i64) -> Option<i64> {
        min_opt(
            self.upload_secs.map(|s| start.saturating_add(s as i64)),
            self.total_secs.map(|s| start.saturating_add(s as i64)),
        )
    }

    /// The time by which the download must end, for a session started at `start` whose
    /// download started at `download_start`.
    pub fn download_deadline(&self, start: i64, download_start: i64) -> Option<i64> {
        min_opt(
            self.download_secs
                .map(|s| download_start.saturating_add(s as i64)),
            self.total_secs.map(|s| start.saturating_add(s as i64)),
        )
    }
}

fn min_opt<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Why a session stopped before moving everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CutShort {
    /// Local changes did not fit the upload budget; they stay pending.
    UploadBytes,
    /// The upload ran out of time; the changes not sent stay pending.
    UploadTime,
    /// The download budget was spent; the session was suspended.
    DownloadBytes,
    /// The download ran out of time; the session was suspended.
    DownloadTime,
    /// A probe: nothing was applied; the session was suspended.
    Probe,
}

impl CutShort {
    /// The download did not complete (the session was suspended).
    pub fn stopped_download(self) -> bool {
        matches!(
            self,
            CutShort::DownloadBytes | CutShort::DownloadTime | CutShort::Probe
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_cap_limits_each_direction_by_what_the_other_used() {
        let b = Budget {
            upload_bytes: Some(100),
            total_bytes: Some(150),
            ..Budget::UNLIMITED
        };
        assert_eq!(b.upload_left(0, 0), Some(100));
        assert_eq!(b.upload_left(0, 120), Some(30));
        assert_eq!(b.download_left(100, 0), Some(50));
        assert_eq!(Budget::UNLIMITED.download_left(10, 10), None);
    }

    #[test]
    fn deadlines_take_the_nearer_limit() {
        let b = Budget {
            total_secs: Some(60),
            download_secs: Some(10),
            ..Budget::UNLIMITED
        };
        assert_eq!(b.upload_deadline(1000), Some(1060));
        assert_eq!(b.download_deadline(1000, 1005), Some(1015));
        assert_eq!(b.download_deadline(1000, 1055), Some(1060));
        assert!(Budget::UNLIMITED.is_unlimited());
    }
}

//! The six client sync modes (alert codes 200-205) and the authentication schemes.

use syncml_core::AlertCode;

/// A sync mode (SyncML Sync Protocol §11.2, alert codes 200-205).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncMode {
    /// 200: both sides exchange their changes since the last sync.
    TwoWay,
    /// 201: both sides compare all items (first sync, lost anchors).
    Slow,
    /// 202: only our changes go to the server (low battery, FIG. 22; SIM removal).
    OneWayFromClient,
    /// 203: the server's datastore is replaced by ours.
    RefreshFromClient,
    /// 204: only the server's changes come to us (SIM insertion download).
    OneWayFromServer,
    /// 205: our store is erased and refilled from the server.
    RefreshFromServer,
}

impl SyncMode {
    /// Every mode, in alert-code order.
    pub const ALL: [SyncMode; 6] = [
        SyncMode::TwoWay,
        SyncMode::Slow,
        SyncMode::OneWayFromClient,
        SyncMode::RefreshFromClient,
        SyncMode::OneWayFromServer,
        SyncMode::RefreshFromServer,
    ];

    /// The alert code (200-205).
    pub fn alert_code(self) -> AlertCode {
        AlertCode(match self {
            SyncMode::TwoWay => 200,
            SyncMode::Slow => 201,
            SyncMode::OneWayFromClient => 202,
            SyncMode::RefreshFromClient => 203,
            SyncMode::OneWayFromServer => 204,
            SyncMode::RefreshFromServer => 205,
        })
    }

    /// The mode of a client (200-205) or server-alerted (206-210) sync alert code.
    pub fn from_alert(code: AlertCode) -> Option<SyncMode> {
        Some(match code.client_equivalent()?.0 {
            200 => SyncMode::TwoWay,
            201 => SyncMode::Slow,
            202 => SyncMode::OneWayFromClient,
            203 => SyncMode::RefreshFromClient,
            204 => SyncMode::OneWayFromServer,
            205 => SyncMode::RefreshFromServer,
            _ => return None,
        })
    }

    /// We send our pending changes (200, 202).
    pub fn sends_changes(self) -> bool {
        matches!(self, SyncMode::TwoWay | SyncMode::OneWayFromClient)
    }

    /// We send every item (201, 203).
    pub fn sends_all(self) -> bool {
        matches!(self, SyncMode::Slow | SyncMode::RefreshFromClient)
    }

    /// Modes that compare anchors (200, 202, 204): a mismatch forces a slow sync.
    pub fn needs_anchors(self) -> bool {
        matches!(
            self,
            SyncMode::TwoWay | SyncMode::OneWayFromClient | SyncMode::OneWayFromServer
        )
    }
}

/// How we authenticate to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthScheme {
    /// `syncml:auth-md5` (the default; the password never travels).
    #[default]
    Md5,
    /// `syncml:auth-basic`: only over TLS unless explicitly allowed.
    Basic,
    /// No credentials (the server will challenge; we then answer with md5).
    None,
}

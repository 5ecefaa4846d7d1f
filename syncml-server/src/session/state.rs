//! The persisted state of one DS session: everything the engine needs to take the next
//! message of a session on any node, serialised into the store's session record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where the session is in the OMA DS package sequence (server view).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Phase {
    /// Waiting for (the rest of) package 1.
    #[default]
    Init,
    /// Package 2 sent; waiting for the client's modifications (package 3).
    ClientSync,
    /// Sending package 4 over several messages (the client asks with Alert 222).
    ServerSync,
    /// Package 4 complete; waiting for the client's statuses and Map (package 5).
    Map,
    /// Package 6 sent: the session is complete and its marks are committed.
    Done,
}

/// One datastore alerted in this session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsState {
    /// Our canonical datastore name (`contacts`).
    pub name: String,
    /// The client's LocURI of its datastore (`./addressbook`).
    pub client_uri: String,
    /// The LocURI the client used for ours (`addressbook`), echoed back.
    pub server_uri: String,
    /// The sync type in effect (alert code 200-205).
    pub alert: u32,
    /// The client's `Next` anchor of this session.
    pub client_next: String,
    /// Our `Next` anchor of this session.
    pub server_next: String,
    /// Our anchor of the previous completed session, if any.
    pub server_last: Option<String>,
    /// The revision mark the terminal had acknowledged before this session.
    pub acked_before: i64,
    /// The datastore revision when package 4 was built (the new mark on completion).
    pub snapshot_rev: Option<i64>,
    /// The client's package 3 for this datastore has arrived.
    pub client_sync_seen: bool,
    /// GUIDs the client wrote in this session (refresh-from-client keeps exactly these).
    pub written: Vec<String>,
    /// NumberOfChanges we announced, for the log.
    pub sent_changes: u32,
    /// Titles first: the properties of the field filter in the client's Alert; package
    /// 4's Adds and Replaces carry only these (see [`super::summary`]).
    #[serde(default)]
    pub summary: Option<Vec<String>>,
    /// Package-4 items the client acknowledged in this session (GUID → revision). A
    /// suspended session keeps them, so the session that resumes it (Alert 225) sends
    /// only what the client does not hold yet: downloads cut short by a transfer cap
    /// progress from one session to the next instead of starting over. A live session
    /// records them in the store ([`crate::store::Tx::session_delivered_put`]); they are
    /// gathered here when it is suspended, and read from here by the session resuming it.
    #[serde(default)]
    pub delivered: BTreeMap<String, i64>,
}

/// The whole session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SessionState {
    /// Our session key (the RespURI token).
    pub key: String,
    /// The client's SessionID.
    pub client_session_id: String,
    /// The terminal (SyncHdr/Source/LocURI).
    pub terminal: String,
    /// The subscriber, once known.
    pub subscriber: Option<String>,
    /// Credentials accepted for this session.
    pub authenticated: bool,
    /// `VerDTD` of the session (`1.2`).
    pub ver_dtd: String,
    /// `VerProto` of the session.
    pub ver_proto: String,
    /// MsgID of our latest message.
    pub next_msg_id: u32,
    /// The client's MaxMsgSize, if it sent one.
    pub client_max_msg_size: Option<u64>,
    /// The client's MaxObjSize, if it sent one.
    pub client_max_obj_size: Option<u64>,
    /// Where the session is.
    pub phase: Phase,
    /// Datastores alerted in this session.
    pub stores: Vec<DsState>,
    /// Package-4 commands not yet sent as an older build kept them (a WBXML-encoded
    /// SyncML message whose body holds them). Read once, to move them to the store's
    /// pending rows ([`crate::store::Tx::session_pending_put`]); never written now.
    #[serde(default, with = "b64_opt")]
    pub pending_pkg4: Option<Vec<u8>>,
    /// `MsgID` of the client message we answered last.
    #[serde(default)]
    pub last_client_msg_id: Option<String>,
    /// Our answer to that message (WBXML), resent if the client retransmits it.
    #[serde(default, with = "b64_opt")]
    pub last_reply: Option<Vec<u8>>,
    /// A large object the client is sending in chunks (`MoreData`), not yet complete.
    /// It can span messages; nothing of it is stored until the last chunk arrives.
    #[serde(default)]
    pub pending_lob: Option<PendingLob>,
    /// `(MsgID, CmdID)` of the chunk with `MoreData` that ended our latest message, when
    /// we are sending a large object: the client's status for it decides whether the
    /// next chunk follows.
    #[serde(default)]
    pub chunk_sent: Option<(String, String)>,
    /// The client suspended this session (Alert 224): it is kept, under the terminal's
    /// suspend key, only to be resumed (Alert 225) by a later session of the terminal.
    #[serde(default)]
    pub suspended: bool,
    /// What each package-4 command of [`Self::pending_pkg4`] carries, as an older build
    /// kept it: its CmdID as built → the item it sends. Empty now: the store's pending
    /// rows carry their items.
    #[serde(default)]
    pub pkg4_items: BTreeMap<String, SentItem>,
    /// Package-4 commands of our latest message, awaiting the client's statuses:
    /// (MsgID, CmdID) as sent → the item.
    #[serde(default)]
    pub in_flight: Vec<(String, String, SentItem)>,
}

/// The item a package-4 command sends: a revision of one GUID of one datastore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentItem {
    /// Our canonical datastore name.
    pub datastore: String,
    /// The item's GUID.
    pub guid: String,
    /// The revision sent (an upsert or a tombstone).
    pub revision: i64,
}

/// An incoming chunked object (LOB items), kept between messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLob {
    /// Our canonical datastore name.
    pub datastore: String,
    /// The command carrying it: `Add` or `Replace`.
    pub cmd: String,
    /// The first chunk's item `Target/LocURI`.
    pub target: Option<String>,
    /// The first chunk's item `Source/LocURI`.
    pub source: Option<String>,
    /// The first chunk's item `Meta/Type`, or the command's.
    pub content_type: Option<String>,
    /// The first chunk's item `Meta/Format`, or the command's (`b64`).
    pub format: Option<String>,
    /// The total size the first chunk declared (`Meta/Size`).
    pub declared: u64,
    /// The chunks received so far, as sent.
    #[serde(with = "b64")]
    pub bytes: Vec<u8>,
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let t = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .map_err(serde::de::Error::custom)
    }
}

/// Serialises optional bytes as Base64 text (a JSON array of numbers would take about
/// three times the space in the session record).
mod b64_opt {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&base64::engine::general_purpose::STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| {
                base64::engine::general_purpose::STANDARD
                    .decode(t)
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

impl SessionState {
    /// The datastore state for a server LocURI or canonical name.
    pub fn store_mut(&mut self, name: &str) -> Option<&mut DsState> {
        self.stores.iter_mut().find(|s| s.name == name)
    }
}

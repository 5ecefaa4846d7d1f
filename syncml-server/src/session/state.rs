//! The persisted state of one DS session: everything the engine needs to take the next
//! message of a session on any node, serialised into the store's session record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::binform::{put_bytes, Malformed, Reader};

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
    /// What the client's data store receives (MIME type, version; `Rx-Pref` first), read
    /// from its DevInf when package 4 was built: the rest of package 4 is converted for
    /// it the same way without parsing the DevInf again. Empty: send as stored.
    #[serde(default)]
    pub accepts: Vec<(String, String)>,
    /// A slow sync the server forced (the client asked for a normal sync, its anchors
    /// did not match ours) keeps the terminal's LUID map: this is the revision the
    /// terminal had acknowledged before, against which its items are judged (see
    /// `Engine::client_sync`). `None` for every other sync, and for slow syncs the
    /// client asked for (its LUIDs may have been reassigned: the map is cleared).
    #[serde(default)]
    pub map_kept_acked: Option<i64>,
    /// Slow sync over a kept map: GUIDs whose version here is newer than the client's
    /// unchanged copy (or won a conflict); package 4 sends them as `Replace` to the
    /// client's LUID.
    #[serde(default)]
    pub send_back: Vec<String>,
    /// Slow sync over a kept map: GUIDs deleted here whose unchanged copy the client
    /// still holds; package 4 sends a `Delete` to the client's LUID, and the map entry
    /// goes when the session completes.
    #[serde(default)]
    pub send_delete: Vec<String>,
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
    /// Our answer to that message as it went out, resent if the client retransmits it.
    /// Stored after the JSON state, not in it ([`SessionState::to_record`]); a state
    /// saved by an older build holds it here as base64 (WBXML).
    #[serde(default, skip_serializing, deserialize_with = "b64_opt::deserialize")]
    pub last_reply: Option<Vec<u8>>,
    /// `last_reply` is XML (otherwise WBXML).
    #[serde(default)]
    pub last_reply_xml: bool,
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
    /// (MsgID, CmdID) as sent → the item. Stored after the JSON state in a binary form
    /// of its own ([`SessionState::to_record`]): a message's worth of items (hundreds in
    /// a download) would be most of the JSON; a state saved by an older build holds it
    /// here.
    #[serde(default, skip_serializing)]
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

/// First byte of a session record framed by an older build: JSON state, then the reply.
/// A record that starts with `{` is the JSON state alone (older still).
const RECORD_FRAMED: u8 = 1;
/// First byte of a session record as [`SessionState::to_record`] writes it now.
const RECORD_FRAMED_FLIGHT: u8 = 2;

/// A session record that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The JSON state is malformed.
    #[error("session state: {0}")]
    Json(#[from] serde_json::Error),
    /// The framing is cut short.
    #[error("session record truncated")]
    Truncated,
    /// A text of the commands in flight is not UTF-8.
    #[error("session record: a command in flight is not UTF-8")]
    NotUtf8,
    /// The JSON state does not fit the framing's 32-bit length.
    #[error("session state of {0} bytes is too large to store")]
    TooLarge(usize),
}

impl SessionState {
    /// The stored form of the state: `2`, the length of the JSON state (u32, big
    /// endian), the JSON state, the length of the commands in flight (u32) and their
    /// binary form (MsgID, CmdID, datastore and GUID behind their lengths, the revision;
    /// big endian), then `last_reply` as raw bytes. The reply (up to
    /// the client's MaxMsgSize) and the commands in flight (one per item of a download
    /// message) stay out of the JSON: no base64, no JSON strings of them on every
    /// message.
    pub fn to_record(&self) -> Result<Vec<u8>, RecordError> {
        let json = serde_json::to_vec(self)?;
        let reply = self.last_reply.as_deref().unwrap_or_default();
        let mut flight = Vec::new();
        write_flight(&mut flight, &self.in_flight)?;
        let mut out = Vec::with_capacity(9 + json.len() + flight.len() + reply.len());
        out.push(RECORD_FRAMED_FLIGHT);
        put_bytes(&mut out, &json)?;
        put_bytes(&mut out, &flight)?;
        out.extend_from_slice(reply);
        Ok(out)
    }

    /// Reads a record written by [`SessionState::to_record`] (or by an older build: the
    /// JSON state and the reply, or the bare JSON state).
    pub fn from_record(bytes: &[u8]) -> Result<SessionState, RecordError> {
        let (kind, rest) = match bytes.split_first() {
            Some((&k, rest)) if k == RECORD_FRAMED || k == RECORD_FRAMED_FLIGHT => (k, rest),
            _ => return Ok(serde_json::from_slice(bytes)?),
        };
        let mut r = Reader(rest);
        let mut st: SessionState = serde_json::from_slice(r.bytes()?)?;
        if kind == RECORD_FRAMED_FLIGHT {
            st.in_flight = read_flight(r.bytes()?)?;
        }
        st.last_reply = (!r.is_empty()).then(|| r.0.to_vec());
        Ok(st)
    }

    /// The datastore state for a server LocURI or canonical name.
    pub fn store_mut(&mut self, name: &str) -> Option<&mut DsState> {
        self.stores.iter_mut().find(|s| s.name == name)
    }
}

impl From<Malformed> for RecordError {
    fn from(e: Malformed) -> RecordError {
        match e {
            Malformed::NotUtf8 => RecordError::NotUtf8,
            Malformed::TooLong(n) => RecordError::TooLarge(n),
            Malformed::Truncated | Malformed::Flag => RecordError::Truncated,
        }
    }
}

/// The commands in flight, one after the other: MsgID, CmdID, datastore and GUID (each
/// a u32 length and UTF-8), then the revision (i64); all big endian.
fn write_flight(
    out: &mut Vec<u8>,
    flight: &[(String, String, SentItem)],
) -> Result<(), RecordError> {
    for (msg, cmd, item) in flight {
        for text in [msg, cmd, &item.datastore, &item.guid] {
            put_bytes(out, text.as_bytes())?;
        }
        out.extend_from_slice(&item.revision.to_be_bytes());
    }
    Ok(())
}

fn read_flight(bytes: &[u8]) -> Result<Vec<(String, String, SentItem)>, RecordError> {
    let mut r = Reader(bytes);
    let mut out = Vec::new();
    while !r.is_empty() {
        let msg = r.string()?;
        let cmd = r.string()?;
        let datastore = r.string()?;
        let guid = r.string()?;
        let revision = r.i64()?;
        out.push((
            msg,
            cmd,
            SentItem {
                datastore,
                guid,
                revision,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_keeps_the_last_reply_as_raw_bytes_beside_the_json_state() {
        let st = SessionState {
            key: "k".into(),
            last_client_msg_id: Some("3".into()),
            last_reply: Some(vec![0x02, 0xA4, 0x01, 0x6A, 0x00, b'{']),
            last_reply_xml: false,
            ..SessionState::default()
        };
        let rec = st.to_record().unwrap();
        assert_eq!(rec[0], RECORD_FRAMED_FLIGHT);
        let json_len = u32::from_be_bytes([rec[1], rec[2], rec[3], rec[4]]) as usize;
        assert!(
            rec.ends_with(&[0x02, 0xA4, 0x01, 0x6A, 0x00, b'{']),
            "the reply follows the JSON unencoded"
        );
        assert_eq!(
            rec.len(),
            5 + json_len + 4 + 6,
            "no commands in flight: length 0"
        );
        let json = std::str::from_utf8(&rec[5..5 + json_len]).unwrap();
        assert!(
            !json.contains("last_reply\":\""),
            "no base64 copy in the JSON: {json}"
        );
        assert_eq!(SessionState::from_record(&rec).unwrap(), st);
    }

    #[test]
    fn a_record_without_a_reply_reads_back_without_one() {
        let st = SessionState {
            key: "k".into(),
            ..SessionState::default()
        };
        let back = SessionState::from_record(&st.to_record().unwrap()).unwrap();
        assert_eq!(back.last_reply, None);
        assert_eq!(back, st);
    }

    #[test]
    fn a_bare_json_state_of_an_older_build_is_read_with_its_base64_reply() {
        let legacy = br#"{"key":"k","client_session_id":"1","terminal":"t","subscriber":null,
            "authenticated":true,"ver_dtd":"1.2","ver_proto":"SyncML/1.2","next_msg_id":2,
            "client_max_msg_size":null,"client_max_obj_size":null,"phase":"Init",
            "stores":[],"last_client_msg_id":"1","last_reply":"AqQBag=="}"#;
        match SessionState::from_record(legacy) {
            Ok(st) => {
                assert_eq!(
                    st.last_reply.as_deref(),
                    Some(&[0x02, 0xA4, 0x01, 0x6A][..])
                );
                assert!(!st.last_reply_xml);
            }
            Err(e) => panic!("legacy state refused: {e}"),
        }
    }

    #[test]
    fn a_truncated_record_is_an_error_not_a_panic() {
        let rec = SessionState::default().to_record().unwrap();
        for cut in 0..rec.len() {
            assert!(
                SessionState::from_record(&rec[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    fn in_flight(n: usize) -> Vec<(String, String, SentItem)> {
        (0..n)
            .map(|i| {
                let item = SentItem {
                    datastore: "contacts".into(),
                    guid: format!("g-{i}-ü"),
                    revision: i as i64 * 7 - 3,
                };
                ("4".to_string(), (i + 2).to_string(), item)
            })
            .collect()
    }

    #[test]
    fn commands_in_flight_are_kept_beside_the_json_not_in_it() {
        let st = SessionState {
            key: "k".into(),
            in_flight: in_flight(3),
            last_reply: Some(b"reply".to_vec()),
            ..SessionState::default()
        };
        let rec = st.to_record().unwrap();
        let json_len = u32::from_be_bytes([rec[1], rec[2], rec[3], rec[4]]) as usize;
        let json = std::str::from_utf8(&rec[5..5 + json_len]).unwrap();
        assert!(!json.contains("in_flight"), "{json}");
        assert!(!json.contains("g-1-"), "{json}");
        assert_eq!(SessionState::from_record(&rec).unwrap(), st);
    }

    #[test]
    fn a_record_of_the_previous_framing_keeps_its_commands_in_flight_from_the_json() {
        let mut json = br#"{"key":"k","client_session_id":"1","terminal":"t","subscriber":null,
            "authenticated":true,"ver_dtd":"1.2","ver_proto":"SyncML/1.2","next_msg_id":2,
            "client_max_msg_size":null,"client_max_obj_size":null,"phase":"ServerSync",
            "stores":[],"in_flight":[["3","7",{"datastore":"contacts","guid":"g","revision":9}]]}"#
            .to_vec();
        let mut rec = vec![RECORD_FRAMED];
        rec.extend_from_slice(&(json.len() as u32).to_be_bytes());
        rec.append(&mut json);
        rec.extend_from_slice(b"reply");
        let st = SessionState::from_record(&rec).unwrap();
        assert_eq!(st.last_reply.as_deref(), Some(&b"reply"[..]));
        assert_eq!(
            st.in_flight,
            vec![(
                "3".to_string(),
                "7".to_string(),
                SentItem {
                    datastore: "contacts".into(),
                    guid: "g".into(),
                    revision: 9
                }
            )]
        );
    }

    #[test]
    fn a_truncated_record_with_commands_in_flight_is_an_error_not_a_panic() {
        let st = SessionState {
            in_flight: in_flight(2),
            ..SessionState::default()
        };
        let rec = st.to_record().unwrap();
        // Every cut inside the framed parts (the reply is empty: nothing after them).
        for cut in 0..rec.len() {
            assert!(
                SessionState::from_record(&rec[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}

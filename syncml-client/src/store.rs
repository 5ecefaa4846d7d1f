//! The data-store trait: one implementation per data class (contacts, calendar, ...;
//! DESIGN §3, specification FIG. 6), holding the items, their change log and the sync
//! state (anchors, cached maps) for our server.

use crate::error::StoreError;

/// What happened to a local item since the last successful sync with the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// Created locally.
    Add,
    /// Modified locally.
    Replace,
    /// Deleted locally.
    Delete,
}

/// A pending local change (CLI-02).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The local unique ID of the item.
    pub luid: String,
    /// What happened.
    pub kind: ChangeKind,
    /// The item's content (`None` for a delete).
    pub data: Option<Vec<u8>>,
    /// The item's MIME type (`None`: the store's default).
    pub content_type: Option<String>,
    /// A version that grows with every local change of the item, so acknowledging an old
    /// version does not clear a newer edit made during the session (CLI-08).
    pub version: u64,
    /// The change was made while no SIM was mounted (para. 0068).
    pub sim_less: bool,
}

impl Change {
    /// The identity used to acknowledge this change.
    pub fn id(&self) -> ChangeId {
        ChangeId {
            luid: self.luid.clone(),
            version: self.version,
        }
    }
}

/// Identifies a change that the server acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChangeId {
    /// The local ID.
    pub luid: String,
    /// The version that was sent; later versions stay pending.
    pub version: u64,
}

/// A local item, as sent in a slow sync or refresh from client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalItem {
    /// The local unique ID.
    pub luid: String,
    /// The content.
    pub data: Vec<u8>,
    /// The MIME type (`None`: the store's default).
    pub content_type: Option<String>,
}

/// A change the server sends us (package 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerChange {
    /// A new item; the store assigns a LUID, which is mapped to `guid`.
    Add {
        /// The server's ID.
        guid: String,
        /// The content.
        data: Vec<u8>,
        /// The MIME type, when the server named one.
        content_type: Option<String>,
    },
    /// A new version of an item we have.
    Replace {
        /// Our ID of the item.
        luid: String,
        /// The content.
        data: Vec<u8>,
        /// The MIME type, when the server named one.
        content_type: Option<String>,
    },
    /// The item was deleted elsewhere.
    Delete {
        /// Our ID of the item.
        luid: String,
    },
}

/// What applying a [`ServerChange`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The item was created under this LUID (answered 201, mapped in package 5).
    Added {
        /// The new local ID.
        luid: String,
    },
    /// The item was replaced (200).
    Replaced,
    /// A `Replace` for an unknown LUID created the item anew under this LUID (201).
    ReplacedAsNew {
        /// The new local ID.
        luid: String,
    },
    /// The item was deleted (200).
    Deleted,
    /// A `Delete` for an unknown LUID (211 Item not deleted).
    NotFound,
}

/// A LUID↔GUID pair that the server has not yet acknowledged (CLI-13).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MapEntry {
    /// The server's ID (`MapItem/Target`).
    pub guid: String,
    /// Our ID (`MapItem/Source`).
    pub luid: String,
}

/// The sync state a store keeps for our server (persist it with the items).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncState {
    /// Our `Next` anchor of the last completed session, sent as `Last` next time.
    pub last_anchor: Option<String>,
    /// The server's `Next` anchor of the last completed session.
    pub server_anchor: Option<String>,
    /// Maps not yet acknowledged by the server, resent at the start of the next session's
    /// package 3 (CLI-10, CLI-13).
    pub pending_maps: Vec<MapEntry>,
    /// The mode of a session we suspended (Alert 224, e.g. a download cap) and have not
    /// resumed: the next session of that mode asks to resume it (Alert 225, SUS-04).
    pub suspended: Option<crate::SyncMode>,
}

/// One data class on the handset (a datastore in SyncML terms).
///
/// Implementations keep a change log of **local** edits only: changes applied with
/// [`apply`](DataStore::apply) and the wipe of [`erase_local`](DataStore::erase_local) are
/// never logged (they must not echo back to the server).
pub trait DataStore: Send {
    /// Our LocURI of the store (`./contacts`): `Source` of our Alert and Sync.
    fn local_uri(&self) -> &str;

    /// The server's LocURI of the store (`contacts`): `Target` of our Alert and Sync.
    fn server_uri(&self) -> &str;

    /// The preferred MIME type and its version (`("text/x-vcard", "2.1")`), for DevInf and
    /// for items that name none.
    fn content_type(&self) -> (&str, &str);

    /// The pending local changes since the last successful sync, deletes included.
    ///
    /// A change handed out here may reach the server even when the session then fails
    /// (the server's answer lost): an Add handed out and deleted afterwards must then be
    /// reported as a Delete, not dropped as if it had never existed.
    fn changes(&mut self) -> Result<Vec<Change>, StoreError>;

    /// Every item (slow sync, refresh from client).
    fn all_items(&mut self) -> Result<Vec<LocalItem>, StoreError>;

    /// The LUIDs of every item, when the store can read them one at a time with
    /// [`read_item`](DataStore::read_item): a slow sync or refresh from client then reads
    /// items as each message is laid out, so memory follows the message size, not the
    /// number of items. `None` (the default): the session uses
    /// [`all_items`](DataStore::all_items).
    fn item_luids(&mut self) -> Result<Option<Vec<String>>, StoreError> {
        Ok(None)
    }

    /// The item `luid`, or `None` if it is gone. Only called for LUIDs that
    /// [`item_luids`](DataStore::item_luids) listed.
    fn read_item(&mut self, luid: &str) -> Result<Option<LocalItem>, StoreError> {
        let _ = luid;
        Ok(None)
    }

    /// The identities of the pending changes, without their content (what a slow sync
    /// acknowledges). The default takes them from [`changes`](DataStore::changes).
    fn change_ids(&mut self) -> Result<Vec<ChangeId>, StoreError> {
        Ok(self.changes()?.iter().map(Change::id).collect())
    }

    /// Whether a pending change was made without the SIM (para. 0068), checked before
    /// every sync. The default looks through [`changes`](DataStore::changes).
    fn has_sim_less_changes(&mut self) -> Result<bool, StoreError> {
        Ok(self.changes()?.iter().any(|c| c.sim_less))
    }

    /// Applies a server change (not logged as a local change).
    fn apply(&mut self, change: ServerChange) -> Result<Applied, StoreError>;

    /// Clears the acknowledged changes (only those exact versions).
    fn acknowledge(&mut self, changes: &[ChangeId]) -> Result<(), StoreError>;

    /// Erases every item and every pending change locally (refresh from server, collective
    /// erase); nothing of it is ever sent to the server.
    fn erase_local(&mut self) -> Result<(), StoreError>;

    /// The number of items.
    fn item_count(&mut self) -> Result<usize, StoreError>;

    /// The sync state for our server.
    fn sync_state(&mut self) -> Result<SyncState, StoreError>;

    /// Stores the sync state for our server.
    fn set_sync_state(&mut self, state: &SyncState) -> Result<(), StoreError>;

    /// True when the store can hold items as summaries (titles first, see
    /// [`crate::summary`]): it implements [`apply_summary`](DataStore::apply_summary),
    /// [`is_summary`](DataStore::is_summary) and [`store_body`](DataStore::store_body).
    /// A session asks the server for summaries only for such stores. Default: false.
    fn supports_summaries(&self) -> bool {
        false
    }

    /// Applies a server `Add`/`Replace` whose data is only the item's summary; the full
    /// item is `full_size` bytes on the server. The item is then held as a summary until
    /// [`store_body`](DataStore::store_body) or a full server version replaces it. Not
    /// logged as a local change. Default: refused (answered 500 to the server).
    fn apply_summary(
        &mut self,
        change: ServerChange,
        full_size: u64,
    ) -> Result<Applied, StoreError> {
        let _ = (change, full_size);
        Err(StoreError::new(
            self.local_uri(),
            "this store cannot hold summaries",
        ))
    }

    /// True when the item `luid` is held only as a summary. Default: false.
    fn is_summary(&mut self, luid: &str) -> Result<bool, StoreError> {
        let _ = luid;
        Ok(false)
    }

    /// Stores the full body fetched for item `luid` (it is no longer a summary). Not
    /// logged as a local change. Default: refused.
    fn store_body(
        &mut self,
        luid: &str,
        data: Vec<u8>,
        content_type: Option<String>,
    ) -> Result<(), StoreError> {
        let _ = (luid, data, content_type);
        Err(StoreError::new(
            self.local_uri(),
            "this store cannot hold summaries",
        ))
    }
}

//! [`FsStore`]: one data class kept as a directory of files, one item per file (file name
//! = LUID, content = the vCard / iCalendar text), like SyncEvolution's `file` backend.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::debug;

use super::{escape, fingerprint, unescape, write_atomic, FsError};
use crate::error::StoreError;
use crate::store::{
    Applied, Change, ChangeId, ChangeKind, DataStore, LocalItem, MapEntry, ServerChange, SyncState,
};

/// The change version of a local delete (content fingerprints are never 0).
const DELETE_VERSION: u64 = 0;

/// A data store kept in a directory, one file per item.
///
/// Change tracking compares the directory with an index of what was last synced (LUID and
/// content fingerprint): a file that is new, changed or gone is a pending Add, Replace or
/// Delete, whoever made the edit. Changes applied from the server update the index as they
/// are written, so they never echo back. The index is a journal (one line appended per
/// applied change), compacted when the sync state is saved, so a crash in the middle of a
/// long download loses nothing that was written.
///
/// Hidden files (`.name`) and editor backups (`name~`) are not items.
#[derive(Debug)]
pub struct FsStore {
    dir: PathBuf,
    index_path: PathBuf,
    state_path: PathBuf,
    local_uri: String,
    server_uri: String,
    content_type: (String, String),
    extension: String,
    synced: BTreeMap<String, u64>,
    journal: Option<File>,
    next_name: u64,
    /// Items the server wrote or deleted since the sync state was last saved: its version
    /// supersedes what we sent, so acknowledging our older version must not mark it.
    superseded: HashSet<String>,
}

/// A file name that can be a LUID: not empty, no path separator, not hidden or a backup.
fn is_item_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('~')
        && !name.contains(['/', '\\', '\0', '\t', '\n', '\r'])
}

impl FsStore {
    /// Opens the store whose items live in `dir` and whose index and sync state live in
    /// `state_dir` (as `NAME.index` and `NAME.state`, NAME = the last part of `dir`). Both
    /// directories are created if missing. `local_uri` (`./contacts`) and `server_uri`
    /// (`contacts`) name the store in SyncML; new items from the server get file names
    /// `N.extension`.
    pub fn open(
        dir: &Path,
        state_dir: &Path,
        local_uri: &str,
        server_uri: &str,
        content_type: (&str, &str),
        extension: &str,
    ) -> Result<FsStore, FsError> {
        std::fs::create_dir_all(dir).map_err(|e| FsError::io(dir, e))?;
        std::fs::create_dir_all(state_dir).map_err(|e| FsError::io(state_dir, e))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| FsError::Invalid(format!("{} has no name", dir.display())))?;
        let mut store = FsStore {
            dir: dir.to_path_buf(),
            index_path: state_dir.join(format!("{name}.index")),
            state_path: state_dir.join(format!("{name}.state")),
            local_uri: local_uri.to_string(),
            server_uri: server_uri.to_string(),
            content_type: (content_type.0.to_string(), content_type.1.to_string()),
            extension: extension.to_string(),
            synced: BTreeMap::new(),
            journal: None,
            next_name: 1,
            superseded: HashSet::new(),
        };
        store.load_index()?;
        store.compact()?;
        Ok(store)
    }

    /// The directory holding the items.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every item: LUID (file name) → content, read from the directory.
    pub fn read_all(&self) -> Result<BTreeMap<String, Vec<u8>>, FsError> {
        let mut out = BTreeMap::new();
        for luid in self.scan()? {
            let path = self.dir.join(&luid);
            let data = std::fs::read(&path).map_err(|e| FsError::io(&path, e))?;
            out.insert(luid, data);
        }
        Ok(out)
    }

    /// The number of pending local changes (files added, changed or removed since the last
    /// sync).
    pub fn pending(&self) -> Result<usize, FsError> {
        Ok(self.diff()?.len())
    }

    fn load_index(&mut self) -> Result<(), FsError> {
        let text = match std::fs::read_to_string(&self.index_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(FsError::io(&self.index_path, e)),
        };
        for (n, line) in text.lines().enumerate() {
            let mut f = line.split('\t');
            match (f.next(), f.next(), f.next()) {
                (Some("+"), Some(luid), Some(hash)) => {
                    let h = u64::from_str_radix(hash, 16).map_err(|_| {
                        FsError::format(&self.index_path, format!("line {}: bad hash", n + 1))
                    })?;
                    self.synced.insert(unescape(luid), h);
                }
                (Some("-"), Some(luid), None) => {
                    self.synced.remove(&unescape(luid));
                }
                // A torn last line after a crash: the entry was not written.
                _ if n + 1 == text.lines().count() && !text.ends_with('\n') => {}
                _ => {
                    return Err(FsError::format(
                        &self.index_path,
                        format!("line {}: not an index entry", n + 1),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Rewrites the index with only the live entries and reopens its journal.
    fn compact(&mut self) -> Result<(), FsError> {
        self.journal = None;
        let mut text = String::new();
        for (luid, h) in &self.synced {
            text.push_str(&format!("+\t{}\t{h:x}\n", escape(luid)));
        }
        write_atomic(&self.index_path, text.as_bytes())?;
        let f = OpenOptions::new()
            .append(true)
            .open(&self.index_path)
            .map_err(|e| FsError::io(&self.index_path, e))?;
        self.journal = Some(f);
        Ok(())
    }

    fn journal_line(&mut self, line: String) -> Result<(), FsError> {
        let path = self.index_path.clone();
        match self.journal.as_mut() {
            Some(f) => f
                .write_all(line.as_bytes())
                .map_err(|e| FsError::io(&path, e)),
            None => Err(FsError::format(&path, "index journal is not open")),
        }
    }

    fn mark_synced(&mut self, luid: &str, h: u64) -> Result<(), FsError> {
        if self.synced.get(luid) == Some(&h) {
            return Ok(());
        }
        self.synced.insert(luid.to_string(), h);
        self.journal_line(format!("+\t{}\t{h:x}\n", escape(luid)))
    }

    fn forget(&mut self, luid: &str) -> Result<(), FsError> {
        if self.synced.remove(luid).is_some() {
            self.journal_line(format!("-\t{}\n", escape(luid)))?;
        }
        Ok(())
    }

    /// The item files' names, sorted.
    fn scan(&self) -> Result<Vec<String>, FsError> {
        let rd = std::fs::read_dir(&self.dir).map_err(|e| FsError::io(&self.dir, e))?;
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| FsError::io(&self.dir, e))?;
            let ft = entry
                .file_type()
                .map_err(|e| FsError::io(&entry.path(), e))?;
            if !ft.is_file() {
                continue;
            }
            match entry.file_name().into_string() {
                Ok(name) if is_item_name(&name) => names.push(name),
                Ok(_) => {}
                Err(name) => debug!(?name, "skipping a file whose name is not UTF-8"),
            }
        }
        names.sort();
        Ok(names)
    }

    /// The pending changes: the directory against the index.
    fn diff(&self) -> Result<Vec<Change>, FsError> {
        self.diff_with(true)
    }

    /// [`diff`](Self::diff), keeping each file's content only when `keep_data` (else
    /// one file at a time is in memory).
    fn diff_with(&self, keep_data: bool) -> Result<Vec<Change>, FsError> {
        let files = self.scan()?;
        let mut out = Vec::new();
        for luid in &files {
            let path = self.dir.join(luid);
            let data = std::fs::read(&path).map_err(|e| FsError::io(&path, e))?;
            let h = fingerprint(&data);
            let kind = match self.synced.get(luid) {
                None => ChangeKind::Add,
                Some(old) if *old != h => ChangeKind::Replace,
                Some(_) => continue,
            };
            out.push(Change {
                luid: luid.clone(),
                kind,
                data: keep_data.then_some(data),
                content_type: None,
                version: h,
                sim_less: false,
            });
        }
        for luid in self.synced.keys() {
            if files.binary_search(luid).is_err() {
                out.push(Change {
                    luid: luid.clone(),
                    kind: ChangeKind::Delete,
                    data: None,
                    content_type: None,
                    version: DELETE_VERSION,
                    sim_less: false,
                });
            }
        }
        Ok(out)
    }

    /// A file name for a new item from the server.
    fn new_luid(&mut self) -> String {
        loop {
            let name = if self.extension.is_empty() {
                self.next_name.to_string()
            } else {
                format!("{}.{}", self.next_name, self.extension)
            };
            self.next_name += 1;
            if !self.synced.contains_key(&name) && !self.dir.join(&name).exists() {
                return name;
            }
        }
    }

    fn write_item(&mut self, luid: &str, data: &[u8]) -> Result<(), FsError> {
        write_atomic(&self.dir.join(luid), data)?;
        self.mark_synced(luid, fingerprint(data))
    }

    fn err(&self, e: FsError) -> StoreError {
        StoreError::new(self.local_uri.clone(), e.to_string())
    }

    fn apply_inner(&mut self, change: ServerChange) -> Result<Applied, FsError> {
        Ok(match change {
            ServerChange::Add { data, .. } => {
                let luid = self.new_luid();
                self.write_item(&luid, &data)?;
                Applied::Added { luid }
            }
            ServerChange::Replace { luid, data, .. } => {
                if is_item_name(&luid) && self.dir.join(&luid).is_file() {
                    self.write_item(&luid, &data)?;
                    Applied::Replaced
                } else {
                    let luid = self.new_luid();
                    self.write_item(&luid, &data)?;
                    Applied::ReplacedAsNew { luid }
                }
            }
            ServerChange::Delete { luid } => {
                let path = self.dir.join(&luid);
                if is_item_name(&luid) && path.is_file() {
                    std::fs::remove_file(&path).map_err(|e| FsError::io(&path, e))?;
                    self.forget(&luid)?;
                    Applied::Deleted
                } else {
                    // Gone here too: nothing left to send for it.
                    self.forget(&luid)?;
                    Applied::NotFound
                }
            }
        })
    }

    fn read_state(&self) -> Result<SyncState, FsError> {
        let text = match std::fs::read_to_string(&self.state_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SyncState::default()),
            Err(e) => return Err(FsError::io(&self.state_path, e)),
        };
        let mut st = SyncState::default();
        for (n, line) in text.lines().enumerate() {
            let f: Vec<&str> = line.split('\t').collect();
            match f.as_slice() {
                ["last_anchor", v] => st.last_anchor = Some(unescape(v)),
                ["server_anchor", v] => st.server_anchor = Some(unescape(v)),
                ["suspended", v] => {
                    st.suspended = v
                        .parse::<u32>()
                        .ok()
                        .and_then(|c| crate::SyncMode::from_alert(syncml_core::AlertCode(c)))
                }
                ["map", guid, luid] => st.pending_maps.push(MapEntry {
                    guid: unescape(guid),
                    luid: unescape(luid),
                }),
                _ => {
                    return Err(FsError::format(
                        &self.state_path,
                        format!("line {}: not a state entry", n + 1),
                    ))
                }
            }
        }
        Ok(st)
    }

    fn write_state(&mut self, st: &SyncState) -> Result<(), FsError> {
        let mut text = String::new();
        if let Some(a) = &st.last_anchor {
            text.push_str(&format!("last_anchor\t{}\n", escape(a)));
        }
        if let Some(a) = &st.server_anchor {
            text.push_str(&format!("server_anchor\t{}\n", escape(a)));
        }
        for m in &st.pending_maps {
            text.push_str(&format!("map\t{}\t{}\n", escape(&m.guid), escape(&m.luid)));
        }
        if let Some(m) = st.suspended {
            text.push_str(&format!("suspended\t{}\n", m.alert_code().0));
        }
        write_atomic(&self.state_path, text.as_bytes())?;
        self.compact()
    }
}

impl DataStore for FsStore {
    fn local_uri(&self) -> &str {
        &self.local_uri
    }

    fn server_uri(&self) -> &str {
        &self.server_uri
    }

    fn content_type(&self) -> (&str, &str) {
        (&self.content_type.0, &self.content_type.1)
    }

    fn changes(&mut self) -> Result<Vec<Change>, StoreError> {
        self.diff().map_err(|e| self.err(e))
    }

    fn all_items(&mut self) -> Result<Vec<LocalItem>, StoreError> {
        let all = self.read_all().map_err(|e| self.err(e))?;
        Ok(all
            .into_iter()
            .map(|(luid, data)| LocalItem {
                luid,
                data,
                content_type: None,
            })
            .collect())
    }

    fn item_luids(&mut self) -> Result<Option<Vec<String>>, StoreError> {
        self.scan().map(Some).map_err(|e| self.err(e))
    }

    fn read_item(&mut self, luid: &str) -> Result<Option<LocalItem>, StoreError> {
        if !is_item_name(luid) {
            return Ok(None);
        }
        let path = self.dir.join(luid);
        match std::fs::read(&path) {
            Ok(data) => Ok(Some(LocalItem {
                luid: luid.to_string(),
                data,
                content_type: None,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(FsError::io(&path, e))),
        }
    }

    fn has_sim_less_changes(&mut self) -> Result<bool, StoreError> {
        // Edits in the directory carry no record of whether a SIM was mounted.
        Ok(false)
    }

    fn change_ids(&mut self) -> Result<Vec<ChangeId>, StoreError> {
        self.diff_with(false)
            .map(|v| v.iter().map(Change::id).collect())
            .map_err(|e| self.err(e))
    }

    fn apply(&mut self, change: ServerChange) -> Result<Applied, StoreError> {
        let luid = match &change {
            ServerChange::Add { .. } => None,
            ServerChange::Replace { luid, .. } | ServerChange::Delete { luid } => {
                Some(luid.clone())
            }
        };
        let applied = self.apply_inner(change).map_err(|e| self.err(e))?;
        match (&applied, luid) {
            (Applied::Added { luid } | Applied::ReplacedAsNew { luid }, _) => {
                self.superseded.insert(luid.clone());
            }
            (_, Some(luid)) => {
                self.superseded.insert(luid);
            }
            _ => {}
        }
        Ok(applied)
    }

    fn acknowledge(&mut self, changes: &[ChangeId]) -> Result<(), StoreError> {
        for id in changes {
            if self.superseded.contains(&id.luid) {
                // The server's own version came down after ours went up.
                continue;
            }
            let r = if id.version == DELETE_VERSION {
                self.forget(&id.luid)
            } else {
                // The server has the content that was sent; a later edit differs from it
                // and stays pending.
                self.mark_synced(&id.luid, id.version)
            };
            r.map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn erase_local(&mut self) -> Result<(), StoreError> {
        let r = (|| {
            for luid in self.scan()? {
                let path = self.dir.join(&luid);
                std::fs::remove_file(&path).map_err(|e| FsError::io(&path, e))?;
            }
            self.synced.clear();
            self.compact()
        })();
        r.map_err(|e| self.err(e))
    }

    fn item_count(&mut self) -> Result<usize, StoreError> {
        self.scan().map(|v| v.len()).map_err(|e| self.err(e))
    }

    fn sync_state(&mut self) -> Result<SyncState, StoreError> {
        self.read_state().map_err(|e| self.err(e))
    }

    fn set_sync_state(&mut self, state: &SyncState) -> Result<(), StoreError> {
        self.superseded.clear();
        self.write_state(state).map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(root: &Path) -> FsStore {
        FsStore::open(
            &root.join("contacts"),
            &root.join("state"),
            "./contacts",
            "contacts",
            ("text/x-vcard", "2.1"),
            "vcf",
        )
        .unwrap()
    }

    fn kinds(s: &mut FsStore) -> Vec<(String, ChangeKind)> {
        s.changes()
            .unwrap()
            .into_iter()
            .map(|c| (c.luid, c.kind))
            .collect()
    }

    #[test]
    fn edits_made_in_the_directory_are_changes() {
        let d = tempfile::tempdir().unwrap();
        let mut s = open(d.path());
        std::fs::write(d.path().join("contacts/a.vcf"), "A").unwrap();
        std::fs::write(d.path().join("contacts/.hidden"), "H").unwrap();
        std::fs::write(d.path().join("contacts/a.vcf~"), "backup").unwrap();
        assert_eq!(kinds(&mut s), vec![("a.vcf".into(), ChangeKind::Add)]);
        let ids: Vec<ChangeId> = s.changes().unwrap().iter().map(Change::id).collect();
        s.acknowledge(&ids).unwrap();
        assert!(kinds(&mut s).is_empty());
        std::fs::write(d.path().join("contacts/a.vcf"), "A2").unwrap();
        std::fs::write(d.path().join("contacts/b.vcf"), "B").unwrap();
        assert_eq!(
            kinds(&mut s),
            vec![
                ("a.vcf".into(), ChangeKind::Replace),
                ("b.vcf".into(), ChangeKind::Add)
            ]
        );
        let ids: Vec<ChangeId> = s.changes().unwrap().iter().map(Change::id).collect();
        s.acknowledge(&ids).unwrap();
        std::fs::remove_file(d.path().join("contacts/a.vcf")).unwrap();
        assert_eq!(kinds(&mut s), vec![("a.vcf".into(), ChangeKind::Delete)]);
    }

    #[test]
    fn an_edit_during_the_session_stays_pending_after_the_ack() {
        let d = tempfile::tempdir().unwrap();
        let mut s = open(d.path());
        std::fs::write(d.path().join("contacts/a.vcf"), "A").unwrap();
        let sent: Vec<ChangeId> = s.changes().unwrap().iter().map(Change::id).collect();
        std::fs::write(d.path().join("contacts/a.vcf"), "A edited meanwhile").unwrap();
        s.acknowledge(&sent).unwrap();
        assert_eq!(kinds(&mut s), vec![("a.vcf".into(), ChangeKind::Replace)]);
    }

    #[test]
    fn server_changes_do_not_echo_and_survive_a_reopen() {
        let d = tempfile::tempdir().unwrap();
        let mut s = open(d.path());
        let Applied::Added { luid } = s
            .apply(ServerChange::Add {
                guid: "g".into(),
                data: b"X".to_vec(),
                content_type: None,
            })
            .unwrap()
        else {
            panic!("not added")
        };
        assert_eq!(luid, "1.vcf");
        assert!(kinds(&mut s).is_empty());
        drop(s); // no set_sync_state: the journal alone must remember it
        let mut s = open(d.path());
        assert!(kinds(&mut s).is_empty(), "journal replayed");
        assert_eq!(
            s.apply(ServerChange::Replace {
                luid: luid.clone(),
                data: b"Y".to_vec(),
                content_type: None
            })
            .unwrap(),
            Applied::Replaced
        );
        assert_eq!(
            std::fs::read(d.path().join("contacts/1.vcf")).unwrap(),
            b"Y"
        );
        assert_eq!(
            s.apply(ServerChange::Delete { luid }).unwrap(),
            Applied::Deleted
        );
        assert!(kinds(&mut s).is_empty());
        assert_eq!(s.item_count().unwrap(), 0);
    }

    #[test]
    fn a_server_version_applied_after_ours_went_up_is_not_undone_by_the_ack() {
        let d = tempfile::tempdir().unwrap();
        let mut s = open(d.path());
        std::fs::write(d.path().join("contacts/a.vcf"), "A").unwrap();
        std::fs::write(d.path().join("contacts/b.vcf"), "B").unwrap();
        let sent: Vec<ChangeId> = s.changes().unwrap().iter().map(Change::id).collect();
        // A slow sync: the server merges and sends its version of a, deletes b.
        s.apply(ServerChange::Replace {
            luid: "a.vcf".into(),
            data: b"A merged".to_vec(),
            content_type: None,
        })
        .unwrap();
        s.apply(ServerChange::Delete {
            luid: "b.vcf".into(),
        })
        .unwrap();
        s.acknowledge(&sent).unwrap();
        s.set_sync_state(&SyncState::default()).unwrap();
        assert!(kinds(&mut s).is_empty(), "nothing to echo back");
        assert_eq!(
            std::fs::read(d.path().join("contacts/a.vcf")).unwrap(),
            b"A merged"
        );
    }

    #[test]
    fn unsafe_luids_from_the_server_never_name_a_file() {
        let d = tempfile::tempdir().unwrap();
        let mut s = open(d.path());
        let r = s
            .apply(ServerChange::Replace {
                luid: "../escape".into(),
                data: b"Z".to_vec(),
                content_type: None,
            })
            .unwrap();
        assert!(matches!(r, Applied::ReplacedAsNew { ref luid } if luid == "1.vcf"));
        assert!(!d.path().join("escape").exists());
        assert_eq!(
            s.apply(ServerChange::Delete {
                luid: "../state/contacts.index".into()
            })
            .unwrap(),
            Applied::NotFound
        );
        assert!(d.path().join("state/contacts.index").exists());
    }

    #[test]
    fn sync_state_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let mut s = open(d.path());
        let st = SyncState {
            last_anchor: Some("20260101T000000Z".into()),
            server_anchor: Some("17".into()),
            pending_maps: vec![MapEntry {
                guid: "g\t1".into(),
                luid: "1.vcf".into(),
            }],
            suspended: Some(crate::SyncMode::OneWayFromServer),
        };
        s.set_sync_state(&st).unwrap();
        let mut s = open(d.path());
        assert_eq!(s.sync_state().unwrap(), st);
    }

    #[test]
    fn erase_local_removes_items_without_pending_deletes() {
        let d = tempfile::tempdir().unwrap();
        let mut s = open(d.path());
        std::fs::write(d.path().join("contacts/a.vcf"), "A").unwrap();
        let ids: Vec<ChangeId> = s.changes().unwrap().iter().map(Change::id).collect();
        s.acknowledge(&ids).unwrap();
        s.erase_local().unwrap();
        assert_eq!(s.item_count().unwrap(), 0);
        assert!(kinds(&mut s).is_empty());
    }
}

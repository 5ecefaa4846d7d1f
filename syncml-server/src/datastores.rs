//! The datastores the server offers (the patent's data classes D1-D8, DESIGN §3), the
//! alias table that maps what clients call them onto them, and the server's DevInf.

use syncml_core::model::{CtTypeVer, DataStore, DevInf, SyncCap};

/// One datastore the server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatastoreDef {
    /// The canonical name, also the storage key (`contacts`).
    pub name: &'static str,
    /// What a client may call it (compared case-insensitively, with or without `./`).
    pub aliases: &'static [&'static str],
    /// Preferred content type and version (DevInf `Rx-Pref`/`Tx-Pref`).
    ///
    /// Items are stored as received (converted only on the way out, to a format the
    /// receiving terminal's DevInf lists; see `session::outbound`), so this is the
    /// richest format of the class: a client that handles several formats sends its
    /// items in the server's preferred one, and a legacy preference makes it
    /// down-convert, which loses data (SyncEvolution turns an iCalendar 2.0 event into
    /// vCalendar 1.0, dropping `DTSTAMP` and inventing a `DESCRIPTION`). Legacy-only
    /// handsets find their format in `others` (`Rx`/`Tx`).
    pub preferred: (&'static str, &'static str),
    /// Other accepted content types and versions.
    pub others: &'static [(&'static str, &'static str)],
    /// Whether items can be large objects (photos and files).
    pub large_objects: bool,
}

/// Every datastore, in the order the DevInf lists them.
pub const DATASTORES: &[DatastoreDef] = &[
    DatastoreDef {
        name: "contacts",
        aliases: &["addressbook", "contact", "card", "vcard", "pab", "contacts"],
        preferred: ("text/vcard", "3.0"),
        others: &[("text/x-vcard", "2.1")],
        large_objects: false,
    },
    DatastoreDef {
        name: "calendar",
        aliases: &["calendar", "cal", "event", "events", "scal"],
        preferred: ("text/calendar", "2.0"),
        others: &[("text/x-vcalendar", "1.0")],
        large_objects: false,
    },
    DatastoreDef {
        name: "tasks",
        aliases: &["tasks", "task", "todo", "todos", "stask"],
        preferred: ("text/calendar", "2.0"),
        others: &[("text/x-vcalendar", "1.0")],
        large_objects: false,
    },
    DatastoreDef {
        name: "notes",
        aliases: &["notes", "note", "memo", "memos", "snote"],
        preferred: ("text/plain", "1.0"),
        others: &[("text/x-vnote", "1.1")],
        large_objects: false,
    },
    DatastoreDef {
        name: "bookmarks",
        aliases: &["bookmarks", "bookmark", "browser"],
        preferred: ("text/x-vbookmark", "1.0"),
        others: &[("text/plain", "1.0")],
        large_objects: false,
    },
    DatastoreDef {
        name: "mail",
        aliases: &["mail", "email", "inbox"],
        preferred: ("text/x-vMessage", "1.2"),
        others: &[("message/rfc822", "1.0")],
        large_objects: true,
    },
    DatastoreDef {
        name: "files",
        aliases: &["files", "file", "photos", "photo", "media", "archive"],
        preferred: ("application/octet-stream", "1.0"),
        others: &[
            ("image/jpeg", "1.0"),
            ("application/vnd.omads-file+xml", "1.2"),
        ],
        large_objects: true,
    },
    DatastoreDef {
        name: "apps",
        aliases: &["apps", "app", "applications"],
        preferred: ("application/octet-stream", "1.0"),
        others: &[],
        large_objects: true,
    },
    DatastoreDef {
        name: "settings",
        aliases: &["settings", "setup", "config"],
        preferred: ("application/octet-stream", "1.0"),
        others: &[("text/plain", "1.0")],
        large_objects: false,
    },
    DatastoreDef {
        name: "rights",
        aliases: &["rights", "drm"],
        preferred: ("application/vnd.oma.drm.rights+xml", "1.0"),
        others: &[("application/octet-stream", "1.0")],
        large_objects: false,
    },
];

/// Finds the datastore a client means by `uri` (`./contacts`, `contacts`,
/// `addressbook`, `Contacts`, `./Contacts?x=y`...).
pub fn resolve(uri: &str) -> Option<&'static DatastoreDef> {
    let u = uri.trim();
    let u = u.split('?').next().unwrap_or(u);
    let u = u.trim_start_matches("./").trim_end_matches('/');
    let u = u.rsplit('/').next().unwrap_or(u);
    DATASTORES.iter().find(|d| {
        d.name.eq_ignore_ascii_case(u) || d.aliases.iter().any(|a| a.eq_ignore_ascii_case(u))
    })
}

/// The server's DevInf (1.2, or 1.1 for a SyncML 1.1 session).
///
/// `client_uris` maps canonical datastore names to the URI the client uses for them in
/// this session (`contacts` → `addressbook`). Those datastores are listed under the
/// client's name (`./addressbook`): a client finds the DevInf of a datastore by the URI
/// it addresses (the Synthesis engine otherwise logs "No DevInf for remote datastore,
/// running blind sync attempt" and ignores our content types and sync caps).
pub fn server_devinf(v11: bool, dev_id: &str, client_uris: &[(&str, String)]) -> DevInf {
    let data_stores = DATASTORES
        .iter()
        .map(|d| {
            let source_ref = client_uris
                .iter()
                .find(|(name, _)| *name == d.name)
                .map(|(_, uri)| uri.trim().trim_start_matches("./"))
                .filter(|uri| !uri.is_empty())
                .map_or_else(|| format!("./{}", d.name), |uri| format!("./{uri}"));
            let ct = |(t, v): (&str, &str)| CtTypeVer {
                ct_type: t.to_string(),
                ver_ct: v.to_string(),
            };
            DataStore {
                source_ref,
                display_name: Some(d.name.to_string()),
                max_guid_size: Some(32),
                rx_pref: ct(d.preferred),
                rx: d.others.iter().map(|x| ct(*x)).collect(),
                tx_pref: ct(d.preferred),
                tx: d.others.iter().map(|x| ct(*x)).collect(),
                sync_cap: SyncCap {
                    sync_types: ["1", "2", "3", "4", "5", "6", "7"]
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                },
                ..DataStore::default()
            }
        })
        .collect();
    DevInf {
        ver_dtd: if v11 { "1.1" } else { "1.2" }.into(),
        man: Some("syncml-rs".into()),
        model: Some("syncml-server".into()),
        oem: None,
        fw_v: Some(env!("CARGO_PKG_VERSION").into()),
        sw_v: Some(env!("CARGO_PKG_VERSION").into()),
        hw_v: Some("server".into()),
        dev_id: dev_id.to_string(),
        dev_typ: "server".into(),
        utc: true,
        support_large_objs: true,
        support_number_of_changes: true,
        data_stores,
        ..DevInf::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_resolve_through_the_alias_table() {
        for (uri, want) in [
            ("./contacts", "contacts"),
            ("contacts", "contacts"),
            ("addressbook", "contacts"),
            ("Contacts", "contacts"),
            ("./card", "contacts"),
            ("calendar", "calendar"),
            ("./Calendar", "calendar"),
            ("todo", "tasks"),
            ("./notes", "notes"),
            ("photos", "files"),
        ] {
            assert_eq!(resolve(uri).map(|d| d.name), Some(want), "{uri}");
        }
        assert!(resolve("./nonsense").is_none());
    }

    #[test]
    fn every_datastore_is_advertised() {
        let d = server_devinf(false, "http://x/sync", &[]);
        assert_eq!(d.data_stores.len(), DATASTORES.len());
        assert!(d.support_large_objs);
        assert_eq!(d.data_stores[0].source_ref, "./contacts");
    }

    #[test]
    fn datastores_are_listed_under_the_clients_names() {
        let d = server_devinf(
            false,
            "http://x/sync",
            &[("contacts", "addressbook".into())],
        );
        let refs: Vec<&str> = d
            .data_stores
            .iter()
            .map(|s| s.source_ref.as_str())
            .collect();
        assert_eq!(refs[..2], ["./addressbook", "./calendar"]);
        assert_eq!(d.data_stores[0].rx_pref.ct_type, "text/vcard");
    }
}

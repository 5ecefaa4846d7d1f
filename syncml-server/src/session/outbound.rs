//! The content type an item goes to a terminal in (package 4).
//!
//! Items are stored in the format their writer used. When the terminal's DevInf data
//! store (the one whose `SourceRef` is the URI the client alerted) lists what it
//! receives (`Rx-Pref`, then `Rx`; DevInf 1.1 and 1.2 alike):
//!
//! * an item whose stored type is among them goes as it is;
//! * else, if [`syncml_core::content`] converts the stored type to one of them (the
//!   `Rx-Pref` first), the converted item goes, with that type's `CTType` as its Meta
//!   Type;
//! * else, and when there is no DevInf, no such data store or the conversion fails, the
//!   item goes as it is (liberal: the device may still take it).
//!
//! The decision is made once per stored type and datastore; the DevInf is parsed once
//! per package 4 (later messages rebuild the converter from what the session kept of it).

use std::collections::HashMap;

use syncml_core::content::{self, ContentType};
use syncml_core::model::{DataStore, DevInf};
use tracing::{debug, info, warn};

/// Converts a datastore's items for one terminal.
#[derive(Debug, Default)]
pub(super) struct Outbound {
    datastore: String,
    /// What the terminal's data store receives, `Rx-Pref` first.
    accepts: Vec<ContentType>,
    /// Stored type → the type to send (`None`: as stored).
    decisions: HashMap<String, Option<ContentType>>,
}

/// The terminal's data store that the client alerted as `client_uri` (exact
/// `SourceRef`, else ignoring case and a leading `./`).
fn data_store<'a>(devinf: &'a DevInf, client_uri: &str) -> Option<&'a DataStore> {
    let norm = |s: &str| {
        let s = s.trim();
        s.strip_prefix("./").unwrap_or(s).to_ascii_lowercase()
    };
    devinf.data_store(client_uri).or_else(|| {
        let want = norm(client_uri);
        devinf
            .data_stores
            .iter()
            .find(|d| norm(&d.source_ref) == want)
    })
}

impl Outbound {
    /// For datastore `datastore`, which the terminal alerted as `client_uri`.
    pub(super) fn new(devinf: Option<&DevInf>, client_uri: &str, datastore: &str) -> Outbound {
        let accepts = devinf
            .and_then(|d| data_store(d, client_uri))
            .map(|ds| {
                std::iter::once(&ds.rx_pref)
                    .chain(ds.rx.iter())
                    .filter(|c| !c.ct_type.trim().is_empty())
                    .map(|c| ContentType::new(c.ct_type.trim(), c.ver_ct.trim()))
                    .collect()
            })
            .unwrap_or_default();
        Outbound {
            datastore: datastore.to_string(),
            accepts,
            decisions: HashMap::new(),
        }
    }

    /// What the terminal's data store receives (`Rx-Pref` first) as (MIME type,
    /// version) pairs: kept in the session so that later messages of package 4 need not
    /// parse the DevInf again ([`Outbound::from_accepts`]).
    pub(super) fn accepts(&self) -> Vec<(String, String)> {
        self.accepts
            .iter()
            .map(|c| (c.mime.clone(), c.version.clone()))
            .collect()
    }

    /// The converter [`Outbound::accepts`] describes.
    pub(super) fn from_accepts(datastore: &str, accepts: &[(String, String)]) -> Outbound {
        Outbound {
            datastore: datastore.to_string(),
            accepts: accepts
                .iter()
                .map(|(mime, version)| ContentType::new(mime.as_str(), version.as_str()))
                .collect(),
            decisions: HashMap::new(),
        }
    }

    fn decide(&self, stored: &str) -> Option<ContentType> {
        let from = ContentType::new(stored, "");
        if self.accepts.is_empty() || self.accepts.iter().any(|a| a.same_as(&from)) {
            return None;
        }
        self.accepts
            .iter()
            .find(|a| content::can_convert(&from, a))
            .cloned()
    }

    /// The Meta Type and data to send item `guid`, stored as `ctype`.
    pub(super) fn prepare(&mut self, guid: &str, ctype: &str, data: Vec<u8>) -> (String, Vec<u8>) {
        if self.accepts.is_empty() {
            return (ctype.to_string(), data);
        }
        let target = match self.decisions.get(ctype) {
            Some(t) => t.clone(),
            None => {
                let t = self.decide(ctype);
                self.decisions.insert(ctype.to_string(), t.clone());
                t
            }
        };
        let Some(to) = target else {
            return (ctype.to_string(), data);
        };
        let from = ContentType::new(ctype, "");
        match content::convert_with_notes(&data, &from, &to) {
            Ok(c) => {
                debug!(datastore = %self.datastore, item = guid, from = %from, to = %to, "item converted for the terminal's DevInf");
                for note in &c.notes {
                    info!(datastore = %self.datastore, item = guid, to = %to, note = %note, "content conversion not exact");
                }
                (to.mime, c.data)
            }
            Err(e) => {
                warn!(datastore = %self.datastore, item = guid, from = %from, to = %to, error = %e, "content conversion failed; item sent as stored");
                (ctype.to_string(), data)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncml_core::model::CtTypeVer;

    fn devinf(source_ref: &str, rx_pref: (&str, &str), rx: &[(&str, &str)]) -> DevInf {
        DevInf {
            ver_dtd: "1.2".into(),
            dev_id: "dev".into(),
            dev_typ: "phone".into(),
            data_stores: vec![DataStore {
                source_ref: source_ref.into(),
                rx_pref: CtTypeVer::new(rx_pref.0, rx_pref.1),
                rx: rx.iter().map(|(t, v)| CtTypeVer::new(*t, *v)).collect(),
                ..DataStore::default()
            }],
            ..DevInf::default()
        }
    }

    const CARD30: &[u8] =
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A B\r\nN:B;A\r\nTEL;TYPE=WORK,VOICE:1\r\nEND:VCARD\r\n";

    #[test]
    fn a_type_the_terminal_receives_goes_as_stored() {
        let d = devinf(
            "./contacts",
            ("text/x-vcard", "2.1"),
            &[("text/vcard", "3.0")],
        );
        let mut o = Outbound::new(Some(&d), "./contacts", "contacts");
        assert_eq!(
            o.prepare("1", "text/vcard", CARD30.to_vec()),
            ("text/vcard".to_string(), CARD30.to_vec())
        );
    }

    #[test]
    fn a_type_the_terminal_does_not_receive_is_converted_to_its_rx_pref() {
        let d = devinf("Contacts", ("text/x-vcard", "2.1"), &[]);
        let mut o = Outbound::new(Some(&d), "./contacts", "contacts");
        let (t, data) = o.prepare("1", "text/vcard", CARD30.to_vec());
        assert_eq!(t, "text/x-vcard");
        let text = String::from_utf8(data).unwrap();
        assert!(
            text.contains("VERSION:2.1\r\n") && text.contains("TEL;WORK;VOICE:1\r\n"),
            "{text}"
        );
    }

    #[test]
    fn a_convertible_rx_is_used_when_the_rx_pref_is_not() {
        let d = devinf("./cal", ("text/x-foo", "1"), &[("text/x-vcalendar", "1.0")]);
        let mut o = Outbound::new(Some(&d), "./cal", "calendar");
        let ical = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let (t, data) = o.prepare("1", "text/calendar", ical.to_vec());
        assert_eq!(t, "text/x-vcalendar");
        assert!(String::from_utf8(data).unwrap().contains("VERSION:1.0\r\n"));
    }

    #[test]
    fn without_devinf_a_matching_store_or_a_conversion_items_go_as_stored() {
        let mut none = Outbound::new(None, "./contacts", "contacts");
        assert_eq!(
            none.prepare("1", "text/vcard", CARD30.to_vec()).0,
            "text/vcard"
        );
        let d = devinf("./other", ("text/x-vcard", "2.1"), &[]);
        let mut other = Outbound::new(Some(&d), "./contacts", "contacts");
        assert_eq!(
            other.prepare("1", "text/vcard", CARD30.to_vec()).0,
            "text/vcard"
        );
        let d = devinf("./files", ("image/png", ""), &[]);
        let mut files = Outbound::new(Some(&d), "./files", "files");
        assert_eq!(
            files.prepare("1", "image/jpeg", vec![1, 2]),
            ("image/jpeg".to_string(), vec![1, 2])
        );
        // A conversion that fails (no vCard in the item) sends it as stored.
        let d = devinf("./contacts", ("text/x-vcard", "2.1"), &[]);
        let mut bad = Outbound::new(Some(&d), "./contacts", "contacts");
        assert_eq!(
            bad.prepare("1", "text/vcard", b"junk".to_vec()),
            ("text/vcard".to_string(), b"junk".to_vec())
        );
    }
}

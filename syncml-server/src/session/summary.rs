//! Titles first (specification para. 0094): a datastore downloads only the summary of
//! each item (its "title or index") and fetches the body of an item when it is accessed.
//!
//! Both halves are plain OMA DS 1.2 commands; the server remembers nothing beyond the
//! session (the full item stays in the store, the request lives in the session's
//! [`DsState::summary`](super::state::DsState::summary)).
//!
//! **Asking for summaries.** The client's sync `Alert` carries a field-level filter
//! (FLT-02, FLT-09) in its `Item/Target`:
//!
//! ```xml
//! <Target><LocURI>contacts</LocURI>
//!   <Filter>
//!     <Meta><Type xmlns='syncml:metinf'>text/x-vcard</Type></Meta>
//!     <Field><Item>
//!       <Meta><Type xmlns='syncml:metinf'>application/vnd.syncml-devinf+xml</Type></Meta>
//!       <Data>&lt;Property>&lt;PropName>N&lt;/PropName>&lt;/Property>
//!             &lt;Property>&lt;PropName>FN&lt;/PropName>&lt;/Property></Data>
//!     </Item></Field>
//!   </Filter>
//! </Target>
//! ```
//!
//! The `Property` elements may be escaped text, CDATA or embedded markup. A `Filter`
//! without `Field` changes nothing (FLT-03); a `FilterType` other than `EXCLUSIVE` or
//! `INCLUSIVE` is refused with 406 (FLT-04). `Record` filters are not implemented (and,
//! as before, ignored).
//!
//! **What the server sends.** In that session, every `Add` and `Replace` of package 4 for
//! that datastore carries the item reduced to the named properties: for vCard, vCalendar,
//! iCalendar and vNote the `BEGIN`, `END` and `VERSION` lines are always kept, so the nesting
//! of components (`VCALENDAR` / `VEVENT` / `VALARM`) stays intact, and every other
//! property (with its folded continuation lines) is kept only when its name, without a
//! group prefix (`item1.TEL` is `TEL`), is among those asked, case-insensitively; for
//! `text/plain` (notes) the summary is the first line, whatever was asked. A reduced item
//! is marked in its item `Meta` with one `EMI` `x-simsync-summary:<full size in bytes>`
//! ([`SUMMARY_EMI_PREFIX`]). Items of other types, items that are not UTF-8 and items the
//! reduction would not shorten are sent whole and unmarked.
//!
//! **Fetching a body.** A `Get` whose `Item/Target/LocURI` is
//! `<datastore URI>?luid=<LUID>` (everything after `?luid=` is the client's LUID,
//! verbatim; the datastore URI is any the `Alert` would accept: `contacts`,
//! `./addressbook`...) is answered, in any message of any authenticated session, with
//! Status 200 and a `Results` (`Meta/Type` = the item's type, `SourceRef` and
//! `Item/Source/LocURI` = the requested URI, `Data` = the full item). The LUID is
//! resolved through the map of the session's own subscriber and terminal only: a LUID
//! this terminal never mapped, a deleted item, an unknown datastore or a datastore
//! outside the terminal's classes gives 404 and no `Results`, so nothing of another
//! subscriber or terminal can be read.

use super::{data_item, Reply};
use crate::datastores;
use crate::store::{DatastoreKey, StoreError, SyncKey, Terminal, Tx};
use syncml_core::model::{Command, Data, Filter, GetPut, Item, Meta, Results};
use syncml_core::tree::{Element, Node};
use syncml_core::{Encoding, StatusCode};
use tracing::{debug, info};

pub use syncml_core::titles::{body_uri, LUID_QUERY, SUMMARY_EMI_PREFIX};

/// The summary properties a sync Alert's item asks for, if it carries a field filter.
///
/// `Ok(None)`: no filter, or a filter without `Field` (FLT-03). `Err(406)`: a
/// `FilterType` we do not know (FLT-04).
pub(super) fn requested(item: &Item) -> Result<Option<Vec<String>>, StatusCode> {
    let Some(filter) = item.target.as_ref().and_then(|t| t.filter.as_deref()) else {
        return Ok(None);
    };
    if let Some(t) = filter.filter_type.as_deref() {
        let t = t.trim();
        if !t.eq_ignore_ascii_case("EXCLUSIVE") && !t.eq_ignore_ascii_case("INCLUSIVE") {
            return Err(StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED);
        }
    }
    Ok(field_properties(filter))
}

/// The `PropName`s of the `Property` elements in a filter's `Field` item.
fn field_properties(filter: &Filter) -> Option<Vec<String>> {
    let data = filter.field.as_ref()?.data.as_ref()?;
    let mut out = Vec::new();
    match data {
        Data::Markup(els) => {
            for e in els {
                collect_prop_names(e, &mut out);
            }
        }
        other => {
            let text = String::from_utf8_lossy(other.as_bytes()?).into_owned();
            // The properties are an XML fragment (several roots): parse it under a root.
            let doc = format!("<Field>{text}</Field>");
            if let Ok(d) = syncml_core::xml::decode_document(doc.as_bytes()) {
                collect_prop_names(&d.root, &mut out);
            }
        }
    }
    Some(out)
}

fn collect_prop_names(el: &Element, out: &mut Vec<String>) {
    if el.name == "PropName" {
        if let Some(t) = el.text() {
            let t = t.trim();
            if !t.is_empty() && !out.iter().any(|p| p.eq_ignore_ascii_case(t)) {
                out.push(t.to_string());
            }
        }
        return;
    }
    for c in &el.children {
        if let Node::Element(e) = c {
            collect_prop_names(e, out);
        }
    }
}

/// The summary of `data` (of MIME type `content_type`) with the properties `props`, or
/// `None` when the item is sent whole (another type, not UTF-8, nothing to drop).
pub fn reduce(data: &[u8], content_type: &str, props: &[String]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(data).ok()?;
    let ct = content_type.trim().to_ascii_lowercase();
    let out = match ct.as_str() {
        "text/x-vcard" | "text/vcard" | "text/x-vcalendar" | "text/calendar" | "text/x-vnote" => {
            reduce_directory(text, props)
        }
        "text/plain" => text.split_inclusive('\n').next().unwrap_or("").to_string(),
        _ => return None,
    };
    (out.len() < data.len()).then(|| out.into_bytes())
}

/// Keeps `BEGIN`, `END`, `VERSION` and the properties named in `props` (with their
/// continuation lines) of a vCard / vCalendar / iCalendar text.
fn reduce_directory(text: &str, props: &[String]) -> String {
    let mut out = String::with_capacity(text.len() / 2);
    let mut keep = false;
    for line in text.split_inclusive('\n') {
        if line.starts_with(' ') || line.starts_with('\t') {
            // A folded continuation belongs to the property before it.
            if keep {
                out.push_str(line);
            }
            continue;
        }
        let name_end = line.find([':', ';']).unwrap_or(line.len());
        let name = line[..name_end].trim();
        let name = name.rsplit('.').next().unwrap_or(name);
        keep = ["BEGIN", "END", "VERSION"]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(name))
            || props.iter().any(|p| p.eq_ignore_ascii_case(name));
        if keep {
            out.push_str(line);
        }
    }
    out
}

/// Reduces the items of package-4 `Add`/`Replace` commands to summaries with `props`
/// and marks them ([`SUMMARY_EMI_PREFIX`]). Other commands are left alone.
pub(super) fn summarise(cmds: &mut [Command], props: &[String]) {
    for cmd in cmds.iter_mut() {
        let (meta, items) = match cmd {
            Command::Add(c) | Command::Replace(c) => (c.meta.as_ref(), &mut c.items),
            _ => continue,
        };
        let ctype = meta.and_then(|m| m.r#type.clone()).unwrap_or_default();
        for item in items.iter_mut() {
            summarise_item(item, &ctype, props);
        }
    }
}

fn summarise_item(item: &mut Item, ctype: &str, props: &[String]) {
    let b64 = item
        .meta
        .as_ref()
        .and_then(|m| m.format.as_deref())
        .is_some_and(|f| f.eq_ignore_ascii_case("b64"));
    if b64 {
        return; // not text: sent whole
    }
    let Some(full) = item.data.as_ref().and_then(Data::as_bytes) else {
        return;
    };
    let full_len = full.len();
    let Some(summary) = reduce(full, ctype, props) else {
        return;
    };
    item.data = Some(Data::Binary(summary));
    item.meta
        .get_or_insert_with(Meta::default)
        .emi
        .push(syncml_core::titles::summary_emi(full_len));
}

/// True for a `Get` of an item body (`<datastore>?luid=<LUID>`), as opposed to DevInf.
pub(super) fn is_body_get(g: &GetPut) -> bool {
    g.items
        .first()
        .and_then(|i| i.target.as_ref())
        .is_some_and(|t| t.loc_uri.contains(LUID_QUERY))
}

/// Answers a body `Get` (see the module docs): Status 200 and `Results` with the full
/// item, or 404.
pub(super) fn answer_get(
    tx: &mut dyn Tx,
    terminal: &Terminal,
    enc: Encoding,
    msg_ref: &str,
    cmd: &Command,
    g: &GetPut,
    reply: &mut Reply,
) -> Result<(), StoreError> {
    let uri = g
        .items
        .first()
        .and_then(|i| i.target.as_ref())
        .map(|t| t.loc_uri.trim().to_string())
        .unwrap_or_default();
    let found = match body(tx, terminal, &uri)? {
        Some(found) => found,
        None => {
            info!(terminal = %terminal.terminal_id, uri = %uri, "body Get: no such item");
            reply.status(msg_ref, cmd, StatusCode::NOT_FOUND);
            return Ok(());
        }
    };
    debug!(terminal = %terminal.terminal_id, uri = %uri, bytes = found.data.len(), "body Get");
    reply.status(msg_ref, cmd, StatusCode::OK);
    let id = reply.id();
    reply.commands.push(Command::Results(Results {
        cmd_id: id,
        msg_ref: msg_ref.to_string(),
        cmd_ref: g.cmd_id.clone(),
        meta: Some(Meta::of_type(found.content_type)),
        target_ref: None,
        source_ref: Some(uri.clone()),
        items: vec![data_item(None, Some(uri), enc, found.data)],
    }));
    Ok(())
}

/// The live item a body `Get` target names, looked up in this terminal's map only.
fn body(
    tx: &mut dyn Tx,
    terminal: &Terminal,
    uri: &str,
) -> Result<Option<crate::store::Item>, StoreError> {
    let Some((ds_uri, luid)) = uri.split_once(LUID_QUERY) else {
        return Ok(None);
    };
    let Some(def) = datastores::resolve(ds_uri) else {
        return Ok(None);
    };
    if !super::may_sync(terminal, def.name) || luid.is_empty() {
        return Ok(None);
    }
    let (sub, term) = (&terminal.subscriber_id, &terminal.terminal_id);
    let Some(guid) = tx.map_guid_for_luid(SyncKey::new(sub, term, def.name), luid)? else {
        return Ok(None);
    };
    Ok(tx
        .item_get(DatastoreKey::new(sub, def.name), &guid)?
        .filter(|i| !i.deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARD: &str = "BEGIN:VCARD\r\nVERSION:2.1\r\nN:Doe;John\r\nFN:John Doe\r\nTEL;CELL:+4912345\r\nitem1.EMAIL:j@example.org\r\nNOTE:a long note\r\n that is folded\r\nEND:VCARD\r\n";

    fn props(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_vcard_summary_keeps_only_the_asked_properties_and_its_frame() {
        let s = reduce(CARD.as_bytes(), "text/x-vcard", &props(&["n", "FN"])).unwrap();
        assert_eq!(
            String::from_utf8(s).unwrap(),
            "BEGIN:VCARD\r\nVERSION:2.1\r\nN:Doe;John\r\nFN:John Doe\r\nEND:VCARD\r\n"
        );
    }

    #[test]
    fn grouped_and_folded_properties_are_kept_whole_or_dropped_whole() {
        let s = reduce(CARD.as_bytes(), "text/vcard", &props(&["EMAIL", "NOTE"])).unwrap();
        assert_eq!(
            String::from_utf8(s).unwrap(),
            "BEGIN:VCARD\r\nVERSION:2.1\r\nitem1.EMAIL:j@example.org\r\nNOTE:a long note\r\n that is folded\r\nEND:VCARD\r\n"
        );
    }

    #[test]
    fn an_icalendar_summary_keeps_the_nested_components() {
        let ics = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\nBEGIN:VEVENT\nUID:1\nSUMMARY:Lunch\nDTSTART:20261127T120000Z\nDTEND:20261127T130000Z\nDESCRIPTION:long\nBEGIN:VALARM\nACTION:DISPLAY\nTRIGGER:-PT5M\nEND:VALARM\nEND:VEVENT\nEND:VCALENDAR\n";
        let s = reduce(
            ics.as_bytes(),
            "text/calendar",
            &props(&["SUMMARY", "DTSTART", "DTEND", "UID"]),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(s).unwrap(),
            "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:1\nSUMMARY:Lunch\nDTSTART:20261127T120000Z\nDTEND:20261127T130000Z\nBEGIN:VALARM\nEND:VALARM\nEND:VEVENT\nEND:VCALENDAR\n"
        );
    }

    #[test]
    fn a_vnote_summary_keeps_the_asked_properties() {
        let note = "BEGIN:VNOTE\r\nVERSION:1.1\r\nSUMMARY:Shopping\r\nBODY:milk, eggs, and much more\r\nEND:VNOTE\r\n";
        let s = reduce(note.as_bytes(), "text/x-vnote", &props(&["SUMMARY"])).unwrap();
        assert_eq!(
            String::from_utf8(s).unwrap(),
            "BEGIN:VNOTE\r\nVERSION:1.1\r\nSUMMARY:Shopping\r\nEND:VNOTE\r\n"
        );
    }

    #[test]
    fn a_note_summary_is_its_first_line() {
        let s = reduce(b"Shopping\nmilk\neggs\n", "text/plain", &[]).unwrap();
        assert_eq!(s, b"Shopping\n");
    }

    #[test]
    fn items_the_summary_would_not_shorten_or_cannot_read_are_sent_whole() {
        let short = "BEGIN:VCARD\r\nVERSION:2.1\r\nN:A\r\nEND:VCARD\r\n";
        assert_eq!(
            reduce(short.as_bytes(), "text/x-vcard", &props(&["N"])),
            None
        );
        assert_eq!(reduce(b"\xff\xfe", "text/x-vcard", &props(&["N"])), None);
        assert_eq!(reduce(b"abc\ndef", "application/octet-stream", &[]), None);
    }

    #[test]
    fn summarised_items_carry_the_emi_with_the_full_size() {
        let mut cmds = vec![super::super::add_cmd(
            "1".into(),
            Encoding::Xml,
            "g1",
            "text/x-vcard",
            CARD.as_bytes().to_vec(),
        )];
        summarise(&mut cmds, &props(&["FN"]));
        let item = &cmds[0].items()[0];
        assert_eq!(
            item.meta.as_ref().unwrap().emi,
            [format!("x-simsync-summary:{}", CARD.len())]
        );
        assert_eq!(
            item.data.as_ref().unwrap().as_bytes().unwrap(),
            b"BEGIN:VCARD\r\nVERSION:2.1\r\nFN:John Doe\r\nEND:VCARD\r\n"
        );
        assert_eq!(
            item.source,
            Some(syncml_core::model::Source::new("g1")),
            "the GUID is unchanged"
        );
    }

    fn alert_item(filter: Filter) -> Item {
        let mut t = syncml_core::model::Target::new("contacts");
        t.filter = Some(Box::new(filter));
        Item {
            target: Some(t),
            ..Item::default()
        }
    }

    #[test]
    fn field_properties_are_read_from_escaped_text_and_from_markup() {
        let f = syncml_core::titles::field_filter(
            "text/x-vcard",
            &["N", "FN"],
            "application/vnd.syncml-devinf+xml",
        );
        assert_eq!(requested(&alert_item(f)), Ok(Some(props(&["N", "FN"]))));
        let xml = b"<Field><Item><Data><Property><PropName>TEL</PropName></Property></Data></Item></Field>";
        let el = syncml_core::xml::decode_document(xml).unwrap().root;
        let item = Item::from_element(el.child("Item").unwrap().clone()).unwrap();
        let f = Filter {
            meta: Meta::of_type("text/x-vcard"),
            field: Some(item),
            ..Filter::default()
        };
        assert_eq!(requested(&alert_item(f)), Ok(Some(props(&["TEL"]))));
    }

    #[test]
    fn a_filter_without_field_changes_nothing_and_an_unknown_filter_type_is_406() {
        let f = Filter {
            meta: Meta::of_type("text/x-vcard"),
            ..Filter::default()
        };
        assert_eq!(requested(&alert_item(f.clone())), Ok(None));
        let bad = Filter {
            filter_type: Some("FUZZY".into()),
            ..f
        };
        assert_eq!(
            requested(&alert_item(bad)),
            Err(StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED)
        );
    }
}

/// The engine end to end (sans I/O, one SQLite store): Alert with a field filter,
/// package 4, Map, then body `Get`s in a later session.
#[cfg(test)]
mod engine_tests {
    use super::*;
    use crate::session::tests::{alert, client_sync, codes, Fixture};
    use crate::store::{MapEntry, NewItem, StoreExt, Timestamp};
    use syncml_core::model::{MapItem, SyncMl, Target};

    const DEVINF: &str = "application/vnd.syncml-devinf+xml";

    fn titles_alert(next: &str) -> Command {
        let mut a = alert(201, None, next);
        if let Command::Alert(al) = &mut a {
            if let Some(t) = al.items[0].target.as_mut() {
                t.filter = Some(Box::new(syncml_core::titles::field_filter(
                    "text/vcard",
                    &["FN"],
                    DEVINF,
                )));
            }
        }
        a
    }

    fn server_items(m: &SyncMl) -> Vec<Item> {
        m.body
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::Sync(s) => Some(s.commands.iter().flat_map(|c| c.items().to_vec())),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn map(entries: &[(String, String)]) -> Command {
        Command::Map(syncml_core::model::Map {
            cmd_id: "9".into(),
            target: Target::new("addressbook"),
            source: syncml_core::model::Source::new("./contacts"),
            cred: None,
            meta: None,
            map_items: entries
                .iter()
                .map(|(g, l)| MapItem::new(g.clone(), l.clone()))
                .collect(),
        })
    }

    fn body_get(uri: &str) -> Command {
        Command::Get(GetPut {
            cmd_id: "1".into(),
            items: vec![Item {
                target: Some(Target::new(uri)),
                ..Item::default()
            }],
            ..GetPut::default()
        })
    }

    fn results(m: &SyncMl) -> Vec<&Results> {
        m.body
            .commands
            .iter()
            .filter_map(|c| match c {
                Command::Results(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Runs a titles-first slow sync of two seeded contacts, mapping them to `L0`, `L1`;
    /// returns package 4.
    fn titles_first_sync(f: &mut Fixture) -> SyncMl {
        f.seed_items(2);
        f.new_session();
        f.send(vec![titles_alert("a1")], true);
        let pkg4 = f.send(vec![client_sync(vec![])], true);
        let entries: Vec<(String, String)> = server_items(&pkg4)
            .iter()
            .enumerate()
            .map(|(i, it)| {
                let guid = it.source.as_ref().map(|s| s.loc_uri.clone());
                (guid.unwrap_or_default(), format!("L{i}"))
            })
            .collect();
        let done = f.send(vec![map(&entries)], true);
        assert_eq!(codes(&done, "Map"), [200]);
        pkg4
    }

    #[test]
    fn a_field_filter_in_the_alert_makes_package_4_send_marked_summaries() {
        let mut f = Fixture::new();
        let pkg4 = titles_first_sync(&mut f);
        let items = server_items(&pkg4);
        assert_eq!(items.len(), 2);
        for (i, it) in items.iter().enumerate() {
            let full = format!(
                "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:P{i}\r\nNOTE:{}\r\nEND:VCARD\r\n",
                "x".repeat(600)
            );
            assert_eq!(
                it.data.as_ref().and_then(Data::as_bytes).unwrap(),
                format!("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:P{i}\r\nEND:VCARD\r\n").as_bytes()
            );
            assert_eq!(
                it.meta.as_ref().map(|m| m.emi.clone()).unwrap_or_default(),
                [format!("{SUMMARY_EMI_PREFIX}{}", full.len())]
            );
        }
    }

    #[test]
    fn without_a_filter_package_4_sends_full_unmarked_items() {
        let mut f = Fixture::new();
        f.seed_items(1);
        f.new_session();
        f.send(vec![alert(201, None, "a1")], true);
        let pkg4 = f.send(vec![client_sync(vec![])], true);
        let items = server_items(&pkg4);
        assert_eq!(items.len(), 1);
        assert!(items[0].meta.as_ref().is_none_or(|m| m.emi.is_empty()));
        let data = items[0].data.as_ref().and_then(Data::as_bytes).unwrap();
        assert!(data.len() > 600, "the whole item: {} bytes", data.len());
    }

    #[test]
    fn a_body_get_answers_the_full_item_of_the_terminals_luid() {
        let mut f = Fixture::new();
        titles_first_sync(&mut f);
        f.new_session();
        let r = f.send(vec![body_get("addressbook?luid=L1")], true);
        assert_eq!(codes(&r, "Get"), [200]);
        let res = results(&r);
        assert_eq!(res.len(), 1);
        assert_eq!(res[0].source_ref.as_deref(), Some("addressbook?luid=L1"));
        assert_eq!(
            res[0].meta.as_ref().and_then(|m| m.r#type.as_deref()),
            Some("text/vcard")
        );
        let body = res[0].items[0]
            .data
            .as_ref()
            .and_then(Data::as_bytes)
            .unwrap();
        assert_eq!(
            body,
            format!(
                "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:P1\r\nNOTE:{}\r\nEND:VCARD\r\n",
                "x".repeat(600)
            )
            .as_bytes()
        );
    }

    #[test]
    fn a_body_get_within_a_two_way_session_is_answered_next_to_package_4() {
        let mut f = Fixture::new();
        titles_first_sync(&mut f);
        f.new_session();
        let pkg2 = f.send(vec![alert(200, Some("a1"), "a2")], true);
        assert_eq!(codes(&pkg2, "Alert"), [200]);
        let pkg4 = f.send(
            vec![client_sync(vec![]), body_get("addressbook?luid=L0")],
            true,
        );
        assert_eq!(codes(&pkg4, "Get"), [200]);
        let res = results(&pkg4);
        assert_eq!(res.len(), 1);
        let body = res[0].items[0]
            .data
            .as_ref()
            .and_then(Data::as_bytes)
            .unwrap();
        assert!(body.starts_with(b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:P0\r\nNOTE:xxx"));
        assert!(
            pkg4.body
                .commands
                .iter()
                .any(|c| matches!(c, Command::Sync(_))),
            "package 4 goes on"
        );
    }

    #[test]
    fn a_body_get_of_an_unknown_luid_or_datastore_is_404_without_results() {
        let mut f = Fixture::new();
        titles_first_sync(&mut f);
        f.new_session();
        let r = f.send(
            vec![body_get("addressbook?luid=L9"), body_get("nowhere?luid=L0")],
            true,
        );
        assert_eq!(codes(&r, "Get"), [404, 404]);
        assert!(results(&r).is_empty());
    }

    #[test]
    fn a_body_get_never_reads_another_subscribers_map_or_items() {
        let mut f = Fixture::new();
        titles_first_sync(&mut f);
        // Another subscriber's terminal has mapped its own item to LUIDs `X7` and `L1`
        // (the LUID our terminal uses for one of its items).
        f.store
            .transaction(|tx| {
                let t = Timestamp::from_unix_secs(3);
                tx.subscriber_create(
                    &crate::store::NewSubscriber {
                        id: "other".into(),
                        display_name: None,
                        security_level: 0,
                    },
                    t,
                )?;
                tx.terminal_register(
                    &crate::store::NewTerminal {
                        terminal_id: "dev9".into(),
                        subscriber_id: "other".into(),
                        md5_verifier: None,
                        basic_verifier: None,
                        classes: vec![],
                        registered_by: crate::store::RegisteredBy::Operator,
                    },
                    t,
                )?;
                let put = tx.items_put(
                    DatastoreKey::new("other", "contacts"),
                    None,
                    &[NewItem {
                        guid: None,
                        content_type: "text/vcard".into(),
                        data: b"BEGIN:VCARD\r\nFN:Secret\r\nEND:VCARD\r\n".to_vec(),
                    }],
                    t,
                )?;
                let guid = put[0].guid.clone();
                tx.map_put(
                    SyncKey::new("other", "dev9", "contacts"),
                    &[MapEntry::new("X7", &guid), MapEntry::new("L1", &guid)],
                )
            })
            .expect("other subscriber");
        f.new_session();
        let r = f.send(
            vec![body_get("contacts?luid=X7"), body_get("contacts?luid=L1")],
            true,
        );
        assert_eq!(codes(&r, "Get"), [404, 200]);
        let res = results(&r);
        assert_eq!(res.len(), 1);
        let body = res[0].items[0]
            .data
            .as_ref()
            .and_then(Data::as_bytes)
            .unwrap();
        assert!(
            body.starts_with(b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:P1\r\n"),
            "our own item, not the other subscriber's"
        );
    }
}

//! Titles first (specification para. 0094): a data store downloads only the summary
//! of each item and fetches an item's body when it is accessed.
//!
//! Wire format (the server side is `syncml_server::session::summary`):
//!
//! - **Asking.** For a store configured with [`TitlesFirst`] (in
//!   [`SessionConfig::titles_first`](crate::SessionConfig::titles_first) /
//!   [`EngineConfig::titles_first`](crate::EngineConfig::titles_first)) whose
//!   [`DataStore::supports_summaries`](crate::DataStore::supports_summaries) is true, the
//!   sync `Alert`'s `Item/Target` carries an OMA DS 1.2 field filter: `Filter/Meta/Type`
//!   = the store's content type, `Filter/Field/Item/Meta/Type` = the DevInf MIME type,
//!   `Filter/Field/Item/Data` = escaped `<Property><PropName>N</PropName></Property>...`
//!   (FLT-02, FLT-09); no `Record`, no `FilterType`.
//! - **Receiving.** The server's `Add`/`Replace` items of that session are then
//!   summaries: vCard / vCalendar / iCalendar / vNote reduced to the asked properties
//!   plus `BEGIN`/`END`/`VERSION`, plain-text notes to their first line; each carries, in its item
//!   `Meta`, the `EMI` `x-simsync-summary:<full size in bytes>` ([`SUMMARY_EMI_PREFIX`]).
//!   Such an item is handed to [`DataStore::apply_summary`](crate::DataStore::apply_summary);
//!   an item without the mark is a full item ([`DataStore::apply`](crate::DataStore::apply)).
//! - **Fetching.** [`Engine::fetch_body`](crate::Engine::fetch_body) runs a session of
//!   its own (after the same gates as a sync): package 1 is the `SyncHdr` (credentials)
//!   and one `Get` whose `Item/Target/LocURI` is `<server datastore URI>?luid=<LUID>`
//!   ([`body_uri`]), `Final`; no `Alert`, no DevInf. The server answers Status 200 and a
//!   `Results` carrying the full item (stored with
//!   [`DataStore::store_body`](crate::DataStore::store_body)), or 404. Nothing else
//!   happens in that session: no anchor moves, no change is exchanged.
//! - **Safety.** A summary must never overwrite the full item on the server: a
//!   `Replace` of an item the store holds only as a summary is never sent (it stays
//!   pending, with [`Warning::SummaryNotUploaded`](crate::Warning::SummaryNotUploaded));
//!   a slow sync drops summary-only items locally (unlogged) instead of uploading them,
//!   and they come back from the server; a refresh from client is refused while the store
//!   holds summaries ([`SessionError::SummariesHeld`](crate::SessionError::SummariesHeld)),
//!   since the server would keep only what the client sends. [`crate::mem::MemoryStore`]
//!   also refuses local edits of summary-only items.

use syncml_core::model::{Command, Filter, GetPut, Item, Results, Target};
use syncml_core::{Encoding, StatusCode};

pub use syncml_core::titles::{body_uri, summary_size, LUID_QUERY, SUMMARY_EMI_PREFIX};

/// Titles first for one data store: the properties its summaries keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitlesFirst {
    /// The `PropName`s asked for (vCard `N`, iCalendar `SUMMARY`...). Ignored for
    /// `text/plain` notes, whose summary is their first line.
    pub properties: Vec<String>,
}

impl TitlesFirst {
    /// Summaries keeping exactly `properties`.
    pub fn with_properties<I, S>(properties: I) -> TitlesFirst
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        TitlesFirst {
            properties: properties.into_iter().map(Into::into).collect(),
        }
    }

    /// The usual summary of a content type: `N`, `FN`, `TEL` for contacts; `SUMMARY`,
    /// `DTSTART`, `DTEND`, `UID` for calendars (vCalendar and iCalendar); `SUMMARY` for
    /// vNotes; none for plain-text notes (their summary is the first line) and anything
    /// else.
    pub fn for_content_type(content_type: &str) -> TitlesFirst {
        let ct = content_type.trim().to_ascii_lowercase();
        let props: &[&str] = match ct.as_str() {
            "text/x-vcard" | "text/vcard" => &["N", "FN", "TEL"],
            "text/x-vcalendar" | "text/calendar" => &["SUMMARY", "DTSTART", "DTEND", "UID"],
            "text/x-vnote" => &["SUMMARY"],
            _ => &[],
        };
        TitlesFirst::with_properties(props.iter().copied())
    }

    /// The field filter for a sync Alert's `Item/Target` of a `content_type` store.
    pub fn filter(&self, content_type: &str, encoding: Encoding) -> Filter {
        syncml_core::titles::field_filter(
            content_type,
            &self.properties,
            encoding.devinf_mime_type(),
        )
    }
}

/// An item's full body, as a body fetch returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// The item's content.
    pub data: Vec<u8>,
    /// Its MIME type, when the server named one.
    pub content_type: Option<String>,
}

/// A body fetch in progress: the `Get` sent and what came back.
#[derive(Debug, Clone)]
pub(crate) struct Fetch {
    uri: String,
    status: Option<StatusCode>,
    body: Option<Body>,
}

impl Fetch {
    pub(crate) fn new(uri: String) -> Fetch {
        Fetch {
            uri,
            status: None,
            body: None,
        }
    }

    /// The `Get` of package 1.
    pub(crate) fn command(&self) -> Command {
        Command::Get(GetPut {
            items: vec![Item {
                target: Some(Target::new(self.uri.clone())),
                ..Item::default()
            }],
            ..GetPut::default()
        })
    }

    /// The server's status for our `Get`.
    pub(crate) fn on_status(&mut self, code: StatusCode) {
        self.status = Some(code);
    }

    /// Takes the body from `Results` that answer our `Get`.
    pub(crate) fn on_results(&mut self, r: &Results) {
        let Some(item) = r.items.first() else { return };
        let named = r
            .source_ref
            .as_deref()
            .or(item.source.as_ref().map(|s| s.loc_uri.as_str()))
            .map(str::trim);
        if named.is_some_and(|n| n != self.uri) {
            return;
        }
        if let Some(data) = crate::session::item_bytes(item, r.meta.as_ref()) {
            let content_type = crate::session::item_type(item, r.meta.as_ref());
            self.body = Some(Body { data, content_type });
        }
    }

    /// The outcome: the body and its type, `None` for 404; an error status otherwise.
    pub(crate) fn outcome(&mut self) -> Result<Option<Body>, StatusCode> {
        match (self.body.take(), self.status) {
            (Some(b), Some(s)) if s.is_success() => Ok(Some(b)),
            (_, Some(StatusCode::NOT_FOUND)) => Ok(None),
            (_, Some(s)) if !s.is_success() => Err(s),
            // A success without Results, or no status at all.
            _ => Err(StatusCode::COMMAND_FAILED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncml_core::model::{Data, Meta};

    #[test]
    fn the_summary_mark_carries_the_full_size() {
        let item = Item {
            meta: Some(Meta {
                emi: vec!["x-other".into(), "x-simsync-summary:1234".into()],
                ..Meta::default()
            }),
            ..Item::default()
        };
        assert_eq!(summary_size(&item), Some(1234));
        assert_eq!(summary_size(&Item::default()), None);
    }

    #[test]
    fn default_summaries_follow_the_content_type() {
        assert_eq!(
            TitlesFirst::for_content_type("text/x-vcard").properties,
            ["N", "FN", "TEL"]
        );
        assert_eq!(
            TitlesFirst::for_content_type("text/calendar").properties,
            ["SUMMARY", "DTSTART", "DTEND", "UID"]
        );
        assert_eq!(
            TitlesFirst::for_content_type("text/x-vnote").properties,
            ["SUMMARY"]
        );
        assert!(TitlesFirst::for_content_type("text/plain")
            .properties
            .is_empty());
    }

    #[test]
    fn the_filter_names_each_property_in_the_field_item() {
        let f = TitlesFirst::with_properties(["N", "FN"]).filter("text/x-vcard", Encoding::Xml);
        assert_eq!(f.meta.r#type.as_deref(), Some("text/x-vcard"));
        let field = f.field.expect("field");
        assert_eq!(
            field.meta.and_then(|m| m.r#type).as_deref(),
            Some("application/vnd.syncml-devinf+xml")
        );
        assert_eq!(
            field.data,
            Some(Data::Text(
                "<Property><PropName>N</PropName></Property><Property><PropName>FN</PropName></Property>".into()
            ))
        );
        assert!(f.record.is_none());
    }

    #[test]
    fn a_body_fetch_without_results_is_an_error_and_404_is_no_item() {
        let mut f = Fetch::new(body_uri("contacts", "7"));
        f.on_status(StatusCode::OK);
        assert_eq!(f.outcome(), Err(StatusCode::COMMAND_FAILED));
        f.on_status(StatusCode::NOT_FOUND);
        assert_eq!(f.outcome(), Ok(None));
    }
}

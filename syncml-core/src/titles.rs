//! The wire format of "titles first" (specification para. 0094), shared by the server
//! (`syncml_server::session::summary`) and the client (`syncml_client::summary`):
//!
//! - the client asks for summaries with an OMA DS 1.2 field filter in its sync `Alert`'s
//!   `Item/Target` ([`field_filter`]);
//! - the server marks each reduced item with one `EMI` in the item `Meta`,
//!   `x-simsync-summary:<full size in bytes>` ([`summary_emi`], read back with
//!   [`summary_size`]);
//! - the client fetches one body with a `Get` of `<datastore URI>?luid=<LUID>`
//!   ([`body_uri`]).
//!
//! ```
//! use syncml_core::titles;
//! use syncml_core::model::{Item, Meta};
//!
//! let f = titles::field_filter("text/vcard", &["N", "FN"], "application/vnd.syncml-devinf+xml");
//! assert!(f.field.is_some());
//! let item = Item {
//!     meta: Some(Meta { emi: vec![titles::summary_emi(4096)], ..Meta::default() }),
//!     ..Item::default()
//! };
//! assert_eq!(titles::summary_size(&item), Some(4096));
//! assert_eq!(titles::body_uri("contacts", "17"), "contacts?luid=17");
//! ```

use crate::model::{Data, Filter, Item, Meta};

/// The `EMI` prefix that marks an item as a summary; the full item's size follows.
pub const SUMMARY_EMI_PREFIX: &str = "x-simsync-summary:";

/// The query of a body `Get`'s target: `<datastore URI>?luid=<LUID>`.
pub const LUID_QUERY: &str = "?luid=";

/// The field filter asking for summaries of `content_type` items with the properties
/// `props` (`Filter/Field/Item/Meta/Type` is `devinf_type`, the DevInf MIME type of the
/// session's encoding); no `Record`, no `FilterType`.
pub fn field_filter<S: AsRef<str>>(content_type: &str, props: &[S], devinf_type: &str) -> Filter {
    let mut text = String::new();
    for p in props {
        text.push_str("<Property><PropName>");
        for c in p.as_ref().chars() {
            match c {
                '&' => text.push_str("&amp;"),
                '<' => text.push_str("&lt;"),
                '>' => text.push_str("&gt;"),
                c => text.push(c),
            }
        }
        text.push_str("</PropName></Property>");
    }
    Filter {
        meta: Meta::of_type(content_type),
        field: Some(Item {
            meta: Some(Meta::of_type(devinf_type)),
            data: Some(Data::Text(text)),
            ..Item::default()
        }),
        record: None,
        filter_type: None,
    }
}

/// The `EMI` that marks a summary of an item of `full_size` bytes.
pub fn summary_emi(full_size: usize) -> String {
    format!("{SUMMARY_EMI_PREFIX}{full_size}")
}

/// The full size an item marked as a summary declares, if it is one.
pub fn summary_size(item: &Item) -> Option<u64> {
    item.meta.as_ref()?.emi.iter().find_map(|e| {
        e.trim()
            .strip_prefix(SUMMARY_EMI_PREFIX)
            .and_then(|n| n.trim().parse().ok())
    })
}

/// The target of a body `Get` for `luid` in the datastore the client calls `ds_uri`.
pub fn body_uri(ds_uri: &str, luid: &str) -> String {
    format!("{ds_uri}{LUID_QUERY}{luid}")
}

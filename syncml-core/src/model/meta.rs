//! MetInf: the meta information carried in `<Meta>` (header, commands, items, `Cred`,
//! `Chal`, `Filter`) and the `Anchor` an item's `<Data>` can hold (REP-32..REP-37,
//! REP-43).
//!
//! The `<Meta>` element itself belongs to the SyncML vocabulary; its children
//! (`Type`, `Anchor`, `MaxMsgSize`, ...) belong to MetInf (`syncml:metinf`, WBXML code
//! page 1). A `<MetInf>` wrapper inside `<Meta>` (normally omitted) is accepted on input
//! and never written.
//!
//! Input is liberal: children in any order, any namespace, unknown ones skipped,
//! values trimmed. Output is strict: MetInf DTD order
//! `FieldLevel?, Format?, Type?, Mark?, Size?, Anchor?, Version?, NextNonce?,
//! MaxMsgSize?, MaxObjSize?, EMI*, Mem?`.
//!
//! ```
//! use syncml_core::model::{Anchor, Meta};
//! use syncml_core::tree::TreeBuilder;
//!
//! let meta = Meta {
//!     anchor: Some(Anchor { last: Some("234".into()), next: "276".into() }),
//!     max_obj_size: Some(4_000_000),
//!     ..Meta::default()
//! };
//! let mut tree = TreeBuilder::new();
//! meta.write(&mut tree);
//! let el = tree.finish().unwrap();
//! assert_eq!(el.name, "Meta");
//! assert_eq!(Meta::from_element(el).unwrap(), meta);
//! ```

use super::{flag, into_elements, leaf, number, opt_leaf, trimmed, ModelError};
use crate::tree::{Element, Namespace, Sink};

const SML: Namespace = Namespace::SyncMl;
const MI: Namespace = Namespace::MetInf;

/// Meta information (`<Meta>`, content model MetInf): the type and format of data,
/// anchors, nonces, size limits and memory figures.
///
/// Every part is optional; [`Meta::default`] is an empty `<Meta/>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// `<FieldLevel/>`: the `Replace` carrying this meta replaces only some fields
    /// (DS 1.2, REP-37).
    pub field_level: bool,
    /// `<Format>`: encoding of the data (`chr` when absent; `b64`, `bin`, `xml`, ...).
    pub format: Option<String>,
    /// `<Type>`: MIME type of the data (`text/plain` when absent), or an auth scheme
    /// in `Cred`/`Chal` (`syncml:auth-md5`).
    pub r#type: Option<String>,
    /// `<Mark>`: `draft`, `final`, `delete`, `undelete`, `read`, `unread`.
    pub mark: Option<String>,
    /// `<Size>`: byte count of the data object (the whole object for a chunked item).
    pub size: Option<u64>,
    /// `<Anchor>`: sync anchors of a sync `Alert` item.
    pub anchor: Option<Anchor>,
    /// `<Version>`: revision of the data object.
    pub version: Option<String>,
    /// `<NextNonce>`: the nonce for the next MD5 credential (b64 text as on the wire).
    pub next_nonce: Option<String>,
    /// `<MaxMsgSize>`: largest message the sender accepts, in bytes.
    pub max_msg_size: Option<u64>,
    /// `<MaxObjSize>`: largest object the sender accepts, in bytes.
    pub max_obj_size: Option<u64>,
    /// `<EMI>` (repeatable): names of non-standard experimental extensions.
    pub emi: Vec<String>,
    /// `<Mem>`: free memory of the data store.
    pub mem: Option<Mem>,
}

/// Sync anchors (`<Anchor>`, MetInf): `(Last?, Next)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Anchor {
    /// `<Last>`: the anchor of the previous sync (absent on a first sync).
    pub last: Option<String>,
    /// `<Next>`: the anchor of this sync.
    pub next: String,
}

/// Data store memory (`<Mem>`, MetInf): `(SharedMem?, FreeMem, FreeID)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mem {
    /// `<SharedMem/>`: the store shares memory with other stores.
    pub shared_mem: bool,
    /// `<FreeMem>`: free bytes.
    pub free_mem: u64,
    /// `<FreeID>`: free item identifiers.
    pub free_id: u64,
}

impl Meta {
    /// A meta holding only a `Type`.
    pub fn of_type(r#type: impl Into<String>) -> Meta {
        Meta {
            r#type: Some(r#type.into()),
            ..Meta::default()
        }
    }

    /// Reads a `<Meta>` element (any namespace). Its children may come in any order
    /// and may be wrapped in `<MetInf>`; unknown children are skipped; values are
    /// trimmed; a later duplicate replaces an earlier one (`EMI` accumulates).
    pub fn from_element(el: Element) -> Result<Meta, ModelError> {
        let mut m = Meta::default();
        m.read_children(el)?;
        Ok(m)
    }

    fn read_children(&mut self, el: Element) -> Result<(), ModelError> {
        for c in into_elements(el) {
            match c.name.as_ref() {
                "MetInf" => self.read_children(c)?,
                "FieldLevel" => self.field_level = true,
                "Format" => self.format = Some(trimmed(c, "Format")?),
                "Type" => self.r#type = Some(trimmed(c, "Type")?),
                "Mark" => self.mark = Some(trimmed(c, "Mark")?),
                "Size" => self.size = Some(number(&c, "Size")?),
                "Anchor" => self.anchor = Some(Anchor::from_element(c)?),
                "Version" => self.version = Some(trimmed(c, "Version")?),
                "NextNonce" => self.next_nonce = Some(trimmed(c, "NextNonce")?),
                "MaxMsgSize" => self.max_msg_size = Some(number(&c, "MaxMsgSize")?),
                "MaxObjSize" => self.max_obj_size = Some(number(&c, "MaxObjSize")?),
                "EMI" => self.emi.push(trimmed(c, "EMI")?),
                "Mem" => self.mem = Some(Mem::from_element(c)?),
                _ => {}
            }
        }
        Ok(())
    }

    /// True when no part is set (the meta would be written as `<Meta/>`).
    pub fn is_empty(&self) -> bool {
        *self == Meta::default()
    }

    /// Writes `<Meta>` (SyncML namespace) with the MetInf children in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Meta");
        self.write_metinf(s);
        s.end();
    }

    /// Writes only the MetInf children, in DTD order (for a caller that writes the
    /// enclosing element itself).
    pub fn write_metinf<S: Sink + ?Sized>(&self, s: &mut S) {
        flag(s, &MI, "FieldLevel", self.field_level);
        opt_leaf(s, &MI, "Format", self.format.as_deref());
        opt_leaf(s, &MI, "Type", self.r#type.as_deref());
        opt_leaf(s, &MI, "Mark", self.mark.as_deref());
        if let Some(n) = self.size {
            leaf(s, &MI, "Size", &n.to_string());
        }
        if let Some(a) = &self.anchor {
            a.write(s);
        }
        opt_leaf(s, &MI, "Version", self.version.as_deref());
        opt_leaf(s, &MI, "NextNonce", self.next_nonce.as_deref());
        if let Some(n) = self.max_msg_size {
            leaf(s, &MI, "MaxMsgSize", &n.to_string());
        }
        if let Some(n) = self.max_obj_size {
            leaf(s, &MI, "MaxObjSize", &n.to_string());
        }
        for e in &self.emi {
            leaf(s, &MI, "EMI", e);
        }
        if let Some(mem) = &self.mem {
            mem.write(s);
        }
    }
}

impl Anchor {
    /// Reads an `<Anchor>`; `Next` is required, both values are trimmed (REP-42).
    pub fn from_element(el: Element) -> Result<Anchor, ModelError> {
        let mut last = None;
        let mut next = None;
        for c in into_elements(el) {
            match c.name.as_ref() {
                "Last" => last = Some(trimmed(c, "Last")?),
                "Next" => next = Some(trimmed(c, "Next")?),
                _ => {}
            }
        }
        Ok(Anchor {
            last,
            next: next.ok_or(ModelError::Missing {
                parent: "Anchor",
                child: "Next",
            })?,
        })
    }

    /// Writes `<Anchor>` (MetInf namespace): `Last?`, `Next`.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&MI, "Anchor");
        opt_leaf(s, &MI, "Last", self.last.as_deref());
        leaf(s, &MI, "Next", &self.next);
        s.end();
    }
}

impl Mem {
    /// Reads a `<Mem>`; `FreeMem` and `FreeID` are required.
    pub fn from_element(el: Element) -> Result<Mem, ModelError> {
        let mut shared_mem = false;
        let mut free_mem = None;
        let mut free_id = None;
        for c in into_elements(el) {
            match c.name.as_ref() {
                "SharedMem" => shared_mem = true,
                "FreeMem" => free_mem = Some(number(&c, "FreeMem")?),
                "FreeID" => free_id = Some(number(&c, "FreeID")?),
                _ => {}
            }
        }
        Ok(Mem {
            shared_mem,
            free_mem: free_mem.ok_or(ModelError::Missing {
                parent: "Mem",
                child: "FreeMem",
            })?,
            free_id: free_id.ok_or(ModelError::Missing {
                parent: "Mem",
                child: "FreeID",
            })?,
        })
    }

    /// Writes `<Mem>` (MetInf namespace): `SharedMem?`, `FreeMem`, `FreeID`.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&MI, "Mem");
        flag(s, &MI, "SharedMem", self.shared_mem);
        leaf(s, &MI, "FreeMem", &self.free_mem.to_string());
        leaf(s, &MI, "FreeID", &self.free_id.to_string());
        s.end();
    }
}

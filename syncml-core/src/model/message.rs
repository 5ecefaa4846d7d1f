//! SyncML messages: header, body, commands, items (REP-01..REP-31, REP-38, REP-41).
//!
//! [`SyncMl::from_element`] is liberal: identifiers, numbers and URIs are trimmed,
//! unknown elements are skipped, children may come in any order, optional parts may be
//! missing, and a few sloppy habits of real peers are tolerated (a command without
//! `CmdID` gets an empty one, `Results` without `MsgRef` refers to message `"1"`, an
//! empty `<SyncHdr/>` or a document without `SyncHdr` gets a default header). A missing
//! element the protocol cannot do without (`MsgID`, the header `Target`/`Source`,
//! `Status/Data`, `Map/Target`, ...) is a [`ModelError::Missing`].
//!
//! [`SyncMl::write`] is strict: every element in DTD order, only known elements.
//! `Data` is never trimmed: text stays text ([`Data::Text`]), `CDATA`/WBXML `OPAQUE`
//! stays bytes ([`Data::Binary`]), so a decoded message re-encodes to the same tree.
//!
//! ```
//! use syncml_core::model::{Command, SyncMl};
//! use syncml_core::tree::TreeBuilder;
//!
//! let doc = syncml_core::xml::decode_document(br#"<SyncML xmlns='SYNCML:SYNCML1.2'>
//!   <SyncHdr><VerDTD>1.2</VerDTD><VerProto>SyncML/1.2</VerProto>
//!   <SessionID>7</SessionID><MsgID>1</MsgID>
//!   <Target><LocURI>http://example.com/sync</LocURI></Target>
//!   <Source><LocURI>IMEI:356938035643809</LocURI></Source></SyncHdr>
//!   <SyncBody><Alert><CmdID>1</CmdID><Data>200</Data><Item>
//!     <Target><LocURI>./contacts</LocURI></Target><Source><LocURI>./card</LocURI></Source>
//!     <Meta><Anchor xmlns='syncml:metinf'><Last>234</Last><Next>276</Next></Anchor></Meta>
//!   </Item></Alert><Final/></SyncBody></SyncML>"#).unwrap();
//! let msg = SyncMl::from_element(doc.root).unwrap();
//! let Command::Alert(alert) = &msg.body.commands[0] else { panic!() };
//! assert_eq!(alert.data.unwrap().0, 200);
//! let anchor = alert.items[0].meta.as_ref().unwrap().anchor.as_ref().unwrap();
//! assert_eq!(anchor.next, "276");
//!
//! let mut tree = TreeBuilder::new();
//! msg.write(&mut tree);
//! assert_eq!(SyncMl::from_element(tree.finish().unwrap()).unwrap(), msg);
//! ```

use super::{flag, into_elements, leaf, number, opt_leaf, trimmed, Anchor, Meta, ModelError};
use crate::codes::{AlertCode, StatusCode};
use crate::tree::{Element, Namespace, Node, Sink, SyncMlVersion};

const SML: Namespace = Namespace::SyncMl;

pub(super) fn missing(parent: &'static str, child: &'static str) -> ModelError {
    ModelError::Missing { parent, child }
}

/// Keeps the first occurrence of a singular child.
fn set_once(slot: &mut Option<Element>, el: Element) {
    if slot.is_none() {
        *slot = Some(el);
    }
}

/// Trimmed text of an optional element.
fn opt_text(el: Option<Element>, name: &'static str) -> Result<Option<String>, ModelError> {
    el.map(|e| trimmed(e, name)).transpose()
}

/// Trimmed text of a required element.
fn req_text(
    el: Option<Element>,
    parent: &'static str,
    name: &'static str,
) -> Result<String, ModelError> {
    let e = el.ok_or_else(|| missing(parent, name))?;
    trimmed(e, name)
}

// ---------------------------------------------------------------------------------
// Message, header, body
// ---------------------------------------------------------------------------------

/// A whole SyncML message: `<SyncML>` = `(SyncHdr, SyncBody)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncMl {
    /// `<SyncHdr>`.
    pub header: SyncHdr,
    /// `<SyncBody>`.
    pub body: SyncBody,
}

impl SyncMl {
    /// About how many bytes the message takes encoded (in XML when `xml`, else WBXML):
    /// item data plus a typical share per command and item (XML's tags take about
    /// twice WBXML's tokens). The encoders reserve this up front, so a message of many
    /// items is written without its buffer being moved.
    pub(crate) fn encoded_size_hint(&self, xml: bool) -> usize {
        fn of(cmds: &[Command], per_cmd: usize, per_item: usize) -> usize {
            cmds.iter()
                .map(|c| {
                    let items: usize = c
                        .items()
                        .iter()
                        .map(|i| {
                            per_item
                                + match &i.data {
                                    Some(Data::Text(t)) => t.len(),
                                    Some(Data::Binary(b)) => b.len(),
                                    Some(Data::DevInf(_)) => 2048,
                                    _ => 16,
                                }
                        })
                        .sum();
                    let map = match c {
                        Command::Map(m) => per_item * m.map_items.len(),
                        _ => 0,
                    };
                    per_cmd + items + map + of(c.commands(), per_cmd, per_item)
                })
                .sum()
        }
        let (per_cmd, per_item) = if xml { (128, 224) } else { (64, 96) };
        512 + of(&self.body.commands, per_cmd, per_item)
    }

    /// Reads a message from its `<SyncML>` root element (any namespace spelling),
    /// consuming the tree so item data moves rather than being copied.
    ///
    /// A document without `SyncHdr` (or with an empty one) gets a
    /// [`SyncHdr::default`]; a missing `SyncBody` and a second `SyncHdr` or `SyncBody`
    /// are errors.
    pub fn from_element(root: Element) -> Result<SyncMl, ModelError> {
        if !root.name.eq_ignore_ascii_case("SyncML") {
            return Err(ModelError::UnexpectedRoot {
                expected: "SyncML",
                found: root.name.into_owned(),
            });
        }
        let mut header = None;
        let mut body = None;
        for c in into_elements(root) {
            match c.name.as_ref() {
                "SyncHdr" if header.is_some() => {
                    return Err(ModelError::invalid(
                        "SyncML",
                        "a second SyncHdr",
                        "one SyncHdr",
                    ))
                }
                "SyncBody" if body.is_some() => {
                    return Err(ModelError::invalid(
                        "SyncML",
                        "a second SyncBody",
                        "one SyncBody",
                    ))
                }
                "SyncHdr" => header = Some(SyncHdr::from_element(c)?),
                "SyncBody" => body = Some(SyncBody::from_element(c)?),
                _ => {}
            }
        }
        Ok(SyncMl {
            header: header.unwrap_or_default(),
            body: body.ok_or_else(|| missing("SyncML", "SyncBody"))?,
        })
    }

    /// Writes the message (`<SyncML>` root, SyncML namespace) in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "SyncML");
        self.header.write(s);
        self.body.write(s);
        s.end();
    }

    /// The SyncML version named by `SyncHdr/VerDTD` (1.2 when absent or unknown).
    pub fn version(&self) -> SyncMlVersion {
        SyncMlVersion::from_ver_dtd(&self.header.ver_dtd).unwrap_or_default()
    }
}

/// The message header, `<SyncHdr>` =
/// `(VerDTD, VerProto, SessionID, MsgID, Target, Source, RespURI?, NoResp?, Cred?, Meta?)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncHdr {
    /// `<VerDTD>`: `"1.2"`, `"1.1"` or `"1.0"`.
    pub ver_dtd: String,
    /// `<VerProto>`: `"SyncML/1.2"` (DS) or `"DM/1.2"` (DM).
    pub ver_proto: String,
    /// `<SessionID>`: opaque session identifier (may be empty).
    pub session_id: String,
    /// `<MsgID>`: this message's number within the session.
    pub msg_id: String,
    /// `<Target>`: the recipient (device or service).
    pub target: Target,
    /// `<Source>`: the originator.
    pub source: Source,
    /// `<RespURI>`: where the response to this message must be sent.
    pub resp_uri: Option<String>,
    /// `<NoResp/>`: the originator wants no Status for this message.
    pub no_resp: bool,
    /// `<Cred>`: the originator's credentials.
    pub cred: Option<Cred>,
    /// `<Meta>`: for example `MaxMsgSize` and `MaxObjSize`.
    pub meta: Option<Meta>,
}

impl SyncHdr {
    /// A header for a message of `version` with the given session, message number,
    /// target and source URIs (other parts empty).
    pub fn new(
        version: SyncMlVersion,
        session_id: impl Into<String>,
        msg_id: impl Into<String>,
        target: impl Into<String>,
        source: impl Into<String>,
    ) -> SyncHdr {
        SyncHdr {
            ver_dtd: version.ver_dtd().to_string(),
            ver_proto: version.ver_proto().to_string(),
            session_id: session_id.into(),
            msg_id: msg_id.into(),
            target: Target::new(target),
            source: Source::new(source),
            ..SyncHdr::default()
        }
    }

    /// Reads a `<SyncHdr>`. An empty one (no child elements) gives the default
    /// header; otherwise `MsgID`, `Target` and `Source` are required and a missing
    /// `VerDTD`, `VerProto` or `SessionID` reads as empty.
    pub fn from_element(el: Element) -> Result<SyncHdr, ModelError> {
        let mut h = SyncHdr::default();
        let mut any = false;
        let (mut msg_id, mut target, mut source) = (None, None, None);
        for c in into_elements(el) {
            any = true;
            match c.name.as_ref() {
                "VerDTD" => h.ver_dtd = trimmed(c, "VerDTD")?,
                "VerProto" => h.ver_proto = trimmed(c, "VerProto")?,
                "SessionID" => h.session_id = trimmed(c, "SessionID")?,
                "MsgID" => msg_id = Some(trimmed(c, "MsgID")?),
                "Target" => target = Some(Target::from_element(c)?),
                "Source" => source = Some(Source::from_element(c)?),
                "RespURI" => h.resp_uri = Some(trimmed(c, "RespURI")?),
                "NoResp" => h.no_resp = true,
                "Cred" => h.cred = Some(Cred::from_element(c)?),
                "Meta" => h.meta = Some(Meta::from_element(c)?),
                _ => {}
            }
        }
        if !any {
            return Ok(h);
        }
        h.msg_id = msg_id.ok_or_else(|| missing("SyncHdr", "MsgID"))?;
        h.target = target.ok_or_else(|| missing("SyncHdr", "Target"))?;
        h.source = source.ok_or_else(|| missing("SyncHdr", "Source"))?;
        Ok(h)
    }

    /// Writes `<SyncHdr>` in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "SyncHdr");
        leaf(s, &SML, "VerDTD", &self.ver_dtd);
        leaf(s, &SML, "VerProto", &self.ver_proto);
        leaf(s, &SML, "SessionID", &self.session_id);
        leaf(s, &SML, "MsgID", &self.msg_id);
        self.target.write(s);
        self.source.write(s);
        opt_leaf(s, &SML, "RespURI", self.resp_uri.as_deref());
        flag(s, &SML, "NoResp", self.no_resp);
        if let Some(c) = &self.cred {
            c.write(s);
        }
        if let Some(m) = &self.meta {
            m.write(s);
        }
        s.end();
    }
}

/// The message body, `<SyncBody>` = `(commands+, Final?)` (an empty body is
/// accepted and written as `<SyncBody/>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncBody {
    /// The commands, in order.
    pub commands: Vec<Command>,
    /// `<Final/>`: this is the last message of the package.
    pub is_final: bool,
}

impl SyncBody {
    /// Reads a `<SyncBody>`; unknown elements are skipped, `Final` may appear anywhere.
    pub fn from_element(el: Element) -> Result<SyncBody, ModelError> {
        let mut b = SyncBody::default();
        for c in into_elements(el) {
            if c.name == "Final" {
                b.is_final = true;
            } else if let Some(cmd) = Command::parse(c)? {
                b.commands.push(cmd);
            }
        }
        Ok(b)
    }

    /// Writes `<SyncBody>`: the commands, then `Final` if set.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "SyncBody");
        for c in &self.commands {
            c.write(s);
        }
        flag(s, &SML, "Final", self.is_final);
        s.end();
    }
}

// ---------------------------------------------------------------------------------
// Addressing: Target, Source, Filter
// ---------------------------------------------------------------------------------

/// `<Target>` = `(LocURI, LocName?, Filter?)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// `<LocURI>` (trimmed).
    pub loc_uri: String,
    /// `<LocName>`: a display name, or the user name in the header target.
    pub loc_name: Option<String>,
    /// `<Filter>` (DS 1.2, sync `Alert` items only). Boxed: filters are rare and
    /// large, and a `Target` is in every item.
    pub filter: Option<Box<Filter>>,
}

impl Target {
    /// A target with only a `LocURI`.
    pub fn new(loc_uri: impl Into<String>) -> Target {
        Target {
            loc_uri: loc_uri.into(),
            ..Target::default()
        }
    }

    /// Reads a `<Target>`; `LocURI` is required.
    pub fn from_element(el: Element) -> Result<Target, ModelError> {
        let (mut loc_uri, mut loc_name, mut filter) = (None, None, None);
        for c in into_elements(el) {
            match c.name.as_ref() {
                "LocURI" => set_once(&mut loc_uri, c),
                "LocName" => set_once(&mut loc_name, c),
                "Filter" if filter.is_none() => filter = Some(Box::new(Filter::from_element(c)?)),
                _ => {}
            }
        }
        Ok(Target {
            loc_uri: req_text(loc_uri, "Target", "LocURI")?,
            loc_name: opt_text(loc_name, "LocName")?,
            filter,
        })
    }

    /// Writes `<Target>` in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Target");
        leaf(s, &SML, "LocURI", &self.loc_uri);
        opt_leaf(s, &SML, "LocName", self.loc_name.as_deref());
        if let Some(f) = &self.filter {
            f.write(s);
        }
        s.end();
    }
}

/// `<Source>` = `(LocURI, LocName?)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Source {
    /// `<LocURI>` (trimmed).
    pub loc_uri: String,
    /// `<LocName>`: a display name, or the user name in the header source.
    pub loc_name: Option<String>,
}

impl Source {
    /// A source with only a `LocURI`.
    pub fn new(loc_uri: impl Into<String>) -> Source {
        Source {
            loc_uri: loc_uri.into(),
            loc_name: None,
        }
    }

    /// Reads a `<Source>`; `LocURI` is required.
    pub fn from_element(el: Element) -> Result<Source, ModelError> {
        let (mut loc_uri, mut loc_name) = (None, None);
        for c in into_elements(el) {
            match c.name.as_ref() {
                "LocURI" => set_once(&mut loc_uri, c),
                "LocName" => set_once(&mut loc_name, c),
                _ => {}
            }
        }
        Ok(Source {
            loc_uri: req_text(loc_uri, "Source", "LocURI")?,
            loc_name: opt_text(loc_name, "LocName")?,
        })
    }

    /// Writes `<Source>` in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Source");
        leaf(s, &SML, "LocURI", &self.loc_uri);
        opt_leaf(s, &SML, "LocName", self.loc_name.as_deref());
        s.end();
    }
}

/// `<Filter>` = `(Meta, Field?, Record?, FilterType?)` (DS 1.2, FLT-02).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    /// `<Meta>`: its `Type` is the content type of the filtered data.
    pub meta: Meta,
    /// `<Field>` = `(Item)`: property overrides (FLT-09).
    pub field: Option<Item>,
    /// `<Record>` = `(Item)`: the record filter query (FLT-08).
    pub record: Option<Item>,
    /// `<FilterType>`: `EXCLUSIVE` (default) or `INCLUSIVE`.
    pub filter_type: Option<String>,
}

impl Filter {
    /// Reads a `<Filter>`; `Meta` is required, as is the `Item` of `Field`/`Record`.
    pub fn from_element(el: Element) -> Result<Filter, ModelError> {
        let (mut meta, mut field, mut record, mut filter_type) = (None, None, None, None);
        for c in into_elements(el) {
            match c.name.as_ref() {
                "Meta" => set_once(&mut meta, c),
                "Field" => set_once(&mut field, c),
                "Record" => set_once(&mut record, c),
                "FilterType" => set_once(&mut filter_type, c),
                _ => {}
            }
        }
        let wrapped = |el: Option<Element>, name: &'static str| -> Result<_, ModelError> {
            el.map(|e| {
                let item = into_elements(e)
                    .find(|c| c.name == "Item")
                    .ok_or_else(|| missing(name, "Item"))?;
                Item::from_element(item)
            })
            .transpose()
        };
        Ok(Filter {
            meta: Meta::from_element(meta.ok_or_else(|| missing("Filter", "Meta"))?)?,
            field: wrapped(field, "Field")?,
            record: wrapped(record, "Record")?,
            filter_type: opt_text(filter_type, "FilterType")?,
        })
    }

    /// Writes `<Filter>` in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Filter");
        self.meta.write(s);
        for (name, item) in [("Field", &self.field), ("Record", &self.record)] {
            if let Some(i) = item {
                s.start(&SML, name);
                i.write(s);
                s.end();
            }
        }
        opt_leaf(s, &SML, "FilterType", self.filter_type.as_deref());
        s.end();
    }
}

// ---------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------

/// `<Cred>` = `(Meta?, Data)`: credentials (REP-41). `Meta/Type` names the scheme
/// (`syncml:auth-basic` when absent), `Meta/Format` the encoding (`b64`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cred {
    /// `<Meta>`: `Type` and `Format` of the credential.
    pub meta: Option<Meta>,
    /// `<Data>`: the credential (b64 text, or raw digest bytes in WBXML).
    pub data: Data,
}

impl Cred {
    /// Reads a `<Cred>`; `Data` is required.
    pub fn from_element(el: Element) -> Result<Cred, ModelError> {
        let (mut meta, mut data) = (None, None);
        for c in into_elements(el) {
            match c.name.as_ref() {
                "Meta" => set_once(&mut meta, c),
                "Data" => set_once(&mut data, c),
                _ => {}
            }
        }
        Ok(Cred {
            meta: meta.map(Meta::from_element).transpose()?,
            data: Data::from_element(data.ok_or_else(|| missing("Cred", "Data"))?),
        })
    }

    /// Writes `<Cred>` in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Cred");
        if let Some(m) = &self.meta {
            m.write(s);
        }
        self.data.write(s);
        s.end();
    }
}

/// `<Chal>` = `(Meta)`: an authentication challenge, only carried in `Status`
/// (REP-41). `Meta` holds `Type`, `Format` and, for MD5, `NextNonce`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chal {
    /// `<Meta>`.
    pub meta: Meta,
}

impl Chal {
    /// Reads a `<Chal>`; `Meta` is required.
    pub fn from_element(el: Element) -> Result<Chal, ModelError> {
        let meta = into_elements(el)
            .find(|c| c.name == "Meta")
            .ok_or_else(|| missing("Chal", "Meta"))?;
        Ok(Chal {
            meta: Meta::from_element(meta)?,
        })
    }

    /// Writes `<Chal>`.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Chal");
        self.meta.write(s);
        s.end();
    }
}

// ---------------------------------------------------------------------------------
// Item and Data
// ---------------------------------------------------------------------------------

/// `<Item>` = `(Target?, Source?, SourceParent?, TargetParent?, Meta?, Data?, MoreData?)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Item {
    /// `<Target>`.
    pub target: Option<Target>,
    /// `<Source>`.
    pub source: Option<Source>,
    /// `<SourceParent><LocURI>`: the parent folder at the source (DS 1.2).
    pub source_parent: Option<String>,
    /// `<TargetParent><LocURI>`: the parent folder at the target (DS 1.2).
    pub target_parent: Option<String>,
    /// `<Meta>`: overrides parts of the command's meta for this item.
    pub meta: Option<Meta>,
    /// `<Data>`.
    pub data: Option<Data>,
    /// `<MoreData/>`: this is a chunk of a large object and more chunks follow.
    pub more_data: bool,
}

impl Item {
    /// Reads an `<Item>`; every part is optional.
    pub fn from_element(el: Element) -> Result<Item, ModelError> {
        let mut i = Item::default();
        for c in into_elements(el) {
            match c.name.as_ref() {
                "Target" if i.target.is_none() => i.target = Some(Target::from_element(c)?),
                "Source" if i.source.is_none() => i.source = Some(Source::from_element(c)?),
                "SourceParent" if i.source_parent.is_none() => {
                    i.source_parent = Some(parent_uri(c, "SourceParent")?)
                }
                "TargetParent" if i.target_parent.is_none() => {
                    i.target_parent = Some(parent_uri(c, "TargetParent")?)
                }
                "Meta" if i.meta.is_none() => i.meta = Some(Meta::from_element(c)?),
                "Data" if i.data.is_none() => i.data = Some(Data::from_element(c)),
                "MoreData" => i.more_data = true,
                _ => {}
            }
        }
        Ok(i)
    }

    /// Writes `<Item>` in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Item");
        if let Some(t) = &self.target {
            t.write(s);
        }
        if let Some(src) = &self.source {
            src.write(s);
        }
        for (name, uri) in [
            ("SourceParent", &self.source_parent),
            ("TargetParent", &self.target_parent),
        ] {
            if let Some(u) = uri {
                s.start(&SML, name);
                leaf(s, &SML, "LocURI", u);
                s.end();
            }
        }
        if let Some(m) = &self.meta {
            m.write(s);
        }
        if let Some(d) = &self.data {
            d.write(s);
        }
        flag(s, &SML, "MoreData", self.more_data);
        s.end();
    }
}

/// The `LocURI` of a `SourceParent`/`TargetParent`; a parent holding the URI as bare
/// text is accepted too.
fn parent_uri(el: Element, name: &'static str) -> Result<String, ModelError> {
    if el.elements().next().is_none() {
        return trimmed(el, name);
    }
    let uri = into_elements(el).find(|c| c.name == "LocURI");
    req_text(uri, name, "LocURI")
}

/// The content of a `<Data>` element.
///
/// Character data is kept exactly as received (never trimmed). Opaque bytes (WBXML
/// `OPAQUE`, XML `CDATA`) stay bytes, so re-encoding reproduces the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// Character data (`<Data>text</Data>`, WBXML `STR_I`); `<Data/>` is empty text.
    Text(String),
    /// Opaque bytes (WBXML `OPAQUE`, XML `CDATA`).
    Binary(Vec<u8>),
    /// An embedded device information document (`<DevInf xmlns='syncml:devinf'>`).
    DevInf(Box<crate::model::DevInf>),
    /// Sync anchors (`<Anchor xmlns='syncml:metinf'>`, in a Status item for an Alert).
    Anchor(Anchor),
    /// Any other markup (for example an OMA DM DDF `MgmtTree`), kept verbatim.
    Markup(Vec<Element>),
}

impl Default for Data {
    fn default() -> Data {
        Data::Text(String::new())
    }
}

impl Data {
    /// Reads a `<Data>` element. Never fails: a single `DevInf` (or MetInf `Anchor`)
    /// child that does not parse is kept as [`Data::Markup`].
    ///
    /// Mixed character data is merged: only text gives [`Data::Text`]; opaque parts
    /// (possibly surrounded by whitespace-only text, which is dropped) give
    /// [`Data::Binary`]; text mixed with UTF-8 opaque parts gives their concatenation
    /// as text. Character data containing NUL is always [`Data::Binary`] (WBXML can
    /// carry NUL only as `OPAQUE`, so as text it would not survive a round trip).
    /// Character data next to child elements is dropped.
    pub fn from_element(el: Element) -> Data {
        if el.children.iter().any(|n| matches!(n, Node::Element(_))) {
            let mut els: Vec<Element> = into_elements(el).collect();
            if els.len() == 1 {
                let e = &els[0];
                if e.name == "DevInf" && e.ns == Namespace::DevInf {
                    if let Ok(d) = crate::model::DevInf::from_element(e.clone()) {
                        return Data::DevInf(Box::new(d));
                    }
                } else if e.name == "Anchor" && e.ns == Namespace::MetInf {
                    if let Some(e) = els.pop() {
                        let keep = e.clone();
                        return match Anchor::from_element(e) {
                            Ok(a) => Data::Anchor(a),
                            Err(_) => Data::Markup(vec![keep]),
                        };
                    }
                }
            }
            return Data::Markup(els);
        }
        let mut children = el.children;
        if children.len() <= 1 {
            return match children.pop() {
                Some(Node::Opaque(b)) => Data::Binary(b),
                Some(Node::Text(t)) if t.contains('\0') => Data::Binary(t.into_bytes()),
                Some(Node::Text(t)) => Data::Text(t),
                Some(Node::Element(_)) | None => Data::Text(String::new()),
            };
        }
        let has_opaque = children.iter().any(|n| matches!(n, Node::Opaque(_)));
        let text_is_blank = children
            .iter()
            .all(|n| !matches!(n, Node::Text(t) if !t.trim().is_empty()));
        if !has_opaque {
            let mut s = String::new();
            for n in children {
                if let Node::Text(t) = n {
                    s.push_str(&t);
                }
            }
            if s.contains('\0') {
                return Data::Binary(s.into_bytes());
            }
            return Data::Text(s);
        }
        let mut bytes = Vec::new();
        for n in children {
            match n {
                Node::Opaque(b) => bytes.extend_from_slice(&b),
                Node::Text(t) if !text_is_blank => bytes.extend_from_slice(t.as_bytes()),
                _ => {}
            }
        }
        if text_is_blank {
            return Data::Binary(bytes);
        }
        // Text never holds NUL: WBXML can only carry it as OPAQUE, which reads back as
        // bytes, so such data is bytes from the start.
        match String::from_utf8(bytes) {
            Ok(s) if !s.contains('\0') => Data::Text(s),
            Ok(s) => Data::Binary(s.into_bytes()),
            Err(e) => Data::Binary(e.into_bytes()),
        }
    }

    /// Writes `<Data>`: text with [`Sink::text`], bytes with [`Sink::opaque`], an
    /// embedded DevInf, anchor or markup as elements.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Data");
        match self {
            Data::Text(t) => {
                if !t.is_empty() {
                    s.text(t);
                }
            }
            Data::Binary(b) => s.opaque(b),
            Data::DevInf(d) => d.write(s),
            Data::Anchor(a) => a.write(s),
            Data::Markup(els) => {
                for e in els {
                    e.write(s);
                }
            }
        }
        s.end();
    }

    /// The bytes of text or binary data; `None` for structured data.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Data::Text(t) => Some(t.as_bytes()),
            Data::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// The text of text data, or of binary data that is UTF-8.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Data::Text(t) => Some(t),
            Data::Binary(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The byte length of text or binary data; `0` for structured data.
    pub fn len(&self) -> usize {
        self.as_bytes().map_or(0, <[u8]>::len)
    }

    /// True for empty text or binary data; `false` for structured data.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_some_and(<[u8]>::is_empty)
    }
}

impl From<String> for Data {
    fn from(s: String) -> Data {
        Data::Text(s)
    }
}

impl From<&str> for Data {
    fn from(s: &str) -> Data {
        Data::Text(s.to_string())
    }
}

impl From<Vec<u8>> for Data {
    fn from(b: Vec<u8>) -> Data {
        Data::Binary(b)
    }
}

// ---------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------

/// A SyncML command (REP-14, REP-16, REP-17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `<Add>`.
    Add(ItemCommand),
    /// `<Alert>`.
    Alert(Alert),
    /// `<Atomic>`: all or none of the contained commands succeed.
    Atomic(Container),
    /// `<Copy>`.
    Copy(ItemCommand),
    /// `<Delete>`.
    Delete(Delete),
    /// `<Exec>`.
    Exec(Exec),
    /// `<Get>`.
    Get(GetPut),
    /// `<Map>`.
    Map(Map),
    /// `<Move>` (DS 1.2).
    Move(ItemCommand),
    /// `<Put>`.
    Put(GetPut),
    /// `<Replace>`.
    Replace(ItemCommand),
    /// `<Results>`.
    Results(Results),
    /// `<Search>`.
    Search(Search),
    /// `<Sequence>`: the contained commands are executed in order.
    Sequence(Container),
    /// `<Status>`.
    Status(Status),
    /// `<Sync>`.
    Sync(Sync),
}

impl Command {
    /// The element name (`"Add"`, `"Status"`, ...), as used in `Status/Cmd`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Add(_) => "Add",
            Command::Alert(_) => "Alert",
            Command::Atomic(_) => "Atomic",
            Command::Copy(_) => "Copy",
            Command::Delete(_) => "Delete",
            Command::Exec(_) => "Exec",
            Command::Get(_) => "Get",
            Command::Map(_) => "Map",
            Command::Move(_) => "Move",
            Command::Put(_) => "Put",
            Command::Replace(_) => "Replace",
            Command::Results(_) => "Results",
            Command::Search(_) => "Search",
            Command::Sequence(_) => "Sequence",
            Command::Status(_) => "Status",
            Command::Sync(_) => "Sync",
        }
    }

    /// The command's `CmdID`.
    pub fn cmd_id(&self) -> &str {
        match self {
            Command::Add(c) | Command::Copy(c) | Command::Move(c) | Command::Replace(c) => {
                &c.cmd_id
            }
            Command::Alert(c) => &c.cmd_id,
            Command::Atomic(c) | Command::Sequence(c) => &c.cmd_id,
            Command::Delete(c) => &c.cmd_id,
            Command::Exec(c) => &c.cmd_id,
            Command::Get(c) | Command::Put(c) => &c.cmd_id,
            Command::Map(c) => &c.cmd_id,
            Command::Results(c) => &c.cmd_id,
            Command::Search(c) => &c.cmd_id,
            Command::Status(c) => &c.cmd_id,
            Command::Sync(c) => &c.cmd_id,
        }
    }

    /// Sets the command's `CmdID`.
    pub fn set_cmd_id(&mut self, id: impl Into<String>) {
        let id = id.into();
        match self {
            Command::Add(c) | Command::Copy(c) | Command::Move(c) | Command::Replace(c) => {
                c.cmd_id = id
            }
            Command::Alert(c) => c.cmd_id = id,
            Command::Atomic(c) | Command::Sequence(c) => c.cmd_id = id,
            Command::Delete(c) => c.cmd_id = id,
            Command::Exec(c) => c.cmd_id = id,
            Command::Get(c) | Command::Put(c) => c.cmd_id = id,
            Command::Map(c) => c.cmd_id = id,
            Command::Results(c) => c.cmd_id = id,
            Command::Search(c) => c.cmd_id = id,
            Command::Status(c) => c.cmd_id = id,
            Command::Sync(c) => c.cmd_id = id,
        }
    }

    /// The command's items; empty for `Atomic`, `Map`, `Search`, `Sequence` and `Sync`
    /// (which carry none directly).
    pub fn items(&self) -> &[Item] {
        match self {
            Command::Add(c) | Command::Copy(c) | Command::Move(c) | Command::Replace(c) => &c.items,
            Command::Alert(c) => &c.items,
            Command::Delete(c) => &c.items,
            Command::Exec(c) => &c.items,
            Command::Get(c) | Command::Put(c) => &c.items,
            Command::Results(c) => &c.items,
            Command::Status(c) => &c.items,
            Command::Atomic(_)
            | Command::Sequence(_)
            | Command::Map(_)
            | Command::Search(_)
            | Command::Sync(_) => &[],
        }
    }

    /// The commands nested in a container (`Atomic`, `Sequence`, `Sync`); empty for
    /// the others.
    pub fn commands(&self) -> &[Command] {
        match self {
            Command::Atomic(c) | Command::Sequence(c) => &c.commands,
            Command::Sync(s) => &s.commands,
            _ => &[],
        }
    }

    /// True for the commands whose `NoResp` is set (the originator wants no Status).
    /// `Status` and `Results` never carry `NoResp`.
    pub fn no_resp(&self) -> bool {
        match self {
            Command::Add(c) | Command::Copy(c) | Command::Move(c) | Command::Replace(c) => {
                c.no_resp
            }
            Command::Alert(c) => c.no_resp,
            Command::Atomic(c) | Command::Sequence(c) => c.no_resp,
            Command::Delete(c) => c.no_resp,
            Command::Exec(c) => c.no_resp,
            Command::Get(c) | Command::Put(c) => c.no_resp,
            Command::Search(c) => c.no_resp,
            Command::Sync(c) => c.no_resp,
            Command::Map(_) | Command::Results(_) | Command::Status(_) => false,
        }
    }

    /// Reads one command element (for fragments such as a lone `<Alert>`); an element
    /// that is not a command is [`ModelError::UnexpectedRoot`].
    pub fn from_element(el: Element) -> Result<Command, ModelError> {
        let name = el.name.clone();
        Command::parse(el)?.ok_or_else(|| ModelError::UnexpectedRoot {
            expected: "a SyncML command",
            found: name.into_owned(),
        })
    }

    /// Reads a command element; `None` for an element that is not a command.
    pub(super) fn parse(el: Element) -> Result<Option<Command>, ModelError> {
        let name: &'static str = match el.name.as_ref() {
            "Add" => "Add",
            "Alert" => "Alert",
            "Atomic" => "Atomic",
            "Copy" => "Copy",
            "Delete" => "Delete",
            "Exec" => "Exec",
            "Get" => "Get",
            "Map" => "Map",
            "Move" => "Move",
            "Put" => "Put",
            "Replace" => "Replace",
            "Results" => "Results",
            "Search" => "Search",
            "Sequence" => "Sequence",
            "Status" => "Status",
            "Sync" => "Sync",
            _ => return Ok(None),
        };
        let container = matches!(name, "Atomic" | "Sequence" | "Sync");
        let p = Parts::collect(el, container);
        Ok(Some(match name {
            "Add" => Command::Add(p.item_command()?),
            "Alert" => Command::Alert(p.alert()?),
            "Atomic" => Command::Atomic(p.container()?),
            "Copy" => Command::Copy(p.item_command()?),
            "Delete" => Command::Delete(p.delete()?),
            "Exec" => Command::Exec(p.exec()?),
            "Get" => Command::Get(p.get_put()?),
            "Map" => Command::Map(p.map()?),
            "Move" => Command::Move(p.item_command()?),
            "Put" => Command::Put(p.get_put()?),
            "Replace" => Command::Replace(p.item_command()?),
            "Results" => Command::Results(p.results()?),
            "Search" => Command::Search(p.search()?),
            "Sequence" => Command::Sequence(p.container()?),
            "Status" => Command::Status(p.status()?),
            _ => Command::Sync(p.sync()?),
        }))
    }

    /// Writes the command element in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        let name = self.name();
        match self {
            Command::Add(c) | Command::Copy(c) | Command::Move(c) | Command::Replace(c) => {
                c.write_as(s, name)
            }
            Command::Alert(c) => c.write(s),
            Command::Atomic(c) | Command::Sequence(c) => c.write_as(s, name),
            Command::Delete(c) => c.write(s),
            Command::Exec(c) => c.write(s),
            Command::Get(c) | Command::Put(c) => c.write_as(s, name),
            Command::Map(c) => c.write(s),
            Command::Results(c) => c.write(s),
            Command::Search(c) => c.write(s),
            Command::Status(c) => c.write(s),
            Command::Sync(c) => c.write(s),
        }
    }
}

/// The children of a command element, sorted by name but not yet converted, so each
/// command converts (and validates) only the parts its content model has.
#[derive(Default)]
struct Parts {
    cmd_id: Option<Element>,
    no_resp: bool,
    no_results: bool,
    archive: bool,
    sft_del: bool,
    cred: Option<Element>,
    meta: Option<Element>,
    lang: Option<Element>,
    correlator: Option<Element>,
    target: Option<Element>,
    sources: Vec<Element>,
    data: Option<Element>,
    msg_ref: Option<Element>,
    cmd_ref: Option<Element>,
    cmd: Option<Element>,
    target_refs: Vec<Element>,
    source_refs: Vec<Element>,
    chal: Option<Element>,
    number_of_changes: Option<Element>,
    items: Vec<Element>,
    map_items: Vec<Element>,
    commands: Vec<Element>,
}

impl Parts {
    fn collect(el: Element, container: bool) -> Parts {
        let mut p = Parts::default();
        for c in into_elements(el) {
            match c.name.as_ref() {
                "CmdID" => set_once(&mut p.cmd_id, c),
                "NoResp" => p.no_resp = true,
                "NoResults" => p.no_results = true,
                "Archive" => p.archive = true,
                "SftDel" => p.sft_del = true,
                "Cred" => set_once(&mut p.cred, c),
                "Meta" => set_once(&mut p.meta, c),
                "Lang" => set_once(&mut p.lang, c),
                "Correlator" => set_once(&mut p.correlator, c),
                "Target" => set_once(&mut p.target, c),
                "Source" => p.sources.push(c),
                "Data" => set_once(&mut p.data, c),
                "MsgRef" => set_once(&mut p.msg_ref, c),
                "CmdRef" => set_once(&mut p.cmd_ref, c),
                "Cmd" => set_once(&mut p.cmd, c),
                "TargetRef" => p.target_refs.push(c),
                "SourceRef" => p.source_refs.push(c),
                "Chal" => set_once(&mut p.chal, c),
                "NumberOfChanges" => set_once(&mut p.number_of_changes, c),
                "Item" => p.items.push(c),
                "MapItem" => p.map_items.push(c),
                _ if container => p.commands.push(c),
                _ => {}
            }
        }
        p
    }

    /// `CmdID`, empty when a sloppy peer left it out.
    fn cmd_id(&mut self) -> Result<String, ModelError> {
        Ok(opt_text(self.cmd_id.take(), "CmdID")?.unwrap_or_default())
    }

    fn cred(&mut self) -> Result<Option<Box<Cred>>, ModelError> {
        self.cred
            .take()
            .map(|c| Cred::from_element(c).map(Box::new))
            .transpose()
    }

    fn meta(&mut self) -> Result<Option<Meta>, ModelError> {
        self.meta.take().map(Meta::from_element).transpose()
    }

    fn target(&mut self) -> Result<Option<Target>, ModelError> {
        self.target.take().map(Target::from_element).transpose()
    }

    fn first_source(&mut self) -> Result<Option<Source>, ModelError> {
        if self.sources.is_empty() {
            return Ok(None);
        }
        Source::from_element(self.sources.swap_remove(0)).map(Some)
    }

    fn items(&mut self) -> Result<Vec<Item>, ModelError> {
        std::mem::take(&mut self.items)
            .into_iter()
            .map(Item::from_element)
            .collect()
    }

    fn commands(&mut self) -> Result<Vec<Command>, ModelError> {
        let mut out = Vec::with_capacity(self.commands.len());
        for c in std::mem::take(&mut self.commands) {
            if let Some(cmd) = Command::parse(c)? {
                out.push(cmd);
            }
        }
        Ok(out)
    }

    fn refs(v: Vec<Element>, name: &'static str) -> Result<Vec<String>, ModelError> {
        v.into_iter().map(|e| trimmed(e, name)).collect()
    }

    fn item_command(mut self) -> Result<ItemCommand, ModelError> {
        Ok(ItemCommand {
            cmd_id: self.cmd_id()?,
            no_resp: self.no_resp,
            cred: self.cred()?,
            meta: self.meta()?,
            items: self.items()?,
        })
    }

    fn delete(mut self) -> Result<Delete, ModelError> {
        Ok(Delete {
            cmd_id: self.cmd_id()?,
            no_resp: self.no_resp,
            archive: self.archive,
            sft_del: self.sft_del,
            cred: self.cred()?,
            meta: self.meta()?,
            items: self.items()?,
        })
    }

    fn get_put(mut self) -> Result<GetPut, ModelError> {
        Ok(GetPut {
            cmd_id: self.cmd_id()?,
            no_resp: self.no_resp,
            lang: opt_text(self.lang.take(), "Lang")?,
            cred: self.cred()?,
            meta: self.meta()?,
            items: self.items()?,
        })
    }

    fn alert(mut self) -> Result<Alert, ModelError> {
        let data = match self.data.take() {
            Some(d) => Some(AlertCode(number(&d, "Data")?)),
            None => None,
        };
        Ok(Alert {
            cmd_id: self.cmd_id()?,
            no_resp: self.no_resp,
            cred: self.cred()?,
            data,
            correlator: opt_text(self.correlator.take(), "Correlator")?,
            items: self.items()?,
        })
    }

    fn exec(mut self) -> Result<Exec, ModelError> {
        let items = self.items()?;
        if items.is_empty() {
            return Err(missing("Exec", "Item"));
        }
        Ok(Exec {
            cmd_id: self.cmd_id()?,
            no_resp: self.no_resp,
            cred: self.cred()?,
            meta: self.meta()?,
            correlator: opt_text(self.correlator.take(), "Correlator")?,
            items,
        })
    }

    fn map(mut self) -> Result<Map, ModelError> {
        let map_items = std::mem::take(&mut self.map_items)
            .into_iter()
            .map(MapItem::from_element)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Map {
            cmd_id: self.cmd_id()?,
            target: self.target()?.ok_or_else(|| missing("Map", "Target"))?,
            source: self
                .first_source()?
                .ok_or_else(|| missing("Map", "Source"))?,
            cred: self.cred()?,
            meta: self.meta()?,
            map_items,
        })
    }

    fn results(mut self) -> Result<Results, ModelError> {
        let target_ref = self.target_refs.drain(..).next();
        let source_ref = self.source_refs.drain(..).next();
        Ok(Results {
            cmd_id: self.cmd_id()?,
            msg_ref: opt_text(self.msg_ref.take(), "MsgRef")?.unwrap_or_else(|| "1".into()),
            cmd_ref: opt_text(self.cmd_ref.take(), "CmdRef")?.unwrap_or_default(),
            meta: self.meta()?,
            target_ref: opt_text(target_ref, "TargetRef")?,
            source_ref: opt_text(source_ref, "SourceRef")?,
            items: self.items()?,
        })
    }

    fn search(mut self) -> Result<Search, ModelError> {
        let sources = std::mem::take(&mut self.sources)
            .into_iter()
            .map(Source::from_element)
            .collect::<Result<Vec<_>, _>>()?;
        let meta = self.meta()?.ok_or_else(|| missing("Search", "Meta"))?;
        let data = self.data.take().ok_or_else(|| missing("Search", "Data"))?;
        Ok(Search {
            cmd_id: self.cmd_id()?,
            no_resp: self.no_resp,
            no_results: self.no_results,
            cred: self.cred()?,
            target: self.target()?,
            sources,
            lang: opt_text(self.lang.take(), "Lang")?,
            meta,
            data: Data::from_element(data),
        })
    }

    fn container(mut self) -> Result<Container, ModelError> {
        Ok(Container {
            cmd_id: self.cmd_id()?,
            no_resp: self.no_resp,
            meta: self.meta()?,
            commands: self.commands()?,
        })
    }

    fn status(mut self) -> Result<Status, ModelError> {
        let data = self.data.take().ok_or_else(|| missing("Status", "Data"))?;
        Ok(Status {
            cmd_id: self.cmd_id()?,
            msg_ref: req_text(self.msg_ref.take(), "Status", "MsgRef")?,
            cmd_ref: req_text(self.cmd_ref.take(), "Status", "CmdRef")?,
            cmd: req_text(self.cmd.take(), "Status", "Cmd")?,
            target_refs: Parts::refs(std::mem::take(&mut self.target_refs), "TargetRef")?,
            source_refs: Parts::refs(std::mem::take(&mut self.source_refs), "SourceRef")?,
            cred: self.cred()?,
            chal: self
                .chal
                .take()
                .map(|c| Chal::from_element(c).map(Box::new))
                .transpose()?,
            data: StatusCode(number(&data, "Data")?),
            items: self.items()?,
        })
    }

    fn sync(mut self) -> Result<Sync, ModelError> {
        let number_of_changes = match self.number_of_changes.take() {
            Some(n) => Some(number(&n, "NumberOfChanges")?),
            None => None,
        };
        Ok(Sync {
            cmd_id: self.cmd_id()?,
            no_resp: self.no_resp,
            cred: self.cred()?,
            target: self.target()?,
            source: self.first_source()?,
            meta: self.meta()?,
            number_of_changes,
            commands: self.commands()?,
        })
    }
}

/// Writes the common head `CmdID, NoResp?` of most commands.
fn write_head<S: Sink + ?Sized>(s: &mut S, cmd_id: &str, no_resp: bool) {
    leaf(s, &SML, "CmdID", cmd_id);
    flag(s, &SML, "NoResp", no_resp);
}

fn write_opt<S: Sink + ?Sized>(s: &mut S, cred: Option<&Cred>, meta: Option<&Meta>) {
    if let Some(c) = cred {
        c.write(s);
    }
    if let Some(m) = meta {
        m.write(s);
    }
}

fn write_items<S: Sink + ?Sized>(s: &mut S, items: &[Item]) {
    for i in items {
        i.write(s);
    }
}

/// `Add`, `Copy`, `Move` and `Replace`: `(CmdID, NoResp?, Cred?, Meta?, Item+)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemCommand {
    /// `<CmdID>`.
    pub cmd_id: String,
    /// `<NoResp/>`.
    pub no_resp: bool,
    /// `<Cred>`.
    pub cred: Option<Box<Cred>>,
    /// `<Meta>`: applies to every item unless the item overrides it.
    pub meta: Option<Meta>,
    /// The `<Item>`s.
    pub items: Vec<Item>,
}

impl ItemCommand {
    /// Writes the command as element `name` (`"Add"`, `"Copy"`, `"Move"`, `"Replace"`).
    pub fn write_as<S: Sink + ?Sized>(&self, s: &mut S, name: &str) {
        s.start(&SML, name);
        write_head(s, &self.cmd_id, self.no_resp);
        write_opt(s, self.cred.as_deref(), self.meta.as_ref());
        write_items(s, &self.items);
        s.end();
    }
}

/// `<Delete>` = `(CmdID, NoResp?, Archive?, SftDel?, Cred?, Meta?, Item+)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delete {
    /// `<CmdID>`.
    pub cmd_id: String,
    /// `<NoResp/>`.
    pub no_resp: bool,
    /// `<Archive/>`: archive the deleted items.
    pub archive: bool,
    /// `<SftDel/>`: soft delete.
    pub sft_del: bool,
    /// `<Cred>`.
    pub cred: Option<Box<Cred>>,
    /// `<Meta>`.
    pub meta: Option<Meta>,
    /// The `<Item>`s.
    pub items: Vec<Item>,
}

impl Delete {
    /// Writes `<Delete>` in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Delete");
        write_head(s, &self.cmd_id, self.no_resp);
        flag(s, &SML, "Archive", self.archive);
        flag(s, &SML, "SftDel", self.sft_del);
        write_opt(s, self.cred.as_deref(), self.meta.as_ref());
        write_items(s, &self.items);
        s.end();
    }
}

/// `Get` and `Put`: `(CmdID, NoResp?, Lang?, Cred?, Meta?, Item+)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetPut {
    /// `<CmdID>`.
    pub cmd_id: String,
    /// `<NoResp/>`.
    pub no_resp: bool,
    /// `<Lang>`: preferred language of the results.
    pub lang: Option<String>,
    /// `<Cred>`.
    pub cred: Option<Box<Cred>>,
    /// `<Meta>`: for DevInf the `Type` `application/vnd.syncml-devinf+xml`/`+wbxml`.
    pub meta: Option<Meta>,
    /// The `<Item>`s.
    pub items: Vec<Item>,
}

impl GetPut {
    /// Writes the command as element `name` (`"Get"` or `"Put"`).
    pub fn write_as<S: Sink + ?Sized>(&self, s: &mut S, name: &str) {
        s.start(&SML, name);
        write_head(s, &self.cmd_id, self.no_resp);
        opt_leaf(s, &SML, "Lang", self.lang.as_deref());
        write_opt(s, self.cred.as_deref(), self.meta.as_ref());
        write_items(s, &self.items);
        s.end();
    }
}

/// `<Alert>` = `(CmdID, NoResp?, Cred?, Data?, Correlator?, Item*)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Alert {
    /// `<CmdID>`.
    pub cmd_id: String,
    /// `<NoResp/>`.
    pub no_resp: bool,
    /// `<Cred>`.
    pub cred: Option<Box<Cred>>,
    /// `<Data>`: the alert code (any number is accepted, e.g. 390001).
    pub data: Option<AlertCode>,
    /// `<Correlator>` (DS 1.2 / DM 1.2).
    pub correlator: Option<String>,
    /// The `<Item>`s: for a sync alert, target and source databases with anchors.
    pub items: Vec<Item>,
}

impl Alert {
    /// Writes `<Alert>` in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Alert");
        write_head(s, &self.cmd_id, self.no_resp);
        if let Some(c) = &self.cred {
            c.write(s);
        }
        if let Some(d) = self.data {
            leaf(s, &SML, "Data", &d.0.to_string());
        }
        opt_leaf(s, &SML, "Correlator", self.correlator.as_deref());
        write_items(s, &self.items);
        s.end();
    }
}

/// `<Exec>` = `(CmdID, NoResp?, Cred?, Meta?, Correlator?, Item)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exec {
    /// `<CmdID>`.
    pub cmd_id: String,
    /// `<NoResp/>`.
    pub no_resp: bool,
    /// `<Cred>`.
    pub cred: Option<Box<Cred>>,
    /// `<Meta>`.
    pub meta: Option<Meta>,
    /// `<Correlator>` (1.2).
    pub correlator: Option<String>,
    /// The `<Item>` naming what to execute: exactly one in the DTD (at least one is
    /// required on input; extras are kept).
    pub items: Vec<Item>,
}

impl Exec {
    /// Writes `<Exec>` in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Exec");
        write_head(s, &self.cmd_id, self.no_resp);
        write_opt(s, self.cred.as_deref(), self.meta.as_ref());
        opt_leaf(s, &SML, "Correlator", self.correlator.as_deref());
        write_items(s, &self.items);
        s.end();
    }
}

/// `<Map>` = `(CmdID, Target, Source, Cred?, Meta?, MapItem+)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Map {
    /// `<CmdID>`.
    pub cmd_id: String,
    /// `<Target>`: the server database.
    pub target: Target,
    /// `<Source>`: the client database.
    pub source: Source,
    /// `<Cred>`.
    pub cred: Option<Box<Cred>>,
    /// `<Meta>`.
    pub meta: Option<Meta>,
    /// The `<MapItem>`s.
    pub map_items: Vec<MapItem>,
}

impl Map {
    /// Writes `<Map>` in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Map");
        leaf(s, &SML, "CmdID", &self.cmd_id);
        self.target.write(s);
        self.source.write(s);
        write_opt(s, self.cred.as_deref(), self.meta.as_ref());
        for m in &self.map_items {
            m.write(s);
        }
        s.end();
    }
}

/// `<MapItem>` = `(Target, Source)`: server ID (GUID) → client ID (LUID).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MapItem {
    /// `<Target>`: the server's ID of the item.
    pub target: Target,
    /// `<Source>`: the client's ID of the item.
    pub source: Source,
}

impl MapItem {
    /// A map item from server ID `target` to client ID `source`.
    pub fn new(target: impl Into<String>, source: impl Into<String>) -> MapItem {
        MapItem {
            target: Target::new(target),
            source: Source::new(source),
        }
    }

    /// Reads a `<MapItem>`; `Target` and `Source` are required.
    pub fn from_element(el: Element) -> Result<MapItem, ModelError> {
        let (mut target, mut source) = (None, None);
        for c in into_elements(el) {
            match c.name.as_ref() {
                "Target" => set_once(&mut target, c),
                "Source" => set_once(&mut source, c),
                _ => {}
            }
        }
        Ok(MapItem {
            target: Target::from_element(target.ok_or_else(|| missing("MapItem", "Target"))?)?,
            source: Source::from_element(source.ok_or_else(|| missing("MapItem", "Source"))?)?,
        })
    }

    /// Writes `<MapItem>`.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "MapItem");
        self.target.write(s);
        self.source.write(s);
        s.end();
    }
}

/// `<Results>` = `(CmdID, MsgRef?, CmdRef, Meta?, TargetRef?, SourceRef?, Item+)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Results {
    /// `<CmdID>`.
    pub cmd_id: String,
    /// `<MsgRef>`: the message of the `Get`; `"1"` when absent on input, always written.
    pub msg_ref: String,
    /// `<CmdRef>`: the `CmdID` of the `Get`.
    pub cmd_ref: String,
    /// `<Meta>`.
    pub meta: Option<Meta>,
    /// `<TargetRef>`.
    pub target_ref: Option<String>,
    /// `<SourceRef>`.
    pub source_ref: Option<String>,
    /// The `<Item>`s.
    pub items: Vec<Item>,
}

impl Default for Results {
    fn default() -> Results {
        Results {
            cmd_id: String::new(),
            msg_ref: "1".into(),
            cmd_ref: String::new(),
            meta: None,
            target_ref: None,
            source_ref: None,
            items: Vec::new(),
        }
    }
}

impl Results {
    /// Writes `<Results>` in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Results");
        leaf(s, &SML, "CmdID", &self.cmd_id);
        leaf(s, &SML, "MsgRef", &self.msg_ref);
        leaf(s, &SML, "CmdRef", &self.cmd_ref);
        if let Some(m) = &self.meta {
            m.write(s);
        }
        opt_leaf(s, &SML, "TargetRef", self.target_ref.as_deref());
        opt_leaf(s, &SML, "SourceRef", self.source_ref.as_deref());
        write_items(s, &self.items);
        s.end();
    }
}

/// `<Search>` = `(CmdID, NoResp?, NoResults?, Cred?, Target?, Source+, Lang?, Meta, Data)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Search {
    /// `<CmdID>`.
    pub cmd_id: String,
    /// `<NoResp/>`.
    pub no_resp: bool,
    /// `<NoResults/>`: keep the results at the recipient.
    pub no_results: bool,
    /// `<Cred>`.
    pub cred: Option<Box<Cred>>,
    /// `<Target>`: where to keep the results.
    pub target: Option<Target>,
    /// The `<Source>`s: the databases to search.
    pub sources: Vec<Source>,
    /// `<Lang>`.
    pub lang: Option<String>,
    /// `<Meta>`: its `Type` names the search grammar.
    pub meta: Meta,
    /// `<Data>`: the query.
    pub data: Data,
}

impl Search {
    /// Writes `<Search>` in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Search");
        write_head(s, &self.cmd_id, self.no_resp);
        flag(s, &SML, "NoResults", self.no_results);
        if let Some(c) = &self.cred {
            c.write(s);
        }
        if let Some(t) = &self.target {
            t.write(s);
        }
        for src in &self.sources {
            src.write(s);
        }
        opt_leaf(s, &SML, "Lang", self.lang.as_deref());
        self.meta.write(s);
        self.data.write(s);
        s.end();
    }
}

/// `Atomic` and `Sequence`: `(CmdID, NoResp?, Meta?, commands+)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Container {
    /// `<CmdID>`.
    pub cmd_id: String,
    /// `<NoResp/>`.
    pub no_resp: bool,
    /// `<Meta>`: applies to all contained commands.
    pub meta: Option<Meta>,
    /// The contained commands, in order.
    pub commands: Vec<Command>,
}

impl Container {
    /// Writes the container as element `name` (`"Atomic"` or `"Sequence"`).
    pub fn write_as<S: Sink + ?Sized>(&self, s: &mut S, name: &str) {
        s.start(&SML, name);
        write_head(s, &self.cmd_id, self.no_resp);
        if let Some(m) = &self.meta {
            m.write(s);
        }
        for c in &self.commands {
            c.write(s);
        }
        s.end();
    }
}

/// `<Status>` =
/// `(CmdID, MsgRef, CmdRef, Cmd, TargetRef*, SourceRef*, Cred?, Chal?, Data, Item*)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `<CmdID>`.
    pub cmd_id: String,
    /// `<MsgRef>`: the `MsgID` of the message answered.
    pub msg_ref: String,
    /// `<CmdRef>`: the `CmdID` answered (`"0"` for the `SyncHdr`).
    pub cmd_ref: String,
    /// `<Cmd>`: the name of the command answered (`"SyncHdr"` for the header).
    pub cmd: String,
    /// `<TargetRef>`s.
    pub target_refs: Vec<String>,
    /// `<SourceRef>`s.
    pub source_refs: Vec<String>,
    /// `<Cred>`.
    pub cred: Option<Box<Cred>>,
    /// `<Chal>`: an authentication challenge (with 401, 407 or 212).
    pub chal: Option<Box<Chal>>,
    /// `<Data>`: the status code.
    pub data: StatusCode,
    /// The `<Item>`s (for example the anchor of an answered sync Alert).
    pub items: Vec<Item>,
}

impl Status {
    /// A status answering command `cmd` (`CmdID` `cmd_ref`) of message `msg_ref`, with
    /// no refs, challenge or items.
    pub fn new(
        cmd_id: impl Into<String>,
        msg_ref: impl Into<String>,
        cmd_ref: impl Into<String>,
        cmd: impl Into<String>,
        data: StatusCode,
    ) -> Status {
        Status {
            cmd_id: cmd_id.into(),
            msg_ref: msg_ref.into(),
            cmd_ref: cmd_ref.into(),
            cmd: cmd.into(),
            target_refs: Vec::new(),
            source_refs: Vec::new(),
            cred: None,
            chal: None,
            data,
            items: Vec::new(),
        }
    }

    /// True when this status answers a `SyncHdr` (`Cmd` `SyncHdr`, `CmdRef` `0`).
    pub fn is_for_header(&self) -> bool {
        self.cmd == "SyncHdr"
    }

    /// Writes `<Status>` in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Status");
        leaf(s, &SML, "CmdID", &self.cmd_id);
        leaf(s, &SML, "MsgRef", &self.msg_ref);
        leaf(s, &SML, "CmdRef", &self.cmd_ref);
        leaf(s, &SML, "Cmd", &self.cmd);
        for r in &self.target_refs {
            leaf(s, &SML, "TargetRef", r);
        }
        for r in &self.source_refs {
            leaf(s, &SML, "SourceRef", r);
        }
        if let Some(c) = &self.cred {
            c.write(s);
        }
        if let Some(c) = &self.chal {
            c.write(s);
        }
        leaf(s, &SML, "Data", &self.data.0.to_string());
        write_items(s, &self.items);
        s.end();
    }
}

/// `<Sync>` = `(CmdID, NoResp?, Cred?, Target?, Source?, Meta?, NumberOfChanges?,
/// (Add|Atomic|Copy|Delete|Move|Replace|Sequence)*)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sync {
    /// `<CmdID>`.
    pub cmd_id: String,
    /// `<NoResp/>`.
    pub no_resp: bool,
    /// `<Cred>`.
    pub cred: Option<Box<Cred>>,
    /// `<Target>`: the recipient's database.
    pub target: Option<Target>,
    /// `<Source>`: the sender's database.
    pub source: Option<Source>,
    /// `<Meta>`: applies to all contained commands (e.g. `MaxObjSize`, `Mem`).
    pub meta: Option<Meta>,
    /// `<NumberOfChanges>`: how many changes the whole sync package carries.
    pub number_of_changes: Option<u32>,
    /// The contained commands, in order.
    pub commands: Vec<Command>,
}

impl Sync {
    /// Writes `<Sync>` in DTD order.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        self.write_head(s);
        for c in &self.commands {
            c.write(s);
        }
        s.end();
    }

    /// Writes the start of `<Sync>` and what precedes its commands (CmdID to
    /// NumberOfChanges), leaving the element open.
    pub(crate) fn write_head<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(&SML, "Sync");
        write_head(s, &self.cmd_id, self.no_resp);
        if let Some(c) = &self.cred {
            c.write(s);
        }
        if let Some(t) = &self.target {
            t.write(s);
        }
        if let Some(src) = &self.source {
            src.write(s);
        }
        if let Some(m) = &self.meta {
            m.write(s);
        }
        if let Some(n) = self.number_of_changes {
            leaf(s, &SML, "NumberOfChanges", &n.to_string());
        }
    }
}

#[cfg(test)]
mod size_hint_tests {
    use super::*;
    use crate::codec::{encode, Encoding};

    /// The encoders reserve [`SyncMl::encoded_size_hint`] bytes: for a message of many
    /// items (a download) it must cover the encoded message, without reserving far more.
    #[test]
    fn the_size_hint_covers_a_message_of_many_items() {
        let adds = (0..238)
            .map(|n| {
                Command::Add(ItemCommand {
                    cmd_id: (n + 2).to_string(),
                    meta: Some(Meta::of_type("text/vcard")),
                    items: vec![Item {
                        source: Some(Source::new(format!("guid-{n:08}"))),
                        data: Some(Data::Binary(vec![b'v'; 650])),
                        ..Item::default()
                    }],
                    ..ItemCommand::default()
                })
            })
            .collect();
        let msg = SyncMl {
            header: SyncHdr::new(SyncMlVersion::default(), "s", "4", "http://x/", "IMEI:1"),
            body: SyncBody {
                commands: vec![Command::Sync(Sync {
                    cmd_id: "1".into(),
                    commands: adds,
                    ..Sync::default()
                })],
                is_final: false,
            },
        };
        for enc in [Encoding::Wbxml, Encoding::Xml] {
            let hint = msg.encoded_size_hint(enc == Encoding::Xml);
            let len = encode(&msg, enc).expect("encodes").len();
            assert!(hint >= len, "{enc:?}: hint {hint} < {len}");
            assert!(hint <= 2 * len, "{enc:?}: hint {hint} > 2 x {len}");
        }
    }
}

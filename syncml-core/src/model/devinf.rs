//! Device information: DevInf 1.1 and 1.2 documents (DEV-01 .. DEV-14).
//!
//! A [`DevInf`] is read from the `<DevInf>` element carried in the `Data` of a
//! `Put`/`Results` item (or from a standalone DevInf document) with
//! [`DevInf::from_element`], and written with [`DevInf::write`]. Every element written is
//! in [`Namespace::DevInf`].
//!
//! # Content models written
//!
//! Output follows the content model of the document's version ([`DevInf::ver_dtd`],
//! see [`DevInf::is_v1_1`]) exactly: element order, and required elements are always
//! written (an empty element when the model has no value).
//!
//! DevInf 1.0 / 1.1 (`devinf_v11_20020215.dtd`, public id `-//SYNCML//DTD DevInf 1.1//EN`):
//!
//! ```text
//! DevInf    (VerDTD, Man?, Mod?, OEM?, FwV?, SwV?, HwV?, DevID, DevTyp, UTC?,
//!            SupportLargeObjs?, SupportNumberOfChanges?, DataStore+, CTCap*, Ext*)
//! DataStore (SourceRef, DisplayName?, MaxGUIDSize?, Rx-Pref, Rx*, Tx-Pref, Tx*, DSMem?, SyncCap)
//! CTCap     ((CTType, (PropName, (ValEnum+ | (DataType, Size?))?, DisplayName?,
//!             (ParamName, (ValEnum+ | (DataType, Size?))?, DisplayName?)*)+)+)
//! ```
//!
//! DevInf 1.2 (OMA-TS-DS_DevInf-V1_2):
//!
//! ```text
//! DevInf    (VerDTD, Man, Mod, OEM?, FwV, SwV, HwV, DevID, DevTyp, UTC?,
//!            SupportLargeObjs?, SupportNumberOfChanges?, DataStore+, Ext*)
//! DataStore (SourceRef, DisplayName?, MaxGUIDSize?, Rx-Pref, Rx*, Tx-Pref, Tx*, CTCap*,
//!            DSMem?, SupportHierarchicalSync?, SyncCap, Filter-Rx*, FilterCap*)
//! CTCap     (CTType, VerCT, FieldLevel?, Property+)
//! Property  (PropName, DataType?, MaxOccur?, MaxSize?, NoTruncate?, ValEnum*,
//!            DisplayName?, PropParam*)
//! PropParam (ParamName, DataType?, ValEnum*, DisplayName?)
//! ```
//!
//! Both versions: `Rx-Pref`, `Rx`, `Tx-Pref`, `Tx`, `Filter-Rx` = `(CTType, VerCT)`;
//! `DSMem` = `(SharedMem?, MaxMem?, MaxID?)`; `SyncCap` = `(SyncType+)`;
//! `FilterCap` = `(CTType, VerCT, FilterKeyword*, PropName*)`; `Ext` = `(XNam, XVal*)`.
//! Token 0x1C is `Size` in DevInf 1.0/1.1 and `MaxSize` in 1.2.
//!
//! Sources: the OMA DevInf 1.2 specification text itself is not publicly available
//! (see `reference/syncml-protocol.md` §8). The 1.2 models above are the ones quoted,
//! independently and identically, by the Funambol J2ME client (`SyncMLFormatter`
//! comments for `Property`/`PropParam`) and by Fonlow SyncML.NET (`<ContentModel>` docs
//! of every DevInf element); they agree with every 1.2 example we hold: OMA Primer
//! Appendix B (`MaxOccur, MaxSize, NoTruncate`), the Sony Ericsson K800i fixture and
//! Buteo's `devinf02.txt` (`DataType, MaxSize, ValEnum, DisplayName`). The 1.1 models are
//! quoted by bbdb-syncml and Fonlow and match libwbxml's `syncml-011.xml`. Fonlow and
//! Buteo's `testDevInf.txt` (which writes empty `<Man/>`, `<Mod/>`, `<FwV/>`, `<SwV/>`,
//! `<HwV/>` but no `<OEM/>`) agree that 1.2 makes `Man`, `Mod`, `FwV`, `SwV`, `HwV`
//! required, so a 1.2 document writes `None` there as an empty element.
//!
//! # Reading (liberal)
//!
//! * Elements are accepted in any order and matched by name case-insensitively (the
//!   OMA Primer example spells `DevId`); unknown elements are skipped; character data
//!   outside leaf elements is ignored.
//! * Identifiers, versions, type names and numbers are trimmed; human-readable text
//!   (`Man`, `Mod`, `OEM`, `DisplayName`, `ValEnum`, `XVal`) is kept verbatim.
//! * Required by the DTD but tolerated when absent: `VerDTD` (the OMA Primer example has
//!   none; inferred as `"1.1"` when a DevInf-level flat `CTCap` is present, else
//!   `"1.2"`), `Rx-Pref`, `Tx-Pref`, `SyncCap`, `VerCT` (empty values). Absent `DevID`,
//!   `DevTyp`, `SourceRef`, `CTType` (of `Rx`/`Tx`/`CTCap`/`FilterCap`), `PropName`,
//!   `ParamName` and `XNam` are errors ([`ModelError::Missing`]); present but empty is
//!   accepted (Buteo's `testDevInf.txt` has `<DevID/>`). A number that does not parse is
//!   an error ([`ModelError::Invalid`]).
//! * `CTCap` is recognised by its shape, not by the version: one with `PropName`/
//!   `ValEnum`/... children or several `CTType`s is the flat 1.1 form ([`CtCap11`]), one
//!   with `Property` children the nested 1.2 form ([`CtCap`]). A flat `CTCap` inside a
//!   `DataStore` is converted to the nested form and kept in that data store; a nested
//!   `CTCap` at DevInf level is moved into the data stores that send or receive its
//!   content type (the first data store if none does). A flat `CTCap` at DevInf level
//!   stays in [`DevInf::ct_caps`] whatever the version.
//! * A second `Rx-Pref`/`Tx-Pref` in one data store (libsynthesis notes DS 1.2 devices
//!   that send one for the folder type) is kept as an `Rx`/`Tx`.
//! * `SupportHierarchicalSync` at DevInf level (pysyncml) sets the flag on every data
//!   store; `Size` in a 1.2 `Property` is read as `MaxSize` and `MaxSize` in a flat
//!   `CTCap` as `Size`.
//!
//! # Writing (strict)
//!
//! [`DevInf::write`] emits only the elements of the version's DTD, in DTD order. A model
//! that mixes the two `CTCap` forms is converted: for 1.1 the data stores' nested
//! capabilities become one more flat DevInf-level `CTCap` (`MaxOccur`, `NoTruncate`,
//! `FieldLevel`, `VerCT` and a `MaxSize` without `DataType` have no 1.1 spelling and are
//! dropped); for 1.2 the flat capabilities are converted ([`CtCap11::to_ct_caps`]) and
//! added to the data stores that send or receive the type (dropped when none does).
//! 1.2-only elements (`Filter-Rx`, `FilterCap`, `SupportHierarchicalSync`) are not
//! written in 1.1.
//!
//! # Quirks
//!
//! Element orders seen from peers that differ from the DTD order we write. Input in
//! any order is accepted; [`normalize_dtd_order`] rewrites a received tree into the
//! order [`DevInf::write`] produces, so a re-encoding can be compared byte-for-byte with
//! a normalised original.
//!
//! 1. **SyncEvolution 2.0.0 / Synthesis engine 3.4.0.47 (client and server), DevInf
//!    level, DevInf 1.1 and 1.2.** Observed `UTC, SupportNumberOfChanges,
//!    SupportLargeObjs`; DTD order `UTC?, SupportLargeObjs?, SupportNumberOfChanges?`.
//!    In all 22 DevInf documents of the wire captures (`tests/data/captures/*/`: the
//!    client's Put in `01-msg001-c2s.*`, the server's Results in `02-msg001-s2c.*`, and
//!    the retried sessions 10 and 11), e.g. `02-twoway-xml/01-msg001-c2s.xml`,
//!    `01-slow-wbxml-md5/01-msg001-c2s.wbxml`, `09-syncml11-slow-wbxml/01-msg001-c2s.wbxml`,
//!    and `10-md5-401-then-retry-xml/05-msg002-c2s.xml`. The WBXML files were checked
//!    with libwbxml's `wbxml2xml` as well as with the engine's own
//!    `*.synthesis-translation.xml`. Cause: the RTK encoder (`xltdevinf.c`, case
//!    `TN_DEVINF_DEVINF`) emits `UTC`, `NOFM`, `LARGEOBJECT` in that order.
//! 2. **SyncEvolution, `Property` (DevInf 1.2).** Observed `PropName, ValEnum+,
//!    MaxOccur` (e.g. `<PropName>VERSION</PropName><ValEnum>3.0</ValEnum>
//!    <MaxOccur>1</MaxOccur>` in the `text/vcard` 3.0 `CTCap` of
//!    `02-twoway-xml/01-msg001-c2s.xml`, and `VERSION` 2.1 / `BEGIN`... in every 1.2
//!    capture DevInf listed above); DTD order `PropName, DataType?, MaxOccur?,
//!    MaxSize?, NoTruncate?, ValEnum*, DisplayName?, PropParam*`.
//! 3. **libsynthesis RTK encoder, not observed on the wire** (SyncEvolution's own
//!    DevInf sets no `MaxSize`, `NoTruncate`, `DataType` or `DisplayName`): the same
//!    code path writes `PropName, (ValEnum+ | DataType), MaxSize, MaxOccur, NoTruncate,
//!    DisplayName, PropParam*`, i.e. also `MaxSize` before `MaxOccur`, and uses it for
//!    `PropParam` too (where `MaxSize`/`MaxOccur`/`NoTruncate` are not in the DTD and
//!    are skipped on input). [`normalize_dtd_order`] handles these orders as well.
//! 4. **Buteo (`tests/data/vectors/buteo-syncml/data/devinf01.txt`, `devinf02.txt`;
//!    test vectors, not traffic).** DevInf level `SupportLargeObjs,
//!    SupportNumberOfChanges, UTC` (DTD: `UTC` first); in 1.2 data stores `SyncCap,
//!    SupportHierarchicalSync, CTCap` (DTD: `CTCap*, DSMem?, SupportHierarchicalSync?,
//!    SyncCap`).
//! 5. **OMA Primer Appendix B package 1 (the spec's own example):** no `VerDTD`,
//!    `DevId` for `DevID`, `SyncType` written `01`..`07` (kept as text, see [`SyncCap`]).
//!
//! Everywhere else SyncEvolution's order equals the DTD (`DataStore`, `CTCap`,
//! `PropParam`, `Rx`/`Tx`, `SyncCap`, and the 1.1 flat `CTCap`).

use super::{flag, into_elements, leaf, number, opt_leaf, trimmed, ModelError};
use crate::tree::{Element, Namespace, Node, Sink};

// ---------------------------------------------------------------------------------
// Element names
// ---------------------------------------------------------------------------------

/// Every DevInf element name we know, for case-insensitive matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    CtCap,
    CtType,
    DataStore,
    DataType,
    DevId,
    DevInf,
    DevTyp,
    DisplayName,
    DsMem,
    Ext,
    FwV,
    HwV,
    Man,
    MaxGuidSize,
    MaxId,
    MaxMem,
    Mod,
    Oem,
    ParamName,
    PropName,
    Rx,
    RxPref,
    SharedMem,
    Size,
    MaxSize,
    SourceRef,
    SwV,
    SyncCap,
    SyncType,
    Tx,
    TxPref,
    ValEnum,
    VerCt,
    VerDtd,
    XNam,
    XVal,
    Utc,
    SupportNumberOfChanges,
    SupportLargeObjs,
    Property,
    PropParam,
    MaxOccur,
    NoTruncate,
    FilterRx,
    FilterCap,
    FilterKeyword,
    FieldLevel,
    SupportHierarchicalSync,
}

const TAGS: &[(&str, Tag)] = &[
    ("CTCap", Tag::CtCap),
    ("CTType", Tag::CtType),
    ("DataStore", Tag::DataStore),
    ("DataType", Tag::DataType),
    ("DevID", Tag::DevId),
    ("DevInf", Tag::DevInf),
    ("DevTyp", Tag::DevTyp),
    ("DisplayName", Tag::DisplayName),
    ("DSMem", Tag::DsMem),
    ("Ext", Tag::Ext),
    ("FwV", Tag::FwV),
    ("HwV", Tag::HwV),
    ("Man", Tag::Man),
    ("MaxGUIDSize", Tag::MaxGuidSize),
    ("MaxID", Tag::MaxId),
    ("MaxMem", Tag::MaxMem),
    ("Mod", Tag::Mod),
    ("OEM", Tag::Oem),
    ("ParamName", Tag::ParamName),
    ("PropName", Tag::PropName),
    ("Rx", Tag::Rx),
    ("Rx-Pref", Tag::RxPref),
    ("SharedMem", Tag::SharedMem),
    ("Size", Tag::Size),
    ("MaxSize", Tag::MaxSize),
    ("SourceRef", Tag::SourceRef),
    ("SwV", Tag::SwV),
    ("SyncCap", Tag::SyncCap),
    ("SyncType", Tag::SyncType),
    ("Tx", Tag::Tx),
    ("Tx-Pref", Tag::TxPref),
    ("ValEnum", Tag::ValEnum),
    ("VerCT", Tag::VerCt),
    ("VerDTD", Tag::VerDtd),
    ("XNam", Tag::XNam),
    ("XVal", Tag::XVal),
    ("UTC", Tag::Utc),
    ("SupportNumberOfChanges", Tag::SupportNumberOfChanges),
    ("SupportLargeObjs", Tag::SupportLargeObjs),
    ("Property", Tag::Property),
    ("PropParam", Tag::PropParam),
    ("MaxOccur", Tag::MaxOccur),
    ("NoTruncate", Tag::NoTruncate),
    ("Filter-Rx", Tag::FilterRx),
    ("FilterCap", Tag::FilterCap),
    ("FilterKeyword", Tag::FilterKeyword),
    ("FieldLevel", Tag::FieldLevel),
    ("SupportHierarchicalSync", Tag::SupportHierarchicalSync),
];

/// The tag of an element name, ignoring ASCII case and surrounding whitespace.
fn tag(name: &str) -> Option<Tag> {
    let name = name.trim();
    TAGS.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, t)| t)
}

/// Character data kept verbatim (human-readable text).
fn raw(el: &Element, name: &'static str) -> Result<String, ModelError> {
    match el.text() {
        Some(t) => Ok(t.into_owned()),
        None => Err(ModelError::invalid(name, "<binary>", "UTF-8 text")),
    }
}

fn missing(parent: &'static str, child: &'static str) -> ModelError {
    ModelError::Missing { parent, child }
}

const NS: &Namespace = &Namespace::DevInf;

// ---------------------------------------------------------------------------------
// DevInf
// ---------------------------------------------------------------------------------

/// A device information document (`<DevInf>`, DevInf 1.0, 1.1 or 1.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DevInf {
    /// `VerDTD`: `"1.2"` or `"1.1"` (`"1.0"` accepted); selects the output format.
    pub ver_dtd: String,
    /// `Man`: manufacturer.
    pub man: Option<String>,
    /// `Mod`: model name or number.
    pub model: Option<String>,
    /// `OEM`: original equipment manufacturer.
    pub oem: Option<String>,
    /// `FwV`: firmware version.
    pub fw_v: Option<String>,
    /// `SwV`: software version.
    pub sw_v: Option<String>,
    /// `HwV`: hardware version.
    pub hw_v: Option<String>,
    /// `DevID`: the device identifier (IMEI, server URI, ...).
    pub dev_id: String,
    /// `DevTyp`: `pager`, `handheld`, `pda`, `phone`, `smartphone`, `server`,
    /// `workstation` (kept as text).
    pub dev_typ: String,
    /// `UTC`: the device wants date-times in UTC.
    pub utc: bool,
    /// `SupportLargeObjs`: the device accepts large objects (chunked items).
    pub support_large_objs: bool,
    /// `SupportNumberOfChanges`: the device understands `NumberOfChanges`.
    pub support_number_of_changes: bool,
    /// `DataStore`: one per local database.
    pub data_stores: Vec<DataStore>,
    /// DevInf-level `CTCap` in the flat DevInf 1.0/1.1 form.
    pub ct_caps: Vec<CtCap11>,
    /// `Ext`: non-standard extensions.
    pub exts: Vec<Ext>,
}

impl DevInf {
    /// Reads a `<DevInf>` element (in any namespace; see the module docs for what is
    /// tolerated).
    pub fn from_element(el: Element) -> Result<DevInf, ModelError> {
        let first = DevInf::read(el)?;
        // Bring mixed CTCap forms into the canonical form of the document's version (the
        // form `write` produces), so that reading what we wrote gives the same model
        // (found by the `message_roundtrip` fuzz target).
        let mut b = crate::tree::TreeBuilder::new();
        first.write(&mut b);
        match b.finish().map(DevInf::read) {
            Some(Ok(canonical)) => Ok(canonical),
            _ => Ok(first),
        }
    }

    fn read(el: Element) -> Result<DevInf, ModelError> {
        if tag(&el.name) != Some(Tag::DevInf) {
            return Err(ModelError::UnexpectedRoot {
                expected: "DevInf",
                found: el.name.chars().take(64).collect(),
            });
        }
        let mut d = DevInf::default();
        let mut ver_dtd = None;
        let mut dev_id = None;
        let mut dev_typ = None;
        let mut hierarchical = false;
        let mut orphans: Vec<CtCap> = Vec::new();
        for c in into_elements(el) {
            match tag(&c.name) {
                Some(Tag::VerDtd) => ver_dtd = Some(trimmed(c, "VerDTD")?),
                // An empty element is how DevInf 1.2 says "unknown" for these
                // required-but-unknown values: read it as absent, so that what we
                // write (an empty element for `None`) reads back the same.
                Some(Tag::Man) => d.man = non_empty(raw(&c, "Man")?),
                Some(Tag::Mod) => d.model = non_empty(raw(&c, "Mod")?),
                Some(Tag::Oem) => d.oem = non_empty(raw(&c, "OEM")?),
                Some(Tag::FwV) => d.fw_v = non_empty(trimmed(c, "FwV")?),
                Some(Tag::SwV) => d.sw_v = non_empty(trimmed(c, "SwV")?),
                Some(Tag::HwV) => d.hw_v = non_empty(trimmed(c, "HwV")?),
                Some(Tag::DevId) => dev_id = Some(trimmed(c, "DevID")?),
                Some(Tag::DevTyp) => dev_typ = Some(trimmed(c, "DevTyp")?),
                Some(Tag::Utc) => d.utc = true,
                Some(Tag::SupportLargeObjs) => d.support_large_objs = true,
                Some(Tag::SupportNumberOfChanges) => d.support_number_of_changes = true,
                Some(Tag::SupportHierarchicalSync) => hierarchical = true,
                Some(Tag::DataStore) => d.data_stores.push(DataStore::from_element(c)?),
                Some(Tag::CtCap) => {
                    if is_flat_ctcap(&c, true) {
                        d.ct_caps.push(CtCap11::from_element(c)?);
                    } else {
                        orphans.push(CtCap::from_element(c)?);
                    }
                }
                Some(Tag::Ext) => d.exts.push(Ext::from_element(c)?),
                _ => {}
            }
        }
        d.dev_id = dev_id.ok_or(missing("DevInf", "DevID"))?;
        d.dev_typ = dev_typ.ok_or(missing("DevInf", "DevTyp"))?;
        d.ver_dtd = match ver_dtd {
            Some(v) => v,
            None if !d.ct_caps.is_empty() => "1.1".to_string(),
            None => "1.2".to_string(),
        };
        if hierarchical {
            for ds in &mut d.data_stores {
                ds.support_hierarchical_sync = true;
            }
        }
        for cap in orphans {
            if d.data_stores.is_empty() {
                d.ct_caps
                    .push(CtCap11::from_ct_caps(std::slice::from_ref(&cap)));
                continue;
            }
            let mut placed = false;
            for ds in &mut d.data_stores {
                if ds.handles(&cap.ct_type) {
                    ds.add_ct_cap(cap.clone());
                    placed = true;
                }
            }
            if !placed {
                if let Some(ds) = d.data_stores.first_mut() {
                    ds.add_ct_cap(cap);
                }
            }
        }
        Ok(d)
    }

    /// True for a DevInf 1.0 or 1.1 document (`VerDTD` `1.0`/`1.1`): DevInf-level flat
    /// `CTCap`, no 1.2-only elements. Anything else is written as DevInf 1.2.
    pub fn is_v1_1(&self) -> bool {
        matches!(self.ver_dtd.trim(), "1.0" | "1.1")
    }

    /// The data store with this `SourceRef` (compared exactly, after trimming).
    pub fn data_store(&self, source_ref: &str) -> Option<&DataStore> {
        let want = source_ref.trim();
        self.data_stores.iter().find(|d| d.source_ref == want)
    }

    /// Writes `<DevInf>` and its content in the DTD order of [`DevInf::ver_dtd`], every
    /// element in [`Namespace::DevInf`]. Mixed `CTCap` forms are converted (module docs).
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        let v11 = self.is_v1_1();
        s.start(NS, "DevInf");
        leaf(s, NS, "VerDTD", &self.ver_dtd);
        // DevInf 1.2 requires Man, Mod, FwV, SwV and HwV; 1.1 makes them optional.
        let required = |s: &mut S, name: &str, v: &Option<String>| match (v, v11) {
            (Some(v), _) => leaf(s, NS, name, v),
            (None, false) => leaf(s, NS, name, ""),
            (None, true) => {}
        };
        required(s, "Man", &self.man);
        required(s, "Mod", &self.model);
        opt_leaf(s, NS, "OEM", self.oem.as_deref());
        required(s, "FwV", &self.fw_v);
        required(s, "SwV", &self.sw_v);
        required(s, "HwV", &self.hw_v);
        leaf(s, NS, "DevID", &self.dev_id);
        leaf(s, NS, "DevTyp", &self.dev_typ);
        flag(s, NS, "UTC", self.utc);
        flag(s, NS, "SupportLargeObjs", self.support_large_objs);
        flag(
            s,
            NS,
            "SupportNumberOfChanges",
            self.support_number_of_changes,
        );
        if v11 {
            for ds in &self.data_stores {
                ds.write_v11(s);
            }
            for cap in &self.ct_caps {
                cap.write(s);
            }
            // Nested (1.2) capabilities of the data stores have no place in a 1.1
            // DataStore: one more flat CTCap at DevInf level, each type once.
            let mut nested: Vec<CtCap> = Vec::new();
            for cap in self.data_stores.iter().flat_map(|d| d.ct_caps.iter()) {
                let seen = nested.iter().any(|c| same_type(c, cap))
                    || self.ct_caps.iter().any(|f| f.has_type(&cap.ct_type));
                if !seen {
                    nested.push(cap.clone());
                }
            }
            if !nested.is_empty() {
                CtCap11::from_ct_caps(&nested).write(s);
            }
        } else {
            let flat: Vec<CtCap> = self.ct_caps.iter().flat_map(|f| f.to_ct_caps()).collect();
            for ds in &self.data_stores {
                let mut extra: Vec<CtCap> = Vec::new();
                for cap in flat.iter().filter(|c| ds.handles(&c.ct_type)) {
                    let mut cap = cap.clone();
                    if cap.ver_ct.is_empty() {
                        cap.ver_ct = ds.ver_ct_of(&cap.ct_type).unwrap_or_default();
                    }
                    let dup = ds.ct_caps.iter().any(|c| same_type(c, &cap))
                        || extra.iter().any(|c| same_type(c, &cap));
                    if !dup {
                        extra.push(cap);
                    }
                }
                ds.write_v12(s, &extra);
            }
        }
        for ext in &self.exts {
            ext.write(s);
        }
        s.end();
    }
}

/// Same content type and version (type compared case-insensitively).
fn same_type(a: &CtCap, b: &CtCap) -> bool {
    a.ct_type.eq_ignore_ascii_case(&b.ct_type) && a.ver_ct == b.ver_ct
}

/// Decides whether a `CTCap` element is the flat 1.0/1.1 form. The first decisive child
/// wins; a `CTCap` holding only `CTType`/`VerCT` is flat at DevInf level and nested
/// inside a `DataStore`.
fn is_flat_ctcap(el: &Element, at_devinf_level: bool) -> bool {
    let mut ct_types = 0usize;
    for c in el.elements() {
        match tag(&c.name) {
            Some(Tag::Property | Tag::FieldLevel) => return false,
            Some(
                Tag::PropName
                | Tag::ParamName
                | Tag::ValEnum
                | Tag::DataType
                | Tag::Size
                | Tag::MaxSize
                | Tag::DisplayName,
            ) => return true,
            Some(Tag::CtType) => ct_types += 1,
            _ => {}
        }
    }
    ct_types > 1 || at_devinf_level
}

// ---------------------------------------------------------------------------------
// DataStore and its parts
// ---------------------------------------------------------------------------------

/// A content type and its version (`Rx-Pref`, `Rx`, `Tx-Pref`, `Tx`, `Filter-Rx`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CtTypeVer {
    /// `CTType`: the MIME type (`text/x-vcard`).
    pub ct_type: String,
    /// `VerCT`: its version (`2.1`); empty when the peer sent none.
    pub ver_ct: String,
}

impl CtTypeVer {
    /// A content type with a version.
    pub fn new(ct_type: impl Into<String>, ver_ct: impl Into<String>) -> CtTypeVer {
        CtTypeVer {
            ct_type: ct_type.into(),
            ver_ct: ver_ct.into(),
        }
    }

    fn from_element(el: Element, parent: &'static str) -> Result<CtTypeVer, ModelError> {
        let mut ct_type = None;
        let mut ver_ct = String::new();
        for c in into_elements(el) {
            match tag(&c.name) {
                Some(Tag::CtType) => ct_type = Some(trimmed(c, "CTType")?),
                Some(Tag::VerCt) => ver_ct = trimmed(c, "VerCT")?,
                _ => {}
            }
        }
        Ok(CtTypeVer {
            ct_type: ct_type.ok_or(missing(parent, "CTType"))?,
            ver_ct,
        })
    }

    fn write<S: Sink + ?Sized>(&self, s: &mut S, name: &str) {
        s.start(NS, name);
        leaf(s, NS, "CTType", &self.ct_type);
        leaf(s, NS, "VerCT", &self.ver_ct);
        s.end();
    }
}

/// A local database (`<DataStore>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataStore {
    /// `SourceRef`: the database's URI (`./contacts`).
    pub source_ref: String,
    /// `DisplayName`: a human-readable name.
    pub display_name: Option<String>,
    /// `MaxGUIDSize`: the longest item id the device accepts (servers honour it, DEV-12).
    pub max_guid_size: Option<u32>,
    /// `Rx-Pref`: the preferred content type received.
    pub rx_pref: CtTypeVer,
    /// `Rx`: further content types received.
    pub rx: Vec<CtTypeVer>,
    /// `Tx-Pref`: the preferred content type sent.
    pub tx_pref: CtTypeVer,
    /// `Tx`: further content types sent.
    pub tx: Vec<CtTypeVer>,
    /// `CTCap`: content type capabilities in the nested DevInf 1.2 form.
    pub ct_caps: Vec<CtCap>,
    /// `DSMem`: memory limits.
    pub ds_mem: Option<DsMem>,
    /// `SupportHierarchicalSync` (1.2): the store supports folders.
    pub support_hierarchical_sync: bool,
    /// `SyncCap`: the supported sync types.
    pub sync_cap: SyncCap,
    /// `Filter-Rx` (1.2): the filter grammars accepted.
    pub filter_rx: Vec<CtTypeVer>,
    /// `FilterCap` (1.2): filtering capabilities per content type.
    pub filter_caps: Vec<FilterCap>,
}

impl DataStore {
    /// Reads a `<DataStore>` element.
    pub fn from_element(el: Element) -> Result<DataStore, ModelError> {
        let mut ds = DataStore::default();
        let mut source_ref = None;
        let mut rx_pref = None;
        let mut tx_pref = None;
        let mut flat = Vec::new();
        for c in into_elements(el) {
            match tag(&c.name) {
                Some(Tag::SourceRef) => source_ref = Some(trimmed(c, "SourceRef")?),
                Some(Tag::DisplayName) => ds.display_name = Some(raw(&c, "DisplayName")?),
                Some(Tag::MaxGuidSize) => ds.max_guid_size = Some(number(&c, "MaxGUIDSize")?),
                Some(Tag::RxPref) => {
                    let x = CtTypeVer::from_element(c, "Rx-Pref")?;
                    if rx_pref.is_none() {
                        rx_pref = Some(x);
                    } else {
                        ds.rx.push(x);
                    }
                }
                Some(Tag::Rx) => ds.rx.push(CtTypeVer::from_element(c, "Rx")?),
                Some(Tag::TxPref) => {
                    let x = CtTypeVer::from_element(c, "Tx-Pref")?;
                    if tx_pref.is_none() {
                        tx_pref = Some(x);
                    } else {
                        ds.tx.push(x);
                    }
                }
                Some(Tag::Tx) => ds.tx.push(CtTypeVer::from_element(c, "Tx")?),
                Some(Tag::CtCap) => {
                    if is_flat_ctcap(&c, false) {
                        flat.push(CtCap11::from_element(c)?);
                    } else {
                        ds.ct_caps.push(CtCap::from_element(c)?);
                    }
                }
                Some(Tag::DsMem) => ds.ds_mem = Some(DsMem::from_element(c)?),
                Some(Tag::SupportHierarchicalSync) => ds.support_hierarchical_sync = true,
                Some(Tag::SyncCap) => {
                    let more = SyncCap::from_element(c)?;
                    ds.sync_cap.sync_types.extend(more.sync_types);
                }
                Some(Tag::FilterRx) => ds.filter_rx.push(CtTypeVer::from_element(c, "Filter-Rx")?),
                Some(Tag::FilterCap) => ds.filter_caps.push(FilterCap::from_element(c)?),
                _ => {}
            }
        }
        ds.source_ref = source_ref.ok_or(missing("DataStore", "SourceRef"))?;
        ds.rx_pref = rx_pref.unwrap_or_default();
        ds.tx_pref = tx_pref.unwrap_or_default();
        for cap in flat.iter().flat_map(|f| f.to_ct_caps()) {
            let mut cap = cap;
            if cap.ver_ct.is_empty() {
                cap.ver_ct = ds.ver_ct_of(&cap.ct_type).unwrap_or_default();
            }
            ds.add_ct_cap(cap);
        }
        Ok(ds)
    }

    /// Every content type this store receives or sends (`Rx-Pref`, `Rx`, `Tx-Pref`, `Tx`).
    pub fn content_types(&self) -> impl Iterator<Item = &CtTypeVer> {
        std::iter::once(&self.rx_pref)
            .chain(self.rx.iter())
            .chain(std::iter::once(&self.tx_pref))
            .chain(self.tx.iter())
            .filter(|c| !c.ct_type.is_empty())
    }

    /// The nested capability for a content type (compared case-insensitively) and,
    /// when given, version.
    pub fn ct_cap(&self, ct_type: &str, ver_ct: Option<&str>) -> Option<&CtCap> {
        self.ct_caps.iter().find(|c| {
            c.ct_type.eq_ignore_ascii_case(ct_type.trim())
                && ver_ct.is_none_or(|v| c.ver_ct == v.trim())
        })
    }

    /// True when the store receives or sends this content type.
    fn handles(&self, ct_type: &str) -> bool {
        self.content_types()
            .any(|c| c.ct_type.eq_ignore_ascii_case(ct_type))
    }

    /// The version this store lists for a content type, if any.
    fn ver_ct_of(&self, ct_type: &str) -> Option<String> {
        self.content_types()
            .find(|c| c.ct_type.eq_ignore_ascii_case(ct_type))
            .map(|c| c.ver_ct.clone())
    }

    /// Adds a capability unless one for the same type and version is present.
    fn add_ct_cap(&mut self, cap: CtCap) {
        if !self.ct_caps.iter().any(|c| same_type(c, &cap)) {
            self.ct_caps.push(cap);
        }
    }

    fn write_head<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(NS, "DataStore");
        leaf(s, NS, "SourceRef", &self.source_ref);
        opt_leaf(s, NS, "DisplayName", self.display_name.as_deref());
        if let Some(n) = self.max_guid_size {
            leaf(s, NS, "MaxGUIDSize", &n.to_string());
        }
        self.rx_pref.write(s, "Rx-Pref");
        for x in &self.rx {
            x.write(s, "Rx");
        }
        self.tx_pref.write(s, "Tx-Pref");
        for x in &self.tx {
            x.write(s, "Tx");
        }
    }

    /// DevInf 1.1: `(SourceRef, DisplayName?, MaxGUIDSize?, Rx-Pref, Rx*, Tx-Pref, Tx*,
    /// DSMem?, SyncCap)`.
    fn write_v11<S: Sink + ?Sized>(&self, s: &mut S) {
        self.write_head(s);
        if let Some(m) = &self.ds_mem {
            m.write(s);
        }
        self.sync_cap.write(s);
        s.end();
    }

    /// DevInf 1.2: `(..., Tx*, CTCap*, DSMem?, SupportHierarchicalSync?, SyncCap,
    /// Filter-Rx*, FilterCap*)`; `extra` are converted DevInf-level capabilities.
    fn write_v12<S: Sink + ?Sized>(&self, s: &mut S, extra: &[CtCap]) {
        self.write_head(s);
        for cap in self.ct_caps.iter().chain(extra) {
            cap.write(s);
        }
        if let Some(m) = &self.ds_mem {
            m.write(s);
        }
        flag(
            s,
            NS,
            "SupportHierarchicalSync",
            self.support_hierarchical_sync,
        );
        self.sync_cap.write(s);
        for x in &self.filter_rx {
            x.write(s, "Filter-Rx");
        }
        for f in &self.filter_caps {
            f.write(s);
        }
        s.end();
    }
}

/// Memory limits of a data store (`<DSMem>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DsMem {
    /// `SharedMem`: the store shares memory with other stores.
    pub shared_mem: bool,
    /// `MaxMem`: maximum memory in bytes.
    pub max_mem: Option<u64>,
    /// `MaxID`: maximum number of items.
    pub max_id: Option<u64>,
}

impl DsMem {
    fn from_element(el: Element) -> Result<DsMem, ModelError> {
        let mut m = DsMem::default();
        for c in into_elements(el) {
            match tag(&c.name) {
                Some(Tag::SharedMem) => m.shared_mem = true,
                Some(Tag::MaxMem) => m.max_mem = Some(number(&c, "MaxMem")?),
                Some(Tag::MaxId) => m.max_id = Some(number(&c, "MaxID")?),
                _ => {}
            }
        }
        Ok(m)
    }

    fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(NS, "DSMem");
        flag(s, NS, "SharedMem", self.shared_mem);
        if let Some(n) = self.max_mem {
            leaf(s, NS, "MaxMem", &n.to_string());
        }
        if let Some(n) = self.max_id {
            leaf(s, NS, "MaxID", &n.to_string());
        }
        s.end();
    }
}

/// The sync types a data store supports (`<SyncCap>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncCap {
    /// `SyncType` values as sent (trimmed): `"1"` two-way, `"2"` slow, `"3"` one-way
    /// from client, `"4"` refresh from client, `"5"` one-way from server, `"6"` refresh
    /// from server, `"7"` server-alerted; peers also write `"01"`... and vendor values.
    pub sync_types: Vec<String>,
}

impl SyncCap {
    /// True when a `SyncType` equals `sync_type` as a number (`"01"` counts as 1).
    pub fn supports(&self, sync_type: u32) -> bool {
        self.sync_types
            .iter()
            .any(|t| t.trim().parse::<u32>().ok() == Some(sync_type))
    }

    fn from_element(el: Element) -> Result<SyncCap, ModelError> {
        let mut sync_types = Vec::new();
        for c in into_elements(el) {
            if tag(&c.name) == Some(Tag::SyncType) {
                sync_types.push(trimmed(c, "SyncType")?);
            }
        }
        Ok(SyncCap { sync_types })
    }

    fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(NS, "SyncCap");
        for t in &self.sync_types {
            leaf(s, NS, "SyncType", t);
        }
        s.end();
    }
}

/// Filtering capabilities for one content type (`<FilterCap>`, DevInf 1.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterCap {
    /// `CTType`.
    pub ct_type: String,
    /// `VerCT`.
    pub ver_ct: String,
    /// `FilterKeyword`: keywords usable in filters.
    pub filter_keywords: Vec<String>,
    /// `PropName`: properties usable in filters.
    pub prop_names: Vec<String>,
}

impl FilterCap {
    fn from_element(el: Element) -> Result<FilterCap, ModelError> {
        let mut f = FilterCap::default();
        let mut ct_type = None;
        for c in into_elements(el) {
            match tag(&c.name) {
                Some(Tag::CtType) => ct_type = Some(trimmed(c, "CTType")?),
                Some(Tag::VerCt) => f.ver_ct = trimmed(c, "VerCT")?,
                Some(Tag::FilterKeyword) => f.filter_keywords.push(trimmed(c, "FilterKeyword")?),
                Some(Tag::PropName) => f.prop_names.push(trimmed(c, "PropName")?),
                _ => {}
            }
        }
        f.ct_type = ct_type.ok_or(missing("FilterCap", "CTType"))?;
        Ok(f)
    }

    fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(NS, "FilterCap");
        leaf(s, NS, "CTType", &self.ct_type);
        leaf(s, NS, "VerCT", &self.ver_ct);
        for k in &self.filter_keywords {
            leaf(s, NS, "FilterKeyword", k);
        }
        for p in &self.prop_names {
            leaf(s, NS, "PropName", p);
        }
        s.end();
    }
}

/// A non-standard extension (`<Ext>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ext {
    /// `XNam`: the extension's name.
    pub xnam: String,
    /// `XVal`: its values.
    pub xvals: Vec<String>,
}

impl Ext {
    fn from_element(el: Element) -> Result<Ext, ModelError> {
        let mut xnam = None;
        let mut xvals = Vec::new();
        for c in into_elements(el) {
            match tag(&c.name) {
                Some(Tag::XNam) => xnam = Some(trimmed(c, "XNam")?),
                Some(Tag::XVal) => xvals.push(raw(&c, "XVal")?),
                _ => {}
            }
        }
        Ok(Ext {
            xnam: xnam.ok_or(missing("Ext", "XNam"))?,
            xvals,
        })
    }

    fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(NS, "Ext");
        leaf(s, NS, "XNam", &self.xnam);
        for v in &self.xvals {
            leaf(s, NS, "XVal", v);
        }
        s.end();
    }
}

// ---------------------------------------------------------------------------------
// CTCap, DevInf 1.2 (nested)
// ---------------------------------------------------------------------------------

/// Capabilities for one content type, DevInf 1.2 form (`<CTCap>` inside `DataStore`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CtCap {
    /// `CTType`.
    pub ct_type: String,
    /// `VerCT` (required in 1.2; empty when the peer sent none).
    pub ver_ct: String,
    /// `FieldLevel`: the store supports field-level replace.
    pub field_level: bool,
    /// `Property`: the supported properties.
    pub properties: Vec<Property>,
}

impl CtCap {
    /// Reads a nested (1.2) `<CTCap>` element.
    pub fn from_element(el: Element) -> Result<CtCap, ModelError> {
        let mut cap = CtCap::default();
        let mut ct_type = None;
        for c in into_elements(el) {
            match tag(&c.name) {
                Some(Tag::CtType) => ct_type = Some(trimmed(c, "CTType")?),
                Some(Tag::VerCt) => cap.ver_ct = trimmed(c, "VerCT")?,
                Some(Tag::FieldLevel) => cap.field_level = true,
                Some(Tag::Property) => cap.properties.push(Property::from_element(c)?),
                _ => {}
            }
        }
        cap.ct_type = ct_type.ok_or(missing("CTCap", "CTType"))?;
        Ok(cap)
    }

    /// The property with this name (compared case-insensitively).
    pub fn property(&self, prop_name: &str) -> Option<&Property> {
        self.properties
            .iter()
            .find(|p| p.prop_name.eq_ignore_ascii_case(prop_name.trim()))
    }

    /// Writes `(CTType, VerCT, FieldLevel?, Property*)`.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(NS, "CTCap");
        leaf(s, NS, "CTType", &self.ct_type);
        leaf(s, NS, "VerCT", &self.ver_ct);
        flag(s, NS, "FieldLevel", self.field_level);
        for p in &self.properties {
            p.write(s);
        }
        s.end();
    }
}

/// One supported property of a content type (`<Property>`, DevInf 1.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Property {
    /// `PropName` (`TEL`).
    pub prop_name: String,
    /// `DataType` (`chr`, `int`, ...); `Some("")` for an empty `<DataType/>`.
    pub data_type: Option<String>,
    /// `MaxOccur`: how often the property may occur.
    pub max_occur: Option<u32>,
    /// `MaxSize` (1.2; `Size` in 1.1): the longest value kept.
    pub max_size: Option<u32>,
    /// `NoTruncate`: longer values are rejected rather than truncated.
    pub no_truncate: bool,
    /// `ValEnum`: the allowed values.
    pub val_enums: Vec<String>,
    /// `DisplayName`.
    pub display_name: Option<String>,
    /// `PropParam`: the supported parameters.
    pub prop_params: Vec<PropParam>,
}

impl Property {
    /// A property with just a name.
    pub fn new(prop_name: impl Into<String>) -> Property {
        Property {
            prop_name: prop_name.into(),
            ..Property::default()
        }
    }

    fn from_element(el: Element) -> Result<Property, ModelError> {
        let mut p = Property::default();
        let mut name = None;
        for c in into_elements(el) {
            match tag(&c.name) {
                Some(Tag::PropName) => name = Some(trimmed(c, "PropName")?),
                Some(Tag::DataType) => p.data_type = Some(trimmed(c, "DataType")?),
                Some(Tag::MaxOccur) => p.max_occur = Some(number(&c, "MaxOccur")?),
                Some(Tag::MaxSize | Tag::Size) => p.max_size = Some(number(&c, "MaxSize")?),
                Some(Tag::NoTruncate) => p.no_truncate = true,
                Some(Tag::ValEnum) => p.val_enums.push(raw(&c, "ValEnum")?),
                Some(Tag::DisplayName) => p.display_name = Some(raw(&c, "DisplayName")?),
                Some(Tag::PropParam) => p.prop_params.push(PropParam::from_element(c)?),
                _ => {}
            }
        }
        p.prop_name = name.ok_or(missing("Property", "PropName"))?;
        Ok(p)
    }

    /// Writes `(PropName, DataType?, MaxOccur?, MaxSize?, NoTruncate?, ValEnum*,
    /// DisplayName?, PropParam*)`.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(NS, "Property");
        leaf(s, NS, "PropName", &self.prop_name);
        opt_leaf(s, NS, "DataType", self.data_type.as_deref());
        if let Some(n) = self.max_occur {
            leaf(s, NS, "MaxOccur", &n.to_string());
        }
        if let Some(n) = self.max_size {
            leaf(s, NS, "MaxSize", &n.to_string());
        }
        flag(s, NS, "NoTruncate", self.no_truncate);
        for v in &self.val_enums {
            leaf(s, NS, "ValEnum", v);
        }
        opt_leaf(s, NS, "DisplayName", self.display_name.as_deref());
        for p in &self.prop_params {
            p.write(s);
        }
        s.end();
    }
}

/// One supported parameter of a property (`<PropParam>`, DevInf 1.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PropParam {
    /// `ParamName` (`TYPE`).
    pub param_name: String,
    /// `DataType`; `Some("")` for an empty `<DataType/>`.
    pub data_type: Option<String>,
    /// `ValEnum`: the allowed values.
    pub val_enums: Vec<String>,
    /// `DisplayName`.
    pub display_name: Option<String>,
}

impl PropParam {
    /// A parameter with just a name.
    pub fn new(param_name: impl Into<String>) -> PropParam {
        PropParam {
            param_name: param_name.into(),
            ..PropParam::default()
        }
    }

    fn from_element(el: Element) -> Result<PropParam, ModelError> {
        let mut p = PropParam::default();
        let mut name = None;
        for c in into_elements(el) {
            match tag(&c.name) {
                Some(Tag::ParamName) => name = Some(trimmed(c, "ParamName")?),
                Some(Tag::DataType) => p.data_type = Some(trimmed(c, "DataType")?),
                Some(Tag::ValEnum) => p.val_enums.push(raw(&c, "ValEnum")?),
                Some(Tag::DisplayName) => p.display_name = Some(raw(&c, "DisplayName")?),
                _ => {}
            }
        }
        p.param_name = name.ok_or(missing("PropParam", "ParamName"))?;
        Ok(p)
    }

    /// Writes `(ParamName, DataType?, ValEnum*, DisplayName?)`.
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(NS, "PropParam");
        leaf(s, NS, "ParamName", &self.param_name);
        opt_leaf(s, NS, "DataType", self.data_type.as_deref());
        for v in &self.val_enums {
            leaf(s, NS, "ValEnum", v);
        }
        opt_leaf(s, NS, "DisplayName", self.display_name.as_deref());
        s.end();
    }
}

// ---------------------------------------------------------------------------------
// CTCap, DevInf 1.0 / 1.1 (flat)
// ---------------------------------------------------------------------------------

/// A DevInf 1.0/1.1 `<CTCap>`: one flat sequence describing any number of content
/// types, kept entry by entry in document order (the order carries the structure).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CtCap11 {
    /// The children of `CTCap`, in order.
    pub entries: Vec<CtCap11Entry>,
}

/// One child of a flat DevInf 1.0/1.1 `CTCap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtCap11Entry {
    /// `CTType`: starts the description of a content type.
    CtType(String),
    /// `VerCT`: not in the 1.1 DTD but sent by some devices; read (and used by
    /// [`CtCap11::to_ct_caps`]), never written.
    VerCt(String),
    /// `PropName`: starts a property.
    PropName(String),
    /// `ValEnum`: an allowed value of the preceding property or parameter.
    ValEnum(String),
    /// `DataType` of the preceding property or parameter.
    DataType(String),
    /// `Size` (token 0x1C, `MaxSize` in 1.2) of the preceding property or parameter.
    Size(u32),
    /// `DisplayName` of the preceding property or parameter.
    DisplayName(String),
    /// `ParamName`: starts a parameter of the preceding property.
    ParamName(String),
}

impl CtCap11Entry {
    fn name(&self) -> &'static str {
        match self {
            CtCap11Entry::CtType(_) => "CTType",
            CtCap11Entry::VerCt(_) => "VerCT",
            CtCap11Entry::PropName(_) => "PropName",
            CtCap11Entry::ValEnum(_) => "ValEnum",
            CtCap11Entry::DataType(_) => "DataType",
            CtCap11Entry::Size(_) => "Size",
            CtCap11Entry::DisplayName(_) => "DisplayName",
            CtCap11Entry::ParamName(_) => "ParamName",
        }
    }
}

impl CtCap11 {
    /// Reads a flat `<CTCap>` element, keeping every known child in order (unknown
    /// children, and the 1.2-only `MaxOccur`/`NoTruncate`, are skipped).
    pub fn from_element(el: Element) -> Result<CtCap11, ModelError> {
        let mut entries = Vec::new();
        for c in into_elements(el) {
            let e = match tag(&c.name) {
                Some(Tag::CtType) => CtCap11Entry::CtType(trimmed(c, "CTType")?),
                Some(Tag::VerCt) => CtCap11Entry::VerCt(trimmed(c, "VerCT")?),
                Some(Tag::PropName) => CtCap11Entry::PropName(trimmed(c, "PropName")?),
                Some(Tag::ValEnum) => CtCap11Entry::ValEnum(raw(&c, "ValEnum")?),
                Some(Tag::DataType) => CtCap11Entry::DataType(trimmed(c, "DataType")?),
                Some(Tag::Size | Tag::MaxSize) => CtCap11Entry::Size(number(&c, "Size")?),
                Some(Tag::DisplayName) => CtCap11Entry::DisplayName(raw(&c, "DisplayName")?),
                Some(Tag::ParamName) => CtCap11Entry::ParamName(trimmed(c, "ParamName")?),
                _ => continue,
            };
            entries.push(e);
        }
        Ok(CtCap11 { entries })
    }

    /// Writes `<CTCap>` with the entries in order (`VerCT` entries are not written:
    /// the 1.1 DTD has no such child).
    pub fn write<S: Sink + ?Sized>(&self, s: &mut S) {
        s.start(NS, "CTCap");
        for e in &self.entries {
            match e {
                CtCap11Entry::VerCt(_) => {}
                CtCap11Entry::Size(n) => leaf(s, NS, e.name(), &n.to_string()),
                CtCap11Entry::CtType(v)
                | CtCap11Entry::PropName(v)
                | CtCap11Entry::ValEnum(v)
                | CtCap11Entry::DataType(v)
                | CtCap11Entry::DisplayName(v)
                | CtCap11Entry::ParamName(v) => leaf(s, NS, e.name(), v),
            }
        }
        s.end();
    }

    /// True when a `CTType` entry names this type (case-insensitively).
    pub fn has_type(&self, ct_type: &str) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, CtCap11Entry::CtType(t) if t.eq_ignore_ascii_case(ct_type)))
    }

    /// Groups the flat sequence into one nested [`CtCap`] per `CTType`: a `PropName`
    /// starts a [`Property`], a `ParamName` a [`PropParam`] of it, and `ValEnum`,
    /// `DataType`, `DisplayName` belong to the latest parameter, else property. `Size`
    /// becomes the property's `max_size` (parameters have none in 1.2). `ver_ct` comes
    /// from a `VerCT` entry, else stays empty. Entries before the first `CTType` or
    /// `PropName` they need are ignored.
    pub fn to_ct_caps(&self) -> Vec<CtCap> {
        let mut caps: Vec<CtCap> = Vec::new();
        for e in &self.entries {
            if let CtCap11Entry::CtType(t) = e {
                caps.push(CtCap {
                    ct_type: t.clone(),
                    ..CtCap::default()
                });
                continue;
            }
            let Some(cap) = caps.last_mut() else { continue };
            match e {
                CtCap11Entry::CtType(_) => {}
                CtCap11Entry::VerCt(v) => cap.ver_ct = v.clone(),
                CtCap11Entry::PropName(n) => cap.properties.push(Property::new(n.clone())),
                CtCap11Entry::ParamName(n) => {
                    if let Some(p) = cap.properties.last_mut() {
                        p.prop_params.push(PropParam::new(n.clone()));
                    }
                }
                CtCap11Entry::ValEnum(_)
                | CtCap11Entry::DataType(_)
                | CtCap11Entry::Size(_)
                | CtCap11Entry::DisplayName(_) => {
                    let Some(prop) = cap.properties.last_mut() else {
                        continue;
                    };
                    match (prop.prop_params.last_mut(), e) {
                        (Some(pp), CtCap11Entry::ValEnum(v)) => pp.val_enums.push(v.clone()),
                        (Some(pp), CtCap11Entry::DataType(v)) => pp.data_type = Some(v.clone()),
                        (Some(pp), CtCap11Entry::DisplayName(v)) => {
                            pp.display_name = Some(v.clone())
                        }
                        (Some(_), _) => {}
                        (None, CtCap11Entry::ValEnum(v)) => prop.val_enums.push(v.clone()),
                        (None, CtCap11Entry::DataType(v)) => prop.data_type = Some(v.clone()),
                        (None, CtCap11Entry::Size(n)) => prop.max_size = Some(*n),
                        (None, CtCap11Entry::DisplayName(v)) => prop.display_name = Some(v.clone()),
                        (None, _) => {}
                    }
                }
            }
        }
        caps
    }

    /// Flattens nested capabilities into the 1.1 form, following the 1.1 content model
    /// `(PropName, (ValEnum+ | (DataType, Size?))?, DisplayName?, (ParamName, ...)*)`:
    /// values win over a data type; `VerCT`, `FieldLevel`, `MaxOccur`, `NoTruncate` and
    /// a `MaxSize` without `DataType` have no 1.1 spelling and are dropped.
    pub fn from_ct_caps(caps: &[CtCap]) -> CtCap11 {
        fn values(
            out: &mut Vec<CtCap11Entry>,
            val_enums: &[String],
            data_type: Option<&str>,
            size: Option<u32>,
            display_name: Option<&str>,
        ) {
            if !val_enums.is_empty() {
                out.extend(val_enums.iter().cloned().map(CtCap11Entry::ValEnum));
            } else if let Some(dt) = data_type {
                out.push(CtCap11Entry::DataType(dt.to_string()));
                if let Some(n) = size {
                    out.push(CtCap11Entry::Size(n));
                }
            }
            if let Some(d) = display_name {
                out.push(CtCap11Entry::DisplayName(d.to_string()));
            }
        }
        let mut entries = Vec::new();
        for cap in caps {
            entries.push(CtCap11Entry::CtType(cap.ct_type.clone()));
            for p in &cap.properties {
                entries.push(CtCap11Entry::PropName(p.prop_name.clone()));
                values(
                    &mut entries,
                    &p.val_enums,
                    p.data_type.as_deref(),
                    p.max_size,
                    p.display_name.as_deref(),
                );
                for pp in &p.prop_params {
                    entries.push(CtCap11Entry::ParamName(pp.param_name.clone()));
                    values(
                        &mut entries,
                        &pp.val_enums,
                        pp.data_type.as_deref(),
                        None,
                        pp.display_name.as_deref(),
                    );
                }
            }
        }
        CtCap11 { entries }
    }
}

// ---------------------------------------------------------------------------------
// DTD-order normalisation
// ---------------------------------------------------------------------------------

/// Reorders the children of every DevInf element in the tree into the DTD order that
/// [`DevInf::write`] produces (see the `# Quirks` section of the module docs), so a
/// received tree can be compared with our re-encoding. `el` may be a `<DevInf>` or any
/// element containing one (a whole `SyncML` message, a `Put`, ...).
///
/// Only order changes: the sort is stable, nothing is added or removed, the flat
/// DevInf 1.1 `CTCap` is left alone (its order is its meaning), unknown children keep
/// their relative order after the known ones, and character data stays last. The
/// nested-or-flat decision for `CTCap` is the one [`DevInf::from_element`] makes.
pub fn normalize_dtd_order(el: &mut Element) {
    if tag(&el.name) == Some(Tag::DevInf) {
        normalize(el, Ctx::DevInf);
    } else {
        for c in el.children.iter_mut() {
            if let Node::Element(e) = c {
                normalize_dtd_order(e);
            }
        }
    }
}

/// Which content model applies to an element's children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    DevInf,
    DataStore,
    CtCap,
    Property,
    PropParam,
    DsMem,
    Pair,
    FilterCap,
    Ext,
    Leaf,
}

/// The DTD position of a child tag within a context; `None` = unknown there.
fn rank(ctx: Ctx, t: Tag) -> Option<u8> {
    let order: &[Tag] = match ctx {
        Ctx::DevInf => &[
            Tag::VerDtd,
            Tag::Man,
            Tag::Mod,
            Tag::Oem,
            Tag::FwV,
            Tag::SwV,
            Tag::HwV,
            Tag::DevId,
            Tag::DevTyp,
            Tag::Utc,
            Tag::SupportLargeObjs,
            Tag::SupportNumberOfChanges,
            Tag::DataStore,
            Tag::CtCap,
            Tag::Ext,
        ],
        Ctx::DataStore => &[
            Tag::SourceRef,
            Tag::DisplayName,
            Tag::MaxGuidSize,
            Tag::RxPref,
            Tag::Rx,
            Tag::TxPref,
            Tag::Tx,
            Tag::CtCap,
            Tag::DsMem,
            Tag::SupportHierarchicalSync,
            Tag::SyncCap,
            Tag::FilterRx,
            Tag::FilterCap,
        ],
        Ctx::CtCap => &[Tag::CtType, Tag::VerCt, Tag::FieldLevel, Tag::Property],
        Ctx::Property => &[
            Tag::PropName,
            Tag::DataType,
            Tag::MaxOccur,
            Tag::MaxSize,
            Tag::NoTruncate,
            Tag::ValEnum,
            Tag::DisplayName,
            Tag::PropParam,
        ],
        Ctx::PropParam => &[
            Tag::ParamName,
            Tag::DataType,
            Tag::ValEnum,
            Tag::DisplayName,
        ],
        Ctx::DsMem => &[Tag::SharedMem, Tag::MaxMem, Tag::MaxId],
        Ctx::Pair => &[Tag::CtType, Tag::VerCt],
        Ctx::FilterCap => &[Tag::CtType, Tag::VerCt, Tag::FilterKeyword, Tag::PropName],
        Ctx::Ext => &[Tag::XNam, Tag::XVal],
        Ctx::Leaf => &[],
    };
    // `Size` shares token 0x1C with `MaxSize`.
    let t = if t == Tag::Size { Tag::MaxSize } else { t };
    order.iter().position(|&o| o == t).map(|p| p as u8)
}

/// The context of a child element, given its parent's context.
fn child_ctx(parent: Ctx, child: &Element) -> Ctx {
    match (parent, tag(&child.name)) {
        (Ctx::DevInf, Some(Tag::DataStore)) => Ctx::DataStore,
        (Ctx::DevInf, Some(Tag::CtCap)) if !is_flat_ctcap(child, true) => Ctx::CtCap,
        (Ctx::DataStore, Some(Tag::CtCap)) if !is_flat_ctcap(child, false) => Ctx::CtCap,
        (Ctx::DevInf, Some(Tag::Ext)) => Ctx::Ext,
        (Ctx::DataStore, Some(Tag::RxPref | Tag::Rx | Tag::TxPref | Tag::Tx | Tag::FilterRx)) => {
            Ctx::Pair
        }
        (Ctx::DataStore, Some(Tag::DsMem)) => Ctx::DsMem,
        (Ctx::DataStore, Some(Tag::FilterCap)) => Ctx::FilterCap,
        (Ctx::CtCap, Some(Tag::Property)) => Ctx::Property,
        (Ctx::Property, Some(Tag::PropParam)) => Ctx::PropParam,
        _ => Ctx::Leaf,
    }
}

fn normalize(el: &mut Element, ctx: Ctx) {
    if ctx == Ctx::Leaf {
        return;
    }
    for c in el.children.iter_mut() {
        if let Node::Element(e) = c {
            let cc = child_ctx(ctx, e);
            normalize(e, cc);
        }
    }
    // Known children by DTD rank, then unknown elements, then character data.
    el.children.sort_by_key(|n| match n {
        Node::Element(e) => match tag(&e.name).and_then(|t| rank(ctx, t)) {
            Some(r) => (0u8, r),
            None => (1, 0),
        },
        _ => (2, 0),
    });
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

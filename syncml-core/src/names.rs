//! Element names and WBXML tag tokens of the three SyncML vocabularies.
//!
//! One table per code page, taken from OMA SyncML RepPro 1.2 §8.3, MetInf 1.2 §7.2 and
//! DevInf 1.2 (cross-checked against libwbxml's tables, see
//! `reference/syncml-protocol.md` §1.2.3). The same macro expands each table into the
//! token→name and name→token lookups, so the two directions cannot disagree.

use std::borrow::Cow;

macro_rules! code_page {
    ($(#[$doc:meta])* $mod_name:ident { $($tok:literal => $name:literal,)* }) => {
        $(#[$doc])*
        pub mod $mod_name {
            /// Every `(token, name)` pair of this code page, in token order.
            pub const TABLE: &[(u8, &str)] = &[$(($tok, $name),)*];

            /// The element name of a tag token, if the token is assigned.
            pub fn name(token: u8) -> Option<&'static str> {
                match token {
                    $($tok => Some($name),)*
                    _ => None,
                }
            }

            /// The tag token of an element name, if the name is in this code page.
            pub fn token(name: &str) -> Option<u8> {
                match name {
                    $($name => Some($tok),)*
                    _ => None,
                }
            }
        }
    };
}

code_page! {
    /// SyncML code page 0 (SyncML 1.2; SyncML 1.0 and 1.1 use the same tokens, the
    /// 1.2-only tokens 0x35-0x3C are accepted in every version, as libwbxml does
    /// for `SourceParent`).
    syncml {
        0x05 => "Add", 0x06 => "Alert", 0x07 => "Archive", 0x08 => "Atomic",
        0x09 => "Chal", 0x0A => "Cmd", 0x0B => "CmdID", 0x0C => "CmdRef",
        0x0D => "Copy", 0x0E => "Cred", 0x0F => "Data", 0x10 => "Delete",
        0x11 => "Exec", 0x12 => "Final", 0x13 => "Get", 0x14 => "Item",
        0x15 => "Lang", 0x16 => "LocName", 0x17 => "LocURI", 0x18 => "Map",
        0x19 => "MapItem", 0x1A => "Meta", 0x1B => "MsgID", 0x1C => "MsgRef",
        0x1D => "NoResp", 0x1E => "NoResults", 0x1F => "Put", 0x20 => "Replace",
        0x21 => "RespURI", 0x22 => "Results", 0x23 => "Search", 0x24 => "Sequence",
        0x25 => "SessionID", 0x26 => "SftDel", 0x27 => "Source", 0x28 => "SourceRef",
        0x29 => "Status", 0x2A => "Sync", 0x2B => "SyncBody", 0x2C => "SyncHdr",
        0x2D => "SyncML", 0x2E => "Target", 0x2F => "TargetRef",
        0x31 => "VerDTD", 0x32 => "VerProto", 0x33 => "NumberOfChanges", 0x34 => "MoreData",
        0x35 => "Field", 0x36 => "Filter", 0x37 => "Record", 0x38 => "FilterType",
        0x39 => "SourceParent", 0x3A => "TargetParent", 0x3B => "Move", 0x3C => "Correlator",
    }
}

code_page! {
    /// MetInf, code page 1 of a SyncML document (MetInf 1.2; 1.1 lacks `FieldLevel`).
    metinf {
        0x05 => "Anchor", 0x06 => "EMI", 0x07 => "Format", 0x08 => "FreeID",
        0x09 => "FreeMem", 0x0A => "Last", 0x0B => "Mark", 0x0C => "MaxMsgSize",
        0x0D => "Mem", 0x0E => "MetInf", 0x0F => "Next", 0x10 => "NextNonce",
        0x11 => "SharedMem", 0x12 => "Size", 0x13 => "Type", 0x14 => "Version",
        0x15 => "MaxObjSize", 0x16 => "FieldLevel",
    }
}

code_page! {
    /// DevInf 1.2, code page 0 of a DevInf document. In DevInf 1.0/1.1 token 0x1C is
    /// `Size` rather than `MaxSize` (see [`crate::names::devinf_name`]).
    devinf {
        0x05 => "CTCap", 0x06 => "CTType", 0x07 => "DataStore", 0x08 => "DataType",
        0x09 => "DevID", 0x0A => "DevInf", 0x0B => "DevTyp", 0x0C => "DisplayName",
        0x0D => "DSMem", 0x0E => "Ext", 0x0F => "FwV", 0x10 => "HwV",
        0x11 => "Man", 0x12 => "MaxGUIDSize", 0x13 => "MaxID", 0x14 => "MaxMem",
        0x15 => "Mod", 0x16 => "OEM", 0x17 => "ParamName", 0x18 => "PropName",
        0x19 => "Rx", 0x1A => "Rx-Pref", 0x1B => "SharedMem", 0x1C => "MaxSize",
        0x1D => "SourceRef", 0x1E => "SwV", 0x1F => "SyncCap", 0x20 => "SyncType",
        0x21 => "Tx", 0x22 => "Tx-Pref", 0x23 => "ValEnum", 0x24 => "VerCT",
        0x25 => "VerDTD", 0x26 => "XNam", 0x27 => "XVal", 0x28 => "UTC",
        0x29 => "SupportNumberOfChanges", 0x2A => "SupportLargeObjs", 0x2B => "Property",
        0x2C => "PropParam", 0x2D => "MaxOccur", 0x2E => "NoTruncate",
        0x30 => "Filter-Rx", 0x31 => "FilterCap", 0x32 => "FilterKeyword", 0x33 => "FieldLevel",
        0x34 => "SupportHierarchicalSync",
    }
}

/// The DevInf element name of a token for a DevInf document of the given WBXML public
/// identifier: DevInf 1.0/1.1 (`0x0FD2`, `0x0FD4`) call token 0x1C `Size`.
pub fn devinf_name(token: u8, public_id: u32) -> Option<&'static str> {
    if token == 0x1C && matches!(public_id, 0x0FD2 | 0x0FD4) {
        return Some("Size");
    }
    devinf::name(token)
}

/// The DevInf tag token of an element name (`Size` and `MaxSize` share 0x1C).
pub fn devinf_token(name: &str) -> Option<u8> {
    if name == "Size" {
        return Some(0x1C);
    }
    devinf::token(name)
}

/// Returns a `'static` name for every name in the tables, so trees built from known
/// vocabularies do not allocate a string per element.
pub fn intern(name: &str) -> Cow<'static, str> {
    if let Some(t) = syncml::token(name) {
        return Cow::Borrowed(syncml::name(t).unwrap_or("SyncML"));
    }
    if let Some(t) = metinf::token(name) {
        return Cow::Borrowed(metinf::name(t).unwrap_or("MetInf"));
    }
    if name == "Size" {
        return Cow::Borrowed("Size");
    }
    if let Some(t) = devinf::token(name) {
        return Cow::Borrowed(devinf::name(t).unwrap_or("DevInf"));
    }
    Cow::Owned(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_0x30_of_syncml_page_is_reserved() {
        assert_eq!(syncml::name(0x30), None);
    }

    #[test]
    fn devinf_0x1c_is_size_in_1_1_and_maxsize_in_1_2() {
        assert_eq!(devinf_name(0x1C, 0x0FD4), Some("Size"));
        assert_eq!(devinf_name(0x1C, 0x1203), Some("MaxSize"));
        assert_eq!(devinf_token("Size"), Some(0x1C));
        assert_eq!(devinf_token("MaxSize"), Some(0x1C));
    }

    #[test]
    fn tables_are_bijective() {
        for table in [syncml::TABLE, metinf::TABLE, devinf::TABLE] {
            for (i, (t, n)) in table.iter().enumerate() {
                assert!((0x05..=0x3F).contains(t), "{n}");
                assert!(table[i + 1..].iter().all(|(t2, n2)| t2 != t && n2 != n));
            }
        }
        for (t, n) in syncml::TABLE {
            assert_eq!(syncml::token(n), Some(*t));
        }
    }

    #[test]
    fn interned_names_are_static() {
        assert!(matches!(intern("SyncHdr"), Cow::Borrowed("SyncHdr")));
        assert!(matches!(intern("NextNonce"), Cow::Borrowed("NextNonce")));
        assert!(matches!(intern("Rx-Pref"), Cow::Borrowed("Rx-Pref")));
        assert!(matches!(intern("x-unknown"), Cow::Owned(_)));
    }
}

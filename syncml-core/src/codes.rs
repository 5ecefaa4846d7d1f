//! Status (response) codes and alert codes.
//!
//! Both are thin newtypes over the number that travels on the wire (`Status/Data`,
//! `Alert/Data`), so a code this crate does not know (a vendor extension, a typo in a
//! peer, an OMA DM alert such as 1201 that ended up in a DS session) is still a valid
//! value: [`StatusCode::reason`] and [`AlertCode::reason`] simply return `None` for it.
//! Nothing here fails on an unknown number.
//!
//! Every named constant comes from one table per type (a single macro invocation, in
//! the style of quinn's `errors!`), so constants, [`reason`](StatusCode::reason),
//! [`description`](StatusCode::description) and the [`ALL`](StatusCode::ALL) list
//! cannot disagree. Sources: `reference/syncml-protocol.md` §2 (OMA SyncML RepPro 1.2
//! §10, complete list) and §3 (SyncML Sync Protocol 1.1 §11.2, extended for DS 1.2).
//!
//! ```
//! use syncml_core::{AlertCode, StatusCode};
//!
//! assert_eq!(StatusCode::AUTHENTICATION_ACCEPTED.to_string(), "212 Authentication accepted");
//! assert_eq!("508".parse::<StatusCode>(), Ok(StatusCode::REFRESH_REQUIRED));
//! assert!(StatusCode(213).is_success());
//!
//! let alert = AlertCode::TWO_WAY_BY_SERVER;
//! assert!(alert.is_server_alerted());
//! assert_eq!(alert.client_equivalent(), Some(AlertCode::TWO_WAY));
//! assert_eq!(AlertCode(390001).reason(), None); // unknown, but a valid value
//! ```

use std::fmt;
use std::str::FromStr;

/// A SyncML status (response) code, the content of `Status/Data`.
///
/// Any `u16` is a valid value; the associated constants name the codes of
/// OMA SyncML RepPro 1.2 §10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(pub u16);

/// A SyncML alert code, the content of `Alert/Data`.
///
/// Any `u32` is a valid value; the associated constants name the codes of
/// SyncML Sync Protocol 1.1 §11.2 plus the DS 1.2 suspend/resume codes and, clearly
/// marked as proprietary, the Funambol extensions 250-252.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertCode(pub u32);

/// The error of parsing a [`StatusCode`] or [`AlertCode`] from text: the (trimmed)
/// input was not a plain decimal number that fits the code's integer type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a decimal {kind} code")]
pub struct ParseCodeError {
    kind: &'static str,
}

/// Option value for an optional macro column: `opt!()` is `None`, `opt!("x")` is `Some("x")`.
macro_rules! opt {
    () => {
        None
    };
    ($v:literal) => {
        Some($v)
    };
}

/// Expands one table of codes into named constants, `ALL`, `reason`, `description`
/// and `vendor` for the newtype `$ty` over `$int`.
///
/// Row syntax: `NAME = value [(vendor)], "reason", "description";` where `(vendor)`
/// marks a proprietary, non-OMA code.
macro_rules! codes {
    (
        $ty:ident($int:ty), $what:literal;
        $( $name:ident = $val:literal $(($vendor:literal))?, $reason:literal, $desc:literal; )*
    ) => {
        impl $ty {
            $(
                #[doc = concat!(
                    "`", stringify!($val), "` ", $reason,
                    $(" (proprietary, ", $vendor, "; not OMA)",)?
                    ": ", $desc
                )]
                pub const $name: $ty = $ty($val);
            )*

            #[doc = concat!("Every ", $what, " code of the table, in ascending order.")]
            pub const ALL: &'static [$ty] = &[$($ty::$name,)*];

            /// The name of the code as given by the specification (e.g. "Authentication
            /// accepted"), or `None` for a code that is not in the table.
            pub const fn reason(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some($reason),)*
                    _ => None,
                }
            }

            /// What the code means and when it is used, or `None` for a code that is not
            /// in the table.
            pub const fn description(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some($desc),)*
                    _ => None,
                }
            }

            /// The vendor that defined a proprietary (non-OMA) code, e.g. `"Funambol"`;
            /// `None` for OMA codes and for codes not in the table.
            pub const fn vendor(self) -> Option<&'static str> {
                match self.0 {
                    $($val => opt!($($vendor)?),)*
                    _ => None,
                }
            }

            /// `true` if the code is in the table (OMA or proprietary).
            pub const fn is_known(self) -> bool {
                self.reason().is_some()
            }
        }

        impl fmt::Display for $ty {
            /// `"212 Authentication accepted"`; just the number for an unknown code.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.reason() {
                    Some(reason) => write!(f, "{} {}", self.0, reason),
                    None => write!(f, "{}", self.0),
                }
            }
        }

        impl FromStr for $ty {
            type Err = ParseCodeError;

            /// Parses a decimal number, ignoring surrounding whitespace (as found in
            /// `<Data> 200 </Data>`). Signs and other characters are rejected.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let t = s.trim();
                if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseCodeError { kind: $what });
                }
                t.parse::<$int>().map($ty).map_err(|_| ParseCodeError { kind: $what })
            }
        }

        impl From<$int> for $ty {
            fn from(v: $int) -> Self {
                $ty(v)
            }
        }

        impl From<$ty> for $int {
            fn from(c: $ty) -> Self {
                c.0
            }
        }
    };
}

codes! {
    StatusCode(u16), "status";
    IN_PROGRESS = 101, "In progress",
        "Command being carried out, not yet completed. DS: busy signalling, the only Status (for SyncHdr) in a busy reply, without Final.";
    OK = 200, "OK",
        "Command completed successfully. For SyncHdr: credentials accepted for this message only (send them again next time).";
    ITEM_ADDED = 201, "Item added", "Requested item was added.";
    ACCEPTED_FOR_PROCESSING = 202, "Accepted for processing",
        "Remote execution or alert to user/application accepted (asynchronous).";
    NON_AUTHORITATIVE_RESPONSE = 203, "Non-authoritative response",
        "Answered by an entity other than the target; only where the target would have said 200.";
    NO_CONTENT = 204, "No content", "Success, no data returned (e.g. Get on an empty target).";
    RESET_CONTENT = 205, "Reset content",
        "Originator should re-synchronize its content to get an up-to-date version.";
    PARTIAL_CONTENT = 206, "Partial content",
        "Only part of the command completed; a completion status should follow later.";
    CONFLICT_RESOLVED_WITH_MERGE = 207, "Conflict resolved with merge",
        "Update conflict resolved by merging; a Replace with the merged data is sent.";
    CONFLICT_RESOLVED_CLIENT_WINNING = 208, "Conflict resolved with client's command \"winning\"",
        "Update conflict resolved in favour of the client command.";
    CONFLICT_RESOLVED_WITH_DUPLICATE = 209, "Conflict resolved with duplicate",
        "Conflict resolved by duplicating the client's data on the server; Status Item has the duplicate's target URI.";
    DELETE_WITHOUT_ARCHIVE = 210, "Delete without archive",
        "Deleted, but not archived (archiving unsupported): reply to Delete with Archive.";
    ITEM_NOT_DELETED = 211, "Item not deleted",
        "Item to delete was not found (maybe deleted before).";
    AUTHENTICATION_ACCEPTED = 212, "Authentication accepted",
        "No further authentication needed for the rest of the session; only in reply to a request that carried credentials.";
    CHUNKED_ITEM_ACCEPTED = 213, "Chunked item accepted and buffered",
        "Reply to each non-final chunk of a large object (MoreData).";
    OPERATION_CANCELLED = 214, "Operation cancelled",
        "Command completed OK but no more commands will be processed in the session.";
    NOT_EXECUTED = 215, "Not executed",
        "Not executed because the user declined (user interaction).";
    ATOMIC_ROLL_BACK_OK = 216, "Atomic roll back OK",
        "Command inside a failed Atomic was rolled back successfully.";
    MULTIPLE_CHOICES = 300, "Multiple choices",
        "Target is one of several alternatives; alternatives should be in the Status Item.";
    MOVED_PERMANENTLY = 301, "Moved permanently", "Target has a new URI (should be in Item).";
    FOUND = 302, "Found",
        "Target temporarily moved; keep using the original URI; temporary URI should be in Item.";
    SEE_OTHER = 303, "See other", "Target found at another URI (should be in Item).";
    NOT_MODIFIED = 304, "Not modified",
        "Command not executed on the target; may be added to other 3xx responses.";
    USE_PROXY = 305, "Use proxy", "Target must be accessed via the proxy URI (should be in Item).";
    BAD_REQUEST = 400, "Bad request", "Malformed command syntax; the command may be echoed in Item.";
    INVALID_CREDENTIALS = 401, "Invalid credentials",
        "Proper authentication required or supplied credentials refused; a Chal should (SyncML 1.1: must) be included.";
    PAYMENT_NEEDED = 402, "Payment needed", "Payment required (mechanism not standardized).";
    FORBIDDEN = 403, "Forbidden",
        "Understood but refused; authentication will not help; should not be repeated.";
    NOT_FOUND = 404, "Not found",
        "Target not found; also used to hide the reason of a refusal. DS: unknown datastore in Alert.";
    COMMAND_NOT_ALLOWED = 405, "Command not allowed",
        "Command not allowed on the target; allowed command should be in Item.";
    OPTIONAL_FEATURE_NOT_SUPPORTED = 406, "Optional feature not supported",
        "An optional feature in the request is unsupported (sync type, auth scheme, FilterType, ...); named in Item.";
    MISSING_CREDENTIALS = 407, "Missing credentials",
        "Originator must authenticate first; a suitable Chal should be returned.";
    REQUEST_TIMEOUT = 408, "Request timeout",
        "Expected message not received in time; may be repeated later.";
    CONFLICT = 409, "Conflict", "Update conflict between client and server versions.";
    GONE = 410, "Gone", "Target no longer exists and no forwarding URI is known.";
    SIZE_REQUIRED = 411, "Size required", "Command must carry size/length in Meta.";
    INCOMPLETE_COMMAND = 412, "Incomplete command",
        "Command incomplete or incorrectly formed; offending part should be in Item.";
    REQUEST_ENTITY_TOO_LARGE = 413, "Request entity too large",
        "Item larger than the recipient can or will process.";
    URI_TOO_LONG = 414, "URI too long", "Target URI too long (often security related).";
    UNSUPPORTED_MEDIA_TYPE = 415, "Unsupported media type or format",
        "Content type or Format unsupported; should be named in Item.";
    REQUESTED_SIZE_TOO_BIG = 416, "Requested size too big",
        "The byte size specified in the request is too big.";
    RETRY_LATER = 417, "Retry later",
        "Failed now; retry later (RespURI with URI and date/time should be given).";
    ALREADY_EXISTS = 418, "Already exists", "Put or Add failed because the target already exists.";
    CONFLICT_RESOLVED_WITH_SERVER_DATA = 419, "Conflict resolved with server data",
        "Conflict resolved by the server command winning; Status info should let the client undo.";
    DEVICE_FULL = 420, "Device full",
        "Recipient out of storage; Status Item gives the number of remaining items that could not be stored.";
    UNKNOWN_SEARCH_GRAMMAR = 421, "Unknown search grammar", "Search grammar unknown.";
    BAD_CGI_SCRIPT = 422, "Bad CGI Script",
        "CGI in the LocURI (e.g. filter) malformed; offending part should be in Item.";
    SOFT_DELETE_CONFLICT = 423, "Soft-delete conflict",
        "Soft-deleted item was previously hard-deleted on the server.";
    SIZE_MISMATCH = 424, "Size mismatch",
        "Reassembled chunked object size differs from the size declared in the first chunk.";
    PERMISSION_DENIED = 425, "Permission denied", "Sender lacks access-control permission (ACL).";
    PARTIAL_ITEM_NOT_ACCEPTED = 426, "Partial item not accepted",
        "Receiver may resend the whole item in the next package (1.2).";
    ITEM_NOT_EMPTY = 427, "Item not empty",
        "Parent cannot be deleted because it has children (hierarchical sync, 1.2).";
    MOVE_FAILED = 428, "Move failed", "Move failed (1.2).";
    COMMAND_FAILED = 500, "Command failed",
        "Unexpected condition prevented fulfilling the request.";
    COMMAND_NOT_IMPLEMENTED = 501, "Command not implemented",
        "Command not supported for any resource.";
    BAD_GATEWAY = 502, "Bad gateway",
        "Invalid response from an upstream recipient (gateway/proxy role).";
    SERVICE_UNAVAILABLE = 503, "Service unavailable",
        "Temporary overload or maintenance; RespURI with retry time should be given.";
    GATEWAY_TIMEOUT = 504, "Gateway timeout", "No timely response from an upstream recipient.";
    DTD_VERSION_NOT_SUPPORTED = 505, "DTD version not supported",
        "VerDTD unsupported; supported versions must be in Item.";
    PROCESSING_ERROR = 506, "Processing error",
        "Application error; originator should retry.";
    ATOMIC_FAILED = 507, "Atomic failed",
        "The error caused all commands of an Atomic to fail.";
    REFRESH_REQUIRED = 508, "Refresh required",
        "Sync state must be refreshed; an Alert (201 slow sync or a refresh code) is sent in the same package. DS: anchor mismatch.";
    RESERVED_FOR_FUTURE_USE = 509, "Reserved for future use",
        "Reserved (libsynthesis nevertheless uses it for \"cannot resume\").";
    DATA_STORE_FAILURE = 510, "Data store failure", "Failure in the recipient's datastore.";
    SERVER_FAILURE = 511, "Server failure",
        "Severe server error; originator should not retry.";
    SYNCHRONIZATION_FAILED = 512, "Synchronization failed",
        "Application error during the session; restart the session from the beginning.";
    PROTOCOL_VERSION_NOT_SUPPORTED = 513, "Protocol version not supported",
        "VerProto unsupported; supported versions must be in Item.";
    OPERATION_CANCELLED_BEFORE_PROCESSING = 514, "Operation cancelled",
        "Not completed because the operation was cancelled before processing; repeat it in the next session (e.g. commands cut off by Suspend).";
    ATOMIC_ROLL_BACK_FAILED = 516, "Atomic roll back failed",
        "Command in a failed Atomic could not be rolled back.";
    ATOMIC_RESPONSE_TOO_LARGE = 517, "Atomic response too large to fit",
        "Response to an Atomic too large for one message.";
}

codes! {
    AlertCode(u32), "alert";
    DISPLAY = 100, "DISPLAY", "Show the Data content to the user through the user agent.";
    TWO_WAY = 200, "TWO-WAY", "Client-initiated two-way sync.";
    SLOW_SYNC = 201, "SLOW SYNC",
        "Client-initiated two-way slow sync (comparison of all items); also the server's answer to force a slow sync (with Status 508).";
    ONE_WAY_FROM_CLIENT = 202, "ONE-WAY FROM CLIENT", "Client-initiated one-way sync, client to server.";
    REFRESH_FROM_CLIENT = 203, "REFRESH FROM CLIENT",
        "Client-initiated refresh: the server replaces all its data with the client's.";
    ONE_WAY_FROM_SERVER = 204, "ONE-WAY FROM SERVER", "Client-initiated one-way sync, server to client.";
    REFRESH_FROM_SERVER = 205, "REFRESH FROM SERVER",
        "Client-initiated refresh: the client replaces all its data with the server's.";
    TWO_WAY_BY_SERVER = 206, "TWO-WAY BY SERVER",
        "Server-initiated two-way sync (package #0, SAN sync-type 6).";
    ONE_WAY_FROM_CLIENT_BY_SERVER = 207, "ONE-WAY FROM CLIENT BY SERVER",
        "Server-initiated one-way sync, client to server.";
    REFRESH_FROM_CLIENT_BY_SERVER = 208, "REFRESH FROM CLIENT BY SERVER",
        "Server-initiated refresh from client.";
    ONE_WAY_FROM_SERVER_BY_SERVER = 209, "ONE-WAY FROM SERVER BY SERVER",
        "Server-initiated one-way sync, server to client.";
    REFRESH_FROM_SERVER_BY_SERVER = 210, "REFRESH FROM SERVER BY SERVER",
        "Server-initiated refresh from server.";
    RESULT_ALERT = 221, "RESULT ALERT", "Request for sync results (client retry after busy 101).";
    NEXT_MESSAGE = 222, "NEXT MESSAGE",
        "Request for the next message of a multi-message package.";
    NO_END_OF_DATA = 223, "NO END OF DATA",
        "End of data for a chunked object not received (a new object or command arrived first).";
    SUSPEND = 224, "SUSPEND", "Suspend the session (DS 1.2).";
    RESUME = 225, "RESUME",
        "Resume a suspended session, sent per datastore in package #1 (DS 1.2).";
    FUNAMBOL_ONE_WAY_FROM_CLIENT_NO_SLOW = 250 ("Funambol"), "ONE_WAY_FROM_CLIENT_NO_SLOW",
        "Funambol extended alert code for custom sync; not defined by OMA.";
    FUNAMBOL_ONE_WAY_FROM_CLIENT_SLOW = 251 ("Funambol"), "ONE_WAY_FROM_CLIENT_SLOW",
        "Funambol extended alert code for custom sync; not defined by OMA.";
    FUNAMBOL_ONE_WAY_FROM_SERVER_SLOW = 252 ("Funambol"), "ONE_WAY_FROM_SERVER_SLOW",
        "Funambol extended alert code for custom sync; not defined by OMA.";
}

/// The class of a status code, given by its first digit (RepPro 1.2 §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// 1xx: informational.
    Informational,
    /// 2xx: successful.
    Success,
    /// 3xx: redirection.
    Redirection,
    /// 4xx: originator exception (the request was at fault).
    OriginatorException,
    /// 5xx: recipient exception (the recipient failed).
    RecipientException,
}

impl StatusCode {
    /// The number as sent in `Status/Data`.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// The class of the code, or `None` outside 100..=599.
    pub const fn class(self) -> Option<StatusClass> {
        match self.0 {
            100..=199 => Some(StatusClass::Informational),
            200..=299 => Some(StatusClass::Success),
            300..=399 => Some(StatusClass::Redirection),
            400..=499 => Some(StatusClass::OriginatorException),
            500..=599 => Some(StatusClass::RecipientException),
            _ => None,
        }
    }

    /// 1xx.
    pub const fn is_informational(self) -> bool {
        matches!(self.0, 100..=199)
    }

    /// 2xx. Note that this includes codes such as 211 "Item not deleted" and
    /// 215 "Not executed", which the specification classes as successful.
    pub const fn is_success(self) -> bool {
        matches!(self.0, 200..=299)
    }

    /// 3xx.
    pub const fn is_redirection(self) -> bool {
        matches!(self.0, 300..=399)
    }

    /// 4xx: the originator's request was at fault.
    pub const fn is_originator_exception(self) -> bool {
        matches!(self.0, 400..=499)
    }

    /// 5xx: the recipient failed.
    pub const fn is_recipient_exception(self) -> bool {
        matches!(self.0, 500..=599)
    }

    /// 4xx or 5xx.
    pub const fn is_error(self) -> bool {
        matches!(self.0, 400..=599)
    }
}

impl AlertCode {
    /// The number as sent in `Alert/Data`.
    pub const fn as_u32(self) -> u32 {
        self.0
    }

    /// `true` for a proprietary (non-OMA) code of the table, e.g. Funambol's 250-252.
    pub const fn is_proprietary(self) -> bool {
        self.vendor().is_some()
    }

    /// `true` for the OMA sync-type codes 200..=210 (client-initiated 200-205 and
    /// server-alerted 206-210). The proprietary Funambol codes are not included.
    pub const fn is_sync_type(self) -> bool {
        matches!(self.0, 200..=210)
    }

    /// `true` for the server-alerted sync types 206..=210.
    pub const fn is_server_alerted(self) -> bool {
        matches!(self.0, 206..=210)
    }

    /// `true` for the refresh sync types (203, 205, 208, 210).
    pub const fn is_refresh(self) -> bool {
        matches!(self.0, 203 | 205 | 208 | 210)
    }

    /// The client-initiated sync type with the same meaning: 206→200, 207→202,
    /// 208→203, 209→204, 210→205; a client sync type (200..=205) maps to itself;
    /// `None` for every other code.
    pub const fn client_equivalent(self) -> Option<AlertCode> {
        match self.0 {
            200..=205 => Some(self),
            206 => Some(Self::TWO_WAY),
            207 => Some(Self::ONE_WAY_FROM_CLIENT),
            208 => Some(Self::REFRESH_FROM_CLIENT),
            209 => Some(Self::ONE_WAY_FROM_SERVER),
            210 => Some(Self::REFRESH_FROM_SERVER),
            _ => None,
        }
    }

    /// The server-alerted code for a client sync type (the inverse of
    /// [`client_equivalent`](Self::client_equivalent)): 200→206, 202→207, 203→208,
    /// 204→209, 205→210; a server-alerted code maps to itself. `None` for 201 (there
    /// is no server-alerted slow sync) and every other code.
    pub const fn server_alerted_equivalent(self) -> Option<AlertCode> {
        match self.0 {
            206..=210 => Some(self),
            200 => Some(Self::TWO_WAY_BY_SERVER),
            202 => Some(Self::ONE_WAY_FROM_CLIENT_BY_SERVER),
            203 => Some(Self::REFRESH_FROM_CLIENT_BY_SERVER),
            204 => Some(Self::ONE_WAY_FROM_SERVER_BY_SERVER),
            205 => Some(Self::REFRESH_FROM_SERVER_BY_SERVER),
            _ => None,
        }
    }

    /// The alert code of a DevInf `SyncCap/SyncType` value: 1..=6 → 200..=205 and
    /// 7 ("server-alerted sync") → 206, the representative pysyncml uses; `None`
    /// otherwise.
    pub const fn from_sync_type(sync_type: u8) -> Option<AlertCode> {
        match sync_type {
            1..=7 => Some(AlertCode(199 + sync_type as u32)),
            _ => None,
        }
    }

    /// The DevInf `SyncCap/SyncType` value that advertises this sync type:
    /// 200..=205 → 1..=6, every server-alerted code 206..=210 → 7; `None` otherwise.
    pub const fn sync_type(self) -> Option<u8> {
        match self.0 {
            200..=205 => Some((self.0 - 199) as u8),
            206..=210 => Some(7),
            _ => None,
        }
    }

    /// The 4-bit `sync-type` of a SAN 1.2 body for a server-alerted code:
    /// alert code − 200, i.e. 6..=10 for 206..=210; `None` otherwise.
    pub const fn san_sync_type(self) -> Option<u8> {
        match self.0 {
            206..=210 => Some((self.0 - 200) as u8),
            _ => None,
        }
    }

    /// The alert code of a SAN 1.2 `sync-type` nibble: 6..=10 → 206..=210;
    /// `None` otherwise.
    pub const fn from_san_sync_type(nibble: u8) -> Option<AlertCode> {
        match nibble {
            6..=10 => Some(AlertCode(200 + nibble as u32)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_constants_match_the_reference_numbers() {
        assert_eq!(StatusCode::OK, StatusCode(200));
        assert_eq!(StatusCode::ITEM_ADDED, StatusCode(201));
        assert_eq!(StatusCode::AUTHENTICATION_ACCEPTED, StatusCode(212));
        assert_eq!(StatusCode::CHUNKED_ITEM_ACCEPTED, StatusCode(213));
        assert_eq!(StatusCode::INVALID_CREDENTIALS, StatusCode(401));
        assert_eq!(StatusCode::MISSING_CREDENTIALS, StatusCode(407));
        assert_eq!(StatusCode::REFRESH_REQUIRED, StatusCode(508));
        assert_eq!(
            StatusCode::OPERATION_CANCELLED_BEFORE_PROCESSING,
            StatusCode(514)
        );
        assert_eq!(StatusCode::ATOMIC_RESPONSE_TOO_LARGE, StatusCode(517));
    }

    #[test]
    fn status_table_is_complete_sorted_and_unique() {
        // 101, 200-216, 300-305, 400-428, 500-514, 516, 517.
        let expected: Vec<u16> = std::iter::once(101)
            .chain(200..=216)
            .chain(300..=305)
            .chain(400..=428)
            .chain(500..=514)
            .chain([516, 517])
            .collect();
        let got: Vec<u16> = StatusCode::ALL.iter().map(|c| c.0).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn status_codes_not_in_rp12_are_unknown() {
        for n in [
            0,
            100,
            217,
            223,
            250,
            254,
            306,
            429,
            515,
            518,
            600,
            u16::MAX,
        ] {
            let c = StatusCode(n);
            assert_eq!(c.reason(), None, "{n}");
            assert_eq!(c.description(), None, "{n}");
            assert!(!c.is_known());
        }
    }

    #[test]
    fn status_reason_and_description() {
        assert_eq!(StatusCode(212).reason(), Some("Authentication accepted"));
        assert_eq!(
            StatusCode::CHUNKED_ITEM_ACCEPTED.reason(),
            Some("Chunked item accepted and buffered")
        );
        for c in StatusCode::ALL {
            assert!(c.reason().is_some_and(|r| !r.is_empty()));
            assert!(c.description().is_some_and(|d| !d.is_empty()));
            assert_eq!(c.vendor(), None);
        }
    }

    #[test]
    fn status_display_is_number_and_reason() {
        assert_eq!(StatusCode(212).to_string(), "212 Authentication accepted");
        assert_eq!(StatusCode::OK.to_string(), "200 OK");
        assert_eq!(StatusCode(999).to_string(), "999");
    }

    #[test]
    fn status_from_str_accepts_trimmed_decimal_only() {
        assert_eq!(" 212\n".parse(), Ok(StatusCode::AUTHENTICATION_ACCEPTED));
        assert_eq!("0200".parse(), Ok(StatusCode::OK));
        assert_eq!("999".parse(), Ok(StatusCode(999)));
        for bad in [
            "",
            "  ",
            "+200",
            "-1",
            "2 00",
            "200a",
            "0x10",
            "65536",
            "２００",
        ] {
            assert!(bad.parse::<StatusCode>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(StatusCode(101).class(), Some(StatusClass::Informational));
        assert!(StatusCode(101).is_informational());
        assert!(StatusCode(200).is_success() && StatusCode(299).is_success());
        assert!(!StatusCode(199).is_success() && !StatusCode(300).is_success());
        assert!(StatusCode(304).is_redirection());
        assert!(StatusCode(401).is_originator_exception() && StatusCode(401).is_error());
        assert!(StatusCode(508).is_recipient_exception() && StatusCode(508).is_error());
        assert!(!StatusCode(213).is_error());
        assert_eq!(StatusCode(99).class(), None);
        assert_eq!(StatusCode(600).class(), None);
        assert!(!StatusCode(600).is_error());
    }

    #[test]
    fn status_conversions() {
        assert_eq!(u16::from(StatusCode::OK), 200);
        assert_eq!(StatusCode::from(407), StatusCode::MISSING_CREDENTIALS);
        assert_eq!(StatusCode::OK.as_u16(), 200);
        assert!(StatusCode::OK < StatusCode::ITEM_ADDED);
    }

    #[test]
    fn alert_constants_match_the_reference_numbers() {
        assert_eq!(AlertCode::DISPLAY, AlertCode(100));
        assert_eq!(AlertCode::TWO_WAY, AlertCode(200));
        assert_eq!(AlertCode::SLOW_SYNC, AlertCode(201));
        assert_eq!(AlertCode::REFRESH_FROM_SERVER_BY_SERVER, AlertCode(210));
        assert_eq!(AlertCode::RESULT_ALERT, AlertCode(221));
        assert_eq!(AlertCode::NEXT_MESSAGE, AlertCode(222));
        assert_eq!(AlertCode::NO_END_OF_DATA, AlertCode(223));
        assert_eq!(AlertCode::SUSPEND, AlertCode(224));
        assert_eq!(AlertCode::RESUME, AlertCode(225));
        let got: Vec<u32> = AlertCode::ALL.iter().map(|c| c.0).collect();
        let expected: Vec<u32> = std::iter::once(100)
            .chain(200..=210)
            .chain(221..=225)
            .chain(250..=252)
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn alert_unknown_values_are_valid() {
        for n in [0, 101, 211, 220, 226, 249, 253, 1201, 390001, u32::MAX] {
            let c = AlertCode(n);
            assert_eq!(c.reason(), None, "{n}");
            assert_eq!(c.description(), None);
            assert!(!c.is_known() && !c.is_proprietary() && !c.is_sync_type());
            assert_eq!(c.to_string(), n.to_string());
        }
        assert_eq!("390001".parse(), Ok(AlertCode(390001)));
    }

    #[test]
    fn alert_funambol_codes_are_marked_proprietary() {
        for c in [250, 251, 252].map(AlertCode) {
            assert!(c.is_known() && c.is_proprietary(), "{c}");
            assert_eq!(c.vendor(), Some("Funambol"));
            assert!(!c.is_sync_type());
        }
        for c in AlertCode::ALL.iter().filter(|c| c.0 < 250) {
            assert!(!c.is_proprietary(), "{c}");
        }
    }

    #[test]
    fn alert_display_and_from_str() {
        assert_eq!(AlertCode::SLOW_SYNC.to_string(), "201 SLOW SYNC");
        assert_eq!("\t206 ".parse(), Ok(AlertCode::TWO_WAY_BY_SERVER));
        assert!("".parse::<AlertCode>().is_err());
        assert!("+201".parse::<AlertCode>().is_err());
        assert!("4294967296".parse::<AlertCode>().is_err());
        assert_eq!(u32::from(AlertCode::RESUME), 225);
        assert_eq!(AlertCode::from(224), AlertCode::SUSPEND);
    }

    #[test]
    fn alert_is_sync_type_covers_200_to_210() {
        assert!((200..=210).all(|n| AlertCode(n).is_sync_type()));
        assert!(!AlertCode(199).is_sync_type());
        assert!(!AlertCode(211).is_sync_type());
        assert!(!AlertCode::RESUME.is_sync_type());
    }

    #[test]
    fn alert_is_server_alerted_covers_206_to_210() {
        assert!((206..=210).all(|n| AlertCode(n).is_server_alerted()));
        assert!(!(200..=205).any(|n| AlertCode(n).is_server_alerted()));
        assert!(!AlertCode(211).is_server_alerted());
    }

    #[test]
    fn alert_client_equivalent_maps_server_alerted_codes() {
        let pairs = [(206, 200), (207, 202), (208, 203), (209, 204), (210, 205)];
        for (server, client) in pairs {
            assert_eq!(
                AlertCode(server).client_equivalent(),
                Some(AlertCode(client))
            );
            assert_eq!(
                AlertCode(client).server_alerted_equivalent(),
                Some(AlertCode(server))
            );
        }
        for n in 200..=205 {
            assert_eq!(AlertCode(n).client_equivalent(), Some(AlertCode(n)));
        }
        assert_eq!(AlertCode::SLOW_SYNC.server_alerted_equivalent(), None);
        assert_eq!(AlertCode::RESUME.client_equivalent(), None);
        assert_eq!(AlertCode::DISPLAY.server_alerted_equivalent(), None);
    }

    #[test]
    fn alert_is_refresh() {
        let refresh: Vec<u32> = (200..=210).filter(|&n| AlertCode(n).is_refresh()).collect();
        assert_eq!(refresh, [203, 205, 208, 210]);
    }

    #[test]
    fn alert_devinf_sync_type_mapping() {
        let expected = [
            (1, 200),
            (2, 201),
            (3, 202),
            (4, 203),
            (5, 204),
            (6, 205),
            (7, 206),
        ];
        for (st, code) in expected {
            assert_eq!(AlertCode::from_sync_type(st), Some(AlertCode(code)));
            assert_eq!(AlertCode(code).sync_type(), Some(st));
        }
        for n in 207..=210 {
            assert_eq!(AlertCode(n).sync_type(), Some(7));
        }
        assert_eq!(AlertCode::from_sync_type(0), None);
        assert_eq!(AlertCode::from_sync_type(8), None);
        assert_eq!(AlertCode::from_sync_type(u8::MAX), None);
        assert_eq!(AlertCode::RESUME.sync_type(), None);
        assert_eq!(AlertCode(199).sync_type(), None);
    }

    #[test]
    fn alert_san_sync_type_is_code_minus_200() {
        for n in 6..=10u8 {
            let code = AlertCode::from_san_sync_type(n);
            assert_eq!(code, Some(AlertCode(200 + u32::from(n))));
            assert_eq!(code.and_then(AlertCode::san_sync_type), Some(n));
        }
        assert_eq!(AlertCode::from_san_sync_type(5), None);
        assert_eq!(AlertCode::from_san_sync_type(11), None);
        assert_eq!(AlertCode::TWO_WAY.san_sync_type(), None);
    }

    #[test]
    fn parse_error_names_the_kind() {
        let e = "x".parse::<StatusCode>().unwrap_err();
        assert_eq!(e.to_string(), "not a decimal status code");
        let e = "x".parse::<AlertCode>().unwrap_err();
        assert_eq!(e.to_string(), "not a decimal alert code");
    }
}

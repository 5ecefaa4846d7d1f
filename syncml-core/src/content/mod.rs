//! Content format conversion for PIM items: vCard 2.1 ⇄ 3.0, vCalendar 1.0 ⇄
//! iCalendar 2.0, plain text ⇄ vNote 1.1. No I/O.
//!
//! A server stores an item in the format its writer used; a terminal whose DevInf
//! (`Rx-Pref`/`Rx`) does not list that format gets a converted copy
//! ([`convert`]). What [`can_convert`] answers `true` for:
//!
//! | from ⇄ to | content types |
//! |---|---|
//! | vCard 2.1 ⇄ vCard 3.0 | `text/x-vcard` ⇄ `text/vcard` |
//! | vCalendar 1.0 ⇄ iCalendar 2.0 | `text/x-vcalendar` ⇄ `text/calendar` |
//! | plain text ⇄ vNote 1.1 | `text/plain` ⇄ `text/x-vnote` |
//!
//! # Syntax (every format pair)
//!
//! * Line ends: CRLF written; CRLF, bare LF read.
//! * Folding: 3.0/2.0 lines are folded at 75 octets (CRLF + space) and unfolded by
//!   removing CRLF and one white space. 2.1/1.0 values are unfolded the RFC 822 way
//!   (CRLF removed, the white space kept); written 2.1/1.0 lines are not folded except
//!   by quoted-printable soft line breaks (`=` CRLF) at 76 columns.
//! * Encodings: 2.1/1.0 `QUOTED-PRINTABLE` (bare or `ENCODING=`), with soft line breaks,
//!   is decoded; `CHARSET=` (UTF-8, ISO-8859-1/Windows-1252; anything else is read as
//!   UTF-8 when valid, else Latin-1) is decoded and dropped: 3.0/2.0 output is UTF-8.
//!   Writing 2.1/1.0, a value with a line break, a non-ASCII or control character or a
//!   trailing space is written `ENCODING=QUOTED-PRINTABLE` (plus `CHARSET=UTF-8` when
//!   not ASCII). `BASE64` ⇄ `ENCODING=b` (2.1 base64 values end with an empty line).
//! * Text values: 3.0/2.0 escapes (`\\`, `\,`, `\;`, `\n`) ⇄ 2.1/1.0 text (real line
//!   breaks, only `\;` escaped). A backslash right before a `;` separator has no 2.1
//!   spelling and reads back as an escaped semicolon.
//! * Unknown properties, `X-` properties included, are kept with their parameters,
//!   their value converted as text; groups (`item1.TEL`) are kept.
//!
//! # vCard 2.1 ⇄ 3.0 (`vcard`)
//!
//! `VERSION`; bare type parameters (`TEL;WORK;VOICE:`) ⇄ `TYPE=WORK,VOICE` (types are
//! written upper-case in 2.1); `VALUE=URL` ⇄ `VALUE=uri` (other `VALUE`s are dropped
//! for 2.1); `GEO` `lat,lon` ⇄ `lat;lon`; `CATEGORIES` and `NICKNAME` keep their commas
//! as list separators. A 2.1 card without `FN` gets one made from `N` (or `ORG`) in 3.0,
//! which requires it. Not converted: the 2.1 inline `AGENT` vCard stays a nested
//! component; 3.0-only properties (`NICKNAME`, `CATEGORIES`, `CLASS`, `SORT-STRING`,
//! ...) are passed to 2.1 unchanged.
//!
//! # vCalendar 1.0 ⇄ iCalendar 2.0 (`vcalendar`)
//!
//! `VEVENT` and `VTODO`:
//!
//! * `VERSION`; times in UTC (`Z`) and floating times are kept. A 1.0 all-day event
//!   (date-only `DTSTART`, or `DTSTART` at `T000000` with `DTEND` at `T2359xx`) ⇄
//!   `DTSTART;VALUE=DATE`/`DTEND;VALUE=DATE` (exclusive end: the 1.0 end day is
//!   inclusive, written `T235959`). Other date-only 1.0 values ⇄ `VALUE=DATE`. A 2.0
//!   `DURATION` becomes a 1.0 `DTEND`. `TZID` has no 1.0 form: the local time is kept
//!   floating and `VTIMEZONE` is dropped (both reported in [`Converted::notes`]).
//! * `SUMMARY`, `DESCRIPTION`, `LOCATION` and other text: quoted-printable ⇄ escaped
//!   text. `CATEGORIES`/`RESOURCES`: `;` lists ⇄ `,` lists. `CLASS`, `PRIORITY`, `UID`,
//!   `SEQUENCE`, `LAST-MODIFIED` unchanged; `DCREATED` ⇄ `CREATED`; `TRANSP` `0`/`1` ⇄
//!   `OPAQUE`/`TRANSPARENT`; `EXDATE`/`RDATE` `;` ⇄ `,` lists; `ATTENDEE` address ⇄
//!   `mailto:` URI (parameters unchanged).
//! * `STATUS`: `NEEDS ACTION` ⇄ `NEEDS-ACTION`; `COMPLETED`, `TENTATIVE`, `CONFIRMED`
//!   unchanged. Values the other version lacks are kept as `X-VCAL10-STATUS` /
//!   `X-ICAL20-STATUS`.
//! * `AALARM` ⇄ `VALARM` with `ACTION:AUDIO`, `DALARM` ⇄ `ACTION:DISPLAY`: run time ⇄
//!   `TRIGGER` (relative to `DTSTART`, or to `DUE` with `RELATED=END` for a to-do
//!   without a start, when both times are UTC or both floating; else absolute),
//!   snooze time and repeat count ⇄ `DURATION`/`REPEAT`, display text ⇄
//!   `DESCRIPTION`. `EMAIL`/`PROCEDURE` alarms and 1.0 `MALARM`/`PALARM` are not
//!   converted (kept as `X-VCAL10-…`, or dropped with a note).
//! * `RRULE` (and `EXRULE`): `D`, `W` (weekday list), `MP` (`1+`..`5+`, `1-`..`5-`
//!   weekday occurrences), `MD` (days, `n-`, `LD`), `YM` (months) and `YD` (year
//!   days) with an interval and `#count` (`#0`: forever; none: `#2`, the 1.0 default)
//!   or an end time ⇄ `FREQ` `DAILY`/`WEEKLY`/`MONTHLY`/`YEARLY` with `INTERVAL`,
//!   `BYDAY`, `BYMONTHDAY`, `BYMONTH`, `BYYEARDAY`, `COUNT`, `UNTIL` (`WKST=MO` only).
//!   Anything else (1.0 time lists and nested rules; 2.0 `BYSETPOS`, `BYHOUR`,
//!   `BYWEEKNO`, `DAILY` with `BYDAY`, ...) is kept verbatim as `X-VCAL10-RRULE` /
//!   `X-ICAL20-RRULE` and reported in [`Converted::notes`]; converting back restores
//!   it.
//! * `X-VCAL10-name` in 2.0 becomes `name` in 1.0, `X-ICAL20-name` in 1.0 becomes `name`
//!   in 2.0, so what one direction could not convert survives a round trip.
//! * Not converted: `DTSTAMP` is not invented for 2.0; 1.0 `TZ`/`DAYLIGHT` and 2.0
//!   `ORGANIZER`, `GEO`, `URL` and other properties pass through unchanged.
//!
//! # Plain text ⇄ vNote 1.1 (`vnote`)
//!
//! Text becomes `BODY` (quoted-printable where needed) with the first non-empty line
//! as `SUMMARY`; a vNote becomes its `BODY` (its `SUMMARY` if it has no body).
//!
//! # Errors
//!
//! Conversion never panics; it fails with [`ConvertError`] for an unsupported pair, an
//! input without the expected object, or objects nested deeper than 16 levels. When
//! the item's own `VERSION` line already names the target version the input is
//! returned unchanged; when it names the other version of the pair it is converted
//! from that version, whatever the declared type.

mod syntax;

/// Splits a content line (vCard, vCalendar, vNote) at the first `:` outside double quotes
/// into its name part (group, name and parameters) and its value; a line without one is
/// all name.
///
/// ```
/// use syncml_core::content::split_content_line;
/// assert_eq!(split_content_line(r#"X;P="a:b":v:w"#), (r#"X;P="a:b""#, "v:w"));
/// ```
pub fn split_content_line(line: &str) -> (&str, &str) {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => return (&line[..i], &line[i + 1..]),
            _ => {}
        }
    }
    (line, "")
}
mod vcalendar;
mod vcard;
mod vnote;

use syntax::Syntax;

/// A known content format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// vCard 2.1, `text/x-vcard`.
    VCard21,
    /// vCard 3.0, `text/vcard`.
    VCard30,
    /// vCalendar 1.0, `text/x-vcalendar`.
    VCalendar10,
    /// iCalendar 2.0, `text/calendar`.
    ICalendar20,
    /// Plain text, `text/plain`.
    PlainText,
    /// vNote 1.1, `text/x-vnote`.
    VNote11,
}

impl Format {
    /// The content type this format is sent with (`text/x-vcard`, `2.1`).
    pub fn content_type(self) -> ContentType {
        let (m, v) = match self {
            Format::VCard21 => ("text/x-vcard", "2.1"),
            Format::VCard30 => ("text/vcard", "3.0"),
            Format::VCalendar10 => ("text/x-vcalendar", "1.0"),
            Format::ICalendar20 => ("text/calendar", "2.0"),
            Format::PlainText => ("text/plain", "1.0"),
            Format::VNote11 => ("text/x-vnote", "1.1"),
        };
        ContentType::new(m, v)
    }

    /// The other format of the same kind of data, if any (vCard 2.1 for 3.0, ...).
    fn partner(self) -> Format {
        match self {
            Format::VCard21 => Format::VCard30,
            Format::VCard30 => Format::VCard21,
            Format::VCalendar10 => Format::ICalendar20,
            Format::ICalendar20 => Format::VCalendar10,
            Format::PlainText => Format::VNote11,
            Format::VNote11 => Format::PlainText,
        }
    }

    fn syntax(self) -> Syntax {
        match self {
            Format::VCard30 | Format::ICalendar20 => Syntax::New,
            _ => Syntax::Old,
        }
    }

    /// The `VERSION` value of the format's objects.
    fn version(self) -> &'static str {
        match self {
            Format::VCard21 => "2.1",
            Format::VCard30 => "3.0",
            Format::VCalendar10 => "1.0",
            Format::ICalendar20 => "2.0",
            Format::PlainText => "",
            Format::VNote11 => "1.1",
        }
    }
}

/// A content type as DevInf names it: MIME type (`CTType`) and version (`VerCT`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContentType {
    /// The MIME type (`text/x-vcard`); parameters after `;` are ignored when matching.
    pub mime: String,
    /// The version (`2.1`); empty when unknown (then the MIME type decides).
    pub version: String,
}

impl ContentType {
    /// A content type with a version (may be empty).
    pub fn new(mime: impl Into<String>, version: impl Into<String>) -> ContentType {
        ContentType {
            mime: mime.into(),
            version: version.into(),
        }
    }

    /// The known format this names, if any. The version picks the format when it is
    /// one of the MIME type's family (some devices declare `text/vcard` version `2.1`),
    /// else the MIME type alone does; an unknown version (vCard 4.0) is no format.
    pub fn format(&self) -> Option<Format> {
        let mime = self
            .mime
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let version = self.version.trim();
        let (by_mime, family): (Format, &[Format]) = match mime.as_str() {
            "text/x-vcard" => (Format::VCard21, &[Format::VCard21, Format::VCard30]),
            "text/vcard" | "text/directory" => {
                (Format::VCard30, &[Format::VCard21, Format::VCard30])
            }
            "text/x-vcalendar" => (
                Format::VCalendar10,
                &[Format::VCalendar10, Format::ICalendar20],
            ),
            "text/calendar" => (
                Format::ICalendar20,
                &[Format::VCalendar10, Format::ICalendar20],
            ),
            "text/plain" => return Some(Format::PlainText),
            "text/x-vnote" => return Some(Format::VNote11),
            _ => return None,
        };
        if version.is_empty() {
            return Some(by_mime);
        }
        family.iter().copied().find(|f| f.version() == version)
    }

    /// True when both name the same known format, or (unknown formats) the same MIME
    /// type, ignoring case and parameters.
    pub fn same_as(&self, other: &ContentType) -> bool {
        match (self.format(), other.format()) {
            (Some(a), Some(b)) => a == b,
            _ => {
                let m = |c: &ContentType| {
                    c.mime
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase()
                };
                m(self) == m(other)
            }
        }
    }
}

impl std::fmt::Display for ContentType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.version.is_empty() {
            f.write_str(&self.mime)
        } else {
            write!(f, "{} {}", self.mime, self.version)
        }
    }
}

/// Why a conversion failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// [`can_convert`] is false for this pair.
    #[error("no conversion from {from} to {to}")]
    Unsupported {
        /// The source type.
        from: String,
        /// The wanted type.
        to: String,
    },
    /// The input holds no object of the expected kind (no `BEGIN:VCARD`, ...).
    #[error("no {0} object in the item")]
    NoObject(&'static str),
    /// Components nested deeper than this.
    #[error("components nested deeper than {0} levels")]
    TooDeep(usize),
}

/// A converted item and what could not be converted exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The item in the wanted format.
    pub data: Vec<u8>,
    /// One line per property that had no exact equivalent (kept as an `X-` property,
    /// or dropped), for the caller to log.
    pub notes: Vec<String>,
}

/// True when [`convert`] handles `from` → `to`: both are known formats for the same
/// kind of data (the same format included).
pub fn can_convert(from: &ContentType, to: &ContentType) -> bool {
    match (from.format(), to.format()) {
        (Some(a), Some(b)) => a == b || a.partner() == b,
        _ => false,
    }
}

/// Converts an item from one format to another (see the module docs for what is
/// converted). The same format returns the input unchanged.
pub fn convert(data: &[u8], from: &ContentType, to: &ContentType) -> Result<Vec<u8>, ConvertError> {
    convert_with_notes(data, from, to).map(|c| c.data)
}

/// [`convert`], also returning notes on what had no exact equivalent.
pub fn convert_with_notes(
    data: &[u8],
    from: &ContentType,
    to: &ContentType,
) -> Result<Converted, ConvertError> {
    let unsupported = || ConvertError::Unsupported {
        from: from.to_string(),
        to: to.to_string(),
    };
    let (Some(src), Some(dst)) = (from.format(), to.format()) else {
        return Err(unsupported());
    };
    let same = |data: &[u8]| Converted {
        data: data.to_vec(),
        notes: Vec::new(),
    };
    if src == dst {
        return Ok(same(data));
    }
    if src.partner() != dst {
        return Err(unsupported());
    }
    let mut notes = Vec::new();
    let text = syntax::decode_text(data);
    let out = match dst {
        Format::PlainText => vnote::to_plain(&text)?,
        Format::VNote11 => vnote::to_vnote(&text),
        _ => {
            let kind = match dst {
                Format::VCard21 | Format::VCard30 => "VCARD",
                _ => "VCALENDAR",
            };
            let comps = syntax::parse(&text, src.syntax())?;
            // The item's own VERSION beats the declared type.
            match declared_version(&comps, kind) {
                Some(v) if v == dst.version() => return Ok(same(data)),
                _ => {}
            }
            if !comps.iter().any(|c| c.name == kind) {
                return Err(ConvertError::NoObject(kind));
            }
            let comps = match dst {
                Format::VCard21 => vcard::convert(comps, Syntax::Old),
                Format::VCard30 => vcard::convert(comps, Syntax::New),
                Format::VCalendar10 => vcalendar::to_old(comps, &mut notes),
                _ => vcalendar::to_new(comps, &mut notes),
            };
            syntax::write(&comps, dst.syntax())
        }
    };
    Ok(Converted {
        data: out.into_bytes(),
        notes,
    })
}

fn declared_version(comps: &[syntax::Component], kind: &str) -> Option<String> {
    comps
        .iter()
        .find(|c| c.name == kind)
        .and_then(|c| c.prop("VERSION"))
        .map(|p| p.value.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn content_types_name_formats_by_version_then_mime() {
        let f = |m: &str, v: &str| ContentType::new(m, v).format();
        assert_eq!(f("text/x-vcard", ""), Some(Format::VCard21));
        assert_eq!(f("TEXT/VCARD", ""), Some(Format::VCard30));
        assert_eq!(f("text/vcard", "2.1"), Some(Format::VCard21));
        assert_eq!(f("text/vcard", "4.0"), None);
        assert_eq!(
            f("text/calendar; charset=utf-8", "2.0"),
            Some(Format::ICalendar20)
        );
        assert_eq!(f("text/x-vcalendar", "1.0"), Some(Format::VCalendar10));
        assert_eq!(f("text/plain", "1.0"), Some(Format::PlainText));
        assert_eq!(f("text/x-vnote", "1.1"), Some(Format::VNote11));
        assert_eq!(f("image/jpeg", ""), None);
        assert!(ContentType::new("text/vcard", "").same_as(&ContentType::new("text/vcard", "3.0")));
        assert!(!ContentType::new("text/vcard", "").same_as(&ContentType::new("text/x-vcard", "")));
        assert!(ContentType::new("Image/JPEG", "").same_as(&ContentType::new("image/jpeg", "1.0")));
    }

    #[test]
    fn conversions_exist_only_within_a_kind_of_data() {
        let all = [
            Format::VCard21,
            Format::VCard30,
            Format::VCalendar10,
            Format::ICalendar20,
            Format::PlainText,
            Format::VNote11,
        ];
        for a in all {
            for b in all {
                let yes = a == b || a.partner() == b;
                assert_eq!(
                    can_convert(&a.content_type(), &b.content_type()),
                    yes,
                    "{a:?} {b:?}"
                );
                let r = convert(b"", &a.content_type(), &b.content_type());
                if !yes {
                    assert!(matches!(r, Err(ConvertError::Unsupported { .. })));
                }
            }
        }
        assert!(!can_convert(
            &ContentType::new("text/vcard", "3.0"),
            &ContentType::new("text/vcard", "4.0")
        ));
    }

    proptest! {
        #[test]
        fn any_input_converts_or_fails_without_panicking(
            data in prop::collection::vec(prop_oneof![
                Just(b"BEGIN:VCARD\r\n".to_vec()),
                Just(b"BEGIN:VCALENDAR\r\n".to_vec()),
                Just(b"BEGIN:VEVENT\r\n".to_vec()),
                Just(b"BEGIN:VTODO\r\n".to_vec()),
                Just(b"BEGIN:VALARM\r\n".to_vec()),
                Just(b"BEGIN:VNOTE\r\n".to_vec()),
                Just(b"VERSION:1.0\r\n".to_vec()),
                Just(b"END:VEVENT\r\n".to_vec()),
                Just(b"RRULE:".to_vec()),
                Just(b"DTSTART;VALUE=DATE:".to_vec()),
                Just(b"AALARM:".to_vec()),
                Just(b"TRIGGER:-P".to_vec()),
                Just(b";ENCODING=QUOTED-PRINTABLE:=".to_vec()),
                Just(b";ENCODING=b:".to_vec()),
                Just(b"mailto:".to_vec()),
                prop::collection::vec(any::<u8>(), 0..12),
                "[0-9TZMDWP+#:;=, -]{0,16}".prop_map(String::into_bytes),
            ], 0..24),
            pair in 0usize..6,
        ) {
            let data = data.concat();
            let (a, b) = [
                (Format::VCard21, Format::VCard30),
                (Format::VCard30, Format::VCard21),
                (Format::VCalendar10, Format::ICalendar20),
                (Format::ICalendar20, Format::VCalendar10),
                (Format::PlainText, Format::VNote11),
                (Format::VNote11, Format::PlainText),
            ][pair];
            let _ = convert_with_notes(&data, &a.content_type(), &b.content_type());
        }
    }
}

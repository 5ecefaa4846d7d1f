//! vCard 2.1 (`text/x-vcard`) ⇄ vCard 3.0 (`text/vcard`); see the module docs of
//! [`crate::content`] for what is converted.

use super::syntax::{
    split_escaped, text_new_to_old, text_old_to_new, Component, Param, Prop, Syntax,
};

/// Converts parsed components (read in the other syntax) to `to`.
pub(crate) fn convert(comps: Vec<Component>, to: Syntax) -> Vec<Component> {
    comps
        .into_iter()
        .map(|c| convert_component(c, to))
        .collect()
}

fn convert_component(mut c: Component, to: Syntax) -> Component {
    c.props = c.props.into_iter().map(|p| convert_prop(p, to)).collect();
    c.children = c
        .children
        .into_iter()
        .map(|ch| convert_component(ch, to))
        .collect();
    if c.name == "VCARD" {
        let version = match to {
            Syntax::Old => "2.1",
            Syntax::New => "3.0",
        };
        match c.props.iter_mut().find(|p| p.name == "VERSION") {
            Some(v) => {
                v.value = version.to_string();
                v.params.clear();
            }
            None => c.props.insert(0, Prop::new("VERSION", version)),
        }
        if to == Syntax::New && c.prop("FN").is_none() {
            add_fn(&mut c);
        }
    }
    c
}

/// vCard 3.0 requires `FN`: made from `N` (prefix, given, additional, family, suffix)
/// or else from the first `ORG` component.
fn add_fn(c: &mut Component) {
    let from_n = c.props.iter().position(|p| p.name == "N").and_then(|i| {
        let parts = split_escaped(&c.props[i].value, ';');
        let order = [3, 1, 2, 0, 4];
        let name: Vec<&str> = order
            .iter()
            .filter_map(|&k| parts.get(k))
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        (!name.is_empty()).then(|| (i, name.join(" ")))
    });
    let fallback = || {
        c.props.iter().position(|p| p.name == "ORG").and_then(|i| {
            let org = split_escaped(&c.props[i].value, ';')
                .into_iter()
                .next()
                .unwrap_or_default();
            (!org.trim().is_empty()).then_some((i, org))
        })
    };
    if let Some((i, name)) = from_n.or_else(fallback) {
        c.props.insert(i + 1, Prop::new("FN", name));
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Not text in 3.0 (phone numbers, URIs, dates, binary): copied.
    Raw,
    /// `lat,lon` in 2.1, `lat;lon` in 3.0.
    Geo,
    /// Text whose commas separate values.
    List,
    /// Text.
    Text,
}

fn kind(name: &str) -> Kind {
    match name {
        "TEL" | "EMAIL" | "URL" | "UID" | "BDAY" | "REV" | "TZ" | "PHOTO" | "LOGO" | "SOUND"
        | "KEY" | "VERSION" => Kind::Raw,
        "GEO" => Kind::Geo,
        "CATEGORIES" | "NICKNAME" => Kind::List,
        _ => Kind::Text,
    }
}

fn convert_prop(mut p: Prop, to: Syntax) -> Prop {
    let k = kind(&p.name);
    p.params = match to {
        Syntax::New => params_old_to_new(std::mem::take(&mut p.params)),
        Syntax::Old => params_new_to_old(std::mem::take(&mut p.params)),
    };
    p.value = match (k, to) {
        (Kind::Raw, _) => p.value,
        (Kind::Geo, Syntax::New) if !p.value.contains(';') => p.value.replacen(',', ";", 1),
        (Kind::Geo, Syntax::Old) => p.value.replacen(';', ",", 1),
        (Kind::Geo, Syntax::New) => p.value,
        (Kind::List, Syntax::New) => text_old_to_new(&p.value, true),
        (Kind::Text, Syntax::New) => text_old_to_new(&p.value, false),
        (_, Syntax::Old) => text_new_to_old(&p.value),
    };
    p
}

fn push_type(types: &mut Vec<String>, t: &str) {
    let t = t.trim();
    if !t.is_empty() && !types.iter().any(|x| x.eq_ignore_ascii_case(t)) {
        types.push(t.to_string());
    }
}

/// 2.1 parameters to 3.0: bare values and `TYPE=` join one `TYPE=a,b`; `BASE64`
/// becomes `ENCODING=b`; `VALUE=URL` becomes `VALUE=uri`; `INLINE`, `CHARSET` and
/// other encodings go.
pub(crate) fn params_old_to_new(params: Vec<Param>) -> Vec<Param> {
    let mut types = Vec::new();
    let mut rest = Vec::new();
    for p in params {
        let first = p
            .values
            .first()
            .map(|v| v.trim().to_ascii_uppercase())
            .unwrap_or_default();
        match p.name.as_deref() {
            None => match first.as_str() {
                "BASE64" => rest.push(Param::named("ENCODING", "b")),
                "QUOTED-PRINTABLE" | "8BIT" | "7BIT" | "INLINE" => {}
                _ => p.values.iter().for_each(|v| push_type(&mut types, v)),
            },
            Some("TYPE") => p.values.iter().for_each(|v| push_type(&mut types, v)),
            Some("ENCODING") => {
                if matches!(first.as_str(), "BASE64" | "B") {
                    rest.push(Param::named("ENCODING", "b"));
                }
            }
            Some("CHARSET") => {}
            Some("VALUE") => match first.as_str() {
                "URL" => rest.push(Param::named("VALUE", "uri")),
                "INLINE" => {}
                _ => rest.push(p),
            },
            _ => rest.push(p),
        }
    }
    if !types.is_empty() {
        rest.insert(
            0,
            Param {
                name: Some("TYPE".into()),
                values: types,
            },
        );
    }
    rest
}

/// 3.0 parameters to 2.1: `TYPE=a,b` becomes bare `A;B`; `ENCODING=b` becomes
/// `ENCODING=BASE64`; `VALUE=uri` becomes `VALUE=URL`, other `VALUE`s go.
pub(crate) fn params_new_to_old(params: Vec<Param>) -> Vec<Param> {
    let mut types = Vec::new();
    let mut rest = Vec::new();
    for p in params {
        let first = p
            .values
            .first()
            .map(|v| v.trim().to_ascii_uppercase())
            .unwrap_or_default();
        match p.name.as_deref() {
            None | Some("TYPE") => p
                .values
                .iter()
                .for_each(|v| push_type(&mut types, &v.to_ascii_uppercase())),
            Some("ENCODING") => {
                if matches!(first.as_str(), "BASE64" | "B") {
                    rest.push(Param::named("ENCODING", "BASE64"));
                }
            }
            Some("CHARSET") => {}
            Some("VALUE") => {
                if matches!(first.as_str(), "URI" | "URL") {
                    rest.push(Param::named("VALUE", "URL"));
                }
            }
            _ => rest.push(p),
        }
    }
    let mut out: Vec<Param> = types
        .into_iter()
        .map(|t| Param {
            name: None,
            values: vec![t],
        })
        .collect();
    out.extend(rest);
    out
}

#[cfg(test)]
mod tests {
    use crate::content::{convert, convert_with_notes, ContentType};

    fn v21() -> ContentType {
        ContentType::new("text/x-vcard", "2.1")
    }
    fn v30() -> ContentType {
        ContentType::new("text/vcard", "3.0")
    }
    fn to30(s: &str) -> String {
        String::from_utf8(convert(s.as_bytes(), &v21(), &v30()).expect("convert")).expect("utf8")
    }
    fn to21(s: &str) -> String {
        String::from_utf8(convert(s.as_bytes(), &v30(), &v21()).expect("convert")).expect("utf8")
    }

    #[test]
    fn vcard_21_bare_types_and_quoted_printable_become_30_type_lists_and_escapes() {
        let card = "BEGIN:VCARD\r\n\
VERSION:2.1\r\n\
N:Müller;Jörg\r\n\
TEL;WORK;VOICE:+49 30 1234\r\n\
TEL;TYPE=CELL:+49 170 1\r\n\
NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:First line, with comma=0D=0A=\r\n\
second =C3=A9 line\r\n\
ADR;HOME:;;Main St. 1;Berlin;;10115;Germany\r\n\
X-CUSTOM;FOO:keep me\r\n\
END:VCARD\r\n";
        assert_eq!(
            to30(card),
            "BEGIN:VCARD\r\n\
VERSION:3.0\r\n\
N:Müller;Jörg\r\n\
FN:Jörg Müller\r\n\
TEL;TYPE=WORK,VOICE:+49 30 1234\r\n\
TEL;TYPE=CELL:+49 170 1\r\n\
NOTE:First line\\, with comma\\nsecond é line\r\n\
ADR;TYPE=HOME:;;Main St. 1;Berlin;;10115;Germany\r\n\
X-CUSTOM;TYPE=FOO:keep me\r\n\
END:VCARD\r\n"
        );
    }

    #[test]
    fn vcard_30_type_lists_and_escapes_become_21_bare_types_and_quoted_printable() {
        let card = "BEGIN:VCARD\r\n\
VERSION:3.0\r\n\
N:Doe;Jane;;;\r\n\
FN:Jane Doe\r\n\
TEL;TYPE=work,voice:+1 555 0100\r\n\
EMAIL;TYPE=INTERNET;TYPE=PREF:jane@example.com\r\n\
NOTE:Line 1\\nLine 2\\, more\\; semi\r\n\
CATEGORIES:Friends,Work\r\n\
URL;VALUE=uri:http://example.com/a,b\r\n\
X-FOO:bar\r\n\
END:VCARD\r\n";
        assert_eq!(
            to21(card),
            "BEGIN:VCARD\r\n\
VERSION:2.1\r\n\
N:Doe;Jane;;;\r\n\
FN:Jane Doe\r\n\
TEL;WORK;VOICE:+1 555 0100\r\n\
EMAIL;INTERNET;PREF:jane@example.com\r\n\
NOTE;ENCODING=QUOTED-PRINTABLE:Line 1=0D=0ALine 2, more\\; semi\r\n\
CATEGORIES:Friends,Work\r\n\
URL;VALUE=URL:http://example.com/a,b\r\n\
X-FOO:bar\r\n\
END:VCARD\r\n"
        );
    }

    #[test]
    fn vcard_non_ascii_goes_to_21_as_utf8_quoted_printable() {
        let out = to21("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jörg\r\nEND:VCARD\r\n");
        assert!(
            out.contains("FN;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:J=C3=B6rg\r\n"),
            "{out}"
        );
    }

    #[test]
    fn vcard_base64_photo_converts_encoding_parameter_and_folding() {
        let b64 = "QUJD".repeat(40);
        let card30 = format!(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:P\r\nPHOTO;ENCODING=b;TYPE=JPEG:{b64}\r\nEND:VCARD\r\n"
        );
        let card21 = to21(&card30);
        assert!(
            card21.contains("PHOTO;JPEG;ENCODING=BASE64:\r\n    QUJD"),
            "{card21}"
        );
        assert!(
            card21.contains("\r\n\r\nEND:VCARD"),
            "empty line ends the value"
        );
        let back = to30(&card21);
        let unfolded = back.replace("\r\n ", "");
        assert!(
            unfolded.contains(&format!("PHOTO;TYPE=JPEG;ENCODING=b:{b64}\r\n")),
            "{back}"
        );
    }

    #[test]
    fn vcard_21_base64_without_indentation_is_read() {
        let card = "BEGIN:VCARD\r\nVERSION:2.1\r\nN:X\r\nPHOTO;ENCODING=BASE64;TYPE=GIF:\r\nQUJD\r\nREVG\r\n\r\nEND:VCARD\r\n";
        assert!(to30(card).contains("PHOTO;TYPE=GIF;ENCODING=b:QUJDREVG\r\n"));
    }

    #[test]
    fn vcard_geo_separator_converts() {
        assert!(
            to30("BEGIN:VCARD\r\nVERSION:2.1\r\nN:X\r\nGEO:52.5,13.4\r\nEND:VCARD\r\n")
                .contains("GEO:52.5;13.4\r\n")
        );
        assert!(
            to21("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:X\r\nGEO:52.5;13.4\r\nEND:VCARD\r\n")
                .contains("GEO:52.5,13.4\r\n")
        );
    }

    #[test]
    fn vcard_long_30_lines_are_folded_at_75_octets() {
        let note = "ä".repeat(60);
        let out = to30(&format!(
            "BEGIN:VCARD\r\nVERSION:2.1\r\nN:X\r\nNOTE;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:{}\r\nEND:VCARD\r\n",
            "=C3=A4".repeat(60)
        ));
        assert!(out.split("\r\n").all(|l| l.len() <= 75), "{out}");
        assert!(out
            .replace("\r\n ", "")
            .contains(&format!("NOTE:{note}\r\n")));
    }

    #[test]
    fn vcard_already_in_target_version_is_returned_unchanged() {
        let card = b"BEGIN:VCARD\nVERSION:2.1\nN:X\nEND:VCARD\n";
        assert_eq!(convert(card, &v30(), &v21()).unwrap(), card.to_vec());
    }

    #[test]
    fn vcard_conversion_has_no_notes() {
        let c = convert_with_notes(
            b"BEGIN:VCARD\r\nVERSION:2.1\r\nN:X\r\nEND:VCARD\r\n",
            &v21(),
            &v30(),
        )
        .unwrap();
        assert!(c.notes.is_empty());
    }

    #[test]
    fn vcard_without_card_is_an_error_not_a_panic() {
        assert!(convert(b"hello", &v21(), &v30()).is_err());
        assert!(convert(&[0xff, 0xfe, b'=', b'\n', b' '], &v30(), &v21()).is_err());
    }

    // -----------------------------------------------------------------------------
    // 3.0 → 2.1 → 3.0 keeps the normalised property set.
    // -----------------------------------------------------------------------------

    use crate::content::syntax::{parse, Syntax};
    use proptest::prelude::*;

    /// (group, name, params as sorted (name, sorted upper-case values), value with `\N`
    /// as `\n`), sorted.
    type Norm = Vec<(Option<String>, String, Vec<(String, Vec<String>)>, String)>;

    fn normalise(card30: &str) -> Norm {
        let comps = parse(card30, Syntax::New).expect("parse");
        let mut out: Norm = comps
            .iter()
            .flat_map(|c| c.props.iter())
            .map(|p| {
                let mut params: Vec<(String, Vec<String>)> = p
                    .params
                    .iter()
                    .map(|x| {
                        let mut v: Vec<String> =
                            x.values.iter().map(|s| s.to_ascii_uppercase()).collect();
                        v.sort();
                        v.dedup();
                        (x.name.clone().unwrap_or_default(), v)
                    })
                    .collect();
                params.sort();
                (
                    p.group.as_ref().map(|g| g.to_ascii_lowercase()),
                    p.name.clone(),
                    params,
                    p.value.replace("\\N", "\\n"),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Escaped 3.0 text from pieces; `list` values use bare commas as separators.
    fn text_value() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[a-zA-Z0-9 .:=@+-]{1,12}",
            Just("\\n".to_string()),
            Just("\\,".to_string()),
            Just("\\\\x".to_string()),
            Just("é日".to_string()),
            Just("\\;".to_string()),
            Just("=".to_string()),
        ];
        prop::collection::vec(piece, 0..6).prop_map(|v| v.concat())
    }

    fn property() -> impl Strategy<Value = String> {
        let types = prop::sample::subsequence(vec!["WORK", "HOME", "VOICE", "CELL", "PREF"], 0..4);
        prop_oneof![
            (types.clone(), "[0-9 +]{1,15}").prop_map(|(t, n)| {
                if t.is_empty() {
                    format!("TEL:{n}")
                } else {
                    format!("TEL;TYPE={}:{n}", t.join(","))
                }
            }),
            text_value().prop_map(|v| format!("NOTE:{v}")),
            (text_value(), text_value()).prop_map(|(a, b)| format!("N:{a};{b};;;")),
            (types, text_value(), text_value()).prop_map(|(t, a, b)| if t.is_empty() {
                format!("item1.ADR:;;{a};{b};;;")
            } else {
                format!("item1.ADR;TYPE={}:;;{a};{b};;;", t.join(","))
            }),
            text_value().prop_map(|v| format!("X-EXTRA;X-PARAM=one:{v}")),
            "[a-z]{1,8}(,[a-z]{1,8}){0,3}".prop_map(|v| format!("CATEGORIES:{v}")),
            "[a-z]{1,8}@[a-z]{1,8}\\.org".prop_map(|v| format!("EMAIL;TYPE=INTERNET:{v}")),
            text_value().prop_map(|v| format!("ORG:{v}")),
        ]
    }

    proptest! {
        #[test]
        fn vcard_30_to_21_to_30_keeps_the_normalised_property_set(
            fname in text_value(),
            props in prop::collection::vec(property(), 0..8),
        ) {
            let mut card = String::from("BEGIN:VCARD\r\nVERSION:3.0\r\n");
            card.push_str(&format!("FN:X{fname}\r\n"));
            for p in &props {
                card.push_str(p);
                card.push_str("\r\n");
            }
            card.push_str("END:VCARD\r\n");
            let c21 = to21(&card);
            prop_assert!(c21.contains("VERSION:2.1\r\n"));
            prop_assert!(!c21.contains("TYPE="), "{}", c21);
            let back = to30(&c21);
            prop_assert_eq!(normalise(&back), normalise(&card), "via {}", c21);
        }
    }
}

//! The line syntax shared by the versit formats: content lines, parameters, folding,
//! quoted-printable and text escaping, in the two generations:
//!
//! * [`Syntax::Old`]: vCard 2.1, vCalendar 1.0, vNote 1.1. Parameters may be bare
//!   (`TEL;WORK;VOICE:`), values may be `QUOTED-PRINTABLE` (with `=` soft line breaks)
//!   in any `CHARSET`, folding is RFC 822 folding (the line break is removed, the
//!   white space kept), `BASE64` values run over indented lines up to an empty line, and
//!   only `;` is escaped (`\;`) in text.
//! * [`Syntax::New`]: vCard 3.0 (RFC 2425/2426) and iCalendar 2.0 (RFC 5545). UTF-8,
//!   `NAME=value,value` parameters, folding removes the line break and one white
//!   space character, text escapes `\\`, `\;`, `\,` and `\n`.
//!
//! Reading is liberal (bare LF line ends, lower-case names, missing `END` lines) and
//! never fails on odd text; writing always uses CRLF.

use super::ConvertError;

/// Components nested deeper than this are refused (nothing real nests more than three).
const MAX_DEPTH: usize = 16;

/// Which generation of the syntax a document uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    /// vCard 2.1, vCalendar 1.0, vNote 1.1.
    Old,
    /// vCard 3.0, iCalendar 2.0.
    New,
}

/// A property parameter. `name` is upper-case; `None` is a bare 2.1 value (`WORK`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Param {
    pub name: Option<String>,
    pub values: Vec<String>,
}

impl Param {
    pub fn named(name: &str, value: impl Into<String>) -> Param {
        Param {
            name: Some(name.to_string()),
            values: vec![value.into()],
        }
    }

    pub fn is(&self, name: &str) -> bool {
        self.name.as_deref() == Some(name)
    }
}

/// One content line. In an [`Syntax::Old`] document read by [`parse`], the value is
/// already quoted-printable and charset decoded (those parameters are gone); the writer
/// adds them back where needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prop {
    pub group: Option<String>,
    pub name: String,
    pub params: Vec<Param>,
    pub value: String,
}

impl Prop {
    pub fn new(name: &str, value: impl Into<String>) -> Prop {
        Prop {
            group: None,
            name: name.to_string(),
            params: Vec::new(),
            value: value.into(),
        }
    }

    /// The first value of parameter `name`, upper-cased.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params
            .iter()
            .find(|p| p.is(name))
            .and_then(|p| p.values.first())
            .map(|v| v.to_ascii_uppercase())
    }

    pub fn remove_param(&mut self, name: &str) {
        self.params.retain(|p| !p.is(name));
    }
}

/// `BEGIN:NAME` ... `END:NAME`. Properties keep their order; nested components are
/// written after the properties.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Component {
    pub name: String,
    pub props: Vec<Prop>,
    pub children: Vec<Component>,
}

impl Component {
    pub fn new(name: &str) -> Component {
        Component {
            name: name.to_string(),
            ..Component::default()
        }
    }

    pub fn prop(&self, name: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.name == name)
    }
}

/// The text of a document: UTF-8 when it is, else Latin-1 (every byte a character), so
/// that an 8-bit vCard 2.1 still converts.
pub(crate) fn decode_text(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(s) => s.to_string(),
        Err(_) => data.iter().map(|&b| char::from(b)).collect(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cont {
    None,
    Qp,
    B64,
}

/// How the logical line that starts with `line` continues (old syntax only).
fn continuation(line: &str) -> Cont {
    let (head, _) = super::split_content_line(line);
    let mut cont = Cont::None;
    for p in split_unquoted(head, ';').into_iter().skip(1) {
        let p = p.trim().to_ascii_uppercase();
        let v = p.strip_prefix("ENCODING=").unwrap_or(&p);
        match v {
            "QUOTED-PRINTABLE" => cont = Cont::Qp,
            "BASE64" | "B" => cont = Cont::B64,
            _ => {}
        }
    }
    cont
}

fn is_base64_line(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

fn is_end_line(s: &str) -> bool {
    let u = s.trim().to_ascii_uppercase();
    matches!(
        u.as_str(),
        "END:VCARD" | "END:VCALENDAR" | "END:VEVENT" | "END:VTODO" | "END:VNOTE" | "END:VALARM"
    )
}

/// Unfolds `text` into logical lines.
fn logical_lines(text: &str, syntax: Syntax) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cont = Cont::None;
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(prev) = out.last_mut() {
            if syntax == Syntax::Old {
                if cont == Cont::Qp && prev.ends_with('=') && !is_end_line(line) {
                    prev.pop();
                    prev.push_str(line);
                    continue;
                }
                if cont == Cont::B64 {
                    let t = line.trim();
                    if t.is_empty() {
                        // The empty line that ends a 2.1 BASE64 value.
                        cont = Cont::None;
                        continue;
                    }
                    if line.starts_with([' ', '\t']) || is_base64_line(t) {
                        prev.push_str(t);
                        continue;
                    }
                }
                if line.starts_with([' ', '\t']) {
                    prev.push_str(line);
                    continue;
                }
            } else if let Some(rest) = line.strip_prefix([' ', '\t']) {
                prev.push_str(rest);
                continue;
            }
        }
        cont = if syntax == Syntax::Old {
            continuation(line)
        } else {
            Cont::None
        };
        out.push(line.to_string());
    }
    out
}

/// Splits `s` at `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&s[start..]);
    out
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(s)
}

fn parse_prop(line: &str, syntax: Syntax) -> Option<Prop> {
    let (head, value) = super::split_content_line(line);
    let mut parts = split_unquoted(head, ';').into_iter();
    let full = parts.next()?.trim();
    let (group, name) = match full.rsplit_once('.') {
        Some((g, n)) => (Some(g.to_string()), n),
        None => (None, full),
    };
    if name.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        params.push(match p.split_once('=') {
            Some((n, v)) => Param {
                name: Some(n.trim().to_ascii_uppercase()),
                values: split_unquoted(v, ',')
                    .into_iter()
                    .map(|v| unquote(v).to_string())
                    .collect(),
            },
            None => Param {
                name: None,
                values: vec![unquote(p).to_string()],
            },
        });
    }
    let mut prop = Prop {
        group,
        name: name.to_ascii_uppercase(),
        params,
        value: value.to_string(),
    };
    if syntax == Syntax::Old {
        decode_old_value(&mut prop);
    }
    Some(prop)
}

/// Removes quoted-printable and charset encoding from an old-syntax value.
fn decode_old_value(prop: &mut Prop) {
    let mut qp = false;
    let mut b64 = false;
    let mut charset = None;
    prop.params.retain(|p| {
        let first = p
            .values
            .first()
            .map(|v| v.trim().to_ascii_uppercase())
            .unwrap_or_default();
        match p.name.as_deref() {
            None if first == "QUOTED-PRINTABLE" => {
                qp = true;
                false
            }
            None if matches!(first.as_str(), "8BIT" | "7BIT") => false,
            None if first == "BASE64" => {
                b64 = true;
                true
            }
            Some("ENCODING") => match first.as_str() {
                "QUOTED-PRINTABLE" => {
                    qp = true;
                    false
                }
                "BASE64" | "B" => {
                    b64 = true;
                    true
                }
                _ => false,
            },
            Some("CHARSET") => {
                charset = Some(first);
                false
            }
            _ => true,
        }
    });
    if b64 {
        prop.value.retain(|c| !c.is_whitespace());
    } else if qp {
        let bytes = qp_decode(&prop.value);
        prop.value = decode_charset(&bytes, charset.as_deref());
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Quoted-printable to bytes; a stray `=` is kept.
fn qp_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn decode_charset(bytes: &[u8], charset: Option<&str>) -> String {
    let latin1 = || bytes.iter().map(|&b| char::from(b)).collect::<String>();
    match charset {
        Some("ISO-8859-1" | "LATIN1" | "ISO_8859-1" | "WINDOWS-1252" | "CP1252") => latin1(),
        _ => match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => latin1(),
        },
    }
}

/// Parses a document into its top-level components. Lines outside any component are
/// ignored; a missing `END` closes at the end of the text.
pub(crate) fn parse(text: &str, syntax: Syntax) -> Result<Vec<Component>, ConvertError> {
    let mut stack: Vec<Component> = Vec::new();
    let mut top = Vec::new();
    for line in logical_lines(text, syntax) {
        if line.trim().is_empty() {
            continue;
        }
        let Some(prop) = parse_prop(&line, syntax) else {
            continue;
        };
        match prop.name.as_str() {
            "BEGIN" => {
                if stack.len() >= MAX_DEPTH {
                    return Err(ConvertError::TooDeep(MAX_DEPTH));
                }
                stack.push(Component::new(&prop.value.trim().to_ascii_uppercase()));
            }
            "END" => {
                let name = prop.value.trim().to_ascii_uppercase();
                if !stack.iter().any(|c| c.name == name) {
                    continue;
                }
                while let Some(c) = stack.pop() {
                    let done = c.name == name;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(c),
                        None => top.push(c),
                    }
                    if done {
                        break;
                    }
                }
            }
            _ => {
                if let Some(c) = stack.last_mut() {
                    c.props.push(prop);
                }
            }
        }
    }
    while let Some(c) = stack.pop() {
        match stack.last_mut() {
            Some(parent) => parent.children.push(c),
            None => top.push(c),
        }
    }
    Ok(top)
}

/// Writes components with CRLF line ends.
pub(crate) fn write(comps: &[Component], syntax: Syntax) -> String {
    let mut out = String::new();
    for c in comps {
        write_component(&mut out, c, syntax);
    }
    out
}

fn write_component(out: &mut String, c: &Component, syntax: Syntax) {
    out.push_str("BEGIN:");
    out.push_str(&c.name);
    out.push_str("\r\n");
    for p in &c.props {
        write_prop(out, p, syntax);
    }
    for child in &c.children {
        write_component(out, child, syntax);
    }
    out.push_str("END:");
    out.push_str(&c.name);
    out.push_str("\r\n");
}

fn param_value(v: &str, syntax: Syntax) -> String {
    if syntax == Syntax::New && v.contains([':', ';', ',']) && !v.contains('"') {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

fn write_head(p: &Prop, syntax: Syntax) -> String {
    let mut head = String::new();
    if let Some(g) = &p.group {
        head.push_str(g);
        head.push('.');
    }
    head.push_str(&p.name);
    for param in &p.params {
        head.push(';');
        if let Some(n) = &param.name {
            head.push_str(n);
            head.push('=');
        }
        let vals: Vec<String> = param
            .values
            .iter()
            .map(|v| param_value(v, syntax))
            .collect();
        head.push_str(&vals.join(","));
    }
    head
}

fn write_prop(out: &mut String, p: &Prop, syntax: Syntax) {
    match syntax {
        Syntax::New => {
            let line = format!("{}:{}", write_head(p, syntax), p.value);
            fold_new(out, &line);
        }
        Syntax::Old => {
            let b64 = p.params.iter().any(|x| {
                x.values.iter().any(|v| {
                    (x.name.is_none() || x.is("ENCODING")) && v.eq_ignore_ascii_case("BASE64")
                })
            });
            if b64 {
                write_old_base64(out, p);
                return;
            }
            let needs_qp = p.value.chars().any(|c| !(c == ' ' || c.is_ascii_graphic()))
                || p.value.ends_with(' ');
            if !needs_qp {
                out.push_str(&write_head(p, syntax));
                out.push(':');
                out.push_str(&p.value);
                out.push_str("\r\n");
                return;
            }
            let mut q = p.clone();
            q.params.push(Param::named("ENCODING", "QUOTED-PRINTABLE"));
            if !p.value.is_ascii() {
                q.params.push(Param::named("CHARSET", "UTF-8"));
            }
            let head = write_head(&q, syntax);
            out.push_str(&head);
            out.push(':');
            qp_encode(out, &p.value, head.len() + 1);
            out.push_str("\r\n");
        }
    }
}

/// Folds at 75 octets (on character boundaries) with CRLF and one space.
fn fold_new(out: &mut String, line: &str) {
    let mut len = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if len + n > 75 {
            out.push_str("\r\n ");
            len = 1;
        }
        out.push(c);
        len += n;
    }
    out.push_str("\r\n");
}

/// Quoted-printable with `=` soft line breaks at 76 columns; line breaks in the
/// value become `=0D=0A`.
fn qp_encode(out: &mut String, value: &str, start_col: usize) {
    let mut col = start_col;
    let normalised = value.replace("\r\n", "\n").replace('\r', "\n");
    let bytes: Vec<u8> = normalised
        .bytes()
        .flat_map(|b| {
            if b == b'\n' {
                vec![b'\r', b'\n']
            } else {
                vec![b]
            }
        })
        .collect();
    for (i, &b) in bytes.iter().enumerate() {
        let last = i + 1 == bytes.len();
        let token = if (b.is_ascii_graphic() && b != b'=') || (b == b' ' && !last) {
            (b as char).to_string()
        } else {
            format!("={b:02X}")
        };
        if col + token.len() > 75 {
            out.push_str("=\r\n");
            col = 0;
        }
        out.push_str(&token);
        col += token.len();
    }
}

/// A 2.1 BASE64 value: indented continuation lines, then an empty line.
fn write_old_base64(out: &mut String, p: &Prop) {
    out.push_str(&write_head(p, Syntax::Old));
    out.push(':');
    out.push_str("\r\n");
    let v: Vec<char> = p.value.chars().collect();
    for chunk in v.chunks(72) {
        out.push_str("    ");
        out.extend(chunk.iter());
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
}

/// Old-syntax text to new-syntax text. `;` stays a component separator and `\;` an
/// escaped semicolon; `,` is escaped unless `commas_separate` (list values such as
/// CATEGORIES); a line break becomes `\n`; a backslash is doubled.
pub(crate) fn text_old_to_new(v: &str, commas_separate: bool) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    let mut it = v.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' if it.peek() == Some(&';') => {
                it.next();
                out.push_str("\\;");
            }
            '\\' => out.push_str("\\\\"),
            ',' if !commas_separate => out.push_str("\\,"),
            '\r' => {
                if it.peek() == Some(&'\n') {
                    it.next();
                }
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// New-syntax text to old-syntax text: `\n` becomes CRLF, `\,` and `\\` lose their
/// backslash, `\;` stays escaped (2.1 escapes semicolons), `;` and `,` stay.
pub(crate) fn text_new_to_old(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n' | 'N') => out.push_str("\r\n"),
            Some(';') => out.push_str("\\;"),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Splits at `sep` not preceded by a backslash (the backslash pair `\\` escapes itself
/// in new syntax, so `\\,` is a separator there).
pub(crate) fn split_escaped(v: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            cur.push(c);
            if let Some(n) = it.next() {
                cur.push(n);
            }
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qp_soft_line_breaks_join_and_decode() {
        let t = "BEGIN:VCARD\r\nNOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:a=C3=A9=\r\nb=0D=0Ac\r\nEND:VCARD\r\n";
        let c = parse(t, Syntax::Old).unwrap();
        assert_eq!(c[0].props[0].value, "aéb\r\nc");
        assert!(c[0].props[0].params.is_empty());
    }

    #[test]
    fn new_folding_removes_one_space_old_keeps_it() {
        let t = "BEGIN:VCARD\r\nNOTE:ab\r\n  cd\r\nEND:VCARD\r\n";
        assert_eq!(parse(t, Syntax::New).unwrap()[0].props[0].value, "ab cd");
        assert_eq!(parse(t, Syntax::Old).unwrap()[0].props[0].value, "ab  cd");
    }

    #[test]
    fn qp_written_lines_stay_within_76_columns() {
        let p = Prop::new("NOTE", "é".repeat(100) + "\nx ");
        let s = write(
            &[Component {
                name: "VCARD".into(),
                props: vec![p.clone()],
                children: vec![],
            }],
            Syntax::Old,
        );
        assert!(s.lines().all(|l| l.len() <= 76), "{s}");
        assert_eq!(
            parse(&s, Syntax::Old).unwrap()[0].props[0].value,
            "é".repeat(100) + "\r\nx "
        );
    }

    #[test]
    fn latin1_charset_is_decoded() {
        let t =
            "BEGIN:VCARD\r\nN;CHARSET=ISO-8859-1;ENCODING=QUOTED-PRINTABLE:M=FCller\r\nEND:VCARD";
        assert_eq!(parse(t, Syntax::Old).unwrap()[0].props[0].value, "Müller");
    }

    #[test]
    fn text_escapes_convert_both_ways() {
        assert_eq!(
            text_old_to_new("a,b\\;c;d\r\ne\\f", false),
            "a\\,b\\;c;d\\ne\\\\f"
        );
        assert_eq!(text_new_to_old("a\\,b\\;c;d\\ne\\\\f"), "a,b\\;c;d\r\ne\\f");
    }
}

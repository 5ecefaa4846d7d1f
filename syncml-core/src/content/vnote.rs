//! Plain text (`text/plain`) ⇄ vNote 1.1 (`text/x-vnote`).

use super::syntax::{self, Component, Prop, Syntax};
use super::ConvertError;

/// A vNote whose `BODY` is `text` and whose `SUMMARY` is its first non-empty line.
pub(crate) fn to_vnote(text: &str) -> String {
    let mut note = Component::new("VNOTE");
    note.props.push(Prop::new("VERSION", "1.1"));
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if !first.is_empty() {
        note.props
            .push(Prop::new("SUMMARY", escape_semicolons(first)));
    }
    note.props.push(Prop::new("BODY", escape_semicolons(text)));
    syntax::write(&[note], Syntax::Old)
}

fn escape_semicolons(s: &str) -> String {
    s.replace(';', "\\;")
}

/// vNote text is 2.1 text: only the semicolon is escaped.
fn unescape(s: &str) -> String {
    s.replace("\\;", ";")
}

/// The `BODY` of the first vNote (its `SUMMARY` when it has no body).
pub(crate) fn to_plain(text: &str) -> Result<String, ConvertError> {
    let comps = syntax::parse(text, Syntax::Old)?;
    let note = comps
        .iter()
        .find(|c| c.name == "VNOTE")
        .ok_or(ConvertError::NoObject("VNOTE"))?;
    Ok(note
        .prop("BODY")
        .or_else(|| note.prop("SUMMARY"))
        .map(|p| unescape(&p.value))
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use crate::content::{convert, ContentType};

    fn plain() -> ContentType {
        ContentType::new("text/plain", "")
    }
    fn vnote() -> ContentType {
        ContentType::new("text/x-vnote", "1.1")
    }

    #[test]
    fn plain_text_becomes_vnote_with_body_and_first_line_summary() {
        let out = convert("Shopping\r\nmilk; eggs\r\n".as_bytes(), &plain(), &vnote()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "BEGIN:VNOTE\r\nVERSION:1.1\r\nSUMMARY:Shopping\r\n\
BODY;ENCODING=QUOTED-PRINTABLE:Shopping=0D=0Amilk\\; eggs=0D=0A\r\nEND:VNOTE\r\n"
        );
    }

    #[test]
    fn vnote_becomes_its_body_text() {
        let note = "BEGIN:VNOTE\r\nVERSION:1.1\r\nSUMMARY:Shop\r\n\
BODY;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Shop=0D=0Ak=C3=A4se\r\nEND:VNOTE\r\n";
        let out = convert(note.as_bytes(), &vnote(), &plain()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "Shop\r\nkäse");
    }

    #[test]
    fn plain_text_round_trips_through_vnote() {
        let text = "a\\b; c\r\n\r\nd é";
        let n = convert(text.as_bytes(), &plain(), &vnote()).unwrap();
        assert_eq!(convert(&n, &vnote(), &plain()).unwrap(), text.as_bytes());
    }
}

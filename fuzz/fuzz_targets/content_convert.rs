//! Any bytes through every content conversion (vCard, vCalendar, vNote, both ways): it
//! may refuse, never panic; what it produces converts back without panicking too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use syncml_core::content::{convert, Format};

const PAIRS: [(Format, Format); 6] = [
    (Format::VCard21, Format::VCard30),
    (Format::VCard30, Format::VCard21),
    (Format::VCalendar10, Format::ICalendar20),
    (Format::ICalendar20, Format::VCalendar10),
    (Format::PlainText, Format::VNote11),
    (Format::VNote11, Format::PlainText),
];

fuzz_target!(|data: &[u8]| {
    for (a, b) in PAIRS {
        let (from, to) = (a.content_type(), b.content_type());
        if let Ok(out) = convert(data, &from, &to) {
            let _ = convert(&out, &to, &from);
        }
    }
});

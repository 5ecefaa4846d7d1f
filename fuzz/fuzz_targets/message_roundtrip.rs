//! Whatever decodes as a message re-encodes in both encodings and decodes back to the
//! same message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use syncml_core::Encoding;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = syncml_core::decode(data) else { return };
    for enc in [Encoding::Wbxml, Encoding::Xml] {
        // Binary data cannot be written as XML; refusing is fine, panicking is not.
        if let Ok(bytes) = syncml_core::encode(&msg, enc) {
            let back = syncml_core::decode(&bytes).expect("our own output must decode");
            assert_eq!(back, msg, "{enc:?} round trip changed the message");
        }
    }
});

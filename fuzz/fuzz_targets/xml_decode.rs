//! Any bytes into the XML decoder (tree and model): it may refuse, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = syncml_core::xml::decode_document(data) {
        let _ = syncml_core::xml::encode_element(&doc.root, &Default::default());
        let _ = syncml_core::SyncMl::from_element(doc.root);
    }
});

//! Any bytes into the WBXML decoder (tree and model): it may refuse, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = syncml_core::wbxml::decode_document(data) {
        // Whatever decoded must re-encode without panicking, and the model must
        // either accept or refuse the tree.
        let _ = syncml_core::wbxml::encode_element(&doc.root, Default::default());
        let _ = syncml_core::SyncMl::from_element(doc.root);
    }
});

//! Writes the benchmark's 2,000-item Sync message in both encodings, for whole-process
//! comparisons with other tools:
//! `cargo run --release -p syncml-core --example big_message -- DIR [ITEMS]`
//! writes `DIR/sync2000.wbxml` and `DIR/sync2000.xml`.

#[path = "../benches/support.rs"]
mod support;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| ".".into());
    let items: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let msg = support::big_message(items);
    for enc in [syncml_core::Encoding::Wbxml, syncml_core::Encoding::Xml] {
        let ext = match enc {
            syncml_core::Encoding::Wbxml => "wbxml",
            syncml_core::Encoding::Xml => "xml",
        };
        let path = std::path::Path::new(&dir).join(format!("sync{items}.{ext}"));
        let bytes = syncml_core::encode(&msg, enc)?;
        std::fs::write(&path, &bytes)?;
        println!("{} {} bytes", path.display(), bytes.len());
    }
    Ok(())
}

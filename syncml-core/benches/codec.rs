//! Decode and encode throughput of both encodings on a realistic 2,000-item message, and
//! decoding of a client's answer to 2,000 Adds (statuses and a Map).
//! `cargo bench -p syncml-core --bench codec`; figures in BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use syncml_core::{decode, encode, Encoding};

mod support;

fn codec(c: &mut Criterion) {
    let msg = support::big_message(2000);
    for enc in [Encoding::Wbxml, Encoding::Xml] {
        let bytes = encode(&msg, enc).expect("encode");
        let name = match enc {
            Encoding::Wbxml => "wbxml",
            Encoding::Xml => "xml",
        };
        let mut g = c.benchmark_group(format!("{name} 2000 vCards"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.sample_size(30);
        g.bench_function("decode to model", |b| {
            b.iter(|| decode(black_box(&bytes)).expect("decode"))
        });
        g.bench_function("decode to tree", |b| {
            b.iter(|| syncml_core::decode_document(black_box(&bytes)).expect("decode"))
        });
        g.bench_function("encode from model", |b| {
            b.iter(|| encode(black_box(&msg), enc).expect("encode"))
        });
        if enc == Encoding::Wbxml {
            let opts = syncml_core::xml::EncodeOptions::default();
            g.bench_function("stream to XML", |b| {
                b.iter(|| {
                    syncml_core::transcode(black_box(&bytes), Encoding::Xml, &opts)
                        .expect("transcode")
                })
            });
        }
        g.finish();
    }
    let answer = support::status_message(2000);
    for enc in [Encoding::Wbxml, Encoding::Xml] {
        let bytes = encode(&answer, enc).expect("encode");
        let name = match enc {
            Encoding::Wbxml => "wbxml",
            Encoding::Xml => "xml",
        };
        let mut g = c.benchmark_group(format!("{name} 2000 statuses and map items"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.sample_size(30);
        g.bench_function("decode to model", |b| {
            b.iter(|| decode(black_box(&bytes)).expect("decode"))
        });
        g.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);

//! Parse + validate one NewOrderSingle: ours (frame check with BodyLength/CheckSum, zero-copy
//! parse, full dictionary validation) beside fefix's tag=value decoder (FIX 4.2 dictionary) on
//! the same bytes.
//!
//! cargo bench -p fix-bench --features fefix --bench parse

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use fefix::prelude::*;
use fix_codec::{check_frame, Dictionary, Frame, Parser, ValidationOptions, Verdict};

fn bench(c: &mut Criterion) {
    let msg = fix_bench::new_order_single(2, "ORDER-000001", "20261122-03:00:00.000", b"0");
    let dict = Dictionary::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fix-dictionaries/FIX42.xml"
    ))
    .unwrap();
    let opts = ValidationOptions::default();
    let mut parser = Parser::new(256);
    {
        let m = parser.parse(&msg).unwrap();
        assert_eq!(dict.validate(&m, &opts), Verdict::Valid { admin: false });
    }
    let mut g = c.benchmark_group("new_order_single");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ours: frame + parse + validate", |b| {
        b.iter(|| {
            let buf = black_box(&msg[..]);
            let Frame::Complete { len } = check_frame(buf, b"FIX.4.2", 4096) else {
                panic!()
            };
            let m = parser.parse(&buf[..len]).unwrap();
            let v = dict.validate(&m, &opts);
            black_box((v, m.get(11).map(<[u8]>::len)))
        })
    });
    g.bench_function("ours: frame + parse", |b| {
        b.iter(|| {
            let buf = black_box(&msg[..]);
            let Frame::Complete { len } = check_frame(buf, b"FIX.4.2", 4096) else {
                panic!()
            };
            let m = parser.parse(&buf[..len]).unwrap();
            black_box(m.get(11).map(<[u8]>::len))
        })
    });
    let mut decoder =
        fefix::tagvalue::Decoder::<fefix::tagvalue::Config>::new(fefix::Dictionary::fix42());
    assert!(
        decoder.decode(&msg[..]).is_ok(),
        "fefix must accept the message"
    );
    g.bench_function("fefix: decode", |b| {
        b.iter(|| {
            let m = decoder.decode(black_box(&msg[..])).unwrap();
            black_box(
                m.fv_raw(fefix::definitions::fix42::CL_ORD_ID)
                    .map(<[u8]>::len),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

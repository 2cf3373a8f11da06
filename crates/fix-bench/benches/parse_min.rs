//! Parse + validate per NewOrderSingle, robust to a shared machine: each decoder runs 40 rounds
//! of 100,000 messages, interleaved, and the fastest round's mean is reported (the minimum is
//! the round least disturbed by other processes). Same message as `benches/parse.rs`.
//!
//! cargo bench -p fix-bench --features fefix --bench parse_min

use fefix::prelude::*;
use fix_codec::{check_frame, Dictionary, Frame, Parser, ValidationOptions};
use std::hint::black_box;
use std::time::Instant;

const ROUNDS: usize = 40;
const PER_ROUND: usize = 100_000;

/// `PARSE_MIN_ROUNDS` / `PARSE_MIN_PER_ROUND` shrink the run (for an instruction profile).
fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let msg = fix_bench::new_order_single(2, "ORDER-000001", "20261122-03:00:00.000", b"0");
    let dict = Dictionary::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fix-dictionaries/FIX42.xml"
    ))
    .unwrap();
    let opts = ValidationOptions::default();
    let mut parser = Parser::new(256);
    let mut decoder =
        fefix::tagvalue::Decoder::<fefix::tagvalue::Config>::new(fefix::Dictionary::fix42());
    let rounds = env_or("PARSE_MIN_ROUNDS", ROUNDS);
    let per_round = env_or("PARSE_MIN_PER_ROUND", PER_ROUND);
    let mut best = [f64::MAX; 3];
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..per_round {
            let buf = black_box(&msg[..]);
            let Frame::Complete { len } = check_frame(buf, b"FIX.4.2", 4096) else {
                panic!()
            };
            let m = parser.parse(&buf[..len]).unwrap();
            black_box((dict.validate(&m, &opts), m.get(11).map(<[u8]>::len)));
        }
        best[0] = best[0].min(t.elapsed().as_nanos() as f64 / per_round as f64);
        let t = Instant::now();
        for _ in 0..per_round {
            let buf = black_box(&msg[..]);
            let Frame::Complete { len } = check_frame(buf, b"FIX.4.2", 4096) else {
                panic!()
            };
            let m = parser.parse(&buf[..len]).unwrap();
            black_box(m.get(11).map(<[u8]>::len));
        }
        best[1] = best[1].min(t.elapsed().as_nanos() as f64 / per_round as f64);
        let t = Instant::now();
        for _ in 0..per_round {
            let m = decoder.decode(black_box(&msg[..])).unwrap();
            black_box(
                m.fv_raw(fefix::definitions::fix42::CL_ORD_ID)
                    .map(<[u8]>::len),
            );
        }
        best[2] = best[2].min(t.elapsed().as_nanos() as f64 / per_round as f64);
    }
    println!(
        "NewOrderSingle, {} bytes; best of {rounds} rounds of {per_round}",
        msg.len()
    );
    println!(
        "ours: frame + parse + validate  {:>7.1} ns  ({:.2} M msg/s)",
        best[0],
        1e3 / best[0]
    );
    println!(
        "ours: frame + parse             {:>7.1} ns  ({:.2} M msg/s)",
        best[1],
        1e3 / best[1]
    );
    println!(
        "fefix: decode                   {:>7.1} ns  ({:.2} M msg/s)",
        best[2],
        1e3 / best[2]
    );
}

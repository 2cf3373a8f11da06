//! Determinism and snapshots. Long seeded random streams of every command type, replayed twice
//! through fresh engines, give byte-identical output streams; restoring a snapshot taken at a
//! random point and replaying the rest gives the same bytes as the uninterrupted run, and the
//! same final snapshot. Also: the market-data events alone rebuild the L3 book the engine holds,
//! snapshots refuse corrupted bytes, and the workload generator and its record file reproduce
//! the same stream from the same seed.

mod common;
use common::*;
use matching::workload::{self, WorkloadConfig};
use matching::*;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

#[test]
fn replay_twice_is_byte_identical() {
    for seed in 0..6 {
        let cmds = random_commands(seed, 20_000);
        let a = encode_outputs(&run_all(&mut Engine::new(config()), &cmds));
        let b = encode_outputs(&run_all(&mut Engine::new(config()), &cmds));
        assert_eq!(a, b, "seed {seed}");
        assert!(a.len() > 100_000);
    }
}

#[test]
fn random_streams_keep_invariants_and_exercise_everything() {
    let cmds = random_commands(42, 30_000);
    let mut e = Engine::new(config());
    let mut out = Vec::new();
    for c in &cmds {
        e.process(c, &mut out);
        e.check_invariants().unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    for o in &out {
        let tag = match o.event {
            Event::Rejected { reason, .. } | Event::CancelRejected { reason, .. } => {
                format!("reject {reason:?}")
            }
            Event::Cancelled { reason, .. } => format!("cancel {reason:?}"),
            Event::AdminRejected { reason } => format!("admin {reason:?}"),
            ref e => format!("{:?}", std::mem::discriminant(e)),
        };
        seen.insert(tag);
    }
    for must in [
        "cancel SelfTrade",
        "cancel FokNotFillable",
        "cancel IocRemainder",
        "cancel MarketRemainder",
        "cancel DayExpiry",
        "cancel User",
        "reject InsufficientCash",
        "reject PriceOutsideBand",
        "reject InstrumentHalted",
        "reject UnknownOrder",
        "reject AlreadyClosed",
        "reject NotOwner",
    ] {
        assert!(
            seen.contains(must),
            "stream never produced {must}: {seen:?}"
        );
    }
}

#[test]
fn snapshot_restore_replay_matches_uninterrupted_run() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for seed in 10..16 {
        let cmds = random_commands(seed, 8_000);
        let mut full = Engine::new(config());
        let full_out = encode_outputs(&run_all(&mut full, &cmds));
        for _ in 0..4 {
            let cut = rng.gen_range(0..cmds.len());
            let mut first = Engine::new(config());
            let mut out = run_all(&mut first, &cmds[..cut]);
            let snap = first.snapshot();
            let mut restored = Engine::restore(&snap).unwrap();
            assert_eq!(
                restored.snapshot(),
                snap,
                "restore then snapshot is identity"
            );
            out.extend(run_all(&mut restored, &cmds[cut..]));
            assert_eq!(encode_outputs(&out), full_out, "seed {seed} cut {cut}");
            assert_eq!(
                restored.snapshot(),
                full.snapshot(),
                "seed {seed} cut {cut}"
            );
        }
    }
}

#[test]
fn snapshot_into_appends_the_snapshot_bytes() {
    let mut e = Engine::new(config());
    run_all(&mut e, &random_commands(5, 2_000));
    let snap = e.snapshot();
    let mut buf = b"prefix".to_vec();
    e.snapshot_into(&mut buf);
    assert_eq!(&buf[..6], b"prefix");
    assert_eq!(&buf[6..], &snap[..]);
    // A buffer reused for a smaller state holds exactly that state's bytes.
    let mut small = Engine::new(config());
    run_all(&mut small, &random_commands(6, 100));
    buf.clear();
    small.snapshot_into(&mut buf);
    assert!(buf.len() < snap.len());
    assert_eq!(buf, small.snapshot());
    assert!(Engine::restore(&buf).is_ok());
}

#[test]
fn snapshot_rejects_corruption() {
    let cmds = random_commands(3, 2_000);
    let mut e = Engine::new(config());
    run_all(&mut e, &cmds);
    let snap = e.snapshot();
    let mut bad = snap.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    assert_eq!(Engine::restore(&bad).err(), Some(SnapshotError::Checksum));
    assert!(Engine::restore(&snap[..snap.len() - 1]).is_err());
    let mut bad = snap.clone();
    bad[0] = b'X';
    assert_eq!(Engine::restore(&bad).err(), Some(SnapshotError::BadMagic));
    let mut bad = snap.clone();
    bad[8] = 9;
    assert_eq!(
        Engine::restore(&bad).err(),
        Some(SnapshotError::UnsupportedVersion(9))
    );
}

/// Price -> FIFO of (order id, open quantity).
type Levels = BTreeMap<i64, Vec<(u64, u64)>>;

/// L3 book rebuilt only from OrderAdded / OrderModified / OrderDeleted / OrderExecuted.
#[derive(Default)]
struct L3 {
    // (instrument, side) -> price -> FIFO of (order id, quantity)
    books: BTreeMap<(u32, u8), Levels>,
}

impl L3 {
    fn apply(&mut self, e: &Event) {
        let check = |lvl: &Vec<(u64, u64)>, q: u64, c: u32| {
            assert_eq!(lvl.iter().map(|x| x.1).sum::<u64>(), q);
            assert_eq!(lvl.len() as u32, c);
        };
        match *e {
            Event::OrderAdded {
                instrument_id,
                order_id,
                side,
                price,
                quantity,
                level_quantity,
                level_order_count,
            } => {
                let lvl = self
                    .books
                    .entry((instrument_id, side as u8))
                    .or_default()
                    .entry(price)
                    .or_default();
                lvl.push((order_id, quantity));
                check(lvl, level_quantity, level_order_count);
            }
            Event::OrderModified {
                instrument_id,
                order_id,
                side,
                price,
                quantity,
                level_quantity,
                level_order_count,
            } => {
                let lvl = self
                    .books
                    .get_mut(&(instrument_id, side as u8))
                    .unwrap()
                    .get_mut(&price)
                    .unwrap();
                lvl.iter_mut().find(|x| x.0 == order_id).unwrap().1 = quantity;
                check(lvl, level_quantity, level_order_count);
            }
            Event::OrderDeleted {
                instrument_id,
                order_id,
                side,
                price,
                level_quantity,
                level_order_count,
            } => {
                let book = self.books.get_mut(&(instrument_id, side as u8)).unwrap();
                let lvl = book.get_mut(&price).unwrap();
                lvl.retain(|x| x.0 != order_id);
                check(lvl, level_quantity, level_order_count);
                if lvl.is_empty() {
                    book.remove(&price);
                }
            }
            Event::OrderExecuted {
                instrument_id,
                order_id,
                side,
                price,
                quantity,
                leaves_quantity,
                level_quantity,
                level_order_count,
                ..
            } => {
                let book = self.books.get_mut(&(instrument_id, side as u8)).unwrap();
                let lvl = book.get_mut(&price).unwrap();
                assert_eq!(lvl[0].0, order_id, "executions hit the head of the queue");
                assert_eq!(lvl[0].1, quantity + leaves_quantity);
                if leaves_quantity == 0 {
                    lvl.remove(0);
                } else {
                    lvl[0].1 = leaves_quantity;
                }
                check(lvl, level_quantity, level_order_count);
                if lvl.is_empty() {
                    book.remove(&price);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn market_data_events_rebuild_the_l3_book() {
    let cmds = random_commands(99, 20_000);
    let mut e = Engine::new(config());
    let mut l3 = L3::default();
    let mut out = Vec::new();
    for (i, c) in cmds.iter().enumerate() {
        out.clear();
        e.process(c, &mut out);
        for o in &out {
            l3.apply(&o.event);
        }
        if i % 500 == 0 || i == cmds.len() - 1 {
            for instrument in [INSTR, INSTR2] {
                for side in [Side::Buy, Side::Sell] {
                    let mut expect: Vec<(u64, u64)> = Vec::new();
                    let mut prices: Vec<i64> = Vec::new();
                    if let Some(book) = l3.books.get(&(instrument, side as u8)) {
                        let levels: Vec<_> = if side == Side::Buy {
                            book.iter().rev().collect()
                        } else {
                            book.iter().collect()
                        };
                        for (p, lvl) in levels {
                            prices.push(*p);
                            expect.extend(lvl.iter().copied());
                        }
                    }
                    let got: Vec<(u64, u64)> = e
                        .orders(instrument, side)
                        .iter()
                        .map(|o| (o.order_id, o.leaves_quantity))
                        .collect();
                    assert_eq!(got, expect);
                    let got_prices: Vec<i64> =
                        e.levels(instrument, side).iter().map(|l| l.0).collect();
                    assert_eq!(got_prices, prices);
                }
            }
        }
    }
}

#[test]
fn workload_generator_is_reproducible_and_round_trips_through_its_file() {
    let cfg = WorkloadConfig {
        accounts: 200,
        resting_per_instrument: 200,
        ..WorkloadConfig::multi(5, 8, 20_000)
    };
    let a = workload::generate(&cfg);
    let b = workload::generate(&cfg);
    assert_eq!(workload::engine_config_for(&cfg), a.engine_config);
    assert_eq!(a.commands, b.commands);
    assert_eq!(a.preamble, b.preamble);
    let mut bytes = Vec::new();
    workload::write_file(&mut bytes, &cfg, &a.preamble, &a.commands).unwrap();
    assert_eq!(
        bytes.len(),
        workload::FILE_HEADER_SIZE + workload::RECORD_SIZE * (a.preamble.len() + a.commands.len())
    );
    let (pre, cmds) = workload::read_file(&mut bytes.as_slice()).unwrap();
    assert_eq!(pre, a.preamble);
    assert_eq!(cmds, a.commands);
    // The stream never draws a reject, and keeps the book near its target size.
    let mut e = Engine::new(a.engine_config.clone());
    let mut out = Vec::new();
    for c in a.preamble.iter().chain(&a.commands) {
        e.process(c, &mut out);
    }
    e.check_invariants().unwrap();
    assert!(!out.iter().any(|o| matches!(
        o.event,
        Event::Rejected { .. } | Event::CancelRejected { .. } | Event::AdminRejected { .. }
    )));
    let trades = out
        .iter()
        .filter(|o| matches!(o.event, Event::Trade { .. }))
        .count();
    assert!(trades > 500, "{trades} trades");
    assert!(
        e.resting_orders() > 8 * 150 && e.resting_orders() < 8 * 260,
        "{}",
        e.resting_orders()
    );
}

#[test]
fn every_command_kind_round_trips_through_a_record() {
    for c in random_commands(1234, 5_000) {
        let r = workload::encode_record(&c);
        let mut back = workload::decode_record(&r).unwrap();
        if let CommandKind::SetAccountLimits { limits, .. } = &mut back.kind {
            // Daily notional max is stored as i64 in a record.
            let CommandKind::SetAccountLimits { limits: orig, .. } = c.kind else {
                unreachable!()
            };
            assert_eq!(limits.daily_notional_max, orig.daily_notional_max);
        }
        assert_eq!(back, c);
    }
    let extra = [
        CommandKind::MassCancel {
            scope: MassCancelScope::All,
            reason: MassCancelReason::Admin,
        },
        CommandKind::StartTradingDay { trading_day: 7 },
    ];
    for kind in extra {
        let c = Command {
            sequence: 1,
            timestamp_ns: 2,
            kind,
        };
        assert_eq!(
            workload::decode_record(&workload::encode_record(&c)),
            Some(c)
        );
    }
}

#[test]
fn process_batch_gives_the_same_outputs_as_process() {
    for seed in 20..23 {
        let cmds = random_commands(seed, 10_000);
        let one = run_all(&mut Engine::new(config()), &cmds);
        let mut e = Engine::new(config());
        let mut batched = Vec::new();
        for chunk in cmds.chunks(37) {
            e.process_batch(chunk, &mut batched);
        }
        assert_eq!(
            encode_outputs(&batched),
            encode_outputs(&one),
            "seed {seed}"
        );
    }
}

/// The same with tables large enough (over 2 MiB of order and level slabs) that
/// `process_batch` takes its prefetching path rather than the plain loop.
#[test]
fn process_batch_with_prefetching_gives_the_same_outputs_as_process() {
    let mut big = config();
    big.orders_max = 32_768;
    big.order_id_window = 65_536;
    for seed in 30..32 {
        let cmds = random_commands(seed, 10_000);
        let one = run_all(&mut Engine::new(big.clone()), &cmds);
        let mut e = Engine::new(big.clone());
        let mut batched = Vec::new();
        for chunk in cmds.chunks(37) {
            e.process_batch(chunk, &mut batched);
        }
        assert_eq!(
            encode_outputs(&batched),
            encode_outputs(&one),
            "seed {seed}"
        );
        assert_eq!(e.snapshot(), {
            let mut e1 = Engine::new(big.clone());
            run_all(&mut e1, &cmds);
            e1.snapshot()
        });
    }
}

/// Golden output: the CRC-32 of the encoded output stream of a fixed seeded stream. Any change
/// of behaviour or of the output encoding changes it; update the constant only on purpose and
/// say why in the commit.
#[test]
fn golden_output_stream() {
    let cmds = random_commands(2026, 20_000);
    let bytes = encode_outputs(&run_all(&mut Engine::new(config()), &cmds));
    let crc = crc32fast::hash(&bytes);
    println!("golden: {} bytes, crc {crc:#010x}", bytes.len());
    assert_eq!((bytes.len(), crc), GOLDEN);
}

const GOLDEN: (usize, u32) = (1_684_507, 0x68fc_c41f);

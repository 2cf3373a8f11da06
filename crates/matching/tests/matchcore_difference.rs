//! Documents the one rule difference found between this engine and the `matchcore` 0.4 peer
//! used in the benchmark: matchcore lets a crossing limit order trade through its own limit
//! price (its matcher is called without the limit for limit submits), while ours stops at the
//! limit and rests the remainder. This is why the two produce slightly different trade counts
//! on the same benchmark stream; the benchmark reports both.

mod common;
use common::*;
use matching::*;

#[test]
fn ours_stops_at_the_limit_and_matchcore_does_not() {
    use matchcore as mc;
    let cmd = |s: u64, side: mc::Side, p: u64, q: u64| mc::Command {
        meta: mc::CommandMeta {
            sequence_number: mc::SequenceNumber(s),
            timestamp: mc::Timestamp(s),
        },
        kind: mc::CommandKind::Submit(mc::SubmitCmd {
            order: mc::NewOrder::Limit(mc::LimitOrder::new(
                mc::Price(p),
                mc::QuantityPolicy::Standard {
                    quantity: mc::Quantity(q),
                },
                mc::OrderFlags::new(side, false, mc::TimeInForce::Gtc),
            )),
        }),
    };
    let mut book = mc::OrderBook::new("X");
    book.execute(&cmd(0, mc::Side::Buy, 990, 60));
    book.execute(&cmd(1, mc::Side::Buy, 995, 20));
    book.execute(&cmd(2, mc::Side::Buy, 1000, 10));
    let outcome = book.execute(&cmd(3, mc::Side::Sell, 1000, 90));
    let mc::CommandOutcome::Applied(mc::CommandReport::Submit(effects)) = outcome else {
        panic!("matchcore refused the order");
    };
    let prices: Vec<u64> = effects
        .target_order()
        .match_result()
        .unwrap()
        .trades()
        .iter()
        .map(|t| t.price().0)
        .collect();
    assert_eq!(
        prices,
        vec![1000, 995, 990],
        "matchcore 0.4 trades through the 1000 limit"
    );

    let mut h = H::new();
    h.gtc(1, Side::Buy, 990, 60);
    h.gtc(1, Side::Buy, 995, 20);
    h.gtc(1, Side::Buy, 1000, 10);
    let ev = h.limit(2, Side::Sell, 1000, 90, TimeInForce::Gtc);
    assert_eq!(trades(&ev), vec![(1000, 10)]);
    assert_eq!(h.e.best(INSTR, Side::Sell), Some((1000, 80)));
}

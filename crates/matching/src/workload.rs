//! Seeded, reproducible order-flow generator modelled on exchange-core's benchmark generator,
//! and a file format of fixed-size records so every tool replays identical commands.
//!
//! Mix (per instrument, after a fill phase of `resting_per_instrument` GTC orders):
//! about 9% new GTC limit orders on the passive side of the last trade (bids below, asks
//! above) at a distance drawn within the deviation (5% of the start price, at most 10,000
//! ticks, skewed small), 3% IOC orders at the band edge
//! (1 in 32 of them fill-or-kill), 6% cancels and 82% moves (replace) of one of the oldest 512
//! resting orders, 1% of the way toward the last trade. Sizes are `1 + r6^3` with `r6`
//! uniform in `0..=5`. The book is steered back toward `resting_per_instrument` orders by
//! turning moves into new orders (too few) or cancels (too many). With several instruments each
//! command picks one by Zipf-like popularity (weight `1 / rank^s`).
//!
//! The generator drives a private [`Engine`] with the same configuration, so it knows exactly
//! which orders rest, their prices and the last trade, and never produces a command that would
//! be rejected (moves that would leave the band become cancels).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{Band, EngineConfig, ProductConfig};
use crate::engine::Engine;
use crate::types::*;

#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadConfig {
    pub seed: u64,
    pub instruments: u32,
    pub accounts: u32,
    pub resting_per_instrument: u32,
    /// Commands after the preamble (deposits and fill phase).
    pub commands: u64,
    /// Zipf exponent for instrument popularity.
    pub zipf_s: f64,
}

impl WorkloadConfig {
    pub fn single(seed: u64, commands: u64) -> WorkloadConfig {
        WorkloadConfig {
            seed,
            instruments: 1,
            accounts: 2_000,
            resting_per_instrument: 1_000,
            commands,
            zipf_s: 1.0,
        }
    }
    pub fn multi(seed: u64, instruments: u32, commands: u64) -> WorkloadConfig {
        WorkloadConfig {
            seed,
            instruments,
            accounts: 10_000,
            resting_per_instrument: 1_000,
            commands,
            zipf_s: 1.0,
        }
    }
}

/// A generated stream: the engine config it was made for, the untimed preamble (deposits and
/// fill phase) and the measured commands.
pub struct Workload {
    pub engine_config: EngineConfig,
    pub preamble: Vec<Command>,
    pub commands: Vec<Command>,
}

#[derive(Clone, Copy)]
struct Live {
    price: i64,
    account: u32,
    quantity: u64,
}

struct InstrumentState {
    live: BTreeMap<u64, Live>,
    deviation: i64,
}

/// Engine configuration sized for a workload.
pub fn engine_config(cfg: &WorkloadConfig, start_prices: &[i64]) -> EngineConfig {
    let orders_max = (cfg.instruments * cfg.resting_per_instrument * 2).max(1024);
    let products = start_prices
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let deviation = deviation_of(p);
            let mut pc = ProductConfig::simple(i as u32, &format!("SYM{i}"), p);
            pc.band = Band::Ticks((deviation * 5) as u32);
            pc.quantity_max = 1_000_000;
            pc
        })
        .collect();
    EngineConfig {
        orders_max,
        order_id_window: (orders_max * 4).next_power_of_two(),
        levels_per_side_max: cfg.resting_per_instrument * 2,
        accounts_max: cfg.accounts + 1,
        instruments_max: cfg.instruments,
        default_limits: AccountLimits::UNLIMITED,
        products,
    }
}

fn deviation_of(price: i64) -> i64 {
    (price / 20).clamp(1, 10_000)
}

/// Records what the generator needs from the engine's outputs.
struct Observer {
    accepted: Option<(u64, u64)>,
    added: Vec<(u32, u64)>,
    removed: Vec<(u32, u64)>,
}

impl Sink for Observer {
    fn emit(&mut self, o: &Output) {
        match o.event {
            Event::Accepted {
                order_id, quantity, ..
            } => self.accepted = Some((order_id, quantity)),
            Event::OrderAdded {
                instrument_id,
                order_id,
                ..
            } => self.added.push((instrument_id, order_id)),
            Event::OrderDeleted {
                instrument_id,
                order_id,
                ..
            } => self.removed.push((instrument_id, order_id)),
            Event::OrderExecuted {
                instrument_id,
                order_id,
                leaves_quantity: 0,
                ..
            } => self.removed.push((instrument_id, order_id)),
            _ => {}
        }
    }
}

struct Generator {
    rng: ChaCha8Rng,
    engine: Engine,
    states: Vec<InstrumentState>,
    cumulative: Vec<f64>,
    cfg: WorkloadConfig,
    seq: u64,
    client_order_id: u64,
    obs: Observer,
}

impl Generator {
    fn size(&mut self) -> u64 {
        let r6: u64 = self.rng.gen_range(0..=5);
        1 + r6 * r6 * r6
    }

    fn instrument(&mut self) -> u32 {
        if self.cumulative.len() == 1 {
            return 0;
        }
        let total = *self.cumulative.last().unwrap();
        let u = self.rng.gen::<f64>() * total;
        self.cumulative
            .partition_point(|&c| c < u)
            .min(self.cumulative.len() - 1) as u32
    }

    fn account(&mut self) -> u32 {
        self.rng.gen_range(1..=self.cfg.accounts)
    }

    fn push(&mut self, kind: CommandKind, out: &mut Vec<Command>) {
        self.seq += 1;
        let c = Command {
            sequence: self.seq,
            timestamp_ns: self.seq * 1_000,
            kind,
        };
        self.obs.accepted = None;
        self.obs.added.clear();
        self.obs.removed.clear();
        self.engine.process(&c, &mut self.obs);
        for i in 0..self.obs.removed.len() {
            let (instrument, id) = self.obs.removed[i];
            self.states[instrument as usize].live.remove(&id);
        }
        for i in 0..self.obs.added.len() {
            let (instrument, id) = self.obs.added[i];
            let v = self.engine.order(id).expect("added order is live");
            self.states[instrument as usize].live.insert(
                id,
                Live {
                    account: v.account_id,
                    quantity: v.quantity,
                    price: v.price,
                },
            );
        }
        out.push(c);
    }

    fn last_price(&self, instrument: u32) -> i64 {
        self.engine.reference_price(instrument)
    }

    /// A passive GTC order: bids at or below the last trade, asks at or above, at a distance
    /// drawn from `1 + u^2 * deviation` and averaged over four uniform draws.
    fn new_gtc(&mut self, instrument: u32, out: &mut Vec<Command>) {
        let deviation = self.states[instrument as usize].deviation;
        let last = self.last_price(instrument);
        let side = if self.rng.gen::<bool>() {
            Side::Buy
        } else {
            Side::Sell
        };
        let u: f64 = self.rng.gen();
        let dev = 1 + (u * u * deviation as f64) as i64;
        let mut sum = 0;
        for _ in 0..4 {
            sum += self.rng.gen_range(0..dev);
        }
        let offset = (sum / 4 * 2 - dev).abs();
        let (low, high) = self.engine.band(instrument).unwrap();
        let price = match side {
            Side::Buy => last - offset,
            Side::Sell => last + offset,
        }
        .clamp(low, high);
        let account = self.account();
        let quantity = self.size();
        self.client_order_id += 1;
        self.push(
            CommandKind::NewOrder {
                session_id: account,
                account_id: account,
                client_order_id: self.client_order_id,
                instrument_id: instrument,
                side,
                order_type: OrderType::Limit,
                price,
                quantity,
                time_in_force: TimeInForce::Gtc,
                stp_mode: StpMode::None,
            },
            out,
        );
    }

    fn new_ioc(&mut self, instrument: u32, out: &mut Vec<Command>) {
        let side = if self.rng.gen::<bool>() {
            Side::Buy
        } else {
            Side::Sell
        };
        let (low, high) = self.engine.band(instrument).unwrap();
        let price = match side {
            Side::Buy => high,
            Side::Sell => low,
        };
        let tif = if self.rng.gen_range(0..32) == 0 {
            TimeInForce::Fok
        } else {
            TimeInForce::Ioc
        };
        let account = self.account();
        let quantity = self.size();
        self.client_order_id += 1;
        self.push(
            CommandKind::NewOrder {
                session_id: account,
                account_id: account,
                client_order_id: self.client_order_id,
                instrument_id: instrument,
                side,
                order_type: OrderType::Limit,
                price,
                quantity,
                time_in_force: tif,
                stp_mode: StpMode::None,
            },
            out,
        );
    }

    /// One of the oldest 512 resting orders of an instrument.
    fn pick_old(&mut self, instrument: u32) -> Option<(u64, Live)> {
        let live = &self.states[instrument as usize].live;
        if live.is_empty() {
            return None;
        }
        let k = self.rng.gen_range(0..live.len().min(512));
        live.iter().nth(k).map(|(id, l)| (*id, *l))
    }

    fn cancel(&mut self, id: u64, l: Live, out: &mut Vec<Command>) {
        self.client_order_id += 1;
        self.push(
            CommandKind::Cancel {
                session_id: l.account,
                account_id: l.account,
                client_order_id: self.client_order_id,
                order_id: id,
            },
            out,
        );
    }

    fn step(&mut self, out: &mut Vec<Command>) {
        let instrument = self.instrument();
        let n = self.states[instrument as usize].live.len() as u32;
        let target = self.cfg.resting_per_instrument;
        let r = self.rng.gen_range(0..100);
        let mut kind = match r {
            0..=8 => 0,
            9..=11 => 1,
            12..=17 => 2,
            _ => 3,
        };
        if n < target * 9 / 10 && kind >= 2 {
            kind = 0;
        } else if n > target * 11 / 10 && kind == 0 {
            kind = 2;
        }
        match kind {
            0 => self.new_gtc(instrument, out),
            1 => self.new_ioc(instrument, out),
            2 => match self.pick_old(instrument) {
                Some((id, l)) => self.cancel(id, l, out),
                None => self.new_gtc(instrument, out),
            },
            _ => match self.pick_old(instrument) {
                Some((id, l)) => {
                    let last = self.last_price(instrument);
                    let diff = last - l.price;
                    let step = if diff == 0 {
                        if self.rng.gen::<bool>() {
                            1
                        } else {
                            -1
                        }
                    } else if diff.abs() < 100 {
                        diff.signum()
                    } else {
                        diff / 100
                    };
                    let price = l.price + step;
                    let (low, high) = self.engine.band(instrument).unwrap();
                    if price < low || price > high {
                        self.cancel(id, l, out);
                    } else {
                        self.client_order_id += 1;
                        self.push(
                            CommandKind::Replace {
                                session_id: l.account,
                                account_id: l.account,
                                client_order_id: self.client_order_id,
                                order_id: id,
                                new_client_order_id: self.client_order_id,
                                new_price: price,
                                new_quantity: l.quantity,
                            },
                            out,
                        );
                    }
                }
                None => self.new_gtc(instrument, out),
            },
        }
    }
}

/// Start prices `10^(3.3 + 1.5u + 1.5u)`, the first draws of the generator's RNG.
fn start_prices(cfg: &WorkloadConfig, rng: &mut ChaCha8Rng) -> Vec<i64> {
    (0..cfg.instruments)
        .map(|_| {
            let e = 3.3 + 1.5 * rng.gen::<f64>() + 1.5 * rng.gen::<f64>();
            10f64.powf(e) as i64
        })
        .collect()
}

/// The engine configuration `generate(cfg)` returns, without generating the stream.
pub fn engine_config_for(cfg: &WorkloadConfig) -> EngineConfig {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let prices = start_prices(cfg, &mut rng);
    engine_config(cfg, &prices)
}

/// Generates a workload. Deterministic in `cfg` (ChaCha8 from `cfg.seed`).
pub fn generate(cfg: &WorkloadConfig) -> Workload {
    assert!(cfg.instruments > 0 && cfg.accounts > 0 && cfg.resting_per_instrument > 0);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let start_prices = start_prices(cfg, &mut rng);
    let engine_config = engine_config(cfg, &start_prices);
    let states = start_prices
        .iter()
        .map(|&p| InstrumentState {
            live: BTreeMap::new(),
            deviation: deviation_of(p),
        })
        .collect();
    let mut cumulative = Vec::with_capacity(cfg.instruments as usize);
    let mut acc = 0.0;
    for rank in 1..=cfg.instruments {
        acc += 1.0 / f64::from(rank).powf(cfg.zipf_s);
        cumulative.push(acc);
    }
    let mut g = Generator {
        rng,
        engine: Engine::new(engine_config.clone()),
        states,
        cumulative,
        cfg: cfg.clone(),
        seq: 0,
        client_order_id: 0,
        obs: Observer {
            accepted: None,
            added: Vec::new(),
            removed: Vec::new(),
        },
    };
    let mut preamble = Vec::new();
    for a in 1..=cfg.accounts {
        g.push(
            CommandKind::Deposit {
                account_id: a,
                asset: Asset::Cash,
                amount: 1i128 << 90,
            },
            &mut preamble,
        );
        for i in 0..cfg.instruments {
            g.push(
                CommandKind::Deposit {
                    account_id: a,
                    asset: Asset::Position(i),
                    amount: 1i128 << 50,
                },
                &mut preamble,
            );
        }
    }
    for i in 0..cfg.instruments {
        for _ in 0..cfg.resting_per_instrument {
            g.new_gtc(i, &mut preamble);
        }
    }
    let mut commands = Vec::with_capacity(cfg.commands as usize);
    for _ in 0..cfg.commands {
        g.step(&mut commands);
    }
    Workload {
        engine_config,
        preamble,
        commands,
    }
}

// ----- record file -------------------------------------------------------------------------

pub const RECORD_SIZE: usize = 80;
pub const FILE_MAGIC: &[u8; 8] = b"MTCHWKLD";
pub const FILE_HEADER_SIZE: usize = 64;

/// Encodes one command as an 80-byte record (layout in docs/matching.md).
pub fn encode_record(c: &Command) -> [u8; RECORD_SIZE] {
    let mut r = [0u8; RECORD_SIZE];
    let put32 = |r: &mut [u8; RECORD_SIZE], at: usize, v: u32| {
        r[at..at + 4].copy_from_slice(&v.to_le_bytes())
    };
    let put64 = |r: &mut [u8; RECORD_SIZE], at: usize, v: u64| {
        r[at..at + 8].copy_from_slice(&v.to_le_bytes())
    };
    let put128 = |r: &mut [u8; RECORD_SIZE], at: usize, v: i128| {
        r[at..at + 16].copy_from_slice(&v.to_le_bytes())
    };
    put64(&mut r, 24, c.sequence);
    put64(&mut r, 32, c.timestamp_ns);
    match c.kind {
        CommandKind::NewOrder {
            session_id,
            account_id,
            client_order_id,
            instrument_id,
            side,
            order_type,
            price,
            quantity,
            time_in_force,
            stp_mode,
        } => {
            r[0] = 1;
            r[1] = side as u8;
            r[2] = order_type as u8;
            r[3] = time_in_force as u8;
            r[4] = stp_mode as u8;
            put32(&mut r, 8, session_id);
            put32(&mut r, 12, account_id);
            put32(&mut r, 16, instrument_id);
            put64(&mut r, 40, client_order_id);
            put64(&mut r, 56, price as u64);
            put64(&mut r, 64, quantity);
        }
        CommandKind::Cancel {
            session_id,
            account_id,
            client_order_id,
            order_id,
        } => {
            r[0] = 2;
            put32(&mut r, 8, session_id);
            put32(&mut r, 12, account_id);
            put64(&mut r, 40, client_order_id);
            put64(&mut r, 48, order_id);
        }
        CommandKind::Replace {
            session_id,
            account_id,
            client_order_id,
            order_id,
            new_client_order_id,
            new_price,
            new_quantity,
        } => {
            r[0] = 3;
            put32(&mut r, 8, session_id);
            put32(&mut r, 12, account_id);
            put64(&mut r, 40, client_order_id);
            put64(&mut r, 48, order_id);
            put64(&mut r, 56, new_price as u64);
            put64(&mut r, 64, new_quantity);
            put64(&mut r, 72, new_client_order_id);
        }
        CommandKind::MassCancel { scope, reason } => {
            r[0] = 4;
            r[5] = reason as u8;
            let (k, v) = match scope {
                MassCancelScope::Session(v) => (0, v),
                MassCancelScope::Account(v) => (1, v),
                MassCancelScope::Instrument(v) => (2, v),
                MassCancelScope::All => (3, 0),
            };
            r[6] = k;
            put32(&mut r, 20, v);
        }
        CommandKind::SetTradingStatus {
            instrument_id,
            status,
        } => {
            r[0] = 5;
            r[5] = status as u8;
            put32(&mut r, 16, instrument_id);
        }
        CommandKind::SetReferencePrice {
            instrument_id,
            price,
        } => {
            r[0] = 6;
            put32(&mut r, 16, instrument_id);
            put64(&mut r, 56, price as u64);
        }
        CommandKind::Deposit {
            account_id,
            asset,
            amount,
        }
        | CommandKind::Withdraw {
            account_id,
            asset,
            amount,
        } => {
            r[0] = if matches!(c.kind, CommandKind::Deposit { .. }) {
                7
            } else {
                8
            };
            put32(&mut r, 12, account_id);
            match asset {
                Asset::Cash => r[5] = 0,
                Asset::Position(i) => {
                    r[5] = 1;
                    put32(&mut r, 20, i);
                }
            }
            put128(&mut r, 56, amount);
        }
        CommandKind::SetAccountLimits { account_id, limits } => {
            r[0] = 9;
            put32(&mut r, 12, account_id);
            put64(&mut r, 40, limits.order_quantity_max);
            put64(&mut r, 48, limits.daily_quantity_max);
            put128(&mut r, 56, limits.order_notional_max);
            // Daily notional max is stored saturated to i64 (i64::MAX reads back as unlimited).
            let d = i64::try_from(limits.daily_notional_max).unwrap_or(i64::MAX);
            put64(&mut r, 72, d as u64);
        }
        CommandKind::StartTradingDay { trading_day } => {
            r[0] = 10;
            put32(&mut r, 20, trading_day);
        }
    }
    r
}

/// Decodes one record; `None` for an unknown kind or enum value.
pub fn decode_record(r: &[u8; RECORD_SIZE]) -> Option<Command> {
    let g32 = |at: usize| u32::from_le_bytes(r[at..at + 4].try_into().unwrap());
    let g64 = |at: usize| u64::from_le_bytes(r[at..at + 8].try_into().unwrap());
    let g128 = |at: usize| i128::from_le_bytes(r[at..at + 16].try_into().unwrap());
    let kind = match r[0] {
        1 => CommandKind::NewOrder {
            session_id: g32(8),
            account_id: g32(12),
            client_order_id: g64(40),
            instrument_id: g32(16),
            side: Side::from_u8(r[1])?,
            order_type: OrderType::from_u8(r[2])?,
            price: g64(56) as i64,
            quantity: g64(64),
            time_in_force: TimeInForce::from_u8(r[3])?,
            stp_mode: StpMode::from_u8(r[4])?,
        },
        2 => CommandKind::Cancel {
            session_id: g32(8),
            account_id: g32(12),
            client_order_id: g64(40),
            order_id: g64(48),
        },
        3 => CommandKind::Replace {
            session_id: g32(8),
            account_id: g32(12),
            client_order_id: g64(40),
            order_id: g64(48),
            new_client_order_id: g64(72),
            new_price: g64(56) as i64,
            new_quantity: g64(64),
        },
        4 => CommandKind::MassCancel {
            scope: match r[6] {
                0 => MassCancelScope::Session(g32(20)),
                1 => MassCancelScope::Account(g32(20)),
                2 => MassCancelScope::Instrument(g32(20)),
                3 => MassCancelScope::All,
                _ => return None,
            },
            reason: MassCancelReason::from_u8(r[5])?,
        },
        5 => CommandKind::SetTradingStatus {
            instrument_id: g32(16),
            status: TradingStatus::from_u8(r[5])?,
        },
        6 => CommandKind::SetReferencePrice {
            instrument_id: g32(16),
            price: g64(56) as i64,
        },
        7 | 8 => {
            let account_id = g32(12);
            let asset = match r[5] {
                0 => Asset::Cash,
                1 => Asset::Position(g32(20)),
                _ => return None,
            };
            let amount = g128(56);
            if r[0] == 7 {
                CommandKind::Deposit {
                    account_id,
                    asset,
                    amount,
                }
            } else {
                CommandKind::Withdraw {
                    account_id,
                    asset,
                    amount,
                }
            }
        }
        9 => {
            let d = g64(72) as i64;
            CommandKind::SetAccountLimits {
                account_id: g32(12),
                limits: AccountLimits {
                    order_quantity_max: g64(40),
                    daily_quantity_max: g64(48),
                    order_notional_max: g128(56),
                    daily_notional_max: if d == i64::MAX {
                        i128::MAX
                    } else {
                        i128::from(d)
                    },
                },
            }
        }
        10 => CommandKind::StartTradingDay {
            trading_day: g32(20),
        },
        _ => return None,
    };
    Some(Command {
        sequence: g64(24),
        timestamp_ns: g64(32),
        kind,
    })
}

/// Writes a header and the records of `preamble` followed by `commands`.
/// Header (64 bytes): magic, version u32 = 1, record size u32, preamble count u64,
/// command count u64, seed u64, instruments u32, accounts u32, resting per instrument u32,
/// zero padding.
pub fn write_file<W: Write>(
    w: &mut W,
    cfg: &WorkloadConfig,
    preamble: &[Command],
    commands: &[Command],
) -> io::Result<()> {
    let mut h = [0u8; FILE_HEADER_SIZE];
    h[0..8].copy_from_slice(FILE_MAGIC);
    h[8..12].copy_from_slice(&1u32.to_le_bytes());
    h[12..16].copy_from_slice(&(RECORD_SIZE as u32).to_le_bytes());
    h[16..24].copy_from_slice(&(preamble.len() as u64).to_le_bytes());
    h[24..32].copy_from_slice(&(commands.len() as u64).to_le_bytes());
    h[32..40].copy_from_slice(&cfg.seed.to_le_bytes());
    h[40..44].copy_from_slice(&cfg.instruments.to_le_bytes());
    h[44..48].copy_from_slice(&cfg.accounts.to_le_bytes());
    h[48..52].copy_from_slice(&cfg.resting_per_instrument.to_le_bytes());
    w.write_all(&h)?;
    for c in preamble.iter().chain(commands) {
        w.write_all(&encode_record(c))?;
    }
    Ok(())
}

/// Reads a file written by [`write_file`]: `(preamble, commands)`.
pub fn read_file<R: Read>(r: &mut R) -> io::Result<(Vec<Command>, Vec<Command>)> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut h = [0u8; FILE_HEADER_SIZE];
    r.read_exact(&mut h)?;
    if &h[0..8] != FILE_MAGIC {
        return Err(bad("bad magic"));
    }
    if u32::from_le_bytes(h[12..16].try_into().unwrap()) as usize != RECORD_SIZE {
        return Err(bad("record size"));
    }
    let n_pre = u64::from_le_bytes(h[16..24].try_into().unwrap());
    let n_cmd = u64::from_le_bytes(h[24..32].try_into().unwrap());
    let mut read = |n: u64| -> io::Result<Vec<Command>> {
        let mut v = Vec::new();
        let mut rec = [0u8; RECORD_SIZE];
        for _ in 0..n {
            r.read_exact(&mut rec)?;
            v.push(decode_record(&rec).ok_or_else(|| bad("bad record"))?);
        }
        Ok(v)
    };
    let pre = read(n_pre)?;
    let cmd = read(n_cmd)?;
    Ok((pre, cmd))
}

//! Little-endian byte encoding of outputs (for byte-for-byte comparison of output streams)
//! and the primitive reader/writer shared with the snapshot format.

use crate::types::*;

/// Appends little-endian primitives to a caller-owned buffer.
pub struct Writer<'a> {
    pub buf: &'a mut Vec<u8>,
}

impl Writer<'_> {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i128(&mut self, v: i128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
}

/// Reads little-endian primitives; every read fails cleanly past the end.
pub struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("input truncated or malformed at byte {0}")]
pub struct DecodeError(pub usize);

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError(self.pos))?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError(self.pos))?;
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError(self.pos - 1)),
        }
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    pub fn i128(&mut self) -> Result<i128, DecodeError> {
        Ok(i128::from_le_bytes(self.take(16)?.try_into().unwrap()))
    }
    /// Maps an enum decoder's `None` to a decode error at the current position.
    pub fn e<T>(&self, v: Option<T>) -> Result<T, DecodeError> {
        v.ok_or(DecodeError(self.pos))
    }
}

fn scope(w: &mut Writer, s: MassCancelScope) {
    match s {
        MassCancelScope::Session(v) => {
            w.u8(0);
            w.u32(v)
        }
        MassCancelScope::Account(v) => {
            w.u8(1);
            w.u32(v)
        }
        MassCancelScope::Instrument(v) => {
            w.u8(2);
            w.u32(v)
        }
        MassCancelScope::All => {
            w.u8(3);
            w.u32(0)
        }
    }
}

fn asset(w: &mut Writer, a: Asset) {
    match a {
        Asset::Cash => {
            w.u8(0);
            w.u32(0)
        }
        Asset::Position(i) => {
            w.u8(1);
            w.u32(i)
        }
    }
}

/// Appends one output in a tagged little-endian layout: sequence u64, timestamp u64, tag u8,
/// then the event's fields in declaration order. Used to compare output streams byte for byte.
pub fn encode_output(o: &Output, buf: &mut Vec<u8>) {
    let mut w = Writer { buf };
    w.u64(o.sequence);
    w.u64(o.timestamp_ns);
    match o.event {
        Event::Accepted {
            order_id,
            session_id,
            account_id,
            client_order_id,
            instrument_id,
            side,
            order_type,
            time_in_force,
            price,
            quantity,
        } => {
            w.u8(1);
            w.u64(order_id);
            w.u32(session_id);
            w.u32(account_id);
            w.u64(client_order_id);
            w.u32(instrument_id);
            w.u8(side as u8);
            w.u8(order_type as u8);
            w.u8(time_in_force as u8);
            w.i64(price);
            w.u64(quantity);
        }
        Event::Rejected {
            session_id,
            account_id,
            client_order_id,
            instrument_id,
            reason,
        } => {
            w.u8(2);
            w.u32(session_id);
            w.u32(account_id);
            w.u64(client_order_id);
            w.u32(instrument_id);
            w.u8(reason as u8);
        }
        Event::Filled {
            order_id,
            account_id,
            session_id,
            client_order_id,
            instrument_id,
            side,
            exec_id,
            trade_id,
            price,
            quantity,
            leaves_quantity,
            cumulative_quantity,
            liquidity,
            contra_order_id,
            contra_account_id,
        } => {
            w.u8(3);
            w.u64(order_id);
            w.u32(account_id);
            w.u32(session_id);
            w.u64(client_order_id);
            w.u32(instrument_id);
            w.u8(side as u8);
            w.u64(exec_id);
            w.u64(trade_id);
            w.i64(price);
            w.u64(quantity);
            w.u64(leaves_quantity);
            w.u64(cumulative_quantity);
            w.u8(liquidity as u8);
            w.u64(contra_order_id);
            w.u32(contra_account_id);
        }
        Event::Cancelled {
            order_id,
            account_id,
            session_id,
            client_order_id,
            instrument_id,
            cancelled_quantity,
            cumulative_quantity,
            reason,
        } => {
            w.u8(4);
            w.u64(order_id);
            w.u32(account_id);
            w.u32(session_id);
            w.u64(client_order_id);
            w.u32(instrument_id);
            w.u64(cancelled_quantity);
            w.u64(cumulative_quantity);
            w.u8(reason as u8);
        }
        Event::Replaced {
            order_id,
            account_id,
            session_id,
            client_order_id,
            orig_client_order_id,
            instrument_id,
            price,
            leaves_quantity,
            cumulative_quantity,
            priority_kept,
        } => {
            w.u8(5);
            w.u64(order_id);
            w.u32(account_id);
            w.u32(session_id);
            w.u64(client_order_id);
            w.u64(orig_client_order_id);
            w.u32(instrument_id);
            w.i64(price);
            w.u64(leaves_quantity);
            w.u64(cumulative_quantity);
            w.bool(priority_kept);
        }
        Event::CancelRejected {
            session_id,
            account_id,
            client_order_id,
            order_id,
            is_replace,
            reason,
        } => {
            w.u8(6);
            w.u32(session_id);
            w.u32(account_id);
            w.u64(client_order_id);
            w.u64(order_id);
            w.bool(is_replace);
            w.u8(reason as u8);
        }
        Event::OrderAdded {
            instrument_id,
            order_id,
            side,
            price,
            quantity,
            level_quantity,
            level_order_count,
        } => {
            w.u8(7);
            w.u32(instrument_id);
            w.u64(order_id);
            w.u8(side as u8);
            w.i64(price);
            w.u64(quantity);
            w.u64(level_quantity);
            w.u32(level_order_count);
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
            w.u8(8);
            w.u32(instrument_id);
            w.u64(order_id);
            w.u8(side as u8);
            w.i64(price);
            w.u64(quantity);
            w.u64(level_quantity);
            w.u32(level_order_count);
        }
        Event::OrderDeleted {
            instrument_id,
            order_id,
            side,
            price,
            level_quantity,
            level_order_count,
        } => {
            w.u8(9);
            w.u32(instrument_id);
            w.u64(order_id);
            w.u8(side as u8);
            w.i64(price);
            w.u64(level_quantity);
            w.u32(level_order_count);
        }
        Event::OrderExecuted {
            instrument_id,
            order_id,
            side,
            price,
            quantity,
            leaves_quantity,
            trade_id,
            level_quantity,
            level_order_count,
        } => {
            w.u8(10);
            w.u32(instrument_id);
            w.u64(order_id);
            w.u8(side as u8);
            w.i64(price);
            w.u64(quantity);
            w.u64(leaves_quantity);
            w.u64(trade_id);
            w.u64(level_quantity);
            w.u32(level_order_count);
        }
        Event::Trade {
            instrument_id,
            trade_id,
            price,
            quantity,
            aggressor_side,
            buy_order_id,
            sell_order_id,
        } => {
            w.u8(11);
            w.u32(instrument_id);
            w.u64(trade_id);
            w.i64(price);
            w.u64(quantity);
            w.u8(aggressor_side as u8);
            w.u64(buy_order_id);
            w.u64(sell_order_id);
        }
        Event::TradingStatusChanged {
            instrument_id,
            status,
        } => {
            w.u8(12);
            w.u32(instrument_id);
            w.u8(status as u8);
        }
        Event::ReferencePriceSet {
            instrument_id,
            price,
        } => {
            w.u8(13);
            w.u32(instrument_id);
            w.i64(price);
        }
        Event::AccountUpdated {
            account_id,
            asset: a,
            available,
            reserved,
        } => {
            w.u8(14);
            w.u32(account_id);
            asset(&mut w, a);
            w.i128(available);
            w.i128(reserved);
        }
        Event::AdminRejected { reason } => {
            w.u8(15);
            w.u8(reason as u8);
        }
        Event::TradingDayStarted { trading_day } => {
            w.u8(16);
            w.u32(trading_day);
        }
        Event::MassCancelCompleted {
            scope: s,
            cancelled_count,
        } => {
            w.u8(17);
            scope(&mut w, s);
            w.u32(cancelled_count);
        }
    }
}

/// Encodes a whole output stream.
pub fn encode_outputs(outputs: &[Output]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(outputs.len() * 64);
    for o in outputs {
        encode_output(o, &mut buf);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_fails_cleanly_past_the_end() {
        let bytes = [1u8, 0, 0, 0, 7];
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u32(), Ok(1));
        assert_eq!(r.u32(), Err(DecodeError(4)));
        assert_eq!(r.bool(), Err(DecodeError(4)));
        let mut r = Reader::new(&[2u8]);
        assert_eq!(r.bool(), Err(DecodeError(0)));
    }

    #[test]
    fn outputs_encode_with_their_header() {
        let o = Output {
            sequence: 7,
            timestamp_ns: 9,
            event: Event::AdminRejected {
                reason: RejectReason::InvalidAmount,
            },
        };
        let mut buf = Vec::new();
        encode_output(&o, &mut buf);
        assert_eq!(buf.len(), 8 + 8 + 1 + 1);
        assert_eq!(&buf[..8], &7u64.to_le_bytes());
        assert_eq!(buf[16], 15);
        assert_eq!(buf[17], RejectReason::InvalidAmount as u8);
    }
}

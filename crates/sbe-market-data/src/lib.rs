//! SBE 1.0 codecs for the appliance's market data, generated at build time by `sbe-gen` from
//! `sbe-schemas/market-data.xml` (never edited by hand). The packets these messages travel in
//! are described in `docs/market-data-format.md`.
//!
//! ```
//! use sbe_market_data::*;
//! let mut buf = [0u8; 64];
//! let mut enc = best_bid_offer_codec::BestBidOfferEncoder::default()
//!     .wrap(WriteBuf::new(&mut buf), message_header_codec::ENCODED_LENGTH)?;
//! enc = enc.header(0)?.parent()?;
//! enc.instrument_id(3);
//! enc.bid_price(Some(101_25));
//! enc.bid_qty(10);
//! enc.ask_price(None);
//! let len = message_header_codec::ENCODED_LENGTH + enc.encoded_length();
//!
//! let header = MessageHeaderDecoder::default().wrap(ReadBuf::new(&buf[..len]), 0)?;
//! let dec = best_bid_offer_codec::BestBidOfferDecoder::default()
//!     .header(header, message_header_codec::ENCODED_LENGTH)?;
//! assert_eq!(dec.bid_price(), Some(101_25));
//! assert_eq!(dec.ask_price(), None);
//! # Ok::<(), SbeErr>(())
//! ```

#[allow(
    clippy::all,
    clippy::pedantic,
    dead_code,
    unused_imports,
    unused_mut,
    unused_parens
)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/market_data.rs"));
}

pub use generated::*;

/// Reads the 8-byte message header at the start of `buf`: (blockLength, templateId, schemaId,
/// version).
pub fn peek_header(buf: &[u8]) -> SbeResult<(u16, u16, u16, u16)> {
    let mut h = MessageHeaderDecoder::default().wrap(ReadBuf::new(buf), 0)?;
    let r = (
        h.block_length(),
        h.template_id(),
        h.schema_id(),
        h.version(),
    );
    h.parent()?;
    Ok(r)
}

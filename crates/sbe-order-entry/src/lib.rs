//! SBE 1.0 codecs for the appliance's order-entry events, generated at build time by `sbe-gen`
//! from `sbe-schemas/order-entry.xml` (never edited by hand).
//!
//! Inbound events (templates 1..19) carry orders and commands from the gateway to the matching
//! core; outbound events (templates 20..39) carry the core's results. Encode a message:
//!
//! ```
//! use sbe_order_entry::*;
//! let mut buf = [0u8; 128];
//! let mut enc = new_order_event_codec::NewOrderEventEncoder::default()
//!     .wrap(WriteBuf::new(&mut buf), message_header_codec::ENCODED_LENGTH)?;
//! enc = enc.header(0)?.parent()?;
//! enc.session_id(7);
//! enc.side(Side::Buy);
//! enc.price(Some(101_25));
//! enc.quantity(100);
//! enc.cl_ord_id(b"ORD-1")?;
//! let len = message_header_codec::ENCODED_LENGTH + enc.encoded_length();
//!
//! let header = MessageHeaderDecoder::default().wrap(ReadBuf::new(&buf[..len]), 0)?;
//! let mut dec = new_order_event_codec::NewOrderEventDecoder::default()
//!     .header(header, message_header_codec::ENCODED_LENGTH)?;
//! assert_eq!(dec.session_id(), 7);
//! assert_eq!(dec.price(), Some(101_25));
//! assert_eq!(dec.cl_ord_id()?, b"ORD-1");
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
    include!(concat!(env!("OUT_DIR"), "/order_entry.rs"));
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

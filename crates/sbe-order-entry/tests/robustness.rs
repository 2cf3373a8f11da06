//! Decoding never panics: truncated, oversized and garbage buffers give an error.
//!
//! `message_to_json` walks every field, composite, group (with its entries) and var-data of
//! whichever message the header names, so running it over arbitrary bytes, over valid messages
//! with random mutations, and over valid messages cut at random lengths exercises every decoder
//! path the schema generates. A panic fails the property; an `Err` is the expected answer to bad
//! input. Valid messages built from random field values must round-trip exactly.

use proptest::prelude::*;
use sbe_order_entry::*;

const HDR: usize = message_header_codec::ENCODED_LENGTH;

fn mass_cancel(instruments: &[u32], text: &[u8], session: u32) -> Vec<u8> {
    let mut buf = vec![0_u8; 4096];
    let mut enc = mass_cancel_event_codec::MassCancelEventEncoder::default()
        .wrap(WriteBuf::new(&mut buf), HDR)
        .unwrap();
    enc = enc.header(0).unwrap().parent().unwrap();
    enc.scope(MassCancelScope::Instrument);
    enc.reason(MassCancelReason::Admin);
    enc.session_id(session);
    let mut g = enc
        .instruments_encoder(instruments.len() as u8, Default::default())
        .unwrap();
    for id in instruments {
        g.advance().unwrap();
        g.instrument_id(*id);
    }
    let mut enc = g.parent().unwrap();
    enc.text(text).unwrap();
    let len = HDR + enc.encoded_length();
    buf.truncate(len);
    buf
}

#[allow(clippy::too_many_arguments)]
fn new_order(
    session: u32,
    price: Option<i64>,
    qty: u64,
    side: Side,
    min_qty: Option<u64>,
    cl_ord_id: &[u8],
) -> Vec<u8> {
    let mut buf = vec![0_u8; 512];
    let mut enc = new_order_event_codec::NewOrderEventEncoder::default()
        .wrap(WriteBuf::new(&mut buf), HDR)
        .unwrap();
    enc = enc.header(0).unwrap().parent().unwrap();
    enc.session_id(session);
    enc.side(side);
    enc.price(price);
    enc.quantity(qty);
    enc.min_qty(min_qty);
    enc.cl_ord_id(cl_ord_id).unwrap();
    let len = HDR + enc.encoded_length();
    buf.truncate(len);
    buf
}

fn valid_message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            proptest::collection::vec(any::<u32>(), 0..20),
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<u32>()
        )
            .prop_map(|(i, t, s)| mass_cancel(&i, &t, s)),
        (
            any::<u32>(),
            any::<Option<i64>>(),
            any::<u64>(),
            prop_oneof![Just(Side::Buy), Just(Side::Sell)],
            any::<Option<u64>>(),
            proptest::collection::vec(any::<u8>(), 0..40)
        )
            .prop_map(|(s, p, q, side, m, c)| new_order(s, p, q, side, m, &c)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = message_to_json(&bytes);
    }

    /// Headers that name a real template with arbitrary bodies reach the body decoders.
    #[test]
    fn arbitrary_bodies_behind_valid_headers_never_panic(
        template in prop::sample::select(MESSAGES.iter().map(|(id, _)| *id).collect::<Vec<_>>()),
        block_length in any::<u16>(),
        version in 0_u16..4,
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut bytes = Vec::with_capacity(HDR + body.len());
        bytes.extend_from_slice(&block_length.to_le_bytes());
        bytes.extend_from_slice(&template.to_le_bytes());
        bytes.extend_from_slice(&SBE_SCHEMA_ID.to_le_bytes());
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&body);
        let _ = message_to_json(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(
        msg in valid_message(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = msg.clone();
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        let _ = message_to_json(&bytes);
        let cut_at = cut.index(msg.len());
        // A message cut short is always an error, never a panic or a partial success.
        prop_assert!(message_to_json(&msg[..cut_at]).is_err());
    }

    #[test]
    fn valid_messages_round_trip(
        session in any::<u32>(),
        price in any::<Option<i64>>(),
        qty in any::<u64>(),
        min_qty in any::<Option<u64>>(),
        cl_ord_id in proptest::collection::vec(any::<u8>(), 0..=254),
        instruments in proptest::collection::vec(any::<u32>(), 0..=254),
        text in proptest::collection::vec(any::<u8>(), 0..=1024),
    ) {
        let bytes = new_order(session, price, qty, Side::Sell, min_qty, &cl_ord_id);
        let header = MessageHeaderDecoder::default().wrap(ReadBuf::new(&bytes), 0).unwrap();
        let mut dec = new_order_event_codec::NewOrderEventDecoder::default().header(header, HDR).unwrap();
        prop_assert_eq!(dec.session_id(), session);
        prop_assert_eq!(dec.price(), price.filter(|p| *p != i64::MIN));
        prop_assert_eq!(dec.quantity(), qty);
        prop_assert_eq!(dec.min_qty(), min_qty.filter(|q| *q != u64::MAX));
        prop_assert_eq!(dec.side(), Side::Sell);
        prop_assert_eq!(dec.cl_ord_id().unwrap(), &cl_ord_id[..]);

        let bytes = mass_cancel(&instruments, &text, session);
        let header = MessageHeaderDecoder::default().wrap(ReadBuf::new(&bytes), 0).unwrap();
        let dec = mass_cancel_event_codec::MassCancelEventDecoder::default().header(header, HDR).unwrap();
        let mut g = dec.instruments_decoder().unwrap();
        let mut got = Vec::new();
        while g.advance().unwrap().is_some() {
            got.push(g.instrument_id());
        }
        prop_assert_eq!(&got, &instruments);
        let mut dec = g.parent().unwrap();
        prop_assert_eq!(dec.text().unwrap(), &text[..]);
        prop_assert_eq!(HDR + dec.encoded_length(), bytes.len());
    }
}

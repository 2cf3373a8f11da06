//! Golden byte vectors written by hand from the SBE 1.0 specification.
//!
//! Each vector below was laid out field by field from `sbe-schemas/order-entry.xml` and the
//! specification's rules (8-byte little-endian header; the root block of `blockLength` bytes,
//! padding included; repeating groups with their dimension composite; var-data as length then
//! bytes), not produced by our encoder. The tests prove that the generated encoder writes exactly
//! these bytes and that the generated decoder reads them back, including the schema-evolution
//! rules: an older version (shorter block) decodes newer fields as absent, and a newer version
//! (longer block) is read by stepping over the unknown bytes with the acting blockLength.

use sbe_order_entry::*;

/// MassCancelEvent (template 4): a root block, a uint8-counted group and a uint16 var-data.
#[rustfmt::skip]
const MASS_CANCEL: [u8; 34] = [
    // messageHeader: blockLength=10, templateId=4, schemaId=101, version=1 (uint16 LE each)
    0x0a, 0x00, 0x04, 0x00, 0x65, 0x00, 0x01, 0x00,
    // offset 0 sessionId=7 (uint32)
    0x07, 0x00, 0x00, 0x00,
    // offset 4 accountId=42 (uint32)
    0x2a, 0x00, 0x00, 0x00,
    // offset 8 scope=Session(1), offset 9 reason=Disconnect(2)
    0x01, 0x02,
    // group instruments, groupSize8Encoding: blockLength=4 (uint16), numInGroup=2 (uint8)
    0x04, 0x00, 0x02,
    // entry 0 instrumentId=1, entry 1 instrumentId=2
    0x01, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x00, 0x00,
    // var-data text, varStringEncoding: length=3 (uint16), "bye"
    0x03, 0x00, b'b', b'y', b'e',
];

/// NewOrderEvent (template 1): chars, enums, a set, optional fields (one null), var-data.
#[rustfmt::skip]
const NEW_ORDER: [u8; 68] = [
    // messageHeader: blockLength=57, templateId=1, schemaId=101, version=1
    0x39, 0x00, 0x01, 0x00, 0x65, 0x00, 0x01, 0x00,
    // 0 price=10125 (int64)
    0x8d, 0x27, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    // 8 quantity=100 (uint64)
    0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    // 16 clientOrderId=0x0102030405060708
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
    // 24 receivedTime=1_700_000_000_000_000_000 ns
    0x00, 0x00, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17,
    // 32 sessionId=7, 36 accountId=42, 40 instrumentId=3
    0x07, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
    // 44 side='1' Buy, 45 ordType='2' Limit, 46 timeInForce='0' Day, 47 stpMode=1 CancelResting
    b'1', b'2', b'0', 0x01,
    // 48 flags: cancelOnDisconnect = bit 1
    0x02,
    // 49 minQty=null (uint64 null 2^64-1), sinceVersion 1
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    // var-data clOrdId, varAsciiEncoding: length=2 (uint8), "A1"
    0x02, b'A', b'1',
];

const HDR: usize = message_header_codec::ENCODED_LENGTH;

fn encode_mass_cancel(buf: &mut [u8]) -> SbeResult<usize> {
    let mut enc =
        mass_cancel_event_codec::MassCancelEventEncoder::default().wrap(WriteBuf::new(buf), HDR)?;
    enc = enc.header(0)?.parent()?;
    enc.scope(MassCancelScope::Session);
    enc.reason(MassCancelReason::Disconnect);
    enc.session_id(7);
    enc.account_id(42);
    let mut g = enc.instruments_encoder(2, Default::default())?;
    for id in [1, 2] {
        g.advance()?;
        g.instrument_id(id);
    }
    let mut enc = g.parent()?;
    enc.text(b"bye")?;
    Ok(HDR + enc.encoded_length())
}

fn encode_new_order(buf: &mut [u8]) -> SbeResult<usize> {
    let mut enc =
        new_order_event_codec::NewOrderEventEncoder::default().wrap(WriteBuf::new(buf), HDR)?;
    enc = enc.header(0)?.parent()?;
    enc.session_id(7);
    enc.account_id(42);
    enc.instrument_id(3);
    enc.side(Side::Buy);
    enc.ord_type(OrdType::Limit);
    enc.time_in_force(TimeInForce::Day);
    enc.stp_mode(StpMode::CancelResting);
    enc.price(Some(10125));
    enc.quantity(100);
    enc.client_order_id(0x0102_0304_0506_0708);
    enc.received_time(1_700_000_000_000_000_000);
    let mut flags = OrderFlags::default();
    flags.set_cancel_on_disconnect(true);
    enc.flags(flags);
    enc.min_qty(None);
    enc.cl_ord_id(b"A1")?;
    Ok(HDR + enc.encoded_length())
}

#[test]
fn mass_cancel_encodes_to_the_golden_bytes() {
    let mut buf = [0_u8; 64];
    let len = encode_mass_cancel(&mut buf).unwrap();
    assert_eq!(&buf[..len], &MASS_CANCEL[..]);
}

#[test]
fn mass_cancel_decodes_from_the_golden_bytes() {
    let header = MessageHeaderDecoder::default()
        .wrap(ReadBuf::new(&MASS_CANCEL), 0)
        .unwrap();
    let dec = mass_cancel_event_codec::MassCancelEventDecoder::default()
        .header(header, HDR)
        .unwrap();
    assert_eq!(dec.scope(), MassCancelScope::Session);
    assert_eq!(dec.reason(), MassCancelReason::Disconnect);
    assert_eq!(dec.session_id(), 7);
    assert_eq!(dec.account_id(), 42);
    let mut g = dec.instruments_decoder().unwrap();
    assert_eq!(g.count(), 2);
    let mut ids = Vec::new();
    while g.advance().unwrap().is_some() {
        ids.push(g.instrument_id());
    }
    assert_eq!(ids, [1, 2]);
    let mut dec = g.parent().unwrap();
    assert_eq!(dec.text().unwrap(), b"bye");
    assert_eq!(HDR + dec.encoded_length(), MASS_CANCEL.len());
}

#[test]
fn skipping_a_group_still_finds_the_var_data() {
    let header = MessageHeaderDecoder::default()
        .wrap(ReadBuf::new(&MASS_CANCEL), 0)
        .unwrap();
    let dec = mass_cancel_event_codec::MassCancelEventDecoder::default()
        .header(header, HDR)
        .unwrap();
    // parent() without visiting the entries steps over them.
    let mut dec = dec.instruments_decoder().unwrap().parent().unwrap();
    assert_eq!(dec.text().unwrap(), b"bye");
}

#[test]
fn new_order_encodes_to_the_golden_bytes() {
    let mut buf = [0_u8; 128];
    let len = encode_new_order(&mut buf).unwrap();
    assert_eq!(&buf[..len], &NEW_ORDER[..]);
}

#[test]
fn new_order_decodes_from_the_golden_bytes() {
    let header = MessageHeaderDecoder::default()
        .wrap(ReadBuf::new(&NEW_ORDER), 0)
        .unwrap();
    let mut dec = new_order_event_codec::NewOrderEventDecoder::default()
        .header(header, HDR)
        .unwrap();
    assert_eq!(dec.session_id(), 7);
    assert_eq!(dec.account_id(), 42);
    assert_eq!(dec.instrument_id(), 3);
    assert_eq!(dec.side(), Side::Buy);
    assert_eq!(dec.ord_type(), OrdType::Limit);
    assert_eq!(dec.time_in_force(), TimeInForce::Day);
    assert_eq!(dec.stp_mode(), StpMode::CancelResting);
    assert_eq!(dec.price(), Some(10125));
    assert_eq!(dec.quantity(), 100);
    assert_eq!(dec.client_order_id(), 0x0102_0304_0506_0708);
    assert_eq!(dec.received_time(), 1_700_000_000_000_000_000);
    assert!(dec.flags().get_cancel_on_disconnect());
    assert!(!dec.flags().get_possible_resend());
    assert_eq!(dec.min_qty(), None);
    assert_eq!(dec.cl_ord_id().unwrap(), b"A1");
}

#[test]
fn json_rendering_of_the_golden_bytes() {
    assert_eq!(
        message_to_json(&MASS_CANCEL).unwrap(),
        r#"{"$message":"MassCancelEvent","sessionId":7,"accountId":42,"scope":"Session","reason":"Disconnect","instruments":[{"instrumentId":1},{"instrumentId":2}],"text":"bye"}"#
    );
    let json = message_to_json(&NEW_ORDER).unwrap();
    assert!(json.contains(r#""price":10125"#), "{json}");
    assert!(json.contains(r#""minQty":null"#), "{json}");
    assert!(json.ends_with(r#""clOrdId":"A1"}"#), "{json}");
}

/// A version-0 sender's NewOrderEvent has blockLength 49 (no minQty). The decoder reads the
/// var-data right after the shorter block and reports minQty as absent.
#[test]
fn an_older_version_decodes_newer_fields_as_absent() {
    let mut v0 = Vec::new();
    v0.extend_from_slice(&[0x31, 0x00, 0x01, 0x00, 0x65, 0x00, 0x00, 0x00]); // blockLength 49, version 0
    v0.extend_from_slice(&NEW_ORDER[HDR..HDR + 49]);
    v0.extend_from_slice(&[0x02, b'A', b'1']);
    let header = MessageHeaderDecoder::default()
        .wrap(ReadBuf::new(&v0), 0)
        .unwrap();
    let mut dec = new_order_event_codec::NewOrderEventDecoder::default()
        .header(header, HDR)
        .unwrap();
    assert_eq!(dec.acting_version, 0);
    assert_eq!(dec.quantity(), 100);
    assert_eq!(dec.min_qty(), None);
    assert_eq!(dec.cl_ord_id().unwrap(), b"A1");
}

/// A future version-2 sender appends 8 bytes to the block. Today's decoder steps over them
/// with the blockLength on the wire and still finds the var-data.
#[test]
fn a_newer_version_is_read_by_the_acting_block_length() {
    let mut v2 = Vec::new();
    v2.extend_from_slice(&[0x41, 0x00, 0x01, 0x00, 0x65, 0x00, 0x02, 0x00]); // blockLength 65, version 2
    v2.extend_from_slice(&NEW_ORDER[HDR..HDR + 49]);
    v2.extend_from_slice(&500_u64.to_le_bytes()); // minQty = 500
    v2.extend_from_slice(&[0xEE; 8]); // a field this decoder does not know
    v2.extend_from_slice(&[0x02, b'A', b'1']);
    let header = MessageHeaderDecoder::default()
        .wrap(ReadBuf::new(&v2), 0)
        .unwrap();
    let mut dec = new_order_event_codec::NewOrderEventDecoder::default()
        .header(header, HDR)
        .unwrap();
    assert_eq!(dec.min_qty(), Some(500));
    assert_eq!(dec.cl_ord_id().unwrap(), b"A1");
}

#[test]
fn bad_input_gives_specific_errors() {
    let decode = |buf: &[u8]| -> SbeResult<()> {
        let header = MessageHeaderDecoder::default().wrap(ReadBuf::new(buf), 0)?;
        let dec = mass_cancel_event_codec::MassCancelEventDecoder::default().header(header, HDR)?;
        let mut g = dec.instruments_decoder()?;
        while g.advance()?.is_some() {}
        let mut dec = g.parent()?;
        dec.text()?;
        Ok(())
    };
    // Every truncation is an error, never a panic.
    for len in 0..MASS_CANCEL.len() {
        assert!(
            matches!(decode(&MASS_CANCEL[..len]), Err(SbeErr::ShortBuffer { .. })),
            "truncated to {len}"
        );
    }
    assert_eq!(decode(&MASS_CANCEL), Ok(()));

    let mut wrong_template = MASS_CANCEL;
    wrong_template[2] = 5;
    assert_eq!(
        decode(&wrong_template),
        Err(SbeErr::WrongTemplateId {
            expected: 4,
            actual: 5
        })
    );
    let mut wrong_schema = MASS_CANCEL;
    wrong_schema[4] = 0x66;
    assert_eq!(
        decode(&wrong_schema),
        Err(SbeErr::WrongSchemaId {
            expected: 101,
            actual: 0x66
        })
    );
    let mut short_block = MASS_CANCEL;
    short_block[0] = 8; // blockLength 8 < the 10 bytes every version has
    assert_eq!(
        decode(&short_block),
        Err(SbeErr::BlockLengthTooShort {
            minimum: 10,
            actual: 8
        })
    );
    let mut huge_count = MASS_CANCEL;
    huge_count[20] = 255; // above maxValue 254
    assert_eq!(
        decode(&huge_count),
        Err(SbeErr::CountTooLarge {
            max: 254,
            actual: 255
        })
    );
    let mut big_count = MASS_CANCEL;
    big_count[20] = 200; // fits the type but not the buffer: rejected before any entry is read
    assert!(matches!(
        decode(&big_count),
        Err(SbeErr::ShortBuffer { .. })
    ));
    let mut long_text = MASS_CANCEL;
    long_text[29] = 0xff;
    long_text[30] = 0xff; // length 65535 > maxValue 1024
    assert_eq!(
        decode(&long_text),
        Err(SbeErr::LengthTooLarge {
            max: 1024,
            actual: 65535
        })
    );
    assert_eq!(
        message_to_json(&[0x10, 0, 99, 0, 0x65, 0, 1, 0]),
        Err(SbeErr::UnknownTemplateId(99))
    );
}

#[test]
fn encoders_refuse_what_does_not_fit() {
    let mut small = [0_u8; 17]; // header 8 + block 10 does not fit
    assert!(matches!(
        mass_cancel_event_codec::MassCancelEventEncoder::default()
            .wrap(WriteBuf::new(&mut small), HDR),
        Err(SbeErr::ShortBuffer { .. })
    ));
    let mut buf = [0_u8; 64];
    let enc = mass_cancel_event_codec::MassCancelEventEncoder::default()
        .wrap(WriteBuf::new(&mut buf), HDR)
        .unwrap();
    let mut g = enc.instruments_encoder(2, Default::default()).unwrap();
    g.advance().unwrap();
    // Only one of the two announced entries was written.
    assert_eq!(
        g.parent().err(),
        Some(SbeErr::GroupIncomplete {
            expected: 2,
            written: 1
        })
    );
    let mut buf = [0_u8; 128];
    let mut enc = new_order_event_codec::NewOrderEventEncoder::default()
        .wrap(WriteBuf::new(&mut buf), HDR)
        .unwrap();
    assert_eq!(
        enc.cl_ord_id(&[b'x'; 300]),
        Err(SbeErr::LengthTooLarge {
            max: 254,
            actual: 300
        })
    );
}

/// OrderFilled carries a composite (contraParty) inside its block.
#[test]
fn composite_fields_round_trip() {
    let mut buf = [0_u8; 128];
    let mut enc = order_filled_codec::OrderFilledEncoder::default()
        .wrap(WriteBuf::new(&mut buf), HDR)
        .unwrap();
    enc = enc.header(0).unwrap().parent().unwrap();
    enc.exec_id(11);
    enc.price(-5);
    let mut flags = ExecFlags::default();
    flags.set_aggressor(true).set_end_of_match_event(true);
    enc.flags(flags);
    let mut contra = enc.contra_encoder().unwrap();
    contra.order_id(99);
    contra.account_id(5);
    let mut enc = contra.parent().unwrap();
    enc.inbound_seq(1234);
    let len = HDR + enc.encoded_length();
    assert_eq!(len, HDR + 99);
    // contraParty.orderId sits at block offset 72.
    assert_eq!(&buf[HDR + 72..HDR + 80], &99_u64.to_le_bytes());

    let header = MessageHeaderDecoder::default()
        .wrap(ReadBuf::new(&buf[..len]), 0)
        .unwrap();
    let dec = order_filled_codec::OrderFilledDecoder::default()
        .header(header, HDR)
        .unwrap();
    assert_eq!(dec.exec_id(), 11);
    assert_eq!(dec.price(), -5);
    assert!(dec.flags().get_aggressor());
    assert!(!dec.flags().get_order_complete());
    let mut c = dec.contra_decoder().unwrap();
    assert_eq!((c.order_id(), c.account_id()), (99, 5));
    let dec = c.parent().unwrap();
    assert_eq!(dec.inbound_seq(), 1234);
}

#[test]
fn enums_map_unknown_values_to_null() {
    assert_eq!(Side::from(b'1'), Side::Buy);
    assert_eq!(Side::from(b'9'), Side::NullVal);
    assert_eq!(u8::from(TimeInForce::FillOrKill), b'4');
    assert_eq!(RejectReason::from(200), RejectReason::NullVal);
    assert_eq!("Sell".parse::<Side>(), Ok(Side::Sell));
    assert_eq!(template_name(22), Some("OrderFilled"));
}

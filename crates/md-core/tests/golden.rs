//! Golden bytes laid out by hand from `sbe-schemas/market-data.xml` and the packet framing in
//! `docs/market-data-format.md`, not produced by our encoder.
//!
//! They prove that the encoder writes exactly the documented bytes (header, explicit offsets,
//! group dimensions, little-endian), that the decoder reads them back, and that a packet is a
//! 12-byte header followed by size-prefixed messages whose size counts its own two bytes.

use md_core::*;

/// OrderAdded (template 10): blockLength 41, schema 102, version 0.
#[rustfmt::skip]
const ORDER_ADDED: [u8; 49] = [
    0x29, 0x00, 0x0a, 0x00, 0x66, 0x00, 0x00, 0x00,  // header: 41, 10, 102, 0
    0x00, 0x00, 0x2a, 0x36, 0xfe, 0x9c, 0x97, 0x17,  // 0  transactTime 1_700_000_000_000_000_000
    0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // 8  orderId 7
    0x8d, 0x27, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // 16 price 10125
    0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // 24 quantity 100
    0x03, 0x00, 0x00, 0x00,                          // 32 instrumentId 3
    0x2a, 0x00, 0x00, 0x00,                          // 36 rptSeq 42
    b'2',                                            // 40 side Sell
];

/// LevelUpdate (template 20): root of 16 bytes, then the entries group (blockLength 22, 2).
#[rustfmt::skip]
const LEVEL_UPDATE: [u8; 72] = [
    0x10, 0x00, 0x14, 0x00, 0x66, 0x00, 0x00, 0x00,  // header: 16, 20, 102, 0
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // 0  transactTime 1
    0x03, 0x00, 0x00, 0x00,                          // 8  instrumentId 3
    0x05, 0x00, 0x00, 0x00,                          // 12 rptSeq 5
    0x16, 0x00, 0x02, 0x00,                          // groupSizeEncoding: blockLength 22, numInGroup 2
    0x8d, 0x27, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // entry 0: price 10125
    0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //          quantity 100
    0x02, 0x00, 0x00, 0x00,                          //          orderCount 2
    0x00, b'1',                                      //          action New, side Buy
    0x92, 0x27, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // entry 1: price 10130
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //          quantity 0
    0x00, 0x00, 0x00, 0x00,                          //          orderCount 0
    0x02, b'2',                                      //          action Delete, side Sell
];

fn order_added() -> MdMsg {
    MdMsg::OrderAdded {
        time_ns: 1_700_000_000_000_000_000,
        instrument_id: 3,
        rpt_seq: 42,
        order_id: 7,
        side: Side::Sell,
        price: 10125,
        quantity: 100,
    }
}

fn level_update() -> MdMsg {
    MdMsg::LevelUpdate {
        time_ns: 1,
        instrument_id: 3,
        rpt_seq: 5,
        entries: vec![
            LevelEntry {
                side: Side::Buy,
                action: Action::New,
                price: 10125,
                quantity: 100,
                order_count: 2,
            },
            LevelEntry {
                side: Side::Sell,
                action: Action::Delete,
                price: 10130,
                quantity: 0,
                order_count: 0,
            },
        ],
    }
}

#[test]
fn messages_encode_to_and_decode_from_the_golden_bytes() {
    let mut buf = [0_u8; 128];
    for (msg, golden) in [
        (order_added(), &ORDER_ADDED[..]),
        (level_update(), &LEVEL_UPDATE[..]),
    ] {
        let n = msg.encode(&mut buf).unwrap();
        assert_eq!(&buf[..n], golden);
        assert_eq!(MdMsg::decode(golden).unwrap(), msg);
    }
    assert_eq!(
        sbe_market_data::message_to_json(&LEVEL_UPDATE).unwrap(),
        r#"{"$message":"LevelUpdate","transactTime":1,"instrumentId":3,"rptSeq":5,"entries":[{"price":10125,"quantity":100,"orderCount":2,"action":"New","side":"Buy"},{"price":10130,"quantity":0,"orderCount":0,"action":"Delete","side":"Sell"}]}"#
    );
}

#[test]
fn a_packet_is_a_header_then_size_prefixed_messages() {
    let mut golden = Vec::new();
    golden.extend_from_slice(&[0x09, 0x00, 0x00, 0x00]); // MsgSeqNum 9
    golden.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]); // SendingTime 2
    golden.extend_from_slice(&[51, 0x00]); // MsgSize 2 + 49
    golden.extend_from_slice(&ORDER_ADDED);
    golden.extend_from_slice(&[74, 0x00]); // MsgSize 2 + 72
    golden.extend_from_slice(&LEVEL_UPDATE);

    let mut b = PacketBuilder::new(1400);
    let mut buf = [0_u8; 128];
    for m in [order_added(), level_update()] {
        let n = m.encode(&mut buf).unwrap();
        assert!(b.push(&buf[..n]));
    }
    assert_eq!(b.finish(9, 2), &golden[..]);

    let (h, msgs) = PacketMessages::new(&golden).unwrap();
    assert_eq!(
        h,
        PacketHeader {
            seq: 9,
            sending_time_ns: 2
        }
    );
    let decoded: Vec<MdMsg> = msgs.map(|m| MdMsg::decode(m.unwrap()).unwrap()).collect();
    assert_eq!(decoded, vec![order_added(), level_update()]);
}

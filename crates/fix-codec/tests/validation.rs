//! Validation of messages against `fix-dictionaries/FIX42.xml`, one test per fault.
//!
//! Each message is built with the crate's own writer (so BodyLength and CheckSum are right),
//! framed with `check_frame`, parsed, and validated; the test asserts the exact
//! SessionRejectReason(373) code and RefTagID(371) the FIX session rules prescribe, or that a
//! well-formed message passes. The dictionary file itself is the one the gateway loads.

use fix_codec::{
    check_frame, Dictionary, Frame, Parser, Rejection, SessionRejectReason as R, ValidationOptions,
    Verdict, Writer,
};

fn dict() -> Dictionary {
    Dictionary::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fix-dictionaries/FIX42.xml"
    ))
    .unwrap()
}

/// Builds a message from `tag=value` pairs after the MsgType (SOH written as `|`).
fn msg(msg_type: &str, rest: &str) -> Vec<u8> {
    let mut w = Writer::new(512);
    w.begin(msg_type.as_bytes());
    for kv in rest.split('|').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap();
        w.raw(format!("{k}={v}\x01").as_bytes());
    }
    let mut out = Vec::new();
    w.finish(b"FIX.4.2", &mut out);
    out
}

const HDR: &str = "49=CLIENT|56=EXCH|34=2|52=20261122-02:30:00.000|";
const NOS_BODY: &str = "11=A1|21=1|55=ACME|54=1|60=20261122-02:30:00.000|38=100|40=2|44=10.25|";

fn verdict_with(raw: &[u8], opts: &ValidationOptions) -> Verdict {
    assert_eq!(
        check_frame(raw, b"FIX.4.2", 8192),
        Frame::Complete { len: raw.len() }
    );
    let d = dict();
    let mut p = Parser::new(256);
    let m = p.parse(raw).unwrap();
    d.validate(&m, opts)
}

fn verdict(raw: &[u8]) -> Verdict {
    verdict_with(raw, &ValidationOptions::default())
}

fn rejected(reason: R, tag: Option<u32>) -> Verdict {
    Verdict::Reject(Rejection { reason, tag })
}

#[test]
fn a_good_new_order_single_is_valid() {
    let m = msg("D", &format!("{HDR}{NOS_BODY}"));
    assert_eq!(verdict(&m), Verdict::Valid { admin: false });
}

#[test]
fn session_messages_are_admin() {
    let m = msg("A", &format!("{HDR}98=0|108=30|"));
    assert_eq!(verdict(&m), Verdict::Valid { admin: true });
}

#[test]
fn required_tag_missing() {
    let m = msg(
        "D",
        &format!("{HDR}11=A1|21=1|54=1|60=20261122-02:30:00|38=100|40=2|"),
    );
    assert_eq!(verdict(&m), rejected(R::RequiredTagMissing, Some(55)));
    let m = msg("0", "49=CLIENT|56=EXCH|34=2|");
    assert_eq!(verdict(&m), rejected(R::RequiredTagMissing, Some(52)));
}

#[test]
fn tag_not_defined_for_message_type() {
    let m = msg("0", &format!("{HDR}55=ACME|"));
    assert_eq!(
        verdict(&m),
        rejected(R::TagNotDefinedForMessageType, Some(55))
    );
    let opts = ValidationOptions {
        allow_unknown_msg_fields: true,
        ..Default::default()
    };
    assert_eq!(verdict_with(&m, &opts), Verdict::Valid { admin: true });
}

#[test]
fn undefined_tag() {
    let m = msg("0", &format!("{HDR}4999=x|"));
    assert_eq!(verdict(&m), rejected(R::UndefinedTag, Some(4999)));
    // User-defined range is accepted by default, and refused when asked to validate it.
    let m = msg("0", &format!("{HDR}5001=x|"));
    assert_eq!(verdict(&m), Verdict::Valid { admin: true });
    let strict = ValidationOptions {
        allow_user_defined_fields: false,
        ..Default::default()
    };
    assert_eq!(
        verdict_with(&m, &strict),
        rejected(R::UndefinedTag, Some(5001))
    );
}

#[test]
fn invalid_tag_number() {
    let m = msg("0", &format!("{HDR}x9=1|"));
    assert_eq!(verdict(&m), rejected(R::InvalidTagNumber, None));
}

#[test]
fn tag_without_value() {
    let m = msg("D", &format!("{HDR}{NOS_BODY}1=|"));
    assert_eq!(verdict(&m), rejected(R::TagSpecifiedWithoutValue, Some(1)));
}

#[test]
fn value_out_of_range() {
    let m = msg(
        "D",
        &format!("{HDR}11=A1|21=1|55=ACME|54=Z|60=20261122-02:30:00|38=100|40=2|"),
    );
    assert_eq!(verdict(&m), rejected(R::ValueIncorrect, Some(54)));
}

#[test]
fn incorrect_data_format() {
    for (bad, tag) in [
        ("38=1x0", 38),
        ("44=1.2.3", 44),
        ("60=2026112-02:30:00", 60),
    ] {
        let body = NOS_BODY
            .split('|')
            .filter(|f| !f.is_empty() && !f.starts_with(&format!("{tag}=")))
            .collect::<Vec<_>>()
            .join("|");
        let m = msg("D", &format!("{HDR}{body}|{bad}|"));
        assert_eq!(
            verdict(&m),
            rejected(R::IncorrectDataFormat, Some(tag)),
            "{bad}"
        );
    }
    let m = msg("0", "49=CLIENT|56=EXCH|34=2|52=yesterday|");
    assert_eq!(verdict(&m), rejected(R::IncorrectDataFormat, Some(52)));
    let m = msg("4", &format!("{HDR}43=X|36=5|"));
    assert_eq!(verdict(&m), rejected(R::IncorrectDataFormat, Some(43)));
}

#[test]
fn repeated_tag() {
    let m = msg("D", &format!("{HDR}{NOS_BODY}55=ACME|"));
    assert_eq!(verdict(&m), rejected(R::TagAppearsMoreThanOnce, Some(55)));
}

#[test]
fn fields_out_of_order() {
    // A header field after the body.
    let m = msg("D", &format!("{HDR}{NOS_BODY}43=Y|"));
    assert_eq!(
        verdict(&m),
        rejected(R::TagSpecifiedOutOfRequiredOrder, Some(43))
    );
    // A body field after a trailer field.
    let m = msg(
        "D",
        &format!("{HDR}11=A1|93=1|89=x|21=1|55=ACME|54=1|60=20261122-02:30:00|38=1|40=2|"),
    );
    assert_eq!(
        verdict(&m),
        rejected(R::TagSpecifiedOutOfRequiredOrder, Some(21))
    );
    let relaxed = ValidationOptions {
        check_fields_out_of_order: false,
        ..Default::default()
    };
    let m = msg("D", &format!("{HDR}{NOS_BODY}43=Y|"));
    assert_eq!(verdict_with(&m, &relaxed), Verdict::Valid { admin: false });
}

#[test]
fn repeating_groups() {
    let ok = msg("D", &format!("{HDR}{NOS_BODY}78=2|79=X|80=10|79=Y|80=20|"));
    assert_eq!(verdict(&ok), Verdict::Valid { admin: false });
    let short = msg("D", &format!("{HDR}{NOS_BODY}78=3|79=X|80=10|79=Y|80=20|"));
    assert_eq!(
        verdict(&short),
        rejected(R::IncorrectNumInGroupCount, Some(78))
    );
    let long = msg("D", &format!("{HDR}{NOS_BODY}78=1|79=X|80=10|79=Y|80=20|"));
    assert_eq!(
        verdict(&long),
        rejected(R::IncorrectNumInGroupCount, Some(78))
    );
    let no_delim = msg("D", &format!("{HDR}{NOS_BODY}78=1|80=10|"));
    assert_eq!(
        verdict(&no_delim),
        rejected(R::IncorrectNumInGroupCount, Some(78))
    );
    // A huge count costs nothing: nothing is allocated from it.
    let huge = msg("D", &format!("{HDR}{NOS_BODY}78=999999999|79=X|"));
    assert_eq!(
        verdict(&huge),
        rejected(R::IncorrectNumInGroupCount, Some(78))
    );
}

#[test]
fn msg_types() {
    let m = msg("ZZ", HDR);
    assert_eq!(verdict(&m), rejected(R::InvalidMsgType, Some(35)));
    let m = msg("R", &format!("{HDR}131=Q1|"));
    assert_eq!(verdict(&m), Verdict::Unsupported);
}

#[test]
fn raw_data_with_soh_passes() {
    let m = msg("A", &format!("{HDR}98=0|108=30|95=3|96=a\x01b|"));
    assert_eq!(verdict(&m), Verdict::Valid { admin: true });
}

//! The generator rejects invalid schemas with an error that names the file, the element and
//! the reason, instead of generating codecs that would misread the wire.
//!
//! Each case starts from a small valid schema and breaks one rule of SBE 1.0 (or one rule this
//! project relies on: explicit offsets that do not overlap, blockLength covering the fields,
//! the body order fields → groups → data, append-only sinceVersion, the 8-byte header).

use std::path::Path;

const VALID_TYPES: &str = r#"
    <types>
        <composite name="messageHeader">
            <type name="blockLength" primitiveType="uint16"/>
            <type name="templateId" primitiveType="uint16"/>
            <type name="schemaId" primitiveType="uint16"/>
            <type name="version" primitiveType="uint16"/>
        </composite>
        <composite name="groupSizeEncoding">
            <type name="blockLength" primitiveType="uint16"/>
            <type name="numInGroup" primitiveType="uint16"/>
        </composite>
        <composite name="varData">
            <type name="length" primitiveType="uint16"/>
            <type name="varData" primitiveType="uint8" length="0"/>
        </composite>
        <enum name="Side" encodingType="char">
            <validValue name="Buy">1</validValue>
            <validValue name="Sell">2</validValue>
        </enum>
        <type name="Qty" primitiveType="uint64"/>
    </types>"#;

fn schema(types: &str, messages: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<sbe:messageSchema xmlns:sbe="http://fixprotocol.io/2016/sbe" package="t" id="7" version="2">
{types}
{messages}
</sbe:messageSchema>"#
    )
}

fn check(types: &str, messages: &str) -> Result<sbe_gen::Schema, sbe_gen::SchemaError> {
    sbe_gen::parse_str(Path::new("bad.xml"), &schema(types, messages))
}

fn rejects(types: &str, messages: &str, element: &str, reason: &str) {
    let err = check(types, messages).expect_err("schema should be rejected");
    let text = err.to_string();
    assert!(text.starts_with("bad.xml: "), "{text}");
    assert!(
        err.element.contains(element),
        "element {element:?} not in {text}"
    );
    assert!(
        err.reason.contains(reason),
        "reason {reason:?} not in {text}"
    );
}

const GOOD_MESSAGE: &str = r#"
    <sbe:message name="Order" id="1" blockLength="16">
        <field name="qty" id="1" type="Qty" offset="0"/>
        <field name="side" id="2" type="Side" offset="8"/>
        <group name="legs" id="3" blockLength="8">
            <field name="qty" id="4" type="Qty" offset="0"/>
        </group>
        <data name="text" id="5" type="varData"/>
    </sbe:message>"#;

#[test]
fn the_valid_base_schema_is_accepted_and_generates_code() {
    let s = check(VALID_TYPES, GOOD_MESSAGE).unwrap();
    assert_eq!(s.messages.len(), 1);
    assert_eq!(s.messages[0].block_length, 16);
    let code = sbe_gen::generate(&s);
    assert!(code.contains("pub mod order_codec"));
    assert!(code.contains("pub const SBE_TEMPLATE_ID: u16 = 1;"));
    assert!(code.contains("pub struct LegsDecoder<P>"));
}

#[test]
fn malformed_xml() {
    let err = sbe_gen::parse_str(Path::new("bad.xml"), "<messageSchema").unwrap_err();
    assert!(err.reason.contains("not well-formed XML"), "{err}");
}

#[test]
fn unknown_field_type() {
    rejects(
        VALID_TYPES,
        r#"<sbe:message name="M" id="1"><field name="x" id="1" type="Nope"/></sbe:message>"#,
        r#"<field name="x">"#,
        "unknown type 'Nope'",
    );
}

#[test]
fn overlapping_offsets() {
    rejects(
        VALID_TYPES,
        r#"<sbe:message name="M" id="1">
            <field name="a" id="1" type="Qty" offset="0"/>
            <field name="b" id="2" type="Qty" offset="4"/>
        </sbe:message>"#,
        r#"<message name="M"> / <field name="b">"#,
        "overlaps the previous field",
    );
}

#[test]
fn block_length_smaller_than_fields() {
    rejects(
        VALID_TYPES,
        r#"<sbe:message name="M" id="1" blockLength="4"><field name="a" id="1" type="Qty" offset="0"/></sbe:message>"#,
        r#"<message name="M">"#,
        "blockLength 4 is smaller than its fields, which end at 8",
    );
}

#[test]
fn group_before_field() {
    rejects(
        VALID_TYPES,
        r#"<sbe:message name="M" id="1">
            <group name="g" id="2"><field name="q" id="3" type="Qty"/></group>
            <field name="a" id="1" type="Qty"/>
        </sbe:message>"#,
        r#"<field name="a">"#,
        "fields come before groups",
    );
}

#[test]
fn since_version_not_append_only() {
    rejects(
        VALID_TYPES,
        r#"<sbe:message name="M" id="1">
            <field name="a" id="1" type="Qty" sinceVersion="1"/>
            <field name="b" id="2" type="Qty"/>
        </sbe:message>"#,
        r#"<field name="b">"#,
        "append-only",
    );
    rejects(
        VALID_TYPES,
        r#"<sbe:message name="M" id="1"><field name="a" id="1" type="Qty" sinceVersion="3"/></sbe:message>"#,
        r#"<field name="a">"#,
        "newer than the schema version 2",
    );
}

#[test]
fn duplicate_template_ids_and_names() {
    rejects(
        VALID_TYPES,
        r#"<sbe:message name="A" id="1"><field name="a" id="1" type="Qty"/></sbe:message>
           <sbe:message name="B" id="1"><field name="a" id="1" type="Qty"/></sbe:message>"#,
        r#"<message name="B">"#,
        "template id 1 is used twice",
    );
    rejects(
        VALID_TYPES,
        r#"<sbe:message name="A" id="1"><field name="a" id="1" type="Qty"/><field name="a" id="2" type="Qty"/></sbe:message>"#,
        r#"<field name="a">"#,
        "used twice",
    );
}

#[test]
fn bad_enum_and_set() {
    let types = VALID_TYPES.replace(
        "<type name=\"Qty\"",
        r#"<enum name="E" encodingType="uint16"><validValue name="A">1</validValue></enum>
        <type name="Qty""#,
    );
    rejects(
        &types,
        GOOD_MESSAGE,
        r#"<enum name="E">"#,
        "must be char or uint8",
    );
    let types = VALID_TYPES.replace(
        "<type name=\"Qty\"",
        r#"<set name="S" encodingType="uint8"><choice name="a">8</choice></set>
        <type name="Qty""#,
    );
    rejects(
        &types,
        GOOD_MESSAGE,
        r#"<choice name="a">"#,
        "bit 8 does not fit uint8",
    );
    let types = VALID_TYPES.replace(
        "<validValue name=\"Sell\">2</validValue>",
        "<validValue name=\"Sell\">1</validValue>",
    );
    rejects(
        &types,
        GOOD_MESSAGE,
        r#"<validValue name="Sell">"#,
        "used twice",
    );
}

#[test]
fn bad_header_and_dimensions() {
    let types = VALID_TYPES.replace(
        r#"<type name="version" primitiveType="uint16"/>"#,
        r#"<type name="version" primitiveType="uint8"/>"#,
    );
    rejects(
        &types,
        GOOD_MESSAGE,
        "<messageSchema>",
        "must be the 8-byte header",
    );
    rejects(
        VALID_TYPES,
        r#"<sbe:message name="M" id="1"><group name="g" id="2" dimensionType="Qty"><field name="q" id="3" type="Qty"/></group></sbe:message>"#,
        r#"<group name="g">"#,
        "dimensionType composite 'Qty' is not defined",
    );
    rejects(
        VALID_TYPES,
        r#"<sbe:message name="M" id="1"><data name="d" id="2" type="Qty"/></sbe:message>"#,
        r#"<data name="d">"#,
        "is not a defined composite",
    );
}

#[test]
fn bad_values_and_attributes() {
    let types = VALID_TYPES.replace(
        r#"<type name="Qty" primitiveType="uint64"/>"#,
        r#"<type name="Qty" primitiveType="uint64" presence="optional" nullValue="-1"/>"#,
    );
    rejects(
        &types,
        GOOD_MESSAGE,
        r#"<type name="Qty">"#,
        "nullValue: '-1' is not a valid Uint64 value",
    );
    let types = VALID_TYPES.replace(r#"primitiveType="uint64""#, r#"primitiveType="uint128""#);
    rejects(
        &types,
        GOOD_MESSAGE,
        r#"<type name="Qty">"#,
        "unknown primitiveType 'uint128'",
    );
    rejects(
        VALID_TYPES,
        r#"<sbe:message name="M" id="x"><field name="a" id="1" type="Qty"/></sbe:message>"#,
        r#"<message name="M">"#,
        "attribute 'id'='x' is not a valid number",
    );
    rejects(
        VALID_TYPES,
        r#"<sbe:message name="M" id="1"><field name="9a" id="1" type="Qty"/></sbe:message>"#,
        r#"<field name="9a">"#,
        "not a valid identifier",
    );
    rejects(VALID_TYPES, "", "<messageSchema>", "defines no message");
}

#[test]
fn missing_file_names_the_file() {
    let err = sbe_gen::parse_file(Path::new("/nonexistent/schema.xml")).unwrap_err();
    assert_eq!(err.file, Path::new("/nonexistent/schema.xml"));
    assert!(err.reason.contains("cannot read"), "{err}");
}

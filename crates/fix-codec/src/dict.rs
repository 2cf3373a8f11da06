//! The data dictionary (QuickFIX's XML format) and message validation against it.
//!
//! The file has `<header>`, `<trailer>`, `<messages>` (each `<message name msgtype msgcat>`
//! listing `<field name required>` and `<group name required>` members) and `<fields>` (each
//! `<field number name type>` with optional `<value enum description>` children). Validation
//! walks the fields once, in wire order, and stops at the first fault, which it reports with the
//! SessionRejectReason(373) code and RefTagID(371) the FIX session rules ask for.

use crate::message::{FieldRef, Message};
use crate::{decimal, parse_u64, time, Rejection, SessionRejectReason as R};
use std::collections::HashMap;
use std::path::Path;

/// FIX field types (FIX 4.2 names, as QuickFIX spells them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Int,
    Length,
    NumInGroup,
    SeqNum,
    TagNum,
    DayOfMonth,
    Float,
    Qty,
    Price,
    PriceOffset,
    Amt,
    Char,
    Boolean,
    String,
    MultipleValueString,
    Currency,
    Exchange,
    UtcTimestamp,
    UtcTimeOnly,
    UtcDate,
    LocalMktDate,
    MonthYear,
    Data,
}

impl FieldType {
    fn from_name(s: &str) -> Option<FieldType> {
        Some(match s {
            "INT" => Self::Int,
            "LENGTH" => Self::Length,
            "NUMINGROUP" => Self::NumInGroup,
            "SEQNUM" => Self::SeqNum,
            "TAGNUM" => Self::TagNum,
            "DAYOFMONTH" => Self::DayOfMonth,
            "FLOAT" => Self::Float,
            "QTY" | "QUANTITY" => Self::Qty,
            "PRICE" => Self::Price,
            "PRICEOFFSET" => Self::PriceOffset,
            "AMT" => Self::Amt,
            "CHAR" => Self::Char,
            "BOOLEAN" => Self::Boolean,
            "STRING" => Self::String,
            "MULTIPLEVALUESTRING" => Self::MultipleValueString,
            "CURRENCY" => Self::Currency,
            "EXCHANGE" => Self::Exchange,
            "UTCTIMESTAMP" => Self::UtcTimestamp,
            "UTCTIMEONLY" => Self::UtcTimeOnly,
            "UTCDATE" | "UTCDATEONLY" => Self::UtcDate,
            "LOCALMKTDATE" => Self::LocalMktDate,
            "MONTHYEAR" => Self::MonthYear,
            "DATA" => Self::Data,
            _ => return None,
        })
    }

    /// Whether `v` (non-empty) is well formed for this type.
    #[inline(always)]
    pub fn accepts(self, v: &[u8]) -> bool {
        match self {
            Self::Int => {
                let d = v.strip_prefix(b"-").unwrap_or(v);
                parse_u64(d).is_some()
            }
            Self::Length | Self::NumInGroup | Self::SeqNum | Self::TagNum => parse_u64(v).is_some(),
            Self::DayOfMonth => matches!(parse_u64(v), Some(1..=31)),
            Self::Float | Self::Qty | Self::Price | Self::PriceOffset | Self::Amt => {
                decimal::is_decimal(v)
            }
            Self::Char => v.len() == 1,
            Self::Boolean => v == b"Y" || v == b"N",
            Self::UtcTimestamp => time::is_timestamp(v),
            Self::UtcTimeOnly => time::parse_time_of_day(v).is_some(),
            Self::UtcDate | Self::LocalMktDate => time::parse_date(v).is_some(),
            Self::MonthYear => match v.len() {
                6 => {
                    let mut d = v.to_vec();
                    d.extend_from_slice(b"01");
                    time::parse_date(&d).is_some()
                }
                8 => {
                    time::parse_date(v).is_some()
                        || (v[6] == b'w'
                            && (b'1'..=b'5').contains(&v[7])
                            && time::parse_date(&[&v[..6], b"01"].concat()).is_some())
                }
                _ => false,
            },
            Self::String
            | Self::MultipleValueString
            | Self::Currency
            | Self::Exchange
            | Self::Data => true,
        }
    }
}

/// One field of the dictionary.
#[derive(Clone, Debug)]
pub struct FieldDef {
    pub tag: u32,
    pub name: String,
    pub field_type: FieldType,
    /// Allowed values; empty means any well-formed value.
    pub values: Vec<Box<[u8]>>,
    /// When every allowed value is one byte: those bytes as a bitmap (a one-load check).
    byte_values: Option<[u64; 4]>,
}

/// A set of tags: a bitmap for small tags, a sorted list for the rest.
#[derive(Clone, Debug, Default)]
struct TagSet {
    small: [u64; 16],
    large: Vec<u32>,
}

impl TagSet {
    fn insert(&mut self, tag: u32) {
        if tag < 1024 {
            self.small[(tag / 64) as usize] |= 1 << (tag % 64);
        } else if let Err(p) = self.large.binary_search(&tag) {
            self.large.insert(p, tag);
        }
    }

    #[inline]
    fn contains(&self, tag: u32) -> bool {
        if tag < 1024 {
            self.small[(tag / 64) as usize] & (1 << (tag % 64)) != 0
        } else {
            self.large.binary_search(&tag).is_ok()
        }
    }
}

/// A member of a message, a section or a group.
#[derive(Clone, Debug)]
struct Member {
    tag: u32,
    required: bool,
    group: Option<Box<GroupDef>>,
}

#[derive(Clone, Debug)]
struct Members {
    list: Vec<Member>,
    set: TagSet,
    /// Position + 1 in `list` of each small tag (0 = not a member): lookups without a scan.
    position: Box<[u16; 1024]>,
    /// The required tags, for the end-of-message check.
    required: Vec<u32>,
}

impl Members {
    #[inline]
    fn get(&self, tag: u32) -> Option<&Member> {
        if tag < 1024 {
            match self.position[tag as usize] {
                0 => None,
                p => Some(&self.list[usize::from(p) - 1]),
            }
        } else if self.set.contains(tag) {
            self.list.iter().find(|m| m.tag == tag)
        } else {
            None
        }
    }
}

#[derive(Clone, Debug)]
struct GroupDef {
    /// The first member: every entry starts with it.
    delimiter: u32,
    members: Members,
}

/// One message type of the dictionary.
#[derive(Clone, Debug)]
pub struct MessageDef {
    pub name: String,
    pub msg_type: Vec<u8>,
    pub admin: bool,
    members: Members,
    /// Where each small tag belongs for this message: one load instead of three lookups.
    class: Box<[Class; 1024]>,
}

/// The section a tag belongs to in one message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Not a member of the header, the trailer or this message's body.
    None,
    Header,
    Trailer,
    Body,
    /// A body member that counts a repeating group (or a header group).
    BodyGroup,
    HeaderGroup,
}

/// Validation switches, named after QuickFIX's session settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidationOptions {
    /// CheckFieldsOutOfOrder: header fields first, trailer fields last.
    pub check_fields_out_of_order: bool,
    /// AllowUnknownMsgFields: accept dictionary fields not defined for the message type.
    pub allow_unknown_msg_fields: bool,
    /// !ValidateUserDefinedFields: accept any tag in 5000..=9999 without checking it.
    pub allow_user_defined_fields: bool,
    /// Accept tags the dictionary does not define at all.
    pub allow_undefined_fields: bool,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        Self {
            check_fields_out_of_order: true,
            allow_unknown_msg_fields: false,
            allow_user_defined_fields: true,
            allow_undefined_fields: false,
        }
    }
}

/// The outcome of validating one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Well formed; `admin` for session-level messages.
    Valid { admin: bool },
    /// A session-level Reject(35=3) is due.
    Reject(Rejection),
    /// A valid FIX 4.2 MsgType this dictionary defines no message for: BusinessMessageReject.
    Unsupported,
}

/// Why a dictionary could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DictionaryError {
    #[error("reading {0}: {1}")]
    Io(String, std::io::Error),
    #[error("XML: {0}")]
    Xml(#[from] roxmltree::Error),
    #[error("dictionary: {0}")]
    Invalid(String),
}

/// What validation needs of a small tag, packed so the whole table stays in the L1 cache.
#[derive(Clone, Copy, Debug)]
struct FieldInfo {
    defined: bool,
    field_type: FieldType,
    /// Index + 1 into `byte_sets` when the allowed values are single bytes.
    byte_set: u16,
    /// The allowed values are longer strings (checked through `FieldDef::values`).
    long_values: bool,
}

const UNDEFINED: FieldInfo = FieldInfo {
    defined: false,
    field_type: FieldType::String,
    byte_set: 0,
    long_values: false,
};

/// A loaded data dictionary.
#[derive(Clone, Debug)]
pub struct Dictionary {
    pub begin_string: String,
    info: Box<[FieldInfo; 1024]>,
    byte_sets: Vec<[u64; 4]>,
    fields: Vec<Option<FieldDef>>,
    large_fields: HashMap<u32, FieldDef>,
    header: Members,
    trailer: Members,
    messages: Vec<MessageDef>,
    /// Position + 1 in `messages` of each one-byte MsgType.
    message_by_byte: [u8; 128],
}

const FIELD_INDEX_MAX: u32 = 10_000;

impl Dictionary {
    /// Loads a dictionary file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Dictionary, DictionaryError> {
        let p = path.as_ref();
        let text = std::fs::read_to_string(p)
            .map_err(|e| DictionaryError::Io(p.display().to_string(), e))?;
        Self::from_xml(&text)
    }

    /// Parses a dictionary from its XML text.
    pub fn from_xml(text: &str) -> Result<Dictionary, DictionaryError> {
        let bad = |m: String| DictionaryError::Invalid(m);
        let doc = roxmltree::Document::parse(text)?;
        let root = doc.root_element();
        if root.tag_name().name() != "fix" {
            return Err(bad("root element must be <fix>".into()));
        }
        let major = root.attribute("major").unwrap_or("4");
        let minor = root.attribute("minor").unwrap_or("2");
        let child = |name: &str| root.children().find(|n| n.tag_name().name() == name);

        // Fields first: members refer to them by name.
        let mut by_name: HashMap<String, u32> = HashMap::new();
        let mut fields: Vec<Option<FieldDef>> = Vec::new();
        let mut large_fields = HashMap::new();
        let fields_node = child("fields").ok_or_else(|| bad("no <fields>".into()))?;
        for f in fields_node.children().filter(|n| n.is_element()) {
            let name = f
                .attribute("name")
                .ok_or_else(|| bad("field without name".into()))?;
            let tag: u32 = f
                .attribute("number")
                .and_then(|n| n.parse().ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| bad(format!("field {name}: bad number")))?;
            let ty = f.attribute("type").unwrap_or("");
            let field_type = FieldType::from_name(ty)
                .ok_or_else(|| bad(format!("field {name}: unknown type {ty}")))?;
            let values = f
                .children()
                .filter(|n| n.tag_name().name() == "value")
                .map(|v| {
                    v.attribute("enum")
                        .map(|e| e.as_bytes().to_vec().into_boxed_slice())
                        .ok_or_else(|| bad(format!("field {name}: value without enum")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if by_name.insert(name.to_string(), tag).is_some() {
                return Err(bad(format!("field {name} defined twice")));
            }
            let byte_values = if !values.is_empty() && values.iter().all(|v| v.len() == 1) {
                let mut bits = [0_u64; 4];
                for v in &values {
                    bits[usize::from(v[0] / 64)] |= 1 << (v[0] % 64);
                }
                Some(bits)
            } else {
                None
            };
            let def = FieldDef {
                tag,
                name: name.to_string(),
                field_type,
                values,
                byte_values,
            };
            if tag < FIELD_INDEX_MAX {
                if fields.len() <= tag as usize {
                    fields.resize(tag as usize + 1, None);
                }
                if fields[tag as usize].is_some() {
                    return Err(bad(format!("tag {tag} defined twice")));
                }
                fields[tag as usize] = Some(def);
            } else {
                large_fields.insert(tag, def);
            }
        }

        let header = members(
            child("header").ok_or_else(|| bad("no <header>".into()))?,
            &by_name,
        )?;
        let trailer = members(
            child("trailer").ok_or_else(|| bad("no <trailer>".into()))?,
            &by_name,
        )?;
        let mut messages = Vec::new();
        let messages_node = child("messages").ok_or_else(|| bad("no <messages>".into()))?;
        for m in messages_node.children().filter(|n| n.is_element()) {
            let name = m.attribute("name").unwrap_or("").to_string();
            let msg_type = m
                .attribute("msgtype")
                .filter(|t| !t.is_empty())
                .ok_or_else(|| bad(format!("message {name} without msgtype")))?;
            let body = members(m, &by_name)?;
            let mut class = Box::new([Class::None; 1024]);
            for mm in &body.list {
                if mm.tag < 1024 {
                    class[mm.tag as usize] = if mm.group.is_some() {
                        Class::BodyGroup
                    } else {
                        Class::Body
                    };
                }
            }
            for mm in &trailer.list {
                if mm.tag < 1024 {
                    class[mm.tag as usize] = Class::Trailer;
                }
            }
            for mm in &header.list {
                if mm.tag < 1024 {
                    class[mm.tag as usize] = if mm.group.is_some() {
                        Class::HeaderGroup
                    } else {
                        Class::Header
                    };
                }
            }
            messages.push(MessageDef {
                name,
                msg_type: msg_type.as_bytes().to_vec(),
                admin: m.attribute("msgcat") == Some("admin"),
                members: body,
                class,
            });
        }
        let mut message_by_byte = [0_u8; 128];
        for (i, m) in messages.iter().enumerate().take(255) {
            if m.msg_type.len() == 1 && m.msg_type[0] < 128 {
                message_by_byte[usize::from(m.msg_type[0])] = (i + 1) as u8;
            }
        }
        let mut info = Box::new([UNDEFINED; 1024]);
        let mut byte_sets = Vec::new();
        for def in fields.iter().flatten() {
            if def.tag >= 1024 {
                continue;
            }
            let mut fi = FieldInfo {
                defined: true,
                field_type: def.field_type,
                byte_set: 0,
                long_values: false,
            };
            match def.byte_values {
                Some(bits) if def.field_type != FieldType::MultipleValueString => {
                    byte_sets.push(bits);
                    fi.byte_set = u16::try_from(byte_sets.len())
                        .map_err(|_| bad("too many enumerations".into()))?;
                }
                _ => fi.long_values = !def.values.is_empty(),
            }
            info[def.tag as usize] = fi;
        }
        let dict = Dictionary {
            info,
            byte_sets,
            begin_string: format!("FIX.{major}.{minor}"),
            fields,
            large_fields,
            header,
            trailer,
            messages,
            message_by_byte,
        };
        for t in [8, 9, 35, 10] {
            if dict.field(t).is_none() {
                return Err(bad(format!("standard tag {t} is not defined")));
            }
        }
        Ok(dict)
    }

    /// The definition of a tag.
    #[inline]
    pub fn field(&self, tag: u32) -> Option<&FieldDef> {
        if tag < FIELD_INDEX_MAX {
            self.fields.get(tag as usize).and_then(Option::as_ref)
        } else {
            self.large_fields.get(&tag)
        }
    }

    /// The definition of a message type.
    #[inline]
    pub fn message(&self, msg_type: &[u8]) -> Option<&MessageDef> {
        if let [b] = msg_type {
            if *b < 128 {
                return match self.message_by_byte[usize::from(*b)] {
                    0 => None,
                    i => Some(&self.messages[usize::from(i) - 1]),
                };
            }
        }
        self.messages.iter().find(|m| m.msg_type == msg_type)
    }

    /// Whether MsgType(35) lists `msg_type` as a value (a MsgType of this FIX version).
    pub fn is_known_msg_type(&self, msg_type: &[u8]) -> bool {
        self.field(35)
            .is_some_and(|f| f.values.iter().any(|v| &**v == msg_type))
            || self.message(msg_type).is_some()
    }

    /// Checks a parsed message against the dictionary; the first fault wins.
    pub fn validate(&self, msg: &Message<'_>, opts: &ValidationOptions) -> Verdict {
        let mt = msg.msg_type();
        if mt.is_empty() {
            return reject(R::TagSpecifiedWithoutValue, Some(35));
        }
        let Some(def) = self.message(mt) else {
            return if self.is_known_msg_type(mt) {
                Verdict::Unsupported
            } else {
                reject(R::InvalidMsgType, Some(35))
            };
        };
        match self.walk(msg, def, opts) {
            Ok(()) => Verdict::Valid { admin: def.admin },
            Err(r) => Verdict::Reject(r),
        }
    }

    fn walk(
        &self,
        msg: &Message<'_>,
        def: &MessageDef,
        opts: &ValidationOptions,
    ) -> Result<(), Rejection> {
        #[derive(PartialEq, PartialOrd)]
        enum Section {
            Header,
            Body,
            Trailer,
        }
        let fields = msg.fields();
        let n = fields.len();
        // Tags >= 1024 are tracked here; smaller ones through the parser's index.
        let mut seen = TagSet::default();
        let mut section = Section::Header;
        let mut i = 3;
        while i < n {
            let f = fields[i];
            let tag = f.tag;
            if tag == 10 && i != n - 1 {
                return Err(rej(R::TagSpecifiedOutOfRequiredOrder, tag));
            }
            if tag == 8 || tag == 9 || tag == 35 {
                return Err(rej(
                    if opts.check_fields_out_of_order {
                        R::TagSpecifiedOutOfRequiredOrder
                    } else {
                        R::TagAppearsMoreThanOnce
                    },
                    tag,
                ));
            }
            if !self.check_field(msg, &f, opts)? {
                i += 1;
                continue;
            }
            let class = if tag < 1024 {
                def.class[tag as usize]
            } else if self.header.set.contains(tag) {
                Class::HeaderGroup
            } else if self.trailer.set.contains(tag) {
                Class::Trailer
            } else if def.members.set.contains(tag) {
                Class::BodyGroup
            } else {
                Class::None
            };
            let mut group_of = None;
            match class {
                Class::Header | Class::HeaderGroup => {
                    if section != Section::Header && opts.check_fields_out_of_order {
                        return Err(rej(R::TagSpecifiedOutOfRequiredOrder, tag));
                    }
                    if class == Class::HeaderGroup {
                        group_of = self.header.get(tag);
                    }
                }
                Class::Trailer => section = Section::Trailer,
                Class::Body | Class::BodyGroup | Class::None => {
                    if section == Section::Trailer && opts.check_fields_out_of_order {
                        return Err(rej(R::TagSpecifiedOutOfRequiredOrder, tag));
                    }
                    section = Section::Body;
                    match class {
                        Class::BodyGroup => group_of = def.members.get(tag),
                        Class::None if !opts.allow_unknown_msg_fields => {
                            return Err(rej(R::TagNotDefinedForMessageType, tag))
                        }
                        _ => {}
                    }
                }
            }
            let member = group_of;
            // Repeated: the parser's tag index points at the first occurrence, not this one.
            if tag < 1024 {
                if msg.position(tag) != Some(i) {
                    return Err(rej(R::TagAppearsMoreThanOnce, tag));
                }
            } else {
                if seen.contains(tag) {
                    return Err(rej(R::TagAppearsMoreThanOnce, tag));
                }
                seen.insert(tag);
            }
            i += 1;
            if let Some(g) = member.and_then(|m| m.group.as_deref()) {
                let count = parse_u64(msg.value(&f)).unwrap_or(0);
                i = self.walk_group(msg, i, tag, count, g, opts)?;
            }
        }
        for sec in [&self.header, &def.members, &self.trailer] {
            for &t in &sec.required {
                let present = if t < 1024 {
                    msg.position(t).is_some()
                } else {
                    seen.contains(t)
                };
                if !present && t != 10 {
                    return Err(rej(R::RequiredTagMissing, t));
                }
            }
        }
        Ok(())
    }

    /// Validates the entries of a group whose count field `count_tag` said `count`, starting at
    /// field `i`; returns the index of the first field after the group.
    fn walk_group(
        &self,
        msg: &Message<'_>,
        mut i: usize,
        count_tag: u32,
        count: u64,
        g: &GroupDef,
        opts: &ValidationOptions,
    ) -> Result<usize, Rejection> {
        let fields = msg.fields();
        let mut entries: u64 = 0;
        let mut entry_seen = TagSet::default();
        let check_required = |entry_seen: &TagSet| -> Result<(), Rejection> {
            for m in &g.members.list {
                if m.required && !entry_seen.contains(m.tag) {
                    return Err(rej(R::RequiredTagMissing, m.tag));
                }
            }
            Ok(())
        };
        while i < fields.len() {
            let f = fields[i];
            let Some(m) = g.members.get(f.tag) else { break };
            self.check_field(msg, &f, opts)?;
            if f.tag == g.delimiter {
                if entries > 0 {
                    check_required(&entry_seen)?;
                }
                entries += 1;
                entry_seen = TagSet::default();
            } else if entries == 0 {
                // An entry must start with the delimiter.
                return Err(rej(R::IncorrectNumInGroupCount, count_tag));
            } else if entry_seen.contains(f.tag) {
                return Err(rej(R::TagAppearsMoreThanOnce, f.tag));
            }
            entry_seen.insert(f.tag);
            i += 1;
            if let Some(sub) = m.group.as_deref() {
                let c = parse_u64(msg.value(&f)).unwrap_or(0);
                i = self.walk_group(msg, i, f.tag, c, sub, opts)?;
            }
        }
        if entries > 0 {
            check_required(&entry_seen)?;
        }
        if entries != count {
            return Err(rej(R::IncorrectNumInGroupCount, count_tag));
        }
        Ok(i)
    }

    /// Tag, value and type checks of one field. `Ok(false)` when the field is to be skipped
    /// (an allowed user-defined or undefined tag).
    #[inline(always)]
    fn check_field(
        &self,
        msg: &Message<'_>,
        f: &FieldRef,
        opts: &ValidationOptions,
    ) -> Result<bool, Rejection> {
        if f.tag == 0 {
            return Err(Rejection {
                reason: R::InvalidTagNumber,
                tag: None,
            });
        }
        let v = msg.value(f);
        if f.tag < 1024 {
            let fi = self.info[f.tag as usize];
            if fi.defined && !fi.long_values {
                if v.is_empty() {
                    return Err(rej(R::TagSpecifiedWithoutValue, f.tag));
                }
                if !fi.field_type.accepts(v) {
                    return Err(rej(R::IncorrectDataFormat, f.tag));
                }
                if fi.byte_set != 0 {
                    let bits = &self.byte_sets[usize::from(fi.byte_set) - 1];
                    if v.len() != 1 || bits[usize::from(v[0] / 64)] & (1 << (v[0] % 64)) == 0 {
                        return Err(rej(R::ValueIncorrect, f.tag));
                    }
                }
                return Ok(true);
            }
        }
        let Some(def) = self.field(f.tag) else {
            if (opts.allow_user_defined_fields && (5000..10_000).contains(&f.tag))
                || opts.allow_undefined_fields
            {
                return Ok(false);
            }
            return Err(rej(R::UndefinedTag, f.tag));
        };
        if v.is_empty() {
            return Err(rej(R::TagSpecifiedWithoutValue, f.tag));
        }
        if !def.field_type.accepts(v) {
            return Err(rej(R::IncorrectDataFormat, f.tag));
        }
        if let Some(bits) = def.byte_values {
            if def.field_type != FieldType::MultipleValueString {
                let ok = v.len() == 1 && bits[usize::from(v[0] / 64)] & (1 << (v[0] % 64)) != 0;
                if !ok {
                    return Err(rej(R::ValueIncorrect, f.tag));
                }
                return Ok(true);
            }
        }
        if !def.values.is_empty() {
            let ok = if def.field_type == FieldType::MultipleValueString {
                v.split(|&b| b == b' ')
                    .all(|t| def.values.iter().any(|e| &**e == t))
            } else {
                def.values.iter().any(|e| &**e == v)
            };
            if !ok {
                return Err(rej(R::ValueIncorrect, f.tag));
            }
        }
        Ok(true)
    }
}

fn rej(reason: R, tag: u32) -> Rejection {
    Rejection {
        reason,
        tag: Some(tag),
    }
}

fn reject(reason: R, tag: Option<u32>) -> Verdict {
    Verdict::Reject(Rejection { reason, tag })
}

fn members(
    node: roxmltree::Node<'_, '_>,
    by_name: &HashMap<String, u32>,
) -> Result<Members, DictionaryError> {
    let mut list = Vec::new();
    let mut set = TagSet::default();
    for c in node.children().filter(|n| n.is_element()) {
        let kind = c.tag_name().name();
        let name = c.attribute("name").unwrap_or("");
        let tag = *by_name
            .get(name)
            .ok_or_else(|| DictionaryError::Invalid(format!("{kind} {name} is not in <fields>")))?;
        let required = c.attribute("required") == Some("Y");
        let group = match kind {
            "field" => None,
            "group" => {
                let inner = members(c, by_name)?;
                let delimiter = inner.list.first().map(|m| m.tag).ok_or_else(|| {
                    DictionaryError::Invalid(format!("group {name} has no members"))
                })?;
                Some(Box::new(GroupDef {
                    delimiter,
                    members: inner,
                }))
            }
            other => {
                return Err(DictionaryError::Invalid(format!(
                    "unsupported element <{other}> in a member list"
                )))
            }
        };
        if set.contains(tag) {
            return Err(DictionaryError::Invalid(format!("{name} listed twice")));
        }
        set.insert(tag);
        list.push(Member {
            tag,
            required,
            group,
        });
    }
    if list.len() >= usize::from(u16::MAX) {
        return Err(DictionaryError::Invalid("too many members".into()));
    }
    let mut position = Box::new([0_u16; 1024]);
    for (i, m) in list.iter().enumerate() {
        if m.tag < 1024 {
            position[m.tag as usize] = (i + 1) as u16;
        }
    }
    let required = list.iter().filter(|m| m.required).map(|m| m.tag).collect();
    Ok(Members {
        list,
        set,
        position,
        required,
    })
}

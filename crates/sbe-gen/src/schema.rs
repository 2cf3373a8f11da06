//! The intermediate representation of an SBE 1.0 message schema, and its parser.
//!
//! The parser is strict: everything the generator relies on (offsets inside the block, block
//! lengths, dimension and var-data composites, the order fields → groups → data, append-only
//! `sinceVersion`) is checked here, so the generator never has to guess. Every error names the
//! file, the element and the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// An error in a schema file: which file, which element, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {element}: {reason}")]
pub struct SchemaError {
    pub file: PathBuf,
    pub element: String,
    pub reason: String,
}

/// SBE primitive types (SBE 1.0, section "Primitive types").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Primitive {
    Char,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Float,
    Double,
}

impl Primitive {
    pub fn parse(name: &str) -> Option<Primitive> {
        Some(match name {
            "char" => Primitive::Char,
            "int8" => Primitive::Int8,
            "int16" => Primitive::Int16,
            "int32" => Primitive::Int32,
            "int64" => Primitive::Int64,
            "uint8" => Primitive::Uint8,
            "uint16" => Primitive::Uint16,
            "uint32" => Primitive::Uint32,
            "uint64" => Primitive::Uint64,
            "float" => Primitive::Float,
            "double" => Primitive::Double,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            Primitive::Char | Primitive::Int8 | Primitive::Uint8 => 1,
            Primitive::Int16 | Primitive::Uint16 => 2,
            Primitive::Int32 | Primitive::Uint32 | Primitive::Float => 4,
            Primitive::Int64 | Primitive::Uint64 | Primitive::Double => 8,
        }
    }

    /// The Rust type that carries the value.
    pub fn rust(self) -> &'static str {
        match self {
            Primitive::Char | Primitive::Uint8 => "u8",
            Primitive::Int8 => "i8",
            Primitive::Int16 => "i16",
            Primitive::Int32 => "i32",
            Primitive::Int64 => "i64",
            Primitive::Uint16 => "u16",
            Primitive::Uint32 => "u32",
            Primitive::Uint64 => "u64",
            Primitive::Float => "f32",
            Primitive::Double => "f64",
        }
    }

    /// The spec's null value for optional fields of this type, as a Rust literal.
    pub fn default_null(self) -> &'static str {
        match self {
            Primitive::Char => "0_u8",
            Primitive::Int8 => "i8::MIN",
            Primitive::Int16 => "i16::MIN",
            Primitive::Int32 => "i32::MIN",
            Primitive::Int64 => "i64::MIN",
            Primitive::Uint8 => "u8::MAX",
            Primitive::Uint16 => "u16::MAX",
            Primitive::Uint32 => "u32::MAX",
            Primitive::Uint64 => "u64::MAX",
            Primitive::Float => "f32::NAN",
            Primitive::Double => "f64::NAN",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Primitive::Float | Primitive::Double)
    }

    /// Checks that `text` is a literal of this type and returns it as a Rust literal.
    pub fn literal(self, text: &str) -> Result<String, String> {
        let text = text.trim();
        let ok = match self {
            Primitive::Char => {
                if text.len() == 1 && text.is_ascii() {
                    return Ok(format!("{}_u8", text.as_bytes()[0]));
                }
                false
            }
            Primitive::Int8 => text.parse::<i8>().is_ok(),
            Primitive::Int16 => text.parse::<i16>().is_ok(),
            Primitive::Int32 => text.parse::<i32>().is_ok(),
            Primitive::Int64 => text.parse::<i64>().is_ok(),
            Primitive::Uint8 => text.parse::<u8>().is_ok(),
            Primitive::Uint16 => text.parse::<u16>().is_ok(),
            Primitive::Uint32 => text.parse::<u32>().is_ok(),
            Primitive::Uint64 => text.parse::<u64>().is_ok(),
            Primitive::Float => text.parse::<f32>().is_ok(),
            Primitive::Double => text.parse::<f64>().is_ok(),
        };
        if !ok {
            return Err(format!("'{text}' is not a valid {self:?} value"));
        }
        if text.starts_with('-') {
            // Parenthesised so that a negative literal stays one expression.
            Ok(format!("({}_{})", text, self.rust()))
        } else {
            Ok(format!("{}_{}", text, self.rust()))
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Required,
    Optional,
    Constant,
}

/// A `<type>`: a primitive, or a fixed-length array of one.
#[derive(Clone, Debug)]
pub struct EncodedType {
    pub name: String,
    pub primitive: Primitive,
    /// Number of elements; 1 for a scalar, 0 only for the varData of a var-data composite.
    pub length: usize,
    pub presence: Presence,
    /// Rust literal of the null value (explicit or the spec's default).
    pub null_value: String,
    /// Rust literal of the constant value, for `presence="constant"`.
    pub constant: Option<String>,
    pub max_value: Option<u64>,
    pub since_version: u16,
    pub description: Option<String>,
}

impl EncodedType {
    pub fn size(&self) -> usize {
        if self.presence == Presence::Constant {
            0
        } else {
            self.primitive.size() * self.length
        }
    }
}

#[derive(Clone, Debug)]
pub struct CompositeMember {
    pub offset: usize,
    pub kind: MemberKind,
}

#[derive(Clone, Debug)]
pub enum MemberKind {
    Type(EncodedType),
    /// A reference to a named enum, set or composite, under a member name.
    Ref {
        name: String,
        type_name: String,
    },
}

#[derive(Clone, Debug)]
pub struct Composite {
    pub name: String,
    pub members: Vec<CompositeMember>,
    pub size: usize,
    pub description: Option<String>,
}

#[derive(Clone, Debug)]
pub struct EnumDef {
    pub name: String,
    pub encoding: Primitive,
    /// (name, Rust literal of the value)
    pub values: Vec<(String, String)>,
    pub null_value: String,
    pub description: Option<String>,
}

#[derive(Clone, Debug)]
pub struct SetDef {
    pub name: String,
    pub encoding: Primitive,
    pub choices: Vec<(String, u32)>,
    pub description: Option<String>,
}

#[derive(Clone, Debug)]
pub enum TypeDef {
    Encoded(EncodedType),
    Composite(Composite),
    Enum(EnumDef),
    Set(SetDef),
}

impl TypeDef {
    pub fn name(&self) -> &str {
        match self {
            TypeDef::Encoded(t) => &t.name,
            TypeDef::Composite(c) => &c.name,
            TypeDef::Enum(e) => &e.name,
            TypeDef::Set(s) => &s.name,
        }
    }
}

/// A field of a message or group block.
#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    pub id: u16,
    pub offset: usize,
    pub since_version: u16,
    pub description: Option<String>,
    pub ty: FieldType,
}

#[derive(Clone, Debug)]
pub enum FieldType {
    /// A primitive or a named `<type>` (carries presence, null and constant).
    Encoded(EncodedType),
    Enum(String),
    Set(String),
    Composite(String),
}

#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub id: u16,
    pub block_length: usize,
    pub dimension_type: String,
    pub since_version: u16,
    pub description: Option<String>,
    pub body: Body,
}

#[derive(Clone, Debug)]
pub struct Data {
    pub name: String,
    pub id: u16,
    pub type_name: String,
    pub since_version: u16,
    pub description: Option<String>,
}

/// Fields, then groups, then var-data: the shape of a message and of each group entry.
#[derive(Clone, Debug, Default)]
pub struct Body {
    pub fields: Vec<Field>,
    pub groups: Vec<Group>,
    pub data: Vec<Data>,
}

#[derive(Clone, Debug)]
pub struct Message {
    pub name: String,
    pub id: u16,
    pub block_length: usize,
    pub since_version: u16,
    pub description: Option<String>,
    pub body: Body,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
}

#[derive(Clone, Debug)]
pub struct Schema {
    pub file: PathBuf,
    pub package: String,
    pub id: u16,
    pub version: u16,
    pub semantic_version: String,
    pub description: Option<String>,
    pub byte_order: ByteOrder,
    pub header_type: String,
    pub types: BTreeMap<String, TypeDef>,
    pub messages: Vec<Message>,
}

impl Schema {
    pub fn composite(&self, name: &str) -> &Composite {
        match self.types.get(name) {
            Some(TypeDef::Composite(c)) => c,
            _ => panic!("validated schema lacks composite {name}"),
        }
    }

    /// Size on the wire of a named type.
    pub fn type_size(&self, name: &str) -> usize {
        match &self.types[name] {
            TypeDef::Encoded(t) => t.size(),
            TypeDef::Composite(c) => c.size,
            TypeDef::Enum(e) => e.encoding.size(),
            TypeDef::Set(s) => s.encoding.size(),
        }
    }

    /// The primitive of the member `member` of a dimension or var-data composite.
    pub fn member_primitive(&self, composite: &str, member: &str) -> Primitive {
        for m in &self.composite(composite).members {
            if let MemberKind::Type(t) = &m.kind {
                if t.name == member {
                    return t.primitive;
                }
            }
        }
        panic!("validated composite {composite} lacks {member}")
    }

    pub fn member_offset(&self, composite: &str, member: &str) -> usize {
        for m in &self.composite(composite).members {
            if let MemberKind::Type(t) = &m.kind {
                if t.name == member {
                    return m.offset;
                }
            }
        }
        panic!("validated composite {composite} lacks {member}")
    }

    pub fn member_max(&self, composite: &str, member: &str) -> Option<u64> {
        for m in &self.composite(composite).members {
            if let MemberKind::Type(t) = &m.kind {
                if t.name == member {
                    return t.max_value;
                }
            }
        }
        None
    }
}

impl Field {
    pub fn size(&self, schema: &Schema) -> usize {
        match &self.ty {
            FieldType::Encoded(t) => t.size(),
            FieldType::Enum(n) | FieldType::Set(n) | FieldType::Composite(n) => schema.type_size(n),
        }
    }
}

/// Reads and validates the schema at `path`.
pub fn parse_file(path: &Path) -> Result<Schema, SchemaError> {
    let text = std::fs::read_to_string(path).map_err(|e| SchemaError {
        file: path.to_path_buf(),
        element: "file".into(),
        reason: format!("cannot read: {e}"),
    })?;
    parse_str(path, &text)
}

/// Parses and validates schema text; `path` only names the file in errors.
pub fn parse_str(path: &Path, text: &str) -> Result<Schema, SchemaError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| SchemaError {
        file: path.to_path_buf(),
        element: "document".into(),
        reason: format!("not well-formed XML: {e}"),
    })?;
    let parser = Parser {
        file: path.to_path_buf(),
    };
    parser.schema(doc.root_element())
}

struct Parser {
    file: PathBuf,
}

type Node<'a, 'i> = roxmltree::Node<'a, 'i>;

fn describe(node: Node) -> String {
    let tag = node.tag_name().name();
    let line_hint = match node.attribute("name") {
        Some(n) => format!("<{tag} name=\"{n}\">"),
        None => format!("<{tag}>"),
    };
    let mut path = vec![line_hint];
    let mut cur = node.parent_element();
    while let Some(p) = cur {
        let t = p.tag_name().name();
        if t == "messageSchema" {
            break;
        }
        match p.attribute("name") {
            Some(n) => path.push(format!("<{t} name=\"{n}\">")),
            None => path.push(format!("<{t}>")),
        }
        cur = p.parent_element();
    }
    path.reverse();
    path.join(" / ")
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Parser {
    fn err<T>(&self, node: Node, reason: impl Into<String>) -> Result<T, SchemaError> {
        Err(SchemaError {
            file: self.file.clone(),
            element: describe(node),
            reason: reason.into(),
        })
    }

    fn attr<'a>(&self, node: Node<'a, '_>, name: &str) -> Result<&'a str, SchemaError> {
        match node.attribute(name) {
            Some(v) => Ok(v),
            None => self.err(node, format!("missing attribute '{name}'")),
        }
    }

    fn name(&self, node: Node) -> Result<String, SchemaError> {
        let name = self.attr(node, "name")?;
        if !is_identifier(name) {
            return self.err(node, format!("'{name}' is not a valid identifier"));
        }
        Ok(name.to_string())
    }

    fn num<T: std::str::FromStr>(
        &self,
        node: Node,
        name: &str,
        default: Option<T>,
    ) -> Result<T, SchemaError> {
        match node.attribute(name) {
            Some(v) => match v.trim().parse::<T>() {
                Ok(n) => Ok(n),
                Err(_) => self.err(
                    node,
                    format!("attribute '{name}'='{v}' is not a valid number"),
                ),
            },
            None => match default {
                Some(d) => Ok(d),
                None => self.err(node, format!("missing attribute '{name}'")),
            },
        }
    }

    fn since(&self, node: Node, schema_version: u16) -> Result<u16, SchemaError> {
        let since: u16 = self.num(node, "sinceVersion", Some(0))?;
        if since > schema_version {
            return self.err(
                node,
                format!("sinceVersion {since} is newer than the schema version {schema_version}"),
            );
        }
        Ok(since)
    }

    fn schema(&self, root: Node) -> Result<Schema, SchemaError> {
        if root.tag_name().name() != "messageSchema" {
            return self.err(root, "the root element must be messageSchema");
        }
        let package = self.attr(root, "package")?.to_string();
        if !package.split('.').all(is_identifier) {
            return self.err(
                root,
                format!("package '{package}' is not a valid identifier"),
            );
        }
        let id: u16 = self.num(root, "id", None)?;
        let version: u16 = self.num(root, "version", Some(0))?;
        let byte_order = match root.attribute("byteOrder").unwrap_or("littleEndian") {
            "littleEndian" => ByteOrder::Little,
            "bigEndian" => ByteOrder::Big,
            other => {
                return self.err(
                    root,
                    format!("byteOrder '{other}' is neither littleEndian nor bigEndian"),
                )
            }
        };
        let header_type = root
            .attribute("headerType")
            .unwrap_or("messageHeader")
            .to_string();

        let mut types = BTreeMap::new();
        let mut messages: Vec<Message> = Vec::new();
        let mut type_nodes = Vec::new();
        for child in root.children().filter(|n| n.is_element()) {
            match child.tag_name().name() {
                "types" => type_nodes.push(child),
                "message" => {}
                "include" => {
                    return self.err(
                        child,
                        "xi:include is not supported; keep a schema in one file",
                    )
                }
                other => return self.err(child, format!("unexpected element <{other}>")),
            }
        }
        // Types first (messages refer to them), in two passes so that composites may refer to
        // enums and sets declared after them.
        let mut composite_nodes = Vec::new();
        for types_node in &type_nodes {
            for t in types_node.children().filter(|n| n.is_element()) {
                let def = match t.tag_name().name() {
                    "type" => TypeDef::Encoded(self.encoded_type(t, version)?),
                    "enum" => TypeDef::Enum(self.enum_def(t)?),
                    "set" => TypeDef::Set(self.set_def(t)?),
                    "composite" => {
                        composite_nodes.push(t);
                        continue;
                    }
                    other => {
                        return self.err(t, format!("unexpected element <{other}> in <types>"))
                    }
                };
                let name = def.name().to_string();
                if types.insert(name.clone(), def).is_some() {
                    return self.err(t, format!("type '{name}' is defined twice"));
                }
            }
        }
        for _ in 0..=composite_nodes.len() {
            // Composites may nest; resolve in dependency order, bounded by the count.
            let mut progressed = false;
            for t in &composite_nodes {
                let name = self.name(*t)?;
                if types.contains_key(&name) {
                    continue;
                }
                if let Some(c) = self.composite(*t, &types, version)? {
                    types.insert(name, TypeDef::Composite(c));
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        for t in &composite_nodes {
            let name = self.name(*t)?;
            match types.get(&name) {
                Some(TypeDef::Composite(_)) => {}
                Some(_) => return self.err(*t, format!("type '{name}' is defined twice")),
                None => {
                    return self.err(
                        *t,
                        "refers to an unknown type, or composites refer to each other in a cycle",
                    )
                }
            }
        }

        // The header: the 8-byte form.
        match types.get(&header_type) {
            Some(TypeDef::Composite(c)) => {
                let expect = ["blockLength", "templateId", "schemaId", "version"];
                let ok = c.members.len() == 4
                    && c.members.iter().zip(expect).enumerate().all(|(i, (m, n))| {
                        matches!(&m.kind, MemberKind::Type(t) if t.name == n && t.primitive == Primitive::Uint16 && t.length == 1)
                            && m.offset == i * 2
                    });
                if !ok {
                    return self.err(
                        root,
                        format!("headerType '{header_type}' must be the 8-byte header: blockLength, templateId, schemaId, version, all uint16, in that order"),
                    );
                }
            }
            _ => {
                return self.err(
                    root,
                    format!("headerType composite '{header_type}' is not defined"),
                )
            }
        }

        let schema_stub = Schema {
            file: self.file.clone(),
            package: package.clone(),
            id,
            version,
            semantic_version: root.attribute("semanticVersion").unwrap_or("").to_string(),
            description: root.attribute("description").map(str::to_string),
            byte_order,
            header_type,
            types,
            messages: Vec::new(),
        };

        let mut ids = BTreeSet::new();
        let mut names = BTreeSet::new();
        for m in root
            .children()
            .filter(|n| n.is_element() && n.tag_name().name() == "message")
        {
            let msg = self.message(m, &schema_stub)?;
            if !ids.insert(msg.id) {
                return self.err(m, format!("template id {} is used twice", msg.id));
            }
            if !names.insert(msg.name.clone()) {
                return self.err(m, format!("message name '{}' is used twice", msg.name));
            }
            messages.push(msg);
        }
        if messages.is_empty() {
            return self.err(root, "the schema defines no message");
        }
        Ok(Schema {
            messages,
            ..schema_stub
        })
    }

    fn encoded_type(&self, t: Node, schema_version: u16) -> Result<EncodedType, SchemaError> {
        let name = self.name(t)?;
        let prim_name = self.attr(t, "primitiveType")?;
        let Some(primitive) = Primitive::parse(prim_name) else {
            return self.err(t, format!("unknown primitiveType '{prim_name}'"));
        };
        let length: usize = self.num(t, "length", Some(1))?;
        if length > 65_535 {
            return self.err(t, format!("length {length} is too large"));
        }
        let presence = match t.attribute("presence").unwrap_or("required") {
            "required" => Presence::Required,
            "optional" => Presence::Optional,
            "constant" => Presence::Constant,
            other => {
                return self.err(
                    t,
                    format!("presence '{other}' is not required, optional or constant"),
                )
            }
        };
        let null_value = match t.attribute("nullValue") {
            Some(v) => {
                if presence != Presence::Optional {
                    return self.err(t, "nullValue is only meaningful with presence=\"optional\"");
                }
                match primitive.literal(v) {
                    Ok(l) => l,
                    Err(e) => return self.err(t, format!("nullValue: {e}")),
                }
            }
            None => primitive.default_null().to_string(),
        };
        let constant = if presence == Presence::Constant {
            let text = t.text().unwrap_or("").trim();
            if text.is_empty() {
                return self.err(t, "a constant type needs its value as element text");
            }
            if primitive == Primitive::Char && length > 1 {
                if text.len() > length || !text.is_ascii() {
                    return self.err(t, format!("constant '{text}' does not fit char[{length}]"));
                }
                Some(format!("*b\"{text:\0<length$}\""))
            } else {
                match primitive.literal(text) {
                    Ok(l) => Some(l),
                    Err(e) => return self.err(t, format!("constant: {e}")),
                }
            }
        } else {
            None
        };
        if length == 0 && presence == Presence::Constant {
            return self.err(t, "a constant cannot have length 0");
        }
        if primitive.is_float() && length != 1 {
            return self.err(t, "arrays of floating-point values are not supported");
        }
        let max_value = match t.attribute("maxValue") {
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => return self.err(t, format!("maxValue '{v}' is not an unsigned number")),
            },
            None => None,
        };
        Ok(EncodedType {
            name,
            primitive,
            length,
            presence,
            null_value,
            constant,
            max_value,
            since_version: self.since(t, schema_version)?,
            description: t.attribute("description").map(str::to_string),
        })
    }

    fn enum_def(&self, t: Node) -> Result<EnumDef, SchemaError> {
        let name = self.name(t)?;
        let enc = self.attr(t, "encodingType")?;
        let encoding = match Primitive::parse(enc) {
            Some(p @ (Primitive::Char | Primitive::Uint8)) => p,
            _ => {
                return self.err(
                    t,
                    format!("enum encodingType '{enc}' must be char or uint8"),
                )
            }
        };
        let null_value = match t.attribute("nullValue") {
            Some(v) => match encoding.literal(v) {
                Ok(l) => l,
                Err(e) => return self.err(t, format!("nullValue: {e}")),
            },
            None => encoding.default_null().to_string(),
        };
        let mut values = Vec::new();
        let mut seen = BTreeSet::new();
        for v in t.children().filter(|n| n.is_element()) {
            if v.tag_name().name() != "validValue" {
                return self.err(v, "an enum holds only <validValue> elements");
            }
            let vname = self.name(v)?;
            let text = v.text().unwrap_or("").trim();
            let lit = match encoding.literal(text) {
                Ok(l) => l,
                Err(e) => return self.err(v, e),
            };
            if lit == null_value {
                return self.err(v, format!("value '{text}' equals the enum's null value"));
            }
            if !seen.insert(lit.clone()) {
                return self.err(v, format!("value '{text}' is used twice"));
            }
            if values.iter().any(|(n, _)| n == &vname) {
                return self.err(v, format!("name '{vname}' is used twice"));
            }
            values.push((vname, lit));
        }
        if values.is_empty() {
            return self.err(t, "an enum needs at least one validValue");
        }
        Ok(EnumDef {
            name,
            encoding,
            values,
            null_value,
            description: t.attribute("description").map(str::to_string),
        })
    }

    fn set_def(&self, t: Node) -> Result<SetDef, SchemaError> {
        let name = self.name(t)?;
        let enc = self.attr(t, "encodingType")?;
        let encoding = match Primitive::parse(enc) {
            Some(
                p @ (Primitive::Uint8 | Primitive::Uint16 | Primitive::Uint32 | Primitive::Uint64),
            ) => p,
            _ => {
                return self.err(
                    t,
                    format!("set encodingType '{enc}' must be uint8, uint16, uint32 or uint64"),
                )
            }
        };
        let bits = (encoding.size() * 8) as u32;
        let mut choices: Vec<(String, u32)> = Vec::new();
        for c in t.children().filter(|n| n.is_element()) {
            if c.tag_name().name() != "choice" {
                return self.err(c, "a set holds only <choice> elements");
            }
            let cname = self.name(c)?;
            let text = c.text().unwrap_or("").trim();
            let Ok(bit) = text.parse::<u32>() else {
                return self.err(c, format!("bit position '{text}' is not a number"));
            };
            if bit >= bits {
                return self.err(c, format!("bit {bit} does not fit {enc}"));
            }
            if choices.iter().any(|(n, b)| n == &cname || *b == bit) {
                return self.err(c, "choice name or bit used twice");
            }
            choices.push((cname, bit));
        }
        Ok(SetDef {
            name,
            encoding,
            choices,
            description: t.attribute("description").map(str::to_string),
        })
    }

    /// Returns None while a referenced composite is not yet resolved.
    fn composite(
        &self,
        t: Node,
        types: &BTreeMap<String, TypeDef>,
        schema_version: u16,
    ) -> Result<Option<Composite>, SchemaError> {
        let name = self.name(t)?;
        let mut members = Vec::new();
        let mut cursor = 0usize;
        let mut member_names = BTreeSet::new();
        for m in t.children().filter(|n| n.is_element()) {
            let (kind, size) =
                match m.tag_name().name() {
                    "type" => {
                        let et = self.encoded_type(m, schema_version)?;
                        let size = et.size();
                        (MemberKind::Type(et), size)
                    }
                    "ref" => {
                        let mname = self.name(m)?;
                        let type_name = self.attr(m, "type")?.to_string();
                        let size = match types.get(&type_name) {
                            Some(TypeDef::Encoded(e)) => e.size(),
                            Some(TypeDef::Composite(c)) => c.size,
                            Some(TypeDef::Enum(e)) => e.encoding.size(),
                            Some(TypeDef::Set(s)) => s.encoding.size(),
                            None => return Ok(None),
                        };
                        (
                            MemberKind::Ref {
                                name: mname,
                                type_name,
                            },
                            size,
                        )
                    }
                    "enum" | "set" | "composite" => return self.err(
                        m,
                        "declare enums, sets and composites at the top of <types> and use <ref>",
                    ),
                    other => {
                        return self.err(m, format!("unexpected element <{other}> in a composite"))
                    }
                };
            let mname = match &kind {
                MemberKind::Type(e) => e.name.clone(),
                MemberKind::Ref { name, .. } => name.clone(),
            };
            if !member_names.insert(mname.clone()) {
                return self.err(m, format!("member '{mname}' is defined twice"));
            }
            let offset: usize = self.num(m, "offset", Some(cursor))?;
            if offset < cursor {
                return self.err(
                    m,
                    format!("offset {offset} overlaps the previous member, which ends at {cursor}"),
                );
            }
            cursor = offset + size;
            members.push(CompositeMember { offset, kind });
        }
        if members.is_empty() {
            return self.err(t, "a composite needs at least one member");
        }
        Ok(Some(Composite {
            name,
            members,
            size: cursor,
            description: t.attribute("description").map(str::to_string),
        }))
    }

    fn message(&self, m: Node, schema: &Schema) -> Result<Message, SchemaError> {
        let name = self.name(m)?;
        let id: u16 = self.num(m, "id", None)?;
        let since_version = self.since(m, schema.version)?;
        let (body, computed) = self.body(m, schema)?;
        let block_length: usize = self.num(m, "blockLength", Some(computed))?;
        if block_length < computed {
            return self.err(
                m,
                format!("blockLength {block_length} is smaller than its fields, which end at {computed}"),
            );
        }
        if block_length > u16::MAX as usize {
            return self.err(m, "blockLength does not fit uint16");
        }
        Ok(Message {
            name,
            id,
            block_length,
            since_version,
            description: m.attribute("description").map(str::to_string),
            body,
        })
    }

    fn group(&self, g: Node, schema: &Schema) -> Result<Group, SchemaError> {
        let name = self.name(g)?;
        let id: u16 = self.num(g, "id", None)?;
        let dimension_type = g
            .attribute("dimensionType")
            .unwrap_or("groupSizeEncoding")
            .to_string();
        match schema.types.get(&dimension_type) {
            Some(TypeDef::Composite(c)) => {
                let has = |n: &str, allowed: &[Primitive]| {
                    c.members.iter().any(|m| matches!(&m.kind, MemberKind::Type(t) if t.name == n && allowed.contains(&t.primitive) && t.length == 1 && t.presence == Presence::Required))
                };
                if !has("blockLength", &[Primitive::Uint8, Primitive::Uint16])
                    || !has("numInGroup", &[Primitive::Uint8, Primitive::Uint16])
                {
                    return self.err(
                        g,
                        format!("dimensionType '{dimension_type}' needs blockLength (uint8/uint16) and numInGroup (uint8/uint16) members"),
                    );
                }
            }
            _ => {
                return self.err(
                    g,
                    format!("dimensionType composite '{dimension_type}' is not defined"),
                )
            }
        }
        let since_version = self.since(g, schema.version)?;
        let (body, computed) = self.body(g, schema)?;
        let block_length: usize = self.num(g, "blockLength", Some(computed))?;
        if block_length < computed {
            return self.err(
                g,
                format!("blockLength {block_length} is smaller than its fields, which end at {computed}"),
            );
        }
        let dim_block_prim = schema.member_primitive(&dimension_type, "blockLength");
        if block_length > (1usize << (dim_block_prim.size() * 8)) - 1 {
            return self.err(
                g,
                "blockLength does not fit the dimension's blockLength type",
            );
        }
        Ok(Group {
            name,
            id,
            block_length,
            dimension_type,
            since_version,
            description: g.attribute("description").map(str::to_string),
            body,
        })
    }

    /// Parses the fields, groups and data of a message or group; returns the body and the end
    /// of its last field.
    fn body(&self, parent: Node, schema: &Schema) -> Result<(Body, usize), SchemaError> {
        let mut body = Body::default();
        let mut cursor = 0usize;
        let mut stage = 0; // 0 fields, 1 groups, 2 data
        let mut names = BTreeSet::new();
        let mut last_since = 0u16;
        for n in parent.children().filter(|n| n.is_element()) {
            let tag = n.tag_name().name();
            let this_stage = match tag {
                "field" => 0,
                "group" => 1,
                "data" => 2,
                other => return self.err(n, format!("unexpected element <{other}>")),
            };
            if this_stage < stage {
                return self.err(
                    n,
                    "fields come before groups, and groups before data (SBE 1.0 body order)",
                );
            }
            if this_stage != stage {
                // Versions are ordered within each part (fields, groups, data) separately.
                last_since = 0;
            }
            stage = this_stage;
            let name = self.name(n)?;
            if !names.insert(name.clone()) {
                return self.err(n, format!("name '{name}' is used twice in this block"));
            }
            let since = self.since(n, schema.version)?;
            if since < last_since {
                return self.err(
                    n,
                    format!("sinceVersion {since} follows an element of version {last_since}: schema evolution is append-only"),
                );
            }
            last_since = since;
            match this_stage {
                0 => {
                    let field = self.field(n, schema, cursor, since)?;
                    let size = field.size(schema);
                    if field.offset < cursor && size > 0 {
                        return self.err(
                            n,
                            format!(
                                "offset {} overlaps the previous field, which ends at {cursor}",
                                field.offset
                            ),
                        );
                    }
                    if size > 0 {
                        cursor = field.offset + size;
                    }
                    body.fields.push(field);
                }
                1 => body.groups.push(self.group(n, schema)?),
                _ => {
                    let type_name = self.attr(n, "type")?.to_string();
                    match schema.types.get(&type_name) {
                        Some(TypeDef::Composite(c)) => {
                            let len_ok = c.members.iter().any(|m| matches!(&m.kind, MemberKind::Type(t) if t.name == "length" && matches!(t.primitive, Primitive::Uint8 | Primitive::Uint16 | Primitive::Uint32) && t.length == 1));
                            let data_ok = c.members.iter().any(|m| matches!(&m.kind, MemberKind::Type(t) if t.name == "varData" && t.length == 0 && matches!(t.primitive, Primitive::Uint8 | Primitive::Char)));
                            if !len_ok || !data_ok {
                                return self.err(n, format!("var-data type '{type_name}' must be a composite of length (uint8/uint16/uint32) and varData (uint8 or char, length 0)"));
                            }
                        }
                        _ => {
                            return self.err(
                                n,
                                format!("var-data type '{type_name}' is not a defined composite"),
                            )
                        }
                    }
                    body.data.push(Data {
                        name,
                        id: self.num(n, "id", None)?,
                        type_name,
                        since_version: since,
                        description: n.attribute("description").map(str::to_string),
                    });
                }
            }
        }
        Ok((body, cursor))
    }

    fn field(
        &self,
        n: Node,
        schema: &Schema,
        cursor: usize,
        since_version: u16,
    ) -> Result<Field, SchemaError> {
        let name = self.name(n)?;
        let id: u16 = self.num(n, "id", None)?;
        let type_name = self.attr(n, "type")?;
        let presence_override = n.attribute("presence");
        let ty = if let Some(p) = Primitive::parse(type_name) {
            let presence = match presence_override.unwrap_or("required") {
                "required" => Presence::Required,
                "optional" => Presence::Optional,
                other => {
                    return self.err(
                        n,
                        format!(
                            "presence '{other}' on a primitive field must be required or optional"
                        ),
                    )
                }
            };
            FieldType::Encoded(EncodedType {
                name: type_name.to_string(),
                primitive: p,
                length: 1,
                presence,
                null_value: p.default_null().to_string(),
                constant: None,
                max_value: None,
                since_version,
                description: None,
            })
        } else {
            match schema.types.get(type_name) {
                Some(TypeDef::Encoded(e)) => {
                    if e.length == 0 {
                        return self.err(
                            n,
                            format!("type '{type_name}' has length 0 and cannot be a field"),
                        );
                    }
                    let mut e = e.clone();
                    if let Some(p) = presence_override {
                        e.presence = match p {
                            "required" => Presence::Required,
                            "optional" => Presence::Optional,
                            other => return self.err(n, format!("presence '{other}' must be required or optional here; declare constants on the type")),
                        };
                    }
                    FieldType::Encoded(e)
                }
                Some(TypeDef::Enum(_)) => FieldType::Enum(type_name.to_string()),
                Some(TypeDef::Set(_)) => FieldType::Set(type_name.to_string()),
                Some(TypeDef::Composite(_)) => FieldType::Composite(type_name.to_string()),
                None => return self.err(n, format!("unknown type '{type_name}'")),
            }
        };
        let offset: usize = self.num(n, "offset", Some(cursor))?;
        Ok(Field {
            name,
            id,
            offset,
            since_version,
            description: n.attribute("description").map(str::to_string),
            ty,
        })
    }
}

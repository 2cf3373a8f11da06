//! `sbe-gen`: reads an SBE 1.0 message schema (XML) and generates Rust codecs.
//!
//! The output follows the shape of the SBE tool's Rust generator: per schema `SBE_SCHEMA_ID`,
//! `SBE_SCHEMA_VERSION`, a `ReadBuf`/`WriteBuf` pair with `get_<prim>_at`/`put_<prim>_at`, the
//! traits `Reader`/`Writer`/`Decoder`/`Encoder`/`ActingVersion`; per message a module
//! `<message>_codec` with `SBE_BLOCK_LENGTH`, `SBE_TEMPLATE_ID` and flyweight `encoder`/`decoder`
//! modules; composites and groups as flyweights that own their parent and hand it back with
//! `parent()`; enums `#[repr]` with a `NullVal` variant; sets as newtypes with `get_x`/`set_x`.
//!
//! It differs where this project asks for more than the reference generator gives: decoding
//! never panics on hostile input. Every `wrap`, group, composite and var-data access checks the
//! buffer and returns `SbeResult`, the acting `blockLength` of a message or group entry must
//! cover every field of version 0, and fields newer than the acting version (or beyond the
//! acting block) decode as absent (`None`, `NullVal` or an empty set).
//!
//! Use it from `build.rs`:
//! ```no_run
//! let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("codecs.rs");
//! sbe_gen::generate_file(std::path::Path::new("schema.xml"), &out).unwrap();
//! ```

mod generate;
pub mod schema;

pub use generate::generate;
pub use schema::{parse_file, parse_str, Schema, SchemaError};

use std::path::Path;

/// Errors of [`generate_file`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Parses `schema_path`, generates the codecs and writes them to `out_path` (only when the
/// content changed, so dependent builds are not redone needlessly).
pub fn generate_file(schema_path: &Path, out_path: &Path) -> Result<(), GenerateError> {
    let schema = parse_file(schema_path)?;
    let code = generate(&schema);
    if std::fs::read_to_string(out_path).ok().as_deref() == Some(code.as_str()) {
        return Ok(());
    }
    std::fs::write(out_path, code).map_err(|source| GenerateError::Write {
        path: out_path.to_path_buf(),
        source,
    })
}

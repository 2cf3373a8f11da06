//! Generates the market-data codecs from `sbe-schemas/market-data.xml` into OUT_DIR.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let schema = manifest.join("../../sbe-schemas/market-data.xml");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("market_data.rs");
    println!("cargo:rerun-if-changed={}", schema.display());
    if let Err(e) = sbe_gen::generate_file(&schema, &out) {
        // The error names the file, the element and the reason.
        panic!("SBE code generation failed: {e}");
    }
}

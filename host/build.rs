//! Generates the TFLite FlatBuffers types from pf's own schema
//! (`src/export/tflite/schema.fbs`) with planus, into `OUT_DIR/tflite.rs`.

use std::path::Path;

fn main() {
    let schema = Path::new("src/export/tflite/schema.fbs");
    println!("cargo:rerun-if-changed={}", schema.display());
    let Some(declarations) = planus_translation::translate_files(&[schema]) else {
        // planus has printed the schema's errors.
        panic!("{} is not a valid FlatBuffers schema", schema.display());
    };
    let code = planus_codegen::generate_rust(&declarations, false)
        .unwrap_or_else(|e| panic!("planus cannot generate Rust for {}: {e}", schema.display()));
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("tflite.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}

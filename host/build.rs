//! Generates code from the two schemas pf writes to and reads from:
//!
//! - the TFLite FlatBuffers types, from pf's own copy of the schema
//!   (`src/export/tflite/schema.fbs`), with planus, into `OUT_DIR/tflite.rs`;
//! - the ONNX protobuf types, from ONNX's `onnx.proto` (`src/onnx/onnx.proto`,
//!   as released with onnx 1.23), with protox and prost, into
//!   `OUT_DIR/onnx.rs`. protox is a protobuf compiler written in Rust, so no
//!   system `protoc` is needed.

use std::path::Path;

fn main() {
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    tflite(Path::new(&out_dir));
    onnx();
}

fn tflite(out_dir: &Path) {
    let schema = Path::new("src/export/tflite/schema.fbs");
    println!("cargo:rerun-if-changed={}", schema.display());
    let Some(declarations) = planus_translation::translate_files(&[schema]) else {
        // planus has printed the schema's errors.
        panic!("{} is not a valid FlatBuffers schema", schema.display());
    };
    let code = planus_codegen::generate_rust(&declarations, false)
        .unwrap_or_else(|e| panic!("planus cannot generate Rust for {}: {e}", schema.display()));
    let out = out_dir.join("tflite.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}

fn onnx() {
    let schema = Path::new("src/onnx/onnx.proto");
    println!("cargo:rerun-if-changed={}", schema.display());
    let descriptors = protox::compile([schema], ["src/onnx"])
        .unwrap_or_else(|e| panic!("{} is not a valid protobuf schema: {e}", schema.display()));
    prost_build::Config::new()
        .compile_fds(descriptors)
        .unwrap_or_else(|e| panic!("prost cannot generate Rust for {}: {e}", schema.display()));
}

//! Exporting models to deployment formats.
//!
//! - [`tflite`]: TensorFlow Lite FlatBuffers, float32.

pub mod tflite;

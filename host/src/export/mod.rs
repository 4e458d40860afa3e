//! Exporting models to deployment formats.
//!
//! - [`tflite`]: TensorFlow Lite FlatBuffers, float32 and int8.
//! - [`compare`] and [`python`]: what checking an exported file in its
//!   official runtime needs, shared with [`crate::onnx`].

pub mod compare;
pub mod python;
pub mod tflite;

//! Exporting models to deployment formats.
//!
//! - [`deploy`]: the one path from a model to a `.tflite` or `.onnx` file,
//!   float32 or int8, for `pf export` and `pf compress --export`.
//! - [`tflite`]: TensorFlow Lite FlatBuffers, float32 and int8.
//! - [`compare`] and [`python`]: what checking an exported file in its
//!   official runtime needs, shared with [`crate::onnx`].

pub mod compare;
pub mod deploy;
pub mod python;
pub mod tflite;

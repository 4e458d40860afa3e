//! # pf
//!
//! pf compresses and accelerates deep neural networks automatically, in the
//! manner of Tencent's PocketFlow. This crate is the host: it owns the model
//! graph, every tensor, training, metrics and the command-line tool.
//!
//! Layers depend in one direction:
//! [`data`] and [`graph`] → [`nn`] → [`model`] → [`export`], [`onnx`],
//! [`train`] → [`plugin`] → [`conformance`], [`devtools`], [`registry`],
//! [`search`] → `cli` (the `pf` binary). [`plugin`] is the sandbox and the
//! only module that sees wasmtime. [`onnx`] reads and
//! writes models; for int8 files it takes the quantization of
//! [`export::tflite`], so that both formats hold the same integers.

pub mod conformance;
pub mod data;
pub mod device;
pub mod devtools;
pub mod export;
pub mod graph;
pub mod io;
pub mod kernels;
pub mod model;
pub mod nn;
pub mod onnx;
pub mod plugin;
pub mod progress;
pub mod registry;
pub mod report;
pub mod rng;
pub mod search;
pub mod source;
pub mod train;
pub mod zoo;

//! # pf
//!
//! pf compresses and accelerates deep neural networks automatically, in the
//! manner of Tencent's PocketFlow. This crate is the host: it owns the model
//! graph, every tensor, training, metrics and the command-line tool.
//!
//! The rooms, each using only those on lower lines (`docs/architecture.md`
//! has the exact list of every room's dependencies):
//!
//! ```text
//!  7  cli (the pf binary: parses flags, prints results)
//!  6  search (a study end to end: baseline, trials, study, report)
//!  5  conformance    devtools    deploy    source
//!  4  registry                   onnx
//!  3  plugin (the sandbox)       export
//!  2  train
//!  1  model          zoo
//!  0  nn → kernels   graph   data → io   rng   progress   device
//! ```
//!
//! [`plugin`] is the only room that sees wasmtime. [`onnx`] takes the int8
//! quantization of [`export::tflite`], so that both formats hold the same
//! integers; [`deploy`] writes either.

pub mod conformance;
pub mod data;
pub mod deploy;
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
pub mod rng;
pub mod search;
pub mod source;
pub mod train;
pub mod zoo;

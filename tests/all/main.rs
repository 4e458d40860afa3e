//! pf's integration tests: one binary, one module per topic (the wasmtime
//! layout). Tests train tiny models for a capped number of steps; long runs
//! live in the benchmarks.

mod channel_pruned;
mod chaos;
mod cli;
mod compress;
mod contract;
mod data;
mod dis_chn_pruned;
mod gradients;
mod graph;
mod headline;
mod install;
mod kernels;
mod non_uniform_quant;
mod onnx;
mod optimizers;
mod plugins;
mod probe;
mod registry;
mod support;
mod surgery;
mod tflite;
mod tflite_int8;
mod training;
mod zoo;

//! pf's integration tests: one binary, one module per topic (the wasmtime
//! layout). Tests train tiny models for a capped number of steps; long runs
//! live in the benchmarks.

mod admission;
mod budgets;
mod channel_pruned;
mod chaos;
mod cli;
mod compress;
mod contract;
mod data;
mod dis_chn_pruned;
mod faults;
mod fuzz_corpus;
mod gradients;
mod graph;
mod headline;
mod hostile;
mod install;
mod kernels;
mod non_uniform_quant;
mod onnx;
mod optimizers;
mod plugin_test;
mod plugins;
mod postgres;
mod probe;
mod registry;
mod shared_study;
mod support;
mod surgery;
mod tflite;
mod tflite_fuzz;
mod tflite_int8;
mod training;
mod zoo;

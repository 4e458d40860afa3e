//! Fuzzes `pf_fuzz::cifar` (see src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pf_fuzz::cifar(data));

//! Fuzzes `pf_fuzz::registry` (see src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pf_fuzz::registry(data));

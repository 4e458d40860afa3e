//! Fuzzes `pf_fuzz::image` (see src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pf_fuzz::image(data));

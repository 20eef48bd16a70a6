//! Fuzz target `upload`: see `mxprobe_fuzz::upload` for the properties it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxprobe_fuzz::upload(data));

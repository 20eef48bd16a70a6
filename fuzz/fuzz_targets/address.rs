//! Fuzz target `address`: see `mxprobe_fuzz::address` for the properties it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxprobe_fuzz::address(data));

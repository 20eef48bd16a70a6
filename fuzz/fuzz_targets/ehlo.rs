//! Fuzz target `ehlo`: see `mxprobe_fuzz::ehlo` for the properties it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxprobe_fuzz::ehlo(data));

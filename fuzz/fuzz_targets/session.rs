//! Fuzz target `session`: see `mxprobe_fuzz::session` for the properties it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxprobe_fuzz::session(data));

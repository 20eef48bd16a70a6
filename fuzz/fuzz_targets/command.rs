//! Fuzz target `command`: see `mxprobe_fuzz::command` for the properties it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxprobe_fuzz::command(data));

//! Fuzz target `smtp_reply`: see `mxprobe_fuzz::smtp_reply` for the properties it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxprobe_fuzz::smtp_reply(data));

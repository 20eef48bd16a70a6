//! Fuzz target `dns_response`: see `mxprobe_fuzz::dns_response` for the properties it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxprobe_fuzz::dns_response(data));

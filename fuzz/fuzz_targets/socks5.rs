//! Fuzz target `socks5`: see `mxprobe_fuzz::socks5` for the properties it checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxprobe_fuzz::socks5(data));

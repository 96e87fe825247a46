#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| scim_engine_fuzz::cursor(data));

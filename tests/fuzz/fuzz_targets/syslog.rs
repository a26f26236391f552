#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| dialtone::fuzz::syslog(data));

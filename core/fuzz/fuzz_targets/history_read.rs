#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealcast_core::fuzzing::history_read(data));

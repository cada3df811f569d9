#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealcast_server::fuzzing::key_directory(data));

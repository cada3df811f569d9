#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealcast_server::fuzzing::jwt_verify(data));

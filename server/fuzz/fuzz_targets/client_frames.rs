#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealcast_server::fuzzing::client_frames(data));

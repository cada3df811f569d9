#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sealcast_groups::fuzzing::group_link_frames(data));

//! libFuzzer target: `testkit::key_encoding` panics when the system disagrees with
//! its model.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| testkit::key_encoding(data));

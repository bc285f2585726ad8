//! libFuzzer target: `testkit::tree_program` panics when the system disagrees with
//! its model.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| testkit::tree_program(data));

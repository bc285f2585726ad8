//! libFuzzer target: `testkit::db_program` panics when the system disagrees with
//! its model.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| testkit::db_program(data));

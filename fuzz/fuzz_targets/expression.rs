//! Any bytes as an expression (first line) run on an event made of the rest.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| crowd::fuzzing::expression(data));

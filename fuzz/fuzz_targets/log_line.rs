//! Any bytes as a log line of every type, through the default pipeline and the line decoders.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| crowd::fuzzing::log_line(data));

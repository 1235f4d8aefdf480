//! Fuzz target `engine_message`: see `netmachine_fuzz::engine_message` for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| netmachine_fuzz::engine_message(data));

//! Fuzz target `frames`: see `netmachine_fuzz::frames` for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| netmachine_fuzz::frames(data));

//! Fuzz target `control`: see `netmachine_fuzz::control` for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| netmachine_fuzz::control(data));

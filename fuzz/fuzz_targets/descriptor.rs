//! Fuzz target `descriptor`: see `netmachine_fuzz::descriptor` for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| netmachine_fuzz::descriptor(data));

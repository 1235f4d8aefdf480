//! Fuzz target `adverts`: see `netmachine_fuzz::adverts` for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| netmachine_fuzz::adverts(data));

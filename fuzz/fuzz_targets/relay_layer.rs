//! Fuzz target `relay_layer`: see `netmachine_fuzz::relay_layer` for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| netmachine_fuzz::relay_layer(data));

//! Fuzz target `storage_message`: see `netmachine_fuzz::storage_message` for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| netmachine_fuzz::storage_message(data));

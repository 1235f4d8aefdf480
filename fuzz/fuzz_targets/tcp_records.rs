//! Fuzz target `tcp_records`: see `netmachine_fuzz::tcp_records` for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| netmachine_fuzz::tcp_records(data));

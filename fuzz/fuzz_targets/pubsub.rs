//! Fuzz target `pubsub`: see `netmachine_fuzz::pubsub` for what it checks.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| netmachine_fuzz::pubsub(data));

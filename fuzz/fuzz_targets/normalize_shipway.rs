//! Shipway's normaliser on arbitrary bytes: no panic, and every event it returns holds the
//! invariants in `rms_fuzz::normalize_holds_invariants`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::Carrier;

fuzz_target!(|data: &[u8]| rms_fuzz::normalize_holds_invariants(Carrier::Shipway, data));

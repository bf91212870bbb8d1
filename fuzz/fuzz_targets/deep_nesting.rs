//! Bodies nested to any depth the input asks for (up to 262,140 levels): every carrier refuses
//! one deeper than `MAX_DEPTH`, and no step overflows the stack (`rms_fuzz::nesting_is_refused_at_any_depth`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rms_fuzz::nesting_is_refused_at_any_depth(data));

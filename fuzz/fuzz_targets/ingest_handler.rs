//! The notify handler on arbitrary requests (method, headers, query, body; see the input layout
//! in `rms_fuzz`): no panic, and only the statuses of `shared::http`'s table.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rms_fuzz::ingest_answers_from_the_table(data));

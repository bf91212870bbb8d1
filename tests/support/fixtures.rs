//! The carrier payloads of `tests/fixtures/` as every crate's tests read them: one `fixture()` and
//! one list of the vendors' samples. No crate's tests can depend on all of the others, so this
//! file is a module of each that needs it (`#[path]`): `integration_tests::fixtures` (the
//! integration and `rms` tests), and, under `cfg(test)`, `shared` and `ingest-http`, plus shared's
//! test binary and benchmark.

#![allow(dead_code)] // each crate uses its own part

use std::path::{Path, PathBuf};

/// The vendors' own webhook samples and captures, one tracking update each (Shipway's classic
/// feed carries two), accepted by every host. A name's folder is its carrier (`carrier_of`).
/// The payloads built from the field facts are listed in `tests/fixtures/FIELD-FACTS.md` and
/// `field-cases.json`; `shared/tests/it/fixtures.rs` checks every file on disk is asserted.
pub const SAMPLES: [&str; 8] = [
    "clickpost/delivered_selected_captured.json",
    "clickpost/failed_delivery_ndr_selected.json",
    "clickpost/out_for_delivery_all_status.json",
    "clickpost/seed_return_order_placed.json",
    "clickpost/seed_test_webhook_data.json",
    "shiprocket/in_transit_official.json",
    "shipway/classic_status_feed.json",
    "shipway/panel_delivered.json",
];

/// The path of a fixture, by its name under `tests/fixtures/`
/// (`clickpost/delivered_selected_captured.json`).
pub fn fixture_path(name: &str) -> PathBuf {
    // The crate including this file is somewhere under the repository's root.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("tests/fixtures").is_dir())
        .expect("tests/fixtures/ above the crate's folder");
    root.join("tests/fixtures").join(name)
}

/// A fixture's bytes, by its name under `tests/fixtures/`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The carrier a fixture is a payload of: its folder (`clickpost`, `shiprocket`, `shipway`).
pub fn carrier_of(name: &str) -> &str {
    name.split_once('/').map_or(name, |(carrier, _)| carrier)
}

//! `shared`'s tests through its public API, in one test binary with a module per subject. One
//! module: `cargo test -p shared --test it fixtures::`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

/// tests/support/fixtures.rs: the fixtures' reader and list, as every crate's tests have them.
#[path = "../../../tests/support/fixtures.rs"]
mod support;

mod carrier_docs;
mod fixtures;
mod never_panics;
mod security;

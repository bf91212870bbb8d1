//! `shared`'s tests through its public API, in one test binary with a module per subject. One
//! module: `cargo test -p shared --test it fixtures::`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod carrier_docs;
mod fixtures;
mod never_panics;
mod security;

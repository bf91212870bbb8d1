//! The `rms` binary's integration tests: one test binary with a module per subject, so that a
//! change links one binary rather than one per file. `common` is what the modules share (the
//! built `rms serve` on a free port, its config). One module: `cargo test -p rms --test it serve::`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod admin_api;
mod common;
mod connections;
mod console;
mod field;
mod isolation;
mod latest;
mod normalize;
mod ops;
mod quarantine;
mod reconcile;
mod security;
mod serve;
mod silence;

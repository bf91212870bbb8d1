//! The integration tests: the real AWS SDK clients against moto_server, and end-to-end flows, in
//! one test binary with a module per subject. One module:
//! `scripts/with-moto cargo test -p integration-tests --test it ingest::`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod admin;
mod calls;
mod dispatch;
mod e2e;
mod ingest;
mod log_bytes;
mod pull;
mod reconcile;
mod store_contract;
mod store_down;

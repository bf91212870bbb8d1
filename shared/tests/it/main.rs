//! `shared`'s tests through its public API, in one test binary with a module per subject. One
//! module: `cargo test -p shared --test it fixtures::`.

mod carrier_docs;
mod fixtures;
mod never_panics;
mod security;

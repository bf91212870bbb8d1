//! RMS Notify's domain: the canonical tracking event, the carrier normalisers, the ingest
//! use-case and the ports it runs on. AWS SDK code lives only in `adapters` (feature `aws`); no
//! Lambda crate is used here.

pub mod adapters;
pub mod admin;
pub mod auth;
pub mod carriers;
pub mod circuit;
pub mod dispatch;
pub mod env;
pub mod http;
pub mod ingest;
#[cfg(feature = "logging")]
pub mod logging;
pub mod model;
pub mod ports;
pub mod push;
pub mod reconcile;
pub mod shipment;
pub mod time;

/// The fixtures' reader and list, as every crate's tests have them.
#[cfg(test)]
#[path = "../../tests/support/fixtures.rs"]
mod fixtures;

pub use carriers::{normalize, NormalizeContext, NormalizeError};
pub use model::{CanonicalEvent, Carrier, EventId, ShipmentType, Status, TenantId};

//! RMS Notify's domain: the canonical tracking event, the carrier normalisers, and (as the
//! relay grows) the ingest and dispatch use-cases with the ports they run on. No AWS or Lambda
//! crate is used here; adapters live at the edges.

pub mod carriers;
pub mod model;
pub mod time;

pub use carriers::{normalize, NormalizeContext, NormalizeError};
pub use model::{CanonicalEvent, Carrier, EventId, ShipmentType, Status};

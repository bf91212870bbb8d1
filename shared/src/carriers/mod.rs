//! Carrier normalisers: raw webhook bytes in, canonical events out, or a precise error.
//!
//! Each carrier module keeps its wire structs private and holds its status-code table in one
//! `match`, so a reader finds a carrier's whole mapping in one place.

pub mod clickpost;
pub mod shiprocket;
pub mod shipway;
mod wire;

use chrono::{DateTime, FixedOffset, Utc};

use crate::model::{CanonicalEvent, Carrier, EventId, EventIdParts};
use crate::time::{self, TimeError};

/// What a normaliser needs besides the bytes: who the payload is for and how to read its times.
#[derive(Debug, Clone)]
pub struct NormalizeContext {
    pub tenant_id: String,
    pub received_at: DateTime<Utc>,
    /// The zone the carrier's wall-clock times are in (default IST).
    pub zone: FixedOffset,
    /// Attach the carrier's original payload as `source` (on by default, per tenant).
    pub include_source: bool,
}

impl NormalizeContext {
    pub fn new(tenant_id: impl Into<String>, received_at: DateTime<Utc>) -> Self {
        NormalizeContext {
            tenant_id: tenant_id.into(),
            received_at,
            zone: time::ist(),
            include_source: true,
        }
    }
}

/// Why a payload could not be normalised. Each message names what was wrong, so that it can be
/// answered to the carrier (400) and read by ops as is.
#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    #[error("the body is empty")]
    Empty,
    #[error("the body is not valid UTF-8: invalid byte at offset {offset}")]
    NotUtf8 { offset: usize },
    #[error("the body is not valid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    #[error("{what} must be a JSON object, but it is {found}")]
    NotAnObject { what: String, found: &'static str },
    #[error("field `{path}` is invalid: {source}")]
    Field {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("no shipment id: {0}")]
    NoShipmentId(&'static str),
    #[error("no event time: {0}")]
    NoTime(&'static str),
    #[error("field `{field}` is invalid: {source}")]
    Time {
        field: String,
        #[source]
        source: TimeError,
    },
}

/// Normalises one carrier payload into its canonical events (a Shipway batch gives several, an
/// empty one none).
pub fn normalize(
    carrier: Carrier,
    body: &[u8],
    ctx: &NormalizeContext,
) -> Result<Vec<CanonicalEvent>, NormalizeError> {
    match carrier {
        Carrier::Clickpost => clickpost::normalize(body, ctx).map(|e| vec![e]),
        Carrier::Shiprocket => shiprocket::normalize(body, ctx).map(|e| vec![e]),
        Carrier::Shipway => shipway::normalize(body, ctx),
    }
}

/// Reads a time field, naming the field in the error.
fn parse_time(
    field: impl Into<String>,
    raw: &str,
    zone: FixedOffset,
) -> Result<DateTime<Utc>, NormalizeError> {
    time::to_utc(raw, zone).map_err(|source| NormalizeError::Time {
        field: field.into(),
        source,
    })
}

/// Fills in `event_id` once the event is complete; `why_no_key` explains a missing shipment id in
/// the carrier's own field names.
fn seal(
    mut event: CanonicalEvent,
    notification_event_id: Option<i64>,
    why_no_key: &'static str,
) -> Result<CanonicalEvent, NormalizeError> {
    let key = event.shipment_key();
    if key.is_empty() {
        return Err(NormalizeError::NoShipmentId(why_no_key));
    }
    let notification = notification_event_id.map(|n| n.to_string());
    event.event_id = EventId::derive(&EventIdParts {
        tenant_id: &event.tenant_id,
        carrier: event.carrier,
        shipment_key: key,
        status_code: &event.carrier_status.code,
        event_time_raw: &event.event_time_raw,
        notification_event_id: notification.as_deref(),
    });
    Ok(event)
}

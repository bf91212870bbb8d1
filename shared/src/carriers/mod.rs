//! The carriers. Each module (`clickpost`, `shiprocket`, `shipway`) owns all that the relay knows
//! of one aggregator, in its [`CarrierSpec`]: its notify path, where its credential may be and what
//! a 401 says, its default zone, how to recognise its set-up probes and panel test bodies, its
//! status table, its direction rules, its normaliser, and which body fields are credentials that
//! must be scrubbed before anything is stored or pushed. Everything else iterates
//! [`Carrier::ALL`] and asks [`Carrier::spec`]. The facts and their sources are in
//! docs/carriers.md.
//!
//! Each carrier module keeps its wire structs private and holds its status-code table in one
//! `match`, so a reader finds a carrier's whole mapping in one place.

pub mod clickpost;
pub mod pull;
pub mod scrub;
pub mod shiprocket;
pub mod shipway;
mod wire;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::model::TenantId;
use crate::model::{
    CanonicalEvent, EventId, EventIdParts, Occurrence, Source, UnknownName, V1EventIdParts,
};
use crate::time::{self, TimeError};

pub(crate) use wire::field as wire_field;
pub use wire::MAX_DEPTH;

/// The aggregators that push to us. Serialised in lowercase (`"clickpost"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Carrier {
    Clickpost,
    Shiprocket,
    Shipway,
}

impl Carrier {
    pub const ALL: [Carrier; 3] = [Carrier::Clickpost, Carrier::Shiprocket, Carrier::Shipway];

    /// Everything the relay knows about this carrier.
    pub fn spec(self) -> &'static CarrierSpec {
        match self {
            Carrier::Clickpost => &clickpost::SPEC,
            Carrier::Shiprocket => &shiprocket::SPEC,
            Carrier::Shipway => &shipway::SPEC,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// The carrier whose notify path this is.
    pub fn from_notify_path(path: &str) -> Option<Carrier> {
        Carrier::ALL
            .into_iter()
            .find(|c| c.spec().notify_path == path)
    }
}

impl fmt::Display for Carrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Carrier {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Carrier::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownName {
                kind: "carrier",
                given: s.to_owned(),
                valid: Carrier::ALL.iter().map(|c| c.as_str()).collect(),
            })
    }
}

/// Where a carrier may put its credential. The sources of a carrier are tried in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// A request header (name in lowercase).
    Header(&'static str),
    /// The `Authorization` header: its value as sent, and the token after `Bearer `.
    Authorization,
    /// A query parameter of the notify URL.
    Query(&'static str),
    /// A top-level string field of the JSON body. It is a credential: it is scrubbed from every
    /// stored or forwarded copy of the body.
    BodyField(&'static str),
}

/// What a POST body is, before any credential is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// A carrier panel's set-up probe (sent when the URL is saved, or a "send sample" button):
    /// answered 200 with no credential, nothing stored.
    Probe,
    /// A carrier panel's "test webhook" body: a fixed dummy shipment, never delivered as an event.
    PanelTest,
    /// Anything else: authenticated, then normalised.
    Payload,
}

/// Everything the relay knows about one carrier. Each carrier module defines one `SPEC`.
pub struct CarrierSpec {
    pub carrier: Carrier,
    /// Lowercase name: in JSON, metrics, logs, settings.
    pub name: &'static str,
    /// The carrier's display name, for people.
    pub title: &'static str,
    /// The path the carrier is configured to POST to (API Gateway route and `rms serve` route).
    pub notify_path: &'static str,
    /// Where the credential may be, in the order tried.
    pub key_sources: &'static [KeySource],
    /// The end of a 401's message when no credential was found: where the key goes.
    pub missing_key_hint: &'static str,
    /// The zone the carrier's wall-clock times are in unless configured otherwise, in seconds
    /// east of UTC.
    pub default_zone_seconds: i32,
    /// Where the URL and the key go in the carrier's panel (README, console).
    pub panel_steps: &'static str,
    /// A documented payload of this carrier, relative to the repository root: what `rms serve
    /// --demo` suggests sending.
    pub demo_sample: &'static str,
    /// Recognises set-up probes and panel test bodies. Called on every POST before the
    /// credential is checked, on a body that is known to nest at most `MAX_DEPTH` levels.
    pub classify: fn(&[u8]) -> BodyKind,
    /// The normaliser: one payload to its canonical events (a batch gives several, an empty
    /// one none).
    pub normalize: fn(&[u8], &NormalizeContext) -> Result<Vec<CanonicalEvent>, NormalizeError>,
}

impl CarrierSpec {
    pub fn default_zone(&self) -> FixedOffset {
        FixedOffset::east_opt(self.default_zone_seconds).unwrap_or_else(time::ist)
    }

    /// The environment variable that overrides the zone on AWS (`CLICKPOST_ZONE`).
    pub fn zone_variable(&self) -> String {
        format!("{}_ZONE", self.name.to_ascii_uppercase())
    }

    /// The header a key is sent in by default (the first header source).
    pub fn key_header(&self) -> &'static str {
        self.key_sources
            .iter()
            .find_map(|s| match s {
                KeySource::Header(name) => Some(*name),
                KeySource::Authorization => Some("authorization"),
                _ => None,
            })
            .unwrap_or("x-api-key")
    }

    /// The body fields that hold credentials (scrubbed from every stored or pushed copy).
    pub fn credential_fields(&self) -> impl Iterator<Item = &'static str> {
        self.key_sources.iter().filter_map(|s| match s {
            KeySource::BodyField(name) => Some(*name),
            _ => None,
        })
    }

    /// The body as it may be stored or pushed: every credential field removed, at any depth.
    pub fn scrub<'a>(&self, body: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        let fields: Vec<&str> = self.credential_fields().collect();
        scrub::remove_members(body, &fields)
    }

    /// What a body is (see [`BodyKind`]). A body nested too deep to inspect is a payload (and is
    /// refused as such).
    pub fn classify(&self, body: &[u8]) -> BodyKind {
        if wire::too_deep(body) {
            return BodyKind::Payload;
        }
        (self.classify)(body)
    }
}

/// What a normaliser needs besides the bytes: who the payload is for and how to read its times.
#[derive(Debug, Clone)]
pub struct NormalizeContext {
    pub tenant_id: TenantId,
    pub received_at: DateTime<Utc>,
    /// The zone the carrier's wall-clock times are in (default IST).
    pub zone: FixedOffset,
    /// Attach the carrier's original payload as `source` (on by default, per tenant).
    pub include_source: bool,
    /// How far after `received_at` an event's time may be (default [`MAX_FUTURE`]).
    pub max_future: chrono::TimeDelta,
}

impl NormalizeContext {
    pub fn new(tenant_id: TenantId, received_at: DateTime<Utc>) -> Self {
        NormalizeContext {
            tenant_id,
            received_at,
            zone: time::ist(),
            include_source: true,
            max_future: MAX_FUTURE,
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
    #[error("the body nests JSON deeper than {limit} levels; no carrier payload does")]
    TooDeep { limit: usize },
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
    #[error("field `{field}` is not a plausible event time: {raw:?}: {why}")]
    Implausible {
        field: String,
        raw: String,
        why: &'static str,
    },
}

/// Normalises one carrier payload into its canonical events (a Shipway batch gives several, an
/// empty one none). JSON nested deeper than [`MAX_DEPTH`] is refused before any tree is built.
pub fn normalize(
    carrier: Carrier,
    body: &[u8],
    ctx: &NormalizeContext,
) -> Result<Vec<CanonicalEvent>, NormalizeError> {
    if wire::too_deep(body) {
        return Err(NormalizeError::TooDeep { limit: MAX_DEPTH });
    }
    let spec = carrier.spec();
    let mut events = (spec.normalize)(body, ctx)?;
    // A credential in the body (Shipway's `hash`) never reaches the tenant or the store.
    let fields: Vec<&str> = spec.credential_fields().collect();
    if !fields.is_empty() {
        for event in &mut events {
            if let Some(source) = &event.source {
                if let std::borrow::Cow::Owned(clean) =
                    scrub::remove_members_str(source.as_str(), &fields)
                {
                    event.source = Source::from_json(&clean);
                }
            }
        }
    }
    Ok(events)
}

/// The earliest event time believed: no carrier scan predates this.
fn earliest_plausible() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// How far after its arrival an event's time may be by default (clock skew between the carrier
/// and us, and a margin for a courier's own clock).
pub const MAX_FUTURE: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// Reads the event's time from `field`, naming the field in the error, and refuses a time no
/// scan can have: before 2000-01-01, or more than `ctx.max_future` after the body arrived. Such a
/// time would also make every later real scan of the shipment look stale.
fn parse_time(
    field: impl Into<String>,
    raw: &str,
    ctx: &NormalizeContext,
) -> Result<DateTime<Utc>, NormalizeError> {
    let field = field.into();
    let time = time::to_utc(raw, ctx.zone).map_err(|source| NormalizeError::Time {
        field: field.clone(),
        source,
    })?;
    match implausible(time, ctx) {
        Some(why) => Err(NormalizeError::Implausible {
            field,
            raw: raw.to_owned(),
            why,
        }),
        None => Ok(time),
    }
}

/// Why no scan can have this time, if none can: before 2000-01-01, or more than
/// `ctx.max_future` after the body arrived (which also keeps every year one RFC 3339 can print).
fn implausible(time: DateTime<Utc>, ctx: &NormalizeContext) -> Option<&'static str> {
    if time < earliest_plausible() {
        Some("it is before 2000-01-01")
    } else if time > ctx.received_at + ctx.max_future {
        Some("it is more than a day after the body arrived")
    } else {
        None
    }
}

/// A secondary time (not the event's own): read if it can be, and dropped rather than refused
/// when it is implausible, so that it cannot sink the event it rides along with.
fn lenient_time(raw: &str, ctx: &NormalizeContext) -> Option<DateTime<Utc>> {
    time::to_utc(raw, ctx.zone)
        .ok()
        .filter(|t| implausible(*t, ctx).is_none())
}

/// How a normaliser identifies the occurrence an event is (see [`EventId::derive`]): the v2
/// occurrence, and the time texts the first identity (v1) may have used for it.
pub(crate) struct Identity {
    pub occurrence: Occurrence,
    /// Each a time text and a Clickpost `notification_event_id`, as v1 hashed them.
    pub v1: Vec<(String, Option<i64>)>,
}

impl Identity {
    /// A scan: its instant; v1 hashed its time as written and its `notification_event_id`.
    pub(crate) fn of_scan(event: &CanonicalEvent) -> Identity {
        Identity {
            occurrence: Occurrence::At(event.event_time),
            v1: vec![(
                event.event_time_raw.clone(),
                event.carrier_status.notification_event_id,
            )],
        }
    }
}

/// Fills in `event_id` (and the v1 ids it may have been claimed under) once the event is
/// complete; `why_no_key` explains a missing shipment id in the carrier's own field names.
fn seal(
    mut event: CanonicalEvent,
    identity: Identity,
    why_no_key: &'static str,
) -> Result<CanonicalEvent, NormalizeError> {
    let key = event.shipment_key();
    if key.is_empty() {
        return Err(NormalizeError::NoShipmentId(why_no_key));
    }
    let event_id = EventId::derive(&EventIdParts {
        tenant_id: event.tenant_id.as_str(),
        carrier: event.carrier,
        shipment_key: key,
        status_code: &event.carrier_status.code,
        occurrence: identity.occurrence,
    });
    let mut legacy_ids = Vec::with_capacity(identity.v1.len());
    for (time_text, notification_event_id) in &identity.v1 {
        let notification = notification_event_id.map(|n| n.to_string());
        let id = EventId::derive_v1(&V1EventIdParts {
            tenant_id: event.tenant_id.as_str(),
            carrier: event.carrier,
            shipment_key: key,
            status_code: &event.carrier_status.code,
            event_time_raw: time_text,
            notification_event_id: notification.as_deref(),
        });
        if !legacy_ids.contains(&id) {
            legacy_ids.push(id);
        }
    }
    event.event_id = event_id;
    event.legacy_ids = crate::model::LegacyIds(legacy_ids);
    Ok(event)
}

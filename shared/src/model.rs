//! The canonical tracking event (`rms.tracking.v1`): what every carrier payload becomes and what
//! a client receives. Its JSON Schema is `shared/schema/rms.tracking.v1.json`; a test validates
//! every fixture's output against it, so the two cannot drift apart.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// The value of every event's `schema` field.
pub const SCHEMA_ID: &str = "rms.tracking.v1";

pub use crate::carriers::Carrier;

/// A tenant's id: 1 to 64 letters, digits, `-` or `_`. It becomes part of storage keys, so
/// nothing else is allowed in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(text: &str) -> Result<Self, InvalidTenantId> {
        let ok = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(TenantId(text.to_owned()))
        } else {
            Err(InvalidTenantId(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidTenantId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        TenantId::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> String {
        id.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tenant id {0:?}: use 1 to 64 letters, digits, '-' or '_'")]
pub struct InvalidTenantId(pub String);

/// A name that is not one of a fixed set; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {given:?}; valid values are: {}", valid.join(", "))]
pub struct UnknownName {
    pub kind: &'static str,
    pub given: String,
    pub valid: Vec<&'static str>,
}

macro_rules! statuses {
    ($($variant:ident => $name:literal,)*) => {
        /// Canonical shipment status. Mapped from carrier status *codes* (docs/carriers.md tables), never
        /// from free text. A code we do not know becomes `Unknown`, with the raw code kept.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Status {
            $(#[serde(rename = $name)] $variant,)*
        }

        impl Status {
            pub const ALL: &'static [Status] = &[$(Status::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Status::$variant => $name,)*
                }
            }
        }
    };
}

statuses! {
    OrderPlaced => "ORDER_PLACED",
    PickupScheduled => "PICKUP_SCHEDULED",
    OutForPickup => "OUT_FOR_PICKUP",
    PickupFailed => "PICKUP_FAILED",
    PickupCancelled => "PICKUP_CANCELLED",
    PickedUp => "PICKED_UP",
    InTransit => "IN_TRANSIT",
    ReachedDestinationHub => "REACHED_DESTINATION_HUB",
    OutForDelivery => "OUT_FOR_DELIVERY",
    DeliveryFailed => "DELIVERY_FAILED",
    Delivered => "DELIVERED",
    Cancelled => "CANCELLED",
    RtoInitiated => "RTO_INITIATED",
    RtoInTransit => "RTO_IN_TRANSIT",
    RtoOutForDelivery => "RTO_OUT_FOR_DELIVERY",
    RtoDelivered => "RTO_DELIVERED",
    RtoFailed => "RTO_FAILED",
    Lost => "LOST",
    Damaged => "DAMAGED",
    Delayed => "DELAYED",
    OnHold => "ON_HOLD",
    NotServiceable => "NOT_SERVICEABLE",
    ReturnRequested => "RETURN_REQUESTED",
    ReturnApproved => "RETURN_APPROVED",
    ReturnRejected => "RETURN_REJECTED",
    Unknown => "UNKNOWN",
}

impl Status {
    /// What the status means, in a few words (the console's Push Config checkboxes).
    pub fn meaning(self) -> &'static str {
        match self {
            Status::OrderPlaced => "the shipment or return is registered with the carrier",
            Status::PickupScheduled => "a pickup is booked",
            Status::OutForPickup => "the courier is on the way to pick it up",
            Status::PickupFailed => "the pickup was attempted and failed (reason in npr)",
            Status::PickupCancelled => "the pickup is cancelled; the journey ends",
            Status::PickedUp => "the courier has it",
            Status::InTransit => "moving between hubs",
            Status::ReachedDestinationHub => "at the hub that delivers it",
            Status::OutForDelivery => "with the delivery agent today",
            Status::DeliveryFailed => "a delivery attempt failed (reason in ndr)",
            Status::Delivered => "delivered; a return: back at the warehouse",
            Status::Cancelled => "the shipment is cancelled",
            Status::RtoInitiated => "being returned to origin (RTO)",
            Status::RtoInTransit => "on its way back to origin",
            Status::RtoOutForDelivery => "out for delivery back to origin",
            Status::RtoDelivered => "back at origin; the RTO is over",
            Status::RtoFailed => "the delivery back to origin failed; it is tried again",
            Status::Lost => "the carrier lost it",
            Status::Damaged => "damaged in transit",
            Status::Delayed => "the carrier reports a delay",
            Status::OnHold => "held by the carrier (e.g. an address or payment issue)",
            Status::NotServiceable => "the carrier cannot serve the address",
            Status::ReturnRequested => "the customer asked for a return",
            Status::ReturnApproved => "the return request is approved",
            Status::ReturnRejected => "the return request is rejected",
            Status::Unknown => "a carrier code RMS does not map yet (the raw code is kept)",
        }
    }

    /// Whether the shipment's journey is over: nothing more is expected from the carrier (a
    /// reconciler stops asking about it). The one place that decides the set. Not terminal:
    /// `DAMAGED` (a damaged parcel often travels on, delivered or returned; Shiprocket's
    /// DESTROYED maps to it too, so a destroyed parcel is asked about once more than needed),
    /// `RTO_FAILED` (the return is attempted again) and `UNKNOWN` (docs/carriers.md §2.3: unknown
    /// codes are non-terminal).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Delivered
                | Status::RtoDelivered
                | Status::Cancelled
                | Status::PickupCancelled
                | Status::Lost
                | Status::ReturnRejected
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .iter()
            .copied()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownName {
                kind: "status",
                given: s.to_owned(),
                valid: Status::ALL.iter().map(|st| st.as_str()).collect(),
            })
    }
}

/// `forward`: the parcel travels to the customer (RTO included: an RTO is a forward parcel coming
/// back). `return`: a reverse pickup or a customer return request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShipmentType {
    Forward,
    Return,
}

/// The carrier's own view of the status, kept verbatim next to the canonical one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierStatus {
    /// The code the canonical status was mapped from (`"8"`, `"18"`, `"DEL"`).
    pub code: String,
    /// The carrier's description of that code, if it sent one.
    pub description: Option<String>,
    /// The underlying courier's raw status string (`"OFD"`, `"X-IBD3F"`), if any.
    pub raw: Option<String>,
    /// Clickpost Selected-Status mode only.
    pub notification_event_id: Option<i64>,
}

/// The shipment's latest status as the carrier reports it at send time (Clickpost sends one with
/// every scan; it can be newer than the scan the webhook is about).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestStatus {
    pub status: Status,
    pub code: String,
    pub description: Option<String>,
    pub event_time: Option<DateTime<Utc>>,
    pub event_time_raw: Option<String>,
}

/// Non-delivery report: why a delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ndr {
    pub code: String,
    pub reason: Option<String>,
}

/// Non-pickup report: why a pickup failed (Clickpost `npr_status_code`/`npr_status_description`),
/// the pickup analogue of the NDR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Npr {
    pub code: Option<String>,
    pub reason: Option<String>,
}

/// A returned item (Clickpost `item_info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub sku: Option<String>,
    pub quantity: Option<i64>,
    pub return_reason: Option<String>,
    pub refund_mode: Option<String>,
}

/// The deterministic identity of one tracking event: the same carrier scan for the same tenant
/// always gets the same id, whichever Lambda or retry sees it, and whether it came by webhook or
/// was pulled from the carrier's tracking API. Dedup keys on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

/// The domain tag of the current derivation ([`EventId::derive`]).
const DOMAIN_V2: &[u8] = b"rms.event_id.v2";
/// The domain tag of the first derivation ([`EventId::derive_v1`]), which hashed the time text as
/// the carrier wrote it.
const DOMAIN_V1: &[u8] = b"rms.event_id.v1";

impl EventId {
    /// `evt_` + the first 128 bits of SHA-256 over the length-prefixed parts (length prefixes
    /// keep `("ab","c")` and `("a","bc")` apart), under the domain tag `rms.event_id.v2`.
    ///
    /// The identity is made of the *normalised* scan (see [`EventIdParts`]), never of the text
    /// the carrier wrote: a webhook and a pull write the same scan's time differently (Clickpost
    /// `"2019-05-06T10:04:20Z"` against `"2019-05-06 10:04:20"`), and both must give one id.
    pub fn derive(parts: &EventIdParts<'_>) -> EventId {
        let (kind, seconds) = match parts.occurrence {
            Occurrence::At(at) => ("at", Some(at.timestamp())),
            Occurrence::StatusWithoutScan { after } => {
                ("status-without-scan", after.map(|t| t.timestamp()))
            }
        };
        let seconds = seconds.map(|s| s.to_string()).unwrap_or_default();
        digest(
            DOMAIN_V2,
            [
                parts.tenant_id,
                parts.carrier.as_str(),
                parts.shipment_key,
                parts.status_code,
                kind,
                &seconds,
            ],
        )
    }

    /// The first derivation (`rms.event_id.v1`): the time as the carrier wrote it, and Clickpost's
    /// `notification_event_id`. Events accepted before v2 were claimed under these ids; ingest
    /// looks them up for as long as such claims can exist (see `CanonicalEvent::legacy_ids`).
    pub fn derive_v1(parts: &V1EventIdParts<'_>) -> EventId {
        digest(
            DOMAIN_V1,
            [
                parts.tenant_id,
                parts.carrier.as_str(),
                parts.shipment_key,
                parts.status_code,
                parts.event_time_raw,
                parts.notification_event_id.unwrap_or(""),
            ],
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An id read back from a store or a queue message, where it was written by `derive`.
    pub fn from_stored(text: impl Into<String>) -> EventId {
        EventId(text.into())
    }

    /// The id of a test push's sample event: `evt_test_` and the time in microseconds, so that it
    /// can never be taken for a real event's id.
    pub fn test(now: DateTime<Utc>) -> EventId {
        EventId(format!("evt_test_{}", now.timestamp_micros()))
    }

    /// The placeholder a normaliser holds until the event is complete and its id is derived.
    pub(crate) fn unset() -> EventId {
        EventId(String::new())
    }
}

fn digest<const N: usize>(domain: &[u8], parts: [&str; N]) -> EventId {
    let mut hasher = Sha256::new();
    hasher.update(domain);
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    EventId(format!("evt_{}", hex::encode(&digest[..16])))
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What `event_id` is a digest of (v2): tenant, carrier, shipment key, carrier status code and
/// the occurrence, all taken from the normalised event. Clickpost's `notification_event_id` is
/// not in it: the pull API does not carry it, and one scan has one notification.
pub struct EventIdParts<'a> {
    pub tenant_id: &'a str,
    pub carrier: Carrier,
    pub shipment_key: &'a str,
    pub status_code: &'a str,
    pub occurrence: Occurrence,
}

/// Which occurrence of a status an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occurrence {
    /// A scan: its instant, in whole seconds (UTC). Fractions of a second are dropped: Clickpost
    /// writes them in some bodies and not in others (docs/carriers.md §1.8).
    At(DateTime<Utc>),
    /// A status that no scan carries (Shiprocket, docs/carriers.md §2.6): identified by the
    /// newest scan that set a status before it (`None`: no scan set one), never by the time the
    /// body was sent, so that the same status re-sent later is the same event.
    StatusWithoutScan { after: Option<DateTime<Utc>> },
}

/// What the first, v1 `event_id` was a digest of: tenant, carrier, shipment key, carrier status
/// code, the time text as the carrier wrote it, and Clickpost's `notification_event_id`.
pub struct V1EventIdParts<'a> {
    pub tenant_id: &'a str,
    pub carrier: Carrier,
    pub shipment_key: &'a str,
    pub status_code: &'a str,
    pub event_time_raw: &'a str,
    pub notification_event_id: Option<&'a str>,
}

/// The canonical tracking event. Field order is the wire order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanonicalEvent {
    pub schema: String,
    pub event_id: EventId,
    pub tenant_id: TenantId,
    pub carrier: Carrier,
    /// Courier name, or the carrier's courier id where no name is given.
    pub courier: Option<String>,
    /// The shipment's AWB; `None` for return requests that have none yet.
    pub awb: Option<String>,
    pub order_id: Option<String>,
    pub reference_number: Option<String>,
    pub shipment_type: ShipmentType,
    pub forward_awb: Option<String>,
    pub forward_reference_number: Option<String>,
    pub status: Status,
    pub carrier_status: CarrierStatus,
    pub location: Option<String>,
    pub remark: Option<String>,
    pub event_time: DateTime<Utc>,
    pub event_time_raw: String,
    pub received_at: DateTime<Utc>,
    pub latest_status: Option<LatestStatus>,
    pub is_stale: bool,
    pub ndr: Option<Ndr>,
    /// A pickup's failure reason. Absent from events stored before it existed.
    #[serde(default)]
    pub npr: Option<Npr>,
    /// Expected delivery date, as the carrier gives it (a calendar date, no zone).
    pub edd: Option<NaiveDate>,
    pub items: Vec<Item>,
    /// The carrier's original payload (for a batch, this event's element of it).
    pub source: Option<Source>,
    /// The ids this scan may have been claimed under by the first identity (v1, see
    /// [`EventId::derive_v1`]): its own for a webhook, the webhook's likely ones for a pulled
    /// scan. Ingest reads their claims only when the event's own claim is new, so that a scan
    /// accepted before v2 is not delivered again when it comes back. Not part of the event on
    /// the wire. Remove, with the look-up, once v2 has run for the dedup window (35 days): no v1
    /// claim outlives it.
    #[serde(skip)]
    pub legacy_ids: LegacyIds,
}

/// The v1 ids an event may have been claimed under (`CanonicalEvent::legacy_ids`). They are a
/// hint for ingest, not part of what the event is: an event equals its copy read back from the
/// queue, which does not carry them.
#[derive(Debug, Clone, Default)]
pub struct LegacyIds(pub Vec<EventId>);

impl PartialEq for LegacyIds {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl std::ops::Deref for LegacyIds {
    type Target = [EventId];
    fn deref(&self) -> &[EventId] {
        &self.0
    }
}

impl CanonicalEvent {
    /// The key events of one shipment share: the AWB, else the forward AWB or reference that a
    /// return request carries before it has an AWB. Normalisers guarantee one exists.
    pub fn shipment_key(&self) -> &str {
        self.awb
            .as_deref()
            .or(self.forward_awb.as_deref())
            .or(self.forward_reference_number.as_deref())
            .or(self.reference_number.as_deref())
            .or(self.order_id.as_deref())
            .unwrap_or_default()
    }
}

/// A carrier's original payload, passed through to the client as JSON. It is kept as text rather
/// than parsed into a tree: nothing downstream inspects it, and building the tree would double the
/// cost of normalising. Line breaks between tokens are dropped, so that an event is one line of
/// JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Source(Box<RawValue>);

impl Source {
    /// `None` if `json` is not one JSON value.
    pub fn from_json(json: &str) -> Option<Source> {
        RawValue::from_string(one_line(json)).ok().map(Source)
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The payload as a JSON tree, for callers that want to look inside.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl PartialEq for Source {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

/// Puts a JSON text on one line. Raw line breaks cannot occur inside JSON strings (they must be
/// escaped there), so every `\n` and `\r` byte is between tokens and can go; spaces stay as sent.
fn one_line(json: &str) -> String {
    let json = json.trim();
    let mut out = String::with_capacity(json.len());
    let mut start = 0;
    for at in memchr::memchr2_iter(b'\n', b'\r', json.as_bytes()) {
        // An ASCII byte is always a char boundary, so these slices are whole characters.
        out.push_str(&json[start..at]);
        start = at + 1;
    }
    out.push_str(&json[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(time: &str) -> Occurrence {
        Occurrence::At(DateTime::parse_from_rfc3339(time).unwrap().to_utc())
    }

    fn parts<'a>(tenant: &'a str, key: &'a str, occurrence: Occurrence) -> EventIdParts<'a> {
        EventIdParts {
            tenant_id: tenant,
            carrier: Carrier::Clickpost,
            shipment_key: key,
            status_code: "8",
            occurrence,
        }
    }

    #[test]
    fn event_id_is_deterministic_and_depends_on_every_part() {
        let t = "2023-02-07T12:39:00Z";
        let a = EventId::derive(&parts("acme", "AWB1", at(t)));
        assert_eq!(a, EventId::derive(&parts("acme", "AWB1", at(t))));
        assert!(a.as_str().starts_with("evt_") && a.as_str().len() == 36);
        assert_ne!(a, EventId::derive(&parts("other", "AWB1", at(t))));
        assert_ne!(a, EventId::derive(&parts("acme", "AWB2", at(t))));
        assert_ne!(
            a,
            EventId::derive(&parts("acme", "AWB1", at("2023-02-07T12:39:01Z")))
        );
        let mut other_code = parts("acme", "AWB1", at(t));
        other_code.status_code = "9";
        assert_ne!(a, EventId::derive(&other_code));
        let without_scan = Occurrence::StatusWithoutScan {
            after: Some(DateTime::parse_from_rfc3339(t).unwrap().to_utc()),
        };
        assert_ne!(a, EventId::derive(&parts("acme", "AWB1", without_scan)));
    }

    #[test]
    fn event_id_is_the_instant_not_the_text_and_ignores_fractions_of_a_second() {
        let whole = EventId::derive(&parts("acme", "A", at("2019-05-06T04:34:20Z")));
        // The same instant written in another zone, and with a fraction of a second.
        assert_eq!(
            whole,
            EventId::derive(&parts("acme", "A", at("2019-05-06T10:04:20.002+05:30")))
        );
    }

    #[test]
    fn event_id_parts_cannot_bleed_into_each_other() {
        let t = at("2023-02-07T12:39:00Z");
        let a = EventId::derive(&parts("ab", "c", t));
        let b = EventId::derive(&parts("a", "bc", t));
        assert_ne!(a, b);
    }

    #[test]
    fn the_v1_derivation_is_kept_bit_for_bit() {
        // An id v1 gave a Clickpost scan (its time text as sent, `notification_event_id` 5),
        // computed by the code that shipped v1: the look-up of earlier claims depends on it.
        let v1 = EventId::derive_v1(&V1EventIdParts {
            tenant_id: "acme",
            carrier: Carrier::Clickpost,
            shipment_key: "AWB1",
            status_code: "8",
            event_time_raw: "2023-02-07T18:09:00Z",
            notification_event_id: Some("5"),
        });
        assert_eq!(v1.as_str(), V1_SAMPLE);
        let v2 = EventId::derive(&parts("acme", "AWB1", at("2023-02-07T12:39:00Z")));
        assert_ne!(v1, v2, "v2 has its own domain tag");
    }

    /// The v1 id of the scan above, as the v1 code computed it (pinned when v2 was introduced).
    const V1_SAMPLE: &str = "evt_0bb5fd0a462f96933ec6515c986dc6ab";

    #[test]
    fn status_names_round_trip_and_unknown_names_list_the_valid_ones() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(*status));
            let json = serde_json::to_string(status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        let err = "DELIVERD".parse::<Status>().unwrap_err().to_string();
        assert!(
            err.contains("\"DELIVERD\"") && err.contains("RTO_DELIVERED"),
            "{err}"
        );
    }

    #[test]
    fn a_journey_ends_with_delivery_rto_delivery_cancellation_or_loss() {
        let terminal: Vec<&str> = Status::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            terminal,
            [
                "PICKUP_CANCELLED",
                "DELIVERED",
                "CANCELLED",
                "RTO_DELIVERED",
                "LOST",
                "RETURN_REJECTED"
            ]
        );
    }

    #[test]
    fn source_is_put_on_one_line_with_strings_untouched() {
        let source =
            Source::from_json("{\r\n\"a\" : [1, 2],\n\"b\": \"x y\\\" \\n z\"\n}\n").unwrap();
        assert_eq!(source.as_str(), r#"{"a" : [1, 2],"b": "x y\" \n z"}"#);
        assert_eq!(source.to_value()["b"], "x y\" \n z");
        assert!(Source::from_json("{\"a\":").is_none());
    }

    #[test]
    fn tenant_ids_are_limited_to_key_safe_characters() {
        assert_eq!(TenantId::parse("acme-01_x").unwrap().as_str(), "acme-01_x");
        for bad in ["", "a#b", "a b", "é", &"x".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn carrier_names_parse_case_insensitively() {
        assert_eq!("Clickpost".parse::<Carrier>(), Ok(Carrier::Clickpost));
        assert!("delhivery".parse::<Carrier>().is_err());
    }
}

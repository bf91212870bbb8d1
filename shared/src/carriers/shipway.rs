//! Shipway (docs/carriers.md §3), in both shapes seen in the wild:
//! - classic: `{"hash": …, "status_feed": [shipment, …]}`, a batch; each element is one event;
//! - panel: one shipment at the top level, with details repeated under `api_input`.
//!
//! Both shapes use the same field names, so one wire struct reads the top level, `api_input` and
//! every `status_feed` element; a field missing at the top is taken from `api_input`. The classic
//! `hash` is a credential (md5 of username and licence key): it authenticates the body and is
//! scrubbed from every stored or forwarded copy of it.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::wire::{first_text, parse_element, parse_json, source, text, Str};
use super::{
    parse_time, seal, BodyKind, CarrierSpec, Identity, KeySource, NormalizeContext, NormalizeError,
};
use crate::model::{
    CanonicalEvent, Carrier, CarrierStatus, EventId, Ndr, ShipmentType, Source, Status, SCHEMA_ID,
};
use crate::time;

pub mod pull;

pub static SPEC: CarrierSpec = CarrierSpec {
    carrier: Carrier::Shipway,
    name: "shipway",
    title: "Shipway",
    notify_path: "/rms/in/api/shipway/notify",
    // A header, a `?key=` on the URL, or the classic format's `hash` body field (§3.1).
    key_sources: &[
        KeySource::Header("x-api-key"),
        KeySource::Query("key"),
        KeySource::BodyField("hash"),
    ],
    missing_key_hint: "send the key in the `x-api-key` header, the `key` query parameter, or the \
                       body's `hash`",
    default_zone_seconds: 5 * 3600 + 30 * 60,
    panel_steps: "Shipway dashboard (or ask Shipway support): the notify URL. The key goes in the \
                  `x-api-key` header, or append `?key=<key>` to the URL; classic accounts \
                  authenticate with the body's `hash` (md5 of `username:license_key`), which is \
                  registered as the key.",
    demo_sample: "tests/fixtures/shipway/panel_delivered.json",
    classify,
    normalize,
};

/// Shipway's set-up probes (§6): "Send Sample Webhook" posts
/// `{"order_id":"99999999","current_status":"DEL"}` with no `hash`, and another report has it send
/// an empty `status_feed`. Neither is a shipment; both are answered 200 with nothing stored.
fn classify(body: &[u8]) -> BodyKind {
    // Only a small body holding the sample's order id (the sample is two fields; Shipway's own
    // documented panel sample, 1.4 KiB, holds that id too and is a shipment), or a feed that may
    // be empty, is worth a parse.
    let may_be_the_sample =
        body.len() <= SAMPLE_PROBE_MAX_BYTES && memchr::memmem::find(body, b"99999999").is_some();
    if !may_be_the_sample && !may_have_an_empty_feed(body) {
        return BodyKind::Payload;
    }
    #[derive(Deserialize)]
    struct Head {
        order_id: Option<Str>,
        awbno: Option<Str>,
        status_feed: Option<Vec<IgnoredAny>>,
        api_input: Option<IgnoredAny>,
        scans: Option<IgnoredAny>,
    }
    let Ok(head) = serde_json::from_slice::<Head>(body) else {
        return BodyKind::Payload;
    };
    let sample = text(&head.order_id).as_deref() == Some("99999999")
        && text(&head.awbno).is_none()
        && head.api_input.is_none()
        && head.scans.is_none()
        && head.status_feed.is_none();
    let empty_feed = head.status_feed.is_some_and(|feed| feed.is_empty());
    if sample || empty_feed {
        BodyKind::Probe
    } else {
        BodyKind::Payload
    }
}

/// The "Send Sample Webhook" body is 47 bytes; a body past this size is not that probe.
const SAMPLE_PROBE_MAX_BYTES: usize = 512;

/// Whether `"status_feed"` is followed by `:` and `[]` (spaces aside) anywhere in the body: a
/// cheap filter before the parse that decides.
fn may_have_an_empty_feed(body: &[u8]) -> bool {
    memchr::memmem::find_iter(body, b"\"status_feed\"").any(|at| {
        let mut rest = body[at + 13..]
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace());
        rest.next() == Some(b':') && rest.next() == Some(b'[') && rest.next() == Some(b']')
    })
}

/// `current_status` code → canonical status and journey (docs/carriers.md §3.3). Codes are matched
/// case-insensitively; the reverse-pickup family (R-prefixed, plus PKF and PCAN) is a return.
pub fn status_for_code(code: &str) -> (Status, ShipmentType) {
    use ShipmentType::{Forward, Return};
    let status = match code.to_ascii_uppercase().as_str() {
        "DEL" => Status::Delivered,
        "INT" => Status::InTransit,
        "UND" => Status::DeliveryFailed,
        "RTO" => Status::RtoInitiated,
        "RTD" => Status::RtoDelivered,
        "CAN" => Status::Cancelled,
        "SCH" => Status::OrderPlaced, // Shipment Booked
        "PKP" => Status::PickedUp,
        "ONH" => Status::OnHold,
        "OOD" | "OFD" => Status::OutForDelivery,
        "NWI" => Status::Delayed,     // Network Issue
        "DNB" => Status::Delayed,     // Delivery Next Day
        "NFI" => Status::OrderPlaced, // not scanning yet
        "ODA" => Status::NotServiceable,
        "OTH" => Status::Unknown, // "Others": the code itself says nothing
        "SMD" => Status::Delayed,
        "22" | "23" | "24" | "25" => Status::DeliveryFailed, // address incorrect, attempted, pending, premises closed
        "CRTA" | "CNA" | "DEX" | "DRE" | "PNR" => Status::DeliveryFailed,
        "LOST" => Status::Lost,
        "RAD" => Status::ReachedDestinationHub,
        // Reverse pickups (returns).
        "RSCH" => return (Status::PickupScheduled, Return),
        "ROOP" => return (Status::OutForPickup, Return),
        "RPKP" => return (Status::PickedUp, Return),
        "RPF" | "PKF" => return (Status::PickupFailed, Return),
        "PCAN" => return (Status::PickupCancelled, Return),
        "RINT" => return (Status::InTransit, Return),
        "RDEL" => return (Status::Delivered, Return),
        _ => Status::Unknown,
    };
    (status, Forward)
}

/// The meaning of the delivery-failure codes, for the NDR reason (docs/carriers.md §3.3).
fn ndr_reason(code: &str) -> Option<&'static str> {
    Some(match code.to_ascii_uppercase().as_str() {
        "UND" => "Undelivered",
        "22" => "Address Incorrect",
        "23" => "Delivery Attempted",
        "24" => "Pending – Undelivered",
        "25" => "Delivery Attempted – Premises Closed",
        "CRTA" => "Customer Refused",
        "CNA" => "Consignee Unavailable",
        "DEX" => "Delivery Exception",
        "DRE" => "Delivery Rescheduled",
        "PNR" => "COD Payment Not Ready",
        _ => return None,
    })
}

#[derive(Deserialize, Default)]
struct Shipment {
    order_id: Option<Str>,
    awbno: Option<Str>,
    carrier: Option<Str>,
    current_status: Option<Str>,
    /// The pull API's name for the code; accepted in case a push uses it.
    current_status_code: Option<Str>,
    current_status_desc: Option<Str>,
    status_time: Option<Str>,
    scans_current_status: Option<Str>,
    scans_current_status_time: Option<Str>,
    expected_delivery_date: Option<Str>,
    reverse_tracking_number: Option<Str>,
    scans: Option<Scans>,
    extra_fields: Option<ExtraFields>,
    api_input: Option<Box<Shipment>>,
    status_feed: Option<Vec<Box<RawValue>>>,
}

#[derive(Deserialize, Default)]
struct ExtraFields {
    #[serde(rename = "ReferenceNo")]
    reference_no: Option<Str>,
    expected_delivery_date: Option<Str>,
}

#[derive(Deserialize, Default)]
struct Scan {
    time: Option<Str>,
    status: Option<Str>,
    status_detail: Option<Str>,
    location: Option<Str>,
}

/// `scans` is an array in the classic format and an object keyed "0", "1", … in the panel sample.
#[derive(Default)]
struct Scans(Vec<Scan>);

impl<'de> Deserialize<'de> for Scans {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScansVisitor;
        impl<'de> Visitor<'de> for ScansVisitor {
            type Value = Scans;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of scans or an object of scans keyed \"0\", \"1\", …")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scans, A::Error> {
                let mut scans = Vec::new();
                while let Some(scan) = seq.next_element()? {
                    scans.push(scan);
                }
                Ok(Scans(scans))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scans, A::Error> {
                let mut scans = Vec::new();
                while let Some((_, scan)) = map.next_entry::<serde::de::IgnoredAny, Scan>()? {
                    scans.push(scan);
                }
                Ok(Scans(scans))
            }
        }
        deserializer.deserialize_any(ScansVisitor)
    }
}

/// Normalises one Shipway webhook body: a classic batch gives one event per `status_feed` element
/// (an empty feed, Shipway's ping, gives none); a panel body gives one event.
pub fn normalize(
    body: &[u8],
    ctx: &NormalizeContext,
) -> Result<Vec<CanonicalEvent>, NormalizeError> {
    let mut top: Shipment = parse_json(body)?;
    match top.status_feed.take() {
        Some(feed) => feed
            .into_iter()
            .enumerate()
            .map(|(i, element)| {
                let path = format!("status_feed[{i}]");
                let shipment: Shipment = parse_element(&element, &path)?;
                let source = source(element.get().as_bytes(), ctx);
                to_event(&shipment, source, &format!("{path}."), ctx)
            })
            .collect(),
        None => to_event(&top, source(body, ctx), "", ctx).map(|e| vec![e]),
    }
}

fn to_event(
    top: &Shipment,
    source: Option<Source>,
    path: &str,
    ctx: &NormalizeContext,
) -> Result<CanonicalEvent, NormalizeError> {
    let no_details = Shipment::default();
    let inner = top.api_input.as_deref().unwrap_or(&no_details);
    // A field of the top level, else the same field under `api_input`.
    let pick = |get: fn(&Shipment) -> &Option<Str>| text(get(top)).or_else(|| text(get(inner)));

    let code = pick(|s| &s.current_status)
        .or_else(|| pick(|s| &s.current_status_code))
        .unwrap_or_default();
    let (status, shipment_type) = status_for_code(&code);

    let scans = top
        .scans
        .as_ref()
        .or(inner.scans.as_ref())
        .map_or(&[][..], |s| &s.0[..]);
    let (event_time_raw, time_field) = match pick(|s| &s.status_time) {
        Some(t) => (t, format!("{path}status_time")),
        None => match pick(|s| &s.scans_current_status_time) {
            Some(t) => (t, format!("{path}scans_current_status_time")),
            None => newest_scan_time(scans).ok_or(NormalizeError::NoTime(
                "there is no `status_time`, no `scans_current_status_time` and no dated scan",
            ))?,
        },
    };
    let event_time = parse_time(time_field, &event_time_raw, ctx)?;
    // The scan at the event's time gives the location and the courier's own words.
    let scan = scans
        .iter()
        .find(|s| text(&s.time).as_deref() == Some(event_time_raw.as_str()));

    // On a reverse journey the reverse AWB is the one being tracked; the forward AWB links it to
    // the original order.
    let awbno = pick(|s| &s.awbno);
    let reverse = pick(|s| &s.reverse_tracking_number);
    let (awb, forward_awb) = match (shipment_type, reverse) {
        (ShipmentType::Return, Some(reverse)) => {
            let forward = awbno.filter(|a| *a != reverse);
            (Some(reverse), forward)
        }
        _ => (awbno, None),
    };

    let extra = top.extra_fields.as_ref().or(inner.extra_fields.as_ref());
    let description = pick(|s| &s.current_status_desc);
    let narrative = pick(|s| &s.scans_current_status)
        .or_else(|| scan.and_then(|s| first_text([&s.status, &s.status_detail])));

    let event = CanonicalEvent {
        schema: SCHEMA_ID.to_owned(),
        event_id: EventId::unset(),
        tenant_id: ctx.tenant_id.clone(),
        carrier: Carrier::Shipway,
        courier: pick(|s| &s.carrier),
        awb,
        order_id: pick(|s| &s.order_id),
        reference_number: extra.and_then(|e| text(&e.reference_no)),
        shipment_type,
        forward_awb,
        forward_reference_number: None,
        status,
        ndr: (status == Status::DeliveryFailed).then(|| Ndr {
            code: code.clone(),
            reason: ndr_reason(&code)
                .map(str::to_owned)
                .or_else(|| description.clone()),
        }),
        carrier_status: CarrierStatus {
            code,
            description: description.clone(),
            raw: narrative.clone(),
            notification_event_id: None,
        },
        location: scan.and_then(|s| text(&s.location)),
        remark: narrative.or(description),
        event_time,
        event_time_raw,
        received_at: ctx.received_at,
        latest_status: None,
        is_stale: false,
        npr: None,
        edd: pick(|s| &s.expected_delivery_date)
            .or_else(|| extra.and_then(|e| text(&e.expected_delivery_date)))
            .and_then(|d| time::to_date(&d)),
        items: Vec::new(),
        source,
        legacy_ids: Default::default(),
    };
    let identity = Identity::of_scan(&event);
    seal(
        event,
        identity,
        "`awbno`, `reverse_tracking_number` and `order_id` are all missing or blank",
    )
}

/// The time of the newest scan (scan times share one format, so the newest sorts last), with the
/// field it came from.
fn newest_scan_time(scans: &[Scan]) -> Option<(String, String)> {
    scans
        .iter()
        .filter_map(|s| text(&s.time))
        .max()
        .map(|t| (t, "scans[].time".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ctx() -> NormalizeContext {
        NormalizeContext::new(
            crate::model::TenantId::parse("acme").unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        )
    }

    fn events(json: &str) -> Vec<CanonicalEvent> {
        normalize(json.as_bytes(), &ctx()).unwrap()
    }

    #[test]
    fn rtd_is_rto_delivered() {
        let e =
            &events(r#"{"awbno":"A","current_status":"RTD","status_time":"2024-03-11 09:12:40"}"#)
                [0];
        assert_eq!(
            (e.status, e.shipment_type),
            (Status::RtoDelivered, ShipmentType::Forward)
        );
    }

    #[test]
    fn a_numeric_reverse_tracking_number_keeps_every_digit_and_is_the_return_awb() {
        let e = &events(
            r#"{"awbno":"12345678901234","current_status":"RPKP","status_time":"2024-03-11 09:12:40",
                "reverse_tracking_number":11633336773305}"#,
        )[0];
        assert_eq!(e.awb.as_deref(), Some("11633336773305"));
        assert_eq!(e.forward_awb.as_deref(), Some("12345678901234"));
        assert_eq!(
            (e.status, e.shipment_type),
            (Status::PickedUp, ShipmentType::Return)
        );
    }

    #[test]
    fn scans_may_be_an_array_or_an_object() {
        for scans in [
            r#"[{"time":"2024-03-11 09:12:40","location":"Pune_Hub"}]"#,
            r#"{"0":{"time":"2024-03-11 09:12:40","location":"Pune_Hub"}}"#,
        ] {
            let json = format!(
                r#"{{"awbno":"A","current_status":"OOD","status_time":"2024-03-11 09:12:40","scans":{scans}}}"#
            );
            assert_eq!(
                events(&json)[0].location.as_deref(),
                Some("Pune_Hub"),
                "{scans}"
            );
        }
    }

    #[test]
    fn an_empty_status_feed_is_a_ping_with_no_events() {
        assert!(events(r#"{"hash":"h","status_feed":[]}"#).is_empty());
    }

    #[test]
    fn a_bad_batch_element_is_named_by_its_index() {
        let err = normalize(
            br#"{"status_feed":[{"awbno":"A","current_status":"DEL","status_time":"2024-03-11 09:12:40"},
                 {"awbno":"B","current_status":"DEL","status_time":"11/03/2024"}]}"#,
            &ctx(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("field `status_feed[1].status_time` is invalid"),
            "{err}"
        );
        let err = normalize(br#"{"status_feed":[{"awbno":"A","current_status":"DEL","status_time":"2024-03-11 09:12:40"}, 7]}"#, &ctx()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`status_feed[1]` must be a JSON object, but it is a number"
        );
        let err = normalize(br#"{"status_feed":[{"awbno":["A"]}]}"#, &ctx()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("field `status_feed[0].awbno` is invalid"),
            "{err}"
        );
    }

    #[test]
    fn unknown_codes_are_unknown_and_failed_deliveries_carry_an_ndr() {
        let e =
            &events(r#"{"awbno":"A","current_status":"ZZZ","status_time":"2024-03-11 09:12:40"}"#)
                [0];
        assert_eq!(
            (e.status, e.carrier_status.code.as_str()),
            (Status::Unknown, "ZZZ")
        );
        let e =
            &events(r#"{"awbno":"A","current_status":"CNA","status_time":"2024-03-11 09:12:40"}"#)
                [0];
        assert_eq!(e.status, Status::DeliveryFailed);
        assert_eq!(
            e.ndr.as_ref().unwrap().reason.as_deref(),
            Some("Consignee Unavailable")
        );
    }

    #[test]
    fn the_time_falls_back_to_the_newest_scan() {
        let e = &events(
            r#"{"awbno":"A","current_status":"INT","scans":[{"time":"2024-03-10 22:01:05"},{"time":"2024-03-11 09:12:40"}]}"#,
        )[0];
        assert_eq!(e.event_time_raw, "2024-03-11 09:12:40");
    }

    #[test]
    fn the_sample_webhook_and_an_empty_feed_are_probes_and_real_bodies_are_not() {
        assert_eq!(
            classify(br#"{"order_id":"99999999","current_status":"DEL"}"#),
            BodyKind::Probe
        );
        assert_eq!(classify(br#"{"status_feed":[]}"#), BodyKind::Probe);
        assert_eq!(
            classify(br#"{"hash":"h","status_feed":[]}"#),
            BodyKind::Probe
        );
        assert_eq!(
            classify(br#"{"order_id":"99999999","awbno":"A1","current_status":"DEL"}"#),
            BodyKind::Payload
        );
        assert_eq!(
            classify(br#"{"hash":"h","status_feed":[{"awbno":"A"}]}"#),
            BodyKind::Payload
        );
    }
}

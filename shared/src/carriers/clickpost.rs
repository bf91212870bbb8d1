//! Clickpost (docs/carriers.md §1): All Status and Selected Status webhooks, one scan per POST.
//!
//! The top level is the scan that triggered the webhook; `additional.latest_status` is the
//! shipment's latest status at send time. We emit the scan (so every scan is a distinct event) and
//! carry `latest_status` alongside, as Clickpost advises (§1.3). The courier's raw `status` text
//! often contradicts the code (§6): the code decides, never the text.

use serde::Deserialize;

use super::wire::{first_text, parse_json, source, text, Flag, Int, Str};
use super::{
    lenient_time, parse_time, seal, BodyKind, CarrierSpec, Identity, KeySource, NormalizeContext,
    NormalizeError,
};
use crate::model::{
    CanonicalEvent, Carrier, CarrierStatus, EventId, Item, LatestStatus, Ndr, Npr, ShipmentType,
    Source, Status, SCHEMA_ID,
};

pub mod pull;
use crate::time;

pub static SPEC: CarrierSpec = CarrierSpec {
    carrier: Carrier::Clickpost,
    name: "clickpost",
    title: "Clickpost",
    notify_path: "/rms/in/api/clickpost/notify",
    // `webhook_key` from registration; the dashboard's "basic token auth" sends `Authorization`
    // (§1.1).
    key_sources: &[KeySource::Header("webhook_key"), KeySource::Authorization],
    missing_key_hint: "send the webhook key in the `webhook_key` header (or `Authorization`)",
    // Clickpost's times are IST wall-clock, return orders included (§1.8, §6).
    default_zone_seconds: 5 * 3600 + 30 * 60,
    panel_steps: "Dashboard › Settings › Notification › Webhooks: the notify URL, with \
                  \"Selected Status\" (or \"All Status\"). The key is the `webhook_key` Clickpost \
                  returns at registration (sent as the `webhook_key` header), or the dashboard's \
                  token auth value (sent as `Authorization`).",
    // Clickpost's test button posts whatever test data the merchant gives it (§1.1): there is
    // no fixed body to recognise, so only GET and empty bodies are probes.
    demo_sample: "tests/fixtures/clickpost/delivered_selected_captured.json",
    classify: |_| BodyKind::Payload,
    normalize: |body, ctx| normalize(body, ctx).map(|event| vec![event]),
};

/// `clickpost_status_code` → canonical status (docs/carriers.md §1.4). Codes are listed in table order.
pub fn status_for_code(code: i64) -> Status {
    match code {
        1 => Status::OrderPlaced,
        2 => Status::PickupScheduled, // PICKUP_PENDING
        3 => Status::PickupFailed,
        4 => Status::PickedUp,
        5 => Status::InTransit,
        6 => Status::OutForDelivery,
        7 => Status::NotServiceable,
        8 => Status::Delivered, // with is_rvp: back at the warehouse
        9 => Status::DeliveryFailed,
        10 => Status::Cancelled,
        11 | 12 => Status::RtoInitiated, // RTO_REQUESTED, RTO (marked as return)
        13 => Status::RtoOutForDelivery,
        14 => Status::RtoDelivered,
        15 => Status::RtoFailed,
        16 => Status::Lost,
        17 => Status::Damaged,
        18 => Status::Delayed,      // SHIPMENT_DELAYED (delayed or misrouted)
        19 | 20 => Status::OnHold,  // CONTACT_CUSTOMER_CARE, SHIPMENT_HELD
        21 => Status::RtoInTransit, // RTO_INTRANSIT
        23 => Status::Cancelled,    // EXPIRED: Clickpost closed the shipment
        25 => Status::OutForPickup, // OUT_FOR_PICKUP
        26 | 27 => Status::RtoInTransit, // RTO_CONTACT_CUSTOMER_CARE, RTO_SHIPMENT_DELAY: still on the RTO leg
        28 => Status::OrderPlaced,       // AWB_REGISTERED
        30 => Status::PickedUp,          // EXCHANGE_PICKUP
        31 => Status::InTransit,         // EXCHANGE_INTRANSIT
        32 => Status::Delivered,         // EXCHANGE_DELIVERED (back at the warehouse)
        101 => Status::ReturnRequested,  // RETURN_ORDER_PLACED
        102 => Status::ReturnApproved,   // Return Request Approved
        1004 => Status::ReachedDestinationHub, // DESTINATION_HUB_IN
        _ => Status::Unknown,
    }
}

/// `additional.ndr_status_code` → reason (docs/carriers.md §1.7), used when Clickpost sends no text.
fn ndr_reason(code: i64) -> Option<&'static str> {
    Some(match code {
        0 => "Unknown Exception",
        1 => "Customer Unavailable",
        2 => "Rejected by Customer",
        3 => "Delivery Rescheduled",
        4 => "No Attempt",
        5 => "Customer Unreachable",
        6 => "Address Issue",
        7 => "Payment Issue",
        8 => "Out Of Delivery Area",
        9 => "Order Already Cancelled",
        10 => "Self Collect",
        11 => "Shipment Seized By Customer",
        12 => "Customer wants open delivery",
        13 => "Shipment Misrouted by logistics partner",
        _ => return None,
    })
}

/// Codes that only exist on reverse journeys (docs/carriers.md §1.4, journey "Reverse").
fn is_reverse_only(code: Option<i64>) -> bool {
    matches!(code, Some(30..=32 | 101 | 102))
}

/// Forward or return, by the first of these rules that applies (never from free text such as
/// `remark`, which couriers word as they like):
/// 1. `additional.is_rvp: true` (§1.9);
/// 2. a code that only exists on reverse journeys (30–32, 101, 102);
/// 3. `additional.dsqc.category == "REV"`: doorstep-QC reverse pickups arrive without `is_rvp`
///    (§6);
/// 4. else forward. `is_rvp: false` decides nothing: forward bodies carry it by default.
fn direction(is_rvp: bool, code: Option<i64>, dsqc_category: Option<&str>) -> ShipmentType {
    if is_rvp
        || is_reverse_only(code)
        || dsqc_category.is_some_and(|c| c.eq_ignore_ascii_case("REV"))
    {
        ShipmentType::Return
    } else {
        ShipmentType::Forward
    }
}

#[derive(Deserialize, Default)]
struct Payload {
    waybill: Option<Str>,
    cp_id: Option<Int>,
    status: Option<Str>,
    remark: Option<Str>,
    location: Option<Str>,
    timestamp: Option<Str>,
    clickpost_status_code: Option<Str>,
    clickpost_status_description: Option<Str>,
    notification_event: Option<Int>,
    additional: Option<Additional>,
    /// CP-RRA documents the body wrapped as `{"payload": {...}, "internal": {...}}`; whether the
    /// wire has the wrapper is unknown, so both forms are accepted.
    payload: Option<Box<Payload>>,
}

#[derive(Deserialize, Default)]
struct Additional {
    latest_status: Option<Latest>,
    is_rvp: Option<Flag>,
    order_id: Option<Str>,
    courier_partner_edd: Option<Str>,
    notification_event_id: Option<Int>,
    ndr_status_code: Option<Int>,
    ndr_status_description: Option<Str>,
    forward_awb: Option<Str>,
    forward_reference_number: Option<Str>,
    forward_order_id: Option<Str>,
    return_reference_number: Option<Str>,
    item_info: Option<Vec<WireItem>>,
    /// A pickup's failure reason, the pickup analogue of NDR (§6).
    npr_status_code: Option<Str>,
    npr_status_description: Option<Str>,
    /// Doorstep QC of a reverse pickup. Holds the customer's name, phone and address: it may go
    /// to the tenant in `source`, but nothing of it is ever logged. Only `category` is read.
    dsqc: Option<DsqcOrOther>,
}

#[derive(Deserialize)]
struct Dsqc {
    category: Option<Str>,
}

/// `dsqc` in any shape: a block we only read one field of must not refuse the scan when it
/// arrives as something other than an object.
#[derive(Deserialize)]
#[serde(untagged)]
enum DsqcOrOther {
    Dsqc(Dsqc),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct Latest {
    clickpost_status_code: Option<Str>,
    clickpost_status_description: Option<Str>,
    timestamp: Option<Str>,
    reference_number: Option<Str>,
}

#[derive(Deserialize)]
struct WireItem {
    sku: Option<Str>,
    quantity: Option<Int>,
    return_reason: Option<Str>,
    refund_mode: Option<Str>,
}

/// Normalises one Clickpost webhook body.
pub fn normalize(body: &[u8], ctx: &NormalizeContext) -> Result<CanonicalEvent, NormalizeError> {
    let mut payload: Payload = parse_json(body)?;
    if payload.clickpost_status_code.is_none() {
        if let Some(inner) = payload.payload.take() {
            payload = *inner;
        }
    }
    let event = to_event(payload, source(body, ctx), ctx)?;
    let identity = Identity::of_scan(&event);
    seal(event, identity, WHY_NO_KEY)
}

const WHY_NO_KEY: &str = "`waybill` is blank and there is no `additional.forward_awb`, \
                          `forward_reference_number`, `return_reference_number` or `order_id`";

/// One scan as a canonical event, not sealed yet: the webhook's body and a pulled scan
/// (`pull`) both become a [`Payload`] first, so that one scan gives one event either way.
fn to_event(
    payload: Payload,
    source: Option<Source>,
    ctx: &NormalizeContext,
) -> Result<CanonicalEvent, NormalizeError> {
    let additional = payload.additional.unwrap_or_default();

    let code = text(&payload.clickpost_status_code).unwrap_or_default();
    let numeric_code = code.parse::<i64>().ok();
    let status = numeric_code.map_or(Status::Unknown, status_for_code);

    let event_time_raw = text(&payload.timestamp)
        .ok_or(NormalizeError::NoTime("`timestamp` is missing or blank"))?;
    let event_time = parse_time("timestamp", &event_time_raw, ctx)?;

    let dsqc_category = match &additional.dsqc {
        Some(DsqcOrOther::Dsqc(d)) => text(&d.category),
        _ => None,
    };
    let shipment_type = direction(
        additional.is_rvp.is_some_and(|f| f.0),
        numeric_code,
        dsqc_category.as_deref(),
    );

    let latest_status = additional.latest_status.as_ref().map(|latest| {
        let code = text(&latest.clickpost_status_code).unwrap_or_default();
        let numeric = code.parse::<i64>().ok();
        let raw_time = text(&latest.timestamp);
        LatestStatus {
            status: numeric.map_or(Status::Unknown, status_for_code),
            code,
            description: text(&latest.clickpost_status_description),
            // A bad time here must not sink the scan the webhook is about; the raw text is kept.
            event_time: raw_time.as_deref().and_then(|t| lenient_time(t, ctx)),
            event_time_raw: raw_time,
        }
    });

    let ndr = additional.ndr_status_code.map(|Int(code)| Ndr {
        code: code.to_string(),
        reason: text(&additional.ndr_status_description)
            .or_else(|| ndr_reason(code).map(str::to_owned)),
    });

    let npr_code = text(&additional.npr_status_code);
    let npr_reason = text(&additional.npr_status_description);
    let npr = (npr_code.is_some() || npr_reason.is_some()).then_some(Npr {
        code: npr_code,
        reason: npr_reason,
    });

    let notification_event_id = additional
        .notification_event_id
        .or(payload.notification_event)
        .map(|n| n.0);

    let event = CanonicalEvent {
        schema: SCHEMA_ID.to_owned(),
        event_id: EventId::unset(),
        tenant_id: ctx.tenant_id.clone(),
        carrier: Carrier::Clickpost,
        courier: payload
            .cp_id
            .filter(|id| id.0 >= 0)
            .map(|id| id.0.to_string()),
        awb: text(&payload.waybill),
        order_id: first_text([&additional.order_id, &additional.forward_order_id]),
        reference_number: additional
            .latest_status
            .as_ref()
            .and_then(|l| text(&l.reference_number))
            .or_else(|| text(&additional.return_reference_number)),
        shipment_type,
        forward_awb: text(&additional.forward_awb),
        forward_reference_number: text(&additional.forward_reference_number),
        status,
        carrier_status: CarrierStatus {
            code,
            description: text(&payload.clickpost_status_description),
            raw: text(&payload.status),
            notification_event_id,
        },
        location: text(&payload.location),
        remark: text(&payload.remark),
        event_time,
        event_time_raw,
        received_at: ctx.received_at,
        latest_status,
        is_stale: false,
        ndr,
        npr,
        edd: text(&additional.courier_partner_edd).and_then(|d| time::to_date(&d)),
        items: additional
            .item_info
            .unwrap_or_default()
            .into_iter()
            .map(|item| Item {
                sku: text(&item.sku),
                quantity: item.quantity.map(|q| q.0),
                return_reason: text(&item.return_reason),
                refund_mode: text(&item.refund_mode),
            })
            .collect(),
        source,
        legacy_ids: Default::default(),
    };
    Ok(event)
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

    fn event(json: &str) -> CanonicalEvent {
        normalize(json.as_bytes(), &ctx()).unwrap()
    }

    #[test]
    fn delivered_with_is_rvp_is_a_return_delivered_back_at_the_warehouse() {
        let e = event(
            r#"{"waybill":"R1","clickpost_status_code":8,"timestamp":"2023-02-07T18:09:00Z",
                "additional":{"is_rvp":true,"forward_awb":"F1"}}"#,
        );
        assert_eq!(e.status, Status::Delivered);
        assert_eq!(e.shipment_type, ShipmentType::Return);
        assert_eq!(e.forward_awb.as_deref(), Some("F1"));
    }

    #[test]
    fn a_reverse_pickup_without_is_rvp_is_a_return_by_its_dsqc_category() {
        // Built from docs/carriers.md §6: a doorstep-QC reverse pickup (NuvoEx) with
        // `dsqc.category` "REV" and no `is_rvp`; the raw text says nothing of direction.
        let e = event(
            r#"{"waybill":"NX1","clickpost_status_code":4,"status":"Picked Up","remark":"Reverse Pickup",
                "timestamp":"2023-02-07T18:09:00Z","additional":{"dsqc":{"category":"REV","name":"A. Customer"}}}"#,
        );
        assert_eq!(
            (e.status, e.shipment_type),
            (Status::PickedUp, ShipmentType::Return)
        );
    }

    #[test]
    fn a_dsqc_of_another_shape_is_ignored_not_refused() {
        for dsqc in [r#""n/a""#, "[1,2]", "null", r#"{"category":["REV"]}"#] {
            let body = format!(
                r#"{{"waybill":"A","clickpost_status_code":4,"timestamp":"2023-02-07T18:09:00Z","additional":{{"dsqc":{dsqc}}}}}"#
            );
            let e = normalize(body.as_bytes(), &ctx()).unwrap();
            assert_eq!(e.shipment_type, ShipmentType::Forward, "{dsqc}");
        }
    }

    #[test]
    fn direction_follows_the_documented_precedence() {
        use ShipmentType::{Forward, Return};
        assert_eq!(direction(true, Some(4), None), Return);
        assert_eq!(direction(false, Some(101), None), Return);
        assert_eq!(direction(false, Some(4), Some("rev")), Return);
        assert_eq!(direction(false, Some(4), Some("FWD")), Forward);
        assert_eq!(direction(false, Some(4), None), Forward);
    }

    #[test]
    fn the_code_decides_not_the_couriers_text() {
        let e = event(
            r#"{"waybill":"A","clickpost_status_code":21,"status":"In Transit","timestamp":"2023-02-07T18:09:00Z"}"#,
        );
        assert_eq!(e.status, Status::RtoInTransit);
        assert_eq!(e.carrier_status.raw.as_deref(), Some("In Transit"));
    }

    #[test]
    fn return_request_times_are_ist_and_an_explicit_offset_still_wins() {
        let e = event(
            r#"{"waybill":"","clickpost_status_code":101,"timestamp":"2019-04-29 07:47:07.161221",
                "additional":{"forward_awb":"F1"}}"#,
        );
        assert_eq!(
            e.event_time.to_rfc3339(),
            "2019-04-29T02:17:07.161221+00:00"
        );
        let e = event(
            r#"{"waybill":"A","clickpost_status_code":5,"timestamp":"2023-02-07T18:09:00+01:00"}"#,
        );
        assert_eq!(e.event_time.to_rfc3339(), "2023-02-07T17:09:00+00:00");
    }

    #[test]
    fn a_pickup_failure_reason_is_kept_and_absent_when_not_sent() {
        let e = event(
            r#"{"waybill":"A","clickpost_status_code":3,"timestamp":"2023-02-07T18:09:00Z",
                "additional":{"npr_status_code":2,"npr_status_description":"Customer not available"}}"#,
        );
        assert_eq!(
            e.npr,
            Some(Npr {
                code: Some("2".into()),
                reason: Some("Customer not available".into())
            })
        );
        let e = event(
            r#"{"waybill":"A","clickpost_status_code":3,"timestamp":"2023-02-07T18:09:00Z",
                "additional":{"npr_status_code":null,"npr_status_description":null}}"#,
        );
        assert_eq!(e.npr, None);
    }

    #[test]
    fn an_implausible_time_is_refused_naming_the_field() {
        for (time, why) in [
            ("2100-01-01T00:00:00Z", "more than a day after"),
            ("1999-12-31T23:59:59Z", "before 2000-01-01"),
        ] {
            let body =
                format!(r#"{{"waybill":"A","clickpost_status_code":5,"timestamp":"{time}"}}"#);
            let err = normalize(body.as_bytes(), &ctx()).unwrap_err().to_string();
            assert!(
                err.starts_with("field `timestamp` is not a plausible event time"),
                "{err}"
            );
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn an_implausible_latest_status_time_is_dropped_not_printed() {
        let e = event(
            r#"{"waybill":"A","clickpost_status_code":5,"timestamp":"2023-02-07T18:09:00Z",
                "additional":{"latest_status":{"clickpost_status_code":5,"timestamp":"9999-12-31T23:59:59Z"}}}"#,
        );
        let latest = e.latest_status.unwrap();
        assert_eq!(latest.event_time, None);
        assert_eq!(
            latest.event_time_raw.as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
    }

    #[test]
    fn an_unknown_code_is_accepted_as_unknown_with_the_code_kept() {
        let e = event(
            r#"{"waybill":"A","clickpost_status_code":777,"timestamp":"2023-02-07T18:09:00Z"}"#,
        );
        assert_eq!(e.status, Status::Unknown);
        assert_eq!(e.carrier_status.code, "777");
    }

    #[test]
    fn a_missing_code_is_unknown_not_an_error() {
        let e = event(r#"{"waybill":"A","timestamp":"2023-02-07T18:09:00Z"}"#);
        assert_eq!(
            (e.status, e.carrier_status.code.as_str()),
            (Status::Unknown, "")
        );
    }

    #[test]
    fn the_documented_payload_wrapper_is_unwrapped() {
        let e = event(
            r#"{"payload":{"waybill":"","clickpost_status_code":102,"timestamp":"2022-11-18 07:30:08.396840",
                "additional":{"forward_awb":"F9","return_reference_number":"RR1","forward_order_id":"O1",
                "item_info":[{"sku":"S","quantity":"2","return_reason":"size","refund_mode":"Back to source"}]}},
                "internal":{"tracking_id":1}}"#,
        );
        assert_eq!(e.status, Status::ReturnApproved);
        assert_eq!(e.shipment_type, ShipmentType::Return);
        // IST wall-clock, like every Clickpost time (§6 supersedes §1.8's UTC reading).
        assert_eq!(
            e.event_time.to_rfc3339(),
            "2022-11-18T02:00:08.396840+00:00"
        );
        assert_eq!(e.reference_number.as_deref(), Some("RR1"));
        assert_eq!(e.order_id.as_deref(), Some("O1"));
        assert_eq!(e.items[0].quantity, Some(2));
        assert_eq!(e.items[0].refund_mode.as_deref(), Some("Back to source"));
    }

    #[test]
    fn ndr_reason_falls_back_to_the_code_table() {
        let e = event(
            r#"{"waybill":"A","clickpost_status_code":9,"timestamp":"2019-05-01T00:55:06Z",
                "additional":{"ndr_status_code":6}}"#,
        );
        assert_eq!(
            e.ndr,
            Some(Ndr {
                code: "6".into(),
                reason: Some("Address Issue".into())
            })
        );
    }

    #[test]
    fn no_shipment_id_and_no_time_are_precise_errors() {
        let err = normalize(
            br#"{"waybill":"","clickpost_status_code":101,"timestamp":"2017-08-02T13:23:02Z"}"#,
            &ctx(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("no shipment id: `waybill` is blank"),
            "{err}"
        );
        let err = normalize(br#"{"waybill":"A","clickpost_status_code":8}"#, &ctx()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no event time: `timestamp` is missing or blank"
        );
        let err = normalize(
            br#"{"waybill":"A","clickpost_status_code":8,"timestamp":"yesterday"}"#,
            &ctx(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("field `timestamp` is invalid: \"yesterday\""),
            "{err}"
        );
    }

    #[test]
    fn the_v1_id_is_the_one_v1_gave_the_scan_with_its_notification_event() {
        let e = event(
            r#"{"waybill":"A","clickpost_status_code":8,"timestamp":"2023-02-07T18:09:00.002000Z",
                "additional":{"notification_event_id":5}}"#,
        );
        let v1 = EventId::derive_v1(&crate::model::V1EventIdParts {
            tenant_id: "acme",
            carrier: Carrier::Clickpost,
            shipment_key: "A",
            status_code: "8",
            event_time_raw: "2023-02-07T18:09:00.002000Z",
            notification_event_id: Some("5"),
        });
        assert_eq!(&e.legacy_ids[..], &[v1]);
        // v2 is the instant: the same scan written without the fraction, or without the
        // notification event, is the same event.
        let plain =
            event(r#"{"waybill":"A","clickpost_status_code":8,"timestamp":"2023-02-07 18:09:00"}"#);
        assert_eq!(e.event_id, plain.event_id);
    }

    #[test]
    fn the_same_scan_twice_has_the_same_event_id_and_another_scan_another() {
        let a = r#"{"waybill":"A","clickpost_status_code":5,"timestamp":"2023-02-07T18:09:00Z"}"#;
        let b = r#"{"waybill":"A","clickpost_status_code":5,"timestamp":"2023-02-07T19:09:00Z"}"#;
        assert_eq!(event(a).event_id, event(a).event_id);
        assert_ne!(event(a).event_id, event(b).event_id);
    }
}

//! Shiprocket tracking webhooks (carriers.md §2): one shipment per POST, with the cumulative
//! `scans[]` history.
//!
//! The status comes from `shipment_status_id` (§2.3), never from `current_status_id`, which is a
//! different code space (§2.4: 20 is "In Transit" there and "Pickup Exception" here). The event is
//! the scan that set that status (the newest scan whose `sr-status` equals it), so re-sends of the
//! same history, and scans that do not change the status, give the same event id.

use serde::Deserialize;

use super::wire::{first_text, parse_json, source, text, Flag, Str};
use super::{parse_time, seal, NormalizeContext, NormalizeError};
use crate::model::{
    CanonicalEvent, Carrier, CarrierStatus, EventId, Ndr, ShipmentType, Status, SCHEMA_ID,
};
use crate::time;

/// `shipment_status_id` (and `scans[].sr-status`) → canonical status (carriers.md §2.3, plus the
/// low ids 0–5 and 11 that occur in practice).
pub fn status_for_code(code: i64) -> Status {
    match code {
        0..=2 => Status::OrderPlaced,     // New, AWB Assigned, Label Generated
        3 | 4 => Status::PickupScheduled, // Pickup Scheduled/Generated, Pickup Queued
        5 => Status::PickupScheduled,     // Manifest Generated: waiting for pickup
        6 => Status::InTransit,           // Shipped
        7 => Status::Delivered,           // on a return: received at the warehouse
        8 => Status::Cancelled,
        9 => Status::RtoInitiated,
        10 => Status::RtoDelivered,
        11 => Status::OrderPlaced, // Pending
        12 => Status::Lost,
        13 => Status::PickupFailed,    // Pickup Error
        14 => Status::RtoInitiated,    // RTO Acknowledged
        15 => Status::PickupScheduled, // Pickup Rescheduled
        16 => Status::OnHold,          // Cancellation Requested: not cancelled yet
        17 => Status::OutForDelivery,
        18 => Status::InTransit,
        19 => Status::OutForPickup,
        20 => Status::PickupFailed,   // Pickup Exception
        21 => Status::DeliveryFailed, // Undelivered (NDR)
        22 => Status::Delayed,
        23 => Status::Delivered, // Partial_Delivered
        24 => Status::Damaged,   // DESTROYED
        25 => Status::Damaged,
        26 => Status::Delivered,       // FULFILLED
        27 => Status::PickupScheduled, // Pickup Booked
        38 => Status::ReachedDestinationHub,
        39 => Status::Delayed,           // MISROUTED
        40 => Status::RtoFailed,         // RTO_NDR
        41 => Status::RtoOutForDelivery, // RTO_OFD
        42 => Status::PickedUp,
        43 => Status::Delivered, // SELF FULFILLED
        44 => Status::Lost,      // DISPOSED OFF
        45 => Status::Cancelled, // CANCELLED_BEFORE_DISPATCHED
        46 => Status::RtoInTransit,
        47 => Status::PickupFailed,     // QC FAILED at the doorstep
        48..=50 => Status::InTransit,   // Reached Warehouse, Custom Cleared, In Flight
        51 => Status::PickedUp,         // Handover to Courier
        52 => Status::OrderPlaced,      // Shipment Booked
        54..=57 => Status::InTransit,   // overseas legs
        59..=63 => Status::OrderPlaced, // fulfilment-centre stages before dispatch
        67 | 68 => Status::OrderPlaced, // FC MANIFEST GENERATED, PROCESSED AT WAREHOUSE
        71 | 72 => Status::OnHold,      // HANDOVER EXCEPTION, PACKED EXCEPTION
        75 => Status::RtoInitiated,     // RTO_LOCK
        76 => Status::Lost,             // UNTRACEABLE
        77 => Status::DeliveryFailed,   // ISSUE_RELATED_TO_THE_RECIPIENT
        78 => Status::RtoInTransit,     // REACHED_BACK_AT_SELLER_CITY
        _ => Status::Unknown,
    }
}

#[derive(Deserialize)]
struct Payload {
    awb: Option<Str>,
    courier_name: Option<Str>,
    shipment_status: Option<Str>,
    shipment_status_id: Option<Str>,
    current_timestamp: Option<Str>,
    order_id: Option<Str>,
    etd: Option<Str>,
    scans: Option<Vec<Scan>>,
    is_return: Option<Flag>,
}

#[derive(Deserialize)]
struct Scan {
    date: Option<Str>,
    status: Option<Str>,
    activity: Option<Str>,
    location: Option<Str>,
    #[serde(rename = "sr-status")]
    sr_status: Option<Str>,
}

/// Normalises one Shiprocket webhook body.
pub fn normalize(body: &[u8], ctx: &NormalizeContext) -> Result<CanonicalEvent, NormalizeError> {
    let payload: Payload = parse_json(body)?;
    let scans = payload.scans.as_deref().unwrap_or_default();

    let code = text(&payload.shipment_status_id).unwrap_or_default();
    let status = code
        .parse::<i64>()
        .ok()
        .map_or(Status::Unknown, status_for_code);

    let (scan, event_time_raw, event_time) = match event_scan(scans, &code, ctx)? {
        Some((scan, raw, time)) => (Some(scan), raw, time),
        None => {
            let raw = text(&payload.current_timestamp).ok_or(NormalizeError::NoTime(
                "there are no `scans[].date` and no `current_timestamp`",
            ))?;
            let time = parse_time("current_timestamp", &raw, ctx.zone)?;
            (None, raw, time)
        }
    };

    let ndr = (status == Status::DeliveryFailed).then(|| Ndr {
        code: scan
            .and_then(|s| text(&s.status))
            .unwrap_or_else(|| code.clone()),
        reason: scan
            .and_then(|s| text(&s.activity))
            .or_else(|| text(&payload.shipment_status)),
    });

    let event = CanonicalEvent {
        schema: SCHEMA_ID.to_owned(),
        event_id: EventId::unset(),
        tenant_id: ctx.tenant_id.clone(),
        carrier: Carrier::Shiprocket,
        courier: text(&payload.courier_name),
        awb: text(&payload.awb),
        order_id: text(&payload.order_id),
        reference_number: None,
        shipment_type: if payload.is_return.is_some_and(|f| f.0) {
            ShipmentType::Return
        } else {
            ShipmentType::Forward
        },
        forward_awb: None,
        forward_reference_number: None,
        status,
        carrier_status: CarrierStatus {
            code,
            description: text(&payload.shipment_status),
            raw: scan.and_then(|s| text(&s.status)),
            notification_event_id: None,
        },
        location: scan.and_then(|s| text(&s.location)),
        remark: scan.and_then(|s| first_text([&s.activity, &s.status])),
        event_time,
        event_time_raw,
        received_at: ctx.received_at,
        latest_status: None,
        is_stale: false,
        ndr,
        edd: text(&payload.etd).and_then(|d| time::to_date(&d)),
        items: Vec::new(),
        source: source(body, ctx),
    };
    seal(
        event,
        None,
        "`awb` and `order_id` are both missing or blank",
    )
}

type ChosenScan<'a> = (&'a Scan, String, chrono::DateTime<chrono::Utc>);

/// The scan the event is about: the newest one whose `sr-status` is the shipment's status, else
/// the newest one. Scans carry their own times, so order in the array does not matter; on a tie the
/// later entry wins. Only the candidates' times are read, so a bad date in an unrelated old scan
/// does not reject the update.
fn event_scan<'a>(
    scans: &'a [Scan],
    code: &str,
    ctx: &NormalizeContext,
) -> Result<Option<ChosenScan<'a>>, NormalizeError> {
    let matching = |s: &&Scan| text(&s.sr_status).as_deref() == Some(code) && !code.is_empty();
    let dated = |s: &&Scan| text(&s.date).is_some();
    let newest = |pick: &dyn Fn(&&Scan) -> bool| -> Result<Option<ChosenScan<'a>>, NormalizeError> {
        let mut best: Option<ChosenScan<'a>> = None;
        for (i, scan) in scans.iter().enumerate() {
            if !(pick(&scan) && dated(&scan)) {
                continue;
            }
            let raw = text(&scan.date).unwrap_or_default();
            let time = parse_time(format!("scans[{i}].date"), &raw, ctx.zone)?;
            if best.as_ref().is_none_or(|(_, _, t)| time >= *t) {
                best = Some((scan, raw, time));
            }
        }
        Ok(best)
    };
    match newest(&matching)? {
        Some(found) => Ok(Some(found)),
        None => newest(&|_| true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ctx() -> NormalizeContext {
        NormalizeContext::new("acme", Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
    }

    fn event(json: &str) -> CanonicalEvent {
        normalize(json.as_bytes(), &ctx()).unwrap()
    }

    #[test]
    fn the_status_comes_from_shipment_status_id_not_current_status_id() {
        let e = event(
            r#"{"awb":123,"current_status_id":20,"shipment_status_id":18,"current_timestamp":"23 05 2023 11:43:52"}"#,
        );
        assert_eq!(e.status, Status::InTransit);
        assert_eq!(e.awb.as_deref(), Some("123"));
        assert_eq!(e.event_time.to_rfc3339(), "2023-05-23T06:13:52+00:00");
    }

    #[test]
    fn the_event_is_the_newest_scan_that_set_the_status() {
        let e = event(
            r#"{"awb":"A","shipment_status_id":"42","scans":[
                {"date":"2023-05-19 17:19:14","activity":"Added to Bag","sr-status":"NA"},
                {"date":"2023-05-19 15:32:17","status":"X-PPOM","activity":"Picked up","location":"Chomu","sr-status":"42"}]}"#,
        );
        assert_eq!(e.status, Status::PickedUp);
        assert_eq!(e.event_time_raw, "2023-05-19 15:32:17");
        assert_eq!(e.location.as_deref(), Some("Chomu"));
        assert_eq!(e.carrier_status.raw.as_deref(), Some("X-PPOM"));
    }

    #[test]
    fn a_new_scan_that_does_not_change_the_status_keeps_the_event_id() {
        let before = r#"{"awb":"A","shipment_status_id":18,"scans":[{"date":"2023-05-23 11:43:46","sr-status":"18"}]}"#;
        let after = r#"{"awb":"A","shipment_status_id":18,"scans":[{"date":"2023-05-23 11:43:46","sr-status":"18"},
            {"date":"2023-05-23 15:00:00","sr-status":"NA"}]}"#;
        assert_eq!(event(before).event_id, event(after).event_id);
    }

    #[test]
    fn without_a_matching_scan_the_newest_scan_is_used() {
        let e = event(
            r#"{"awb":"A","shipment_status_id":7,"is_return":1,"scans":[
                {"date":"2023-05-23 11:43:46","sr-status":"NA"},{"date":"2023-05-20 10:00:00","sr-status":"NA"}]}"#,
        );
        assert_eq!(e.event_time_raw, "2023-05-23 11:43:46");
        assert_eq!(
            (e.status, e.shipment_type),
            (Status::Delivered, ShipmentType::Return)
        );
    }

    #[test]
    fn a_bad_date_on_the_chosen_scan_names_the_scan() {
        let err = normalize(
            br#"{"awb":"A","shipment_status_id":18,"scans":[{"date":"19/05/2023","sr-status":"18"}]}"#,
            &ctx(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("field `scans[0].date` is invalid"),
            "{err}"
        );
    }

    #[test]
    fn undelivered_carries_the_courier_reason_as_ndr() {
        let e = event(
            r#"{"awb":"A","shipment_status_id":21,"scans":[{"date":"2023-05-23 11:43:46","status":"EOD-74","activity":"Consignee unavailable","sr-status":"21"}]}"#,
        );
        let ndr = e.ndr.unwrap();
        assert_eq!(
            (ndr.code.as_str(), ndr.reason.as_deref()),
            ("EOD-74", Some("Consignee unavailable"))
        );
    }

    #[test]
    fn no_awb_and_no_time_are_precise_errors() {
        let err = normalize(
            br#"{"shipment_status_id":18,"current_timestamp":"23 05 2023 11:43:52"}"#,
            &ctx(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no shipment id: `awb` and `order_id` are both missing or blank"
        );
        let err = normalize(br#"{"awb":"A","shipment_status_id":18}"#, &ctx()).unwrap_err();
        assert!(err.to_string().starts_with("no event time"), "{err}");
    }
}

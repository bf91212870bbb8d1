//! Shiprocket (docs/carriers.md §2): one shipment per POST, with the cumulative `scans[]` history.
//!
//! The status comes from `shipment_status_id` (§2.3), never from `current_status_id`, which is a
//! different code space (§2.4: 20 is "In Transit" there and "Pickup Exception" here). The event is
//! the scan that set that status (the newest scan whose `sr-status` equals it), so re-sends of the
//! same history, and scans that do not change the status, give the same event id. A status that
//! no scan carries (§6: a real RTO INITIATED whose newest scan is an unrelated "In Transit") is an
//! event of its own, with nothing taken from an unrelated scan: see [`normalize`].

use serde::Deserialize;

use super::wire::{first_text, parse_json, source, text, Flag, Str};
use super::{
    parse_time, seal, BodyKind, CarrierSpec, Identity, KeySource, NormalizeContext, NormalizeError,
};
use crate::model::{
    CanonicalEvent, Carrier, CarrierStatus, EventId, Ndr, Occurrence, ShipmentType, Source, Status,
    SCHEMA_ID,
};
use crate::time;

pub mod pull;

pub static SPEC: CarrierSpec = CarrierSpec {
    carrier: Carrier::Shiprocket,
    name: "shiprocket",
    title: "Shiprocket",
    // Shiprocket's panel refuses a URL holding `sr`, `kr`, `shiprocket` or `kartrocket` (§2.1).
    notify_path: "/rms/in/api/st/notify",
    // The docs say `x-api-key`; receivers in the field read `x-shiprocket-token`, some accounts
    // send `anx-api-key`, one the raw token in `Authorization` (§2.1, §6). All are accepted.
    key_sources: &[
        KeySource::Header("x-api-key"),
        KeySource::Header("anx-api-key"),
        KeySource::Header("x-shiprocket-token"),
        KeySource::Authorization,
    ],
    missing_key_hint: "send the token in the `x-api-key` header (or `x-shiprocket-token`, \
                       `anx-api-key`, `Authorization`)",
    default_zone_seconds: 5 * 3600 + 30 * 60,
    panel_steps: "Panel › Settings › API › Webhooks: the notify URL and the security token, then \
                  enable the toggle. Check that the URL holds no `sr` or `kr` anywhere, the API id \
                  included: Shiprocket's form refuses such URLs (use a custom domain if it does).",
    demo_sample: "tests/fixtures/shiprocket/in_transit_official.json",
    classify,
    normalize: |body, ctx| normalize(body, ctx).map(|event| vec![event]),
};

/// Shiprocket's set-up probe and its panel's test body (§6).
/// - On saving the webhook URL the panel POSTs the two bytes `{}`, with no token, and keeps the URL
///   only if it is answered 200.
/// - "Test Webhook" sends a fixed dummy shipment: `awb` "123456", `courier_name`
///   "dummy courier_name", `order_id` "dummpy shiprocket order id 123" (sic). Two of those must
///   agree, so that a real AWB 123456 is not taken for a test.
fn classify(body: &[u8]) -> BodyKind {
    let mut significant = body.iter().filter(|b| !b.is_ascii_whitespace());
    if significant.next() == Some(&b'{')
        && significant.next() == Some(&b'}')
        && significant.next().is_none()
    {
        return BodyKind::Probe;
    }
    // Every real body is a payload; only one holding the dummy AWB is worth a parse.
    if memchr::memmem::find(body, b"123456").is_none() {
        return BodyKind::Payload;
    }
    #[derive(Deserialize)]
    struct Head {
        awb: Option<Str>,
        courier_name: Option<Str>,
        order_id: Option<Str>,
    }
    let Ok(head) = serde_json::from_slice::<Head>(body) else {
        return BodyKind::Payload;
    };
    let is = |field: &Option<Str>, value: &str| text(field).as_deref() == Some(value);
    let dummy_order =
        text(&head.order_id).is_some_and(|o| o.starts_with("dummpy shiprocket order id"));
    if is(&head.awb, "123456") && (is(&head.courier_name, "dummy courier_name") || dummy_order) {
        return BodyKind::PanelTest;
    }
    BodyKind::Payload
}

/// `shipment_status_id` (and `scans[].sr-status`) → canonical status (docs/carriers.md §2.3, plus the
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

#[derive(Deserialize, Default)]
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

#[derive(Deserialize, Clone)]
struct Scan {
    date: Option<Str>,
    status: Option<Str>,
    activity: Option<Str>,
    location: Option<Str>,
    #[serde(rename = "sr-status")]
    sr_status: Option<Str>,
}

/// Normalises one Shiprocket webhook body.
///
/// When no scan carries the shipment's status, the event is the status itself: its description
/// is the top-level `shipment_status`; its remark, location and raw courier code are empty (an
/// unrelated scan's would be wrong); its time is `current_timestamp` (IST, `dd MM yyyy HH:mm:ss`,
/// the send time: the best evidence there is), else the newest scan's. Its identity is the status
/// and the time of the newest scan that set a status (an `sr-status` code, not "NA"), never
/// `current_timestamp`: the same status re-sent later, with more scans that set no status (the
/// return journey's "NA" scans), is the same event; the same status again after a scan that set
/// another status is a new occurrence.
pub fn normalize(body: &[u8], ctx: &NormalizeContext) -> Result<CanonicalEvent, NormalizeError> {
    let payload: Payload = parse_json(body)?;
    to_event(&payload, source(body, ctx), ctx)
}

/// The event of one webhook body, or of a pulled history cut at one of its scans (`pull`).
fn to_event(
    payload: &Payload,
    source: Option<Source>,
    ctx: &NormalizeContext,
) -> Result<CanonicalEvent, NormalizeError> {
    let scans = payload.scans.as_deref().unwrap_or_default();

    let code = text(&payload.shipment_status_id).unwrap_or_default();
    let status = code
        .parse::<i64>()
        .ok()
        .map_or(Status::Unknown, status_for_code);

    let matching = |s: &&Scan| !code.is_empty() && text(&s.sr_status).as_deref() == Some(&code);
    let mut scan = None;
    let mut unmatched_identity = None;
    let (event_time_raw, event_time) =
        if let Some((found, raw, time)) = newest_scan(scans, &matching, ctx)? {
            scan = Some(found);
            (raw, time)
        } else if code.is_empty() {
            // No status at all: the newest scan is all there is to say.
            match newest_scan(scans, &|_| true, ctx)? {
                Some((found, raw, time)) => {
                    scan = Some(found);
                    (raw, time)
                }
                None => current_timestamp(payload, ctx)?,
            }
        } else {
            let (date, instant) = newest_status_scan(scans, ctx);
            unmatched_identity = Some(Identity {
                occurrence: Occurrence::StatusWithoutScan { after: instant },
                v1: vec![(
                    format!("status-without-scan;{}", date.unwrap_or_default()),
                    None,
                )],
            });
            match text(&payload.current_timestamp) {
                Some(_) => current_timestamp(payload, ctx)?,
                None => match newest_scan(scans, &|_| true, ctx)? {
                    Some((_, raw, time)) => (raw, time),
                    None => current_timestamp(payload, ctx)?,
                },
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
        npr: None,
        edd: text(&payload.etd).and_then(|d| time::to_date(&d)),
        items: Vec::new(),
        source,
        legacy_ids: Default::default(),
    };
    let identity = unmatched_identity.unwrap_or_else(|| Identity::of_scan(&event));
    seal(
        event,
        identity,
        "`awb` and `order_id` are both missing or blank",
    )
}

/// `current_timestamp`, the time Shiprocket sent the body (IST, day first).
fn current_timestamp(
    payload: &Payload,
    ctx: &NormalizeContext,
) -> Result<(String, chrono::DateTime<chrono::Utc>), NormalizeError> {
    let raw = text(&payload.current_timestamp).ok_or(NormalizeError::NoTime(
        "there are no `scans[].date` and no `current_timestamp`",
    ))?;
    let time = parse_time("current_timestamp", &raw, ctx)?;
    Ok((raw, time))
}

type ChosenScan<'a> = (&'a Scan, String, chrono::DateTime<chrono::Utc>);

/// The newest dated scan that `pick` accepts. Scans carry their own times and their order differs
/// between bodies (§6), so the array order does not matter; on a tie the later entry wins. Only
/// the candidates' times are read, so a bad date in an unrelated old scan does not reject the
/// update.
fn newest_scan<'a>(
    scans: &'a [Scan],
    pick: &dyn Fn(&&Scan) -> bool,
    ctx: &NormalizeContext,
) -> Result<Option<ChosenScan<'a>>, NormalizeError> {
    let mut best: Option<ChosenScan<'a>> = None;
    for (i, scan) in scans.iter().enumerate() {
        let Some(raw) = text(&scan.date) else {
            continue;
        };
        if !pick(&scan) {
            continue;
        }
        let time = parse_time(format!("scans[{i}].date"), &raw, ctx)?;
        if best.as_ref().is_none_or(|(_, _, t)| time >= *t) {
            best = Some((scan, raw, time));
        }
    }
    Ok(best)
}

/// Whether a scan set a status: its `sr-status` is a code, not "NA".
fn sets_a_status(scan: &Scan) -> bool {
    text(&scan.sr_status).is_some_and(|code| code.parse::<i64>().is_ok())
}

/// The newest scan that set a status, for an event's identity only, without judging it: its
/// date as text (the v1 identity; scan dates share one format, `yyyy-MM-dd HH:mm:ss`, which
/// sorts as text) and as an instant (v2; a date that does not read is left out).
fn newest_status_scan(
    scans: &[Scan],
    ctx: &NormalizeContext,
) -> (Option<String>, Option<chrono::DateTime<chrono::Utc>>) {
    let dates = || {
        scans
            .iter()
            .filter(|s| sets_a_status(s))
            .filter_map(|s| text(&s.date))
    };
    let instant = dates()
        .filter_map(|d| time::to_utc(&d, ctx.zone).ok())
        .max();
    (dates().max(), instant)
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
    fn without_a_matching_scan_the_time_is_the_newest_scans_and_nothing_else_of_it_is_taken() {
        let e = event(
            r#"{"awb":"A","shipment_status_id":7,"shipment_status":"DELIVERED","is_return":1,"scans":[
                {"date":"2023-05-23 11:43:46","activity":"Bagged","location":"Hub","sr-status":"NA"},
                {"date":"2023-05-20 10:00:00","sr-status":"NA"}]}"#,
        );
        assert_eq!(e.event_time_raw, "2023-05-23 11:43:46");
        assert_eq!(
            (e.status, e.shipment_type),
            (Status::Delivered, ShipmentType::Return)
        );
        assert_eq!(
            (e.location, e.remark, e.carrier_status.raw),
            (None, None, None)
        );
        assert_eq!(e.carrier_status.description.as_deref(), Some("DELIVERED"));
    }

    /// Built from docs/carriers.md §6: a real RTO INITIATED body (`shipment_status_id` 9) has no
    /// scan with `sr-status` 9; its return scans carry "NA" and the newest scan is an unrelated
    /// "In Transit - Added to Bag". Shiprocket re-sends it with a new `current_timestamp`.
    fn rto_initiated(current_timestamp: &str, extra_scan: &str) -> String {
        format!(
            r#"{{"awb":"19041712345678","current_status":"RTO INITIATED","current_status_id":15,
            "shipment_status":"RTO INITIATED","shipment_status_id":9,"current_timestamp":"{current_timestamp}",
            "order_id":"SY-WA-2223-4022","sr_order_id":345678901,"is_return":0,"scans":[
            {{"date":"2022-11-02 10:11:00","status":"X-PPOM","activity":"Picked up","location":"Jaipur","sr-status":"42"}},
            {{"date":"2022-11-05 18:01:00","status":"X-DLL2F","activity":"Return Accepted","location":"Delhi","sr-status":"NA"}},
            {{"date":"2022-11-06 09:30:00","status":"X-IBD3F","activity":"In Transit - Added to Bag","location":"Delhi_Hub","sr-status":19}}{extra_scan}]}}"#
        )
    }

    #[test]
    fn a_status_no_scan_carries_takes_nothing_from_an_unrelated_scan() {
        let e = event(&rto_initiated("07 11 2022 11:02:45", ""));
        assert_eq!(e.status, Status::RtoInitiated);
        assert_eq!(
            e.carrier_status.description.as_deref(),
            Some("RTO INITIATED")
        );
        assert_eq!(
            (e.remark, e.location, e.carrier_status.raw),
            (None, None, None)
        );
        // `current_timestamp`, IST, day first.
        assert_eq!(e.event_time_raw, "07 11 2022 11:02:45");
        assert_eq!(e.event_time.to_rfc3339(), "2022-11-07T05:32:45+00:00");
    }

    #[test]
    fn the_same_status_re_sent_later_is_the_same_event_and_a_new_occurrence_is_not() {
        let first = event(&rto_initiated("07 11 2022 11:02:45", ""));
        let resent = event(&rto_initiated("07 11 2022 19:40:02", ""));
        assert_eq!(first.event_id, resent.event_id);
        // The return journey goes on with scans that set no status: still the same RTO.
        let journey = event(&rto_initiated(
            "12 11 2022 08:00:00",
            r#",{"date":"2022-11-11 21:00:00","activity":"Reached hub","sr-status":"NA"}"#,
        ));
        assert_eq!(first.event_id, journey.event_id);
        // A scan that set another status came in between: this RTO is a new occurrence.
        let again = event(&rto_initiated(
            "20 11 2022 08:00:00",
            r#",{"date":"2022-11-18 10:00:00","activity":"Out for delivery","sr-status":"17"}"#,
        ));
        assert_ne!(first.event_id, again.event_id);
    }

    #[test]
    fn the_v1_id_of_a_status_no_scan_carries_is_the_one_v1_gave_it() {
        let e = event(&rto_initiated("07 11 2022 11:02:45", ""));
        let v1 = EventId::derive_v1(&crate::model::V1EventIdParts {
            tenant_id: "acme",
            carrier: Carrier::Shiprocket,
            shipment_key: "19041712345678",
            status_code: "9",
            event_time_raw: "status-without-scan;2022-11-06 09:30:00",
            notification_event_id: None,
        });
        assert_eq!(&e.legacy_ids[..], &[v1]);
    }

    #[test]
    fn sr_status_may_be_a_number() {
        let e = event(
            r#"{"awb":"A","shipment_status_id":19,"scans":[{"date":"2022-11-06 09:30:00","activity":"Out for pickup","sr-status":19}]}"#,
        );
        assert_eq!(e.status, Status::OutForPickup);
        assert_eq!(e.remark.as_deref(), Some("Out for pickup"));
    }

    #[test]
    fn the_panel_probe_and_test_body_are_recognised_and_a_real_awb_123456_is_not() {
        assert_eq!(classify(b"{}"), BodyKind::Probe);
        assert_eq!(classify(b" { }\n"), BodyKind::Probe);
        let test =
            br#"{"awb":"123456","courier_name":"dummy courier_name","current_status":"Delivered",
            "current_status_id":7,"shipment_status":"Delivered","shipment_status_id":7,
            "current_timestamp":"27 11 2026 16:02:11","order_id":"dummpy shiprocket order id 123",
            "sr_order_id":1234,"channel_id":1234,"scans":[]}"#;
        assert_eq!(classify(test), BodyKind::PanelTest);
        let real = br#"{"awb":"123456","courier_name":"Delhivery","order_id":"SY-1","shipment_status_id":7}"#;
        assert_eq!(classify(real), BodyKind::Payload);
        assert_eq!(classify(br#"{"awb":"A"}"#), BodyKind::Payload);
        assert_eq!(classify(b"not json"), BodyKind::Payload);
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

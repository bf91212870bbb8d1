//! Every payload in `tests/fixtures/` normalises to the expected canonical event, field by field,
//! and every event validates against the checked-in JSON Schema.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use serde_json::Value;
use shared::carriers::BodyKind;
use shared::model::{Item, Ndr, Npr};
use shared::{
    normalize, CanonicalEvent, Carrier, NormalizeContext, NormalizeError, ShipmentType, Status,
};

use crate::support::{carrier_of, fixture, fixture_path, SAMPLES};

fn ctx() -> NormalizeContext {
    NormalizeContext::new(
        shared::TenantId::parse("acme").unwrap(),
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
    )
}

fn events(carrier: Carrier, name: &str) -> Vec<CanonicalEvent> {
    normalize(carrier, &fixture(name), &ctx()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The fields a client acts on, in one comparable shape, borrowed from the event.
#[derive(Debug, PartialEq)]
struct Expected<'a> {
    status: Status,
    shipment_type: ShipmentType,
    awb: Option<&'a str>,
    forward_awb: Option<&'a str>,
    forward_reference_number: Option<&'a str>,
    order_id: Option<&'a str>,
    reference_number: Option<&'a str>,
    /// As serialised on the wire.
    event_time: String,
    event_time_raw: &'a str,
    /// code, reason
    ndr: Option<(&'a str, Option<&'a str>)>,
    /// code, description, raw, notification_event_id
    carrier_status: (&'a str, Option<&'a str>, Option<&'a str>, Option<i64>),
    courier: Option<&'a str>,
    location: Option<&'a str>,
    edd: Option<String>,
}

fn actual(e: &CanonicalEvent) -> Expected<'_> {
    Expected {
        status: e.status,
        shipment_type: e.shipment_type,
        awb: e.awb.as_deref(),
        forward_awb: e.forward_awb.as_deref(),
        forward_reference_number: e.forward_reference_number.as_deref(),
        order_id: e.order_id.as_deref(),
        reference_number: e.reference_number.as_deref(),
        event_time: serde_json::to_value(e.event_time)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned(),
        event_time_raw: &e.event_time_raw,
        ndr: e
            .ndr
            .as_ref()
            .map(|Ndr { code, reason }| (code.as_str(), reason.as_deref())),
        carrier_status: (
            &e.carrier_status.code,
            e.carrier_status.description.as_deref(),
            e.carrier_status.raw.as_deref(),
            e.carrier_status.notification_event_id,
        ),
        courier: e.courier.as_deref(),
        location: e.location.as_deref(),
        edd: e.edd.map(|d| d.to_string()),
    }
}

#[test]
fn clickpost_selected_status_delivered_capture() {
    let [e] = &events(
        Carrier::Clickpost,
        "clickpost/delivered_selected_captured.json",
    )[..] else {
        panic!("expected one event")
    };
    assert_eq!(
        actual(e),
        Expected {
            status: Status::Delivered,
            shipment_type: ShipmentType::Forward,
            awb: Some("81125552141"),
            forward_awb: None,
            forward_reference_number: None,
            order_id: Some("00030761872"),
            reference_number: Some("4569960218853"),
            // The `Z` is a mislabel: 18:09 IST is 12:39 UTC (carriers.md §1.8).
            event_time: "2023-02-07T12:39:00Z".into(),
            event_time_raw: "2023-02-07T18:09:00Z",
            ndr: None,
            carrier_status: ("8", Some("Delivered"), Some("Delivered"), Some(5)),
            courier: Some("21"),
            location: Some("SRM COLLEGE (MMC)"),
            edd: None,
        }
    );
    let latest = e.latest_status.as_ref().unwrap();
    assert_eq!(
        (latest.status, latest.code.as_str()),
        (Status::Delivered, "8")
    );
}

#[test]
fn clickpost_failed_delivery_with_ndr() {
    let [e] = &events(
        Carrier::Clickpost,
        "clickpost/failed_delivery_ndr_selected.json",
    )[..] else {
        panic!("expected one event")
    };
    assert_eq!(
        actual(e),
        Expected {
            status: Status::DeliveryFailed,
            shipment_type: ShipmentType::Forward,
            awb: Some("2614010163240"),
            forward_awb: None,
            forward_reference_number: None,
            order_id: Some("ABC123"),
            reference_number: Some("WERA-NMS1908MSO2"),
            event_time: "2019-04-30T19:25:06Z".into(),
            event_time_raw: "2019-05-01T00:55:06Z",
            ndr: Some(("1", Some("Customer unavailable"))),
            carrier_status: ("9", Some("FailedDelivery"), Some("Pending"), Some(4)),
            courier: Some("4"),
            location: Some("Lucknow_Aliganj (Uttar Pradesh)"),
            edd: Some("2020-03-25".into()),
        }
    );
}

#[test]
fn clickpost_all_status_out_for_delivery() {
    let [e] = &events(
        Carrier::Clickpost,
        "clickpost/out_for_delivery_all_status.json",
    )[..] else {
        panic!("expected one event")
    };
    assert_eq!(
        actual(e),
        Expected {
            status: Status::OutForDelivery,
            shipment_type: ShipmentType::Forward,
            awb: Some("SF49245NER"),
            forward_awb: None,
            forward_reference_number: None,
            order_id: Some("ABC123"),
            reference_number: Some("WERA-9616974"),
            event_time: "2019-05-06T04:34:20Z".into(),
            event_time_raw: "2019-05-06T10:04:20Z",
            ndr: None,
            carrier_status: ("6", Some("OutForDelivery"), Some("OFD"), None),
            courier: Some("9"),
            location: Some("DEL_GeetaColony"),
            edd: Some("2020-03-25".into()),
        }
    );
    assert_eq!(
        e.latest_status.as_ref().unwrap().status,
        Status::OutForDelivery
    );
}

#[test]
fn clickpost_return_order_placed_has_no_awb_and_an_ist_time() {
    let [e] = &events(
        Carrier::Clickpost,
        "clickpost/seed_return_order_placed.json",
    )[..] else {
        panic!("expected one event")
    };
    assert_eq!(
        actual(e),
        Expected {
            status: Status::ReturnRequested,
            shipment_type: ShipmentType::Return,
            awb: None,
            forward_awb: Some("sample_forward_awb"),
            forward_reference_number: Some("sample_forward_reference"),
            order_id: None,
            reference_number: None,
            // IST wall-clock like every Clickpost time; the trailing `Z` is a label
            // (docs/carriers.md §1.8, §6: the UTC reading of return requests is superseded).
            event_time: "2017-08-02T07:53:02Z".into(),
            event_time_raw: "2017-08-02T13:23:02Z",
            ndr: None,
            carrier_status: ("101", Some("Return Order Placed"), Some("O"), Some(11)),
            courier: None, // cp_id -1: no courier yet
            location: Some("VASAI, MUMBAI"),
            edd: None,
        }
    );
    assert_eq!(e.shipment_key(), "sample_forward_awb");
}

#[test]
fn clickpost_test_webhook_sample_with_millisecond_time() {
    let [e] = &events(Carrier::Clickpost, "clickpost/seed_test_webhook_data.json")[..] else {
        panic!("expected one event")
    };
    assert_eq!(
        actual(e),
        Expected {
            status: Status::ReturnRequested,
            shipment_type: ShipmentType::Return,
            awb: None,
            forward_awb: Some("sample_forward_awb"),
            forward_reference_number: Some("sample_forward_reference"),
            order_id: None,
            reference_number: None,
            event_time: "2016-07-12T11:42:36.710Z".into(),
            event_time_raw: "2016-07-12T17:12:36.710",
            ndr: None,
            carrier_status: (
                "101",
                Some("Return Order Placed"),
                Some("Return Order Placed"),
                None
            ),
            courier: Some("1"),
            location: None,
            edd: None,
        }
    );
}

#[test]
fn clickpost_python_literals_give_a_parse_error_naming_line_and_column() {
    let body = fixture("clickpost/seed_verbatim_python_literals.txt");
    let err = normalize(Carrier::Clickpost, &body, &ctx()).unwrap_err();
    assert!(matches!(err, NormalizeError::Syntax(_)), "{err:?}");
    // Line 11 is `    "is_rvp":True,`: the `T` is at column 14.
    assert_eq!(
        err.to_string(),
        "the body is not valid JSON: expected value at line 11 column 14"
    );
}

#[test]
fn shiprocket_official_in_transit_sample() {
    let [e] = &events(Carrier::Shiprocket, "shiprocket/in_transit_official.json")[..] else {
        panic!("expected one event")
    };
    assert_eq!(
        actual(e),
        Expected {
            // shipment_status_id 18; current_status_id 20 is another code space and not used.
            status: Status::InTransit,
            shipment_type: ShipmentType::Forward,
            awb: Some("19041424751540"),
            forward_awb: None,
            forward_reference_number: None,
            order_id: Some("1373900_150876814"),
            reference_number: None,
            event_time: "2023-05-23T06:13:46Z".into(),
            event_time_raw: "2023-05-23 11:43:46",
            ndr: None,
            carrier_status: ("18", Some("IN TRANSIT"), Some("X-IBD3F"), None),
            courier: Some("Delhivery Surface"),
            location: Some("Mumbai_MiraRdIndEstate_I (Maharashtra)"),
            edd: Some("2023-05-23".into()),
        }
    );
}

#[test]
fn shipway_classic_status_feed_gives_one_event_per_element() {
    let events = events(Carrier::Shipway, "shipway/classic_status_feed.json");
    let got: Vec<Expected> = events.iter().map(actual).collect();
    assert_eq!(
        got,
        vec![
            Expected {
                status: Status::OutForDelivery,
                shipment_type: ShipmentType::Forward,
                awb: Some("1490112233445"),
                forward_awb: None,
                forward_reference_number: None,
                order_id: Some("CUR12345"),
                reference_number: None,
                event_time: "2024-03-11T03:42:40Z".into(),
                event_time_raw: "2024-03-11 09:12:40",
                ndr: None,
                carrier_status: (
                    "OOD",
                    Some("Out for Delivery"),
                    Some("Out for delivery"),
                    None
                ),
                courier: Some("Delhivery"),
                location: Some("Pune_Hub"),
                edd: None,
            },
            Expected {
                status: Status::Delivered,
                shipment_type: ShipmentType::Forward,
                awb: Some("1490112233446"),
                forward_awb: None,
                forward_reference_number: None,
                order_id: Some("CUR12346"),
                reference_number: None,
                event_time: "2024-03-11T08:10:02Z".into(),
                event_time_raw: "2024-03-11 13:40:02",
                ndr: None,
                carrier_status: (
                    "DEL",
                    Some("Delivered"),
                    Some("Delivered to consignee"),
                    None
                ),
                courier: Some("Delhivery"),
                location: Some("Nashik_DC"),
                edd: None,
            },
        ]
    );
    assert_ne!(events[0].event_id, events[1].event_id);
    // Each event's source is its own element of the batch, not the whole body.
    let body: Value = serde_json::from_slice(&fixture("shipway/classic_status_feed.json")).unwrap();
    assert_eq!(
        events[1].source.as_ref().unwrap().to_value(),
        body["status_feed"][1]
    );
}

#[test]
fn shipway_panel_delivered_sample() {
    let [e] = &events(Carrier::Shipway, "shipway/panel_delivered.json")[..] else {
        panic!("expected one event")
    };
    assert_eq!(
        actual(e),
        Expected {
            status: Status::Delivered,
            shipment_type: ShipmentType::Forward,
            awb: Some("12345678901234"),
            forward_awb: None,
            forward_reference_number: None,
            order_id: Some("99999999"),
            reference_number: Some("999999"),
            event_time: "2025-01-04T09:30:00Z".into(),
            event_time_raw: "2025-01-04 15:00:00",
            ndr: None,
            carrier_status: (
                "DEL",
                Some("Delivered"),
                Some("Delivered to consignee"),
                None
            ),
            courier: Some("DummyCarrier"),
            location: Some("Dummy_Location_A"),
            edd: Some("2025-01-05".into()),
        }
    );
}

#[test]
fn shipway_panel_return_with_a_numeric_reverse_awb_keeps_every_digit() {
    let mut body: Value = serde_json::from_slice(&fixture("shipway/panel_delivered.json")).unwrap();
    body["current_status"] = "RDEL".into();
    body["reverse_tracking_number"] = serde_json::json!(11633336773305_u64);
    let events = normalize(Carrier::Shipway, body.to_string().as_bytes(), &ctx()).unwrap();
    let e = &events[0];
    assert_eq!(
        (e.status, e.shipment_type),
        (Status::Delivered, ShipmentType::Return)
    );
    assert_eq!(e.awb.as_deref(), Some("11633336773305"));
    assert_eq!(e.forward_awb.as_deref(), Some("12345678901234"));
}

#[test]
fn every_fixture_carries_its_payload_as_source_and_the_context_fields() {
    for (carrier, name) in all_fixtures() {
        let body: Value = serde_json::from_slice(&fixture(name)).unwrap();
        for e in events(carrier, name) {
            assert_eq!(e.schema, "rms.tracking.v1");
            assert_eq!(e.tenant_id.as_str(), "acme");
            assert_eq!(e.carrier, carrier);
            assert!(!e.is_stale);
            assert_eq!(e.received_at, ctx().received_at);
            if body.get("status_feed").is_none() {
                let source = e.source.as_ref().unwrap();
                assert_eq!(source.to_value(), body, "{name}");
                assert!(
                    !source.as_str().contains('\n'),
                    "{name}: source is one line"
                );
            }
        }
    }
}

/// Every fixture that is a tracking update: each normalises to at least one event.
fn all_fixtures() -> Vec<(Carrier, &'static str)> {
    // The vendors' samples, then those built from the field facts (tests/fixtures/FIELD-FACTS.md).
    let field = [
        "clickpost/field_rvp_dsqc_picked_up.json",
        "clickpost/field_return_approved_ist.json",
        "clickpost/field_pickup_failed_npr.json",
        "clickpost/field_rto_in_transit_no_latest_status.json",
        "clickpost/field_rvp_delivered_event_11.json",
        "shiprocket/field_rto_initiated.json",
        "shiprocket/field_rto_initiated_resent.json",
        "shipway/field_classic_hash_delivered.json",
        "shipway/field_panel_scans_keyed.json",
    ];
    SAMPLES
        .into_iter()
        .chain(field)
        .map(|name| (carrier_of(name).parse().unwrap(), name))
        .collect()
}

/// Fixtures that are not tracking updates: carrier set-up probes and panel test bodies. The relay
/// recognises them before any credential is read and never normalises them, so they are kept out
/// of `all_fixtures` and asserted through the carrier's classification instead.
fn not_events() -> Vec<(Carrier, &'static str, BodyKind)> {
    vec![
        (
            Carrier::Shiprocket,
            "shiprocket/field_save_probe.json",
            BodyKind::Probe,
        ),
        (
            Carrier::Shiprocket,
            "shiprocket/field_panel_test.json",
            BodyKind::PanelTest,
        ),
        (
            Carrier::Shipway,
            "shipway/field_sample_probe.json",
            BodyKind::Probe,
        ),
        (
            Carrier::Shipway,
            "shipway/field_empty_status_feed.json",
            BodyKind::Probe,
        ),
        (
            Carrier::Shipway,
            "shipway/field_empty_status_feed_hash.json",
            BodyKind::Probe,
        ),
    ]
}

/// Fixtures that are payloads the relay must refuse (400, quarantined), with the start of the
/// error each gives.
fn refused() -> Vec<(Carrier, &'static str, &'static str)> {
    vec![
        (
            Carrier::Clickpost,
            "clickpost/field_time_year_2100.json",
            "field `timestamp` is not a plausible event time: \"2100-01-01T10:00:00Z\": it is more \
             than a day after the body arrived",
        ),
        (
            Carrier::Clickpost,
            "clickpost/field_time_before_2000.json",
            "field `timestamp` is not a plausible event time: \"1999-12-31T10:00:00Z\": it is before \
             2000-01-01",
        ),
        (
            Carrier::Shipway,
            "shipway/field_classic_hash_rejected.json",
            "field `status_feed[0].status_time` is invalid: \"03-09-2024 11:20\" is not a time in a \
             known format",
        ),
    ]
}

#[test]
fn the_fixture_list_covers_every_json_fixture_on_disk() {
    let mut listed: Vec<String> = all_fixtures().iter().map(|(_, n)| n.to_string()).collect();
    listed.extend(not_events().iter().map(|(_, n, _)| n.to_string()));
    listed.extend(refused().iter().map(|(_, n, _)| n.to_string()));
    for carrier in Carrier::ALL.map(Carrier::as_str) {
        for entry in std::fs::read_dir(fixture_path(carrier)).unwrap() {
            let name = format!("{carrier}/{}", entry.unwrap().file_name().to_string_lossy());
            // `pull_*.json` are pull-API answers, not webhooks: the pull clients' tests
            // (`shared::carriers::*::pull`, tests/tests/it/pull.rs) assert them.
            if name.ends_with(".json") && !name.starts_with(&format!("{carrier}/pull_")) {
                assert!(listed.contains(&name), "{name} is not asserted by any test");
            }
        }
    }
}

fn schema() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/rms.tracking.v1.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn every_fixture_event_validates_against_the_published_schema() {
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema())
        .unwrap();
    let mut checked = 0;
    for (carrier, name) in all_fixtures() {
        for include_source in [true, false] {
            let ctx = NormalizeContext {
                include_source,
                ..ctx()
            };
            for e in normalize(carrier, &fixture(name), &ctx).unwrap() {
                let json = serde_json::to_value(&e).unwrap();
                let errors: Vec<String> = validator
                    .iter_errors(&json)
                    .map(|err| format!("{} at {}", err, err.instance_path))
                    .collect();
                assert!(errors.is_empty(), "{name}: {errors:#?}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 36);
}

#[test]
fn the_schema_rejects_what_the_code_would_never_send() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let e = &events(
        Carrier::Clickpost,
        "clickpost/delivered_selected_captured.json",
    )[0];
    let good = serde_json::to_value(e).unwrap();
    assert!(validator.is_valid(&good));
    for (field, bad) in [
        ("status", Value::from("DELIVERD")),
        ("event_id", Value::from("not-an-id")),
        ("extra_field", Value::from(1)),
        ("shipment_type", Value::from("rto")),
    ] {
        let mut broken = good.clone();
        broken[field] = bad;
        assert!(!validator.is_valid(&broken), "{field} should be rejected");
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("awb");
    assert!(
        !validator.is_valid(&missing),
        "a missing field should be rejected"
    );
}

#[test]
fn the_schema_lists_exactly_the_canonical_statuses() {
    let listed: Vec<String> = schema()["$defs"]["status"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    let code: Vec<String> = Status::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    assert_eq!(listed, code);
}

// ---- Field facts (docs/carriers.md §6; tests/fixtures/FIELD-FACTS.md) ----

fn one_event(carrier: Carrier, name: &str) -> CanonicalEvent {
    let mut events = events(carrier, name);
    assert_eq!(events.len(), 1, "{name}: expected one event");
    events.remove(0)
}

#[test]
fn probes_and_panel_test_bodies_are_classified_before_any_credential() {
    for (carrier, name, kind) in not_events() {
        assert_eq!(carrier.spec().classify(&fixture(name)), kind, "{name}");
    }
    // Every tracking update and every refused payload is a payload: nothing real is mistaken for
    // a probe or a test.
    for (carrier, name) in all_fixtures() {
        assert_eq!(
            carrier.spec().classify(&fixture(name)),
            BodyKind::Payload,
            "{name}"
        );
    }
    for (carrier, name, _) in refused() {
        assert_eq!(
            carrier.spec().classify(&fixture(name)),
            BodyKind::Payload,
            "{name}"
        );
    }
}

/// How many whitespace bytes lie between JSON tokens (a trailing newline included).
fn whitespace_outside_strings(body: &[u8]) -> usize {
    let (mut in_string, mut escaped, mut count) = (false, false, 0);
    for &byte in body {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if byte.is_ascii_whitespace() {
            count += 1;
        }
    }
    count
}

#[test]
fn shiprocket_probe_and_test_bodies_are_compact_as_on_the_wire() {
    // §6: "Shiprocket bodies are compact JSON" [W]; Save posts exactly the two bytes `{}`.
    assert_eq!(fixture("shiprocket/field_save_probe.json"), b"{}");
    for name in [
        "shiprocket/field_panel_test.json",
        "shiprocket/field_rto_initiated.json",
        "shiprocket/field_rto_initiated_resent.json",
    ] {
        let body = fixture(name);
        serde_json::from_slice::<Value>(&body).unwrap();
        assert_eq!(whitespace_outside_strings(&body), 0, "{name} is compact");
    }
    // The panel test's fixed dummy fields (§2.1), `sr-status` 19 as a JSON number.
    let test: Value = serde_json::from_slice(&fixture("shiprocket/field_panel_test.json")).unwrap();
    assert_eq!(test["awb"], "123456");
    assert_eq!(test["order_id"], "dummpy shiprocket order id 123");
    assert_eq!(test["scans"][1]["sr-status"], 19);
}

#[test]
fn clickpost_reverse_pickup_without_is_rvp_is_a_return_by_its_dsqc() {
    let e = one_event(
        Carrier::Clickpost,
        "clickpost/field_rvp_dsqc_picked_up.json",
    );
    assert_eq!(
        actual(&e),
        Expected {
            // Not a forward PICKED_UP: `additional.dsqc.category` is "REV" and there is no is_rvp.
            status: Status::PickedUp,
            shipment_type: ShipmentType::Return,
            awb: Some("NX7720419935"),
            forward_awb: None,
            forward_reference_number: None,
            order_id: Some("RET-88231"),
            reference_number: Some("RET-88231-R1"),
            event_time: "2024-03-05T08:52:10Z".into(),
            event_time_raw: "2024-03-05T14:22:10Z",
            ndr: None,
            carrier_status: ("4", Some("PickedUp"), Some("PICKUP DONE"), Some(2)),
            courier: Some("92"),
            location: Some("Bengaluru_Koramangala"),
            edd: None,
        }
    );
    assert_eq!(e.remark.as_deref(), Some("Reverse Pickup"));
    // Both npr fields are null: no npr.
    assert_eq!(e.npr, None);
    // The dsqc (PII, presigned URL) may reach the tenant inside `source`.
    let source = e.source.as_ref().unwrap().to_value();
    assert_eq!(
        source["additional"]["dsqc"]["customer_name"],
        "Meera Iyengar"
    );
}

#[test]
fn clickpost_return_approved_is_read_in_ist_and_an_explicit_offset_wins() {
    let e = one_event(
        Carrier::Clickpost,
        "clickpost/field_return_approved_ist.json",
    );
    assert_eq!(
        actual(&e),
        Expected {
            status: Status::ReturnApproved,
            shipment_type: ShipmentType::Return,
            awb: None,
            forward_awb: Some("1490155566001"),
            forward_reference_number: Some("WEB-55012"),
            order_id: Some("WEB-55012"),
            reference_number: Some("RR-55012-1"),
            // 07:30:08 IST (§1.8: return orders 101/102 are IST too).
            event_time: "2024-08-19T02:00:08.396840Z".into(),
            event_time_raw: "2024-08-19 07:30:08.396840",
            ndr: None,
            carrier_status: (
                "102",
                Some("Return Request Approved"),
                Some("Return Request Approved"),
                Some(22)
            ),
            courier: None,
            location: None,
            edd: None,
        }
    );
    assert_eq!(
        e.items,
        vec![Item {
            sku: Some("TSHIRT-M-BLU".into()),
            quantity: Some(1),
            return_reason: Some("Size too small".into()),
            refund_mode: Some("Back to source".into()),
        }]
    );
    assert_eq!(e.npr, None);

    // An explicit numeric offset is information, not a label: it wins over IST.
    let body = String::from_utf8(fixture("clickpost/field_return_approved_ist.json"))
        .unwrap()
        .replace("2024-08-19 07:30:08.396840", "2024-08-19T07:30:08+01:00");
    let [e] = &normalize(Carrier::Clickpost, body.as_bytes(), &ctx()).unwrap()[..] else {
        panic!("expected one event")
    };
    assert_eq!(actual(e).event_time, "2024-08-19T06:30:08Z");
}

#[test]
fn clickpost_pickup_failure_carries_its_npr() {
    let e = one_event(Carrier::Clickpost, "clickpost/field_pickup_failed_npr.json");
    assert_eq!(
        actual(&e),
        Expected {
            status: Status::PickupFailed,
            shipment_type: ShipmentType::Return,
            awb: Some("DLV5580213904"),
            forward_awb: Some("DLV5580100021"),
            forward_reference_number: None,
            order_id: Some("RET-40077"),
            reference_number: Some("RET-40077-R1"),
            event_time: "2024-04-11T11:35:44Z".into(),
            event_time_raw: "2024-04-11T17:05:44Z",
            ndr: None,
            carrier_status: ("3", Some("PickupFailed"), Some("Pickup Failed"), Some(16)),
            courier: Some("4"),
            location: Some("Hyderabad_Kukatpally"),
            edd: None,
        }
    );
    assert_eq!(
        e.npr,
        Some(Npr {
            code: Some("2".into()),
            reason: Some("Customer not available".into()),
        })
    );
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(
        json["npr"],
        serde_json::json!({"code": "2", "reason": "Customer not available"})
    );
}

#[test]
fn clickpost_code_decides_over_text_and_a_missing_latest_status_is_no_error() {
    let e = one_event(
        Carrier::Clickpost,
        "clickpost/field_rto_in_transit_no_latest_status.json",
    );
    assert_eq!(
        actual(&e),
        Expected {
            // Raw "In Transit" on code 21: RTO_IN_TRANSIT, by the code.
            status: Status::RtoInTransit,
            shipment_type: ShipmentType::Forward,
            awb: Some("FMPP2279310455"),
            forward_awb: None,
            forward_reference_number: None,
            order_id: Some("WEB-61190"),
            reference_number: None,
            // Fractional seconds, IST despite the `Z`.
            event_time: "2024-05-02T09:31:00.002Z".into(),
            event_time_raw: "2024-05-02T15:01:00.002000Z",
            ndr: None,
            carrier_status: ("21", Some("RTO-InTransit"), Some("In Transit"), None),
            courier: Some("55"),
            location: Some("Kolkata_Dankuni_MH"),
            edd: Some("2024-04-29".into()),
        }
    );
    assert!(e.latest_status.is_none());
    assert_eq!(e.npr, None);
}

#[test]
fn clickpost_rvp_delivered_with_notification_event_11_is_a_return_delivered() {
    let e = one_event(
        Carrier::Clickpost,
        "clickpost/field_rvp_delivered_event_11.json",
    );
    assert_eq!(
        actual(&e),
        Expected {
            // The status follows code 8, not event id 11 (§1.6); raw "Dispatched" decides nothing.
            status: Status::Delivered,
            shipment_type: ShipmentType::Return,
            awb: Some("1490177712040"),
            forward_awb: Some("1490177700015"),
            forward_reference_number: Some("WEB-70315"),
            order_id: Some("WEB-70315"),
            reference_number: Some("WEB-70315-R"),
            event_time: "2024-07-08T07:10:00Z".into(),
            event_time_raw: "2024-07-08T12:40:00Z",
            ndr: None,
            carrier_status: ("8", Some("Delivered"), Some("Dispatched"), Some(11)),
            courier: Some("4"),
            location: Some("Gurgaon_Bilaspur_HB"),
            edd: None,
        }
    );
}

#[test]
fn shiprocket_rto_initiated_without_a_scan_borrows_nothing_and_keeps_its_identity() {
    let e = one_event(Carrier::Shiprocket, "shiprocket/field_rto_initiated.json");
    assert_eq!(
        actual(&e),
        Expected {
            status: Status::RtoInitiated,
            shipment_type: ShipmentType::Forward,
            awb: Some("77624019385512"),
            forward_awb: None,
            forward_reference_number: None,
            order_id: Some("SY-WA-2425-0917"),
            reference_number: None,
            // `current_timestamp`, IST, day first.
            event_time: "2024-06-18T14:11:07Z".into(),
            event_time_raw: "18 06 2024 19:41:07",
            ndr: None,
            // Nothing of the newest scan ("In Transit - Added to Bag", X-DBL1F, Pune_Chakan_H).
            carrier_status: ("9", Some("RTO INITIATED"), None, None),
            courier: Some("Delhivery Surface"),
            location: None,
            edd: Some("2024-06-14".into()),
        }
    );
    assert_eq!(e.remark, None);

    // Re-sent with a new `current_timestamp`: the same event.
    let resent = one_event(
        Carrier::Shiprocket,
        "shiprocket/field_rto_initiated_resent.json",
    );
    assert_eq!(resent.event_id, e.event_id);
    assert_eq!(actual(&resent).event_time, "2024-06-19T02:42:30Z");
    assert_eq!(
        (resent.status, resent.location, resent.remark),
        (Status::RtoInitiated, None, None)
    );
}

#[test]
fn shipway_classic_body_with_a_hash_gives_an_event_without_it() {
    let e = one_event(
        Carrier::Shipway,
        "shipway/field_classic_hash_delivered.json",
    );
    assert_eq!(
        actual(&e),
        Expected {
            status: Status::Delivered,
            shipment_type: ShipmentType::Forward,
            awb: Some("5512094470318"),
            forward_awb: None,
            forward_reference_number: None,
            order_id: Some("SWF-30417"),
            reference_number: None,
            event_time: "2024-09-03T11:12:05Z".into(),
            event_time_raw: "2024-09-03 16:42:05",
            ndr: None,
            carrier_status: ("DEL", Some("Delivered"), Some("Delivered"), None),
            courier: Some("Xpressbees"),
            location: Some("Indore_Vijaynagar"),
            edd: None,
        }
    );
    let hash = "d60cdf34ebacf6cbf4e6080061c1ba1f";
    assert!(
        String::from_utf8(fixture("shipway/field_classic_hash_delivered.json"))
            .unwrap()
            .contains(hash)
    );
    let event = serde_json::to_string(&e).unwrap();
    assert!(!event.contains(hash), "{event}");
    assert!(!event.contains("\"hash\""), "{event}");
}

#[test]
fn shipway_panel_scans_keyed_by_position_newest_first() {
    let e = one_event(Carrier::Shipway, "shipway/field_panel_scans_keyed.json");
    assert_eq!(
        actual(&e),
        Expected {
            status: Status::OutForDelivery,
            shipment_type: ShipmentType::Forward,
            awb: Some("36011840277195"),
            forward_awb: None,
            forward_reference_number: None,
            order_id: Some("WEB-77120"),
            reference_number: Some("WEB-77120"),
            event_time: "2024-10-21T08:33:17Z".into(),
            event_time_raw: "2024-10-21 14:03:17",
            ndr: None,
            carrier_status: (
                "OOD",
                Some("Out For Delivery"),
                Some("Out for delivery"),
                None
            ),
            courier: Some("Delhivery"),
            location: Some("Nagpur_Wardhaman_DC"),
            edd: None,
        }
    );
}

#[test]
fn refused_fixtures_name_the_field() {
    for (carrier, name, expected) in refused() {
        let err = normalize(carrier, &fixture(name), &ctx()).unwrap_err();
        assert!(
            err.to_string().starts_with(expected),
            "{name}: {err}\nexpected: {expected}"
        );
    }
    // Nesting past the limit, as the field cases send it (`nested:100000`).
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for carrier in Carrier::ALL {
        let err = normalize(carrier, deep.as_bytes(), &ctx()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the body nests JSON deeper than 64 levels; no carrier payload does"
        );
    }
}

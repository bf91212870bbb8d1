//! `rms normalize` prints exactly the events the library produces, and refuses bad input with a
//! non-zero exit and a one-line reason.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::io::Write;
use std::process::{Command, Output, Stdio};

use chrono::Utc;
use integration_tests::fixtures::{carrier_of, fixture, fixture_path, SAMPLES};
use serde_json::Value;
use shared::{normalize, Carrier, NormalizeContext};

fn rms(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rms"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// The events as JSON, minus `received_at`, which is the time of the run.
fn without_received_at(mut events: Vec<Value>) -> Vec<Value> {
    for e in &mut events {
        e.as_object_mut().unwrap().remove("received_at");
    }
    events
}

#[test]
fn each_fixture_prints_the_events_the_library_gives_one_per_line() {
    for name in SAMPLES {
        let carrier = carrier_of(name);
        let path = fixture_path(name);
        let out = rms(
            &[
                "normalize",
                carrier,
                path.to_str().unwrap(),
                "--tenant",
                "acme",
            ],
            b"",
        );
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();

        let body = fixture(name);
        let expected: Vec<Value> = normalize(
            carrier.parse::<Carrier>().unwrap(),
            &body,
            &NormalizeContext::new(shared::TenantId::parse("acme").unwrap(), Utc::now()),
        )
        .unwrap()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
        assert_eq!(
            without_received_at(printed),
            without_received_at(expected),
            "{name}"
        );
    }
}

#[test]
fn stdin_and_dash_read_the_payload_from_stdin() {
    let body = fixture("shipway/classic_status_feed.json");
    for args in [
        &["normalize", "shipway"][..],
        &["normalize", "shipway", "-"][..],
    ] {
        let out = rms(args, &body);
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
    }
}

#[test]
fn bad_input_exits_non_zero_with_a_one_line_reason() {
    let mut truncated = fixture("shiprocket/in_transit_official.json");
    truncated.truncate(200);
    let cases: [(&str, Vec<u8>, &str); 7] = [
        (
            "clickpost",
            b"garbage".to_vec(),
            "not valid JSON: expected value at line 1 column 1",
        ),
        ("shiprocket", truncated, "not valid JSON: EOF while parsing"),
        (
            "shipway",
            b"[{\"awbno\":\"A\"}]".to_vec(),
            "must be a JSON object, but it is an array",
        ),
        (
            "clickpost",
            br#"{"waybill":{"x":1},"timestamp":"2023-02-07T18:09:00Z"}"#.to_vec(),
            "field `waybill` is invalid: invalid type: map, expected a string or an integer",
        ),
        (
            "shiprocket",
            b"{\"awb\":\"\xc3\x28\"}".to_vec(),
            "not valid UTF-8: invalid byte at offset 8",
        ),
        ("clickpost", Vec::new(), "the body is empty"),
        (
            "clickpost",
            fixture("clickpost/seed_verbatim_python_literals.txt"),
            "expected value at line 11 column 14",
        ),
    ];
    for (carrier, body, reason) in cases {
        let out = rms(&["normalize", carrier], &body);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{reason}: {stderr}");
        assert!(out.stdout.is_empty(), "{reason}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("error: stdin: not a valid "), "{stderr}");
        assert!(stderr.contains(reason), "expected {reason:?} in {stderr}");
    }
}

#[test]
fn a_missing_file_and_an_unknown_carrier_are_named() {
    let out = rms(&["normalize", "shipway", "/nonexistent/payload.json"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("cannot read /nonexistent/payload.json"));

    let out = rms(&["normalize", "ups"], b"");
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr
        .contains("unknown carrier \"ups\"; valid values are: clickpost, shiprocket, shipway"));
}

#[test]
fn probes_and_panel_test_bodies_print_no_event_and_say_so() {
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "shiprocket",
            br#"{"awb":"123456","courier_name":"dummy courier_name","order_id":"dummpy shiprocket order id 123","shipment_status_id":7,"current_timestamp":"27 11 2026 16:02:11","scans":[]}"#,
            "a Shiprocket panel test body; not an event",
        ),
        ("shiprocket", b"{}", "a Shiprocket set-up probe; not an event"),
        (
            "shipway",
            br#"{"order_id":"99999999","current_status":"DEL"}"#,
            "a Shipway set-up probe; not an event",
        ),
    ];
    for (carrier, body, said) in cases {
        let out = rms(&["normalize", carrier, "-"], body);
        assert!(out.status.success(), "{said}");
        assert!(out.stdout.is_empty(), "{said}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end(), format!("stdin: {said}"));
        assert_eq!(stderr.lines().count(), 1);
    }
}

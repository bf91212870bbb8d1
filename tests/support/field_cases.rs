// The field-fact cases (tests/fixtures/field-cases.json) as both hosts' tests read them. Included
// (`include!`) by the Lambda handler's tests (functions/ingest-http/src/handler.rs) and by the
// `rms serve` tests (cli/tests/it/common.rs), so that the two hosts are held to the same answers
// by the same code. Plain comments: an included file cannot hold inner doc comments.

use serde_json::Value;

/// A case's body: `body_file` (read with `fixture`), inline `body` (with `{key}` for the carrier's
/// key), or `body_generator` (`nested:N`: arrays nested N levels deep).
pub fn body(fixture: impl Fn(&str) -> Vec<u8>, key: &str, case: &Value) -> Vec<u8> {
    if let Some(file) = case["body_file"].as_str() {
        return fixture(file);
    }
    if let Some(text) = case["body"].as_str() {
        return text.replace("{key}", key).into_bytes();
    }
    match case["body_generator"].as_str() {
        Some(generator) => {
            let levels: usize = generator
                .strip_prefix("nested:")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unknown body_generator {generator}"));
            format!("{}{}", "[".repeat(levels), "]".repeat(levels)).into_bytes()
        }
        None => Vec::new(),
    }
}

/// The case called `name`.
pub fn named<'a>(cases: &'a [Value], name: &str) -> &'a Value {
    cases
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no field case {name:?}"))
}

/// Checks an answer against the case: `response` (exact), `response_has` (members, with
/// `events` event ids), or `error_contains`.
pub fn check_answer(case: &Value, status: u16, body: &Value) {
    let name = case["name"].as_str().unwrap();
    assert_eq!(
        u64::from(status),
        case["status"].as_u64().unwrap(),
        "{name}: {body}"
    );
    let mut checks = 0;
    if let Some(exact) = case.get("response") {
        assert_eq!(body, exact, "{name}");
        checks += 1;
    }
    if let Some(has) = case.get("response_has") {
        for (member, value) in has.as_object().unwrap() {
            assert_eq!(&body[member], value, "{name}: `{member}` in {body}");
        }
        let events = case["events"].as_u64().unwrap() as usize;
        assert_eq!(
            body["event_ids"].as_array().map(Vec::len),
            Some(events),
            "{name}: {body}"
        );
        checks += 1;
    }
    if let Some(text) = case.get("error_contains") {
        let text = text.as_str().unwrap();
        assert_eq!(body.as_object().unwrap().len(), 1, "{name}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(text), "{name}: {error:?} lacks {text:?}");
        checks += 1;
    }
    assert_eq!(checks, 1, "{name}: one kind of expected answer");
}

/// The event both hosts must make of `shiprocket/field_rto_initiated.json`: RTO_INITIATED with
/// nothing taken from the unrelated newest scan, at `current_timestamp` read as IST.
pub fn assert_rto_initiated_without_a_scan(event: &Value) {
    assert_eq!(event["status"], "RTO_INITIATED");
    assert_eq!(event["shipment_type"], "forward");
    assert_eq!(
        event["carrier_status"],
        serde_json::json!({"code": "9", "description": "RTO INITIATED", "raw": null, "notification_event_id": null})
    );
    assert_eq!(
        (&event["remark"], &event["location"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(event["event_time"], "2024-06-18T14:11:07Z");
    assert_eq!(event["event_time_raw"], "18 06 2024 19:41:07");
}

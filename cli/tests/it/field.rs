//! The field facts (docs/carriers.md §6) on `rms serve`: the cases of
//! tests/fixtures/field-cases.json, answered exactly as the Lambda handler answers them
//! (functions/ingest-http/src/handler.rs runs the same file), and what each behaviour needs
//! beyond its answer: what is delivered to the tenant's receiver, what is stored in the database,
//! what is written to the log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use integration_tests::Receiver;
use serde_json::{json, Value};

use crate::common;

use common::{
    case_body, case_named, database_bytes, field_cases, field_config, field_doc, scratch_dir,
    sqlite_rows, wait_for, Server, SECRET,
};

/// A server for the field cases' tenant, pushing to `receiver`'s `/ok`.
async fn start(name: &str, receiver: &Receiver, doc: &Value) -> (Server, std::path::PathBuf) {
    let dir = scratch_dir(name);
    let server = Server::start(&dir, &field_config(&dir, &receiver.url("/ok"), doc)).await;
    (server, dir.join("rms.db"))
}

/// Sends the named cases in order, checking each answer.
async fn send_named(server: &Server, doc: &Value, names: &[&str]) -> Vec<Value> {
    let mut answers = Vec::new();
    for name in names {
        answers.push(server.send_case(doc, case_named(doc, name)).await.1);
    }
    answers
}

/// The requests the receiver got, after giving the dispatcher time for any it should not send.
async fn deliveries(receiver: &Receiver, expected: usize) -> Vec<Value> {
    wait_for(receiver, expected, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let requests = receiver.requests().await;
    assert_eq!(requests.len(), expected, "{requests:#?}");
    requests
}

fn event_of(request: &Value) -> Value {
    assert_eq!(request["signature"], "valid");
    serde_json::from_str(request["body"].as_str().unwrap()).unwrap()
}

fn count(db: &Path, table: &str) -> i64 {
    sqlite_rows(db, &format!("SELECT count(*) AS n FROM {table}"))[0]["n"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn the_field_cases_answer_as_listed() {
    integration_tests::needs!(venv);
    let doc = field_doc();
    let receiver = Receiver::start(Some(SECRET));
    let (mut server, db) = start("field-cases", &receiver, &doc).await;
    let mut accepted = HashSet::new();
    let mut refused_bodies = HashSet::new();
    for case in field_cases(&doc) {
        let (status, body) = server.send_case(&doc, case).await;
        if body["status"] == "accepted" {
            for id in body["event_ids"].as_array().unwrap() {
                accepted.insert(id.as_str().unwrap().to_owned());
            }
        }
        if status == 400 {
            refused_bodies.insert(case_body(&doc, case));
        }
    }
    // Each accepted event delivered once; no probe, test body or duplicate delivered.
    let delivered: HashSet<String> = deliveries(&receiver, accepted.len())
        .await
        .iter()
        .map(|r| r["headers"]["webhook-id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered, accepted);
    // The JSON nested 100,000 levels deep crashed nothing.
    assert_eq!(server.get("/admin/health").await["status"], "ok");
    assert_eq!(server.terminate().code(), Some(0));
    // Every authenticated refusal quarantined, once per body; a 401 never.
    assert_eq!(count(&db, "quarantined"), refused_bodies.len() as i64);
}

#[tokio::test]
async fn set_up_probes_store_queue_and_deliver_nothing() {
    integration_tests::needs!(venv);
    let doc = field_doc();
    let receiver = Receiver::start(None);
    let (mut server, db) = start("field-probes", &receiver, &doc).await;
    let probes: Vec<&Value> = field_cases(&doc)
        .iter()
        .filter(|c| c["response"] == json!({"status": "ok"}))
        .collect();
    assert!(probes.len() >= 10, "{} probes", probes.len());
    for case in probes {
        server.send_case(&doc, case).await;
    }
    let health = server.get("/admin/health").await;
    assert_eq!(
        (&health["queued"], &health["dead_letters"]),
        (&json!(0), &json!(0))
    );
    deliveries(&receiver, 0).await;
    assert_eq!(server.terminate().code(), Some(0));
    for table in [
        "claims",
        "queue",
        "quarantined",
        "carrier_activity",
        "deliveries",
    ] {
        assert_eq!(count(&db, table), 0, "{table}");
    }
}

/// Shiprocket's panel test body as the panel sends it now: `current_timestamp` (IST,
/// `dd MM yyyy HH:mm:ss`) and `etd` set to the moment of sending.
fn panel_test_sent_now() -> Vec<u8> {
    let now = chrono::Utc::now().with_timezone(&shared::time::ist());
    String::from_utf8(common::fixture("shiprocket/field_panel_test.json"))
        .unwrap()
        .replace(
            "27 11 2026 16:02:11",
            &now.format("%d %m %Y %H:%M:%S").to_string(),
        )
        .replace(
            "2026-11-27 16:02:11",
            &now.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
        .into_bytes()
}

#[tokio::test]
async fn the_panel_test_is_never_delivered_and_with_a_key_records_a_test() {
    integration_tests::needs!(venv);
    let doc = field_doc();
    let receiver = Receiver::start(None);
    let (mut server, db) = start("field-panel-test", &receiver, &doc).await;
    send_named(
        &server,
        &doc,
        &[
            "shiprocket: panel Test Webhook without a token",
            "shiprocket: panel Test Webhook with a token no tenant has",
        ],
    )
    .await;
    let (status, view) = server
        .call("GET", "/admin/tenants/acme/carriers", None)
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view[1]["carrier"], "shiprocket");
    assert_eq!(
        view[1]["last_test_at"],
        Value::Null,
        "no key, nothing recorded"
    );

    send_named(
        &server,
        &doc,
        &["shiprocket: panel Test Webhook with the tenant's token"],
    )
    .await;
    // Each click re-sends it with a fresh `current_timestamp`: still a test.
    let shiprocket_key = doc["keys"]["shiprocket"].as_str().unwrap();
    let (status, answer) = server
        .post(
            "/rms/in/api/st/notify",
            &[("x-shiprocket-token", shiprocket_key)],
            panel_test_sent_now(),
        )
        .await;
    assert_eq!((status, answer), (200, json!({"status": "test"})));

    let (_, view) = server
        .call("GET", "/admin/tenants/acme/carriers", None)
        .await;
    assert!(view[1]["last_test_at"].is_string(), "{view}");
    assert_eq!(view[1]["last_accepted_at"], Value::Null, "{view}");
    deliveries(&receiver, 0).await;
    assert_eq!(server.terminate().code(), Some(0));
    for table in ["claims", "queue", "quarantined"] {
        assert_eq!(count(&db, table), 0, "{table}");
    }
    let activity = sqlite_rows(&db, "SELECT * FROM carrier_activity");
    assert_eq!(activity.len(), 1, "{activity:?}");
    assert_eq!(activity[0]["carrier"], "shiprocket");
    assert!(activity[0]["last_test_at"].is_string());
    assert_eq!(activity[0]["last_accepted_at"], Value::Null);
}

#[tokio::test]
async fn a_dsqc_reverse_pickup_is_a_return_and_its_pii_is_never_logged() {
    integration_tests::needs!(venv);
    let doc = field_doc();
    let receiver = Receiver::start(Some(SECRET));
    let dir = scratch_dir("field-reverse-pickup");
    // As verbose as the server logs.
    let mut server = Server::start_with_log_level(
        &dir,
        &field_config(&dir, &receiver.url("/ok"), &doc),
        "trace",
    )
    .await;
    send_named(
        &server,
        &doc,
        &["clickpost: doorstep-QC reverse pickup without is_rvp"],
    )
    .await;
    let requests = deliveries(&receiver, 1).await;
    let event = event_of(&requests[0]);
    assert_eq!(event["shipment_type"], "return");
    assert_eq!(event["status"], "PICKED_UP");
    assert_eq!(event["remark"], "Reverse Pickup");
    assert_eq!(event["npr"], Value::Null);
    // The tenant gets the dsqc in `source`.
    assert_eq!(event["source"]["additional"]["dsqc"]["category"], "REV");
    assert_eq!(server.terminate().code(), Some(0));

    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("event accepted"), "the log was written");
    for pii in [
        "Meera Iyengar",
        "9845012377",
        "HSR Layout",
        "X-Amz-Signature",
        "dsqc",
    ] {
        assert!(!log.contains(pii), "{pii} appears in the server's log");
    }
}

#[tokio::test]
async fn a_shiprocket_status_no_scan_carries_is_delivered_once_with_nothing_borrowed() {
    integration_tests::needs!(venv);
    let doc = field_doc();
    let receiver = Receiver::start(Some(SECRET));
    let (server, _) = start("field-rto", &receiver, &doc).await;
    let answers = send_named(
        &server,
        &doc,
        &[
            "shiprocket: RTO INITIATED that no scan carries",
            "shiprocket: the same RTO INITIATED re-sent with a new current_timestamp",
        ],
    )
    .await;
    assert_eq!(answers[1]["event_ids"], answers[0]["event_ids"]);
    let requests = deliveries(&receiver, 1).await;
    let event = event_of(&requests[0]);
    assert_eq!(event["event_id"], answers[0]["event_ids"][0]);
    common::field_cases::assert_rto_initiated_without_a_scan(&event);
}

#[tokio::test]
async fn clickpost_return_requests_are_read_in_ist_and_npr_is_carried() {
    integration_tests::needs!(venv);
    let doc = field_doc();
    let receiver = Receiver::start(Some(SECRET));
    let (server, _) = start("field-ist", &receiver, &doc).await;
    send_named(
        &server,
        &doc,
        &[
            "clickpost: Return Request Approved (102), time in IST",
            "clickpost: pickup failed with npr code and reason",
        ],
    )
    .await;
    // An explicit offset wins over IST.
    let offset = String::from_utf8(common::fixture("clickpost/field_return_approved_ist.json"))
        .unwrap()
        .replace("2024-08-19 07:30:08.396840", "2024-08-19T07:30:08+01:00");
    let clickpost_key = doc["keys"]["clickpost"].as_str().unwrap();
    let (status, _) = server
        .post(
            "/rms/in/api/clickpost/notify",
            &[("webhook_key", clickpost_key)],
            offset.into_bytes(),
        )
        .await;
    assert_eq!(status, 200);
    let events: Vec<Value> = deliveries(&receiver, 3)
        .await
        .iter()
        .map(event_of)
        .collect();
    let find = |time: &str| {
        events
            .iter()
            .find(|e| e["event_time"] == time)
            .unwrap_or_else(|| panic!("no event at {time}: {events:#?}"))
    };
    let approved = find("2024-08-19T02:00:08.396840Z");
    assert_eq!(approved["status"], "RETURN_APPROVED");
    assert_eq!(approved["npr"], Value::Null);
    let npr = find("2024-04-11T11:35:44Z");
    assert_eq!(npr["status"], "PICKUP_FAILED");
    assert_eq!(
        npr["npr"],
        json!({"code": "2", "reason": "Customer not available"})
    );
    assert_eq!(find("2024-08-19T06:30:08Z")["status"], "RETURN_APPROVED");
}

#[tokio::test]
async fn implausible_input_is_refused_naming_the_field_and_quarantined() {
    integration_tests::needs!(venv);
    let doc = field_doc();
    let receiver = Receiver::start(None);
    let (mut server, db) = start("field-implausible", &receiver, &doc).await;
    send_named(
        &server,
        &doc,
        &[
            "clickpost: an event time in 2100",
            "clickpost: an event time before 2000",
            "clickpost: an event time in 2100 without a key",
            "clickpost: JSON nested 100,000 levels",
            "shiprocket: JSON nested 100,000 levels",
            "shipway: JSON nested 100,000 levels",
            "shipway: JSON nested 100,000 levels without a key",
        ],
    )
    .await;
    // Still up and answering.
    assert_eq!(server.get("/admin/health").await["status"], "ok");
    deliveries(&receiver, 0).await;
    assert_eq!(server.terminate().code(), Some(0));
    let rows = sqlite_rows(
        &db,
        "SELECT tenant_id, reason, times FROM quarantined ORDER BY reason",
    );
    assert_eq!(
        rows,
        vec![
            json!({"tenant_id": "acme", "times": 1, "reason":
                "field `timestamp` is not a plausible event time: \"1999-12-31T10:00:00Z\": it is before 2000-01-01"}),
            json!({"tenant_id": "acme", "times": 1, "reason":
                "field `timestamp` is not a plausible event time: \"2100-01-01T10:00:00Z\": it is more than a day after the body arrived"}),
            // One body (the same bytes) from three carriers' paths: kept once, counted thrice;
            // the unauthenticated fourth is not counted.
            json!({"tenant_id": "acme", "times": 3, "reason":
                "the body nests JSON deeper than 64 levels; no carrier payload does"}),
        ]
    );
}

#[tokio::test]
async fn a_shipway_hash_reaches_neither_the_receiver_nor_the_database() {
    integration_tests::needs!(venv);
    let doc = field_doc();
    let hash = doc["keys"]["shipway"].as_str().unwrap().to_owned();
    let receiver = Receiver::start(Some(SECRET));
    let (mut server, db) = start("field-hash", &receiver, &doc).await;
    send_named(
        &server,
        &doc,
        &[
            "shipway: classic body authenticated by its hash",
            "shipway: classic body with a hash and a bad status_time",
        ],
    )
    .await;
    let requests = deliveries(&receiver, 1).await;
    let body = requests[0]["body"].as_str().unwrap();
    assert!(!body.contains(&hash), "{body}");
    let event = event_of(&requests[0]);
    assert_eq!(event["awb"], "5512094470318");
    assert_eq!(event["source"].get("hash"), None);
    assert_eq!(server.terminate().code(), Some(0));

    let rows = sqlite_rows(&db, "SELECT body, reason FROM quarantined");
    let [row] = &rows[..] else {
        panic!("one body quarantined: {rows:?}")
    };
    let kept = row["body"].as_str().unwrap();
    assert!(
        !kept.contains(&hash) && !kept.contains("\"hash\""),
        "{kept}"
    );
    // The rest of the body is kept as sent.
    let original = common::fixture("shipway/field_classic_hash_rejected.json");
    assert!(String::from_utf8_lossy(&original).contains(&hash));
    let mut expected: Value = serde_json::from_slice(&original).unwrap();
    expected.as_object_mut().unwrap().remove("hash");
    assert_eq!(serde_json::from_str::<Value>(kept).unwrap(), expected);
    assert!(row["reason"]
        .as_str()
        .unwrap()
        .starts_with("field `status_feed[0].status_time` is invalid"));
    // Nowhere in the database, in any table or page.
    let bytes = database_bytes(&db);
    assert!(
        memchr_find(&bytes, hash.as_bytes()).is_none(),
        "the hash is in the database files"
    );
    assert!(
        memchr_find(&bytes, b"SWF-30418").is_some(),
        "the database was read"
    );
}

fn memchr_find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

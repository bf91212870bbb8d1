//! The quarantine and the carrier-status view on `rms serve`, over HTTP (the admin router the
//! `admin-api` Lambda runs): a rejected body is listed and shown, a body replayed after the
//! normaliser was fixed is delivered once and a second replay is a duplicate, and the carrier
//! view shows what each carrier last did.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use crate::common;

use std::time::Duration;

use common::{config, scratch_dir, wait_for, Server, CLICKPOST_KEY};
use integration_tests::Receiver;
use serde_json::{json, Value};
use shared::adapters::sqlite::SqliteStore;
use shared::ports::{Intake, Quarantined};
use shared::{Carrier, TenantId};

const REJECTED: &str = r#"{"waybill":"QUAR-BAD-1","clickpost_status_code":8}"#;
/// A body that the normaliser of the day accepts, kept as if an earlier one had refused it.
const FIXED: &str =
    r#"{"waybill":"QUAR-FIXED-1","clickpost_status_code":8,"timestamp":"2026-11-22T09:00:00Z"}"#;

async fn notify(server: &Server, body: &str) -> (u16, Value) {
    server
        .post(
            "/rms/in/api/clickpost/notify",
            &[("webhook_key", CLICKPOST_KEY)],
            body.as_bytes().to_vec(),
        )
        .await
}

fn assert_field(answer: &(u16, Value), field: &str) {
    assert_eq!(answer.0, 400, "{answer:?}");
    assert_eq!(answer.1["field"], field, "{answer:?}");
}

#[tokio::test]
async fn a_rejected_body_is_listed_shown_and_replayed_once_its_normaliser_accepts_it() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("quarantine-http");
    let receiver = Receiver::start(Some(common::SECRET));
    let server = Server::start(&dir, &config(&dir, &receiver.url("/ok"), "\"1s\"", 10)).await;

    // Rejected twice: kept once, counted twice.
    for _ in 0..2 {
        let (status, answer) = notify(&server, REJECTED).await;
        assert_eq!(status, 400, "{answer}");
    }
    let (status, list) = server.call("GET", "/admin/quarantine", None).await;
    assert_eq!(status, 200, "{list}");
    let entries = list.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{list}");
    let entry = &entries[0];
    assert_eq!(
        (&entry["tenant_id"], &entry["carrier"], &entry["times"]),
        (&json!("acme"), &json!("clickpost"), &json!(2))
    );
    assert!(
        entry["reason"].as_str().unwrap().contains("timestamp"),
        "{entry}"
    );
    assert_eq!(entry["last_replay"], Value::Null);
    let rejected_id = entry["id"].as_str().unwrap().to_owned();
    let (status, detail) = server
        .call(
            "GET",
            &format!("/admin/tenants/acme/quarantine/{rejected_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["body"], REJECTED);
    assert_eq!(detail["times"], 2);

    // Filters, and their errors.
    for (query, count) in [
        ("?tenant=acme&carrier=CLICKPOST", 1),
        ("?carrier=shipway", 0),
        ("?reason=TIMESTAMP", 1),
        ("?reason=no-such-reason", 0),
        ("?from=2099-01-01T00:00:00Z", 0),
        ("?limit=1", 1),
    ] {
        let (status, list) = server
            .call("GET", &format!("/admin/quarantine{query}"), None)
            .await;
        assert_eq!(
            (status, list.as_array().unwrap().len()),
            (200, count),
            "{query}: {list}"
        );
    }
    assert_field(
        &server
            .call("GET", "/admin/quarantine?carrier=dhl", None)
            .await,
        "carrier",
    );
    assert_field(
        &server.call("GET", "/admin/quarantine?limit=0", None).await,
        "limit",
    );
    assert_field(
        &server
            .call(
                "GET",
                "/admin/quarantine?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
                None,
            )
            .await,
        "from",
    );
    assert_eq!(
        server
            .call("GET", "/admin/quarantine?tenant=nobody", None)
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .call("GET", "/admin/quarantine?colour=red", None)
            .await
            .0,
        400
    );
    for path in [
        "/admin/tenants/acme/quarantine/not-an-id".to_owned(),
        format!("/admin/tenants/acme/quarantine/{}", "0".repeat(64)),
        format!("/admin/tenants/nobody/quarantine/{rejected_id}"),
    ] {
        assert_eq!(server.call("GET", &path, None).await.0, 404, "{path}");
    }

    // Still invalid: reported with its reason, kept, and noted.
    let (status, report) = server
        .call(
            "POST",
            "/admin/quarantine/replay",
            Some(json!({"tenant": "acme", "ids": [rejected_id]})),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["invalid"], 1, "{report}");
    assert!(report["results"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("timestamp"));

    // A body the normaliser now accepts (kept as ingest keeps one) is delivered once.
    let store = SqliteStore::open(&dir.join("rms.db")).unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let fixed_id = shared::auth::Credential::new(FIXED).digest().to_hex();
    store
        .quarantine(&Quarantined {
            tenant_id: &acme,
            carrier: Carrier::Clickpost,
            body_digest: fixed_id.clone(),
            body: FIXED.as_bytes(),
            reason: "clickpost_status_code: unknown",
            received_at: chrono::Utc::now() - chrono::Duration::hours(2),
        })
        .await
        .unwrap();
    let replay = json!({"tenant": "acme", "ids": [fixed_id]});
    let (status, report) = server
        .call("POST", "/admin/quarantine/replay", Some(replay.clone()))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (&report["accepted"], &report["invalid"]),
        (&json!(1), &json!(0)),
        "{report}"
    );
    let event_id = report["results"][0]["event_ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let delivered = wait_for(&receiver, 1, Duration::from_secs(10)).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["headers"]["webhook-id"], event_id.as_str());
    let (_, again) = server
        .call("POST", "/admin/quarantine/replay", Some(replay))
        .await;
    assert_eq!(
        (&again["duplicate"], &again["accepted"]),
        (&json!(1), &json!(0)),
        "{again}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.requests().await.len(),
        1,
        "a duplicate is not delivered again"
    );
    let (_, detail) = server
        .call(
            "GET",
            &format!("/admin/tenants/acme/quarantine/{fixed_id}"),
            None,
        )
        .await;
    assert_eq!(
        detail["last_replay"]["outcome"], "duplicate",
        "kept: {detail}"
    );

    // A filter replays every match: here both bodies, one still invalid.
    let (_, all) = server
        .call(
            "POST",
            "/admin/quarantine/replay",
            Some(json!({"carrier": "clickpost"})),
        )
        .await;
    assert_eq!(
        (&all["duplicate"], &all["invalid"]),
        (&json!(1), &json!(1)),
        "{all}"
    );

    // Malformed replays.
    for (body, field) in [
        (json!({"ids": [fixed_id]}), "tenant"),
        (json!({"tenant": "acme", "ids": []}), "ids"),
        (
            json!({"tenant": "acme", "ids": [fixed_id], "carrier": "clickpost"}),
            "ids",
        ),
        (json!({"carrier": "dhl"}), "carrier"),
    ] {
        assert_field(
            &server
                .call("POST", "/admin/quarantine/replay", Some(body.clone()))
                .await,
            field,
        );
    }
    let (status, _) = server
        .call(
            "POST",
            "/admin/quarantine/replay",
            Some(json!({"tenant": "acme", "ids": [fixed_id, "0".repeat(64)]})),
        )
        .await;
    assert_eq!(status, 404, "an unknown id replays nothing");
    assert_eq!(
        server
            .call(
                "POST",
                "/admin/quarantine/replay",
                Some(json!({"limit": 3}))
            )
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn the_carrier_view_shows_the_last_accepted_and_rejected_request_of_each_carrier() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("carriers-http");
    let receiver = Receiver::start(Some(common::SECRET));
    let server = Server::start(&dir, &config(&dir, &receiver.url("/ok"), "\"1s\"", 10)).await;

    let (_, before) = server
        .call("GET", "/admin/tenants/acme/carriers", None)
        .await;
    assert_eq!(
        before,
        json!(shared::Carrier::ALL
            .map(shared::Carrier::as_str)
            .iter()
            .map(|c| json!({
                "carrier": c,
                "last_test_at": null,
                "last_accepted_at": null,
                "last_rejected_at": null,
                "last_rejected_reason": null,
                "hourly": []
            }))
            .collect::<Vec<_>>())
    );
    assert_eq!(notify(&server, FIXED).await.0, 200);
    assert_eq!(notify(&server, REJECTED).await.0, 400);
    let (status, view) = server
        .call("GET", "/admin/tenants/acme/carriers", None)
        .await;
    assert_eq!(status, 200, "{view}");
    let clickpost = &view[0];
    assert_eq!(clickpost["carrier"], "clickpost");
    assert!(clickpost["last_accepted_at"].is_string(), "{view}");
    assert!(clickpost["last_rejected_at"].is_string(), "{view}");
    // Counted per hour: one accepted request, one rejected.
    let total = |kind: &str| -> u64 {
        clickpost["hourly"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h[kind].as_u64().unwrap())
            .sum()
    };
    assert_eq!((total("accepted"), total("rejected")), (1, 1), "{view}");
    assert!(
        clickpost["last_rejected_reason"]
            .as_str()
            .unwrap()
            .contains("timestamp"),
        "{view}"
    );
    assert_eq!(view[1]["last_accepted_at"], Value::Null);
    assert_eq!(
        server
            .call("GET", "/admin/tenants/nobody/carriers", None)
            .await
            .0,
        404
    );
}

/// The quarantine's purpose, end to end: a body refused under today's rule is kept; once the rule
/// changes (here the setting `ingest.max_future`: a carrier whose clock runs two days ahead), a
/// replay delivers it exactly once, and replaying it again is a duplicate that delivers nothing.
#[tokio::test]
async fn a_body_refused_under_one_rule_is_delivered_once_after_the_rule_changes() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("quarantine-rule-change");
    let receiver = Receiver::start(Some(common::SECRET));
    let base = config(&dir, &receiver.url("/ok"), "\"1s\"", 10);
    // Clickpost's wall-clock time (IST) two days ahead of now.
    let ahead = (chrono::Utc::now() + chrono::Duration::days(2))
        .with_timezone(&shared::time::ist())
        .format("%Y-%m-%dT%H:%M:%SZ");
    let body = format!(
        r#"{{"waybill":"QUAR-AHEAD-1","clickpost_status_code":6,"status":"Out for delivery","timestamp":"{ahead}"}}"#
    );

    let mut server = Server::start(&dir, &base).await;
    let (status, answer) = notify(&server, &body).await;
    assert_eq!(status, 400, "{answer}");
    let reason = answer["error"].as_str().unwrap();
    assert!(
        reason.starts_with("field `timestamp` is not a plausible event time")
            && reason.contains("more than a day after"),
        "{reason}"
    );
    assert!(server.terminate().success());

    // The rule changes; the same database.
    let server = Server::start(&dir, &format!("{base}\n[ingest]\nmax_future = \"3d\"\n")).await;
    let (_, list) = server.call("GET", "/admin/quarantine", None).await;
    let entries = list.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{list}");
    let id = entries[0]["id"].as_str().unwrap().to_owned();
    let replay = json!({"tenant": "acme", "ids": [id]});

    let (status, report) = server
        .call("POST", "/admin/quarantine/replay", Some(replay.clone()))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (&report["accepted"], &report["invalid"]),
        (&json!(1), &json!(0)),
        "{report}"
    );
    let event_id = report["results"][0]["event_ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let delivered = wait_for(&receiver, 1, Duration::from_secs(10)).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["headers"]["webhook-id"], event_id.as_str());
    let event: Value = serde_json::from_str(delivered[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(event["status"], "OUT_FOR_DELIVERY");
    assert_eq!(event["awb"], "QUAR-AHEAD-1");

    let (_, again) = server
        .call("POST", "/admin/quarantine/replay", Some(replay))
        .await;
    assert_eq!(
        (&again["duplicate"], &again["accepted"]),
        (&json!(1), &json!(0)),
        "{again}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.requests().await.len(), 1, "delivered exactly once");
}

//! Latest-state delivery on `rms serve` (issue 14): 20 scans of one AWB queue up while two
//! tenants' endpoints are away (their Push Configs disabled); when they come back, the tenant
//! with `delivery = every` gets all 20 and the one with `delivery = latest` gets the newest only,
//! its delivery log showing the other 19 superseded by it.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{scratch_dir, Server};
use integration_tests::Receiver;
use serde_json::{json, Value};

const AWB: &str = "LATEST-81125552141";
const SCANS: u32 = 20;

/// No tenant of its own but `filed`, whose `delivery = "latest"` comes from the file; the two
/// tenants of the test are made through the admin API, so that their Push Configs can change
/// while the server runs (the file's tenants are the file's).
fn config(dir: &Path, receiver: &Receiver) -> String {
    format!(
        r#"
database = "{db}"
allow_private_targets = true
[dispatch]
timeout = "2s"
retry_schedule = ["1s"]
max_attempts = 100
[[tenants]]
id = "filed"
keys = {{ clickpost = "latest-test-filed-key" }}
[tenants.push]
url = "{url}"
delivery = "latest"
"#,
        db = dir.join("rms.db").display(),
        url = receiver.url("/ok/filed"),
    )
}

/// A tenant with a Clickpost key and a disabled Push Config to `/ok/<id>` with `delivery`.
async fn tenant(server: &Server, receiver: &Receiver, id: &str, delivery: &str) {
    let created = server
        .call("POST", "/admin/tenants", Some(json!({"id": id})))
        .await;
    assert_eq!(created.0, 201, "{created:?}");
    let key = server
        .call(
            "POST",
            &format!("/admin/tenants/{id}/keys/clickpost"),
            Some(json!({"key": format!("latest-test-{id}-key")})),
        )
        .await;
    assert_eq!(key.0, 201, "{key:?}");
    let push = server
        .call(
            "PUT",
            &format!("/admin/tenants/{id}/push"),
            Some(json!({
                "url": receiver.url(&format!("/ok/{id}")),
                "enabled": false,
                "delivery": delivery,
            })),
        )
        .await;
    assert_eq!(push.0, 200, "{push:?}");
    assert_eq!(push.1["delivery"], delivery, "{push:?}");
}

/// The n-th scan of the AWB, `n` minutes after the first: in transit, then out for delivery,
/// the last one delivered.
fn scan(n: u32) -> Vec<u8> {
    let code = match n {
        _ if n + 1 == SCANS => 8,
        _ if n + 2 == SCANS => 6,
        _ => 5,
    };
    format!(
        r#"{{"waybill":"{AWB}","cp_id":21,"clickpost_status_code":{code},"timestamp":"2026-11-22T09:{n:02}:00Z"}}"#
    )
    .into_bytes()
}

async fn enable(server: &Server, receiver: &Receiver, id: &str) {
    // `delivery` absent: kept as it was.
    let push = server
        .call(
            "PUT",
            &format!("/admin/tenants/{id}/push"),
            Some(json!({"url": receiver.url(&format!("/ok/{id}")), "enabled": true})),
        )
        .await;
    assert_eq!(push.0, 200, "{push:?}");
}

/// The bodies pushed to `/ok/<id>`.
async fn pushed(receiver: &Receiver, id: &str) -> Vec<Value> {
    receiver
        .requests()
        .await
        .iter()
        .filter(|r| r["path"] == format!("/ok/{id}"))
        .map(|r| serde_json::from_str(r["body"].as_str().unwrap()).unwrap())
        .collect()
}

async fn deliveries(server: &Server, id: &str) -> Vec<Value> {
    let (status, log) = server
        .call(
            "GET",
            &format!("/admin/tenants/{id}/deliveries?awb={AWB}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{log}");
    log.as_array().unwrap().clone()
}

#[tokio::test]
async fn after_an_outage_an_every_tenant_gets_20_scans_and_a_latest_tenant_the_newest_only() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("latest-state");
    let receiver = Receiver::start(None);
    let server = Server::start(&dir, &config(&dir, &receiver)).await;
    let (status, filed) = server.call("GET", "/admin/tenants/filed/push", None).await;
    assert_eq!((status, &filed["delivery"]), (200, &json!("latest")));

    tenant(&server, &receiver, "steady", "every").await;
    tenant(&server, &receiver, "newest", "latest").await;
    for id in ["steady", "newest"] {
        for n in 0..SCANS {
            let (status, answer) = server
                .post(
                    "/rms/in/api/clickpost/notify",
                    &[("webhook_key", &format!("latest-test-{id}-key"))],
                    scan(n),
                )
                .await;
            assert_eq!((status, &answer["status"]), (200, &json!("accepted")));
        }
    }
    // The endpoints are away: everything waits in the queue, nothing is pushed or logged.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(receiver.requests().await.is_empty());
    assert!(deliveries(&server, "newest").await.is_empty());

    enable(&server, &receiver, "steady").await;
    enable(&server, &receiver, "newest").await;
    let started = Instant::now();
    loop {
        let every = pushed(&receiver, "steady").await.len();
        let log = deliveries(&server, "newest").await.len();
        if (every >= SCANS as usize && log >= SCANS as usize)
            || started.elapsed() > Duration::from_secs(30)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Anything still to come would show within a retry.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let every = pushed(&receiver, "steady").await;
    assert_eq!(
        every.len(),
        SCANS as usize,
        "the every tenant gets each scan"
    );
    let latest = pushed(&receiver, "newest").await;
    assert_eq!(
        latest.len(),
        1,
        "the latest tenant gets one push: {latest:?}"
    );
    assert_eq!(latest[0]["status"], "DELIVERED");
    assert_eq!(latest[0]["event_time_raw"], "2026-11-22T09:19:00Z");
    let newest_id = latest[0]["event_id"].as_str().unwrap();

    let log = deliveries(&server, "newest").await;
    let with =
        |outcome: &str| -> Vec<&Value> { log.iter().filter(|a| a["outcome"] == outcome).collect() };
    assert_eq!(with("delivered").len(), 1, "{log:?}");
    assert_eq!(with("delivered")[0]["event_id"], newest_id);
    let superseded = with("superseded");
    assert_eq!(superseded.len(), (SCANS - 1) as usize, "{log:?}");
    for attempt in &superseded {
        assert_eq!(attempt["error"], format!("superseded by {newest_id}"));
        assert_eq!(attempt["http_status"], Value::Null);
        assert_ne!(attempt["event_id"], newest_id);
    }
    assert_eq!(log.len(), SCANS as usize, "nothing else: {log:?}");
    assert!(deliveries(&server, "steady")
        .await
        .iter()
        .all(|a| a["outcome"] == "delivered"));

    // The ops commands on the same database say the same.
    let rms = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_rms"))
            .args(args)
            .arg("--local")
            .arg(dir.join("rms.db"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{args:?}: {text}");
        text
    };
    let table = rms(&["deliveries", "newest", "--awb", AWB]);
    assert_eq!(
        table.lines().filter(|l| l.contains("superseded")).count(),
        (SCANS - 1) as usize,
        "{table}"
    );
    let show = rms(&["push", "show", "newest"]);
    assert!(show.contains("latest state per shipment"), "{show}");
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("superseded by a newer event of the shipment"),
        "each superseded event is logged"
    );
}

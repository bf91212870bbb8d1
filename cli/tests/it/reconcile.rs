//! Reconciliation on `rms serve`: a webhook brings one of a shipment's scans, the carrier's pull
//! API has all three; after one `rms reconcile` run every scan is delivered exactly once, and a
//! second run delivers nothing new. (The carrier's API is `PullFake`, on 127.0.0.1.)

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::common;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use common::{fixture, scratch_dir, wait_for, Server, CLICKPOST_KEY, SECRET};
use integration_tests::{PullFake, Receiver};
use serde_json::{json, Value};

const CP_USER: &str = "acme-api";
const CP_KEY: &str = "cp-pull-key-0001";

fn reconcile(db: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_rms"))
        .args(["reconcile", "--local"])
        .arg(db)
        .args(["--quiet-for", "0s", "--allow-private-targets"])
        .args(extra)
        .output()
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Multi-threaded: `rms reconcile` runs as a blocking child while the fake answers it.
async fn scans_only_the_pull_api_has_are_delivered_once_and_a_second_run_adds_nothing() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("reconcile");
    let receiver = Receiver::start(Some(SECRET));
    let fake = PullFake::start().await;
    fake.clickpost_account(CP_USER, CP_KEY);
    let track: Value = serde_json::from_slice(&fixture("clickpost/pull_track_order.json")).unwrap();
    let webhook: Value =
        serde_json::from_slice(&fixture("clickpost/out_for_delivery_all_status.json")).unwrap();
    let cp_id = webhook["cp_id"].as_i64().unwrap();
    fake.clickpost_track("SF49245NER", cp_id, track["result"]["SF49245NER"].clone());

    let db = dir.join("rms.db");
    let text = format!(
        r#"
database = "{db}"
allow_private_targets = true
[dispatch]
retry_schedule = ["1s"]
[reconcile]
every = "off"
[[tenants]]
id = "acme"
keys = {{ clickpost = "{CLICKPOST_KEY}" }}
[tenants.push]
url = "{hook}"
signing_secret = "{SECRET}"
[tenants.pull.clickpost]
base_url = "{base}"
username = "{CP_USER}"
key = "{CP_KEY}"
"#,
        db = db.display(),
        hook = receiver.url("/ok"),
        base = fake.base_url,
    );
    let server = Server::start(&dir, &text).await;
    let (status, _) = server
        .post(
            "/rms/in/api/clickpost/notify",
            &[("webhook_key", CLICKPOST_KEY)],
            fixture("clickpost/out_for_delivery_all_status.json"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        wait_for(&receiver, 1, Duration::from_secs(10)).await.len(),
        1
    );

    let (ok, out) = reconcile(&db, &["--dry-run"]);
    assert!(ok, "{out}");
    assert!(out.contains("acme") && out.contains("SF49245NER"), "{out}");
    assert_eq!(
        fake.calls_to("/api/v2/track-order/"),
        0,
        "a dry run calls no carrier"
    );

    let (ok, out) = reconcile(&db, &[]);
    assert!(ok, "{out}");
    let row = out.lines().find(|l| l.starts_with("acme")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    // TENANT CARRIER QUIET CALLS FOUND NEW KNOWN NOT-FOUND ERROR (calls: the updated-order sweep,
    // then track-order)
    assert_eq!(
        &cells[..8],
        ["acme", "clickpost", "1", "2", "3", "2", "1", "0"],
        "{out}"
    );

    let requests = wait_for(&receiver, 3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in receiver.requests().await {
        *per_id
            .entry(r["headers"]["webhook-id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(requests.len().max(per_id.values().sum()), 3, "{per_id:?}");
    assert!(
        per_id.values().all(|n| *n == 1),
        "each scan once: {per_id:?}"
    );

    // The delivery log marks the two events only polling found.
    let log = Command::new(env!("CARGO_BIN_EXE_rms"))
        .args([
            "deliveries",
            "acme",
            "--awb",
            "SF49245NER",
            "--json",
            "--local",
        ])
        .arg(&db)
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&log.stdout).to_string();
    let reconciled = lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|a| a["outcome"] == "reconciled")
        .count();
    assert_eq!(reconciled, 2, "{lines}");

    let (ok, out) = reconcile(&db, &[]);
    assert!(ok, "{out}");
    let row = out.lines().find(|l| l.starts_with("acme")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[5], "0", "nothing new the second time: {out}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.requests().await.len(), 3);

    // Still out for delivery: listed as stale (with --quiet-for 0s), with when it was pulled.
    let stale = Command::new(env!("CARGO_BIN_EXE_rms"))
        .args([
            "shipments",
            "--stale",
            "--quiet-for",
            "0s",
            "--json",
            "--local",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert!(stale.status.success(), "{stale:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&stale.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["awb"], "SF49245NER");
    assert_eq!(lines[0]["last_status"], "OUT_FOR_DELIVERY");
    assert!(lines[0]["last_pulled_at"].is_string(), "{lines:?}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_account_given_through_the_admin_api_is_the_one_reconcile_uses() {
    integration_tests::needs!(venv);
    const KEY: &str = "globex-clickpost-key-0001";
    let dir = scratch_dir("reconcile-api");
    let receiver = Receiver::start(None);
    let fake = PullFake::start().await;
    fake.clickpost_account(CP_USER, CP_KEY);
    let track: Value = serde_json::from_slice(&fixture("clickpost/pull_track_order.json")).unwrap();
    let webhook: Value =
        serde_json::from_slice(&fixture("clickpost/out_for_delivery_all_status.json")).unwrap();
    let cp_id = webhook["cp_id"].as_i64().unwrap();
    fake.clickpost_track("SF49245NER", cp_id, track["result"]["SF49245NER"].clone());

    let db = dir.join("rms.db");
    let text = format!(
        "database = \"{}\"\nallow_private_targets = true\n[reconcile]\nevery = \"off\"\n",
        db.display()
    );
    let server = Server::start(&dir, &text).await;
    let calls = [
        ("POST", "/admin/tenants".to_owned(), json!({"id": "globex"})),
        (
            "POST",
            "/admin/tenants/globex/keys/clickpost".to_owned(),
            json!({"key": KEY}),
        ),
        (
            "PUT",
            "/admin/tenants/globex/push".to_owned(),
            json!({"url": receiver.url("/ok")}),
        ),
        (
            "PUT",
            "/admin/tenants/globex/pull/clickpost".to_owned(),
            json!({"user": CP_USER, "secret": CP_KEY, "base_url": fake.base_url}),
        ),
    ];
    for (method, path, body) in calls {
        let answer = server.call(method, &path, Some(body)).await;
        assert!(answer.0 < 300, "{method} {path}: {answer:?}");
    }
    let (status, _) = server
        .post(
            "/rms/in/api/clickpost/notify",
            &[("webhook_key", KEY)],
            fixture("clickpost/out_for_delivery_all_status.json"),
        )
        .await;
    assert_eq!(status, 200);

    let (ok, out) = reconcile(&db, &["--tenant", "globex"]);
    assert!(ok, "{out}");
    let row = out.lines().find(|l| l.starts_with("globex")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    // TENANT CARRIER QUIET CALLS FOUND NEW KNOWN NOT-FOUND ERROR
    assert_eq!(
        &cells[..8],
        ["globex", "clickpost", "1", "2", "3", "2", "1", "0"],
        "{out}"
    );
    assert_eq!(fake.calls_to("/api/v2/track-order/"), 1);
    assert_eq!(
        wait_for(&receiver, 3, Duration::from_secs(10)).await.len(),
        3
    );
    drop(server);
}

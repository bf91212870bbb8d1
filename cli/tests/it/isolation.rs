//! One tenant's bad endpoint never hurts another's deliveries in `rms serve`: free slots take the
//! next due message at once, a tenant holds at most `tenant_concurrency` slots, its circuit opens
//! after repeated timeouts (visible in the admin API and `rms circuit`), and `Retry-After: 0`
//! never shortens the retry schedule. The full noisy-neighbour figures: `scripts/bench-isolation`.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{scratch_dir, Server};
use integration_tests::Receiver;
use serde_json::Value;

const ACME_KEY: &str = "isolation-acme-key";
const GLOBEX_KEY: &str = "isolation-globex";

/// Two tenants: acme's endpoint is `acme_path` (push timeout `acme_timeout`), globex's answers.
fn two_tenants(dir: &Path, receiver: &Receiver, acme_path: &str, acme_timeout: &str) -> String {
    format!(
        r#"
database = "{db}"
allow_private_targets = true
[dispatch]
timeout = "2s"
retry_schedule = ["2s"]
max_attempts = 10
concurrency = 10
tenant_concurrency = 4
circuit_failures = 5
circuit_cool_down = "1m"
[[tenants]]
id = "acme"
keys = {{ clickpost = "{ACME_KEY}" }}
[tenants.push]
url = "{acme}"
timeout = "{acme_timeout}"
[[tenants]]
id = "globex"
keys = {{ clickpost = "{GLOBEX_KEY}" }}
[tenants.push]
url = "{globex}"
"#,
        db = dir.join("rms.db").display(),
        acme = receiver.url(acme_path),
        globex = receiver.url("/ok/globex"),
    )
}

fn scan(awb: &str) -> Vec<u8> {
    format!(r#"{{"waybill":"{awb}","clickpost_status_code":5,"timestamp":"2026-11-22T09:00:00Z"}}"#)
        .into_bytes()
}

async fn send(server: &Server, key: &str, awb: &str) {
    let (status, answer) = server
        .post(
            "/rms/in/api/clickpost/notify",
            &[("webhook_key", key)],
            scan(awb),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
}

fn epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn to(requests: &[Value], prefix: &str) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with(prefix))
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_delay_another_tenant_and_its_circuit_opens() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("isolation-hang");
    let receiver = Receiver::start(None);
    let server = Server::start(&dir, &two_tenants(&dir, &receiver, "/hang/30", "3s")).await;
    for i in 0..30 {
        send(&server, ACME_KEY, &format!("A{i}")).await;
    }
    // globex's events arrive while acme's backlog hangs, 10 a second.
    let mut sent_at = Vec::new();
    for i in 0..20 {
        sent_at.push((format!("G{i}"), epoch_seconds()));
        send(&server, GLOBEX_KEY, &format!("G{i}")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let globex = loop {
        let globex = to(&receiver.requests().await, "/ok/globex");
        if globex.len() >= 20 || started.elapsed() > Duration::from_secs(20) {
            break globex;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(globex.len(), 20, "every globex event delivered");
    let mut worst: f64 = 0.0;
    for request in &globex {
        let body: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
        let awb = body["awb"].as_str().unwrap();
        let (_, sent) = sent_at.iter().find(|(a, _)| a == awb).unwrap();
        worst = worst.max(request["received_at"].as_f64().unwrap() - sent);
    }
    // Before: every slot held by acme's hanging pushes, globex waited 29–47 s.
    assert!(
        worst < 5.0,
        "globex's slowest delivery took {worst:.2} s behind acme's hanging endpoint"
    );

    // acme never held more than its 4 slots: at most 4 pushes hang at once, and after 5
    // timeouts its circuit is open, so it stops calling at all.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (status, circuit) = server
        .call("GET", "/admin/tenants/acme/circuit", None)
        .await;
    assert_eq!(status, 200, "{circuit}");
    assert_eq!(circuit["state"], "open", "{circuit}");
    assert!(circuit["failures"].as_u64().unwrap() >= 5, "{circuit}");
    assert!(
        circuit["last_error"]
            .as_str()
            .unwrap()
            .contains("no answer within 30"),
        "{circuit}"
    );
    let calls = to(&receiver.requests().await, "/hang").len();
    assert!(
        (5..=9).contains(&calls),
        "acme's endpoint got {calls} calls: the circuit should stop them after 5 timeouts \
         (with at most 4 in flight)"
    );
    let (_, globex_circuit) = server
        .call("GET", "/admin/tenants/globex/circuit", None)
        .await;
    assert_eq!(globex_circuit["state"], "closed");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rms"))
        .args(["circuit", "acme", "--local"])
        .arg(dir.join("rms.db"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("circuit: open"), "{text}");
    assert!(text.contains("next probe:"), "{text}");
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("circuit opened"), "the opening is logged");
}

#[tokio::test]
async fn retry_after_0_does_not_shorten_the_schedule() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("isolation-retry-after");
    let receiver = Receiver::start(None);
    let server = Server::start(
        &dir,
        &two_tenants(&dir, &receiver, "/status/503?retry_after=0", "2s"),
    )
    .await;
    send(&server, ACME_KEY, "RA0").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls = to(&receiver.requests().await, "/status/503").len();
    // The schedule waits 2 s (±20 %) between attempts: 2 calls in 3 s. Before: 50 in 0.36 s.
    assert!(
        (1..=2).contains(&calls),
        "{calls} attempts in 3 s with Retry-After: 0"
    );
}

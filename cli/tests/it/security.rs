//! Security tests against the built `rms serve`: tenant isolation, body and header size limits,
//! what the database keeps, and a log scan after a full run at `RUST_LOG=trace`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use integration_tests::Receiver;
use shared::auth::Credential;
use shared::Carrier;

use crate::common;

use common::{fixture, scratch_dir, wait_for, Server};

const SECRET_A: &str = "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ==";
const SECRET_B: &str = "whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQg==";

/// Every secret of a tenant, by its role; `x` is the tenant ("a" or "b").
struct Secrets {
    clickpost: String,
    shiprocket: String,
    shipway: String,
    bearer: String,
    client_id: String,
}

fn secrets(x: &str) -> Secrets {
    Secrets {
        clickpost: format!("sec-{x}-clickpost-key-7f3a"),
        shiprocket: format!("sec-{x}-shiprocket-key-91c2"),
        shipway: format!("sec-{x}-shipway-key-5d0e"),
        bearer: format!("sec-{x}-bearer-token-c4b8"),
        client_id: format!("sec-{x}-client-id-0a61"),
    }
}

fn tenant(id: &str, s: &Secrets, url: &str, signing_secret: &str) -> String {
    format!(
        r#"
[[tenants]]
id = "{id}"
[tenants.keys]
clickpost = "{}"
shiprocket = "{}"
shipway = "{}"
[tenants.push]
url = "{url}"
headers = {{ Authorization = "Bearer {}", "X-Client-Id" = "{}" }}
statuses = []
signing_secret = "{signing_secret}"
"#,
        s.clickpost, s.shiprocket, s.shipway, s.bearer, s.client_id
    )
}

fn two_tenants(dir: &Path, url_a: &str, url_b: &str) -> String {
    format!(
        r#"
database = "{db}"
allow_private_targets = true
[dispatch]
timeout = "2s"
retry_schedule = ["1s"]
max_attempts = 5
{a}
{b}
"#,
        db = dir.join("rms.db").display(),
        a = tenant("tenant-a", &secrets("a"), url_a, SECRET_A),
        b = tenant("tenant-b", &secrets("b"), url_b, SECRET_B),
    )
}

const CLICKPOST: &str = "/rms/in/api/clickpost/notify";
const SHIPROCKET: &str = "/rms/in/api/st/notify";
const SHIPWAY: &str = "/rms/in/api/shipway/notify";

/// Every fixture with the header that carries the tenant's key for its carrier.
fn fixtures(s: &Secrets) -> Vec<(&'static str, (&'static str, String), &'static str)> {
    common::samples(|carrier| match carrier {
        Carrier::Clickpost => s.clickpost.clone(),
        Carrier::Shiprocket => s.shiprocket.clone(),
        Carrier::Shipway => s.shipway.clone(),
    })
}

/// A client without connection reuse: after refusing an oversized request the server closes
/// that connection, and a pooled client could pick the closed one up.
fn fresh() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

async fn healthy(server: &Server) {
    let health = fresh()
        .get(format!("{}/admin/health", server.base))
        .send()
        .await
        .expect("the server still answers");
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn an_event_reaches_only_its_own_tenant_and_keys_do_not_cross_tenants_or_carriers() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("security-isolation");
    let receiver_a = Receiver::start(Some(SECRET_A));
    let receiver_b = Receiver::start(Some(SECRET_B));
    let server = Server::start(
        &dir,
        &two_tenants(&dir, &receiver_a.url("/a"), &receiver_b.url("/b")),
    )
    .await;
    let (a, b) = (secrets("a"), secrets("b"));

    // A key is accepted only on its own carrier's path.
    let body = fixture("shiprocket/in_transit_official.json");
    for (path, header, key) in [
        (SHIPROCKET, "x-api-key", &a.clickpost),
        (SHIPROCKET, "x-api-key", &a.shipway),
        (SHIPWAY, "x-api-key", &a.shiprocket),
        (SHIPWAY, "x-api-key", &a.clickpost),
        (CLICKPOST, "webhook_key", &a.shiprocket),
        (CLICKPOST, "webhook_key", &a.shipway),
    ] {
        let (status, answer) = server.post(path, &[(header, key)], body.clone()).await;
        assert_eq!(status, 401, "{path} with {key}: {answer}");
    }

    // Tenant A's events go to A's endpoint, with A's headers and A's signature; B gets none.
    let mut ids_a = Vec::new();
    for (path, (header, key), name) in fixtures(&a) {
        let (status, answer) = server.post(path, &[(header, &key)], fixture(name)).await;
        assert_eq!(status, 200, "{name}: {answer}");
        ids_a.extend(answer["event_ids"].as_array().unwrap().iter().cloned());
    }
    // One event for B, with B's key: it goes to B only.
    let (status, answer) = server
        .post(
            SHIPROCKET,
            &[("x-api-key", &b.shiprocket)],
            fixture("shiprocket/in_transit_official.json"),
        )
        .await;
    // Same payload as A's, but another tenant: not a duplicate of A's event.
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("accepted")),
        "{answer}"
    );
    let ids_b = answer["event_ids"].as_array().unwrap().clone();

    let got_a = wait_for(&receiver_a, ids_a.len(), Duration::from_secs(15)).await;
    let got_b = wait_for(&receiver_b, ids_b.len(), Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_a_after = receiver_a.requests().await;
    let got_b_after = receiver_b.requests().await;
    assert_eq!(got_a_after.len(), ids_a.len(), "{got_a:?}");
    assert_eq!(got_b_after.len(), ids_b.len(), "{got_b:?}");
    for r in &got_a_after {
        assert_eq!(
            r["headers"]["authorization"],
            format!("Bearer {}", a.bearer)
        );
        assert_eq!(r["headers"]["x-client-id"], a.client_id.as_str());
        assert_eq!(r["signature"], "valid");
        assert!(ids_a.contains(&r["headers"]["webhook-id"]));
    }
    for r in &got_b_after {
        assert_eq!(
            r["headers"]["authorization"],
            format!("Bearer {}", b.bearer)
        );
        assert_eq!(r["headers"]["x-client-id"], b.client_id.as_str());
        assert_eq!(r["signature"], "valid");
        assert!(ids_b.contains(&r["headers"]["webhook-id"]));
    }
    for r in got_a_after.iter().chain(&got_b_after) {
        let text = r.to_string();
        let other = if got_a_after.contains(r) { &b } else { &a };
        for leaked in [&other.bearer, &other.client_id] {
            assert!(!text.contains(leaked.as_str()), "{leaked} leaked: {text}");
        }
    }
}

#[tokio::test]
async fn oversized_bodies_and_headers_are_refused_and_the_server_stays_up() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("security-limits");
    let receiver = Receiver::start(Some(SECRET_A));
    let server = Server::start(
        &dir,
        &two_tenants(&dir, &receiver.url("/a"), &receiver.url("/b")),
    )
    .await;
    let a = secrets("a");

    // 300 KiB: over the ingest limit (256 KiB), answered 413 with the JSON reason.
    let mut body = fixture("clickpost/delivered_selected_captured.json");
    body.resize(300 * 1024, b' ');
    let (status, answer) = server
        .post(CLICKPOST, &[("webhook_key", &a.clickpost)], body)
        .await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(
        answer["error"],
        "the body is 307200 bytes; the limit is 262144 bytes"
    );
    healthy(&server).await;

    // 2 MiB: over the transport limit; refused (or the connection closed), never accepted.
    let sent = fresh()
        .post(format!("{}{CLICKPOST}", server.base))
        .header("webhook_key", &a.clickpost)
        .body({
            let mut body = fixture("clickpost/delivered_selected_captured.json");
            body.resize(2 * 1024 * 1024, b' ');
            body
        })
        .send()
        .await;
    if let Ok(response) = sent {
        assert_eq!(response.status().as_u16(), 413);
    }
    healthy(&server).await;

    // An 8 KiB header value (API Gateway's limit is 10 KiB for the head) reaches ingest and is
    // refused as a wrong key, 401.
    let sent = fresh()
        .post(format!("{}{CLICKPOST}", server.base))
        .header("webhook_key", "k".repeat(8 * 1024))
        .body(fixture("clickpost/delivered_selected_captured.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status().as_u16(), 401, "an 8 KiB header value");
    // A 64 KiB one makes the head larger than `rms serve` reads (64 KiB): hyper refuses it, 431,
    // or the connection is closed while the request is still being sent.
    let sent = fresh()
        .post(format!("{}{CLICKPOST}", server.base))
        .header("webhook_key", "k".repeat(64 * 1024))
        .body(fixture("clickpost/delivered_selected_captured.json"))
        .send()
        .await;
    if let Ok(response) = sent {
        assert_eq!(response.status().as_u16(), 431, "a 64 KiB header value");
    }
    // More than 100 headers: hyper refuses the head, 431.
    let mut request = fresh()
        .post(format!("{}{CLICKPOST}", server.base))
        .header("webhook_key", &a.clickpost);
    for i in 0..200 {
        request = request.header(format!("x-filler-{i}"), "x");
    }
    let status = request.body("{}").send().await.unwrap().status().as_u16();
    assert!([400, 431].contains(&status), "200 headers: {status}");
    healthy(&server).await;
    assert!(receiver.requests().await.is_empty());
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn after_a_full_run_at_trace_neither_the_database_nor_the_log_holds_a_credential() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("security-secrets");
    let receiver_a = Receiver::start(Some(SECRET_A));
    let receiver_b = Receiver::start(Some(SECRET_B));
    let mut server = Server::start_with_log_level(
        &dir,
        &two_tenants(&dir, &receiver_a.url("/a"), &receiver_b.url("/b")),
        "trace",
    )
    .await;
    let (a, b) = (secrets("a"), secrets("b"));
    let mut events = 0;
    for s in [&a, &b] {
        for (path, (header, key), name) in fixtures(s) {
            let (status, answer) = server.post(path, &[(header, &key)], fixture(name)).await;
            assert_eq!(status, 200, "{name}: {answer}");
            events += answer["event_ids"].as_array().unwrap().len();
        }
    }
    // And a refused key, which is logged as a refusal.
    let (status, _) = server
        .post(
            CLICKPOST,
            &[("webhook_key", "sec-wrong-key-presented-88aa")],
            fixture("clickpost/delivered_selected_captured.json"),
        )
        .await;
    assert_eq!(status, 401);
    let delivered = wait_for(&receiver_a, events / 2, Duration::from_secs(20))
        .await
        .len()
        + wait_for(&receiver_b, events / 2, Duration::from_secs(20))
            .await
            .len();
    assert_eq!(delivered, events);
    assert!(server.terminate().success());

    let mut carrier_keys = Vec::new();
    let mut header_values = Vec::new();
    for s in [&a, &b] {
        carrier_keys.extend([s.clickpost.clone(), s.shiprocket.clone(), s.shipway.clone()]);
        header_values.extend([s.bearer.clone(), s.client_id.clone()]);
    }
    carrier_keys.push("sec-wrong-key-presented-88aa".to_owned());
    let digests: Vec<String> = carrier_keys
        .iter()
        .map(|k| Credential::new(k.clone()).digest().to_hex())
        .collect();

    // The database (and its WAL, if any): no carrier key, presented or configured (only their
    // digests, which are looked up). The push header values and the signing secrets ARE stored:
    // they must be sent and must sign (see docs/security.md).
    let mut database = Vec::new();
    for name in ["rms.db", "rms.db-wal", "rms.db-journal"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            database.extend(bytes);
        }
    }
    assert!(!database.is_empty());
    for secret in &carrier_keys {
        assert!(!contains(&database, secret), "rms.db holds {secret}");
    }

    // The log at trace: no key, header value, signing secret or full digest (hex).
    let log = std::fs::read(&server.log).unwrap();
    assert!(
        contains(&log, "TRACE") || contains(&log, "DEBUG"),
        "the log was written at trace"
    );
    let signing = [
        SECRET_A,
        SECRET_B,
        SECRET_A.trim_start_matches("whsec_"),
        SECRET_B.trim_start_matches("whsec_"),
    ];
    for secret in carrier_keys
        .iter()
        .chain(&header_values)
        .chain(&digests)
        .map(String::as_str)
        .chain(signing)
    {
        assert!(!contains(&log, secret), "the log holds {secret}");
    }
}

/// A line break in a header value of `rms.toml` stops `rms serve` at start, naming the field and
/// not the value.
#[test]
fn a_line_break_in_a_configured_header_value_is_refused_at_start() {
    let dir = scratch_dir("security-config-crlf");
    let config = two_tenants(&dir, "http://127.0.0.1:9/a", "http://127.0.0.1:9/b").replacen(
        "\"Bearer sec-a-bearer-token-c4b8\"",
        "\"Bearer sec-a-bearer-token-c4b8\\r\\nX-Injected: 1\"",
        1,
    );
    assert!(config.contains("\\r\\nX-Injected"));
    let path = dir.join("rms.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rms"))
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--listen", &format!("127.0.0.1:{}", common::free_port())])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rms serve started with a line break in a header value");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("line break"), "{stderr}");
    assert!(!stderr.contains("sec-a-bearer-token"), "{stderr}");
}

//! The admin API on `rms serve` (the same router the `admin-api` Lambda runs), driven over HTTP:
//! every operation, its failures, a key rotation, replay, and the redrive of dead letters.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use crate::common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{config, fixture, scratch_dir, wait_for, Server, CLICKPOST_KEY, SECRET};
use integration_tests::Receiver;
use serde_json::{json, Value};

const DELIVERED_FIXTURE: &str = "clickpost/delivered_selected_captured.json";
const DELIVERED_AWB: &str = "81125552141";

async fn notify(server: &Server, key: &str, body: Vec<u8>) -> u16 {
    server
        .post(
            "/rms/in/api/clickpost/notify",
            &[("webhook_key", key)],
            body,
        )
        .await
        .0
}

/// A Clickpost scan for a new AWB: a new event each call.
fn scan(awb: &str) -> Vec<u8> {
    json!({"waybill": awb, "clickpost_status_code": 5, "timestamp": "2026-11-20T10:00:00Z"})
        .to_string()
        .into_bytes()
}

/// The JSON a receiver got (it records the body as text).
fn body_of(request: &Value) -> Value {
    serde_json::from_str(request["body"].as_str().unwrap()).unwrap()
}

fn assert_field(answer: &(u16, Value), field: &str) {
    assert_eq!(answer.0, 400, "{answer:?}");
    assert_eq!(answer.1["field"], field, "{answer:?}");
}

#[tokio::test]
async fn every_admin_operation_answers_as_documented_and_never_shows_a_secret() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("admin-all");
    let receiver = Receiver::start(Some(SECRET));
    let server = Server::start(&dir, &config(&dir, &receiver.url("/ok"), "\"1s\"", 10)).await;

    // Tenants.
    let created = server
        .call("POST", "/admin/tenants", Some(json!({"id": "globex"})))
        .await;
    assert_eq!(created.0, 201, "{created:?}");
    assert_eq!(created.1["enabled"], true);
    let again = server
        .call("POST", "/admin/tenants", Some(json!({"id": "globex"})))
        .await;
    assert_eq!(again.0, 409);
    assert_field(
        &server
            .call("POST", "/admin/tenants", Some(json!({"id": "has space"})))
            .await,
        "id",
    );
    let bad_json = server
        .call("POST", "/admin/tenants", Some(json!({"name": "x"})))
        .await;
    assert_eq!(bad_json.0, 400, "{bad_json:?}");
    // serde would read an array into the struct by position; only an object is a body.
    let array = server
        .call("POST", "/admin/tenants", Some(json!(["sneaky", false])))
        .await;
    assert_eq!(array.0, 400, "{array:?}");
    assert!(array.1["error"].as_str().unwrap().contains("JSON object"));
    let listed = server.call("GET", "/admin/tenants", None).await;
    let ids: Vec<&str> = listed
        .1
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["acme", "globex"]);
    assert_eq!(
        server.call("GET", "/admin/tenants/globex", None).await.0,
        200
    );
    let unknown = server.call("GET", "/admin/tenants/nobody", None).await;
    assert_eq!(unknown.0, 404);
    assert!(unknown.1["error"].as_str().unwrap().contains("nobody"));
    for path in [
        "/admin/tenants/nobody/keys",
        "/admin/tenants/nobody/push",
        "/admin/tenants/nobody/deliveries?awb=1",
    ] {
        assert_eq!(server.call("GET", path, None).await.0, 404, "{path}");
    }

    // Keys: a given one is not echoed; a generated one is shown once.
    let given = "globex-clickpost-key-1";
    let added = server
        .call(
            "POST",
            "/admin/tenants/globex/keys/clickpost",
            Some(json!({"key": given})),
        )
        .await;
    assert_eq!(added.0, 201, "{added:?}");
    assert!(added.1.get("key").is_none());
    let generated = server
        .call("POST", "/admin/tenants/globex/keys/shipway", None)
        .await;
    assert_eq!(generated.0, 201, "{generated:?}");
    let generated_key = generated.1["key"].as_str().unwrap().to_owned();
    assert_field(
        &server
            .call("POST", "/admin/tenants/globex/keys/fedex", None)
            .await,
        "carrier",
    );
    let keys = server.call("GET", "/admin/tenants/globex/keys", None).await;
    assert_eq!(keys.1.as_array().unwrap().len(), 2);
    assert!(!keys.1.to_string().contains(given) && !keys.1.to_string().contains(&generated_key));

    // The new tenant's carrier is accepted; disabled, it is refused; enabled again, accepted.
    assert_eq!(notify(&server, given, scan("GLOBEX-1")).await, 200);
    let disabled = server
        .call(
            "PATCH",
            "/admin/tenants/globex",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(disabled.1["enabled"], false);
    // Said as such to the key's holder, without naming the tenant; an unknown key learns nothing.
    let (status, refused) = server
        .post(
            "/rms/in/api/clickpost/notify",
            &[("webhook_key", given)],
            scan("GLOBEX-2"),
        )
        .await;
    assert_eq!(status, 401);
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.contains("tenant is disabled") && !message.contains("globex"),
        "{message}"
    );
    let (_, unknown) = server
        .post(
            "/rms/in/api/clickpost/notify",
            &[("webhook_key", "no-tenant-has-this-key")],
            scan("GLOBEX-2"),
        )
        .await;
    assert!(
        !unknown["error"].as_str().unwrap().contains("disabled"),
        "{unknown}"
    );
    server
        .call(
            "PATCH",
            "/admin/tenants/globex",
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(notify(&server, given, scan("GLOBEX-2")).await, 200);

    // Push Config: validation, write-only values, a secret shown once.
    let no_push = server.call("GET", "/admin/tenants/globex/push", None).await;
    assert_eq!(no_push.0, 404);
    let url = receiver.url("/ok");
    for (body, field) in [
        (json!({"url": "nope"}), "url"),
        (
            json!({"url": url, "headers": {"Bad Header": "x"}}),
            "headers.Bad Header",
        ),
        (
            json!({"url": url, "headers": {"X-Token": "a\r\nX-Injected: 1"}}),
            "headers.X-Token",
        ),
        (json!({"url": url, "statuses": ["DELIVERD"]}), "statuses"),
        (json!({"url": url, "timeout_ms": 5}), "timeout_ms"),
    ] {
        let answer = server
            .call("PUT", "/admin/tenants/globex/push", Some(body))
            .await;
        assert_field(&answer, field);
    }
    let unknown_status = server
        .call(
            "PUT",
            "/admin/tenants/globex/push",
            Some(json!({"url": url, "statuses": ["DELIVERD"]})),
        )
        .await;
    assert!(
        unknown_status.1["error"]
            .as_str()
            .unwrap()
            .contains("RTO_DELIVERED"),
        "lists the valid statuses: {unknown_status:?}"
    );
    let token = "Bearer globex-token-value";
    let saved = server
        .call(
            "PUT",
            "/admin/tenants/globex/push",
            Some(json!({
                "url": url,
                "headers": {"Authorization": token},
                "statuses": ["DELIVERED", "RTO_DELIVERED"],
                "signing_secret": "generate",
            })),
        )
        .await;
    assert_eq!(saved.0, 200, "{saved:?}");
    let secret = saved.1["signing_secret_value"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let shown = server.call("GET", "/admin/tenants/globex/push", None).await;
    assert_eq!(shown.1["headers"], json!(["Authorization"]));
    assert_eq!(shown.1["signing_secret"], true);
    assert!(!shown.1.to_string().contains(token) && !shown.1.to_string().contains(&secret));

    // Test push: sent now, with the headers; the answer reported.
    let tested = server
        .call(
            "POST",
            "/admin/tenants/globex/push/test",
            Some(json!({"status": "RTO_DELIVERED"})),
        )
        .await;
    assert_eq!(tested.0, 200, "{tested:?}");
    assert_eq!(tested.1["outcome"], "delivered");
    assert_eq!(tested.1["http_status"], 200);
    let received = wait_for(&receiver, 1, Duration::from_secs(5)).await;
    assert_eq!(received[0]["headers"]["authorization"], token);
    assert_eq!(body_of(&received[0])["status"], "RTO_DELIVERED");
    assert_field(
        &server
            .call(
                "POST",
                "/admin/tenants/globex/push/test",
                Some(json!({"status": "teleported"})),
            )
            .await,
        "status",
    );

    // Deliveries (acme's configured Push Config delivers everything), by AWB and by time.
    assert_eq!(
        notify(&server, CLICKPOST_KEY, fixture(DELIVERED_FIXTURE)).await,
        200
    );
    let by_awb = format!("/admin/tenants/acme/deliveries?awb={DELIVERED_AWB}");
    let started = Instant::now();
    let attempts = loop {
        let (_, attempts) = server.call("GET", &by_awb, None).await;
        if !attempts.as_array().unwrap().is_empty() || started.elapsed() > Duration::from_secs(10) {
            break attempts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(attempts[0]["outcome"], "delivered", "{attempts}");
    let event_id = attempts[0]["event_id"].as_str().unwrap().to_owned();
    let hour = chrono::Duration::hours(1);
    let stamp =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, by_time) = server
        .call(
            "GET",
            &format!(
                "/admin/tenants/acme/deliveries?from={}&to={}",
                stamp(chrono::Utc::now() - hour),
                stamp(chrono::Utc::now() + hour)
            ),
            None,
        )
        .await;
    assert!(by_time
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["event_id"] == event_id.as_str()));
    assert_field(
        &server
            .call("GET", "/admin/tenants/acme/deliveries", None)
            .await,
        "awb",
    );

    // Replay: the delivered event is pushed again, with the same webhook-id.
    let before = receiver.requests().await.len();
    let replayed = server
        .call(
            "POST",
            "/admin/tenants/acme/replay",
            Some(json!({"awb": DELIVERED_AWB})),
        )
        .await;
    assert_eq!(replayed.1["replayed"], 1, "{replayed:?}");
    let after = wait_for(&receiver, before + 1, Duration::from_secs(10)).await;
    let last = after.last().unwrap();
    assert_eq!(last["headers"]["webhook-id"], event_id.as_str());

    // Dead letters: none here; a redrive of an id that names none is a 404 naming it.
    let dead = server.call("GET", "/admin/dead-letters", None).await;
    assert_eq!(dead, (200, json!([])));
    let redriven = server
        .call(
            "POST",
            "/admin/dead-letters/redrive",
            Some(json!({"ids": ["999"]})),
        )
        .await;
    assert_eq!(redriven.0, 404, "{redriven:?}");
    assert!(redriven.1["error"]
        .as_str()
        .unwrap()
        .contains("no dead letter 999"));
    // A carrier panel's URL with a typo: the 404 lists the notify paths.
    let (status, typo) = server
        .call("POST", "/rms/in/api/clickpost/notif", None)
        .await;
    assert_eq!(status, 404);
    for carrier in shared::Carrier::ALL {
        let path = carrier.spec().notify_path;
        assert!(typo["error"].as_str().unwrap().contains(path), "{typo}");
    }
    assert_eq!(
        server.call("GET", "/admin/no-such-thing", None).await.0,
        404
    );

    // Revoking: the key's id from the listing; the carrier is refused from then on.
    let clickpost_key_id = keys
        .1
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["carrier"] == "clickpost")
        .unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = server
        .call(
            "DELETE",
            &format!("/admin/tenants/globex/keys/clickpost/{clickpost_key_id}"),
            None,
        )
        .await;
    assert_eq!(revoked.0, 204);
    assert_eq!(notify(&server, given, scan("GLOBEX-3")).await, 401);

    // Nothing secret in the server's log, at DEBUG.
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("push config saved"), "the log was captured");
    for secret_text in [
        given,
        &generated_key,
        token,
        &secret,
        CLICKPOST_KEY,
        "acme-token",
    ] {
        assert!(!log.contains(secret_text), "{secret_text:?} is in the log");
    }
}

/// A tenant of the admin API (not of rms.toml) with a Clickpost key and a Push Config.
async fn api_tenant(server: &Server, id: &str, key: &str, url: &str) {
    let created = server
        .call("POST", "/admin/tenants", Some(json!({"id": id})))
        .await;
    assert_eq!(created.0, 201, "{created:?}");
    let added = server
        .call(
            "POST",
            &format!("/admin/tenants/{id}/keys/clickpost"),
            Some(json!({"key": key})),
        )
        .await;
    assert_eq!(added.0, 201, "{added:?}");
    let push = server
        .call(
            "PUT",
            &format!("/admin/tenants/{id}/push"),
            Some(json!({"url": url})),
        )
        .await;
    assert_eq!(push.0, 200, "{push:?}");
}

#[tokio::test]
async fn during_a_rotation_both_keys_work_and_the_revoked_one_is_refused() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("admin-rotation");
    let receiver = Receiver::start(None);
    let server = Server::start(&dir, &config(&dir, &receiver.url("/ok"), "\"1s\"", 10)).await;
    let old_key = "globex-clickpost-key-1";
    api_tenant(&server, "globex", old_key, &receiver.url("/ok")).await;
    let new_key = "globex-clickpost-next-key";
    let added = server
        .call(
            "POST",
            "/admin/tenants/globex/keys/clickpost",
            Some(json!({"key": new_key})),
        )
        .await;
    assert_eq!(added.0, 201, "{added:?}");

    // The overlap: the carrier may send either while it moves over.
    assert_eq!(notify(&server, old_key, scan("ROT-OLD")).await, 200);
    assert_eq!(notify(&server, new_key, scan("ROT-NEW")).await, 200);
    let third = server
        .call("POST", "/admin/tenants/globex/keys/clickpost", None)
        .await;
    assert_eq!(third.0, 409, "{third:?}");

    let keys = server
        .call("GET", "/admin/tenants/globex/keys", None)
        .await
        .1;
    let old_id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["carrier"] == "clickpost" && k["key_id"] != added.1["key_id"])
        .unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = server
        .call(
            "DELETE",
            &format!("/admin/tenants/globex/keys/clickpost/{old_id}"),
            None,
        )
        .await;
    assert_eq!(revoked.0, 204);
    assert_eq!(notify(&server, old_key, scan("ROT-OLD-2")).await, 401);
    assert_eq!(notify(&server, new_key, scan("ROT-NEW-2")).await, 200);
}

#[tokio::test]
async fn dead_letters_are_delivered_once_each_after_rms_dlq_redrive() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("admin-redrive");
    // The client's endpoint is down: nothing listens on this port.
    let down = format!("http://127.0.0.1:{}/hook", common::free_port());
    let server = Server::start(&dir, &config(&dir, &down, "\"100ms\"", 2)).await;
    let key = "globex-clickpost-key-1";
    api_tenant(&server, "globex", key, &down).await;
    let signed = server
        .call(
            "PUT",
            "/admin/tenants/globex/push",
            Some(json!({"url": down, "signing_secret": "generate"})),
        )
        .await;
    let secret = signed.1["signing_secret_value"]
        .as_str()
        .unwrap()
        .to_owned();
    let receiver = Receiver::start(Some(&secret));
    let awbs = ["DLQ-1", "DLQ-2", "DLQ-3"];
    for awb in awbs {
        assert_eq!(notify(&server, key, scan(awb)).await, 200);
    }
    let started = Instant::now();
    loop {
        let (_, dead) = server.call("GET", "/admin/dead-letters", None).await;
        if dead.as_array().unwrap().len() == awbs.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not dead-lettered: {dead}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The endpoint is back (the client moved it); ops redrive from the command line.
    let moved = server
        .call(
            "PUT",
            "/admin/tenants/globex/push",
            Some(json!({"url": receiver.url("/ok")})),
        )
        .await;
    assert_eq!(moved.0, 200, "{moved:?}");
    let redrive = Command::new(env!("CARGO_BIN_EXE_rms"))
        .args(["dlq", "redrive", "--database"])
        .arg(dir.join("rms.db"))
        .output()
        .unwrap();
    assert!(
        redrive.status.success(),
        "{}",
        String::from_utf8_lossy(&redrive.stderr)
    );

    let received = wait_for(&receiver, awbs.len(), Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = receiver.requests().await.len().max(received.len());
    assert_eq!(received, awbs.len(), "each dead letter delivered once");
    let mut per_awb: HashMap<String, usize> = HashMap::new();
    for request in receiver.requests().await {
        *per_awb
            .entry(body_of(&request)["awb"].as_str().unwrap().to_owned())
            .or_default() += 1;
        assert_eq!(request["signature"], "valid", "{request}");
    }
    assert_eq!(per_awb.len(), awbs.len(), "{per_awb:?}");
    let (_, dead) = server.call("GET", "/admin/dead-letters", None).await;
    assert_eq!(dead, json!([]));
}

#[tokio::test]
async fn with_an_admin_token_the_admin_api_needs_it() {
    let dir = scratch_dir("admin-token");
    let token = "local-admin-token-0123";
    let text = format!(
        "admin_token = \"{token}\"\n{}",
        config(&dir, "http://127.0.0.1:9/hook", "\"1s\"", 10)
    );
    let server = Server::start(&dir, &text).await;
    let (status, answer) = server.call("GET", "/admin/tenants", None).await;
    assert_eq!(status, 401, "{answer}");
    let authorised = server
        .http
        .get(format!("{}/admin/tenants", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(authorised.status(), 200);
    let wrong = server
        .http
        .get(format!("{}/admin/tenants", server.base))
        .bearer_auth("local-admin-token-0124")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    // The health probe and the carriers' paths do not need it.
    assert_eq!(server.call("GET", "/admin/health", None).await.0, 200);
    assert_eq!(notify(&server, CLICKPOST_KEY, scan("TOKEN-1")).await, 200);
}

#[test]
fn serve_refuses_a_network_address_without_an_admin_token() {
    let dir = scratch_dir("admin-exposed");
    let path = dir.join("rms.toml");
    std::fs::write(&path, config(&dir, "http://127.0.0.1:9/hook", "\"1s\"", 10)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_rms"))
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("admin_token"), "{stderr}");
}

/// Runs `rms serve --config` with `text`, which must keep it from starting; its stderr.
fn failed_start(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("refused.toml");
    std::fs::write(&path, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rms"))
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("rms serve started with {text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    stderr
}

#[tokio::test]
async fn a_tenant_of_rms_toml_is_read_through_the_api_and_changed_only_by_the_file() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("admin-file-tenant");
    let receiver = Receiver::start(Some(SECRET));
    let text = config(&dir, &receiver.url("/ok"), "\"1s\"", 10);
    let mut server = Server::start(&dir, &text).await;
    assert_eq!(
        server.get("/admin/tenants/acme").await["file_managed"],
        true
    );
    let keys = server.get("/admin/tenants/acme/keys").await;
    let clickpost_id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["carrier"] == "clickpost")
        .unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke = format!("/admin/tenants/acme/keys/clickpost/{clickpost_id}");
    for (method, path, body) in [
        ("POST", "/admin/tenants", Some(json!({"id": "acme"}))),
        (
            "PATCH",
            "/admin/tenants/acme",
            Some(json!({"enabled": false})),
        ),
        (
            "POST",
            "/admin/tenants/acme/keys/clickpost",
            Some(json!({"key": "acme-clickpost-next-key"})),
        ),
        ("DELETE", revoke.as_str(), None),
        (
            "PUT",
            "/admin/tenants/acme/push",
            Some(json!({"url": receiver.url("/elsewhere")})),
        ),
    ] {
        let (status, answer) = server.call(method, path, body).await;
        assert_eq!(status, 409, "{method} {path}: {answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(
            message.starts_with("tenant acme is managed by rms.toml")
                && message
                    .ends_with("edit its [[tenants]] entry in rms.toml and restart rms serve"),
            "{method} {path}: {message}"
        );
    }
    // Nothing changed: the configured key works, the Push Config is the file's.
    assert_eq!(notify(&server, CLICKPOST_KEY, scan("FILE-1")).await, 200);
    assert_eq!(
        server.get("/admin/tenants/acme/push").await["url"],
        receiver.url("/ok")
    );

    // Tenants of the admin API live in the database, and outlast restarts.
    let globex_key = "globex-clickpost-key-1";
    api_tenant(&server, "globex", globex_key, &receiver.url("/ok")).await;
    assert_eq!(
        server.get("/admin/tenants/globex").await["file_managed"],
        false
    );
    // A URL's query (a token) is not in the log.
    let with_token = format!(
        "http://127.0.0.1:{}/hook?token=q-secret-7f3a",
        common::free_port()
    );
    api_tenant(&server, "initech", "initech-clickpost-key-1", &with_token).await;
    assert_eq!(
        server.get("/admin/tenants/initech/push").await["url"],
        with_token.as_str(),
        "the owner reads the URL back whole"
    );
    assert!(server.terminate().success());
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains("q-secret-7f3a"), "the query is in the log");
    assert!(
        log.lines()
            .any(|l| l.contains("push config saved") && l.contains("/hook?…")),
        "{log}"
    );

    // The file gives acme a new Clickpost key: from the next start, the old one is refused.
    let next_key = "serve-test-clickpost-next";
    let server = Server::start(&dir, &text.replace(CLICKPOST_KEY, next_key)).await;
    assert_eq!(notify(&server, CLICKPOST_KEY, scan("FILE-2")).await, 401);
    assert_eq!(notify(&server, next_key, scan("FILE-3")).await, 200);
    assert_eq!(notify(&server, globex_key, scan("GLOBEX-1")).await, 200);
    assert_eq!(
        server
            .get("/admin/tenants/acme/keys")
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
    drop(server);

    // Without a file, rms serve leaves the file's tenants to the file.
    let database = dir.join("rms.db").display().to_string();
    let server = Server::start_with_args(&dir, &["--database".to_owned(), database], "info").await;
    assert_eq!(
        server.get("/admin/tenants/acme").await["file_managed"],
        true
    );
    drop(server);

    // Out of the file: acme is kept, and the admin API may change it from now on.
    let bare = format!(
        "database = \"{}\"\nallow_private_targets = true\n",
        dir.join("rms.db").display()
    );
    let server = Server::start(&dir, &bare).await;
    assert_eq!(
        server.get("/admin/tenants/acme").await["file_managed"],
        false
    );
    assert_eq!(notify(&server, next_key, scan("FILE-4")).await, 200);
    let disabled = server
        .call(
            "PATCH",
            "/admin/tenants/acme",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(disabled.0, 200, "{disabled:?}");
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("tenant no longer in rms.toml"), "{log}");
}

#[test]
fn one_key_under_two_tenants_of_rms_toml_keeps_rms_serve_from_starting() {
    let dir = scratch_dir("admin-shared-key");
    let text = format!(
        "{}\n[[tenants]]\nid = \"globex\"\n[tenants.keys]\nclickpost = \"{CLICKPOST_KEY}\"\n",
        config(&dir, "http://127.0.0.1:9/hook", "\"1s\"", 10)
    );
    let stderr = failed_start(&dir, &text);
    assert!(
        stderr.contains(
            "tenants[1].keys.clickpost: the same key as tenants[0].keys.clickpost; a key \
             identifies one tenant"
        ),
        "{stderr}"
    );
    assert!(!dir.join("rms.db").exists(), "refused before the database");
}

#[tokio::test]
async fn a_file_key_that_a_tenant_of_the_admin_api_holds_keeps_rms_serve_from_starting() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("admin-taken-key");
    let receiver = Receiver::start(None);
    let text = config(&dir, &receiver.url("/ok"), "\"1s\"", 10);
    let mut server = Server::start(&dir, &text).await;
    let globex_key = "globex-clickpost-key-1";
    api_tenant(&server, "globex", globex_key, &receiver.url("/ok")).await;
    assert!(server.terminate().success());
    drop(server);

    let stderr = failed_start(&dir, &text.replace(CLICKPOST_KEY, globex_key));
    for part in [
        "tenants[0].keys.clickpost: this key is tenant globex's clickpost key in the database",
        "a key identifies one tenant and never moves to another",
        "rms key revoke globex clickpost KEY_ID --local",
    ] {
        assert!(stderr.contains(part), "{part:?} in {stderr}");
    }
    // Nothing was changed: the key is still globex's, acme still has its own.
    let server = Server::start(&dir, &text).await;
    assert_eq!(notify(&server, globex_key, scan("GLOBEX-2")).await, 200);
    assert_eq!(notify(&server, CLICKPOST_KEY, scan("ACME-2")).await, 200);
}

/// Every form of a private target the attack report sent: refused at write time by the admin
/// API and by `rms.toml`, with the same reason, when private targets are not allowed.
#[tokio::test]
async fn private_push_urls_are_refused_alike_by_the_admin_api_and_rms_toml() {
    let dir = scratch_dir("admin-private-urls");
    let database = format!("database = \"{}\"\n", dir.join("rms.db").display());
    let server = Server::start(&dir, &database).await;
    let created = server
        .call("POST", "/admin/tenants", Some(json!({"id": "globex"})))
        .await;
    assert_eq!(created.0, 201);
    let forms = [
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://127.1/hook",
        "https://0x7f000001/hook",
        "https://0x7f.1/hook",
        "https://2130706433/hook",
        "https://017700000001/hook",
        "https://0.0.0.0/hook",
        "https://[::]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:7f00:1]/hook",
        "https://[::127.0.0.1]/hook",
        "https://10.0.0.1/hook",
        "https://172.16.0.1/hook",
        "https://192.168.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://100.64.0.1/hook",
        "https://[fc00::1]/hook",
        "https://[fe80::1]/hook",
        "https://localhost/hook",
        "https://foo.localhost/hook",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://LOCALHOST/hook",
        "http://client.example/hook",
        "https://user:pw@client.example/hook",
    ];
    for url in forms {
        let (status, answer) = server
            .call(
                "PUT",
                "/admin/tenants/globex/push",
                Some(json!({"url": url})),
            )
            .await;
        assert_eq!(status, 400, "{url}: {answer}");
        assert_eq!(answer["field"], "url", "{url}: {answer}");
        let reason = answer["error"]
            .as_str()
            .unwrap()
            .strip_prefix("url: ")
            .unwrap()
            .to_owned();
        let file =
            format!("{database}[[tenants]]\nid = \"acme\"\n[tenants.push]\nurl = \"{url}\"\n");
        let stderr = failed_start(&dir, &file);
        assert!(
            stderr.contains(&format!("tenants[0].push.url: {reason}")),
            "{url}: the API said {reason:?}, the file {stderr:?}"
        );
    }
    assert_eq!(
        server
            .call("GET", "/admin/tenants/globex/push", None)
            .await
            .0,
        404
    );
    let saved = server
        .call(
            "PUT",
            "/admin/tenants/globex/push",
            Some(json!({"url": "https://client.example/hook"})),
        )
        .await;
    assert_eq!(saved.0, 200, "{saved:?}");
}

#[tokio::test]
async fn pull_accounts_are_set_through_the_api_and_their_secrets_never_come_back() {
    let dir = scratch_dir("admin-pull");
    // Nothing is pushed here: the Push Config's URL is a closed port.
    let server = Server::start(&dir, &config(&dir, "http://127.0.0.1:9/ok", "\"1s\"", 10)).await;
    let created = server
        .call("POST", "/admin/tenants", Some(json!({"id": "globex"})))
        .await;
    assert_eq!(created.0, 201, "{created:?}");
    let none = server.call("GET", "/admin/tenants/globex/pull", None).await;
    assert_eq!(none, (200, json!([])));

    let secret = "cp-pull-s3cr3t-0001";
    let saved = server
        .call(
            "PUT",
            "/admin/tenants/globex/pull/clickpost",
            Some(json!({"user": "globex-api", "secret": secret})),
        )
        .await;
    assert_eq!(
        saved,
        (
            200,
            json!({"carrier": "clickpost", "base_url": "https://api.clickpost.in",
                   "user": "globex-api", "secret_set": true})
        )
    );
    // `rms serve` allows private targets: a local fake of the carrier's API can be named.
    let changed = server
        .call(
            "PUT",
            "/admin/tenants/globex/pull/clickpost",
            Some(json!({"user": "globex-api-2", "base_url": "http://127.0.0.1:9/"})),
        )
        .await;
    assert_eq!(changed.0, 200, "{changed:?}");
    assert_eq!(changed.1["base_url"], "http://127.0.0.1:9");
    let listed = server.call("GET", "/admin/tenants/globex/pull", None).await;
    assert_eq!(listed.1.as_array().unwrap().len(), 1);
    assert_eq!(listed.1[0]["user"], "globex-api-2");
    assert_eq!(listed.1[0]["secret_set"], true);
    for answer in [&saved, &changed, &listed] {
        assert!(!answer.1.to_string().contains(secret), "{answer:?}");
    }

    assert_field(
        &server
            .call(
                "PUT",
                "/admin/tenants/globex/pull/shipway",
                Some(json!({"user": "globex"})),
            )
            .await,
        "secret",
    );
    assert_field(
        &server
            .call(
                "PUT",
                "/admin/tenants/globex/pull/fedex",
                Some(json!({"user": "u", "secret": "s"})),
            )
            .await,
        "carrier",
    );
    assert_field(
        &server
            .call(
                "PUT",
                "/admin/tenants/globex/pull/shipway",
                Some(json!({"user": "u", "secret": "s", "base_url": "ftp://shipway.in"})),
            )
            .await,
        "base_url",
    );
    let unknown_member = server
        .call(
            "PUT",
            "/admin/tenants/globex/pull/shipway",
            Some(json!({"user": "u", "secret": "s", "password": "p"})),
        )
        .await;
    assert_eq!(unknown_member.0, 400, "{unknown_member:?}");
    assert_eq!(
        server
            .call("GET", "/admin/tenants/nobody/pull", None)
            .await
            .0,
        404
    );

    // A tenant of rms.toml: read, never changed.
    let acme = server.call("GET", "/admin/tenants/acme/pull", None).await;
    assert_eq!(acme, (200, json!([])));
    for (method, body) in [
        ("PUT", Some(json!({"user": "acme", "secret": "s"}))),
        ("DELETE", None),
    ] {
        let refused = server
            .call(method, "/admin/tenants/acme/pull/shipway", body)
            .await;
        assert_eq!(refused.0, 409, "{refused:?}");
        assert!(refused.1["error"].as_str().unwrap().contains("rms.toml"));
    }

    let removed = server
        .call("DELETE", "/admin/tenants/globex/pull/clickpost", None)
        .await;
    assert_eq!(removed.0, 204, "{removed:?}");
    let again = server
        .call("DELETE", "/admin/tenants/globex/pull/clickpost", None)
        .await;
    assert_eq!(again.0, 404, "{again:?}");
    assert_eq!(
        server.call("GET", "/admin/tenants/globex/pull", None).await,
        (200, json!([]))
    );
}

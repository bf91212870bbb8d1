//! `rms serve` as a user runs it: the built binary on a free loopback port, a test receiver
//! (Python, verifying signatures with `standardwebhooks`) as the client's endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::Receiver;
use serde_json::Value;
use shared::Carrier;

use crate::common;

use common::{config, fixture, scratch_dir, wait_for, Server, CLICKPOST_KEY, SECRET};

#[tokio::test]
async fn every_fixture_is_delivered_once_with_the_configured_headers() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("serve-fixtures");
    let receiver = Receiver::start(Some(SECRET));
    let server = Server::start(&dir, &config(&dir, &receiver.url("/ok"), "\"1s\"", 10)).await;
    let fixtures = common::samples(|carrier| match carrier {
        Carrier::Clickpost => CLICKPOST_KEY.to_owned(),
        other => format!("serve-test-{other}"),
    });
    let mut accepted = HashSet::new();
    for (path, (header, key), name) in &fixtures {
        let (status, answer) = server
            .post(path, &[(*header, key.as_str())], fixture(name))
            .await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some("accepted")),
            "{name}: {answer}"
        );
        for id in answer["event_ids"].as_array().unwrap() {
            accepted.insert(id.as_str().unwrap().to_owned());
        }
    }
    assert_eq!(accepted.len(), 9);
    // Duplicates give no second delivery.
    for (path, (header, key), name) in &fixtures {
        let (status, answer) = server
            .post(path, &[(*header, key.as_str())], fixture(name))
            .await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some("duplicate")),
            "{name}"
        );
    }

    let requests = wait_for(&receiver, 9, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requests_after = receiver.requests().await;
    assert_eq!(
        requests_after.len(),
        9,
        "one delivery per event: {}",
        requests.len()
    );
    let delivered: HashSet<String> = requests_after
        .iter()
        .map(|r| r["headers"]["webhook-id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered, accepted);
    for r in &requests_after {
        assert_eq!(r["headers"]["authorization"], "Bearer acme-token");
        assert_eq!(r["headers"]["x-client-id"], "acme");
        assert_eq!(r["signature"], "valid");
    }
    // Probes and bad keys answer as API Gateway would.
    let probe = server
        .http
        .get(format!("{}/rms/in/api/st/notify", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status().as_u16(), 200);
    let (status, _) = server
        .post(
            "/rms/in/api/st/notify",
            &[("x-api-key", "wrong")],
            fixture("shiprocket/in_transit_official.json"),
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_event_on_the_third_attempt() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("serve-retry");
    let receiver = Receiver::start(Some(SECRET));
    let server = Server::start(
        &dir,
        &config(
            &dir,
            &receiver.url("/fail-then-ok/2/x"),
            "\"200ms\", \"300ms\"",
            10,
        ),
    )
    .await;
    let (status, _) = server
        .post(
            "/rms/in/api/clickpost/notify",
            &[("webhook_key", CLICKPOST_KEY)],
            fixture("clickpost/delivered_selected_captured.json"),
        )
        .await;
    assert_eq!(status, 200);
    let requests = wait_for(&receiver, 3, Duration::from_secs(10)).await;
    assert_eq!(requests.len(), 3);
    let attempts = server
        .get("/admin/tenants/acme/deliveries?awb=81125552141")
        .await;
    let outcomes: Vec<&str> = attempts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["retry", "retry", "delivered"]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(receiver.requests().await.len(), 3, "not delivered again");
}

#[tokio::test]
async fn after_max_attempts_the_event_is_a_dead_letter_listed_by_rms_dlq() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("serve-dead");
    let receiver = Receiver::start(None);
    let server = Server::start(
        &dir,
        &config(&dir, &receiver.url("/status/503"), "\"100ms\"", 3),
    )
    .await;
    let (_, answer) = server
        .post(
            "/rms/in/api/clickpost/notify",
            &[("webhook_key", CLICKPOST_KEY)],
            fixture("clickpost/out_for_delivery_all_status.json"),
        )
        .await;
    let event_id = answer["event_ids"][0].as_str().unwrap().to_owned();

    let started = Instant::now();
    let dead = loop {
        let dead = server.get("/admin/dead-letters").await;
        if !dead.as_array().unwrap().is_empty() || started.elapsed() > Duration::from_secs(10) {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead[0]["event_id"], event_id.as_str());
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("max attempts"),
        "{dead}"
    );
    assert_eq!(
        receiver.requests().await.len(),
        3,
        "exactly max_attempts attempts"
    );

    let listed = Command::new(env!("CARGO_BIN_EXE_rms"))
        .args(["dlq", "list", "--json", "--database"])
        .arg(dir.join("rms.db"))
        .output()
        .unwrap();
    assert!(listed.status.success());
    let line: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(line["event_id"], event_id.as_str());
}

#[tokio::test]
async fn sigterm_finishes_and_exits_zero() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("serve-term");
    let receiver = Receiver::start(None);
    let mut server = Server::start(&dir, &config(&dir, &receiver.url("/ok"), "\"1s\"", 10)).await;
    let status = server.terminate();
    assert_eq!(status.code(), Some(0));
}

/// A Clickpost scan for a new AWB: a new event each time.
fn scan(i: usize) -> Vec<u8> {
    format!(r#"{{"waybill":"CRASH{i:05}","clickpost_status_code":5,"timestamp":"2023-02-07T18:09:00Z"}}"#).into_bytes()
}

#[tokio::test]
async fn a_default_config_and_the_demo_keep_events_fsync_d_unless_told_os() {
    integration_tests::needs!(venv);
    let dir = scratch_dir("serve-durability");
    let receiver = Receiver::start(None);
    let text = config(&dir, &receiver.url("/ok"), "\"1s\"", 10);
    async fn durability(server: &Server) -> Value {
        server.get("/admin/health").await["durability"].clone()
    }

    let mut server = Server::start(&dir, &text).await;
    assert_eq!(
        durability(&server).await,
        "fsync",
        "a config without the key"
    );
    // The log's colours (ANSI escapes) taken out.
    let log: String = std::fs::read_to_string(&server.log)
        .unwrap()
        .split('\x1b')
        .map(|part| {
            part.split_once('m')
                .filter(|_| part.starts_with('['))
                .map_or(part, |(_, rest)| rest)
        })
        .collect();
    assert!(
        log.lines()
            .any(|l| l.contains("rms serve is up") && l.contains("durability=fsync")),
        "{log}"
    );
    server.terminate();

    let demo_db = dir.join("demo.db").display().to_string();
    let demo = ["--demo".to_owned(), "--database".to_owned(), demo_db];
    let mut server = Server::start_with_args(&dir, &demo, "info").await;
    assert_eq!(durability(&server).await, "fsync", "--demo");
    server.terminate();

    let mut server = Server::start(&dir, &format!("durability = \"os\"\n{text}")).await;
    assert_eq!(
        durability(&server).await,
        "os",
        "durability = \"os\" in the file"
    );
    server.terminate();

    let path = dir.join("rms.toml").display().to_string();
    let flag = ["--config", &path, "--durability", "os"].map(str::to_owned);
    let mut server = Server::start_with_args(&dir, &flag, "info").await;
    assert_eq!(durability(&server).await, "os", "--durability os");
    server.terminate();
}

#[tokio::test]
async fn every_event_answered_200_is_delivered_after_a_kill_9_and_a_restart() {
    integration_tests::needs!(venv);
    every_200_survives_a_kill_9("serve-crash", "").await;
}

#[tokio::test]
async fn every_event_answered_200_is_delivered_after_a_kill_9_and_a_restart_with_durability_os() {
    integration_tests::needs!(venv);
    every_200_survives_a_kill_9("serve-crash-os", "durability = \"os\"\n").await;
}

/// `rms serve` killed with SIGKILL mid-stream, then restarted on the same database: every event
/// that was answered 200 is delivered. `settings` go before the test configuration.
async fn every_200_survives_a_kill_9(name: &str, settings: &str) {
    let dir = scratch_dir(name);
    let receiver = Receiver::start(None);
    let text = format!(
        "{settings}{}",
        config(&dir, &receiver.url("/ok"), "\"200ms\"", 10)
    );
    let mut server = Server::start(&dir, &text).await;

    // Carriers posting as fast as they can, while the server is killed mid-stream.
    let base = server.base.clone();
    let so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = so_far.clone();
    let load = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut answered = HashSet::new();
        let mut posts = tokio::task::JoinSet::new();
        for i in 0..400 {
            let (http, base, counted) = (http.clone(), base.clone(), counted.clone());
            posts.spawn(async move {
                let response = http
                    .post(format!("{base}/rms/in/api/clickpost/notify"))
                    .header("webhook_key", CLICKPOST_KEY)
                    .body(scan(i))
                    .send()
                    .await
                    .ok()?;
                if response.status().as_u16() != 200 {
                    return None;
                }
                let answer: Value = response.json().await.ok()?;
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                answer["event_ids"][0].as_str().map(str::to_owned)
            });
            if i % 8 == 7 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        while let Some(result) = posts.join_next().await {
            if let Ok(Some(id)) = result {
                answered.insert(id);
            }
        }
        answered
    });
    // Killed once some events are answered (however busy the machine), while more are in flight.
    let started = Instant::now();
    while so_far.load(std::sync::atomic::Ordering::SeqCst) < 20
        && started.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().unwrap(); // SIGKILL: no chance to flush or finish anything
    server.child.wait().unwrap();
    let answered = load.await.unwrap();
    assert!(
        answered.len() > 10 && answered.len() < 400,
        "killed mid-stream: {} answered",
        answered.len()
    );

    let restarted = Server::start(&dir, &text).await;
    // A second server on the same database is refused: the one running owns its leases.
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_rms"))
        .args(["serve", "--config"])
        .arg(dir.join("rms.toml"))
        .args(["--listen", &format!("127.0.0.1:{}", common::free_port())])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains("another rms serve is using the database"),
        "{stderr}"
    );
    let started = Instant::now();
    let delivered = loop {
        let delivered: HashSet<String> = receiver
            .requests()
            .await
            .iter()
            .map(|r| r["headers"]["webhook-id"].as_str().unwrap().to_owned())
            .collect();
        if answered.is_subset(&delivered) || started.elapsed() > Duration::from_secs(30) {
            break delivered;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let lost: Vec<&String> = answered.difference(&delivered).collect();
    eprintln!(
        "answered 200: {}, delivered: {}, lost: {}",
        answered.len(),
        delivered.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "answered 200 but never delivered: {lost:?}"
    );
    drop(restarted);
}

/// `rms serve` with `args` in `dir`: its stderr once it exits, or `None` once it listens on
/// `port` (or is still running after 10 s).
fn start_up(
    dir: &std::path::Path,
    args: &[&str],
    port: Option<u16>,
) -> (Option<String>, std::process::Child) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rms"))
        .arg("serve")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if child.try_wait().unwrap().is_some() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return (Some(stderr), child);
        }
        if port.is_some_and(|p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (None, child)
}

fn refused(dir: &std::path::Path, args: &[&str]) -> String {
    match start_up(dir, args, None) {
        (Some(stderr), mut child) => {
            assert!(!child.wait().unwrap().success(), "{stderr}");
            stderr
        }
        (None, mut child) => {
            child.kill().unwrap();
            panic!("rms serve {args:?} started");
        }
    }
}

#[test]
fn each_start_up_mistake_is_refused_with_what_to_do() {
    let dir = scratch_dir("serve-mistakes");
    let free = format!("127.0.0.1:{}", common::free_port());

    let message = refused(&dir, &[]);
    assert!(
        message.contains("--demo") && message.contains("--config"),
        "{message}"
    );

    let message = refused(
        &dir,
        &[
            "--demo",
            "--listen",
            &free,
            "--database",
            "no/such/dir/x.db",
        ],
    );
    assert!(
        message.contains("folder no/such/dir") && message.contains("does not exist"),
        "{message}"
    );
    assert!(!dir.join("no").exists());

    std::fs::write(dir.join("notes.db"), "these are notes, not a database").unwrap();
    let message = refused(
        &dir,
        &["--demo", "--listen", &free, "--database", "notes.db"],
    );
    assert!(
        message.contains("notes.db is not an SQLite database"),
        "{message}"
    );

    // TOML's own message keeps its lines: the line in error, and a caret under the spot.
    std::fs::write(
        dir.join("bad.toml"),
        "listen = \"127.0.0.1:0\"\n[dispatch\n",
    )
    .unwrap();
    let message = refused(&dir, &["--config", "bad.toml"]);
    assert!(message.contains("line 2"), "{message}");
    assert!(
        message.lines().any(|l| l.contains("[dispatch")),
        "{message}"
    );
    assert!(
        message.lines().any(|l| l.trim_end().ends_with('^')),
        "{message}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let message = refused(&dir, &["--demo", "--listen", &format!("127.0.0.1:{port}")]);
    assert!(
        message.contains(&format!("port {port}")) && message.contains("--listen"),
        "{message}"
    );
    drop(taken);

    let message = refused(&dir, &["--demo", "--listen", "nowhere:80:80"]);
    assert!(message.contains("localhost:8080"), "{message}");

    // A host name is an address too; the log has no colour codes when it is not a terminal.
    let port = common::free_port();
    let (exited, mut child) = start_up(
        &dir,
        &["--demo", "--listen", &format!("localhost:{port}")],
        Some(port),
    );
    assert_eq!(exited, None, "refused: {exited:?}");
    let health = std::net::TcpStream::connect(("127.0.0.1", port));
    let mut log = String::new();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap());
    while std::io::BufRead::read_line(&mut lines, &mut log).unwrap() > 0
        && !log.contains("rms serve is up")
    {}
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(health.is_ok(), "not listening on 127.0.0.1:{port}");
    assert!(log.contains("rms serve is up"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in {log:?}");
}

#[test]
fn it_stops_on_sigterm_even_when_its_log_can_no_longer_be_written() {
    use std::io::BufRead;
    let dir = scratch_dir("serve-closed-log");
    let port = common::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rms"))
        .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read the log until the server is up, then close it, as `rms serve 2>&1 | head` does.
    let mut log = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while log.read_line(&mut line).unwrap() > 0 && !line.contains("rms serve is up") {}
    drop(log);
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("still running 10 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

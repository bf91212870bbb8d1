//! The ops commands as an operator runs them: the built `rms` binary on a scratch SQLite database
//! (`--local`), checking exit codes, messages, and that no secret is ever printed back.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use shared::adapters::sqlite::SqliteStore;

/// A fresh database, as `rms serve` would have made it.
fn database(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ops-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rms.db");
    drop(SqliteStore::open(&path).unwrap());
    path
}

/// `rms ARGS --local DB`, with no AWS names in the environment.
fn rms(db: &Path, args: &[&str]) -> Output {
    rms_with_stdin(db, args, b"")
}

fn rms_with_stdin(db: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut command = bare_rms(args);
    command.arg("--local").arg(db);
    run(command, stdin)
}

fn bare_rms(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rms"));
    command.args(args);
    for variable in [
        "RMS_CONFIG_TABLE",
        "RMS_EVENTS_TABLE",
        "RMS_QUEUE_URL",
        "RMS_DLQ_URL",
    ] {
        command.env_remove(variable);
    }
    command
}

fn run(mut command: Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Asserts success and returns stdout.
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Asserts exit code 1 with `error: …` on stderr, and returns that message.
fn fails(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let message = stderr(&out);
    assert!(message.starts_with("error: "), "{message}");
    message
}

/// Every line of stdout as JSON.
fn json_lines(out: Output) -> Vec<Value> {
    ok(out)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

const CLICKPOST_KEY: &str = "clickpost-key-of-acme-0001";

#[test]
fn a_tenant_is_created_listed_shown_and_disabled() {
    let db = database("tenant");
    let created = ok(rms(&db, &["tenant", "create", "acme"]));
    assert!(created.contains("tenant acme created"), "{created}");
    ok(rms(&db, &["tenant", "create", "zeta", "--no-source"]));

    let list = ok(rms(&db, &["tenant", "list"]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("ID"), "{list}");
    assert!(lines[1].starts_with("acme  "), "{list}");
    assert!(lines[2].starts_with("zeta  "), "{list}");
    // Aligned: each column starts at the same offset on every line.
    let column = lines[0].find("ENABLED").unwrap();
    assert_eq!(&lines[1][column..column + 3], "yes", "{list}");

    let listed = json_lines(rms(&db, &["tenant", "list", "--json"]));
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["id"], "acme");
    assert_eq!(listed[1]["include_source"], false);

    let shown = ok(rms(&db, &["tenant", "show", "acme"]));
    assert!(shown.contains("enabled:"), "{shown}");
    assert!(shown.contains("not configured"), "{shown}");

    ok(rms(&db, &["tenant", "disable", "acme"]));
    let shown = json_lines(rms(&db, &["tenant", "show", "acme", "--json"]));
    assert_eq!(shown[0]["enabled"], false);
    assert_eq!(shown[0]["push"], Value::Null);
    ok(rms(&db, &["tenant", "enable", "acme"]));
    let shown = json_lines(rms(&db, &["tenant", "show", "acme", "--json"]));
    assert_eq!(shown[0]["enabled"], true);
}

#[test]
fn creating_a_tenant_twice_fails_and_says_it_exists() {
    let db = database("duplicate");
    ok(rms(&db, &["tenant", "create", "acme"]));
    let message = fails(rms(&db, &["tenant", "create", "acme"]));
    assert!(message.contains("tenant acme exists already"), "{message}");
}

#[test]
fn database_is_another_name_for_local_and_the_help_says_so() {
    let db = database("alias");
    ok(rms(&db, &["tenant", "create", "acme"]));
    let listed = ok(run(
        bare_rms(&["tenant", "list", "--database", db.to_str().unwrap()]),
        b"",
    ));
    assert!(listed.contains("acme"), "{listed}");
    let help = ok(run(bare_rms(&["tenant", "list", "--help"]), b""));
    assert!(help.contains("[alias: --database]"), "{help}");
}

#[test]
fn an_unknown_tenant_or_a_bad_id_is_an_error() {
    let db = database("unknown");
    let message = fails(rms(&db, &["tenant", "show", "nobody"]));
    assert!(message.contains("no tenant nobody"), "{message}");
    let message = fails(rms(&db, &["tenant", "create", "not valid!"]));
    assert!(message.contains("id: invalid tenant id"), "{message}");
}

#[test]
fn a_given_key_is_never_printed_and_a_generated_one_is_printed_once() {
    let db = database("keys");
    ok(rms(&db, &["tenant", "create", "acme"]));

    let added = rms(
        &db,
        &["key", "add", "acme", "clickpost", "--key", CLICKPOST_KEY],
    );
    let text = ok(added);
    assert!(!text.contains(CLICKPOST_KEY), "{text}");
    assert!(text.contains("clickpost key"), "{text}");

    let generated = rms(&db, &["key", "add", "acme", "shipway"]);
    let warning = stderr(&generated);
    let text = ok(generated);
    assert!(warning.contains("only time the key is shown"), "{warning}");
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .unwrap()
        .to_owned();
    assert!(key.len() >= 32, "{key}");
    assert_eq!(text.matches(&key).count(), 1, "{text}");

    let from_stdin = rms_with_stdin(
        &db,
        &["key", "add", "acme", "shiprocket", "--key-stdin", "--json"],
        b"shiprocket-key-of-acme-01\n",
    );
    let added = json_lines(from_stdin);
    assert_eq!(added[0]["carrier"], "shiprocket");
    assert!(added[0].get("key").is_none(), "{}", added[0]);

    let list = ok(rms(&db, &["key", "list", "acme"]));
    assert_eq!(list.lines().count(), 4, "{list}");
    let listed = json_lines(rms(&db, &["key", "list", "acme", "--json"]));
    assert_eq!(listed.len(), 3);
    for text in [list, serde_json::to_string(&listed).unwrap()] {
        assert!(!text.contains(CLICKPOST_KEY), "{text}");
        assert!(!text.contains(&key), "{text}");
        assert!(!text.contains("shiprocket-key-of-acme-01"), "{text}");
    }
}

#[test]
fn a_third_key_for_a_carrier_is_refused_until_one_is_revoked() {
    let db = database("rotation");
    ok(rms(&db, &["tenant", "create", "acme"]));
    ok(rms(
        &db,
        &["key", "add", "acme", "clickpost", "--key", CLICKPOST_KEY],
    ));
    ok(rms(
        &db,
        &[
            "key",
            "add",
            "acme",
            "clickpost",
            "--key",
            "clickpost-key-of-acme-0002",
        ],
    ));
    let message = fails(rms(
        &db,
        &[
            "key",
            "add",
            "acme",
            "clickpost",
            "--key",
            "clickpost-key-of-acme-0003",
        ],
    ));
    assert!(message.contains("revoke the old one first"), "{message}");

    let listed = json_lines(rms(&db, &["key", "list", "acme", "--json"]));
    let old = listed[0]["key_id"].as_str().unwrap().to_owned();
    let revoked = ok(rms(&db, &["key", "revoke", "acme", "clickpost", &old]));
    assert!(revoked.contains("revoked"), "{revoked}");
    let message = fails(rms(&db, &["key", "revoke", "acme", "clickpost", &old]));
    assert!(message.contains("has no clickpost key"), "{message}");

    ok(rms(
        &db,
        &[
            "key",
            "add",
            "acme",
            "clickpost",
            "--key",
            "clickpost-key-of-acme-0003",
        ],
    ));
    assert_eq!(
        json_lines(rms(&db, &["key", "list", "acme", "--json"])).len(),
        2
    );
}

#[test]
fn an_unknown_carrier_is_refused_with_the_valid_ones() {
    let db = database("carrier");
    ok(rms(&db, &["tenant", "create", "acme"]));
    let message = fails(rms(&db, &["key", "add", "acme", "delhivery"]));
    assert!(message.contains("carrier: unknown carrier"), "{message}");
    assert!(
        message.contains("clickpost, shiprocket, shipway"),
        "{message}"
    );
}

#[test]
fn push_set_refuses_bad_input_and_names_the_field() {
    let db = database("push-invalid");
    ok(rms(&db, &["tenant", "create", "acme"]));
    let set = |extra: &[&str]| {
        let mut args = vec!["push", "set", "acme"];
        args.extend_from_slice(extra);
        rms(&db, &args)
    };

    let message = fails(set(&["--url", "client.example/hook"]));
    assert!(message.contains("url: not an absolute URL"), "{message}");
    let message = fails(set(&["--url", "ftp://client.example/hook"]));
    assert!(
        message.contains("url: the scheme ftp is not supported; use an https:// URL"),
        "{message}"
    );
    let message = fails(set(&[
        "--url",
        "https://client.example/hook",
        "--header",
        "Bad Name=x",
    ]));
    assert!(message.contains("headers.Bad Name"), "{message}");
    assert!(message.contains("not a valid header name"), "{message}");
    let message = fails(set(&[
        "--url",
        "https://client.example/hook",
        "--status",
        "DELIVERD",
    ]));
    assert!(message.contains("statuses: unknown status"), "{message}");
    assert!(message.contains("DELIVERED, CANCELLED"), "{message}");
    let message = fails(set(&[
        "--url",
        "https://client.example/hook",
        "--timeout",
        "2m",
    ]));
    assert!(message.contains("timeout_ms"), "{message}");
    let message = fails(set(&[
        "--url",
        "https://client.example/hook",
        "--delivery",
        "newest",
    ]));
    assert!(
        message.contains("delivery: unknown delivery \"newest\"; valid values are: every, latest"),
        "{message}"
    );
    let message = fails(rms(
        &db,
        &[
            "push",
            "set",
            "nobody",
            "--url",
            "https://client.example/hook",
        ],
    ));
    assert!(message.contains("no tenant nobody"), "{message}");

    // Local mode is `rms serve` with allow_private_targets: plain http to a local receiver is fine.
    ok(set(&["--url", "http://127.0.0.1:9000/hook"]));
}

#[test]
fn push_show_names_the_headers_but_never_prints_their_values_or_the_secret() {
    let db = database("push-show");
    ok(rms(&db, &["tenant", "create", "acme"]));
    let saved = rms(
        &db,
        &[
            "push",
            "set",
            "acme",
            "--url",
            "https://client.example/hook",
            "--header",
            "Authorization=Bearer top-secret-token",
            "--header",
            "X-Client-Id=acme-client-42",
            "--status",
            "delivered",
            "--status",
            "RTO_DELIVERED",
            "--timeout",
            "5s",
            "--generate-secret",
        ],
    );
    let warning = stderr(&saved);
    let text = ok(saved);
    assert!(
        warning.contains("only time the signing secret is shown"),
        "{warning}"
    );
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("new signing secret: "))
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(!text.contains("top-secret-token"), "{text}");

    let shown = ok(rms(&db, &["push", "show", "acme"]));
    let json = json_lines(rms(&db, &["push", "show", "acme", "--json"]));
    let tenant = json_lines(rms(&db, &["tenant", "show", "acme", "--json"]));
    for text in [shown.clone(), json[0].to_string(), tenant[0].to_string()] {
        assert!(!text.contains("top-secret-token"), "{text}");
        assert!(!text.contains("acme-client-42"), "{text}");
        assert!(!text.contains(&secret), "{text}");
    }
    assert!(shown.contains("Authorization, X-Client-Id"), "{shown}");
    assert!(shown.contains("DELIVERED, RTO_DELIVERED"), "{shown}");
    assert_eq!(json[0]["timeout_ms"], 5000);
    assert_eq!(json[0]["signing_secret"], true);
    assert_eq!(json[0]["delivery"], "every", "the default");
    assert!(shown.contains("every event"), "{shown}");
    assert_eq!(json[0]["headers"][0], "Authorization");

    // Without --header the headers are kept; --no-headers removes them.
    ok(rms(
        &db,
        &[
            "push",
            "set",
            "acme",
            "--url",
            "https://client.example/v2",
            "--disable",
            "--delivery",
            "latest",
        ],
    ));
    let json = json_lines(rms(&db, &["push", "show", "acme", "--json"]));
    assert_eq!(json[0]["headers"].as_array().unwrap().len(), 2);
    assert_eq!(json[0]["enabled"], false);
    assert_eq!(json[0]["delivery"], "latest");
    assert_eq!(json[0]["statuses"], serde_json::json!([]));
    ok(rms(
        &db,
        &[
            "push",
            "set",
            "acme",
            "--url",
            "https://client.example/v2",
            "--no-headers",
            "--remove-secret",
        ],
    ));
    let json = json_lines(rms(&db, &["push", "show", "acme", "--json"]));
    assert_eq!(json[0]["headers"], serde_json::json!([]));
    assert_eq!(json[0]["signing_secret"], false);
}

/// An HTTP server on loopback that answers every request with `answer` (status line and body)
/// and hands over each request it received.
fn receiver(answer: &'static str) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (sender, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let request = read_request(&mut stream);
            let (status, body) = answer.split_once('|').unwrap();
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
            if sender.send(request).is_err() {
                return;
            }
        }
    });
    (url, received)
}

/// One HTTP/1.1 request: the head, then the body by its content-length.
fn read_request(stream: &mut TcpStream) -> String {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).unwrap();
        request.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&request).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                return text;
            }
        }
        if n == 0 {
            return text;
        }
    }
}

#[test]
fn push_test_sends_a_sample_event_and_shows_the_answer() {
    let db = database("push-test");
    ok(rms(&db, &["tenant", "create", "acme"]));
    let (url, received) = receiver("200 OK|received");
    ok(rms(
        &db,
        &[
            "push",
            "set",
            "acme",
            "--url",
            &url,
            "--header",
            "X-Client-Id=acme-42",
        ],
    ));
    let answer = json_lines(rms(
        &db,
        &[
            "push",
            "test",
            "acme",
            "--status",
            "out_for_delivery",
            "--json",
        ],
    ));
    assert_eq!(answer[0]["outcome"], "delivered");
    assert_eq!(answer[0]["http_status"], 200);
    assert_eq!(answer[0]["body_prefix"], "received");
    let request = received.recv().unwrap();
    assert!(request.contains("acme-42"), "{request}");
    assert!(request.contains("OUT_FOR_DELIVERY"), "{request}");

    // Nobody listens there: not delivered, exit 1, the outcome on stdout.
    let closed = format!("http://127.0.0.1:{}/hook", free_port());
    ok(rms(&db, &["push", "set", "acme", "--url", &closed]));
    let out = rms(&db, &["push", "test", "acme"]);
    let shown = stdout(&out);
    let message = fails(out);
    assert!(shown.contains("connect_failed"), "{shown}");
    assert!(message.contains("not delivered"), "{message}");

    let message = fails(rms(&db, &["push", "test", "acme", "--status", "DELIVERD"]));
    assert!(message.contains("status: unknown status"), "{message}");
}

#[test]
fn dlq_list_and_redrive_on_an_empty_database() {
    let db = database("dlq");
    let list = ok(rms(&db, &["dlq", "list"]));
    assert_eq!(list, "no dead letters\n");
    assert!(json_lines(rms(&db, &["dlq", "list", "--json"])).is_empty());
    let redrive = ok(rms(&db, &["dlq", "redrive"]));
    assert!(redrive.contains("0 dead letter(s) put back"), "{redrive}");
    let redrive = json_lines(rms(&db, &["dlq", "redrive", "--json"]));
    assert_eq!(redrive[0]["redriven"], 0);
    let out = rms(&db, &["dlq", "redrive", "17"]);
    assert_eq!(out.status.code(), Some(1));
    let message = fails(out);
    assert!(
        message.contains("no dead letter 17") && message.contains("rms dlq list"),
        "{message}"
    );

    // Every list command answers an empty result the same way: one line, no table header.
    ok(rms(&db, &["tenant", "create", "acme"]));
    for (args, nothing) in [
        (
            &["key", "list", "acme"][..],
            "tenant acme has no carrier keys",
        ),
        (
            &["pull", "show", "acme"],
            "tenant acme has no pull accounts",
        ),
        (&["quarantine", "list"], "no quarantined bodies"),
        (
            &["deliveries", "acme", "--awb", "X1"],
            "no delivery attempts of tenant acme match",
        ),
        (&["shipments", "--stale"], "no stale shipments"),
    ] {
        assert_eq!(ok(rms(&db, args)), format!("{nothing}\n"), "{args:?}");
    }
    // The flag `rms dlq` had before the ops commands still works.
    let old = Command::new(env!("CARGO_BIN_EXE_rms"))
        .args(["dlq", "list", "--json", "--database"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(old.status.success(), "{}", stderr(&old));
    let message = fails(rms(&db, &["dlq", "list", "--tenant", "nobody"]));
    assert!(message.contains("no tenant nobody"), "{message}");
}

#[test]
fn deliveries_and_replay_need_an_awb_or_a_time_range() {
    let db = database("deliveries");
    ok(rms(&db, &["tenant", "create", "acme"]));
    for args in [
        &["deliveries", "acme"][..],
        &["deliveries", "acme", "--from", "2025-01-01T00:00:00Z"],
        &[
            "deliveries",
            "acme",
            "--awb",
            "X1",
            "--from",
            "2025-01-01T00:00:00Z",
        ],
        &[
            "deliveries",
            "acme",
            "--from",
            "yesterday",
            "--to",
            "2025-01-01T00:00:00Z",
        ],
        &["replay", "acme"],
    ] {
        let out = rms(&db, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }

    let none = ok(rms(&db, &["deliveries", "acme", "--awb", "X1"]));
    assert_eq!(none, "no delivery attempts of tenant acme match\n");
    assert!(json_lines(rms(
        &db,
        &[
            "deliveries",
            "acme",
            "--from",
            "2025-01-01T00:00:00Z",
            "--to",
            "2025-01-02T00:00:00+05:30",
            "--json"
        ]
    ))
    .is_empty());
    let message = fails(rms(
        &db,
        &[
            "deliveries",
            "acme",
            "--from",
            "2025-01-01T00:00:00Z",
            "--to",
            "2025-03-01T00:00:00Z",
        ],
    ));
    assert!(
        message.contains("to: a time range can span at most 31 days"),
        "{message}"
    );

    let replayed = json_lines(rms(&db, &["replay", "acme", "--awb", "X1", "--json"]));
    assert_eq!(replayed[0]["replayed"], 0);
}

#[test]
fn a_missing_local_database_is_named_and_not_created() {
    let db = database("missing").with_file_name("nothing-here.db");
    let message = fails(rms(&db, &["tenant", "list"]));
    assert!(message.contains("--local"), "{message}");
    assert!(message.contains("nothing-here.db"), "{message}");
    assert!(!db.exists());
}

#[test]
fn without_local_the_missing_aws_names_are_named() {
    let message = fails(run(bare_rms(&["tenant", "list"]), b""));
    for name in [
        "--config-table",
        "RMS_CONFIG_TABLE",
        "--dlq-url",
        "RMS_DLQ_URL",
    ] {
        assert!(message.contains(name), "{message}");
    }
    let mut command = bare_rms(&[
        "dlq",
        "list",
        "--config-table",
        "config",
        "--events-table",
        "events",
    ]);
    command.env("RMS_QUEUE_URL", "http://127.0.0.1:1/queue");
    let message = fails(run(command, b""));
    assert!(message.contains("--dlq-url (or RMS_DLQ_URL)"), "{message}");
    assert!(!message.contains("--queue-url"), "{message}");
    assert!(!message.contains("--config-table"), "{message}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `rms serve` on a free loopback port; killed when dropped.
struct Serve {
    child: Child,
    port: u16,
}

impl Serve {
    fn start(db: &Path, receiver_url: &str) -> Serve {
        let config = db.with_file_name("rms.toml");
        std::fs::write(
            &config,
            format!(
                r#"
database = "{db}"
allow_private_targets = true
[dispatch]
timeout = "2s"
retry_schedule = ["100ms"]
max_attempts = 2
[[tenants]]
id = "acme"
[tenants.keys]
clickpost = "{CLICKPOST_KEY}"
[tenants.push]
url = "{receiver_url}"
"#,
                db = db.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_rms"))
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "rms serve did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Serve { child, port }
    }

    /// Posts a carrier payload; the answer's status line.
    fn notify(&self, path: &str, key_header: &str, body: &[u8]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{key_header}: {CLICKPOST_KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.lines().next().unwrap_or_default().to_owned()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_tenant_of_rms_toml_is_marked_and_the_commands_that_would_change_it_say_why_they_refuse() {
    let db = database("file-tenant");
    let (url, _received) = receiver("200 OK|ok");
    let serve = Serve::start(&db, &url);
    ok(rms(&db, &["tenant", "create", "zeta"]));

    let list = ok(rms(&db, &["tenant", "list"]));
    let lines: Vec<&str> = list.lines().collect();
    let column = lines[0].find("MANAGED BY").unwrap();
    assert_eq!(&lines[1][column..], "rms.toml", "{list}");
    assert_eq!(&lines[2][column..], "admin API", "{list}");
    let shown = ok(rms(&db, &["tenant", "show", "acme"]));
    assert!(
        shown.contains("managed by:  rms.toml (edit the file and restart rms serve to change it)"),
        "{shown}"
    );
    let json = json_lines(rms(&db, &["tenant", "show", "acme", "--json"]));
    assert_eq!(json[0]["file_managed"], true);

    let key_id = json[0]["keys"][0]["key_id"].as_str().unwrap().to_owned();
    for args in [
        vec!["tenant", "disable", "acme"],
        vec!["tenant", "enable", "acme"],
        vec!["tenant", "create", "acme"],
        vec!["key", "add", "acme", "shipway"],
        vec!["key", "revoke", "acme", "clickpost", &key_id],
        vec![
            "push",
            "set",
            "acme",
            "--url",
            "http://127.0.0.1:9/elsewhere",
        ],
    ] {
        let message = fails(rms(&db, &args));
        assert!(
            message.starts_with("error: tenant acme is managed by rms.toml")
                && message.contains("edit its [[tenants]] entry in rms.toml and restart rms serve"),
            "{args:?}: {message}"
        );
    }
    // Reads, and what is not a change of the tenant, still work.
    ok(rms(&db, &["key", "list", "acme"]));
    ok(rms(&db, &["push", "show", "acme"]));
    ok(rms(&db, &["push", "test", "acme"]));
    ok(rms(&db, &["tenant", "disable", "zeta"]));
    drop(serve);
}

#[test]
fn an_event_that_failed_for_good_is_in_deliveries_and_the_dlq_and_can_be_redriven_and_replayed() {
    let db = database("flow");
    let (url, received) = receiver("503 Service Unavailable|down");
    let serve = Serve::start(&db, &url);
    let fixture = integration_tests::fixture("clickpost/out_for_delivery_all_status.json");
    let answer = serve.notify("/rms/in/api/clickpost/notify", "webhook_key", &fixture);
    assert!(answer.contains("200"), "{answer}");

    // Two attempts (max_attempts), then a dead letter; `rms` reads while `rms serve` runs.
    let started = Instant::now();
    let dead = loop {
        let dead = json_lines(rms(&db, &["dlq", "list", "--json"]));
        if !dead.is_empty() {
            break dead;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no dead letter"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(dead.len(), 1);
    for key in ["id", "event_id", "tenant_id", "reason", "attempts"] {
        assert!(dead[0].get(key).is_some(), "{key}: {}", dead[0]);
    }
    assert_eq!(dead[0]["tenant_id"], "acme");
    let list = ok(rms(&db, &["dlq", "list", "--tenant", "acme"]));
    assert!(
        list.contains(dead[0]["event_id"].as_str().unwrap()),
        "{list}"
    );
    for _ in 0..2 {
        received.recv_timeout(Duration::from_secs(5)).unwrap();
    }
    assert!(
        received.recv_timeout(Duration::from_millis(300)).is_err(),
        "a third attempt"
    );

    let attempts = json_lines(rms(
        &db,
        &["deliveries", "acme", "--awb", "SF49245NER", "--json"],
    ));
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[1]["http_status"], 503);
    assert_eq!(attempts[0]["event_id"], dead[0]["event_id"]);
    let table = ok(rms(&db, &["deliveries", "acme", "--awb", "SF49245NER"]));
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.contains("OUT_FOR_DELIVERY"), "{table}");

    let replayed = ok(rms(&db, &["replay", "acme", "--awb", "SF49245NER"]));
    assert!(
        replayed.contains("1 event(s) of tenant acme queued again"),
        "{replayed}"
    );
    let redriven = json_lines(rms(&db, &["dlq", "redrive", "--json"]));
    assert_eq!(redriven[0]["redriven"], 1);
    // Pushed again (and failing again: the receiver is still down).
    let request = received.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(request.contains("SF49245NER"), "{request}");
}

/// The same commands on the AWS back end (DynamoDB and SQS on the `moto_server` that
/// `scripts/test` starts): names from the environment, and https required for Push Config URLs.
#[tokio::test]
async fn on_aws_the_commands_use_the_stack_names_and_refuse_http_urls() {
    integration_tests::needs!(moto);
    let stack = integration_tests::Stack::create().await;
    let aws = |args: &[&str]| {
        let mut command = bare_rms(args);
        command
            .env("AWS_ENDPOINT_URL", integration_tests::moto_endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .env("RMS_CONFIG_TABLE", &stack.config_table)
            .env("RMS_EVENTS_TABLE", &stack.events_table)
            .env("RMS_QUEUE_URL", &stack.queue_url)
            .env("RMS_DLQ_URL", &stack.dlq_url);
        run(command, b"")
    };

    ok(aws(&["tenant", "create", "acme"]));
    let message = fails(aws(&["tenant", "create", "acme"]));
    assert!(message.contains("exists already"), "{message}");
    let tenants = json_lines(aws(&["tenant", "list", "--json"]));
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0]["id"], "acme");

    ok(aws(&[
        "key",
        "add",
        "acme",
        "clickpost",
        "--key",
        CLICKPOST_KEY,
    ]));
    let keys = ok(aws(&["key", "list", "acme"]));
    assert!(keys.contains("clickpost"), "{keys}");
    assert!(!keys.contains(CLICKPOST_KEY), "{keys}");

    let message = fails(aws(&[
        "push",
        "set",
        "acme",
        "--url",
        "http://client.example/hook",
    ]));
    assert!(
        message.contains("url: an http:// URL is not allowed"),
        "{message}"
    );
    // Checked before anything is written, as the admin-api Lambda and the dispatcher would.
    for (url, reason) in [
        (
            "https://169.254.169.254/latest/meta-data/",
            "url: 169.254.169.254 is a link-local (cloud metadata) address; private targets are not allowed",
        ),
        (
            "https://localhost:8443/hook",
            "url: localhost is a name of this machine (loopback); private targets are not allowed",
        ),
    ] {
        let message = fails(aws(&["push", "set", "acme", "--url", url]));
        assert!(message.contains(reason), "{url}: {message}");
    }
    ok(aws(&[
        "push",
        "set",
        "acme",
        "--url",
        "https://client.example/hook",
        "--header",
        "Authorization=Bearer aws-top-secret",
    ]));
    let shown = ok(aws(&["push", "show", "acme"]));
    assert!(shown.contains("Authorization"), "{shown}");
    assert!(!shown.contains("aws-top-secret"), "{shown}");

    assert!(json_lines(aws(&["dlq", "list", "--json"])).is_empty());
    assert!(json_lines(aws(&["deliveries", "acme", "--awb", "X1", "--json"])).is_empty());
    assert!(json_lines(aws(&["quarantine", "list", "--json"])).is_empty());
    let replayed = json_lines(aws(&["quarantine", "replay", "--json", "--tenant", "acme"]));
    assert_eq!(replayed[0]["results"], serde_json::json!([]));
    let carriers = json_lines(aws(&["carriers", "acme", "--json"]));
    assert_eq!(carriers.len(), 3);
    assert_eq!(carriers[0]["last_accepted_at"], Value::Null);
    assert_eq!(carriers[0]["hourly"], serde_json::json!([]));

    // Reconciliation on the stack: its accounts from the config table, its shipments from the
    // events table (none yet).
    assert!(json_lines(aws(&["shipments", "--stale", "--json"])).is_empty());
    let none = ok(aws(&["reconcile", "--dry-run"]));
    assert!(none.contains("rms pull set"), "{none}");
    ok(aws(&[
        "pull",
        "set",
        "acme",
        "clickpost",
        "--user",
        "acme-api",
        "--secret",
        "cp-pull-key",
    ]));
    let dry = ok(aws(&["reconcile", "--dry-run", "--quiet-for", "0s"]));
    let row: Vec<&str> = dry.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, ["acme", "clickpost", "0"], "{dry}");
}

/// Keeps `body` in the quarantine of `tenant` as ingest does when a body does not normalise, and
/// returns its id.
fn quarantine(
    db: &Path,
    tenant: &str,
    carrier: shared::Carrier,
    body: &str,
    reason: &str,
) -> String {
    use shared::ports::{Intake, Quarantined};
    let store = SqliteStore::open(db).unwrap();
    let tenant = shared::TenantId::parse(tenant).unwrap();
    // The body's SHA-256 in hex, as ingest computes it.
    let digest = shared::auth::Credential::new(body).digest().to_hex();
    let item = Quarantined {
        tenant_id: &tenant,
        carrier,
        body_digest: digest.clone(),
        body: body.as_bytes(),
        reason,
        received_at: chrono::Utc::now() - chrono::Duration::hours(1),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(store.quarantine(&item)).unwrap();
    runtime.block_on(store.quarantine(&item)).unwrap();
    digest
}

#[test]
fn a_quarantined_body_is_listed_shown_and_replayed_into_one_event() {
    let db = database("quarantine");
    ok(rms(&db, &["tenant", "create", "acme"]));
    // A body an earlier normaliser refused, which today's accepts.
    let fixed =
        r#"{"waybill":"QUAR-1","clickpost_status_code":8,"timestamp":"2026-11-22T09:00:00Z"}"#;
    let fixed_id = quarantine(
        &db,
        "acme",
        shared::Carrier::Clickpost,
        fixed,
        "clickpost_status_code: unknown 8",
    );

    let list = ok(rms(&db, &["quarantine", "list"]));
    assert!(list.starts_with("TENANT"), "{list}");
    assert!(list.contains(&fixed_id) && list.contains("never"), "{list}");
    assert_eq!(list.lines().count(), 2, "{list}");
    let listed = json_lines(rms(
        &db,
        &["quarantine", "list", "--json", "--carrier", "clickpost"],
    ));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["times"], 2);
    assert_eq!(listed[0]["last_replay"], Value::Null);
    assert!(json_lines(rms(
        &db,
        &["quarantine", "list", "--json", "--reason", "no such reason"]
    ))
    .is_empty());
    let message = fails(rms(&db, &["quarantine", "list", "--carrier", "fedex"]));
    assert!(message.contains("carrier:"), "{message}");

    let shown = ok(rms(&db, &["quarantine", "show", "acme", &fixed_id]));
    assert!(
        shown.contains("times:") && shown.contains("last replay:  never"),
        "{shown}"
    );
    assert!(
        shown.trim_end().ends_with(fixed),
        "the body comes last: {shown}"
    );
    let message = fails(rms(&db, &["quarantine", "show", "acme", "0123"]));
    assert!(message.contains("no quarantined body"), "{message}");

    let replayed = ok(rms(
        &db,
        &["quarantine", "replay", "--tenant", "acme", &fixed_id],
    ));
    assert!(replayed.contains("1 accepted, 0 duplicate"), "{replayed}");
    let again = json_lines(rms(
        &db,
        &[
            "quarantine",
            "replay",
            "--tenant",
            "acme",
            &fixed_id,
            "--json",
        ],
    ));
    assert_eq!(again[0]["duplicate"], 1, "{again:?}");
    assert_eq!(again[0]["results"][0]["outcome"], "duplicate");
    let events = again[0]["results"][0]["event_ids"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(events, 1);
    let shown = json_lines(rms(
        &db,
        &["quarantine", "show", "acme", &fixed_id, "--json"],
    ));
    assert_eq!(
        shown[0]["last_replay"]["outcome"], "duplicate",
        "kept, with its last replay"
    );
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(store.queue_depth().unwrap().0, 1, "queued once");

    // A body that still does not normalise: reported, and exit code 1.
    let broken_id = quarantine(
        &db,
        "acme",
        shared::Carrier::Shipway,
        r#"{"nothing":"here"}"#,
        "no awb",
    );
    let out = rms(&db, &["quarantine", "replay", "--carrier", "shipway"]);
    let report = stdout(&out);
    let message = fails(out);
    assert!(
        report.contains("invalid") && report.contains(&broken_id),
        "{report}"
    );
    assert!(message.contains("1 still invalid"), "{message}");
    // Ids name one tenant's bodies, and are not mixed with a filter.
    assert_eq!(
        rms(&db, &["quarantine", "replay", &fixed_id]).status.code(),
        Some(2)
    );
    assert_eq!(
        rms(
            &db,
            &[
                "quarantine",
                "replay",
                "--tenant",
                "acme",
                "--carrier",
                "shipway",
                &fixed_id
            ]
        )
        .status
        .code(),
        Some(2)
    );
}

#[test]
fn the_carrier_status_view_shows_each_carrier_with_never_for_what_was_not_seen() {
    use shared::ports::{Activity, Intake};
    let db = database("carriers");
    ok(rms(&db, &["tenant", "create", "acme"]));
    let store = SqliteStore::open(&db).unwrap();
    let acme = shared::TenantId::parse("acme").unwrap();
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(store.record_activity(
            &acme,
            shared::Carrier::Shipway,
            Activity::Rejected,
            at,
            Some("no awb"),
            1,
        ))
        .unwrap();
    // Three accepted requests recorded now (counts of one minute): in the last 24 hours.
    runtime
        .block_on(store.record_activity(
            &acme,
            shared::Carrier::Shipway,
            Activity::Accepted,
            chrono::Utc::now(),
            None,
            3,
        ))
        .unwrap();
    let view = ok(rms(&db, &["carriers", "acme"]));
    let lines: Vec<&str> = view.lines().collect();
    assert!(lines[0].starts_with("CARRIER"), "{view}");
    assert!(
        lines[1].starts_with("clickpost") && lines[1].contains("never"),
        "{view}"
    );
    assert!(
        lines[3].starts_with("shipway")
            && lines[3].contains("2026-11-27T10:00:00Z")
            && lines[3].ends_with("no awb"),
        "{view}"
    );
    let cells: Vec<&str> = lines[3].split_whitespace().collect();
    assert!(["3/0", "3/1"].contains(&cells[1]), "{view}");
    assert_eq!(lines[1].split_whitespace().nth(1), Some("0/0"), "{view}");
    let json = json_lines(rms(&db, &["carriers", "acme", "--json"]));
    assert_eq!(json.len(), 3);
    assert_eq!(json[2]["last_rejected_reason"], "no awb");
    assert_eq!(json[0]["last_accepted_at"], Value::Null);
    let message = fails(rms(&db, &["carriers", "nobody"]));
    assert!(message.contains("no tenant"), "{message}");
}

#[test]
fn a_pull_secret_is_taken_from_stdin_and_never_printed() {
    const SECRET: &str = "clickpost-pull-api-key-9f3e";
    let db = database("pull");
    ok(rms(&db, &["tenant", "create", "acme"]));
    let none = ok(rms(&db, &["pull", "show", "acme"]));
    assert!(none.contains("no pull accounts"), "{none}");

    // A new account needs its secret; the message names what to give.
    let message = fails(rms(
        &db,
        &["pull", "set", "acme", "clickpost", "--user", "acme-api"],
    ));
    assert!(
        message.contains("secret") && message.contains("API key"),
        "{message}"
    );

    let saved = rms_with_stdin(
        &db,
        &[
            "pull",
            "set",
            "acme",
            "clickpost",
            "--user",
            "acme-api",
            "--secret-stdin",
        ],
        format!("{SECRET}\n").as_bytes(),
    );
    let text = ok(saved);
    assert!(
        text.contains("clickpost pull account of tenant acme saved"),
        "{text}"
    );
    // `--local` allows local hosts: a fake of the carrier's API on this machine.
    let changed = json_lines(rms(
        &db,
        &[
            "pull",
            "set",
            "acme",
            "clickpost",
            "--user",
            "acme-api-2",
            "--base-url",
            "http://127.0.0.1:9",
            "--json",
        ],
    ));
    assert_eq!(changed[0]["base_url"], "http://127.0.0.1:9");
    assert_eq!(changed[0]["secret_set"], true);
    ok(rms(
        &db,
        &[
            "pull",
            "set",
            "acme",
            "shipway",
            "--user",
            "acme",
            "--secret",
            "sw-licence-1",
        ],
    ));
    let message = fails(rms(
        &db,
        &["pull", "set", "acme", "dhl", "--user", "u", "--secret", "s"],
    ));
    assert!(message.contains("carrier"), "{message}");

    let shown = ok(rms(&db, &["pull", "show", "acme"]));
    assert_eq!(shown.lines().count(), 3, "{shown}");
    assert!(shown.contains("acme-api-2"), "{shown}");
    let listed = json_lines(rms(&db, &["pull", "show", "acme", "--json"]));
    let carriers: Vec<&str> = listed
        .iter()
        .map(|a| a["carrier"].as_str().unwrap())
        .collect();
    assert_eq!(carriers, ["clickpost", "shipway"]);
    for text in [shown, serde_json::to_string(&listed).unwrap(), text] {
        assert!(
            !text.contains(SECRET) && !text.contains("sw-licence-1"),
            "{text}"
        );
    }
    // The secret is stored as given (the reconciler reads it from here).
    let store = SqliteStore::open(&db).unwrap();
    let acme = shared::TenantId::parse("acme").unwrap();
    let stored = store
        .pull_accounts(Some(&acme), Some(shared::Carrier::Clickpost))
        .unwrap();
    assert_eq!(stored[0].1.secret.expose(), SECRET);
    drop(store);

    ok(rms(&db, &["pull", "remove", "acme", "shipway"]));
    let message = fails(rms(&db, &["pull", "remove", "acme", "shipway"]));
    assert!(message.contains("no shipway pull account"), "{message}");
    assert_eq!(
        json_lines(rms(&db, &["pull", "show", "acme", "--json"])).len(),
        1
    );
}

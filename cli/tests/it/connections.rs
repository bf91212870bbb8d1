//! `rms serve`'s HTTP edge against the built binary: every error answer is JSON (404, 405, 408,
//! 413, 415), and the server's hygiene against hostile peers (cli/src/serve/server.rs): the header,
//! idle and body timeouts, the head size limit and the connection cap, through raw sockets with
//! short timeouts set in `[server]`. The same at scale, under a 1,024-file limit:
//! `scripts/connection-flood`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common;

use common::{config, fixture, scratch_dir, Server, CLICKPOST_KEY};

const CLICKPOST: &str = "/rms/in/api/clickpost/notify";

/// `common::config` (one tenant, pushing nowhere: nothing here is accepted) with `[server]`.
fn with_server(dir: &Path, server: &str) -> String {
    format!(
        "{}\n[server]\n{server}\n",
        config(dir, "http://127.0.0.1:9/hook", "\"1s\"", 1)
    )
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// One response: status, headers (names in lowercase) and body, read by its Content-Length.
fn read_response(stream: &mut TcpStream) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut bytes = Vec::new();
    let mut byte = [0; 1];
    while !bytes.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "closed before a response"
        );
        bytes.push(byte[0]);
    }
    let head = String::from_utf8(bytes).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map_or(0, |(_, value)| value.parse().unwrap());
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    (status, headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// An error answer: its status, and its `error` text, checked to be JSON.
fn json_error(response: (u16, Vec<(String, String)>, Vec<u8>)) -> (u16, String) {
    let (status, headers, body) = response;
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/json"),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    (status, body["error"].as_str().unwrap().to_owned())
}

/// How long until the server closes `stream` (end of stream or reset), waiting at most `limit`;
/// meanwhile one byte of `trickle` is sent every `every`. What the server answers is skipped.
fn closed_after(
    stream: &mut TcpStream,
    limit: Duration,
    trickle: &[u8],
    every: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut next_byte = 0;
    let mut next_send = started;
    let mut buffer = [0; 4096];
    while started.elapsed() < limit {
        if next_byte < trickle.len() && Instant::now() >= next_send {
            if stream.write_all(&trickle[next_byte..=next_byte]).is_err() {
                return Some(started.elapsed());
            }
            next_byte += 1;
            next_send += every;
        }
        match stream.read(&mut buffer) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

fn is_open(stream: &mut TcpStream) -> bool {
    closed_after(stream, Duration::from_millis(50), b"", Duration::ZERO).is_none()
}

fn health_request() -> &'static [u8] {
    b"GET /admin/health HTTP/1.1\r\nHost: rms\r\n\r\n"
}

#[tokio::test]
async fn every_error_answer_is_json_saying_what_to_do() {
    let dir = scratch_dir("edge-json");
    let server = Server::start(&dir, &with_server(&dir, "")).await;

    // Over the transport limit (1 MiB): the body is cut off there, the answer is JSON.
    let mut stream = connect(&server);
    let head = format!(
        "POST {CLICKPOST} HTTP/1.1\r\nHost: rms\r\nwebhook_key: {CLICKPOST_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        2 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&vec![b' '; 1024 * 1024 + 1]).unwrap();
    let (status, error) = json_error(read_response(&mut stream));
    assert_eq!(status, 413);
    assert!(
        error.contains("over 1048576 bytes") && error.contains("at most 262144 bytes"),
        "{error}"
    );

    // Compressed, by its header or by gzip's magic bytes: 415, naming the encoding; nothing kept.
    let json = fixture("clickpost/delivered_selected_captured.json");
    let gzip = vec![
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xab, 0xae,
    ];
    for (encoding, body) in [
        (Some("gzip"), json),
        (Some("br"), b"{}".to_vec()),
        (None, gzip),
    ] {
        let mut request = server
            .http
            .post(format!("{}{CLICKPOST}", server.base))
            .header("webhook_key", CLICKPOST_KEY)
            .body(body);
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415);
        assert_eq!(response.headers()["accept-encoding"], "identity");
        let answer: Value = response.json().await.unwrap();
        let error = answer["error"].as_str().unwrap();
        let named = format!("compressed ({})", encoding.unwrap_or("gzip"));
        assert!(
            error.contains(&named) && error.contains("send it uncompressed"),
            "{error}"
        );
    }
    let quarantined = server.get("/admin/quarantine").await;
    assert_eq!(quarantined, serde_json::json!([]));

    // No such path, and a method a path does not take: JSON, the Allow header kept.
    let (status, answer) = server.call("GET", "/nowhere", None).await;
    assert_eq!(status, 404);
    assert!(answer["error"].as_str().unwrap().starts_with("no such"));
    for (method, path) in [("POST", "/admin/health"), ("DELETE", "/admin/tenants")] {
        let response = server
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", server.base),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert!(response.headers().contains_key("allow"));
        assert_eq!(response.headers()["content-type"], "application/json");
        let answer: Value = response.json().await.unwrap();
        assert!(
            answer["error"].as_str().unwrap().contains("Allow header"),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_answered_408_in_json_and_the_connection_closed() {
    let dir = scratch_dir("edge-body-timeout");
    let server = Server::start(&dir, &with_server(&dir, "body_timeout = \"1s\"")).await;
    for (path, extra) in [
        (CLICKPOST, format!("webhook_key: {CLICKPOST_KEY}\r\n")),
        ("/admin/tenants", String::new()),
    ] {
        let mut stream = connect(&server);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: rms\r\n{extra}Content-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"id\": "
        );
        let sent = Instant::now();
        stream.write_all(head.as_bytes()).unwrap();
        let response = read_response(&mut stream);
        let waited = sent.elapsed();
        assert_eq!(header(&response.1, "connection"), Some("close"));
        let (status, error) = json_error(response);
        assert_eq!(status, 408, "{path}: {error}");
        assert!(error.contains("arrived too slowly"), "{error}");
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
            "{path}: answered after {waited:?}"
        );
        assert!(
            closed_after(&mut stream, Duration::from_secs(2), b"", Duration::ZERO).is_some(),
            "{path}: the connection stays open after the 408"
        );
    }
}

#[tokio::test]
async fn a_head_not_finished_in_time_or_too_large_closes_its_connection() {
    let dir = scratch_dir("edge-header-timeout");
    let server = Server::start(
        &dir,
        &with_server(&dir, "header_timeout = \"1s\"\nidle_timeout = \"10s\""),
    )
    .await;

    // A slowloris: a head one byte every 200 ms, never finished. Closed after the header timeout
    // (counted from the accept: a new connection owes its head at once), not the idle timeout.
    let mut stream = connect(&server);
    let trickle = format!(
        "POST {CLICKPOST} HTTP/1.1\r\nHost: rms\r\nX-Slow: {}",
        "z".repeat(100)
    );
    let closed = closed_after(
        &mut stream,
        Duration::from_secs(5),
        trickle.as_bytes(),
        Duration::from_millis(200),
    )
    .expect("a head trickled a byte at a time is cut off");
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_millis(2500),
        "closed after {closed:?}"
    );

    // A new connection that says nothing: the same.
    let mut silent = connect(&server);
    let closed = closed_after(&mut silent, Duration::from_secs(5), b"", Duration::ZERO)
        .expect("a silent new connection is closed");
    assert!(
        closed < Duration::from_millis(2500),
        "closed after {closed:?}"
    );

    // A head over 64 KiB, unfinished: refused at once (hyper's 431), not held until the timeout.
    let mut stream = connect(&server);
    let started = Instant::now();
    let head = format!(
        "POST {CLICKPOST} HTTP/1.1\r\nHost: rms\r\nX-Big: {}",
        "b".repeat(80 * 1024)
    );
    let _ = stream.write_all(head.as_bytes());
    let closed = closed_after(&mut stream, Duration::from_secs(5), b"", Duration::ZERO)
        .expect("an oversized head is refused");
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "an oversized head was held {closed:?}"
    );

    // The server still answers.
    let mut stream = connect(&server);
    stream.write_all(health_request()).unwrap();
    assert_eq!(read_response(&mut stream).0, 200);
}

#[tokio::test]
async fn a_keep_alive_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    let dir = scratch_dir("edge-idle-timeout");
    let server = Server::start(
        &dir,
        &with_server(&dir, "header_timeout = \"1s\"\nidle_timeout = \"2s\""),
    )
    .await;
    let mut stream = connect(&server);
    stream.write_all(health_request()).unwrap();
    assert_eq!(read_response(&mut stream).0, 200);
    let closed = closed_after(&mut stream, Duration::from_secs(6), b"", Duration::ZERO)
        .expect("an idle keep-alive connection is closed");
    assert!(
        closed >= Duration::from_millis(1900) && closed < Duration::from_millis(3500),
        "closed after {closed:?}"
    );
}

#[tokio::test]
async fn at_the_cap_the_longest_idle_connection_makes_room_and_one_serving_a_request_never() {
    let dir = scratch_dir("edge-cap");
    let server = Server::start(
        &dir,
        &with_server(
            &dir,
            "header_timeout = \"5s\"\nidle_timeout = \"1s\"\nbody_timeout = \"10s\"\nmax_connections = 4",
        ),
    )
    .await;
    // The start-up probe's keep-alive connection goes idle; let the server close it.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The oldest: a request whose body is still arriving. Then three silent connections.
    let mut serving = connect(&server);
    let body = r#"{"awb": "1"}"#;
    let head = format!(
        "POST {CLICKPOST} HTTP/1.1\r\nHost: rms\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{}",
        body.len(),
        &body[..1]
    );
    serving.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut silent: Vec<TcpStream> = (0..3)
        .map(|_| {
            let stream = connect(&server);
            std::thread::sleep(Duration::from_millis(100));
            stream
        })
        .collect();

    // Two more, each answered at once; each closes the longest-idle silent one.
    let mut answered = Vec::new();
    for evicted in 0..2 {
        let mut stream = connect(&server);
        let sent = Instant::now();
        stream.write_all(health_request()).unwrap();
        assert_eq!(read_response(&mut stream).0, 200);
        assert!(sent.elapsed() < Duration::from_millis(500));
        assert!(
            !is_open(&mut silent[evicted]),
            "silent connection {evicted} is still open"
        );
        assert!(is_open(&mut silent[2]), "the newest silent one was closed");
        answered.push(stream);
    }
    // The request in progress was never touched: its body ends, it is answered (no key: 401).
    assert!(is_open(&mut serving));
    serving
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    serving.write_all(&body.as_bytes()[1..]).unwrap();
    let (status, _) = json_error(read_response(&mut serving));
    assert_eq!(status, 401);
}

#[tokio::test]
async fn on_sigterm_connections_without_a_request_are_closed_and_the_server_exits_at_once() {
    let dir = scratch_dir("edge-sigterm");
    let mut server = Server::start(&dir, &with_server(&dir, "")).await;
    // Under the default timeouts (10 s, 60 s), neither would be closed for a while.
    let _silent = connect(&server);
    let mut unfinished = connect(&server);
    unfinished
        .write_all(format!("POST {CLICKPOST} HTTP/1.1\r\nHost: rms\r\n").as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    assert!(server.terminate().success());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped after {:?}",
        started.elapsed()
    );
}

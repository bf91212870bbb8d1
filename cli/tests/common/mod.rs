//! What the `rms serve` tests share: the built binary on a free loopback port, its config, the
//! fixtures.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::Receiver;
use serde_json::Value;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const CLICKPOST_KEY: &str = "serve-test-clickpost";

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(name),
    )
    .unwrap()
}

pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `rms serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub http: reqwest::Client,
    /// Where the server's log (stderr) goes.
    pub log: PathBuf,
}

impl Server {
    pub async fn start(dir: &Path, config: &str) -> Server {
        Server::start_with_log_level(dir, config, "debug").await
    }

    /// As `start`, with `RUST_LOG` set to `level`.
    pub async fn start_with_log_level(dir: &Path, config: &str, level: &str) -> Server {
        let path = dir.join("rms.toml");
        std::fs::write(&path, config).unwrap();
        let port = free_port();
        let log = dir.join(format!("serve-{port}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_rms"))
            .args(["serve", "--config"])
            .arg(&path)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", level)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            log,
        };
        let started = Instant::now();
        while server
            .http
            .get(format!("{}/admin/health", server.base))
            .send()
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "rms serve did not come up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.base)).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Any admin call: the status and the JSON answer (`null` for an empty body).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn config(dir: &Path, receiver_url: &str, schedule: &str, max_attempts: u32) -> String {
    format!(
        r#"
database = "{db}"
allow_private_targets = true
[dispatch]
timeout = "2s"
retry_schedule = [{schedule}]
max_attempts = {max_attempts}
[[tenants]]
id = "acme"
[tenants.keys]
clickpost = "{CLICKPOST_KEY}"
shiprocket = "serve-test-shiprocket"
shipway = "serve-test-shipway"
[tenants.push]
url = "{receiver_url}"
headers = {{ Authorization = "Bearer acme-token", "X-Client-Id" = "acme" }}
statuses = []
signing_secret = "{SECRET}"
"#,
        db = dir.join("rms.db").display()
    )
}

pub async fn wait_for(receiver: &Receiver, count: usize, limit: Duration) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let requests = receiver.requests().await;
        if requests.len() >= count || started.elapsed() > limit {
            return requests;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! What the `rms serve` tests share: the built binary on a free loopback port, its config, the
//! fixtures.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::Receiver;
use serde_json::Value;
use shared::Carrier;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const CLICKPOST_KEY: &str = "serve-test-clickpost";

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

pub use integration_tests::fixtures::fixture;

/// Each vendor sample (`fixtures::SAMPLES`) as a carrier posts it: its notify path, the header
/// that carries the tenant's key for its carrier (`key`), and its fixture name.
pub fn samples(
    key: impl Fn(Carrier) -> String,
) -> Vec<(&'static str, (&'static str, String), &'static str)> {
    integration_tests::fixtures::SAMPLES
        .into_iter()
        .map(|name| {
            let carrier: Carrier = integration_tests::fixtures::carrier_of(name)
                .parse()
                .unwrap();
            let spec = carrier.spec();
            (spec.notify_path, (spec.key_header(), key(carrier)), name)
        })
        .collect()
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
        let args = ["--config".to_owned(), path.display().to_string()];
        Server::start_with_args(dir, &args, level).await
    }

    /// `rms serve ARGS` (`--listen` is added), logging at `level`.
    pub async fn start_with_args(dir: &Path, args: &[String], level: &str) -> Server {
        let port = free_port();
        let log = dir.join(format!("serve-{port}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_rms"))
            .arg("serve")
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", level)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server {
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
            let exited = server.child.try_wait().unwrap();
            assert!(
                exited.is_none() && started.elapsed() < Duration::from_secs(20),
                "rms serve did not come up ({exited:?}); its log:\n{}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
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

// ---- The field-fact cases (docs/carriers.md §6): tests/fixtures/field-cases.json, which the
// Lambda handler's tests (functions/ingest-http/src/handler.rs) run too, with the same answers.

/// The field-case file: its tenant, its keys per carrier and its cases, in order.
pub fn field_doc() -> Value {
    serde_json::from_slice(&fixture("field-cases.json")).unwrap()
}

pub fn field_cases(doc: &Value) -> &[Value] {
    doc["cases"].as_array().unwrap()
}

pub fn case_named<'a>(doc: &'a Value, name: &str) -> &'a Value {
    field_cases::named(field_cases(doc), name)
}

/// An `rms serve` config with the field cases' tenant and keys, pushing to `receiver_url`.
pub fn field_config(dir: &Path, receiver_url: &str, doc: &Value) -> String {
    let key = |carrier: &str| doc["keys"][carrier].as_str().unwrap().to_owned();
    format!(
        r#"
database = "{db}"
allow_private_targets = true
[dispatch]
timeout = "2s"
retry_schedule = ["1s"]
max_attempts = 10
[[tenants]]
id = "{tenant}"
[tenants.keys]
clickpost = "{clickpost}"
shiprocket = "{shiprocket}"
shipway = "{shipway}"
[tenants.push]
url = "{receiver_url}"
headers = {{ Authorization = "Bearer acme-token" }}
statuses = []
signing_secret = "{SECRET}"
"#,
        db = dir.join("rms.db").display(),
        tenant = doc["tenant"].as_str().unwrap(),
        clickpost = key("clickpost"),
        shiprocket = key("shiprocket"),
        shipway = key("shipway"),
    )
}

fn case_key(doc: &Value, case: &Value) -> String {
    doc["keys"][case["carrier"].as_str().unwrap()]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A case's body, with the tenant's key of the case's carrier.
pub fn case_body(doc: &Value, case: &Value) -> Vec<u8> {
    field_cases::body(fixture, &case_key(doc, case), case)
}

pub use field_cases::check_answer;

pub mod field_cases {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/support/field_cases.rs"
    ));
}

impl Server {
    /// Sends a field case to its carrier's notify path and checks the answer it lists.
    pub async fn send_case(&self, doc: &Value, case: &Value) -> (u16, Value) {
        let carrier: shared::Carrier = case["carrier"].as_str().unwrap().parse().unwrap();
        let key = case_key(doc, case);
        let query = case["query"].as_str().unwrap().replace("{key}", &key);
        let mut url = format!("{}{}", self.base, carrier.spec().notify_path);
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let method =
            reqwest::Method::from_bytes(case["method"].as_str().unwrap().as_bytes()).unwrap();
        // As API Gateway's test events carry it (functions/ingest-http/src/apigw.rs).
        let mut request = self
            .http
            .request(method, url)
            .header("content-type", "application/json");
        for (name, value) in case["headers"].as_object().unwrap() {
            request = request.header(
                name.as_str(),
                value.as_str().unwrap().replace("{key}", &key),
            );
        }
        let response = request.body(case_body(doc, case)).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        check_answer(case, status, &body);
        (status, body)
    }
}

/// The rows of an SQL query on the database at `db` (the server stopped), through the test
/// harness's Python (its standard `sqlite3` module); BLOBs come back as UTF-8 text.
pub fn sqlite_rows(db: &Path, sql: &str) -> Vec<Value> {
    const SCRIPT: &str = "import json, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.row_factory = sqlite3.Row
rows = [{k: (r[k].decode('utf-8', 'replace') if isinstance(r[k], bytes) else r[k]) for k in r.keys()}
        for r in con.execute(sys.argv[2])]
print(json.dumps(rows))";
    let output = Command::new(integration_tests::needs::venv_python())
        .args(["-c", SCRIPT])
        .arg(db)
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every byte the database at `db` holds on disk (the file and its write-ahead log).
pub fn database_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db).unwrap();
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(more) = std::fs::read(PathBuf::from(wal)) {
        bytes.extend(more);
    }
    bytes
}

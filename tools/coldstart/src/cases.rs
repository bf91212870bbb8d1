//! What is measured: each function's binary, the environment Lambda would give it, and events it
//! can answer without reaching AWS (or with only a local DynamoDB-compatible server).

use serde_json::{json, Value};
use shared::Carrier;

/// One binary answering one event.
pub struct Case {
    /// The binary's name in the bin dir (= the function's crate).
    pub binary: &'static str,
    /// What the event is, for the table.
    pub label: &'static str,
    pub event: String,
    /// The answer it must give (see `main::summarize`).
    pub expect: String,
    pub env: Vec<(String, String)>,
}

/// The binary that sets the floor.
pub const HELLO: &str = "coldstart-hello";

/// Every case, in table order. `endpoint` is where the SDKs send DynamoDB and SQS calls;
/// `live_config_table` says whether a config table answers there (else the lookup of an unknown key
/// fails, and the function answers 503 instead of 401).
pub fn all(endpoint: &str, live_config_table: bool) -> Vec<Case> {
    let unknown_key = if live_config_table { 401 } else { 503 };
    let case = |binary, memory_mb, label, event: Value, expect: String| Case {
        binary,
        label,
        event: event.to_string(),
        expect,
        env: lambda_env(binary, memory_mb, endpoint),
    };
    let http = |code: u16| format!("HTTP {code}");
    let mut cases = vec![case(
        HELLO,
        128,
        "GET probe",
        http_event("GET", CLICKPOST, &[], ""),
        http(200),
    )];
    // The notify functions: a carrier's reachability probe (answered before any AWS call), and a
    // POST whose key is in no tenant (one DynamoDB read of the config table).
    // A body that is no carrier's set-up probe (Shiprocket's `{}` is one: answered 200 unread).
    for carrier in Carrier::ALL {
        let spec = carrier.spec();
        let binary: &'static str = String::leak(format!("{carrier}-notify"));
        let path = spec.notify_path;
        cases.push(case(
            binary,
            128,
            "GET probe",
            http_event("GET", path, &[], ""),
            http(200),
        ));
        cases.push(case(
            binary,
            128,
            "POST, unknown key",
            http_event(
                "POST",
                path,
                &[(spec.key_header(), "coldstart-unknown-key")],
                r#"{"coldstart":1}"#,
            ),
            http(unknown_key),
        ));
    }
    cases.push(case(
        "dispatcher",
        256,
        "empty SQS batch",
        json!({"Records": []}),
        r#"{"batchItemFailures":[]}"#.to_owned(),
    ));
    cases.push(case(
        "admin-api",
        256,
        "GET unknown route",
        http_event("GET", "/admin/coldstart-unknown", &[], ""),
        http(404),
    ));
    cases
}

const CLICKPOST: &str = "/rms/in/api/clickpost/notify"; // the floor binary answers any path

/// The environment Lambda gives a `provided.al2023` function (the SAM template's variables
/// included), with dummy credentials and every AWS call sent to `endpoint`. Nothing else from the
/// harness's own environment reaches the function.
fn lambda_env(function: &str, memory_mb: u32, endpoint: &str) -> Vec<(String, String)> {
    let queue = |name: &str| format!("{}/123456789012/{name}", endpoint.trim_end_matches('/'));
    [
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/11/22/[$LATEST]coldstart".to_owned(),
        ),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", "/var/task".to_owned()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".to_owned()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_SESSION_TOKEN", "testing".to_owned()),
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("CONFIG_TABLE", "rms-config".to_owned()),
        ("EVENTS_TABLE", "rms-events".to_owned()),
        ("EVENTS_QUEUE_URL", queue("rms-events")),
        ("DEAD_LETTER_QUEUE_URL", queue("rms-events-dlq")),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// An API Gateway HTTP API (payload 2.0) event, shaped as `ingest_http::apigw::notify_request`
/// builds it.
fn http_event(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Value {
    let mut header_map = serde_json::Map::new();
    header_map.insert("content-type".into(), "application/json".into());
    header_map.insert(
        "host".into(),
        "abc.execute-api.us-east-1.amazonaws.com".into(),
    );
    for (name, value) in headers {
        header_map.insert((*name).into(), (*value).into());
    }
    let route = format!("{method} {path}");
    json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc",
            "domainName": "abc.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "coldstart"},
            "requestId": "coldstart",
            "routeKey": route,
            "stage": "$default",
            "time": "22/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_000_000_000_i64
        },
        "body": if body.is_empty() { Value::Null } else { Value::from(body) },
        "isBase64Encoded": false
    })
}

//! End to end through the real function binaries under the Lambda runtime API emulator
//! (`cargo lambda watch`), against moto_server: each carrier fixture is POSTed to its function URL,
//! the queued messages are handed to the dispatcher as an SQS event (as the event source mapping
//! would), and the test receiver gets each notification with the configured headers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{Receiver, Stack};
use serde_json::{json, Value};
use shared::adapters::dynamodb::DynamoConfigStore;
use shared::push::{
    PushConfig, PushHeaders, PushTimeout, PushUrl, SecretValue, SigningSecret, TargetPolicy,
};
use shared::{Carrier, TenantId};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// `cargo lambda watch` on 127.0.0.1 and a free port; stopped (with its functions) when dropped.
struct Emulator {
    child: Child,
    base: String,
}

impl Emulator {
    fn start(env: &[(&str, String)]) -> Emulator {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(root.join(".venv/bin/cargo-lambda"));
        command
            .args([
                "lambda",
                "watch",
                "--ignore-changes",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
            ])
            .arg(port.to_string())
            .current_dir(&root)
            .stdout(Stdio::null())
            // The emulator's and the functions' logs, for when this test fails.
            .stderr(log_file(&root));
        for (name, value) in env {
            command.args(["--env-var", &format!("{name}={value}")]);
        }
        let child = command
            .spawn()
            .expect("cargo lambda (run through scripts/test, which installs it)");
        Emulator {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // cargo-lambda stops its functions (each in a session of its own) on SIGINT, as on Ctrl-C;
        // it ignores SIGTERM while they run.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_file(root: &Path) -> Stdio {
    let dir = root.join("target/e2e");
    std::fs::create_dir_all(&dir).unwrap();
    Stdio::from(std::fs::File::create(dir.join("cargo-lambda-watch.log")).unwrap())
}

fn fixture(name: &str) -> Vec<u8> {
    integration_tests::fixture(name)
}

#[tokio::test]
async fn carrier_posts_reach_the_client_through_the_function_binaries() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    let receiver = Receiver::start(Some(SECRET));
    for (carrier, key) in [
        (Carrier::Clickpost, "e2e-clickpost"),
        (Carrier::Shiprocket, "e2e-shiprocket"),
        (Carrier::Shipway, "d60cdf34ebacf6cbf4e6080061c1ba1f"),
    ] {
        stack.add_tenant_key("acme", carrier, key).await;
    }
    DynamoConfigStore::new(stack.dynamo.clone(), &stack.config_table)
        .put_push_config(
            &TenantId::parse("acme").unwrap(),
            &PushConfig {
                url: PushUrl::parse(&receiver.url("/ok"), TargetPolicy::LOCAL).unwrap(),
                headers: PushHeaders::stored(vec![
                    ("Authorization".into(), SecretValue::new("Bearer e2e-token")),
                    ("X-Client-Id".into(), SecretValue::new("acme")),
                ]),
                statuses: vec![],
                signing_secret: Some(SigningSecret::parse(SECRET).unwrap()),
                timeout: PushTimeout::new(Duration::from_secs(5)).unwrap(),
                enabled: true,
                delivery: shared::push::Delivery::Every,
            },
        )
        .await
        .unwrap();

    let emulator = Emulator::start(&[
        ("CONFIG_TABLE", stack.config_table.clone()),
        ("EVENTS_TABLE", stack.events_table.clone()),
        ("EVENTS_QUEUE_URL", stack.queue_url.clone()),
        ("DEAD_LETTER_QUEUE_URL", stack.dlq_url.clone()),
        ("ALLOW_PRIVATE_TARGETS", "true".into()),
        ("ALLOW_HTTP_TARGETS", "true".into()),
    ]);
    let http = reqwest::Client::new();
    let posts = [
        (
            "clickpost-notify",
            "/rms/in/api/clickpost/notify",
            ("webhook_key", "e2e-clickpost"),
            "clickpost/delivered_selected_captured.json",
            1,
        ),
        (
            "shiprocket-notify",
            "/rms/in/api/st/notify",
            ("x-api-key", "e2e-shiprocket"),
            "shiprocket/in_transit_official.json",
            1,
        ),
        (
            "shipway-notify",
            "/rms/in/api/shipway/notify",
            ("x-api-key", "d60cdf34ebacf6cbf4e6080061c1ba1f"),
            "shipway/classic_status_feed.json",
            2,
        ),
    ];
    let mut accepted = HashSet::new();
    for (function, path, (header, key), name, events) in posts {
        let url = format!("{}/lambda-url/{function}{path}", emulator.base);
        // The first request to a function builds and starts it: allow for a cold build.
        let started = Instant::now();
        let answer: Value = loop {
            match http
                .post(&url)
                .header(header, key)
                .body(fixture(name))
                .timeout(Duration::from_secs(600))
                .send()
                .await
            {
                Ok(response) if response.status().as_u16() == 200 => {
                    break response.json().await.unwrap()
                }
                Ok(response) if started.elapsed() > Duration::from_secs(600) => {
                    panic!(
                        "{function}: {} {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    )
                }
                Err(e) if started.elapsed() > Duration::from_secs(600) => panic!("{function}: {e}"),
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        assert_eq!(answer["status"], "accepted", "{function}: {answer}");
        let ids = answer["event_ids"].as_array().unwrap();
        assert_eq!(ids.len(), events, "{function}");
        accepted.extend(ids.iter().map(|id| id.as_str().unwrap().to_owned()));
    }

    let messages = stack.drain(&stack.queue_url).await;
    assert_eq!(messages.len(), 4, "every event is on the queue once");
    let records: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), json!({"stringValue": v, "dataType": "String"})))
                .collect();
            json!({
                "messageId": format!("m-{i}"),
                "receiptHandle": m.receipt_handle,
                "body": m.body.to_string(),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": attributes,
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:events",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    let invoke = format!(
        "{}/2015-03-31/functions/dispatcher/invocations",
        emulator.base
    );
    let response: Value = http
        .post(&invoke)
        .json(&json!({"Records": records}))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    eprintln!("dispatcher answered {response}");
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");

    let requests = receiver.requests().await;
    assert_eq!(requests.len(), 4);
    let delivered: HashSet<String> = requests
        .iter()
        .map(|r| r["headers"]["webhook-id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered, accepted);
    for r in &requests {
        assert_eq!(r["headers"]["authorization"], "Bearer e2e-token");
        assert_eq!(r["headers"]["x-client-id"], "acme");
        assert_eq!(r["signature"], "valid");
    }
}

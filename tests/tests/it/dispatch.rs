//! The dispatcher against moto_server SQS (a real redrive policy) and a test receiver on
//! 127.0.0.1 that verifies signatures with the Python `standardwebhooks` package. The event source
//! mapping is played by `Harness::poll`: receive a batch, hand it to the dispatcher's handler,
//! delete what it did not report as failed.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use integration_tests::{sqs_record, LogCapture, Receiver, Stack};
use serde_json::Value;
use shared::adapters::dynamodb::{DynamoConfigStore, DynamoDeliveryLog, DynamoEventStore};
use shared::adapters::memory::RecordingMetrics;
use shared::adapters::push::{HttpPusher, TargetPolicy};
use shared::adapters::sqs::{SqsEventQueue, SqsQueueActions};
use shared::circuit::{Breaker, BreakerSettings};
use shared::dispatch::{CachedPushConfigs, Dispatch, DispatchSettings};
use shared::ports::{ClaimToken, EventQueue, PushConfigStore, QueueActions, Unavailable};
use shared::push::{
    Delivery, PushConfig, PushHeaders, PushTimeout, PushUrl, SecretValue, SigningSecret,
};
use shared::{normalize, Carrier, NormalizeContext, Status, TenantId};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BEARER: &str = "Bearer client-credential-8d1f";
const CIRCUIT_COOL_DOWN: Duration = Duration::from_secs(2);

/// Queue actions that also record the delays asked for, to check them against the schedule.
struct Recording {
    inner: SqsQueueActions,
    delays: Mutex<Vec<Duration>>,
}

impl QueueActions for Recording {
    async fn retry_later(&self, receipt_handle: &str, after: Duration) -> Result<(), Unavailable> {
        self.delays.lock().unwrap().push(after);
        self.inner.retry_later(receipt_handle, after).await
    }
    async fn dead_letter(
        &self,
        body: &str,
        attributes: &[(String, String)],
        reason: &str,
    ) -> Result<(), Unavailable> {
        self.inner.dead_letter(body, attributes, reason).await
    }
}

type TestDispatch = Dispatch<
    CachedPushConfigs<DynamoConfigStore>,
    HttpPusher,
    DynamoDeliveryLog,
    RecordingMetrics,
    DynamoConfigStore,
    DynamoEventStore,
>;

struct Harness {
    stack: Stack,
    dispatch: TestDispatch,
    actions: Recording,
}

/// What one poll did.
#[derive(Debug, Default)]
struct Poll {
    received: Vec<String>,
    failed: Vec<String>,
}

impl Harness {
    async fn new(
        max_receive_count: u32,
        schedule: Vec<Duration>,
        targets: TargetPolicy,
    ) -> Harness {
        let stack = Stack::create_with(max_receive_count).await;
        let dispatch = Dispatch {
            // No caching: each test changes Push Configs as it goes.
            configs: CachedPushConfigs::new(
                DynamoConfigStore::new(stack.dynamo.clone(), &stack.config_table),
                Duration::ZERO,
            ),
            pusher: HttpPusher::new(targets).unwrap(),
            log: DynamoDeliveryLog::new(stack.dynamo.clone(), &stack.events_table),
            metrics: RecordingMetrics::default(),
            // A short cool-down, so that the circuit test sees the probe within a few seconds.
            breaker: Breaker::new(
                DynamoConfigStore::new(stack.dynamo.clone(), &stack.config_table),
                BreakerSettings {
                    cool_down: CIRCUIT_COOL_DOWN,
                    ..BreakerSettings::default()
                },
            ),
            shipments: DynamoEventStore::new(stack.dynamo.clone(), &stack.events_table),
            // As the template sets them: the dispatcher's last attempt is the queue's last receive.
            settings: DispatchSettings {
                retry_schedule: schedule,
                jitter: 0.0,
                max_attempts: max_receive_count,
            },
        };
        let actions = Recording {
            inner: SqsQueueActions::new(stack.sqs.clone(), &stack.queue_url, &stack.dlq_url),
            delays: Mutex::new(Vec::new()),
        };
        Harness {
            stack,
            dispatch,
            actions,
        }
    }

    async fn set_push(&self, tenant: &str, url: &str, timeout: Duration) {
        let store = DynamoConfigStore::new(self.stack.dynamo.clone(), &self.stack.config_table);
        let config = PushConfig {
            // Stored as written: some tests point it at a target the guard must refuse.
            url: PushUrl::stored(url),
            headers: PushHeaders::stored(vec![
                ("Authorization".to_owned(), SecretValue::new(BEARER)),
                ("X-Client-Id".to_owned(), SecretValue::new(tenant)),
            ]),
            statuses: vec![],
            signing_secret: Some(SigningSecret::parse(SECRET).unwrap()),
            timeout: PushTimeout::new(timeout).unwrap(),
            enabled: true,
            delivery: Delivery::Every,
        };
        store
            .put_push_config(&TenantId::parse(tenant).unwrap(), &config)
            .await
            .unwrap();
    }

    /// Queues a Clickpost in-transit event for `tenant` and `awb`, as a copy whose request died
    /// before its claim (the dispatcher claims it); returns its SQS body.
    async fn enqueue(&self, tenant: &str, awb: &str) -> String {
        self.enqueue_copy(tenant, awb, &ClaimToken::new()).await
    }

    /// Queues a copy of the Clickpost in-transit event for `tenant` and `awb` under `token`;
    /// returns its SQS body.
    async fn enqueue_copy(&self, tenant: &str, awb: &str, token: &ClaimToken) -> String {
        let body = format!(
            r#"{{"waybill":"{awb}","clickpost_status_code":5,"timestamp":"2023-02-07T18:09:00Z"}}"#
        );
        let ctx = NormalizeContext::new(TenantId::parse(tenant).unwrap(), chrono::Utc::now());
        let event = normalize(Carrier::Clickpost, body.as_bytes(), &ctx)
            .unwrap()
            .remove(0);
        SqsEventQueue::new(self.stack.sqs.clone(), &self.stack.queue_url)
            .enqueue(&event, token)
            .await
            .unwrap();
        serde_json::to_string(&event).unwrap()
    }

    /// One turn of the event source mapping.
    async fn poll(&self) -> Poll {
        let received = self
            .stack
            .sqs
            .receive_message()
            .queue_url(&self.stack.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        let mut event = SqsEvent::default();
        let mut receipts = HashMap::new();
        for m in &messages {
            receipts.insert(
                m.message_id.clone().unwrap(),
                m.receipt_handle.clone().unwrap(),
            );
            event.records.push(sqs_record(m));
        }
        let response = dispatcher::handle(&self.dispatch, &self.actions, event, 4).await;
        let failed: Vec<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        for (id, receipt) in &receipts {
            if !failed.contains(id) {
                self.stack
                    .sqs
                    .delete_message()
                    .queue_url(&self.stack.queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .unwrap();
            }
        }
        Poll {
            received: receipts.into_keys().collect(),
            failed,
        }
    }

    /// Polls until a message shows up (or `limit` passes).
    async fn poll_until_received(&self, limit: Duration) -> Poll {
        let started = std::time::Instant::now();
        loop {
            let poll = self.poll().await;
            if !poll.received.is_empty() || started.elapsed() > limit {
                return poll;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The tenant's `CIRCUIT` item in the config table, if its circuit is open.
    async fn circuit_item(
        &self,
        tenant: &str,
    ) -> Option<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let text = aws_sdk_dynamodb::types::AttributeValue::S;
        self.stack
            .dynamo
            .get_item()
            .table_name(&self.stack.config_table)
            .key("pk", text(format!("CIRCUIT#{tenant}")))
            .key("sk", text("CIRCUIT".into()))
            .send()
            .await
            .unwrap()
            .item
    }

    fn delays(&self) -> Vec<Duration> {
        self.actions.delays.lock().unwrap().clone()
    }

    /// The shipment's delivery attempts (its partition holds its events' claims too).
    async fn attempts(
        &self,
        tenant: &str,
        awb: &str,
    ) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let mut items = self
            .stack
            .dynamo
            .query()
            .table_name(&self.stack.events_table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("DELIVERY#{tenant}#{awb}")),
            )
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        items.retain(|item| item.contains_key("outcome"));
        items
    }
}

fn local() -> TargetPolicy {
    TargetPolicy {
        allow_private: true,
        allow_http: true,
    }
}

fn seconds(s: &[u64]) -> Vec<Duration> {
    s.iter().map(|s| Duration::from_secs(*s)).collect()
}

#[tokio::test]
async fn a_2xx_is_delivered_once_with_the_configured_headers_and_a_valid_signature() {
    integration_tests::needs!(moto);
    let receiver = Receiver::start(Some(SECRET));
    let h = Harness::new(10, seconds(&[1]), local()).await;
    h.set_push("acme", &receiver.url("/ok"), Duration::from_secs(5))
        .await;
    let body = h.enqueue("acme", "AWB-OK").await;

    let poll = h.poll().await;
    assert_eq!((poll.received.len(), poll.failed.len()), (1, 0));
    assert!(
        h.poll().await.received.is_empty(),
        "acknowledged: not received again"
    );

    let requests = receiver.requests().await;
    assert_eq!(requests.len(), 1, "delivered exactly once");
    let r = &requests[0];
    assert_eq!(r["headers"]["authorization"], BEARER);
    assert_eq!(r["headers"]["x-client-id"], "acme");
    assert_eq!(r["headers"]["content-type"], "application/json");
    assert_eq!(
        r["signature"], "valid",
        "standardwebhooks accepts the signature"
    );
    let sent: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    let queued: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sent, queued);
    assert_eq!(r["headers"]["webhook-id"], queued["event_id"]);
    let attempts = h.attempts("acme", "AWB-OK").await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["outcome"].as_s().unwrap(), "delivered");
    assert_eq!(attempts[0]["http_status"].as_n().unwrap(), "200");
    assert_eq!(h.dispatch.metrics.total("Delivered"), 1);
}

/// Copies of one event queued by several requests, none of which wrote its claim (they died, or
/// lost the claim's write), handed out in one batch and pushed concurrently: the first to claim
/// the event is pushed, the others are dropped.
#[tokio::test]
async fn of_copies_without_a_claim_in_one_batch_exactly_one_is_pushed() {
    integration_tests::needs!(moto);
    let receiver = Receiver::start(None);
    let h = Harness::new(10, seconds(&[1]), local()).await;
    h.set_push("acme", &receiver.url("/ok"), Duration::from_secs(5))
        .await;
    for _ in 0..4 {
        h.enqueue_copy("acme", "AWB-COPIES", &ClaimToken::new())
            .await;
    }
    let mut received = 0;
    while received < 4 {
        let poll = h.poll_until_received(Duration::from_secs(5)).await;
        assert!(poll.failed.is_empty());
        assert!(!poll.received.is_empty(), "all four handed out");
        received += poll.received.len();
    }
    assert_eq!(receiver.requests().await.len(), 1, "pushed once");
    assert_eq!(h.attempts("acme", "AWB-COPIES").await.len(), 1);
}

#[tokio::test]
async fn an_endpoint_failing_twice_gets_the_event_on_the_third_attempt_after_the_scheduled_waits() {
    integration_tests::needs!(moto);
    let receiver = Receiver::start(Some(SECRET));
    let h = Harness::new(10, seconds(&[1, 2]), local()).await;
    h.set_push(
        "acme",
        &receiver.url("/fail-then-ok/2/flaky"),
        Duration::from_secs(5),
    )
    .await;
    h.enqueue("acme", "AWB-FLAKY").await;

    let first = h.poll().await;
    assert_eq!(first.failed.len(), 1);
    assert!(
        h.poll().await.received.is_empty(),
        "hidden for the scheduled wait, not visible at once"
    );
    let second = h.poll_until_received(Duration::from_secs(5)).await;
    assert_eq!(second.failed.len(), 1);
    let third = h.poll_until_received(Duration::from_secs(6)).await;
    assert_eq!((third.received.len(), third.failed.len()), (1, 0));

    assert_eq!(
        h.delays(),
        seconds(&[1, 2]),
        "visibility extended per the schedule"
    );
    assert_eq!(
        receiver.requests().await.len(),
        3,
        "two failures, then the delivery"
    );
    let mut attempts: Vec<(String, String)> = h
        .attempts("acme", "AWB-FLAKY")
        .await
        .iter()
        .map(|a| {
            (
                a["attempt"].as_n().unwrap().clone(),
                a["outcome"].as_s().unwrap().clone(),
            )
        })
        .collect();
    attempts.sort();
    assert_eq!(
        attempts,
        vec![
            ("1".into(), "retry".into()),
            ("2".into(), "retry".into()),
            ("3".into(), "delivered".into())
        ]
    );
}

#[tokio::test]
async fn after_the_last_attempt_the_message_is_in_the_dlq_with_its_body_intact_and_why() {
    integration_tests::needs!(moto);
    let receiver = Receiver::start(Some(SECRET));
    let h = Harness::new(3, seconds(&[0]), local()).await;
    h.set_push("acme", &receiver.url("/status/503"), Duration::from_secs(5))
        .await;
    let body = h.enqueue("acme", "AWB-DOWN").await;

    for attempt in 1..=2 {
        let poll = h.poll_until_received(Duration::from_secs(3)).await;
        assert_eq!(poll.failed.len(), 1, "attempt {attempt}");
    }
    // The last attempt fails too: the dispatcher moves it to the DLQ itself, saying why, and
    // acknowledges it (SQS's own move, past maxReceiveCount, is for a message nothing settled).
    let poll = h.poll_until_received(Duration::from_secs(3)).await;
    assert!(poll.failed.is_empty(), "acknowledged");
    assert!(h.poll().await.received.is_empty());
    let dead = h.stack.drain(&h.stack.dlq_url).await;
    assert_eq!(dead.len(), 1);
    let reason = &dead[0].attributes["dead_letter_reason"];
    assert!(
        reason.contains("503") && reason.contains("no attempts left (max attempts: 3)"),
        "{reason}"
    );
    assert_eq!(dead[0].attributes["attempts"], "3");
    assert_eq!(dead[0].body, serde_json::from_str::<Value>(&body).unwrap());
    assert_eq!(
        dead[0].attributes["event_id"],
        dead[0].body["event_id"].as_str().unwrap()
    );
    assert_eq!(receiver.requests().await.len(), 3);
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_that_long() {
    integration_tests::needs!(moto);
    let receiver = Receiver::start(None);
    let h = Harness::new(10, seconds(&[1]), local()).await;
    h.set_push(
        "acme",
        &receiver.url("/status/429?retry_after=120"),
        Duration::from_secs(5),
    )
    .await;
    h.enqueue("acme", "AWB-429").await;
    assert_eq!(h.poll().await.failed.len(), 1);
    assert_eq!(h.delays(), seconds(&[120]));
}

#[tokio::test]
async fn a_503_with_retry_after_0_still_waits_the_schedule() {
    integration_tests::needs!(moto);
    let receiver = Receiver::start(None);
    let h = Harness::new(10, seconds(&[30]), local()).await;
    h.set_push(
        "acme",
        &receiver.url("/status/503?retry_after=0"),
        Duration::from_secs(5),
    )
    .await;
    h.enqueue("acme", "AWB-RA0").await;
    assert_eq!(h.poll().await.failed.len(), 1);
    assert_eq!(h.delays(), seconds(&[30]));
}

#[tokio::test]
async fn a_410_goes_to_the_dlq_at_once_with_the_reason() {
    integration_tests::needs!(moto);
    let receiver = Receiver::start(None);
    let h = Harness::new(10, seconds(&[1]), local()).await;
    h.set_push("acme", &receiver.url("/status/410"), Duration::from_secs(5))
        .await;
    let body = h.enqueue("acme", "AWB-GONE").await;
    let poll = h.poll().await;
    assert_eq!(
        (poll.received.len(), poll.failed.len()),
        (1, 0),
        "acknowledged"
    );
    assert!(h.poll().await.received.is_empty());
    let dead = h.stack.drain(&h.stack.dlq_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, serde_json::from_str::<Value>(&body).unwrap());
    assert!(
        dead[0].attributes["dead_letter_reason"].contains("answered 410"),
        "{:?}",
        dead[0].attributes
    );
    assert_eq!(dead[0].attributes["tenant_id"], "acme");
}

#[tokio::test]
async fn a_401_is_dead_lettered_and_counted_as_client_auth_failed() {
    integration_tests::needs!(moto);
    let receiver = Receiver::start(None);
    let h = Harness::new(10, seconds(&[1]), local()).await;
    h.set_push("acme", &receiver.url("/status/401"), Duration::from_secs(5))
        .await;
    h.enqueue("acme", "AWB-401").await;
    h.poll().await;
    assert_eq!(h.stack.drain(&h.stack.dlq_url).await.len(), 1);
    assert_eq!(h.dispatch.metrics.total("ClientAuthFailed"), 1);
}

#[tokio::test]
async fn a_hanging_endpoint_is_cut_at_the_tenant_timeout() {
    integration_tests::needs!(moto);
    let receiver = Receiver::start(None);
    let h = Harness::new(10, seconds(&[1]), local()).await;
    h.set_push("acme", &receiver.url("/hang/10"), Duration::from_secs(1))
        .await;
    h.enqueue("acme", "AWB-HANG").await;
    let started = std::time::Instant::now();
    let poll = h.poll().await;
    let took = started.elapsed();
    assert_eq!(poll.failed.len(), 1, "a timeout is retried");
    assert!(
        took < Duration::from_secs(3),
        "cut at the timeout, took {took:?}"
    );
    let attempts = h.attempts("acme", "AWB-HANG").await;
    assert!(
        attempts[0]["error"]
            .as_s()
            .unwrap()
            .contains("no answer within"),
        "{attempts:?}"
    );
}

#[tokio::test]
async fn events_are_sent_with_their_tenant_as_message_group_for_fair_queues() {
    integration_tests::needs!(moto);
    let h = Harness::new(10, seconds(&[1]), local()).await;
    h.enqueue("acme", "AWB-G1").await;
    h.enqueue("globex", "AWB-G2").await;
    let received = h
        .stack
        .sqs
        .receive_message()
        .queue_url(&h.stack.queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
        .message_attribute_names("tenant_id")
        .send()
        .await
        .unwrap();
    let messages = received.messages.unwrap_or_default();
    assert_eq!(messages.len(), 2);
    for m in messages {
        let group = &m.attributes.as_ref().unwrap()[&MessageSystemAttributeName::MessageGroupId];
        let tenant = m.message_attributes.as_ref().unwrap()["tenant_id"]
            .string_value
            .clone()
            .unwrap();
        assert_eq!(group, &tenant);
    }
}

#[tokio::test]
async fn a_hanging_endpoint_opens_the_tenant_circuit_then_a_probe_closes_it() {
    integration_tests::needs!(moto);
    let receiver = Receiver::start(None);
    let h = Harness::new(10, seconds(&[1]), local()).await;
    h.set_push("acme", &receiver.url("/hang/5"), Duration::from_secs(1))
        .await;
    for i in 1..=5 {
        h.enqueue("acme", &format!("AWB-C{i}")).await;
    }
    let poll = h.poll().await;
    assert_eq!(poll.failed.len(), 5, "five timeouts, each retried");
    assert_eq!(h.dispatch.metrics.total("CircuitOpened"), 1);
    let circuit = h
        .circuit_item("acme")
        .await
        .expect("the open circuit is stored in the config table");
    assert_eq!(circuit["failures"].as_n().unwrap(), "5");

    // Open: a new event is failed fast, without a call, and logged as a failed attempt.
    let calls = receiver.requests().await.len();
    h.enqueue("acme", "AWB-C6").await;
    let started = std::time::Instant::now();
    let poll = h.poll_until_received(Duration::from_secs(5)).await;
    assert!(!poll.failed.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no push timeout waited"
    );
    assert_eq!(receiver.requests().await.len(), calls, "no call while open");
    let attempts = h.attempts("acme", "AWB-C6").await;
    assert!(
        attempts[0]["error"]
            .as_s()
            .unwrap()
            .contains("circuit is open"),
        "{attempts:?}"
    );

    // The endpoint recovers; after the cool-down one probe goes through and closes the circuit,
    // and everything is delivered.
    h.set_push("acme", &receiver.url("/ok"), Duration::from_secs(1))
        .await;
    tokio::time::sleep(CIRCUIT_COOL_DOWN).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        h.poll().await;
        if h.dispatch.metrics.total("Delivered") == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(h.dispatch.metrics.total("Delivered"), 6);
    assert_eq!(h.dispatch.metrics.total("CircuitClosed"), 1);
    assert_eq!(
        h.circuit_item("acme").await,
        None,
        "closed: the item is gone"
    );
}

#[tokio::test]
async fn a_batch_of_10_where_3_fail_reports_exactly_those_3() {
    integration_tests::needs!(moto);
    let receiver = Receiver::start(Some(SECRET));
    let h = Harness::new(10, seconds(&[30]), local()).await;
    h.set_push("good", &receiver.url("/ok"), Duration::from_secs(5))
        .await;
    h.set_push("bad", &receiver.url("/status/503"), Duration::from_secs(5))
        .await;
    let mut bad_events = Vec::new();
    for i in 0..10 {
        let tenant = if i % 3 == 1 { "bad" } else { "good" };
        let body = h.enqueue(tenant, &format!("AWB-{i}")).await;
        if tenant == "bad" {
            bad_events.push(serde_json::from_str::<Value>(&body).unwrap()["event_id"].clone());
        }
    }
    assert_eq!(bad_events.len(), 3);
    // moto hands out up to 10 at once, like the event source mapping with BatchSize 10.
    let poll = h.poll().await;
    assert_eq!(poll.received.len(), 10);
    assert_eq!(poll.failed.len(), 3);
    let ok = receiver
        .requests()
        .await
        .iter()
        .filter(|r| r["path"] == "/ok")
        .count();
    assert_eq!(ok, 7);
}

#[tokio::test]
async fn private_targets_are_refused_with_a_logged_reason_and_dead_lettered() {
    integration_tests::needs!(moto);
    let logs = LogCapture::default();
    let _guard = logs.install();
    let receiver = Receiver::start(None);
    let port = receiver.base_url.rsplit(':').next().unwrap().to_owned();
    let h = Harness::new(
        10,
        seconds(&[1]),
        TargetPolicy {
            allow_private: false,
            allow_http: true,
        },
    )
    .await;
    let targets = [
        format!("http://127.0.0.1:{port}/ok"),
        "http://10.0.0.1/ok".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://[::1]:{port}/ok"),
        format!("http://localhost:{port}/ok"),
    ];
    for (i, url) in targets.iter().enumerate() {
        let tenant = format!("t{i}");
        h.set_push(&tenant, url, Duration::from_secs(2)).await;
        h.enqueue(&tenant, "AWB-SSRF").await;
    }
    let poll = h.poll().await;
    assert_eq!((poll.received.len(), poll.failed.len()), (5, 0));
    let dead = h.stack.drain(&h.stack.dlq_url).await;
    assert_eq!(dead.len(), 5);
    for d in &dead {
        let reason = &d.attributes["dead_letter_reason"];
        assert!(
            reason.contains("private targets are not allowed"),
            "{reason}"
        );
    }
    assert!(
        receiver.requests().await.is_empty(),
        "nothing reached the receiver"
    );
    let text = logs.text();
    let refusals = text
        .lines()
        .filter(|l| {
            l.contains("delivery dead-lettered") && l.contains("private targets are not allowed")
        })
        .count();
    assert_eq!(refusals, 5, "each refusal is logged with its reason");
    // `localhost` is refused by its name, before any lookup (a name that resolves to a private
    // address is refused by the resolver: `shared/src/adapters/push.rs`).
    assert!(text.contains("localhost is a name of this machine"));
}

#[tokio::test]
async fn credential_header_values_never_appear_in_the_logs() {
    integration_tests::needs!(moto);
    let logs = LogCapture::default();
    let _guard = logs.install();
    let receiver = Receiver::start(Some(SECRET));
    let h = Harness::new(10, seconds(&[1]), local()).await;
    for (tenant, path) in [
        ("ok", "/ok"),
        ("down", "/status/503"),
        ("auth", "/status/401"),
        ("gone", "/status/410"),
    ] {
        h.set_push(tenant, &receiver.url(path), Duration::from_secs(2))
            .await;
        h.enqueue(tenant, "AWB-LOG").await;
    }
    h.poll().await;
    assert_eq!(receiver.requests().await.len(), 4);
    let text = logs.text();
    assert!(text.lines().count() >= 4, "the logs were captured");
    assert!(
        !text.contains("client-credential-8d1f"),
        "a credential header value was logged"
    );
    assert!(
        !text.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "the signing secret was logged"
    );
}

#[tokio::test]
async fn an_unselected_status_is_acknowledged_without_a_call() {
    integration_tests::needs!(moto);
    let receiver = Receiver::start(None);
    let h = Harness::new(10, seconds(&[1]), local()).await;
    let store = DynamoConfigStore::new(h.stack.dynamo.clone(), &h.stack.config_table);
    let config = PushConfig {
        url: PushUrl::parse(&receiver.url("/ok"), TargetPolicy::LOCAL).unwrap(),
        headers: PushHeaders::default(),
        statuses: vec![Status::Delivered, Status::RtoDelivered],
        signing_secret: None,
        timeout: PushTimeout::new(Duration::from_secs(2)).unwrap(),
        enabled: true,
        delivery: Delivery::Every,
    };
    store
        .put_push_config(&TenantId::parse("picky").unwrap(), &config)
        .await
        .unwrap();
    h.enqueue("picky", "AWB-FILTER").await; // IN_TRANSIT
    let poll = h.poll().await;
    assert_eq!((poll.received.len(), poll.failed.len()), (1, 0));
    assert!(receiver.requests().await.is_empty());
    assert_eq!(h.dispatch.metrics.total("Filtered"), 1);
}

/// Clickpost scans of `awb`, the n-th `n` minutes after the first, through the real ingest (so
/// the shipment's state is what the notify functions write); the last is `DELIVERED`.
async fn ingest_scans(stack: &Stack, key: &str, awb: &str, count: u32) {
    let ingest = stack.ingest();
    for n in 0..count {
        let code = if n + 1 == count { 8 } else { 5 };
        let body = format!(
            r#"{{"waybill":"{awb}","cp_id":21,"clickpost_status_code":{code},"timestamp":"2026-11-22T09:{n:02}:00Z"}}"#
        );
        let request = ingest_http::apigw::notify_request(
            Carrier::Clickpost,
            "POST",
            &[("webhook_key", key)],
            "",
            body.as_bytes(),
        );
        let response = ingest_http::handle(&ingest, Carrier::Clickpost, request)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn a_latest_tenant_gets_the_newest_event_of_a_backlog_and_the_log_shows_the_rest_superseded()
{
    integration_tests::needs!(moto);
    let receiver = Receiver::start(None);
    let h = Harness::new(10, seconds(&[1]), local()).await;
    let store = DynamoConfigStore::new(h.stack.dynamo.clone(), &h.stack.config_table);
    for (tenant, delivery) in [("steady", Delivery::Every), ("newest", Delivery::Latest)] {
        h.stack
            .add_tenant_key(
                tenant,
                Carrier::Clickpost,
                &format!("{tenant}-clickpost-key"),
            )
            .await;
        let config = PushConfig {
            url: PushUrl::parse(&receiver.url(&format!("/ok/{tenant}")), TargetPolicy::LOCAL)
                .unwrap(),
            headers: PushHeaders::default(),
            statuses: vec![],
            signing_secret: None,
            timeout: PushTimeout::new(Duration::from_secs(2)).unwrap(),
            enabled: true,
            delivery,
        };
        store
            .put_push_config(&TenantId::parse(tenant).unwrap(), &config)
            .await
            .unwrap();
        // The backlog an outage leaves: every scan queued before the dispatcher runs.
        ingest_scans(
            &h.stack,
            &format!("{tenant}-clickpost-key"),
            "AWB-BACKLOG",
            5,
        )
        .await;
    }
    assert_eq!(
        store
            .push_config(&TenantId::parse("newest").unwrap())
            .await
            .unwrap()
            .unwrap()
            .delivery,
        Delivery::Latest,
        "the PUSH item keeps the mode"
    );

    let mut handled = 0;
    while handled < 10 {
        let poll = h.poll_until_received(Duration::from_secs(5)).await;
        assert!(poll.failed.is_empty(), "{poll:?}");
        assert!(!poll.received.is_empty(), "only {handled} of 10 handled");
        handled += poll.received.len();
    }

    let requests = receiver.requests().await;
    let to = |path: &str| -> Vec<Value> {
        requests
            .iter()
            .filter(|r| r["path"] == path)
            .map(|r| serde_json::from_str(r["body"].as_str().unwrap()).unwrap())
            .collect()
    };
    assert_eq!(to("/ok/steady").len(), 5, "every event to the every tenant");
    let newest = to("/ok/newest");
    assert_eq!(newest.len(), 1, "the newest only to the latest tenant");
    assert_eq!(newest[0]["status"], "DELIVERED");
    let newest_id = newest[0]["event_id"].as_str().unwrap();

    let attempts = h.attempts("newest", "AWB-BACKLOG").await;
    let outcome = |o: &str| {
        attempts
            .iter()
            .filter(|a| a["outcome"].as_s().unwrap() == o)
            .collect::<Vec<_>>()
    };
    assert_eq!(outcome("delivered").len(), 1);
    let superseded = outcome("superseded");
    assert_eq!(superseded.len(), 4);
    for attempt in superseded {
        assert_eq!(
            attempt["error"].as_s().unwrap(),
            &format!("superseded by {newest_id}")
        );
        assert!(!attempt.contains_key("http_status"), "no call was made");
    }
    assert_eq!(h.attempts("steady", "AWB-BACKLOG").await.len(), 5);
    assert_eq!(
        h.dispatch
            .metrics
            .total_where("Superseded", "Tenant", "newest"),
        4
    );
    assert_eq!(h.dispatch.metrics.total("Superseded"), 4);
}

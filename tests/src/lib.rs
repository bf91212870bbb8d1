//! Shared set-up for the integration tests: real AWS SDK clients pointed at the `moto_server`
//! that `scripts/with-moto` starts on loopback, and tables and queues created with the key
//! schema and attributes of the SAM template. Every test makes its own uniquely named tables and
//! queues, so tests run in parallel on one server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

#[path = "../support/fixtures.rs"]
pub mod fixtures;
pub mod needs;
pub mod pull_fake;
pub use fixtures::fixture;
pub use pull_fake::{FakeCall, PullFake};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use ingest_http::Config;
use shared::adapters::aws_admin::{AwsNames, DynamoAdmin};
use shared::adapters::dynamodb::{DynamoConfigStore, DynamoEventStore, BY_TENANT_DAY};
use shared::adapters::memory::RecordingMetrics;
use shared::adapters::push::{HttpPusher, TargetPolicy};
use shared::adapters::sqs::SqsEventQueue;
use shared::admin::Admin;
use shared::auth::Credential;
use shared::ingest::{CachedConfig, Ingest, QueueThenClaim};
use shared::{CanonicalEvent, Carrier};

/// The moto endpoint, from `scripts/with-moto`.
pub fn moto_endpoint() -> String {
    std::env::var("RMS_MOTO_ENDPOINT").expect(
        "RMS_MOTO_ENDPOINT is not set: run the integration tests through scripts/test, \
         which starts moto_server (or wrap the command in scripts/with-moto)",
    )
}

/// An SDK configuration for `endpoint`, with test credentials, no retries and short timeouts,
/// so that a dead endpoint fails in well under a second.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(10))
                .build(),
        )
        .load()
        .await
}

/// An endpoint on loopback where nothing listens: a service that is down.
pub fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A name no other test in this run uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// The tables and queues of one test.
pub struct Stack {
    pub sdk: SdkConfig,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub config_table: String,
    pub events_table: String,
    pub queue_url: String,
    pub dlq_url: String,
}

/// The redrive policy's `maxReceiveCount`, as in the SAM template.
pub const MAX_RECEIVE_COUNT: u32 = 10;

impl Stack {
    pub async fn create() -> Stack {
        Stack::create_with(MAX_RECEIVE_COUNT).await
    }

    /// A stack whose redrive policy moves a message to the DLQ after `max_receive_count`
    /// receives.
    pub async fn create_with(max_receive_count: u32) -> Stack {
        Stack::create_at(&moto_endpoint(), max_receive_count).await
    }

    /// The same, on the moto_server at `endpoint` (a test that runs a server of its own).
    pub async fn create_at(endpoint: &str, max_receive_count: u32) -> Stack {
        let sdk = sdk_config(endpoint).await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let name = unique("rms");
        let config_table = format!("{name}-config");
        let events_table = format!("{name}-events");
        create_table(&dynamo, &config_table, false).await;
        create_table(&dynamo, &events_table, true).await;
        dynamo
            .update_time_to_live()
            .table_name(&events_table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        let dlq_url = sqs
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        let redrive = format!(
            r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receive_count}"}}"#
        );
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{name}-events"))
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .attributes(QueueAttributeName::VisibilityTimeout, "60")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        Stack {
            sdk,
            dynamo,
            sqs,
            config_table,
            events_table,
            queue_url,
            dlq_url,
        }
    }

    /// The notify functions' configuration for this stack.
    pub fn config(&self) -> Config {
        let env = HashMap::from([
            ("CONFIG_TABLE", self.config_table.clone()),
            ("EVENTS_TABLE", self.events_table.clone()),
            ("EVENTS_QUEUE_URL", self.queue_url.clone()),
            // Tests change keys, tenants and pull accounts between requests and expect the next
            // request to see it; `calls.rs` measures with the production cache.
            ("CONFIG_CACHE_SECONDS", "0".to_owned()),
        ]);
        Config::from_lookup(|name| env.get(name).cloned()).unwrap()
    }

    /// The table and queue names, as the admin store takes them.
    pub fn names(&self) -> AwsNames {
        AwsNames {
            config_table: self.config_table.clone(),
            events_table: self.events_table.clone(),
            queue_url: self.queue_url.clone(),
            dlq_url: self.dlq_url.clone(),
        }
    }

    /// The admin use-case on this stack, as the `admin-api` Lambda builds it except that test
    /// pushes and Push Config URLs may go to plain http on loopback (the test receiver), and
    /// quarantine replays' metrics are kept in memory.
    pub fn admin(&self) -> Admin<DynamoAdmin, HttpPusher, TestIngest> {
        Admin {
            store: DynamoAdmin::new(self.dynamo.clone(), self.sqs.clone(), self.names()),
            pusher: HttpPusher::new(TargetPolicy::LOCAL).unwrap(),
            reingest: self.ingest(),
            policy: TargetPolicy::LOCAL,
        }
    }

    /// The ingest use-case on the real adapters, against this stack.
    pub fn ingest(&self) -> TestIngest {
        ingest_with(&self.config(), self.dynamo.clone(), self.sqs.clone())
    }

    /// Registers `key` as tenant `tenant`'s credential for `carrier`.
    pub async fn add_tenant_key(&self, tenant: &str, carrier: Carrier, key: &str) {
        let store = DynamoConfigStore::new(self.dynamo.clone(), &self.config_table);
        let tenant = shared::TenantId::parse(tenant).unwrap();
        store.put_tenant(&tenant, true).await.unwrap();
        let added = store
            .put_credential(carrier, &Credential::new(key).digest(), &tenant)
            .await
            .unwrap();
        assert!(added, "the {carrier} key {key:?} is another tenant's");
    }

    /// Every message now on `queue_url`, received once with its attributes and hidden for a
    /// minute so that it is not received twice.
    pub async fn drain(&self, queue_url: &str) -> Vec<Message> {
        let mut all = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .wait_time_seconds(0)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .unwrap();
            let batch = received.messages.unwrap_or_default();
            if batch.is_empty() {
                return all;
            }
            for m in batch {
                let attributes = m
                    .message_attributes
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.string_value.unwrap_or_default()))
                    .collect();
                all.push(Message {
                    body: serde_json::from_str(m.body.as_deref().unwrap()).unwrap(),
                    attributes,
                    receipt_handle: m.receipt_handle.unwrap(),
                });
            }
        }
    }

    /// `event` as the code before queue-first accepted it (under its id of then: a v1 id, or its
    /// own): its claim where that code wrote claims (`EVENT#<id>` / `CLAIM`), `state` RECEIVED
    /// (an attempt holds it until `expires_at`, epoch seconds) or QUEUED, and its shipment's
    /// state.
    pub async fn put_old_claim(&self, event: &CanonicalEvent, state: &str, expires_at: i64) {
        use shared::ports::EventStore;
        DynamoEventStore::new(self.dynamo.clone(), &self.events_table)
            .record_shipment_event(event)
            .await
            .unwrap();
        let event_id = &event.event_id;
        self.dynamo
            .put_item()
            .table_name(&self.events_table)
            .item("pk", AttributeValue::S(format!("EVENT#{event_id}")))
            .item("sk", AttributeValue::S("CLAIM".into()))
            .item("state", AttributeValue::S(state.into()))
            .item("claim_token", AttributeValue::S("an-old-attempt".into()))
            .item(
                "claim_expires_at",
                AttributeValue::N(expires_at.to_string()),
            )
            .item("tenant_id", AttributeValue::S("acme".into()))
            .send()
            .await
            .unwrap();
    }

    /// Whether a queued message is the copy its event's claim names: the one the dispatcher
    /// pushes (`DeliveryLog::standing`); a duplicate's copy is not.
    pub async fn named_by_claim(&self, message: &Message) -> bool {
        let event: CanonicalEvent = serde_json::from_value(message.body.clone()).unwrap();
        let claimed_by = DynamoEventStore::new(self.dynamo.clone(), &self.events_table)
            .claim_token(&event)
            .await
            .unwrap();
        claimed_by.is_some() && claimed_by.as_ref() == message.attributes.get("claim_token")
    }
}

/// The notify functions' use-case, with metrics recorded in memory rather than printed as EMF.
pub type TestIngest = Ingest<
    CachedConfig<DynamoConfigStore>,
    QueueThenClaim<DynamoEventStore, SqsEventQueue>,
    RecordingMetrics,
>;

/// The notify functions' wiring (`ingest_http::aws_ingest`), with metrics kept for assertions.
pub fn ingest_with(
    config: &Config,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
) -> TestIngest {
    let production = ingest_http::aws_ingest(config, dynamo, sqs);
    Ingest::new(
        production.config,
        production.intake,
        RecordingMetrics::default(),
        production.settings,
    )
}

/// A received SQS message.
#[derive(Debug, Clone)]
pub struct Message {
    pub body: serde_json::Value,
    pub attributes: HashMap<String, String>,
    pub receipt_handle: String,
}

/// A table with the template's key schema; the events table (`delivery_index`) also has the
/// delivery log's `by_tenant_day` index and the reconciler's `by_quiet` one.
async fn create_table(dynamo: &aws_sdk_dynamodb::Client, name: &str, delivery_index: bool) {
    let attribute = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    let mut create = dynamo
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range));
    if delivery_index {
        create = create
            .attribute_definitions(attribute("tenant_day"))
            .attribute_definitions(attribute("at_key"))
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(BY_TENANT_DAY)
                    .key_schema(key("tenant_day", KeyType::Hash))
                    .key_schema(key("at_key", KeyType::Range))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            // The reconciler's index of the shipments that are not terminal.
            .attribute_definitions(attribute("open"))
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("heard_at")
                    .attribute_type(ScalarAttributeType::N)
                    .build()
                    .unwrap(),
            )
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(shared::adapters::dynamodb::BY_QUIET)
                    .key_schema(key("open", KeyType::Hash))
                    .key_schema(key("heard_at", KeyType::Range))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            );
    }
    create.send().await.unwrap();
}

/// The Python stand-in for a client's endpoint (`tests/receiver/receiver.py`), which verifies
/// signatures with the `standardwebhooks` package. Stopped when dropped.
pub struct Receiver {
    child: std::process::Child,
    pub base_url: String,
    http: reqwest::Client,
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1 and a free port; `secret` is the signing secret it checks.
    pub fn start(secret: Option<&str>) -> Receiver {
        use std::io::BufRead;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut command = std::process::Command::new(needs::venv_python());
        command
            .arg(root.join("tests/receiver/receiver.py"))
            .args(["--port", "0"])
            .stdout(std::process::Stdio::piped());
        if let Some(secret) = secret {
            command.args(["--secret", secret]);
        }
        let mut child = command
            .spawn()
            .expect("start the test receiver (.venv/bin/python; run through scripts/test)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected receiver output {line:?}"))
            .to_owned();
        Receiver {
            child,
            base_url: format!("http://{address}"),
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Every request the receiver got, in arrival order.
    pub async fn requests(&self) -> Vec<serde_json::Value> {
        self.http
            .get(self.url("/_requests"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything the JSON logger writes while the guard lives (on this thread).
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Installs a JSON subscriber for the current thread, as verbose as the binaries' filter
    /// allows (`shared::logging` at TRACE); logs are kept until `text()`.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        anchor_interest();
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter(shared::logging::filter("trace"))
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Installs the Lambda functions' own subscriber (`shared::logging::json_subscriber`, INFO)
    /// for the current thread, writing here: the bytes CloudWatch would ingest.
    pub fn install_lambda_format(&self) -> tracing::subscriber::DefaultGuard {
        anchor_interest();
        let writer = self.clone();
        tracing::subscriber::set_default(shared::logging::json_subscriber(move || writer.clone()))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Sets, once per process, a global subscriber that keeps nothing (a bare `Registry`); a test
/// that sets its own global one first (`store_down`, run alone) keeps it.
///
/// tracing works out a call site's interest once, when a thread first reaches it, and keeps it
/// for every thread. While the process has one subscriber (a capture), it asks the reaching
/// thread's own: a sibling test without a capture that reaches a call site first stores "never",
/// and the capture misses that line for good (`log_bytes` beside `calls::` lost every "event
/// accepted"). With two, tracing asks them all, and each line goes to the thread's own. (Setting
/// a subscriber works the interest of the call sites reached so far out again.)
fn anchor_interest() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
}

/// A received SQS message as the event source mapping hands it to the dispatcher: one record of
/// an `SqsEvent`, with its attributes and message attributes.
pub fn sqs_record(
    message: &aws_sdk_sqs::types::Message,
) -> aws_lambda_events::event::sqs::SqsMessage {
    use aws_lambda_events::event::sqs::{SqsMessage, SqsMessageAttribute};
    let mut record = SqsMessage::default();
    record.message_id = message.message_id.clone();
    record.receipt_handle = message.receipt_handle.clone();
    record.body = message.body.clone();
    record.attributes = message
        .attributes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_owned(), v))
        .collect();
    record.message_attributes = message
        .message_attributes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let mut a = SqsMessageAttribute::default();
            a.string_value = v.string_value;
            a.data_type = Some(v.data_type);
            (k, a)
        })
        .collect();
    record
}

/// A Clickpost in-transit scan whose body (the event's `source`) is about 1.5 KB, as the richer
/// accounts send them: the latest status, the customer, the items.
pub fn scan_body(n: u64) -> String {
    format!(
        r#"{{"waybill":"CALLS{n:08}","cp_id":4,"account_code":"Delhivery Surface Express","status":"In Transit","remark":"Shipment arrived at hub and bagged for the next leg","location":"Bhiwandi_Mankoli_HB (Maharashtra)","clickpost_city":"Bhiwandi","timestamp":"2026-11-20T10:{m:02}:00Z","clickpost_status_code":5,"clickpost_status_description":"InTransit","additional":{{"order_id":"ORD-2026-{n:06}","courier_partner_edd":"2026-11-24","notification_event_id":3,"is_rvp":false,"latest_status":{{"clickpost_status_code":5,"clickpost_status_description":"InTransit","clickpost_status_bucket":3,"clickpost_status_bucket_description":"In transit","status":"In Transit","remark":"Shipment arrived at hub and bagged for the next leg","location":"Bhiwandi_Mankoli_HB (Maharashtra)","timestamp":"2026-11-20T10:{m:02}:00Z","reference_number":"REF-{n:08}"}},"customer":{{"name":"Meera Iyengar","phone":"98450{n:05}","email":"meera.iyengar@example.in","address":"Flat 4B, 17th Cross, HSR Layout Sector 3, Bengaluru 560102","pincode":"560102"}},"items":[{{"sku":"SKU-TSHIRT-BLK-M","quantity":2,"price":799.0,"description":"Cotton crew-neck t-shirt, black, M"}},{{"sku":"SKU-SOCKS-GRY-6P","quantity":1,"price":449.0,"description":"Ankle socks, grey, pack of 6"}}],"tracking_url":"https://track.example.in/acme/CALLS{n:08}?utm_source=sms&utm_medium=notification","seller":"Acme Retail Private Limited","extra_fields":{{"channel":"Shopify","warehouse":"BLR-HSR-01","payment_mode":"PREPAID","invoice_value":"2047.00","weight_grams":"620","dimensions_cm":"30x22x6"}}}}}}"#,
        m = n % 60,
    )
}

//! Fault injection on the AWS path (issue 8, scenario `store-down` of `scripts/fault-inject`;
//! docs/fault-injection.md): DynamoDB and SQS become unavailable mid-load, and afterwards every
//! event a carrier got a 200 for must have been delivered or dead-lettered, each AWB under one
//! event id.
//!
//! The notify function and the dispatcher run in-process, wired as the Lambdas wire them
//! (`ingest_http::aws_ingest` + `ingest_http::handle`, `dispatcher::aws_dispatcher` +
//! `dispatcher::handle`), against a moto_server of this test's own: the other integration tests
//! share the one `scripts/with-moto` starts, and this test freezes its server. moto keeps its state
//! in memory only, so killing it would be data loss, not an outage; instead the functions reach
//! it through one TCP relay per service, and the store is made unavailable three times:
//!
//! 1. DynamoDB refused: the DynamoDB relay is down (connections refused, open ones reset): ingest
//!    fails at the shipment's state, before queueing (503), or, for a request that had queued its
//!    copy already, at the claim (200: the dispatcher claims the copy later);
//! 2. SQS refused: the same for SQS, while DynamoDB works (nothing is claimed before its copy is
//!    on the queue, so a 503 leaves nothing behind);
//! 3. moto frozen: SIGSTOP, then SIGCONT. Requests time out, and some of them are carried out
//!    after the client gave up (a message queued, a claim written, whose answers were lost): the
//!    nastiest case for exactly-once. The carriers' retries queue more copies of the same event;
//!    the dispatcher pushes only the one the claim names.
//!
//! Not run by `cargo test` (ignored); `scripts/fault-inject --scenario store-down` runs
//! `scripts/with-moto cargo test -p integration-tests --test it store_down:: -- --ignored --nocapture`
//! with `RMS_FAULT_EVENTS` (default 60), `RMS_FAULT_DRAIN_SECONDS` (default 60) and
//! `RMS_FAULT_LOG_DIR` (the functions' and moto's logs; default `target/fault-inject`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use dispatcher::aws_dispatcher;
use ingest_http::apigw::notify_request;
use integration_tests::{ingest_with, sqs_record, Receiver, Stack, TestIngest, MAX_RECEIVE_COUNT};
use shared::adapters::dynamodb::{DynamoConfigStore, DynamoDeliveryLog, DynamoEventStore};
use shared::adapters::memory::RecordingMetrics;
use shared::adapters::push::HttpPusher;
use shared::adapters::sqs::SqsQueueActions;
use shared::dispatch::{CachedPushConfigs, Dispatch, DispatchSettings};
use shared::push::{PushConfig, PushHeaders, PushTimeout, PushUrl, TargetPolicy};
use shared::{Carrier, TenantId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

const KEY: &str = "fault-clickpost-key";
const TENANT: &str = "fault";
/// How long each fault lasts: longer than a call may take with its retries (4 s), so that the
/// functions cannot ride it out.
const OUTAGE: Duration = Duration::from_secs(5);
/// The notify function's timeout (the SAM template has 10 s): an invocation still running then is
/// cut off, and the carrier gets a 5xx.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent "carriers", each retrying a request every 100 ms until it is answered 200.
const CARRIERS: usize = 4;
const CARRIER_RETRY: Duration = Duration::from_millis(100);
/// How long the carriers keep trying, from the start of the load.
const CARRIER_DEADLINE: Duration = Duration::from_secs(90);
/// Concurrent pollers of the emulated event source mapping.
const POLLERS: usize = 2;
/// The dispatcher function's timeout (60 s in the SAM template): a batch still running then fails
/// as a whole, and none of its messages is deleted.
const DISPATCHER_TIMEOUT: Duration = Duration::from_secs(8);
/// The visibility timeout of the pollers' receives: longer than the dispatcher's timeout, as the
/// queue's is in production (360 s against 60 s), so that a message is not handed out again while
/// its batch is still running (2 s did that: pushed twice by the harness itself); short, so that a
/// message whose receive was lost, or whose retry delay could not be set, comes back soon.
const VISIBILITY_SECONDS: i32 = 10;
/// The client's endpoint: the test receiver, answering 200 after 300 ms, as a real endpoint takes
/// its time. Pushes are then in flight when a fault starts, so that the dispatcher is hit too.
const PUSH_PATH: &str = "/hang/0.3";

#[derive(Clone, Copy, Debug)]
enum Fault {
    DynamoRefused,
    SqsRefused,
    MotoFrozen,
}

impl Fault {
    fn label(self) -> &'static str {
        match self {
            Fault::DynamoRefused => "DynamoDB refused",
            Fault::SqsRefused => "SQS refused",
            Fault::MotoFrozen => "moto frozen (SIGSTOP)",
        }
    }
}

const FAULTS: [Fault; 3] = [Fault::DynamoRefused, Fault::SqsRefused, Fault::MotoFrozen];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault injection: run by scripts/fault-inject --scenario store-down"]
async fn store_down_mid_load_loses_no_event() {
    let events = env_number("RMS_FAULT_EVENTS", 60);
    let drain_for = Duration::from_secs(env_number("RMS_FAULT_DRAIN_SECONDS", 60) as u64);
    let started = Instant::now();
    let log = |msg: String| {
        println!(
            "[{:5.1}s] store-down: {msg}",
            started.elapsed().as_secs_f64()
        )
    };
    let logs = log_dir();
    let log_file = logs.join("store-down.log");
    install_log_file(&log_file);

    // Started here, on the test's own thread (see `Moto::start`).
    let moto = Moto::start(&logs.join("moto-store-down.log")).await;
    let stack = Stack::create_at(&moto.url(), MAX_RECEIVE_COUNT).await;
    stack.add_tenant_key(TENANT, Carrier::Clickpost, KEY).await;
    let receiver = Receiver::start(None);
    DynamoConfigStore::new(stack.dynamo.clone(), &stack.config_table)
        .put_push_config(
            &TenantId::parse(TENANT).unwrap(),
            &PushConfig {
                url: PushUrl::parse(&receiver.url(PUSH_PATH), TargetPolicy::LOCAL).unwrap(),
                headers: PushHeaders::default(),
                statuses: vec![],
                signing_secret: None,
                timeout: PushTimeout::new(Duration::from_secs(2)).unwrap(),
                enabled: true,
                delivery: shared::push::Delivery::Every,
            },
        )
        .await
        .unwrap();
    let mut dynamo_relay = Relay::start(moto.address).await;
    let mut sqs_relay = Relay::start(moto.address).await;
    log(format!(
        "moto_server on {} (pid {}), DynamoDB relay {}, SQS relay {}, receiver {}, {events} events",
        moto.url(),
        moto.child.id(),
        dynamo_relay.url(),
        sqs_relay.url(),
        receiver.base_url
    ));

    // The notify function: the production wiring, its clients through the relays.
    let (dynamo, sqs) = function_clients(&dynamo_relay, &sqs_relay).await;
    let ingest = Arc::new(ingest_with(&stack.config(), dynamo, sqs));

    // The dispatcher: the production wiring, with metrics kept in memory rather than printed as
    // EMF, and a retry schedule of seconds instead of 30 s, 2 min, ... so that the run is short.
    let (dynamo, sqs) = function_clients(&dynamo_relay, &sqs_relay).await;
    let env = HashMap::from([
        ("CONFIG_TABLE", stack.config_table.clone()),
        ("EVENTS_TABLE", stack.events_table.clone()),
        ("EVENTS_QUEUE_URL", stack.queue_url.clone()),
        ("DEAD_LETTER_QUEUE_URL", stack.dlq_url.clone()),
        ("ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        ("ALLOW_HTTP_TARGETS", "true".to_owned()),
        // 4 pushes at once per batch (production: 10): the dispatcher falls behind the load, so
        // that it has a backlog when a fault starts and receives messages while it lasts.
        ("CONCURRENCY", "4".to_owned()),
    ]);
    let dispatcher_config = dispatcher::Config::from_lookup(|name| env.get(name).cloned()).unwrap();
    let (production, actions) = aws_dispatcher(&dispatcher_config, dynamo, sqs).unwrap();
    let dispatch = Arc::new(Dispatch {
        configs: production.configs,
        pusher: production.pusher,
        log: production.log,
        metrics: RecordingMetrics::default(),
        breaker: production.breaker,
        shipments: production.shipments,
        settings: DispatchSettings {
            retry_schedule: vec![Duration::from_secs(2), Duration::from_secs(4)],
            ..production.settings
        },
    });

    let stats = Arc::new(Stats::default());
    let load = Arc::new(Load::new(events));
    let stop_pollers = Arc::new(AtomicBool::new(false));
    let mut pollers = JoinSet::new();
    for _ in 0..POLLERS {
        // The event source mapping is AWS's, not the function's; it has an SQS client of its own.
        let (_, sqs) = function_clients(&dynamo_relay, &sqs_relay).await;
        let poller = Poller {
            sqs,
            queue_url: stack.queue_url.clone(),
            dispatch: dispatch.clone(),
            actions: actions.clone(),
            concurrency: dispatcher_config.concurrency,
            stats: stats.clone(),
            stop: stop_pollers.clone(),
        };
        pollers.spawn(poller.run());
    }
    let mut carriers = JoinSet::new();
    for _ in 0..CARRIERS {
        carriers.spawn(carrier(ingest.clone(), load.clone(), stats.clone()));
    }

    // The faults, each once another quarter of the events was answered 200. A load that stalls
    // is reported by the reconciliation (not every event answered, a fault not felt).
    let mut fault_at = Vec::new();
    for (k, fault) in FAULTS.into_iter().enumerate() {
        let at = events * (k + 1) / (FAULTS.len() + 1);
        if !load.wait_answered(at).await {
            log(format!("the load stalled before {at} answered events"));
            break;
        }
        stats.phase.store(k + 1, Ordering::SeqCst);
        fault_at.push(load.answered_count());
        log(format!(
            "{} for {} s, after {} answered events",
            fault.label(),
            OUTAGE.as_secs_f64(),
            load.answered_count()
        ));
        match fault {
            Fault::DynamoRefused => {
                dynamo_relay.down().await;
                tokio::time::sleep(OUTAGE).await;
                dynamo_relay.up().await;
            }
            Fault::SqsRefused => {
                sqs_relay.down().await;
                tokio::time::sleep(OUTAGE).await;
                sqs_relay.up().await;
            }
            Fault::MotoFrozen => {
                moto.signal("STOP");
                tokio::time::sleep(OUTAGE).await;
                moto.signal("CONT");
            }
        }
        log(format!("{}: over", fault.label()));
    }
    while carriers.join_next().await.is_some() {}
    let answered: HashMap<String, Vec<String>> = load.answered.lock().unwrap().clone();
    let answered_ids: HashSet<String> = answered.values().flatten().cloned().collect();
    log(format!(
        "load done: {} of {events} answered 200",
        answered.len()
    ));

    // Drain: the pollers go on until the queue is empty at two looks in a row. Messages being
    // delivered, or hidden for a retry, count too (not visible), so nothing can come any more.
    let drain_deadline = Instant::now() + drain_for;
    let mut empty_looks = 0;
    while empty_looks < 2 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if queue_depth(&stack, &stack.queue_url).await == 0 {
            empty_looks += 1;
        } else {
            empty_looks = 0;
        }
    }
    stop_pollers.store(true, Ordering::SeqCst);
    while pollers.join_next().await.is_some() {}
    let depth = queue_depth(&stack, &stack.queue_url).await;
    let requests = receiver.requests().await;
    log("drained".to_owned());

    // Reconciliation.
    let requests_at_receiver = requests.len();
    let delivered = delivered_ids(&requests);
    // Pushes of one event id: more than one only when the dispatcher pushed and its batch failed
    // before the attempt was written (the moto freeze outlasts the batch's timeout), so that the
    // message came back undelivered in the log: at least once, as the client's webhook-id dedup
    // expects. Copies of duplicates never are (the claim names one copy).
    let mut pushes: HashMap<&str, usize> = HashMap::new();
    for r in requests.iter().filter(|r| is_delivery(r)) {
        *pushes
            .entry(r["headers"]["webhook-id"].as_str().unwrap())
            .or_default() += 1;
    }
    let pushed_again: Vec<(&&str, &usize)> = pushes.iter().filter(|(_, n)| **n > 1).collect();
    let mut ids_by_awb: HashMap<String, HashSet<String>> = HashMap::new();
    for r in requests.iter().filter(|r| is_delivery(r)) {
        let body: serde_json::Value =
            serde_json::from_str(r["body"].as_str().unwrap_or("")).unwrap_or_default();
        ids_by_awb
            .entry(body["awb"].as_str().unwrap_or("").to_owned())
            .or_default()
            .insert(r["headers"]["webhook-id"].as_str().unwrap().to_owned());
    }
    let dead_messages = stack.drain(&stack.dlq_url).await;
    let dead: HashSet<String> = dead_messages
        .iter()
        .filter_map(|m| m.body["event_id"].as_str().map(str::to_owned))
        .collect();
    let lost: Vec<&String> = answered_ids
        .iter()
        .filter(|id| !delivered.contains(*id) && !dead.contains(*id))
        .collect();
    let two_ids: Vec<(&String, &HashSet<String>)> = ids_by_awb
        .iter()
        .filter(|(_, ids)| ids.len() != 1)
        .collect();
    let unanswered = events - answered.len();
    let no_id = answered.values().filter(|ids| ids.is_empty()).count();
    let metrics = &dispatch.metrics;
    let total = |counter: fn(&PhaseStats) -> &AtomicU64| -> u64 {
        stats
            .phases
            .iter()
            .map(|p| counter(p).load(Ordering::SeqCst))
            .sum()
    };
    let faults_hit = stats.phases[1..]
        .iter()
        .all(|p| p.non_200.load(Ordering::SeqCst) > 0);
    let checks = [
        ("every event answered 200", unanswered == 0 && no_id == 0),
        ("queue drained (queued = 0)", depth == 0),
        ("lost = 0", lost.is_empty()),
        (
            "each AWB delivered under exactly one event id",
            two_ids.is_empty(),
        ),
        (
            "every fault was felt (non-200 answers while it lasted)",
            faults_hit,
        ),
    ];

    println!("\n== reconciliation: store-down");
    let row = |label: &str, value: String| println!("  {label:<32}{value}");
    row("events sent (distinct AWBs)", events.to_string());
    row(
        "answered 200",
        format!(
            "{} ({} event ids; retried: {} non-200 answers, {} function timeouts)",
            answered.len(),
            answered_ids.len(),
            total(|p| &p.non_200),
            total(|p| &p.timeouts)
        ),
    );
    row("functions' log", log_summary(&log_file));
    row(
        "delivered (distinct webhook-id)",
        format!(
            "{} ({} in all, {requests_at_receiver} requests at the receiver)",
            delivered.intersection(&answered_ids).count(),
            delivered.len()
        ),
    );
    row(
        "delivery attempts by outcome",
        format!(
            "delivered {}, retry {}, dead_letter {}",
            metrics.total("Delivered"),
            metrics.total("DeliveryFailed"),
            metrics.total("DeadLettered")
        ),
    );
    row(
        "dispatcher batch item failures",
        format!(
            "{} (poller SQS calls failed: {})",
            total(|p| &p.batch_item_failures),
            total(|p| &p.poller_errors)
        ),
    );
    row(
        "dead letters",
        format!(
            "{} ({} messages in the DLQ)",
            dead.len(),
            dead_messages.len()
        ),
    );
    row("lost", format!("{}{}", lost.len(), examples(&lost, 3)));
    row(
        "event ids pushed more than once",
        format!("{}{}", pushed_again.len(), examples(&pushed_again, 3)),
    );
    row(
        "AWBs with != 1 event id",
        format!("{}{}", two_ids.len(), examples(&two_ids, 2)),
    );
    println!("  each fault, counted until the next: non-200 answers / batch item failures / poller SQS errors");
    for (k, phase) in stats.phases.iter().enumerate() {
        let label = match k {
            0 => "before the faults".to_owned(),
            k => format!(
                "{} {} s (at {} answered)",
                FAULTS[k - 1].label(),
                OUTAGE.as_secs(),
                fault_at[k - 1]
            ),
        };
        println!(
            "    {label:<44}{} / {} / {}",
            phase.non_200.load(Ordering::SeqCst),
            phase.batch_item_failures.load(Ordering::SeqCst),
            phase.poller_errors.load(Ordering::SeqCst)
        );
    }
    let mut ok = true;
    for (label, passed) in checks {
        println!("  {} {label}", if passed { "ok  " } else { "FAIL" });
        ok &= passed;
    }
    println!(
        "  (in {:.0} s; logs: {})",
        started.elapsed().as_secs_f64(),
        logs.display()
    );
    assert!(ok, "store-down: a reconciliation check failed (see above)");
}

/// " e.g. [the first `n`]", or nothing if there are none.
fn examples<T: std::fmt::Debug>(items: &[T], n: usize) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(" e.g. {:?}", &items[..items.len().min(n)])
    }
}

/// A whole number from the environment, or `default`.
fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a whole number"))
    })
}

/// `RMS_FAULT_LOG_DIR` (scripts/fault-inject passes its scenario's temp dir), else
/// `target/fault-inject`.
fn log_dir() -> PathBuf {
    let dir = std::env::var_os("RMS_FAULT_LOG_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fault-inject"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

/// The functions' JSON logs go to a file: a failed run can be read there.
fn install_log_file(path: &Path) {
    let file = std::fs::File::create(path).unwrap();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(shared::logging::filter("info"))
        .with_writer(Mutex::new(file))
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// How often each warning and error was logged, and the copies the dispatcher dropped as a
/// duplicate's (a carrier's retry of a request whose answer it did not get): what the faults did.
fn log_summary(path: &Path) -> String {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let message = entry["fields"]["message"].as_str().unwrap_or("");
        let notable = matches!(entry["level"].as_str(), Some("WARN" | "ERROR"))
            || message.contains("copy of a duplicate");
        if notable {
            *counts.entry(message.to_owned()).or_default() += 1;
        }
    }
    let mut counts: Vec<(String, usize)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let listed: Vec<String> = counts.iter().map(|(m, n)| format!("{m}: {n}")).collect();
    if listed.is_empty() {
        "none".to_owned()
    } else {
        listed.join("; ")
    }
}

/// The SDK clients of a function: against the relays, with what the Lambdas run with: the SDK's
/// standard retry (3 attempts, exponential backoff with jitter) and the functions' timeouts
/// (`shared::adapters::lambda_sdk::timeouts`: connect 1 s, 1.5 s per attempt, 4 s per call), so
/// that ingest gives up on a hung store and answers 503, and the carrier retries.
async fn function_clients(
    dynamo: &Relay,
    sqs: &Relay,
) -> (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client) {
    let sdk = |endpoint: String| async move {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(shared::adapters::lambda_sdk::timeouts())
            .load()
            .await
    };
    let dynamo: SdkConfig = sdk(dynamo.url()).await;
    let sqs: SdkConfig = sdk(sqs.url()).await;
    (
        aws_sdk_dynamodb::Client::new(&dynamo),
        aws_sdk_sqs::Client::new(&sqs),
    )
}

/// Counters for one phase of the run: before the first fault (0), then from fault k until the
/// next (k).
#[derive(Default)]
struct PhaseStats {
    non_200: AtomicU64,
    timeouts: AtomicU64,
    batch_item_failures: AtomicU64,
    poller_errors: AtomicU64,
}

#[derive(Default)]
struct Stats {
    phase: AtomicUsize,
    phases: [PhaseStats; FAULTS.len() + 1],
}

impl Stats {
    fn now(&self) -> &PhaseStats {
        &self.phases[self.phase.load(Ordering::SeqCst)]
    }
}

/// N distinct Clickpost scans, one AWB each, handed out to the carriers.
struct Load {
    events: usize,
    deadline: Instant,
    next: AtomicUsize,
    /// AWB → the event ids of its 200 answer.
    answered: Mutex<HashMap<String, Vec<String>>>,
}

impl Load {
    fn new(events: usize) -> Load {
        Load {
            events,
            deadline: Instant::now() + CARRIER_DEADLINE,
            next: AtomicUsize::new(0),
            answered: Mutex::new(HashMap::new()),
        }
    }

    fn take(&self) -> Option<usize> {
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        (i < self.events).then_some(i)
    }

    fn answered_count(&self) -> usize {
        self.answered.lock().unwrap().len()
    }

    /// Whether `count` events were answered 200 before the carriers' deadline.
    async fn wait_answered(&self, count: usize) -> bool {
        while self.answered_count() < count {
            if Instant::now() > self.deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

/// A carrier: posts each scan it takes until it is answered 200, every 100 ms.
async fn carrier(ingest: Arc<TestIngest>, load: Arc<Load>, stats: Arc<Stats>) {
    while let Some(i) = load.take() {
        let awb = format!("SD{i:06}");
        let body = serde_json::json!({
            "waybill": awb,
            "clickpost_status_code": 5,
            "timestamp": "2023-02-07T18:09:00Z",
            "additional": {"order_id": format!("O{i}")},
        })
        .to_string();
        while Instant::now() < load.deadline {
            let request = notify_request(
                Carrier::Clickpost,
                "POST",
                &[("webhook_key", KEY)],
                "",
                body.as_bytes(),
            );
            let invocation = ingest_http::handle(&*ingest, Carrier::Clickpost, request);
            match tokio::time::timeout(FUNCTION_TIMEOUT, invocation).await {
                Ok(Ok(response)) if response.status() == 200 => {
                    let answer: serde_json::Value =
                        serde_json::from_slice(response.body().as_ref()).unwrap();
                    let ids = answer["event_ids"]
                        .as_array()
                        .map(|ids| {
                            ids.iter()
                                .filter_map(|id| id.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    load.answered.lock().unwrap().insert(awb, ids);
                    break;
                }
                // A 503 (or any other answer), or a function error (API Gateway answers 500).
                Ok(_) => {
                    stats.now().non_200.fetch_add(1, Ordering::SeqCst);
                }
                Err(_) => {
                    stats.now().non_200.fetch_add(1, Ordering::SeqCst);
                    stats.now().timeouts.fetch_add(1, Ordering::SeqCst);
                }
            }
            tokio::time::sleep(CARRIER_RETRY).await;
        }
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

/// One poller of the event source mapping (`ReportBatchItemFailures`): receive up to 10 messages,
/// hand them to the dispatcher, delete those it did not report as failed. The others come back
/// when their visibility ends (set by the dispatcher for a retry, or the receive's 10 s); after
/// `maxReceiveCount` receives the queue's redrive policy moves a message to the DLQ.
struct Poller {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dispatch: Arc<TestDispatch>,
    actions: SqsQueueActions,
    concurrency: usize,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
}

impl Poller {
    async fn run(self) {
        while !self.stop.load(Ordering::SeqCst) {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(VISIBILITY_SECONDS)
                .wait_time_seconds(0)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await;
            let messages = match received {
                Ok(output) => output.messages.unwrap_or_default(),
                Err(_) => {
                    self.stats
                        .now()
                        .poller_errors
                        .fetch_add(1, Ordering::SeqCst);
                    Vec::new()
                }
            };
            if messages.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let mut event = SqsEvent::default();
            event.records = messages.iter().map(sqs_record).collect();
            let invocation =
                dispatcher::handle(&*self.dispatch, &self.actions, event, self.concurrency);
            let failed: HashSet<String> =
                match tokio::time::timeout(DISPATCHER_TIMEOUT, invocation).await {
                    Ok(response) => response
                        .batch_item_failures
                        .into_iter()
                        .map(|f| f.item_identifier)
                        .collect(),
                    // Timed out: the whole batch failed.
                    Err(_) => messages
                        .iter()
                        .filter_map(|m| m.message_id.clone())
                        .collect(),
                };
            self.stats
                .now()
                .batch_item_failures
                .fetch_add(failed.len() as u64, Ordering::SeqCst);
            let done: Vec<DeleteMessageBatchRequestEntry> = messages
                .iter()
                .enumerate()
                .filter(|(_, m)| !failed.contains(m.message_id.as_deref().unwrap_or("")))
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .set_receipt_handle(m.receipt_handle.clone())
                        .build()
                        .unwrap()
                })
                .collect();
            if done.is_empty() {
                continue;
            }
            // A delete that fails leaves the message to come back; the dispatcher then finds it
            // delivered and acknowledges it without a second push.
            let deleted = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(done))
                .send()
                .await;
            if !deleted.is_ok_and(|out| out.failed.is_empty()) {
                self.stats
                    .now()
                    .poller_errors
                    .fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Messages on a queue, visible or not.
async fn queue_depth(stack: &Stack, queue_url: &str) -> u64 {
    let attributes = stack
        .sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    attributes.values().map(|n| n.parse::<u64>().unwrap()).sum()
}

/// A push to the client's endpoint (which answers them all 200; the receiver records a request
/// when it arrives, so also one the dispatcher gave up waiting for).
fn is_delivery(request: &serde_json::Value) -> bool {
    request["path"] == PUSH_PATH && request["headers"]["webhook-id"].is_string()
}

fn delivered_ids(requests: &[serde_json::Value]) -> HashSet<String> {
    requests
        .iter()
        .filter(|r| is_delivery(r))
        .map(|r| r["headers"]["webhook-id"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs moto_server in place of this launcher, asking the kernel to SIGKILL it when the thread
/// that started it ends (Linux `PR_SET_PDEATHSIG`): no server is left behind even if the test
/// process is killed before `Moto`'s Drop can run. SIGKILL, as SIGTERM would wait for a SIGCONT
/// if the server was frozen at that moment.
const LAUNCHER: &str = "
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))
os.execv(sys.argv[1], sys.argv[1:])
";

/// This test's own moto_server on 127.0.0.1 and a free port; killed when dropped.
struct Moto {
    child: Child,
    address: SocketAddr,
}

impl Moto {
    /// Must be called from the test's own thread (not a spawned task): the server is stopped
    /// when the thread that started it ends.
    async fn start(log: &Path) -> Moto {
        let bin = std::env::var("RMS_MOTO_BIN").expect(
            "RMS_MOTO_BIN is not set: run through scripts/fault-inject --scenario store-down \
             (or wrap the command in scripts/with-moto)",
        );
        let python = Path::new(&bin).with_file_name("python");
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let out = std::fs::File::create(log).unwrap();
            let child = Command::new(&python)
                .args(["-c", LAUNCHER, &bin, "-H", "127.0.0.1", "-p"])
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .expect("start moto_server");
            let mut moto = Moto {
                child,
                address: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            if moto.ready().await {
                return moto;
            }
            // Dropped: killed. Most likely the port was taken meanwhile; try another.
        }
        panic!("moto_server did not start; see {}", log.display());
    }

    /// Whether the server answers HTTP within 30 s (false if it exited).
    async fn ready(&mut self) -> bool {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            let probe = http
                .get(self.url())
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if probe.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `kill -SIG pid`: STOP freezes the server with its state, CONT resumes it.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} moto_server");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill(); // SIGKILL also ends a stopped process
        let _ = self.child.wait();
    }
}

/// A TCP relay from a port on 127.0.0.1 to moto_server. `down` closes the port (new connections
/// are refused) and resets every open connection, as a store that went away; `up` opens the same
/// port again.
struct Relay {
    address: SocketAddr,
    target: SocketAddr,
    /// Dropping the sender stops the accept loop and its connections; the task ends when they are
    /// all closed.
    running: Option<(watch::Sender<()>, tokio::task::JoinHandle<()>)>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut relay = Relay {
            address: listener.local_addr().unwrap(),
            target,
            running: None,
        };
        relay.serve(listener);
        relay
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = watch::channel(());
        let task = tokio::spawn(accept(listener, self.target, stopped));
        self.running = Some((stop, task));
    }

    async fn down(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            drop(stop);
            task.await.unwrap();
        }
    }

    async fn up(&mut self) {
        // The port was ours a moment ago; bind sets SO_REUSEADDR, so connections of ours still
        // in TIME_WAIT do not hold it. Retried in case another process took it meanwhile.
        for _ in 0..50 {
            if let Ok(listener) = TcpListener::bind(self.address).await {
                self.serve(listener);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("could not listen on {} again", self.address);
    }
}

async fn accept(listener: TcpListener, target: SocketAddr, mut stopped: watch::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((inbound, _)) = accepted {
                    connections.spawn(relay(inbound, target, stopped.clone()));
                }
                while connections.try_join_next().is_some() {}
            }
            _ = stopped.changed() => break,
        }
    }
    drop(listener); // from here on, connecting is refused
    while connections.join_next().await.is_some() {}
}

async fn relay(mut inbound: TcpStream, target: SocketAddr, mut stopped: watch::Receiver<()>) {
    let stop = tokio::select! {
        () = async {
            if let Ok(mut upstream) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut upstream).await;
            }
        } => false,
        _ = stopped.changed() => true,
    };
    if stop {
        // Closed with a reset, not an orderly FIN: a request in flight fails as it would if the
        // service's host went away.
        let _ = inbound.set_zero_linger();
    }
}

//! How many AWS calls, and DynamoDB request units, one notification costs: the real ingest and
//! dispatcher code against moto_server, with an interceptor on the SDK clients recording every
//! request (its operation, the item's key, whether a read is consistent), and the items the run
//! left, to size each write as DynamoDB bills it. The figures feed the cost table in
//! docs/performance.md; the assertions keep them true.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use ingest_http::apigw::notify_request;
use integration_tests::{ingest_with, scan_body, sqs_record, Receiver, Stack};
use shared::adapters::dynamodb::DynamoConfigStore;
use shared::adapters::push::TargetPolicy;
use shared::push::{PushConfig, PushHeaders, PushTimeout, PushUrl, SecretValue};
use shared::{Carrier, TenantId};

const KEY: &str = "cp-calls-key-0123456789";
const EVENTS: u64 = 20;

/// One DynamoDB request as the counter saw it: the operation, the item's key and whether a read
/// was strongly consistent.
#[derive(Debug, Clone)]
struct Request {
    operation: String,
    key: Option<(String, String)>,
    consistent: bool,
}

/// Counts requests by their `X-Amz-Target` (`DynamoDB_20120810.PutItem`, `AmazonSQS.SendMessage`),
/// and keeps what each DynamoDB request was about, to work out the request units it is billed.
#[derive(Debug, Clone, Default)]
struct Counter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("unknown");
        let operation = target.rsplit('.').next().unwrap_or("unknown").to_owned();
        *self
            .counts
            .lock()
            .unwrap()
            .entry(operation.clone())
            .or_default() += 1;
        if target.starts_with("DynamoDB") {
            let body: serde_json::Value = context
                .request()
                .body()
                .bytes()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            let item = body.get("Key").or_else(|| body.get("Item"));
            let key = item.map(|k| {
                let part = |name: &str| k[name]["S"].as_str().unwrap_or_default().to_owned();
                (part("pk"), part("sk"))
            });
            self.requests.lock().unwrap().push(Request {
                operation,
                key,
                consistent: body["ConsistentRead"].as_bool() == Some(true),
            });
        }
        Ok(())
    }
}

impl Counter {
    fn take(&self) -> (BTreeMap<String, u64>, Vec<Request>) {
        (
            std::mem::take(&mut *self.counts.lock().unwrap()),
            std::mem::take(&mut *self.requests.lock().unwrap()),
        )
    }
}

fn per_event(counts: &BTreeMap<String, u64>) -> BTreeMap<String, f64> {
    counts
        .iter()
        .map(|(op, n)| (op.clone(), *n as f64 / EVENTS as f64))
        .collect()
}

/// An item's size as DynamoDB bills it: each attribute's name and value in bytes (a number about
/// one byte per two digits and one more; a list or map 3 bytes and one per element more).
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::L(l) => 3 + l.iter().map(|v| value(v) + 1).sum::<usize>(),
            AttributeValue::M(m) => {
                3 + m.iter().map(|(k, v)| k.len() + value(v) + 1).sum::<usize>()
            }
            AttributeValue::Ss(ss) => ss.iter().map(String::len).sum(),
            _ => 0,
        }
    }
    item.iter().map(|(name, v)| name.len() + value(v)).sum()
}

/// Every item of a table, by key.
async fn items(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
) -> HashMap<(String, String), HashMap<String, AttributeValue>> {
    let mut all = HashMap::new();
    let mut start = None;
    loop {
        let page = dynamo
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items.unwrap_or_default() {
            let part = |name: &str| item[name].as_s().unwrap().clone();
            all.insert((part("pk"), part("sk")), item);
        }
        start = page.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            return all;
        }
    }
}

/// Write and read request units, worked out from the requests and the items they left:
/// - a write is billed one unit per KB of the item (an UpdateItem: of the larger of the item
///   before and after; every item here only grows, so its final size is the larger), and one
///   write more for each index the item is in after it (`by_quiet` while it has `open`,
///   `by_tenant_day` while it has `tenant_day`; every item here is new, so no index key moved,
///   which would be two writes);
/// - a read half a unit per 4 KB, a strongly consistent one a whole unit (every item read here is
///   under 4 KB; asserted).
#[derive(Debug, Default, PartialEq)]
struct Units {
    /// Write units by the kind of item (the key's prefix) and in the indexes.
    writes: BTreeMap<String, f64>,
    reads: f64,
}

impl Units {
    fn of(
        requests: &[Request],
        tables: &HashMap<(String, String), HashMap<String, AttributeValue>>,
    ) -> Units {
        let mut units = Units::default();
        for request in requests {
            match request.operation.as_str() {
                "PutItem" | "UpdateItem" | "DeleteItem" => {
                    let key = request.key.clone().unwrap();
                    let mut kind = key.0.split('#').next().unwrap_or_default().to_owned();
                    // A shipment's delivery log partition holds its events' claims (the sort key
                    // is the bare event id) beside their attempts.
                    if kind == "DELIVERY" && !key.1.contains('#') {
                        kind.push_str(" claim");
                    }
                    let item = tables.get(&key);
                    let size = item.map_or(0, item_size);
                    *units.writes.entry(kind).or_default() += size.div_ceil(1024).max(1) as f64;
                    for (attribute, index) in [
                        ("open", "index by_quiet"),
                        ("tenant_day", "index by_tenant_day"),
                    ] {
                        if item.is_some_and(|i| i.contains_key(attribute)) {
                            *units.writes.entry(index.to_owned()).or_default() += 1.0;
                        }
                    }
                }
                "GetItem" | "Query" => {
                    if let Some(item) = request.key.as_ref().and_then(|k| tables.get(k)) {
                        assert!(item_size(item) < 4096, "{request:?}");
                    }
                    units.reads += if request.consistent { 1.0 } else { 0.5 };
                }
                other => panic!("a DynamoDB call the unit count does not know: {other}"),
            }
        }
        units
    }

    fn per_event(&self) -> (BTreeMap<String, f64>, f64, f64) {
        let writes: BTreeMap<String, f64> = self
            .writes
            .iter()
            .map(|(k, v)| (k.clone(), v / EVENTS as f64))
            .collect();
        let total = writes.values().sum();
        (writes, total, self.reads / EVENTS as f64)
    }
}

#[tokio::test]
async fn calls_per_accepted_and_delivered_event() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    stack.add_tenant_key("acme", Carrier::Clickpost, KEY).await;
    let receiver = Receiver::start(None);
    DynamoConfigStore::new(stack.dynamo.clone(), &stack.config_table)
        .put_push_config(
            &TenantId::parse("acme").unwrap(),
            &PushConfig {
                url: PushUrl::parse(&receiver.url("/ok"), TargetPolicy::LOCAL).unwrap(),
                headers: PushHeaders::stored(vec![(
                    "Authorization".into(),
                    SecretValue::new("Bearer t"),
                )]),
                statuses: vec![],
                signing_secret: None,
                timeout: PushTimeout::new(Duration::from_secs(5)).unwrap(),
                enabled: true,
                delivery: shared::push::Delivery::Every,
            },
        )
        .await
        .unwrap();

    let counter = Counter::default();
    let dynamo = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&stack.sdk)
            .interceptor(counter.clone())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&stack.sdk)
            .interceptor(counter.clone())
            .build(),
    );

    // Ingest: one request per event, as carriers send them, through the notify functions' wiring
    // with their production cache (the tests' `Stack::config` turns it off).
    let mut config = stack.config();
    config.config_cache = Duration::from_secs(60);
    let ingest = ingest_with(&config, dynamo.clone(), sqs.clone());
    let mut ingest_times = Vec::new();
    for n in 0..EVENTS {
        let body = scan_body(n);
        let request = notify_request(
            Carrier::Clickpost,
            "POST",
            &[("webhook_key", KEY)],
            "",
            body.as_bytes(),
        );
        let started = std::time::Instant::now();
        let response = ingest_http::handle(&ingest, Carrier::Clickpost, request)
            .await
            .unwrap();
        ingest_times.push(started.elapsed());
        assert_eq!(response.status(), 200);
    }
    let (ingest_calls, ingest_requests) = counter.take();

    // Dispatch: the event source mapping's receive and delete are SQS's own (counted apart);
    // the dispatcher's calls are what the handler makes for each batch of 10.
    let env = HashMap::from([
        ("CONFIG_TABLE", stack.config_table.clone()),
        ("EVENTS_TABLE", stack.events_table.clone()),
        ("EVENTS_QUEUE_URL", stack.queue_url.clone()),
        ("DEAD_LETTER_QUEUE_URL", stack.dlq_url.clone()),
    ]);
    let mut config = dispatcher::Config::from_lookup(|n| env.get(n).cloned()).unwrap();
    config.targets = TargetPolicy {
        allow_private: true,
        allow_http: true,
    };
    let (dispatch, actions) = dispatcher::aws_dispatcher(&config, dynamo, sqs).unwrap();
    let mut delivered = 0;
    let mut source_mapping_calls = 0;
    let mut batch_times = Vec::new();
    let mut source_bytes = Vec::new();
    while delivered < EVENTS {
        let received = stack
            .sqs
            .receive_message()
            .queue_url(&stack.queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        source_mapping_calls += 2; // ReceiveMessage + DeleteMessageBatch
        let mut event = SqsEvent::default();
        for m in received.messages.unwrap_or_default() {
            let body: serde_json::Value = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
            source_bytes.push(serde_json::to_string(&body["source"]).unwrap().len());
            event.records.push(sqs_record(&m));
        }
        let batch = event.records.len() as u64;
        let started = std::time::Instant::now();
        let response = dispatcher::handle(&dispatch, &actions, event, 4).await;
        batch_times.push((batch, started.elapsed()));
        assert!(response.batch_item_failures.is_empty());
        delivered += batch;
    }
    let (dispatch_calls, dispatch_requests) = counter.take();
    assert_eq!(receiver.requests().await.len() as u64, EVENTS);
    assert!(
        source_bytes.iter().all(|n| (1400..=1700).contains(n)),
        "each event's source is about 1.5 KB: {source_bytes:?}"
    );

    let mut tables = items(&stack.dynamo, &stack.events_table).await;
    tables.extend(items(&stack.dynamo, &stack.config_table).await);
    let ingest_units = Units::of(&ingest_requests, &tables);
    let dispatch_units = Units::of(&dispatch_requests, &tables);

    let ingest = per_event(&ingest_calls);
    let dispatch = per_event(&dispatch_calls);
    println!("AWS calls per event ({EVENTS} events, one per request, batches of 10):");
    println!("  ingest:     {ingest:?}");
    println!("  dispatcher: {dispatch:?}");
    println!(
        "  event source mapping (ReceiveMessage + DeleteMessageBatch): {:.2}",
        source_mapping_calls as f64 / EVENTS as f64
    );
    let (ingest_writes, ingest_total, ingest_reads) = ingest_units.per_event();
    let (dispatch_writes, dispatch_total, dispatch_reads) = dispatch_units.per_event();
    println!("DynamoDB request units per event (source {source_bytes:?} bytes):");
    println!("  ingest:     {ingest_total:.2} WRU {ingest_writes:?}, {ingest_reads:.3} RRU");
    println!("  dispatcher: {dispatch_total:.2} WRU {dispatch_writes:?}, {dispatch_reads:.3} RRU");
    println!(
        "  total:      {:.2} WRU, {:.3} RRU",
        ingest_total + dispatch_total,
        ingest_reads + dispatch_reads
    );
    let claim = tables
        .iter()
        .find(|((pk, sk), _)| pk.starts_with("DELIVERY#") && !sk.contains('#'))
        .map(|(_, item)| item_size(item))
        .unwrap();
    println!("  a claim with its packed event: {claim} bytes");
    // Handler time in this process (a test build) against moto_server and the local receiver:
    // what the Lambda durations of the cost table are checked against, not AWS's latencies.
    ingest_times.sort();
    println!(
        "handler time: ingest median {:?} (max {:?}) per request; dispatcher {:?}",
        ingest_times[ingest_times.len() / 2],
        ingest_times[ingest_times.len() - 1],
        batch_times
    );

    // Ingest: the key and the tenant's profile (2 reads) and whether the tenant has a pull
    // account at the carrier (1 read), once per container and minute (`CONFIG_CACHE_SECONDS`),
    // not per request; the shipment's state, the message, then the claim, written once with the
    // event packed for replay (queue first: no mark, no release); and the carrier-status view's
    // "last accepted" and its hour's count (two writes), at most once a minute per tenant and
    // carrier by a process (here once), not once per event.
    //
    // No claim of the code before queue-first is looked up (`QueueThenClaim::claimed_before`: its
    // own and its v1 ids' `EVENT#` claims, two reads): each event here is its shipment's first,
    // which the shipment state's write says for nothing, and such an event cannot have been
    // accepted before. A later event of a shipment pays the two reads until those claims expire
    // (docs/performance.md).
    assert_eq!(
        ingest_calls,
        BTreeMap::from([
            ("GetItem".to_owned(), 3),
            ("PutItem".to_owned(), EVENTS),
            ("SendMessage".to_owned(), EVENTS),
            ("UpdateItem".to_owned(), EVENTS + 2),
        ])
    );
    // Dispatcher: whether this copy is the one the claim names and the event was not delivered
    // already (one Query of the event's claim and attempts, side by side), the attempt (1 write,
    // which is the delivered marker too), and per batch one page of the delivery log by time;
    // the Push Config and the tenant's circuit once per container, cached (the first batch's
    // concurrent deliveries, 4 here, may each miss the empty caches once). Every copy here has
    // its claim, so the dispatcher writes none.
    let reads = dispatch_calls.get("GetItem").copied().unwrap_or(0);
    assert!((2..=8).contains(&reads), "{dispatch_calls:?}");
    assert_eq!(
        dispatch_calls.get("Query"),
        Some(&EVENTS),
        "{dispatch_calls:?}"
    );
    assert_eq!(
        dispatch_calls.get("PutItem"),
        Some(&(EVENTS + EVENTS / 10)),
        "{dispatch_calls:?}"
    );
    assert_eq!(
        dispatch_calls.len(),
        3,
        "no other calls: {dispatch_calls:?}"
    );

    // Write units: the claim one, written once with the packed event (it stays under 1 KB), the
    // shipment's state one (this tenant has no pull account, so no `by_quiet` entry), the attempt
    // one, and the batch's page one for ten attempts (no index entry); the carrier-status view
    // once in the run.
    assert!(claim < 1024, "the claim is one write unit: {claim} bytes");
    let units = |pairs: &[(&str, f64)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect::<BTreeMap<String, f64>>()
    };
    assert_eq!(
        ingest_units.writes,
        units(&[
            ("ACTIVITY", 2.0),
            ("DELIVERY claim", EVENTS as f64),
            ("SHIPMENT", EVENTS as f64)
        ])
    );
    assert_eq!(
        dispatch_units.writes,
        units(&[
            ("DELIVERIES", (EVENTS / 10) as f64),
            ("DELIVERY", EVENTS as f64)
        ])
    );
    // Reads: all eventually consistent (half a unit): the cached ones once in the run; and the
    // dispatcher's Query of each event's claim and attempts.
    assert_eq!(ingest_units.reads, 1.5);
    assert!(
        (dispatch_units.reads - 0.5 * EVENTS as f64) <= 8.0,
        "{dispatch_units:?}"
    );
}

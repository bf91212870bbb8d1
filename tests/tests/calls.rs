//! How many AWS calls one notification costs: the real ingest and dispatcher code against
//! moto_server, with an interceptor on the SDK clients counting every request by operation. The
//! figures feed the cost table in docs/performance.md; the assertions keep them true.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use ingest_http::apigw::notify_request;
use integration_tests::{ingest_with, sqs_record, Receiver, Stack};
use shared::adapters::dynamodb::DynamoConfigStore;
use shared::adapters::push::TargetPolicy;
use shared::push::{PushConfig, PushHeaders, PushTimeout, PushUrl, SecretValue};
use shared::{Carrier, TenantId};

const KEY: &str = "cp-calls-key-0123456789";
const EVENTS: u64 = 20;

/// Counts requests by their `X-Amz-Target` (`DynamoDB_20120810.PutItem`, `AmazonSQS.SendMessage`).
#[derive(Debug, Clone, Default)]
struct Counter(Arc<Mutex<BTreeMap<String, u64>>>);

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
            .unwrap_or("unknown")
            .rsplit('.')
            .next()
            .unwrap_or("unknown")
            .to_owned();
        *self.0.lock().unwrap().entry(target).or_default() += 1;
        Ok(())
    }
}

impl Counter {
    fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn per_event(counts: &BTreeMap<String, u64>) -> BTreeMap<String, f64> {
    counts
        .iter()
        .map(|(op, n)| (op.clone(), *n as f64 / EVENTS as f64))
        .collect()
}

#[tokio::test]
async fn calls_per_accepted_and_delivered_event() {
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

    // Ingest: one request per event, as carriers send them.
    let ingest = ingest_with(&stack.config(), dynamo.clone(), sqs.clone());
    let mut ingest_times = Vec::new();
    for n in 0..EVENTS {
        let body = format!(
            r#"{{"waybill":"CALLS-{n}","clickpost_status_code":5,"timestamp":"2026-11-20T10:00:00Z"}}"#
        );
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
    let ingest_calls = counter.take();

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
            event.records.push(sqs_record(&m));
        }
        let batch = event.records.len() as u64;
        let started = std::time::Instant::now();
        let response = dispatcher::handle(&dispatch, &actions, event, 4).await;
        batch_times.push((batch, started.elapsed()));
        assert!(response.batch_item_failures.is_empty());
        delivered += batch;
    }
    let dispatch_calls = counter.take();
    assert_eq!(receiver.requests().await.len() as u64, EVENTS);

    let ingest = per_event(&ingest_calls);
    let dispatch = per_event(&dispatch_calls);
    println!("AWS calls per event ({EVENTS} events, one per request, batches of 10):");
    println!("  ingest:     {ingest:?}");
    println!("  dispatcher: {dispatch:?}");
    println!(
        "  event source mapping (ReceiveMessage + DeleteMessageBatch): {:.2}",
        source_mapping_calls as f64 / EVENTS as f64
    );
    // Handler time in this process (a test build) against moto_server and the local receiver:
    // what the Lambda durations of the cost table are checked against, not AWS's latencies.
    ingest_times.sort();
    println!(
        "handler time: ingest median {:?} (max {:?}) per request; dispatcher {:?}",
        ingest_times[ingest_times.len() / 2],
        ingest_times[ingest_times.len() - 1],
        batch_times
    );

    // Ingest: the key and the tenant's profile (2 reads), the claim, the v1 claim's look-up
    // (1 read), the shipment's state, the message, the claim marked queued (with the
    // event, for replay); and the carrier-status view's "last accepted", written at most once a
    // minute per tenant and carrier by a process (here once), not once per event.
    //
    // The look-up is the identity change's bridge (`CanonicalEvent::legacy_ids`): events accepted
    // before v2 were claimed under their v1 id, so a new v2 claim reads that one claim too. It is
    // paid only when the v2 claim is new (a duplicate costs no more than before), and goes with
    // `legacy_ids` once v2 has run for the dedup window (35 days); then this is 2 reads again.
    assert_eq!(
        ingest_calls,
        BTreeMap::from([
            ("GetItem".to_owned(), 3 * EVENTS),
            ("PutItem".to_owned(), EVENTS),
            ("SendMessage".to_owned(), EVENTS),
            ("UpdateItem".to_owned(), 2 * EVENTS + 1),
        ])
    );
    // Dispatcher: whether the event was delivered already (1 read), the attempt and the
    // delivered marker (2 writes); the Push Config and the tenant's circuit once per container,
    // cached (the first batch's concurrent deliveries, 4 here, may each miss the empty caches once).
    let reads = dispatch_calls.get("GetItem").copied().unwrap_or(0);
    assert!(
        (EVENTS + 2..=EVENTS + 8).contains(&reads),
        "{dispatch_calls:?}"
    );
    assert_eq!(
        dispatch_calls.get("PutItem"),
        Some(&(2 * EVENTS)),
        "{dispatch_calls:?}"
    );
    assert_eq!(
        dispatch_calls.len(),
        2,
        "no other calls: {dispatch_calls:?}"
    );
}

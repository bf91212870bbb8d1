//! CloudWatch Logs bytes per notification: the real ingest and dispatcher code against
//! moto_server, their log lines and EMF documents captured as the Lambda functions write them. The
//! figure feeds the cost table in docs/performance.md; the assertions keep it true. The subscriber
//! it installs is the thread's; `LogCapture` keeps the other tests of this process, running
//! beside it, from settling a call site's interest without it (`integration_tests::anchor_interest`).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use ingest_http::apigw::notify_request;
use integration_tests::{scan_body, sqs_record, Receiver, Stack};
use shared::adapters::dynamodb::DynamoConfigStore;
use shared::adapters::push::TargetPolicy;
use shared::push::{PushConfig, PushHeaders, PushTimeout, PushUrl};
use shared::{Carrier, TenantId};

const KEY: &str = "cp-logs-key-0123456789";
/// A minute of a busy notify function (ingest gathers its counts for a minute: one EMF document
/// for these, once the first has gone out at once).
const EVENTS: u64 = 100;

/// The API's access log line for one request, as the template's format writes it
/// (`infra/template.yaml`, `AccessLogSettings.Format`) with typical values.
fn access_log_line() -> String {
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml"),
    )
    .unwrap();
    let format = template
        .lines()
        .find_map(|l| l.trim().strip_prefix("Format: '"))
        .and_then(|l| l.strip_suffix('\''))
        .expect("the HTTP API's access log format");
    let mut line = format.to_owned();
    for (variable, value) in [
        ("$context.requestId", "Fa3bXjLKoAMEVxw="),
        ("$context.identity.sourceIp", "13.235.112.34"),
        ("$context.httpMethod", "POST"),
        ("$context.routeKey", "POST /rms/in/api/clickpost/notify"),
        ("$context.status", "200"),
        ("$context.responseLatency", "38"),
        ("$context.integrationErrorMessage", "-"),
        ("$context.responseLength", "86"),
        ("$context.requestTimeEpoch", "1795773600"),
        ("$context.requestTime", "27/Nov/2026:10:00:00 +0000"),
    ] {
        line = line.replace(variable, value);
    }
    assert!(
        !line.contains("$context"),
        "a variable without a value: {line}"
    );
    line + "\n"
}

/// CloudWatch Logs bytes per event, accepted and delivered the first time: the functions' own
/// lines (their JSON subscriber and their EMF documents, both to stdout), measured here with the
/// real ingest and dispatcher code, plus the API's access log line. With `SystemLogLevel: WARN`
/// Lambda writes no START/END/REPORT lines (the template; `infra/tests` checks it).
#[tokio::test]
async fn log_bytes_per_accepted_and_delivered_event() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    stack.add_tenant_key("acme", Carrier::Clickpost, KEY).await;
    let receiver = Receiver::start(None);
    DynamoConfigStore::new(stack.dynamo.clone(), &stack.config_table)
        .put_push_config(
            &TenantId::parse("acme").unwrap(),
            &PushConfig {
                url: PushUrl::parse(&receiver.url("/ok"), TargetPolicy::LOCAL).unwrap(),
                headers: PushHeaders::default(),
                statuses: vec![],
                signing_secret: None,
                timeout: PushTimeout::new(Duration::from_secs(5)).unwrap(),
                enabled: true,
                delivery: shared::push::Delivery::Every,
            },
        )
        .await
        .unwrap();
    let logs = integration_tests::LogCapture::default();
    let _guard = logs.install_lambda_format();
    let emf_sink = logs.clone();
    let emf = shared::adapters::emf::EmfMetrics::with_sink(move |line| {
        use std::io::Write;
        let mut sink = emf_sink.clone();
        let _ = writeln!(sink, "{line}");
    });

    // As the notify function runs: one request per invocation, its counts gathered for a minute
    // (here: the first written at once, the rest at shutdown).
    let mut config = stack.config();
    config.config_cache = Duration::from_secs(60);
    let production = ingest_http::aws_ingest(&config, stack.dynamo.clone(), stack.sqs.clone());
    let ingest = shared::ingest::Ingest::new(
        production.config,
        production.intake,
        emf.clone().every(ingest_http::METRICS_INTERVAL),
        production.settings,
    );
    for n in 0..EVENTS {
        let body = scan_body(n);
        let request = notify_request(
            Carrier::Clickpost,
            "POST",
            &[("webhook_key", KEY)],
            "",
            body.as_bytes(),
        );
        let response = ingest_http::handle(&ingest, Carrier::Clickpost, request)
            .await
            .unwrap();
        shared::ports::Metrics::flush(&ingest.metrics);
        assert_eq!(response.status(), 200);
    }
    ingest.metrics.flush_all();
    let ingest_bytes = logs.text().len();

    // As the dispatcher runs: a batch of 10 per invocation, its counts flushed after it.
    let env = HashMap::from([
        ("CONFIG_TABLE", stack.config_table.clone()),
        ("EVENTS_TABLE", stack.events_table.clone()),
        ("EVENTS_QUEUE_URL", stack.queue_url.clone()),
        ("DEAD_LETTER_QUEUE_URL", stack.dlq_url.clone()),
    ]);
    let mut config = dispatcher::Config::from_lookup(|n| env.get(n).cloned()).unwrap();
    config.targets = TargetPolicy::LOCAL;
    let (mut dispatch, actions) =
        dispatcher::aws_dispatcher(&config, stack.dynamo.clone(), stack.sqs.clone()).unwrap();
    dispatch.metrics = emf.clone();
    let mut delivered = 0;
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
        let mut event = SqsEvent::default();
        for m in received.messages.unwrap_or_default() {
            event.records.push(sqs_record(&m));
        }
        delivered += event.records.len() as u64;
        let response = dispatcher::handle(&dispatch, &actions, event, 4).await;
        shared::ports::Metrics::flush(&dispatch.metrics);
        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(receiver.requests().await.len() as u64, EVENTS);
    let text = logs.text();
    let dispatch_bytes = text.len() - ingest_bytes;
    let access = access_log_line().len();
    let per_event = |bytes: usize| bytes as f64 / EVENTS as f64;
    let total = per_event(ingest_bytes) + per_event(dispatch_bytes) + access as f64;
    println!("CloudWatch Logs bytes per event ({EVENTS} events, batches of 10):");
    println!("  ingest function:     {:.0}", per_event(ingest_bytes));
    println!("  dispatcher function: {:.0}", per_event(dispatch_bytes));
    println!("  API access log:      {access}");
    println!("  total:               {total:.0}");
    let sample: Vec<&str> = text.lines().take(3).collect();
    println!(
        "a sample of the lines:\n{}\n{}",
        sample.join("\n"),
        access_log_line()
    );

    // One INFO line per event per stage: "event accepted", "delivered"; nothing else at INFO.
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let messages = |m: &str| lines.iter().filter(|l| l["message"] == m).count() as u64;
    assert_eq!(messages("event accepted"), EVENTS);
    assert_eq!(messages("delivered"), EVENTS);
    // The spans' fields are on each line, flat, once: a Logs Insights query filters on them.
    for line in lines.iter().filter(|l| l.get("_aws").is_none()) {
        assert_eq!(line["tenant_id"], "acme", "{line}");
        assert!(
            line["event_id"].as_str().is_some_and(|id| id.len() > 10),
            "{line}"
        );
        if line["message"] == "event accepted" {
            assert_eq!(line["carrier"], "clickpost", "{line}");
        }
    }
    let emf_documents = lines.iter().filter(|l| l.get("_aws").is_some()).count() as u64;
    // Ingest: the first request's at once, the rest gathered; the dispatcher: one per batch (one
    // tenant).
    assert_eq!(emf_documents, 2 + EVENTS / 10, "{text}");
    assert_eq!(lines.len() as u64, 2 * EVENTS + emf_documents, "{text}");
    assert!(total <= 600.0, "{total:.0} bytes per event");
}

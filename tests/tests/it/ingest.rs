//! Ingest against moto_server with the real AWS SDK clients: the claim protocol, the queue, the
//! 503 paths, and out-of-order events. Run through `scripts/test` (it starts moto_server).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::SubsecRound;
use ingest_http::apigw::notify_request;
use ingest_http::handle;
use integration_tests::{dead_endpoint, fixture, ingest_with, sdk_config, Stack};
use serde_json::Value;
use shared::adapters::dynamodb::DynamoEventStore;
use shared::ports::{Claim, ClaimToken, ConfigStore, EventStore, Intake, Metrics, ShipmentStates};
use shared::shipment::ShipmentState;
use shared::{Carrier, EventId, TenantId};

const KEY: &str = "cp-webhook-key-integration";

async fn post<C, S, M>(
    ingest: &shared::ingest::Ingest<C, S, M>,
    carrier: Carrier,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value)
where
    C: ConfigStore,
    S: Intake,
    M: Metrics,
{
    let response = handle(
        ingest,
        carrier,
        notify_request(carrier, "POST", headers, "", body),
    )
    .await
    .unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(response.body().as_ref()).unwrap(),
    )
}

async fn claim_state(stack: &Stack, event_id: &str) -> Option<String> {
    let id: EventId = serde_json::from_value(Value::from(event_id)).unwrap();
    DynamoEventStore::new(stack.dynamo.clone(), &stack.events_table)
        .claim_state(&id)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_accepted_event_is_on_the_queue_once_with_its_attributes() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    stack.add_tenant_key("acme", Carrier::Clickpost, KEY).await;
    let ingest = stack.ingest();
    let body = fixture("clickpost/delivered_selected_captured.json");

    let (status, answer) = post(&ingest, Carrier::Clickpost, &[("webhook_key", KEY)], &body).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("accepted")),
        "{answer}"
    );
    let event_id = answer["event_ids"][0].as_str().unwrap().to_owned();
    // The same payload again is a duplicate and sends nothing.
    let (status, again) = post(&ingest, Carrier::Clickpost, &[("webhook_key", KEY)], &body).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("duplicate")));

    let messages = stack.drain(&stack.queue_url).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(
        m.attributes,
        HashMap::from([
            ("tenant_id".to_owned(), "acme".to_owned()),
            ("carrier".to_owned(), "clickpost".to_owned()),
            ("event_id".to_owned(), event_id.clone()),
        ])
    );
    assert_eq!(m.body["event_id"], event_id.as_str());
    assert_eq!(m.body["status"], "DELIVERED");
    assert_eq!(m.body["awb"], "81125552141");
    assert_eq!(
        claim_state(&stack, &event_id).await.as_deref(),
        Some("QUEUED")
    );
}

#[tokio::test]
async fn a_shipway_batch_of_n_leaves_n_messages() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    stack
        .add_tenant_key("acme", Carrier::Shipway, "d60cdf34ebacf6cbf4e6080061c1ba1f")
        .await;
    let ingest = stack.ingest();
    let mut body: Value =
        serde_json::from_slice(&fixture("shipway/classic_status_feed.json")).unwrap();
    let template = body["status_feed"][0].clone();
    let feed: Vec<Value> = (0..25)
        .map(|i| {
            let mut element = template.clone();
            element["awbno"] = Value::from(format!("14900000000{i:02}"));
            element
        })
        .collect();
    body["status_feed"] = Value::from(feed);

    // Authenticated by the body's `hash`, as classic Shipway pushes are.
    let (status, answer) = post(&ingest, Carrier::Shipway, &[], body.to_string().as_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["event_ids"].as_array().unwrap().len(), 25);
    let messages = stack.drain(&stack.queue_url).await;
    assert_eq!(messages.len(), 25);
    let mut awbs: Vec<&str> = messages
        .iter()
        .map(|m| m.body["awb"].as_str().unwrap())
        .collect();
    awbs.sort_unstable();
    awbs.dedup();
    assert_eq!(awbs.len(), 25);
}

#[tokio::test]
async fn an_sqs_failure_after_the_claim_is_503_and_the_retry_is_queued_once() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    stack.add_tenant_key("acme", Carrier::Clickpost, KEY).await;
    let body = fixture("clickpost/out_for_delivery_all_status.json");

    // SQS endpoint down: DynamoDB works, so the claim is taken, then released.
    let sqs_down = aws_sdk_sqs::Client::new(&sdk_config(&dead_endpoint()).await);
    let broken = ingest_with(&stack.config(), stack.dynamo.clone(), sqs_down);
    let (status, answer) = post(&broken, Carrier::Clickpost, &[("webhook_key", KEY)], &body).await;
    assert_eq!(status, 503, "{answer}");

    // The queue itself gone: the same.
    let mut gone_config = stack.config();
    gone_config.events_queue_url = format!("{}-deleted", stack.queue_url);
    let gone = ingest_with(&gone_config, stack.dynamo.clone(), stack.sqs.clone());
    let (status, _) = post(&gone, Carrier::Clickpost, &[("webhook_key", KEY)], &body).await;
    assert_eq!(status, 503);

    // After recovery the carrier's retry is accepted, not taken for a duplicate.
    let ingest = stack.ingest();
    let (status, answer) = post(&ingest, Carrier::Clickpost, &[("webhook_key", KEY)], &body).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("accepted")),
        "{answer}"
    );
    let (_, again) = post(&ingest, Carrier::Clickpost, &[("webhook_key", KEY)], &body).await;
    assert_eq!(again["status"], "duplicate");
    assert_eq!(stack.drain(&stack.queue_url).await.len(), 1);
}

#[tokio::test]
async fn dynamodb_down_is_503_with_nothing_queued() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    stack.add_tenant_key("acme", Carrier::Clickpost, KEY).await;
    let dynamo_down = aws_sdk_dynamodb::Client::new(&sdk_config(&dead_endpoint()).await);
    let broken = ingest_with(&stack.config(), dynamo_down, stack.sqs.clone());
    let body = fixture("clickpost/out_for_delivery_all_status.json");
    let (status, answer) = post(&broken, Carrier::Clickpost, &[("webhook_key", KEY)], &body).await;
    assert_eq!(status, 503);
    assert!(
        !answer["error"].as_str().unwrap().contains("DynamoDB"),
        "no internals: {answer}"
    );
    assert!(stack.drain(&stack.queue_url).await.is_empty());
}

#[tokio::test]
async fn a_shipment_item_written_before_the_state_reads_with_defaults_and_is_taken_over() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    let store = DynamoEventStore::new(stack.dynamo.clone(), &stack.events_table);
    let text = |v: &str| AttributeValue::S(v.to_owned());
    // The item as ingest wrote it before: the newest time and id only.
    stack
        .dynamo
        .put_item()
        .table_name(&stack.events_table)
        .item("pk", text("SHIPMENT#acme#81125552141"))
        .item("sk", text("LATEST"))
        .item(
            "latest_event_time",
            AttributeValue::N("1675700000000".into()),
        )
        .item("latest_event_id", text("evt_old"))
        .send()
        .await
        .unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let old = store.shipment(&acme, "81125552141").await.unwrap().unwrap();
    assert_eq!(old.latest_event_id, Some(EventId::from_stored("evt_old")));
    assert_eq!(
        (
            old.last_status,
            old.terminal,
            old.carrier,
            old.awb,
            old.last_received_at
        ),
        (None, false, None, None, None)
    );
    assert_eq!(store.shipment(&acme, "NO-SUCH-AWB").await.unwrap(), None);

    // A newer event takes the item over with its whole state.
    let body = br#"{"waybill":"81125552141","cp_id":21,"clickpost_status_code":5,"timestamp":"2023-02-08T10:00:00Z"}"#;
    let ctx = shared::NormalizeContext::new("acme", chrono::Utc::now());
    let event = shared::normalize(Carrier::Clickpost, body, &ctx)
        .unwrap()
        .remove(0);
    assert_eq!(
        store.record_shipment_event(&event).await.unwrap(),
        shared::ports::Freshness::Latest
    );
    let state = store.shipment(&acme, "81125552141").await.unwrap().unwrap();
    let mut expected = ShipmentState::of(&event);
    // Times are kept to the millisecond.
    expected.last_received_at = expected.last_received_at.map(|t| t.trunc_subsecs(3));
    assert_eq!(state, expected);
}

#[tokio::test]
async fn an_invalid_payload_is_quarantined_in_the_events_table() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    stack.add_tenant_key("acme", Carrier::Clickpost, KEY).await;
    let ingest = stack.ingest();
    let body = fixture("clickpost/seed_verbatim_python_literals.txt");
    for _ in 0..2 {
        let (status, _) = post(&ingest, Carrier::Clickpost, &[("webhook_key", KEY)], &body).await;
        assert_eq!(status, 400);
    }
    let items = stack
        .dynamo
        .query()
        .table_name(&stack.events_table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S("QUARANTINE#acme".into()),
        )
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(items.len(), 1, "kept once per body");
    assert_eq!(items[0]["body"].as_b().unwrap().as_ref(), body.as_slice());
    assert!(items[0]["expires_at"].as_n().is_ok(), "expires through TTL");
    assert!(stack.drain(&stack.queue_url).await.is_empty());
}

/// Events accepted before the v2 identity were claimed under their v1 id: a carrier's re-send
/// after the change is a duplicate (one more read, only because its v2 claim is new), and the
/// copy after that is answered by its v2 claim alone. While an attempt of the old code holds the
/// v1 claim, the re-send is "in flight" (503) and leaves no v2 claim behind.
#[tokio::test]
async fn a_scan_accepted_under_its_v1_id_is_not_queued_again() {
    integration_tests::needs!(moto);
    use std::time::Duration;

    let stack = Stack::create().await;
    stack.add_tenant_key("acme", Carrier::Clickpost, KEY).await;
    let ingest = stack.ingest();
    let store = DynamoEventStore::new(stack.dynamo.clone(), &stack.events_table);
    let (body, event) = clickpost_event();
    let v1 = event.legacy_ids[0].clone();
    let as_v1 = |event: &shared::CanonicalEvent| {
        let mut old = event.clone();
        old.event_id = v1.clone();
        old.legacy_ids = Default::default();
        old
    };

    // An attempt of the old code holds the v1 claim.
    let theirs = ClaimToken::new();
    let now = chrono::Utc::now();
    assert_eq!(
        store
            .claim(&as_v1(&event), now, Duration::from_secs(60), &theirs)
            .await
            .unwrap(),
        Claim::Claimed
    );
    let (status, answer) = post(&ingest, Carrier::Clickpost, &[("webhook_key", KEY)], &body).await;
    assert_eq!(status, 503, "in flight under v1: {answer}");
    assert_eq!(claim_state(&stack, event.event_id.as_str()).await, None);

    // That attempt queued it.
    store.mark_queued(&as_v1(&event)).await.unwrap();
    let (status, answer) = post(&ingest, Carrier::Clickpost, &[("webhook_key", KEY)], &body).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate")),
        "{answer}"
    );
    assert_eq!(
        answer["event_ids"][0].as_str(),
        Some(event.event_id.as_str())
    );
    assert!(stack.drain(&stack.queue_url).await.is_empty());
    assert_eq!(
        claim_state(&stack, event.event_id.as_str())
            .await
            .as_deref(),
        Some("QUEUED"),
        "the next copy is answered by the v2 claim"
    );
}

/// The Clickpost fixture the claim tests use, and its canonical event for tenant `acme`.
fn clickpost_event() -> (Vec<u8>, shared::CanonicalEvent) {
    let body = fixture("clickpost/out_for_delivery_all_status.json");
    let ctx = shared::NormalizeContext::new("acme", chrono::Utc::now());
    let event = shared::normalize(Carrier::Clickpost, &body, &ctx)
        .unwrap()
        .remove(0);
    (body, event)
}

/// A shipment enters the reconciler's index (`open`) only while its tenant has a pull account at
/// its carrier: every write of an indexed shipment is a write to the index too, and the
/// reconciler asks about no other tenant.
#[tokio::test]
async fn a_shipment_is_indexed_for_the_reconciler_only_when_its_tenant_has_a_pull_account() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    stack.add_tenant_key("acme", Carrier::Clickpost, KEY).await;
    let ingest = stack.ingest();
    let open = |time: &'static str| {
        let stack = &stack;
        let ingest = &ingest;
        async move {
            let body = format!(
                r#"{{"waybill":"AWB-PULL","cp_id":4,"clickpost_status_code":5,"timestamp":"{time}"}}"#
            );
            let (status, answer) = post(
                ingest,
                Carrier::Clickpost,
                &[("webhook_key", KEY)],
                body.as_bytes(),
            )
            .await;
            assert_eq!(status, 200, "{answer}");
            let item = stack
                .dynamo
                .get_item()
                .table_name(&stack.events_table)
                .key("pk", AttributeValue::S("SHIPMENT#acme#AWB-PULL".into()))
                .key("sk", AttributeValue::S("LATEST".into()))
                .send()
                .await
                .unwrap()
                .item
                .unwrap();
            item.get("open").and_then(|v| v.as_s().ok()).cloned()
        }
    };
    assert_eq!(open("2026-11-20T10:00:00Z").await, None, "no pull account");

    shared::adapters::dynamodb::DynamoConfigStore::new(stack.dynamo.clone(), &stack.config_table)
        .put_pull_account(
            &TenantId::parse("acme").unwrap(),
            &shared::reconcile::PullAccountRecord {
                carrier: Carrier::Clickpost,
                base_url: "https://api.clickpost.example".into(),
                user: "acme".into(),
                secret: shared::push::SecretValue::new("pull-secret"),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        open("2026-11-20T11:00:00Z").await.as_deref(),
        Some("acme#clickpost"),
        "indexed at the next event"
    );
}

//! Ingest against moto_server with the real AWS SDK clients: the queue-first claim protocol, the
//! queue, the 503 paths, and out-of-order events. Run through `scripts/test` (it starts
//! moto_server).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::Arc;

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

/// The token of the copy the event's claim names, if it is claimed.
async fn claim_token(stack: &Stack, event: &shared::CanonicalEvent) -> Option<String> {
    DynamoEventStore::new(stack.dynamo.clone(), &stack.events_table)
        .claim_token(event)
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
    // The same payload again is a duplicate: queue first, so its copy is on the queue too, but
    // the claim names the first copy only, the one the dispatcher pushes.
    let (status, again) = post(&ingest, Carrier::Clickpost, &[("webhook_key", KEY)], &body).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("duplicate")));

    let messages = stack.drain(&stack.queue_url).await;
    assert_eq!(messages.len(), 2);
    let mut pushed = Vec::new();
    for m in &messages {
        if stack.named_by_claim(m).await {
            pushed.push(m);
        }
    }
    assert_eq!(pushed.len(), 1, "one copy is the accepted one");
    let m = pushed[0];
    let token = m.attributes["claim_token"].clone();
    assert_eq!(token.len(), 32, "a random token: {token}");
    assert_eq!(
        m.attributes,
        HashMap::from([
            ("tenant_id".to_owned(), "acme".to_owned()),
            ("carrier".to_owned(), "clickpost".to_owned()),
            ("event_id".to_owned(), event_id.clone()),
            ("claim_token".to_owned(), token),
        ])
    );
    assert_eq!(m.body["event_id"], event_id.as_str());
    assert_eq!(m.body["status"], "DELIVERED");
    assert_eq!(m.body["awb"], "81125552141");
}

#[tokio::test]
async fn the_same_payload_posted_50_times_concurrently_leaves_exactly_one_message() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    stack.add_tenant_key("acme", Carrier::Clickpost, KEY).await;
    let ingest = Arc::new(stack.ingest());
    let body = Arc::new(fixture("clickpost/failed_delivery_ndr_selected.json"));

    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (ingest, body) = (ingest.clone(), body.clone());
        posts.spawn(async move {
            post(&ingest, Carrier::Clickpost, &[("webhook_key", KEY)], &body).await
        });
    }
    let mut answers: HashMap<String, usize> = HashMap::new();
    while let Some(result) = posts.join_next().await {
        let (status, answer) = result.unwrap();
        let label = format!("{status} {}", answer["status"].as_str().unwrap_or("error"));
        *answers.entry(label).or_default() += 1;
    }
    // One request wins the claim; the others find it written, by a copy queued before theirs or
    // after: duplicates, none "in flight" (nothing is held) and none told "accepted" twice.
    assert_eq!(
        answers,
        HashMap::from([
            ("200 accepted".to_owned(), 1),
            ("200 duplicate".to_owned(), 49)
        ]),
    );
    // Each queued its copy; the claim names exactly one of them.
    let copies = stack.drain(&stack.queue_url).await;
    assert_eq!(copies.len(), 50);
    let mut named = 0;
    for copy in &copies {
        named += usize::from(stack.named_by_claim(copy).await);
    }
    assert_eq!(named, 1);
    assert_eq!(ingest.metrics.total("Accepted"), 1);
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
async fn an_sqs_failure_is_503_with_nothing_claimed_and_the_retry_is_queued_once() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    stack.add_tenant_key("acme", Carrier::Clickpost, KEY).await;
    let body = fixture("clickpost/out_for_delivery_all_status.json");

    // SQS endpoint down: DynamoDB works, but nothing is claimed before its copy is queued.
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
    let copies = stack.drain(&stack.queue_url).await;
    assert_eq!(copies.len(), 2, "the accepted copy and the duplicate's");
    assert!(stack.named_by_claim(&copies[0]).await);
    assert!(!stack.named_by_claim(&copies[1]).await);
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
    let ctx =
        shared::NormalizeContext::new(shared::TenantId::parse("acme").unwrap(), chrono::Utc::now());
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

/// A request that queued its copy and then died (or lost its claim's write) leaves a copy with no
/// claim: the dispatcher claims it (`DeliveryLog::standing`) and pushes it, unless the carrier's
/// retry claimed the event first, whose copy is then the one pushed.
#[tokio::test]
async fn a_copy_left_without_a_claim_is_claimed_once_by_whoever_comes_first() {
    integration_tests::needs!(moto);
    use shared::adapters::dynamodb::DynamoDeliveryLog;
    use shared::adapters::sqs::SqsEventQueue;
    use shared::ports::{DeliveryLog, EventQueue, Standing};

    let stack = Stack::create().await;
    stack.add_tenant_key("acme", Carrier::Clickpost, KEY).await;
    let ingest = stack.ingest();
    let log = DynamoDeliveryLog::new(stack.dynamo.clone(), &stack.events_table);
    let queue = SqsEventQueue::new(stack.sqs.clone(), &stack.queue_url);
    let (body, event) = clickpost_event();

    // The request died after queueing: the carrier retries, and its copy is claimed first.
    let orphan = ClaimToken::new();
    queue.enqueue(&event, &orphan).await.unwrap();
    assert_eq!(claim_token(&stack, &event).await, None);
    let (status, answer) = post(&ingest, Carrier::Clickpost, &[("webhook_key", KEY)], &body).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("accepted")),
        "{answer}"
    );
    let standing = |token: ClaimToken| {
        let (log, event) = (&log, &event);
        async move { log.standing(event, Some(&token), 1).await.unwrap() }
    };
    assert_eq!(standing(orphan).await, Standing::Duplicate);
    let retried = claim_token(&stack, &event).await.unwrap();
    assert_eq!(
        standing(ClaimToken::from_message(&retried)).await,
        Standing::Due
    );

    // Another event, whose carrier does not retry: its orphan is claimed by the dispatcher, and a
    // later re-send is a duplicate.
    let later = clickpost_event_at("2026-11-20T10:00:00Z");
    let orphan = ClaimToken::new();
    queue.enqueue(&later.1, &orphan).await.unwrap();
    assert_eq!(standing_of(&log, &later.1, &orphan).await, Standing::Due);
    assert_eq!(
        claim_token(&stack, &later.1).await.as_deref(),
        Some(orphan.as_str())
    );
    let (_, answer) = post(
        &ingest,
        Carrier::Clickpost,
        &[("webhook_key", KEY)],
        &later.0,
    )
    .await;
    assert_eq!(answer["status"], "duplicate");
}

async fn standing_of(
    log: &shared::adapters::dynamodb::DynamoDeliveryLog,
    event: &shared::CanonicalEvent,
    token: &ClaimToken,
) -> shared::ports::Standing {
    use shared::ports::DeliveryLog;
    log.standing(event, Some(token), 1).await.unwrap()
}

/// A write whose answer was lost may have landed: the SDK's retry of the same claim finds the
/// copy's own claim and takes it; another copy's claim makes it a duplicate.
#[tokio::test]
async fn a_claim_is_recognised_only_by_its_own_copy() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    let (_, event) = clickpost_event();
    let store = DynamoEventStore::new(stack.dynamo.clone(), &stack.events_table);
    let (mine, theirs) = (ClaimToken::new(), ClaimToken::new());
    let claim = |token: &ClaimToken| {
        let (store, event, token) = (store.clone(), event.clone(), token.clone());
        async move {
            store
                .claim(&event, &token, chrono::Utc::now())
                .await
                .unwrap()
        }
    };

    assert_eq!(claim(&mine).await, Claim::Claimed);
    assert_eq!(claim(&mine).await, Claim::Claimed, "the same copy, retried");
    assert_eq!(claim(&theirs).await, Claim::AlreadyQueued);
    assert_eq!(
        claim_token(&stack, &event).await.as_deref(),
        Some(mine.as_str())
    );
}

/// Events accepted before the v2 identity were claimed under their v1 id (in the layout of the
/// code before queue-first, `EVENT#<id>`): a carrier's re-send after the change is a duplicate,
/// found before anything is queued. While an attempt of the old code holds the v1 claim, the
/// re-send is "in flight" (503) and leaves nothing behind.
#[tokio::test]
async fn a_scan_accepted_under_its_v1_id_is_not_queued_again() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    stack.add_tenant_key("acme", Carrier::Clickpost, KEY).await;
    let ingest = stack.ingest();
    let (body, event) = clickpost_event();
    let mut v1 = event.clone();
    v1.event_id = event.legacy_ids[0].clone();
    v1.legacy_ids = Default::default();

    // An attempt of the old code holds it.
    let live = chrono::Utc::now().timestamp() + 60;
    stack.put_old_claim(&v1, "RECEIVED", live).await;
    let (status, answer) = post(&ingest, Carrier::Clickpost, &[("webhook_key", KEY)], &body).await;
    assert_eq!(status, 503, "in flight under v1: {answer}");
    assert_eq!(claim_token(&stack, &event).await, None);
    assert!(stack.drain(&stack.queue_url).await.is_empty());

    // That attempt queued it.
    stack.put_old_claim(&v1, "QUEUED", live).await;
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
    assert_eq!(claim_token(&stack, &event).await, None);

    // The same for an event the code before queue-first accepted under its own id: its claim is
    // where that code wrote claims, not where queue-first writes them, and read until it expires.
    let (body, event) = clickpost_event_at("2026-11-20T10:00:00Z");
    stack.put_old_claim(&event, "QUEUED", live).await;
    let (_, answer) = post(&ingest, Carrier::Clickpost, &[("webhook_key", KEY)], &body).await;
    assert_eq!(answer["status"], "duplicate", "{answer}");
    assert!(stack.drain(&stack.queue_url).await.is_empty());
}

/// The Clickpost fixture the claim tests use, and its canonical event for tenant `acme`.
fn clickpost_event() -> (Vec<u8>, shared::CanonicalEvent) {
    let body = fixture("clickpost/out_for_delivery_all_status.json");
    let ctx =
        shared::NormalizeContext::new(shared::TenantId::parse("acme").unwrap(), chrono::Utc::now());
    let event = shared::normalize(Carrier::Clickpost, &body, &ctx)
        .unwrap()
        .remove(0);
    (body, event)
}

/// A Clickpost scan of another shipment at `time`, and its canonical event for tenant `acme`.
fn clickpost_event_at(time: &str) -> (Vec<u8>, shared::CanonicalEvent) {
    let body = format!(
        r#"{{"waybill":"AWB-ORPHAN","cp_id":4,"clickpost_status_code":5,"timestamp":"{time}"}}"#
    )
    .into_bytes();
    let ctx =
        shared::NormalizeContext::new(shared::TenantId::parse("acme").unwrap(), chrono::Utc::now());
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

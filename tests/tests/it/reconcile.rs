//! The reconcile function against moto_server and the carriers' pull fake (127.0.0.1): a webhook
//! brings one of a shipment's scans, one run of the function's handler queues the ones only the
//! pull API has, once; a second run queues nothing; a Shiprocket token the carrier expires is
//! renewed once. Run through `scripts/test` (it starts moto_server).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use ingest_http::apigw::notify_request;
use integration_tests::{fixture, PullFake, Stack};
use reconcile::{aws_reconciler, handle, Config, RunReport};
use serde_json::Value;
use shared::adapters::dynamodb::DynamoConfigStore;
use shared::push::SecretValue;
use shared::reconcile::{PullAccountRecord, QuietRules};
use shared::{Carrier, TenantId};

const CP_WEBHOOK_KEY: &str = "cp-webhook-key-reconcile";
const CP_USER: &str = "acme-api";
const CP_KEY: &str = "cp-pull-key-0001";
const SR_WEBHOOK_KEY: &str = "sr-webhook-key-reconcile";
const SR_EMAIL: &str = "api-user@acme.example";
const SR_PASSWORD: &str = "sr-api-pa55word";

/// The function's configuration for this stack: every shipment that is not terminal is quiet,
/// and the fake's plain-http loopback URLs are allowed.
fn config(stack: &Stack) -> Config {
    let env = HashMap::from([
        ("CONFIG_TABLE", stack.config_table.clone()),
        ("EVENTS_TABLE", stack.events_table.clone()),
        ("EVENTS_QUEUE_URL", stack.queue_url.clone()),
        ("QUIET_BEFORE_PICKUP_HOURS", "0".into()),
        ("QUIET_MOVING_HOURS", "0".into()),
        ("ALLOW_PRIVATE_TARGETS", "true".into()),
        ("ALLOW_HTTP_TARGETS", "true".into()),
    ]);
    Config::from_lookup(|name| env.get(name).cloned()).unwrap()
}

/// A webhook through the notify functions' handler: its event ids.
async fn webhook(stack: &Stack, carrier: Carrier, header: (&str, &str), name: &str) -> usize {
    let response = ingest_http::handle(
        &stack.ingest(),
        carrier,
        notify_request(carrier, "POST", &[header], "", &fixture(name)),
    )
    .await
    .unwrap();
    let answer: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(response.status().as_u16(), 200, "{answer}");
    answer["event_ids"].as_array().map_or(0, Vec::len)
}

async fn add_pull_account(
    stack: &Stack,
    carrier: Carrier,
    base_url: &str,
    user: &str,
    secret: &str,
) {
    DynamoConfigStore::new(stack.dynamo.clone(), &stack.config_table)
        .put_pull_account(
            &TenantId::parse("acme").unwrap(),
            &PullAccountRecord {
                carrier,
                base_url: base_url.to_owned(),
                user: user.to_owned(),
                secret: SecretValue::new(secret),
            },
        )
        .await
        .unwrap();
}

fn only(report: &RunReport) -> &shared::reconcile::AccountReport {
    assert_eq!(report.accounts.len(), 1, "{report:?}");
    &report.accounts[0]
}

#[tokio::test]
async fn scans_only_the_pull_api_has_are_queued_once_and_a_second_run_adds_nothing() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    let fake = PullFake::start().await;
    stack
        .add_tenant_key("acme", Carrier::Clickpost, CP_WEBHOOK_KEY)
        .await;
    fake.clickpost_account(CP_USER, CP_KEY);
    let track: Value = serde_json::from_slice(&fixture("clickpost/pull_track_order.json")).unwrap();
    let ofd: Value =
        serde_json::from_slice(&fixture("clickpost/out_for_delivery_all_status.json")).unwrap();
    let cp_id = ofd["cp_id"].as_i64().unwrap();
    fake.clickpost_track("SF49245NER", cp_id, track["result"]["SF49245NER"].clone());
    add_pull_account(&stack, Carrier::Clickpost, &fake.base_url, CP_USER, CP_KEY).await;

    // The webhook brought the newest scan only; a delivered shipment is never pulled.
    let header = ("webhook_key", CP_WEBHOOK_KEY);
    let ofd = "clickpost/out_for_delivery_all_status.json";
    assert_eq!(webhook(&stack, Carrier::Clickpost, header, ofd).await, 1);
    let delivered = "clickpost/delivered_selected_captured.json";
    assert_eq!(
        webhook(&stack, Carrier::Clickpost, header, delivered).await,
        1
    );
    assert_eq!(stack.drain(&stack.queue_url).await.len(), 2);

    // With the template's thresholds (6 h for a parcel out for delivery) it is not quiet yet.
    let mut config = config(&stack);
    config.settings.rules = QuietRules::default();
    let (accounts, reconciler) =
        aws_reconciler(&config, stack.dynamo.clone(), stack.sqs.clone()).unwrap();
    let report = handle(&accounts, &reconciler, config.targets, Utc::now())
        .await
        .unwrap();
    // Only the updated-order sweep (Clickpost's changes feed, empty here) is called.
    assert_eq!(
        (
            only(&report).quiet,
            only(&report).calls,
            only(&report).found
        ),
        (0, 1, 0)
    );

    config.settings.rules = QuietRules::uniform(Duration::ZERO);
    let (accounts, reconciler) =
        aws_reconciler(&config, stack.dynamo.clone(), stack.sqs.clone()).unwrap();
    let report = handle(&accounts, &reconciler, config.targets, Utc::now())
        .await
        .unwrap();
    let account = only(&report);
    assert_eq!(
        (account.tenant_id.as_str(), account.carrier.as_str()),
        ("acme", "clickpost")
    );
    // The sweep, then one track-order call.
    assert_eq!(
        (account.quiet, account.calls, account.found),
        (1, 2, 3),
        "{account:?}"
    );
    assert_eq!((account.reconciled, account.known), (2, 1), "{account:?}");
    assert!(account.errors.is_empty(), "{account:?}");
    let queued = stack.drain(&stack.queue_url).await;
    assert_eq!(queued.len(), 2, "the two older scans, once each");
    for m in &queued {
        assert_eq!(m.body["awb"], "SF49245NER", "{}", m.body);
    }
    assert_eq!(fake.calls_to("/api/v2/track-order/"), 1);

    // A second run (a later container too: a new reconciler) asks again and finds nothing new.
    let (accounts, reconciler) =
        aws_reconciler(&config, stack.dynamo.clone(), stack.sqs.clone()).unwrap();
    let report = handle(&accounts, &reconciler, config.targets, Utc::now())
        .await
        .unwrap();
    let account = only(&report);
    assert_eq!((account.reconciled, account.known), (0, 3), "{account:?}");
    assert!(stack.drain(&stack.queue_url).await.is_empty());

    // Still out for delivery, and asked about: listed as stale (by news, not by pull).
    let admin = stack.admin();
    let stale = admin
        .stale_shipments(None, &QuietRules::uniform(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(stale[0].awb.as_deref(), Some("SF49245NER"));
    assert!(stale[0].last_pulled_at.is_some(), "{stale:?}");
    assert!(admin
        .stale_shipments(None, &QuietRules::default())
        .await
        .unwrap()
        .is_empty());

    // A disabled tenant's accounts are not pulled.
    admin
        .update_tenant("acme", Some(false), None)
        .await
        .unwrap();
    let report = handle(&accounts, &reconciler, config.targets, Utc::now())
        .await
        .unwrap();
    assert!(report.accounts.is_empty(), "{report:?}");
    assert_eq!(fake.calls_to("/api/v2/track-order/"), 2);
}

#[tokio::test]
async fn a_shiprocket_token_the_carrier_expires_is_renewed_once() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    let fake = PullFake::start().await;
    stack
        .add_tenant_key("acme", Carrier::Shiprocket, SR_WEBHOOK_KEY)
        .await;
    fake.shiprocket_account(SR_EMAIL, SR_PASSWORD);
    let bulk: Value = serde_json::from_slice(&fixture("shiprocket/pull_track_awbs.json")).unwrap();
    fake.shiprocket_track("19041424751540", bulk["19041424751540"].clone());
    add_pull_account(
        &stack,
        Carrier::Shiprocket,
        &fake.shiprocket_base_url(),
        SR_EMAIL,
        SR_PASSWORD,
    )
    .await;
    let header = ("x-api-key", SR_WEBHOOK_KEY);
    let in_transit = "shiprocket/in_transit_official.json";
    assert_eq!(
        webhook(&stack, Carrier::Shiprocket, header, in_transit).await,
        1
    );
    assert_eq!(stack.drain(&stack.queue_url).await.len(), 1);

    let config = config(&stack);
    let (accounts, reconciler) =
        aws_reconciler(&config, stack.dynamo.clone(), stack.sqs.clone()).unwrap();
    let report = handle(&accounts, &reconciler, config.targets, Utc::now())
        .await
        .unwrap();
    let account = only(&report);
    assert_eq!((account.quiet, account.calls), (1, 1), "{account:?}");
    assert!(account.errors.is_empty(), "{account:?}");
    assert!(account.known >= 1, "the webhook's scan: {account:?}");
    assert_eq!(
        stack.drain(&stack.queue_url).await.len(),
        account.reconciled
    );
    assert_eq!(fake.calls_to("/v1/external/auth/login"), 1);

    // The container's token dies before its time: one 401, one login, the call again.
    fake.expire_shiprocket_tokens();
    let report = handle(&accounts, &reconciler, config.targets, Utc::now())
        .await
        .unwrap();
    let account = only(&report);
    assert!(account.errors.is_empty(), "{account:?}");
    assert_eq!(account.reconciled, 0, "{account:?}");
    assert_eq!(fake.calls_to("/v1/external/auth/login"), 2, "renewed once");
    assert!(stack.drain(&stack.queue_url).await.is_empty());
}

//! The admin API (`admin-api`'s router) on the DynamoDB + SQS admin store against moto_server:
//! every operation and its failures, with ingest (`ingest_http::handle`) and the dispatcher
//! (`dispatcher::handle`) run against the same stack to see the effects. Every response body and
//! every log line is checked for the secrets that went in. Run through `scripts/test` (or
//! `scripts/with-moto cargo test -p integration-tests --test it admin::`).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use chrono::{SecondsFormat, Utc};
use integration_tests::{sqs_record, LogCapture, Receiver, Stack};
use serde_json::{json, Value};
use shared::adapters::aws_admin::DynamoAdmin;
use shared::adapters::dynamodb::{DynamoConfigStore, DynamoDeliveryLog, DynamoEventStore};
use shared::adapters::memory::RecordingMetrics;
use shared::adapters::push::{HttpPusher, TargetPolicy};
use shared::adapters::sqs::SqsQueueActions;
use shared::admin::{Admin, AdminStore, StoredCredential};
use shared::auth::Credential;
use shared::circuit::{Breaker, BreakerSettings};
use shared::dispatch::{CachedPushConfigs, Dispatch, DispatchSettings};
use shared::{Carrier, TenantId};
use tower::ServiceExt;

const HEADER_VALUE: &str = "Bearer client-secret-7f3a9c1e";

/// The admin router on a stack, keeping every response body for the secret checks.
struct Api {
    router: Router,
    bodies: std::sync::Mutex<Vec<String>>,
}

impl Api {
    fn new(stack: &Stack) -> Api {
        Api::on(admin_api::router(Arc::new(stack.admin())))
    }

    fn on(router: Router) -> Api {
        Api {
            router,
            bodies: std::sync::Mutex::new(Vec::new()),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let request = Request::builder().method(method).uri(path);
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        self.bodies.lock().unwrap().push(text.clone());
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
        };
        (status, value)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// Asserts that no response so far contained any of `secrets`.
    fn assert_never_answered(&self, secrets: &[&str]) {
        for body in self.bodies.lock().unwrap().iter() {
            for secret in secrets {
                assert!(!body.contains(secret), "{secret:?} in a response: {body}");
            }
        }
    }
}

fn assert_not_logged(logs: &LogCapture, secrets: &[&str]) {
    let text = logs.text();
    assert!(!text.is_empty(), "the logs were captured");
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} in the logs");
    }
}

fn digest_hex(key: &str) -> String {
    Credential::new(key).digest().to_hex()
}

/// A Clickpost webhook for `awb` at `time`, posted through the notify function's handler.
async fn ingest(stack: &Stack, key: &str, awb: &str, time: &str) -> (u16, Value) {
    let body = format!(r#"{{"waybill":"{awb}","clickpost_status_code":5,"timestamp":"{time}"}}"#);
    let request = ingest_http::apigw::notify_request(
        Carrier::Clickpost,
        "POST",
        &[("webhook_key", key)],
        "",
        body.as_bytes(),
    );
    let response = ingest_http::handle(&stack.ingest(), Carrier::Clickpost, request)
        .await
        .unwrap();
    (
        response.status().as_u16(),
        serde_json::from_slice(response.body().as_ref()).unwrap(),
    )
}

type TestDispatch = Dispatch<
    CachedPushConfigs<DynamoConfigStore>,
    HttpPusher,
    DynamoDeliveryLog,
    RecordingMetrics,
    DynamoConfigStore,
    DynamoEventStore,
>;

/// The dispatcher on a stack, with the event source mapping played by `poll`.
struct Dispatcher<'a> {
    stack: &'a Stack,
    dispatch: TestDispatch,
    actions: SqsQueueActions,
}

impl<'a> Dispatcher<'a> {
    fn new(stack: &'a Stack) -> Dispatcher<'a> {
        let targets = TargetPolicy {
            allow_private: true,
            allow_http: true,
        };
        Dispatcher {
            stack,
            dispatch: Dispatch {
                configs: CachedPushConfigs::new(
                    DynamoConfigStore::new(stack.dynamo.clone(), &stack.config_table),
                    Duration::ZERO,
                ),
                pusher: HttpPusher::new(targets).unwrap(),
                log: DynamoDeliveryLog::new(stack.dynamo.clone(), &stack.events_table),
                metrics: RecordingMetrics::default(),
                breaker: Breaker::new(
                    DynamoConfigStore::new(stack.dynamo.clone(), &stack.config_table),
                    BreakerSettings::default(),
                ),
                shipments: DynamoEventStore::new(stack.dynamo.clone(), &stack.events_table),
                settings: DispatchSettings {
                    retry_schedule: vec![Duration::from_secs(1)],
                    jitter: 0.0,
                    ..DispatchSettings::default()
                },
            },
            actions: SqsQueueActions::new(stack.sqs.clone(), &stack.queue_url, &stack.dlq_url),
        }
    }

    /// Hands every visible message to the dispatcher's handler, deleting what it acknowledged;
    /// returns the message attributes of what it received.
    async fn poll(&self) -> Vec<HashMap<String, String>> {
        let mut seen = Vec::new();
        loop {
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
            if messages.is_empty() {
                return seen;
            }
            let mut event = SqsEvent::default();
            for m in &messages {
                let attributes = m
                    .message_attributes
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, value)| (name, value.string_value.unwrap_or_default()))
                    .collect();
                seen.push(attributes);
                event.records.push(sqs_record(m));
            }
            let response = dispatcher::handle(&self.dispatch, &self.actions, event, 4).await;
            let failed: Vec<String> = response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect();
            for m in &messages {
                if !failed.contains(m.message_id.as_ref().unwrap()) {
                    self.stack
                        .sqs
                        .delete_message()
                        .queue_url(&self.stack.queue_url)
                        .receipt_handle(m.receipt_handle.as_ref().unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
    }
}

/// Creates tenant `id` with one Clickpost key and a Push Config to `url`.
async fn tenant_with_push(api: &Api, id: &str, key: &str, url: &str) {
    assert_eq!(api.post("/admin/tenants", json!({"id": id})).await.0, 201);
    let path = format!("/admin/tenants/{id}/keys/clickpost");
    assert_eq!(api.post(&path, json!({"key": key})).await.0, 201);
    let push = json!({"url": url, "headers": {"Authorization": HEADER_VALUE}});
    let (status, saved) = api.put(&format!("/admin/tenants/{id}/push"), push).await;
    assert_eq!(status, 200, "{saved}");
}

#[tokio::test]
async fn tenants_are_created_listed_read_and_a_disabled_one_is_refused_by_ingest() {
    integration_tests::needs!(moto);
    let logs = LogCapture::default();
    let _guard = logs.install();
    let stack = Stack::create().await;
    let api = Api::new(&stack);
    const KEY: &str = "acme-clickpost-key-0001";

    let (status, created) = api
        .post(
            "/admin/tenants",
            json!({"id": "acme", "include_source": false}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (
            &created["id"],
            &created["enabled"],
            &created["include_source"]
        ),
        (&json!("acme"), &json!(true), &json!(false))
    );
    assert_eq!(
        api.post("/admin/tenants", json!({"id": "acme"})).await.0,
        409
    );
    assert_eq!(
        api.post("/admin/tenants", json!({"id": "beta"})).await.0,
        201
    );
    let (status, bad) = api.post("/admin/tenants", json!({"id": "no spaces"})).await;
    assert_eq!((status, &bad["field"]), (400, &json!("id")));

    let (status, list) = api.get("/admin/tenants").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "beta"]);
    let (status, acme) = api.get("/admin/tenants/acme").await;
    assert_eq!((status, acme), (200, created.clone()));
    assert_eq!(api.get("/admin/tenants/nobody").await.0, 404);
    let (status, _) = api
        .patch("/admin/tenants/nobody", json!({"enabled": false}))
        .await;
    assert_eq!(status, 404);

    let path = "/admin/tenants/acme/keys/clickpost";
    assert_eq!(api.post(path, json!({"key": KEY})).await.0, 201);
    let (status, answer) = ingest(&stack, KEY, "AWB-EN-1", "2024-03-01T10:00:00Z").await;
    assert_eq!((status, &answer["status"]), (200, &json!("accepted")));

    let (status, disabled) = api
        .patch("/admin/tenants/acme", json!({"enabled": false}))
        .await;
    assert_eq!((status, &disabled["enabled"]), (200, &json!(false)));
    assert_eq!(api.get("/admin/tenants/acme").await.1["enabled"], false);
    let (status, refused) = ingest(&stack, KEY, "AWB-EN-2", "2024-03-01T10:00:00Z").await;
    assert_eq!(status, 401, "a disabled tenant's key is refused");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("tenant is disabled"),
        "{refused}"
    );

    let (status, enabled) = api
        .patch("/admin/tenants/acme", json!({"enabled": true}))
        .await;
    assert_eq!((status, &enabled["enabled"]), (200, &json!(true)));
    assert_eq!(enabled["include_source"], false, "left as it was");
    let (status, answer) = ingest(&stack, KEY, "AWB-EN-2", "2024-03-01T10:00:00Z").await;
    assert_eq!((status, &answer["status"]), (200, &json!("accepted")));

    api.assert_never_answered(&[KEY, &digest_hex(KEY)]);
    assert_not_logged(&logs, &[KEY, &digest_hex(KEY)]);
}

#[tokio::test]
async fn a_key_rotation_has_two_live_keys_and_the_revoked_one_is_refused() {
    integration_tests::needs!(moto);
    let logs = LogCapture::default();
    let _guard = logs.install();
    let stack = Stack::create().await;
    let api = Api::new(&stack);
    const OLD: &str = "acme-clickpost-old-key-01";
    assert_eq!(
        api.post("/admin/tenants", json!({"id": "acme"})).await.0,
        201
    );
    assert_eq!(
        api.post("/admin/tenants", json!({"id": "beta"})).await.0,
        201
    );
    let keys = "/admin/tenants/acme/keys/clickpost";

    let (status, given) = api.post(keys, json!({"key": OLD})).await;
    assert_eq!(status, 201, "{given}");
    assert!(given.get("key").is_none(), "a given key is not echoed");
    let old_id = given["key_id"].as_str().unwrap().to_owned();
    assert_eq!(old_id.len(), 12);
    // Generated: no body at all.
    let (status, generated) = api.call(Method::POST, keys, None).await;
    assert_eq!(status, 201, "{generated}");
    let new = generated["key"].as_str().unwrap().to_owned();
    assert!(new.len() >= 32);
    let new_id = generated["key_id"].as_str().unwrap().to_owned();

    // Both live during the overlap.
    let (status, _) = ingest(&stack, OLD, "AWB-ROT-1", "2024-03-01T10:00:00Z").await;
    assert_eq!(status, 200);
    let (status, _) = ingest(&stack, &new, "AWB-ROT-2", "2024-03-01T10:00:00Z").await;
    assert_eq!(status, 200);

    let (status, third) = api
        .post(keys, json!({"key": "acme-clickpost-third-key"}))
        .await;
    assert_eq!(status, 409, "{third}");
    let (status, _) = api
        .post("/admin/tenants/beta/keys/clickpost", json!({"key": OLD}))
        .await;
    assert_eq!(status, 409, "a key belongs to one tenant");
    let (status, bad) = api.post("/admin/tenants/acme/keys/fedex", json!({})).await;
    assert_eq!((status, &bad["field"]), (400, &json!("carrier")));
    let (status, bad) = api.post(keys, json!({"key": "short"})).await;
    assert_eq!((status, &bad["field"]), (400, &json!("key")));
    assert_eq!(
        api.post("/admin/tenants/nobody/keys/clickpost", json!({}))
            .await
            .0,
        404
    );

    let (status, list) = api.get("/admin/tenants/acme/keys").await;
    assert_eq!(status, 200);
    let mut listed: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut expected = vec![old_id.as_str(), new_id.as_str()];
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(list[0]["carrier"], "clickpost");
    let list_text = list.to_string();
    assert!(!list_text.contains(&new));

    let revoke = format!("/admin/tenants/acme/keys/clickpost/{old_id}");
    assert_eq!(api.call(Method::DELETE, &revoke, None).await.0, 204);
    assert_eq!(api.call(Method::DELETE, &revoke, None).await.0, 404);
    let (status, _) = ingest(&stack, OLD, "AWB-ROT-3", "2024-03-01T10:00:00Z").await;
    assert_eq!(status, 401, "revoked");
    let (status, _) = ingest(&stack, &new, "AWB-ROT-4", "2024-03-01T10:00:00Z").await;
    assert_eq!(status, 200, "the new key still works");
    let mut new_view = generated.clone();
    new_view.as_object_mut().unwrap().remove("key");
    assert_eq!(
        api.get("/admin/tenants/acme/keys").await.1,
        json!([new_view])
    );
    assert_eq!(api.get("/admin/tenants/nobody/keys").await.0, 404);

    // The generated key was shown once, by the call that made it; nothing else shows a key or
    // a full digest.
    let bodies = api.bodies.lock().unwrap().clone();
    assert_eq!(bodies.iter().filter(|b| b.contains(&new)).count(), 1);
    api.assert_never_answered(&[OLD, &digest_hex(OLD), &digest_hex(&new)]);
    assert_not_logged(&logs, &[OLD, &new, &digest_hex(OLD), &digest_hex(&new)]);
}

/// A key never moves from one tenant to another, whichever way it is written: the admin store's
/// conditional transaction, or the config store's registration (`DynamoConfigStore::put_credential`).
#[tokio::test]
async fn a_registered_key_never_moves_to_another_tenant() {
    integration_tests::needs!(moto);
    const KEY: &str = "acme-clickpost-owned-key-01";
    let stack = Stack::create().await;
    let admin = stack.admin();
    for id in ["acme", "beta"] {
        admin.create_tenant(id, None, Utc::now()).await.unwrap();
    }
    let (acme, beta) = (
        TenantId::parse("acme").unwrap(),
        TenantId::parse("beta").unwrap(),
    );
    let credential = StoredCredential {
        carrier: Carrier::Clickpost,
        digest: Credential::new(KEY).digest(),
        added_at: Utc::now(),
    };
    assert!(admin
        .store
        .add_credential(&acme, &credential)
        .await
        .unwrap());
    assert!(!admin
        .store
        .add_credential(&beta, &credential)
        .await
        .unwrap());
    assert!(!admin
        .store
        .add_credential(&acme, &credential)
        .await
        .unwrap());
    let config = DynamoConfigStore::new(stack.dynamo.clone(), &stack.config_table);
    assert!(!config
        .put_credential(Carrier::Clickpost, &credential.digest, &beta)
        .await
        .unwrap());
    assert!(
        config
            .put_credential(Carrier::Clickpost, &credential.digest, &acme)
            .await
            .unwrap(),
        "registering a key again for its own tenant is harmless"
    );
    assert_eq!(
        admin
            .store
            .credential_owner(Carrier::Clickpost, &credential.digest)
            .await
            .unwrap(),
        Some(acme.clone())
    );
    assert!(admin.store.credentials(&beta).await.unwrap().is_empty());
    assert_eq!(admin.store.credentials(&acme).await.unwrap().len(), 1);
    let (status, _) = ingest(&stack, KEY, "AWB-OWNED-1", "2024-03-01T10:00:00Z").await;
    assert_eq!(status, 200);
    let queued = stack.drain(&stack.queue_url).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].attributes["tenant_id"], "acme");
}

/// Push Configs written before a rule was made stricter (here: a metadata URL with a token, a
/// header name no longer taken, a 10-minute timeout) still read, as written; the timeout is
/// brought into range.
#[tokio::test]
async fn a_stored_push_config_that_no_longer_validates_is_read_as_written() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    let api = Api::new(&stack);
    assert_eq!(
        api.post("/admin/tenants", json!({"id": "acme"})).await.0,
        201
    );
    let item = HashMap::from([
        ("pk".to_owned(), AttributeValue::S("TENANT#acme".into())),
        ("sk".to_owned(), AttributeValue::S("PUSH".into())),
        (
            "url".to_owned(),
            AttributeValue::S("http://169.254.169.254/latest?token=x".into()),
        ),
        (
            "headers".to_owned(),
            AttributeValue::M(HashMap::from([(
                "X A".to_owned(),
                AttributeValue::S("v".into()),
            )])),
        ),
        ("statuses".to_owned(), AttributeValue::L(vec![])),
        ("timeout_ms".to_owned(), AttributeValue::N("600000".into())),
        ("enabled".to_owned(), AttributeValue::Bool(true)),
    ]);
    stack
        .dynamo
        .put_item()
        .table_name(&stack.config_table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    let (status, view) = api.get("/admin/tenants/acme/push").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["url"], "http://169.254.169.254/latest?token=x");
    assert_eq!(view["headers"], json!(["X A"]));
    assert_eq!(view["timeout_ms"], 30_000);
    assert_eq!(api.get("/admin/tenants/acme").await.0, 200);
}

#[tokio::test]
async fn push_config_is_validated_write_only_and_its_secret_shown_once() {
    integration_tests::needs!(moto);
    let logs = LogCapture::default();
    let _guard = logs.install();
    let stack = Stack::create().await;
    let api = Api::new(&stack);
    assert_eq!(
        api.post("/admin/tenants", json!({"id": "acme"})).await.0,
        201
    );
    let push = "/admin/tenants/acme/push";
    assert_eq!(api.get(push).await.0, 404, "no Push Config yet");

    let (status, saved) = api
        .put(
            push,
            json!({
                "url": "https://client.example/hooks/rms",
                "headers": {"Authorization": HEADER_VALUE, "X-Client-Id": "acme-7731"},
                "statuses": ["DELIVERED", "RTO_DELIVERED"],
                "timeout_ms": 5000,
                "signing_secret": "generate"
            }),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    let secret = saved["signing_secret_value"].as_str().unwrap().to_owned();
    assert_eq!(saved["signing_secret"], true);
    assert_eq!(saved["headers"], json!(["Authorization", "X-Client-Id"]));
    assert_eq!(saved["statuses"], json!(["DELIVERED", "RTO_DELIVERED"]));

    let (status, shown) = api.get(push).await;
    assert_eq!(status, 200);
    assert_eq!(
        shown,
        json!({
            "url": "https://client.example/hooks/rms",
            "headers": ["Authorization", "X-Client-Id"],
            "statuses": ["DELIVERED", "RTO_DELIVERED"],
            "timeout_ms": 5000,
            "enabled": true,
            "signing_secret": true,
            "delivery": "every"
        })
    );
    // Headers left out are kept (a reader cannot send their values back).
    let (status, kept) = api
        .put(push, json!({"url": "https://client.example/v2"}))
        .await;
    assert_eq!((status, &kept["headers"]), (200, &shown["headers"]));
    assert_eq!(kept["signing_secret"], true);
    assert!(kept.get("signing_secret_value").is_none());

    let invalid = [
        (json!({"url": "client.example/hook"}), "url"),
        (json!({"url": "https://"}), "url"),
        (
            json!({"url": "https://c.example", "headers": {"Bad Header": "x"}}),
            "headers.Bad Header",
        ),
        (
            json!({"url": "https://c.example", "headers": {"X-Token": "a\r\nInjected: 1"}}),
            "headers.X-Token",
        ),
        (
            json!({"url": "https://c.example", "statuses": ["DELIVERD"]}),
            "statuses",
        ),
        (
            json!({"url": "https://c.example", "timeout_ms": 60000}),
            "timeout_ms",
        ),
    ];
    for (body, field) in invalid {
        let (status, error) = api.put(push, body.clone()).await;
        assert_eq!((status, &error["field"]), (400, &json!(field)), "{body}");
    }
    let (_, unknown) = api
        .put(
            push,
            json!({"url": "https://c.example", "statuses": ["DELIVERD"]}),
        )
        .await;
    let message = unknown["error"].as_str().unwrap();
    assert!(
        message.contains("DELIVERD") && message.contains("OUT_FOR_DELIVERY"),
        "names the valid statuses: {message}"
    );
    // http:// is refused under the Lambda's policy.
    let production = Api::on(admin_api::router(Arc::new(Admin {
        store: DynamoAdmin::new(stack.dynamo.clone(), stack.sqs.clone(), stack.names()),
        pusher: HttpPusher::new(TargetPolicy::default()).unwrap(),
        reingest: stack.ingest(),
        policy: TargetPolicy::default(),
    })));
    let (status, error) = production
        .put(push, json!({"url": "http://client.example/hook"}))
        .await;
    assert_eq!((status, &error["field"]), (400, &json!("url")));
    // So is a private target, in any of its forms, at write time (not only at delivery).
    for (url, reason) in [
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[fd00:ec2::254]/latest", "unique local"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://0x7f.1/hook", "127.0.0.1 is a loopback address"),
        ("https://metadata.google.internal/", ".internal"),
    ] {
        let (status, error) = production.put(push, json!({"url": url})).await;
        assert_eq!((status, &error["field"]), (400, &json!("url")), "{url}");
        assert!(
            error["error"].as_str().unwrap().contains(reason),
            "{url}: {error}"
        );
    }
    assert_eq!(api.get(push).await.1["url"], "https://client.example/v2");

    assert_eq!(api.get("/admin/tenants/nobody/push").await.0, 404);
    let (status, _) = api
        .put(
            "/admin/tenants/nobody/push",
            json!({"url": "https://c.example"}),
        )
        .await;
    assert_eq!(status, 404);

    let bodies = api.bodies.lock().unwrap().clone();
    assert_eq!(bodies.iter().filter(|b| b.contains(&secret)).count(), 1);
    api.assert_never_answered(&[HEADER_VALUE, "acme-7731", "Injected"]);
    production.assert_never_answered(&[HEADER_VALUE, &secret]);
    assert_not_logged(&logs, &[HEADER_VALUE, "acme-7731", &secret]);
}

#[tokio::test]
async fn a_test_push_reaches_the_endpoint_signed_and_reports_what_came_back() {
    integration_tests::needs!(moto);
    let logs = LogCapture::default();
    let _guard = logs.install();
    let stack = Stack::create().await;
    let api = Api::new(&stack);
    assert_eq!(
        api.post("/admin/tenants", json!({"id": "acme"})).await.0,
        201
    );
    let push = "/admin/tenants/acme/push";
    let (_, saved) = api
        .put(
            push,
            json!({"url": "https://c.example", "headers": {"Authorization": HEADER_VALUE},
                   "signing_secret": "generate"}),
        )
        .await;
    let secret = saved["signing_secret_value"].as_str().unwrap().to_owned();
    let receiver = Receiver::start(Some(&secret));
    let (status, _) = api
        .put(push, json!({"url": receiver.url("/ok/test")}))
        .await;
    assert_eq!(status, 200);

    let (status, result) = api
        .post(
            "/admin/tenants/acme/push/test",
            json!({"status": "DELIVERED"}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["outcome"], "delivered");
    assert_eq!(result["http_status"], 200);
    assert!(result["body_prefix"].as_str().unwrap().contains("ok"));
    assert!(result["event_id"]
        .as_str()
        .unwrap()
        .starts_with("evt_test_"));
    let requests = receiver.requests().await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["headers"]["authorization"], HEADER_VALUE);
    assert_eq!(requests[0]["signature"], "valid");
    let sent: Value = serde_json::from_str(requests[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (&sent["status"], &sent["tenant_id"]),
        (&json!("DELIVERED"), &json!("acme"))
    );

    let (status, _) = api
        .put(push, json!({"url": receiver.url("/status/500")}))
        .await;
    assert_eq!(status, 200);
    let (_, failed) = api
        .post(
            "/admin/tenants/acme/push/test",
            json!({"status": "IN_TRANSIT"}),
        )
        .await;
    assert_eq!(
        (&failed["outcome"], &failed["http_status"]),
        (&json!("failed"), &json!(500))
    );
    let (status, bad) = api
        .post("/admin/tenants/acme/push/test", json!({"status": "BOGUS"}))
        .await;
    assert_eq!((status, &bad["field"]), (400, &json!("status")));
    let (status, _) = api
        .post(
            "/admin/tenants/nobody/push/test",
            json!({"status": "DELIVERED"}),
        )
        .await;
    assert_eq!(status, 404);

    api.assert_never_answered(&[HEADER_VALUE]);
    assert_not_logged(&logs, &[HEADER_VALUE, &secret]);
}

/// A replay of a day's deliveries goes to SQS in batches (of 10) sent at once: every event is
/// queued again once, marked as a replay, and pushed again.
#[tokio::test]
async fn a_replay_larger_than_an_sqs_batch_queues_every_event_once() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    let api = Api::new(&stack);
    let receiver = Receiver::start(None);
    const KEY: &str = "acme-clickpost-replay-batches";
    tenant_with_push(&api, "acme", KEY, &receiver.url("/ok")).await;
    let dispatcher = Dispatcher::new(&stack);
    let started = Utc::now();
    for n in 0..23 {
        let (status, answer) =
            ingest(&stack, KEY, &format!("AWB-R{n}"), "2024-03-01T10:00:00Z").await;
        assert_eq!((status, &answer["status"]), (200, &json!("accepted")));
    }
    assert_eq!(dispatcher.poll().await.len(), 23);
    let ids = |requests: &[Value]| -> Vec<String> {
        let mut ids: Vec<String> = requests
            .iter()
            .map(|r| r["headers"]["webhook-id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let delivered = ids(&receiver.requests().await);
    assert_eq!(delivered.len(), 23);

    let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let selection = json!({
        "from": time(started - chrono::Duration::minutes(1)),
        "to": time(Utc::now() + chrono::Duration::minutes(1)),
    });
    let (status, replayed) = api.post("/admin/tenants/acme/replay", selection).await;
    assert_eq!((status, replayed), (200, json!({"replayed": 23})));
    let queued = dispatcher.poll().await;
    assert_eq!(queued.len(), 23, "each event queued again once: {queued:?}");
    assert!(queued
        .iter()
        .all(|a| a["replay"] == "true" && a["tenant_id"] == "acme"));
    let requests = receiver.requests().await;
    assert_eq!(ids(&requests[23..]), delivered, "each pushed again once");
}

#[tokio::test]
async fn deliveries_by_awb_and_time_range_and_a_replay_is_pushed_again() {
    integration_tests::needs!(moto);
    let logs = LogCapture::default();
    let _guard = logs.install();
    let stack = Stack::create().await;
    let api = Api::new(&stack);
    let receiver = Receiver::start(None);
    const KEY: &str = "acme-clickpost-deliveries";
    tenant_with_push(&api, "acme", KEY, &receiver.url("/ok")).await;
    let dispatcher = Dispatcher::new(&stack);

    let started = Utc::now();
    for (awb, time) in [
        ("AWB-D1", "2024-03-01T10:00:00Z"),
        ("AWB-D1", "2024-03-01T12:00:00Z"),
        ("AWB-D2", "2024-03-01T10:00:00Z"),
    ] {
        let (status, answer) = ingest(&stack, KEY, awb, time).await;
        assert_eq!((status, &answer["status"]), (200, &json!("accepted")));
    }
    assert_eq!(dispatcher.poll().await.len(), 3);
    assert_eq!(receiver.requests().await.len(), 3);

    let (status, by_awb) = api.get("/admin/tenants/acme/deliveries?awb=AWB-D1").await;
    assert_eq!(status, 200, "{by_awb}");
    let by_awb = by_awb.as_array().unwrap().clone();
    assert_eq!(by_awb.len(), 2);
    for attempt in &by_awb {
        assert_eq!(
            (
                &attempt["awb"],
                &attempt["outcome"],
                &attempt["http_status"]
            ),
            (&json!("AWB-D1"), &json!("delivered"), &json!(200))
        );
        assert_eq!(attempt["attempt"], 1);
    }
    assert!(
        by_awb[0]["at"].as_str() <= by_awb[1]["at"].as_str(),
        "oldest first"
    );

    let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let range = |from, to| {
        format!(
            "/admin/tenants/acme/deliveries?from={}&to={}",
            time(from),
            time(to)
        )
    };
    let now = Utc::now();
    let (status, in_range) = api
        .get(&range(
            started - chrono::Duration::hours(30),
            now + chrono::Duration::seconds(5),
        ))
        .await;
    assert_eq!(status, 200, "{in_range}");
    let in_range = in_range.as_array().unwrap().clone();
    assert_eq!(in_range.len(), 3);
    let times: Vec<&str> = in_range.iter().map(|a| a["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "oldest first");
    let (_, before) = api
        .get(&range(
            started - chrono::Duration::days(3),
            started - chrono::Duration::days(1),
        ))
        .await;
    assert_eq!(before, json!([]));
    let (status, bad) = api.get("/admin/tenants/acme/deliveries").await;
    assert_eq!((status, &bad["field"]), (400, &json!("awb")));
    let (status, bad) = api.get(&range(now - chrono::Duration::days(40), now)).await;
    assert_eq!((status, &bad["field"]), (400, &json!("to")));
    assert_eq!(
        api.get("/admin/tenants/nobody/deliveries?awb=AWB-D1")
            .await
            .0,
        404
    );

    // Replay: both AWB-D1 events are queued again, marked, and pushed again though delivered.
    let (status, replayed) = api
        .post("/admin/tenants/acme/replay", json!({"awb": "AWB-D1"}))
        .await;
    assert_eq!((status, replayed), (200, json!({"replayed": 2})));
    let attributes = dispatcher.poll().await;
    assert_eq!(attributes.len(), 2);
    for a in &attributes {
        assert_eq!(a["replay"], "true");
        assert_eq!(a["tenant_id"], "acme");
    }
    let requests = receiver.requests().await;
    assert_eq!(requests.len(), 5);
    let replayed_ids: Vec<&Value> = requests[3..]
        .iter()
        .map(|r| &r["headers"]["webhook-id"])
        .collect();
    for id in replayed_ids {
        assert!(by_awb.iter().any(|a| &a["event_id"] == id));
    }
    let (_, after) = api.get("/admin/tenants/acme/deliveries?awb=AWB-D1").await;
    assert_eq!(after.as_array().unwrap().len(), 4);
    // An event accepted and delivered by the code before queue first (its claim at `EVENT#`,
    // the event as JSON; its attempt keyed by time first) is replayed too, until its claim
    // expires.
    let body =
        br#"{"waybill":"AWB-OLD","clickpost_status_code":5,"timestamp":"2024-03-01T10:00:00Z"}"#;
    let ctx = shared::NormalizeContext::new(shared::TenantId::parse("acme").unwrap(), Utc::now());
    let old = shared::normalize(Carrier::Clickpost, body, &ctx)
        .unwrap()
        .remove(0);
    let text = |t: &str| AttributeValue::S(t.to_owned());
    let put = |item: HashMap<String, AttributeValue>| {
        stack
            .dynamo
            .put_item()
            .table_name(&stack.events_table)
            .set_item(Some(item))
            .send()
    };
    put(HashMap::from([
        ("pk".to_owned(), text(&format!("EVENT#{}", old.event_id))),
        ("sk".to_owned(), text("CLAIM")),
        ("state".to_owned(), text("QUEUED")),
        ("tenant_id".to_owned(), text("acme")),
        (
            "event".to_owned(),
            text(&serde_json::to_string(&old).unwrap()),
        ),
    ]))
    .await
    .unwrap();
    put(HashMap::from([
        ("pk".to_owned(), text("DELIVERY#acme#AWB-OLD")),
        (
            "sk".to_owned(),
            text(&format!("2024-03-01T10:00:01.000Z#{}#001", old.event_id)),
        ),
        ("event_id".to_owned(), text(old.event_id.as_str())),
        ("tenant_id".to_owned(), text("acme")),
        ("awb".to_owned(), text("AWB-OLD")),
        ("status".to_owned(), text(old.status.as_str())),
        ("attempt".to_owned(), AttributeValue::N("1".into())),
        ("outcome".to_owned(), text("delivered")),
        ("http_status".to_owned(), AttributeValue::N("200".into())),
        ("at".to_owned(), text("2024-03-01T10:00:01.000Z")),
    ]))
    .await
    .unwrap();
    let (_, replayed) = api
        .post("/admin/tenants/acme/replay", json!({"awb": "AWB-OLD"}))
        .await;
    assert_eq!(replayed, json!({"replayed": 1}));
    assert_eq!(dispatcher.poll().await.len(), 1);
    let requests = receiver.requests().await;
    assert_eq!(requests.len(), 6);
    assert_eq!(requests[5]["headers"]["webhook-id"], old.event_id.as_str());
    // An AWB with no deliveries replays nothing.
    let (_, again) = api
        .post("/admin/tenants/acme/replay", json!({"awb": "AWB-NONE"}))
        .await;
    assert_eq!(again, json!({"replayed": 0}));
    assert_eq!(
        api.post("/admin/tenants/nobody/replay", json!({"awb": "AWB-D1"}))
            .await
            .0,
        404
    );

    api.assert_never_answered(&[KEY, HEADER_VALUE]);
    assert_not_logged(&logs, &[KEY, HEADER_VALUE]);
}

/// Dead letters go back to the events queue in batches (received 10 at a time, sent and deleted
/// 10 at a time): chosen ones across several batches, then the rest, each exactly once and
/// without its dead-letter reason.
#[tokio::test]
async fn a_redrive_of_more_dead_letters_than_one_batch_moves_each_once() {
    integration_tests::needs!(moto);
    let stack = Stack::create().await;
    let api = Api::new(&stack);
    let receiver = Receiver::start(None);
    const KEY: &str = "acme-clickpost-redrive-batches";
    tenant_with_push(&api, "acme", KEY, &receiver.url("/status/410")).await;
    let dispatcher = Dispatcher::new(&stack);
    for n in 0..23 {
        let (status, _) = ingest(&stack, KEY, &format!("AWB-DL{n}"), "2024-03-01T10:00:00Z").await;
        assert_eq!(status, 200);
    }
    assert_eq!(dispatcher.poll().await.len(), 23);
    let (_, dead) = api.get("/admin/dead-letters?limit=100").await;
    let dead = dead.as_array().unwrap().clone();
    assert_eq!(dead.len(), 23);
    let (status, _) = api
        .put(
            "/admin/tenants/acme/push",
            json!({"url": receiver.url("/ok")}),
        )
        .await;
    assert_eq!(status, 200);

    let chosen: Vec<&str> = dead
        .iter()
        .step_by(2)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    let (status, moved) = api
        .post("/admin/dead-letters/redrive", json!({ "ids": chosen }))
        .await;
    assert_eq!((status, moved), (200, json!({"redriven": 12})));
    let (_, left) = api.get("/admin/dead-letters?limit=100").await;
    let left: Vec<&str> = left
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(left.len(), 11);
    assert!(left.iter().all(|id| !chosen.contains(id)));
    let back = dispatcher.poll().await;
    assert_eq!(back.len(), 12);
    assert!(back.iter().all(|a| !a.contains_key("dead_letter_reason")));

    let (status, moved) = api
        .call(Method::POST, "/admin/dead-letters/redrive", None)
        .await;
    assert_eq!((status, moved), (200, json!({"redriven": 11})));
    assert_eq!(api.get("/admin/dead-letters").await.1, json!([]));
    assert_eq!(dispatcher.poll().await.len(), 11);
    let mut pushed: Vec<String> = receiver
        .requests()
        .await
        .iter()
        .filter(|r| r["path"] == "/ok")
        .map(|r| r["headers"]["webhook-id"].as_str().unwrap().to_owned())
        .collect();
    pushed.sort();
    let all = pushed.len();
    pushed.dedup();
    assert_eq!(
        (all, pushed.len()),
        (23, 23),
        "each dead letter pushed once when redriven"
    );
}

#[tokio::test]
async fn dead_letters_are_listed_with_reasons_then_redriven_some_and_then_all() {
    integration_tests::needs!(moto);
    let logs = LogCapture::default();
    let _guard = logs.install();
    let stack = Stack::create().await;
    let api = Api::new(&stack);
    let receiver = Receiver::start(None);
    const KEY: &str = "acme-clickpost-dead-letters";
    tenant_with_push(&api, "acme", KEY, &receiver.url("/status/410")).await;
    assert_eq!(
        api.post("/admin/tenants", json!({"id": "beta"})).await.0,
        201
    );
    let dispatcher = Dispatcher::new(&stack);

    let mut event_ids = Vec::new();
    for awb in ["AWB-X1", "AWB-X2", "AWB-X3"] {
        let (_, answer) = ingest(&stack, KEY, awb, "2024-03-01T10:00:00Z").await;
        event_ids.push(answer["event_ids"][0].as_str().unwrap().to_owned());
    }
    assert_eq!(dispatcher.poll().await.len(), 3);

    let (status, dead) = api.get("/admin/dead-letters").await;
    assert_eq!(status, 200, "{dead}");
    let dead = dead.as_array().unwrap().clone();
    assert_eq!(dead.len(), 3);
    let mut listed: Vec<&str> = dead
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut expected: Vec<&str> = event_ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(listed, expected);
    for d in &dead {
        assert_eq!(d["tenant_id"], "acme");
        assert!(d["reason"].as_str().unwrap().contains("410"), "{d}");
        assert!(d["attempts"].as_u64().unwrap() >= 1);
    }
    // Listing leaves them where they were, visible.
    assert_eq!(
        api.get("/admin/dead-letters")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        api.get("/admin/dead-letters?tenant=acme&limit=2")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        api.get("/admin/dead-letters?tenant=beta").await.1,
        json!([])
    );
    assert_eq!(api.get("/admin/dead-letters?tenant=nobody").await.0, 404);
    let (status, bad) = api.get("/admin/dead-letters?limit=0").await;
    assert_eq!((status, &bad["field"]), (400, &json!("limit")));

    // The endpoint is fixed; one dead letter back first.
    let (status, _) = api
        .put(
            "/admin/tenants/acme/push",
            json!({"url": receiver.url("/ok")}),
        )
        .await;
    assert_eq!(status, 200);
    let first = dead[0]["id"].as_str().unwrap();
    let (status, moved) = api
        .post("/admin/dead-letters/redrive", json!({"ids": [first]}))
        .await;
    assert_eq!((status, moved), (200, json!({"redriven": 1})));
    let (_, left) = api.get("/admin/dead-letters").await;
    let left = left.as_array().unwrap().clone();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|d| d["id"] != first));
    let attributes = dispatcher.poll().await;
    assert_eq!(attributes.len(), 1);
    assert!(!attributes[0].contains_key("dead_letter_reason"));
    assert_eq!(
        attributes[0]["event_id"],
        dead[0]["event_id"].as_str().unwrap()
    );

    let (status, bad) = api
        .post("/admin/dead-letters/redrive", json!({"ids": []}))
        .await;
    assert_eq!((status, &bad["field"]), (400, &json!("ids")));
    let (status, moved) = api
        .call(Method::POST, "/admin/dead-letters/redrive", None)
        .await;
    assert_eq!((status, moved), (200, json!({"redriven": 2})));
    assert_eq!(api.get("/admin/dead-letters").await.1, json!([]));
    assert_eq!(dispatcher.poll().await.len(), 2);

    // Each event: one 410, then delivered once.
    let requests = receiver.requests().await;
    let delivered: Vec<&str> = requests
        .iter()
        .filter(|r| r["path"] == "/ok")
        .map(|r| r["headers"]["webhook-id"].as_str().unwrap())
        .collect();
    let mut delivered_sorted = delivered.clone();
    delivered_sorted.sort();
    assert_eq!(delivered_sorted, expected);
    assert_eq!(requests.len(), 6);

    api.assert_never_answered(&[KEY, HEADER_VALUE]);
    assert_not_logged(&logs, &[KEY, HEADER_VALUE]);
}

/// Posts `body` as a Clickpost push with `key` through the notify function's handler.
async fn ingest_body(stack: &Stack, key: &str, body: &str) -> (u16, Value) {
    let request = ingest_http::apigw::notify_request(
        Carrier::Clickpost,
        "POST",
        &[("webhook_key", key)],
        "",
        body.as_bytes(),
    );
    let response = ingest_http::handle(&stack.ingest(), Carrier::Clickpost, request)
        .await
        .unwrap();
    (
        response.status().as_u16(),
        serde_json::from_slice(response.body().as_ref()).unwrap(),
    )
}

#[tokio::test]
async fn the_quarantine_is_listed_across_tenants_shown_and_a_fixed_body_replayed_once() {
    integration_tests::needs!(moto);
    use shared::ports::{EventStore, Quarantined};
    let stack = Stack::create().await;
    let api = Api::new(&stack);
    tenant_with_push(
        &api,
        "acme",
        "acme-clickpost-quarantine",
        "https://acme.example",
    )
    .await;
    tenant_with_push(
        &api,
        "globex",
        "globex-clickpost-quarantine",
        "https://globex.example",
    )
    .await;
    const REJECTED: &str = r#"{"waybill":"Q-BAD","clickpost_status_code":5}"#;
    for key in [
        "acme-clickpost-quarantine",
        "acme-clickpost-quarantine",
        "globex-clickpost-quarantine",
    ] {
        let (status, answer) = ingest_body(&stack, key, REJECTED).await;
        assert_eq!(status, 400, "{answer}");
    }
    // A body the normaliser of the day accepts, kept as if an earlier one had refused it.
    const FIXED: &str =
        r#"{"waybill":"Q-FIXED","clickpost_status_code":5,"timestamp":"2024-03-01T10:00:00Z"}"#;
    let fixed_id = digest_hex(FIXED);
    let acme = shared::TenantId::parse("acme").unwrap();
    let events = DynamoEventStore::new(stack.dynamo.clone(), &stack.events_table);
    events
        .quarantine(&Quarantined {
            tenant_id: &acme,
            carrier: Carrier::Clickpost,
            body_digest: fixed_id.clone(),
            body: FIXED.as_bytes(),
            reason: "clickpost_status_code: unknown",
            received_at: Utc::now() - chrono::Duration::hours(3),
        })
        .await
        .unwrap();
    // One written before the counts (its first arrival in `received_at`), and one past its
    // expiry that TTL has not deleted yet.
    let old_at = Utc::now() - chrono::Duration::days(2);
    for (sk, expires) in [
        ("a".repeat(64), Utc::now() + chrono::Duration::days(5)),
        ("b".repeat(64), Utc::now() - chrono::Duration::hours(1)),
    ] {
        stack
            .dynamo
            .put_item()
            .table_name(&stack.events_table)
            .item(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S("QUARANTINE#globex".into()),
            )
            .item("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk))
            .item(
                "carrier",
                aws_sdk_dynamodb::types::AttributeValue::S("shipway".into()),
            )
            .item(
                "reason",
                aws_sdk_dynamodb::types::AttributeValue::S("no awb".into()),
            )
            .item(
                "received_at",
                aws_sdk_dynamodb::types::AttributeValue::S(old_at.to_rfc3339()),
            )
            .item(
                "body",
                aws_sdk_dynamodb::types::AttributeValue::B(
                    aws_sdk_dynamodb::primitives::Blob::new("{}"),
                ),
            )
            .item(
                "expires_at",
                aws_sdk_dynamodb::types::AttributeValue::N(expires.timestamp().to_string()),
            )
            .send()
            .await
            .unwrap();
    }

    let (status, all) = api.get("/admin/quarantine").await;
    assert_eq!(status, 200, "{all}");
    let listed: Vec<(String, String, u64)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["tenant_id"].as_str().unwrap().to_owned(),
                q["carrier"].as_str().unwrap().to_owned(),
                q["times"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("globex".into(), "shipway".into(), 1),
            ("acme".into(), "clickpost".into(), 1),
            ("acme".into(), "clickpost".into(), 2),
            ("globex".into(), "clickpost".into(), 1),
        ],
        "oldest first, the expired one hidden: {all}"
    );
    let time_of = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc)
    };
    assert_eq!(time_of(&all[0]["first_received_at"]), old_at);
    let (_, acme_only) = api
        .get("/admin/quarantine?tenant=acme&reason=TIMESTAMP")
        .await;
    assert_eq!(acme_only.as_array().unwrap().len(), 1, "{acme_only}");
    assert_eq!(acme_only[0]["id"], digest_hex(REJECTED));
    let (_, limited) = api.get("/admin/quarantine?carrier=clickpost&limit=2").await;
    assert_eq!(limited.as_array().unwrap().len(), 2);
    let (status, detail) = api
        .get(&format!(
            "/admin/tenants/acme/quarantine/{}",
            digest_hex(REJECTED)
        ))
        .await;
    assert_eq!((status, detail["body"].as_str()), (200, Some(REJECTED)));

    // The fixed body is queued once; a second replay is a duplicate: queue first, its copy is
    // queued too, but the claim names the first one, the copy the dispatcher pushes.
    stack.drain(&stack.queue_url).await;
    let replay = json!({"tenant": "acme", "ids": [fixed_id]});
    let (status, report) = api.post("/admin/quarantine/replay", replay.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 1, "{report}");
    let queued = stack.drain(&stack.queue_url).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].body["awb"], "Q-FIXED");
    assert_eq!(
        queued[0].body["event_id"],
        report["results"][0]["event_ids"][0]
    );
    let (_, again) = api.post("/admin/quarantine/replay", replay).await;
    assert_eq!(
        (&again["duplicate"], &again["accepted"]),
        (&json!(1), &json!(0)),
        "{again}"
    );
    let copies = stack.drain(&stack.queue_url).await;
    assert_eq!(copies.len(), 1);
    assert!(
        !stack.named_by_claim(&copies[0]).await,
        "a duplicate's copy"
    );
    let (_, detail) = api
        .get(&format!("/admin/tenants/acme/quarantine/{fixed_id}"))
        .await;
    assert_eq!(detail["last_replay"]["outcome"], "duplicate", "{detail}");
    // By filter: the rejected bodies are still invalid.
    let (_, rejected) = api
        .post("/admin/quarantine/replay", json!({"reason": "timestamp"}))
        .await;
    assert_eq!(rejected["invalid"], 2, "{rejected}");

    // The carrier-status view: the rejection ingest recorded, and the newest time wins.
    let (status, view) = api.get("/admin/tenants/acme/carriers").await;
    assert_eq!(status, 200, "{view}");
    assert!(view[0]["last_rejected_at"].is_string(), "{view}");
    assert!(view[0]["last_rejected_reason"]
        .as_str()
        .unwrap()
        .contains("timestamp"));
    let at = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .with_timezone(&Utc)
    };
    for (time, reason) in [
        ("2030-01-01T10:00:00Z", "newer"),
        ("2030-01-01T09:00:00Z", "older"),
    ] {
        events
            .record_activity(
                &acme,
                Carrier::Shipway,
                shared::ports::Activity::Rejected,
                at(time),
                Some(reason),
                1,
            )
            .await
            .unwrap();
    }
    let (_, view) = api.get("/admin/tenants/acme/carriers").await;
    assert_eq!(view[2]["carrier"], "shipway");
    // Requests per hour over the last 24 hours: what ingest recorded (one rejection), and the
    // counts written for this test's hour, added up (the 2030 ones are outside the window).
    let rejected: u64 = view[0]["hourly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["rejected"].as_u64().unwrap())
        .sum();
    assert!(rejected >= 1, "{view}");
    let now = Utc::now();
    for count in [3, 4] {
        events
            .record_activity(
                &acme,
                Carrier::Shipway,
                shared::ports::Activity::Accepted,
                now,
                None,
                count,
            )
            .await
            .unwrap();
    }
    let (_, counted) = api.get("/admin/tenants/acme/carriers").await;
    let this_hour = shared::ports::HourlyActivity::hour_of(now);
    let hours = counted[2]["hourly"].as_array().unwrap();
    let hour = hours
        .iter()
        .find(|h| time_of(&h["hour"]) == this_hour)
        .unwrap_or_else(|| panic!("no count for {this_hour}: {counted}"));
    assert_eq!(
        (&hour["accepted"], &hour["rejected"]),
        (&json!(7), &json!(0))
    );
    // Oldest first: the 2030 ones (recorded above) after this hour.
    assert_eq!(time_of(&hours[0]["hour"]), this_hour, "{counted}");
    assert_eq!(view[2]["last_rejected_reason"], "newer", "{view}");
    assert_eq!(
        time_of(&view[2]["last_rejected_at"]),
        at("2030-01-01T10:00:00Z")
    );
    assert_eq!(view[1]["last_rejected_at"], Value::Null);
    assert_eq!(api.get("/admin/tenants/nobody/carriers").await.0, 404);
}

/// A tenant's pull account item, as the AWS reconciler reads it (layout: `dynamodb.rs`).
async fn pull_item(stack: &Stack, tenant: &str, carrier: &str) -> Option<HashMap<String, String>> {
    let found = stack
        .dynamo
        .get_item()
        .table_name(&stack.config_table)
        .key("pk", AttributeValue::S(format!("TENANT#{tenant}")))
        .key("sk", AttributeValue::S(format!("PULL#{carrier}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    found.item().map(|item| {
        item.iter()
            .map(|(k, v)| (k.clone(), v.as_s().unwrap().clone()))
            .collect()
    })
}

#[tokio::test]
async fn pull_accounts_are_stored_as_the_reconciler_reads_them_and_their_secrets_never_shown() {
    integration_tests::needs!(moto);
    let logs = LogCapture::default();
    let _guard = logs.install();
    let stack = Stack::create().await;
    let api = Api::new(&stack);
    const SECRET: &str = "cp-pull-key-5e1f0a";
    const LICENCE: &str = "sw-licence-9b2c44";
    assert_eq!(
        api.post("/admin/tenants", json!({"id": "acme"})).await.0,
        201
    );
    assert_eq!(api.get("/admin/tenants/acme/pull").await, (200, json!([])));

    let (status, saved) = api
        .put(
            "/admin/tenants/acme/pull/clickpost",
            json!({"user": "acme-api", "secret": SECRET}),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["base_url"], "https://api.clickpost.in");
    let (status, _) = api
        .put(
            "/admin/tenants/acme/pull/shipway",
            json!({"user": "acme", "secret": LICENCE, "base_url": "https://shipway.example/"}),
        )
        .await;
    assert_eq!(status, 200);
    let item = pull_item(&stack, "acme", "clickpost").await.unwrap();
    let expected: HashMap<String, String> = [
        ("pk", "TENANT#acme"),
        ("sk", "PULL#clickpost"),
        ("carrier", "clickpost"),
        ("base_url", "https://api.clickpost.in/"),
        ("user", "acme-api"),
        ("secret", SECRET),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(item, expected);

    // A new user without a secret keeps the secret (and the base URL).
    let (status, _) = api
        .put(
            "/admin/tenants/acme/pull/clickpost",
            json!({"user": "acme-api-2"}),
        )
        .await;
    assert_eq!(status, 200);
    let item = pull_item(&stack, "acme", "clickpost").await.unwrap();
    assert_eq!(
        (item["user"].as_str(), item["secret"].as_str()),
        ("acme-api-2", SECRET)
    );

    let (status, listed) = api.get("/admin/tenants/acme/pull").await;
    assert_eq!(status, 200);
    assert_eq!(
        listed,
        json!([
            {"carrier": "clickpost", "base_url": "https://api.clickpost.in",
             "user": "acme-api-2", "secret_set": true},
            {"carrier": "shipway", "base_url": "https://shipway.example",
             "user": "acme", "secret_set": true},
        ])
    );
    // A base URL is an API's root: no query (the stack's policy allows local hosts, for the
    // receivers of these tests).
    let (status, refused) = api
        .put(
            "/admin/tenants/acme/pull/shiprocket",
            json!({"user": "ops@acme.in", "secret": "pw",
                   "base_url": "https://apiv2.shiprocket.in/v1/external?token=x"}),
        )
        .await;
    assert_eq!((status, &refused["field"]), (400, &json!("base_url")));

    let (status, _) = api
        .call(Method::DELETE, "/admin/tenants/acme/pull/shipway", None)
        .await;
    assert_eq!(status, 204);
    assert!(pull_item(&stack, "acme", "shipway").await.is_none());
    let (status, _) = api
        .call(Method::DELETE, "/admin/tenants/acme/pull/shipway", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        api.get("/admin/tenants/acme/pull").await.1[0]["carrier"],
        "clickpost"
    );

    api.assert_never_answered(&[SECRET, LICENCE]);
    assert_not_logged(&logs, &[SECRET, LICENCE]);
}

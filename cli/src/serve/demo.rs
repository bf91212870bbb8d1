//! `rms serve --demo`: a demo tenant whose notifications go to a receiver inside the same process,
//! which prints each one, so a newcomer sees the whole relay work with one `curl`.

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use shared::auth::Credential;
use shared::push::{PushConfig, PushHeaders, PushTimeout, PushUrl, SigningSecret, TargetPolicy};
use shared::{Carrier, TenantId};

use super::config::{Key, ServeConfig, Tenant};

pub const RECEIVER_PATH: &str = "/demo/receiver";
const TENANT: &str = "demo";
const CLIENT_TOKEN: &str = "Bearer demo-client-token";
const SIGNING_SECRET: &str = "whsec_ZGVtby1zaWduaW5nLXNlY3JldC0wMTIzNDU2Nzg5";

fn key(carrier: Carrier) -> String {
    format!("demo-{carrier}-key")
}

/// Adds the demo tenant, pointed at the built-in receiver on this server.
pub fn configure(config: &mut ServeConfig) {
    config.allow_private_targets = true;
    // One tenant: the limit that keeps one tenant from holding every slot has no one to protect
    // here, so the demo tenant may use them all (as a deployment with one tenant should set it).
    config.tenant_concurrency = config.concurrency;
    let id = TenantId::parse(TENANT).unwrap_or_else(|_| unreachable!("a valid literal"));
    config.tenants.retain(|t| t.id != id);
    let receiver = format!("http://{}{RECEIVER_PATH}", config.listen);
    let headers = [("Authorization", CLIENT_TOKEN), ("X-Client-Id", TENANT)]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    config.tenants.push(Tenant {
        field: "the demo tenant".to_owned(),
        id,
        keys: Carrier::ALL
            .iter()
            .map(|c| Key {
                field: format!("the demo tenant's {c} key"),
                carrier: *c,
                credential: Credential::new(key(*c)),
            })
            .collect(),
        push: Some(PushConfig {
            url: PushUrl::parse(&receiver, TargetPolicy::LOCAL)
                .unwrap_or_else(|_| unreachable!("a loopback http URL, allowed locally")),
            headers: PushHeaders::parse(&headers)
                .unwrap_or_else(|_| unreachable!("two valid literal headers")),
            statuses: vec![],
            signing_secret: SigningSecret::parse(SIGNING_SECRET).ok(),
            timeout: PushTimeout::DEFAULT,
            enabled: true,
            delivery: shared::push::Delivery::Every,
        }),
        include_source: false,
        enabled: true,
        pull: Vec::new(),
    });
}

/// What a newcomer needs: the keys, and a `curl` per carrier sample.
pub fn banner(config: &ServeConfig) {
    let base = format!("http://{}", config.listen);
    println!(
        "\nRMS Notify demo on {base} (database {})",
        config.database.display()
    );
    println!("Tenant `{TENANT}`; its notifications go to the built-in receiver at {base}{RECEIVER_PATH},");
    println!("which prints each one below. Carrier keys:");
    for carrier in Carrier::ALL {
        println!(
            "  {carrier:<10} {}: {}",
            carrier.spec().key_header(),
            key(carrier)
        );
    }
    println!("\nFrom the repository root, send a sample:\n");
    for carrier in Carrier::ALL {
        let spec = carrier.spec();
        println!(
            "  curl -s {base}{} -H '{}: {}' -H 'content-type: application/json' --data-binary @{}",
            spec.notify_path,
            spec.key_header(),
            key(carrier),
            spec.demo_sample
        );
    }
    println!(
        "\nThe same again is a duplicate; dead letters: curl -s {base}/admin/dead-letters ; Ctrl-C stops.\n"
    );
}

/// The demo client's endpoint: checks the credentials and signature it was configured with, and
/// prints the notification.
pub async fn receive(headers: HeaderMap, body: Bytes) -> Json<Value> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let signed = SigningSecret::parse(SIGNING_SECRET).is_ok_and(|secret| {
        let timestamp = header("webhook-timestamp")
            .parse::<i64>()
            .unwrap_or_default();
        secret.sign(header("webhook-id"), timestamp, &body) == header("webhook-signature")
    });
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let text = |field: &str| event[field].as_str().unwrap_or("-").to_owned();
    println!(
        "receiver: {:<22} {:<10} awb {:<16} {} event {}  [credentials {}, signature {}]",
        text("status"),
        text("carrier"),
        text("awb"),
        text("shipment_type"),
        text("event_id"),
        if header("authorization") == CLIENT_TOKEN {
            "ok"
        } else {
            "WRONG"
        },
        if signed { "valid" } else { "INVALID" },
    );
    Json(json!({"received": true}))
}

//! API Gateway request → ingest → API Gateway response, through the HTTP edge `rms serve`
//! shares (`shared::http`).

use chrono::Utc;
use lambda_http::{Body, Error, Request, Response};
use shared::ingest::Ingest;
use shared::ports::{ConfigStore, Intake, Metrics};
use shared::Carrier;

/// Handles one notify request. Expected failures (401, 400, 413, 503) are answers, not errors:
/// an `Err` here would make API Gateway answer a bare 502.
pub async fn handle<C, S, M>(
    ingest: &Ingest<C, S, M>,
    carrier: Carrier,
    request: Request,
) -> Result<Response<Body>, Error>
where
    C: ConfigStore,
    S: Intake,
    M: Metrics,
{
    let (parts, body) = request.into_parts();
    let inbound = shared::http::inbound(carrier, &parts, body.as_ref());
    let outcome = ingest.handle(&inbound, Utc::now()).await;
    Ok(shared::http::response(carrier, &outcome).map(Body::Text))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use serde_json::{json, Value};
    use shared::adapters::memory::{
        ClaimState, MemoryConfig, MemoryEvents, MemoryQueue, RecordingMetrics,
    };
    use shared::auth::Credential;
    use shared::ingest::{ClaimThenQueue, IngestSettings};
    use shared::ports::TenantAuth;
    use shared::{EventId, TenantId};

    use super::*;
    use crate::apigw;
    use lambda_http::http::header::{CONTENT_TYPE, RETRY_AFTER};

    const CLICKPOST_KEY: &str = "cp-7e7cc4c4-webhook-key";
    const SHIPROCKET_KEY: &str = "sr-token-0042";
    const SHIPWAY_KEY: &str = "d60cdf34ebacf6cbf4e6080061c1ba1f";

    type MemoryIngest = Ingest<
        Arc<MemoryConfig>,
        ClaimThenQueue<Arc<MemoryEvents>, Arc<MemoryQueue>>,
        Arc<RecordingMetrics>,
    >;

    struct World {
        ingest: MemoryIngest,
        config: Arc<MemoryConfig>,
        events: Arc<MemoryEvents>,
        queue: Arc<MemoryQueue>,
        metrics: Arc<RecordingMetrics>,
    }

    fn world() -> World {
        let config = Arc::new(MemoryConfig::default());
        let tenant = TenantAuth {
            tenant_id: TenantId::parse("acme").unwrap(),
            include_source: true,
        };
        config.add_credential(
            Carrier::Clickpost,
            &Credential::new(CLICKPOST_KEY),
            tenant.clone(),
        );
        config.add_credential(
            Carrier::Shiprocket,
            &Credential::new(SHIPROCKET_KEY),
            tenant.clone(),
        );
        config.add_credential(Carrier::Shipway, &Credential::new(SHIPWAY_KEY), tenant);
        let events = Arc::new(MemoryEvents::default());
        let queue = Arc::new(MemoryQueue::default());
        let metrics = Arc::new(RecordingMetrics::default());
        World {
            ingest: Ingest::new(
                config.clone(),
                ClaimThenQueue {
                    events: events.clone(),
                    queue: queue.clone(),
                },
                metrics.clone(),
                IngestSettings::default(),
            ),
            config,
            events,
            queue,
            metrics,
        }
    }

    fn request(
        carrier: Carrier,
        method: &str,
        headers: &[(&str, &str)],
        query: &str,
        body: &[u8],
    ) -> Request {
        apigw::notify_request(carrier, method, headers, query, body)
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name);
        std::fs::read(path).unwrap()
    }

    fn auth(carrier: Carrier) -> (&'static str, &'static str) {
        match carrier {
            Carrier::Clickpost => ("webhook_key", CLICKPOST_KEY),
            Carrier::Shiprocket => ("x-api-key", SHIPROCKET_KEY),
            Carrier::Shipway => ("x-api-key", SHIPWAY_KEY),
        }
    }

    async fn post(
        w: &World,
        carrier: Carrier,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Value, Option<String>) {
        send(w, request(carrier, "POST", headers, "", body)).await
    }

    async fn send(w: &World, req: Request) -> (u16, Value, Option<String>) {
        let carrier = if req.uri().path().contains("clickpost") {
            Carrier::Clickpost
        } else if req.uri().path().contains("/st/") {
            Carrier::Shiprocket
        } else {
            Carrier::Shipway
        };
        let response = handle(&w.ingest, carrier, req).await.unwrap();
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        (response.status().as_u16(), body, retry_after)
    }

    const FIXTURES: [(Carrier, &str, usize); 8] = [
        (
            Carrier::Clickpost,
            "clickpost/delivered_selected_captured.json",
            1,
        ),
        (
            Carrier::Clickpost,
            "clickpost/failed_delivery_ndr_selected.json",
            1,
        ),
        (
            Carrier::Clickpost,
            "clickpost/out_for_delivery_all_status.json",
            1,
        ),
        (
            Carrier::Clickpost,
            "clickpost/seed_return_order_placed.json",
            1,
        ),
        (
            Carrier::Clickpost,
            "clickpost/seed_test_webhook_data.json",
            1,
        ),
        (
            Carrier::Shiprocket,
            "shiprocket/in_transit_official.json",
            1,
        ),
        (Carrier::Shipway, "shipway/classic_status_feed.json", 2),
        (Carrier::Shipway, "shipway/panel_delivered.json", 1),
    ];

    #[tokio::test]
    async fn every_fixture_is_accepted_and_queued_once_with_its_attributes() {
        let w = world();
        let mut expected_messages = 0;
        for (carrier, name, events) in FIXTURES {
            let (status, body, _) = post(&w, carrier, &[auth(carrier)], &fixture(name)).await;
            assert_eq!(status, 200, "{name}: {body}");
            assert_eq!(body["status"], "accepted", "{name}");
            assert_eq!(
                body["event_ids"].as_array().unwrap().len(),
                events,
                "{name}"
            );
            expected_messages += events;
            for id in body["event_ids"].as_array().unwrap() {
                let id: EventId = serde_json::from_value(id.clone()).unwrap();
                assert_eq!(w.events.claim_state(&id), Some(ClaimState::Queued));
            }
        }
        let messages = w.queue.messages();
        assert_eq!(messages.len(), expected_messages);
        for m in &messages {
            let event: Value = serde_json::from_str(&m.body).unwrap();
            assert_eq!(m.event_id, event["event_id"].as_str().unwrap());
            assert_eq!(m.carrier, event["carrier"].as_str().unwrap());
            assert_eq!(
                (m.tenant_id.as_str(), event["tenant_id"].as_str()),
                ("acme", Some("acme"))
            );
        }
        assert_eq!(w.metrics.total("Accepted"), expected_messages as u64);
    }

    #[tokio::test]
    async fn the_same_payload_again_is_a_duplicate_with_no_side_effect() {
        let w = world();
        let body = fixture("clickpost/delivered_selected_captured.json");
        let (_, first, _) = post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &body).await;
        let (status, again, _) =
            post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &body).await;
        assert_eq!(status, 200);
        assert_eq!(again["status"], "duplicate");
        assert_eq!(again["event_ids"], first["event_ids"]);
        assert_eq!(w.queue.messages().len(), 1);
        assert_eq!(w.metrics.total("Duplicate"), 1);
    }

    #[tokio::test]
    async fn a_missing_or_unknown_credential_is_401_with_no_side_effect() {
        let w = world();
        let body = fixture("shiprocket/in_transit_official.json");
        let (status, missing, _) = post(&w, Carrier::Shiprocket, &[], &body).await;
        assert_eq!(status, 401);
        assert!(missing["error"].as_str().unwrap().contains("x-api-key"));
        let (status, wrong, _) = post(
            &w,
            Carrier::Shiprocket,
            &[("x-api-key", "not-a-key")],
            &body,
        )
        .await;
        assert_eq!(status, 401);
        assert!(wrong["error"]
            .as_str()
            .unwrap()
            .starts_with("unknown credential"));
        // A key of another carrier does not open this one.
        let (status, _, _) = post(
            &w,
            Carrier::Shiprocket,
            &[("x-api-key", CLICKPOST_KEY)],
            &body,
        )
        .await;
        assert_eq!(status, 401);
        assert!(w.queue.messages().is_empty());
        assert!(w.events.quarantined().is_empty());
        assert_eq!(
            w.metrics.total_where("Rejected", "Reason", "Unauthorized"),
            3
        );
    }

    #[tokio::test]
    async fn an_invalid_payload_is_400_and_quarantined_once() {
        let w = world();
        let body = fixture("clickpost/seed_verbatim_python_literals.txt");
        for _ in 0..2 {
            let (status, answer, _) =
                post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &body).await;
            assert_eq!(status, 400);
            assert_eq!(
                answer["error"],
                "the body is not valid JSON: expected value at line 11 column 14"
            );
        }
        let quarantined = w.events.quarantined();
        assert_eq!(quarantined.len(), 1);
        assert_eq!(quarantined[0].body, body);
        assert_eq!(
            (quarantined[0].tenant_id.as_str(), quarantined[0].carrier),
            ("acme", Carrier::Clickpost)
        );
        assert!(w.queue.messages().is_empty());
        assert_eq!(
            w.metrics
                .total_where("Rejected", "Reason", "InvalidPayload"),
            2
        );
    }

    #[tokio::test]
    async fn a_body_over_256_kib_is_413() {
        let w = world();
        let mut body = fixture("clickpost/delivered_selected_captured.json");
        body.resize(256 * 1024 + 1, b' ');
        let (status, answer, _) =
            post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &body).await;
        assert_eq!(status, 413);
        assert_eq!(
            answer["error"],
            "the body is 262145 bytes; the limit is 262144 bytes"
        );
        body.truncate(256 * 1024);
        let (status, _, _) = post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &body).await;
        assert_eq!(status, 200, "exactly at the limit is accepted");
    }

    #[tokio::test]
    async fn probes_answer_200_without_credentials_or_side_effects() {
        let w = world();
        for carrier in Carrier::ALL {
            let (status, body, _) = send(&w, request(carrier, "GET", &[], "", b"")).await;
            assert_eq!((status, body), (200, json!({"status": "ok"})));
            let (status, body, _) = post(&w, carrier, &[], b"").await;
            assert_eq!((status, body), (200, json!({"status": "ok"})));
        }
        assert!(w.queue.messages().is_empty());
        assert_eq!(w.metrics.total("Received") + w.metrics.total("Rejected"), 0);
    }

    #[tokio::test]
    async fn shipway_authenticates_by_header_query_or_body_hash() {
        let w = world();
        let classic = fixture("shipway/classic_status_feed.json"); // carries "hash": SHIPWAY_KEY
        let (status, _, _) = post(&w, Carrier::Shipway, &[], &classic).await;
        assert_eq!(status, 200);
        let panel = fixture("shipway/panel_delivered.json");
        let (status, _, _) = post(&w, Carrier::Shipway, &[], &panel).await;
        assert_eq!(status, 401, "the panel format has no hash");
        let req = request(
            Carrier::Shipway,
            "POST",
            &[],
            &format!("key={SHIPWAY_KEY}"),
            &panel,
        );
        assert_eq!(send(&w, req).await.0, 200);
    }

    #[tokio::test]
    async fn a_base64_encoded_body_is_decoded() {
        let w = world();
        let mut body = fixture("shiprocket/in_transit_official.json");
        body.push(0xff); // not UTF-8, so the test event carries it base64-encoded
        let (status, answer, _) =
            post(&w, Carrier::Shiprocket, &[auth(Carrier::Shiprocket)], &body).await;
        assert_eq!(status, 400);
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("not valid UTF-8"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn a_queue_failure_releases_the_claim_so_the_retry_is_accepted() {
        let w = world();
        let body = fixture("clickpost/out_for_delivery_all_status.json");
        w.queue.set_unavailable(true);
        let (status, answer, retry_after) =
            post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &body).await;
        assert_eq!((status, retry_after.as_deref()), (503, Some("5")));
        assert!(answer["error"].as_str().unwrap().contains("retry"));
        w.queue.set_unavailable(false);
        let (status, answer, _) =
            post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &body).await;
        assert_eq!((status, answer["status"].as_str()), (200, Some("accepted")));
        assert_eq!(w.queue.messages().len(), 1);
    }

    /// The claim's write landed but its answer was lost (a timeout, a reset connection): the
    /// attempt gives its claim up, so the carrier's retry is accepted at once rather than refused
    /// as "in flight" until the claim expires.
    #[tokio::test]
    async fn a_claim_whose_answer_was_lost_is_released_so_the_retry_is_accepted() {
        let w = world();
        let body = fixture("clickpost/out_for_delivery_all_status.json");
        w.events.set_claims_lose_answers(true);
        let (status, _, _) = post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &body).await;
        assert_eq!(status, 503);
        w.events.set_claims_lose_answers(false);
        let (status, answer, _) =
            post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &body).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some("accepted")),
            "{answer}"
        );
        assert_eq!(w.queue.messages().len(), 1);
    }

    #[tokio::test]
    async fn a_store_failure_is_503_with_nothing_queued() {
        let w = world();
        let body = fixture("clickpost/out_for_delivery_all_status.json");
        w.events.set_unavailable(true);
        assert_eq!(
            post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &body)
                .await
                .0,
            503
        );
        w.events.set_unavailable(false);
        w.config.set_unavailable(true);
        assert_eq!(
            post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &body)
                .await
                .0,
            503
        );
        assert!(w.queue.messages().is_empty());
    }

    #[tokio::test]
    async fn an_older_event_after_a_newer_one_is_queued_as_stale() {
        let w = world();
        let newer = fixture("clickpost/delivered_selected_captured.json");
        let older = String::from_utf8(newer.clone())
            .unwrap()
            .replace("\"clickpost_status_code\":8", "\"clickpost_status_code\":6")
            .replacen("2023-02-07T18:09:00Z", "2023-02-07T09:00:00Z", 1);
        post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &newer).await;
        let (status, _, _) = post(
            &w,
            Carrier::Clickpost,
            &[auth(Carrier::Clickpost)],
            older.as_bytes(),
        )
        .await;
        assert_eq!(status, 200);
        let stale: Vec<bool> = w
            .queue
            .messages()
            .iter()
            .map(|m| {
                serde_json::from_str::<Value>(&m.body).unwrap()["is_stale"]
                    .as_bool()
                    .unwrap()
            })
            .collect();
        assert_eq!(stale, vec![false, true]);
    }

    /// Collects everything the JSON logger writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn no_credential_or_credential_digest_appears_in_any_log_line() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let w = world();
        for (carrier, name, _) in FIXTURES {
            post(&w, carrier, &[auth(carrier)], &fixture(name)).await;
            post(&w, carrier, &[auth(carrier)], &fixture(name)).await;
            post(
                &w,
                carrier,
                &[(auth(carrier).0, "wrong-secret-value")],
                &fixture(name),
            )
            .await;
        }
        post(
            &w,
            Carrier::Clickpost,
            &[auth(Carrier::Clickpost)],
            b"{not json",
        )
        .await;
        w.queue.set_unavailable(true);
        post(
            &w,
            Carrier::Shiprocket,
            &[auth(Carrier::Shiprocket)],
            &fixture("shiprocket/in_transit_official.json"),
        )
        .await;

        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(text.lines().count() > 20, "the logs were captured");
        for secret in [
            CLICKPOST_KEY,
            SHIPROCKET_KEY,
            SHIPWAY_KEY,
            "wrong-secret-value",
        ] {
            assert!(!text.contains(secret), "{secret} appears in the logs");
            let digest = Credential::new(secret).digest().to_hex();
            assert!(
                !text.contains(&digest),
                "the digest of {secret} appears in the logs"
            );
        }
        assert!(text.contains("key_hint"), "a 401 names the key by its hint");
    }
}

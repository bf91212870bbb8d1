//! API Gateway request → ingest → API Gateway response, through the HTTP edge `rms serve`
//! shares (`shared::http`).

use chrono::Utc;
use lambda_http::{Body, Error, Request, Response};
use shared::ingest::Ingest;
use shared::ports::{ConfigStore, Intake, Metrics};
use shared::Carrier;

/// Handles one notify request. Expected failures (401, 400, 413, 415, 503) are answers, not
/// errors: an `Err` here would make API Gateway answer a bare 502.
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
    let response = shared::http::handle(ingest, carrier, &parts, body.as_ref(), Utc::now()).await;
    Ok(response.map(Body::Text))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use serde_json::{json, Value};
    use shared::adapters::memory::{MemoryConfig, MemoryEvents, MemoryQueue, RecordingMetrics};
    use shared::auth::Credential;
    use shared::ingest::{IngestSettings, QueueThenClaim};
    use shared::ports::TenantAuth;
    use shared::{EventId, TenantId};

    use super::*;
    use crate::apigw;
    use crate::fixtures::{carrier_of, fixture, SAMPLES};
    use lambda_http::http::header::{CONTENT_TYPE, RETRY_AFTER};

    const CLICKPOST_KEY: &str = "cp-7e7cc4c4-webhook-key";
    const SHIPROCKET_KEY: &str = "sr-token-0042-field";
    const SHIPWAY_KEY: &str = "d60cdf34ebacf6cbf4e6080061c1ba1f";
    /// The tenant's key per carrier (Shipway's is the `hash` its classic fixtures carry). A carrier
    /// not listed gets a key of its own, so that adding one needs no change here.
    const KEYS: [(Carrier, &str); 3] = [
        (Carrier::Clickpost, CLICKPOST_KEY),
        (Carrier::Shiprocket, SHIPROCKET_KEY),
        (Carrier::Shipway, SHIPWAY_KEY),
    ];

    fn key_of(carrier: Carrier) -> &'static str {
        KEYS.iter()
            .find(|(c, _)| *c == carrier)
            .map_or("a-test-key-for-a-new-carrier", |(_, key)| *key)
    }

    type MemoryIngest =
        Ingest<MemoryConfig, QueueThenClaim<MemoryEvents, MemoryQueue>, RecordingMetrics>;

    struct World {
        ingest: MemoryIngest,
        config: MemoryConfig,
        events: MemoryEvents,
        queue: MemoryQueue,
        metrics: RecordingMetrics,
    }

    fn world() -> World {
        let config = MemoryConfig::default();
        let tenant = TenantAuth {
            tenant_id: TenantId::parse("acme").unwrap(),
            include_source: true,
            enabled: true,
        };
        for carrier in Carrier::ALL {
            config.add_credential(carrier, &Credential::new(key_of(carrier)), tenant.clone());
        }
        let events = MemoryEvents::default();
        let queue = MemoryQueue::default();
        let metrics = RecordingMetrics::default();
        World {
            ingest: Ingest::new(
                config.clone(),
                QueueThenClaim {
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

    fn auth(carrier: Carrier) -> (&'static str, &'static str) {
        (carrier.spec().key_header(), key_of(carrier))
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
        let carrier = Carrier::from_notify_path(req.uri().path()).unwrap();
        let response = handle(&w.ingest, carrier, req).await.unwrap();
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        (response.status().as_u16(), body, retry_after)
    }

    #[tokio::test]
    async fn every_fixture_is_accepted_and_queued_once_with_its_attributes() {
        let w = world();
        let mut expected_messages = 0;
        for name in SAMPLES {
            let carrier: Carrier = carrier_of(name).parse().unwrap();
            let events = shared::normalize(
                carrier,
                &fixture(name),
                &shared::NormalizeContext::new(
                    shared::TenantId::parse("acme").unwrap(),
                    Utc::now(),
                ),
            )
            .unwrap()
            .len();
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
                assert!(w.events.claim_token(&id).is_some(), "{name}");
            }
        }
        let messages = w.events.named_copies(w.queue.messages());
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
    async fn the_same_payload_again_is_a_duplicate_whose_copy_is_never_pushed() {
        let w = world();
        let body = fixture("clickpost/delivered_selected_captured.json");
        let (_, first, _) = post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &body).await;
        let (status, again, _) =
            post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &body).await;
        assert_eq!(status, 200);
        assert_eq!(again["status"], "duplicate");
        assert_eq!(again["event_ids"], first["event_ids"]);
        // Queue first: its copy was queued before its claim failed; the claim names the first.
        assert_eq!(w.queue.messages().len(), 2);
        assert_eq!(
            w.events.named_copies(w.queue.messages()),
            w.queue.messages()[..1]
        );
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
    async fn a_compressed_body_is_415_naming_its_encoding_and_nothing_is_stored() {
        let w = world();
        // A gzip header and a few bytes of deflate: API Gateway hands them over base64-encoded.
        let gzip = [
            0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xab, 0xae, 0x05,
        ];
        let json = fixture("clickpost/delivered_selected_captured.json");
        for carrier in Carrier::ALL {
            for (encoding, body) in [(None, &gzip[..]), (Some("gzip"), &json[..])] {
                let mut headers = vec![auth(carrier)];
                headers.extend(encoding.map(|e| ("content-encoding", e)));
                let (status, answer, _) = post(&w, carrier, &headers, body).await;
                assert_eq!(status, 415, "{carrier} {encoding:?}: {answer}");
                let error = answer["error"].as_str().unwrap();
                assert!(error.contains("compressed (gzip)"), "{error}");
                assert!(error.contains("send it uncompressed"), "{error}");
            }
        }
        assert!(w.queue.messages().is_empty());
        assert!(w.events.quarantined().is_empty());
        assert_eq!(
            w.metrics.total_where("Rejected", "Reason", "Compressed"),
            2 * Carrier::ALL.len() as u64
        );
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
    async fn a_queue_failure_is_503_with_nothing_claimed_so_the_retry_is_accepted() {
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
    /// event is on the queue, so it is accepted (the dispatcher would claim the copy if the write
    /// had not landed), and the carrier's re-send is a duplicate.
    #[tokio::test]
    async fn a_claim_whose_answer_was_lost_is_accepted_and_the_resend_is_a_duplicate() {
        let w = world();
        let body = fixture("clickpost/out_for_delivery_all_status.json");
        w.events.set_claims_lose_answers(true);
        let (status, answer, _) =
            post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &body).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some("accepted")),
            "{answer}"
        );
        w.events.set_claims_lose_answers(false);
        let (status, answer, _) =
            post(&w, Carrier::Clickpost, &[auth(Carrier::Clickpost)], &body).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some("duplicate"))
        );
        assert_eq!(w.events.named_copies(w.queue.messages()).len(), 1);
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
        for name in SAMPLES {
            let carrier: Carrier = carrier_of(name).parse().unwrap();
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

    // ---- The field-fact cases (docs/carriers.md §6): the same answers as `rms serve` gives in
    // cli/tests/field.rs, from one data file, tests/fixtures/field-cases.json.

    mod field_cases {
        include!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/support/field_cases.rs"
        ));
    }

    fn field_doc() -> Value {
        serde_json::from_slice(&fixture("field-cases.json")).unwrap()
    }

    fn field_cases() -> Vec<Value> {
        let doc = field_doc();
        // The world's tenant and keys are the ones the cases are written for.
        assert_eq!(doc["tenant"], "acme");
        for (carrier, key) in doc["keys"].as_object().unwrap() {
            assert_eq!(key_of(carrier.parse().unwrap()), key, "{carrier}");
        }
        doc["cases"].as_array().unwrap().clone()
    }

    fn case_carrier(case: &Value) -> Carrier {
        case["carrier"].as_str().unwrap().parse().unwrap()
    }

    fn case_body(case: &Value) -> Vec<u8> {
        field_cases::body(fixture, key_of(case_carrier(case)), case)
    }

    fn case_request(case: &Value) -> Request {
        let carrier = case_carrier(case);
        let key = key_of(carrier);
        let headers: Vec<(String, String)> = case["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, value)| (name.clone(), value.as_str().unwrap().replace("{key}", key)))
            .collect();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let query = case["query"].as_str().unwrap().replace("{key}", key);
        request(
            carrier,
            case["method"].as_str().unwrap(),
            &headers,
            &query,
            &case_body(case),
        )
    }

    async fn send_case(w: &World, case: &Value) -> (u16, Value) {
        let (status, body, _) = send(w, case_request(case)).await;
        field_cases::check_answer(case, status, &body);
        (status, body)
    }

    /// The queued events the dispatcher pushes: the copies their claims name (queue first: a
    /// duplicate's copy is queued too, and dropped).
    fn messages_json(w: &World) -> Vec<Value> {
        w.events
            .named_copies(w.queue.messages())
            .iter()
            .map(|m| serde_json::from_str(&m.body).unwrap())
            .collect()
    }

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[tokio::test]
    async fn the_field_cases_answer_as_listed() {
        let w = world();
        let cases = field_cases();
        let mut accepted = std::collections::HashSet::new();
        let mut refused_bodies = std::collections::HashSet::new();
        for case in &cases {
            let (status, body) = send_case(&w, case).await;
            if body["status"] == "accepted" {
                for id in body["event_ids"].as_array().unwrap() {
                    accepted.insert(id.as_str().unwrap().to_owned());
                }
            }
            if status == 400 {
                refused_bodies.insert(case_body(case));
            }
        }
        // Each accepted event queued once as the copy its claim names; nothing else (probes,
        // tests) queued, and a duplicate's copy never named.
        let queued: Vec<String> = w
            .events
            .named_copies(w.queue.messages())
            .into_iter()
            .map(|m| m.event_id)
            .collect();
        assert_eq!(queued.len(), accepted.len());
        assert_eq!(
            queued.into_iter().collect::<std::collections::HashSet<_>>(),
            accepted
        );
        // Every authenticated refusal quarantined, once per body; a 401 never.
        assert_eq!(w.events.quarantined().len(), refused_bodies.len());
        let shiprocket = &w.events.carrier_activity(&acme())[1];
        assert_eq!(shiprocket.carrier, "shiprocket");
        assert!(shiprocket.last_test_at.is_some(), "{shiprocket:?}");
    }

    #[tokio::test]
    async fn set_up_probes_store_queue_and_record_nothing() {
        let w = world();
        let probes: Vec<Value> = field_cases()
            .into_iter()
            .filter(|c| c["response"] == json!({"status": "ok"}))
            .collect();
        assert!(probes.len() >= 10, "{} probes", probes.len());
        for case in &probes {
            send_case(&w, case).await;
        }
        assert!(w.queue.messages().is_empty());
        assert!(w.events.quarantined().is_empty());
        for activity in w.events.carrier_activity(&acme()) {
            assert_eq!(
                (
                    activity.last_test_at,
                    activity.last_accepted_at,
                    activity.last_rejected_at
                ),
                (None, None, None),
                "{activity:?}"
            );
        }
        for metric in ["Accepted", "Duplicate", "Rejected"] {
            assert_eq!(w.metrics.total(metric), 0, "{metric}");
        }
    }

    /// Shiprocket's panel test body as the panel sends it now: `current_timestamp` (IST,
    /// `dd MM yyyy HH:mm:ss`) and `etd` set to the moment of sending.
    fn panel_test_sent_now() -> Vec<u8> {
        let now = Utc::now().with_timezone(&shared::time::ist());
        String::from_utf8(fixture("shiprocket/field_panel_test.json"))
            .unwrap()
            .replace(
                "27 11 2026 16:02:11",
                &now.format("%d %m %Y %H:%M:%S").to_string(),
            )
            .replace(
                "2026-11-27 16:02:11",
                &now.format("%Y-%m-%d %H:%M:%S").to_string(),
            )
            .into_bytes()
    }

    #[tokio::test]
    async fn the_panel_test_is_never_an_event_and_with_a_key_records_a_test() {
        let w = world();
        let cases = field_cases();
        send_case(
            &w,
            field_cases::named(&cases, "shiprocket: panel Test Webhook without a token"),
        )
        .await;
        send_case(
            &w,
            field_cases::named(
                &cases,
                "shiprocket: panel Test Webhook with a token no tenant has",
            ),
        )
        .await;
        assert_eq!(w.events.carrier_activity(&acme())[1].last_test_at, None);

        let before = Utc::now();
        send_case(
            &w,
            field_cases::named(
                &cases,
                "shiprocket: panel Test Webhook with the tenant's token",
            ),
        )
        .await;
        let first = w.events.carrier_activity(&acme())[1].clone();
        assert!(first.last_test_at.is_some_and(|t| t >= before), "{first:?}");
        assert_eq!(
            (first.last_accepted_at, first.last_rejected_at),
            (None, None)
        );

        // Each click re-sends it with a fresh `current_timestamp`: still a test, recorded again.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let (status, answer, _) = post(
            &w,
            Carrier::Shiprocket,
            &[("x-shiprocket-token", SHIPROCKET_KEY)],
            &panel_test_sent_now(),
        )
        .await;
        assert_eq!((status, answer), (200, json!({"status": "test"})));
        let again = w.events.carrier_activity(&acme())[1].clone();
        assert!(again.last_test_at > first.last_test_at, "{again:?}");
        // Never claimed, queued, quarantined or delivered.
        assert!(w.queue.messages().is_empty());
        assert!(w.events.quarantined().is_empty());
        assert_eq!(w.metrics.total("Accepted"), 0);
    }

    #[tokio::test]
    async fn a_dsqc_reverse_pickup_is_a_return_and_its_pii_is_never_logged() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let w = world();
        let cases = field_cases();
        send_case(
            &w,
            field_cases::named(
                &cases,
                "clickpost: doorstep-QC reverse pickup without is_rvp",
            ),
        )
        .await;
        let [event] = &messages_json(&w)[..] else {
            panic!("one event queued")
        };
        assert_eq!(event["shipment_type"], "return");
        assert_eq!(event["status"], "PICKED_UP");
        assert_eq!(event["remark"], "Reverse Pickup");
        assert_eq!(event["npr"], Value::Null);
        // The tenant gets the dsqc in `source`.
        assert_eq!(event["source"]["additional"]["dsqc"]["category"], "REV");

        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("event accepted"), "the logs were captured");
        for pii in [
            "Meera Iyengar",
            "9845012377",
            "HSR Layout",
            "X-Amz-Signature",
            "dsqc",
        ] {
            assert!(!text.contains(pii), "{pii} appears in the logs");
        }
    }

    #[tokio::test]
    async fn a_shiprocket_status_no_scan_carries_is_one_event_with_nothing_borrowed() {
        let w = world();
        let cases = field_cases();
        let (_, first) = send_case(
            &w,
            field_cases::named(&cases, "shiprocket: RTO INITIATED that no scan carries"),
        )
        .await;
        let (_, again) = send_case(
            &w,
            field_cases::named(
                &cases,
                "shiprocket: the same RTO INITIATED re-sent with a new current_timestamp",
            ),
        )
        .await;
        assert_eq!(again["event_ids"], first["event_ids"]);
        let [event] = &messages_json(&w)[..] else {
            panic!("delivered once")
        };
        assert_eq!(event["event_id"], first["event_ids"][0]);
        field_cases::assert_rto_initiated_without_a_scan(event);
    }

    #[tokio::test]
    async fn clickpost_return_requests_are_read_in_ist_and_npr_is_carried() {
        let w = world();
        let cases = field_cases();
        for name in [
            "clickpost: Return Request Approved (102), time in IST",
            "clickpost: pickup failed with npr code and reason",
        ] {
            send_case(&w, field_cases::named(&cases, name)).await;
        }
        // An explicit offset wins over IST.
        let offset = String::from_utf8(fixture("clickpost/field_return_approved_ist.json"))
            .unwrap()
            .replace("2024-08-19 07:30:08.396840", "2024-08-19T07:30:08+01:00");
        let (status, _) = {
            let (s, b, _) = post(
                &w,
                Carrier::Clickpost,
                &[auth(Carrier::Clickpost)],
                offset.as_bytes(),
            )
            .await;
            (s, b)
        };
        assert_eq!(status, 200);
        let events = messages_json(&w);
        let [approved, npr, offset] = &events[..] else {
            panic!("three events: {events:?}")
        };
        assert_eq!(approved["status"], "RETURN_APPROVED");
        assert_eq!(approved["event_time"], "2024-08-19T02:00:08.396840Z");
        assert_eq!(approved["npr"], Value::Null);
        assert_eq!(npr["status"], "PICKUP_FAILED");
        assert_eq!(npr["event_time"], "2024-04-11T11:35:44Z");
        assert_eq!(
            npr["npr"],
            json!({"code": "2", "reason": "Customer not available"})
        );
        assert_eq!(offset["event_time"], "2024-08-19T06:30:08Z");
    }

    #[tokio::test]
    async fn implausible_input_is_refused_naming_the_field_and_quarantined() {
        let w = world();
        let cases = field_cases();
        for name in [
            "clickpost: an event time in 2100",
            "clickpost: an event time before 2000",
            "clickpost: an event time in 2100 without a key",
            "clickpost: JSON nested 100,000 levels",
            "shiprocket: JSON nested 100,000 levels",
            "shipway: JSON nested 100,000 levels",
            "shipway: JSON nested 100,000 levels without a key",
        ] {
            send_case(&w, field_cases::named(&cases, name)).await;
        }
        let mut quarantined = w.events.quarantined();
        quarantined.sort_by(|a, b| a.reason.cmp(&b.reason));
        let reasons: Vec<(&str, u64)> = quarantined
            .iter()
            .map(|q| (q.reason.as_str(), q.times))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (
                    "field `timestamp` is not a plausible event time: \"1999-12-31T10:00:00Z\": it is before 2000-01-01",
                    1
                ),
                (
                    "field `timestamp` is not a plausible event time: \"2100-01-01T10:00:00Z\": it is more than a day after the body arrived",
                    1
                ),
                // One body (the same bytes) from three carriers' paths: kept once, counted thrice;
                // the unauthenticated fourth is not counted.
                (
                    "the body nests JSON deeper than 64 levels; no carrier payload does",
                    3
                ),
            ]
        );
        assert!(w.queue.messages().is_empty());
        // The world still answers.
        let (status, _, _) = post(
            &w,
            Carrier::Clickpost,
            &[auth(Carrier::Clickpost)],
            &fixture("clickpost/delivered_selected_captured.json"),
        )
        .await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn a_shipway_hash_is_in_no_delivered_event_and_no_quarantined_body() {
        let w = world();
        let cases = field_cases();
        for name in [
            "shipway: classic body authenticated by its hash",
            "shipway: classic body with a hash and a bad status_time",
        ] {
            send_case(&w, field_cases::named(&cases, name)).await;
        }
        let messages = w.queue.messages();
        let [message] = &messages[..] else {
            panic!("one event queued")
        };
        assert!(!message.body.contains(SHIPWAY_KEY), "{}", message.body);
        let event: Value = serde_json::from_str(&message.body).unwrap();
        assert_eq!(event["awb"], "5512094470318");
        assert_eq!(event["source"].get("hash"), None);

        let [kept] = &w.events.quarantined()[..] else {
            panic!("one body quarantined")
        };
        let body = String::from_utf8(kept.body.clone()).unwrap();
        assert!(!body.contains(SHIPWAY_KEY), "{body}");
        assert!(!body.contains("\"hash\""), "{body}");
        let original =
            String::from_utf8(fixture("shipway/field_classic_hash_rejected.json")).unwrap();
        assert!(original.contains(SHIPWAY_KEY));
        // The rest of the body is kept as sent.
        let value: Value = serde_json::from_str(&body).unwrap();
        let mut expected: Value = serde_json::from_str(&original).unwrap();
        expected.as_object_mut().unwrap().remove("hash");
        assert_eq!(value, expected);
        assert!(kept
            .reason
            .starts_with("field `status_feed[0].status_time` is invalid"));
    }
}

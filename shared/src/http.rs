//! The notify paths' HTTP edge, written once for every transport (the API Gateway Lambdas and
//! `rms serve`, both through [`handle`]): an HTTP request becomes an [`Inbound`], and an
//! [`IngestOutcome`] becomes the answer the carrier sees, through the one table in [`reply`] (and
//! the edge's own refusal of a compressed body, [`compressed`], below it), so the answers cannot
//! drift apart. 5xx bodies say what to do, never what broke inside.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::info;

use crate::ingest::{AuthFailure, Inbound, Ingest, IngestOutcome};
use crate::model::Carrier;
use crate::ports::{ConfigStore, Intake, Metrics};

/// Answers a carrier's request. A compressed body is refused here, before ingest: ingest reads a
/// body as sent (it finds keys in it, tells probes from events, quarantines it), so a gzip body
/// would only be quarantined as garbage. Anything else is ingest's to answer.
pub async fn handle<C, S, M>(
    ingest: &Ingest<C, S, M>,
    carrier: Carrier,
    parts: &http::request::Parts,
    body: &[u8],
    now: DateTime<Utc>,
) -> http::Response<String>
where
    C: ConfigStore,
    S: Intake,
    M: Metrics,
{
    if let Some(encoding) = compression(parts, body) {
        info!(carrier = %carrier, encoding = %encoding, "compressed body refused");
        let carrier_name = [("Carrier", carrier.as_str())];
        ingest.metrics.count("Received", 1, &carrier_name);
        ingest.metrics.count(
            "Rejected",
            1,
            &[("Carrier", carrier.as_str()), ("Reason", "Compressed")],
        );
        return into_response(compressed(&encoding));
    }
    let outcome = ingest.handle(&inbound(carrier, parts, body), now).await;
    response(carrier, &outcome)
}

/// gzip's first two bytes (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The coding a POST's body is in when it is not sent as is: its `Content-Encoding` other than
/// `identity`, or `gzip` for a body that starts with gzip's magic bytes whatever the headers say.
/// `None` for a body to read as sent, and for a request without a body (a probe).
pub fn compression(parts: &http::request::Parts, body: &[u8]) -> Option<String> {
    if !parts.method.as_str().eq_ignore_ascii_case("POST") || body.is_empty() {
        return None;
    }
    let declared: Vec<String> = parts
        .headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .flat_map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .split(',')
                .map(|coding| coding.trim().to_ascii_lowercase())
                .filter(|coding| !coding.is_empty() && coding != "identity")
                .collect::<Vec<_>>()
        })
        .collect();
    if !declared.is_empty() {
        // The answer names it; a header of any length must not make the answer as long.
        return Some(declared.join(", ").chars().take(64).collect());
    }
    body.starts_with(&GZIP_MAGIC).then(|| "gzip".to_owned())
}

/// What ingest reads of a carrier's HTTP request: method, headers (names in lowercase; a value
/// that is not UTF-8 is read lossily), the query string's parameters, and the body.
pub fn inbound(carrier: Carrier, parts: &http::request::Parts, body: &[u8]) -> Inbound {
    let headers: HashMap<String, String> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    Inbound {
        carrier,
        method: parts.method.as_str().to_owned(),
        headers,
        query,
        body: body.to_vec(),
    }
}

/// The HTTP answer for an outcome: status, `content-type: application/json`, `Retry-After` on a
/// 503, and the JSON body.
pub fn response(carrier: Carrier, outcome: &IngestOutcome) -> http::Response<String> {
    into_response(reply(carrier, outcome))
}

fn into_response(answer: Reply) -> http::Response<String> {
    let mut response = http::Response::new(answer.body);
    *response.status_mut() = http::StatusCode::from_u16(answer.status)
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Some(seconds) = answer.retry_after {
        headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
    }
    if answer.status == 415 {
        // The codings a body may be in (RFC 9110, 15.5.16): none.
        headers.insert(
            http::header::ACCEPT_ENCODING,
            http::HeaderValue::from_static("identity"),
        );
    }
    response
}

/// An answer to a carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// JSON.
    pub body: String,
    /// Seconds, for a `Retry-After` header on 503.
    pub retry_after: Option<u32>,
}

/// Seconds a carrier is asked to wait before retrying a 503.
const RETRY_AFTER_SECONDS: u32 = 5;

pub fn reply(carrier: Carrier, outcome: &IngestOutcome) -> Reply {
    let (status, body) = match outcome {
        IngestOutcome::Probe => (200, json!({"status": "ok"})),
        IngestOutcome::PanelTest => (200, json!({"status": "test"})),
        IngestOutcome::Accepted { queued, duplicates } => {
            if queued.is_empty() && !duplicates.is_empty() {
                (200, json!({"status": "duplicate", "event_ids": duplicates}))
            } else if queued.is_empty() {
                // An empty Shipway batch: a ping.
                (200, json!({"status": "ok", "event_ids": []}))
            } else {
                (
                    200,
                    json!({"status": "accepted", "event_ids": queued, "duplicates": duplicates}),
                )
            }
        }
        IngestOutcome::Unauthorized(AuthFailure::Missing) => (
            401,
            json!({"error": format!("missing credential: {}", carrier.spec().missing_key_hint)}),
        ),
        IngestOutcome::Unauthorized(AuthFailure::Disabled) => (
            401,
            json!({"error": format!("this {carrier} key's tenant is disabled: its updates are refused until the RMS operator enables the tenant again")}),
        ),
        IngestOutcome::Unauthorized(AuthFailure::Unknown) => (
            401,
            json!({"error": format!("unknown credential: no tenant has this {carrier} key; check the key configured on the {carrier} panel")}),
        ),
        IngestOutcome::Invalid { reason } => (400, json!({"error": reason})),
        IngestOutcome::TooLarge { size, limit } => (
            413,
            json!({"error": format!("the body is {size} bytes; the limit is {limit} bytes")}),
        ),
        IngestOutcome::MethodNotAllowed => (
            405,
            json!({"error": "use POST to send tracking updates (GET is a connectivity check)"}),
        ),
        IngestOutcome::Unavailable => (
            503,
            json!({"error": "temporarily unavailable; nothing was accepted, retry later"}),
        ),
        IngestOutcome::InFlight => (
            503,
            json!({"error": "this update is being accepted by another request; retry shortly"}),
        ),
    };
    Reply {
        status,
        body: body.to_string(),
        retry_after: (status == 503).then_some(RETRY_AFTER_SECONDS),
    }
}

/// The answer to a compressed body ([`compression`]); nothing of it was read or kept.
pub fn compressed(encoding: &str) -> Reply {
    Reply {
        status: 415,
        body: json!({"error": format!(
            "the body is compressed ({encoding}); nothing was accepted: send it uncompressed, \
             without a Content-Encoding header"
        )})
        .to_string(),
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventId;

    #[test]
    fn a_batch_of_only_duplicates_is_a_duplicate() {
        let id = serde_json::from_str::<EventId>("\"evt_1\"").unwrap();
        let r = reply(
            Carrier::Shipway,
            &IngestOutcome::Accepted {
                queued: vec![],
                duplicates: vec![id],
            },
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.body, r#"{"event_ids":["evt_1"],"status":"duplicate"}"#);
    }

    #[test]
    fn unavailable_asks_for_a_retry_without_internals() {
        let r = reply(Carrier::Clickpost, &IngestOutcome::Unavailable);
        assert_eq!((r.status, r.retry_after), (503, Some(5)));
        assert!(!r.body.contains("DynamoDB") && !r.body.contains("SQS"));
    }

    #[test]
    fn a_request_becomes_an_inbound_with_lowercase_headers_and_decoded_query() {
        let request = http::Request::builder()
            .method("POST")
            .uri("/rms/in/api/shipway/notify?key=a%20b&x=1")
            .header("X-Api-Key", "k")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let inbound = inbound(Carrier::Shipway, &parts, b"{}");
        assert_eq!(inbound.method, "POST");
        assert_eq!(inbound.headers["x-api-key"], "k");
        assert_eq!(inbound.query["key"], "a b");
        assert_eq!(inbound.body, b"{}");
    }

    #[test]
    fn the_response_carries_the_json_type_and_a_retry_after_on_503() {
        let r = response(Carrier::Clickpost, &IngestOutcome::Unavailable);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.headers()["retry-after"], "5");
        let r = response(Carrier::Shiprocket, &IngestOutcome::PanelTest);
        assert_eq!(
            (r.status().as_u16(), r.body().as_str()),
            (200, r#"{"status":"test"}"#)
        );
    }

    fn post(headers: &[(&str, &str)]) -> http::request::Parts {
        let mut request = http::Request::builder()
            .method("POST")
            .uri("/rms/in/api/clickpost/notify");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    const GZIP_BODY: &[u8] = &[0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03];

    #[test]
    fn a_content_encoding_or_gzip_magic_bytes_make_a_body_compressed() {
        let json = b"{\"awb\":\"1\"}".as_slice();
        type Headers<'a> = &'a [(&'a str, &'a str)];
        let cases: [(Headers, &[u8], Option<&str>); 8] = [
            (&[("Content-Encoding", "gzip")], json, Some("gzip")),
            (&[("Content-Encoding", "BR")], json, Some("br")),
            (
                &[("Content-Encoding", "identity, deflate")],
                json,
                Some("deflate"),
            ),
            (&[], GZIP_BODY, Some("gzip")),
            (&[("Content-Encoding", "identity")], GZIP_BODY, Some("gzip")),
            (&[("Content-Encoding", "Identity")], json, None),
            (&[("Content-Encoding", "gzip")], b"", None),
            (&[], json, None),
        ];
        for (headers, body, expected) in cases {
            assert_eq!(
                compression(&post(headers), body).as_deref(),
                expected,
                "{headers:?}"
            );
        }
        let get = http::Request::get("/rms/in/api/clickpost/notify")
            .header("Content-Encoding", "gzip")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert_eq!(compression(&get, GZIP_BODY), None, "a GET is a probe");
        let long = "x".repeat(10_000);
        let named = compression(&post(&[("Content-Encoding", &long)]), json).unwrap();
        assert_eq!(named.len(), 64);
    }

    #[test]
    fn a_compressed_body_is_415_naming_the_encoding_and_nothing_is_stored() {
        use crate::adapters::memory::{MemoryConfig, MemoryEvents, MemoryQueue, RecordingMetrics};
        use crate::ingest::{IngestSettings, QueueThenClaim};

        // A tenant's key comes with each body: were it read, it would be quarantined.
        let config = MemoryConfig::default();
        let tenant = crate::ports::TenantAuth {
            tenant_id: crate::model::TenantId::parse("acme").unwrap(),
            include_source: true,
            enabled: true,
        };
        config.add_credential(
            Carrier::Clickpost,
            &crate::auth::Credential::new("k"),
            tenant,
        );
        let events = MemoryEvents::default();
        let queue = MemoryQueue::default();
        let metrics = RecordingMetrics::default();
        let ingest = Ingest::new(
            config,
            QueueThenClaim {
                events: events.clone(),
                queue: queue.clone(),
            },
            metrics.clone(),
            IngestSettings::default(),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for (headers, body) in [
            (
                &[("webhook_key", "k"), ("Content-Encoding", "gzip")][..],
                b"{\"awb\":\"1\"}".as_slice(),
            ),
            (&[("webhook_key", "k")], GZIP_BODY),
        ] {
            let r = runtime.block_on(handle(
                &ingest,
                Carrier::Clickpost,
                &post(headers),
                body,
                Utc::now(),
            ));
            assert_eq!(r.status(), 415);
            assert_eq!(r.headers()["content-type"], "application/json");
            assert_eq!(r.headers()["accept-encoding"], "identity");
            let answer: serde_json::Value = serde_json::from_str(r.body()).unwrap();
            let error = answer["error"].as_str().unwrap();
            assert!(
                error.contains("(gzip)") && error.contains("send it uncompressed"),
                "{error}"
            );
        }
        assert_eq!(metrics.total_where("Rejected", "Reason", "Compressed"), 2);
        assert!(queue.messages().is_empty() && events.quarantined().is_empty());
    }

    #[test]
    fn a_missing_key_says_where_the_key_goes() {
        let r = reply(
            Carrier::Shiprocket,
            &IngestOutcome::Unauthorized(AuthFailure::Missing),
        );
        assert_eq!(r.status, 401);
        assert!(r.body.contains("x-api-key"));
    }
}

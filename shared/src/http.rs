//! The notify paths' HTTP edge, written once for every transport (the API Gateway Lambdas and
//! `rms serve`): an HTTP request becomes an [`Inbound`], and an [`IngestOutcome`] becomes the
//! answer the carrier sees, through the one table in [`reply`], so the answers cannot drift apart.
//! 5xx bodies say what to do, never what broke inside.

use std::collections::HashMap;

use serde_json::json;

use crate::ingest::{AuthFailure, Inbound, IngestOutcome};
use crate::model::Carrier;

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
    let answer = reply(carrier, outcome);
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

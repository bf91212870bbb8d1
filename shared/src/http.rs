//! The one table from ingest outcomes to what the carrier sees: an HTTP status and a small JSON
//! body. Every transport (API Gateway, `rms serve`) answers through here, so the answers cannot
//! drift apart. 5xx bodies say what to do, never what broke inside.

use serde_json::json;

use crate::ingest::{AuthFailure, IngestOutcome};
use crate::model::Carrier;

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
            json!({"error": format!("missing credential: {}", where_the_key_goes(carrier))}),
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

fn where_the_key_goes(carrier: Carrier) -> &'static str {
    match carrier {
        Carrier::Clickpost => "send the webhook key in the `webhook_key` header (or `Authorization`)",
        Carrier::Shiprocket => "send the token in the `x-api-key` header",
        Carrier::Shipway => {
            "send the key in the `x-api-key` header, the `key` query parameter, or the body's `hash`"
        }
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
    fn a_missing_key_says_where_the_key_goes() {
        let r = reply(
            Carrier::Shiprocket,
            &IngestOutcome::Unauthorized(AuthFailure::Missing),
        );
        assert_eq!(r.status, 401);
        assert!(r.body.contains("x-api-key"));
    }
}

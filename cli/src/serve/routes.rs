//! The HTTP routes of `rms serve`: the carrier notify paths (same paths and answers as API
//! Gateway), the admin API, and the demo receiver.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use shared::http::reply;
use shared::ingest::Inbound;
use shared::Carrier;

use super::{demo, App};

/// Above the ingest limit (256 KiB), so that ingest itself answers 413 with its JSON reason.
const TRANSPORT_BODY_LIMIT: usize = 1024 * 1024;

pub fn router(app: Arc<App>, demo_receiver: bool) -> Router {
    let mut router = Router::new()
        .route("/rms/in/api/clickpost/notify", any(clickpost))
        .route("/rms/in/api/st/notify", any(shiprocket))
        .route("/rms/in/api/shipway/notify", any(shipway))
        .route("/admin/health", get(health))
        .route("/admin/dlq", get(dead_letters))
        .route("/admin/dlq/redrive", post(redrive))
        .route("/admin/deliveries", get(deliveries));
    if demo_receiver {
        router = router.route(demo::RECEIVER_PATH, post(demo::receive));
    }
    router
        .layer(DefaultBodyLimit::max(TRANSPORT_BODY_LIMIT))
        .with_state(app)
}

async fn clickpost(
    state: State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    query: Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    notify(state, Carrier::Clickpost, method, headers, query, body).await
}

async fn shiprocket(
    state: State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    query: Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    notify(state, Carrier::Shiprocket, method, headers, query, body).await
}

async fn shipway(
    state: State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    query: Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    notify(state, Carrier::Shipway, method, headers, query, body).await
}

async fn notify(
    State(app): State<Arc<App>>,
    carrier: Carrier,
    method: Method,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let inbound = Inbound {
        carrier,
        method: method.as_str().to_owned(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        query,
        body: body.to_vec(),
    };
    let outcome = app.ingest.handle(&inbound, Utc::now()).await;
    let answer = reply(carrier, &outcome);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        answer.body,
    )
        .into_response();
    if let Some(seconds) = answer.retry_after {
        if let Ok(value) = seconds.to_string().parse() {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

async fn health(State(app): State<Arc<App>>) -> Response {
    match app.store.queue_depth() {
        Ok((ready, dead)) => {
            Json(json!({"status": "ok", "queued": ready, "dead_letters": dead})).into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the database is unavailable"})),
        )
            .into_response(),
    }
}

async fn dead_letters(State(app): State<Arc<App>>) -> Response {
    match app.store.dead_letters() {
        Ok(list) => Json(
            list.iter()
                .map(|d| json!({"id": d.id, "event_id": d.event_id, "tenant_id": d.tenant_id, "reason": d.reason, "attempts": d.receive_count, "enqueued_at": d.enqueued_at}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "the database is unavailable"}))).into_response(),
    }
}

#[derive(Deserialize)]
struct RedriveRequest {
    /// Dead-letter ids; absent means all.
    ids: Option<Vec<i64>>,
}

async fn redrive(State(app): State<Arc<App>>, body: Option<Json<RedriveRequest>>) -> Response {
    let ids = body.and_then(|Json(r)| r.ids);
    match app.store.redrive(ids.as_deref(), Utc::now()) {
        Ok(n) => Json(json!({"redriven": n})).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the database is unavailable"})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct DeliveriesQuery {
    tenant: String,
    awb: String,
}

async fn deliveries(
    State(app): State<Arc<App>>,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "give both query parameters: tenant and awb"})),
        )
            .into_response();
    };
    match app.store.attempts(&q.tenant, &q.awb) {
        Ok(attempts) => Json(
            attempts
                .iter()
                .map(|a| json!({"event_id": a.event_id, "status": a.status, "attempt": a.attempt, "outcome": a.outcome.as_str(), "http_status": a.http_status, "latency_ms": a.latency_ms, "error": a.error, "at": a.at}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "the database is unavailable"}))).into_response(),
    }
}

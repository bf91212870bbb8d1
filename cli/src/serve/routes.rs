//! The HTTP routes of `rms serve`: the carrier notify paths (same paths and answers as API
//! Gateway), the admin API (the `admin-api` router, as on AWS) with a health probe, and the demo
//! receiver.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::json;
use shared::auth::Credential;
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
        .route("/admin/health", get(health));
    if demo_receiver {
        router = router.route(demo::RECEIVER_PATH, post(demo::receive));
    }
    let mut admin = admin_api::router(app.admin.clone());
    if let Some(token) = app.config.admin_token.clone() {
        let expected = Credential::new(format!("Bearer {}", token.expose())).digest();
        admin = admin.layer(middleware::from_fn(move |request: Request, next: Next| {
            // Digests are compared, so the comparison's time says nothing about the token.
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| Credential::new(String::from_utf8_lossy(v.as_bytes())).digest());
            let allowed = presented.is_some_and(|p| p == expected);
            async move {
                if allowed {
                    next.run(request).await
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        Json(json!({"error": "the admin API needs Authorization: Bearer <admin_token>"})),
                    )
                        .into_response()
                }
            }
        }));
    }
    router
        .layer(DefaultBodyLimit::max(TRANSPORT_BODY_LIMIT))
        .with_state(app)
        .merge(admin)
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

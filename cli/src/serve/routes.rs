//! The HTTP routes of `rms serve`: the carrier notify paths (same paths and answers as API
//! Gateway), the admin API (the `admin-api` router, as on AWS) with a health probe, and the demo
//! receiver.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::json;
use shared::auth::Credential;
use shared::Carrier;

use super::{demo, App};

/// Above the ingest limit (256 KiB), so that ingest itself answers 413 with its JSON reason.
const TRANSPORT_BODY_LIMIT: usize = 1024 * 1024;

pub fn router(app: Arc<App>, demo_receiver: bool) -> Router {
    let mut router = Router::new().route("/admin/health", get(health));
    for carrier in Carrier::ALL {
        router = router.route(
            carrier.spec().notify_path,
            any(move |state: State<Arc<App>>, request: Request| notify(state, carrier, request)),
        );
    }
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

/// A carrier's notify path: the same edge (`shared::http`) and answers as the Lambdas.
async fn notify(State(app): State<Arc<App>>, carrier: Carrier, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, TRANSPORT_BODY_LIMIT).await {
        Ok(body) => body,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(json!({"error": format!("the body is over {TRANSPORT_BODY_LIMIT} bytes")})),
            )
                .into_response()
        }
    };
    let inbound = shared::http::inbound(carrier, &parts, &body);
    let outcome = app.ingest.handle(&inbound, Utc::now()).await;
    shared::http::response(carrier, &outcome).into_response()
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

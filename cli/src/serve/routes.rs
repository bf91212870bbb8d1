//! The HTTP routes of `rms serve`: the carrier notify paths (same paths and answers as API
//! Gateway), the admin API (the `admin-api` router, as on AWS) with a health probe, the demo
//! receiver, and the operator console (`/console`, HTML). Every error answer outside the console
//! is JSON ([`json_errors`]).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::json;
use shared::auth::Credential;
use shared::Carrier;

use super::server::BodyDeadline;
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
    // The console answers in HTML, with its own limits and headers: merged outside `json_errors`.
    let console = crate::console::router(Arc::new(crate::console::Console::new(
        app.admin.clone(),
        crate::console::Gate::for_admin_token(app.config.admin_token.as_ref().map(|t| t.expose())),
        crate::console::NotifyBase::RequestHost,
    )));
    router
        .layer(DefaultBodyLimit::max(TRANSPORT_BODY_LIMIT))
        .with_state(app)
        .merge(admin)
        .layer(middleware::from_fn(json_errors))
        .merge(console)
}

/// A carrier's notify path: the same edge (`shared::http`) and answers as the Lambdas.
async fn notify(State(app): State<Arc<App>>, carrier: Carrier, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, TRANSPORT_BODY_LIMIT).await else {
        // Over the limit, or the body stopped arriving: [`json_errors`] answers 408 then.
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    shared::http::handle(&app.ingest, carrier, &parts, &body, Utc::now())
        .await
        .into_response()
}

/// Every error answer is JSON. An error response that is not JSON yet (the router's 405, a 413
/// of the transport limit, axum's own rejections) gets `{"error": ...}` from [`error_message`],
/// its headers (`Allow`, `Retry-After`) kept. A request whose body missed
/// `server.body_timeout` is answered 408, whatever its handler made of the failed read, and its
/// connection closed: the rest of the body may still be on its way.
async fn json_errors(request: Request, next: Next) -> Response {
    let deadline = request.extensions().get::<BodyDeadline>().cloned();
    let response = next.run(request).await;
    if deadline.is_some_and(|d| d.passed()) {
        let mut response = error_response(StatusCode::REQUEST_TIMEOUT);
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let (_, body) = error_response(status).into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, body)
}

fn error_response(status: StatusCode) -> Response {
    (status, Json(json!({"error": error_message(status)}))).into_response()
}

/// What was wrong and what to do, for the error statuses `rms serve` answers without a JSON body
/// of a handler's own.
fn error_message(status: StatusCode) -> String {
    match status {
        StatusCode::BAD_REQUEST => {
            "the request is not valid for this path; check its headers and body".to_owned()
        }
        StatusCode::NOT_FOUND => format!(
            "no such path; carriers post to {}, and the admin API is under /admin",
            Carrier::ALL.map(|c| c.spec().notify_path).join(", ")
        ),
        StatusCode::METHOD_NOT_ALLOWED => {
            "this path does not take this method; the Allow header lists the ones it takes"
                .to_owned()
        }
        StatusCode::REQUEST_TIMEOUT => {
            "the request body arrived too slowly (server.body_timeout); \
             send it again, in one go"
                .to_owned()
        }
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the body is over {TRANSPORT_BODY_LIMIT} bytes; a carrier's update must be at most {} \
             bytes",
            shared::ingest::IngestSettings::default().max_body_bytes
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "this body's type or encoding is not taken; send JSON, uncompressed".to_owned()
        }
        other => other
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_owned(),
    }
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let silent = super::silence::silent_carriers(&app, Utc::now()).await;
    match (app.store.queue_depth(), silent) {
        (Ok((ready, dead)), Ok(silent)) => Json(json!({
            "status": "ok",
            // What a 200 means here: on stable storage (`fsync`) or with the OS (`os`).
            "durability": app.store.durability().as_str(),
            "queued": ready,
            "dead_letters": dead,
            "silent_carriers": silent,
        }))
        .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the database is unavailable"})),
        )
            .into_response(),
    }
}

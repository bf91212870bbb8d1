//! The admin API over HTTP: one axum router, served by the `admin-api` Lambda (behind an
//! IAM-authorised API Gateway route) and by `rms serve`. The operations are `shared::admin`'s;
//! this module maps requests to them and `AdminError`s to status codes, in one place.
//! The contract is `docs/openapi.yaml`.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::admin::{
    Admin, AdminError, AdminStore, PullUpdate, PushUpdate, QuarantineQuery, QuarantineSelection,
    Selection,
};
use shared::ingest::Reingest;
use shared::ports::Pusher;
use tracing::error;

/// The most dead letters one listing returns.
pub const MAX_LIST: usize = 1000;

/// Every admin route, under `/admin`.
pub fn router<S, P, R>(admin: Arc<Admin<S, P, R>>) -> Router
where
    S: AdminStore + 'static,
    P: Pusher + 'static,
    R: Reingest + 'static,
{
    Router::new()
        .route("/admin/tenants", get(list_tenants).post(create_tenant))
        .route(
            "/admin/tenants/{tenant}",
            get(get_tenant).patch(update_tenant),
        )
        .route("/admin/tenants/{tenant}/keys", get(list_keys))
        .route("/admin/tenants/{tenant}/keys/{carrier}", post(add_key))
        .route(
            "/admin/tenants/{tenant}/keys/{carrier}/{key_id}",
            delete(revoke_key),
        )
        .route("/admin/tenants/{tenant}/push", get(get_push).put(set_push))
        .route("/admin/tenants/{tenant}/push/test", post(test_push))
        .route("/admin/tenants/{tenant}/pull", get(list_pull))
        .route(
            "/admin/tenants/{tenant}/pull/{carrier}",
            put(set_pull).delete(remove_pull),
        )
        .route("/admin/tenants/{tenant}/deliveries", get(deliveries))
        .route("/admin/tenants/{tenant}/replay", post(replay))
        .route("/admin/dead-letters", get(dead_letters))
        .route("/admin/dead-letters/redrive", post(redrive))
        .route("/admin/quarantine", get(quarantine))
        .route(
            "/admin/tenants/{tenant}/quarantine/{id}",
            get(quarantined_body),
        )
        .route("/admin/quarantine/replay", post(replay_quarantined))
        .route("/admin/tenants/{tenant}/carriers", get(carriers))
        .route("/admin/tenants/{tenant}/circuit", get(circuit))
        .fallback(not_found)
        .with_state(admin)
}

type AppState<S, P, R> = State<Arc<Admin<S, P, R>>>;

/// An answer: JSON with a status, or an error as `{"error": ..., "field": ...}`.
struct Answer(Response);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        self.0
    }
}

impl From<AdminError> for Answer {
    fn from(e: AdminError) -> Self {
        let (status, body) = match &e {
            AdminError::NotFound(m) => (StatusCode::NOT_FOUND, json!({"error": m})),
            AdminError::Invalid { field, message } => (
                StatusCode::BAD_REQUEST,
                json!({"error": format!("{field}: {message}"), "field": field}),
            ),
            AdminError::Conflict(m) => (StatusCode::CONFLICT, json!({"error": m})),
            AdminError::Unavailable(u) => {
                error!(error = %u, "admin operation failed: store unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "a store is unavailable; try again shortly"}),
                )
            }
        };
        Answer((status, Json(body)).into_response())
    }
}

fn ok<T: serde::Serialize>(status: StatusCode, value: T) -> Answer {
    Answer((status, Json(value)).into_response())
}

/// The request body as `T`, or why it is not one. Only a JSON object is taken: serde would also
/// read an array into a struct, field by position, which no client means.
fn body<T: DeserializeOwned>(body: Result<Json<Value>, JsonRejection>) -> Result<T, String> {
    let Json(value) = body.map_err(|r| r.body_text())?;
    if !value.is_object() {
        return Err("expected a JSON object".to_owned());
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Like [`body`], but no body at all (no content type) is `T::default()`.
fn optional_body<T: DeserializeOwned + Default>(
    given: Result<Json<Value>, JsonRejection>,
) -> Result<T, String> {
    match given {
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        other => body(other),
    }
}

fn invalid_body(reason: &str) -> Answer {
    Answer(
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": format!("the request body is not valid: {reason}")})),
        )
            .into_response(),
    )
}

fn bad_query(rejection: QueryRejection) -> Answer {
    Answer(
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": format!("the query is not valid: {}", rejection.body_text())})),
        )
            .into_response(),
    )
}

/// Every path nothing else answers (the admin API's, and `rms serve`'s whole router): a path
/// under `/admin` points at the API's description, any other at the carriers' notify paths (a
/// carrier panel's URL with a typo lands here).
async fn not_found(uri: axum::http::Uri) -> Answer {
    let message = if uri.path().contains("/admin") {
        "no such route; the admin API is described in docs/openapi.yaml".to_owned()
    } else {
        format!(
            "no such path; carriers post to {}, and the admin API is under /admin",
            shared::Carrier::ALL
                .map(|c| c.spec().notify_path)
                .join(", ")
        )
    };
    Answer((StatusCode::NOT_FOUND, Json(json!({ "error": message }))).into_response())
}

async fn list_tenants<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
) -> Answer {
    match admin.tenants().await {
        Ok(tenants) => ok(StatusCode::OK, tenants),
        Err(e) => e.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    id: String,
    include_source: Option<bool>,
}

async fn create_tenant<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    given: Result<Json<Value>, JsonRejection>,
) -> Answer {
    let body: NewTenant = match body(given) {
        Ok(b) => b,
        Err(reason) => return invalid_body(&reason),
    };
    match admin
        .create_tenant(&body.id, body.include_source, Utc::now())
        .await
    {
        Ok(tenant) => ok(StatusCode::CREATED, tenant),
        Err(e) => e.into(),
    }
}

async fn get_tenant<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
) -> Answer {
    match admin.tenant(&tenant).await {
        Ok(tenant) => ok(StatusCode::OK, tenant),
        Err(e) => e.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantChange {
    enabled: Option<bool>,
    include_source: Option<bool>,
}

async fn update_tenant<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
    given: Result<Json<Value>, JsonRejection>,
) -> Answer {
    let body: TenantChange = match body(given) {
        Ok(b) => b,
        Err(reason) => return invalid_body(&reason),
    };
    match admin
        .update_tenant(&tenant, body.enabled, body.include_source)
        .await
    {
        Ok(tenant) => ok(StatusCode::OK, tenant),
        Err(e) => e.into(),
    }
}

async fn list_keys<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
) -> Answer {
    match admin.keys(&tenant).await {
        Ok(keys) => ok(StatusCode::OK, keys),
        Err(e) => e.into(),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewKey {
    key: Option<String>,
}

async fn add_key<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path((tenant, carrier)): Path<(String, String)>,
    given: Result<Json<Value>, JsonRejection>,
) -> Answer {
    // No body at all: generate the key.
    let body: NewKey = match optional_body(given) {
        Ok(b) => b,
        Err(reason) => return invalid_body(&reason),
    };
    match admin
        .add_key(&tenant, &carrier, body.key.as_deref(), Utc::now())
        .await
    {
        Ok(added) => ok(StatusCode::CREATED, added),
        Err(e) => e.into(),
    }
}

async fn revoke_key<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path((tenant, carrier, key_id)): Path<(String, String, String)>,
) -> Answer {
    match admin.revoke_key(&tenant, &carrier, &key_id).await {
        Ok(()) => Answer(StatusCode::NO_CONTENT.into_response()),
        Err(e) => e.into(),
    }
}

async fn get_push<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
) -> Answer {
    match admin.push(&tenant).await {
        Ok(view) => ok(StatusCode::OK, view),
        Err(e) => e.into(),
    }
}

async fn set_push<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
    given: Result<Json<Value>, JsonRejection>,
) -> Answer {
    let update: PushUpdate = match body(given) {
        Ok(b) => b,
        Err(reason) => return invalid_body(&reason),
    };
    match admin.set_push(&tenant, &update).await {
        Ok(saved) => ok(StatusCode::OK, saved),
        Err(e) => e.into(),
    }
}

async fn list_pull<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
) -> Answer {
    match admin.pull(&tenant).await {
        Ok(accounts) => ok(StatusCode::OK, accounts),
        Err(e) => e.into(),
    }
}

async fn set_pull<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path((tenant, carrier)): Path<(String, String)>,
    given: Result<Json<Value>, JsonRejection>,
) -> Answer {
    let update: PullUpdate = match body(given) {
        Ok(b) => b,
        Err(reason) => return invalid_body(&reason),
    };
    match admin.set_pull(&tenant, &carrier, &update).await {
        Ok(view) => ok(StatusCode::OK, view),
        Err(e) => e.into(),
    }
}

async fn remove_pull<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path((tenant, carrier)): Path<(String, String)>,
) -> Answer {
    match admin.remove_pull(&tenant, &carrier).await {
        Ok(()) => Answer(StatusCode::NO_CONTENT.into_response()),
        Err(e) => e.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestPush {
    status: String,
}

async fn test_push<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
    given: Result<Json<Value>, JsonRejection>,
) -> Answer {
    let body: TestPush = match body(given) {
        Ok(b) => b,
        Err(reason) => return invalid_body(&reason),
    };
    match admin.test_push(&tenant, &body.status, Utc::now()).await {
        Ok(result) => ok(StatusCode::OK, result),
        Err(e) => e.into(),
    }
}

/// `awb`, or `from` and `to` (RFC 3339).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SelectionInput {
    awb: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

impl SelectionInput {
    fn selection(self) -> Result<Selection, AdminError> {
        match (self.awb, self.from, self.to) {
            (Some(awb), None, None) => Ok(Selection::Awb(awb)),
            (None, Some(from), Some(to)) => Ok(Selection::Between { from, to }),
            _ => Err(AdminError::invalid(
                "awb",
                "give either awb, or both from and to (RFC 3339 times)",
            )),
        }
    }
}

async fn deliveries<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
    query: Result<Query<SelectionInput>, QueryRejection>,
) -> Answer {
    let Query(query) = match query {
        Ok(q) => q,
        Err(r) => return bad_query(r),
    };
    let selection = match query.selection() {
        Ok(s) => s,
        Err(e) => return e.into(),
    };
    match admin.deliveries(&tenant, &selection).await {
        Ok(attempts) => ok(StatusCode::OK, attempts),
        Err(e) => e.into(),
    }
}

async fn replay<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
    given: Result<Json<Value>, JsonRejection>,
) -> Answer {
    let body: SelectionInput = match body(given) {
        Ok(b) => b,
        Err(reason) => return invalid_body(&reason),
    };
    let selection = match body.selection() {
        Ok(s) => s,
        Err(e) => return e.into(),
    };
    match admin.replay(&tenant, &selection, &|_, _| {}).await {
        Ok(n) => ok(StatusCode::OK, json!({"replayed": n})),
        Err(e) => e.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterQuery {
    tenant: Option<String>,
    limit: Option<usize>,
}

async fn dead_letters<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    query: Result<Query<DeadLetterQuery>, QueryRejection>,
) -> Answer {
    let Query(query) = match query {
        Ok(q) => q,
        Err(r) => return bad_query(r),
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_LIST).contains(&limit) {
        return AdminError::invalid("limit", format!("use 1 to {MAX_LIST}")).into();
    }
    match admin.dead_letters(query.tenant.as_deref(), limit).await {
        Ok(list) => ok(StatusCode::OK, list),
        Err(e) => e.into(),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RedriveInput {
    ids: Option<Vec<String>>,
}

async fn redrive<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    given: Result<Json<Value>, JsonRejection>,
) -> Answer {
    let body: RedriveInput = match optional_body(given) {
        Ok(b) => b,
        Err(reason) => return invalid_body(&reason),
    };
    match admin.redrive(body.ids.as_deref()).await {
        Ok(n) => ok(StatusCode::OK, json!({"redriven": n})),
        Err(e) => e.into(),
    }
}

async fn quarantine<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    query: Result<Query<QuarantineQuery>, QueryRejection>,
) -> Answer {
    let Query(query) = match query {
        Ok(q) => q,
        Err(r) => return bad_query(r),
    };
    match admin.quarantined(&query).await {
        Ok(list) => ok(StatusCode::OK, list),
        Err(e) => e.into(),
    }
}

async fn quarantined_body<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path((tenant, id)): Path<(String, String)>,
) -> Answer {
    match admin.quarantined_body(&tenant, &id).await {
        Ok(detail) => ok(StatusCode::OK, detail),
        Err(e) => e.into(),
    }
}

/// `{"tenant", "ids": [...]}`, or a filter (every field optional; `{}` is every body).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuarantineReplayInput {
    tenant: Option<String>,
    ids: Option<Vec<String>>,
    carrier: Option<String>,
    reason: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

impl QuarantineReplayInput {
    fn selection(self) -> Result<QuarantineSelection, AdminError> {
        let Some(ids) = self.ids else {
            return Ok(QuarantineSelection::Matching(QuarantineQuery {
                tenant: self.tenant,
                carrier: self.carrier,
                reason: self.reason,
                from: self.from,
                to: self.to,
                limit: None,
            }));
        };
        if self.carrier.is_some()
            || self.reason.is_some()
            || self.from.is_some()
            || self.to.is_some()
        {
            return Err(AdminError::invalid(
                "ids",
                "give ids or a filter (carrier, reason, from, to), not both",
            ));
        }
        let tenant = self.tenant.ok_or_else(|| {
            AdminError::invalid("tenant", "ids name bodies of one tenant: give the tenant")
        })?;
        Ok(QuarantineSelection::Ids { tenant, ids })
    }
}

async fn replay_quarantined<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    given: Result<Json<Value>, JsonRejection>,
) -> Answer {
    let input: QuarantineReplayInput = match body(given) {
        Ok(b) => b,
        Err(reason) => return invalid_body(&reason),
    };
    let selection = match input.selection() {
        Ok(s) => s,
        Err(e) => return e.into(),
    };
    match admin
        .replay_quarantined(&selection, Utc::now(), &|_, _| {})
        .await
    {
        Ok(report) => ok(StatusCode::OK, report),
        Err(e) => e.into(),
    }
}

async fn circuit<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
) -> Answer {
    match admin.circuit(&tenant).await {
        Ok(view) => ok(StatusCode::OK, view),
        Err(e) => e.into(),
    }
}

async fn carriers<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
) -> Answer {
    match admin.carrier_activity(&tenant).await {
        Ok(view) => ok(StatusCode::OK, view),
        Err(e) => e.into(),
    }
}

//! The admin API over HTTP: one axum router, served by the `admin-api` Lambda (behind an
//! IAM-authorised API Gateway route) and by `rms serve`. The operations are `shared::admin`'s;
//! this module maps requests to them and `AdminError`s to status codes, in one place.
//! The contract is `docs/openapi.yaml`.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::admin::{
    Admin, AdminError, AdminStore, AttemptView, DeadLetterView, KeyAdded, KeyView, PullUpdate,
    PullView, PushSaved, PushUpdate, PushView, QuarantineDetail, QuarantineQuery, QuarantineReplay,
    QuarantineSelection, QuarantineView, Selection, Tenant, TestPushResult,
};
use shared::circuit::CircuitView;
use shared::ingest::Reingest;
use shared::ports::CarrierActivity;
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

/// Why a request was not answered with what it asked for, as `{"error": ..., "field": ...}`
/// with its status: the one mapping from errors to HTTP answers.
enum ApiError {
    Admin(AdminError),
    /// The request body is not the JSON object the route takes.
    Body(String),
    /// The query string is not what the route takes.
    Query(String),
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        ApiError::Admin(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Admin(AdminError::NotFound(m)) => {
                (StatusCode::NOT_FOUND, json!({"error": m}))
            }
            ApiError::Admin(AdminError::Invalid { field, message }) => (
                StatusCode::BAD_REQUEST,
                json!({"error": format!("{field}: {message}"), "field": field}),
            ),
            ApiError::Admin(AdminError::Conflict(m)) => (StatusCode::CONFLICT, json!({"error": m})),
            ApiError::Admin(AdminError::Unavailable(u)) => {
                error!(error = %u, "admin operation failed: store unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "a store is unavailable; try again shortly"}),
                )
            }
            ApiError::Body(reason) => (
                StatusCode::BAD_REQUEST,
                json!({"error": format!("the request body is not valid: {reason}")}),
            ),
            ApiError::Query(reason) => (
                StatusCode::BAD_REQUEST,
                json!({"error": format!("the query is not valid: {reason}")}),
            ),
        };
        (status, Json(body)).into_response()
    }
}

type Answer<T> = Result<T, ApiError>;

/// The request body as `T`. Only a JSON object is taken: serde would also read an array into a
/// struct, field by position, which no client means.
struct Body<T>(T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &St) -> Result<Self, ApiError> {
        let Json(value) = Json::<Value>::from_request(request, state)
            .await
            .map_err(|r| ApiError::Body(r.body_text()))?;
        object(value).map(Body)
    }
}

/// Like [`Body`], but no body at all (no content type) is `T::default()`.
struct OptionalBody<T>(T);

impl<T: DeserializeOwned + Default, St: Send + Sync> FromRequest<St> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &St) -> Result<Self, ApiError> {
        match Json::<Value>::from_request(request, state).await {
            Err(JsonRejection::MissingJsonContentType(_)) => Ok(OptionalBody(T::default())),
            Err(r) => Err(ApiError::Body(r.body_text())),
            Ok(Json(value)) => object(value).map(OptionalBody),
        }
    }
}

fn object<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::Body("expected a JSON object".to_owned()));
    }
    serde_json::from_value(value).map_err(|e| ApiError::Body(e.to_string()))
}

/// The query string as `T`.
struct QueryOf<T>(T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequestParts<St> for QueryOf<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, ApiError> {
        let Query(query) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::Query(r.body_text()))?;
        Ok(QueryOf(query))
    }
}

/// Every path nothing else answers (the admin API's, and `rms serve`'s whole router): a path
/// under `/admin` points at the API's description, any other at the carriers' notify paths (a
/// carrier panel's URL with a typo lands here).
async fn not_found(uri: axum::http::Uri) -> Response {
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
    (StatusCode::NOT_FOUND, Json(json!({ "error": message }))).into_response()
}

async fn list_tenants<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
) -> Answer<Json<Vec<Tenant>>> {
    Ok(Json(admin.tenants().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    id: String,
    include_source: Option<bool>,
}

async fn create_tenant<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Body(body): Body<NewTenant>,
) -> Answer<(StatusCode, Json<Tenant>)> {
    let tenant = admin
        .create_tenant(&body.id, body.include_source, Utc::now())
        .await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

async fn get_tenant<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
) -> Answer<Json<Tenant>> {
    Ok(Json(admin.tenant(&tenant).await?))
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
    Body(body): Body<TenantChange>,
) -> Answer<Json<Tenant>> {
    let tenant = admin
        .update_tenant(&tenant, body.enabled, body.include_source)
        .await?;
    Ok(Json(tenant))
}

async fn list_keys<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
) -> Answer<Json<Vec<KeyView>>> {
    Ok(Json(admin.keys(&tenant).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewKey {
    key: Option<String>,
}

async fn add_key<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path((tenant, carrier)): Path<(String, String)>,
    // No body at all: generate the key.
    OptionalBody(body): OptionalBody<NewKey>,
) -> Answer<(StatusCode, Json<KeyAdded>)> {
    let added = admin
        .add_key(&tenant, &carrier, body.key.as_deref(), Utc::now())
        .await?;
    Ok((StatusCode::CREATED, Json(added)))
}

async fn revoke_key<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path((tenant, carrier, key_id)): Path<(String, String, String)>,
) -> Answer<StatusCode> {
    admin.revoke_key(&tenant, &carrier, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_push<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
) -> Answer<Json<PushView>> {
    Ok(Json(admin.push(&tenant).await?))
}

async fn set_push<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
    Body(update): Body<PushUpdate>,
) -> Answer<Json<PushSaved>> {
    Ok(Json(admin.set_push(&tenant, &update).await?))
}

async fn list_pull<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
) -> Answer<Json<Vec<PullView>>> {
    Ok(Json(admin.pull(&tenant).await?))
}

async fn set_pull<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path((tenant, carrier)): Path<(String, String)>,
    Body(update): Body<PullUpdate>,
) -> Answer<Json<PullView>> {
    Ok(Json(admin.set_pull(&tenant, &carrier, &update).await?))
}

async fn remove_pull<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path((tenant, carrier)): Path<(String, String)>,
) -> Answer<StatusCode> {
    admin.remove_pull(&tenant, &carrier).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestPush {
    status: String,
}

async fn test_push<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
    Body(body): Body<TestPush>,
) -> Answer<Json<TestPushResult>> {
    Ok(Json(
        admin.test_push(&tenant, &body.status, Utc::now()).await?,
    ))
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
    QueryOf(query): QueryOf<SelectionInput>,
) -> Answer<Json<Vec<AttemptView>>> {
    Ok(Json(admin.deliveries(&tenant, &query.selection()?).await?))
}

async fn replay<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
    Body(body): Body<SelectionInput>,
) -> Answer<Json<Value>> {
    let replayed = admin
        .replay(&tenant, &body.selection()?, &|_, _| {})
        .await?;
    Ok(Json(json!({ "replayed": replayed })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterQuery {
    tenant: Option<String>,
    limit: Option<usize>,
}

async fn dead_letters<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    QueryOf(query): QueryOf<DeadLetterQuery>,
) -> Answer<Json<Vec<DeadLetterView>>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(AdminError::invalid("limit", format!("use 1 to {MAX_LIST}")).into());
    }
    Ok(Json(
        admin.dead_letters(query.tenant.as_deref(), limit).await?,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RedriveInput {
    ids: Option<Vec<String>>,
}

async fn redrive<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    OptionalBody(body): OptionalBody<RedriveInput>,
) -> Answer<Json<Value>> {
    let redriven = admin.redrive(body.ids.as_deref()).await?;
    Ok(Json(json!({ "redriven": redriven })))
}

async fn quarantine<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    QueryOf(query): QueryOf<QuarantineQuery>,
) -> Answer<Json<Vec<QuarantineView>>> {
    Ok(Json(admin.quarantined(&query).await?))
}

async fn quarantined_body<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path((tenant, id)): Path<(String, String)>,
) -> Answer<Json<QuarantineDetail>> {
    Ok(Json(admin.quarantined_body(&tenant, &id).await?))
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
    Body(input): Body<QuarantineReplayInput>,
) -> Answer<Json<QuarantineReplay>> {
    let report = admin
        .replay_quarantined(&input.selection()?, Utc::now(), &|_, _| {})
        .await?;
    Ok(Json(report))
}

async fn circuit<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
) -> Answer<Json<CircuitView>> {
    Ok(Json(admin.circuit(&tenant).await?))
}

async fn carriers<S: AdminStore, P: Pusher, R: Reingest>(
    State(admin): AppState<S, P, R>,
    Path(tenant): Path<String>,
) -> Answer<Json<Vec<CarrierActivity>>> {
    Ok(Json(admin.carrier_activity(&tenant).await?))
}

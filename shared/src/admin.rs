//! The ops use-case behind the admin API (`admin-api` Lambda, `rms serve`) and the `rms` ops
//! commands: tenants, carrier credentials with rotation, Push Config, test push, the delivery log,
//! dead letters and replay, the quarantine (rejected bodies, replayed through ingest once the
//! normaliser is fixed) and the carrier-status view. One store port ([`AdminStore`]) with a DynamoDB + SQS adapter, a SQLite
//! adapter and an in-memory fake.
//!
//! Secrets only ever come in: carrier keys are stored as digests, Push Config header values and
//! signing secrets are never part of a view. A generated key or secret is returned once, by the
//! call that made it.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::auth::{fill_random, random_token, CredentialDigest};
use crate::circuit::{CircuitStore, CircuitView};
use crate::dispatch::build_request;
use crate::ingest::{IngestOutcome, Reingest};
use crate::model::{CanonicalEvent, Carrier, EventId, Status, TenantId};
use crate::ports::{
    Attempt, AttemptOutcome, CarrierActivity, PushResult, Pusher, TenantAuth, Unavailable,
};
use crate::push::{
    Delivery, PushConfig, PushHeaders, PushTimeout, PushUrl, SigningSecret, TargetPolicy,
};
use crate::reconcile::{PullAccountRecord, QuietRules, QuietShipment};

/// A tenant: a client of RMS whose carriers push to us and whose endpoint we push to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    /// A disabled tenant's carrier credentials are refused (401) until it is enabled again.
    pub enabled: bool,
    /// Attach the carrier's payload to each event as `source`.
    pub include_source: bool,
    pub created_at: DateTime<Utc>,
    /// Defined in `rms serve`'s configuration file (`rms.toml`), which is stored again at every
    /// start: the file is its only source of truth, and the admin API refuses to change it (409).
    /// Never set on AWS, where there is no such file.
    #[serde(default)]
    pub file_managed: bool,
}

/// A carrier credential as stored: its digest, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    pub carrier: Carrier,
    pub digest: CredentialDigest,
    pub added_at: DateTime<Utc>,
}

/// What a reader sees of a credential: which carrier, an id to revoke it by, when it was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub carrier: Carrier,
    /// The first 12 hex digits of the key's SHA-256: enough to tell keys apart, useless to forge one.
    pub key_id: String,
    pub added_at: DateTime<Utc>,
}

impl From<&StoredCredential> for KeyView {
    fn from(c: &StoredCredential) -> Self {
        KeyView {
            carrier: c.carrier,
            key_id: key_id(&c.digest),
            added_at: c.added_at,
        }
    }
}

fn key_id(digest: &CredentialDigest) -> String {
    digest.to_hex()[..12].to_owned()
}

/// A Push Config as a reader sees it: header names, never their values; whether a signing secret
/// is set, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushView {
    pub url: String,
    pub headers: Vec<String>,
    pub statuses: Vec<Status>,
    pub timeout_ms: u64,
    pub enabled: bool,
    pub signing_secret: bool,
    /// `every` event, or a shipment's `latest` state only.
    #[serde(default)]
    pub delivery: Delivery,
}

impl From<&PushConfig> for PushView {
    fn from(c: &PushConfig) -> Self {
        PushView {
            url: c.url.as_str().to_owned(),
            headers: c.headers.names(),
            statuses: c.statuses.clone(),
            timeout_ms: c.timeout.as_millis(),
            enabled: c.enabled,
            signing_secret: c.signing_secret.is_some(),
            delivery: c.delivery,
        }
    }
}

/// A Push Config change, as the API and `rms push set` take it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushUpdate {
    pub url: String,
    /// Header names and values; absent keeps the current headers (values are write-only, so a
    /// reader cannot send them back), `{}` removes them.
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// Status names; absent or empty means every status.
    #[serde(default)]
    pub statuses: Vec<String>,
    pub timeout_ms: Option<u64>,
    pub enabled: Option<bool>,
    /// `generate` (a new secret, returned once), `remove`, or absent to keep the current one.
    pub signing_secret: Option<SecretAction>,
    /// `every` or `latest` (`push::Delivery`); absent keeps the current one (`every` for a first
    /// Push Config).
    pub delivery: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretAction {
    Generate,
    Remove,
}

/// The answer to a Push Config change: the new view, and the signing secret if one was generated.
#[derive(Debug, Clone, Serialize)]
pub struct PushSaved {
    #[serde(flatten)]
    pub view: PushView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret_value: Option<String>,
}

/// A key that was added: its view, and the key itself when RMS generated it (shown once).
#[derive(Debug, Clone, Serialize)]
pub struct KeyAdded {
    #[serde(flatten)]
    pub view: KeyView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A tenant's account at a carrier's tracking API as a reader sees it: the user, never the secret.
/// (For Clickpost the user is the enterprise's API username, not its key.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullView {
    pub carrier: Carrier,
    pub base_url: String,
    pub user: String,
    pub secret_set: bool,
}

impl From<&PullAccountRecord> for PullView {
    fn from(r: &PullAccountRecord) -> Self {
        PullView {
            carrier: r.carrier,
            base_url: r.base_url.trim_end_matches('/').to_owned(),
            user: r.user.clone(),
            secret_set: !r.secret.expose().is_empty(),
        }
    }
}

/// A pull account change, as the API and `rms pull set` take it.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullUpdate {
    /// The carrier API's root; absent keeps the current one (the carrier's documented host for a
    /// new account).
    pub base_url: Option<String>,
    /// Clickpost: the enterprise username; Shiprocket: the API user's email; Shipway: the
    /// username.
    pub user: String,
    /// Clickpost: the API key; Shiprocket and Shipway: the password or licence key. Required for
    /// a new account; absent keeps the current one (it is write-only, so a reader cannot send it
    /// back).
    pub secret: Option<String>,
}

impl std::fmt::Debug for PullUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullUpdate")
            .field("base_url", &self.base_url)
            .field("user", &self.user)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The longest pull user and secret taken.
const MAX_PULL_FIELD: usize = 1024;

/// The carrier API's documented root, for an account that does not name another.
fn default_base_url(carrier: Carrier) -> &'static str {
    match carrier {
        Carrier::Clickpost => crate::carriers::clickpost::pull::DEFAULT_BASE_URL,
        Carrier::Shiprocket => crate::carriers::shiprocket::pull::DEFAULT_BASE_URL,
        Carrier::Shipway => crate::carriers::shipway::pull::DEFAULT_BASE_URL,
    }
}

/// A pull user or secret: not empty, no control characters, not over [`MAX_PULL_FIELD`].
fn pull_field(field: &str, value: &str) -> Result<(), AdminError> {
    if value.trim().is_empty() {
        return Err(AdminError::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_PULL_FIELD {
        return Err(AdminError::invalid(
            field,
            format!("use at most {MAX_PULL_FIELD} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(AdminError::invalid(
            field,
            "control characters (such as a line break) cannot be sent to the carrier's API",
        ));
    }
    Ok(())
}

/// What the test push got back.
/// A shipment without news for longer than its status allows (`rms shipments --stale`): the
/// reconciler asked its carrier (`last_pulled_at`) or could not, and nothing newer came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleShipment {
    pub tenant_id: String,
    pub shipment_key: String,
    pub carrier: Option<String>,
    pub awb: Option<String>,
    pub last_status: Option<String>,
    /// The newest event's time, as the carrier gave it.
    pub last_event_at: DateTime<Utc>,
    /// When that event arrived.
    pub last_received_at: Option<DateTime<Utc>>,
    /// When a reconcile run last asked the carrier about it.
    pub last_pulled_at: Option<DateTime<Utc>>,
}

impl StaleShipment {
    fn of(tenant: &TenantId, s: QuietShipment) -> StaleShipment {
        StaleShipment {
            tenant_id: tenant.to_string(),
            shipment_key: s.shipment_key,
            carrier: s.state.carrier.map(|c| c.as_str().to_owned()),
            awb: s.state.awb,
            last_status: s.state.last_status.map(|st| st.as_str().to_owned()),
            last_event_at: s.state.latest_event_time,
            last_received_at: s.state.last_received_at,
            last_pulled_at: s.last_pulled_at,
        }
    }

    /// The last news: the newest event's arrival (its time, for state kept before arrivals were).
    pub fn last_news_at(&self) -> DateTime<Utc> {
        self.last_received_at.unwrap_or(self.last_event_at)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestPushResult {
    /// `delivered` (2xx), `failed` (any other answer), `timed_out`, `connect_failed`, `refused`.
    pub outcome: &'static str,
    pub http_status: Option<u16>,
    pub latency_ms: u64,
    /// The first bytes of the answer.
    pub body_prefix: String,
    pub error: Option<String>,
    /// The event id of the sample event (it starts with `evt_test_`).
    pub event_id: String,
}

/// A dead-lettered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterView {
    /// The id to redrive it by (the SQLite row id, or the SQS message id).
    pub id: String,
    pub event_id: String,
    pub tenant_id: String,
    pub reason: String,
    pub attempts: u32,
}

/// A delivery attempt, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptView {
    pub event_id: String,
    pub awb: String,
    pub status: Status,
    pub attempt: u32,
    pub outcome: String,
    pub http_status: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

impl From<&Attempt> for AttemptView {
    fn from(a: &Attempt) -> Self {
        AttemptView {
            event_id: a.event_id.to_string(),
            awb: a.awb.clone(),
            status: a.status,
            attempt: a.attempt,
            outcome: a.outcome.as_str().to_owned(),
            http_status: a.http_status,
            latency_ms: a.latency_ms,
            error: a.error.clone(),
            at: a.at,
        }
    }
}

/// A quarantined body, as a listing shows it (without the body): a payload from an authenticated
/// carrier that did not normalise, kept once per tenant and body until `QUARANTINE_TTL` (14 days)
/// after its last arrival.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineView {
    /// The body's SHA-256 in hex: the entry's id within its tenant.
    pub id: String,
    pub tenant_id: String,
    pub carrier: Carrier,
    /// Why its last arrival was refused.
    pub reason: String,
    pub first_received_at: DateTime<Utc>,
    pub last_received_at: DateTime<Utc>,
    /// How many times the body arrived.
    pub times: u64,
    /// The last replay of the body, if it was replayed.
    pub last_replay: Option<ReplayNote>,
}

/// When a quarantined body was last replayed, and what ingest answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayNote {
    pub at: DateTime<Utc>,
    /// A [`ReplayOutcome`] name (`accepted`, `duplicate`, …).
    pub outcome: String,
}

/// A quarantined body with its entry, as the store gives it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedBody {
    pub view: QuarantineView,
    /// As stored: scrubbed of credentials by ingest before it was kept.
    pub body: Vec<u8>,
}

/// One quarantined body as the API shows it: the entry and the body as text (bytes that are not
/// UTF-8 are shown as U+FFFD).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineDetail {
    #[serde(flatten)]
    pub view: QuarantineView,
    pub body: String,
}

/// Which quarantined bodies, as a store takes it: every field that is set narrows the selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineFilter {
    pub tenant: Option<TenantId>,
    pub carrier: Option<Carrier>,
    /// A part of the reason, matched without regard to ASCII case.
    pub reason: Option<String>,
    /// Bodies that arrived at or after this time (their last arrival).
    pub from: Option<DateTime<Utc>>,
    /// Bodies that arrived at or before this time (their first arrival).
    pub to: Option<DateTime<Utc>>,
    /// At most this many, oldest first (by first arrival).
    pub limit: usize,
}

impl QuarantineFilter {
    /// Whether an entry is selected (the limit aside). Stores that cannot filter on the server
    /// (DynamoDB) filter with this; SQLite says the same in SQL.
    pub fn matches(&self, entry: &QuarantineView) -> bool {
        self.tenant
            .as_ref()
            .is_none_or(|t| t.as_str() == entry.tenant_id)
            && self.carrier.is_none_or(|c| c == entry.carrier)
            && self.reason.as_ref().is_none_or(|part| {
                entry
                    .reason
                    .to_ascii_lowercase()
                    .contains(&part.to_ascii_lowercase())
            })
            && self.from.is_none_or(|from| entry.last_received_at >= from)
            && self.to.is_none_or(|to| entry.first_received_at <= to)
    }

    /// The listing order (oldest first arrival, then tenant and id) and the limit, for stores
    /// that filter with [`QuarantineFilter::matches`]; SQLite says the same in SQL.
    pub fn order_and_limit(&self, mut found: Vec<QuarantineView>) -> Vec<QuarantineView> {
        found.sort_by(|a, b| {
            (a.first_received_at, &a.tenant_id, &a.id).cmp(&(
                b.first_received_at,
                &b.tenant_id,
                &b.id,
            ))
        });
        found.truncate(self.limit);
        found
    }
}

/// Which quarantined bodies, as the API and the CLI ask for them (names not yet checked).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineQuery {
    pub tenant: Option<String>,
    pub carrier: Option<String>,
    pub reason: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// A listing's size: 1 to [`MAX_QUARANTINE_LIST`], 100 if absent. A replay takes every
    /// match and ignores it.
    pub limit: Option<usize>,
}

/// The most entries one quarantine listing returns.
pub const MAX_QUARANTINE_LIST: usize = 1000;

/// Which quarantined bodies to replay: named ones of a tenant, or every match of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuarantineSelection {
    Ids { tenant: String, ids: Vec<String> },
    Matching(QuarantineQuery),
}

/// What ingest answered a replayed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayOutcome {
    /// Its events were queued now (or it had none).
    Accepted,
    /// Its events had all been accepted before (an earlier replay, or the carrier's retry).
    Duplicate,
    /// It still does not normalise; `reason` says why.
    Invalid,
    /// A store or the queue failed; replay it again.
    Unavailable,
    /// Another request is accepting the same event right now; replay it again.
    InFlight,
}

impl ReplayOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayOutcome::Accepted => "accepted",
            ReplayOutcome::Duplicate => "duplicate",
            ReplayOutcome::Invalid => "invalid",
            ReplayOutcome::Unavailable => "unavailable",
            ReplayOutcome::InFlight => "in_flight",
        }
    }

    /// Ingest's answer, as a replay reports it, with its reason and the body's event ids.
    fn of(outcome: IngestOutcome) -> (ReplayOutcome, Option<String>, Vec<EventId>) {
        let refused = |reason: &str| (ReplayOutcome::Invalid, Some(reason.to_owned()), Vec::new());
        match outcome {
            IngestOutcome::Accepted { queued, duplicates } => {
                let outcome = if queued.is_empty() && !duplicates.is_empty() {
                    ReplayOutcome::Duplicate
                } else {
                    ReplayOutcome::Accepted
                };
                (
                    outcome,
                    None,
                    queued.into_iter().chain(duplicates).collect(),
                )
            }
            IngestOutcome::Invalid { reason } => (ReplayOutcome::Invalid, Some(reason), Vec::new()),
            IngestOutcome::Unavailable => (ReplayOutcome::Unavailable, None, Vec::new()),
            IngestOutcome::InFlight => (ReplayOutcome::InFlight, None, Vec::new()),
            IngestOutcome::Probe => refused("the body is empty or a set-up probe: no event in it"),
            IngestOutcome::PanelTest => refused("the body is a carrier panel's test, not an event"),
            IngestOutcome::TooLarge { size, limit } => refused(&format!(
                "the body is {size} bytes, over the limit of {limit}"
            )),
            IngestOutcome::Unauthorized(_) | IngestOutcome::MethodNotAllowed => {
                refused("ingest refused the body")
            }
        }
    }
}

/// One replayed body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineReplayResult {
    pub id: String,
    pub tenant_id: String,
    pub outcome: ReplayOutcome,
    /// Why it is still invalid.
    pub reason: Option<String>,
    /// The events the body became (queued now, then those accepted before).
    pub event_ids: Vec<String>,
}

/// The answer to a quarantine replay: each body's result, and how many had each outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineReplay {
    pub results: Vec<QuarantineReplayResult>,
    pub accepted: u64,
    pub duplicate: u64,
    pub invalid: u64,
    pub unavailable: u64,
    pub in_flight: u64,
}

impl QuarantineReplay {
    fn add(&mut self, result: QuarantineReplayResult) {
        *match result.outcome {
            ReplayOutcome::Accepted => &mut self.accepted,
            ReplayOutcome::Duplicate => &mut self.duplicate,
            ReplayOutcome::Invalid => &mut self.invalid,
            ReplayOutcome::Unavailable => &mut self.unavailable,
            ReplayOutcome::InFlight => &mut self.in_flight,
        } += 1;
        self.results.push(result);
    }

    /// Whether some body was not taken (still invalid, or a store failed): the CLI's exit 1.
    pub fn has_failures(&self) -> bool {
        self.invalid > 0 || self.unavailable > 0
    }
}

/// Which of a tenant's delivered events to look at or replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Awb(String),
    Between {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
}

/// Why an admin operation did not happen; each variant is one HTTP status (`admin-api`).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 400: the input named by `field` is wrong.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 503: a store or queue failed; try again.
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl AdminError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AdminError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// The stores behind the admin use-case.
/// The admin store also reads (and, for tests, writes) the tenants' circuits.
pub trait AdminStore: CircuitStore + Send + Sync {
    /// Creates the tenant; `false` if one with that id exists already (nothing is changed).
    fn create_tenant(
        &self,
        tenant: &Tenant,
    ) -> impl Future<Output = Result<bool, Unavailable>> + Send;
    fn tenants(&self) -> impl Future<Output = Result<Vec<Tenant>, Unavailable>> + Send;
    fn tenant(
        &self,
        id: &TenantId,
    ) -> impl Future<Output = Result<Option<Tenant>, Unavailable>> + Send;
    /// Replaces an existing tenant's `enabled` and `include_source`.
    fn update_tenant(
        &self,
        tenant: &Tenant,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;

    fn credentials(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<StoredCredential>, Unavailable>> + Send;
    /// The tenant that owns this digest for this carrier, if any (a key belongs to one tenant).
    fn credential_owner(
        &self,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> impl Future<Output = Result<Option<TenantId>, Unavailable>> + Send;
    /// Adds a credential to the tenant, in one conditional write: `false` (and nothing written)
    /// if the digest is registered for that carrier already, to this tenant or another. A
    /// credential never moves from one tenant to another.
    fn add_credential(
        &self,
        tenant: &TenantId,
        credential: &StoredCredential,
    ) -> impl Future<Output = Result<bool, Unavailable>> + Send;
    fn remove_credential(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;

    fn push_config(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Option<PushConfig>, Unavailable>> + Send;
    fn put_push_config(
        &self,
        tenant: &TenantId,
        config: &PushConfig,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;

    /// The tenant's accounts at the carriers' tracking APIs (one per carrier), by carrier.
    fn pull_accounts(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<PullAccountRecord>, Unavailable>> + Send;
    /// Creates or replaces the tenant's account at `account.carrier`.
    fn put_pull_account(
        &self,
        tenant: &TenantId,
        account: &PullAccountRecord,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;
    /// Removes the tenant's account at `carrier`; `false` if it had none.
    fn remove_pull_account(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
    ) -> impl Future<Output = Result<bool, Unavailable>> + Send;

    /// Delivery attempts, oldest first.
    fn attempts(
        &self,
        tenant: &TenantId,
        selection: &Selection,
    ) -> impl Future<Output = Result<Vec<Attempt>, Unavailable>> + Send;

    /// Dead letters (of one tenant, or all), oldest first, at most `limit`.
    fn dead_letters(
        &self,
        tenant: Option<&TenantId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DeadLetterView>, Unavailable>> + Send;
    /// Moves dead letters back to the delivery queue: these ids, or all. Returns how many moved.
    fn redrive(
        &self,
        ids: Option<&[String]>,
    ) -> impl Future<Output = Result<u64, Unavailable>> + Send;

    /// The accepted events of these attempts (one attempt per event) that are still kept (the
    /// dedup window). An attempt names its event's tenant and shipment too, where DynamoDB keeps
    /// the event (`adapters::dynamodb`).
    fn archived_events(
        &self,
        attempts: &[Attempt],
    ) -> impl Future<Output = Result<Vec<CanonicalEvent>, Unavailable>> + Send;
    /// Queues an event again, marked as a replay: it is pushed even if it was delivered before.
    fn enqueue_replay(
        &self,
        event: &CanonicalEvent,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;

    /// Quarantined bodies that match, oldest first (by first arrival), at most `filter.limit`.
    fn quarantined(
        &self,
        filter: &QuarantineFilter,
    ) -> impl Future<Output = Result<Vec<QuarantineView>, Unavailable>> + Send;
    /// One quarantined body of a tenant, by its id (the body's SHA-256 in hex).
    fn quarantined_body(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<QuarantinedBody>, Unavailable>> + Send;
    /// Notes a replay on the entry (nothing if it is gone). The entry is kept.
    fn note_replay(
        &self,
        tenant: &TenantId,
        id: &str,
        outcome: ReplayOutcome,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;
    /// The tenant's carrier-status view: one entry per carrier of `Carrier::ALL`, in that order,
    /// with `None` for what was never seen, and the hourly counts from `since`'s hour on.
    fn carrier_activity(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<CarrierActivity>, Unavailable>> + Send;
    /// The shipments of `tenant` at `carrier` without news for longer than `rules` allow their
    /// status now, whether or not a reconcile run asked about them since; the longest without
    /// news first.
    fn stale_shipments(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        rules: &QuietRules,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<QuietShipment>, Unavailable>> + Send;
    /// How many messages wait on the delivery queue (due now or later) and how many are dead
    /// letters, across tenants. SQS only counts approximately, and per queue.
    fn queue_depth(&self) -> impl Future<Output = Result<QueueDepth, Unavailable>> + Send;
}

/// The delivery queue's size, across tenants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Messages waiting for delivery: due now, backing off before a retry, or being delivered.
    pub waiting: u64,
    pub dead_letters: u64,
}

/// One hour of a tenant's delivery log: the pushes that were delivered and those that failed
/// (to be retried, or dead-lettered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourOfDeliveries {
    /// The start of the hour.
    pub hour: DateTime<Utc>,
    pub delivered: u64,
    pub failed: u64,
}

/// How many hours [`Admin::deliveries_by_hour`] covers.
pub const DELIVERY_HOURS: i64 = 24;

/// The most credentials one tenant has live per carrier: the current one and, during a rotation,
/// the next.
pub const LIVE_KEYS_PER_CARRIER: usize = 2;

pub struct Admin<S, P, R> {
    pub store: S,
    pub pusher: P,
    /// Ingest, for replaying quarantined bodies.
    pub reingest: R,
    /// What a Push Config URL may point at: as the pusher's guard, so that what is saved is
    /// what can be delivered to (https and public addresses on AWS; `rms serve` with
    /// `allow_private_targets` and `rms --local` allow local receivers).
    pub policy: TargetPolicy,
}

/// The answer to a change of a tenant that `rms.toml` defines.
fn managed_by_file(tenant: &TenantId) -> AdminError {
    AdminError::Conflict(format!(
        "tenant {tenant} is managed by rms.toml: it is defined in rms serve's configuration \
         file, which is stored again at every start, so a change made here would be undone; \
         edit its [[tenants]] entry in rms.toml and restart rms serve"
    ))
}

impl<S: AdminStore, P: Pusher, R: Reingest> Admin<S, P, R> {
    pub async fn create_tenant(
        &self,
        id: &str,
        include_source: Option<bool>,
        now: DateTime<Utc>,
    ) -> Result<Tenant, AdminError> {
        let id = TenantId::parse(id).map_err(|e| AdminError::invalid("id", e.to_string()))?;
        let tenant = Tenant {
            id,
            enabled: true,
            include_source: include_source.unwrap_or(true),
            created_at: now,
            file_managed: false,
        };
        if !self.store.create_tenant(&tenant).await? {
            return Err(match self.store.tenant(&tenant.id).await? {
                Some(existing) if existing.file_managed => managed_by_file(&tenant.id),
                _ => AdminError::Conflict(format!("tenant {} exists already", tenant.id)),
            });
        }
        info!(tenant_id = %tenant.id, "tenant created");
        Ok(tenant)
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>, AdminError> {
        Ok(self.store.tenants().await?)
    }

    pub async fn tenant(&self, id: &str) -> Result<Tenant, AdminError> {
        let id = tenant_id(id)?;
        self.store
            .tenant(&id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("no tenant {id}")))
    }

    /// The tenant, if the admin API may change it: 404 if there is none, 409 if `rms.toml`
    /// defines it.
    async fn changeable(&self, id: &str) -> Result<Tenant, AdminError> {
        let tenant = self.tenant(id).await?;
        if tenant.file_managed {
            return Err(managed_by_file(&tenant.id));
        }
        Ok(tenant)
    }

    /// Enables or disables a tenant, and/or changes whether `source` is attached.
    pub async fn update_tenant(
        &self,
        id: &str,
        enabled: Option<bool>,
        include_source: Option<bool>,
    ) -> Result<Tenant, AdminError> {
        let mut tenant = self.changeable(id).await?;
        tenant.enabled = enabled.unwrap_or(tenant.enabled);
        tenant.include_source = include_source.unwrap_or(tenant.include_source);
        self.store.update_tenant(&tenant).await?;
        info!(tenant_id = %tenant.id, enabled = tenant.enabled, include_source = tenant.include_source, "tenant updated");
        Ok(tenant)
    }

    pub async fn keys(&self, tenant: &str) -> Result<Vec<KeyView>, AdminError> {
        let tenant = self.tenant(tenant).await?;
        let keys = self.store.credentials(&tenant.id).await?;
        Ok(keys.iter().map(KeyView::from).collect())
    }

    /// Adds a carrier key (given, or generated and returned once). The tenant's other key for that
    /// carrier stays live, so a rotation has no gap: add the new key, move the carrier to it,
    /// then revoke the old one.
    pub async fn add_key(
        &self,
        tenant: &str,
        carrier: &str,
        key: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<KeyAdded, AdminError> {
        let carrier: Carrier = carrier.parse().map_err(|e: crate::model::UnknownName| {
            AdminError::invalid("carrier", e.to_string())
        })?;
        let tenant = self.changeable(tenant).await?;
        let generated = key.is_none().then(|| random_token(24));
        let key = key.or(generated.as_deref()).unwrap_or_default();
        let digest = crate::auth::carrier_key(key)
            .map_err(|e| match e {
                crate::auth::KeyRuleError::Length(_) => AdminError::invalid(
                    "key",
                    format!("{e} (or leave it out and RMS generates one)"),
                ),
                crate::auth::KeyRuleError::Characters => AdminError::invalid("key", e.to_string()),
            })?
            .digest();
        let in_use = |owner: Option<TenantId>| {
            AdminError::Conflict(if owner.as_ref() == Some(&tenant.id) {
                format!(
                    "this {carrier} key is already one of tenant {}'s keys",
                    tenant.id
                )
            } else {
                format!("this {carrier} key belongs to another tenant; every tenant needs its own")
            })
        };
        if let Some(owner) = self.store.credential_owner(carrier, &digest).await? {
            return Err(in_use(Some(owner)));
        }
        let live = self
            .store
            .credentials(&tenant.id)
            .await?
            .into_iter()
            .filter(|c| c.carrier == carrier)
            .count();
        if live >= LIVE_KEYS_PER_CARRIER {
            return Err(AdminError::Conflict(format!(
                "tenant {} has {live} live {carrier} keys already; revoke the old one first",
                tenant.id
            )));
        }
        let stored = StoredCredential {
            carrier,
            digest,
            added_at: now,
        };
        // The check above gives the precise answer; this write is what makes it so, when another
        // request registers the same key in between.
        if !self.store.add_credential(&tenant.id, &stored).await? {
            return Err(in_use(self.store.credential_owner(carrier, &digest).await?));
        }
        let view = KeyView::from(&stored);
        info!(tenant_id = %tenant.id, carrier = %carrier, key_id = %view.key_id, "carrier key added");
        Ok(KeyAdded {
            view,
            key: generated,
        })
    }

    /// Revokes a key by its id (from `keys`): from now on the carrier's pushes with it are 401.
    pub async fn revoke_key(
        &self,
        tenant: &str,
        carrier: &str,
        key_id: &str,
    ) -> Result<(), AdminError> {
        let carrier: Carrier = carrier.parse().map_err(|e: crate::model::UnknownName| {
            AdminError::invalid("carrier", e.to_string())
        })?;
        let tenant = self.changeable(tenant).await?;
        let found = self
            .store
            .credentials(&tenant.id)
            .await?
            .into_iter()
            .find(|c| {
                c.carrier == carrier && key_id.len() >= 8 && c.digest.to_hex().starts_with(key_id)
            })
            .ok_or_else(|| {
                AdminError::NotFound(format!(
                    "tenant {} has no {carrier} key {key_id}",
                    tenant.id
                ))
            })?;
        self.store
            .remove_credential(&tenant.id, carrier, &found.digest)
            .await?;
        info!(tenant_id = %tenant.id, carrier = %carrier, key_id, "carrier key revoked");
        Ok(())
    }

    pub async fn push(&self, tenant: &str) -> Result<PushView, AdminError> {
        let tenant = self.tenant(tenant).await?;
        let config = self.store.push_config(&tenant.id).await?.ok_or_else(|| {
            AdminError::NotFound(format!("tenant {} has no Push Config yet", tenant.id))
        })?;
        Ok(PushView::from(&config))
    }

    /// Validates and saves a Push Config.
    pub async fn set_push(
        &self,
        tenant: &str,
        update: &PushUpdate,
    ) -> Result<PushSaved, AdminError> {
        let tenant = self.changeable(tenant).await?;
        let current = self.store.push_config(&tenant.id).await?;
        let url = PushUrl::parse(&update.url, self.policy)
            .map_err(|e| AdminError::invalid("url", e.to_string()))?;
        let headers = match &update.headers {
            Some(given) => PushHeaders::parse(given).map_err(|e| AdminError::Invalid {
                field: e.field,
                message: e.message,
            })?,
            None => current
                .as_ref()
                .map(|c| c.headers.clone())
                .unwrap_or_default(),
        };
        let statuses = update
            .statuses
            .iter()
            .map(|s| {
                s.parse::<Status>()
                    .map_err(|e| AdminError::invalid("statuses", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = match update.timeout_ms {
            Some(ms) => PushTimeout::from_millis(ms)
                .map_err(|e| AdminError::invalid("timeout_ms", e.to_string()))?,
            None => current.as_ref().map_or(PushTimeout::DEFAULT, |c| c.timeout),
        };
        let delivery = match &update.delivery {
            Some(given) => given
                .parse::<Delivery>()
                .map_err(|e| AdminError::invalid("delivery", e.to_string()))?,
            None => current.as_ref().map(|c| c.delivery).unwrap_or_default(),
        };
        let mut shown_secret = None;
        let signing_secret = match update.signing_secret {
            Some(SecretAction::Generate) => {
                let secret = generate_signing_secret();
                shown_secret = Some(secret.expose());
                Some(secret)
            }
            Some(SecretAction::Remove) => None,
            None => current.as_ref().and_then(|c| c.signing_secret.clone()),
        };
        let config = PushConfig {
            url,
            headers,
            statuses,
            signing_secret,
            timeout,
            enabled: update
                .enabled
                .or(current.as_ref().map(|c| c.enabled))
                .unwrap_or(true),
            delivery,
        };
        self.store.put_push_config(&tenant.id, &config).await?;
        // A changed Push Config is a changed endpoint: what opened the circuit no longer says
        // anything about it. (Dispatchers see the change within their circuit cache.)
        self.store.close_circuit(&tenant.id).await?;
        info!(tenant_id = %tenant.id, url = %config.url, headers = config.headers.len(), statuses = config.statuses.len(), delivery = %config.delivery, "push config saved");
        Ok(PushSaved {
            view: PushView::from(&config),
            signing_secret_value: shown_secret,
        })
    }

    /// The tenant's accounts at the carriers' tracking APIs (for the reconciler), without their
    /// secrets.
    pub async fn pull(&self, tenant: &str) -> Result<Vec<PullView>, AdminError> {
        let tenant = self.tenant(tenant).await?;
        let mut accounts = self.store.pull_accounts(&tenant.id).await?;
        accounts.sort_by_key(|a| a.carrier.as_str());
        Ok(accounts.iter().map(PullView::from).collect())
    }

    /// Creates or changes the tenant's account at a carrier's tracking API. The secret is
    /// required for a new account and kept when left out; so is the base URL (the carrier's
    /// documented host for a new account). The base URL follows the Push Config URL rules.
    pub async fn set_pull(
        &self,
        tenant: &str,
        carrier: &str,
        update: &PullUpdate,
    ) -> Result<PullView, AdminError> {
        let carrier = parse_carrier(carrier)?;
        let tenant = self.changeable(tenant).await?;
        pull_field("user", &update.user)?;
        if let Some(secret) = &update.secret {
            pull_field("secret", secret)?;
        }
        let current = self
            .store
            .pull_accounts(&tenant.id)
            .await?
            .into_iter()
            .find(|a| a.carrier == carrier);
        let base_url = match (&update.base_url, &current) {
            (Some(given), _) => given.clone(),
            (None, Some(current)) => current.base_url.clone(),
            (None, None) => default_base_url(carrier).to_owned(),
        };
        let base_url = crate::carriers::pull::BaseUrl::parse(&base_url, self.policy)
            .map_err(|e| AdminError::invalid("base_url", e.to_string()))?;
        let secret = match (&update.secret, current) {
            (Some(given), _) => crate::push::SecretValue::new(given.clone()),
            (None, Some(current)) => current.secret,
            (None, None) => {
                return Err(AdminError::invalid(
                    "secret",
                    format!(
                        "tenant {} has no {carrier} account yet: give its secret ({})",
                        tenant.id,
                        pull_secret_name(carrier)
                    ),
                ))
            }
        };
        let record = PullAccountRecord {
            carrier,
            base_url: base_url.as_url().to_string(),
            user: update.user.clone(),
            secret,
        };
        self.store.put_pull_account(&tenant.id, &record).await?;
        info!(tenant_id = %tenant.id, carrier = %carrier, base_url = %base_url, "pull account saved");
        Ok(PullView::from(&record))
    }

    /// Removes the tenant's account at a carrier's tracking API: the reconciler stops asking
    /// that carrier about the tenant's shipments.
    pub async fn remove_pull(&self, tenant: &str, carrier: &str) -> Result<(), AdminError> {
        let carrier = parse_carrier(carrier)?;
        let tenant = self.changeable(tenant).await?;
        if !self.store.remove_pull_account(&tenant.id, carrier).await? {
            return Err(AdminError::NotFound(format!(
                "tenant {} has no {carrier} pull account",
                tenant.id
            )));
        }
        info!(tenant_id = %tenant.id, carrier = %carrier, "pull account removed");
        Ok(())
    }

    /// Pushes a sample event with this status to the tenant's endpoint now, with its headers and
    /// signature, and reports what came back. Nothing is queued or logged as a delivery.
    pub async fn test_push(
        &self,
        tenant: &str,
        status: &str,
        now: DateTime<Utc>,
    ) -> Result<TestPushResult, AdminError> {
        let status: Status = status
            .parse()
            .map_err(|e: crate::model::UnknownName| AdminError::invalid("status", e.to_string()))?;
        let tenant = self.tenant(tenant).await?;
        let config = self.store.push_config(&tenant.id).await?.ok_or_else(|| {
            AdminError::NotFound(format!("tenant {} has no Push Config yet", tenant.id))
        })?;
        let event = sample_event(&tenant.id, status, now);
        let event_id = event.event_id.to_string();
        let started = Instant::now();
        let result = match build_request(&event, &config, now) {
            Ok(request) => self.pusher.push(&request).await,
            Err(reason) => PushResult::Refused { reason },
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let answer = match result {
            PushResult::Answered {
                status,
                body_prefix,
                latency,
                ..
            } => TestPushResult {
                outcome: if (200..300).contains(&status) {
                    "delivered"
                } else {
                    "failed"
                },
                http_status: Some(status),
                latency_ms: ms(latency),
                body_prefix,
                error: None,
                event_id,
            },
            PushResult::TimedOut { latency } => TestPushResult {
                outcome: "timed_out",
                http_status: None,
                latency_ms: ms(latency),
                body_prefix: String::new(),
                error: Some(format!(
                    "no answer within {} ms",
                    config.timeout.as_millis()
                )),
                event_id,
            },
            PushResult::ConnectFailed { reason, latency } => TestPushResult {
                outcome: "connect_failed",
                http_status: None,
                latency_ms: ms(latency),
                body_prefix: String::new(),
                error: Some(reason),
                event_id,
            },
            PushResult::Refused { reason } => TestPushResult {
                outcome: "refused",
                http_status: None,
                latency_ms: ms(started.elapsed()),
                body_prefix: String::new(),
                error: Some(reason),
                event_id,
            },
        };
        info!(tenant_id = %tenant.id, outcome = answer.outcome, http_status = answer.http_status, "test push");
        Ok(answer)
    }

    pub async fn deliveries(
        &self,
        tenant: &str,
        selection: &Selection,
    ) -> Result<Vec<AttemptView>, AdminError> {
        let tenant = self.tenant(tenant).await?;
        validate_selection(selection)?;
        let attempts = self.store.attempts(&tenant.id, selection).await?;
        Ok(attempts.iter().map(AttemptView::from).collect())
    }

    pub async fn dead_letters(
        &self,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetterView>, AdminError> {
        let tenant = match tenant {
            Some(t) => Some(self.tenant(t).await?.id),
            None => None,
        };
        Ok(self.store.dead_letters(tenant.as_ref(), limit).await?)
    }

    pub async fn redrive(&self, ids: Option<&[String]>) -> Result<u64, AdminError> {
        if ids.is_some_and(|ids| ids.is_empty()) {
            return Err(AdminError::invalid(
                "ids",
                "give at least one dead-letter id, or leave `ids` out to redrive all",
            ));
        }
        if let Some(ids) = ids {
            // Every id must name a dead letter, or nothing is moved: a mistyped id is an error
            // to see, not "0 moved" to wonder about.
            let known: std::collections::HashSet<String> = self
                .store
                .dead_letters(None, usize::MAX)
                .await?
                .into_iter()
                .map(|d| d.id)
                .collect();
            let unknown: Vec<&str> = ids
                .iter()
                .filter(|id| !known.contains(*id))
                .map(String::as_str)
                .collect();
            if !unknown.is_empty() {
                return Err(AdminError::NotFound(format!(
                    "no dead letter {}: nothing was redriven; `rms dlq list` (GET /admin/dead-letters) shows their ids",
                    unknown.join(", ")
                )));
            }
        }
        let moved = self.store.redrive(ids).await?;
        info!(moved, "dead letters redriven");
        Ok(moved)
    }

    /// Queues again every event of the tenant's selection that was attempted (from the delivery
    /// log) and is still kept; each is pushed again even if it was delivered. `progress` is told
    /// how many are done of how many.
    pub async fn replay(
        &self,
        tenant: &str,
        selection: &Selection,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<u64, AdminError> {
        let tenant = self.tenant(tenant).await?;
        validate_selection(selection)?;
        let attempts = self.store.attempts(&tenant.id, selection).await?;
        // Each event once, in the order of its first attempt.
        let mut seen = std::collections::HashSet::new();
        let firsts: Vec<Attempt> = attempts
            .iter()
            .filter(|a| seen.insert(&a.event_id))
            .cloned()
            .collect();
        let events = self.store.archived_events(&firsts).await?;
        let mut done = 0;
        for event in &events {
            if event.tenant_id != tenant.id.as_str() {
                continue;
            }
            self.store.enqueue_replay(event).await?;
            done += 1;
            progress(done, events.len());
        }
        info!(tenant_id = %tenant.id, replayed = done, "events replayed");
        Ok(u64::try_from(done).unwrap_or(u64::MAX))
    }

    /// The store's filter for a query: names checked (an unknown tenant is 404, an unknown
    /// carrier names the field), the time range in order.
    async fn quarantine_filter(
        &self,
        query: &QuarantineQuery,
        limit: usize,
    ) -> Result<QuarantineFilter, AdminError> {
        let carrier = match &query.carrier {
            Some(c) => Some(
                c.parse::<Carrier>()
                    .map_err(|e: crate::model::UnknownName| {
                        AdminError::invalid("carrier", e.to_string())
                    })?,
            ),
            None => None,
        };
        if let (Some(from), Some(to)) = (query.from, query.to) {
            if from > to {
                return Err(AdminError::invalid(
                    "from",
                    "the time range starts after it ends",
                ));
            }
        }
        let tenant = match &query.tenant {
            Some(t) => Some(self.tenant(t).await?.id),
            None => None,
        };
        Ok(QuarantineFilter {
            tenant,
            carrier,
            reason: query.reason.clone().filter(|r| !r.is_empty()),
            from: query.from,
            to: query.to,
            limit,
        })
    }

    /// Quarantined bodies (of every tenant, or one), oldest first.
    pub async fn quarantined(
        &self,
        query: &QuarantineQuery,
    ) -> Result<Vec<QuarantineView>, AdminError> {
        let limit = query.limit.unwrap_or(100);
        if !(1..=MAX_QUARANTINE_LIST).contains(&limit) {
            return Err(AdminError::invalid(
                "limit",
                format!("use 1 to {MAX_QUARANTINE_LIST}"),
            ));
        }
        let filter = self.quarantine_filter(query, limit).await?;
        Ok(self.store.quarantined(&filter).await?)
    }

    /// One quarantined body, with the body as text.
    pub async fn quarantined_body(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<QuarantineDetail, AdminError> {
        let tenant = self.tenant(tenant).await?;
        let found = self.find_quarantined(&tenant.id, id).await?;
        Ok(QuarantineDetail {
            body: String::from_utf8_lossy(&found.body).into_owned(),
            view: found.view,
        })
    }

    async fn find_quarantined(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<QuarantinedBody, AdminError> {
        let not_found = || {
            AdminError::NotFound(format!(
                "tenant {tenant} has no quarantined body {id} (kept 14 days after its last arrival)"
            ))
        };
        // An id is a SHA-256 in hex; anything else names nothing.
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        self.store
            .quarantined_body(tenant, &id.to_ascii_lowercase())
            .await?
            .ok_or_else(not_found)
    }

    /// Feeds quarantined bodies through ingest again (once their normaliser is fixed), as the
    /// carrier's push would have been: normalised with the tenant's settings and its first arrival
    /// as the receive time, claimed, queued. Each entry is kept, with its replay's outcome, so a
    /// second replay answers `duplicate`. `progress` is told how many are done of how many.
    pub async fn replay_quarantined(
        &self,
        selection: &QuarantineSelection,
        now: DateTime<Utc>,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<QuarantineReplay, AdminError> {
        let mut tenants: std::collections::HashMap<String, TenantAuth> =
            std::collections::HashMap::new();
        // Named ids are all checked before any is replayed: a typo replays nothing.
        let mut named = Vec::new();
        let entries: Vec<QuarantineView> = match selection {
            QuarantineSelection::Ids { tenant, ids } => {
                if ids.is_empty() {
                    return Err(AdminError::invalid(
                        "ids",
                        "give at least one quarantined body's id, or a filter instead of ids",
                    ));
                }
                let tenant = self.tenant(tenant).await?;
                let mut seen = std::collections::HashSet::new();
                for id in ids.iter().filter(|id| seen.insert(id.to_ascii_lowercase())) {
                    named.push(self.find_quarantined(&tenant.id, id).await?);
                }
                tenants.insert(tenant.id.to_string(), auth_of(&tenant));
                named.iter().map(|n| n.view.clone()).collect()
            }
            QuarantineSelection::Matching(query) => {
                let filter = self.quarantine_filter(query, usize::MAX).await?;
                self.store.quarantined(&filter).await?
            }
        };
        let mut report = QuarantineReplay::default();
        for (done, entry) in entries.iter().enumerate() {
            if let Some(result) = self
                .replay_one(entry, &mut named, &mut tenants, now)
                .await?
            {
                report.add(result);
            }
            progress(done + 1, entries.len());
        }
        info!(
            accepted = report.accepted,
            duplicate = report.duplicate,
            invalid = report.invalid,
            unavailable = report.unavailable,
            in_flight = report.in_flight,
            "quarantine replay done"
        );
        Ok(report)
    }

    /// Replays one listed entry; `None` if it is gone (expired since it was listed).
    async fn replay_one(
        &self,
        entry: &QuarantineView,
        named: &mut Vec<QuarantinedBody>,
        tenants: &mut std::collections::HashMap<String, TenantAuth>,
        now: DateTime<Utc>,
    ) -> Result<Option<QuarantineReplayResult>, AdminError> {
        let Ok(tenant_id) = TenantId::parse(&entry.tenant_id) else {
            return Ok(None);
        };
        let body = match named.iter().position(|n| n.view.id == entry.id) {
            Some(i) => named.swap_remove(i).body,
            None => match self.store.quarantined_body(&tenant_id, &entry.id).await? {
                Some(found) => found.body,
                None => return Ok(None),
            },
        };
        let auth = match tenants.get(tenant_id.as_str()) {
            Some(auth) => Some(auth.clone()),
            None => {
                let auth = self.store.tenant(&tenant_id).await?.map(|t| auth_of(&t));
                if let Some(auth) = &auth {
                    tenants.insert(tenant_id.to_string(), auth.clone());
                }
                auth
            }
        };
        let (outcome, reason, event_ids) = match auth {
            Some(auth) => ReplayOutcome::of(
                self.reingest
                    .reingest(&auth, entry.carrier, &body, entry.first_received_at)
                    .await,
            ),
            None => (
                ReplayOutcome::Invalid,
                Some(format!("tenant {tenant_id} no longer exists")),
                Vec::new(),
            ),
        };
        self.store
            .note_replay(&tenant_id, &entry.id, outcome, now)
            .await?;
        info!(tenant_id = %tenant_id, carrier = %entry.carrier, id = %entry.id, outcome = %outcome.as_str(), "quarantined body replayed");
        Ok(Some(QuarantineReplayResult {
            id: entry.id.clone(),
            tenant_id: entry.tenant_id.clone(),
            outcome,
            reason,
            event_ids: event_ids.iter().map(ToString::to_string).collect(),
        }))
    }

    /// The tenant's delivery circuit (`circuit.rs`): closed, open (failing fast), or half-open
    /// (a probe is due or in flight).
    pub async fn circuit(&self, tenant: &str) -> Result<CircuitView, AdminError> {
        let tenant = self.tenant(tenant).await?;
        let open = self.store.open_circuit(&tenant.id).await?;
        Ok(CircuitView::new(open, Utc::now()))
    }

    /// The tenant's carrier-status view: for each carrier, when it last sent a panel test, an
    /// accepted event and a rejected body (with the reason), and its requests per hour over the
    /// last 24 hours.
    pub async fn carrier_activity(&self, tenant: &str) -> Result<Vec<CarrierActivity>, AdminError> {
        let tenant = self.tenant(tenant).await?;
        let since = Utc::now() - ACTIVITY_WINDOW;
        Ok(self.store.carrier_activity(&tenant.id, since).await?)
    }

    /// The shipments without news for longer than `rules` allow their status (of `tenant`, or of
    /// every enabled tenant), at every carrier; the longest without news first. What the
    /// reconciler could not bring up to date either: ask the carrier, or the client.
    pub async fn stale_shipments(
        &self,
        tenant: Option<&str>,
        rules: &QuietRules,
    ) -> Result<Vec<StaleShipment>, AdminError> {
        let tenants = match tenant {
            Some(id) => vec![self.tenant(id).await?],
            None => self
                .tenants()
                .await?
                .into_iter()
                .filter(|t| t.enabled)
                .collect(),
        };
        let now = Utc::now();
        let mut stale = Vec::new();
        for tenant in &tenants {
            for carrier in Carrier::ALL {
                let found = self
                    .store
                    .stale_shipments(&tenant.id, carrier, rules, now)
                    .await?;
                stale.extend(found.into_iter().map(|s| StaleShipment::of(&tenant.id, s)));
            }
        }
        stale.sort_by_key(StaleShipment::last_news_at);
        Ok(stale)
    }

    /// The delivery queue's size, across tenants.
    pub async fn queue_depth(&self) -> Result<QueueDepth, AdminError> {
        Ok(self.store.queue_depth().await?)
    }

    /// The tenant's pushes of the last [`DELIVERY_HOURS`] hours, hour by hour (oldest first; the
    /// last is the hour `now` is in), from the delivery log: delivered, and failed (an attempt to
    /// be retried, or dead-lettered). Entries that are no push (superseded, reconciled) are not
    /// counted.
    pub async fn deliveries_by_hour(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<HourOfDeliveries>, AdminError> {
        let tenant = self.tenant(tenant).await?;
        let this_hour = now
            .duration_trunc(chrono::Duration::hours(1))
            .unwrap_or(now);
        let first = this_hour - chrono::Duration::hours(DELIVERY_HOURS - 1);
        let mut hours: Vec<HourOfDeliveries> = (0..DELIVERY_HOURS)
            .map(|i| HourOfDeliveries {
                hour: first + chrono::Duration::hours(i),
                delivered: 0,
                failed: 0,
            })
            .collect();
        let selection = Selection::Between {
            from: first,
            to: now,
        };
        for attempt in self.store.attempts(&tenant.id, &selection).await? {
            let Ok(index) = usize::try_from((attempt.at - first).num_hours()) else {
                continue;
            };
            let Some(hour) = hours.get_mut(index) else {
                continue;
            };
            match attempt.outcome {
                AttemptOutcome::Delivered => hour.delivered += 1,
                AttemptOutcome::Retry | AttemptOutcome::DeadLetter => hour.failed += 1,
                AttemptOutcome::Superseded | AttemptOutcome::Reconciled => {}
            }
        }
        Ok(hours)
    }
}

/// How far back the carrier-status view counts requests per hour.
pub const ACTIVITY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

fn auth_of(tenant: &Tenant) -> TenantAuth {
    TenantAuth {
        enabled: tenant.enabled,
        tenant_id: tenant.id.clone(),
        include_source: tenant.include_source,
    }
}

fn parse_carrier(carrier: &str) -> Result<Carrier, AdminError> {
    carrier
        .parse()
        .map_err(|e: crate::model::UnknownName| AdminError::invalid("carrier", e.to_string()))
}

/// What a carrier calls the secret of its tracking API account.
fn pull_secret_name(carrier: Carrier) -> &'static str {
    match carrier {
        Carrier::Clickpost => "the API key",
        Carrier::Shiprocket => "the API user's password",
        Carrier::Shipway => "the licence key",
    }
}

fn tenant_id(id: &str) -> Result<TenantId, AdminError> {
    // A malformed id cannot name an existing tenant.
    TenantId::parse(id).map_err(|_| AdminError::NotFound(format!("no tenant {id:?}")))
}

fn validate_selection(selection: &Selection) -> Result<(), AdminError> {
    match selection {
        Selection::Awb(awb) if awb.trim().is_empty() => {
            Err(AdminError::invalid("awb", "give the shipment's AWB"))
        }
        Selection::Between { from, to } if from > to => Err(AdminError::invalid(
            "from",
            "the time range starts after it ends",
        )),
        Selection::Between { from, to } if *to - *from > chrono::Duration::days(31) => Err(
            AdminError::invalid("to", "a time range can span at most 31 days"),
        ),
        _ => Ok(()),
    }
}

fn generate_signing_secret() -> SigningSecret {
    let mut key = [0u8; 32];
    fill_random(&mut key);
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(key);
    // 32 random bytes always make a valid secret.
    SigningSecret::parse(&text).unwrap_or_else(|_| unreachable!("32 bytes is a valid key"))
}

/// The sample event of a test push: a forward shipment `TEST-<status>` with an id that says so.
pub fn sample_event(tenant: &TenantId, status: Status, now: DateTime<Utc>) -> CanonicalEvent {
    let raw = now.to_rfc3339();
    let mut event = CanonicalEvent {
        schema: crate::model::SCHEMA_ID.to_owned(),
        event_id: EventId::unset(),
        tenant_id: tenant.to_string(),
        carrier: Carrier::Clickpost,
        courier: Some("RMS test".to_owned()),
        awb: Some(format!("TEST-{}", status.as_str().to_ascii_uppercase())),
        order_id: Some("TEST-ORDER".to_owned()),
        reference_number: None,
        shipment_type: crate::model::ShipmentType::Forward,
        forward_awb: None,
        forward_reference_number: None,
        status,
        carrier_status: crate::model::CarrierStatus {
            code: "TEST".to_owned(),
            description: Some("RMS Notify test push".to_owned()),
            raw: None,
            notification_event_id: None,
        },
        location: None,
        remark: Some("a test notification sent from the RMS Push Config".to_owned()),
        event_time: now,
        event_time_raw: raw,
        received_at: now,
        latest_status: None,
        is_stale: false,
        ndr: None,
        npr: None,
        edd: None,
        items: Vec::new(),
        source: None,
        legacy_ids: Default::default(),
    };
    event.event_id = EventId::test(now);
    event
}

// A shared handle to a store is the store (`rms serve` shares one SQLite store everywhere).
impl<T: AdminStore> AdminStore for std::sync::Arc<T> {
    fn create_tenant(
        &self,
        tenant: &Tenant,
    ) -> impl Future<Output = Result<bool, Unavailable>> + Send {
        (**self).create_tenant(tenant)
    }
    fn tenants(&self) -> impl Future<Output = Result<Vec<Tenant>, Unavailable>> + Send {
        (**self).tenants()
    }
    fn tenant(
        &self,
        id: &TenantId,
    ) -> impl Future<Output = Result<Option<Tenant>, Unavailable>> + Send {
        (**self).tenant(id)
    }
    fn update_tenant(
        &self,
        tenant: &Tenant,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).update_tenant(tenant)
    }
    fn credentials(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<StoredCredential>, Unavailable>> + Send {
        (**self).credentials(tenant)
    }
    fn credential_owner(
        &self,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> impl Future<Output = Result<Option<TenantId>, Unavailable>> + Send {
        (**self).credential_owner(carrier, digest)
    }
    fn add_credential(
        &self,
        tenant: &TenantId,
        credential: &StoredCredential,
    ) -> impl Future<Output = Result<bool, Unavailable>> + Send {
        (**self).add_credential(tenant, credential)
    }
    fn remove_credential(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).remove_credential(tenant, carrier, digest)
    }
    fn push_config(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Option<PushConfig>, Unavailable>> + Send {
        (**self).push_config(tenant)
    }
    fn put_push_config(
        &self,
        tenant: &TenantId,
        config: &PushConfig,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).put_push_config(tenant, config)
    }
    fn pull_accounts(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Vec<PullAccountRecord>, Unavailable>> + Send {
        (**self).pull_accounts(tenant)
    }
    fn put_pull_account(
        &self,
        tenant: &TenantId,
        account: &PullAccountRecord,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).put_pull_account(tenant, account)
    }
    fn remove_pull_account(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
    ) -> impl Future<Output = Result<bool, Unavailable>> + Send {
        (**self).remove_pull_account(tenant, carrier)
    }
    fn attempts(
        &self,
        tenant: &TenantId,
        selection: &Selection,
    ) -> impl Future<Output = Result<Vec<Attempt>, Unavailable>> + Send {
        (**self).attempts(tenant, selection)
    }
    fn dead_letters(
        &self,
        tenant: Option<&TenantId>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DeadLetterView>, Unavailable>> + Send {
        (**self).dead_letters(tenant, limit)
    }
    fn redrive(
        &self,
        ids: Option<&[String]>,
    ) -> impl Future<Output = Result<u64, Unavailable>> + Send {
        (**self).redrive(ids)
    }
    fn archived_events(
        &self,
        attempts: &[Attempt],
    ) -> impl Future<Output = Result<Vec<CanonicalEvent>, Unavailable>> + Send {
        (**self).archived_events(attempts)
    }
    fn enqueue_replay(
        &self,
        event: &CanonicalEvent,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).enqueue_replay(event)
    }
    fn quarantined(
        &self,
        filter: &QuarantineFilter,
    ) -> impl Future<Output = Result<Vec<QuarantineView>, Unavailable>> + Send {
        (**self).quarantined(filter)
    }
    fn quarantined_body(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> impl Future<Output = Result<Option<QuarantinedBody>, Unavailable>> + Send {
        (**self).quarantined_body(tenant, id)
    }
    fn note_replay(
        &self,
        tenant: &TenantId,
        id: &str,
        outcome: ReplayOutcome,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).note_replay(tenant, id, outcome, at)
    }
    fn carrier_activity(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<CarrierActivity>, Unavailable>> + Send {
        (**self).carrier_activity(tenant, since)
    }
    fn stale_shipments(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        rules: &QuietRules,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<QuietShipment>, Unavailable>> + Send {
        (**self).stale_shipments(tenant, carrier, rules, now)
    }
    fn queue_depth(&self) -> impl Future<Output = Result<QueueDepth, Unavailable>> + Send {
        (**self).queue_depth()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::adapters::memory::{MemoryAdmin, ScriptedPusher, ScriptedReingest};
    use crate::ports::{AttemptOutcome, PushRequest};
    use crate::reconcile::PullAccount;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
    }

    type TestAdmin = Admin<MemoryAdmin, ScriptedPusher, ScriptedReingest>;

    fn admin(script: Vec<PushResult>) -> TestAdmin {
        Admin {
            store: MemoryAdmin::default(),
            pusher: ScriptedPusher::new(script),
            reingest: ScriptedReingest::default(),
            policy: TargetPolicy::default(),
        }
    }

    async fn with_tenant(script: Vec<PushResult>) -> TestAdmin {
        let admin = admin(script);
        admin.create_tenant("acme", None, now()).await.unwrap();
        admin
    }

    fn update(url: &str) -> PushUpdate {
        PushUpdate {
            url: url.to_owned(),
            ..PushUpdate::default()
        }
    }

    fn field_of(result: Result<impl std::fmt::Debug, AdminError>) -> (String, String) {
        match result {
            Err(AdminError::Invalid { field, message }) => (field, message),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_tenant_is_created_once_and_a_bad_id_names_the_field() {
        let admin = with_tenant(vec![]).await;
        assert!(matches!(
            admin.create_tenant("acme", None, now()).await,
            Err(AdminError::Conflict(_))
        ));
        let (field, _) = field_of(admin.create_tenant("no spaces", None, now()).await);
        assert_eq!(field, "id");
        assert!(matches!(
            admin.tenant("ghost").await,
            Err(AdminError::NotFound(_))
        ));
        let disabled = admin
            .update_tenant("acme", Some(false), None)
            .await
            .unwrap();
        assert!(!disabled.enabled);
        assert!(disabled.include_source);
    }

    #[tokio::test]
    async fn a_rotation_keeps_two_keys_live_and_never_shows_them() {
        let admin = with_tenant(vec![]).await;
        let old = admin
            .add_key("acme", "clickpost", Some("old-key-0123456789"), now())
            .await
            .unwrap();
        assert_eq!(old.key, None, "a given key is not echoed");
        let new = admin
            .add_key("acme", "clickpost", None, now())
            .await
            .unwrap();
        let generated = new.key.clone().unwrap();
        assert_eq!(generated.len(), 48);
        assert!(matches!(
            admin.add_key("acme", "clickpost", None, now()).await,
            Err(AdminError::Conflict(m)) if m.contains("revoke")
        ));
        let keys = admin.keys("acme").await.unwrap();
        assert_eq!(keys.len(), 2);
        let listed = serde_json::to_string(&keys).unwrap();
        assert!(!listed.contains("old-key-0123456789") && !listed.contains(&generated));
        admin
            .revoke_key("acme", "clickpost", &old.view.key_id)
            .await
            .unwrap();
        assert_eq!(admin.keys("acme").await.unwrap(), vec![new.view.clone()]);
        assert!(matches!(
            admin
                .revoke_key("acme", "clickpost", &old.view.key_id)
                .await,
            Err(AdminError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_key_belongs_to_one_tenant() {
        let admin = with_tenant(vec![]).await;
        admin.create_tenant("other", None, now()).await.unwrap();
        admin
            .add_key("acme", "shipway", Some("shared-key-0123456789"), now())
            .await
            .unwrap();
        assert!(matches!(
            admin.add_key("other", "shipway", Some("shared-key-0123456789"), now()).await,
            Err(AdminError::Conflict(m)) if m.contains("another tenant")
        ));
        let (field, message) = field_of(admin.add_key("acme", "dhl", None, now()).await);
        assert_eq!(field, "carrier");
        assert!(message.contains("clickpost"), "{message}");
    }

    #[tokio::test]
    async fn the_store_never_gives_a_registered_key_to_another_tenant() {
        // What makes a key one tenant's even when two requests race past the owner check.
        let admin = with_tenant(vec![]).await;
        let (acme, other) = (
            TenantId::parse("acme").unwrap(),
            TenantId::parse("other").unwrap(),
        );
        let credential = StoredCredential {
            carrier: Carrier::Clickpost,
            digest: crate::auth::Credential::new("raced-key-0123456789").digest(),
            added_at: now(),
        };
        assert!(admin
            .store
            .add_credential(&acme, &credential)
            .await
            .unwrap());
        assert!(!admin
            .store
            .add_credential(&other, &credential)
            .await
            .unwrap());
        assert!(!admin
            .store
            .add_credential(&acme, &credential)
            .await
            .unwrap());
        assert_eq!(
            admin
                .store
                .credential_owner(Carrier::Clickpost, &credential.digest)
                .await
                .unwrap(),
            Some(acme)
        );
        assert!(admin.store.credentials(&other).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_tenant_that_rms_toml_defines_is_read_but_not_changed_through_the_admin_api() {
        let admin = with_tenant(vec![]).await;
        let managed = Tenant {
            id: TenantId::parse("filed").unwrap(),
            enabled: true,
            include_source: true,
            created_at: now(),
            file_managed: true,
        };
        assert!(admin.store.create_tenant(&managed).await.unwrap());
        let key = StoredCredential {
            carrier: Carrier::Shipway,
            digest: crate::auth::Credential::new("filed-shipway-key-0123").digest(),
            added_at: now(),
        };
        admin.store.add_credential(&managed.id, &key).await.unwrap();
        let key_id = KeyView::from(&key).key_id;
        let refusals: Vec<(&str, Result<(), AdminError>)> = vec![
            (
                "create",
                admin.create_tenant("filed", None, now()).await.map(drop),
            ),
            (
                "disable",
                admin
                    .update_tenant("filed", Some(false), None)
                    .await
                    .map(drop),
            ),
            (
                "source",
                admin
                    .update_tenant("filed", None, Some(false))
                    .await
                    .map(drop),
            ),
            (
                "add key",
                admin
                    .add_key("filed", "clickpost", None, now())
                    .await
                    .map(drop),
            ),
            (
                "revoke key",
                admin.revoke_key("filed", "shipway", &key_id).await,
            ),
            (
                "push",
                admin
                    .set_push("filed", &update("https://client.example/hook"))
                    .await
                    .map(drop),
            ),
        ];
        for (what, refused) in refusals {
            match refused {
                Err(AdminError::Conflict(message)) => assert!(
                    message.starts_with("tenant filed is managed by rms.toml")
                        && message.contains("edit its [[tenants]] entry in rms.toml and restart"),
                    "{what}: {message}"
                ),
                other => panic!("{what}: expected a 409, got {other:?}"),
            }
        }
        let read = admin.tenant("filed").await.unwrap();
        assert_eq!(read, managed, "nothing changed");
        assert_eq!(admin.keys("filed").await.unwrap().len(), 1);
        assert!(matches!(
            admin.push("filed").await,
            Err(AdminError::NotFound(_))
        ));
        // A tenant of the admin API is changed as before.
        assert!(admin.update_tenant("acme", Some(false), None).await.is_ok());
    }

    #[tokio::test]
    async fn a_push_url_is_refused_by_the_policy_the_pusher_has() {
        let admin = with_tenant(vec![]).await;
        for (url, reason) in [
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://[::ffff:127.0.0.1]/hook", "loopback"),
            ("https://metadata.google.internal/x", ".internal"),
            ("https://2130706433/hook", "127.0.0.1 is a loopback address"),
        ] {
            let (field, message) = field_of(admin.set_push("acme", &update(url)).await);
            assert_eq!(field, "url");
            assert!(message.contains(reason), "{url}: {message}");
        }
        let local = Admin {
            policy: TargetPolicy::LOCAL,
            ..admin
        };
        let saved = local
            .set_push("acme", &update("http://2130706433:9000/hook?token=abc"))
            .await
            .unwrap();
        assert_eq!(saved.view.url, "http://127.0.0.1:9000/hook?token=abc");
    }

    #[tokio::test]
    async fn push_config_input_is_validated_field_by_field() {
        let admin = with_tenant(vec![]).await;
        let cases: Vec<(PushUpdate, &str, &str)> = vec![
            (update("not a url"), "url", "absolute"),
            (update("http://client.example/hook"), "url", "https"),
            (
                update("https://user:pw@client.example/hook"),
                "url",
                "headers",
            ),
            (
                PushUpdate {
                    headers: Some([("Bad Name".to_owned(), "v".to_owned())].into()),
                    ..update("https://client.example/hook")
                },
                "headers.Bad Name",
                "header name",
            ),
            (
                PushUpdate {
                    headers: Some([("X-Key".to_owned(), "a\r\nX-Evil: 1".to_owned())].into()),
                    ..update("https://client.example/hook")
                },
                "headers.X-Key",
                "line break",
            ),
            (
                PushUpdate {
                    statuses: vec!["DELIVERD".to_owned()],
                    ..update("https://client.example/hook")
                },
                "statuses",
                "RTO_DELIVERED",
            ),
            (
                PushUpdate {
                    timeout_ms: Some(60_000),
                    ..update("https://client.example/hook")
                },
                "timeout_ms",
                "1000 to 30000",
            ),
            (
                PushUpdate {
                    headers: Some(
                        [
                            ("X-Key".to_owned(), "a".to_owned()),
                            ("x-key".to_owned(), "b".to_owned()),
                        ]
                        .into(),
                    ),
                    ..update("https://client.example/hook")
                },
                "headers.x-key",
                "case-insensitive",
            ),
            (
                PushUpdate {
                    delivery: Some("newest".to_owned()),
                    ..update("https://client.example/hook")
                },
                "delivery",
                "valid values are: every, latest",
            ),
        ];
        for (input, field, hint) in cases {
            let (got_field, message) = field_of(admin.set_push("acme", &input).await);
            assert_eq!(got_field, field, "{message}");
            assert!(message.contains(hint), "{field}: {message}");
        }
        assert!(matches!(
            admin.push("acme").await,
            Err(AdminError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn the_delivery_mode_is_every_by_default_and_kept_until_changed() {
        let admin = with_tenant(vec![]).await;
        let saved = admin
            .set_push("acme", &update("https://client.example/hook"))
            .await
            .unwrap();
        assert_eq!(saved.view.delivery, Delivery::Every);
        let latest = PushUpdate {
            delivery: Some("Latest".to_owned()),
            ..update("https://client.example/hook")
        };
        assert_eq!(
            admin.set_push("acme", &latest).await.unwrap().view.delivery,
            Delivery::Latest
        );
        // A change that does not name it keeps it.
        admin
            .set_push("acme", &update("https://client.example/v2"))
            .await
            .unwrap();
        let view = admin.push("acme").await.unwrap();
        assert_eq!(view.delivery, Delivery::Latest);
        assert_eq!(
            serde_json::to_value(&view).unwrap()["delivery"],
            "latest",
            "as the API shows it"
        );
    }

    #[tokio::test]
    async fn header_values_and_the_secret_are_write_only() {
        let admin = with_tenant(vec![]).await;
        let saved = admin
            .set_push(
                "acme",
                &PushUpdate {
                    headers: Some(
                        [("Authorization".to_owned(), "Bearer s3cr3t".to_owned())].into(),
                    ),
                    statuses: vec!["delivered".to_owned()],
                    signing_secret: Some(SecretAction::Generate),
                    ..update("https://client.example/hook")
                },
            )
            .await
            .unwrap();
        let secret = saved.signing_secret_value.clone().unwrap();
        assert!(secret.starts_with("whsec_"));
        assert!(!serde_json::to_string(&saved).unwrap().contains("s3cr3t"));
        let view = admin.push("acme").await.unwrap();
        let shown = serde_json::to_string(&view).unwrap();
        assert!(
            !shown.contains("s3cr3t") && !shown.contains(&secret[6..]),
            "{shown}"
        );
        assert_eq!(view.headers, vec!["Authorization"]);
        assert!(view.signing_secret);
        // Saving again without headers or a secret action keeps both.
        admin
            .set_push("acme", &update("https://client.example/v2"))
            .await
            .unwrap();
        let kept = admin
            .store
            .push_config(&TenantId::parse("acme").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.headers[0].1.expose(), "Bearer s3cr3t");
        assert_eq!(kept.signing_secret.unwrap().expose(), secret);
    }

    fn pull_update(user: &str, secret: Option<&str>, base_url: Option<&str>) -> PullUpdate {
        PullUpdate {
            base_url: base_url.map(str::to_owned),
            user: user.to_owned(),
            secret: secret.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn a_pull_secret_is_write_only_and_kept_when_left_out() {
        let admin = with_tenant(vec![]).await;
        let saved = admin
            .set_pull(
                "acme",
                "clickpost",
                &pull_update("acme-enterprise", Some("k-s3cr3t"), None),
            )
            .await
            .unwrap();
        assert_eq!(
            saved,
            PullView {
                carrier: Carrier::Clickpost,
                base_url: "https://api.clickpost.in".into(),
                user: "acme-enterprise".into(),
                secret_set: true,
            }
        );
        assert!(!format!("{:?}", pull_update("u", Some("k-s3cr3t"), None)).contains("s3cr3t"));
        // A new user and base URL, no secret: the secret is kept.
        admin
            .set_pull(
                "acme",
                "clickpost",
                &pull_update("acme-2", None, Some("https://eu.clickpost.example/")),
            )
            .await
            .unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let stored = admin.store.pull_accounts(&acme).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].secret.expose(), "k-s3cr3t");
        assert_eq!(stored[0].user, "acme-2");
        // Left out again, the base URL is kept too.
        admin
            .set_pull("acme", "clickpost", &pull_update("acme-3", None, None))
            .await
            .unwrap();
        let shown = admin.pull("acme").await.unwrap();
        assert_eq!(shown[0].base_url, "https://eu.clickpost.example");
        let json = serde_json::to_string(&shown).unwrap();
        assert!(!json.contains("s3cr3t"), "{json}");
        let account = PullAccount::from_record(
            &admin.store.pull_accounts(&acme).await.unwrap()[0],
            admin.policy,
        );
        assert!(
            account.is_ok(),
            "what is saved is what the reconciler can use"
        );
    }

    #[tokio::test]
    async fn a_pull_account_names_what_is_wrong() {
        let admin = with_tenant(vec![]).await;
        let cases = [
            ("dhl", pull_update("u", Some("s"), None), "carrier"),
            ("shipway", pull_update("u", None, None), "secret"),
            ("shipway", pull_update(" ", Some("s"), None), "user"),
            ("shipway", pull_update("u", Some("a\nb"), None), "secret"),
            (
                "shipway",
                pull_update("u", Some("s"), Some("http://127.0.0.1:9/")),
                "base_url",
            ),
            (
                "shipway",
                pull_update("u", Some("s"), Some("https://shipway.in/api?x=1")),
                "base_url",
            ),
        ];
        for (carrier, update, field) in cases {
            let (named, message) = field_of(admin.set_pull("acme", carrier, &update).await);
            assert_eq!(named, field, "{message}");
        }
        let (_, message) = field_of(
            admin
                .set_pull(
                    "acme",
                    "shiprocket",
                    &pull_update("ops@acme.in", None, None),
                )
                .await,
        );
        assert!(message.contains("password"), "{message}");
        assert!(admin.pull("acme").await.unwrap().is_empty());
        assert!(matches!(
            admin.pull("ghost").await,
            Err(AdminError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_pull_account_is_removed_once() {
        let admin = with_tenant(vec![]).await;
        admin
            .set_pull("acme", "shipway", &pull_update("acme", Some("lic"), None))
            .await
            .unwrap();
        admin.remove_pull("acme", "shipway").await.unwrap();
        assert!(admin.pull("acme").await.unwrap().is_empty());
        assert!(matches!(
            admin.remove_pull("acme", "shipway").await,
            Err(AdminError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_file_managed_tenants_pull_accounts_are_refused() {
        let admin = admin(vec![]);
        let managed = Tenant {
            id: TenantId::parse("filed").unwrap(),
            enabled: true,
            include_source: true,
            created_at: now(),
            file_managed: true,
        };
        assert!(admin.store.create_tenant(&managed).await.unwrap());
        assert!(matches!(
            admin
                .set_pull("filed", "shipway", &pull_update("u", Some("s"), None))
                .await,
            Err(AdminError::Conflict(m)) if m.contains("rms.toml")
        ));
        assert!(matches!(
            admin.remove_pull("filed", "shipway").await,
            Err(AdminError::Conflict(_))
        ));
        assert!(admin.pull("filed").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_test_push_sends_a_signed_sample_and_reports_the_answer() {
        let admin = with_tenant(vec![PushResult::Answered {
            status: 202,
            retry_after: None,
            body_prefix: "ok".to_owned(),
            latency: Duration::from_millis(12),
        }])
        .await;
        admin
            .set_push(
                "acme",
                &PushUpdate {
                    headers: Some([("X-Client".to_owned(), "acme".to_owned())].into()),
                    signing_secret: Some(SecretAction::Generate),
                    ..update("https://client.example/hook")
                },
            )
            .await
            .unwrap();
        let result = admin
            .test_push("acme", "rto_delivered", now())
            .await
            .unwrap();
        assert_eq!(result.outcome, "delivered");
        assert_eq!(result.http_status, Some(202));
        assert_eq!(result.latency_ms, 12);
        assert!(result.event_id.starts_with("evt_test_"));
        let sent: Vec<PushRequest> = admin.pusher.requests();
        let header = |n: &str| {
            sent[0]
                .headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("X-Client").as_deref(), Some("acme"));
        assert!(header("webhook-signature").unwrap().starts_with("v1,"));
        let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
        assert_eq!(body["status"], "RTO_DELIVERED");
        let (field, _) = field_of(admin.test_push("acme", "lost-ish", now()).await);
        assert_eq!(field, "status");
    }

    #[tokio::test]
    async fn replay_queues_each_attempted_event_once() {
        let admin = with_tenant(vec![]).await;
        let event = sample_event(&TenantId::parse("acme").unwrap(), Status::Delivered, now());
        for attempt in 1..=2 {
            admin.store.add_attempt(Attempt {
                event_id: event.event_id.clone(),
                tenant_id: "acme".into(),
                awb: event.awb.clone().unwrap(),
                status: Status::Delivered,
                attempt,
                outcome: AttemptOutcome::Retry,
                http_status: Some(503),
                latency_ms: 5,
                error: None,
                at: now(),
            });
        }
        admin.store.archive(event.clone());
        let seen = std::sync::Mutex::new(Vec::new());
        let replayed = admin
            .replay(
                "acme",
                &Selection::Awb(event.awb.clone().unwrap()),
                &|done, of| seen.lock().unwrap().push((done, of)),
            )
            .await
            .unwrap();
        assert_eq!(replayed, 1);
        assert_eq!(admin.store.replayed(), vec![event]);
        assert_eq!(*seen.lock().unwrap(), vec![(1, 1)]);
        let (field, _) = field_of(
            admin
                .replay(
                    "acme",
                    &Selection::Between {
                        from: now(),
                        to: now() - chrono::Duration::hours(1),
                    },
                    &|_, _| {},
                )
                .await,
        );
        assert_eq!(field, "from");
    }

    fn digest_of(body: &str) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(body.as_bytes()))
    }

    fn quarantined(
        tenant: &str,
        carrier: Carrier,
        body: &str,
        reason: &str,
        hours_ago: i64,
    ) -> QuarantinedBody {
        let at = now() - chrono::Duration::hours(hours_ago);
        QuarantinedBody {
            view: QuarantineView {
                id: digest_of(body),
                tenant_id: tenant.to_owned(),
                carrier,
                reason: reason.to_owned(),
                first_received_at: at,
                last_received_at: at + chrono::Duration::minutes(30),
                times: 2,
                last_replay: None,
            },
            body: body.as_bytes().to_vec(),
        }
    }

    fn accepted(queued: &[&str], duplicates: &[&str]) -> IngestOutcome {
        let ids = |ids: &[&str]| ids.iter().map(|id| EventId::from_stored(*id)).collect();
        IngestOutcome::Accepted {
            queued: ids(queued),
            duplicates: ids(duplicates),
        }
    }

    #[tokio::test]
    async fn a_replayed_body_goes_through_ingest_as_its_tenant_and_is_kept() {
        let mut admin = with_tenant(vec![]).await;
        admin.reingest =
            ScriptedReingest::new(vec![accepted(&["evt_1"], &[]), accepted(&[], &["evt_1"])]);
        admin
            .update_tenant("acme", None, Some(false))
            .await
            .unwrap();
        let entry = quarantined("acme", Carrier::Shipway, r#"{"awb":"1"}"#, "no status", 5);
        admin.store.add_quarantined(entry.clone());
        let ids = QuarantineSelection::Ids {
            tenant: "acme".into(),
            ids: vec![entry.view.id.to_ascii_uppercase()],
        };
        let seen = std::sync::Mutex::new(Vec::new());
        let first = admin
            .replay_quarantined(&ids, now(), &|done, of| {
                seen.lock().unwrap().push((done, of))
            })
            .await
            .unwrap();
        assert_eq!(first.accepted, 1);
        assert_eq!(first.results[0].outcome, ReplayOutcome::Accepted);
        assert_eq!(first.results[0].event_ids, ["evt_1"]);
        assert_eq!(*seen.lock().unwrap(), vec![(1, 1)]);
        let (tenant, carrier, body, received_at) = admin.reingest.calls().remove(0);
        assert!(!tenant.include_source, "the tenant's settings are used");
        assert_eq!((carrier, body), (Carrier::Shipway, entry.body.clone()));
        assert_eq!(received_at, entry.view.first_received_at);

        let again = admin
            .replay_quarantined(&ids, now(), &|_, _| {})
            .await
            .unwrap();
        assert_eq!((again.accepted, again.duplicate), (0, 1));
        assert!(!again.has_failures());
        let kept = admin
            .quarantined_body("acme", &entry.view.id)
            .await
            .unwrap();
        assert_eq!(
            kept.view.last_replay,
            Some(ReplayNote {
                at: now(),
                outcome: "duplicate".into()
            })
        );
        assert_eq!(kept.body, r#"{"awb":"1"}"#);
    }

    #[tokio::test]
    async fn an_unknown_id_replays_nothing() {
        let admin = with_tenant(vec![]).await;
        let entry = quarantined("acme", Carrier::Clickpost, "{}", "no waybill", 1);
        admin.store.add_quarantined(entry.clone());
        for unknown in ["not-a-digest", &"0".repeat(64)] {
            let ids = QuarantineSelection::Ids {
                tenant: "acme".into(),
                ids: vec![entry.view.id.clone(), unknown.to_owned()],
            };
            assert!(matches!(
                admin.replay_quarantined(&ids, now(), &|_, _| {}).await,
                Err(AdminError::NotFound(_))
            ));
        }
        assert!(admin.reingest.calls().is_empty());
        let (field, _) = field_of(
            admin
                .replay_quarantined(
                    &QuarantineSelection::Ids {
                        tenant: "acme".into(),
                        ids: vec![],
                    },
                    now(),
                    &|_, _| {},
                )
                .await,
        );
        assert_eq!(field, "ids");
    }

    #[tokio::test]
    async fn a_filtered_replay_takes_every_match_of_every_tenant() {
        let mut admin = with_tenant(vec![]).await;
        admin.create_tenant("globex", None, now()).await.unwrap();
        admin.reingest = ScriptedReingest::new(vec![
            IngestOutcome::Invalid {
                reason: "status: unknown".into(),
            },
            IngestOutcome::Unavailable,
        ]);
        admin.store.add_quarantined(quarantined(
            "acme",
            Carrier::Shipway,
            "a",
            "status: unknown",
            3,
        ));
        admin.store.add_quarantined(quarantined(
            "globex",
            Carrier::Shipway,
            "b",
            "Status: unknown",
            2,
        ));
        admin.store.add_quarantined(quarantined(
            "acme",
            Carrier::Clickpost,
            "c",
            "status: unknown",
            1,
        ));
        let report = admin
            .replay_quarantined(
                &QuarantineSelection::Matching(QuarantineQuery {
                    carrier: Some("shipway".into()),
                    reason: Some("STATUS".into()),
                    ..QuarantineQuery::default()
                }),
                now(),
                &|_, _| {},
            )
            .await
            .unwrap();
        let tenants: Vec<&str> = report
            .results
            .iter()
            .map(|r| r.tenant_id.as_str())
            .collect();
        assert_eq!(tenants, ["acme", "globex"], "oldest first");
        assert_eq!((report.invalid, report.unavailable), (1, 1));
        assert_eq!(report.results[0].reason.as_deref(), Some("status: unknown"));
        assert!(report.has_failures());
    }

    #[test]
    fn every_ingest_answer_is_a_replay_outcome() {
        let outcome = |answer| ReplayOutcome::of(answer).0;
        assert_eq!(outcome(accepted(&["a"], &["b"])), ReplayOutcome::Accepted);
        assert_eq!(outcome(accepted(&[], &["b"])), ReplayOutcome::Duplicate);
        assert_eq!(outcome(accepted(&[], &[])), ReplayOutcome::Accepted);
        assert_eq!(outcome(IngestOutcome::InFlight), ReplayOutcome::InFlight);
        assert_eq!(
            outcome(IngestOutcome::Unavailable),
            ReplayOutcome::Unavailable
        );
        for other in [
            IngestOutcome::Probe,
            IngestOutcome::PanelTest,
            IngestOutcome::MethodNotAllowed,
        ] {
            let (outcome, reason, ids) = ReplayOutcome::of(other);
            assert_eq!(outcome, ReplayOutcome::Invalid);
            assert!(reason.is_some() && ids.is_empty());
        }
        assert_eq!(
            serde_json::to_value(ReplayOutcome::InFlight).unwrap(),
            "in_flight"
        );
    }

    #[tokio::test]
    async fn a_quarantine_listing_checks_its_filter() {
        let admin = with_tenant(vec![]).await;
        admin
            .store
            .add_quarantined(quarantined("acme", Carrier::Shipway, "a", "no status", 48));
        admin
            .store
            .add_quarantined(quarantined("acme", Carrier::Shipway, "b", "no awb", 2));
        let admin = &admin;
        let list = |query: QuarantineQuery| async move { admin.quarantined(&query).await };
        let recent = list(QuarantineQuery {
            from: Some(now() - chrono::Duration::hours(3)),
            ..QuarantineQuery::default()
        })
        .await
        .unwrap();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].reason, "no awb");
        let cases = [
            (
                QuarantineQuery {
                    carrier: Some("dhl".into()),
                    ..QuarantineQuery::default()
                },
                "carrier",
            ),
            (
                QuarantineQuery {
                    limit: Some(0),
                    ..QuarantineQuery::default()
                },
                "limit",
            ),
            (
                QuarantineQuery {
                    from: Some(now()),
                    to: Some(now() - chrono::Duration::hours(1)),
                    ..QuarantineQuery::default()
                },
                "from",
            ),
        ];
        for (query, field) in cases {
            assert_eq!(field_of(list(query).await).0, field);
        }
        assert!(matches!(
            list(QuarantineQuery {
                tenant: Some("ghost".into()),
                ..QuarantineQuery::default()
            })
            .await,
            Err(AdminError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn deliveries_by_hour_count_pushes_of_the_last_24_hours_by_outcome() {
        let admin = with_tenant(vec![]).await;
        let event = sample_event(&TenantId::parse("acme").unwrap(), Status::Delivered, now());
        let log = |minutes_ago: i64, outcome: AttemptOutcome, tenant: &str| {
            admin.store.add_attempt(Attempt {
                event_id: event.event_id.clone(),
                tenant_id: tenant.into(),
                awb: "A1".into(),
                status: Status::Delivered,
                attempt: 1,
                outcome,
                http_status: None,
                latency_ms: 5,
                error: None,
                at: now() - chrono::Duration::minutes(minutes_ago),
            });
        };
        log(0, AttemptOutcome::Delivered, "acme");
        log(30, AttemptOutcome::Retry, "acme");
        log(30, AttemptOutcome::DeadLetter, "acme");
        log(30, AttemptOutcome::Superseded, "acme");
        log(61, AttemptOutcome::Delivered, "acme");
        log(23 * 60, AttemptOutcome::Delivered, "acme");
        log(23 * 60 + 1, AttemptOutcome::Delivered, "acme");
        log(0, AttemptOutcome::Delivered, "globex");
        // now() is 10:00 sharp: the last hour is 10:00-10:59, the first 11:00 yesterday.
        let hours = admin.deliveries_by_hour("acme", now()).await.unwrap();
        assert_eq!(hours.len(), 24);
        assert_eq!(hours[0].hour, now() - chrono::Duration::hours(23));
        assert_eq!(hours[23].hour, now());
        let counts: Vec<(u64, u64)> = hours.iter().map(|h| (h.delivered, h.failed)).collect();
        assert_eq!(counts[23], (1, 0));
        assert_eq!(
            counts[22],
            (0, 2),
            "09:30 is in the hour 09:00; superseded is no push"
        );
        assert_eq!(counts[21], (1, 0), "08:59 is in the hour 08:00");
        assert_eq!(
            counts[0],
            (1, 0),
            "11:00 yesterday is the first hour; 10:59 is not counted"
        );
        assert_eq!(counts.iter().map(|c| c.0 + c.1).sum::<u64>(), 5);
        assert!(matches!(
            admin.deliveries_by_hour("ghost", now()).await,
            Err(AdminError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn the_carrier_status_view_has_a_line_per_carrier() {
        let admin = with_tenant(vec![]).await;
        let acme = TenantId::parse("acme").unwrap();
        admin.store.set_carrier_activity(
            &acme,
            CarrierActivity {
                carrier: "shipway".into(),
                last_accepted_at: Some(now()),
                ..CarrierActivity::default()
            },
        );
        let view = admin.carrier_activity("acme").await.unwrap();
        let carriers: Vec<&str> = view.iter().map(|a| a.carrier.as_str()).collect();
        assert_eq!(carriers, Carrier::ALL.map(Carrier::as_str));
        let shipway = view.iter().find(|a| a.carrier == "shipway").unwrap();
        assert_eq!(shipway.last_accepted_at, Some(now()));
        assert_eq!(
            view[0],
            CarrierActivity {
                carrier: "clickpost".into(),
                ..CarrierActivity::default()
            }
        );
        assert!(matches!(
            admin.carrier_activity("ghost").await,
            Err(AdminError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn stale_shipments_are_those_without_news_past_their_status_threshold() {
        let admin = with_tenant(vec![]).await;
        admin.create_tenant("paused", None, now()).await.unwrap();
        admin
            .update_tenant("paused", Some(false), None)
            .await
            .unwrap();
        let real_now = Utc::now();
        let shipment = |key: &str, status: Status, hours: i64| {
            let state = crate::shipment::ShipmentState {
                latest_event_id: None,
                latest_event_time: real_now - chrono::TimeDelta::hours(hours + 1),
                last_status: Some(status),
                terminal: status.is_terminal(),
                carrier: Some(Carrier::Clickpost),
                awb: Some(key.to_owned()),
                order_id: None,
                courier_id: None,
                last_received_at: Some(real_now - chrono::TimeDelta::hours(hours)),
            };
            QuietShipment {
                shipment_key: key.to_owned(),
                state,
                last_pulled_at: Some(real_now),
            }
        };
        let acme = TenantId::parse("acme").unwrap();
        let paused = TenantId::parse("paused").unwrap();
        for (tenant, s) in [
            (&acme, shipment("MOVING-7H", Status::InTransit, 7)),
            (&acme, shipment("MOVING-9H", Status::InTransit, 9)),
            (&acme, shipment("MOVING-2H", Status::InTransit, 2)),
            (&acme, shipment("PICKUP-7H", Status::PickupScheduled, 7)),
            (&acme, shipment("DELIVERED-9H", Status::Delivered, 9)),
            (&paused, shipment("PAUSED-9H", Status::InTransit, 9)),
        ] {
            admin.store.set_shipment(tenant, s);
        }
        let keys = |list: Vec<StaleShipment>| -> Vec<String> {
            list.into_iter().map(|s| s.shipment_key).collect()
        };
        // Pulled just now, still listed: only news counts. The longest without news first.
        let stale = admin
            .stale_shipments(None, &QuietRules::default())
            .await
            .unwrap();
        assert_eq!(stale[0].last_pulled_at, Some(real_now));
        assert_eq!(keys(stale), ["MOVING-9H", "MOVING-7H"]);
        let everything = admin
            .stale_shipments(Some("paused"), &QuietRules::uniform(Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(
            keys(everything),
            ["PAUSED-9H"],
            "a disabled tenant, by name"
        );
        assert!(matches!(
            admin
                .stale_shipments(Some("ghost"), &QuietRules::default())
                .await,
            Err(AdminError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn redriving_an_id_that_names_no_dead_letter_moves_nothing_and_says_which() {
        let admin = with_tenant(vec![]).await;
        for id in ["17", "18"] {
            admin.store.add_dead_letter(DeadLetterView {
                id: id.into(),
                event_id: format!("evt_{id}"),
                tenant_id: "acme".into(),
                reason: "HTTP 410".into(),
                attempts: 1,
            });
        }
        let ids = ["17".to_owned(), "99".to_owned()];
        match admin.redrive(Some(&ids)).await {
            Err(AdminError::NotFound(message)) => {
                assert!(
                    message.contains("99") && !message.contains("17"),
                    "{message}"
                )
            }
            other => panic!("expected a 404, got {other:?}"),
        }
        assert_eq!(admin.dead_letters(None, 10).await.unwrap().len(), 2);
        assert_eq!(admin.redrive(Some(&ids[..1])).await.unwrap(), 1);
    }
}

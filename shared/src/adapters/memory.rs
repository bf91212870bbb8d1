//! In-memory fakes of every port, for use-case and handler tests. They keep the semantics of the
//! real stores (the queue-first claims: copies queued with a token, a conditional claim naming one,
//! the delivery log dropping the copies it does not name and claiming a copy that has none;
//! newest-wins shipment state, quarantine once per tenant and body, newest-wins carrier activity)
//! and can be switched to "unavailable" to test the 503 paths.
//!
//! Each fake is a cheap `Clone` handle whose clones share its state: a test hands one clone to
//! the use-case and keeps another to assert on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::admin::{
    AdminStore, DeadLetterView, QuarantineFilter, QuarantineView, QuarantinedBody, QueueDepth,
    ReplayNote, ReplayOutcome, Selection, StoredCredential, Tenant,
};
use crate::auth::{Credential, CredentialDigest};
use crate::circuit::{CircuitStore, OpenCircuit};
use crate::ingest::{IngestOutcome, Reingest};
use crate::model::{CanonicalEvent, Carrier, EventId, TenantId};
use crate::ports::{
    Activity, Attempt, AttemptOutcome, CarrierActivity, Claim, ClaimToken, ConfigStore,
    DeliveryLog, EventQueue, EventStore, Freshness, HourlyActivity, Metrics, PushConfigStore,
    PushRequest, PushResult, Pusher, Quarantined, QueueActions, ShipmentStates, Standing,
    TenantAuth, Unavailable,
};
use crate::push::PushConfig;
use crate::reconcile::{quietest, PullAccountRecord, QuietRules, QuietShipment, ShipmentIndex};
use crate::shipment::ShipmentState;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test thread must not hide the state from the assertions that follow.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn down(service: &'static str, operation: &'static str) -> Unavailable {
    Unavailable::new(service, operation, "switched off by the test")
}

#[derive(Clone, Default)]
pub struct MemoryConfig {
    credentials: Arc<Mutex<HashMap<(Carrier, CredentialDigest), TenantAuth>>>,
    unavailable: Arc<AtomicBool>,
}

impl MemoryConfig {
    /// Registers a key for a tenant (again, with new settings, for the same tenant); `false`, and
    /// nothing changed, if it is another tenant's: a key never moves between tenants.
    pub fn add_credential(
        &self,
        carrier: Carrier,
        credential: &Credential,
        tenant: TenantAuth,
    ) -> bool {
        let mut credentials = lock(&self.credentials);
        match credentials.get(&(carrier, credential.digest())) {
            Some(owner) if owner.tenant_id != tenant.tenant_id => false,
            _ => {
                credentials.insert((carrier, credential.digest()), tenant);
                true
            }
        }
    }

    pub fn set_unavailable(&self, down: bool) {
        self.unavailable.store(down, Ordering::SeqCst);
    }
}

impl ConfigStore for MemoryConfig {
    async fn tenant_by_credential(
        &self,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> Result<Option<TenantAuth>, Unavailable> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(down("memory config", "GetItem"));
        }
        Ok(lock(&self.credentials).get(&(carrier, *digest)).cloned())
    }
}

/// A claim as the code before queue-first wrote it (on DynamoDB, the `EVENT#` claims): what
/// `EventStore::earlier_claim` reads. Planted by tests (`MemoryEvents::queued_as_before`,
/// `hold_as_before`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimBefore {
    /// Its attempt had not queued the event yet, and holds it until then.
    Held {
        until: DateTime<Utc>,
    },
    Queued,
}

/// How the claims found stand (`EventStore::earlier_claim`): queued wins, then a live claim; an
/// expired one never queued counts for nothing.
fn earlier(found: &[&ClaimBefore], now: DateTime<Utc>) -> Option<Claim> {
    if found.iter().any(|c| matches!(c, ClaimBefore::Queued)) {
        Some(Claim::AlreadyQueued)
    } else if found
        .iter()
        .any(|c| matches!(c, ClaimBefore::Held { until } if *until >= now))
    {
        Some(Claim::InFlight)
    } else {
        None
    }
}

/// One quarantined body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineRecord {
    pub tenant_id: String,
    pub carrier: Carrier,
    /// SHA-256 of the body in hex.
    pub digest: String,
    pub body: Vec<u8>,
    /// The reason of the latest arrival.
    pub reason: String,
    pub first_received_at: DateTime<Utc>,
    pub last_received_at: DateTime<Utc>,
    /// How many times the body arrived.
    pub times: u64,
}

#[derive(Default)]
struct EventsState {
    /// Each claimed event id: the token of the copy its claim names.
    claims: HashMap<EventId, ClaimToken>,
    /// Claims of the code before queue-first.
    claims_before: HashMap<EventId, ClaimBefore>,
    /// Keyed by (tenant, shipment key).
    shipments: HashMap<(String, String), ShipmentState>,
    /// When a reconcile run last asked about a shipment.
    pulled: HashMap<(String, String), DateTime<Utc>>,
    /// Keyed by (tenant, body digest).
    quarantine: HashMap<(String, String), QuarantineRecord>,
    activity: HashMap<(TenantId, Carrier), CarrierActivity>,
}

/// Applies one activity to a carrier's view: each column keeps its latest time (the reason goes
/// with the latest rejection), and `count` is added to the hour of `at`.
fn apply_activity(
    view: &mut CarrierActivity,
    activity: Activity,
    at: DateTime<Utc>,
    detail: Option<&str>,
    count: u32,
) {
    let column = match activity {
        Activity::PanelTest => &mut view.last_test_at,
        Activity::Accepted => &mut view.last_accepted_at,
        Activity::Rejected => &mut view.last_rejected_at,
    };
    if !column.is_some_and(|seen| seen > at) {
        *column = Some(at);
        if activity == Activity::Rejected {
            view.last_rejected_reason = detail.map(str::to_owned);
        }
    }
    let hour = HourlyActivity::hour_of(at);
    let slot = match view.hourly.binary_search_by_key(&hour, |h| h.hour) {
        Ok(i) => i,
        Err(i) => {
            view.hourly.insert(
                i,
                HourlyActivity {
                    hour,
                    ..HourlyActivity::default()
                },
            );
            i
        }
    };
    view.hourly[slot].add(activity, u64::from(count));
}

#[derive(Clone, Default)]
pub struct MemoryEvents {
    state: Arc<Mutex<EventsState>>,
    unavailable: Arc<AtomicBool>,
    claims_lose_answers: Arc<AtomicBool>,
}

impl MemoryEvents {
    pub fn set_unavailable(&self, down: bool) {
        self.unavailable.store(down, Ordering::SeqCst);
    }

    /// From now on a claim's write is done but answered with an error, as when the store's answer
    /// is lost to a timeout or a reset connection.
    pub fn set_claims_lose_answers(&self, lose: bool) {
        self.claims_lose_answers.store(lose, Ordering::SeqCst);
    }

    /// The token of the copy the event's claim names, if it is claimed.
    pub fn claim_token(&self, event_id: &EventId) -> Option<ClaimToken> {
        lock(&self.state).claims.get(event_id).cloned()
    }

    /// `event` as the code before queue-first accepted it, under its id of then: its claim queued,
    /// its shipment's state written.
    pub fn queued_as_before(&self, event: &CanonicalEvent) {
        self.before(event, ClaimBefore::Queued);
    }

    /// `event` as an attempt of the code before queue-first was accepting it: its claim held
    /// until `until`, its shipment's state written, not queued yet.
    pub fn hold_as_before(&self, event: &CanonicalEvent, until: DateTime<Utc>) {
        self.before(event, ClaimBefore::Held { until });
    }

    fn before(&self, event: &CanonicalEvent, claim: ClaimBefore) {
        let mut state = lock(&self.state);
        state.claims_before.insert(event.event_id.clone(), claim);
        let key = (event.tenant_id.to_string(), event.shipment_key().to_owned());
        if let Some(next) = ShipmentState::after(state.shipments.get(&key), event) {
            state.shipments.insert(key, next);
        }
    }

    /// Of these queued messages, the copies their event's claim names: what the dispatcher
    /// pushes (a duplicate's copy is dropped).
    pub fn named_copies(&self, messages: Vec<QueuedMessage>) -> Vec<QueuedMessage> {
        let state = lock(&self.state);
        messages
            .into_iter()
            .filter(|m| {
                state
                    .claims
                    .iter()
                    .any(|(id, token)| id.as_str() == m.event_id && token.as_str() == m.claim_token)
            })
            .collect()
    }

    pub fn quarantined(&self) -> Vec<QuarantineRecord> {
        lock(&self.state).quarantine.values().cloned().collect()
    }

    /// The tenant's carrier-status view: one entry per carrier, in `Carrier::ALL` order.
    pub fn carrier_activity(&self, tenant: &TenantId) -> Vec<CarrierActivity> {
        let state = lock(&self.state);
        Carrier::ALL
            .into_iter()
            .map(|carrier| {
                state
                    .activity
                    .get(&(tenant.clone(), carrier))
                    .cloned()
                    .unwrap_or_else(|| CarrierActivity {
                        carrier: carrier.as_str().to_owned(),
                        ..CarrierActivity::default()
                    })
            })
            .collect()
    }

    fn check(&self, operation: &'static str) -> Result<(), Unavailable> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(down("memory events", operation));
        }
        Ok(())
    }
}

impl EventStore for MemoryEvents {
    async fn claim(
        &self,
        event: &CanonicalEvent,
        token: &ClaimToken,
        _now: DateTime<Utc>,
    ) -> Result<Claim, Unavailable> {
        self.check("PutItem")?;
        let mut state = lock(&self.state);
        let result = match state.claims.get(&event.event_id) {
            None => Claim::Claimed,
            Some(mine) if mine == token => Claim::Claimed,
            Some(_) => Claim::AlreadyQueued,
        };
        if result == Claim::Claimed {
            state.claims.insert(event.event_id.clone(), token.clone());
        }
        if self.claims_lose_answers.load(Ordering::SeqCst) {
            return Err(down("memory events (answer lost)", "PutItem"));
        }
        Ok(result)
    }

    async fn is_claimed(&self, event: &CanonicalEvent) -> Result<bool, Unavailable> {
        self.check("GetItem")?;
        Ok(lock(&self.state).claims.contains_key(&event.event_id))
    }

    async fn earlier_claim(
        &self,
        ids: &[EventId],
        now: DateTime<Utc>,
    ) -> Result<Option<Claim>, Unavailable> {
        self.check("GetItem")?;
        let state = lock(&self.state);
        let found: Vec<&ClaimBefore> = ids
            .iter()
            .filter_map(|id| state.claims_before.get(id))
            .collect();
        Ok(earlier(&found, now))
    }

    async fn record_shipment_event(
        &self,
        event: &CanonicalEvent,
    ) -> Result<Freshness, Unavailable> {
        self.check("UpdateItem")?;
        let key = (event.tenant_id.to_string(), event.shipment_key().to_owned());
        let mut state = lock(&self.state);
        let first = !state.shipments.contains_key(&key);
        match ShipmentState::after(state.shipments.get(&key), event) {
            Some(next) => {
                state.shipments.insert(key, next);
                Ok(if first {
                    Freshness::First
                } else {
                    Freshness::Latest
                })
            }
            None => Ok(Freshness::Stale),
        }
    }

    async fn quarantine(&self, item: &Quarantined<'_>) -> Result<(), Unavailable> {
        self.check("UpdateItem")?;
        let mut state = lock(&self.state);
        let key = (item.tenant_id.to_string(), item.body_digest.clone());
        let record = state
            .quarantine
            .entry(key)
            .or_insert_with(|| QuarantineRecord {
                tenant_id: item.tenant_id.to_string(),
                carrier: item.carrier,
                digest: item.body_digest.clone(),
                body: item.body.to_vec(),
                reason: item.reason.to_owned(),
                first_received_at: item.received_at,
                last_received_at: item.received_at,
                times: 0,
            });
        record.times += 1;
        record.carrier = item.carrier;
        record.reason = item.reason.to_owned();
        record.last_received_at = record.last_received_at.max(item.received_at);
        record.first_received_at = record.first_received_at.min(item.received_at);
        Ok(())
    }

    async fn record_activity(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        activity: Activity,
        at: DateTime<Utc>,
        detail: Option<&str>,
        count: u32,
    ) -> Result<(), Unavailable> {
        self.check("UpdateItem")?;
        let mut state = lock(&self.state);
        let view = state
            .activity
            .entry((tenant.clone(), carrier))
            .or_insert_with(|| CarrierActivity {
                carrier: carrier.as_str().to_owned(),
                ..CarrierActivity::default()
            });
        apply_activity(view, activity, at, detail, count);
        Ok(())
    }
}

impl ShipmentStates for MemoryEvents {
    async fn shipment(
        &self,
        tenant: &TenantId,
        shipment_key: &str,
    ) -> Result<Option<ShipmentState>, Unavailable> {
        self.check("GetItem")?;
        Ok(lock(&self.state)
            .shipments
            .get(&(tenant.to_string(), shipment_key.to_owned()))
            .cloned())
    }
}

impl ShipmentIndex for MemoryEvents {
    async fn quiet_shipments(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        rules: &QuietRules,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<QuietShipment>, Unavailable> {
        self.check("Query")?;
        let state = lock(&self.state);
        let mine = state
            .shipments
            .iter()
            .filter(|((t, _), s)| t == tenant.as_str() && s.carrier == Some(carrier))
            .map(|((_, key), s)| QuietShipment {
                shipment_key: key.clone(),
                state: s.clone(),
                last_pulled_at: state
                    .pulled
                    .get(&(tenant.to_string(), key.clone()))
                    .copied(),
            })
            .collect::<Vec<_>>();
        Ok(quietest(mine, rules, now, limit))
    }

    async fn mark_pulled(
        &self,
        tenant: &TenantId,
        shipment_keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), Unavailable> {
        self.check("UpdateItem")?;
        let mut state = lock(&self.state);
        for key in shipment_keys {
            state.pulled.insert((tenant.to_string(), key.clone()), now);
        }
        Ok(())
    }
}

/// A message as the queue holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub body: String,
    pub tenant_id: String,
    pub carrier: String,
    pub event_id: String,
    /// The copy's claim token (`ClaimToken`).
    pub claim_token: String,
}

#[derive(Clone, Default)]
pub struct MemoryQueue {
    messages: Arc<Mutex<Vec<QueuedMessage>>>,
    unavailable: Arc<AtomicBool>,
}

impl MemoryQueue {
    pub fn set_unavailable(&self, down: bool) {
        self.unavailable.store(down, Ordering::SeqCst);
    }

    pub fn messages(&self) -> Vec<QueuedMessage> {
        lock(&self.messages).clone()
    }
}

impl EventQueue for MemoryQueue {
    async fn enqueue(&self, event: &CanonicalEvent, token: &ClaimToken) -> Result<(), Unavailable> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(down("memory queue", "SendMessage"));
        }
        let body = serde_json::to_string(event)
            .map_err(|e| Unavailable::new("memory queue", "serialise", e))?;
        lock(&self.messages).push(QueuedMessage {
            body,
            tenant_id: event.tenant_id.to_string(),
            carrier: event.carrier.to_string(),
            event_id: event.event_id.to_string(),
            claim_token: token.as_str().to_owned(),
        });
        Ok(())
    }
}

/// One recorded count: name, value, dimensions.
type Count = (&'static str, u64, Vec<(&'static str, String)>);

/// Metrics kept in memory, for assertions.
#[derive(Clone, Default)]
pub struct RecordingMetrics {
    counts: Arc<Mutex<Vec<Count>>>,
}

impl RecordingMetrics {
    /// The sum of a metric over all dimensions.
    pub fn total(&self, name: &str) -> u64 {
        lock(&self.counts)
            .iter()
            .filter(|(n, _, _)| *n == name)
            .map(|(_, v, _)| v)
            .sum()
    }

    /// The sum of a metric where a dimension has a given value.
    pub fn total_where(&self, name: &str, dimension: &str, value: &str) -> u64 {
        lock(&self.counts)
            .iter()
            .filter(|(n, _, dims)| {
                *n == name && dims.iter().any(|(d, v)| *d == dimension && v == value)
            })
            .map(|(_, v, _)| v)
            .sum()
    }
}

impl Metrics for RecordingMetrics {
    fn count(&self, name: &'static str, value: u64, dimensions: &[(&'static str, &str)]) {
        let dims = dimensions
            .iter()
            .map(|(d, v)| (*d, v.to_string()))
            .collect();
        lock(&self.counts).push((name, value, dims));
    }
}

#[derive(Clone, Default)]
pub struct MemoryPushConfigs {
    configs: Arc<Mutex<HashMap<TenantId, PushConfig>>>,
    reads: Arc<std::sync::atomic::AtomicUsize>,
}

impl MemoryPushConfigs {
    /// Sets (or, with `None`, removes) a tenant's Push Config.
    pub fn set(&self, tenant: &TenantId, config: Option<PushConfig>) {
        let mut configs = lock(&self.configs);
        match config {
            Some(c) => configs.insert(tenant.clone(), c),
            None => configs.remove(tenant),
        };
    }

    /// How many times the store was read.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

impl PushConfigStore for MemoryPushConfigs {
    async fn push_config(&self, tenant: &TenantId) -> Result<Option<PushConfig>, Unavailable> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(lock(&self.configs).get(tenant).cloned())
    }
}

/// Open circuits, as the config table or the database keeps them.
#[derive(Clone, Default)]
pub struct MemoryCircuits {
    open: Arc<Mutex<HashMap<TenantId, OpenCircuit>>>,
    unavailable: Arc<AtomicBool>,
}

impl MemoryCircuits {
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    fn check(&self, operation: &'static str) -> Result<(), Unavailable> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(down("circuits", operation));
        }
        Ok(())
    }
}

impl CircuitStore for MemoryCircuits {
    async fn open_circuit(&self, tenant: &TenantId) -> Result<Option<OpenCircuit>, Unavailable> {
        self.check("read")?;
        Ok(lock(&self.open).get(tenant).cloned())
    }

    async fn save_open_circuit(
        &self,
        tenant: &TenantId,
        circuit: &OpenCircuit,
    ) -> Result<(), Unavailable> {
        self.check("save")?;
        lock(&self.open).insert(tenant.clone(), circuit.clone());
        Ok(())
    }

    async fn claim_probe(
        &self,
        tenant: &TenantId,
        seen: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<bool, Unavailable> {
        self.check("claim probe")?;
        let mut open = lock(&self.open);
        match open.get_mut(tenant) {
            Some(circuit) if circuit.probe_at == seen => {
                circuit.probe_at = next;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn close_circuit(&self, tenant: &TenantId) -> Result<(), Unavailable> {
        self.check("close")?;
        lock(&self.open).remove(tenant);
        Ok(())
    }
}

#[derive(Clone, Default)]
pub struct MemoryDeliveryLog {
    attempts: Arc<Mutex<Vec<Attempt>>>,
    /// Where ingest writes the claims (`with_claims`); `None`: every copy handed out is the
    /// accepted one, as on a queue that holds nothing else.
    claims: Option<MemoryEvents>,
}

impl MemoryDeliveryLog {
    /// A log that reads the claims ingest wrote in `events`, as DynamoDB's reads them beside the
    /// attempts: a copy the claim does not name is a duplicate's, and a copy with no claim is
    /// claimed now.
    pub fn with_claims(events: MemoryEvents) -> Self {
        MemoryDeliveryLog {
            attempts: Arc::default(),
            claims: Some(events),
        }
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        lock(&self.attempts).clone()
    }
}

impl DeliveryLog for MemoryDeliveryLog {
    async fn record_attempt(&self, attempt: &Attempt) -> Result<(), Unavailable> {
        lock(&self.attempts).push(attempt.clone());
        Ok(())
    }

    async fn was_delivered(&self, event_id: &EventId) -> Result<bool, Unavailable> {
        Ok(lock(&self.attempts)
            .iter()
            .any(|a| &a.event_id == event_id && a.outcome == AttemptOutcome::Delivered))
    }

    async fn standing(
        &self,
        event: &CanonicalEvent,
        token: Option<&ClaimToken>,
        _attempt: u32,
    ) -> Result<Standing, Unavailable> {
        if self.was_delivered(&event.event_id).await? {
            return Ok(Standing::Delivered);
        }
        let Some(claims) = &self.claims else {
            return Ok(Standing::Due);
        };
        let token = token.cloned().unwrap_or_else(ClaimToken::untokened);
        Ok(match claims.claim(event, &token, Utc::now()).await? {
            Claim::Claimed => Standing::Due,
            Claim::AlreadyQueued | Claim::InFlight => Standing::Duplicate,
        })
    }
}

/// A pusher that answers from a script, in order, and keeps every request it was given. When the
/// script runs out it answers as a closed port would.
#[derive(Clone)]
pub struct ScriptedPusher {
    script: Arc<Mutex<std::collections::VecDeque<PushResult>>>,
    requests: Arc<Mutex<Vec<PushRequest>>>,
}

impl ScriptedPusher {
    pub fn new(script: Vec<PushResult>) -> Self {
        ScriptedPusher {
            script: Arc::new(Mutex::new(script.into())),
            requests: Arc::default(),
        }
    }

    pub fn requests(&self) -> Vec<PushRequest> {
        lock(&self.requests).clone()
    }
}

impl Pusher for ScriptedPusher {
    async fn push(&self, request: &PushRequest) -> PushResult {
        lock(&self.requests).push(request.clone());
        lock(&self.script)
            .pop_front()
            .unwrap_or(PushResult::ConnectFailed {
                reason: "the test script has no more answers".into(),
                latency: Duration::ZERO,
            })
    }
}

/// A dead-lettered message, as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLettered {
    pub body: String,
    pub attributes: Vec<(String, String)>,
    pub reason: String,
}

#[derive(Clone, Default)]
pub struct MemoryQueueActions {
    retries: Arc<Mutex<Vec<(String, Duration)>>>,
    dead: Arc<Mutex<Vec<DeadLettered>>>,
}

impl MemoryQueueActions {
    /// (receipt handle, delay) of every retry asked for.
    pub fn retries(&self) -> Vec<(String, Duration)> {
        lock(&self.retries).clone()
    }

    pub fn dead_lettered(&self) -> Vec<DeadLettered> {
        lock(&self.dead).clone()
    }
}

impl QueueActions for MemoryQueueActions {
    async fn retry_later(&self, receipt_handle: &str, after: Duration) -> Result<(), Unavailable> {
        lock(&self.retries).push((receipt_handle.to_owned(), after));
        Ok(())
    }

    async fn dead_letter(
        &self,
        body: &str,
        attributes: &[(String, String)],
        reason: &str,
    ) -> Result<(), Unavailable> {
        lock(&self.dead).push(DeadLettered {
            body: body.to_owned(),
            attributes: attributes.to_vec(),
            reason: reason.to_owned(),
        });
        Ok(())
    }
}

#[derive(Default)]
struct AdminState {
    tenants: Vec<Tenant>,
    credentials: Vec<(TenantId, StoredCredential)>,
    push: HashMap<TenantId, PushConfig>,
    pull: Vec<(TenantId, PullAccountRecord)>,
    attempts: Vec<Attempt>,
    dead: Vec<DeadLetterView>,
    archive: Vec<CanonicalEvent>,
    redriven: Vec<String>,
    replayed: Vec<CanonicalEvent>,
    quarantine: Vec<QuarantinedBody>,
    activity: Vec<(TenantId, CarrierActivity)>,
    shipments: Vec<(TenantId, QuietShipment)>,
}

/// The admin store: tenants, credentials, Push Configs, the delivery log, dead letters and the
/// event archive, in memory. Tests seed attempts, dead letters and archived events directly.
#[derive(Clone, Default)]
pub struct MemoryAdmin {
    state: Arc<Mutex<AdminState>>,
    pub circuits: MemoryCircuits,
}

impl CircuitStore for MemoryAdmin {
    async fn open_circuit(&self, tenant: &TenantId) -> Result<Option<OpenCircuit>, Unavailable> {
        self.circuits.open_circuit(tenant).await
    }

    async fn save_open_circuit(
        &self,
        tenant: &TenantId,
        circuit: &OpenCircuit,
    ) -> Result<(), Unavailable> {
        self.circuits.save_open_circuit(tenant, circuit).await
    }

    async fn claim_probe(
        &self,
        tenant: &TenantId,
        seen: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<bool, Unavailable> {
        self.circuits.claim_probe(tenant, seen, next).await
    }

    async fn close_circuit(&self, tenant: &TenantId) -> Result<(), Unavailable> {
        self.circuits.close_circuit(tenant).await
    }
}

impl MemoryAdmin {
    pub fn add_attempt(&self, attempt: Attempt) {
        lock(&self.state).attempts.push(attempt);
    }
    pub fn add_dead_letter(&self, dead: DeadLetterView) {
        lock(&self.state).dead.push(dead);
    }
    pub fn archive(&self, event: CanonicalEvent) {
        lock(&self.state).archive.push(event);
    }
    /// Ids moved back to the queue by `redrive`.
    pub fn redriven(&self) -> Vec<String> {
        lock(&self.state).redriven.clone()
    }
    /// Events queued again by `enqueue_replays`.
    pub fn replayed(&self) -> Vec<CanonicalEvent> {
        lock(&self.state).replayed.clone()
    }
    pub fn add_quarantined(&self, entry: QuarantinedBody) {
        lock(&self.state).quarantine.push(entry);
    }
    /// Sets one carrier's line of the tenant's carrier-status view.
    /// Keeps a shipment's state as the event store would, for the stale listing.
    pub fn set_shipment(&self, tenant: &TenantId, shipment: QuietShipment) {
        let mut state = lock(&self.state);
        state
            .shipments
            .retain(|(t, s)| !(t == tenant && s.shipment_key == shipment.shipment_key));
        state.shipments.push((tenant.clone(), shipment));
    }

    pub fn set_carrier_activity(&self, tenant: &TenantId, activity: CarrierActivity) {
        let mut state = lock(&self.state);
        state
            .activity
            .retain(|(t, a)| !(t == tenant && a.carrier == activity.carrier));
        state.activity.push((tenant.clone(), activity));
    }
}

/// What a replay gave ingest: tenant, carrier, body, receive time.
pub type ReingestCall = (TenantAuth, Carrier, Vec<u8>, DateTime<Utc>);

/// Ingest for quarantine replays, answering from a script in order (then `Unavailable`); keeps
/// what it was given.
#[derive(Clone, Default)]
pub struct ScriptedReingest {
    script: Arc<Mutex<std::collections::VecDeque<IngestOutcome>>>,
    calls: Arc<Mutex<Vec<ReingestCall>>>,
}

impl ScriptedReingest {
    pub fn new(script: Vec<IngestOutcome>) -> Self {
        ScriptedReingest {
            script: Arc::new(Mutex::new(script.into())),
            calls: Arc::default(),
        }
    }

    pub fn calls(&self) -> Vec<ReingestCall> {
        lock(&self.calls).clone()
    }
}

impl Reingest for ScriptedReingest {
    async fn reingest(
        &self,
        tenant: &TenantAuth,
        carrier: Carrier,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> IngestOutcome {
        lock(&self.calls).push((tenant.clone(), carrier, body.to_vec(), received_at));
        lock(&self.script)
            .pop_front()
            .unwrap_or(IngestOutcome::Unavailable)
    }
}

impl AdminStore for MemoryAdmin {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<bool, Unavailable> {
        let mut state = lock(&self.state);
        if state.tenants.iter().any(|t| t.id == tenant.id) {
            return Ok(false);
        }
        state.tenants.push(tenant.clone());
        Ok(true)
    }
    async fn tenants(&self) -> Result<Vec<Tenant>, Unavailable> {
        Ok(lock(&self.state).tenants.clone())
    }
    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, Unavailable> {
        Ok(lock(&self.state)
            .tenants
            .iter()
            .find(|t| &t.id == id)
            .cloned())
    }
    async fn update_tenant(&self, tenant: &Tenant) -> Result<(), Unavailable> {
        for t in lock(&self.state).tenants.iter_mut() {
            if t.id == tenant.id {
                *t = tenant.clone();
            }
        }
        Ok(())
    }
    async fn credentials(&self, tenant: &TenantId) -> Result<Vec<StoredCredential>, Unavailable> {
        Ok(lock(&self.state)
            .credentials
            .iter()
            .filter(|(t, _)| t == tenant)
            .map(|(_, c)| c.clone())
            .collect())
    }
    async fn credential_owner(
        &self,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> Result<Option<TenantId>, Unavailable> {
        Ok(lock(&self.state)
            .credentials
            .iter()
            .find(|(_, c)| c.carrier == carrier && &c.digest == digest)
            .map(|(t, _)| t.clone()))
    }
    async fn add_credential(
        &self,
        tenant: &TenantId,
        credential: &StoredCredential,
    ) -> Result<bool, Unavailable> {
        let mut state = lock(&self.state);
        let taken = state
            .credentials
            .iter()
            .any(|(_, c)| c.carrier == credential.carrier && c.digest == credential.digest);
        if !taken {
            state.credentials.push((tenant.clone(), credential.clone()));
        }
        Ok(!taken)
    }
    async fn remove_credential(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> Result<(), Unavailable> {
        lock(&self.state)
            .credentials
            .retain(|(t, c)| !(t == tenant && c.carrier == carrier && &c.digest == digest));
        Ok(())
    }
    async fn push_config(&self, tenant: &TenantId) -> Result<Option<PushConfig>, Unavailable> {
        Ok(lock(&self.state).push.get(tenant).cloned())
    }
    async fn put_push_config(
        &self,
        tenant: &TenantId,
        config: &PushConfig,
    ) -> Result<(), Unavailable> {
        lock(&self.state)
            .push
            .insert(tenant.clone(), config.clone());
        Ok(())
    }
    async fn pull_accounts(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<PullAccountRecord>, Unavailable> {
        Ok(lock(&self.state)
            .pull
            .iter()
            .filter(|(t, _)| t == tenant)
            .map(|(_, a)| a.clone())
            .collect())
    }
    async fn put_pull_account(
        &self,
        tenant: &TenantId,
        account: &PullAccountRecord,
    ) -> Result<(), Unavailable> {
        let mut state = lock(&self.state);
        state
            .pull
            .retain(|(t, a)| !(t == tenant && a.carrier == account.carrier));
        state.pull.push((tenant.clone(), account.clone()));
        Ok(())
    }
    async fn remove_pull_account(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
    ) -> Result<bool, Unavailable> {
        let mut state = lock(&self.state);
        let before = state.pull.len();
        state
            .pull
            .retain(|(t, a)| !(t == tenant && a.carrier == carrier));
        Ok(state.pull.len() < before)
    }
    async fn attempts(
        &self,
        tenant: &TenantId,
        selection: &Selection,
    ) -> Result<Vec<Attempt>, Unavailable> {
        Ok(lock(&self.state)
            .attempts
            .iter()
            .filter(|a| &a.tenant_id == tenant)
            .filter(|a| match selection {
                Selection::Awb(awb) => &a.awb == awb,
                Selection::Between { from, to } => (*from..=*to).contains(&a.at),
            })
            .cloned()
            .collect())
    }
    async fn dead_letters(
        &self,
        tenant: Option<&TenantId>,
        limit: usize,
    ) -> Result<Vec<DeadLetterView>, Unavailable> {
        Ok(lock(&self.state)
            .dead
            .iter()
            .filter(|d| tenant.is_none_or(|t| d.tenant_id == t.as_str()))
            .take(limit)
            .cloned()
            .collect())
    }
    async fn redrive(&self, ids: Option<&[String]>) -> Result<u64, Unavailable> {
        let mut state = lock(&self.state);
        let (moved, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.dead)
            .into_iter()
            .partition(|d| ids.is_none_or(|ids| ids.contains(&d.id)));
        state.dead = kept;
        state.redriven.extend(moved.iter().map(|d| d.id.clone()));
        Ok(moved.len() as u64)
    }
    async fn archived_events(
        &self,
        attempts: &[Attempt],
    ) -> Result<Vec<CanonicalEvent>, Unavailable> {
        Ok(lock(&self.state)
            .archive
            .iter()
            .filter(|e| attempts.iter().any(|a| a.event_id == e.event_id))
            .cloned()
            .collect())
    }
    async fn enqueue_replays(&self, events: &[CanonicalEvent]) -> Result<(), Unavailable> {
        lock(&self.state).replayed.extend_from_slice(events);
        Ok(())
    }
    async fn quarantined(
        &self,
        filter: &QuarantineFilter,
    ) -> Result<Vec<QuarantineView>, Unavailable> {
        let found: Vec<QuarantineView> = lock(&self.state)
            .quarantine
            .iter()
            .map(|q| q.view.clone())
            .filter(|v| filter.matches(v))
            .collect();
        Ok(filter.order_and_limit(found))
    }
    async fn quarantined_body(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<QuarantinedBody>, Unavailable> {
        Ok(lock(&self.state)
            .quarantine
            .iter()
            .find(|q| q.view.tenant_id == tenant.as_str() && q.view.id == id)
            .cloned())
    }
    async fn note_replay(
        &self,
        tenant: &TenantId,
        id: &str,
        outcome: ReplayOutcome,
        at: DateTime<Utc>,
    ) -> Result<(), Unavailable> {
        for q in lock(&self.state).quarantine.iter_mut() {
            if q.view.tenant_id == tenant.as_str() && q.view.id == id {
                q.view.last_replay = Some(ReplayNote {
                    at,
                    outcome: outcome.as_str().to_owned(),
                });
            }
        }
        Ok(())
    }
    async fn stale_shipments(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        rules: &QuietRules,
        now: DateTime<Utc>,
    ) -> Result<Vec<QuietShipment>, Unavailable> {
        let mut stale: Vec<QuietShipment> = lock(&self.state)
            .shipments
            .iter()
            .filter(|(t, s)| {
                t == tenant
                    && s.state.carrier == Some(carrier)
                    && rules.is_quiet(&s.state, None, now)
            })
            .map(|(_, s)| s.clone())
            .collect();
        stale.sort_by_key(|s| {
            s.state
                .last_received_at
                .unwrap_or(s.state.latest_event_time)
        });
        Ok(stale)
    }

    async fn carrier_activity(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
    ) -> Result<Vec<CarrierActivity>, Unavailable> {
        let state = lock(&self.state);
        Ok(Carrier::ALL
            .into_iter()
            .map(|carrier| {
                state
                    .activity
                    .iter()
                    .find(|(t, a)| t == tenant && a.carrier == carrier.as_str())
                    .map(|(_, a)| {
                        let mut a = a.clone();
                        a.hourly
                            .retain(|h| h.hour >= HourlyActivity::hour_of(since));
                        a
                    })
                    .unwrap_or_else(|| CarrierActivity {
                        carrier: carrier.as_str().to_owned(),
                        ..CarrierActivity::default()
                    })
            })
            .collect())
    }
    async fn queue_depth(&self) -> Result<QueueDepth, Unavailable> {
        // The fake has no delivery queue (replays and redrives are recorded instead): only its
        // dead letters wait.
        Ok(QueueDepth {
            waiting: 0,
            dead_letters: lock(&self.state).dead.len() as u64,
        })
    }
}

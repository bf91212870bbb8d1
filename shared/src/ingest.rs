//! The ingest use-case, shared by the three notify Lambdas and `rms serve`:
//! authenticate → normalise → accept each event (on AWS: record the shipment's state → enqueue →
//! claim, `QueueThenClaim`).
//!
//! Every answer is an `IngestOutcome`; `http::response` turns it into the status and body the
//! carrier sees. A store or the queue that fails before the event is on the queue answers 503, and
//! leaves nothing claimed, so that the carrier's retry is accepted rather than taken for a
//! duplicate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use sha2::{Digest, Sha256};
use tracing::{debug, error, error_span, field, info, warn, Instrument, Span};

use crate::auth::{presented_credentials, CredentialSources};
use crate::carriers::{normalize, BodyKind, NormalizeContext};
use crate::model::{CanonicalEvent, Carrier, EventId, Status, TenantId};
use crate::ports::{
    Activity, Claim, ClaimToken, ConfigStore, EventQueue, EventStore, Freshness, HourlyActivity,
    Intake, Metrics, Quarantined, TenantAuth, Unavailable,
};

/// A carrier's HTTP request, as the transport (API Gateway, `rms serve`) received it.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub carrier: Carrier,
    pub method: String,
    /// Header names in lowercase.
    pub headers: HashMap<String, String>,
    pub query: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// How ingest behaves; the defaults are the production values.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Bodies above this size are refused (413).
    pub max_body_bytes: usize,
    /// The zone each carrier's wall-clock times are in.
    pub zones: CarrierZones,
    /// How far after its arrival an event's time may be before the body is refused.
    pub max_future: chrono::TimeDelta,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            max_body_bytes: 256 * 1024,
            zones: CarrierZones::default(),
            max_future: crate::carriers::MAX_FUTURE,
        }
    }
}

/// The zone of each carrier's timestamps: the carrier's default (IST for all three,
/// docs/carriers.md) unless configured otherwise.
#[derive(Debug, Clone, Default)]
pub struct CarrierZones {
    overrides: Vec<(Carrier, FixedOffset)>,
}

impl CarrierZones {
    pub fn for_carrier(&self, carrier: Carrier) -> FixedOffset {
        self.overrides
            .iter()
            .find(|(c, _)| *c == carrier)
            .map_or_else(|| carrier.spec().default_zone(), |(_, zone)| *zone)
    }

    /// Reads this carrier's times in `zone` instead of its default.
    pub fn set(&mut self, carrier: Carrier, zone: FixedOffset) {
        self.overrides.retain(|(c, _)| *c != carrier);
        self.overrides.push((carrier, zone));
    }

    /// The zones set by each carrier's variable (`CLICKPOST_ZONE`…, see
    /// `CarrierSpec::zone_variable`) through `lookup`: the notify functions and the admin API's
    /// quarantine replay read the same settings.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let mut zones = CarrierZones::default();
        for carrier in Carrier::ALL {
            let name = carrier.spec().zone_variable();
            if let Some(value) = lookup(&name) {
                match crate::time::parse_zone(&value) {
                    Ok(zone) => zones.set(carrier, zone),
                    Err(expected) => {
                        return Err(SettingError {
                            name,
                            value,
                            expected,
                        })
                    }
                }
            }
        }
        Ok(zones)
    }
}

/// An ingest setting that is malformed; the message names the variable and what it expects.
#[derive(Debug, Clone, thiserror::Error)]
#[error("environment variable {name} is {value:?}: {expected}")]
pub struct SettingError {
    pub name: String,
    pub value: String,
    pub expected: String,
}

impl IngestSettings {
    /// The settings the notify functions (and the admin API's quarantine replay) take from their
    /// environment through `lookup`: `MAX_FUTURE_HOURS` (24) and each carrier's `<CARRIER>_ZONE`
    /// (the carrier's own).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let number =
            |name: &str, default: u64, range: std::ops::RangeInclusive<u64>, unit: &str| {
                match lookup(name) {
                    None => Ok(default),
                    Some(value) => value
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|n| range.contains(n))
                        .ok_or_else(|| SettingError {
                            name: name.to_owned(),
                            expected: format!(
                                "a whole number of {unit} from {} to {}",
                                range.start(),
                                range.end()
                            ),
                            value,
                        }),
                }
            };
        let max_future_hours = number("MAX_FUTURE_HOURS", 24, 1..=24 * 366, "hours")?;
        Ok(IngestSettings {
            zones: CarrierZones::from_lookup(&lookup)?,
            max_future: chrono::TimeDelta::hours(i64::try_from(max_future_hours).unwrap_or(24)),
            ..IngestSettings::default()
        })
    }
}

/// What ingest did with a request; one variant per row of design.md's answer table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// A GET, a POST with an empty body, or a carrier panel's set-up probe: a connectivity
    /// check. Nothing happened.
    Probe,
    /// A carrier panel's "test webhook" body: not an event, never delivered. If it carried a
    /// tenant's key, that tenant's carrier is recorded as wired (`Activity::PanelTest`).
    PanelTest,
    /// The payload's events, each queued now or found already queued. A Shipway batch can mix
    /// both; an empty batch has neither.
    Accepted {
        queued: Vec<EventId>,
        duplicates: Vec<EventId>,
    },
    Unauthorized(AuthFailure),
    /// Authenticated, but not a payload we can normalise; the body was quarantined.
    Invalid {
        reason: String,
    },
    TooLarge {
        size: usize,
        limit: usize,
    },
    MethodNotAllowed,
    /// A store or the queue failed before the event was queued; nothing is left claimed. The
    /// carrier should retry.
    Unavailable,
    /// Another request is accepting the same event right now; retry shortly.
    InFlight,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Unknown,
    /// A valid key of a disabled tenant: said as such to whoever holds the key, nothing more.
    Disabled,
}

/// How often, at most, a carrier's accepted or rejected requests are recorded per tenant (the
/// carrier-status view's resolution).
const ACTIVITY_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// The ingest use-case over its ports. A clone shares the activity record, so that `rms serve`'s
/// carrier requests and quarantine replays record activity as one process.
#[derive(Clone)]
pub struct Ingest<C, S, M> {
    pub config: C,
    /// Where accepted events and quarantined payloads go.
    pub intake: S,
    pub metrics: M,
    pub settings: IngestSettings,
    /// For each (tenant, carrier, activity): when this process last recorded it, and how many
    /// have happened since.
    activity_recorded: Arc<Mutex<ActivityRecord>>,
}

type ActivityRecord = HashMap<(TenantId, Carrier, Activity), Unrecorded>;

/// One kind of a carrier's activity as this process has seen it since it last recorded it.
#[derive(Debug, Clone, Copy)]
struct Unrecorded {
    last_recorded_at: Option<DateTime<Utc>>,
    count: u32,
}

impl<C, S, M> Ingest<C, S, M> {
    pub fn new(config: C, intake: S, metrics: M, settings: IngestSettings) -> Self {
        Ingest {
            config,
            intake,
            metrics,
            settings,
            activity_recorded: Arc::default(),
        }
    }
}

impl<C: ConfigStore, S: Intake, M: Metrics> Ingest<C, S, M> {
    /// Handles one carrier request, in a span that gives each of its log lines the carrier and,
    /// once the key is known, the tenant (at ERROR level, so that it is there whatever `RUST_LOG`
    /// lets through).
    pub async fn handle(&self, request: &Inbound, now: DateTime<Utc>) -> IngestOutcome {
        let span = error_span!("ingest", carrier = %request.carrier, tenant_id = field::Empty);
        self.handle_in_span(request, now).instrument(span).await
    }

    async fn handle_in_span(&self, request: &Inbound, now: DateTime<Utc>) -> IngestOutcome {
        let carrier = request.carrier;
        let outcome = self.handle_inner(request, now).await;
        let result = match &outcome {
            IngestOutcome::Probe => "probe",
            IngestOutcome::PanelTest => "panel_test",
            IngestOutcome::Accepted { .. } => "accepted",
            IngestOutcome::Unauthorized(_) => "unauthorized",
            IngestOutcome::Invalid { .. } => "invalid",
            IngestOutcome::TooLarge { .. } => "too_large",
            IngestOutcome::MethodNotAllowed => "method_not_allowed",
            IngestOutcome::Unavailable => "unavailable",
            IngestOutcome::InFlight => "in_flight",
        };
        let rejected = match &outcome {
            IngestOutcome::Unauthorized(_) => Some("Unauthorized"),
            IngestOutcome::Invalid { .. } => Some("InvalidPayload"),
            IngestOutcome::TooLarge { .. } => Some("TooLarge"),
            IngestOutcome::MethodNotAllowed => Some("MethodNotAllowed"),
            _ => None,
        };
        if let Some(reason) = rejected {
            self.metrics.count(
                "Rejected",
                1,
                &[("Carrier", carrier.as_str()), ("Reason", reason)],
            );
        }
        // Each outcome worth an operator's attention logs itself (accepted, duplicate, 401, 400,
        // 503); this line is for debugging only, so INFO stays one line per event.
        debug!(outcome = result, "request handled");
        outcome
    }

    async fn handle_inner(&self, request: &Inbound, now: DateTime<Utc>) -> IngestOutcome {
        let carrier = request.carrier;
        let method = request.method.to_ascii_uppercase();
        if method == "GET" || method == "HEAD" {
            return IngestOutcome::Probe;
        }
        if method != "POST" {
            return IngestOutcome::MethodNotAllowed;
        }
        if request.body.iter().all(u8::is_ascii_whitespace) {
            return IngestOutcome::Probe;
        }
        self.metrics
            .count("Received", 1, &[("Carrier", carrier.as_str())]);
        if request.body.len() > self.settings.max_body_bytes {
            return IngestOutcome::TooLarge {
                size: request.body.len(),
                limit: self.settings.max_body_bytes,
            };
        }
        // Set-up probes come without a credential, and the panel wants 200 before it keeps the
        // URL: they are recognised before authentication, and nothing of them is kept.
        let kind = carrier.spec().classify(&request.body);
        if kind == BodyKind::Probe {
            info!("carrier set-up probe answered");
            return IngestOutcome::Probe;
        }

        let tenant = match self.authenticate(request).await {
            Ok(Ok(tenant)) => tenant,
            Ok(Err(_)) if kind == BodyKind::PanelTest => {
                // The panel is answered 200 all the same; only a known key says who is wired.
                warn!("panel test body without a known credential");
                return IngestOutcome::PanelTest;
            }
            Ok(Err(failure)) => return IngestOutcome::Unauthorized(failure),
            Err(e) => {
                error!(error = %e, cause = %source_of(&e), "config store unavailable");
                return IngestOutcome::Unavailable;
            }
        };
        Span::current().record("tenant_id", field::display(&tenant.tenant_id));
        if kind == BodyKind::PanelTest {
            info!("panel test body received; not an event");
            self.record(&tenant.tenant_id, carrier, Activity::PanelTest, now, None)
                .await;
            return IngestOutcome::PanelTest;
        }
        let outcome = self
            .ingest_body(&tenant, carrier, &request.body, now, now, true)
            .await;
        match &outcome {
            IngestOutcome::Accepted { .. } => {
                self.record(&tenant.tenant_id, carrier, Activity::Accepted, now, None)
                    .await
            }
            IngestOutcome::Invalid { reason } => {
                self.record(
                    &tenant.tenant_id,
                    carrier,
                    Activity::Rejected,
                    now,
                    Some(reason),
                )
                .await
            }
            _ => {}
        }
        outcome
    }

    /// Records a carrier's activity for the carrier-status view, at most once a minute per
    /// tenant, carrier and kind in this process (so an event costs no extra write), with the
    /// number of requests since the last record, except panel tests, which are rare and always
    /// recorded. A new hour is always recorded, so counts stay in their hour to the minute.
    /// A failure is logged, never answered: the view is for people, and the event is already
    /// safe; its count is kept for the next record.
    async fn record(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        activity: Activity,
        now: DateTime<Utc>,
        detail: Option<&str>,
    ) {
        let Some(count) = self.activity_due(tenant, carrier, activity, now) else {
            return;
        };
        if let Err(e) = self
            .intake
            .record_activity(tenant, carrier, activity, now, detail, count)
            .await
        {
            warn!(error = %e, "carrier activity not recorded");
            if let Some(unrecorded) =
                self.unrecorded()
                    .get_mut(&(tenant.clone(), carrier, activity))
            {
                unrecorded.count = unrecorded.count.saturating_add(count);
            }
        }
    }

    /// Counts one `activity`; the count to record now if a record is due, `None` if not.
    fn activity_due(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        activity: Activity,
        now: DateTime<Utc>,
    ) -> Option<u32> {
        let mut unrecorded = self.unrecorded();
        let seen = unrecorded
            .entry((tenant.clone(), carrier, activity))
            .or_insert(Unrecorded {
                last_recorded_at: None,
                count: 0,
            });
        seen.count = seen.count.saturating_add(1);
        let due = activity == Activity::PanelTest
            || seen.last_recorded_at.is_none_or(|last| {
                now - last >= ACTIVITY_RESOLUTION
                    || now < last
                    || HourlyActivity::hour_of(now) != HourlyActivity::hour_of(last)
            });
        due.then(|| {
            seen.last_recorded_at = Some(now);
            std::mem::take(&mut seen.count)
        })
    }

    fn unrecorded(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(TenantId, Carrier, Activity), Unrecorded>> {
        match self.activity_recorded.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Normalises an authenticated body that arrived at `received_at` and accepts its events
    /// now (claims are timed by `now`). A body that does not normalise is quarantined when
    /// `quarantine` is set (a live push), and only answered otherwise (a replay of a body already
    /// in quarantine).
    async fn ingest_body(
        &self,
        tenant: &TenantAuth,
        carrier: Carrier,
        body: &[u8],
        received_at: DateTime<Utc>,
        now: DateTime<Utc>,
        quarantine: bool,
    ) -> IngestOutcome {
        let tenant_id = tenant.tenant_id.clone();
        let ctx = NormalizeContext {
            tenant_id: tenant_id.clone(),
            received_at,
            zone: self.settings.zones.for_carrier(carrier),
            include_source: tenant.include_source,
            max_future: self.settings.max_future,
        };
        let events = match normalize(carrier, body, &ctx) {
            Ok(events) => events,
            Err(e) if quarantine => {
                return self
                    .reject(&tenant_id, carrier, body, &e.to_string(), now)
                    .await
            }
            Err(e) => {
                return IngestOutcome::Invalid {
                    reason: e.to_string(),
                }
            }
        };

        let mut queued = Vec::new();
        let mut duplicates = Vec::new();
        for mut event in events {
            let span = error_span!("event", event_id = %event.event_id);
            let claim = self.accept(&mut event, now).instrument(span.clone()).await;
            let _in_event = span.enter();
            match claim {
                Ok(Claim::Claimed) => queued.push(event.event_id),
                Ok(Claim::AlreadyQueued) => {
                    self.metrics
                        .count("Duplicate", 1, &[("Carrier", carrier.as_str())]);
                    info!("duplicate event");
                    duplicates.push(event.event_id);
                }
                Ok(Claim::InFlight) => {
                    info!("event is being accepted by another request");
                    return IngestOutcome::InFlight;
                }
                Err(e) => {
                    error!(error = %e, cause = %source_of(&e), "event not accepted");
                    return IngestOutcome::Unavailable;
                }
            }
        }
        IngestOutcome::Accepted { queued, duplicates }
    }

    /// Tries each credential the request presents; the first that belongs to a tenant wins.
    async fn authenticate(
        &self,
        request: &Inbound,
    ) -> Result<Result<TenantAuth, AuthFailure>, Unavailable> {
        let presented = presented_credentials(
            request.carrier,
            &CredentialSources {
                headers: &request.headers,
                query: &request.query,
                body: &request.body,
            },
        );
        let Some(first) = presented.first() else {
            warn!("no credential presented");
            return Ok(Err(AuthFailure::Missing));
        };
        for credential in &presented {
            let digest = credential.digest();
            if let Some(tenant) = self
                .config
                .tenant_by_credential(request.carrier, &digest)
                .await?
            {
                if !tenant.enabled {
                    Span::current().record("tenant_id", field::display(&tenant.tenant_id));
                    warn!("key of a disabled tenant");
                    return Ok(Err(AuthFailure::Disabled));
                }
                return Ok(Ok(tenant));
            }
        }
        warn!(key_hint = %first.digest().hint(), "unknown credential");
        Ok(Err(AuthFailure::Unknown))
    }

    /// Accepts one event through the intake; counts and logs it when it was queued now.
    async fn accept(
        &self,
        event: &mut CanonicalEvent,
        now: DateTime<Utc>,
    ) -> Result<Claim, Unavailable> {
        let claim = self.intake.accept(event, now).await?;
        if claim != Claim::Claimed {
            return Ok(claim);
        }
        let carrier = event.carrier.as_str();
        self.metrics.count("Accepted", 1, &[("Carrier", carrier)]);
        if event.status == Status::Unknown {
            self.metrics
                .count("UnmappedStatus", 1, &[("Carrier", carrier)]);
            warn!(code = %event.carrier_status.code, "unmapped carrier status code");
        }
        info!(
            awb = %event.awb.as_deref().unwrap_or(""),
            status = %event.status,
            // Only when true: on most events it is false, and every byte of a line is billed.
            is_stale = event.is_stale.then_some(true),
            "event accepted"
        );
        Ok(Claim::Claimed)
    }

    /// Quarantines an authenticated payload that does not normalise, and answers 400. If the
    /// quarantine cannot be written, answers 503 instead: the carrier's retry is then the only
    /// copy of the body, and it must not be dropped.
    async fn reject(
        &self,
        tenant_id: &TenantId,
        carrier: Carrier,
        body: &[u8],
        reason: &str,
        now: DateTime<Utc>,
    ) -> IngestOutcome {
        // What is kept holds no credential (Shipway's `hash`): the store holds no carrier key.
        let body = &*carrier.spec().scrub(body);
        let item = Quarantined {
            tenant_id,
            carrier,
            body_digest: hex::encode(Sha256::digest(body)),
            body,
            reason,
            received_at: now,
        };
        match self.intake.quarantine(&item).await {
            Ok(()) => {
                warn!(body_digest = %item.body_digest, reason, "payload rejected and quarantined");
                IngestOutcome::Invalid {
                    reason: reason.to_owned(),
                }
            }
            Err(e) => {
                error!(error = %e, cause = %source_of(&e), "quarantine unavailable");
                IngestOutcome::Unavailable
            }
        }
    }
}

/// Feeds a body that was authenticated when it arrived through ingest again: normalise, claim,
/// queue, with the answers of a live push. The quarantine's replay uses it once a normaliser is
/// fixed; a body that still does not normalise is answered `Invalid` and not quarantined again.
pub trait Reingest: Send + Sync {
    fn reingest(
        &self,
        tenant: &TenantAuth,
        carrier: Carrier,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> impl std::future::Future<Output = IngestOutcome> + Send;
}

impl<C: ConfigStore, S: Intake, M: Metrics> Reingest for Ingest<C, S, M> {
    async fn reingest(
        &self,
        tenant: &TenantAuth,
        carrier: Carrier,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> IngestOutcome {
        // The events keep the time their body first arrived; claims run on the clock.
        let span = error_span!("reingest", carrier = %carrier, tenant_id = %tenant.tenant_id);
        self.ingest_body(tenant, carrier, body, received_at, Utc::now(), false)
            .instrument(span)
            .await
    }
}

/// A config store that remembers, per process, the keys it found for `ttl`: on AWS the key and the
/// tenant's profile are two reads (one read unit) per request otherwise, more than the rest of an
/// event's reads together. A key that is not found is asked again every time (a new key works at
/// once); a removed key, or a tenant disabled, is refused within `ttl` (60 s on AWS).
pub struct CachedConfig<C> {
    inner: C,
    ttl: Duration,
    cache:
        Mutex<HashMap<(Carrier, crate::auth::CredentialDigest), (std::time::Instant, TenantAuth)>>,
}

impl<C> CachedConfig<C> {
    pub fn new(inner: C, ttl: Duration) -> Self {
        CachedConfig {
            inner,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl<C: ConfigStore> ConfigStore for CachedConfig<C> {
    async fn tenant_by_credential(
        &self,
        carrier: Carrier,
        digest: &crate::auth::CredentialDigest,
    ) -> Result<Option<TenantAuth>, Unavailable> {
        let lock = || {
            self.cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        if let Some((at, tenant)) = lock().get(&(carrier, *digest)) {
            if at.elapsed() < self.ttl {
                return Ok(Some(tenant.clone()));
            }
        }
        let found = self.inner.tenant_by_credential(carrier, digest).await?;
        match &found {
            Some(tenant) => {
                lock().insert(
                    (carrier, *digest),
                    (std::time::Instant::now(), tenant.clone()),
                );
            }
            None => {
                lock().remove(&(carrier, *digest));
            }
        }
        Ok(found)
    }
}

/// The queue-first protocol over a store and a separate queue (DynamoDB and SQS): record the
/// shipment's state (which stamps `is_stale`), queue a copy of the event under a new claim token,
/// then write the claim, with that token and the event for replay, on the condition that there is
/// none (or it is this token's own, a retry of a write whose answer was lost).
///
/// Every outcome leaves exactly one copy of the event that the dispatcher pushes, the one the
/// claim names (`DeliveryLog::standing`):
/// - a duplicate request queues a copy whose claim fails: it is answered "duplicate", and the
///   dispatcher drops the copy;
/// - a request that dies, or fails, between the queue and the claim leaves a copy with no claim:
///   the dispatcher writes the claim for it (the same conditional write) and pushes it, unless the
///   carrier's retry claimed the event first, whose copy is then the one pushed;
/// - a failure before the event is on the queue leaves nothing behind: 503, and the carrier's
///   retry is a first arrival.
///
/// Nothing is held and nothing released: no claim is written before its copy is on the queue.
pub struct QueueThenClaim<E, Q> {
    pub events: E,
    pub queue: Q,
}

impl<E: EventStore, Q: EventQueue> Intake for QueueThenClaim<E, Q> {
    async fn accept(
        &self,
        event: &mut CanonicalEvent,
        now: DateTime<Utc>,
    ) -> Result<Claim, Unavailable> {
        let freshness = self.events.record_shipment_event(event).await?;
        event.is_stale = freshness == Freshness::Stale;
        if freshness != Freshness::First {
            if let Some(earlier) = self.claimed_before(event, now).await? {
                return Ok(earlier);
            }
        }
        let token = ClaimToken::new();
        self.queue.enqueue(event, &token).await?;
        match self.events.claim(event, &token, now).await {
            Ok(claim) => Ok(claim),
            Err(e) => {
                // The event is on the queue, so it is accepted: the dispatcher finds no claim for
                // the copy (or this one, if the write landed) and writes it then. Answering 503
                // would only queue another copy.
                warn!(error = %e, cause = %source_of(&e), "event queued, its claim not written; the dispatcher writes it");
                Ok(Claim::Claimed)
            }
        }
    }

    async fn accept_pulled(
        &self,
        event: &mut CanonicalEvent,
        now: DateTime<Utc>,
    ) -> Result<Claim, Unavailable> {
        // Half a read unit against a copy sent, received and dropped, and two writes.
        if self.events.is_claimed(event).await? {
            return Ok(Claim::AlreadyQueued);
        }
        self.accept(event, now).await
    }

    async fn quarantine(&self, item: &Quarantined<'_>) -> Result<(), Unavailable> {
        self.events.quarantine(item).await
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
        self.events
            .record_activity(tenant, carrier, activity, at, detail, count)
            .await
    }
}

impl<E: EventStore, Q: EventQueue> QueueThenClaim<E, Q> {
    /// The answer for an event that the code before queue-first accepted, under its own id or a
    /// v1 id (`CanonicalEvent::legacy_ids`, the ids of the first identity), if it did:
    /// `AlreadyQueued`, or `InFlight` while an attempt of that code holds it. Asked before the
    /// event is queued, so that such a duplicate leaves no copy; and only for an event that is
    /// not its shipment's first (`Freshness::First`: a shipment that had no event cannot have had
    /// this one).
    ///
    /// This is the one place the claims of the code before are bridged for the queue-first
    /// stores (DynamoDB, the in-memory fake); SQLite keeps its claims where they were, and looks
    /// the v1 ids up inside its transaction. It costs one read per id (two for a webhook), for
    /// every event after its shipment's first, until those claims have expired (the dedup window:
    /// 35 days after queue-first went live; the v1 ones, after v2 did); the look-up goes then.
    async fn claimed_before(
        &self,
        event: &CanonicalEvent,
        now: DateTime<Utc>,
    ) -> Result<Option<Claim>, Unavailable> {
        let mut ids = vec![event.event_id.clone()];
        ids.extend(event.legacy_ids.iter().cloned());
        match self.events.earlier_claim(&ids, now).await? {
            None | Some(Claim::Claimed) => Ok(None),
            Some(Claim::AlreadyQueued) => {
                // How often this still happens says when the bridge can go.
                info!("duplicate of an event accepted before queue first");
                Ok(Some(Claim::AlreadyQueued))
            }
            Some(Claim::InFlight) => Ok(Some(Claim::InFlight)),
        }
    }
}

/// The innermost cause of an error, for logs.
fn source_of(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::adapters::memory::{MemoryDeliveryLog, MemoryEvents, MemoryQueue, QueuedMessage};
    use crate::ports::{DeliveryLog, Standing};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
    }

    fn scan(time: &str) -> CanonicalEvent {
        let body = format!(
            r#"{{"waybill":"AWB-V1","clickpost_status_code":6,"timestamp":"{time}","additional":{{"notification_event_id":3}}}}"#
        );
        let ctx = NormalizeContext::new(crate::model::TenantId::parse("acme").unwrap(), now());
        normalize(Carrier::Clickpost, body.as_bytes(), &ctx)
            .unwrap()
            .remove(0)
    }

    /// The event as the code before the v2 identity saw it: under its v1 id.
    fn as_v1(event: &CanonicalEvent) -> CanonicalEvent {
        let mut old = event.clone();
        old.event_id = event.legacy_ids[0].clone();
        old.legacy_ids = Default::default();
        old
    }

    type Memory = QueueThenClaim<MemoryEvents, MemoryQueue>;

    fn intake() -> (Memory, MemoryEvents, MemoryQueue) {
        let events = MemoryEvents::default();
        let queue = MemoryQueue::default();
        let intake = QueueThenClaim {
            events: events.clone(),
            queue: queue.clone(),
        };
        (intake, events, queue)
    }

    /// How the dispatcher finds a queued message: its copy's standing (`DeliveryLog::standing`)
    /// against the claims ingest wrote.
    async fn standing(log: &MemoryDeliveryLog, message: &QueuedMessage) -> Standing {
        let event: CanonicalEvent = serde_json::from_str(&message.body).unwrap();
        let token = ClaimToken::from_message(&message.claim_token);
        log.standing(&event, Some(&token), 1).await.unwrap()
    }

    #[tokio::test]
    async fn a_scan_queued_under_its_v1_id_is_a_duplicate_and_leaves_no_copy() {
        let (intake, events, queue) = intake();
        let mut event = scan("2026-11-20T10:00:00Z");
        assert_eq!(event.legacy_ids.len(), 1);
        assert_ne!(event.legacy_ids[0], event.event_id);
        events.queued_as_before(&as_v1(&event));
        assert_eq!(
            intake.accept(&mut event, now()).await.unwrap(),
            Claim::AlreadyQueued
        );
        assert!(queue.messages().is_empty());
        assert_eq!(events.claim_token(&event.event_id), None);
    }

    #[tokio::test]
    async fn an_event_the_code_before_queue_first_accepted_is_a_duplicate_and_leaves_no_copy() {
        let (intake, events, queue) = intake();
        let mut event = scan("2026-11-20T10:00:00Z");
        events.queued_as_before(&event);
        assert_eq!(
            intake.accept(&mut event, now()).await.unwrap(),
            Claim::AlreadyQueued
        );
        assert!(queue.messages().is_empty());
    }

    #[tokio::test]
    async fn a_v1_claim_still_in_flight_answers_in_flight_and_leaves_nothing() {
        let (intake, events, queue) = intake();
        let mut event = scan("2026-11-20T10:00:00Z");
        // An attempt of the old code holds the v1 claim and has not queued the event yet.
        let held_until = now() + chrono::TimeDelta::seconds(15);
        events.hold_as_before(&as_v1(&event), held_until);
        assert_eq!(
            intake.accept(&mut event, now()).await.unwrap(),
            Claim::InFlight
        );
        assert_eq!(events.claim_token(&event.event_id), None);
        assert!(queue.messages().is_empty());
        // Once that attempt's claim has expired unqueued, the scan is accepted.
        let later = now() + chrono::TimeDelta::seconds(60);
        assert_eq!(
            intake.accept(&mut event, later).await.unwrap(),
            Claim::Claimed
        );
        assert_eq!(queue.messages().len(), 1);
    }

    #[tokio::test]
    async fn a_duplicate_queues_a_copy_that_is_answered_duplicate_and_never_pushed() {
        let (intake, events, queue) = intake();
        let log = MemoryDeliveryLog::with_claims(events.clone());
        let mut event = scan("2026-11-20T10:00:00Z");
        let mut again = event.clone();
        assert_eq!(
            intake.accept(&mut event, now()).await.unwrap(),
            Claim::Claimed
        );
        assert_eq!(
            intake.accept(&mut again, now()).await.unwrap(),
            Claim::AlreadyQueued
        );
        let messages = queue.messages();
        assert_eq!(messages.len(), 2, "queue first: the duplicate's copy too");
        assert_eq!(
            events.claim_token(&event.event_id),
            Some(ClaimToken::from_message(&messages[0].claim_token))
        );
        assert_eq!(standing(&log, &messages[0]).await, Standing::Due);
        assert_eq!(standing(&log, &messages[1]).await, Standing::Duplicate);
    }

    #[tokio::test]
    async fn a_claim_whose_answer_was_lost_is_accepted_and_names_its_copy() {
        let (intake, events, queue) = intake();
        let log = MemoryDeliveryLog::with_claims(events.clone());
        let mut event = scan("2026-11-20T10:00:00Z");
        // The claim is written, its answer lost: the event is on the queue, so it is accepted
        // (a 503 would only have the carrier queue another copy).
        events.set_claims_lose_answers(true);
        assert_eq!(
            intake.accept(&mut event, now()).await.unwrap(),
            Claim::Claimed
        );
        events.set_claims_lose_answers(false);
        let messages = queue.messages();
        assert_eq!(standing(&log, &messages[0]).await, Standing::Due);
        // A re-send after that is a duplicate.
        assert_eq!(
            intake.accept(&mut event.clone(), now()).await.unwrap(),
            Claim::AlreadyQueued
        );
        assert_eq!(
            standing(&log, &queue.messages()[1]).await,
            Standing::Duplicate
        );
    }

    #[tokio::test]
    async fn a_copy_whose_request_died_before_its_claim_is_claimed_by_the_dispatcher() {
        let (intake, events, queue) = intake();
        let log = MemoryDeliveryLog::with_claims(events.clone());
        let event = scan("2026-11-20T10:00:00Z");
        // The request queued its copy and died: no claim, and the carrier got no answer.
        queue.enqueue(&event, &ClaimToken::new()).await.unwrap();
        let orphan = queue.messages()[0].clone();
        assert_eq!(events.claim_token(&event.event_id), None);
        // The dispatcher claims it, and pushes it: not lost when the carrier does not retry.
        assert_eq!(standing(&log, &orphan).await, Standing::Due);
        assert_eq!(
            standing(&log, &orphan).await,
            Standing::Due,
            "again: its own"
        );
        // When the carrier does retry, that is a duplicate now.
        assert_eq!(
            intake.accept(&mut event.clone(), now()).await.unwrap(),
            Claim::AlreadyQueued
        );
        assert_eq!(
            standing(&log, &queue.messages()[1]).await,
            Standing::Duplicate
        );
    }

    #[tokio::test]
    async fn a_retry_that_claims_before_the_dispatcher_sees_the_orphan_is_the_copy_pushed() {
        let (intake, events, queue) = intake();
        let log = MemoryDeliveryLog::with_claims(events.clone());
        let mut event = scan("2026-11-20T10:00:00Z");
        // SendMessage landed but its answer was lost: 503, and the carrier retries at once.
        queue.enqueue(&event, &ClaimToken::new()).await.unwrap();
        assert_eq!(
            intake.accept(&mut event, now()).await.unwrap(),
            Claim::Claimed
        );
        let messages = queue.messages();
        assert_eq!(standing(&log, &messages[0]).await, Standing::Duplicate);
        assert_eq!(standing(&log, &messages[1]).await, Standing::Due);
    }

    #[tokio::test]
    async fn a_store_or_queue_down_before_the_queue_leaves_nothing_behind() {
        let (intake, events, queue) = intake();
        let mut event = scan("2026-11-20T10:00:00Z");
        queue.set_unavailable(true);
        assert!(intake.accept(&mut event, now()).await.is_err());
        queue.set_unavailable(false);
        events.set_unavailable(true);
        assert!(intake.accept(&mut event, now()).await.is_err());
        events.set_unavailable(false);
        assert!(queue.messages().is_empty());
        assert_eq!(events.claim_token(&event.event_id), None);
        // The carrier's retry is a first arrival.
        assert_eq!(
            intake.accept(&mut event, now()).await.unwrap(),
            Claim::Claimed
        );
    }

    #[tokio::test]
    async fn a_found_key_is_remembered_for_the_ttl_and_an_unknown_one_is_asked_again() {
        use crate::adapters::memory::MemoryConfig;
        use crate::auth::Credential;

        let memory = MemoryConfig::default();
        let acme = TenantAuth {
            tenant_id: TenantId::parse("acme").unwrap(),
            include_source: true,
            enabled: true,
        };
        let (known, new) = (
            Credential::new("key-known-0001"),
            Credential::new("key-new-0002"),
        );
        memory.add_credential(Carrier::Clickpost, &known, acme.clone());
        let cached = CachedConfig::new(memory.clone(), Duration::from_secs(3600));
        let found = |c: &Credential| {
            let digest = c.digest();
            let cached = &cached;
            async move {
                cached
                    .tenant_by_credential(Carrier::Clickpost, &digest)
                    .await
            }
        };
        assert_eq!(found(&known).await.unwrap(), Some(acme.clone()));
        assert_eq!(found(&new).await.unwrap(), None);
        // The store is down: the key found is answered from memory, the unknown one is not.
        memory.set_unavailable(true);
        assert_eq!(found(&known).await.unwrap(), Some(acme.clone()));
        assert!(found(&new).await.is_err());
        // A key added since is found at once.
        memory.set_unavailable(false);
        memory.add_credential(Carrier::Clickpost, &new, acme.clone());
        assert_eq!(found(&new).await.unwrap(), Some(acme.clone()));
        // With no time to live, every request asks the store.
        let uncached = CachedConfig::new(memory.clone(), Duration::ZERO);
        uncached
            .tenant_by_credential(Carrier::Clickpost, &known.digest())
            .await
            .unwrap();
        memory.set_unavailable(true);
        assert!(uncached
            .tenant_by_credential(Carrier::Clickpost, &known.digest())
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_scan_without_a_v1_claim_is_accepted() {
        let (intake, _, queue) = intake();
        let mut event = scan("2026-11-20T10:00:00Z");
        assert_eq!(
            intake.accept(&mut event, now()).await.unwrap(),
            Claim::Claimed
        );
        assert_eq!(queue.messages().len(), 1);
    }

    type MemoryIngest = Ingest<
        crate::adapters::memory::MemoryConfig,
        QueueThenClaim<MemoryEvents, MemoryQueue>,
        crate::adapters::memory::RecordingMetrics,
    >;

    /// Ingest over in-memory stores, and its event store.
    fn over_memory() -> (MemoryEvents, MemoryIngest) {
        let events = MemoryEvents::default();
        let ingest = Ingest::new(
            crate::adapters::memory::MemoryConfig::default(),
            QueueThenClaim {
                events: events.clone(),
                queue: MemoryQueue::default(),
            },
            crate::adapters::memory::RecordingMetrics::default(),
            IngestSettings::default(),
        );
        (events, ingest)
    }

    #[tokio::test]
    async fn carrier_activity_is_written_at_most_once_a_minute_and_every_request_is_counted() {
        let (events, ingest) = over_memory();
        let acme = TenantId::parse("acme").unwrap();
        let at = |h: u32, m: u32, s: u32| Utc.with_ymd_and_hms(2026, 11, 22, h, m, s).unwrap();
        let accepted =
            |when| ingest.record(&acme, Carrier::Clickpost, Activity::Accepted, when, None);
        // 10:00:00 is written; the next four wait for 10:01:05, which writes all five of them.
        for when in [
            at(10, 0, 0),
            at(10, 0, 20),
            at(10, 0, 40),
            at(10, 0, 59),
            at(10, 1, 5),
        ] {
            accepted(when).await;
        }
        // 10:59:00 is written; 10:59:30 waits; 11:00:10 is in a new hour, so it is written at
        // once, with the one that waited (counted in 11:00's hour: counts are to the minute).
        accepted(at(10, 59, 0)).await;
        accepted(at(10, 59, 30)).await;
        accepted(at(11, 0, 10)).await;
        // Waiting, never written: a process that stops loses its last minute's count.
        accepted(at(11, 0, 20)).await;

        let view = &events.carrier_activity(&acme)[0];
        assert_eq!(view.last_accepted_at, Some(at(11, 0, 10)));
        let counts: Vec<(DateTime<Utc>, u64)> =
            view.hourly.iter().map(|h| (h.hour, h.accepted)).collect();
        assert_eq!(counts, [(at(10, 0, 0), 6), (at(11, 0, 0), 2)]);
    }

    #[tokio::test]
    async fn a_count_that_could_not_be_written_is_written_with_the_next_one() {
        let (events, ingest) = over_memory();
        let acme = TenantId::parse("acme").unwrap();
        let at = |m: u32| Utc.with_ymd_and_hms(2026, 11, 22, 10, m, 0).unwrap();
        events.set_unavailable(true);
        ingest
            .record(
                &acme,
                Carrier::Shipway,
                Activity::Rejected,
                at(0),
                Some("bad"),
            )
            .await;
        events.set_unavailable(false);
        ingest
            .record(
                &acme,
                Carrier::Shipway,
                Activity::Rejected,
                at(2),
                Some("bad"),
            )
            .await;
        let view = &events.carrier_activity(&acme)[2];
        assert_eq!(view.hourly[0].rejected, 2);
    }
}

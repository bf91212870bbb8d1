//! The ingest use-case, shared by the three notify Lambdas and `rms serve`:
//! authenticate → normalise → claim → record the shipment's state → enqueue → mark queued.
//!
//! Every answer is an `IngestOutcome`; `http::respond` turns it into the status and body the
//! carrier sees. Failures of a store or the queue release the claim and answer 503, so that the
//! carrier's retry is accepted rather than taken for a duplicate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use sha2::{Digest, Sha256};
use tracing::{debug, error, info, warn};

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
    /// How long a claim protects an event that has not been queued yet. Longer than the function
    /// timeout, so that a live request never loses its claim; short, so that the carrier's retry
    /// after a crash is accepted soon.
    pub claim_for: Duration,
    /// The zone each carrier's wall-clock times are in.
    pub zones: CarrierZones,
    /// How far after its arrival an event's time may be before the body is refused.
    pub max_future: chrono::TimeDelta,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            max_body_bytes: 256 * 1024,
            claim_for: Duration::from_secs(15),
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
    /// environment through `lookup`: `CLAIM_SECONDS` (15), `MAX_FUTURE_HOURS` (24) and each
    /// carrier's `<CARRIER>_ZONE` (the carrier's own).
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
        let claim_seconds = number("CLAIM_SECONDS", 15, 1..=3600, "seconds")?;
        let max_future_hours = number("MAX_FUTURE_HOURS", 24, 1..=24 * 366, "hours")?;
        Ok(IngestSettings {
            claim_for: Duration::from_secs(claim_seconds),
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
    /// A store or the queue failed; nothing is left claimed. The carrier should retry.
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

/// The ingest use-case over its ports.
pub struct Ingest<C, S, M> {
    pub config: C,
    /// Where accepted events and quarantined payloads go.
    pub intake: S,
    pub metrics: M,
    pub settings: IngestSettings,
    /// For each (tenant, carrier, activity): when this process last recorded it, and how many
    /// have happened since.
    activity_recorded: Mutex<HashMap<(TenantId, Carrier, Activity), Unrecorded>>,
}

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
            activity_recorded: Mutex::new(HashMap::new()),
        }
    }
}

impl<C: ConfigStore, S: Intake, M: Metrics> Ingest<C, S, M> {
    pub async fn handle(&self, request: &Inbound, now: DateTime<Utc>) -> IngestOutcome {
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
        debug!(carrier = %carrier, outcome = result, "request handled");
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
            info!(carrier = %carrier, "carrier set-up probe answered");
            return IngestOutcome::Probe;
        }

        let tenant = match self.authenticate(request).await {
            Ok(Ok(tenant)) => tenant,
            Ok(Err(_)) if kind == BodyKind::PanelTest => {
                // The panel is answered 200 all the same; only a known key says who is wired.
                warn!(carrier = %carrier, "panel test body without a known credential");
                return IngestOutcome::PanelTest;
            }
            Ok(Err(failure)) => return IngestOutcome::Unauthorized(failure),
            Err(e) => {
                error!(carrier = %carrier, error = %e, cause = %source_of(&e), "config store unavailable");
                return IngestOutcome::Unavailable;
            }
        };
        if kind == BodyKind::PanelTest {
            info!(tenant_id = %tenant.tenant_id, carrier = %carrier, "panel test body received; not an event");
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
            warn!(tenant_id = %tenant, carrier = %carrier, error = %e, "carrier activity not recorded");
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
            tenant_id: tenant_id.to_string(),
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
            match self.accept(&mut event, now).await {
                Ok(Claim::Claimed) => queued.push(event.event_id),
                Ok(Claim::AlreadyQueued) => {
                    self.metrics
                        .count("Duplicate", 1, &[("Carrier", carrier.as_str())]);
                    info!(tenant_id = %tenant_id, carrier = %carrier, event_id = %event.event_id, "duplicate event");
                    duplicates.push(event.event_id);
                }
                Ok(Claim::InFlight) => {
                    info!(tenant_id = %tenant_id, carrier = %carrier, event_id = %event.event_id, "event is being accepted by another request");
                    return IngestOutcome::InFlight;
                }
                Err(e) => {
                    error!(tenant_id = %tenant_id, carrier = %carrier, event_id = %event.event_id, error = %e, cause = %source_of(&e), "event not accepted");
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
            warn!(carrier = %request.carrier, "no credential presented");
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
                    warn!(tenant_id = %tenant.tenant_id, carrier = %request.carrier, "key of a disabled tenant");
                    return Ok(Err(AuthFailure::Disabled));
                }
                return Ok(Ok(tenant));
            }
        }
        warn!(carrier = %request.carrier, key_hint = %first.digest().hint(), "unknown credential");
        Ok(Err(AuthFailure::Unknown))
    }

    /// Accepts one event through the intake; counts and logs it when it was queued now.
    async fn accept(
        &self,
        event: &mut CanonicalEvent,
        now: DateTime<Utc>,
    ) -> Result<Claim, Unavailable> {
        let claim = self
            .intake
            .accept(event, now, self.settings.claim_for)
            .await?;
        if claim != Claim::Claimed {
            return Ok(claim);
        }
        let carrier = event.carrier.as_str();
        self.metrics.count("Accepted", 1, &[("Carrier", carrier)]);
        if event.status == Status::Unknown {
            self.metrics
                .count("UnmappedStatus", 1, &[("Carrier", carrier)]);
            warn!(carrier = %carrier, code = %event.carrier_status.code, "unmapped carrier status code");
        }
        info!(
            tenant_id = %event.tenant_id,
            carrier = %carrier,
            event_id = %event.event_id,
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
                warn!(tenant_id = %tenant_id, carrier = %carrier, body_digest = %item.body_digest, reason, "payload rejected and quarantined");
                IngestOutcome::Invalid {
                    reason: reason.to_owned(),
                }
            }
            Err(e) => {
                error!(tenant_id = %tenant_id, carrier = %carrier, error = %e, cause = %source_of(&e), "quarantine unavailable");
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
        self.ingest_body(tenant, carrier, body, received_at, Utc::now(), false)
            .await
    }
}

impl<T: Reingest> Reingest for std::sync::Arc<T> {
    fn reingest(
        &self,
        tenant: &TenantAuth,
        carrier: Carrier,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> impl std::future::Future<Output = IngestOutcome> + Send {
        (**self).reingest(tenant, carrier, body, received_at)
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

/// The claim protocol over a store and a separate queue (DynamoDB and SQS): claim the event id with
/// a conditional write, record the shipment's state, queue, then mark the claim queued. Any
/// failure, of the claim itself included (its write may have landed), releases this attempt's
/// claim, so the carrier's retry can take it again.
pub struct ClaimThenQueue<E, Q> {
    pub events: E,
    pub queue: Q,
}

impl<E: EventStore, Q: EventQueue> Intake for ClaimThenQueue<E, Q> {
    async fn accept(
        &self,
        event: &mut CanonicalEvent,
        now: DateTime<Utc>,
        claim_for: Duration,
    ) -> Result<Claim, Unavailable> {
        let token = ClaimToken::new();
        let claim = match self.events.claim(event, now, claim_for, &token).await {
            Ok(claim) => claim,
            Err(e) => {
                // The write may have landed although its answer was lost (a timeout, a reset).
                self.release(event, &token).await;
                return Err(e);
            }
        };
        if claim != Claim::Claimed {
            return Ok(claim);
        }
        if let Some(earlier) = self.earlier_claim(event, &token, now).await? {
            return Ok(earlier);
        }
        let queued = async {
            event.is_stale = self.events.record_shipment_event(event).await? == Freshness::Stale;
            self.queue.enqueue(event).await
        }
        .await;
        if let Err(e) = queued {
            self.release(event, &token).await;
            return Err(e);
        }
        if let Err(e) = self.events.mark_queued(event).await {
            // The event is on the queue, so it is accepted. The claim stays RECEIVED until it
            // expires; a re-send after that is queued again and the dispatcher drops the copy.
            warn!(event_id = %event.event_id, error = %e, "event queued but not marked queued");
        }
        Ok(Claim::Claimed)
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

impl<E: EventStore, Q: EventQueue> ClaimThenQueue<E, Q> {
    /// The answer for an event whose own claim is new but which was accepted before under a v1
    /// id (`CanonicalEvent::legacy_ids`, the ids of the first identity), if it was: `AlreadyQueued`
    /// (its own claim is then marked queued, so that the next copy is answered by that claim
    /// alone), or `InFlight` while an attempt of the old code holds it (its own claim released).
    ///
    /// This is the one place the identity change is bridged for the claim-then-queue stores
    /// (DynamoDB, the in-memory fake); SQLite does the same inside its transaction. It costs one
    /// read, and only when the event's own claim is new: a duplicate under the current id costs
    /// nothing more. The read finds nothing once the v1 claims have expired (the dedup window,
    /// 35 days after v2 went live), and the look-up goes with `legacy_ids` then.
    async fn earlier_claim(
        &self,
        event: &CanonicalEvent,
        token: &ClaimToken,
        now: DateTime<Utc>,
    ) -> Result<Option<Claim>, Unavailable> {
        if event.legacy_ids.is_empty() {
            return Ok(None);
        }
        match self.events.earlier_claim(&event.legacy_ids, now).await {
            Ok(None | Some(Claim::Claimed)) => Ok(None),
            Ok(Some(Claim::AlreadyQueued)) => {
                // How often this still happens says when the bridge can go.
                info!(event_id = %event.event_id, "duplicate of an event accepted under its v1 id");
                if let Err(e) = self.events.mark_queued(event).await {
                    // The next copy looks the v1 claim up again: still a duplicate.
                    warn!(event_id = %event.event_id, error = %e, "duplicate of a v1 claim not marked queued");
                    self.release(event, token).await;
                }
                Ok(Some(Claim::AlreadyQueued))
            }
            Ok(Some(Claim::InFlight)) => {
                self.release(event, token).await;
                Ok(Some(Claim::InFlight))
            }
            Err(e) => {
                self.release(event, token).await;
                Err(e)
            }
        }
    }

    /// Gives up this attempt's claim, if it holds one, so that the carrier's retry is accepted.
    async fn release(&self, event: &CanonicalEvent, token: &ClaimToken) {
        if let Err(e) = self.events.release(&event.event_id, token).await {
            // The claim expires by itself after `claim_for`; until then a retry is 503 too.
            error!(event_id = %event.event_id, error = %e, "claim not released");
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
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::adapters::memory::{
        ClaimState, MemoryConfig, MemoryEvents, MemoryQueue, RecordingMetrics,
    };
    use crate::auth::Credential;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
    }

    fn scan(time: &str) -> CanonicalEvent {
        let body = format!(
            r#"{{"waybill":"AWB-V1","clickpost_status_code":6,"timestamp":"{time}","additional":{{"notification_event_id":3}}}}"#
        );
        let ctx = NormalizeContext::new("acme", now());
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

    type Memory = ClaimThenQueue<Arc<MemoryEvents>, Arc<MemoryQueue>>;

    fn intake() -> (Memory, Arc<MemoryEvents>, Arc<MemoryQueue>) {
        let events = Arc::new(MemoryEvents::default());
        let queue = Arc::new(MemoryQueue::default());
        let intake = ClaimThenQueue {
            events: events.clone(),
            queue: queue.clone(),
        };
        (intake, events, queue)
    }

    const HOLD: Duration = Duration::from_secs(15);

    #[tokio::test]
    async fn a_scan_queued_under_its_v1_id_is_a_duplicate_and_its_v2_claim_says_so() {
        let (intake, events, queue) = intake();
        let mut event = scan("2026-11-20T10:00:00Z");
        assert_eq!(event.legacy_ids.len(), 1);
        assert_ne!(event.legacy_ids[0], event.event_id);
        let mut before = as_v1(&event);
        assert_eq!(
            intake.accept(&mut before, now(), HOLD).await.unwrap(),
            Claim::Claimed
        );
        assert_eq!(
            intake.accept(&mut event, now(), HOLD).await.unwrap(),
            Claim::AlreadyQueued
        );
        assert_eq!(queue.messages().len(), 1, "queued once, under v1");
        // The next copy is answered by the v2 claim alone.
        assert_eq!(
            events.claim_state(&event.event_id),
            Some(ClaimState::Queued)
        );
    }

    #[tokio::test]
    async fn a_v1_claim_still_in_flight_answers_in_flight_and_leaves_no_v2_claim() {
        let (intake, events, queue) = intake();
        let mut event = scan("2026-11-20T10:00:00Z");
        let old = as_v1(&event);
        // An attempt of the old code holds the v1 claim and has not queued the event yet.
        events
            .claim(&old, now(), HOLD, &ClaimToken::new())
            .await
            .unwrap();
        assert_eq!(
            intake.accept(&mut event, now(), HOLD).await.unwrap(),
            Claim::InFlight
        );
        assert_eq!(events.claim_state(&event.event_id), None);
        assert!(queue.messages().is_empty());
        // Once that attempt's claim has expired unqueued, the scan is accepted.
        let later = now() + chrono::TimeDelta::seconds(60);
        assert_eq!(
            intake.accept(&mut event, later, HOLD).await.unwrap(),
            Claim::Claimed
        );
        assert_eq!(queue.messages().len(), 1);
    }

    #[tokio::test]
    async fn a_found_key_is_remembered_for_the_ttl_and_an_unknown_one_is_asked_again() {
        let memory = Arc::new(MemoryConfig::default());
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
            intake.accept(&mut event, now(), HOLD).await.unwrap(),
            Claim::Claimed
        );
        assert_eq!(queue.messages().len(), 1);
    }

    const KEY: &str = "cp-use-case-key-0001";

    /// Ingest over the fakes, acme holding the Clickpost key `KEY`, and the fakes to look at.
    struct World {
        ingest: Ingest<Arc<MemoryConfig>, Memory, RecordingMetrics>,
        config: Arc<MemoryConfig>,
        events: Arc<MemoryEvents>,
        queue: Arc<MemoryQueue>,
    }

    fn world() -> World {
        let config = Arc::new(MemoryConfig::default());
        let acme = TenantAuth {
            tenant_id: TenantId::parse("acme").unwrap(),
            include_source: true,
            enabled: true,
        };
        config.add_credential(Carrier::Clickpost, &Credential::new(KEY), acme);
        let (intake, events, queue) = intake();
        World {
            ingest: Ingest::new(
                config.clone(),
                intake,
                RecordingMetrics::default(),
                IngestSettings::default(),
            ),
            config,
            events,
            queue,
        }
    }

    /// The vendor's Clickpost sample as pushed with `KEY`, and its one event.
    fn clickpost_push() -> (Inbound, CanonicalEvent) {
        let body = crate::fixtures::fixture("clickpost/out_for_delivery_all_status.json");
        let event = normalize(
            Carrier::Clickpost,
            &body,
            &NormalizeContext::new("acme", now()),
        )
        .unwrap()
        .remove(0);
        let push = Inbound {
            carrier: Carrier::Clickpost,
            method: "POST".into(),
            headers: HashMap::from([("webhook_key".to_owned(), KEY.to_owned())]),
            query: HashMap::new(),
            body,
        };
        (push, event)
    }

    fn accepted(event: &CanonicalEvent) -> IngestOutcome {
        IngestOutcome::Accepted {
            queued: vec![event.event_id.clone()],
            duplicates: vec![],
        }
    }

    #[tokio::test]
    async fn a_queue_failure_releases_the_claim_so_the_carriers_retry_is_accepted() {
        let w = world();
        let (push, event) = clickpost_push();
        w.queue.set_unavailable(true);
        assert_eq!(
            w.ingest.handle(&push, now()).await,
            IngestOutcome::Unavailable
        );
        assert_eq!(w.events.claim_state(&event.event_id), None, "released");
        w.queue.set_unavailable(false);
        assert_eq!(w.ingest.handle(&push, now()).await, accepted(&event));
        assert_eq!(w.queue.messages().len(), 1);
    }

    /// The claim's write landed but its answer was lost (a timeout, a reset connection): the
    /// attempt gives its claim up, so the carrier's retry is accepted at once rather than refused
    /// as "in flight" until the claim expires.
    #[tokio::test]
    async fn a_claim_whose_answer_was_lost_is_released_so_the_retry_is_accepted() {
        let w = world();
        let (push, event) = clickpost_push();
        w.events.set_claims_lose_answers(true);
        assert_eq!(
            w.ingest.handle(&push, now()).await,
            IngestOutcome::Unavailable
        );
        w.events.set_claims_lose_answers(false);
        assert_eq!(w.ingest.handle(&push, now()).await, accepted(&event));
        assert_eq!(w.queue.messages().len(), 1);
    }

    #[tokio::test]
    async fn a_store_failure_is_unavailable_with_nothing_queued() {
        let w = world();
        let (push, _) = clickpost_push();
        w.events.set_unavailable(true);
        assert_eq!(
            w.ingest.handle(&push, now()).await,
            IngestOutcome::Unavailable
        );
        w.events.set_unavailable(false);
        w.config.set_unavailable(true);
        assert_eq!(
            w.ingest.handle(&push, now()).await,
            IngestOutcome::Unavailable
        );
        assert!(w.queue.messages().is_empty());
    }

    /// Another request holds the event's claim and has not queued it yet: the carrier is asked
    /// to retry, and the claim is left to its holder; once it has expired unqueued (its holder
    /// died), the retry takes it.
    #[tokio::test]
    async fn a_claim_another_request_holds_is_in_flight_until_it_expires() {
        let w = world();
        let (push, event) = clickpost_push();
        let theirs = ClaimToken::new();
        w.events.claim(&event, now(), HOLD, &theirs).await.unwrap();
        assert_eq!(w.ingest.handle(&push, now()).await, IngestOutcome::InFlight);
        assert!(matches!(
            w.events.claim_state(&event.event_id),
            Some(ClaimState::Received { token, .. }) if token == theirs
        ));
        assert!(w.queue.messages().is_empty());
        let later = now() + chrono::TimeDelta::seconds(60);
        assert_eq!(w.ingest.handle(&push, later).await, accepted(&event));
    }

    #[tokio::test]
    async fn carrier_activity_is_written_at_most_once_a_minute_and_every_request_is_counted() {
        let World { ingest, events, .. } = world();
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
        let World { ingest, events, .. } = world();
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

//! The dispatch use-case, shared by the dispatcher Lambda and `rms serve`: one queued event →
//! the tenant's Push Config → status filter → (latest-state tenants: superseded?) → signed POST →
//! a `Decision` the queue adapter acts on (acknowledge, retry later, or dead-letter). Rules:
//! design.md, "Dispatcher delivery rules"; README, "Delivery".

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tracing::{error_span, info, warn, Instrument};

use crate::circuit::{Breaker, CircuitStore, Gate, Health, OpenCircuit, Transition};
use crate::model::{CanonicalEvent, EventId, TenantId};
use crate::ports::{
    Attempt, AttemptOutcome, ClaimToken, DeliveryLog, Metrics, PushConfigStore, PushRequest,
    PushResult, Pusher, QueueActions, ShipmentStates, Standing, Unavailable,
};
use crate::push::{Delivery, PushConfig};

/// SQS cannot hide a message for longer than 12 hours, and no wait is ever longer.
pub const MAX_DELAY: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// The wait after the n-th failed attempt (the last entry repeats).
    pub retry_schedule: Vec<Duration>,
    /// ±fraction of randomness on each wait, so that retries after an outage spread out.
    pub jitter: f64,
    /// The last attempt: a failure that would be retried is dead-lettered instead, with its
    /// reason, and logged as such. The queue moves a message received more often than this to the
    /// dead letters itself (SQS's `maxReceiveCount`, the SQLite queue's lease); this is the same
    /// limit (`MAX_ATTEMPTS` in the SAM template, `dispatch.max_attempts` in `rms.toml`), seen by
    /// the attempt that reaches it, so the last attempt says why the message stopped.
    pub max_attempts: u32,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        let retry_schedule = vec![
            Duration::from_secs(30),
            minutes(2),
            minutes(10),
            minutes(30),
            minutes(60),
            minutes(120),
            minutes(240),
            minutes(480),
            minutes(720),
        ];
        // The first attempt and one after each of the schedule's waits: 10.
        let max_attempts = u32::try_from(retry_schedule.len() + 1).unwrap_or(u32::MAX);
        DispatchSettings {
            retry_schedule,
            jitter: 0.2,
            max_attempts,
        }
    }
}

/// What the queue should do with the message.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Delivered now: acknowledge.
    Delivered,
    /// Nothing to deliver (the tenant does not want this status, it was delivered before, or the
    /// copy is a duplicate's): acknowledge.
    Skipped { reason: &'static str },
    /// Try again after `after`: keep the message hidden that long and report it failed.
    Retry { after: Duration, reason: String },
    /// Will never succeed as it is: move to the dead-letter queue with `reason`, acknowledge.
    DeadLetter { reason: String },
    /// Not pushed: the tenant takes a shipment's latest state only, and this event's shipment
    /// has the newer event `by`. Logged as an attempt; acknowledge.
    Superseded { by: EventId },
}

pub struct Dispatch<C, P, L, M, B, S> {
    pub configs: C,
    pub pusher: P,
    pub log: L,
    pub metrics: M,
    /// The per-tenant circuit breaker (`circuit.rs`).
    pub breaker: Breaker<B>,
    /// The shipments' state as ingest keeps it; read for tenants with `delivery = latest` only.
    pub shipments: S,
    pub settings: DispatchSettings,
}

/// One message as a queue hands it out (SQS to the dispatcher Lambda, the SQLite queue to
/// `rms serve`): what the one message step, [`Dispatch::decide`] then [`settle`], works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The queue's handle on this receive: what it is acknowledged, delayed or dead-lettered by.
    pub receipt: String,
    /// The event, as `rms.tracking.v1` JSON.
    pub body: String,
    /// How many times the queue has handed it out (1 the first time): the delivery attempt.
    pub receive_count: u32,
    /// Queued again by ops (`rms replay`, the admin API): pushed even if it was delivered before.
    pub replay: bool,
    /// Which copy of the event this is (`ingest::QueueThenClaim`): only the one its claim names
    /// is pushed. `None` on a queue that holds only accepted copies (SQLite's), and on copies
    /// queued by the code before queue-first.
    pub token: Option<ClaimToken>,
    /// The attributes it was queued with, kept on the dead-letter queue.
    pub attributes: Vec<(String, String)>,
}

impl<C, P, L, M, B, S> Dispatch<C, P, L, M, B, S>
where
    C: PushConfigStore,
    P: Pusher,
    L: DeliveryLog,
    M: Metrics,
    B: CircuitStore,
    S: ShipmentStates,
{
    /// Receive → decide: what becomes of one message handed out by the queue.
    pub async fn decide(&self, message: &Message, now: DateTime<Utc>) -> Decision {
        let event = match serde_json::from_str::<CanonicalEvent>(&message.body) {
            Ok(event) => event,
            Err(e) => {
                return Decision::DeadLetter {
                    reason: format!("the message is not an rms.tracking.v1 event: {e}"),
                }
            }
        };
        if message.replay {
            self.redeliver(&event, message.receive_count, now).await
        } else {
            self.deliver_copy(&event, message.token.as_ref(), message.receive_count, now)
                .await
        }
    }

    /// The message step of both hosts: receive → decide → settle. `true` when the message is
    /// done with and must be acknowledged (see [`settle`]).
    pub async fn process<A: QueueActions>(&self, message: &Message, actions: &A) -> bool {
        let decision = self.decide(message, Utc::now()).await;
        settle(&decision, actions, message).await
    }

    /// Delivers one event from a queue that holds only accepted copies (the SQLite store's);
    /// `receive_count` is how many times the queue has handed it out (1 on the first attempt).
    /// An event delivered before is skipped.
    pub async fn deliver(
        &self,
        event: &CanonicalEvent,
        receive_count: u32,
        now: DateTime<Utc>,
    ) -> Decision {
        self.deliver_copy(event, None, receive_count, now).await
    }

    /// Delivers the copy of an event queued with `token` (its `claim_token` attribute; `None` if
    /// it has none): pushed only if it is the copy the event's claim names (`DeliveryLog::standing`),
    /// and the event was not delivered before.
    pub async fn deliver_copy(
        &self,
        event: &CanonicalEvent,
        token: Option<&ClaimToken>,
        receive_count: u32,
        now: DateTime<Utc>,
    ) -> Decision {
        self.deliver_once_or_again(event, Origin::Ingest(token), receive_count, now)
            .await
    }

    /// Delivers a replayed event (`rms replay`): pushed even if it was delivered before, or a
    /// newer event of its shipment supersedes it, because ops asked for it again.
    pub async fn redeliver(
        &self,
        event: &CanonicalEvent,
        receive_count: u32,
        now: DateTime<Utc>,
    ) -> Decision {
        self.deliver_once_or_again(event, Origin::Replay, receive_count, now)
            .await
    }

    /// One delivery, in a span that gives each of its log lines the tenant and the event (at
    /// ERROR level, so that it is there whatever `RUST_LOG` lets through).
    async fn deliver_once_or_again(
        &self,
        event: &CanonicalEvent,
        origin: Origin<'_>,
        receive_count: u32,
        now: DateTime<Utc>,
    ) -> Decision {
        let span =
            error_span!("delivery", tenant_id = %event.tenant_id, event_id = %event.event_id);
        self.deliver_in_span(event, origin, receive_count, now)
            .instrument(span)
            .await
    }

    async fn deliver_in_span(
        &self,
        event: &CanonicalEvent,
        origin: Origin<'_>,
        receive_count: u32,
        now: DateTime<Utc>,
    ) -> Decision {
        let replay = matches!(origin, Origin::Replay);
        let attempt = receive_count.max(1);
        let tenant_id = &event.tenant_id;
        let config = match self.configs.push_config(tenant_id).await {
            Ok(Some(config)) => config,
            Ok(None) => {
                return self.wait(event, attempt, None, "the tenant has no Push Config yet")
            }
            Err(e) => return self.wait(event, attempt, None, &format!("config store: {e}")),
        };
        if !config.enabled {
            return self.wait(event, attempt, None, "the tenant's Push Config is disabled");
        }
        if !config.wants(event.status) {
            self.metrics
                .count("Filtered", 1, &[("Tenant", event.tenant_id.as_str())]);
            info!(status = %event.status, "status not selected by the tenant; skipped");
            return Decision::Skipped {
                reason: "status not selected",
            };
        }
        if let Origin::Ingest(token) = origin {
            match self.log.standing(event, token, attempt).await {
                Ok(Standing::Due) => {}
                Ok(Standing::Delivered) => {
                    info!("already delivered; skipped");
                    return Decision::Skipped {
                        reason: "already delivered",
                    };
                }
                Ok(Standing::Duplicate) => {
                    info!("copy of a duplicate; dropped");
                    return Decision::Skipped {
                        reason: "a duplicate's copy",
                    };
                }
                Err(e) => return self.wait(event, attempt, None, &format!("delivery log: {e}")),
            }
        }
        if config.delivery == Delivery::Latest && !replay {
            match self
                .shipments
                .shipment(tenant_id, event.shipment_key())
                .await
            {
                Ok(Some(state)) => {
                    if let Some(newer) = state.superseded_by(event, &config) {
                        let decision = Decision::Superseded { by: newer.clone() };
                        return self
                            .conclude(event, attempt, decision, None, Duration::ZERO, now)
                            .await;
                    }
                }
                Ok(None) => {}
                Err(e) => return self.wait(event, attempt, None, &format!("shipment state: {e}")),
            }
        }

        let request = match build_request(event, &config, now) {
            Ok(request) => request,
            Err(reason) => {
                return self
                    .finish(event, attempt, PushResult::Refused { reason }, now)
                    .await
            }
        };
        let gate = self.breaker.gate(tenant_id, now).await;
        if let Gate::Open(circuit) = &gate {
            // Failed fast: no call, and the attempt counts as a failed one, so the message keeps
            // its place on the retry schedule and still reaches the dead-letter queue in the end.
            let decision = self.wait(event, attempt, None, &circuit_open(circuit));
            return self
                .conclude(event, attempt, decision, None, Duration::ZERO, now)
                .await;
        }
        let result = self.pusher.push(&request).await;
        match &result {
            PushResult::Answered { .. } => {
                self.note_circuit(tenant_id, &gate, Health::Reachable, now)
                    .await;
            }
            PushResult::TimedOut { .. } | PushResult::ConnectFailed { .. } => {
                let failure = failure(&result);
                self.note_circuit(tenant_id, &gate, Health::Unreachable(&failure), now)
                    .await;
            }
            PushResult::Refused { .. } => {}
        }
        self.finish(event, attempt, result, now).await
    }

    /// Tells the breaker what the push found; logs and counts a change of state.
    async fn note_circuit(
        &self,
        tenant: &TenantId,
        gate: &Gate,
        health: Health<'_>,
        now: DateTime<Utc>,
    ) {
        match self.breaker.record(tenant, gate, health, now).await {
            Ok(None) => {}
            Ok(Some(Transition::Opened(circuit))) => {
                self.metrics
                    .count("CircuitOpened", 1, &[("Tenant", tenant.as_str())]);
                warn!(failures = circuit.failures, last_error = %circuit.last_error, probe_at = %circuit.probe_at.to_rfc3339(), "circuit opened: the tenant's endpoint keeps failing; its messages are failed fast until a probe gets an answer");
            }
            Ok(Some(Transition::StillOpen(circuit))) => {
                warn!(failures = circuit.failures, last_error = %circuit.last_error, probe_at = %circuit.probe_at.to_rfc3339(), "circuit probe failed; the circuit stays open");
            }
            Ok(Some(Transition::Closed)) => {
                self.metrics
                    .count("CircuitClosed", 1, &[("Tenant", tenant.as_str())]);
                info!("circuit closed: the tenant's endpoint answers again");
            }
            Err(e) => {
                warn!(error = %e, "circuit state not saved");
            }
        }
    }

    /// Classifies the push result, logs the attempt, counts it.
    async fn finish(
        &self,
        event: &CanonicalEvent,
        attempt: u32,
        result: PushResult,
        now: DateTime<Utc>,
    ) -> Decision {
        let tenant = event.tenant_id.as_str();
        let (decision, http_status, latency) = match &result {
            PushResult::Answered {
                status,
                retry_after,
                latency,
                ..
            } => {
                let decision = match status {
                    200..=299 => Decision::Delivered,
                    408 | 429 | 500..=599 => self.wait(event, attempt, *retry_after, &format!("the endpoint answered {status}")),
                    300..=399 => dead_letter(format!("the endpoint answered {status} (a redirect); redirects are not followed: update the Push Config URL")),
                    _ => dead_letter(format!("the endpoint answered {status}; a 4xx other than 408 and 429 will not succeed on retry")),
                };
                if matches!(status, 401 | 403) {
                    self.metrics
                        .count("ClientAuthFailed", 1, &[("Tenant", tenant)]);
                    warn!(http_status = status, "the client's endpoint refused our credentials; check the tenant's Push Config headers");
                }
                (decision, Some(*status), *latency)
            }
            PushResult::TimedOut { latency } | PushResult::ConnectFailed { latency, .. } => (
                self.wait(event, attempt, None, &failure(&result)),
                None,
                *latency,
            ),
            PushResult::Refused { reason } => (
                dead_letter(format!("refused: {reason}")),
                None,
                Duration::ZERO,
            ),
        };
        self.conclude(event, attempt, decision, http_status, latency, now)
            .await
    }

    /// Logs the attempt and counts it.
    async fn conclude(
        &self,
        event: &CanonicalEvent,
        attempt: u32,
        decision: Decision,
        http_status: Option<u16>,
        latency: Duration,
        now: DateTime<Utc>,
    ) -> Decision {
        let tenant = event.tenant_id.as_str();

        let (outcome, error) = match &decision {
            Decision::Delivered => (AttemptOutcome::Delivered, None),
            Decision::Retry { reason, .. } => (AttemptOutcome::Retry, Some(reason.clone())),
            Decision::DeadLetter { reason } => (AttemptOutcome::DeadLetter, Some(reason.clone())),
            Decision::Superseded { by } => (
                AttemptOutcome::Superseded,
                Some(format!("superseded by {by}")),
            ),
            Decision::Skipped { .. } => return decision,
        };
        let latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        let record = Attempt {
            event_id: event.event_id.clone(),
            tenant_id: event.tenant_id.clone(),
            awb: event.shipment_key().to_owned(),
            status: event.status,
            attempt,
            outcome,
            http_status,
            latency_ms,
            error: error.clone(),
            at: now,
        };
        if let Err(e) = self.log.record_attempt(&record).await {
            // The delivery happened (or not) whatever the log says; losing a log line must not
            // cause a second delivery, so the decision stands.
            warn!(error = %e, "delivery attempt not logged");
        }
        match &decision {
            Decision::Delivered => {
                self.metrics.count("Delivered", 1, &[("Tenant", tenant)]);
                self.metrics.count("DeliveryLatencyMs", latency_ms, &[]);
                let end_to_end = (Utc::now() - event.received_at).num_milliseconds().max(0);
                self.metrics.count(
                    "EndToEndLatencyMs",
                    u64::try_from(end_to_end).unwrap_or(0),
                    &[],
                );
                // The AWB and the status are on the event's "event accepted" line (and in the delivery
                // log); this one says what became of the event. The attempt only when it is a retry:
                // most deliveries are first attempts, and every byte of a line is billed.
                let retry = (attempt > 1).then_some(attempt);
                info!(attempt = retry, http_status, latency_ms, "delivered");
            }
            Decision::Retry { after, reason } => {
                self.metrics
                    .count("DeliveryFailed", 1, &[("Tenant", tenant)]);
                warn!(awb = %record.awb, attempt, http_status, retry_in_s = after.as_secs(), reason = %reason, "delivery failed; will retry");
            }
            Decision::DeadLetter { reason } => {
                self.metrics.count("DeadLettered", 1, &[("Tenant", tenant)]);
                warn!(awb = %record.awb, attempt, http_status, reason = %reason, "delivery dead-lettered");
            }
            Decision::Superseded { by } => {
                self.metrics.count("Superseded", 1, &[("Tenant", tenant)]);
                info!(awb = %record.awb, status = %event.status, superseded_by = %by, "superseded by a newer event of the shipment; not pushed (delivery = latest)");
            }
            Decision::Skipped { .. } => {}
        }
        decision
    }

    /// A retry after the schedule's wait for this attempt, or the endpoint's `Retry-After` when
    /// that is longer: an endpoint may ask for more time, never for less (`Retry-After: 0` would
    /// otherwise spend every attempt in a second). On the last attempt, a dead letter.
    fn wait(
        &self,
        event: &CanonicalEvent,
        attempt: u32,
        retry_after: Option<Duration>,
        reason: &str,
    ) -> Decision {
        let max = self.settings.max_attempts;
        if attempt >= max {
            return dead_letter(format!("{reason}; no attempts left (max attempts: {max})"));
        }
        let after = backoff(&self.settings, attempt, event.event_id.as_str())
            .max(retry_after.unwrap_or(Duration::ZERO))
            .min(MAX_DELAY);
        Decision::Retry {
            after,
            reason: reason.to_owned(),
        }
    }
}

/// Who queued the copy of an event the dispatcher was handed.
#[derive(Debug, Clone, Copy)]
enum Origin<'a> {
    /// Ingest (with the copy's claim token, if it carries one): pushed once per event.
    Ingest(Option<&'a ClaimToken>),
    /// Queued again by ops: pushed even if it was delivered before.
    Replay,
}

fn dead_letter(reason: String) -> Decision {
    Decision::DeadLetter { reason }
}

/// A timeout or connection failure, as the delivery log and the circuit word it.
fn failure(result: &PushResult) -> String {
    match result {
        PushResult::TimedOut { latency } => format!("no answer within {} ms", latency.as_millis()),
        PushResult::ConnectFailed { reason, .. } => format!("could not connect: {reason}"),
        PushResult::Answered { status, .. } => format!("the endpoint answered {status}"),
        PushResult::Refused { reason } => format!("refused: {reason}"),
    }
}

fn circuit_open(circuit: &OpenCircuit) -> String {
    format!(
        "not sent: the tenant's circuit is open after {} failures in a row (last: {}); next probe at {}",
        circuit.failures,
        circuit.last_error,
        circuit.probe_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// Carries a decision out on the queue. Returns `true` when the message is done with and must be
/// acknowledged (deleted), `false` when it must come back. A dead letter carries the message's
/// delivery attempt (its receive count) as its `attempts` attribute, since the dead-letter
/// queue's own count starts again.
pub async fn settle<A: QueueActions>(decision: &Decision, actions: &A, message: &Message) -> bool {
    let (receipt, attempt) = (message.receipt.as_str(), message.receive_count);
    match decision {
        Decision::Delivered | Decision::Skipped { .. } | Decision::Superseded { .. } => true,
        Decision::Retry { after, .. } => {
            if let Err(e) = actions.retry_later(receipt, *after).await {
                // The message comes back after the queue's own visibility timeout instead.
                warn!(receipt, error = %e, "could not set the retry delay");
            }
            false
        }
        Decision::DeadLetter { reason } => {
            let mut attributes: Vec<(String, String)> = message
                .attributes
                .iter()
                .filter(|(name, _)| name != "attempts")
                .cloned()
                .collect();
            attributes.push(("attempts".to_owned(), attempt.to_string()));
            match actions
                .dead_letter(&message.body, &attributes, reason)
                .await
            {
                Ok(()) => true,
                Err(e) => {
                    // Not acknowledged, so not lost: it comes back and is dead-lettered then, or by the
                    // queue's own redrive.
                    tracing::error!(receipt, error = %e, "could not move the message to the dead-letter queue");
                    false
                }
            }
        }
    }
}

/// The schedule's wait after `attempt`, with jitter. The jitter is derived from the event id and
/// the attempt, so it spreads different events apart yet is the same every time it is computed.
pub fn backoff(settings: &DispatchSettings, attempt: u32, event_id: &str) -> Duration {
    let Some(last) = settings.retry_schedule.last() else {
        return Duration::ZERO;
    };
    let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
    let base = settings.retry_schedule.get(index).unwrap_or(last);
    let digest = Sha256::digest(format!("{event_id}#{attempt}").as_bytes());
    let unit = f64::from(u16::from_be_bytes([digest[0], digest[1]])) / f64::from(u16::MAX); // 0..=1
    let factor = 1.0 + settings.jitter * (2.0 * unit - 1.0);
    base.mul_f64(factor.max(0.0)).min(MAX_DELAY)
}

/// The POST for an event: the canonical event as JSON, the tenant's credential headers, and the
/// Standard Webhooks headers (`webhook-id` is the event id, so clients can deduplicate).
pub(crate) fn build_request(
    event: &CanonicalEvent,
    config: &PushConfig,
    now: DateTime<Utc>,
) -> Result<PushRequest, String> {
    let body =
        serde_json::to_vec(event).map_err(|e| format!("the event could not be serialised: {e}"))?;
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("user-agent".to_owned(), "RMS-Notify/1".to_owned()),
    ];
    for (name, value) in &config.headers {
        if value.expose().contains(['\r', '\n']) {
            return Err(format!("the value of header {name} contains a line break"));
        }
        headers.push((name.clone(), value.expose().to_owned()));
    }
    headers.push(("webhook-id".to_owned(), event.event_id.to_string()));
    let timestamp = now.timestamp();
    headers.push(("webhook-timestamp".to_owned(), timestamp.to_string()));
    if let Some(secret) = &config.signing_secret {
        headers.push((
            "webhook-signature".to_owned(),
            secret.sign(event.event_id.as_str(), timestamp, &body),
        ));
    }
    Ok(PushRequest {
        url: config.url.as_str().to_owned(),
        headers,
        body,
        timeout: config.timeout.get(),
    })
}

/// A Push Config store with an in-memory cache: one read per tenant per `ttl` per container, so a
/// burst of events costs one config read. A change takes effect within `ttl`.
pub struct CachedPushConfigs<S> {
    inner: S,
    ttl: Duration,
    cache: Mutex<HashMap<TenantId, (Instant, Option<PushConfig>)>>,
}

impl<S> CachedPushConfigs<S> {
    pub fn new(inner: S, ttl: Duration) -> Self {
        CachedPushConfigs {
            inner,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl<S: PushConfigStore> PushConfigStore for CachedPushConfigs<S> {
    async fn push_config(&self, tenant: &TenantId) -> Result<Option<PushConfig>, Unavailable> {
        let lock = || {
            self.cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        if let Some((at, config)) = lock().get(tenant) {
            if at.elapsed() < self.ttl {
                return Ok(config.clone());
            }
        }
        let config = self.inner.push_config(tenant).await?;
        lock().insert(tenant.clone(), (Instant::now(), config.clone()));
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::adapters::memory::{
        MemoryCircuits, MemoryDeliveryLog, MemoryEvents, MemoryPushConfigs, RecordingMetrics,
        ScriptedPusher,
    };
    use crate::carriers::{normalize, NormalizeContext};
    use crate::circuit::BreakerSettings;
    use crate::circuit::CircuitStore;
    use crate::model::{Carrier, Status};
    use crate::ports::AttemptOutcome;
    use crate::ports::EventStore;
    use crate::push::{
        PushHeaders, PushTimeout, PushUrl, SecretValue, SigningSecret, TargetPolicy,
    };

    fn event() -> CanonicalEvent {
        let body =
            br#"{"waybill":"AWB1","clickpost_status_code":8,"timestamp":"2023-02-07T18:09:00Z"}"#;
        let ctx = NormalizeContext::new(
            crate::model::TenantId::parse("acme").unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
        );
        normalize(Carrier::Clickpost, body, &ctx).unwrap().remove(0)
    }

    fn config() -> PushConfig {
        PushConfig {
            url: PushUrl::parse("https://client.example/hook", TargetPolicy::default()).unwrap(),
            headers: PushHeaders::stored(vec![(
                "Authorization".into(),
                SecretValue::new("Bearer t0ken"),
            )]),
            statuses: vec![],
            signing_secret: Some(
                SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
            ),
            timeout: PushTimeout::DEFAULT,
            enabled: true,
            delivery: crate::push::Delivery::Every,
        }
    }

    type MemoryDispatch = Dispatch<
        MemoryPushConfigs,
        ScriptedPusher,
        MemoryDeliveryLog,
        RecordingMetrics,
        MemoryCircuits,
        MemoryEvents,
    >;

    struct World {
        dispatch: MemoryDispatch,
        configs: MemoryPushConfigs,
        pusher: ScriptedPusher,
        log: MemoryDeliveryLog,
        metrics: RecordingMetrics,
        circuits: MemoryCircuits,
        /// Where ingest records the shipments' state.
        events: MemoryEvents,
    }

    fn world(results: Vec<PushResult>) -> World {
        let configs = MemoryPushConfigs::default();
        configs.set(&TenantId::parse("acme").unwrap(), Some(config()));
        let pusher = ScriptedPusher::new(results);
        let metrics = RecordingMetrics::default();
        let circuits = MemoryCircuits::default();
        let events = MemoryEvents::default();
        let log = MemoryDeliveryLog::default();
        World {
            dispatch: Dispatch {
                configs: configs.clone(),
                pusher: pusher.clone(),
                log: log.clone(),
                metrics: metrics.clone(),
                breaker: Breaker::new(circuits.clone(), BreakerSettings::default()),
                shipments: events.clone(),
                settings: DispatchSettings::default(),
            },
            configs,
            pusher,
            log,
            metrics,
            circuits,
            events,
        }
    }

    fn answered(status: u16) -> PushResult {
        PushResult::Answered {
            status,
            retry_after: None,
            body_prefix: String::new(),
            latency: Duration::from_millis(12),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 5).unwrap()
    }

    /// A world whose delivery log reads the claims ingest writes, as DynamoDB's does.
    fn world_with_claims(results: Vec<PushResult>) -> World {
        let mut w = world(results);
        w.log = MemoryDeliveryLog::with_claims(w.events.clone());
        w.dispatch.log = w.log.clone();
        w
    }

    #[tokio::test]
    async fn only_the_copy_its_claim_names_is_pushed_and_only_once() {
        let w = world_with_claims(vec![answered(200), answered(200)]);
        let e = event();
        let (accepted, duplicate) = (ClaimToken::new(), ClaimToken::new());
        w.events.claim(&e, &accepted, now()).await.unwrap();
        // A duplicate request's copy: dropped, no push, nothing logged.
        assert_eq!(
            w.dispatch
                .deliver_copy(&e, Some(&duplicate), 1, now())
                .await,
            Decision::Skipped {
                reason: "a duplicate's copy"
            }
        );
        assert!(w.pusher.requests().is_empty());
        assert!(w.log.attempts().is_empty());
        assert_eq!(
            w.dispatch.deliver_copy(&e, Some(&accepted), 1, now()).await,
            Decision::Delivered
        );
        // Handed out again after its push: not pushed twice.
        assert_eq!(
            w.dispatch.deliver_copy(&e, Some(&accepted), 2, now()).await,
            Decision::Skipped {
                reason: "already delivered"
            }
        );
        assert_eq!(w.pusher.requests().len(), 1);
    }

    #[tokio::test]
    async fn a_copy_without_a_claim_is_claimed_and_pushed_and_a_later_copy_is_not() {
        let w = world_with_claims(vec![answered(200), answered(200)]);
        let e = event();
        let (orphan, later) = (ClaimToken::new(), ClaimToken::new());
        assert_eq!(
            w.dispatch.deliver_copy(&e, Some(&orphan), 1, now()).await,
            Decision::Delivered
        );
        assert_eq!(
            w.events.claim(&e, &later, now()).await.unwrap(),
            crate::ports::Claim::AlreadyQueued
        );
        assert_eq!(
            w.dispatch.deliver_copy(&e, Some(&later), 1, now()).await,
            Decision::Skipped {
                reason: "already delivered"
            }
        );
        assert_eq!(w.pusher.requests().len(), 1);
    }

    #[tokio::test]
    async fn a_2xx_is_delivered_once_and_logged_with_its_attempt() {
        let w = world(vec![answered(204)]);
        assert_eq!(
            w.dispatch.deliver(&event(), 1, now()).await,
            Decision::Delivered
        );
        let attempts = w.log.attempts();
        assert_eq!(attempts.len(), 1);
        assert_eq!(
            (
                attempts[0].attempt,
                attempts[0].http_status,
                attempts[0].latency_ms
            ),
            (1, Some(204), 12)
        );
        // The queue may hand the same message out again: it is not pushed twice.
        assert_eq!(
            w.dispatch.deliver(&event(), 2, now()).await,
            Decision::Skipped {
                reason: "already delivered"
            }
        );
        assert_eq!(w.pusher.requests().len(), 1);
        assert_eq!(w.metrics.total("Delivered"), 1);
    }

    #[tokio::test]
    async fn the_request_carries_the_credentials_and_a_valid_signature() {
        let w = world(vec![answered(200)]);
        let e = event();
        w.dispatch.deliver(&e, 1, now()).await;
        let request = &w.pusher.requests()[0];
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("Authorization"), Some("Bearer t0ken"));
        assert_eq!(header("content-type"), Some("application/json"));
        assert_eq!(header("webhook-id"), Some(e.event_id.as_str()));
        assert_eq!(header("webhook-timestamp"), Some("1795341605"));
        let expected = config().signing_secret.unwrap().sign(
            e.event_id.as_str(),
            1_795_341_605,
            &request.body,
        );
        assert_eq!(header("webhook-signature"), Some(expected.as_str()));
        let sent: CanonicalEvent = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(sent, e);
        assert!(
            !format!("{request:?}").contains("t0ken"),
            "Debug hides header values"
        );
    }

    #[tokio::test]
    async fn retryable_answers_back_off_by_the_schedule_and_honour_retry_after() {
        for (result, attempt, expected_base) in [
            (answered(500), 1, 30),
            (answered(503), 3, 600),
            (answered(408), 2, 120),
            (
                PushResult::TimedOut {
                    latency: Duration::from_secs(10),
                },
                9,
                43_200,
            ),
            (
                PushResult::ConnectFailed {
                    reason: "refused".into(),
                    latency: Duration::ZERO,
                },
                20,
                43_200,
            ),
        ] {
            let mut w = world(vec![result.clone()]);
            // A limit beyond the schedule (`dispatch.max_attempts` may be): its last wait repeats.
            w.dispatch.settings.max_attempts = 100;
            let Decision::Retry { after, .. } = w.dispatch.deliver(&event(), attempt, now()).await
            else {
                panic!("{result:?} should be retried");
            };
            let base = expected_base as f64;
            let secs = after.as_secs_f64();
            assert!(
                secs >= base * 0.8 - 0.001 && secs <= (base * 1.2).min(43_200.0) + 0.001,
                "{result:?} attempt {attempt}: {secs}"
            );
            assert_eq!(w.metrics.total("DeliveryFailed"), 1);
        }
        let w = world(vec![PushResult::Answered {
            status: 429,
            retry_after: Some(Duration::from_secs(120)),
            body_prefix: String::new(),
            latency: Duration::ZERO,
        }]);
        assert!(
            matches!(w.dispatch.deliver(&event(), 1, now()).await, Decision::Retry { after, .. } if after == Duration::from_secs(120))
        );
        // Retry-After never shortens the schedule: 0 (or 1 s) still waits the schedule's 30 s.
        for (seconds, attempt) in [(0, 1), (1, 1), (5, 3)] {
            let w = world(vec![PushResult::Answered {
                status: 503,
                retry_after: Some(Duration::from_secs(seconds)),
                body_prefix: String::new(),
                latency: Duration::ZERO,
            }]);
            let expected = backoff(
                &DispatchSettings::default(),
                attempt,
                event().event_id.as_str(),
            );
            assert!(
                matches!(w.dispatch.deliver(&event(), attempt, now()).await, Decision::Retry { after, .. } if after == expected),
                "Retry-After: {seconds} on attempt {attempt}"
            );
        }
        let w = world(vec![PushResult::Answered {
            status: 503,
            retry_after: Some(Duration::from_secs(7 * 24 * 3600)),
            body_prefix: String::new(),
            latency: Duration::ZERO,
        }]);
        assert!(
            matches!(w.dispatch.deliver(&event(), 1, now()).await, Decision::Retry { after, .. } if after == MAX_DELAY)
        );
    }

    fn timed_out() -> PushResult {
        PushResult::TimedOut {
            latency: Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn five_unreachable_pushes_open_the_circuit_and_later_messages_fail_fast() {
        let w = world(vec![
            timed_out(),
            PushResult::ConnectFailed {
                reason: "connection refused".into(),
                latency: Duration::ZERO,
            },
            timed_out(),
            timed_out(),
            timed_out(),
        ]);
        let acme = TenantId::parse("acme").unwrap();
        for attempt in 1..=5 {
            let decision = w.dispatch.deliver(&event(), attempt, now()).await;
            assert!(matches!(decision, Decision::Retry { .. }), "{decision:?}");
        }
        assert_eq!(w.pusher.requests().len(), 5);
        assert_eq!(w.metrics.total("CircuitOpened"), 1);
        let open = w.circuits.open_circuit(&acme).await.unwrap().unwrap();
        assert_eq!(open.failures, 5);
        assert!(
            open.last_error.contains("no answer within 10000 ms"),
            "{open:?}"
        );

        // Open: no call, a retry on the normal schedule, logged as an attempt like a failed call.
        let decision = w.dispatch.deliver(&event(), 6, now()).await;
        let expected = backoff(&DispatchSettings::default(), 6, event().event_id.as_str());
        let Decision::Retry { after, reason } = decision else {
            panic!("{decision:?}")
        };
        assert_eq!(after, expected);
        assert!(
            reason.contains("circuit is open after 5 failures"),
            "{reason}"
        );
        assert_eq!(w.pusher.requests().len(), 5, "no call while open");
        let logged = w.log.attempts();
        assert_eq!(logged.len(), 6);
        assert_eq!(logged[5].attempt, 6);
        assert_eq!(logged[5].outcome, AttemptOutcome::Retry);
        assert_eq!(w.metrics.total("DeliveryFailed"), 6);
    }

    #[tokio::test]
    async fn after_the_cool_down_one_probe_goes_through_and_an_answer_closes_the_circuit() {
        let w = world(vec![
            timed_out(),
            timed_out(),
            timed_out(),
            timed_out(),
            timed_out(),
            // The first probe times out; the second is answered.
            timed_out(),
            answered(503),
            answered(200),
        ]);
        let acme = TenantId::parse("acme").unwrap();
        for attempt in 1..=5 {
            w.dispatch.deliver(&event(), attempt, now()).await;
        }
        let cool_down = chrono::TimeDelta::seconds(30);
        let later = now() + cool_down;
        // The probe, then (still half-open, the probe taken) a message failed fast.
        w.dispatch.deliver(&event(), 6, later).await;
        assert_eq!(w.pusher.requests().len(), 6);
        w.dispatch.deliver(&event(), 7, later).await;
        assert_eq!(w.pusher.requests().len(), 6, "one probe per cool-down");
        let open = w.circuits.open_circuit(&acme).await.unwrap().unwrap();
        assert_eq!(open.failures, 6);
        assert_eq!(open.probe_at, later + cool_down);

        // The next probe is answered (503 is an answer: the endpoint is reachable): closed.
        let decision = w.dispatch.deliver(&event(), 8, later + cool_down).await;
        assert!(matches!(decision, Decision::Retry { .. }));
        assert_eq!(w.circuits.open_circuit(&acme).await.unwrap(), None);
        assert_eq!(w.metrics.total("CircuitClosed"), 1);
        let decision = w.dispatch.deliver(&event(), 9, later + cool_down).await;
        assert_eq!(decision, Decision::Delivered);
        assert_eq!(w.pusher.requests().len(), 8);
        assert_eq!(w.metrics.total("CircuitOpened"), 1);
    }

    #[tokio::test]
    async fn an_answer_resets_the_count_and_one_tenant_s_circuit_is_its_own() {
        let mut script = vec![timed_out(); 4];
        script.push(answered(500));
        script.extend(vec![timed_out(); 4]);
        let w = world(script);
        for attempt in 1..=9 {
            w.dispatch.deliver(&event(), attempt, now()).await;
        }
        assert_eq!(w.metrics.total("CircuitOpened"), 0, "never five in a row");

        // Another tenant's failures do not open acme's circuit.
        let w = world(vec![timed_out(); 5]);
        let globex = TenantId::parse("globex").unwrap();
        w.configs.set(&globex, Some(config()));
        let mut other = event();
        other.tenant_id = TenantId::parse("globex").unwrap();
        for attempt in 1..=5 {
            w.dispatch.deliver(&other, attempt, now()).await;
        }
        assert!(w.circuits.open_circuit(&globex).await.unwrap().is_some());
        let acme = TenantId::parse("acme").unwrap();
        assert_eq!(w.circuits.open_circuit(&acme).await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_unreadable_circuit_store_does_not_stop_deliveries() {
        let w = world(vec![answered(200)]);
        w.circuits.set_unavailable(true);
        assert_eq!(
            w.dispatch.deliver(&event(), 1, now()).await,
            Decision::Delivered
        );
    }

    #[tokio::test]
    async fn a_failure_on_the_last_attempt_is_dead_lettered_with_its_reason() {
        let max = DispatchSettings::default().max_attempts;
        let w = world(vec![answered(503), timed_out(), timed_out()]);
        let decision = w.dispatch.deliver(&event(), max - 1, now()).await;
        assert!(matches!(decision, Decision::Retry { .. }), "{decision:?}");
        for attempt in [max, max + 1] {
            let decision = w.dispatch.deliver(&event(), attempt, now()).await;
            let Decision::DeadLetter { reason } = decision else {
                panic!("attempt {attempt}: {decision:?}")
            };
            assert!(reason.starts_with("no answer within 10000 ms"), "{reason}");
            assert!(
                reason.ends_with("no attempts left (max attempts: 10)"),
                "{reason}"
            );
        }
        // The delivery log says what became of it, with the failure that ended it.
        let outcomes: Vec<_> = w.log.attempts().iter().map(|a| a.outcome).collect();
        assert_eq!(
            outcomes,
            [
                AttemptOutcome::Retry,
                AttemptOutcome::DeadLetter,
                AttemptOutcome::DeadLetter
            ]
        );
        assert_eq!(w.metrics.total("DeadLettered"), 2);
        assert_eq!(w.metrics.total("DeliveryFailed"), 1);
    }

    #[tokio::test]
    async fn other_4xx_and_redirects_are_dead_lettered_and_401_is_counted() {
        for status in [400, 401, 403, 404, 410, 422, 301, 302] {
            let w = world(vec![answered(status)]);
            let decision = w.dispatch.deliver(&event(), 1, now()).await;
            assert!(
                matches!(&decision, Decision::DeadLetter { reason } if reason.contains(&status.to_string())),
                "{status}: {decision:?}"
            );
            assert_eq!(
                w.metrics.total("ClientAuthFailed"),
                u64::from(matches!(status, 401 | 403)),
                "{status}"
            );
            assert_eq!(w.log.attempts()[0].outcome, AttemptOutcome::DeadLetter);
        }
    }

    #[tokio::test]
    async fn an_unselected_status_is_skipped_without_a_call() {
        let w = world(vec![]);
        let mut c = config();
        c.statuses = vec![Status::RtoDelivered];
        w.configs.set(&TenantId::parse("acme").unwrap(), Some(c));
        assert_eq!(
            w.dispatch.deliver(&event(), 1, now()).await,
            Decision::Skipped {
                reason: "status not selected"
            }
        );
        assert!(w.pusher.requests().is_empty());
        assert_eq!(w.metrics.total("Filtered"), 1);
    }

    #[tokio::test]
    async fn a_disabled_or_unconfigured_tenant_waits_instead_of_dropping() {
        let w = world(vec![]);
        let mut c = config();
        c.enabled = false;
        w.configs.set(&TenantId::parse("acme").unwrap(), Some(c));
        assert!(
            matches!(w.dispatch.deliver(&event(), 1, now()).await, Decision::Retry { reason, .. } if reason.contains("disabled"))
        );
        w.configs.set(&TenantId::parse("acme").unwrap(), None);
        assert!(
            matches!(w.dispatch.deliver(&event(), 1, now()).await, Decision::Retry { reason, .. } if reason.contains("no Push Config"))
        );
        assert!(w.pusher.requests().is_empty());
    }

    #[tokio::test]
    async fn a_header_value_with_a_line_break_is_refused_not_sent() {
        let w = world(vec![]);
        let mut c = config();
        c.headers = PushHeaders::stored(vec![(
            "X-Client".into(),
            SecretValue::new("a\r\nX-Injected: 1"),
        )]);
        w.configs.set(&TenantId::parse("acme").unwrap(), Some(c));
        assert!(
            matches!(w.dispatch.deliver(&event(), 1, now()).await, Decision::DeadLetter { reason } if reason.contains("line break"))
        );
        assert!(w.pusher.requests().is_empty());
    }

    /// Scans of AWB1, the n-th `minutes` after the first; the last is `DELIVERED`.
    fn scans(count: u32) -> Vec<CanonicalEvent> {
        (0..count)
            .map(|n| {
                let code = if n + 1 == count { 8 } else { 5 };
                let body = format!(
                    r#"{{"waybill":"AWB1","clickpost_status_code":{code},"timestamp":"2023-02-07T18:{n:02}:00Z"}}"#
                );
                let ctx = NormalizeContext::new(crate::model::TenantId::parse("acme").unwrap(),
                    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
                );
                normalize(Carrier::Clickpost, body.as_bytes(), &ctx)
                    .unwrap()
                    .remove(0)
            })
            .collect()
    }

    /// A world whose tenant takes `delivery`, with `scans` accepted by ingest (the shipment's
    /// state recorded) while its endpoint was away.
    async fn backlog(delivery: Delivery, scans: &[CanonicalEvent]) -> World {
        let w = world(vec![answered(200); 8]);
        let mut c = config();
        c.delivery = delivery;
        w.configs.set(&TenantId::parse("acme").unwrap(), Some(c));
        for scan in scans {
            w.events.record_shipment_event(scan).await.unwrap();
        }
        w
    }

    #[tokio::test]
    async fn a_latest_tenant_gets_the_newest_event_of_a_backlog_and_the_rest_are_logged_superseded()
    {
        let scans = scans(5);
        let newest = scans[4].event_id.clone();
        let w = backlog(Delivery::Latest, &scans).await;
        // The queue hands them out in any order.
        for scan in [&scans[2], &scans[4], &scans[0], &scans[3], &scans[1]] {
            let decision = w.dispatch.deliver(scan, 1, now()).await;
            let expected = if scan.event_id == newest {
                Decision::Delivered
            } else {
                Decision::Superseded { by: newest.clone() }
            };
            assert_eq!(decision, expected, "{}", scan.event_time);
        }
        let pushed = w.pusher.requests();
        assert_eq!(pushed.len(), 1);
        let sent: CanonicalEvent = serde_json::from_slice(&pushed[0].body).unwrap();
        assert_eq!(
            (sent.event_id, sent.status),
            (newest.clone(), Status::Delivered)
        );
        let superseded: Vec<Attempt> = w
            .log
            .attempts()
            .into_iter()
            .filter(|a| a.outcome == AttemptOutcome::Superseded)
            .collect();
        assert_eq!(superseded.len(), 4);
        for attempt in &superseded {
            assert_eq!(
                attempt.error.as_deref(),
                Some(format!("superseded by {newest}").as_str())
            );
            assert_eq!((attempt.http_status, attempt.awb.as_str()), (None, "AWB1"));
        }
        assert_eq!(w.metrics.total_where("Superseded", "Tenant", "acme"), 4);
        assert_eq!(w.metrics.total("Delivered"), 1);
    }

    #[tokio::test]
    async fn an_every_tenant_gets_the_whole_backlog_and_the_state_is_not_read() {
        let scans = scans(5);
        let w = backlog(Delivery::Every, &scans).await;
        // A store that cannot be read would make a latest tenant wait; an every tenant never asks.
        w.events.set_unavailable(true);
        for scan in &scans {
            assert_eq!(
                w.dispatch.deliver(scan, 1, now()).await,
                Decision::Delivered
            );
        }
        assert_eq!(w.pusher.requests().len(), 5);
        assert_eq!(w.metrics.total("Superseded"), 0);
    }

    #[tokio::test]
    async fn a_replayed_event_is_pushed_although_a_newer_one_supersedes_it() {
        let scans = scans(3);
        let w = backlog(Delivery::Latest, &scans).await;
        assert_eq!(
            w.dispatch.redeliver(&scans[0], 1, now()).await,
            Decision::Delivered
        );
        assert_eq!(w.pusher.requests().len(), 1);
    }

    #[tokio::test]
    async fn a_latest_tenant_without_a_backlog_gets_every_event_as_it_comes() {
        let scans = scans(3);
        let w = backlog(Delivery::Latest, &[]).await;
        for scan in &scans {
            w.events.record_shipment_event(scan).await.unwrap();
            assert_eq!(
                w.dispatch.deliver(scan, 1, now()).await,
                Decision::Delivered
            );
        }
        // A late scan, older than one delivered already, is not news for this tenant.
        let mut late = scans[0].clone();
        late.event_time -= chrono::TimeDelta::minutes(5);
        late.event_id = EventId::from_stored("evt_late");
        w.events.record_shipment_event(&late).await.unwrap();
        assert_eq!(
            w.dispatch.deliver(&late, 1, now()).await,
            Decision::Superseded {
                by: scans[2].event_id.clone()
            }
        );
        assert_eq!(w.pusher.requests().len(), 3);
    }

    #[tokio::test]
    async fn a_newer_event_of_a_status_the_tenant_filters_out_supersedes_nothing() {
        let scans = scans(3);
        let w = backlog(Delivery::Latest, &scans).await;
        let mut c = config();
        c.delivery = Delivery::Latest;
        c.statuses = vec![Status::InTransit];
        w.configs.set(&TenantId::parse("acme").unwrap(), Some(c));
        // The newest is DELIVERED, which this tenant does not take: both in-transit scans go.
        for scan in &scans[..2] {
            assert_eq!(
                w.dispatch.deliver(scan, 1, now()).await,
                Decision::Delivered
            );
        }
        assert_eq!(
            w.dispatch.deliver(&scans[2], 1, now()).await,
            Decision::Skipped {
                reason: "status not selected"
            }
        );
    }

    #[tokio::test]
    async fn an_unreadable_shipment_state_makes_a_latest_tenant_s_event_wait() {
        let scans = scans(2);
        let w = backlog(Delivery::Latest, &scans).await;
        w.events.set_unavailable(true);
        assert!(
            matches!(w.dispatch.deliver(&scans[0], 1, now()).await, Decision::Retry { reason, .. } if reason.contains("shipment state"))
        );
        assert!(w.pusher.requests().is_empty());
        // A superseded event is acknowledged like a delivered one.
        let actions = crate::adapters::memory::MemoryQueueActions::default();
        let superseded = Decision::Superseded {
            by: scans[1].event_id.clone(),
        };
        assert!(settle(&superseded, &actions, &message("{}", 1, vec![])).await);
        assert!(actions.retries().is_empty() && actions.dead_lettered().is_empty());
    }

    fn message(body: &str, receive_count: u32, attributes: Vec<(String, String)>) -> Message {
        Message {
            receipt: "rh".to_owned(),
            body: body.to_owned(),
            receive_count,
            replay: false,
            token: None,
            attributes,
        }
    }

    #[tokio::test]
    async fn a_message_that_is_not_an_event_is_dead_lettered_with_the_reason() {
        let w = world(vec![]);
        let actions = crate::adapters::memory::MemoryQueueActions::default();
        assert!(
            w.dispatch
                .process(&message("{not json", 1, vec![]), &actions)
                .await
        );
        let dead = actions.dead_lettered();
        assert_eq!(dead.len(), 1);
        assert!(
            dead[0].reason.contains("not an rms.tracking.v1 event"),
            "{}",
            dead[0].reason
        );
        assert!(w.pusher.requests().is_empty());
    }

    #[tokio::test]
    async fn a_dead_letter_carries_the_attempt_it_was_given_up_at() {
        let actions = crate::adapters::memory::MemoryQueueActions::default();
        let gone = Decision::DeadLetter {
            reason: "the endpoint answered 410".into(),
        };
        let attributes = vec![
            ("event_id".to_owned(), "evt_1".to_owned()),
            ("attempts".to_owned(), "stale".to_owned()),
        ];
        assert!(settle(&gone, &actions, &message("{}", 3, attributes)).await);
        let dead = actions.dead_lettered();
        assert_eq!(
            dead[0].attributes,
            [
                ("event_id".to_owned(), "evt_1".to_owned()),
                ("attempts".to_owned(), "3".to_owned())
            ]
        );
    }

    #[test]
    fn backoff_follows_the_schedule_within_the_jitter_and_is_repeatable() {
        let settings = DispatchSettings::default();
        for (attempt, base) in [
            (1, 30.0),
            (2, 120.0),
            (5, 3600.0),
            (9, 43_200.0),
            (50, 43_200.0),
        ] {
            let wait = backoff(&settings, attempt, "evt_x").as_secs_f64();
            assert!(
                wait >= base * 0.8 && wait <= (base * 1.2_f64).min(43_200.0),
                "{attempt}: {wait}"
            );
            assert_eq!(
                backoff(&settings, attempt, "evt_x"),
                backoff(&settings, attempt, "evt_x")
            );
        }
        let spread: std::collections::HashSet<u64> = (0..20)
            .map(|i| backoff(&settings, 1, &format!("evt_{i}")).as_millis() as u64)
            .collect();
        assert!(spread.len() > 10, "jitter spreads events apart");
    }

    #[tokio::test]
    async fn the_push_config_cache_reads_once_per_ttl() {
        let inner = MemoryPushConfigs::default();
        let acme = TenantId::parse("acme").unwrap();
        inner.set(&acme, Some(config()));
        let cached = CachedPushConfigs::new(inner.clone(), Duration::from_secs(60));
        for _ in 0..5 {
            assert!(cached.push_config(&acme).await.unwrap().is_some());
        }
        assert_eq!(inner.reads(), 1);
        let expired = CachedPushConfigs::new(inner.clone(), Duration::ZERO);
        expired.push_config(&acme).await.unwrap();
        expired.push_config(&acme).await.unwrap();
        assert_eq!(inner.reads(), 3);
    }
}

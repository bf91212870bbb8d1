//! The ports the use-cases run on. Each has an AWS adapter (`adapters::dynamodb`, `adapters::sqs`)
//! and an in-memory fake (`adapters::memory`); the embedded store is one more adapter.
//!
//! Methods return `impl Future + Send` so that handlers can run on a multi-threaded runtime
//! without boxing every call.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::auth::CredentialDigest;
use crate::model::{CanonicalEvent, Carrier, EventId, Status, TenantId};
use crate::push::PushConfig;
use crate::shipment::ShipmentState;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A store or queue could not be reached or refused the call. The caller answers 503 so the
/// carrier retries; the source is kept for the logs.
#[derive(Debug, thiserror::Error)]
#[error("{service} {operation} failed")]
pub struct Unavailable {
    /// `DynamoDB`, `SQS`, `SQLite`…
    pub service: &'static str,
    pub operation: &'static str,
    #[source]
    pub source: BoxError,
}

impl Unavailable {
    pub fn new(
        service: &'static str,
        operation: &'static str,
        source: impl Into<BoxError>,
    ) -> Self {
        Unavailable {
            service,
            operation,
            source: source.into(),
        }
    }
}

/// A tenant found by one of its carrier credentials, with what ingest needs to know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantAuth {
    pub tenant_id: TenantId,
    /// Attach the carrier's payload to each event as `source`.
    pub include_source: bool,
    /// A disabled tenant's keys are refused (401, saying so) until it is enabled again.
    pub enabled: bool,
}

pub trait ConfigStore: Send + Sync {
    /// The tenant whose `carrier` credential has this digest, if any.
    fn tenant_by_credential(
        &self,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> impl Future<Output = Result<Option<TenantAuth>, Unavailable>> + Send;
}

/// The result of trying to claim an event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This request owns the event now: it must queue it, then mark it queued, or release it.
    Claimed,
    /// The event was accepted before: a duplicate.
    AlreadyQueued,
    /// Another request holds a live claim and has not queued the event yet.
    InFlight,
}

/// Whether an event is the newest accepted so far for its shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Latest,
    /// A newer event was already accepted for the same tenant and shipment.
    Stale,
}

/// A rejected payload, kept so that nothing an authenticated carrier sent is lost, and can be
/// replayed once the normaliser is fixed. The body is already scrubbed of credentials (the
/// carrier module's `scrub`).
#[derive(Debug)]
pub struct Quarantined<'a> {
    pub tenant_id: &'a TenantId,
    pub carrier: Carrier,
    /// SHA-256 of the (scrubbed) body in hex: per tenant, the same body is kept once; a repeat
    /// counts one more arrival and its time.
    pub body_digest: String,
    pub body: &'a [u8],
    pub reason: &'a str,
    pub received_at: DateTime<Utc>,
}

/// What a carrier's request to a tenant was, for the carrier-status view ("is this carrier wired?").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activity {
    /// A carrier panel's test body that carried this tenant's key (not an event).
    PanelTest,
    /// At least one event was accepted (queued now or found a duplicate).
    Accepted,
    /// Authenticated, but refused as invalid (400) and quarantined.
    Rejected,
}

impl Activity {
    pub const ALL: [Activity; 3] = [Activity::PanelTest, Activity::Accepted, Activity::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            Activity::PanelTest => "test",
            Activity::Accepted => "accepted",
            Activity::Rejected => "rejected",
        }
    }
}

/// One tenant's carrier, as the carrier-status view shows it: when it was last seen doing what.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CarrierActivity {
    pub carrier: String,
    pub last_test_at: Option<DateTime<Utc>>,
    pub last_accepted_at: Option<DateTime<Utc>>,
    pub last_rejected_at: Option<DateTime<Utc>>,
    /// Why the last rejected request was refused (the 400's reason).
    pub last_rejected_reason: Option<String>,
    /// How many requests of each kind arrived, per hour, oldest first; only hours with any.
    #[serde(default)]
    pub hourly: Vec<HourlyActivity>,
}

/// The requests one tenant's carrier made in one hour (UTC), by kind. Counted to the minute:
/// ingest records at most once a minute per kind (see `Activity`), with the count since its
/// last record, so a few requests near an hour's end can be counted in the next hour, and a
/// process that stops keeps its last minute's count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HourlyActivity {
    /// The hour's start.
    pub hour: DateTime<Utc>,
    pub tests: u64,
    pub accepted: u64,
    pub rejected: u64,
}

impl HourlyActivity {
    /// The start of the hour `at` falls in.
    pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
        let seconds = at.timestamp().div_euclid(3600) * 3600;
        DateTime::from_timestamp(seconds, 0).unwrap_or(at)
    }

    pub fn add(&mut self, activity: Activity, count: u64) {
        match activity {
            Activity::PanelTest => self.tests += count,
            Activity::Accepted => self.accepted += count,
            Activity::Rejected => self.rejected += count,
        }
    }
}

/// One attempt to accept an event, written on its claim. A write whose answer was lost (a timeout,
/// a reset connection) may still have landed; the token lets the attempt recognise that claim as
/// its own when the write is retried, and give it up if the attempt fails, instead of leaving the
/// carrier's retries refused as "in flight" until the claim expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken(String);

impl ClaimToken {
    pub fn new() -> ClaimToken {
        ClaimToken(crate::auth::random_token(16))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ClaimToken {
    fn default() -> Self {
        ClaimToken::new()
    }
}

pub trait EventStore: Send + Sync {
    /// Claims the event's id for the attempt `token` with one conditional write: it succeeds if
    /// the id is new, if an earlier claim was never queued and has expired (its Lambda died), or if
    /// the claim there is this attempt's own (an earlier try of the same write landed).
    fn claim(
        &self,
        event: &CanonicalEvent,
        now: DateTime<Utc>,
        hold_for: Duration,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<Claim, Unavailable>> + Send;

    /// Marks a claimed event as queued: from now on it is a duplicate for good. The event is kept
    /// with its claim (for the dedup window), so that ops can replay it.
    fn mark_queued(
        &self,
        event: &CanonicalEvent,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;

    /// Gives up the claim of the attempt `token`, so that the carrier's retry is accepted. Does
    /// nothing if the event is queued or the claim is another attempt's.
    fn release(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;

    /// How an earlier claim of any of `ids` stands: ids the same scan may have been claimed under
    /// by the first identity (`CanonicalEvent::legacy_ids`). `AlreadyQueued` if one was queued,
    /// `InFlight` if one is held by a live attempt, `None` if there is none (or only claims that
    /// expired unqueued). One read (consistent), never a write.
    fn earlier_claim(
        &self,
        ids: &[EventId],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Claim>, Unavailable>> + Send;

    /// Makes the event its shipment's state (`ShipmentState::after`: the newest event time wins),
    /// unless a newer one is there already, with one conditional write.
    fn record_shipment_event(
        &self,
        event: &CanonicalEvent,
    ) -> impl Future<Output = Result<Freshness, Unavailable>> + Send;

    /// Keeps a rejected payload (once per tenant and body digest, for a limited time); a
    /// repeat adds one to its count and sets its last arrival time.
    fn quarantine(
        &self,
        item: &Quarantined<'_>,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;

    /// Records that the tenant's carrier did `activity` at `at` (the latest time wins);
    /// `detail` is the reason of a rejection. `count` is how many times it happened since the
    /// caller's last record of this kind: it is added to the count of `at`'s hour.
    fn record_activity(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        activity: Activity,
        at: DateTime<Utc>,
        detail: Option<&str>,
        count: u32,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;
}

/// Where ingest writes: an event is accepted at most once per event id, and a payload that does
/// not normalise is quarantined. On AWS this is the claim protocol over DynamoDB and SQS
/// (`ingest::ClaimThenQueue`); a store that holds the queue too (SQLite) does it in one transaction.
pub trait Intake: Send + Sync {
    /// Claims the event, stamps `is_stale`, queues it and marks it queued. `Claimed` means the
    /// event is on the queue now; nothing is left claimed when an error is returned (or the claim
    /// expires by itself after `claim_for`).
    fn accept(
        &self,
        event: &mut CanonicalEvent,
        now: DateTime<Utc>,
        claim_for: Duration,
    ) -> impl Future<Output = Result<Claim, Unavailable>> + Send;

    /// Keeps a rejected payload (see `EventStore::quarantine`).
    fn quarantine(
        &self,
        item: &Quarantined<'_>,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;

    /// Records a carrier's activity for the carrier-status view (see `EventStore::record_activity`).
    fn record_activity(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        activity: Activity,
        at: DateTime<Utc>,
        detail: Option<&str>,
        count: u32,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;
}

pub trait EventQueue: Send + Sync {
    /// Puts the event on the delivery queue, with `tenant_id`, `carrier` and `event_id` as
    /// message attributes.
    fn enqueue(
        &self,
        event: &CanonicalEvent,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;
}

/// Where each tenant's notifications go (cached by `dispatch::CachedPushConfigs`).
pub trait PushConfigStore: Send + Sync {
    fn push_config(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Option<PushConfig>, Unavailable>> + Send;
}

/// The shipments' state, as ingest keeps it (`EventStore::record_shipment_event`).
pub trait ShipmentStates: Send + Sync {
    /// The tenant's shipment with this key, if an event of it was accepted (within the store's
    /// retention: 180 days from the newest event on AWS).
    fn shipment(
        &self,
        tenant: &TenantId,
        shipment_key: &str,
    ) -> impl Future<Output = Result<Option<ShipmentState>, Unavailable>> + Send;
}

/// One delivery attempt, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub event_id: EventId,
    pub tenant_id: String,
    /// The shipment's AWB (or its key, for a return request without one).
    pub awb: String,
    pub status: Status,
    /// 1 for the first delivery attempt (SQS's receive count).
    pub attempt: u32,
    pub outcome: AttemptOutcome,
    pub http_status: Option<u16>,
    pub latency_ms: u64,
    /// Why it did not succeed, in words (never header values).
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    Retry,
    DeadLetter,
    /// Not pushed: the tenant takes the latest state only, and its shipment has a newer event
    /// (named in the attempt's `error`).
    Superseded,
    /// Not a push: the event was found by the reconciler (polling the carrier's tracking API),
    /// no webhook brought it; it was queued then (attempt 0).
    Reconciled,
}

impl AttemptOutcome {
    pub const ALL: [AttemptOutcome; 5] = [
        AttemptOutcome::Delivered,
        AttemptOutcome::Retry,
        AttemptOutcome::DeadLetter,
        AttemptOutcome::Superseded,
        AttemptOutcome::Reconciled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry => "retry",
            AttemptOutcome::DeadLetter => "dead_letter",
            AttemptOutcome::Superseded => "superseded",
            AttemptOutcome::Reconciled => "reconciled",
        }
    }

    /// The outcome a store wrote as `as_str`.
    pub fn parse(text: &str) -> Option<AttemptOutcome> {
        AttemptOutcome::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

pub trait DeliveryLog: Send + Sync {
    /// Keeps an attempt; a delivered one also marks its event delivered.
    fn record_attempt(
        &self,
        attempt: &Attempt,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;

    /// Whether the event was delivered already (the queue delivers at least once).
    fn was_delivered(
        &self,
        event_id: &EventId,
    ) -> impl Future<Output = Result<bool, Unavailable>> + Send;

    /// The same for the dispatcher, which has the whole event and knows this is its `attempt`-th
    /// receive: a store may find the answer cheaper by the event's shipment (DynamoDB), or skip a
    /// look-up a first receive cannot need.
    fn delivered(
        &self,
        event: &CanonicalEvent,
        attempt: u32,
    ) -> impl Future<Output = Result<bool, Unavailable>> + Send {
        let _ = attempt;
        self.was_delivered(&event.event_id)
    }

    /// Writes what the log gathers across attempts (DynamoDB: the dispatcher's page of a batch's
    /// attempts). The dispatcher calls it once per batch.
    fn flush(&self) -> impl Future<Output = Result<(), Unavailable>> + Send {
        async { Ok(()) }
    }
}

/// An HTTP POST to a client's endpoint. `Debug` shows header names only, and the URL without its
/// query (it may carry a token).
#[derive(Clone, PartialEq, Eq)]
pub struct PushRequest {
    pub url: String,
    /// Names and values; values may be the client's secrets, so `Debug` shows names only.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

impl std::fmt::Debug for PushRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("PushRequest")
            .field("url", &crate::push::redact_url(&self.url))
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What came of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushResult {
    /// The endpoint answered (any status; redirects are not followed).
    Answered {
        status: u16,
        retry_after: Option<Duration>,
        /// The first bytes of the answer, for ops and the test push.
        body_prefix: String,
        latency: Duration,
    },
    TimedOut {
        latency: Duration,
    },
    /// No connection (refused, reset, DNS failure, TLS failure).
    ConnectFailed {
        reason: String,
        latency: Duration,
    },
    /// Not attempted: the URL is not allowed (private address, bad scheme, bad header value).
    Refused {
        reason: String,
    },
}

pub trait Pusher: Send + Sync {
    fn push(&self, request: &PushRequest) -> impl Future<Output = PushResult> + Send;
}

/// What the dispatcher does to a message besides acknowledging it.
pub trait QueueActions: Send + Sync {
    /// Keeps the message hidden for `after`, so the queue hands it out again then.
    fn retry_later(
        &self,
        receipt_handle: &str,
        after: Duration,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;

    /// Puts the message on the dead-letter queue, body intact, with the reason as attributes.
    fn dead_letter(
        &self,
        body: &str,
        attributes: &[(String, String)],
        reason: &str,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;
}

/// Counters, published as CloudWatch metrics (EMF) on AWS.
pub trait Metrics: Send + Sync {
    fn count(&self, name: &'static str, value: u64, dimensions: &[(&'static str, &str)]);

    /// Writes what was counted since the last flush, where counts are gathered (EMF: once per
    /// Lambda invocation). Counts are kept until then.
    fn flush(&self) {}
}

/// Metrics that go nowhere: on one machine the logs and the store tell the story.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn count(&self, _name: &'static str, _value: u64, _dimensions: &[(&'static str, &str)]) {}
}

// A shared handle to a port is the port: tests keep an `Arc` to the fake they assert on, and
// `rms serve` shares one store between ingest and the dispatcher.

impl<T: ConfigStore> ConfigStore for Arc<T> {
    fn tenant_by_credential(
        &self,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> impl Future<Output = Result<Option<TenantAuth>, Unavailable>> + Send {
        (**self).tenant_by_credential(carrier, digest)
    }
}

impl<T: EventStore> EventStore for Arc<T> {
    fn claim(
        &self,
        event: &CanonicalEvent,
        now: DateTime<Utc>,
        hold_for: Duration,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<Claim, Unavailable>> + Send {
        (**self).claim(event, now, hold_for, token)
    }
    fn mark_queued(
        &self,
        event: &CanonicalEvent,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).mark_queued(event)
    }
    fn release(
        &self,
        event_id: &EventId,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).release(event_id, token)
    }
    fn earlier_claim(
        &self,
        ids: &[EventId],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Claim>, Unavailable>> + Send {
        (**self).earlier_claim(ids, now)
    }
    fn record_shipment_event(
        &self,
        event: &CanonicalEvent,
    ) -> impl Future<Output = Result<Freshness, Unavailable>> + Send {
        (**self).record_shipment_event(event)
    }
    fn quarantine(
        &self,
        item: &Quarantined<'_>,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).quarantine(item)
    }
    fn record_activity(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        activity: Activity,
        at: DateTime<Utc>,
        detail: Option<&str>,
        count: u32,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).record_activity(tenant, carrier, activity, at, detail, count)
    }
}

impl<T: Intake> Intake for Arc<T> {
    fn accept(
        &self,
        event: &mut CanonicalEvent,
        now: DateTime<Utc>,
        claim_for: Duration,
    ) -> impl Future<Output = Result<Claim, Unavailable>> + Send {
        (**self).accept(event, now, claim_for)
    }
    fn quarantine(
        &self,
        item: &Quarantined<'_>,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).quarantine(item)
    }
    fn record_activity(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        activity: Activity,
        at: DateTime<Utc>,
        detail: Option<&str>,
        count: u32,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).record_activity(tenant, carrier, activity, at, detail, count)
    }
}

impl<T: EventQueue> EventQueue for Arc<T> {
    fn enqueue(
        &self,
        event: &CanonicalEvent,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).enqueue(event)
    }
}

impl<T: Metrics> Metrics for Arc<T> {
    fn count(&self, name: &'static str, value: u64, dimensions: &[(&'static str, &str)]) {
        (**self).count(name, value, dimensions)
    }
    fn flush(&self) {
        (**self).flush()
    }
}

impl<T: PushConfigStore> PushConfigStore for Arc<T> {
    fn push_config(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Option<PushConfig>, Unavailable>> + Send {
        (**self).push_config(tenant)
    }
}

impl<T: ShipmentStates> ShipmentStates for Arc<T> {
    fn shipment(
        &self,
        tenant: &TenantId,
        shipment_key: &str,
    ) -> impl Future<Output = Result<Option<ShipmentState>, Unavailable>> + Send {
        (**self).shipment(tenant, shipment_key)
    }
}

impl<T: DeliveryLog> DeliveryLog for Arc<T> {
    fn record_attempt(
        &self,
        attempt: &Attempt,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).record_attempt(attempt)
    }
    fn was_delivered(
        &self,
        event_id: &EventId,
    ) -> impl Future<Output = Result<bool, Unavailable>> + Send {
        (**self).was_delivered(event_id)
    }
    fn delivered(
        &self,
        event: &CanonicalEvent,
        attempt: u32,
    ) -> impl Future<Output = Result<bool, Unavailable>> + Send {
        (**self).delivered(event, attempt)
    }
    fn flush(&self) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).flush()
    }
}

impl<T: Pusher> Pusher for Arc<T> {
    fn push(&self, request: &PushRequest) -> impl Future<Output = PushResult> + Send {
        (**self).push(request)
    }
}

impl<T: QueueActions> QueueActions for Arc<T> {
    fn retry_later(
        &self,
        receipt_handle: &str,
        after: Duration,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).retry_later(receipt_handle, after)
    }
    fn dead_letter(
        &self,
        body: &str,
        attributes: &[(String, String)],
        reason: &str,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send {
        (**self).dead_letter(body, attributes, reason)
    }
}

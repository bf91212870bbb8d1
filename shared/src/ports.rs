//! The ports the use-cases run on. Each has an AWS adapter (`adapters::dynamodb`, `adapters::sqs`)
//! and an in-memory fake (`adapters::memory`); the embedded store is one more adapter.
//!
//! Adapters and fakes are cheap `Clone` handles whose clones share one state: a test keeps a
//! clone of the fake it asserts on, and `rms serve` hands clones of one store to ingest and the
//! dispatcher.
//!
//! Methods return `impl Future + Send` so that handlers can run on a multi-threaded runtime
//! without boxing every call.

use std::future::Future;
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

/// The result of trying to accept an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This request's copy of the event is the accepted one: it is on the queue, and its claim
    /// names it (or, if the claim's write failed, the dispatcher adopts the copy).
    Claimed,
    /// The event was accepted before: a duplicate. A copy this request queued is dropped by the
    /// dispatcher (`Standing::Duplicate`).
    AlreadyQueued,
    /// Another request is accepting the event right now and has not finished: the SQLite store's
    /// transaction, or an attempt of the code before queue-first holding a v1 claim
    /// (`EventStore::earlier_claim`).
    InFlight,
}

/// Whether an event is the newest accepted so far for its shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The first event of its shipment (within the shipment state's retention, 180 days on AWS,
    /// which outlasts every claim): it cannot have been accepted before.
    First,
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

/// One copy of an event on the queue, named by the claim when it is the accepted one. Ingest queues
/// the event with a new token (a message attribute), then writes the claim with it; a request that
/// finds another token's claim there was a duplicate, and the dispatcher drops its copy. The token
/// also lets a claim write whose answer was lost (a timeout, a reset connection) recognise the claim
/// as its own when it is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken(String);

impl ClaimToken {
    pub fn new() -> ClaimToken {
        ClaimToken(crate::auth::random_token(16))
    }

    /// The token a queued copy carries (its `claim_token` message attribute).
    pub fn from_message(value: &str) -> ClaimToken {
        ClaimToken(value.to_owned())
    }

    /// What a copy queued without a token stands for: a message of the code before queue-first
    /// (whose copies were claimed before they were queued). All such copies of an event count as
    /// one; the delivered check keeps that one from being pushed twice, as it did then.
    pub fn untokened() -> ClaimToken {
        ClaimToken("queued-before-tokens".to_owned())
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
    /// Writes the event's claim for its queued copy `token`, with the event kept for replay, in
    /// one conditional write: `Claimed` if there was no claim or the claim there is this token's
    /// own (an earlier try of the same write landed), `AlreadyQueued` if another copy's claim is
    /// there (a duplicate). The claim is kept for the dedup window.
    fn claim(
        &self,
        event: &CanonicalEvent,
        token: &ClaimToken,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Claim, Unavailable>> + Send;

    /// Whether the event is claimed (by any of its copies), read eventually consistent: a claim
    /// written a moment ago may be missed, never one that is not there.
    fn is_claimed(
        &self,
        event: &CanonicalEvent,
    ) -> impl Future<Output = Result<bool, Unavailable>> + Send;

    /// How a claim that the code before queue-first wrote, of any of `ids`, stands: the event's own
    /// id, and the ids the same scan may have been claimed under by the first identity
    /// (`CanonicalEvent::legacy_ids`). `AlreadyQueued` if one was queued, `InFlight` if one is held
    /// by a live attempt, `None` if there is none (or only claims that expired unqueued). One read
    /// per id, never a write. On DynamoDB those claims are where `claim` writes none (`EVENT#`),
    /// and they expire 35 days after they were written; so does this look-up.
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
/// not normalise is quarantined. On AWS this is the queue-first protocol over SQS and DynamoDB
/// (`ingest::QueueThenClaim`); a store that holds the queue too (SQLite) does it in one transaction.
pub trait Intake: Send + Sync {
    /// Stamps `is_stale` and queues the event once per event id. `Claimed` means the event is on
    /// the queue now and will be delivered; nothing is left claimed when an error is returned.
    fn accept(
        &self,
        event: &mut CanonicalEvent,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Claim, Unavailable>> + Send;

    /// `accept` for an event a pull found (the reconciler): most such events were accepted
    /// before, so a store where a duplicate costs more than a read (queue first: a copy queued,
    /// written and dropped) looks for the claim first.
    fn accept_pulled(
        &self,
        event: &mut CanonicalEvent,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Claim, Unavailable>> + Send {
        self.accept(event, now)
    }

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
    /// Puts a copy of the event on the delivery queue, with `tenant_id`, `carrier`, `event_id` and
    /// the copy's `claim_token` as message attributes.
    fn enqueue(
        &self,
        event: &CanonicalEvent,
        token: &ClaimToken,
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
    pub tenant_id: TenantId,
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

/// Whether the dispatcher pushes the copy of an event it was handed (`DeliveryLog::standing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The accepted copy, not delivered yet: push it.
    Due,
    /// The event was delivered already (the queue delivers at least once).
    Delivered,
    /// Another copy of the event is the accepted one: this one was queued by a request that was
    /// then answered "duplicate".
    Duplicate,
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

    /// How the copy of `event` the dispatcher holds stands: queued with `token` (`None`: a copy
    /// that carries none), handed out for the `attempt`-th time. A store whose queue holds only
    /// the accepted copy (SQLite) answers by `was_delivered` alone; DynamoDB also reads the claim
    /// (one read for both), and writes it for a copy that has none (its request died between the
    /// queue and the claim), so that nothing queued is lost.
    fn standing(
        &self,
        event: &CanonicalEvent,
        token: Option<&ClaimToken>,
        attempt: u32,
    ) -> impl Future<Output = Result<Standing, Unavailable>> + Send {
        let _ = (token, attempt);
        async move {
            Ok(if self.was_delivered(&event.event_id).await? {
                Standing::Delivered
            } else {
                Standing::Due
            })
        }
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

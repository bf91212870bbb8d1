//! The stores behind the admin use-case: one port, with a DynamoDB + SQS adapter, a SQLite
//! adapter and an in-memory fake.

use std::future::Future;

use chrono::{DateTime, Utc};

use super::{
    DeadLetterView, QuarantineFilter, QuarantineView, QuarantinedBody, QueueDepth, ReplayOutcome,
    Selection, StoredCredential, Tenant,
};
use crate::auth::CredentialDigest;
use crate::circuit::CircuitStore;
use crate::model::{CanonicalEvent, Carrier, TenantId};
use crate::ports::{Attempt, CarrierActivity, Unavailable};
use crate::push::PushConfig;
use crate::reconcile::{PullAccountRecord, QuietRules, QuietShipment};

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
    /// Queues these events again, each marked as a replay: it is pushed even if it was delivered
    /// before. On an error, some of them may have been queued (each is then pushed once more
    /// when the replay is run again, which a replay allows).
    fn enqueue_replays(
        &self,
        events: &[CanonicalEvent],
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

//! The reconciler: finds what the carriers' webhooks never brought, by polling their tracking
//! APIs for the shipments that have gone quiet, and feeds what it finds through the same intake as
//! the webhooks (claim, queue), so that a scan seen both ways is one event, delivered once (the
//! event id is derived from the normalised scan: docs/carriers.md, "Event identity").
//!
//! One run, per tenant and carrier account:
//! 1. the shipments whose last status is not terminal and whose newest event arrived longer ago
//!    than that status allows ([`QuietRules`]: a parcel waiting for pickup legitimately sits for a
//!    day, one in transit rarely goes 6 h without a scan);
//!    For Clickpost, first the `updated-order` feed since the account's last sweep (at most its
//!    30-minute window; older gaps are the quiet rule's): every AWB it lists that is newer than
//!    what we hold (or that we never heard of) is pulled too, quiet or not, as Clickpost advises;
//! 2. pulled in the carrier's batch sizes (Clickpost ≤ 5 AWBs of one `cp_id`, Shiprocket ≤ 50,
//!    Shipway one order), at most `calls_per_account` calls;
//! 3. each event found is accepted; the new ones (`Claim::Claimed`) are the webhooks' losses, and
//!    are counted (`Reconciled`, by carrier).
//!
//! A 429 or 503 stops the account for this run (the next run starts after its `Retry-After`); a
//! refused credential stops it too; any other error is counted and the next batch goes on.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{error_span, info, warn, Instrument};

use crate::carriers::pull::{PullError, PullTransport, Pulled, PulledShipment};
use crate::carriers::{clickpost, shiprocket, shipway, NormalizeContext};
use crate::ingest::CarrierZones;
use crate::model::{Carrier, Status, TenantId};
use crate::ports::{
    Attempt, AttemptOutcome, Claim, DeliveryLog, Intake, Metrics, ShipmentStates, Unavailable,
};
use crate::shipment::ShipmentState;

/// How long a shipment may go without news, by its last status, before it is pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietRules {
    /// Waiting for pickup (placed, scheduled, out for pickup, pickup failed, return requested or
    /// approved): couriers often take a day to come.
    pub before_pickup: Duration,
    /// Every other status that is not terminal: picked-up parcels are scanned every few hours
    /// (the vendors' samples: ~2 h median between scans, overnight gaps of ~17 h are rare).
    pub moving: Duration,
}

impl Default for QuietRules {
    fn default() -> Self {
        QuietRules {
            before_pickup: Duration::from_secs(24 * 3600),
            moving: Duration::from_secs(6 * 3600),
        }
    }
}

impl QuietRules {
    /// One threshold for every status (`rms reconcile --quiet-for`; `0s` pulls every shipment that
    /// is not terminal).
    pub fn uniform(quiet_for: Duration) -> QuietRules {
        QuietRules {
            before_pickup: quiet_for,
            moving: quiet_for,
        }
    }

    /// The latest news time (epoch ms) a shipment can have and still be quiet now under some
    /// status: what the stores' queries bound their reads with, before applying `is_quiet`.
    pub fn heard_before_ms(&self, now: DateTime<Utc>) -> i64 {
        let shortest = self.before_pickup.min(self.moving);
        now.timestamp_millis() - i64::try_from(shortest.as_millis()).unwrap_or(i64::MAX / 4)
    }

    pub fn threshold(&self, status: Option<Status>) -> Duration {
        match status {
            Some(
                Status::OrderPlaced
                | Status::PickupScheduled
                | Status::OutForPickup
                | Status::PickupFailed
                | Status::ReturnRequested
                | Status::ReturnApproved,
            ) => self.before_pickup,
            _ => self.moving,
        }
    }

    /// Whether the shipment is quiet now: not terminal, and its newest event arrived (or, for
    /// state kept before arrivals were, happened) longer ago than its status allows, and so did
    /// the last pull that asked about it (a shipment the carrier has nothing new on is asked
    /// again after the same wait, not at every run).
    pub fn is_quiet(
        &self,
        state: &ShipmentState,
        last_pulled_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> bool {
        if state.terminal {
            return false;
        }
        let heard = state.last_received_at.unwrap_or(state.latest_event_time);
        let since = last_pulled_at.map_or(heard, |pulled| pulled.max(heard));
        let quiet = (now - since).to_std().unwrap_or(Duration::ZERO);
        quiet >= self.threshold(state.last_status)
    }
}

/// A shipment the reconciler looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietShipment {
    pub shipment_key: String,
    pub state: ShipmentState,
    /// When a reconcile run last asked the carrier about it.
    pub last_pulled_at: Option<DateTime<Utc>>,
}

/// The stores' side: the quiet shipments of one tenant at one carrier.
pub trait ShipmentIndex: Send + Sync {
    /// At most `limit` shipments of `tenant` at `carrier` that `rules` call quiet now, the
    /// longest quiet first.
    fn quiet_shipments(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        rules: &QuietRules,
        now: DateTime<Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<QuietShipment>, Unavailable>> + Send;

    /// Notes that a run asked the carrier about these shipments now.
    fn mark_pulled(
        &self,
        tenant: &TenantId,
        shipment_keys: &[String],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;
}

/// Keeps the quiet shipments, the longest quiet first, at most `limit`: the rule the stores
/// apply to the non-terminal shipments they read.
pub fn quietest(
    shipments: impl IntoIterator<Item = QuietShipment>,
    rules: &QuietRules,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<QuietShipment> {
    let mut quiet: Vec<QuietShipment> = shipments
        .into_iter()
        .filter(|s| rules.is_quiet(&s.state, s.last_pulled_at, now))
        .collect();
    quiet.sort_by_key(|s| {
        s.state
            .last_received_at
            .unwrap_or(s.state.latest_event_time)
    });
    quiet.truncate(limit);
    quiet
}

/// A tenant's account at a carrier's tracking API (write-only: `Debug` shows no secret).
#[derive(Debug, Clone)]
pub enum PullAccount {
    Clickpost(clickpost::pull::PullCredentials),
    Shiprocket(shiprocket::pull::PullCredentials),
    Shipway(shipway::pull::PullCredentials),
}

impl PullAccount {
    pub fn carrier(&self) -> Carrier {
        match self {
            PullAccount::Clickpost(_) => Carrier::Clickpost,
            PullAccount::Shiprocket(_) => Carrier::Shiprocket,
            PullAccount::Shipway(_) => Carrier::Shipway,
        }
    }
}

impl PullAccount {
    /// The account as a store keeps it: carrier, base URL, user, secret.
    pub fn record(&self) -> PullAccountRecord {
        let (base_url, user, secret) = match self {
            PullAccount::Clickpost(c) => (c.base_url(), c.user(), c.secret()),
            PullAccount::Shiprocket(c) => (c.base_url(), c.user(), c.secret()),
            PullAccount::Shipway(c) => (c.base_url(), c.user(), c.secret()),
        };
        PullAccountRecord {
            carrier: self.carrier(),
            base_url: base_url.as_url().to_string(),
            user: user.to_owned(),
            secret: secret.clone(),
        }
    }

    /// The account a stored record describes, its base URL checked against `policy` again (a
    /// record written under other rules is refused, not used).
    pub fn from_record(
        record: &PullAccountRecord,
        policy: crate::push::TargetPolicy,
    ) -> Result<PullAccount, String> {
        let base = crate::carriers::pull::BaseUrl::parse(&record.base_url, policy)
            .map_err(|e| e.to_string())?;
        let (user, secret) = (record.user.clone(), record.secret.clone());
        Ok(match record.carrier {
            Carrier::Clickpost => PullAccount::Clickpost(
                clickpost::pull::PullCredentials::new(user, secret).with_base_url(base),
            ),
            Carrier::Shiprocket => PullAccount::Shiprocket(
                shiprocket::pull::PullCredentials::new(user, secret).with_base_url(base),
            ),
            Carrier::Shipway => PullAccount::Shipway(
                shipway::pull::PullCredentials::new(user, secret).with_base_url(base),
            ),
        })
    }
}

/// A pull account as stored. The secret is write-only: `Debug` never shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullAccountRecord {
    pub carrier: Carrier,
    pub base_url: String,
    pub user: String,
    pub secret: crate::push::SecretValue,
}

/// The stores' side: the pull accounts of the enabled tenants.
pub trait PullAccountSource: Send + Sync {
    /// The pull accounts of enabled tenants (of `tenant`, at `carrier`, when given), by tenant
    /// and carrier. A record this build cannot read (a carrier it does not know) is left out.
    fn pull_accounts(
        &self,
        tenant: Option<&TenantId>,
        carrier: Option<Carrier>,
    ) -> impl Future<Output = Result<Vec<(TenantId, PullAccountRecord)>, Unavailable>> + Send;
}

/// The stored pull accounts (of `tenant`, at `carrier`, when given) as the reconciler takes
/// them; an account whose base URL `policy` refuses is logged and left out. Both hosts read
/// their accounts through this.
pub async fn accounts(
    source: &impl PullAccountSource,
    tenant: Option<&TenantId>,
    carrier: Option<Carrier>,
    policy: crate::push::TargetPolicy,
) -> Result<Vec<(TenantId, PullAccount)>, Unavailable> {
    let mut accounts = Vec::new();
    for (tenant, record) in source.pull_accounts(tenant, carrier).await? {
        match PullAccount::from_record(&record, policy) {
            Ok(account) => accounts.push((tenant, account)),
            Err(e) => {
                warn!(tenant_id = %tenant, carrier = %record.carrier, error = %e, "pull account not used");
            }
        }
    }
    Ok(accounts)
}

#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    pub rules: QuietRules,
    /// The most tracking calls one account gets per run.
    pub calls_per_account: usize,
    pub zones: CarrierZones,
    pub max_future: chrono::TimeDelta,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        let ingest = crate::ingest::IngestSettings::default();
        ReconcileSettings {
            rules: QuietRules::default(),
            calls_per_account: 100,
            zones: ingest.zones,
            max_future: ingest.max_future,
        }
    }
}

/// What one run did for one account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccountReport {
    pub tenant_id: String,
    pub carrier: String,
    /// Quiet shipments found.
    pub quiet: usize,
    /// Shipments the carrier answered for.
    pub pulled: usize,
    pub calls: usize,
    /// Events the pulls gave.
    pub found: usize,
    /// New events: the webhooks never brought them. Queued for delivery now.
    pub reconciled: usize,
    /// Events already accepted (by webhook or an earlier run).
    pub known: usize,
    /// Shipments the carrier does not know, or could not be asked about (no `cp_id`, no order id).
    pub not_found: usize,
    pub errors: Vec<String>,
    /// The carrier asked us to wait (429, 503) until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub back_off_until: Option<DateTime<Utc>>,
}

/// Progress of a run, for a progress bar.
pub trait Progress: Send + Sync {
    /// `done` of `total` shipments of the current account pulled.
    fn advance(&self, tenant: &TenantId, carrier: Carrier, done: usize, total: usize);
}

/// No progress shown.
pub struct Silent;

impl Progress for Silent {
    fn advance(&self, _: &TenantId, _: Carrier, _: usize, _: usize) {}
}

pub struct Reconciler<S, I, L, T, M> {
    pub shipments: S,
    pub intake: I,
    /// Where each event found only by polling is marked (`AttemptOutcome::Reconciled`).
    pub log: L,
    pub transport: T,
    pub metrics: M,
    pub settings: ReconcileSettings,
    /// Shiprocket tokens by API user, kept between runs of this process (240 h each).
    tokens: Mutex<HashMap<String, shiprocket::pull::ApiToken>>,
    /// Accounts told to wait, until when.
    backing_off: Mutex<HashMap<(TenantId, Carrier), DateTime<Utc>>>,
    /// Where each Clickpost account's updated-order sweep got to.
    swept_until: Mutex<HashMap<TenantId, DateTime<Utc>>>,
}

/// How one batch of pulls went.
type Batch = Result<Vec<PulledShipment>, PullError>;

impl<S, I, L, T, M> Reconciler<S, I, L, T, M>
where
    S: ShipmentIndex + ShipmentStates,
    I: Intake,
    L: DeliveryLog,
    T: PullTransport,
    M: Metrics,
{
    pub fn new(
        shipments: S,
        intake: I,
        log: L,
        transport: T,
        metrics: M,
        settings: ReconcileSettings,
    ) -> Self {
        Reconciler {
            shipments,
            intake,
            log,
            transport,
            metrics,
            settings,
            tokens: Mutex::new(HashMap::new()),
            backing_off: Mutex::new(HashMap::new()),
            swept_until: Mutex::new(HashMap::new()),
        }
    }

    /// One run over `accounts`.
    pub async fn run(
        &self,
        accounts: &[(TenantId, PullAccount)],
        now: DateTime<Utc>,
        progress: &dyn Progress,
    ) -> Vec<AccountReport> {
        let mut reports = Vec::new();
        for (tenant, account) in accounts {
            reports.push(self.reconcile_account(tenant, account, now, progress).await);
        }
        reports
    }

    /// Reconciles one account, in a span that gives each of its log lines the tenant and the
    /// carrier (at ERROR level, so that it is there whatever `RUST_LOG` lets through).
    async fn reconcile_account(
        &self,
        tenant: &TenantId,
        account: &PullAccount,
        now: DateTime<Utc>,
        progress: &dyn Progress,
    ) -> AccountReport {
        let span = error_span!("reconcile", tenant_id = %tenant, carrier = %account.carrier());
        self.reconcile_in_span(tenant, account, now, progress)
            .instrument(span)
            .await
    }

    async fn reconcile_in_span(
        &self,
        tenant: &TenantId,
        account: &PullAccount,
        now: DateTime<Utc>,
        progress: &dyn Progress,
    ) -> AccountReport {
        let carrier = account.carrier();
        let mut report = AccountReport {
            tenant_id: tenant.to_string(),
            carrier: carrier.as_str().to_owned(),
            ..AccountReport::default()
        };
        let waiting = lock(&self.backing_off)
            .get(&(tenant.clone(), carrier))
            .copied();
        if let Some(until) = waiting.filter(|until| *until > now) {
            report.back_off_until = Some(until);
            return report;
        }
        let per_call = match carrier {
            Carrier::Clickpost => clickpost::pull::MAX_AWBS_PER_CALL,
            Carrier::Shiprocket => shiprocket::pull::MAX_AWBS_PER_CALL,
            Carrier::Shipway => 1,
        };
        let limit = self.settings.calls_per_account.saturating_mul(per_call);
        let quiet = match self
            .shipments
            .quiet_shipments(tenant, carrier, &self.settings.rules, now, limit)
            .await
        {
            Ok(quiet) => quiet,
            Err(e) => {
                report
                    .errors
                    .push(format!("the shipment state could not be read: {e}"));
                return report;
            }
        };
        report.quiet = quiet.len();
        let ctx = self.context(tenant, carrier, now);
        let mut quiet = quiet;
        if let PullAccount::Clickpost(credentials) = account {
            report.calls += 1;
            match self.sweep(tenant, credentials, &ctx, now).await {
                Ok(moved) => {
                    for shipment in moved {
                        if !quiet
                            .iter()
                            .any(|q| q.shipment_key == shipment.shipment_key)
                        {
                            quiet.insert(0, shipment);
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %e, "updated-order sweep failed");
                    report.errors.push(e.to_string());
                    if let Some(until) = e.back_off_until() {
                        report.back_off_until = Some(until);
                        lock(&self.backing_off).insert((tenant.clone(), carrier), until);
                        return report;
                    }
                    if matches!(e, PullError::Unauthorized { .. }) {
                        return report;
                    }
                }
            }
        }
        let batches = batches(account, &quiet);
        let total = quiet.len();
        let mut done = 0;
        for (key, batch) in batches {
            if report.calls >= self.settings.calls_per_account {
                break;
            }
            report.calls += 1;
            let answer = self.pull(account, &key, &batch, &ctx).await;
            done += batch.len();
            progress.advance(tenant, carrier, done, total);
            match answer {
                Ok(shipments) => self.accept(&mut report, shipments, now).await,
                Err(e) => {
                    warn!(error = %e, "pull failed");
                    report.errors.push(e.to_string());
                    if let Some(until) = e.back_off_until() {
                        report.back_off_until = Some(until);
                        lock(&self.backing_off).insert((tenant.clone(), carrier), until);
                        break;
                    }
                    if matches!(e, PullError::Unauthorized { .. }) {
                        break;
                    }
                }
            }
        }
        let asked: Vec<String> = quiet
            .iter()
            .take(done)
            .map(|s| s.shipment_key.clone())
            .collect();
        if let Err(e) = self.shipments.mark_pulled(tenant, &asked, now).await {
            report
                .errors
                .push(format!("the pulls could not be noted: {e}"));
        }
        report.not_found += quiet.len().saturating_sub(done);
        if report.reconciled > 0 {
            self.metrics.count(
                "Reconciled",
                u64::try_from(report.reconciled).unwrap_or(u64::MAX),
                &[("Carrier", carrier.as_str())],
            );
        }
        info!(
            quiet = report.quiet,
            calls = report.calls,
            found = report.found,
            reconciled = report.reconciled,
            known = report.known,
            errors = report.errors.len(),
            "reconciled"
        );
        report
    }

    /// Clickpost's updated-order records since the last sweep, as shipments to pull: those
    /// newer than the state we hold, and those we never heard of (their webhooks all lost).
    async fn sweep(
        &self,
        tenant: &TenantId,
        credentials: &clickpost::pull::PullCredentials,
        ctx: &NormalizeContext,
        now: DateTime<Utc>,
    ) -> Result<Vec<QuietShipment>, PullError> {
        let earliest = now - clickpost::pull::MAX_WINDOW;
        let start = lock(&self.swept_until)
            .get(tenant)
            .copied()
            .map_or(earliest, |until| until.max(earliest));
        let records =
            clickpost::pull::ClickpostPull::new(self.transport.clone(), credentials.clone())
                .updated_orders(start, now, ctx)
                .await?;
        lock(&self.swept_until).insert(tenant.clone(), now);
        let mut moved = Vec::new();
        for record in records {
            let Some(cp_id) = record.cp_id else { continue };
            let known = self
                .shipments
                .shipment(tenant, &record.waybill)
                .await
                .ok()
                .flatten();
            let newer = match (&known, record.event_time) {
                (Some(state), Some(at)) => at > state.latest_event_time,
                (Some(_), None) => false,
                (None, _) => true,
            };
            if newer {
                let mut state = known.unwrap_or_else(|| ShipmentState {
                    latest_event_id: None,
                    latest_event_time: record.event_time.unwrap_or(now),
                    last_status: Some(record.status),
                    terminal: false,
                    carrier: Some(Carrier::Clickpost),
                    awb: Some(record.waybill.clone()),
                    order_id: record.order_id.clone(),
                    courier_id: None,
                    last_received_at: None,
                });
                state.courier_id = Some(cp_id.to_string());
                state.awb = Some(record.waybill.clone());
                moved.push(QuietShipment {
                    shipment_key: record.waybill,
                    state,
                    last_pulled_at: None,
                });
            }
        }
        Ok(moved)
    }

    fn context(&self, tenant: &TenantId, carrier: Carrier, now: DateTime<Utc>) -> NormalizeContext {
        let mut ctx = NormalizeContext::new(tenant.clone(), now);
        ctx.zone = self.settings.zones.for_carrier(carrier);
        ctx.max_future = self.settings.max_future;
        ctx
    }

    async fn pull(
        &self,
        account: &PullAccount,
        key: &str,
        batch: &[String],
        ctx: &NormalizeContext,
    ) -> Batch {
        match account {
            PullAccount::Clickpost(credentials) => {
                let cp_id = key.parse::<i64>().map_err(|_| PullError::InvalidRequest {
                    carrier: Carrier::Clickpost,
                    reason: format!("the courier id {key:?} is not a number"),
                })?;
                clickpost::pull::ClickpostPull::new(self.transport.clone(), credentials.clone())
                    .track(cp_id, batch, ctx)
                    .await
            }
            PullAccount::Shiprocket(credentials) => {
                let user = credentials.email().to_owned();
                let mut client = shiprocket::pull::ShiprocketPull::new(
                    self.transport.clone(),
                    credentials.clone(),
                );
                if let Some(token) = lock(&self.tokens).get(&user).cloned() {
                    client = client.with_token(token);
                }
                let answer = client.track_awbs(batch, ctx).await;
                if let Some(token) = client.token() {
                    lock(&self.tokens).insert(user, token);
                }
                answer
            }
            PullAccount::Shipway(credentials) => {
                let order = batch.first().map(String::as_str).unwrap_or_default();
                shipway::pull::ShipwayPull::new(self.transport.clone(), credentials.clone())
                    .order_details(order, ctx)
                    .await
                    .map(|shipment| vec![shipment])
            }
        }
    }

    /// Accepts every event found, as ingest would.
    async fn accept(
        &self,
        report: &mut AccountReport,
        shipments: Vec<PulledShipment>,
        now: DateTime<Utc>,
    ) {
        for shipment in shipments {
            match shipment.outcome {
                Pulled::NotFound { .. } => report.not_found += 1,
                Pulled::Found { events, skipped } => {
                    report.pulled += 1;
                    for reason in skipped {
                        report
                            .errors
                            .push(format!("{}: {reason}", shipment.requested));
                    }
                    for mut event in events {
                        report.found += 1;
                        let span = error_span!("event", event_id = %event.event_id);
                        let claim = self
                            .intake
                            .accept_pulled(&mut event, now)
                            .instrument(span.clone())
                            .await;
                        match claim {
                            Ok(Claim::Claimed) => {
                                report.reconciled += 1;
                                span.in_scope(|| info!(awb = %event.shipment_key(), status = %event.status, "reconciled: an event no webhook brought"));
                                let mark = Attempt {
                                    event_id: event.event_id.clone(),
                                    tenant_id: event.tenant_id.clone(),
                                    awb: event.shipment_key().to_owned(),
                                    status: event.status,
                                    attempt: 0,
                                    outcome: AttemptOutcome::Reconciled,
                                    http_status: None,
                                    latency_ms: 0,
                                    error: Some(format!(
                                        "found by polling {}'s tracking API; no webhook brought it",
                                        event.carrier
                                    )),
                                    at: now,
                                };
                                if let Err(e) = self.log.record_attempt(&mark).await {
                                    // The event is queued; only its mark is missing.
                                    span.in_scope(|| warn!(error = %e, "reconciled event not marked in the delivery log"));
                                }
                            }
                            Ok(Claim::AlreadyQueued | Claim::InFlight) => report.known += 1,
                            Err(e) => report
                                .errors
                                .push(format!("{}: not accepted: {e}", event.event_id)),
                        }
                    }
                }
            }
        }
    }
}

/// The account's calls: (the key the call needs, the shipments it asks about). Clickpost: per
/// `cp_id`, 5 AWBs a call; Shiprocket: 50 AWBs a call; Shipway: one order id a call. A shipment
/// the call cannot name (no AWB, no `cp_id`, no order id) is left out.
fn batches(account: &PullAccount, quiet: &[QuietShipment]) -> Vec<(String, Vec<String>)> {
    match account {
        PullAccount::Clickpost(_) => {
            let mut by_courier: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for s in quiet {
                if let (Some(cp_id), Some(awb)) = (&s.state.courier_id, &s.state.awb) {
                    by_courier
                        .entry(cp_id.clone())
                        .or_default()
                        .push(awb.clone());
                }
            }
            by_courier
                .into_iter()
                .flat_map(|(cp_id, awbs)| {
                    awbs.chunks(clickpost::pull::MAX_AWBS_PER_CALL)
                        .map(|chunk| (cp_id.clone(), chunk.to_vec()))
                        .collect::<Vec<_>>()
                })
                .collect()
        }
        PullAccount::Shiprocket(_) => {
            let awbs: Vec<String> = quiet.iter().filter_map(|s| s.state.awb.clone()).collect();
            awbs.chunks(shiprocket::pull::MAX_AWBS_PER_CALL)
                .map(|chunk| (String::new(), chunk.to_vec()))
                .collect()
        }
        PullAccount::Shipway(_) => quiet
            .iter()
            .filter_map(|s| s.state.order_id.clone())
            .map(|order| (String::new(), vec![order]))
            .collect(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryDeliveryLog, MemoryEvents, MemoryQueue, RecordingMetrics};
    use crate::carriers::pull::testing::{answer, Scripted};
    use crate::carriers::{normalize, pull::BaseUrl};
    use crate::ingest::QueueThenClaim;
    use crate::push::{SecretValue, TargetPolicy};

    /// A fixture as text: the pull answers are handed to the transport as text.
    fn fixture(name: &str) -> String {
        String::from_utf8(crate::fixtures::fixture(name)).unwrap()
    }

    type MemoryIntake = QueueThenClaim<MemoryEvents, MemoryQueue>;

    fn clickpost_account() -> (TenantId, PullAccount) {
        let base = BaseUrl::parse("http://127.0.0.1:9/", TargetPolicy::LOCAL).unwrap();
        let credentials = clickpost::pull::PullCredentials::new("acme", SecretValue::new("k3y"))
            .with_base_url(base);
        (
            TenantId::parse("acme").unwrap(),
            PullAccount::Clickpost(credentials),
        )
    }

    fn reconciler(
        events: &MemoryEvents,
        queue: &MemoryQueue,
        answers: Vec<
            Result<crate::carriers::pull::PullResponse, crate::carriers::pull::TransportError>,
        >,
    ) -> Reconciler<MemoryEvents, MemoryIntake, MemoryDeliveryLog, Scripted, RecordingMetrics> {
        Reconciler::new(
            events.clone(),
            QueueThenClaim {
                events: events.clone(),
                queue: queue.clone(),
            },
            MemoryDeliveryLog::default(),
            Scripted::new(answers),
            RecordingMetrics::default(),
            ReconcileSettings {
                rules: QuietRules::uniform(Duration::ZERO),
                ..ReconcileSettings::default()
            },
        )
    }

    #[tokio::test]
    async fn what_no_webhook_brought_is_queued_once_and_a_second_run_finds_nothing_new() {
        let events = MemoryEvents::default();
        let queue = MemoryQueue::default();
        let intake = QueueThenClaim {
            events: events.clone(),
            queue: queue.clone(),
        };
        // The webhook brought the newest scan only.
        let now = Utc::now();
        let body = fixture("clickpost/out_for_delivery_all_status.json");
        let mut pushed = normalize(
            Carrier::Clickpost,
            body.as_bytes(),
            &NormalizeContext::new(crate::model::TenantId::parse("acme").unwrap(), now),
        )
        .unwrap();
        for event in &mut pushed {
            intake.accept(event, now).await.unwrap();
        }
        assert_eq!(queue.messages().len(), 1);

        let pull = fixture("clickpost/pull_track_order.json");
        let account = clickpost_account();
        let run = reconciler(
            &events,
            &queue,
            vec![answer(200, NOTHING_UPDATED), answer(200, &pull)],
        );
        let reports = run.run(std::slice::from_ref(&account), now, &Silent).await;
        let report = &reports[0];
        // The updated-order sweep, then one track-order call.
        assert_eq!(
            (report.quiet, report.calls, report.pulled),
            (1, 2, 1),
            "{report:?}"
        );
        assert_eq!(report.found, 3, "{report:?}");
        assert_eq!((report.reconciled, report.known), (2, 1), "{report:?}");
        // The known scan is looked up before anything is queued (`Intake::accept_pulled`).
        assert_eq!(
            queue.messages().len(),
            3,
            "the two older scans queued, once each"
        );
        assert_eq!(run.metrics.total("Reconciled"), 2);
        let marks = run.log.attempts();
        assert_eq!(marks.len(), 2, "each new event marked in the delivery log");
        assert!(marks
            .iter()
            .all(|m| m.outcome == AttemptOutcome::Reconciled && m.attempt == 0));
        let asked = run.transport.sent.lock().unwrap()[1].url.to_string();
        assert!(
            asked.contains("waybill=SF49245NER") && asked.contains("cp_id="),
            "{asked}"
        );

        let again = reconciler(
            &events,
            &queue,
            vec![answer(200, NOTHING_UPDATED), answer(200, &pull)],
        );
        let report = &again.run(&[account], now, &Silent).await[0];
        assert_eq!((report.reconciled, report.known), (0, 3), "{report:?}");
        assert_eq!(queue.messages().len(), 3);
    }

    const NOTHING_UPDATED: &str = r#"{"meta":{"status":200,"success":true},"result":[]}"#;

    #[tokio::test]
    async fn a_shipment_no_webhook_ever_mentioned_is_found_through_updated_order() {
        let events = MemoryEvents::default();
        let queue = MemoryQueue::default();
        let updated = r#"{"meta":{"status":200,"success":true},"result":[{"waybill":"SF49245NER",
            "carrier_partner":9,"clickpost_status_code":6,"timestamp":"2019-05-06 10:04:20",
            "updated_at":"2019-05-06T04:40:00Z"}]}"#;
        let pull = fixture("clickpost/pull_track_order.json");
        let run = reconciler(
            &events,
            &queue,
            vec![answer(200, updated), answer(200, &pull)],
        );
        let report = &run.run(&[clickpost_account()], Utc::now(), &Silent).await[0];
        assert_eq!(report.quiet, 0, "no shipment state at all");
        assert_eq!((report.calls, report.reconciled), (2, 3), "{report:?}");
        assert_eq!(queue.messages().len(), 3);
        let sent = run.transport.sent.lock().unwrap();
        assert!(sent[0].url.path().ends_with("/api/v1/updated-order"));
        assert!(
            sent[1].url.to_string().contains("cp_id=9"),
            "{}",
            sent[1].url
        );
    }

    #[tokio::test]
    async fn a_429_stops_the_account_until_its_retry_after() {
        let events = MemoryEvents::default();
        let queue = MemoryQueue::default();
        let intake = QueueThenClaim {
            events: events.clone(),
            queue: queue.clone(),
        };
        let now = Utc::now();
        let body = fixture("clickpost/out_for_delivery_all_status.json");
        for event in &mut normalize(
            Carrier::Clickpost,
            body.as_bytes(),
            &NormalizeContext::new(crate::model::TenantId::parse("acme").unwrap(), now),
        )
        .unwrap()
        {
            intake.accept(event, now).await.unwrap();
        }
        let mut limited = answer(429, "{}").unwrap();
        limited.retry_after = Some(Duration::from_secs(120));
        let run = reconciler(&events, &queue, vec![Ok(limited)]);
        let account = clickpost_account();
        let report = &run.run(std::slice::from_ref(&account), now, &Silent).await[0];
        let until = report.back_off_until.expect("backing off");
        assert!(until >= now + chrono::TimeDelta::seconds(119), "{until}");
        // The next run in that time makes no call at all.
        let report = &run
            .run(&[account], now + chrono::TimeDelta::seconds(60), &Silent)
            .await[0];
        assert_eq!(report.calls, 0);
        assert_eq!(run.transport.sent.lock().unwrap().len(), 1);
    }

    #[test]
    fn quiet_depends_on_the_last_status_and_terminal_shipments_never_are() {
        let rules = QuietRules::default();
        let now = Utc::now();
        let state = |status: Status, hours: i64| ShipmentState {
            latest_event_id: None,
            latest_event_time: now - chrono::TimeDelta::hours(hours),
            last_status: Some(status),
            terminal: status.is_terminal(),
            carrier: Some(Carrier::Clickpost),
            awb: Some("A".into()),
            order_id: None,
            courier_id: None,
            last_received_at: Some(now - chrono::TimeDelta::hours(hours)),
        };
        assert!(rules.is_quiet(&state(Status::InTransit, 7), None, now));
        assert!(!rules.is_quiet(&state(Status::InTransit, 5), None, now));
        assert!(!rules.is_quiet(&state(Status::PickupScheduled, 7), None, now));
        assert!(rules.is_quiet(&state(Status::PickupScheduled, 25), None, now));
        assert!(!rules.is_quiet(&state(Status::Delivered, 100), None, now));
        // Pulled an hour ago, nothing new: not asked again before its 6 h are up.
        let pulled = Some(now - chrono::TimeDelta::hours(1));
        assert!(!rules.is_quiet(&state(Status::InTransit, 7), pulled, now));
    }
}

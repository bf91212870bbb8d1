//! The per-tenant circuit breaker, one piece of code for the dispatcher Lambda and `rms serve`.
//!
//! A tenant's endpoint that hangs or cannot be reached costs a delivery slot for the whole push
//! timeout on every attempt. After `failures_to_open` timeouts or connection failures in a row the
//! tenant's circuit opens: its messages are failed fast, without an HTTP call, and rescheduled on
//! the normal retry schedule (the attempt is counted as a failed call would be). After
//! `cool_down` one message goes through as a probe (half-open); an answer from the endpoint closes
//! the circuit, another failure keeps it open for another `cool_down`.
//!
//! Any HTTP answer counts as reachable, even a 500: the breaker is about slots held by endpoints
//! that do not answer; a fast error answer is the retry schedule's business.
//!
//! Where the state lives: the consecutive-failure count is kept in memory, per process; an open
//! circuit is stored ([`CircuitStore`]: the config table on AWS, the database in `rms serve`). On
//! AWS several dispatcher containers deliver one tenant's messages at once, so a circuit kept in
//! each container's memory would open once per container (each paying `failures_to_open` full
//! timeouts), would probe once per container, and would be invisible to the admin API. A small
//! stored item costs one cached read per tenant and a write only when the circuit opens, probes or
//! closes; counting every failure in the table would be a write per failed call for little gain.
//! The probe is claimed with a conditional write, so one process probes, whatever the number of
//! containers.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::TenantId;
use crate::ports::Unavailable;

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Timeouts or connection failures in a row that open a tenant's circuit.
    pub failures_to_open: u32,
    /// How long an open circuit fails messages fast before one probe goes through.
    pub cool_down: Duration,
    /// How long a process trusts the stored circuit it read (other processes may open or close
    /// it meanwhile). Its own changes are seen at once.
    pub cache: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failures_to_open: 5,
            cool_down: Duration::from_secs(30),
            cache: Duration::from_secs(5),
        }
    }
}

/// An open circuit, as stored. No record means closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenCircuit {
    pub opened_at: DateTime<Utc>,
    /// The failures in a row that opened it, plus each failed probe since.
    pub failures: u32,
    /// The last failure, as the delivery log words it.
    pub last_error: String,
    /// When the next probe may go through.
    pub probe_at: DateTime<Utc>,
}

/// A circuit as the admin API and `rms circuit` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CircuitView {
    /// `closed`, `open` (messages failed fast until `probe_at`), or `half_open` (the cool-down
    /// is over: the next message is the probe, or the probe is in flight).
    pub state: &'static str,
    #[serde(flatten)]
    pub open: Option<OpenCircuit>,
}

impl CircuitView {
    pub fn new(open: Option<OpenCircuit>, now: DateTime<Utc>) -> Self {
        let state = match &open {
            None => "closed",
            Some(circuit) if now < circuit.probe_at => "open",
            Some(_) => "half_open",
        };
        CircuitView { state, open }
    }
}

/// Where open circuits are kept. Each store is shared by every process that delivers.
pub trait CircuitStore: Send + Sync {
    /// The tenant's open circuit, if any.
    fn open_circuit(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<Option<OpenCircuit>, Unavailable>> + Send;

    /// Stores the circuit as open (creating or replacing it).
    fn save_open_circuit(
        &self,
        tenant: &TenantId,
        circuit: &OpenCircuit,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;

    /// Claims the probe: moves `probe_at` from `seen` to `next` if it is still `seen`. `true` for
    /// exactly one caller; `false` if another took it, or the circuit was closed meanwhile.
    fn claim_probe(
        &self,
        tenant: &TenantId,
        seen: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, Unavailable>> + Send;

    /// Closes the circuit (removes the record).
    fn close_circuit(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<(), Unavailable>> + Send;
}

/// Whether a push may go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Closed: push.
    Pass,
    /// Half-open: this push is the one probe.
    Probe,
    /// Open: fail fast, without a call.
    Open(OpenCircuit),
}

/// What a push told the breaker about the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health<'a> {
    /// The endpoint answered (any status).
    Reachable,
    /// A timeout or a connection failure, with its description.
    Unreachable(&'a str),
}

/// A change of state, for the caller to log and count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Opened(OpenCircuit),
    /// The probe failed: open for another cool-down.
    StillOpen(OpenCircuit),
    Closed,
}

#[derive(Default)]
struct Local {
    failures: u32,
    /// The stored circuit as last read or written by this process, and when.
    known: Option<(Instant, Option<OpenCircuit>)>,
}

/// The breaker of one process over a shared [`CircuitStore`].
pub struct Breaker<S> {
    store: S,
    settings: BreakerSettings,
    local: Mutex<HashMap<TenantId, Local>>,
}

impl<S: CircuitStore> Breaker<S> {
    pub fn new(store: S, settings: BreakerSettings) -> Self {
        Breaker {
            store,
            settings,
            local: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &BreakerSettings {
        &self.settings
    }

    fn with_local<T>(&self, tenant: &TenantId, f: impl FnOnce(&mut Local) -> T) -> T {
        let mut local = self
            .local
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(local.entry(tenant.clone()).or_default())
    }

    fn remember(&self, tenant: &TenantId, circuit: Option<OpenCircuit>) {
        self.with_local(tenant, |l| l.known = Some((Instant::now(), circuit)));
    }

    /// The stored circuit, through this process's cache. A store that cannot be read counts as
    /// closed: the breaker protects other tenants' slots, and must not itself stop deliveries.
    async fn stored(&self, tenant: &TenantId) -> Option<OpenCircuit> {
        let cached = self.with_local(tenant, |l| {
            l.known
                .as_ref()
                .filter(|(at, _)| at.elapsed() < self.settings.cache)
                .map(|(_, c)| c.clone())
        });
        if let Some(circuit) = cached {
            return circuit;
        }
        match self.store.open_circuit(tenant).await {
            Ok(circuit) => {
                self.remember(tenant, circuit.clone());
                circuit
            }
            Err(e) => {
                tracing::warn!(error = %e, "circuit state unreadable; delivering as if closed");
                None
            }
        }
    }

    /// Whether a push to the tenant may go out now.
    pub async fn gate(&self, tenant: &TenantId, now: DateTime<Utc>) -> Gate {
        let Some(circuit) = self.stored(tenant).await else {
            return Gate::Pass;
        };
        if now < circuit.probe_at {
            return Gate::Open(circuit);
        }
        let next = now + self.cool_down();
        match self.store.claim_probe(tenant, circuit.probe_at, next).await {
            Ok(true) => {
                self.remember(
                    tenant,
                    Some(OpenCircuit {
                        probe_at: next,
                        ..circuit
                    }),
                );
                Gate::Probe
            }
            Ok(false) => {
                // Another process probes, or closed it: read it afresh next time.
                self.with_local(tenant, |l| l.known = None);
                Gate::Open(circuit)
            }
            Err(_) => Gate::Open(circuit),
        }
    }

    /// Takes in what a push (let through by `gate`) found.
    pub async fn record(
        &self,
        tenant: &TenantId,
        gate: &Gate,
        health: Health<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Transition>, Unavailable> {
        match health {
            Health::Reachable => {
                let was_open = self.with_local(tenant, |l| {
                    l.failures = 0;
                    matches!(&l.known, Some((_, Some(_))))
                });
                if *gate == Gate::Probe || was_open {
                    self.store.close_circuit(tenant).await?;
                    self.remember(tenant, None);
                    return Ok(Some(Transition::Closed));
                }
                Ok(None)
            }
            Health::Unreachable(error) => {
                if *gate == Gate::Probe {
                    let before = self.stored(tenant).await;
                    let failures = before.as_ref().map_or(0, |c| c.failures) + 1;
                    let opened_at = before.map_or(now, |c| c.opened_at);
                    let circuit = self.open(opened_at, failures, error, now);
                    self.store.save_open_circuit(tenant, &circuit).await?;
                    self.remember(tenant, Some(circuit.clone()));
                    return Ok(Some(Transition::StillOpen(circuit)));
                }
                let failures = self.with_local(tenant, |l| {
                    l.failures += 1;
                    l.failures
                });
                if failures < self.settings.failures_to_open {
                    return Ok(None);
                }
                if self.stored(tenant).await.is_some() {
                    // Opened meanwhile (by this process's other pushes, or another process).
                    return Ok(None);
                }
                let circuit = self.open(now, failures, error, now);
                self.store.save_open_circuit(tenant, &circuit).await?;
                self.remember(tenant, Some(circuit.clone()));
                self.with_local(tenant, |l| l.failures = 0);
                Ok(Some(Transition::Opened(circuit)))
            }
        }
    }

    fn cool_down(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::from_std(self.settings.cool_down).unwrap_or(chrono::TimeDelta::MAX)
    }

    fn open(
        &self,
        opened_at: DateTime<Utc>,
        failures: u32,
        error: &str,
        now: DateTime<Utc>,
    ) -> OpenCircuit {
        OpenCircuit {
            opened_at,
            failures,
            last_error: error.to_owned(),
            probe_at: now + self.cool_down(),
        }
    }
}

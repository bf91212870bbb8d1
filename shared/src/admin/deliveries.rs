//! The delivery log, dead letters and replay, the circuit and the queue.

use chrono::{DateTime, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{Admin, AdminError, AdminStore};
use crate::circuit::CircuitView;
use crate::ingest::Reingest;
use crate::model::Status;
use crate::ports::{Attempt, AttemptOutcome, Pusher};

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

/// Which of a tenant's delivered events to look at or replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Awb(String),
    Between {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
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

/// How many events a replay queues at a time: one write of the writer's group in `rms serve`
/// (small enough not to hold up the carriers' events committed with it), SQS batches of 10 sent
/// at once on AWS.
const REPLAY_CHUNK: usize = 50;

/// How many hours [`Admin::deliveries_by_hour`] covers.
pub const DELIVERY_HOURS: i64 = 24;

impl<S: AdminStore, P: Pusher, R: Reingest> Admin<S, P, R> {
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
        let mut events = self.store.archived_events(&firsts).await?;
        events.retain(|e| e.tenant_id == tenant.id);
        let mut done = 0;
        for chunk in events.chunks(REPLAY_CHUNK) {
            self.store.enqueue_replays(chunk).await?;
            done += chunk.len();
            progress(done, events.len());
        }
        info!(tenant_id = %tenant.id, replayed = done, "events replayed");
        Ok(u64::try_from(done).unwrap_or(u64::MAX))
    }

    /// The tenant's delivery circuit (`circuit.rs`): closed, open (failing fast), or half-open
    /// (a probe is due or in flight).
    pub async fn circuit(&self, tenant: &str) -> Result<CircuitView, AdminError> {
        let tenant = self.tenant(tenant).await?;
        let open = self.store.open_circuit(&tenant.id).await?;
        Ok(CircuitView::new(open, Utc::now()))
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

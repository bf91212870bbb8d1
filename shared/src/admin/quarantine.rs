//! The quarantine: bodies from authenticated carriers that did not normalise, and their replay
//! through ingest once the normaliser is fixed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{auth_of, Admin, AdminError, AdminStore};
use crate::ingest::{IngestOutcome, Reingest};
use crate::model::{Carrier, EventId, TenantId};
use crate::ports::{Pusher, TenantAuth};

/// A quarantined body, as a listing shows it (without the body): a payload from an authenticated
/// carrier that did not normalise, kept once per tenant and body until `QUARANTINE_TTL` (14 days)
/// after its last arrival.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineView {
    /// The body's SHA-256 in hex: the entry's id within its tenant.
    pub id: String,
    pub tenant_id: String,
    pub carrier: Carrier,
    /// Why its last arrival was refused.
    pub reason: String,
    pub first_received_at: DateTime<Utc>,
    pub last_received_at: DateTime<Utc>,
    /// How many times the body arrived.
    pub times: u64,
    /// The last replay of the body, if it was replayed.
    pub last_replay: Option<ReplayNote>,
}

/// When a quarantined body was last replayed, and what ingest answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayNote {
    pub at: DateTime<Utc>,
    /// A [`ReplayOutcome`] name (`accepted`, `duplicate`, …).
    pub outcome: String,
}

/// A quarantined body with its entry, as the store gives it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedBody {
    pub view: QuarantineView,
    /// As stored: scrubbed of credentials by ingest before it was kept.
    pub body: Vec<u8>,
}

/// One quarantined body as the API shows it: the entry and the body as text (bytes that are not
/// UTF-8 are shown as U+FFFD).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineDetail {
    #[serde(flatten)]
    pub view: QuarantineView,
    pub body: String,
}

/// Which quarantined bodies, as a store takes it: every field that is set narrows the selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineFilter {
    pub tenant: Option<TenantId>,
    pub carrier: Option<Carrier>,
    /// A part of the reason, matched without regard to ASCII case.
    pub reason: Option<String>,
    /// Bodies that arrived at or after this time (their last arrival).
    pub from: Option<DateTime<Utc>>,
    /// Bodies that arrived at or before this time (their first arrival).
    pub to: Option<DateTime<Utc>>,
    /// At most this many, oldest first (by first arrival).
    pub limit: usize,
}

impl QuarantineFilter {
    /// Whether an entry is selected (the limit aside). Stores that cannot filter on the server
    /// (DynamoDB) filter with this; SQLite says the same in SQL.
    pub fn matches(&self, entry: &QuarantineView) -> bool {
        self.tenant
            .as_ref()
            .is_none_or(|t| t.as_str() == entry.tenant_id)
            && self.carrier.is_none_or(|c| c == entry.carrier)
            && self.reason.as_ref().is_none_or(|part| {
                entry
                    .reason
                    .to_ascii_lowercase()
                    .contains(&part.to_ascii_lowercase())
            })
            && self.from.is_none_or(|from| entry.last_received_at >= from)
            && self.to.is_none_or(|to| entry.first_received_at <= to)
    }

    /// The listing order (oldest first arrival, then tenant and id) and the limit, for stores
    /// that filter with [`QuarantineFilter::matches`]; SQLite says the same in SQL.
    pub fn order_and_limit(&self, mut found: Vec<QuarantineView>) -> Vec<QuarantineView> {
        found.sort_by(|a, b| {
            (a.first_received_at, &a.tenant_id, &a.id).cmp(&(
                b.first_received_at,
                &b.tenant_id,
                &b.id,
            ))
        });
        found.truncate(self.limit);
        found
    }
}

/// Which quarantined bodies, as the API and the CLI ask for them (names not yet checked).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineQuery {
    pub tenant: Option<String>,
    pub carrier: Option<String>,
    pub reason: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// A listing's size: 1 to [`MAX_QUARANTINE_LIST`], 100 if absent. A replay takes every
    /// match and ignores it.
    pub limit: Option<usize>,
}

/// The most entries one quarantine listing returns.
pub const MAX_QUARANTINE_LIST: usize = 1000;

/// Which quarantined bodies to replay: named ones of a tenant, or every match of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuarantineSelection {
    Ids { tenant: String, ids: Vec<String> },
    Matching(QuarantineQuery),
}

/// What ingest answered a replayed body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayOutcome {
    /// Its events were queued now (or it had none).
    Accepted,
    /// Its events had all been accepted before (an earlier replay, or the carrier's retry).
    Duplicate,
    /// It still does not normalise; `reason` says why.
    Invalid,
    /// A store or the queue failed; replay it again.
    Unavailable,
    /// Another request is accepting the same event right now; replay it again.
    InFlight,
}

impl ReplayOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayOutcome::Accepted => "accepted",
            ReplayOutcome::Duplicate => "duplicate",
            ReplayOutcome::Invalid => "invalid",
            ReplayOutcome::Unavailable => "unavailable",
            ReplayOutcome::InFlight => "in_flight",
        }
    }

    /// Ingest's answer, as a replay reports it, with its reason and the body's event ids.
    pub(super) fn of(outcome: IngestOutcome) -> (ReplayOutcome, Option<String>, Vec<EventId>) {
        let refused = |reason: &str| (ReplayOutcome::Invalid, Some(reason.to_owned()), Vec::new());
        match outcome {
            IngestOutcome::Accepted { queued, duplicates } => {
                let outcome = if queued.is_empty() && !duplicates.is_empty() {
                    ReplayOutcome::Duplicate
                } else {
                    ReplayOutcome::Accepted
                };
                (
                    outcome,
                    None,
                    queued.into_iter().chain(duplicates).collect(),
                )
            }
            IngestOutcome::Invalid { reason } => (ReplayOutcome::Invalid, Some(reason), Vec::new()),
            IngestOutcome::Unavailable => (ReplayOutcome::Unavailable, None, Vec::new()),
            IngestOutcome::InFlight => (ReplayOutcome::InFlight, None, Vec::new()),
            IngestOutcome::Probe => refused("the body is empty or a set-up probe: no event in it"),
            IngestOutcome::PanelTest => refused("the body is a carrier panel's test, not an event"),
            IngestOutcome::TooLarge { size, limit } => refused(&format!(
                "the body is {size} bytes, over the limit of {limit}"
            )),
            IngestOutcome::Unauthorized(_) | IngestOutcome::MethodNotAllowed => {
                refused("ingest refused the body")
            }
        }
    }
}

/// One replayed body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineReplayResult {
    pub id: String,
    pub tenant_id: String,
    pub outcome: ReplayOutcome,
    /// Why it is still invalid.
    pub reason: Option<String>,
    /// The events the body became (queued now, then those accepted before).
    pub event_ids: Vec<String>,
}

/// The answer to a quarantine replay: each body's result, and how many had each outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineReplay {
    pub results: Vec<QuarantineReplayResult>,
    pub accepted: u64,
    pub duplicate: u64,
    pub invalid: u64,
    pub unavailable: u64,
    pub in_flight: u64,
}

impl QuarantineReplay {
    fn add(&mut self, result: QuarantineReplayResult) {
        *match result.outcome {
            ReplayOutcome::Accepted => &mut self.accepted,
            ReplayOutcome::Duplicate => &mut self.duplicate,
            ReplayOutcome::Invalid => &mut self.invalid,
            ReplayOutcome::Unavailable => &mut self.unavailable,
            ReplayOutcome::InFlight => &mut self.in_flight,
        } += 1;
        self.results.push(result);
    }

    /// Whether some body was not taken (still invalid, or a store failed): the CLI's exit 1.
    pub fn has_failures(&self) -> bool {
        self.invalid > 0 || self.unavailable > 0
    }
}

impl<S: AdminStore, P: Pusher, R: Reingest> Admin<S, P, R> {
    /// The store's filter for a query: names checked (an unknown tenant is 404, an unknown
    /// carrier names the field), the time range in order.
    async fn quarantine_filter(
        &self,
        query: &QuarantineQuery,
        limit: usize,
    ) -> Result<QuarantineFilter, AdminError> {
        let carrier = match &query.carrier {
            Some(c) => Some(
                c.parse::<Carrier>()
                    .map_err(|e: crate::model::UnknownName| {
                        AdminError::invalid("carrier", e.to_string())
                    })?,
            ),
            None => None,
        };
        if let (Some(from), Some(to)) = (query.from, query.to) {
            if from > to {
                return Err(AdminError::invalid(
                    "from",
                    "the time range starts after it ends",
                ));
            }
        }
        let tenant = match &query.tenant {
            Some(t) => Some(self.tenant(t).await?.id),
            None => None,
        };
        Ok(QuarantineFilter {
            tenant,
            carrier,
            reason: query.reason.clone().filter(|r| !r.is_empty()),
            from: query.from,
            to: query.to,
            limit,
        })
    }

    /// Quarantined bodies (of every tenant, or one), oldest first.
    pub async fn quarantined(
        &self,
        query: &QuarantineQuery,
    ) -> Result<Vec<QuarantineView>, AdminError> {
        let limit = query.limit.unwrap_or(100);
        if !(1..=MAX_QUARANTINE_LIST).contains(&limit) {
            return Err(AdminError::invalid(
                "limit",
                format!("use 1 to {MAX_QUARANTINE_LIST}"),
            ));
        }
        let filter = self.quarantine_filter(query, limit).await?;
        Ok(self.store.quarantined(&filter).await?)
    }

    /// One quarantined body, with the body as text.
    pub async fn quarantined_body(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<QuarantineDetail, AdminError> {
        let tenant = self.tenant(tenant).await?;
        let found = self.find_quarantined(&tenant.id, id).await?;
        Ok(QuarantineDetail {
            body: String::from_utf8_lossy(&found.body).into_owned(),
            view: found.view,
        })
    }

    async fn find_quarantined(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<QuarantinedBody, AdminError> {
        let not_found = || {
            AdminError::NotFound(format!(
                "tenant {tenant} has no quarantined body {id} (kept 14 days after its last arrival)"
            ))
        };
        // An id is a SHA-256 in hex; anything else names nothing.
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        self.store
            .quarantined_body(tenant, &id.to_ascii_lowercase())
            .await?
            .ok_or_else(not_found)
    }

    /// Feeds quarantined bodies through ingest again (once their normaliser is fixed), as the
    /// carrier's push would have been: normalised with the tenant's settings and its first arrival
    /// as the receive time, claimed, queued. Each entry is kept, with its replay's outcome, so a
    /// second replay answers `duplicate`. `progress` is told how many are done of how many.
    pub async fn replay_quarantined(
        &self,
        selection: &QuarantineSelection,
        now: DateTime<Utc>,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<QuarantineReplay, AdminError> {
        let mut tenants: std::collections::HashMap<String, TenantAuth> =
            std::collections::HashMap::new();
        // Named ids are all checked before any is replayed: a typo replays nothing.
        let mut named = Vec::new();
        let entries: Vec<QuarantineView> = match selection {
            QuarantineSelection::Ids { tenant, ids } => {
                if ids.is_empty() {
                    return Err(AdminError::invalid(
                        "ids",
                        "give at least one quarantined body's id, or a filter instead of ids",
                    ));
                }
                let tenant = self.tenant(tenant).await?;
                let mut seen = std::collections::HashSet::new();
                for id in ids.iter().filter(|id| seen.insert(id.to_ascii_lowercase())) {
                    named.push(self.find_quarantined(&tenant.id, id).await?);
                }
                tenants.insert(tenant.id.to_string(), auth_of(&tenant));
                named.iter().map(|n| n.view.clone()).collect()
            }
            QuarantineSelection::Matching(query) => {
                let filter = self.quarantine_filter(query, usize::MAX).await?;
                self.store.quarantined(&filter).await?
            }
        };
        let mut report = QuarantineReplay::default();
        for (done, entry) in entries.iter().enumerate() {
            if let Some(result) = self
                .replay_one(entry, &mut named, &mut tenants, now)
                .await?
            {
                report.add(result);
            }
            progress(done + 1, entries.len());
        }
        info!(
            accepted = report.accepted,
            duplicate = report.duplicate,
            invalid = report.invalid,
            unavailable = report.unavailable,
            in_flight = report.in_flight,
            "quarantine replay done"
        );
        Ok(report)
    }

    /// Replays one listed entry; `None` if it is gone (expired since it was listed).
    async fn replay_one(
        &self,
        entry: &QuarantineView,
        named: &mut Vec<QuarantinedBody>,
        tenants: &mut std::collections::HashMap<String, TenantAuth>,
        now: DateTime<Utc>,
    ) -> Result<Option<QuarantineReplayResult>, AdminError> {
        let Ok(tenant_id) = TenantId::parse(&entry.tenant_id) else {
            return Ok(None);
        };
        let body = match named.iter().position(|n| n.view.id == entry.id) {
            Some(i) => named.swap_remove(i).body,
            None => match self.store.quarantined_body(&tenant_id, &entry.id).await? {
                Some(found) => found.body,
                None => return Ok(None),
            },
        };
        let auth = match tenants.get(tenant_id.as_str()) {
            Some(auth) => Some(auth.clone()),
            None => {
                let auth = self.store.tenant(&tenant_id).await?.map(|t| auth_of(&t));
                if let Some(auth) = &auth {
                    tenants.insert(tenant_id.to_string(), auth.clone());
                }
                auth
            }
        };
        let (outcome, reason, event_ids) = match auth {
            Some(auth) => ReplayOutcome::of(
                self.reingest
                    .reingest(&auth, entry.carrier, &body, entry.first_received_at)
                    .await,
            ),
            None => (
                ReplayOutcome::Invalid,
                Some(format!("tenant {tenant_id} no longer exists")),
                Vec::new(),
            ),
        };
        self.store
            .note_replay(&tenant_id, &entry.id, outcome, now)
            .await?;
        info!(tenant_id = %tenant_id, carrier = %entry.carrier, id = %entry.id, outcome = %outcome.as_str(), "quarantined body replayed");
        Ok(Some(QuarantineReplayResult {
            id: entry.id.clone(),
            tenant_id: entry.tenant_id.clone(),
            outcome,
            reason,
            event_ids: event_ids.iter().map(ToString::to_string).collect(),
        }))
    }
}

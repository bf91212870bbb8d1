//! What each carrier sent a tenant, and the shipments it went quiet on.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Admin, AdminError, AdminStore};
use crate::ingest::Reingest;
use crate::model::{Carrier, TenantId};
use crate::ports::{CarrierActivity, Pusher};
use crate::reconcile::{QuietRules, QuietShipment};

/// How far back the carrier-status view counts requests per hour.
pub const ACTIVITY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A shipment without news for longer than its status allows (`rms shipments --stale`): the
/// reconciler asked its carrier (`last_pulled_at`) or could not, and nothing newer came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleShipment {
    pub tenant_id: String,
    pub shipment_key: String,
    pub carrier: Option<String>,
    pub awb: Option<String>,
    pub last_status: Option<String>,
    /// The newest event's time, as the carrier gave it.
    pub last_event_at: DateTime<Utc>,
    /// When that event arrived.
    pub last_received_at: Option<DateTime<Utc>>,
    /// When a reconcile run last asked the carrier about it.
    pub last_pulled_at: Option<DateTime<Utc>>,
}

impl StaleShipment {
    pub(super) fn of(tenant: &TenantId, s: QuietShipment) -> StaleShipment {
        StaleShipment {
            tenant_id: tenant.to_string(),
            shipment_key: s.shipment_key,
            carrier: s.state.carrier.map(|c| c.as_str().to_owned()),
            awb: s.state.awb,
            last_status: s.state.last_status.map(|st| st.as_str().to_owned()),
            last_event_at: s.state.latest_event_time,
            last_received_at: s.state.last_received_at,
            last_pulled_at: s.last_pulled_at,
        }
    }

    /// The last news: the newest event's arrival (its time, for state kept before arrivals were).
    pub fn last_news_at(&self) -> DateTime<Utc> {
        self.last_received_at.unwrap_or(self.last_event_at)
    }
}

impl<S: AdminStore, P: Pusher, R: Reingest> Admin<S, P, R> {
    /// The tenant's carrier-status view: for each carrier, when it last sent a panel test, an
    /// accepted event and a rejected body (with the reason), and its requests per hour over the
    /// last 24 hours.
    pub async fn carrier_activity(&self, tenant: &str) -> Result<Vec<CarrierActivity>, AdminError> {
        let tenant = self.tenant(tenant).await?;
        let since = Utc::now() - ACTIVITY_WINDOW;
        Ok(self.store.carrier_activity(&tenant.id, since).await?)
    }

    /// The shipments without news for longer than `rules` allow their status (of `tenant`, or of
    /// every enabled tenant), at every carrier; the longest without news first. What the
    /// reconciler could not bring up to date either: ask the carrier, or the client.
    pub async fn stale_shipments(
        &self,
        tenant: Option<&str>,
        rules: &QuietRules,
    ) -> Result<Vec<StaleShipment>, AdminError> {
        let tenants = match tenant {
            Some(id) => vec![self.tenant(id).await?],
            None => self
                .tenants()
                .await?
                .into_iter()
                .filter(|t| t.enabled)
                .collect(),
        };
        let now = Utc::now();
        let mut stale = Vec::new();
        for tenant in &tenants {
            for carrier in Carrier::ALL {
                let found = self
                    .store
                    .stale_shipments(&tenant.id, carrier, rules, now)
                    .await?;
                stale.extend(found.into_iter().map(|s| StaleShipment::of(&tenant.id, s)));
            }
        }
        stale.sort_by_key(StaleShipment::last_news_at);
        Ok(stale)
    }
}

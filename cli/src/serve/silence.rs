//! Silent carriers in `rms serve`: a carrier that has pushed a tenant's events and then sends
//! nothing for `[ingest] silent_after` (default 3 h) is reported: one warning when it goes quiet,
//! one line when it is back, and the list in `GET /admin/health`. On AWS the same watch is a
//! CloudWatch alarm per carrier on the `Received` metric (infra/template.yaml).
//!
//! Why 3 hours: one shipment may go 17–48 h without a scan (overnight, line-haul, pickup pending),
//! but a carrier account with live shipments pushes much more often than any one of them: Clickpost
//! relays courier scans it polls every 2 h, and the vendors' samples show median gaps of about 2 h
//! per shipment. Three hours without a single push for any shipment is the aggregate signal
//! (docs/carriers.md; ../shared/coalescing-and-silence.md §A1, §A6).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::admin::AdminStore;
use shared::ports::CarrierActivity;
use shared::TenantId;
use tokio::sync::watch;
use tracing::{info, warn};

use super::App;

/// A carrier that pushed a tenant's events before and has been quiet since.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SilentCarrier {
    pub tenant_id: String,
    pub carrier: String,
    pub last_accepted_at: DateTime<Utc>,
}

/// Whether this activity is a silence: events were accepted once, none for `after`.
fn silent(
    tenant: &TenantId,
    activity: &CarrierActivity,
    after: chrono::TimeDelta,
    now: DateTime<Utc>,
) -> Option<SilentCarrier> {
    let last = activity.last_accepted_at?;
    (now - last >= after).then(|| SilentCarrier {
        tenant_id: tenant.to_string(),
        carrier: activity.carrier.clone(),
        last_accepted_at: last,
    })
}

/// Every silent carrier of every enabled tenant, now.
pub async fn silent_carriers(
    app: &App,
    now: DateTime<Utc>,
) -> Result<Vec<SilentCarrier>, shared::ports::Unavailable> {
    let Some(after) = app.config.silent_after else {
        return Ok(Vec::new());
    };
    let after = chrono::TimeDelta::from_std(after).unwrap_or(chrono::TimeDelta::MAX);
    let mut found = Vec::new();
    for tenant in app.store.tenants().await? {
        if !tenant.enabled {
            continue;
        }
        for activity in app.store.carrier_activity(&tenant.id, now).await? {
            found.extend(silent(&tenant.id, &activity, after, now));
        }
    }
    Ok(found)
}

/// Looks every `tick` and logs each change: a carrier gone quiet, a carrier back.
pub async fn watch(app: Arc<App>, mut stopped: watch::Receiver<bool>) {
    let Some(after) = app.config.silent_after else {
        return;
    };
    // Often enough that a silence is reported within a tenth of its threshold.
    let tick = (after / 10).clamp(Duration::from_millis(200), Duration::from_secs(60));
    let mut reported: HashSet<(String, String)> = HashSet::new();
    while !*stopped.borrow() {
        match silent_carriers(&app, Utc::now()).await {
            Ok(silent) => {
                let now: HashSet<(String, String)> = silent
                    .iter()
                    .map(|s| (s.tenant_id.clone(), s.carrier.clone()))
                    .collect();
                for s in &silent {
                    if !reported.contains(&(s.tenant_id.clone(), s.carrier.clone())) {
                        let quiet_for = humantime::format_duration(Duration::from_secs(
                            u64::try_from((Utc::now() - s.last_accepted_at).num_seconds())
                                .unwrap_or(0),
                        ));
                        warn!(tenant_id = %s.tenant_id, carrier = %s.carrier, last_accepted_at = %s.last_accepted_at.to_rfc3339(), %quiet_for,
                            "carrier silent: no event from this carrier for the tenant since its last push; check the carrier panel's webhook (URL, key, enabled), and pull what was missed with `rms reconcile`");
                    }
                }
                for (tenant, carrier) in reported.difference(&now) {
                    info!(tenant_id = %tenant, %carrier, "carrier pushing again");
                }
                reported = now;
            }
            Err(e) => warn!(error = %e, "carrier silence not checked"),
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stopped.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_carrier_is_silent_only_after_it_pushed_and_then_stopped_for_the_threshold() {
        let tenant = TenantId::parse("acme").unwrap();
        let now = Utc::now();
        let hours = chrono::TimeDelta::hours;
        let activity = |last: Option<DateTime<Utc>>| CarrierActivity {
            carrier: "clickpost".into(),
            last_accepted_at: last,
            ..CarrierActivity::default()
        };
        assert_eq!(silent(&tenant, &activity(None), hours(3), now), None);
        assert_eq!(
            silent(&tenant, &activity(Some(now - hours(2))), hours(3), now),
            None
        );
        let quiet = silent(&tenant, &activity(Some(now - hours(4))), hours(3), now).unwrap();
        assert_eq!(
            (quiet.tenant_id.as_str(), quiet.carrier.as_str()),
            ("acme", "clickpost")
        );
    }
}

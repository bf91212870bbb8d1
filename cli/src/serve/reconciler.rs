//! `rms serve`'s reconciler loop: every `[reconcile] every` (default 15 min), one run of the
//! shared reconciler (`shared::reconcile`) over every enabled tenant's pull accounts. The AWS host
//! is a scheduled function; `rms reconcile` runs it once by hand.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use shared::adapters::pull_http::HttpPullTransport;
use shared::adapters::sqlite::SqliteStore;
use shared::ports::NoMetrics;
use shared::push::TargetPolicy;
use shared::reconcile::{self, AccountReport, PullAccount, Reconciler, Silent};
use shared::TenantId;
use tokio::sync::watch;
use tracing::warn;

pub type LocalReconciler =
    Reconciler<SqliteStore, SqliteStore, SqliteStore, HttpPullTransport, NoMetrics>;

/// The stored pull accounts (of `tenant`, at `carrier`, when given) as the reconciler takes
/// them; an account whose base URL the current rules refuse is reported and left out.
async fn accounts(
    store: &SqliteStore,
    tenant: Option<&TenantId>,
    carrier: Option<shared::Carrier>,
    policy: TargetPolicy,
) -> Result<Vec<(TenantId, PullAccount)>, String> {
    reconcile::accounts(store, tenant, carrier, policy)
        .await
        .map_err(|e| format!("cannot read the pull accounts: {e}"))
}

/// Runs until `stopped`, one reconcile run every `every`, the first one `every` after the start.
pub async fn run(
    reconciler: Arc<LocalReconciler>,
    store: SqliteStore,
    policy: TargetPolicy,
    every: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => {}
        }
        if super::is_stopping(&stopped) {
            return;
        }
        match accounts(&store, None, None, policy).await {
            Ok(accounts) if accounts.is_empty() => {}
            Ok(accounts) => {
                let reports: Vec<AccountReport> =
                    reconciler.run(&accounts, Utc::now(), &Silent).await;
                for r in reports.iter().filter(|r| !r.errors.is_empty()) {
                    warn!(tenant_id = %r.tenant_id, carrier = %r.carrier, errors = ?r.errors, "reconcile run had errors");
                }
            }
            Err(e) => warn!(error = %e, "reconcile run skipped"),
        }
    }
}

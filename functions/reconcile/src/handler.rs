//! One scheduled run: the accounts, then the reconciler over them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::carriers::pull::PullTransport;
use shared::ports::{DeliveryLog, Intake, Metrics, ShipmentStates, Unavailable};
use shared::push::TargetPolicy;
use shared::reconcile::{
    self, AccountReport, PullAccountSource, Reconciler, ShipmentIndex, Silent,
};
use tracing::{info, warn};

/// What a run did, per account (the invocation's result, for a manual `aws lambda invoke`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    pub accounts: Vec<AccountReport>,
}

impl RunReport {
    /// The events the webhooks never brought, queued by this run.
    pub fn reconciled(&self) -> usize {
        self.accounts.iter().map(|a| a.reconciled).sum()
    }
}

/// Runs the reconciler once over the enabled tenants' pull accounts. Only an unreadable account
/// list fails the invocation; an account's own trouble (a refused key, a 429, a store error) is
/// in its report, and the next run tries again.
pub async fn handle<A, S, I, L, T, M>(
    accounts: &A,
    reconciler: &Reconciler<S, I, L, T, M>,
    targets: TargetPolicy,
    now: DateTime<Utc>,
) -> Result<RunReport, Unavailable>
where
    A: PullAccountSource,
    S: ShipmentIndex + ShipmentStates,
    I: Intake,
    L: DeliveryLog,
    T: PullTransport,
    M: Metrics,
{
    let accounts = reconcile::accounts(accounts, None, None, targets).await?;
    let report = RunReport {
        accounts: reconciler.run(&accounts, now, &Silent).await,
    };
    for r in report.accounts.iter().filter(|r| !r.errors.is_empty()) {
        warn!(tenant_id = %r.tenant_id, carrier = %r.carrier, errors = ?r.errors, "reconcile run had errors");
    }
    info!(
        accounts = report.accounts.len(),
        reconciled = report.reconciled(),
        "reconcile run done"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use shared::adapters::memory::{
        MemoryDeliveryLog, MemoryEvents, MemoryQueue, RecordingMetrics,
    };
    use shared::carriers::pull::{PullRequest, PullResponse, TransportError};
    use shared::ingest::QueueThenClaim;
    use shared::push::SecretValue;
    use shared::reconcile::{PullAccountRecord, ReconcileSettings};
    use shared::{Carrier, TenantId};

    use super::*;

    /// Accounts as a store would hold them.
    struct Stored(Vec<(TenantId, PullAccountRecord)>);

    impl PullAccountSource for Stored {
        async fn pull_accounts(
            &self,
            _: Option<&TenantId>,
            _: Option<Carrier>,
        ) -> Result<Vec<(TenantId, PullAccountRecord)>, Unavailable> {
            Ok(self.0.clone())
        }
    }

    /// A carrier API that must not be called.
    #[derive(Clone)]
    struct NoCalls;

    impl PullTransport for NoCalls {
        async fn send(&self, request: &PullRequest) -> Result<PullResponse, TransportError> {
            panic!("called {}", request.url);
        }
    }

    type MemoryIntake = QueueThenClaim<MemoryEvents, MemoryQueue>;

    type MemoryReconciler =
        Reconciler<MemoryEvents, MemoryIntake, MemoryDeliveryLog, NoCalls, RecordingMetrics>;

    fn reconciler() -> MemoryReconciler {
        let events = MemoryEvents::default();
        Reconciler::new(
            events.clone(),
            QueueThenClaim {
                events,
                queue: MemoryQueue::default(),
            },
            MemoryDeliveryLog::default(),
            NoCalls,
            RecordingMetrics::default(),
            ReconcileSettings::default(),
        )
    }

    #[tokio::test]
    async fn an_account_whose_base_url_the_target_rules_refuse_is_left_out() {
        let stored = Stored(vec![(
            TenantId::parse("acme").unwrap(),
            PullAccountRecord {
                carrier: Carrier::Clickpost,
                base_url: "http://127.0.0.1:9/".into(),
                user: "acme-api".into(),
                secret: SecretValue::new("k3y"),
            },
        )]);
        let report = handle(&stored, &reconciler(), TargetPolicy::default(), Utc::now())
            .await
            .unwrap();
        assert_eq!(report, RunReport::default());
    }

    #[tokio::test]
    async fn an_account_with_no_quiet_shipment_makes_no_call() {
        let stored = Stored(vec![(
            TenantId::parse("acme").unwrap(),
            PullAccountRecord {
                carrier: Carrier::Shiprocket,
                base_url: "http://127.0.0.1:9/".into(),
                user: "ops@acme.example".into(),
                secret: SecretValue::new("pw"),
            },
        )]);
        let report = handle(&stored, &reconciler(), TargetPolicy::LOCAL, Utc::now())
            .await
            .unwrap();
        assert_eq!(report.accounts.len(), 1);
        let account = &report.accounts[0];
        assert_eq!(
            (account.carrier.as_str(), account.quiet, account.calls),
            ("shiprocket", 0, 0)
        );
        assert_eq!(report.reconciled(), 0);
    }
}

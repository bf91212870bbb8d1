//! `rms serve`'s event source mapping: delivery slots fed from the SQLite queue, each message
//! through the shared dispatch use-case, then settled on the queue.
//!
//! Isolation between tenants: a free slot takes the next due message at once (no batch waits for
//! its slowest push), and a tenant holds at most `tenant_concurrency` slots while others have
//! messages due. A tenant whose endpoint hangs therefore slows itself, not the others; its circuit
//! (`shared::circuit`) then stops it holding slots at all.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use shared::adapters::sqlite::Leased;
use shared::dispatch::{settle, Decision};
use shared::CanonicalEvent;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, warn};

use super::App;

/// How often the queue is looked at when nothing is due.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// How long a leased message stays hidden: twice the longest push timeout any tenant may have,
/// so that a message is never handed out again while its push may still be running.
pub fn lease_visibility() -> Duration {
    shared::push::PushTimeout::MAX * 2
}

/// Runs until `stopped`; then finishes the deliveries in flight and leases nothing new.
pub async fn run(app: Arc<App>, stopped: watch::Receiver<bool>) {
    let slots = app.config.concurrency;
    let per_tenant = app.config.tenant_concurrency;
    let visibility = lease_visibility();
    let mut running: JoinSet<()> = JoinSet::new();
    // The tenant of each running delivery, by task, and the count per tenant.
    let mut tenants_of = HashMap::new();
    let mut in_flight: HashMap<String, usize> = HashMap::new();
    let mut stop = stopped.clone();
    loop {
        let stopping = super::is_stopping(&stopped);
        if stopping && running.is_empty() {
            return;
        }
        if !stopping && running.len() < slots {
            let leased = app.store.lease(
                slots - running.len(),
                per_tenant,
                &in_flight,
                visibility,
                app.config.max_attempts,
                Utc::now(),
            );
            match leased {
                Ok(messages) => {
                    for message in messages {
                        *in_flight.entry(message.tenant_id.clone()).or_default() += 1;
                        let tenant = message.tenant_id.clone();
                        let app = app.clone();
                        let task = running.spawn(async move { deliver(&app, message).await });
                        tenants_of.insert(task.id(), tenant);
                    }
                }
                Err(e) => error!(error = %e, "cannot read the queue"),
            }
        }
        tokio::select! {
            Some(done) = running.join_next_with_id() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => {
                        error!(error = %e, "a delivery task failed; its message comes back when its lease ends");
                        e.id()
                    }
                };
                if let Some(tenant) = tenants_of.remove(&id) {
                    if let Some(count) = in_flight.get_mut(&tenant) {
                        *count -= 1;
                        if *count == 0 {
                            in_flight.remove(&tenant);
                        }
                    }
                }
            }
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = stop.changed(), if !stopping => {}
        }
    }
}

async fn deliver(app: &App, message: Leased) {
    let attributes = vec![
        ("event_id".to_owned(), message.event_id.clone()),
        ("tenant_id".to_owned(), message.tenant_id.clone()),
    ];
    let decision = match serde_json::from_str::<CanonicalEvent>(&message.body) {
        Ok(event) if message.replay => {
            app.dispatch
                .redeliver(&event, message.receive_count, Utc::now())
                .await
        }
        Ok(event) => {
            app.dispatch
                .deliver(&event, message.receive_count, Utc::now())
                .await
        }
        Err(e) => Decision::DeadLetter {
            reason: format!("the message is not an rms.tracking.v1 event: {e}"),
        },
    };
    if settle(
        &decision,
        app.store.as_ref(),
        &message.receipt,
        &message.body,
        &attributes,
        message.receive_count,
    )
    .await
    {
        if let Err(e) = app.store.ack(&message.receipt) {
            warn!(event_id = %message.event_id, error = %e, "delivered but not removed from the queue; it will be skipped as delivered");
        }
    }
}

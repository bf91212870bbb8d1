//! `rms serve`'s event source mapping: delivery slots fed from the SQLite queue, each message
//! through the shared dispatch use-case, then settled on the queue.
//!
//! Isolation between tenants: a free slot takes the next due message at once (no batch waits for
//! its slowest push), and a tenant holds at most `tenant_concurrency` slots. A tenant whose
//! endpoint hangs therefore slows itself, not the others; its circuit (`shared::circuit`) then
//! stops it holding slots at all.
//!
//! Keeping up with acceptance: the store's writes run in groups (one commit for everything
//! waiting, `shared::adapters::sqlite`), so each one waits for a group. None of those waits holds
//! a slot: the next messages are leased while the slots push (each tenant may have as many
//! leased and waiting as it has slots), and a message's bookkeeping (its attempt log, then its
//! acknowledgement or retry) is written after its slot is free again.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use shared::adapters::sqlite::{Leased, SqliteStore};
use shared::dispatch::{settle, Decision, Message};
use shared::ports::{Attempt, DeliveryLog, Unavailable};
use shared::EventId;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, warn};

use super::App;

/// How often the queue is looked at when nothing is due and nothing was accepted (retries come
/// due by the clock).
const IDLE_POLL: Duration = Duration::from_millis(100);

/// How long a leased message stays hidden: twice the longest push timeout any tenant may have,
/// so that a message is never handed out again while its push may still be running.
pub fn lease_visibility() -> Duration {
    shared::push::PushTimeout::MAX * 2
}

/// A leased message waiting for a slot is pushed only if one frees within this time of its lease:
/// its push (at most `PushTimeout::MAX`) then ends well inside the lease. Later, it is left to
/// come back when its lease ends, rather than risk being handed out twice.
fn start_by() -> Duration {
    shared::push::PushTimeout::MAX / 2
}

/// The dispatcher's attempt log: written in the store's next group without waiting for its
/// commit, so that a slot is free as soon as its push is decided. The message's acknowledgement
/// or retry is handed to the store after it, so it is committed with or after its attempt.
pub struct AttemptLog(pub SqliteStore);

impl DeliveryLog for AttemptLog {
    async fn record_attempt(&self, attempt: &Attempt) -> Result<(), Unavailable> {
        self.0.record_attempt_detached(attempt).await
    }

    async fn was_delivered(&self, event_id: &EventId) -> Result<bool, Unavailable> {
        self.0.was_delivered(event_id).await
    }
}

type Leasing = Pin<Box<dyn Future<Output = Result<Vec<Leased>, Unavailable>> + Send>>;

/// A message whose push is decided: what is left is to settle it on the queue.
struct Pushed {
    message: Message,
    decision: Decision,
}

/// Runs until `stopped`; then finishes the pushes in flight and their bookkeeping, leases nothing
/// new, and makes the leased messages that did not start visible again.
pub async fn run(app: Arc<App>, stopped: watch::Receiver<bool>) {
    let slots = app.config.concurrency;
    let per_tenant = app.config.tenant_concurrency;
    let visibility = lease_visibility();
    let mut pushing: JoinSet<Pushed> = JoinSet::new();
    let mut settling: JoinSet<()> = JoinSet::new();
    let mut book = Book::default();
    let mut leasing: Option<Leasing> = None;
    // Pushes ended so far, and as many when the lease in flight was asked for: an empty lease
    // means "nothing due" only if no slot freed meanwhile (it was asked with the counts of then).
    let (mut ended, mut ended_at_lease) = (0u64, 0u64);
    // Set when a lease found nothing to hand out: the next waits for a push to end, an accepted
    // event, or the poll.
    let mut idle_since: Option<Instant> = None;
    let mut stop = stopped.clone();
    loop {
        let stopping = super::is_stopping(&stopped);
        if stopping && pushing.is_empty() && settling.is_empty() && leasing.is_none() {
            break;
        }
        if !stopping {
            book.start_waiting(&app, &mut pushing, slots, per_tenant);
            if leasing.is_none() && idle_since.is_none() {
                // Each tenant may hold as many waiting messages as it has slots: enough to fill
                // them again while the next lease is written.
                let (store, in_flight) = (app.store.clone(), book.held.clone());
                ended_at_lease = ended;
                let max_attempts = app.config.max_attempts;
                leasing = Some(Box::pin(async move {
                    store
                        .lease(
                            2 * slots,
                            2 * per_tenant,
                            &in_flight,
                            visibility,
                            max_attempts,
                            Utc::now(),
                        )
                        .await
                }));
            }
        }
        let poll_at = idle_since.map_or_else(Instant::now, |since| since + IDLE_POLL);
        tokio::select! {
            leased = async {
                match leasing.as_mut() {
                    Some(lease) => lease.await,
                    None => std::future::pending().await,
                }
            }, if leasing.is_some() => {
                leasing = None;
                match leased {
                    Ok(messages) if messages.is_empty() => {
                        if ended == ended_at_lease {
                            idle_since = Some(Instant::now());
                        }
                    }
                    Ok(messages) => book.leased(messages),
                    Err(e) => {
                        error!(error = %e, "cannot read the queue");
                        idle_since = Some(Instant::now());
                    }
                }
            }
            Some(done) = pushing.join_next_with_id() => {
                // A slot is free: its tenant may lease again.
                idle_since = None;
                ended += 1;
                let id = match done {
                    Ok((id, pushed)) => {
                        let app = app.clone();
                        settling.spawn(async move { settle_message(&app, pushed).await });
                        id
                    }
                    Err(e) => {
                        error!(error = %e, "a delivery task failed; its message comes back when its lease ends");
                        e.id()
                    }
                };
                book.pushed(id);
            }
            Some(_) = settling.join_next() => {}
            _ = app.store.queued().notified(), if idle_since.is_some() => idle_since = None,
            _ = tokio::time::sleep_until(poll_at.into()), if idle_since.is_some() => idle_since = None,
            _ = stop.changed(), if !stopping => {}
        }
    }
    // Leased and never started: visible again now rather than at the end of their lease.
    if !book.waiting.is_empty() {
        if let Err(e) = app.store.release_leases(Utc::now()) {
            warn!(error = %e, "leased messages not released; they come back when their lease ends");
        }
    }
}

/// The dispatcher's messages: leased and waiting for a slot, or being pushed.
#[derive(Default)]
struct Book {
    /// Leased, not started, oldest due first, with when each was leased.
    waiting: Vec<(Leased, Instant)>,
    /// The tenant of each push, by task (a task that panics returns no message).
    tenants_of: HashMap<tokio::task::Id, String>,
    /// Per tenant: pushes running.
    running: HashMap<String, usize>,
    /// Per tenant: messages held (running or waiting), as the lease counts them.
    held: HashMap<String, usize>,
}

impl Book {
    fn leased(&mut self, messages: Vec<Leased>) {
        let now = Instant::now();
        for message in messages {
            *self.held.entry(message.tenant_id.clone()).or_default() += 1;
            self.waiting.push((message, now));
        }
    }

    /// Starts the waiting messages that have a slot, oldest first, within each tenant's limit.
    fn start_waiting(
        &mut self,
        app: &Arc<App>,
        pushing: &mut JoinSet<Pushed>,
        slots: usize,
        per_tenant: usize,
    ) {
        let mut i = 0;
        while i < self.waiting.len() && pushing.len() < slots {
            let (message, leased_at) = &self.waiting[i];
            if leased_at.elapsed() > start_by() {
                let (message, _) = self.waiting.remove(i);
                warn!(event_id = %message.event_id, tenant_id = %message.tenant_id, "leased but no slot for its tenant in time; it comes back when its lease ends");
                release(&mut self.held, &message.tenant_id);
                continue;
            }
            if self.running.get(&message.tenant_id).copied().unwrap_or(0) >= per_tenant {
                i += 1;
                continue;
            }
            let (message, _) = self.waiting.remove(i);
            *self.running.entry(message.tenant_id.clone()).or_default() += 1;
            let tenant = message.tenant_id.clone();
            let app = app.clone();
            let task = pushing.spawn(async move { push(&app, message).await });
            self.tenants_of.insert(task.id(), tenant);
        }
    }

    /// The push of task `id` is over (decided, or its task failed).
    fn pushed(&mut self, id: tokio::task::Id) {
        if let Some(tenant) = self.tenants_of.remove(&id) {
            release(&mut self.running, &tenant);
            release(&mut self.held, &tenant);
        }
    }
}

fn release(counts: &mut HashMap<String, usize>, tenant: &str) {
    if let Some(count) = counts.get_mut(tenant) {
        *count -= 1;
        if *count == 0 {
            counts.remove(tenant);
        }
    }
}

async fn push(app: &App, message: Leased) -> Pushed {
    let message = queued(message);
    let decision = app.dispatch.decide(&message, Utc::now()).await;
    Pushed { message, decision }
}

/// The leased row as the dispatch use-case's [`Message`]: SQLite holds only accepted copies, so
/// no claim token; a dead letter keeps the event and tenant ids.
fn queued(leased: Leased) -> Message {
    Message {
        attributes: vec![
            ("event_id".to_owned(), leased.event_id),
            ("tenant_id".to_owned(), leased.tenant_id),
        ],
        receipt: leased.receipt,
        body: leased.body,
        receive_count: leased.receive_count,
        replay: leased.replay,
        token: None,
    }
}

async fn settle_message(app: &App, pushed: Pushed) {
    let Pushed { message, decision } = pushed;
    if settle(&decision, &app.store, &message).await {
        if let Err(e) = app.store.ack(&message.receipt).await {
            warn!(receipt = %message.receipt, error = %e, "delivered but not removed from the queue; it will be skipped as delivered");
        }
    }
}

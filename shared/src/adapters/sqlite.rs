//! The embedded store of `rms serve`: every port on one SQLite file, with the semantics of the AWS
//! adapters. An event is accepted (claimed, queued) in one transaction; the queue has visibility
//! timeouts, receive counts and a dead-letter state; accepted events are committed before the
//! carrier hears 200.
//!
//! The database runs in WAL mode. With [`Durability::Fsync`] (the default) an event is answered
//! once the WAL holding it is fsync'd, so a 200 survives a power cut; with [`Durability::Os`],
//! once it is committed to the operating system, so it survives the process being killed
//! (`kill -9`), not a power cut. See [`Writer`] for how the fsync is shared.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::admin::{
    AdminStore, DeadLetterView, QuarantineFilter, QuarantineView, QuarantinedBody, QueueDepth,
    ReplayNote, ReplayOutcome, Selection, StoredCredential, Tenant,
};
use crate::auth::CredentialDigest;
use crate::circuit::{CircuitStore, OpenCircuit};
use crate::model::{CanonicalEvent, Carrier, EventId, Status, TenantId};
use crate::ports::{
    Activity, Attempt, AttemptOutcome, CarrierActivity, Claim, ConfigStore, DeliveryLog,
    HourlyActivity, Intake, PushConfigStore, Quarantined, QueueActions, ShipmentStates, TenantAuth,
    Unavailable,
};
use crate::push::{PushConfig, PushHeaders, PushTimeout, PushUrl, SecretValue, SigningSecret};
use crate::reconcile::{
    quietest, PullAccountRecord, PullAccountSource, QuietRules, QuietShipment, ShipmentIndex,
};
use crate::shipment::ShipmentState;

const SERVICE: &str = "SQLite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    include_source INTEGER NOT NULL DEFAULT 1,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL DEFAULT '',
    -- 1: defined in rms.toml, stored again at every start; the admin API does not change it.
    file_managed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS credentials (
    carrier TEXT NOT NULL,
    digest TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    added_at TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (carrier, digest)
);
CREATE TABLE IF NOT EXISTS push_configs (
    tenant_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    headers TEXT NOT NULL,
    statuses TEXT NOT NULL,
    signing_secret TEXT,
    timeout_ms INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    -- `every` or `latest` (push::Delivery).
    delivery TEXT NOT NULL DEFAULT 'every'
);
-- The tenants' accounts at the carriers' tracking APIs, for the reconciler (reconcile.rs).
CREATE TABLE IF NOT EXISTS pull_accounts (
    tenant_id TEXT NOT NULL,
    carrier TEXT NOT NULL,
    base_url TEXT NOT NULL,
    user TEXT NOT NULL,
    secret TEXT NOT NULL,
    PRIMARY KEY (tenant_id, carrier)
);
CREATE TABLE IF NOT EXISTS claims (
    event_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    -- The canonical event, kept with its claim: what a replay sends again.
    body TEXT
);
-- Per tenant and shipment, the newest accepted event (ports::ShipmentState); rows written
-- before the other columns have only `latest_ms`.
CREATE TABLE IF NOT EXISTS shipments (
    tenant_id TEXT NOT NULL,
    shipment_key TEXT NOT NULL,
    -- The newest event's time, epoch ms.
    latest_ms INTEGER NOT NULL,
    latest_event_id TEXT,
    last_status TEXT,
    terminal INTEGER NOT NULL DEFAULT 0,
    carrier TEXT,
    awb TEXT,
    order_id TEXT,
    courier_id TEXT,
    -- When the newest event arrived, epoch ms.
    last_received_ms INTEGER,
    -- When a reconcile run last asked the carrier about it, epoch ms.
    last_pulled_ms INTEGER,
    PRIMARY KEY (tenant_id, shipment_key)
);
-- Rejected bodies, once per tenant and body digest (the table `quarantine`, keyed by digest
-- alone, is its first shape: see `migrate_quarantine`).
CREATE TABLE IF NOT EXISTS quarantined (
    tenant_id TEXT NOT NULL,
    digest TEXT NOT NULL,
    carrier TEXT NOT NULL,
    body BLOB NOT NULL,
    reason TEXT NOT NULL,
    first_received_at TEXT NOT NULL,
    last_received_at TEXT NOT NULL,
    times INTEGER NOT NULL DEFAULT 1,
    last_replay_at TEXT,
    last_replay_outcome TEXT,
    PRIMARY KEY (tenant_id, digest)
);
CREATE INDEX IF NOT EXISTS quarantined_by_time ON quarantined (last_received_at);
-- The carrier-status view: when each tenant's carrier was last seen doing what.
CREATE TABLE IF NOT EXISTS carrier_activity (
    tenant_id TEXT NOT NULL,
    carrier TEXT NOT NULL,
    last_test_at TEXT,
    last_accepted_at TEXT,
    last_rejected_at TEXT,
    last_rejected_reason TEXT,
    PRIMARY KEY (tenant_id, carrier)
);
-- A tenant's carrier's requests per hour (HourlyActivity), kept for HOURLY_KEPT.
CREATE TABLE IF NOT EXISTS carrier_hourly (
    tenant_id TEXT NOT NULL,
    carrier TEXT NOT NULL,
    hour_ms INTEGER NOT NULL,
    tests INTEGER NOT NULL DEFAULT 0,
    accepted INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, carrier, hour_ms)
) WITHOUT ROWID;
-- Open circuits (circuit.rs); a closed circuit has no row. Times in epoch milliseconds.
CREATE TABLE IF NOT EXISTS circuits (
    tenant_id TEXT PRIMARY KEY,
    opened_at_ms INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    probe_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'ready',
    dead_reason TEXT,
    enqueued_at TEXT NOT NULL,
    -- 1 for an event queued again by a replay: delivered even if it was delivered before.
    replay INTEGER NOT NULL DEFAULT 0,
    -- 1 while a dispatcher has it (from `lease` until `retry_later` or `ack`).
    leased INTEGER NOT NULL DEFAULT 0
);
-- The lease walks it tenant by tenant (see `lease`); it replaces `queue_ready` (state,
-- visible_at_ms), which a lease skipping a busy tenant's backlog had to scan row by row.
CREATE INDEX IF NOT EXISTS queue_by_tenant ON queue (state, tenant_id, visible_at_ms);
DROP INDEX IF EXISTS queue_ready;
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    awb TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    http_status INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_awb ON deliveries (tenant_id, awb);
CREATE INDEX IF NOT EXISTS deliveries_by_time ON deliveries (tenant_id, at);
CREATE TABLE IF NOT EXISTS delivered (
    event_id TEXT PRIMARY KEY,
    at TEXT NOT NULL
);
";

/// Columns added after the first release; a database made before them gets them on open.
const ADDED_COLUMNS: [(&str, &str, &str); 17] = [
    ("tenants", "enabled", "INTEGER NOT NULL DEFAULT 1"),
    ("tenants", "created_at", "TEXT NOT NULL DEFAULT ''"),
    ("tenants", "file_managed", "INTEGER NOT NULL DEFAULT 0"),
    ("credentials", "added_at", "TEXT NOT NULL DEFAULT ''"),
    ("claims", "body", "TEXT"),
    ("queue", "replay", "INTEGER NOT NULL DEFAULT 0"),
    ("queue", "leased", "INTEGER NOT NULL DEFAULT 0"),
    ("push_configs", "delivery", "TEXT NOT NULL DEFAULT 'every'"),
    ("shipments", "latest_event_id", "TEXT"),
    ("shipments", "last_status", "TEXT"),
    ("shipments", "terminal", "INTEGER NOT NULL DEFAULT 0"),
    ("shipments", "carrier", "TEXT"),
    ("shipments", "awb", "TEXT"),
    ("shipments", "order_id", "TEXT"),
    ("shipments", "courier_id", "TEXT"),
    ("shipments", "last_received_ms", "INTEGER"),
    ("shipments", "last_pulled_ms", "INTEGER"),
];

fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    for (table, column, declaration) in ADDED_COLUMNS {
        let present: bool = conn
            .prepare(&format!(
                "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
            ))?
            .exists([column])?;
        if !present {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {declaration}"
            ))?;
        }
    }
    Ok(())
}

/// Moves the rows of the first quarantine table (`quarantine`, one row per body digest whatever
/// the tenant) into `quarantined`, and drops it. Runs once: a database made after has no
/// `quarantine` table.
fn migrate_quarantine(conn: &Connection) -> rusqlite::Result<()> {
    let old: bool = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'quarantine'")?
        .exists([])?;
    if old {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(
            "INSERT OR IGNORE INTO quarantined
                 (tenant_id, digest, carrier, body, reason, first_received_at, last_received_at, times)
                 SELECT tenant_id, digest, carrier, body, reason,
                        strftime('%Y-%m-%dT%H:%M:%fZ', received_at),
                        strftime('%Y-%m-%dT%H:%M:%fZ', received_at), 1
                 FROM quarantine;
             DROP TABLE quarantine;",
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// How long a quarantined body is kept after its last arrival: as on AWS (`QUARANTINE_TTL` of the
/// DynamoDB adapter). Older ones are hidden at once and deleted by the next quarantine write.
const QUARANTINE_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(14);
/// How long a carrier's hourly request counts are kept (the view shows the last 24 hours).
const HOURLY_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(8);

/// A time as the newer tables store it: RFC 3339 in UTC with milliseconds (SQLite's own
/// `strftime('%Y-%m-%dT%H:%M:%fZ')`), a fixed width, so that text order is time order (`MAX` on
/// the column is the latest time).
fn stamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// How far an accepted event is kept before its carrier hears 200 (`durability` in `rms.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// On stable storage: the write-ahead log holding the event is fsync'd before the answer, so
    /// a 200 survives a power cut or a kernel crash as well as the process being killed.
    #[default]
    Fsync,
    /// Written to the operating system (the WAL file, not fsync'd): a 200 survives the process
    /// being killed (`kill -9`, a panic), not a power cut or a kernel crash, which lose what was
    /// accepted since the last checkpoint (at low traffic, hours of events).
    Os,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Fsync => "fsync",
            Durability::Os => "os",
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "fsync" => Ok(Durability::Fsync),
            "os" => Ok(Durability::Os),
            other => Err(format!(
                "{other:?} is not a durability: write \"fsync\" (the default: an event answered \
                 200 is on stable storage) or \"os\" (it survives the process being killed, not \
                 a power cut)"
            )),
        }
    }
}

/// One SQLite database holding every port's state.
///
/// Writes on the hot paths (accepting an event; the dispatcher's leases, attempt log,
/// acknowledgements and retries) go to one writer thread, which runs everything waiting in one
/// transaction (see [`Writer`]); reads go to a second connection, which WAL lets read while a
/// group is being written, so a read never waits for a commit or an fsync. The rare writes
/// (configuration, admin, quarantine) run on the writer's connection between two groups.
pub struct SqliteStore {
    /// The connection every write goes through.
    conn: Arc<Mutex<Connection>>,
    /// The reads' own connection; `None` for an in-memory database (one connection is all of it).
    reader: Option<Mutex<Connection>>,
    /// To the writer thread.
    jobs: mpsc::Sender<Box<dyn Job>>,
    durability: Durability,
    /// In fsync mode, the database's WAL, fsync'd after each group commit by the syncer thread
    /// and after each rare write by the writing thread itself.
    wal: Option<Arc<WalFile>>,
    /// Woken after each commit that may have queued a message, so that the dispatcher leases at
    /// once instead of at its next poll.
    queued: Arc<Notify>,
}

/// The most jobs one group transaction takes.
const MAX_GROUP: usize = 256;

/// A write the writer thread runs in its group transaction.
trait Job: Send {
    /// Runs the job's statements: a job that fails is rolled back alone (its savepoint, or
    /// SQLite's own undo of the one statement that failed), and the others of its group are
    /// committed.
    fn run(&mut self, conn: &Connection);
    /// Answers the caller once the group is committed (and, for a durable job in fsync mode,
    /// once the WAL holding it is on disk), or tells why not.
    fn finish(self: Box<Self>, committed: Result<(), String>);
    /// Answered only once on stable storage, in fsync mode: an accepted event.
    fn durable(&self) -> bool;
}

/// What the writer does with a job besides running it.
#[derive(Clone, Copy)]
struct WriteKind {
    /// Answered only once on stable storage, in fsync mode.
    durable: bool,
    /// May queue a message: wakes the dispatcher once answered.
    queues: bool,
    /// Several statements: run in a savepoint, so that a failure undoes them all.
    savepoint: bool,
}

impl WriteKind {
    /// An accepted event: the claim, the shipment's state, the queued message.
    const ACCEPT: WriteKind = WriteKind {
        durable: true,
        queues: true,
        savepoint: true,
    };
    /// A write of the dispatcher's of several statements (a lease, an attempt and its marker).
    const STATEMENTS: WriteKind = WriteKind {
        durable: false,
        queues: false,
        savepoint: true,
    };
    /// A write of the dispatcher's of one statement (an acknowledgement, a retry).
    const STATEMENT: WriteKind = WriteKind {
        durable: false,
        queues: false,
        savepoint: false,
    };
    /// Nothing, answered once everything handed over before is on stable storage.
    const FLUSH: WriteKind = WriteKind {
        durable: true,
        queues: false,
        savepoint: false,
    };
}

/// Where a job's answer goes.
enum Reply<T> {
    To(oneshot::Sender<Result<T, Unavailable>>),
    /// Nobody waits for it (the dispatcher's attempt log): a failure is logged.
    Log,
}

/// A job: its statements (`work`), then its answer.
struct Pending<T, F> {
    operation: &'static str,
    durable: bool,
    /// Runs in a savepoint of its own: a job of several statements. One statement is undone
    /// by SQLite alone when it fails.
    savepoint: bool,
    work: Option<F>,
    result: Option<rusqlite::Result<T>>,
    reply: Reply<T>,
    /// Woken once the job is answered, when it succeeded.
    wakes: Option<Arc<Notify>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) {
        if let Some(work) = self.work.take() {
            self.result = Some(match self.savepoint {
                true => in_savepoint(conn, work),
                false => work(conn),
            });
        }
    }

    fn finish(self: Box<Self>, committed: Result<(), String>) {
        let operation = self.operation;
        let answer = match (committed, self.result) {
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Ok(()), Some(Err(e))) => Err(Unavailable::new(SERVICE, operation, e)),
            (Err(reason), _) => Err(Unavailable::new(SERVICE, operation, reason)),
            (Ok(()), None) => Err(Unavailable::new(SERVICE, operation, "not run")),
        };
        if answer.is_ok() {
            if let Some(queued) = &self.wakes {
                queued.notify_one();
            }
        }
        match self.reply {
            // The caller may have gone (a client that hung up): what was written stays written.
            Reply::To(answer_to) => {
                let _ = answer_to.send(answer);
            }
            Reply::Log => {
                if let Err(e) = answer {
                    tracing::warn!(operation, error = %e, "a write nobody waited for failed");
                }
            }
        }
    }

    fn durable(&self) -> bool {
        self.durable
    }
}

/// Runs `work` in a savepoint: on an error its statements are undone and the transaction goes on.
fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    execute(conn, "SAVEPOINT job", [])?;
    match work(conn) {
        Ok(value) => execute(conn, "RELEASE job", []).map(|_| value),
        Err(e) => execute(conn, "ROLLBACK TO job", [])
            .and_then(|_| execute(conn, "RELEASE job", []))
            .and(Err(e)),
    }
}

/// Group commit: one thread takes every job waiting (accepts from the carriers' requests, the
/// dispatcher's leases, attempt logs, acknowledgements and retries), runs them in one transaction
/// and commits them together, so one commit (and one fsync) is shared by everything that arrived
/// while the previous one ran: the busier the relay, the bigger the group.
///
/// The commit itself does not wait for the disk: the connection runs `synchronous = NORMAL`.
/// In fsync mode the durable jobs of a committed group (accepts) go to the syncer thread, which
/// fsyncs the WAL and only then answers them, while this thread already runs the next group:
/// the fsync of one group overlaps the statements of the next. That is what `synchronous = FULL`
/// does at each commit (fsync the WAL after writing the transaction's frames), moved off the
/// thread that holds the write lock; SQLite syncs the WAL itself where it matters for its own
/// consistency (the WAL header when the log restarts, and the WAL and the database around each
/// checkpoint). A carrier hears 200 only once its event is committed and, in fsync mode, synced.
/// The dispatcher's jobs are answered at the commit: losing one in a power cut means a message
/// delivered again, which at-least-once delivery allows.
struct Writer {
    conn: Arc<Mutex<Connection>>,
    jobs: mpsc::Receiver<Box<dyn Job>>,
    /// In fsync mode (a file database): where the committed durable jobs wait for the fsync.
    syncer: Option<std::sync::mpsc::Sender<Vec<Box<dyn Job>>>>,
}

impl Writer {
    fn run(mut self) {
        let mut group: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_GROUP);
        while let Some(first) = self.jobs.blocking_recv() {
            group.push(first);
            while group.len() < MAX_GROUP {
                match self.jobs.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            let committed = commit_group(&lock(&self.conn), &mut group);
            let mut to_sync = Vec::new();
            for job in group.drain(..) {
                match &self.syncer {
                    Some(_) if committed.is_ok() && job.durable() => to_sync.push(job),
                    _ => job.finish(committed.clone()),
                }
            }
            if let (Some(syncer), false) = (&self.syncer, to_sync.is_empty()) {
                if let Err(std::sync::mpsc::SendError(jobs)) = syncer.send(to_sync) {
                    for job in jobs {
                        job.finish(Err("the syncer thread has stopped".into()));
                    }
                }
            }
        }
    }
}

/// Runs each job of the group in one transaction. Returns why the group was not committed.
fn commit_group(conn: &Connection, group: &mut [Box<dyn Job>]) -> Result<(), String> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| e.to_string())?;
    for job in group.iter_mut() {
        job.run(conn);
    }
    if let Err(e) = conn.execute_batch("COMMIT") {
        let _ = conn.execute_batch("ROLLBACK");
        return Err(e.to_string());
    }
    Ok(())
}

/// The syncer thread (fsync mode): takes every committed group waiting, fsyncs the WAL once for
/// all of them, then answers their durable jobs.
fn sync_committed(wal: Arc<WalFile>, committed: std::sync::mpsc::Receiver<Vec<Box<dyn Job>>>) {
    while let Ok(mut jobs) = committed.recv() {
        while let Ok(more) = committed.try_recv() {
            jobs.extend(more);
        }
        let synced = wal.sync();
        for job in jobs {
            job.finish(synced.clone());
        }
    }
}

/// The database's write-ahead log file (`<database>-wal`), opened by us to fsync it: an fsync
/// flushes the file, whichever descriptor asks. SQLite keeps that file while any connection is
/// open; if it were replaced all the same, the next sync opens the new one.
struct WalFile {
    path: std::path::PathBuf,
    open: Mutex<Option<(std::fs::File, FileIdentity)>>,
    /// Set by the first failed fsync: after it, what the page cache held may never reach the
    /// disk, whatever later fsyncs say, so every later sync fails too.
    failed: Mutex<Option<String>>,
}

#[cfg(unix)]
type FileIdentity = (u64, u64);
#[cfg(not(unix))]
type FileIdentity = ();

#[cfg(unix)]
fn identity(metadata: &std::fs::Metadata) -> FileIdentity {
    use std::os::unix::fs::MetadataExt;
    (metadata.dev(), metadata.ino())
}
#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> FileIdentity {}

impl WalFile {
    fn new(database: &Path) -> WalFile {
        let mut path = database.as_os_str().to_owned();
        path.push("-wal");
        WalFile {
            path: path.into(),
            open: Mutex::new(None),
            failed: Mutex::new(None),
        }
    }

    /// fsyncs the WAL: everything committed before the call is then on stable storage.
    fn sync(&self) -> Result<(), String> {
        if let Some(reason) = lock(&self.failed).as_ref() {
            return Err(reason.clone());
        }
        let mut open = lock(&self.open);
        let synced = (|| {
            let current = identity(&std::fs::metadata(&self.path)?);
            if open.as_ref().is_none_or(|(_, id)| *id != current) {
                *open = Some((std::fs::File::open(&self.path)?, current));
            }
            match open.as_ref() {
                Some((file, _)) => file.sync_data(),
                None => Ok(()),
            }
        })();
        synced.map_err(|e| {
            let reason = format!(
                "fsync of {} failed ({e}): events accepted since may not be on disk; check the \
                 disk, then restart rms serve (it refuses events until then)",
                self.path.display()
            );
            tracing::error!(error = %reason, "the write-ahead log could not be synced");
            *lock(&self.failed) = Some(reason.clone());
            reason
        })
    }
}

/// The statements of one acceptance: the claim, the shipment's state, the queued message.
/// Returns the claim and whether the event is stale.
fn accept_one(
    conn: &Connection,
    event: &CanonicalEvent,
    now: DateTime<Utc>,
) -> rusqlite::Result<(Claim, bool)> {
    // A claim is inserted `QUEUED` with its message, in the same transaction, so an existing row
    // is always a duplicate (never a claim left half-done).
    let claimed = execute(
        conn,
        "INSERT INTO claims (event_id, state) VALUES (?1, 'QUEUED') ON CONFLICT (event_id) DO NOTHING",
        params![event.event_id.as_str()],
    )?;
    if claimed == 0 {
        return Ok((Claim::AlreadyQueued, false));
    }
    // Accepted before under a v1 id (`CanonicalEvent::legacy_ids`): a duplicate. The new claim
    // stays, queued, so that the next copy is answered by it alone. Every claim here is queued
    // (see above), so a row is enough.
    for id in event.legacy_ids.iter() {
        let earlier = query_row(
            conn,
            "SELECT 1 FROM claims WHERE event_id = ?1",
            params![id.as_str()],
            |_| Ok(()),
        )
        .optional()?;
        if earlier.is_some() {
            return Ok((Claim::AlreadyQueued, false));
        }
    }
    let is_stale = record_shipment(conn, event)? == 0;
    let mut queued = event.clone();
    queued.is_stale = is_stale;
    let body = serde_json::to_string(&queued)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    execute(
        conn,
        "INSERT INTO queue (event_id, tenant_id, body, visible_at_ms, enqueued_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![event.event_id.as_str(), event.tenant_id, body, now.timestamp_millis(), now.to_rfc3339()],
    )?;
    execute(
        conn,
        "UPDATE claims SET body = ?2 WHERE event_id = ?1",
        params![event.event_id.as_str(), body],
    )?;
    Ok((Claim::Claimed, is_stale))
}

/// The shipment's state becomes the event's, unless a newer event is there already (equal times:
/// the later accepted wins, as a retry of the same event must not flag itself stale). Identifiers
/// the event lacks keep their earlier value. Returns 0 when the event is not the newest.
fn record_shipment(conn: &Connection, event: &CanonicalEvent) -> rusqlite::Result<usize> {
    let state = ShipmentState::of(event);
    execute(
        conn,
        "INSERT INTO shipments (tenant_id, shipment_key, latest_ms, latest_event_id, last_status,
                 terminal, carrier, awb, order_id, courier_id, last_received_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (tenant_id, shipment_key) DO UPDATE SET
             latest_ms = excluded.latest_ms,
             latest_event_id = excluded.latest_event_id,
             last_status = excluded.last_status,
             terminal = excluded.terminal,
             carrier = excluded.carrier,
             awb = COALESCE(excluded.awb, shipments.awb),
             order_id = COALESCE(excluded.order_id, shipments.order_id),
             courier_id = COALESCE(excluded.courier_id, shipments.courier_id),
             last_received_ms = excluded.last_received_ms
         WHERE shipments.latest_ms <= excluded.latest_ms",
        params![
            event.tenant_id,
            event.shipment_key(),
            state.latest_event_time.timestamp_millis(),
            state.latest_event_id.as_ref().map(EventId::as_str),
            state.last_status.map(Status::as_str),
            state.terminal,
            state.carrier.map(Carrier::as_str),
            state.awb,
            state.order_id,
            state.courier_id,
            state.last_received_at.map(|t| t.timestamp_millis()),
        ],
    )
}

/// A lock whose holder panicked is taken all the same: what it guards (a connection, whose
/// transaction SQLite rolls back; a file) is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs a statement through the connection's prepared-statement cache: the hot paths run the same
/// few statements thousands of times a second, and parsing the SQL each time costs more than running it.
fn execute(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

fn query_row<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}

fn unavailable(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> Unavailable {
    move |e| Unavailable::new(SERVICE, operation, e)
}

/// A tenant as `rms serve`'s configuration file defines it: all that is stored for it
/// ([`SqliteStore::apply_file_tenants`]).
#[derive(Debug, Clone)]
pub struct FileTenant {
    pub id: TenantId,
    pub enabled: bool,
    pub include_source: bool,
    pub keys: Vec<(Carrier, CredentialDigest)>,
    pub push: Option<PushConfig>,
}

/// What storing the file's tenants changed besides their own settings.
#[derive(Debug, Default)]
pub struct FileTenantsApplied {
    /// Keys of the file's tenants that the file does not list (added through the admin API
    /// before the tenant was in the file, or taken out of the file): revoked.
    pub revoked: Vec<(TenantId, StoredCredential)>,
    /// Tenants the file defined before and does not any more: kept, no longer file-managed.
    pub released: Vec<TenantId>,
}

/// Why the file's tenants were not stored (and nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum FileTenantsError {
    /// A key the file gives `tenant` is `owner`'s in the database.
    #[error("this {carrier} key is tenant {owner}'s in the database; a key identifies one tenant")]
    KeyOwned {
        tenant: TenantId,
        carrier: Carrier,
        digest: CredentialDigest,
        owner: String,
    },
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

fn write_push_config(
    conn: &Connection,
    tenant: &TenantId,
    config: &PushConfig,
) -> Result<(), Unavailable> {
    let headers: Vec<(&str, &str)> = config
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose()))
        .collect();
    let statuses: Vec<&str> = config.statuses.iter().map(|s| s.as_str()).collect();
    let headers = serde_json::to_string(&headers)
        .map_err(|e| Unavailable::new(SERVICE, "put push config", e))?;
    let statuses = serde_json::to_string(&statuses)
        .map_err(|e| Unavailable::new(SERVICE, "put push config", e))?;
    execute(conn,
            "INSERT INTO push_configs (tenant_id, url, headers, statuses, signing_secret, timeout_ms, enabled, delivery)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (tenant_id) DO UPDATE SET url = excluded.url, headers = excluded.headers,
               statuses = excluded.statuses, signing_secret = excluded.signing_secret,
               timeout_ms = excluded.timeout_ms, enabled = excluded.enabled,
               delivery = excluded.delivery",
            params![
                tenant.as_str(),
                config.url.as_str(),
                headers,
                statuses,
                config.signing_secret.as_ref().map(SigningSecret::expose),
                i64::try_from(config.timeout.as_millis()).unwrap_or(i64::MAX),
                config.enabled,
                config.delivery.as_str(),
            ],
        )
        .map_err(unavailable("put push config"))?;
    Ok(())
}

fn tenant_credentials(
    conn: &Connection,
    tenant: &TenantId,
) -> rusqlite::Result<Vec<StoredCredential>> {
    let mut statement = conn.prepare_cached(
        "SELECT carrier, digest, added_at FROM credentials WHERE tenant_id = ?1
         ORDER BY added_at, carrier, digest",
    )?;
    let rows = statement.query_map(params![tenant.as_str()], |row| {
        let carrier: String = row.get(0)?;
        let digest: String = row.get(1)?;
        let added_at: String = row.get(2)?;
        Ok(carrier
            .parse::<Carrier>()
            .ok()
            .zip(CredentialDigest::from_hex(&digest))
            .map(|(carrier, digest)| StoredCredential {
                carrier,
                digest,
                added_at: parse_time(&added_at),
            }))
    })?;
    let credentials = rows.collect::<Result<Vec<_>, _>>()?;
    Ok(credentials.into_iter().flatten().collect())
}

fn credential_owner(
    conn: &Connection,
    carrier: Carrier,
    digest: &CredentialDigest,
) -> rusqlite::Result<Option<String>> {
    query_row(
        conn,
        "SELECT tenant_id FROM credentials WHERE carrier = ?1 AND digest = ?2",
        params![carrier.as_str(), digest.to_hex()],
        |row| row.get(0),
    )
    .optional()
}

/// A message handed out by the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    /// The receipt: the row id, as text.
    pub receipt: String,
    pub event_id: String,
    pub tenant_id: String,
    pub body: String,
    pub receive_count: u32,
    /// Queued again by a replay: deliver even if it was delivered before.
    pub replay: bool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, with the default durability (fsync).
    pub fn open(path: &Path) -> Result<SqliteStore, Unavailable> {
        SqliteStore::open_with(path, Durability::default())
    }

    /// Opens (creating if needed) the database at `path`, keeping accepted events as
    /// `durability` says.
    pub fn open_with(path: &Path, durability: Durability) -> Result<SqliteStore, Unavailable> {
        let conn = Connection::open(path).map_err(unavailable("open"))?;
        // NORMAL in both modes: a commit writes the WAL without waiting for the disk, and in
        // fsync mode the syncer thread fsyncs it (see `Writer`).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(unavailable("configure"))?;
        let reader = Connection::open(path).map_err(unavailable("open"))?;
        reader
            .execute_batch("PRAGMA query_only = 1; PRAGMA busy_timeout = 5000;")
            .map_err(unavailable("configure"))?;
        let wal = (durability == Durability::Fsync).then(|| Arc::new(WalFile::new(path)));
        SqliteStore::start(conn, Some(reader), durability, wal)
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> Result<SqliteStore, Unavailable> {
        let conn = Connection::open_in_memory().map_err(unavailable("open"))?;
        SqliteStore::start(conn, None, Durability::default(), None)
    }

    fn start(
        conn: Connection,
        reader: Option<Connection>,
        durability: Durability,
        wal: Option<Arc<WalFile>>,
    ) -> Result<SqliteStore, Unavailable> {
        conn.execute_batch(SCHEMA)
            .map_err(unavailable("create schema"))?;
        add_missing_columns(&conn).map_err(unavailable("upgrade schema"))?;
        migrate_quarantine(&conn).map_err(unavailable("upgrade schema"))?;
        let conn = Arc::new(Mutex::new(conn));
        let (jobs, waiting) = mpsc::channel(4 * MAX_GROUP);
        let mut writer = Writer {
            conn: conn.clone(),
            jobs: waiting,
            syncer: None,
        };
        // Each thread ends when what feeds it goes: the writer when the store (the only sender of
        // jobs) is dropped, the syncer when the writer ends.
        if let Some(wal) = &wal {
            // The schema statements above wrote the WAL: the first sync finds the file.
            wal.sync()
                .map_err(|e| Unavailable::new(SERVICE, "sync the write-ahead log", e))?;
            let (committed, to_sync) = std::sync::mpsc::channel();
            writer.syncer = Some(committed);
            let wal = wal.clone();
            std::thread::Builder::new()
                .name("sqlite-syncer".into())
                .spawn(move || sync_committed(wal, to_sync))
                .map_err(|e| Unavailable::new(SERVICE, "start the syncer", e))?;
        }
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Unavailable::new(SERVICE, "start the writer", e))?;
        Ok(SqliteStore {
            conn,
            reader: reader.map(Mutex::new),
            jobs,
            durability,
            wal,
            queued: Arc::new(Notify::new()),
        })
    }

    /// How accepted events are kept.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Notified after each commit that may have queued a message (an accepted event, a replay, a
    /// redrive): the dispatcher waits on it when the queue had nothing due.
    pub fn queued(&self) -> &Notify {
        &self.queued
    }

    /// The writing connection, for the rare writes (and, in memory, for everything).
    fn conn(&self) -> MutexGuard<'_, Connection> {
        lock(&self.conn)
    }

    /// The connection for reads: sees every write answered so far.
    fn read(&self) -> MutexGuard<'_, Connection> {
        match &self.reader {
            Some(reader) => lock(reader),
            None => lock(&self.conn),
        }
    }

    /// A rare write, on the writing connection between two groups; in fsync mode, on stable
    /// storage when this returns.
    fn write<T>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&mut Connection) -> Result<T, Unavailable>,
    ) -> Result<T, Unavailable> {
        let done = work(&mut self.conn())?;
        self.sync_wal(operation)?;
        Ok(done)
    }

    /// In fsync mode, puts every commit so far on stable storage.
    fn sync_wal(&self, operation: &'static str) -> Result<(), Unavailable> {
        match &self.wal {
            Some(wal) => wal
                .sync()
                .map_err(|e| Unavailable::new(SERVICE, operation, e)),
            None => Ok(()),
        }
    }

    /// Hands a write to the writer thread and waits for its answer: at the group's commit, or,
    /// for a durable write in fsync mode, once it is on stable storage.
    async fn submit<T, F>(
        &self,
        operation: &'static str,
        kind: WriteKind,
        work: F,
    ) -> Result<T, Unavailable>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let gone = || Unavailable::new(SERVICE, operation, "the writer thread has stopped");
        let job = Pending {
            operation,
            durable: kind.durable,
            savepoint: kind.savepoint,
            work: Some(work),
            result: None,
            reply: Reply::To(answer),
            wakes: kind.queues.then(|| self.queued.clone()),
        };
        // A bounded channel: when the writer is behind, callers wait here (backpressure).
        self.jobs.send(Box::new(job)).await.map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }

    /// Hands a write to the writer thread without waiting for its commit (a failure is logged):
    /// for writes nobody acts on, so that their callers do not wait a group's time.
    async fn submit_detached<F>(&self, operation: &'static str, work: F) -> Result<(), Unavailable>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
    {
        let job = Pending {
            operation,
            durable: false,
            savepoint: true,
            work: Some(work),
            result: None,
            reply: Reply::Log,
            wakes: None,
        };
        self.jobs
            .send(Box::new(job))
            .await
            .map_err(|_| Unavailable::new(SERVICE, operation, "the writer thread has stopped"))
    }

    /// Waits until every write handed over before is committed and, in fsync mode, on stable
    /// storage.
    pub async fn flush(&self) -> Result<(), Unavailable> {
        self.submit("flush", WriteKind::FLUSH, |_| Ok(())).await
    }

    /// Stores the tenants `rms serve`'s configuration file defines, in one transaction, as the
    /// truth for those tenants: their settings, keys (any other key of theirs is revoked) and
    /// Push Config (none in the file: none stored), and marks them file-managed so that the admin
    /// API refuses to change them. A tenant the file defined before and does not any more is
    /// kept, with its keys and Push Config, and is no longer file-managed (the admin API may
    /// change it from now on).
    ///
    /// A key never moves from one tenant to another: a key of the file that the database holds
    /// for another tenant (one the admin API made, or one the file defined before and still
    /// does) fails the whole start, and nothing is changed. Keys the file takes away from its
    /// tenants are revoked first, so a key moved between two tenants of the file in one edit is
    /// revoked from one and added to the other.
    pub fn apply_file_tenants(
        &self,
        tenants: &[FileTenant],
        now: DateTime<Utc>,
    ) -> Result<FileTenantsApplied, FileTenantsError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(unavailable("store the configured tenants"))?;
        let mut applied = FileTenantsApplied::default();
        for tenant in tenants {
            for stored in
                tenant_credentials(&tx, &tenant.id).map_err(unavailable("list credentials"))?
            {
                if !tenant.keys.contains(&(stored.carrier, stored.digest)) {
                    execute(
                        &tx,
                        "DELETE FROM credentials WHERE carrier = ?1 AND digest = ?2 AND tenant_id = ?3",
                        params![stored.carrier.as_str(), stored.digest.to_hex(), tenant.id.as_str()],
                    )
                    .map_err(unavailable("revoke credential"))?;
                    applied.revoked.push((tenant.id.clone(), stored));
                }
            }
        }
        for tenant in tenants {
            execute(
                &tx,
                "INSERT INTO tenants (id, include_source, enabled, created_at, file_managed)
                     VALUES (?1, ?2, ?3, ?4, 1)
                     ON CONFLICT (id) DO UPDATE SET include_source = excluded.include_source,
                       enabled = excluded.enabled, file_managed = 1",
                params![
                    tenant.id.as_str(),
                    tenant.include_source,
                    tenant.enabled,
                    now.to_rfc3339()
                ],
            )
            .map_err(unavailable("put tenant"))?;
            for (carrier, digest) in &tenant.keys {
                match credential_owner(&tx, *carrier, digest)
                    .map_err(unavailable("find credential"))?
                {
                    Some(owner) if owner == tenant.id.as_str() => {}
                    Some(owner) => {
                        // Dropping the transaction rolls every change back.
                        return Err(FileTenantsError::KeyOwned {
                            tenant: tenant.id.clone(),
                            carrier: *carrier,
                            digest: *digest,
                            owner,
                        });
                    }
                    None => {
                        execute(
                            &tx,
                            "INSERT INTO credentials (carrier, digest, tenant_id, added_at) VALUES (?1, ?2, ?3, ?4)",
                            params![carrier.as_str(), digest.to_hex(), tenant.id.as_str(), now.to_rfc3339()],
                        )
                        .map_err(unavailable("add credential"))?;
                    }
                }
            }
            match &tenant.push {
                Some(push) => write_push_config(&tx, &tenant.id, push)?,
                None => {
                    execute(
                        &tx,
                        "DELETE FROM push_configs WHERE tenant_id = ?1",
                        params![tenant.id.as_str()],
                    )
                    .map_err(unavailable("remove push config"))?;
                }
            }
        }
        let ids: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
        let managed: Vec<String> = {
            let mut statement = tx
                .prepare("SELECT id FROM tenants WHERE file_managed = 1 ORDER BY id")
                .map_err(unavailable("list tenants"))?;
            let rows = statement
                .query_map([], |row| row.get(0))
                .map_err(unavailable("list tenants"))?;
            rows.collect::<Result<_, _>>()
                .map_err(unavailable("list tenants"))?
        };
        for id in managed.iter().filter(|id| !ids.contains(&id.as_str())) {
            execute(
                &tx,
                "UPDATE tenants SET file_managed = 0 WHERE id = ?1",
                params![id],
            )
            .map_err(unavailable("release tenant"))?;
            if let Ok(id) = TenantId::parse(id) {
                applied.released.push(id);
            }
        }
        tx.commit()
            .map_err(unavailable("store the configured tenants"))?;
        drop(conn);
        self.sync_wal("store the configured tenants")?;
        Ok(applied)
    }

    pub fn put_push_config(
        &self,
        tenant: &TenantId,
        config: &PushConfig,
    ) -> Result<(), Unavailable> {
        self.write("put push config", |conn| {
            write_push_config(conn, tenant, config)
        })
    }

    /// Hands out up to `max` visible messages, oldest due first, hiding each for `visibility` and
    /// counting the receive; a tenant gets at most `per_tenant` messages in flight, counting the
    /// `in_flight` ones it already has, so that one tenant's backlog never fills every slot. A
    /// message received `max_receives` times moves to the dead-letter state instead, as SQS's
    /// redrive policy does. Runs in the writer's next group, with whatever else is waiting.
    pub async fn lease(
        &self,
        max: usize,
        per_tenant: usize,
        in_flight: &HashMap<String, usize>,
        visibility: Duration,
        max_receives: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<Leased>, Unavailable> {
        let in_flight = in_flight.clone();
        self.submit("lease", WriteKind::STATEMENTS, move |conn| {
            lease_in(
                conn,
                max,
                per_tenant,
                &in_flight,
                visibility,
                max_receives,
                now,
            )
        })
        .await
    }

    /// Makes the messages a dispatcher had leased visible at once: for a start after a crash,
    /// when nothing is delivering them any more (the lease is long, twice the longest push
    /// timeout, and would otherwise hold them back). Only for the one process that owns the
    /// database (`rms serve` holds its lock file). Returns how many.
    pub fn release_leases(&self, now: DateTime<Utc>) -> Result<usize, Unavailable> {
        let released = self.write("release leases", |conn| {
            execute(
                conn,
                "UPDATE queue SET visible_at_ms = ?1, leased = 0 WHERE leased = 1 AND state = 'ready'",
                params![now.timestamp_millis()],
            )
            .map_err(unavailable("release leases"))
        })?;
        self.queued.notify_one();
        Ok(released)
    }

    /// Removes a handled message, in the writer's next group.
    pub async fn ack(&self, receipt: &str) -> Result<(), Unavailable> {
        let id: i64 = receipt
            .parse()
            .map_err(|e| Unavailable::new(SERVICE, "ack", e))?;
        self.submit("ack", WriteKind::STATEMENT, move |conn| {
            execute(conn, "DELETE FROM queue WHERE id = ?1", params![id]).map(|_| ())
        })
        .await
    }

    /// Puts dead letters back on the queue (all of them, or those ids), as new: receive count 0,
    /// visible now. Returns how many moved.
    pub fn redrive(&self, ids: Option<&[i64]>, now: DateTime<Utc>) -> Result<usize, Unavailable> {
        let moved = self.write("redrive", |conn| Self::redrive_in(conn, ids, now))?;
        self.queued.notify_one();
        Ok(moved)
    }

    fn redrive_in(
        conn: &Connection,
        ids: Option<&[i64]>,
        now: DateTime<Utc>,
    ) -> Result<usize, Unavailable> {
        let moved = match ids {
            None => execute(conn,
                "UPDATE queue SET state = 'ready', receive_count = 0, visible_at_ms = ?1, dead_reason = NULL WHERE state = 'dead'",
                params![now.timestamp_millis()],
            ),
            Some(ids) => {
                let mut total = 0;
                for id in ids {
                    total += execute(conn,
                            "UPDATE queue SET state = 'ready', receive_count = 0, visible_at_ms = ?1, dead_reason = NULL WHERE state = 'dead' AND id = ?2",
                            params![now.timestamp_millis(), id],
                        )
                        .map_err(unavailable("redrive"))?;
                }
                Ok(total)
            }
        }
        .map_err(unavailable("redrive"))?;
        Ok(moved)
    }

    /// Every delivery attempt for a tenant's shipment, oldest first.
    pub fn attempts(&self, tenant: &str, awb: &str) -> Result<Vec<Attempt>, Unavailable> {
        self.attempts_where("tenant_id = ?1 AND awb = ?2", params![tenant, awb])
    }

    fn attempts_where(
        &self,
        condition: &str,
        parameters: impl rusqlite::Params,
    ) -> Result<Vec<Attempt>, Unavailable> {
        let conn = self.read();
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT event_id, tenant_id, awb, status, attempt, outcome, http_status, latency_ms, error, at
                 FROM deliveries WHERE {condition} ORDER BY id"
            ))
            .map_err(unavailable("list deliveries"))?;
        let rows = statement
            .query_map(parameters, |row| {
                let status: String = row.get(3)?;
                let outcome: String = row.get(5)?;
                let at: String = row.get(9)?;
                Ok(Attempt {
                    event_id: EventId::from_stored(row.get::<_, String>(0)?),
                    tenant_id: row.get(1)?,
                    awb: row.get(2)?,
                    status: status.parse().unwrap_or(Status::Unknown),
                    attempt: row.get(4)?,
                    outcome: AttemptOutcome::parse(&outcome).unwrap_or(AttemptOutcome::DeadLetter),
                    http_status: row.get(6)?,
                    latency_ms: row.get(7)?,
                    error: row.get(8)?,
                    at: parse_time(&at),
                })
            })
            .map_err(unavailable("list deliveries"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(unavailable("list deliveries"))
    }

    /// How many messages wait (ready) and how many are dead.
    pub fn queue_depth(&self) -> Result<(u64, u64), Unavailable> {
        query_row(
            &self.read(),
            "SELECT COALESCE(SUM(state = 'ready'), 0), COALESCE(SUM(state = 'dead'), 0) FROM queue",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(unavailable("queue depth"))
    }
}

/// The statements of [`SqliteStore::lease`].
fn lease_in(
    conn: &Connection,
    max: usize,
    per_tenant: usize,
    in_flight: &HashMap<String, usize>,
    visibility: Duration,
    max_receives: u32,
    now: DateTime<Utc>,
) -> rusqlite::Result<Vec<Leased>> {
    let now_ms = now.timestamp_millis();
    let hidden_until = now_ms + i64::try_from(visibility.as_millis()).unwrap_or(i64::MAX / 4);
    // Each tenant with messages waiting, found through the index in one step per tenant (a
    // loose index scan), then each one's due messages up to its spare slots: the cost grows
    // with the number of tenants, never with the length of one tenant's backlog.
    let tenants: Vec<String> = {
        let mut statement = conn
            .prepare_cached(
                "WITH RECURSIVE waiting(tenant) AS (
                     SELECT MIN(tenant_id) FROM queue WHERE state = 'ready'
                     UNION ALL
                     SELECT (SELECT MIN(tenant_id) FROM queue WHERE state = 'ready' AND tenant_id > waiting.tenant)
                     FROM waiting WHERE waiting.tenant IS NOT NULL)
                 SELECT tenant FROM waiting WHERE tenant IS NOT NULL",
            )
            ?;
        let rows = statement.query_map([], |row| row.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    // (visible_at_ms, id, receive_count) of every candidate.
    let mut due: Vec<(i64, i64, u32)> = Vec::new();
    for tenant in &tenants {
        let spare = per_tenant.saturating_sub(in_flight.get(tenant).copied().unwrap_or(0));
        if spare == 0 {
            continue;
        }
        let mut statement = conn.prepare_cached(
            "SELECT visible_at_ms, id, receive_count FROM queue
                 WHERE state = 'ready' AND tenant_id = ?1 AND visible_at_ms <= ?2
                 ORDER BY visible_at_ms, id LIMIT ?3",
        )?;
        let rows = statement.query_map(
            params![
                tenant,
                now_ms,
                i64::try_from(spare.min(max)).unwrap_or(i64::MAX)
            ],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        for row in rows {
            due.push(row?);
        }
    }
    // Oldest due first, across tenants.
    due.sort_unstable();
    let mut leased = Vec::new();
    for (_, id, receives) in due {
        if leased.len() >= max {
            break;
        }
        if receives >= max_receives {
            execute(conn,
                "UPDATE queue SET state = 'dead', dead_reason = 'delivery failed ' || receive_count || ' times (max attempts reached)' WHERE id = ?1",
                params![id],
            )
            ?;
            continue;
        }
        let message = query_row(
            conn,
            "UPDATE queue SET visible_at_ms = ?1, receive_count = receive_count + 1, leased = 1 WHERE id = ?2
             RETURNING id, event_id, tenant_id, body, receive_count, replay",
            params![hidden_until, id],
            |row| {
                Ok(Leased {
                    receipt: row.get::<_, i64>(0)?.to_string(),
                    event_id: row.get(1)?,
                    tenant_id: row.get(2)?,
                    body: row.get(3)?,
                    receive_count: row.get(4)?,
                    replay: row.get(5)?,
                })
            },
        )
        ?;
        leased.push(message);
    }
    Ok(leased)
}

impl ConfigStore for SqliteStore {
    async fn tenant_by_credential(
        &self,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> Result<Option<TenantAuth>, Unavailable> {
        let found: Option<(String, Option<bool>, Option<bool>)> = query_row(&self.read(),
                "SELECT c.tenant_id, t.include_source, t.enabled FROM credentials c LEFT JOIN tenants t ON t.id = c.tenant_id
                 WHERE c.carrier = ?1 AND c.digest = ?2",
                params![carrier.as_str(), digest.to_hex()],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(unavailable("find credential"))?;
        Ok(found.and_then(|(tenant, include_source, enabled)| {
            TenantId::parse(&tenant).ok().map(|tenant_id| TenantAuth {
                tenant_id,
                include_source: include_source.unwrap_or(true),
                enabled: enabled.unwrap_or(true),
            })
        }))
    }
}

/// Each acceptance is one savepoint of a group commit (see [`Writer`]): the claim, the
/// shipment's state and the queued message are committed together or not at all, so a crash
/// never leaves a claim without its message. It is answered once its group is committed and, in
/// fsync mode, on stable storage.
impl Intake for SqliteStore {
    async fn accept(
        &self,
        event: &mut CanonicalEvent,
        now: DateTime<Utc>,
        _claim_for: Duration,
    ) -> Result<Claim, Unavailable> {
        let accepted = event.clone();
        let (claim, is_stale) = self
            .submit("accept", WriteKind::ACCEPT, move |conn| {
                accept_one(conn, &accepted, now)
            })
            .await?;
        event.is_stale = is_stale;
        Ok(claim)
    }

    async fn quarantine(&self, item: &Quarantined<'_>) -> Result<(), Unavailable> {
        let conn = self.conn();
        // What TTL does on AWS: bodies whose last arrival is past the quarantine's time go (a
        // repeat of one starts afresh).
        execute(
            &conn,
            "DELETE FROM quarantined WHERE last_received_at < ?1",
            params![stamp(item.received_at - QUARANTINE_KEPT)],
        )
        .map_err(unavailable("quarantine"))?;
        // One upsert: the body is kept once; a repeat counts and moves the last arrival.
        execute(
            &conn,
            "INSERT INTO quarantined
                 (tenant_id, digest, carrier, body, reason, first_received_at, last_received_at, times)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 1)
             ON CONFLICT (tenant_id, digest) DO UPDATE SET
                 times = times + 1,
                 carrier = excluded.carrier,
                 reason = excluded.reason,
                 first_received_at = MIN(first_received_at, excluded.first_received_at),
                 last_received_at = MAX(last_received_at, excluded.last_received_at)",
            params![
                item.tenant_id.as_str(),
                item.body_digest,
                item.carrier.as_str(),
                item.body,
                item.reason,
                stamp(item.received_at)
            ],
        )
        .map_err(unavailable("quarantine"))?;
        drop(conn);
        // Kept means on disk, as for an accepted event.
        self.sync_wal("quarantine")
    }

    async fn record_activity(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        activity: Activity,
        at: DateTime<Utc>,
        detail: Option<&str>,
        count: u32,
    ) -> Result<(), Unavailable> {
        // Each column keeps its latest time (text order is time order, see `stamp`); the reason
        // of a rejection goes with its time. On update every right-hand side reads the old row.
        let sql = match activity {
            Activity::PanelTest => {
                "INSERT INTO carrier_activity (tenant_id, carrier, last_test_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant_id, carrier) DO UPDATE SET
                     last_test_at = MAX(COALESCE(last_test_at, ''), excluded.last_test_at)"
            }
            Activity::Accepted => {
                "INSERT INTO carrier_activity (tenant_id, carrier, last_accepted_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant_id, carrier) DO UPDATE SET
                     last_accepted_at = MAX(COALESCE(last_accepted_at, ''), excluded.last_accepted_at)"
            }
            Activity::Rejected => {
                "INSERT INTO carrier_activity (tenant_id, carrier, last_rejected_at, last_rejected_reason)
                     VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant_id, carrier) DO UPDATE SET
                     last_rejected_reason = CASE
                         WHEN COALESCE(last_rejected_at, '') <= excluded.last_rejected_at
                         THEN excluded.last_rejected_reason ELSE last_rejected_reason END,
                     last_rejected_at = MAX(COALESCE(last_rejected_at, ''), excluded.last_rejected_at)"
            }
        };
        // The hour's count, and hours older than HOURLY_KEPT dropped, in the same transaction.
        let count_sql = match activity {
            Activity::PanelTest => {
                "INSERT INTO carrier_hourly (tenant_id, carrier, hour_ms, tests) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET tests = tests + excluded.tests"
            }
            Activity::Accepted => {
                "INSERT INTO carrier_hourly (tenant_id, carrier, hour_ms, accepted) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET accepted = accepted + excluded.accepted"
            }
            Activity::Rejected => {
                "INSERT INTO carrier_hourly (tenant_id, carrier, hour_ms, rejected) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET rejected = rejected + excluded.rejected"
            }
        };
        let hour = HourlyActivity::hour_of(at);
        let mut conn = self.conn();
        let done = (|| {
            let tx = conn.transaction()?;
            if activity == Activity::Rejected {
                execute(
                    &tx,
                    sql,
                    params![tenant.as_str(), carrier.as_str(), stamp(at), detail],
                )?;
            } else {
                execute(
                    &tx,
                    sql,
                    params![tenant.as_str(), carrier.as_str(), stamp(at)],
                )?;
            }
            execute(
                &tx,
                count_sql,
                params![
                    tenant.as_str(),
                    carrier.as_str(),
                    hour.timestamp_millis(),
                    count
                ],
            )?;
            execute(
                &tx,
                "DELETE FROM carrier_hourly WHERE tenant_id = ?1 AND carrier = ?2 AND hour_ms < ?3",
                params![
                    tenant.as_str(),
                    carrier.as_str(),
                    (hour - HOURLY_KEPT).timestamp_millis()
                ],
            )?;
            tx.commit()
        })();
        done.map_err(unavailable("record activity"))?;
        drop(conn);
        self.sync_wal("record activity")
    }
}

impl QueueActions for SqliteStore {
    async fn retry_later(&self, receipt_handle: &str, after: Duration) -> Result<(), Unavailable> {
        let id: i64 = receipt_handle
            .parse()
            .map_err(|e| Unavailable::new(SERVICE, "retry later", e))?;
        let visible = Utc::now().timestamp_millis()
            + i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 4);
        self.submit("retry later", WriteKind::STATEMENT, move |conn| {
            execute(
                conn,
                "UPDATE queue SET visible_at_ms = ?1, leased = 0 WHERE id = ?2",
                params![visible, id],
            )
            .map(|_| ())
        })
        .await
    }

    async fn dead_letter(
        &self,
        body: &str,
        attributes: &[(String, String)],
        reason: &str,
    ) -> Result<(), Unavailable> {
        let attribute = |name: &str| {
            attributes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let (event_id, tenant_id) = (attribute("event_id"), attribute("tenant_id"));
        // The attempt it was given up at (`dispatch::settle`): the new row's receive count.
        let attempts = attribute("attempts").parse::<u32>().unwrap_or(0);
        let (body, reason, at) = (body.to_owned(), reason.to_owned(), Utc::now().to_rfc3339());
        self.submit("dead letter", WriteKind::STATEMENT, move |conn| {
            execute(conn,
                "INSERT INTO queue (event_id, tenant_id, body, visible_at_ms, state, dead_reason, enqueued_at, receive_count)
                 VALUES (?1, ?2, ?3, 0, 'dead', ?4, ?5, ?6)",
                params![event_id, tenant_id, body, reason, at, attempts],
            )
            .map(|_| ())
        })
        .await
    }
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl CircuitStore for SqliteStore {
    async fn open_circuit(&self, tenant: &TenantId) -> Result<Option<OpenCircuit>, Unavailable> {
        query_row(
            &self.read(),
            "SELECT opened_at_ms, failures, last_error, probe_at_ms FROM circuits WHERE tenant_id = ?1",
            params![tenant.as_str()],
            |row| {
                Ok(OpenCircuit {
                    opened_at: from_ms(row.get(0)?),
                    failures: row.get(1)?,
                    last_error: row.get(2)?,
                    probe_at: from_ms(row.get(3)?),
                })
            },
        )
        .optional()
        .map_err(unavailable("read circuit"))
    }

    async fn save_open_circuit(
        &self,
        tenant: &TenantId,
        circuit: &OpenCircuit,
    ) -> Result<(), Unavailable> {
        // The circuits' writes go with the dispatcher's others, in the writer's next group.
        let (tenant, circuit) = (tenant.to_string(), circuit.clone());
        self.submit("save circuit", WriteKind::STATEMENT, move |conn| {
            execute(
                conn,
                "INSERT OR REPLACE INTO circuits (tenant_id, opened_at_ms, failures, last_error, probe_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    tenant,
                    circuit.opened_at.timestamp_millis(),
                    circuit.failures,
                    circuit.last_error,
                    circuit.probe_at.timestamp_millis()
                ],
            )
            .map(|_| ())
        })
        .await
    }

    async fn claim_probe(
        &self,
        tenant: &TenantId,
        seen: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<bool, Unavailable> {
        let (tenant, seen, next) = (
            tenant.to_string(),
            seen.timestamp_millis(),
            next.timestamp_millis(),
        );
        let claimed = self
            .submit("claim probe", WriteKind::STATEMENT, move |conn| {
                execute(
                    conn,
                    "UPDATE circuits SET probe_at_ms = ?3 WHERE tenant_id = ?1 AND probe_at_ms = ?2",
                    params![tenant, seen, next],
                )
            })
            .await?;
        Ok(claimed == 1)
    }

    async fn close_circuit(&self, tenant: &TenantId) -> Result<(), Unavailable> {
        let tenant = tenant.to_string();
        self.submit("close circuit", WriteKind::STATEMENT, move |conn| {
            execute(
                conn,
                "DELETE FROM circuits WHERE tenant_id = ?1",
                params![tenant],
            )
            .map(|_| ())
        })
        .await
    }
}

impl PushConfigStore for SqliteStore {
    async fn push_config(&self, tenant: &TenantId) -> Result<Option<PushConfig>, Unavailable> {
        type Row = (String, String, String, Option<String>, i64, bool, String);
        let row: Option<Row> = query_row(&self.read(),
                "SELECT url, headers, statuses, signing_secret, timeout_ms, enabled, delivery FROM push_configs WHERE tenant_id = ?1",
                params![tenant.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
            )
            .optional()
            .map_err(unavailable("push config"))?;
        let Some((url, headers, statuses, secret, timeout_ms, enabled, delivery)) = row else {
            return Ok(None);
        };
        let headers: Vec<(String, String)> = serde_json::from_str(&headers).unwrap_or_default();
        let statuses: Vec<String> = serde_json::from_str(&statuses).unwrap_or_default();
        // Read as written: a rule made stricter since does not make the tenant unreadable.
        Ok(Some(PushConfig {
            url: PushUrl::stored(url),
            headers: PushHeaders::stored(
                headers
                    .into_iter()
                    .map(|(n, v)| (n, SecretValue::new(v)))
                    .collect(),
            ),
            statuses: statuses.iter().filter_map(|s| s.parse().ok()).collect(),
            signing_secret: secret.and_then(|s| SigningSecret::parse(&s).ok()),
            timeout: u64::try_from(timeout_ms).map_or(PushTimeout::DEFAULT, |ms| {
                PushTimeout::clamped(Duration::from_millis(ms))
            }),
            enabled,
            // A mode this build does not know (written by a newer one): every event, which
            // loses nothing.
            delivery: delivery.parse().unwrap_or_default(),
        }))
    }
}

/// A `shipments` row read with [`SHIPMENT_COLUMNS`].
fn shipment_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ShipmentState> {
    let status: Option<String> = row.get(2)?;
    let carrier: Option<String> = row.get(4)?;
    Ok(ShipmentState {
        latest_event_time: from_ms(row.get(0)?),
        latest_event_id: row.get::<_, Option<String>>(1)?.map(EventId::from_stored),
        last_status: status.and_then(|s| s.parse().ok()),
        terminal: row.get(3)?,
        carrier: carrier.and_then(|c| c.parse().ok()),
        awb: row.get(5)?,
        order_id: row.get(6)?,
        courier_id: row.get(7)?,
        last_received_at: row.get::<_, Option<i64>>(8)?.map(from_ms),
    })
}

impl ShipmentStates for SqliteStore {
    async fn shipment(
        &self,
        tenant: &TenantId,
        shipment_key: &str,
    ) -> Result<Option<ShipmentState>, Unavailable> {
        query_row(
            &self.read(),
            "SELECT latest_ms, latest_event_id, last_status, terminal, carrier, awb, order_id,
                    courier_id, last_received_ms
             FROM shipments WHERE tenant_id = ?1 AND shipment_key = ?2",
            params![tenant.as_str(), shipment_key],
            shipment_row,
        )
        .optional()
        .map_err(unavailable("shipment"))
    }
}

impl SqliteStore {
    /// Sets the tenant's pull accounts to exactly `accounts` (one per carrier).
    pub fn set_pull_accounts(
        &self,
        tenant: &TenantId,
        accounts: &[PullAccountRecord],
    ) -> Result<(), Unavailable> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(unavailable("pull accounts"))?;
        execute(
            &tx,
            "DELETE FROM pull_accounts WHERE tenant_id = ?1",
            params![tenant.as_str()],
        )
        .map_err(unavailable("pull accounts"))?;
        for account in accounts {
            execute(
                &tx,
                "INSERT OR REPLACE INTO pull_accounts (tenant_id, carrier, base_url, user, secret)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    tenant.as_str(),
                    account.carrier.as_str(),
                    account.base_url,
                    account.user,
                    account.secret.expose()
                ],
            )
            .map_err(unavailable("pull accounts"))?;
        }
        tx.commit().map_err(unavailable("pull accounts"))?;
        drop(conn);
        self.sync_wal("pull accounts")
    }

    /// The pull accounts of enabled tenants (of `tenant`, at `carrier`, when given).
    pub fn pull_accounts(
        &self,
        tenant: Option<&TenantId>,
        carrier: Option<Carrier>,
    ) -> Result<Vec<(TenantId, PullAccountRecord)>, Unavailable> {
        let conn = self.read();
        let mut statement = conn
            .prepare_cached(
                "SELECT p.tenant_id, p.carrier, p.base_url, p.user, p.secret
                 FROM pull_accounts p JOIN tenants t ON t.id = p.tenant_id
                 WHERE t.enabled = 1 AND (?1 IS NULL OR p.tenant_id = ?1)
                   AND (?2 IS NULL OR p.carrier = ?2)
                 ORDER BY p.tenant_id, p.carrier",
            )
            .map_err(unavailable("pull accounts"))?;
        let rows = statement
            .query_map(
                params![tenant.map(TenantId::as_str), carrier.map(Carrier::as_str)],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        PullAccountRecord {
                            carrier: Carrier::Clickpost,
                            base_url: row.get(2)?,
                            user: row.get(3)?,
                            secret: SecretValue::new(row.get::<_, String>(4)?),
                        },
                    ))
                },
            )
            .map_err(unavailable("pull accounts"))?;
        let mut accounts = Vec::new();
        for row in rows {
            let (tenant, carrier, mut record) = row.map_err(unavailable("pull accounts"))?;
            // A row this build cannot read (a carrier it does not know) is skipped.
            let (Ok(tenant), Ok(carrier)) = (TenantId::parse(&tenant), carrier.parse::<Carrier>())
            else {
                continue;
            };
            record.carrier = carrier;
            accounts.push((tenant, record));
        }
        Ok(accounts)
    }
}

impl PullAccountSource for SqliteStore {
    async fn pull_accounts(
        &self,
        tenant: Option<&TenantId>,
        carrier: Option<Carrier>,
    ) -> Result<Vec<(TenantId, PullAccountRecord)>, Unavailable> {
        SqliteStore::pull_accounts(self, tenant, carrier)
    }
}

impl ShipmentIndex for SqliteStore {
    async fn quiet_shipments(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        rules: &QuietRules,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<QuietShipment>, Unavailable> {
        // Every shipment that is not terminal and has been quiet at least the shortest
        // threshold; the status-dependent rule is applied to those (`reconcile::quietest`).
        let before = rules.heard_before_ms(now);
        let conn = self.read();
        let mut statement = conn
            .prepare_cached(
                "SELECT latest_ms, latest_event_id, last_status, terminal, carrier, awb, order_id,
                        courier_id, last_received_ms, shipment_key, last_pulled_ms
                 FROM shipments
                 WHERE tenant_id = ?1 AND carrier = ?2 AND terminal = 0
                   AND COALESCE(last_received_ms, latest_ms) <= ?3
                   AND COALESCE(last_pulled_ms, 0) <= ?3",
            )
            .map_err(unavailable("quiet shipments"))?;
        let rows = statement
            .query_map(params![tenant.as_str(), carrier.as_str(), before], |row| {
                Ok(QuietShipment {
                    state: shipment_row(row)?,
                    shipment_key: row.get(9)?,
                    last_pulled_at: row.get::<_, Option<i64>>(10)?.map(from_ms),
                })
            })
            .map_err(unavailable("quiet shipments"))?;
        let found = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable("quiet shipments"))?;
        Ok(quietest(found, rules, now, limit))
    }

    async fn mark_pulled(
        &self,
        tenant: &TenantId,
        shipment_keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), Unavailable> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(unavailable("mark pulled"))?;
        for key in shipment_keys {
            execute(
                &tx,
                "UPDATE shipments SET last_pulled_ms = ?3 WHERE tenant_id = ?1 AND shipment_key = ?2",
                params![tenant.as_str(), key, now.timestamp_millis()],
            )
            .map_err(unavailable("mark pulled"))?;
        }
        tx.commit().map_err(unavailable("mark pulled"))?;
        drop(conn);
        self.sync_wal("mark pulled")
    }
}

impl SqliteStore {
    /// Logs a delivery attempt in the writer's next group without waiting for its commit (a
    /// failure is logged): for `rms serve`'s dispatcher, which acts on its decision whatever the
    /// log says and acknowledges the message after, so the attempt is committed with or before
    /// the acknowledgement. A read right after may not see it yet.
    pub async fn record_attempt_detached(&self, attempt: &Attempt) -> Result<(), Unavailable> {
        let attempt = attempt.clone();
        self.submit_detached("record attempt", move |conn| {
            record_attempt_in(conn, &attempt)
        })
        .await
    }
}

/// The statements of [`DeliveryLog::record_attempt`]: the attempt, and for a delivery, the
/// marker that stops it being delivered again.
fn record_attempt_in(conn: &Connection, attempt: &Attempt) -> rusqlite::Result<()> {
    execute(conn,
        "INSERT INTO deliveries (event_id, tenant_id, awb, status, attempt, outcome, http_status, latency_ms, error, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            attempt.event_id.as_str(),
            attempt.tenant_id,
            attempt.awb,
            attempt.status.as_str(),
            attempt.attempt,
            attempt.outcome.as_str(),
            attempt.http_status,
            i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX),
            attempt.error,
            attempt.at.to_rfc3339(),
        ],
    )?;
    if attempt.outcome == AttemptOutcome::Delivered {
        execute(
            conn,
            "INSERT OR IGNORE INTO delivered (event_id, at) VALUES (?1, ?2)",
            params![attempt.event_id.as_str(), attempt.at.to_rfc3339()],
        )?;
    }
    Ok(())
}

impl DeliveryLog for SqliteStore {
    async fn record_attempt(&self, attempt: &Attempt) -> Result<(), Unavailable> {
        let attempt = attempt.clone();
        self.submit("record attempt", WriteKind::STATEMENTS, move |conn| {
            record_attempt_in(conn, &attempt)
        })
        .await
    }

    async fn was_delivered(&self, event_id: &EventId) -> Result<bool, Unavailable> {
        let found: Option<i64> = query_row(
            &self.read(),
            "SELECT 1 FROM delivered WHERE event_id = ?1",
            params![event_id.as_str()],
            |row| row.get(0),
        )
        .optional()
        .map_err(unavailable("was delivered"))?;
        Ok(found.is_some())
    }
}

/// Times are stored as RFC 3339 text in UTC, so that they sort as text.
fn parse_time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// The columns [`quarantine_row`] reads, in its order.
const QUARANTINE_COLUMNS: &str = "tenant_id, digest, carrier, reason, first_received_at, \
     last_received_at, times, last_replay_at, last_replay_outcome";

fn quarantine_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<QuarantineView>> {
    let carrier: String = row.get(2)?;
    let first: String = row.get(4)?;
    let last: String = row.get(5)?;
    let replay_at: Option<String> = row.get(7)?;
    let replay_outcome: Option<String> = row.get(8)?;
    Ok(carrier
        .parse::<Carrier>()
        .ok()
        .map(|carrier| QuarantineView {
            tenant_id: row.get(0).unwrap_or_default(),
            id: row.get(1).unwrap_or_default(),
            carrier,
            reason: row.get(3).unwrap_or_default(),
            first_received_at: parse_time(&first),
            last_received_at: parse_time(&last),
            times: row.get(6).unwrap_or(1),
            last_replay: replay_at
                .zip(replay_outcome)
                .map(|(at, outcome)| ReplayNote {
                    at: parse_time(&at),
                    outcome,
                }),
        }))
}

/// The columns [`tenant_row`] reads, in its order.
const TENANT_COLUMNS: &str = "id, enabled, include_source, created_at, file_managed";

fn tenant_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Tenant>> {
    let id: String = row.get(0)?;
    let created_at: String = row.get(3)?;
    Ok(TenantId::parse(&id).ok().map(|id| Tenant {
        id,
        enabled: row.get(1).unwrap_or(true),
        include_source: row.get(2).unwrap_or(true),
        created_at: parse_time(&created_at),
        file_managed: row.get(4).unwrap_or(false),
    }))
}

impl AdminStore for SqliteStore {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<bool, Unavailable> {
        let created = execute(
            &self.conn(),
            "INSERT INTO tenants (id, include_source, enabled, created_at, file_managed)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO NOTHING",
            params![
                tenant.id.as_str(),
                tenant.include_source,
                tenant.enabled,
                tenant.created_at.to_rfc3339(),
                tenant.file_managed
            ],
        )
        .map_err(unavailable("create tenant"))?;
        self.sync_wal("create tenant")?;
        Ok(created == 1)
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, Unavailable> {
        let conn = self.read();
        let mut statement = conn
            .prepare_cached(&format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id"))
            .map_err(unavailable("list tenants"))?;
        let rows = statement
            .query_map([], tenant_row)
            .map_err(unavailable("list tenants"))?;
        let tenants = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable("list tenants"))?;
        Ok(tenants.into_iter().flatten().collect())
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<Tenant>, Unavailable> {
        let found = query_row(
            &self.read(),
            &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?1"),
            params![id.as_str()],
            tenant_row,
        )
        .optional()
        .map_err(unavailable("get tenant"))?;
        Ok(found.flatten())
    }

    async fn update_tenant(&self, tenant: &Tenant) -> Result<(), Unavailable> {
        execute(
            &self.conn(),
            "UPDATE tenants SET enabled = ?2, include_source = ?3 WHERE id = ?1",
            params![tenant.id.as_str(), tenant.enabled, tenant.include_source],
        )
        .map_err(unavailable("update tenant"))?;
        self.sync_wal("update tenant")?;
        Ok(())
    }

    async fn credentials(&self, tenant: &TenantId) -> Result<Vec<StoredCredential>, Unavailable> {
        tenant_credentials(&self.read(), tenant).map_err(unavailable("list credentials"))
    }

    async fn credential_owner(
        &self,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> Result<Option<TenantId>, Unavailable> {
        let owner = credential_owner(&self.read(), carrier, digest)
            .map_err(unavailable("find credential"))?;
        Ok(owner.and_then(|t| TenantId::parse(&t).ok()))
    }

    async fn add_credential(
        &self,
        tenant: &TenantId,
        credential: &StoredCredential,
    ) -> Result<bool, Unavailable> {
        // Never `DO UPDATE`: a key registered for a tenant stays that tenant's.
        let added = execute(
            &self.conn(),
            "INSERT INTO credentials (carrier, digest, tenant_id, added_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (carrier, digest) DO NOTHING",
            params![
                credential.carrier.as_str(),
                credential.digest.to_hex(),
                tenant.as_str(),
                credential.added_at.to_rfc3339()
            ],
        )
        .map_err(unavailable("add credential"))?;
        self.sync_wal("add credential")?;
        Ok(added == 1)
    }

    async fn remove_credential(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> Result<(), Unavailable> {
        execute(
            &self.conn(),
            "DELETE FROM credentials WHERE carrier = ?1 AND digest = ?2 AND tenant_id = ?3",
            params![carrier.as_str(), digest.to_hex(), tenant.as_str()],
        )
        .map_err(unavailable("remove credential"))?;
        self.sync_wal("remove credential")?;
        Ok(())
    }

    async fn push_config(&self, tenant: &TenantId) -> Result<Option<PushConfig>, Unavailable> {
        PushConfigStore::push_config(self, tenant).await
    }

    async fn put_push_config(
        &self,
        tenant: &TenantId,
        config: &PushConfig,
    ) -> Result<(), Unavailable> {
        SqliteStore::put_push_config(self, tenant, config)
    }

    async fn pull_accounts(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<PullAccountRecord>, Unavailable> {
        let conn = self.read();
        let mut statement = conn
            .prepare_cached(
                "SELECT carrier, base_url, user, secret FROM pull_accounts
                 WHERE tenant_id = ?1 ORDER BY carrier",
            )
            .map_err(unavailable("pull accounts"))?;
        let rows = statement
            .query_map(params![tenant.as_str()], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(unavailable("pull accounts"))?;
        let mut accounts = Vec::new();
        for row in rows {
            let (carrier, base_url, user, secret) = row.map_err(unavailable("pull accounts"))?;
            // A row this build cannot read (a carrier it does not know) is skipped.
            let Ok(carrier) = carrier.parse::<Carrier>() else {
                continue;
            };
            accounts.push(PullAccountRecord {
                carrier,
                base_url,
                user,
                secret: SecretValue::new(secret),
            });
        }
        Ok(accounts)
    }

    async fn put_pull_account(
        &self,
        tenant: &TenantId,
        account: &PullAccountRecord,
    ) -> Result<(), Unavailable> {
        execute(
            &self.conn(),
            "INSERT OR REPLACE INTO pull_accounts (tenant_id, carrier, base_url, user, secret)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                tenant.as_str(),
                account.carrier.as_str(),
                account.base_url,
                account.user,
                account.secret.expose()
            ],
        )
        .map_err(unavailable("put pull account"))?;
        self.sync_wal("put pull account")?;
        Ok(())
    }

    async fn remove_pull_account(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
    ) -> Result<bool, Unavailable> {
        let removed = execute(
            &self.conn(),
            "DELETE FROM pull_accounts WHERE tenant_id = ?1 AND carrier = ?2",
            params![tenant.as_str(), carrier.as_str()],
        )
        .map_err(unavailable("remove pull account"))?;
        self.sync_wal("remove pull account")?;
        Ok(removed > 0)
    }

    async fn attempts(
        &self,
        tenant: &TenantId,
        selection: &Selection,
    ) -> Result<Vec<Attempt>, Unavailable> {
        match selection {
            Selection::Awb(awb) => SqliteStore::attempts(self, tenant.as_str(), awb),
            Selection::Between { from, to } => self.attempts_where(
                "tenant_id = ?1 AND at >= ?2 AND at <= ?3",
                params![tenant.as_str(), from.to_rfc3339(), to.to_rfc3339()],
            ),
        }
    }

    async fn dead_letters(
        &self,
        tenant: Option<&TenantId>,
        limit: usize,
    ) -> Result<Vec<DeadLetterView>, Unavailable> {
        // The tenant filter and the limit are the database's work: a DLQ can be large.
        let conn = self.read();
        let mut statement = conn
            .prepare_cached(
                "SELECT id, event_id, tenant_id, COALESCE(dead_reason, ''), receive_count FROM queue
                 WHERE state = 'dead' AND (?1 IS NULL OR tenant_id = ?1) ORDER BY id LIMIT ?2",
            )
            .map_err(unavailable("list dead letters"))?;
        let rows = statement
            .query_map(
                params![
                    tenant.map(TenantId::as_str),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |row| {
                    Ok(DeadLetterView {
                        id: row.get::<_, i64>(0)?.to_string(),
                        event_id: row.get(1)?,
                        tenant_id: row.get(2)?,
                        reason: row.get(3)?,
                        attempts: row.get(4)?,
                    })
                },
            )
            .map_err(unavailable("list dead letters"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(unavailable("list dead letters"))
    }

    async fn redrive(&self, ids: Option<&[String]>) -> Result<u64, Unavailable> {
        // An id that is not a number names no dead letter here.
        let ids: Option<Vec<i64>> =
            ids.map(|ids| ids.iter().filter_map(|id| id.parse().ok()).collect());
        let moved = SqliteStore::redrive(self, ids.as_deref(), Utc::now())?;
        Ok(u64::try_from(moved).unwrap_or(u64::MAX))
    }

    async fn archived_events(&self, ids: &[EventId]) -> Result<Vec<CanonicalEvent>, Unavailable> {
        let conn = self.read();
        let mut events = Vec::new();
        for id in ids {
            let body: Option<Option<String>> = query_row(
                &conn,
                "SELECT body FROM claims WHERE event_id = ?1",
                params![id.as_str()],
                |row| row.get(0),
            )
            .optional()
            .map_err(unavailable("archived events"))?;
            if let Some(event) = body.flatten().and_then(|b| serde_json::from_str(&b).ok()) {
                events.push(event);
            }
        }
        Ok(events)
    }

    async fn enqueue_replay(&self, event: &CanonicalEvent) -> Result<(), Unavailable> {
        let body =
            serde_json::to_string(event).map_err(|e| Unavailable::new(SERVICE, "replay", e))?;
        let now = Utc::now();
        execute(&self.conn(),
            "INSERT INTO queue (event_id, tenant_id, body, visible_at_ms, enqueued_at, replay) VALUES (?1, ?2, ?3, ?4, ?5, 1)",
            params![event.event_id.as_str(), event.tenant_id, body, now.timestamp_millis(), now.to_rfc3339()],
        )
        .map_err(unavailable("replay"))?;
        self.sync_wal("replay")?;
        self.queued.notify_one();
        Ok(())
    }

    async fn quarantined(
        &self,
        filter: &QuarantineFilter,
    ) -> Result<Vec<QuarantineView>, Unavailable> {
        let conn = self.read();
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT {QUARANTINE_COLUMNS} FROM quarantined
                 WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR carrier = ?2)
                   AND (?3 IS NULL OR instr(lower(reason), lower(?3)) > 0)
                   AND (?4 IS NULL OR last_received_at >= ?4)
                   AND (?5 IS NULL OR first_received_at <= ?5)
                   AND last_received_at >= ?7
                 ORDER BY first_received_at, tenant_id, digest LIMIT ?6"
            ))
            .map_err(unavailable("list quarantine"))?;
        let rows = statement
            .query_map(
                params![
                    filter.tenant.as_ref().map(TenantId::as_str),
                    filter.carrier.map(Carrier::as_str),
                    filter.reason,
                    filter.from.map(stamp),
                    filter.to.map(stamp),
                    i64::try_from(filter.limit).unwrap_or(i64::MAX),
                    stamp(Utc::now() - QUARANTINE_KEPT),
                ],
                quarantine_row,
            )
            .map_err(unavailable("list quarantine"))?;
        let found = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable("list quarantine"))?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn quarantined_body(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<QuarantinedBody>, Unavailable> {
        let found = query_row(
            &self.read(),
            &format!(
                "SELECT {QUARANTINE_COLUMNS}, body FROM quarantined
                 WHERE tenant_id = ?1 AND digest = ?2 AND last_received_at >= ?3"
            ),
            params![tenant.as_str(), id, stamp(Utc::now() - QUARANTINE_KEPT)],
            |row| {
                let body: Vec<u8> = row.get(9)?;
                Ok(quarantine_row(row)?.map(|view| QuarantinedBody { view, body }))
            },
        )
        .optional()
        .map_err(unavailable("get quarantined body"))?;
        Ok(found.flatten())
    }

    async fn note_replay(
        &self,
        tenant: &TenantId,
        id: &str,
        outcome: ReplayOutcome,
        at: DateTime<Utc>,
    ) -> Result<(), Unavailable> {
        execute(
            &self.conn(),
            "UPDATE quarantined SET last_replay_at = ?3, last_replay_outcome = ?4
             WHERE tenant_id = ?1 AND digest = ?2",
            params![tenant.as_str(), id, stamp(at), outcome.as_str()],
        )
        .map_err(unavailable("note replay"))?;
        self.sync_wal("note replay")?;
        Ok(())
    }

    async fn stale_shipments(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        rules: &QuietRules,
        now: DateTime<Utc>,
    ) -> Result<Vec<QuietShipment>, Unavailable> {
        let before = rules.heard_before_ms(now);
        let conn = self.read();
        let mut statement = conn
            .prepare_cached(
                "SELECT latest_ms, latest_event_id, last_status, terminal, carrier, awb, order_id,
                        courier_id, last_received_ms, shipment_key, last_pulled_ms
                 FROM shipments
                 WHERE terminal = 0 AND tenant_id = ?1 AND carrier = ?2
                   AND COALESCE(last_received_ms, latest_ms) <= ?3
                 ORDER BY COALESCE(last_received_ms, latest_ms)",
            )
            .map_err(unavailable("stale shipments"))?;
        let rows = statement
            .query_map(params![tenant.as_str(), carrier.as_str(), before], |row| {
                Ok(QuietShipment {
                    state: shipment_row(row)?,
                    shipment_key: row.get(9)?,
                    last_pulled_at: row.get::<_, Option<i64>>(10)?.map(from_ms),
                })
            })
            .map_err(unavailable("stale shipments"))?;
        let mut stale = Vec::new();
        for shipment in rows {
            let shipment = shipment.map_err(unavailable("stale shipments"))?;
            // Pulls do not count here: only news from the carrier does.
            if rules.is_quiet(&shipment.state, None, now) {
                stale.push(shipment);
            }
        }
        Ok(stale)
    }

    async fn carrier_activity(
        &self,
        tenant: &TenantId,
        since: DateTime<Utc>,
    ) -> Result<Vec<CarrierActivity>, Unavailable> {
        let conn = self.read();
        let mut statement = conn
            .prepare_cached(
                "SELECT carrier, last_test_at, last_accepted_at, last_rejected_at, last_rejected_reason
                 FROM carrier_activity WHERE tenant_id = ?1",
            )
            .map_err(unavailable("carrier activity"))?;
        let time = |text: Option<String>| text.as_deref().map(parse_time);
        let rows = statement
            .query_map(params![tenant.as_str()], |row| {
                Ok(CarrierActivity {
                    carrier: row.get(0)?,
                    last_test_at: time(row.get(1)?),
                    last_accepted_at: time(row.get(2)?),
                    last_rejected_at: time(row.get(3)?),
                    last_rejected_reason: row.get(4)?,
                    hourly: Vec::new(),
                })
            })
            .map_err(unavailable("carrier activity"))?;
        let mut seen = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable("carrier activity"))?;
        let mut statement = conn
            .prepare_cached(
                "SELECT carrier, hour_ms, tests, accepted, rejected FROM carrier_hourly
                 WHERE tenant_id = ?1 AND hour_ms >= ?2 ORDER BY carrier, hour_ms",
            )
            .map_err(unavailable("carrier activity"))?;
        let hours = statement
            .query_map(
                params![
                    tenant.as_str(),
                    HourlyActivity::hour_of(since).timestamp_millis()
                ],
                |row| {
                    let carrier: String = row.get(0)?;
                    let hour = DateTime::from_timestamp_millis(row.get(1)?).unwrap_or_default();
                    Ok((
                        carrier,
                        HourlyActivity {
                            hour,
                            tests: row.get(2)?,
                            accepted: row.get(3)?,
                            rejected: row.get(4)?,
                        },
                    ))
                },
            )
            .map_err(unavailable("carrier activity"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable("carrier activity"))?;
        for (carrier, hour) in hours {
            if let Some(activity) = seen.iter_mut().find(|a| a.carrier == carrier) {
                activity.hourly.push(hour);
            }
        }
        Ok(Carrier::ALL
            .into_iter()
            .map(|carrier| {
                seen.iter()
                    .find(|a| a.carrier == carrier.as_str())
                    .cloned()
                    .unwrap_or_else(|| CarrierActivity {
                        carrier: carrier.as_str().to_owned(),
                        ..CarrierActivity::default()
                    })
            })
            .collect())
    }

    async fn queue_depth(&self) -> Result<QueueDepth, Unavailable> {
        // `ready` holds the messages due later and those leased to a delivery too.
        let (waiting, dead_letters) = SqliteStore::queue_depth(self)?;
        Ok(QueueDepth {
            waiting,
            dead_letters,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::carriers::{normalize, NormalizeContext};
    use sha2::Digest;

    fn scan(awb: &str, time: &str) -> CanonicalEvent {
        scan_for("acme", awb, time)
    }

    fn scan_for(tenant: &str, awb: &str, time: &str) -> CanonicalEvent {
        let body =
            format!(r#"{{"waybill":"{awb}","clickpost_status_code":8,"timestamp":"{time}"}}"#);
        let ctx = NormalizeContext::new(
            tenant,
            Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
        );
        normalize(Carrier::Clickpost, body.as_bytes(), &ctx)
            .unwrap()
            .remove(0)
    }

    #[tokio::test]
    async fn a_quiet_shipment_is_pulled_then_left_alone_but_stays_listed_as_stale() {
        let store = SqliteStore::in_memory().unwrap();
        let now = Utc::now();
        let body = r#"{"waybill":"Q1","cp_id":9,"clickpost_status_code":5,"timestamp":"2026-11-20T09:00:00Z"}"#;
        let ctx = NormalizeContext::new("acme", now - chrono::TimeDelta::hours(7));
        let mut event = normalize(Carrier::Clickpost, body.as_bytes(), &ctx)
            .unwrap()
            .remove(0);
        store
            .accept(&mut event, now, Duration::from_secs(60))
            .await
            .unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let rules = QuietRules::default();
        let quiet = store
            .quiet_shipments(&acme, Carrier::Clickpost, &rules, now, 10)
            .await
            .unwrap();
        assert_eq!(quiet.len(), 1, "in transit, 7 h without news");
        assert_eq!(quiet[0].state.courier_id.as_deref(), Some("9"));
        store
            .mark_pulled(&acme, &[quiet[0].shipment_key.clone()], now)
            .await
            .unwrap();
        let again = store
            .quiet_shipments(&acme, Carrier::Clickpost, &rules, now, 10)
            .await
            .unwrap();
        assert!(again.is_empty(), "just asked: not again before 6 h");
        let stale = AdminStore::stale_shipments(&store, &acme, Carrier::Clickpost, &rules, now)
            .await
            .unwrap();
        assert_eq!(stale.len(), 1, "still without news");
        assert_eq!(
            stale[0].last_pulled_at,
            Some(from_ms(now.timestamp_millis()))
        );
    }

    fn queued(store: &SqliteStore) -> u64 {
        store.queue_depth().unwrap().0
    }

    /// The event as the code before the v2 identity accepted it: under its v1 id.
    fn as_claimed_by_v1(event: &CanonicalEvent) -> CanonicalEvent {
        let mut old = event.clone();
        old.event_id = event.legacy_ids[0].clone();
        old.legacy_ids = Default::default();
        old
    }

    #[tokio::test]
    async fn a_scan_accepted_under_its_v1_id_is_a_duplicate_and_stays_one() {
        let store = SqliteStore::in_memory().unwrap();
        let hold = Duration::from_secs(60);
        let mut event = scan("AWB-V1", "2026-11-22T09:00:00Z");
        let mut before = as_claimed_by_v1(&event);
        assert_eq!(
            store.accept(&mut before, Utc::now(), hold).await.unwrap(),
            Claim::Claimed
        );
        assert_eq!(queued(&store), 1);
        // The same scan again, under v2: not queued a second time.
        for _ in 0..2 {
            assert_eq!(
                store.accept(&mut event, Utc::now(), hold).await.unwrap(),
                Claim::AlreadyQueued
            );
        }
        assert_eq!(queued(&store), 1);
        // Another scan with no v1 claim is accepted as usual.
        let mut other = scan("AWB-V1", "2026-11-22T10:00:00Z");
        assert_eq!(
            store.accept(&mut other, Utc::now(), hold).await.unwrap(),
            Claim::Claimed
        );
        assert_eq!(queued(&store), 2);
    }

    #[tokio::test]
    async fn the_delivery_mode_is_stored_with_the_push_config() {
        let store = SqliteStore::in_memory().unwrap();
        let acme = tenant_id("acme");
        let mut config = push_to("http://127.0.0.1:9/hook");
        config.delivery = crate::push::Delivery::Latest;
        store.put_push_config(&acme, &config).unwrap();
        let read = PushConfigStore::push_config(&store, &acme)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.delivery, crate::push::Delivery::Latest);
        config.delivery = crate::push::Delivery::Every;
        store.put_push_config(&acme, &config).unwrap();
        let read = PushConfigStore::push_config(&store, &acme)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.delivery, crate::push::Delivery::Every);
    }

    #[test]
    fn a_database_made_before_shipment_state_and_delivery_modes_reads_with_defaults() {
        let dir = std::env::temp_dir().join(format!("rms-shipment-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.db");
        let _ = std::fs::remove_file(&path);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE shipments (tenant_id TEXT NOT NULL, shipment_key TEXT NOT NULL,
                     latest_ms INTEGER NOT NULL, PRIMARY KEY (tenant_id, shipment_key));
                 INSERT INTO shipments VALUES ('acme', 'AWB1', 1795341600000);
                 CREATE TABLE push_configs (tenant_id TEXT PRIMARY KEY, url TEXT NOT NULL,
                     headers TEXT NOT NULL, statuses TEXT NOT NULL, signing_secret TEXT,
                     timeout_ms INTEGER NOT NULL, enabled INTEGER NOT NULL);
                 INSERT INTO push_configs VALUES ('acme', 'https://client.example/hook', '[]', '[]',
                     NULL, 10000, 1);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let acme = tenant_id("acme");
        let state = runtime
            .block_on(store.shipment(&acme, "AWB1"))
            .unwrap()
            .unwrap();
        assert_eq!(
            state,
            ShipmentState {
                latest_event_id: None,
                latest_event_time: Utc.timestamp_millis_opt(1_795_341_600_000).unwrap(),
                last_status: None,
                terminal: false,
                carrier: None,
                awb: None,
                order_id: None,
                courier_id: None,
                last_received_at: None,
            }
        );
        let config = runtime
            .block_on(PushConfigStore::push_config(&store, &acme))
            .unwrap()
            .unwrap();
        assert_eq!(config.delivery, crate::push::Delivery::Every);
        // The old row is the newest-wins baseline still: an older scan is stale against it.
        let mut older = scan("AWB1", "2026-11-22T07:00:00Z");
        runtime
            .block_on(store.accept(&mut older, Utc::now(), Duration::from_secs(60)))
            .unwrap();
        assert!(older.is_stale);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_tenant_never_holds_more_than_its_share_of_a_lease() {
        let store = SqliteStore::in_memory().unwrap();
        let hold = Duration::from_secs(60);
        // Tenant acme's 20 messages are due before globex's 3.
        for i in 0..20 {
            let mut e = scan(&format!("A{i}"), "2026-11-22T09:00:00Z");
            store.accept(&mut e, Utc::now(), hold).await.unwrap();
        }
        for i in 0..3 {
            let mut e = scan_for("globex", &format!("G{i}"), "2026-11-22T09:00:00Z");
            store.accept(&mut e, Utc::now(), hold).await.unwrap();
        }
        let tenants = |leased: &[Leased]| {
            let mut counts = HashMap::<String, usize>::new();
            for m in leased {
                *counts.entry(m.tenant_id.clone()).or_default() += 1;
            }
            counts
        };
        let first = store
            .lease(10, 4, &HashMap::new(), hold, 10, Utc::now())
            .await
            .unwrap();
        assert_eq!(
            tenants(&first),
            HashMap::from([("acme".to_owned(), 4), ("globex".to_owned(), 3)])
        );
        // acme already has 3 in flight: one more, and nothing else is due.
        let in_flight = HashMap::from([("acme".to_owned(), 3)]);
        let second = store
            .lease(10, 4, &in_flight, hold, 10, Utc::now())
            .await
            .unwrap();
        assert_eq!(tenants(&second), HashMap::from([("acme".to_owned(), 1)]));
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// A time `hours` before now: what the quarantine's readers show depends on the clock.
    fn hours_ago(hours: i64) -> DateTime<Utc> {
        Utc::now() - chrono::Duration::hours(hours)
    }

    fn rejected<'a>(
        tenant: &'a TenantId,
        body: &'a [u8],
        reason: &'a str,
        when: &str,
    ) -> Quarantined<'a> {
        rejected_at(tenant, body, reason, at(when))
    }

    fn rejected_at<'a>(
        tenant: &'a TenantId,
        body: &'a [u8],
        reason: &'a str,
        received_at: DateTime<Utc>,
    ) -> Quarantined<'a> {
        Quarantined {
            tenant_id: tenant,
            carrier: Carrier::Shipway,
            body_digest: hex::encode(sha2::Sha256::digest(body)),
            body,
            reason,
            received_at,
        }
    }

    #[tokio::test]
    async fn a_repeated_body_is_kept_once_and_counted() {
        let store = SqliteStore::in_memory().unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let body = br#"{"awb":"1"}"#;
        store
            .quarantine(&rejected(&acme, body, "no status", "2026-11-27T10:00:00Z"))
            .await
            .unwrap();
        store
            .quarantine(&rejected(&acme, body, "bad status", "2026-11-27T11:00:00Z"))
            .await
            .unwrap();
        let row: (i64, String, String, String) = query_row(
            &store.conn(),
            "SELECT times, reason, first_received_at, last_received_at FROM quarantined",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
        assert_eq!(row.0, 2);
        assert_eq!(row.1, "bad status");
        assert_eq!(parse_time(&row.2), at("2026-11-27T10:00:00Z"));
        assert_eq!(parse_time(&row.3), at("2026-11-27T11:00:00Z"));
    }

    #[tokio::test]
    async fn the_same_body_from_two_tenants_is_kept_for_each() {
        let store = SqliteStore::in_memory().unwrap();
        let (acme, globex) = (
            TenantId::parse("acme").unwrap(),
            TenantId::parse("globex").unwrap(),
        );
        let body = br#"{"awb":"1"}"#;
        for tenant in [&acme, &globex] {
            store
                .quarantine(&rejected(tenant, body, "no status", "2026-11-27T10:00:00Z"))
                .await
                .unwrap();
        }
        let rows: i64 = query_row(&store.conn(), "SELECT COUNT(*) FROM quarantined", [], |r| {
            r.get(0)
        })
        .unwrap();
        assert_eq!(rows, 2);
    }

    #[tokio::test]
    async fn an_older_activity_report_does_not_replace_a_newer_one() {
        let store = SqliteStore::in_memory().unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let record = |activity, when: &'static str, detail: Option<&'static str>| {
            let (store, acme) = (&store, &acme);
            async move {
                store
                    .record_activity(acme, Carrier::Clickpost, activity, at(when), detail, 1)
                    .await
                    .unwrap()
            }
        };
        record(Activity::Rejected, "2026-11-27T12:00:00Z", Some("newer")).await;
        record(Activity::Rejected, "2026-11-27T11:00:00Z", Some("older")).await;
        record(Activity::Accepted, "2026-11-27T10:00:00Z", None).await;
        record(Activity::Accepted, "2026-11-27T10:30:00.5Z", None).await;
        let row: (Option<String>, Option<String>, Option<String>, Option<String>) = query_row(
            &store.conn(),
            "SELECT last_test_at, last_accepted_at, last_rejected_at, last_rejected_reason FROM carrier_activity",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
        assert_eq!(row.0, None);
        assert_eq!(
            row.1.as_deref().map(parse_time),
            Some(at("2026-11-27T10:30:00.5Z"))
        );
        assert_eq!(
            row.2.as_deref().map(parse_time),
            Some(at("2026-11-27T12:00:00Z"))
        );
        assert_eq!(row.3.as_deref(), Some("newer"));
    }

    #[test]
    fn a_database_with_the_first_quarantine_table_keeps_its_rows() {
        let dir = std::env::temp_dir().join(format!("rms-quarantine-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.db");
        let _ = std::fs::remove_file(&path);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE quarantine (digest TEXT PRIMARY KEY, tenant_id TEXT NOT NULL,
                     carrier TEXT NOT NULL, body BLOB NOT NULL, reason TEXT NOT NULL, received_at TEXT NOT NULL);
                 INSERT INTO quarantine VALUES ('ab12', 'acme', 'shipway', x'7b7d', 'no status',
                     '2026-11-20T08:00:00.25+00:00');",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let row: (String, i64, String, String) = query_row(
            &store.conn(),
            "SELECT tenant_id, times, first_received_at, last_received_at FROM quarantined WHERE digest = 'ab12'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
        assert_eq!(row.0, "acme");
        assert_eq!(row.1, 1);
        assert_eq!(row.2, "2026-11-20T08:00:00.250Z");
        assert_eq!(row.3, row.2);
        drop(store);
        // Opening again finds nothing left to migrate.
        SqliteStore::open(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn filter() -> QuarantineFilter {
        QuarantineFilter {
            tenant: None,
            carrier: None,
            reason: None,
            from: None,
            to: None,
            limit: 100,
        }
    }

    #[tokio::test]
    async fn the_quarantine_is_listed_oldest_first_and_filtered() {
        let store = SqliteStore::in_memory().unwrap();
        let (acme, globex) = (
            TenantId::parse("acme").unwrap(),
            TenantId::parse("globex").unwrap(),
        );
        let mut clickpost = rejected_at(&acme, b"c", "waybill: missing", hours_ago(3));
        clickpost.carrier = Carrier::Clickpost;
        for item in [
            rejected_at(&acme, b"a", "status: unknown DELIVERD", hours_ago(2)),
            rejected_at(&globex, b"b", "Status: unknown", hours_ago(1)),
            clickpost,
        ] {
            store.quarantine(&item).await.unwrap();
        }
        let ids = |views: Vec<QuarantineView>| -> Vec<String> {
            views
                .into_iter()
                .map(|v| format!("{}/{}", v.tenant_id, v.carrier))
                .collect()
        };
        let all = AdminStore::quarantined(&store, &filter()).await.unwrap();
        assert_eq!(
            ids(all),
            ["acme/clickpost", "acme/shipway", "globex/shipway"]
        );
        let cases = [
            (
                QuarantineFilter {
                    tenant: Some(acme.clone()),
                    carrier: Some(Carrier::Shipway),
                    ..filter()
                },
                vec!["acme/shipway"],
            ),
            (
                QuarantineFilter {
                    reason: Some("STATUS: unknown".into()),
                    ..filter()
                },
                vec!["acme/shipway", "globex/shipway"],
            ),
            (
                QuarantineFilter {
                    from: Some(hours_ago(2) - chrono::Duration::minutes(1)),
                    to: Some(hours_ago(2) + chrono::Duration::minutes(30)),
                    ..filter()
                },
                vec!["acme/shipway"],
            ),
            (
                QuarantineFilter {
                    limit: 1,
                    ..filter()
                },
                vec!["acme/clickpost"],
            ),
        ];
        for (filter, expected) in cases {
            assert_eq!(
                ids(AdminStore::quarantined(&store, &filter).await.unwrap()),
                expected,
                "{filter:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_replay_is_noted_on_the_entry_which_is_kept() {
        let store = SqliteStore::in_memory().unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let item = rejected_at(&acme, b"{\"awb\":1}", "no status", hours_ago(1));
        store.quarantine(&item).await.unwrap();
        let id = item.body_digest.clone();
        store
            .note_replay(
                &acme,
                &id,
                ReplayOutcome::Accepted,
                at("2026-11-28T08:00:00Z"),
            )
            .await
            .unwrap();
        let found = store.quarantined_body(&acme, &id).await.unwrap().unwrap();
        assert_eq!(found.body, b"{\"awb\":1}");
        assert_eq!(found.view.times, 1);
        assert_eq!(
            found.view.last_replay,
            Some(ReplayNote {
                at: at("2026-11-28T08:00:00Z"),
                outcome: "accepted".into()
            })
        );
        let other = TenantId::parse("globex").unwrap();
        assert_eq!(store.quarantined_body(&other, &id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_body_past_its_fourteen_days_is_hidden_then_deleted() {
        let store = SqliteStore::in_memory().unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let old = rejected_at(&acme, b"old", "no status", hours_ago(15 * 24));
        store.quarantine(&old).await.unwrap();
        assert!(AdminStore::quarantined(&store, &filter())
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store
                .quarantined_body(&acme, &old.body_digest)
                .await
                .unwrap(),
            None
        );
        let count = |store: &SqliteStore| -> i64 {
            query_row(&store.conn(), "SELECT COUNT(*) FROM quarantined", [], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(count(&store), 1, "hidden, not yet deleted");
        let new = rejected_at(&acme, b"new", "no status", hours_ago(0));
        store.quarantine(&new).await.unwrap();
        assert_eq!(count(&store), 1, "the next write deletes it");
        assert_eq!(
            AdminStore::quarantined(&store, &filter()).await.unwrap()[0].id,
            new.body_digest
        );
    }

    #[tokio::test]
    async fn the_carrier_status_view_reads_back_what_was_recorded() {
        let store = SqliteStore::in_memory().unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let record = |activity, when: &'static str, detail: Option<&'static str>, count| {
            let (store, acme) = (&store, &acme);
            async move {
                store
                    .record_activity(acme, Carrier::Shiprocket, activity, at(when), detail, count)
                    .await
                    .unwrap()
            }
        };
        record(Activity::PanelTest, "2026-11-27T09:00:00Z", None, 1).await;
        record(
            Activity::Rejected,
            "2026-11-27T09:05:00Z",
            Some("no awb"),
            1,
        )
        .await;
        record(Activity::Accepted, "2026-11-27T07:59:00Z", None, 4).await;
        record(Activity::Accepted, "2026-11-27T09:10:00Z", None, 2).await;
        record(Activity::Accepted, "2026-11-27T09:58:00Z", None, 3).await;
        record(Activity::Accepted, "2026-11-27T10:01:00Z", None, 1).await;
        let since = at("2026-11-27T08:30:00Z");
        let view = AdminStore::carrier_activity(&store, &acme, since)
            .await
            .unwrap();
        assert_eq!(view.len(), 3);
        let hour = |h: &str, tests, accepted, rejected| HourlyActivity {
            hour: at(h),
            tests,
            accepted,
            rejected,
        };
        assert_eq!(
            view[1],
            CarrierActivity {
                carrier: "shiprocket".into(),
                last_test_at: Some(at("2026-11-27T09:00:00Z")),
                last_accepted_at: Some(at("2026-11-27T10:01:00Z")),
                last_rejected_at: Some(at("2026-11-27T09:05:00Z")),
                last_rejected_reason: Some("no awb".into()),
                // 07:00 is before the hour of `since`; 08:00 had nothing.
                hourly: vec![
                    hour("2026-11-27T09:00:00Z", 1, 5, 1),
                    hour("2026-11-27T10:00:00Z", 0, 1, 0),
                ],
            }
        );
        assert_eq!(view[0].last_test_at, None);
        assert_eq!(view[0].hourly, []);
    }

    #[tokio::test]
    async fn hourly_counts_older_than_their_keeping_time_are_dropped() {
        let store = SqliteStore::in_memory().unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let long_ago = at("2026-11-01T09:00:00Z");
        for when in [
            long_ago,
            long_ago + HOURLY_KEPT + chrono::TimeDelta::hours(1),
        ] {
            store
                .record_activity(&acme, Carrier::Clickpost, Activity::Accepted, when, None, 1)
                .await
                .unwrap();
        }
        let view = AdminStore::carrier_activity(&store, &acme, long_ago)
            .await
            .unwrap();
        assert_eq!(view[0].hourly.len(), 1, "{:?}", view[0].hourly);
    }

    fn tenant_id(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    fn digest(key: &str) -> CredentialDigest {
        crate::auth::Credential::new(key).digest()
    }

    fn push_to(url: &str) -> PushConfig {
        PushConfig {
            url: PushUrl::parse(url, crate::push::TargetPolicy::LOCAL).unwrap(),
            headers: PushHeaders::default(),
            statuses: vec![],
            signing_secret: None,
            timeout: PushTimeout::DEFAULT,
            enabled: true,
            delivery: crate::push::Delivery::Every,
        }
    }

    fn file_tenant(id: &str, keys: &[(Carrier, &str)], push: Option<&str>) -> FileTenant {
        FileTenant {
            id: tenant_id(id),
            enabled: true,
            include_source: true,
            keys: keys.iter().map(|(c, k)| (*c, digest(k))).collect(),
            push: push.map(push_to),
        }
    }

    async fn owner(store: &SqliteStore, carrier: Carrier, key: &str) -> Option<TenantId> {
        AdminStore::credential_owner(store, carrier, &digest(key))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_key_is_never_given_to_a_second_tenant() {
        let store = SqliteStore::in_memory().unwrap();
        let credential = StoredCredential {
            carrier: Carrier::Clickpost,
            digest: digest("shared-key-0123456789"),
            added_at: hours_ago(1),
        };
        assert!(store
            .add_credential(&tenant_id("acme"), &credential)
            .await
            .unwrap());
        assert!(!store
            .add_credential(&tenant_id("globex"), &credential)
            .await
            .unwrap());
        assert_eq!(
            owner(&store, Carrier::Clickpost, "shared-key-0123456789").await,
            Some(tenant_id("acme"))
        );
        // The same key for another carrier is another credential.
        let shipway = StoredCredential {
            carrier: Carrier::Shipway,
            ..credential
        };
        assert!(store
            .add_credential(&tenant_id("globex"), &shipway)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn the_files_tenants_are_stored_as_the_file_says_at_every_start() {
        let store = SqliteStore::in_memory().unwrap();
        // A tenant of the admin API, which the file leaves alone.
        let globex = Tenant {
            id: tenant_id("globex"),
            enabled: false,
            include_source: true,
            created_at: hours_ago(5),
            file_managed: false,
        };
        store.create_tenant(&globex).await.unwrap();
        let api_key = StoredCredential {
            carrier: Carrier::Shipway,
            digest: digest("globex-shipway-key-01"),
            added_at: hours_ago(5),
        };
        store.add_credential(&globex.id, &api_key).await.unwrap();

        let first = vec![file_tenant(
            "acme",
            &[
                (Carrier::Clickpost, "acme-old"),
                (Carrier::Shipway, "acme-sw"),
            ],
            Some("http://127.0.0.1:9000/hook"),
        )];
        let started = at("2026-11-20T08:00:00Z");
        let applied = store.apply_file_tenants(&first, started).unwrap();
        assert!(applied.revoked.is_empty() && applied.released.is_empty());
        let acme = store.tenant(&tenant_id("acme")).await.unwrap().unwrap();
        assert!(acme.file_managed && acme.enabled);
        assert_eq!(acme.created_at, started);

        // The admin API added a key to acme (before acme was in the file, or another way in):
        // the file's next start revokes it, with the key the file no longer lists.
        let stray = StoredCredential {
            carrier: Carrier::Shiprocket,
            digest: digest("acme-stray"),
            added_at: hours_ago(1),
        };
        store.add_credential(&acme.id, &stray).await.unwrap();
        let mut second = first.clone();
        second[0].keys = vec![(Carrier::Clickpost, digest("acme-new"))];
        second[0].enabled = false;
        second[0].push = None;
        let applied = store
            .apply_file_tenants(&second, at("2026-11-21T08:00:00Z"))
            .unwrap();
        let revoked: Vec<Carrier> = applied.revoked.iter().map(|(_, c)| c.carrier).collect();
        assert_eq!(
            revoked,
            [Carrier::Clickpost, Carrier::Shipway, Carrier::Shiprocket]
        );
        assert_eq!(owner(&store, Carrier::Clickpost, "acme-old").await, None);
        assert_eq!(
            owner(&store, Carrier::Clickpost, "acme-new").await,
            Some(acme.id.clone())
        );
        let acme_now = store.tenant(&acme.id).await.unwrap().unwrap();
        assert!(!acme_now.enabled && acme_now.file_managed);
        assert_eq!(acme_now.created_at, acme.created_at, "created once");
        assert_eq!(
            PushConfigStore::push_config(&store, &acme.id)
                .await
                .unwrap(),
            None
        );
        // The admin API's tenant is as it was.
        assert_eq!(store.tenant(&globex.id).await.unwrap().unwrap(), globex);
        assert_eq!(store.credentials(&globex.id).await.unwrap(), vec![api_key]);

        // Out of the file: kept, with its keys, and no longer the file's.
        let applied = store.apply_file_tenants(&[], now_utc()).unwrap();
        assert_eq!(applied.released, vec![acme.id.clone()]);
        let released = store.tenant(&acme.id).await.unwrap().unwrap();
        assert!(!released.file_managed);
        assert_eq!(store.credentials(&acme.id).await.unwrap().len(), 1);
    }

    fn now_utc() -> DateTime<Utc> {
        hours_ago(0)
    }

    #[tokio::test]
    async fn a_file_key_that_another_tenant_holds_fails_the_start_and_changes_nothing() {
        let store = SqliteStore::in_memory().unwrap();
        let globex = Tenant {
            id: tenant_id("globex"),
            enabled: true,
            include_source: true,
            created_at: hours_ago(5),
            file_managed: false,
        };
        store.create_tenant(&globex).await.unwrap();
        let taken = StoredCredential {
            carrier: Carrier::Clickpost,
            digest: digest("globex-clickpost-key"),
            added_at: hours_ago(5),
        };
        store.add_credential(&globex.id, &taken).await.unwrap();
        let file = vec![
            file_tenant("zeta", &[(Carrier::Shipway, "zeta-sw")], None),
            file_tenant(
                "acme",
                &[
                    (Carrier::Shipway, "acme-sw"),
                    (Carrier::Clickpost, "globex-clickpost-key"),
                ],
                Some("http://127.0.0.1:9000/hook"),
            ),
        ];
        match store.apply_file_tenants(&file, now_utc()) {
            Err(FileTenantsError::KeyOwned {
                tenant,
                carrier,
                digest: refused,
                owner,
            }) => {
                assert_eq!(
                    (tenant.as_str(), carrier, owner.as_str()),
                    ("acme", Carrier::Clickpost, "globex")
                );
                assert_eq!(refused, taken.digest);
            }
            other => panic!("expected the key to be refused, got {other:?}"),
        }
        assert_eq!(store.tenants().await.unwrap(), vec![globex.clone()]);
        assert_eq!(owner(&store, Carrier::Shipway, "zeta-sw").await, None);
        assert_eq!(
            owner(&store, Carrier::Clickpost, "globex-clickpost-key").await,
            Some(globex.id)
        );
    }

    #[tokio::test]
    async fn a_key_moved_between_two_tenants_of_the_file_is_revoked_then_added() {
        let store = SqliteStore::in_memory().unwrap();
        let before = vec![
            file_tenant("acme", &[(Carrier::Clickpost, "moving-key")], None),
            file_tenant("zeta", &[], None),
        ];
        store.apply_file_tenants(&before, hours_ago(1)).unwrap();
        let after = vec![
            file_tenant("acme", &[], None),
            file_tenant("zeta", &[(Carrier::Clickpost, "moving-key")], None),
        ];
        let applied = store.apply_file_tenants(&after, now_utc()).unwrap();
        assert_eq!(applied.revoked.len(), 1);
        assert_eq!(applied.revoked[0].0, tenant_id("acme"));
        assert_eq!(
            owner(&store, Carrier::Clickpost, "moving-key").await,
            Some(tenant_id("zeta"))
        );
    }

    #[tokio::test]
    async fn a_stored_push_config_that_no_longer_validates_is_read_as_written() {
        let store = SqliteStore::in_memory().unwrap();
        // Written before URLs and timeouts were checked on the way in.
        execute(
            &store.conn(),
            "INSERT INTO push_configs (tenant_id, url, headers, statuses, signing_secret, timeout_ms, enabled)
             VALUES ('acme', 'http://169.254.169.254/latest?token=x', '[[\"X A\",\"v\"]]', '[]', NULL, 600000, 1)",
            [],
        )
        .unwrap();
        let config = PushConfigStore::push_config(&store, &tenant_id("acme"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(config.url.as_str(), "http://169.254.169.254/latest?token=x");
        assert_eq!(config.url.to_string(), "http://169.254.169.254/latest?…");
        assert_eq!(config.headers.names(), ["X A"]);
        assert_eq!(config.timeout.get(), PushTimeout::MAX, "brought into range");
    }

    #[test]
    fn a_database_made_before_file_managed_tenants_gets_the_column() {
        let dir = std::env::temp_dir().join(format!("rms-file-managed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("old.db");
        let _ = std::fs::remove_file(&path);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE tenants (id TEXT PRIMARY KEY, include_source INTEGER NOT NULL DEFAULT 1,
                     enabled INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL DEFAULT '');
                 INSERT INTO tenants (id) VALUES ('acme');",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let acme = runtime
            .block_on(store.tenant(&tenant_id("acme")))
            .unwrap()
            .unwrap();
        assert!(!acme.file_managed);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The embedded store of `rms serve`: every port on one SQLite file, with the semantics of the AWS
//! adapters. An event is accepted (claimed, queued) in one transaction; the queue has visibility
//! timeouts, receive counts and a dead-letter state; accepted events are committed before the
//! carrier hears 200.
//!
//! The database runs in WAL mode. With [`Durability::Fsync`] (the default) an event is answered
//! once the WAL holding it is fsync'd, so a 200 survives a power cut; with [`Durability::Os`],
//! once it is committed to the operating system, so it survives the process being killed
//! (`kill -9`), not a power cut. See [`Writer`] for how the fsync is shared.

mod admin;
mod checkpointer;
mod queue;
mod stores;
mod tenants;
#[cfg(test)]
mod test_support;
mod writer;

pub use queue::Leased;
pub use tenants::{FileTenant, FileTenantsApplied, FileTenantsError};

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};
use tokio::sync::{mpsc, Notify};

use crate::model::TenantId;
use crate::ports::Unavailable;

use writer::{sync_committed, Job, WalFile, Writer, MAX_GROUP};

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
    /// accepted since the last checkpoint (the checkpointer's, within about 200 ms of a commit,
    /// syncs the WAL first).
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
/// Every write a carrier's request makes (accepting an event, quarantining a rejected body, the
/// carrier's activity) and the dispatcher's (leases, attempt log, acknowledgements and retries)
/// goes to one writer thread, which runs everything waiting in one transaction (see [`Writer`]):
/// however many requests arrive, none writes or fsyncs on its own thread. Reads go to connections
/// of their own, which WAL lets read while a group is being written, so a read never waits for a
/// commit or an fsync: one for the carriers' requests and the dispatcher, one for the operators
/// (whose listings can be long). The rare writes (configuration, admin) run on the writer's
/// connection between two groups; an operator's replay is a job of the writer's.
///
/// A cheap `Clone` handle: its clones share the connections and the writer thread.
#[derive(Clone)]
pub struct SqliteStore {
    /// The connection every write goes through.
    conn: Arc<Mutex<Connection>>,
    /// The reads' own connection; `None` for an in-memory database (one connection is all of it).
    reader: Option<Arc<Mutex<Connection>>>,
    /// The operators' reads' own connection (the admin API, the console, the ops commands, the
    /// reconciler's scans): a listing of thousands of rows, or a replay's reads, never holds the
    /// connection the carriers' requests and the dispatcher read on. `None` in memory.
    operator: Option<Arc<Mutex<Connection>>>,
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

/// A file database's two read-only connections.
struct Readers {
    /// The carriers' requests' and the dispatcher's.
    requests: Connection,
    /// The operators'.
    operators: Connection,
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

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Times are stored as RFC 3339 text in UTC, so that they sort as text.
fn parse_time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
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
        // fsync mode the syncer thread fsyncs it (see `Writer`). The writer never checkpoints:
        // the checkpointer thread does, on its own connection (see `checkpointer`).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; \
             PRAGMA wal_autocheckpoint = 0;",
        )
        .map_err(unavailable("configure"))?;
        let read_only = || -> Result<Connection, Unavailable> {
            let reader = Connection::open(path).map_err(unavailable("open"))?;
            reader
                .execute_batch("PRAGMA query_only = 1; PRAGMA busy_timeout = 5000;")
                .map_err(unavailable("configure"))?;
            Ok(reader)
        };
        let readers = Readers {
            requests: read_only()?,
            operators: read_only()?,
        };
        let checkpoints = checkpointer::connect(path).map_err(unavailable("open"))?;
        let wal = (durability == Durability::Fsync).then(|| Arc::new(WalFile::new(path)));
        SqliteStore::start(conn, Some((readers, checkpoints)), durability, wal)
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> Result<SqliteStore, Unavailable> {
        let conn = Connection::open_in_memory().map_err(unavailable("open"))?;
        SqliteStore::start(conn, None, Durability::default(), None)
    }

    /// Starts the writer thread on `conn` (and, for a file, the checkpointer on the second
    /// connection of `file`, whose first are the reads'), and the syncer in fsync mode.
    fn start(
        conn: Connection,
        file: Option<(Readers, Connection)>,
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
            checkpointer: None,
            wal: None,
        };
        let (reader, checkpoints) = file.unzip();
        if let Some(checkpoints) = checkpoints {
            // One pending signal is enough: the checkpointer checkpoints whatever is committed.
            let (committed, signals) = std::sync::mpsc::sync_channel(1);
            writer.checkpointer = Some(committed);
            std::thread::Builder::new()
                .name("sqlite-checkpointer".into())
                .spawn(move || checkpointer::run(checkpoints, signals))
                .map_err(|e| Unavailable::new(SERVICE, "start the checkpointer", e))?;
        }
        // Each thread ends when what feeds it goes: the writer when the store's handles (the only
        // senders of jobs) are all dropped, the syncer and the checkpointer when the writer ends.
        if let Some(wal) = &wal {
            // The schema statements above wrote the WAL: the first sync finds the file.
            wal.sync()
                .map_err(|e| Unavailable::new(SERVICE, "sync the write-ahead log", e))?;
            let own = || {
                wal.another()
                    .map_err(|e| Unavailable::new(SERVICE, "sync the write-ahead log", e))
            };
            writer.wal = Some(own()?);
            let (committed, to_sync) = std::sync::mpsc::channel();
            writer.syncer = Some(committed);
            let wal = own()?;
            std::thread::Builder::new()
                .name("sqlite-syncer".into())
                .spawn(move || sync_committed(wal, to_sync))
                .map_err(|e| Unavailable::new(SERVICE, "start the syncer", e))?;
        }
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| Unavailable::new(SERVICE, "start the writer", e))?;
        let (reader, operator) = reader
            .map(|r| {
                (
                    Arc::new(Mutex::new(r.requests)),
                    Arc::new(Mutex::new(r.operators)),
                )
            })
            .unzip();
        Ok(SqliteStore {
            conn,
            reader,
            operator,
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

    /// The connection for the operators' reads: sees every write answered so far.
    fn operator_read(&self) -> MutexGuard<'_, Connection> {
        match &self.operator {
            Some(operator) => lock(operator),
            None => lock(&self.conn),
        }
    }

    /// Runs an operator's read (a listing of thousands of rows, a replay's) on tokio's blocking
    /// threads: on a runtime worker it would hold up the carriers' requests queued behind it.
    async fn operator_reading<T: Send + 'static>(
        &self,
        operation: &'static str,
        read: impl FnOnce(&SqliteStore) -> Result<T, Unavailable> + Send + 'static,
    ) -> Result<T, Unavailable> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || read(&store))
            .await
            .map_err(|e| Unavailable::new(SERVICE, operation, e))?
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
}

// Tenant ids are stored as their text, and read back through the same rule: a row written
// outside this code with an id it would refuse reads as an error, not as a tenant.
impl ToSql for TenantId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for TenantId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        TenantId::parse(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {

    use chrono::TimeZone;

    use super::test_support::*;
    use super::*;
    use crate::admin::AdminStore;
    use crate::ports::{Intake, PushConfigStore, ShipmentStates};
    use crate::shipment::ShipmentState;

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
            .block_on(store.accept(&mut older, Utc::now()))
            .unwrap();
        assert!(older.is_stale);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
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

    #[test]
    fn an_open_store_copies_its_log_into_the_database_off_the_writer() {
        let dir = std::env::temp_dir().join(format!("rms-checkpoints-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("busy.db");
        let _ = std::fs::remove_file(&path);
        let store = SqliteStore::open(&path).unwrap();
        // The writer's connection never checkpoints (a checkpoint there would stall every accept
        // waiting behind it).
        let autocheckpoint: i64 = store
            .conn()
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(autocheckpoint, 0);
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            for n in 0..200 {
                let mut event = scan(&format!("AWB{n}"), "2026-11-22T10:00:00Z");
                store.accept(&mut event, Utc::now()).await.unwrap();
            }
        });
        // The checkpointer thread copies the committed pages into the database file while the
        // store stays open (without it they would stay in the log until the store closed).
        let waited = std::time::Instant::now();
        while size() <= before && waited.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(size() > before, "the database file is still {before} bytes");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Group commit: the writer thread, the syncer thread and the WAL file they fsync.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::ports::Unavailable;

use super::{execute, lock, SqliteStore, SERVICE};

/// The most jobs one group transaction takes.
pub(super) const MAX_GROUP: usize = 256;

/// A write the writer thread runs in its group transaction.
pub(super) trait Job: Send {
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
pub(super) struct WriteKind {
    /// Answered only once on stable storage, in fsync mode.
    durable: bool,
    /// May queue a message: wakes the dispatcher once answered.
    queues: bool,
    /// Several statements: run in a savepoint, so that a failure undoes them all.
    savepoint: bool,
}

impl WriteKind {
    /// Queues messages, answered only once on stable storage in fsync mode, all or nothing: an
    /// accepted event (the claim, the shipment's state, the message), an operator's replay.
    pub(super) const QUEUE: WriteKind = WriteKind {
        durable: true,
        queues: true,
        savepoint: true,
    };
    /// A write of the dispatcher's of several statements (a lease, an attempt and its marker).
    pub(super) const STATEMENTS: WriteKind = WriteKind {
        durable: false,
        queues: false,
        savepoint: true,
    };
    /// A write of the dispatcher's of one statement (an acknowledgement, a retry).
    pub(super) const STATEMENT: WriteKind = WriteKind {
        durable: false,
        queues: false,
        savepoint: false,
    };
    /// What a request keeps besides an event (a rejected body, the carrier's activity): several
    /// statements, answered once on stable storage in fsync mode, like an accept.
    pub(super) const KEEP: WriteKind = WriteKind {
        durable: true,
        queues: false,
        savepoint: true,
    };
    /// Nothing, answered once everything handed over before is on stable storage.
    pub(super) const FLUSH: WriteKind = WriteKind {
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
///
/// When nothing is waiting after a commit (a quiet relay, a group of one or two accepts), this
/// thread fsyncs the WAL itself instead: there is no next group to overlap, and the syncer's
/// wake-up, a thread hand-off in every accept's path, is saved. The syncer may be fsyncing at the
/// same time, each on its own descriptor (`WalFile::another`).
pub(super) struct Writer {
    pub(super) conn: Arc<Mutex<Connection>>,
    pub(super) jobs: mpsc::Receiver<Box<dyn Job>>,
    /// In fsync mode (a file database): where the committed durable jobs wait for the fsync.
    pub(super) syncer: Option<std::sync::mpsc::Sender<Vec<Box<dyn Job>>>>,
    /// In fsync mode, this thread's own descriptor of the WAL, for the fsyncs it runs itself.
    pub(super) wal: Option<WalFile>,
    /// A file database: told after each commit, so that the log is checkpointed off this thread.
    pub(super) checkpointer: Option<std::sync::mpsc::SyncSender<()>>,
}

impl Writer {
    pub(super) fn run(mut self) {
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
            if let (Some(checkpointer), Ok(())) = (&self.checkpointer, &committed) {
                // Full: a signal is already waiting, and it covers this commit too.
                let _ = checkpointer.try_send(());
            }
            let mut to_sync = Vec::new();
            for job in group.drain(..) {
                match &self.syncer {
                    Some(_) if committed.is_ok() && job.durable() => to_sync.push(job),
                    _ => job.finish(committed.clone()),
                }
            }
            if let (Some(wal), false, true) = (&self.wal, to_sync.is_empty(), self.jobs.is_empty())
            {
                let synced = wal.sync();
                for job in to_sync.drain(..) {
                    job.finish(synced.clone());
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
pub(super) fn sync_committed(
    wal: WalFile,
    committed: std::sync::mpsc::Receiver<Vec<Box<dyn Job>>>,
) {
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
///
/// Each thread that fsyncs has its own `WalFile` (`another`), so its own descriptor: Linux tells
/// a write-back error to every descriptor that was open when it happened, but to one descriptor
/// only once, so of two fsyncs at once on a shared descriptor one could succeed over pages that
/// were lost. Within one `WalFile` the fsyncs take turns.
pub(super) struct WalFile {
    path: std::path::PathBuf,
    open: Mutex<Option<(std::fs::File, FileIdentity)>>,
    /// Set by the first failed fsync of any of the log's `WalFile`s: after it, what the page
    /// cache held may never reach the disk, whatever later fsyncs say, so every later sync fails
    /// too.
    failed: Arc<Mutex<Option<String>>>,
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
    pub(super) fn new(database: &Path) -> WalFile {
        let mut path = database.as_os_str().to_owned();
        path.push("-wal");
        WalFile {
            path: path.into(),
            open: Mutex::new(None),
            failed: Arc::default(),
        }
    }

    /// The same log with a descriptor of its own, for another thread, opened now (a descriptor
    /// hears only of the write-back errors after its opening); a failure of either fails both.
    pub(super) fn another(&self) -> Result<WalFile, String> {
        let wal = WalFile {
            path: self.path.clone(),
            open: Mutex::new(None),
            failed: self.failed.clone(),
        };
        wal.sync()?;
        Ok(wal)
    }

    /// fsyncs the WAL: everything committed before the call is then on stable storage.
    pub(super) fn sync(&self) -> Result<(), String> {
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

impl SqliteStore {
    /// Hands a write to the writer thread and waits for its answer: at the group's commit, or,
    /// for a durable write in fsync mode, once it is on stable storage.
    pub(super) async fn submit<T, F>(
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
    pub(super) async fn submit_detached<F>(
        &self,
        operation: &'static str,
        work: F,
    ) -> Result<(), Unavailable>
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use super::*;

    fn wal_of(name: &str) -> WalFile {
        let dir = std::env::temp_dir().join(format!("rms-wal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let database = dir.join(name);
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::write(&wal, b"frames").unwrap();
        WalFile::new(&database)
    }

    #[cfg(unix)]
    #[test]
    fn each_thread_syncs_the_log_on_a_descriptor_of_its_own() {
        let syncer = wal_of("own.db");
        let writer = syncer.another().unwrap();
        syncer.sync().unwrap();
        writer.sync().unwrap();
        let descriptor = |wal: &WalFile| {
            use std::os::fd::AsRawFd;
            lock(&wal.open).as_ref().map(|(file, _)| file.as_raw_fd())
        };
        assert!(descriptor(&writer).is_some());
        assert_ne!(descriptor(&syncer), descriptor(&writer));
    }

    #[test]
    fn after_one_failed_fsync_every_sync_of_the_log_fails_on_every_descriptor() {
        let syncer = wal_of("failed.db");
        let writer = syncer.another().unwrap();
        // What `sync` records when the disk reports a write-back error to the syncer's descriptor.
        *lock(&syncer.failed) = Some("fsync of the log failed (Input/output error)".into());
        let refused = writer.sync().unwrap_err();
        assert!(refused.contains("Input/output error"), "{refused}");
        assert!(syncer.sync().is_err());
        assert!(
            writer.another().is_err(),
            "a descriptor opened later fails too"
        );
    }
}

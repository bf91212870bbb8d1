//! WAL checkpoints on a thread and a connection of their own.
//!
//! By default SQLite checkpoints on the connection that commits, inside the commit that takes the
//! write-ahead log past 1,000 pages: the writer thread, holding the write lock, would copy those
//! pages into the database and fsync it (with `synchronous = NORMAL`, the WAL before the copy
//! and the database after), and every accept waiting behind it would wait that long. Under load
//! that was several times a second, and it made the tail of the accept latency.
//!
//! Here the writer's connection never checkpoints (`wal_autocheckpoint = 0`); it tells this thread
//! after each commit, and this thread runs a PASSIVE checkpoint on its own connection: it copies
//! what no reader still needs while the writer goes on committing (a checkpoint takes its own
//! lock, not the writer's). SQLite starts the log again from its beginning only at a write that
//! begins when everything in it was copied, which a busy writer, always a commit ahead, rarely
//! sees: so each PASSIVE checkpoint is followed by short ones that copy what was committed
//! meanwhile, until one finds nothing new (`step`). A writer too busy even for that (saturation)
//! lets the log pass [`RESTART_PAGES`]; the next checkpoint is then a RESTART, which holds new
//! writes back while it copies the last pages and fsyncs (most were copied by the PASSIVE ones)
//! and makes the next write start the log again, so that the file stays bounded.
//!
//! Durability is unchanged: the checkpoint fsyncs the WAL before copying it and the database
//! before the log can be reused, whichever connection runs it.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

/// A checkpoint runs when the writer has committed and this long has passed since the last one:
/// about what the default 1,000-page threshold gives at full load, with the copy off the writer.
pub(super) const EVERY: Duration = Duration::from_millis(200);

/// Past this many pages (about 40 MB at 4 KiB) still in the log after a PASSIVE checkpoint, the
/// next one is a RESTART, which waits for readers to let go.
pub(super) const RESTART_PAGES: i64 = 10_000;

/// What one checkpoint found (`PRAGMA wal_checkpoint`'s row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Checkpointed {
    /// The checkpoint could not finish: a RESTART that waited for readers or a writer in vain.
    pub(super) busy: bool,
    /// Pages in the log (before a RESTART starts it again).
    pub(super) log: i64,
    /// Of those, pages copied into the database.
    pub(super) copied: i64,
}

/// Opens the checkpointer's connection to the database at `path`.
pub(super) fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA busy_timeout = 5000;")?;
    Ok(conn)
}

/// Runs `mode` (`PASSIVE` or `RESTART`) on `conn`.
pub(super) fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<Checkpointed> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok(Checkpointed {
            busy: row.get::<_, i64>(0)? != 0,
            log: row.get(1)?,
            copied: row.get(2)?,
        })
    })
}

/// The thread's loop: waits for a commit (`committed` is signalled by the writer after each
/// group), checkpoints at most every [`EVERY`], and ends when the writer does (its sender
/// dropped), with a last checkpoint.
pub(super) fn run(conn: Connection, committed: Receiver<()>) {
    let mut last = Instant::now();
    let mut restart = false;
    // Wait for a commit, then let the next ones gather until a checkpoint is due.
    while let Ok(()) = committed.recv() {
        let due = last + EVERY;
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            match committed.recv_timeout(due - now) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = checkpoint(&conn, "PASSIVE");
                    return;
                }
            }
        }
        while committed.try_recv().is_ok() {}
        restart = step(&conn, restart, RESTART_PAGES);
        last = Instant::now();
    }
    let _ = checkpoint(&conn, "PASSIVE");
}

/// After a PASSIVE checkpoint, at most this many more, each copying only what was committed while
/// the one before ran (see [`step`]).
const CATCH_UP: usize = 4;

/// One checkpoint; `true` when the log holds more than `restart_pages` and the next must be a
/// RESTART.
///
/// A PASSIVE checkpoint copying a few hundred ms of commits takes milliseconds (the copy and two
/// fsyncs), and a writer at a few hundred commits a second commits again meanwhile: the log is
/// never all copied when its next write begins, so SQLite never starts it again by itself, and it
/// grows until a RESTART, which holds every write back for its copy and fsyncs (9-19 ms measured
/// at 500 req/s, every 1.4 s). So a PASSIVE one is followed by short ones, each copying only the
/// commits that landed during the one before, until one finds the log all copied with nothing new:
/// the writer's next write then starts the log again, holding nothing back. A writer that commits
/// faster than that (saturation) still gets the RESTART past `restart_pages`.
fn step(conn: &Connection, restart: bool, restart_pages: i64) -> bool {
    step_with(|mode| checkpoint(conn, mode), restart, restart_pages)
}

/// [`step`] with the checkpoint as `run` (a test's, to commit between two checkpoints).
fn step_with(
    mut run: impl FnMut(&str) -> rusqlite::Result<Checkpointed>,
    restart: bool,
    restart_pages: i64,
) -> bool {
    let mode = if restart { "RESTART" } else { "PASSIVE" };
    let mut done = run(mode);
    if !restart {
        for _ in 0..CATCH_UP {
            let Ok(before) = done else { break };
            done = run("PASSIVE");
            if let Ok(now) = done {
                if now.log == before.log && now.copied == now.log {
                    break;
                }
            }
        }
    }
    match done {
        // After a RESTART that finished, the log starts again at the next write, whatever it held.
        Ok(done) => {
            tracing::debug!(
                mode,
                log = done.log,
                copied = done.copied,
                busy = done.busy,
                "WAL checkpoint"
            );
            done.log > restart_pages && (!restart || done.busy)
        }
        Err(e) => {
            tracing::warn!(error = %e, mode, "WAL checkpoint failed; the next one tries again");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use super::*;

    /// A fresh database in WAL mode whose writer never checkpoints, as `SqliteStore` opens it.
    fn database(name: &str) -> (std::path::PathBuf, Connection) {
        let dir = std::env::temp_dir().join(format!("rms-checkpointer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (n INTEGER, pad BLOB);",
            )
            .unwrap();
        (path, writer)
    }

    /// Commits `pages` pages' worth of rows (a 4 KiB blob each).
    fn write_pages(writer: &Connection, pages: usize) {
        writer.execute_batch("BEGIN").unwrap();
        for n in 0..pages {
            writer
                .execute("INSERT INTO t VALUES (?1, zeroblob(4000))", [n as i64])
                .unwrap();
        }
        writer.execute_batch("COMMIT").unwrap();
    }

    #[test]
    fn a_passive_checkpoint_on_its_own_connection_copies_what_the_writer_committed() {
        let (path, writer) = database("passive.db");
        write_pages(&writer, 50);
        let checkpoints = connect(&path).unwrap();
        let done = checkpoint(&checkpoints, "PASSIVE").unwrap();
        assert!(done.log >= 50, "{done:?}");
        assert_eq!(done.copied, done.log, "nothing held the pages back");
        // The writer never checkpointed on its own: the pages were all still in the log.
        let rows: i64 = connect(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 50);
    }

    #[test]
    fn a_log_past_the_limit_is_restarted_even_while_the_writer_keeps_writing() {
        let (path, writer) = database("restart.db");
        let checkpoints = connect(&path).unwrap();
        // A writer always a commit ahead: its next transaction begins before the checkpoint, so
        // the PASSIVE checkpoints copy the log but SQLite never starts it again.
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 10, "the log never passed 100 pages");
            write_pages(&writer, 30);
            // The writer's next group has begun (its snapshot taken) when the checkpoint runs,
            // and commits after it.
            writer.execute_batch("BEGIN IMMEDIATE").unwrap();
            writer
                .execute("INSERT INTO t VALUES (-1, NULL)", [])
                .unwrap();
            let restart = step(&checkpoints, false, 100);
            writer.execute_batch("COMMIT").unwrap();
            if restart {
                break;
            }
        }
        assert!(rounds >= 3, "the log grew by the writes: {rounds} rounds");
        // The RESTART checkpoint: the next write starts the log from its beginning.
        assert!(!step(&checkpoints, true, 100));
        write_pages(&writer, 5);
        let after = checkpoint(&checkpoints, "PASSIVE").unwrap();
        assert!(after.log < 30, "the log started again: {after:?}");
    }

    #[test]
    fn a_checkpoint_catches_up_with_commits_made_while_it_ran_so_the_log_starts_again() {
        let (path, writer) = database("catch-up.db");
        let checkpoints = connect(&path).unwrap();
        write_pages(&writer, 200);
        // The writer's next group begins before the first checkpoint and commits while it runs.
        let mut runs = 0;
        let restart = step_with(
            |mode| {
                runs += 1;
                if runs > 1 {
                    return checkpoint(&checkpoints, mode);
                }
                writer.execute_batch("BEGIN IMMEDIATE").unwrap();
                writer
                    .execute("INSERT INTO t VALUES (-1, zeroblob(4000))", [])
                    .unwrap();
                let done = checkpoint(&checkpoints, mode);
                writer.execute_batch("COMMIT").unwrap();
                done
            },
            false,
            10_000,
        );
        assert!(!restart);
        assert!(
            runs >= 3,
            "a second checkpoint copied the late commit, a third found nothing new"
        );
        // Everything was copied when the writer's next write began: SQLite started the log again,
        // with no RESTART, which would have held the writer back.
        write_pages(&writer, 5);
        let after = checkpoint(&checkpoints, "PASSIVE").unwrap();
        assert!(after.log < 50, "the log started again: {after:?}");
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 206);
    }
}

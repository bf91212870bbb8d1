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
//! meanwhile, until one finds nothing new (`step`). A writer too busy even for that (1,000 req/s
//! and more) lets the log pass [`RESTART_PAGES`]; the PASSIVE ones are then followed at once by a
//! RESTART, which holds new writes back while it copies what was committed during the last of
//! them and fsyncs, and makes the next write start the log again, so that the file stays bounded.
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

/// Past this many pages (about 40 MB at 4 KiB) in the log after the PASSIVE checkpoints, a RESTART
/// follows them, which waits for the writer and the readers to let go.
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
        step(&conn, RESTART_PAGES);
        last = Instant::now();
    }
    let _ = checkpoint(&conn, "PASSIVE");
}

/// After a PASSIVE checkpoint, at most this many more, each copying only what was committed while
/// the one before ran (see [`step`]).
const CATCH_UP: usize = 4;

/// One round of checkpoints; returns the mode of the last one run.
///
/// A PASSIVE checkpoint copying a few hundred ms of commits takes milliseconds (the copy and two
/// fsyncs), and a writer at a few hundred commits a second commits again meanwhile: the log is
/// never all copied when its next write begins, so SQLite never starts it again by itself. So a
/// PASSIVE one is followed by short ones, each copying only the commits that landed during the one
/// before, until one finds the log all copied with nothing new: the writer's next write then
/// starts the log again, holding nothing back.
///
/// A writer that commits faster than they catch up lets the log grow past `restart_pages`; a
/// RESTART then follows at once, while the PASSIVE ones have left it only the last few commits to
/// copy. (A RESTART instead of the PASSIVE ones copied 200 ms of commits, about 3,000 pages at
/// 1,000 req/s, with new writes held back: 15-20 ms stalls every second.) A RESTART that could not
/// finish (busy) is tried again at the next round, the log being still past the limit.
fn step(conn: &Connection, restart_pages: i64) -> &'static str {
    step_with(|mode| checkpoint(conn, mode), restart_pages)
}

/// [`step`] with the checkpoint as `run` (a test's, to commit between two checkpoints).
fn step_with(
    mut run: impl FnMut(&str) -> rusqlite::Result<Checkpointed>,
    restart_pages: i64,
) -> &'static str {
    let mut mode = "PASSIVE";
    let mut done = run(mode);
    for _ in 0..CATCH_UP {
        let Ok(before) = done else { break };
        done = run(mode);
        if let Ok(now) = done {
            if now.log == before.log && now.copied == now.log {
                break;
            }
        }
    }
    if matches!(done, Ok(d) if d.log > restart_pages) {
        mode = "RESTART";
        done = run(mode);
    }
    match done {
        Ok(done) => tracing::debug!(
            mode,
            log = done.log,
            copied = done.copied,
            busy = done.busy,
            "WAL checkpoint"
        ),
        Err(e) => {
            tracing::warn!(error = %e, mode, "WAL checkpoint failed; the next one tries again")
        }
    }
    mode
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
    fn a_log_past_the_limit_is_copied_first_then_restarted_even_while_the_writer_keeps_writing() {
        let (path, writer) = database("restart.db");
        let checkpoints = connect(&path).unwrap();
        let mut rounds = 0;
        let calls = loop {
            rounds += 1;
            assert!(rounds < 10, "the log never passed 100 pages");
            write_pages(&writer, 30);
            // A writer always a commit ahead: its next group has begun (its snapshot taken) when
            // the PASSIVE checkpoints run, and commits after them, so they copy the log but
            // SQLite never starts it again.
            writer.execute_batch("BEGIN IMMEDIATE").unwrap();
            writer
                .execute("INSERT INTO t VALUES (-1, NULL)", [])
                .unwrap();
            let mut open = true;
            let mut calls = Vec::new();
            let mode = step_with(
                |mode| {
                    if mode == "RESTART" && open {
                        // A RESTART waits for the group in progress to commit.
                        writer.execute_batch("COMMIT").unwrap();
                        open = false;
                    }
                    let done = checkpoint(&checkpoints, mode);
                    calls.push((mode.to_owned(), *done.as_ref().unwrap()));
                    done
                },
                100,
            );
            if open {
                writer.execute_batch("COMMIT").unwrap();
            }
            if mode == "RESTART" {
                break calls;
            }
        };
        assert!(rounds >= 3, "the log grew by the writes: {rounds} rounds");
        // The PASSIVE checkpoints copied the whole log first: the RESTART, which holds the writer
        // back, had only the group committed after them to copy.
        let (last, restart) = calls.split_last().unwrap();
        assert_eq!(last.0, "RESTART", "{calls:?}");
        assert!(!last.1.busy, "{calls:?}");
        let passive = &restart.last().unwrap().1;
        assert_eq!(restart.last().unwrap().0, "PASSIVE", "{calls:?}");
        assert_eq!(passive.copied, passive.log, "{calls:?}");
        assert_eq!(last.1.log, passive.log + 1, "one late page: {calls:?}");
        // The next write starts the log from its beginning.
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
        let mode = step_with(
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
            10_000,
        );
        assert_eq!(mode, "PASSIVE");
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

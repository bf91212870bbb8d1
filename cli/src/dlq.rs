//! `rms dlq`: the dead letters of the embedded store (`rms serve`'s database).

use std::path::PathBuf;
use std::process::ExitCode;

use shared::adapters::sqlite::SqliteStore;

/// Dead letters: events whose delivery failed for good.
#[derive(clap::Subcommand)]
pub enum Command {
    /// List the dead letters, with the reason each one failed.
    List {
        #[arg(long, value_name = "FILE", default_value = "rms.db")]
        database: PathBuf,
        /// One JSON object per line, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back on the queue (all, or the given ids); `rms serve` delivers them.
    Redrive {
        #[arg(long, value_name = "FILE", default_value = "rms.db")]
        database: PathBuf,
        /// Dead-letter ids, from `rms dlq list`; none means all.
        ids: Vec<i64>,
    },
}

pub fn run(command: Command) -> ExitCode {
    let (Command::List { database, .. } | Command::Redrive { database, .. }) = &command;
    if !database.exists() {
        eprintln!(
            "error: no database at {}; pass --database with the file rms serve uses",
            database.display()
        );
        return ExitCode::FAILURE;
    }
    let store = match SqliteStore::open(database) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot open {}: {e}", database.display());
            return ExitCode::FAILURE;
        }
    };
    match command {
        Command::List { json, .. } => match store.dead_letters() {
            Ok(list) if json => {
                for d in list {
                    let line = serde_json::json!({"id": d.id, "event_id": d.event_id, "tenant_id": d.tenant_id, "reason": d.reason, "attempts": d.receive_count, "enqueued_at": d.enqueued_at});
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
            Ok(list) => {
                println!(
                    "{:>6}  {:<12} {:<36} {:>8}  reason",
                    "id", "tenant", "event_id", "attempts"
                );
                for d in &list {
                    println!(
                        "{:>6}  {:<12} {:<36} {:>8}  {}",
                        d.id, d.tenant_id, d.event_id, d.receive_count, d.reason
                    );
                }
                println!("{} dead letter(s)", list.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Redrive { ids, .. } => {
            let ids = (!ids.is_empty()).then_some(ids);
            match store.redrive(ids.as_deref(), chrono::Utc::now()) {
                Ok(n) => {
                    println!("{n} dead letter(s) put back on the queue");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

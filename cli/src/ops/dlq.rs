//! `rms dlq`: dead letters, the events whose delivery failed for good; list and redrive.

use shared::admin::{Admin, AdminStore};
use shared::ingest::Reingest;
use shared::ports::Pusher;

use super::{emit, listing, spinner, Failure, Op, Out, Target};

/// Dead letters: events whose delivery failed for good.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// List the dead letters, oldest first, with the reason each one failed.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
    },
    /// Put dead letters back on the delivery queue (all, or the given ids); they are delivered
    /// again from the first attempt.
    Redrive {
        /// Dead-letter ids, from `rms dlq list`; none means all.
        ids: Vec<String>,
    },
}

impl Op for Command {
    async fn run<S: AdminStore, P: Pusher, R: Reingest>(
        self,
        admin: &Admin<S, P, R>,
        out: Out,
    ) -> Result<(), Failure> {
        match self {
            Command::List { tenant, limit } => {
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                let dead = admin.dead_letters(tenant.as_deref(), limit).await?;
                if out.json {
                    out.json_lines(&dead);
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = dead
                    .iter()
                    .map(|d| {
                        vec![
                            d.id.clone(),
                            d.tenant_id.clone(),
                            d.event_id.clone(),
                            d.attempts.to_string(),
                            d.reason.clone(),
                        ]
                    })
                    .collect();
                emit(&listing(
                    &["ID", "TENANT", "EVENT", "ATTEMPTS", "REASON"],
                    &rows,
                    "no dead letters",
                ));
            }
            Command::Redrive { ids } => {
                let spinner = spinner("redriving dead letters");
                let ids = (!ids.is_empty()).then_some(ids);
                let moved = admin.redrive(ids.as_deref()).await;
                spinner.finish_and_clear();
                let moved = moved?;
                if out.json {
                    out.json_lines([serde_json::json!({ "redriven": moved })]);
                } else {
                    emit(&format!("{moved} dead letter(s) put back on the queue\n"));
                }
            }
        }
        Ok(())
    }
}

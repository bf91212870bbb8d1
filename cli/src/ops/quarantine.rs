//! `rms quarantine`: bodies that authenticated but did not normalise, kept 14 days after their
//! last arrival; list them, show one, and replay them through ingest once the normaliser is fixed.

use chrono::{DateTime, Utc};
use shared::admin::{Admin, AdminStore, QuarantineQuery, QuarantineSelection, QuarantineView};
use shared::ingest::Reingest;
use shared::ports::Pusher;

use super::{
    emit, fields, listing, parse_time, progress_bar, table, time, Failure, Op, Out, Target,
};

/// Rejected bodies: what an authenticated carrier sent that did not become events.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: Command,
}

/// Which bodies; every option given narrows the selection.
#[derive(clap::Args, Debug, Clone)]
pub struct FilterArgs {
    /// Only this tenant's.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this carrier's (clickpost, shiprocket, shipway).
    #[arg(long)]
    carrier: Option<String>,
    /// Only bodies whose reason contains this text (any case).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Only bodies that arrived at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    from: Option<DateTime<Utc>>,
    /// Only bodies that arrived at or before this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    to: Option<DateTime<Utc>>,
}

impl FilterArgs {
    fn query(self, limit: Option<usize>) -> QuarantineQuery {
        QuarantineQuery {
            tenant: self.tenant,
            carrier: self.carrier,
            reason: self.reason,
            from: self.from,
            to: self.to,
            limit,
        }
    }
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// List quarantined bodies, oldest first: carrier, how often and when they arrived, why
    /// they were refused, and their last replay.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
    },
    /// Show one quarantined body: its entry, then the body as it was kept (credentials removed).
    Show {
        tenant: String,
        /// The body's id, from `rms quarantine list`.
        id: String,
    },
    /// Feed quarantined bodies through ingest again, after the normaliser fix has shipped: the
    /// given ids of --tenant, or every body the options select. Bodies are kept; a second replay
    /// answers "duplicate". Exit code 1 if a body is still invalid or a store failed.
    Replay {
        #[command(flatten)]
        filter: FilterArgs,
        /// Ids of --tenant's bodies, from `rms quarantine list`; none means every selected body.
        #[arg(requires = "tenant", conflicts_with_all = ["carrier", "reason", "from", "to"])]
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
            Command::List { filter, limit } => {
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                let list = admin.quarantined(&filter.query(Some(limit))).await?;
                if out.json {
                    out.json_lines(&list);
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|q| {
                        vec![
                            q.tenant_id.clone(),
                            q.carrier.to_string(),
                            q.times.to_string(),
                            time(q.first_received_at),
                            time(q.last_received_at),
                            last_replay(q),
                            q.reason.clone(),
                            q.id.clone(),
                        ]
                    })
                    .collect();
                emit(&listing(
                    &[
                        "TENANT", "CARRIER", "TIMES", "FIRST", "LAST", "REPLAYED", "REASON", "ID",
                    ],
                    &rows,
                    "no quarantined bodies",
                ));
            }
            Command::Show { tenant, id } => {
                let detail = admin.quarantined_body(&tenant, &id).await?;
                if out.json {
                    out.json_lines([&detail]);
                    return Ok(());
                }
                let q = &detail.view;
                emit(&fields(&[
                    ("id", q.id.clone()),
                    ("tenant", q.tenant_id.clone()),
                    ("carrier", q.carrier.to_string()),
                    ("reason", q.reason.clone()),
                    ("times", q.times.to_string()),
                    ("first seen", time(q.first_received_at)),
                    ("last seen", time(q.last_received_at)),
                    ("last replay", last_replay(q)),
                ]));
                emit("\n");
                emit(&detail.body);
                if !detail.body.ends_with('\n') {
                    emit("\n");
                }
            }
            Command::Replay { filter, ids } => {
                let selection = if ids.is_empty() {
                    QuarantineSelection::Matching(filter.query(None))
                } else {
                    QuarantineSelection::Ids {
                        // clap's `requires` makes the tenant present.
                        tenant: filter.tenant.unwrap_or_default(),
                        ids,
                    }
                };
                let bar = progress_bar("replaying");
                let report = admin
                    .replay_quarantined(&selection, Utc::now(), &|done, total| {
                        bar.set_length(u64::try_from(total).unwrap_or(u64::MAX));
                        bar.set_position(u64::try_from(done).unwrap_or(u64::MAX));
                    })
                    .await;
                bar.finish_and_clear();
                let report = report?;
                if out.json {
                    out.json_lines([&report]);
                } else {
                    let dash = || "-".to_owned();
                    let rows: Vec<Vec<String>> = report
                        .results
                        .iter()
                        .map(|r| {
                            vec![
                                r.tenant_id.clone(),
                                r.outcome.as_str().to_owned(),
                                if r.event_ids.is_empty() {
                                    dash()
                                } else {
                                    r.event_ids.join(",")
                                },
                                r.reason.clone().unwrap_or_else(dash),
                                r.id.clone(),
                            ]
                        })
                        .collect();
                    if !rows.is_empty() {
                        emit(&table(
                            &["TENANT", "OUTCOME", "EVENTS", "REASON", "ID"],
                            &rows,
                        ));
                    }
                    emit(&format!(
                        "{} body(ies) replayed: {} accepted, {} duplicate, {} invalid, {} unavailable, {} in flight\n",
                        report.results.len(),
                        report.accepted,
                        report.duplicate,
                        report.invalid,
                        report.unavailable,
                        report.in_flight
                    ));
                }
                if report.has_failures() {
                    return Err(Failure::Outcome(format!(
                        "{} body(ies) not taken: {} still invalid, {} unavailable (replay them again later)",
                        report.invalid + report.unavailable,
                        report.invalid,
                        report.unavailable
                    )));
                }
            }
        }
        Ok(())
    }
}

fn last_replay(q: &QuarantineView) -> String {
    q.last_replay.as_ref().map_or_else(
        || "never".to_owned(),
        |r| format!("{} {}", time(r.at), r.outcome),
    )
}

//! `rms carriers`: the carrier-status view of a tenant ("is this carrier wired?").

use shared::admin::{Admin, AdminStore};
use shared::ingest::Reingest;
use shared::ports::Pusher;

use super::{emit, table, time, Failure, Op, Out, Target};

/// For each carrier: when it last sent the tenant a panel test, an accepted event, and a
/// rejected body (with the reason), and how many requests it made in the last 24 hours
/// (accepted/rejected; `--json` has them per hour).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    tenant: String,
}

impl Op for Args {
    async fn run<S: AdminStore, P: Pusher, R: Reingest>(
        self,
        admin: &Admin<S, P, R>,
        out: Out,
    ) -> Result<(), Failure> {
        let view = admin.carrier_activity(&self.tenant).await?;
        if out.json {
            out.json_lines(&view);
            return Ok(());
        }
        let never = || "never".to_owned();
        let rows: Vec<Vec<String>> = view
            .iter()
            .map(|a| {
                vec![
                    a.carrier.clone(),
                    format!(
                        "{}/{}",
                        a.hourly.iter().map(|h| h.accepted).sum::<u64>(),
                        a.hourly.iter().map(|h| h.rejected).sum::<u64>()
                    ),
                    a.last_test_at.map_or_else(never, time),
                    a.last_accepted_at.map_or_else(never, time),
                    a.last_rejected_at.map_or_else(never, time),
                    a.last_rejected_reason
                        .clone()
                        .unwrap_or_else(|| "-".to_owned()),
                ]
            })
            .collect();
        emit(&table(
            &[
                "CARRIER",
                "24H ACCEPTED/REJECTED",
                "LAST TEST",
                "LAST ACCEPTED",
                "LAST REJECTED",
                "REASON",
            ],
            &rows,
        ));
        Ok(())
    }
}

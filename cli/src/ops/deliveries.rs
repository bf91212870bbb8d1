//! `rms deliveries`: the delivery log of a tenant, by shipment or by time range.

use shared::admin::{Admin, AdminStore};
use shared::ingest::Reingest;
use shared::ports::Pusher;

use super::{emit, listing, time, Failure, Op, Out, SelectionArgs, Target};

/// Every delivery attempt of a tenant's events: of one shipment (--awb), or in a time range
/// (--from, --to), oldest first.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    tenant: String,
    #[command(flatten)]
    selection: SelectionArgs,
}

impl Op for Args {
    async fn run<S: AdminStore, P: Pusher, R: Reingest>(
        self,
        admin: &Admin<S, P, R>,
        out: Out,
    ) -> Result<(), Failure> {
        let attempts = admin
            .deliveries(&self.tenant, &self.selection.selection())
            .await?;
        if out.json {
            out.json_lines(&attempts);
            return Ok(());
        }
        let dash = || "-".to_owned();
        let rows: Vec<Vec<String>> = attempts
            .iter()
            .map(|a| {
                vec![
                    time(a.at),
                    a.awb.clone(),
                    a.status.to_string(),
                    a.attempt.to_string(),
                    a.outcome.clone(),
                    a.http_status.map_or_else(dash, |s| s.to_string()),
                    a.latency_ms.to_string(),
                    a.event_id.clone(),
                    a.error.clone().unwrap_or_else(dash),
                ]
            })
            .collect();
        emit(&listing(
            &[
                "AT", "AWB", "STATUS", "ATTEMPT", "OUTCOME", "HTTP", "MS", "EVENT", "ERROR",
            ],
            &rows,
            &format!("no delivery attempts of tenant {} match", self.tenant),
        ));
        Ok(())
    }
}

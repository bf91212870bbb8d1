//! `rms shipments --stale`: the shipments without news for longer than their status allows,
//! pulled or not: what the reconciler could not bring up to date either.

use std::time::Duration;

use shared::admin::{Admin, AdminStore};
use shared::ingest::Reingest;
use shared::ports::Pusher;
use shared::reconcile::QuietRules;

use super::{emit, listing, time, Failure, Op, Out, Target};

/// List shipments that have gone quiet (no event for 24 h waiting for pickup, 6 h otherwise),
/// of every enabled tenant or of one.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Only the shipments that have gone quiet (the only listing so far).
    #[arg(long, required = true)]
    stale: bool,
    /// Only this tenant (enabled or not).
    #[arg(long)]
    tenant: Option<String>,
    /// Quiet at least this long, whatever the status (e.g. 2h). Default: 24h waiting for
    /// pickup, 6h otherwise.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    quiet_for: Option<Duration>,
}

impl Op for Args {
    async fn run<S: AdminStore, P: Pusher, R: Reingest>(
        self,
        admin: &Admin<S, P, R>,
        out: Out,
    ) -> Result<(), Failure> {
        let rules = self
            .quiet_for
            .map_or_else(QuietRules::default, QuietRules::uniform);
        let stale = admin
            .stale_shipments(self.tenant.as_deref(), &rules)
            .await?;
        if out.json {
            out.json_lines(&stale);
            return Ok(());
        }
        let never = || "never".to_owned();
        let rows: Vec<Vec<String>> = stale
            .iter()
            .map(|s| {
                vec![
                    s.tenant_id.clone(),
                    s.shipment_key.clone(),
                    s.carrier.clone().unwrap_or_else(|| "-".to_owned()),
                    s.last_status.clone().unwrap_or_else(|| "-".to_owned()),
                    time(s.last_news_at()),
                    s.last_pulled_at.map_or_else(never, time),
                ]
            })
            .collect();
        emit(&listing(
            &[
                "TENANT",
                "SHIPMENT",
                "CARRIER",
                "LAST STATUS",
                "LAST NEWS",
                "LAST PULLED",
            ],
            &rows,
            "no stale shipments",
        ));
        Ok(())
    }
}

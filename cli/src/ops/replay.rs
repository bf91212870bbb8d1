//! `rms replay`: queue a tenant's events again, by shipment or time range.

use shared::admin::{Admin, AdminStore};
use shared::ingest::Reingest;
use shared::ports::Pusher;

use super::{emit, progress_bar, Failure, Op, Out, SelectionArgs, Target};

/// Queue again every event of a tenant that was attempted (by --awb, or --from/--to) and is
/// still kept; each is pushed again, even if it was delivered.
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
        let bar = progress_bar("replaying");
        let replayed = admin
            .replay(&self.tenant, &self.selection.selection(), &|done, total| {
                bar.set_length(u64::try_from(total).unwrap_or(u64::MAX));
                bar.set_position(u64::try_from(done).unwrap_or(u64::MAX));
            })
            .await;
        bar.finish_and_clear();
        let replayed = replayed?;
        if out.json {
            out.json_lines([serde_json::json!({
                "tenant_id": self.tenant, "replayed": replayed
            })]);
        } else {
            emit(&format!(
                "{replayed} event(s) of tenant {} queued again\n",
                self.tenant
            ));
        }
        Ok(())
    }
}

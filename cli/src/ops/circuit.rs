//! `rms circuit`: a tenant's delivery circuit ("why are its notifications not being sent?").

use shared::admin::{Admin, AdminStore};
use shared::ingest::Reingest;
use shared::ports::Pusher;

use super::{emit, time, Failure, Op, Out, Target};

/// Whether the tenant's endpoint is being skipped after failing again and again: closed (pushes
/// go out), open (messages are failed fast and rescheduled until the next probe), or half-open.
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
        let view = admin.circuit(&self.tenant).await?;
        if out.json {
            out.json_lines([&view]);
            return Ok(());
        }
        let mut text = format!("circuit: {}\n", view.state);
        if let Some(open) = &view.open {
            text.push_str(&format!(
                "opened at: {}\nfailures in a row: {}\nlast error: {}\nnext probe: {}\n",
                time(open.opened_at),
                open.failures,
                open.last_error,
                time(open.probe_at)
            ));
        }
        emit(&text);
        Ok(())
    }
}

//! `rms console`: the console on 127.0.0.1, served by the operator's own `rms` and acting on the
//! AWS stack with the operator's credentials (the ops commands' code path, `ops::on_backend`),
//! so the stack needs no new public surface. It prints a one-time sign-in link; the link's token
//! is spent at its first use, and the session it opens lives as long as the process.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use shared::admin::{Admin, AdminStore};
use shared::ingest::Reingest;
use shared::ports::Pusher;
use tokio::sync::watch;
use tracing::info;

use super::{router, Console, Gate, NotifyBase};
use crate::ops::{self, emit, Failure, Target, WithAdmin};
use crate::serve::server::{self, ServerSettings};

/// Serve the operator console on 127.0.0.1 for the AWS stack (or an embedded store), and print
/// a one-time sign-in link.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("backend").required(true).args(["stack", "local"])))]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Act on the AWS stack: the tables and queues named by --config-table, --events-table,
    /// --queue-url and --dlq-url (or RMS_CONFIG_TABLE, …), with the standard AWS credential chain.
    #[arg(long)]
    stack: bool,
    /// The stack's API URL, for the notify URLs on the carrier set-up cards: ClickpostNotifyUrl
    /// without its path, e.g. https://abc123.execute-api.ap-south-1.amazonaws.com/Prod
    /// [env: RMS_API_URL]
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
    /// The port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
}

pub fn run(args: Args) -> ExitCode {
    crate::serve::init_logging();
    let api_url = args
        .api_url
        .clone()
        .or_else(|| std::env::var("RMS_API_URL").ok())
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty());
    if let Some(url) = &api_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return ops::fail(&Failure::Setup(format!(
                "--api-url {url:?}: give the stack's API URL, e.g. \
                 https://abc123.execute-api.ap-south-1.amazonaws.com/Prod"
            )));
        }
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            return ops::fail(&Failure::Setup(format!(
                "cannot start the async runtime: {e}"
            )))
        }
    };
    let serve = Serve {
        port: args.port,
        notify: NotifyBase::Fixed(api_url),
        stack: !args.target.is_local(),
    };
    match runtime.block_on(ops::on_backend(args.target, serve)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => ops::fail(&failure),
    }
}

struct Serve {
    port: u16,
    notify: NotifyBase,
    stack: bool,
}

impl WithAdmin for Serve {
    async fn run<S, P, R>(self, admin: Admin<S, P, R>) -> Result<(), Failure>
    where
        S: AdminStore + 'static,
        P: Pusher + 'static,
        R: Reingest + 'static,
    {
        let (gate, token) = Gate::one_time();
        let console = Arc::new(Console::new(Arc::new(admin), gate, self.notify));
        // Loopback only: the console acts with the operator's credentials.
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let listener = server::listen(address)
            .map_err(|e| Failure::Setup(format!("cannot listen on {address}: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| Failure::Setup(e.to_string()))?;
        emit(&format!(
            "rms console on {}: open\n  http://{address}/console/sign-in?token={token}\n\
             (a one-time link: its token is spent when it is opened; Ctrl-C stops the console)\n",
            if self.stack {
                "the AWS stack"
            } else {
                "the embedded store"
            }
        ));
        let signalled = crate::serve::shutdown_signal();
        info!(%address, "rms console is up");
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            signalled.await;
            let _ = stop.send(true);
        });
        server::serve(
            listener,
            router(console),
            ServerSettings::default(),
            stopped,
        )
        .await;
        Ok(())
    }
}

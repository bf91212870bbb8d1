//! `rms pull`: a tenant's accounts at the carriers' tracking APIs, which the reconciler uses to
//! ask about quiet shipments. The secret is write-only: no command shows it.

use std::io::Read;

use serde_json::json;
use shared::admin::{Admin, AdminError, AdminStore, PullUpdate};
use shared::ingest::Reingest;
use shared::ports::Pusher;

use super::{emit, listing, yes_no, Failure, Op, Out, Target};

/// Pull accounts: the tenant's credentials at each carrier's tracking API (for reconciling).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create or change a tenant's account at a carrier's tracking API. The secret is write-only:
    /// it is never shown again.
    #[command(
        after_help = "Clickpost: --user is the enterprise username, the secret its API \
                            key. Shiprocket: the API user's email and password. Shipway: the \
                            username and licence key. Without --secret or --secret-stdin the \
                            current secret is kept (a new account needs one); without \
                            --base-url the current one is kept (the carrier's documented host \
                            for a new account)."
    )]
    Set {
        tenant: String,
        /// clickpost, shiprocket or shipway.
        carrier: String,
        /// The account's user (not a secret: `rms pull show` lists it).
        #[arg(long)]
        user: String,
        /// The account's secret. Prefer --secret-stdin: a command line ends up in the shell
        /// history.
        #[arg(long, value_name = "VALUE", conflicts_with = "secret_stdin")]
        secret: Option<String>,
        /// Read the secret from stdin (one line).
        #[arg(long)]
        secret_stdin: bool,
        /// The carrier API's root (https; http and local hosts too with --local), e.g. a
        /// sandbox.
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
    },
    /// Show a tenant's pull accounts: carrier, base URL, user, whether a secret is set (never
    /// the secret).
    Show { tenant: String },
    /// Remove a tenant's account at a carrier's tracking API: the reconciler stops asking that
    /// carrier about the tenant's shipments.
    Remove { tenant: String, carrier: String },
}

impl Op for Command {
    async fn run<S: AdminStore, P: Pusher, R: Reingest>(
        self,
        admin: &Admin<S, P, R>,
        out: Out,
    ) -> Result<(), Failure> {
        match self {
            Command::Set {
                tenant,
                carrier,
                user,
                secret,
                secret_stdin,
                base_url,
            } => {
                let secret = if secret_stdin {
                    Some(read_secret()?)
                } else {
                    secret
                };
                let update = PullUpdate {
                    base_url,
                    user,
                    secret,
                };
                let view = admin.set_pull(&tenant, &carrier, &update).await?;
                if out.json {
                    out.json_lines([&view]);
                } else {
                    emit(&format!(
                        "{} pull account of tenant {tenant} saved (user {}, {})\n",
                        view.carrier, view.user, view.base_url
                    ));
                }
            }
            Command::Show { tenant } => {
                let accounts = admin.pull(&tenant).await?;
                if out.json {
                    out.json_lines(&accounts);
                } else {
                    let rows: Vec<Vec<String>> = accounts
                        .iter()
                        .map(|a| {
                            vec![
                                a.carrier.to_string(),
                                a.user.clone(),
                                a.base_url.clone(),
                                yes_no(a.secret_set),
                            ]
                        })
                        .collect();
                    emit(&listing(
                        &["CARRIER", "USER", "BASE URL", "SECRET SET"],
                        &rows,
                        &format!("tenant {tenant} has no pull accounts"),
                    ));
                }
            }
            Command::Remove { tenant, carrier } => {
                admin.remove_pull(&tenant, &carrier).await?;
                if out.json {
                    out.json_lines([json!({
                        "tenant_id": tenant, "carrier": carrier, "removed": true
                    })]);
                } else {
                    emit(&format!(
                        "{carrier} pull account of tenant {tenant} removed\n"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The secret on stdin, without its line ending.
fn read_secret() -> Result<String, Failure> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| AdminError::invalid("secret", format!("cannot read stdin: {e}")))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

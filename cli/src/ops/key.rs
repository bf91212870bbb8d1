//! `rms key`: a tenant's carrier credentials. Stored as digests; a key is only ever shown by the
//! command that generated it.

use std::io::Read;

use chrono::Utc;
use serde_json::json;
use shared::admin::{Admin, AdminError, AdminStore, LIVE_KEYS_PER_CARRIER};
use shared::ingest::Reingest;
use shared::ports::Pusher;

use super::{emit, listing, time, Failure, Op, Out, Target};

/// Carrier keys: the credential each carrier sends to identify the tenant.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Add a carrier key; the tenant's other key for that carrier stays live, so a rotation has
    /// no gap (add the new key, move the carrier to it, revoke the old one).
    #[command(after_help = format!(
        "A tenant has at most {LIVE_KEYS_PER_CARRIER} live keys per carrier. Without --key or \
         --key-stdin a key is generated and printed once."
    ))]
    Add {
        tenant: String,
        /// clickpost, shiprocket or shipway.
        carrier: String,
        /// The key the carrier will send (16 to 256 characters). Prefer --key-stdin: a command
        /// line ends up in the shell history.
        #[arg(long, value_name = "KEY", conflicts_with = "key_stdin")]
        key: Option<String>,
        /// Read the key from stdin (one line).
        #[arg(long)]
        key_stdin: bool,
    },
    /// List a tenant's carrier keys: their ids and when they were added, never the keys.
    List { tenant: String },
    /// Revoke a key by its id (from `rms key list`): the carrier's pushes with it are refused.
    Revoke {
        tenant: String,
        carrier: String,
        /// The key id, or at least its first 8 characters.
        key_id: String,
    },
}

impl Op for Command {
    async fn run<S: AdminStore, P: Pusher, R: Reingest>(
        self,
        admin: &Admin<S, P, R>,
        out: Out,
    ) -> Result<(), Failure> {
        match self {
            Command::Add {
                tenant,
                carrier,
                key,
                key_stdin,
            } => {
                let key = if key_stdin { Some(read_key()?) } else { key };
                let added = admin
                    .add_key(&tenant, &carrier, key.as_deref(), Utc::now())
                    .await?;
                if out.json {
                    out.json_lines([&added]);
                } else {
                    emit(&format!(
                        "{} key {} added for tenant {tenant}\n",
                        added.view.carrier, added.view.key_id
                    ));
                    if let Some(key) = &added.key {
                        emit(&format!("key: {key}\n"));
                    }
                }
                if added.key.is_some() {
                    eprintln!(
                        "warning: this is the only time the key is shown; give it to {} now",
                        added.view.carrier
                    );
                }
            }
            Command::List { tenant } => {
                let keys = admin.keys(&tenant).await?;
                if out.json {
                    out.json_lines(&keys);
                } else {
                    let rows: Vec<Vec<String>> = keys
                        .iter()
                        .map(|k| vec![k.carrier.to_string(), k.key_id.clone(), time(k.added_at)])
                        .collect();
                    emit(&listing(
                        &["CARRIER", "KEY ID", "ADDED"],
                        &rows,
                        &format!("tenant {tenant} has no carrier keys"),
                    ));
                }
            }
            Command::Revoke {
                tenant,
                carrier,
                key_id,
            } => {
                admin.revoke_key(&tenant, &carrier, &key_id).await?;
                if out.json {
                    out.json_lines([json!({
                        "tenant_id": tenant, "carrier": carrier, "key_id": key_id, "revoked": true
                    })]);
                } else {
                    emit(&format!(
                        "{carrier} key {key_id} of tenant {tenant} revoked\n"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The key on stdin, without its line ending.
fn read_key() -> Result<String, Failure> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| AdminError::invalid("key", format!("cannot read stdin: {e}")))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

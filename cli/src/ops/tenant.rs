//! `rms tenant`: create, list, show, enable, disable.

use chrono::Utc;
use serde_json::json;
use shared::admin::{Admin, AdminError, AdminStore, Tenant};
use shared::ingest::Reingest;
use shared::ports::Pusher;

use super::{emit, fields, listing, time, yes_no, Failure, Op, Out, Target};

/// Tenants: the clients whose carriers push to RMS and whose endpoint RMS pushes to.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a tenant, enabled; next: `rms key add` and `rms push set`.
    Create {
        /// 1 to 64 letters, digits, '-' or '_'.
        id: String,
        /// Do not attach the carrier's payload to each event as `source`.
        #[arg(long)]
        no_source: bool,
    },
    /// List every tenant.
    List,
    /// Show a tenant, its carrier keys (ids only) and its Push Config.
    Show { id: String },
    /// Enable a tenant: its carriers' pushes are accepted again.
    Enable { id: String },
    /// Disable a tenant: its carriers' pushes are refused (401) until it is enabled.
    Disable { id: String },
}

impl Op for Command {
    async fn run<S: AdminStore, P: Pusher, R: Reingest>(
        self,
        admin: &Admin<S, P, R>,
        out: Out,
    ) -> Result<(), Failure> {
        match self {
            Command::Create { id, no_source } => {
                let tenant = admin
                    .create_tenant(&id, Some(!no_source), Utc::now())
                    .await?;
                if out.json {
                    out.json_lines([&tenant]);
                } else {
                    emit(&format!(
                        "tenant {} created (enabled; carrier payload attached as source: {})\n",
                        tenant.id,
                        yes_no(tenant.include_source)
                    ));
                }
            }
            Command::List => {
                let tenants = admin.tenants().await?;
                if out.json {
                    out.json_lines(&tenants);
                } else {
                    let rows: Vec<Vec<String>> = tenants
                        .iter()
                        .map(|t| {
                            vec![
                                t.id.to_string(),
                                yes_no(t.enabled),
                                yes_no(t.include_source),
                                time(t.created_at),
                                managed_by(t).to_owned(),
                            ]
                        })
                        .collect();
                    emit(&listing(
                        &["ID", "ENABLED", "SOURCE", "CREATED", "MANAGED BY"],
                        &rows,
                        "no tenants",
                    ));
                }
            }
            Command::Show { id } => show(admin, &id, out).await?,
            Command::Enable { id } => set_enabled(admin, &id, true, out).await?,
            Command::Disable { id } => set_enabled(admin, &id, false, out).await?,
        }
        Ok(())
    }
}

async fn show<S: AdminStore, P: Pusher, R: Reingest>(
    admin: &Admin<S, P, R>,
    id: &str,
    out: Out,
) -> Result<(), Failure> {
    let tenant = admin.tenant(id).await?;
    let keys = admin.keys(id).await?;
    let push = match admin.push(id).await {
        Ok(view) => Some(view),
        Err(AdminError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if out.json {
        let mut value = json!(tenant);
        value["keys"] = json!(keys);
        value["push"] = json!(push);
        out.json_lines([value]);
        return Ok(());
    }
    let keys_text = if keys.is_empty() {
        "none (rms key add)".to_owned()
    } else {
        keys.iter()
            .map(|k| format!("{} {}", k.carrier, k.key_id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let push_text = match &push {
        Some(p) => format!(
            "{} ({})",
            p.url,
            if p.enabled { "enabled" } else { "disabled" }
        ),
        None => "not configured (rms push set)".to_owned(),
    };
    let managed = if tenant.file_managed {
        "rms.toml (edit the file and restart rms serve to change it)".to_owned()
    } else {
        managed_by(&tenant).to_owned()
    };
    emit(&fields(&[
        ("id", tenant.id.to_string()),
        ("managed by", managed),
        ("enabled", yes_no(tenant.enabled)),
        ("source", yes_no(tenant.include_source)),
        ("created", time(tenant.created_at)),
        ("keys", keys_text),
        ("push", push_text),
    ]));
    Ok(())
}

/// Where a tenant is changed: `rms.toml` (then the admin API and these commands refuse), or
/// here and through the admin API.
fn managed_by(tenant: &Tenant) -> &'static str {
    if tenant.file_managed {
        "rms.toml"
    } else {
        "admin API"
    }
}

async fn set_enabled<S: AdminStore, P: Pusher, R: Reingest>(
    admin: &Admin<S, P, R>,
    id: &str,
    enabled: bool,
    out: Out,
) -> Result<(), Failure> {
    let tenant: Tenant = admin.update_tenant(id, Some(enabled), None).await?;
    if out.json {
        out.json_lines([&tenant]);
    } else if enabled {
        emit(&format!("tenant {} enabled\n", tenant.id));
    } else {
        emit(&format!(
            "tenant {} disabled: its carriers' pushes are refused until it is enabled\n",
            tenant.id
        ));
    }
    Ok(())
}

//! `rms shipments --stale`: the shipments without news for longer than their status allows,
//! pulled or not: what the reconciler could not bring up to date either.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use shared::adapters::sqlite::SqliteStore;
use shared::reconcile::QuietRules;
use shared::TenantId;

use super::{emit, table, time};

/// List shipments that have gone quiet (no event for 24 h waiting for pickup, 6 h otherwise).
#[derive(clap::Args)]
pub struct Args {
    /// The embedded store: the SQLite database `rms serve` uses.
    #[arg(long, value_name = "DB", alias = "database")]
    local: PathBuf,
    /// Only the shipments that have gone quiet (the only listing so far).
    #[arg(long, required = true)]
    stale: bool,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// One JSON object a line.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> ExitCode {
    match list(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn list(args: &Args) -> Result<(), String> {
    if !args.local.exists() {
        return Err(format!(
            "{} does not exist; give the database rms serve uses (--local rms.db)",
            args.local.display()
        ));
    }
    let store = SqliteStore::open(&args.local)
        .map_err(|e| format!("cannot open {}: {e}", args.local.display()))?;
    let tenant = match &args.tenant {
        Some(t) => Some(TenantId::parse(t).map_err(|e| format!("--tenant: {e}"))?),
        None => None,
    };
    let stale = store
        .stale_shipments(tenant.as_ref(), &QuietRules::default(), Utc::now())
        .map_err(|e| format!("cannot read the shipments: {e}"))?;
    let never = || "never".to_owned();
    if args.json {
        let mut text = String::new();
        for (tenant, s) in &stale {
            let line = serde_json::json!({
                "tenant_id": tenant.as_str(),
                "shipment_key": s.shipment_key,
                "carrier": s.state.carrier.map(|c| c.as_str()),
                "last_status": s.state.last_status.map(|c| c.as_str()),
                "last_event_at": s.state.latest_event_time,
                "last_received_at": s.state.last_received_at,
                "last_pulled_at": s.last_pulled_at,
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        emit(&text);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = stale
        .iter()
        .map(|(tenant, s)| {
            vec![
                tenant.to_string(),
                s.shipment_key.clone(),
                s.state.carrier.map_or_else(never, |c| c.to_string()),
                s.state
                    .last_status
                    .map_or_else(|| "-".to_owned(), |st| st.as_str().to_owned()),
                time(
                    s.state
                        .last_received_at
                        .unwrap_or(s.state.latest_event_time),
                ),
                s.last_pulled_at.map_or_else(never, time),
            ]
        })
        .collect();
    emit(&table(
        &[
            "TENANT",
            "SHIPMENT",
            "CARRIER",
            "LAST STATUS",
            "LAST NEWS",
            "LAST PULLED",
        ],
        &rows,
    ));
    Ok(())
}

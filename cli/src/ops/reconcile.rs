//! `rms reconcile`: one reconcile run by hand (the same use-case as `rms serve`'s loop), with a
//! progress bar and a summary table; `--dry-run` lists what would be pulled without a call.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use indicatif::ProgressBar;
use shared::adapters::pull_http::HttpPullTransport;
use shared::adapters::sqlite::SqliteStore;
use shared::ports::NoMetrics;
use shared::push::TargetPolicy;
use shared::reconcile::{Progress, QuietRules, ReconcileSettings, Reconciler, ShipmentIndex};
use shared::{Carrier, TenantId};

use super::{emit, progress_bar, table};
use crate::serve::reconciler_accounts;

/// Pull the quiet shipments of the tenants' carrier accounts now, and queue what the webhooks
/// never brought.
#[derive(clap::Args)]
pub struct Args {
    /// The embedded store: the SQLite database `rms serve` uses (its pull accounts come from
    /// rms.toml's `[tenants.pull.<carrier>]`).
    #[arg(long, value_name = "DB", alias = "database")]
    local: PathBuf,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this carrier.
    #[arg(long)]
    carrier: Option<Carrier>,
    /// Pull shipments quiet at least this long, whatever their status (`0s`: every shipment that
    /// is not delivered or closed). Default: 24h waiting for pickup, 6h otherwise.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    quiet_for: Option<Duration>,
    /// List the quiet shipments and the calls a run would make; call no carrier.
    #[arg(long)]
    dry_run: bool,
    /// Carrier API base URLs on loopback or private addresses are allowed (local fakes).
    #[arg(long)]
    allow_private_targets: bool,
    /// The most tracking calls per account.
    #[arg(long, default_value_t = 100)]
    calls_per_account: usize,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn advance(&self, tenant: &TenantId, carrier: Carrier, done: usize, total: usize) {
        self.0.set_message(format!("{tenant} {carrier}"));
        self.0.set_length(u64::try_from(total).unwrap_or(u64::MAX));
        self.0.set_position(u64::try_from(done).unwrap_or(u64::MAX));
    }
}

pub fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(reconcile(args)) {
        Ok(code) => code,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

async fn reconcile(args: Args) -> Result<ExitCode, String> {
    if !args.local.exists() {
        return Err(format!(
            "{} does not exist; give the database rms serve uses (--local rms.db)",
            args.local.display()
        ));
    }
    let store = Arc::new(
        SqliteStore::open(&args.local)
            .map_err(|e| format!("cannot open {}: {e}", args.local.display()))?,
    );
    let tenant = match &args.tenant {
        Some(t) => Some(TenantId::parse(t).map_err(|e| format!("--tenant: {e}"))?),
        None => None,
    };
    let policy = if args.allow_private_targets {
        TargetPolicy::LOCAL
    } else {
        TargetPolicy::default()
    };
    let accounts = reconciler_accounts(&store, tenant.as_ref(), args.carrier, policy).await?;
    if accounts.is_empty() {
        emit("no pull accounts: give a tenant [tenants.pull.<carrier>] in rms.toml and restart rms serve\n");
        return Ok(ExitCode::SUCCESS);
    }
    let mut settings = ReconcileSettings {
        calls_per_account: args.calls_per_account.max(1),
        ..ReconcileSettings::default()
    };
    if let Some(quiet_for) = args.quiet_for {
        settings.rules = QuietRules::uniform(quiet_for);
    }
    let now = Utc::now();
    if args.dry_run {
        let mut rows = Vec::new();
        for (tenant, account) in &accounts {
            let quiet = store
                .quiet_shipments(tenant, account.carrier(), &settings.rules, now, usize::MAX)
                .await
                .map_err(|e| format!("cannot read the shipments: {e}"))?;
            rows.push(vec![
                tenant.to_string(),
                account.carrier().to_string(),
                quiet.len().to_string(),
                quiet
                    .iter()
                    .take(5)
                    .map(|s| s.shipment_key.clone())
                    .collect::<Vec<_>>()
                    .join(" "),
            ]);
        }
        emit(&table(&["TENANT", "CARRIER", "QUIET", "FIRST"], &rows));
        return Ok(ExitCode::SUCCESS);
    }
    let transport =
        HttpPullTransport::new(policy).map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let reconciler = Reconciler::new(
        store.clone(),
        store.clone(),
        store.clone(),
        transport,
        NoMetrics,
        settings,
    );
    let bar = Bar(progress_bar("pulling"));
    let reports = reconciler.run(&accounts, now, &bar).await;
    bar.0.finish_and_clear();
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            vec![
                r.tenant_id.clone(),
                r.carrier.clone(),
                r.quiet.to_string(),
                r.calls.to_string(),
                r.found.to_string(),
                r.reconciled.to_string(),
                r.known.to_string(),
                r.not_found.to_string(),
                r.errors.first().cloned().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    emit(&table(
        &[
            "TENANT",
            "CARRIER",
            "QUIET",
            "CALLS",
            "FOUND",
            "NEW",
            "KNOWN",
            "NOT FOUND",
            "ERROR",
        ],
        &rows,
    ));
    let failed = reports.iter().any(|r| !r.errors.is_empty());
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

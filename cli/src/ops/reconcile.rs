//! `rms reconcile`: one reconcile run by hand (the same use-case as `rms serve`'s loop and the
//! `reconcile` function), on the embedded store or on the stack, with a progress bar and a
//! summary table; `--dry-run` lists what would be pulled without a call.

use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use indicatif::ProgressBar;
use shared::adapters::dynamodb::DynamoConfigStore;
use shared::adapters::pull_http::HttpPullTransport;
use shared::adapters::sqlite::SqliteStore;
use shared::carriers::pull::PullTransport;
use shared::ports::{DeliveryLog, Intake, Metrics, NoMetrics, ShipmentStates};
use shared::push::TargetPolicy;
use shared::reconcile::{
    self, Progress, PullAccount, QuietRules, ReconcileSettings, Reconciler, ShipmentIndex,
};
use shared::{Carrier, TenantId};

use super::{aws_names, emit, progress_bar, table, Target};

/// Pull the quiet shipments of the tenants' carrier accounts now, and queue what the webhooks
/// never brought.
#[derive(clap::Args)]
pub struct Args {
    /// With --local, the pull accounts are rms.toml's `[tenants.pull.<carrier>]` and the admin
    /// API's; on the stack, the config table's (`rms pull set`).
    #[command(flatten)]
    pub target: Target,
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
    match runtime.block_on(on_backend(args)) {
        Ok(code) => code,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Builds the run on the store `--local` names, or on the stack.
async fn on_backend(args: Args) -> Result<ExitCode, String> {
    let tenant = match &args.tenant {
        Some(t) => Some(TenantId::parse(t).map_err(|e| format!("--tenant: {e}"))?),
        None => None,
    };
    let policy = if args.allow_private_targets {
        TargetPolicy::LOCAL
    } else {
        TargetPolicy::default()
    };
    let mut settings = ReconcileSettings {
        calls_per_account: args.calls_per_account.max(1),
        ..ReconcileSettings::default()
    };
    if let Some(quiet_for) = args.quiet_for {
        settings.rules = QuietRules::uniform(quiet_for);
    }
    let transport =
        HttpPullTransport::new(policy).map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    match &args.target.local {
        Some(path) => {
            crate::database::check(path, false).map_err(|message| format!("--local: {message}"))?;
            let store = SqliteStore::open(path)
                .map_err(|e| format!("--local {}: cannot open it: {e}", path.display()))?;
            let accounts = accounts(&store, tenant.as_ref(), args.carrier, policy).await?;
            let reconciler = Reconciler::new(
                store.clone(),
                store.clone(),
                store,
                transport,
                NoMetrics,
                settings,
            );
            reconcile_once(&args, &accounts, &reconciler).await
        }
        None => {
            let names = aws_names(&args.target).map_err(|e| e.to_string())?;
            let config = aws_config::load_from_env().await;
            let dynamo = aws_sdk_dynamodb::Client::new(&config);
            let sqs = aws_sdk_sqs::Client::new(&config);
            let function = ::reconcile::Config {
                config_table: names.config_table,
                events_table: names.events_table,
                events_queue_url: names.queue_url,
                settings,
                targets: policy,
            };
            let source = DynamoConfigStore::new(dynamo.clone(), &function.config_table);
            let accounts = accounts(&source, tenant.as_ref(), args.carrier, policy).await?;
            let reconciler =
                ::reconcile::aws_reconciler_with::<_, NoMetrics>(&function, dynamo, sqs, transport);
            reconcile_once(&args, &accounts, &reconciler).await
        }
    }
}

/// The stored pull accounts (of `tenant`, at `carrier`, when given) as the reconciler takes them.
async fn accounts(
    source: &impl reconcile::PullAccountSource,
    tenant: Option<&TenantId>,
    carrier: Option<Carrier>,
    policy: TargetPolicy,
) -> Result<Vec<(TenantId, PullAccount)>, String> {
    reconcile::accounts(source, tenant, carrier, policy)
        .await
        .map_err(|e| format!("cannot read the pull accounts: {e}"))
}

/// One run (or, with `--dry-run`, the quiet shipments it would pull), and its summary table;
/// exit 1 if an account had errors.
async fn reconcile_once<S, I, L, T, M>(
    args: &Args,
    accounts: &[(TenantId, PullAccount)],
    reconciler: &Reconciler<S, I, L, T, M>,
) -> Result<ExitCode, String>
where
    S: ShipmentIndex + ShipmentStates,
    I: Intake,
    L: DeliveryLog,
    T: PullTransport,
    M: Metrics,
{
    if accounts.is_empty() {
        emit(if args.target.local.is_some() {
            "no pull accounts: give a tenant [tenants.pull.<carrier>] in rms.toml and restart rms serve, or use rms pull set\n"
        } else {
            "no pull accounts: give a tenant's carrier account with rms pull set\n"
        });
        return Ok(ExitCode::SUCCESS);
    }
    let now = Utc::now();
    if args.dry_run {
        let mut rows = Vec::new();
        for (tenant, account) in accounts {
            let quiet = reconciler
                .shipments
                .quiet_shipments(
                    tenant,
                    account.carrier(),
                    &reconciler.settings.rules,
                    now,
                    usize::MAX,
                )
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
    let bar = Bar(progress_bar("pulling"));
    let reports = reconciler.run(accounts, now, &bar).await;
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

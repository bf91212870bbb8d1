//! `rms serve`: every carrier notify path, the dispatcher loop and a small admin API in one
//! process, on the same `shared` use-cases as the Lambdas, over the embedded SQLite store.

mod config;
mod demo;
mod routes;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::stream::{self, StreamExt};
use shared::adapters::push::{HttpPusher, TargetPolicy};
use shared::adapters::sqlite::{Leased, SqliteStore};
use shared::admin::{Admin, AdminPolicy};
use shared::dispatch::{settle, Dispatch, DispatchSettings};
use shared::ingest::Ingest;
use shared::ports::NoMetrics;
use shared::CanonicalEvent;
use tokio::sync::watch;
use tracing::{error, info, warn};

pub use config::ServeConfig;

pub type LocalIngest = Ingest<Arc<SqliteStore>, Arc<SqliteStore>, NoMetrics>;
pub type LocalDispatch = Dispatch<Arc<SqliteStore>, HttpPusher, Arc<SqliteStore>, NoMetrics>;
/// Quarantine replays go through the same ingest as the carriers' requests.
pub type LocalAdmin = Admin<Arc<SqliteStore>, HttpPusher, Arc<LocalIngest>>;

/// Run the relay on this machine: carrier notify paths, delivery, admin API.
#[derive(clap::Args)]
pub struct Args {
    /// The configuration file (TOML): listen address, database, dispatch settings, tenants.
    #[arg(long, value_name = "FILE", conflicts_with = "demo")]
    config: Option<PathBuf>,
    /// Listen here instead (e.g. 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Use this SQLite database instead.
    #[arg(long, value_name = "FILE")]
    database: Option<PathBuf>,
    /// Start with a demo tenant and a built-in receiver that prints what it gets.
    #[arg(long)]
    demo: bool,
}

pub fn run(args: Args) -> ExitCode {
    init_logging();
    let mut config = match &args.config {
        Some(path) => match ServeConfig::load(path) {
            Ok(c) => c,
            Err(e) => return fail(&format!("configuration: {e}")),
        },
        None => ServeConfig::default(),
    };
    if let Some(listen) = &args.listen {
        match listen.parse() {
            Ok(addr) => config.listen = addr,
            Err(_) => {
                return fail(&format!(
                    "--listen {listen:?} is not an address such as 127.0.0.1:8080"
                ))
            }
        }
    }
    if let Some(database) = &args.database {
        config.database = database.clone();
    } else if args.demo {
        config.database = PathBuf::from("rms-demo.db");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(serve(config, args.demo)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(shared::logging::filter("info"))
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Everything the routes and the dispatcher loop share.
pub struct App {
    pub store: Arc<SqliteStore>,
    pub ingest: Arc<LocalIngest>,
    pub dispatch: LocalDispatch,
    pub admin: Arc<LocalAdmin>,
    pub config: ServeConfig,
}

async fn serve(mut config: ServeConfig, demo: bool) -> Result<(), String> {
    let file_limit = server::raise_file_limit();
    config.server.max_connections =
        server::connection_cap(config.server.max_connections, file_limit);
    let listener = server::listen(config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    // The real address (port 0 picks a free one), for the demo receiver's URL and the banner.
    config.listen = listener.local_addr().map_err(|e| e.to_string())?;
    if !config.listen.ip().is_loopback() && config.admin_token.is_none() {
        return Err(format!(
            "{} is reachable from other machines, and so would be the admin API: set admin_token \
             in the configuration (the admin API then needs `Authorization: Bearer <token>`), or \
             listen on 127.0.0.1",
            config.listen
        ));
    }
    if demo {
        demo::configure(&mut config);
    }
    let store = Arc::new(SqliteStore::open(&config.database).map_err(|e| {
        format!(
            "cannot open the database {}: {e}",
            config.database.display()
        )
    })?);
    load_tenants(&store, &config)
        .map_err(|e| format!("cannot store the configured tenants: {e}"))?;

    let targets = TargetPolicy {
        allow_private: config.allow_private_targets,
        allow_http: config.allow_private_targets,
    };
    let ingest = Arc::new(Ingest::new(
        store.clone(),
        store.clone(),
        NoMetrics,
        config.ingest.clone(),
    ));
    let app = Arc::new(App {
        ingest: ingest.clone(),
        dispatch: Dispatch {
            configs: store.clone(),
            pusher: HttpPusher::new(targets)
                .map_err(|e| format!("cannot build the HTTP client: {e}"))?,
            log: store.clone(),
            metrics: NoMetrics,
            settings: DispatchSettings {
                retry_schedule: config.retry_schedule.clone(),
                ..DispatchSettings::default()
            },
        },
        admin: Arc::new(Admin {
            store: store.clone(),
            pusher: HttpPusher::new(targets)
                .map_err(|e| format!("cannot build the HTTP client: {e}"))?,
            reingest: ingest,
            policy: AdminPolicy {
                allow_http: config.allow_private_targets,
            },
        }),
        store,
        config,
    });

    let (stop, stopped) = watch::channel(false);
    let dispatcher = tokio::spawn(dispatch_loop(app.clone(), stopped.clone()));
    let router = routes::router(app.clone(), demo);
    info!(
        listen = %app.config.listen,
        database = %app.config.database.display(),
        max_connections = app.config.server.max_connections,
        "rms serve is up"
    );
    if demo {
        demo::banner(&app.config);
    }
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutting down: no new requests; finishing deliveries in flight");
        let _ = stop.send(true);
    });
    server::serve(listener, router, app.config.server.clone(), stopped).await;
    dispatcher
        .await
        .map_err(|e| format!("the dispatcher loop failed: {e}"))?;
    info!("stopped");
    Ok(())
}

/// The configuration file's tenants are the truth for those tenants: stored on every start.
fn load_tenants(
    store: &SqliteStore,
    config: &ServeConfig,
) -> Result<(), shared::ports::Unavailable> {
    for tenant in &config.tenants {
        store.put_tenant(&tenant.id, tenant.include_source)?;
        for (carrier, key) in &tenant.keys {
            store.put_credential(*carrier, &key.digest(), &tenant.id)?;
        }
        if let Some(push) = &tenant.push {
            store.put_push_config(&tenant.id, push)?;
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// The local event source mapping: lease a batch, deliver it concurrently, settle each message.
/// On shutdown the batch in hand is finished; nothing new is leased.
async fn dispatch_loop(app: Arc<App>, stopped: watch::Receiver<bool>) {
    let config = &app.config;
    // Long enough for the slowest push to finish before the message could be handed out again.
    let visibility = config.timeout.max(Duration::from_secs(1)) * 3;
    while !*stopped.borrow() {
        let batch = match app.store.lease(
            config.concurrency,
            visibility,
            config.max_attempts,
            Utc::now(),
        ) {
            Ok(batch) => batch,
            Err(e) => {
                error!(error = %e, "cannot read the queue");
                Vec::new()
            }
        };
        if batch.is_empty() {
            let mut stop = stopped.clone();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        stream::iter(batch)
            .for_each_concurrent(config.concurrency, |message| deliver(&app, message))
            .await;
    }
}

async fn deliver(app: &App, message: Leased) {
    let attributes = vec![
        ("event_id".to_owned(), message.event_id.clone()),
        ("tenant_id".to_owned(), message.tenant_id.clone()),
    ];
    let decision = match serde_json::from_str::<CanonicalEvent>(&message.body) {
        Ok(event) if message.replay => {
            app.dispatch
                .redeliver(&event, message.receive_count, Utc::now())
                .await
        }
        Ok(event) => {
            app.dispatch
                .deliver(&event, message.receive_count, Utc::now())
                .await
        }
        Err(e) => shared::dispatch::Decision::DeadLetter {
            reason: format!("the message is not an rms.tracking.v1 event: {e}"),
        },
    };
    if settle(
        &decision,
        app.store.as_ref(),
        &message.receipt,
        &message.body,
        &attributes,
    )
    .await
    {
        if let Err(e) = app.store.ack(&message.receipt) {
            warn!(event_id = %message.event_id, error = %e, "delivered but not removed from the queue; it will be skipped as delivered");
        }
    }
}

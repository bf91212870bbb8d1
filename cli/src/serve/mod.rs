//! `rms serve`: every carrier notify path, the dispatcher loop and a small admin API in one
//! process, on the same `shared` use-cases as the Lambdas, over the embedded SQLite store.

mod config;
mod demo;
mod dispatcher;
mod reconciler;
mod routes;
pub(crate) mod server;
mod silence;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use shared::adapters::push::HttpPusher;
use shared::adapters::sqlite::{Durability, FileTenant, FileTenantsError, SqliteStore};
use shared::admin::{Admin, KeyView};
use shared::circuit::{Breaker, BreakerSettings};
use shared::dispatch::{Dispatch, DispatchSettings};
use shared::ingest::Ingest;
use shared::ports::NoMetrics;
use tokio::sync::watch;
use tracing::{info, warn};

pub use config::ServeConfig;

pub type LocalIngest = Ingest<SqliteStore, SqliteStore, NoMetrics>;
pub type LocalDispatch =
    Dispatch<SqliteStore, HttpPusher, dispatcher::AttemptLog, NoMetrics, SqliteStore, SqliteStore>;
/// Quarantine replays go through the same ingest as the carriers' requests.
pub type LocalAdmin = Admin<SqliteStore, HttpPusher, LocalIngest>;

/// Run the relay on this machine: carrier notify paths, delivery, admin API.
#[derive(clap::Args)]
pub struct Args {
    /// The configuration file (TOML): listen address, database, dispatch settings, tenants
    /// (README, "rms serve"). One of --config and --demo is needed.
    #[arg(long, value_name = "FILE", conflicts_with = "demo")]
    config: Option<PathBuf>,
    /// The address to listen on, over the file's `listen`: IP or host name, and port (e.g.
    /// 127.0.0.1:9000, localhost:9000) [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The SQLite database, over the file's `database`; created if missing, in an existing
    /// folder [default: rms.db, or rms-demo.db with --demo]
    #[arg(long, value_name = "FILE")]
    database: Option<PathBuf>,
    /// Start with a demo tenant and a built-in receiver that prints what it gets; no file needed.
    #[arg(long)]
    demo: bool,
    /// When a carrier hears 200: once its event is on stable storage (fsync, the default), or
    /// once it is written to the operating system (os: survives the process being killed, not a
    /// power cut). Overrides `durability` in the configuration file.
    #[arg(long, value_name = "fsync|os")]
    durability: Option<Durability>,
}

pub fn run(args: Args) -> ExitCode {
    init_logging();
    let mut config =
        match &args.config {
            Some(path) => match ServeConfig::load(path) {
                Ok(c) => c,
                Err(e) => return fail(&format!("configuration: {e}")),
            },
            // A database alone: served with the default settings, its tenants as stored.
            None if args.demo || args.database.is_some() => ServeConfig::default(),
            None => return fail(
                "rms serve needs a configuration: `rms serve --demo` to try it (a demo tenant and \
                 a receiver that prints what it gets, no file needed), or `rms serve --config \
                 rms.toml` (the README's \"rms serve\" section shows the file), or `rms serve \
                 --database FILE` for a database set up before",
            ),
        };
    if let Some(listen) = &args.listen {
        match config::listen_address(listen) {
            Ok(addr) => config.listen = addr,
            Err(message) => return fail(&format!("--listen: {message}")),
        }
    }
    if let Some(durability) = args.durability {
        config.durability = durability;
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

pub(crate) fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(shared::logging::filter("info"))
        .with_target(false)
        .with_ansi(colours())
        // A log that cannot be written (stderr piped to a reader that exited) is dropped: the
        // subscriber's own report of it would panic in `eprintln!`, taking the task that logged.
        .log_internal_errors(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Colours in the log only on a terminal, and never with `NO_COLOR` set (no-color.org).
fn colours() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Everything the routes and the dispatcher loop share.
pub struct App {
    pub store: SqliteStore,
    pub ingest: LocalIngest,
    pub dispatch: LocalDispatch,
    pub admin: Arc<LocalAdmin>,
    pub config: ServeConfig,
}

async fn serve(mut config: ServeConfig, demo: bool) -> Result<(), String> {
    let file_limit = server::raise_file_limit();
    config.server.max_connections =
        server::connection_cap(config.server.max_connections, file_limit);
    let listener = server::listen(config.listen).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            format!(
                "cannot listen on {}: another program is using port {}; stop it, or pick another \
                 port with --listen {}:PORT (or `listen` in the configuration)",
                config.listen,
                config.listen.port(),
                config.listen.ip()
            )
        } else {
            format!("cannot listen on {}: {e}", config.listen)
        }
    })?;
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
    crate::database::check(&config.database, true)?;
    // Held until the process ends: one `rms serve` per database, so that the leases left by a
    // crashed one can be released at start.
    let _owner = lock_database(&config.database)?;
    let store = SqliteStore::open_with(&config.database, config.durability).map_err(|e| {
        format!(
            "cannot open the database {}: {e}",
            config.database.display()
        )
    })?;
    load_tenants(&store, &config)?;
    match store.release_leases(Utc::now()) {
        Ok(0) => {}
        Ok(released) => {
            info!(
                released,
                "messages in flight when the last run stopped are due again"
            )
        }
        Err(e) => return Err(format!("cannot read the queue: {e}")),
    }

    let targets = config.targets();
    let ingest = Ingest::new(
        store.clone(),
        store.clone(),
        NoMetrics,
        config.ingest.clone(),
    );
    let app = Arc::new(App {
        ingest: ingest.clone(),
        dispatch: Dispatch {
            configs: store.clone(),
            pusher: HttpPusher::new(targets)
                .map_err(|e| format!("cannot build the HTTP client: {e}"))?,
            log: dispatcher::AttemptLog(store.clone()),
            metrics: NoMetrics,
            // One process delivers: its own circuit changes are all there is, and a read costs
            // microseconds, so the stored circuit is read every time (an admin's Push Config
            // change closes it at once).
            breaker: Breaker::new(
                store.clone(),
                BreakerSettings {
                    cache: Duration::ZERO,
                    ..config.breaker.clone()
                },
            ),
            shipments: store.clone(),
            settings: DispatchSettings {
                retry_schedule: config.retry_schedule.clone(),
                max_attempts: config.max_attempts,
                ..DispatchSettings::default()
            },
        },
        admin: Arc::new(Admin {
            store: store.clone(),
            pusher: HttpPusher::new(targets)
                .map_err(|e| format!("cannot build the HTTP client: {e}"))?,
            reingest: ingest,
            policy: targets,
        }),
        store,
        config,
    });

    let (stop, stopped) = watch::channel(false);
    let dispatcher = tokio::spawn(dispatcher::run(app.clone(), stopped.clone()));
    tokio::spawn(silence::watch(app.clone(), stopped.clone()));
    if let Some(every) = app.config.reconcile_every {
        let reconciler = Arc::new(shared::reconcile::Reconciler::new(
            app.store.clone(),
            app.store.clone(),
            app.store.clone(),
            shared::adapters::pull_http::HttpPullTransport::new(targets)
                .map_err(|e| format!("cannot build the HTTP client: {e}"))?,
            NoMetrics,
            app.config.reconcile.clone(),
        ));
        tokio::spawn(reconciler::run(
            reconciler,
            app.store.clone(),
            targets,
            every,
            stopped.clone(),
        ));
    }
    let router = routes::router(app.clone(), demo);
    let signalled = shutdown_signal();
    info!(
        listen = %app.config.listen,
        database = %app.config.database.display(),
        durability = %app.store.durability(),
        max_connections = app.config.server.max_connections,
        "rms serve is up"
    );
    if demo {
        demo::banner(&app.config);
    }
    tokio::spawn(async move {
        signalled.await;
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

/// The configuration file's tenants are the truth for those tenants: stored on every start, with
/// their keys and Push Config, and changed only by editing the file (the admin API answers 409).
/// Without a file (`rms serve` alone) nothing is applied, so the tenants of the file the database
/// was last started with stay that file's.
fn load_tenants(store: &SqliteStore, config: &ServeConfig) -> Result<(), String> {
    if config.file.is_none() && config.tenants.is_empty() {
        return Ok(());
    }
    let tenants: Vec<FileTenant> = config
        .tenants
        .iter()
        .map(|t| FileTenant {
            id: t.id.clone(),
            enabled: t.enabled,
            include_source: t.include_source,
            keys: t
                .keys
                .iter()
                .map(|k| (k.carrier, k.credential.digest()))
                .collect(),
            push: t.push.clone(),
        })
        .collect();
    let db = config.database.display();
    match store.apply_file_tenants(&tenants, Utc::now()) {
        Ok(applied) => {
            // The file's pull accounts replace the stored ones of its tenants, as its keys do.
            for tenant in &config.tenants {
                let records: Vec<_> = tenant.pull.iter().map(|a| a.record()).collect();
                store
                    .set_pull_accounts(&tenant.id, &records)
                    .map_err(|e| format!("cannot store the configured pull accounts: {e}"))?;
            }
            for (tenant, key) in &applied.revoked {
                warn!(tenant_id = %tenant, carrier = %key.carrier, key_id = %KeyView::from(key).key_id, "carrier key revoked: rms.toml does not list it for this tenant");
            }
            for tenant in &applied.released {
                warn!(tenant_id = %tenant, "tenant no longer in rms.toml: kept, with its keys and Push Config, and changed through the admin API from now on; to stop it: rms tenant disable {tenant} --local {db}");
            }
            Ok(())
        }
        Err(FileTenantsError::KeyOwned {
            tenant,
            carrier,
            digest,
            owner,
        }) => {
            let field = config
                .tenants
                .iter()
                .filter(|t| t.id == tenant)
                .flat_map(|t| &t.keys)
                .find(|k| k.carrier == carrier && k.credential.digest() == digest)
                .map_or_else(
                    || format!("tenant {tenant}'s {carrier} key"),
                    |k| k.field.clone(),
                );
            Err(format!(
                "{field}: this key is tenant {owner}'s {carrier} key in the database {db}; a key \
                 identifies one tenant and never moves to another. Give tenant {tenant} a key of \
                 its own, or revoke it from {owner} first (rms key list {owner} --local {db}, \
                 then rms key revoke {owner} {carrier} KEY_ID --local {db})"
            ))
        }
        Err(FileTenantsError::Unavailable(e)) => {
            Err(format!("cannot store the configured tenants: {e}"))
        }
    }
}

/// Takes `<database>.lock` for this process, or says which database is in use.
fn lock_database(database: &std::path::Path) -> Result<std::fs::File, String> {
    let mut path = database.as_os_str().to_owned();
    path.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.to_string_lossy()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another rms serve is using the database {}; stop it, or give this one another \
             --database",
            database.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(format!("cannot lock {}: {e}", path.to_string_lossy()))
        }
    }
}

/// Whether the loops should stop: the shutdown task said so, or it is gone (a dropped sender
/// would otherwise wake every `changed()` at once, forever).
pub fn is_stopping(stopped: &watch::Receiver<bool>) -> bool {
    *stopped.borrow() || stopped.has_changed().is_err()
}

/// Listens for Ctrl-C and, on Unix, SIGTERM from this call on, and resolves at the first. Call it
/// before the server takes requests and await it in a task: a signal that arrives before the task
/// first runs is then not lost (a listener registered only once the task runs would miss a
/// SIGTERM sent in between, and the process would go on serving).
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    let listeners = {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::interrupt()).and_then(|i| Ok((i, signal(SignalKind::terminate())?)))
    };
    async move {
        #[cfg(unix)]
        if let Ok((mut interrupt, mut terminate)) = listeners {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

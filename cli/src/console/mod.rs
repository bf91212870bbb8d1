//! The operator console: web pages over the admin use-case (`shared::admin::Admin`), for the
//! people who onboard carriers and clients and answer "did my customer get the RTO update for
//! AWB X?". Served by `rms serve` at `/console` (over its SQLite store) and by `rms console`
//! on 127.0.0.1 (over the AWS stack, with the operator's credentials: the ops commands' code
//! path). Every page calls the use-case; no rule is implemented here a second time.
//!
//! Server-rendered HTML (maud: everything interpolated is escaped), one small script and one
//! style sheet compiled into the binary, a strict Content-Security-Policy (no inline script or
//! style), a CSRF token on every form, SameSite=Strict HttpOnly session cookies. Every action is
//! a plain form and works without the script; the script only adds the live carrier indicator
//! and copy buttons.
//!
//! Layout: `session.rs` (sign-in, sessions, CSRF, flash messages), `security.rs` (response
//! headers), `form.rs` (form bodies), `layout.rs` (the page shell and small pieces), `chart.rs`
//! (the 24-hour SVG chart), `jobs.rs` (replays and redrives with progress), one module per page
//! under `pages/`, and `command.rs` (`rms console`).

mod assets;
mod chart;
pub mod command;
mod form;
mod jobs;
mod layout;
mod pages;
mod security;
mod session;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use shared::admin::{Admin, AdminStore};
use shared::ingest::Reingest;
use shared::ports::Pusher;

pub use session::Gate;

/// An admin use-case on some back end, as the console's pages take it: one type parameter instead
/// of the use-case's three.
pub trait Backend: Send + Sync + 'static {
    type Store: AdminStore + 'static;
    type Pusher: Pusher + 'static;
    type Reingest: Reingest + 'static;
    fn admin(&self) -> &Admin<Self::Store, Self::Pusher, Self::Reingest>;
}

impl<S, P, R> Backend for Admin<S, P, R>
where
    S: AdminStore + 'static,
    P: Pusher + 'static,
    R: Reingest + 'static,
{
    type Store = S;
    type Pusher = P;
    type Reingest = R;
    fn admin(&self) -> &Admin<S, P, R> {
        self
    }
}

/// Where carriers reach the notify paths, for the set-up cards.
#[derive(Debug, Clone)]
pub enum NotifyBase {
    /// The address the operator reached the console at (`rms serve` serves both on one port).
    RequestHost,
    /// The stack's API (`https://…/Prod`), or unknown: the cards then show the path alone.
    Fixed(Option<String>),
}

/// The console's state: the use-case, who may come in, and the work in progress.
pub struct Console<B> {
    pub admin: Arc<B>,
    gate: Gate,
    sessions: session::Sessions,
    jobs: jobs::Jobs,
    notify: NotifyBase,
}

impl<B: Backend> Console<B> {
    pub fn new(admin: Arc<B>, gate: Gate, notify: NotifyBase) -> Self {
        Console {
            admin,
            gate,
            sessions: session::Sessions::default(),
            jobs: jobs::Jobs::default(),
            notify,
        }
    }
}

type ConsoleState<B> = axum::extract::State<Arc<Console<B>>>;

/// The largest form the console takes: a Push Config with its headers is a few KiB.
const FORM_LIMIT: usize = 64 * 1024;

/// Every console route, under `/console`.
pub fn router<B: Backend>(console: Arc<Console<B>>) -> Router {
    use pages::{dead_letters, deliveries, job, overview, push, tenant};
    let signed_in = Router::new()
        .route("/console", get(overview::show::<B>))
        .route("/console/tenants", post(overview::create_tenant::<B>))
        .route("/console/tenants/{tenant}", get(tenant::show::<B>))
        .route(
            "/console/tenants/{tenant}/enabled",
            post(tenant::set_enabled::<B>),
        )
        .route("/console/tenants/{tenant}/keys", post(tenant::add_key::<B>))
        .route(
            "/console/tenants/{tenant}/keys/{carrier}/{key_id}/revoke",
            post(tenant::revoke_key::<B>),
        )
        .route(
            "/console/tenants/{tenant}/carriers/{carrier}/status",
            get(tenant::carrier_status::<B>),
        )
        .route(
            "/console/tenants/{tenant}/push",
            get(push::show::<B>).post(push::save::<B>),
        )
        .route("/console/tenants/{tenant}/push/test", post(push::test::<B>))
        .route(
            "/console/tenants/{tenant}/deliveries",
            get(deliveries::show::<B>),
        )
        .route(
            "/console/tenants/{tenant}/replay",
            post(deliveries::replay::<B>),
        )
        .route("/console/dead-letters", get(dead_letters::show::<B>))
        .route(
            "/console/dead-letters/redrive",
            post(dead_letters::redrive::<B>),
        )
        .route("/console/jobs/{id}", get(job::show::<B>))
        .route("/console/sign-out", post(session::sign_out::<B>))
        .route("/console/{*unknown}", get(pages::not_found))
        .route_layer(middleware::from_fn_with_state(
            console.clone(),
            session::admit::<B>,
        ));
    Router::new()
        .route(
            "/console/sign-in",
            get(session::sign_in_page::<B>).post(session::sign_in::<B>),
        )
        .route("/console/assets/{name}", get(assets::serve))
        .merge(signed_in)
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .layer(middleware::from_fn(security::headers))
        .with_state(console)
}

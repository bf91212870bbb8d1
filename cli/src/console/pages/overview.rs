//! The overview: the queue, and per tenant whether each carrier is wired, its dead letters and
//! its deliveries of the last 24 hours; and the form that creates a tenant.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use maud::html;
use shared::admin::{AdminError, HourOfDeliveries};
use shared::ports::CarrierActivity;
use shared::Carrier;

use super::super::chart;
use super::super::layout::{at, csrf, error_page, page, path, Frame, Section};
use super::super::session::{Flash, Posted, Visitor};
use super::super::{Backend, ConsoleState};
use super::after;
use super::setup::{signal, Signal};
use axum::Extension;

/// The most dead letters read to count them per tenant (on AWS each ten is a receive from the
/// DLQ); past it, a tenant's count shows as at least.
const DEAD_LETTERS_COUNTED: usize = 100;

struct Row {
    id: String,
    enabled: bool,
    file_managed: bool,
    carriers: Vec<CarrierActivity>,
    hours: Vec<HourOfDeliveries>,
}

pub async fn show<B: Backend>(
    State(console): ConsoleState<B>,
    Extension(visitor): Extension<Visitor>,
) -> Response {
    match gather(console.admin.as_ref()).await {
        Ok((depth, dead, rows)) => {
            let body = html! {
                h1 { "Overview" }
                p.queue {
                    "Delivery queue: " strong { (depth.waiting) } " waiting · "
                    a href="/console/dead-letters" { strong { (depth.dead_letters) } " dead letters" }
                }
                @if rows.is_empty() {
                    p.empty { "No tenant yet: create the first one below." }
                } @else {
                    table.overview {
                        thead { tr {
                            th { "Tenant" }
                            @for carrier in Carrier::ALL { th { (carrier.spec().title) } }
                            th { "Dead letters" }
                            th { "Last 24 hours" }
                        } }
                        tbody {
                            @for row in &rows {
                                tr {
                                    td {
                                        a href=(format!("/console/tenants/{}", path(&row.id))) { (row.id) }
                                        @if !row.enabled { " " span.badge.off { "disabled" } }
                                        @if row.file_managed { " " span.badge { "rms.toml" } }
                                    }
                                    @for activity in &row.carriers {
                                        td { (wired(activity)) }
                                    }
                                    td.number {
                                        @let count = dead.by_tenant.get(&row.id).copied().unwrap_or(0);
                                        @if count > 0 {
                                            a.bad href=(format!("/console/dead-letters?tenant={}", path(&row.id))) {
                                                (count) @if dead.partial { "+" }
                                            }
                                        } @else if dead.partial { "?" } @else { "0" }
                                    }
                                    td.chart-cell {
                                        (chart::deliveries(&row.hours))
                                        span.totals {
                                            (row.hours.iter().map(|h| h.delivered).sum::<u64>()) " delivered, "
                                            (row.hours.iter().map(|h| h.failed).sum::<u64>()) " failed"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                section.card {
                    h2 { "New tenant" }
                    form.inline method="post" action="/console/tenants" {
                        (csrf(&visitor))
                        label for="new-tenant" { "Tenant id" }
                        input #new-tenant type="text" name="id" required placeholder="acme";
                        label.check { input type="checkbox" name="include_source" checked; " attach the carrier's payload to each event (" code { "source" } ")" }
                        button type="submit" { "Create tenant" }
                    }
                }
            };
            page(
                &console,
                &visitor,
                Frame {
                    title: "Overview",
                    section: Section::Overview,
                    tenant: None,
                    refresh: false,
                },
                body,
            )
        }
        Err(e) => error_page(&e),
    }
}

/// Dead letters per tenant, from the first [`DEAD_LETTERS_COUNTED`].
#[derive(Default)]
struct DeadCounts {
    by_tenant: HashMap<String, usize>,
    /// More were left unread: a count is a lower bound.
    partial: bool,
}

type Gathered = (shared::admin::QueueDepth, DeadCounts, Vec<Row>);

async fn gather<B: Backend>(backend: &B) -> Result<Gathered, AdminError> {
    let admin = backend.admin();
    let now = Utc::now();
    let depth = admin.queue_depth().await?;
    let mut dead = DeadCounts::default();
    // The queue says whether there is any; only then are they read.
    if depth.dead_letters > 0 {
        let letters = admin.dead_letters(None, DEAD_LETTERS_COUNTED).await?;
        dead.partial = letters.len() >= DEAD_LETTERS_COUNTED;
        for letter in letters {
            *dead.by_tenant.entry(letter.tenant_id).or_default() += 1;
        }
    }
    let mut rows = Vec::new();
    for tenant in admin.tenants().await? {
        let id = tenant.id.to_string();
        rows.push(Row {
            carriers: admin.carrier_activity(&id).await?,
            hours: admin.deliveries_by_hour(&id, now).await?,
            enabled: tenant.enabled,
            file_managed: tenant.file_managed,
            id,
        });
    }
    Ok((depth, dead, rows))
}

/// One carrier of one tenant, in a cell: received (when), or not yet.
fn wired(activity: &CarrierActivity) -> maud::Markup {
    html! {
        @match signal(activity) {
            Signal::Received { at: when, test } => {
                span.wired.ok title=(if test { "the panel's test" } else { "an accepted event" }) {
                    span.dot {} (at(when))
                }
            }
            Signal::Waiting => span.wired.none { span.dot {} "not yet" },
        }
        @if let Some(rejected) = activity.last_rejected_at {
            br;
            span.wired.bad title=(activity.last_rejected_reason.as_deref().unwrap_or_default()) {
                "rejected " (at(rejected))
            }
        }
    }
}

/// Creates a tenant, then shows its page (where its keys and set-up cards are).
pub async fn create_tenant<B: Backend>(
    State(console): ConsoleState<B>,
    posted: Posted,
) -> Response {
    let id = posted.form.text("id").unwrap_or_default().to_owned();
    let include_source = posted.form.ticked("include_source");
    let created = console
        .admin
        .admin()
        .create_tenant(&id, Some(include_source), Utc::now())
        .await;
    match created {
        Ok(tenant) => {
            let back = format!("/console/tenants/{}", path(tenant.id.as_str()));
            let flash = Flash::done(format!(
                "Tenant {} created. Add a key for each carrier it uses, then set up its Push Config.",
                tenant.id
            ));
            after(&console, &posted.visitor, &back, Ok(flash))
        }
        Err(e) => after(&console, &posted.visitor, "/console", Err(e)),
    }
}

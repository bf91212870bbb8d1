//! Dead letters: the events whose delivery failed for good, with the reason each failed,
//! filtered by tenant; redrive the selected ones or all of them, as a job with progress.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::Extension;
use maud::html;
use serde::Deserialize;
use shared::admin::AdminError;

use super::super::layout::{csrf, error_page, failure_text, page, path, see_other, Frame, Section};
use super::super::session::{Posted, Visitor};
use super::super::{Backend, ConsoleState};

/// The most dead letters listed (the admin API's limit).
const LISTED: usize = admin_api::MAX_LIST;
/// Dead letters moved per call of the use-case while redriving a selection: the job's steps.
const REDRIVE_STEP: usize = 10;

#[derive(Deserialize, Default)]
pub struct Filter {
    tenant: Option<String>,
}

pub async fn show<B: Backend>(
    State(console): ConsoleState<B>,
    Extension(visitor): Extension<Visitor>,
    Query(filter): Query<Filter>,
) -> Response {
    let admin = console.admin.admin();
    let tenant = filter.tenant.filter(|t| !t.trim().is_empty());
    let loaded = async {
        let tenants = admin.tenants().await?;
        let letters = admin.dead_letters(tenant.as_deref(), LISTED).await?;
        Ok::<_, AdminError>((tenants, letters))
    }
    .await;
    let (tenants, letters) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return error_page(&e),
    };
    let body = html! {
        h1 { "Dead letters" }
        form.inline.card method="get" action="/console/dead-letters" {
            label for="tenant" { "Tenant" }
            select #tenant name="tenant" {
                option value="" { "every tenant" }
                @for t in &tenants {
                    option value=(t.id.as_str()) selected[tenant.as_deref() == Some(t.id.as_str())] { (t.id.as_str()) }
                }
            }
            button type="submit" { "Filter" }
        }
        @if letters.is_empty() {
            p.empty { "No dead letters" @if let Some(t) = &tenant { " for " (t) } "." }
        } @else {
            p.hint {
                "Fix the cause first (the client's endpoint, or its Push Config: "
                @if let Some(t) = &tenant { a href=(format!("/console/tenants/{}/push", path(t))) { "test push" } } @else { "test push" }
                "), then redrive: each is delivered again from its first attempt, and an event \
                 delivered meanwhile is not pushed twice."
            }
            form method="post" action="/console/dead-letters/redrive" {
                (csrf(&visitor))
                @if let Some(t) = &tenant { input type="hidden" name="tenant" value=(t); }
                table.dead-letters {
                    thead { tr {
                        th { input #select-all type="checkbox" data-select-all="ids" aria-label="Select all"; }
                        th { "Tenant" } th { "Event" } th { "Attempts" } th { "Reason" }
                    } }
                    tbody {
                        @for letter in &letters {
                            tr {
                                td { input type="checkbox" name="ids" value=(letter.id) aria-label=(format!("Select {}", letter.event_id)); }
                                td { (letter.tenant_id) }
                                td { code { (letter.event_id) } }
                                td.number { (letter.attempts) }
                                td.reason { (letter.reason) }
                            }
                        }
                    }
                }
                div.actions {
                    button type="submit" name="which" value="selected" { "Redrive selected" }
                    button type="submit" name="which" value="all" data-confirm="Redrive every dead letter listed here?" {
                        "Redrive all " (letters.len())
                        @if let Some(t) = &tenant { " of " (t) }
                    }
                }
            }
        }
    };
    page(
        &console,
        &visitor,
        Frame {
            title: "Dead letters",
            section: Section::DeadLetters,
            tenant: None,
            refresh: false,
        },
        body,
    )
}

/// Starts a redrive: the ticked dead letters, or all (of the filtered tenant, or every one);
/// answers with the job's page.
pub async fn redrive<B: Backend>(State(console): ConsoleState<B>, posted: Posted) -> Response {
    let tenant = posted.form.text("tenant").map(str::to_owned);
    let back = match &tenant {
        Some(t) => format!("/console/dead-letters?tenant={}", path(t)),
        None => "/console/dead-letters".to_owned(),
    };
    let all = posted.form.one("which") == Some("all");
    let ticked: Vec<String> = posted
        .form
        .all("ids")
        .into_iter()
        .map(str::to_owned)
        .collect();
    if !all && ticked.is_empty() {
        let none = AdminError::invalid("ids", "tick the dead letters to redrive, or redrive all");
        return super::after(&console, &posted.visitor, &back, Err(none));
    }
    let title = match (&tenant, all) {
        (Some(t), true) => format!("Redrive of every dead letter of {t}"),
        (None, true) => "Redrive of every dead letter".to_owned(),
        (_, false) => format!("Redrive of {} dead letter(s)", ticked.len()),
    };
    let backend = Arc::clone(&console.admin);
    let id = console
        .jobs
        .start(posted.visitor.session, title, back, move |job| async move {
            let admin = backend.admin();
            let chosen = match (all, &tenant) {
                // Everything: one call (the store moves them all; SQS has no count to show).
                (true, None) => None,
                // All of one tenant: the ones listed now.
                (true, Some(t)) => Some(
                    admin
                        .dead_letters(Some(t), LISTED)
                        .await
                        .map_err(|e| failure_text(&e))?
                        .into_iter()
                        .map(|d| d.id)
                        .collect::<Vec<_>>(),
                ),
                (false, _) => Some(ticked),
            };
            let moved = match chosen {
                None => admin.redrive(None).await.map_err(|e| failure_text(&e))?,
                Some(ids) if ids.is_empty() => 0,
                Some(ids) => {
                    let mut moved = 0;
                    job.progress(0, ids.len());
                    for (i, step) in ids.chunks(REDRIVE_STEP).enumerate() {
                        moved += admin
                            .redrive(Some(step))
                            .await
                            .map_err(|e| failure_text(&e))?;
                        job.progress((i * REDRIVE_STEP + step.len()).min(ids.len()), ids.len());
                    }
                    moved
                }
            };
            Ok(format!(
                "{moved} dead letter(s) put back on the delivery queue: each is delivered again \
                 from its first attempt."
            ))
        });
    see_other(&format!("/console/jobs/{id}"))
}

//! A job's page: its progress while it runs (the page reloads itself each second), then what it
//! did.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::html;

use super::super::layout::{self, Frame, Section};
use super::super::session::Visitor;
use super::super::{Backend, ConsoleState};

pub async fn show<B: Backend>(
    State(console): ConsoleState<B>,
    Extension(visitor): Extension<Visitor>,
    Path(id): Path<String>,
) -> Response {
    let Some(job) = console.jobs.find(&id, &visitor.session) else {
        return super::not_found().await;
    };
    let (done, total) = job.counts();
    let outcome = job.outcome();
    let body = html! {
        h1 { (job.title) }
        @match &outcome {
            None => {
                p.job.running role="status" {
                    @if total > 0 {
                        progress #job-progress max=(total) value=(done) {}
                        " " (done) " of " (total)
                    } @else {
                        progress #job-progress {}
                        " working…"
                    }
                }
            }
            Some(Ok(text)) => {
                p.flash.ok #job-outcome role="status" {
                    @if total > 0 { progress max=(total) value=(done) {} " " (done) " of " (total) ". " }
                    (text)
                }
            }
            Some(Err(text)) => p.flash.failed #job-outcome role="alert" { "Failed: " (text) },
        }
        p { a href=(job.back) { "Back" } }
    };
    layout::page(
        &console,
        &visitor,
        Frame {
            title: &job.title,
            section: Section::Elsewhere,
            tenant: None,
            // Reloads the page while the job runs; a meta refresh needs no script.
            refresh: outcome.is_none(),
        },
        body,
    )
    .into_response()
}

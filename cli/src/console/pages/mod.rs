//! One module per page. A page reads through the admin use-case and renders; a form's handler
//! calls the use-case, leaves the outcome as a message for the next page and redirects there
//! (so a reload never sends a form twice), or starts a job.

pub mod dead_letters;
pub mod deliveries;
pub mod job;
pub mod overview;
pub mod push;
pub mod setup;
pub mod tenant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use shared::admin::AdminError;

use super::layout::{self, failure_text, see_other};
use super::session::{Flash, Visitor};
use super::{Backend, Console};

/// Leaves the outcome of a form for the next page and redirects there.
fn after<B: Backend>(
    console: &Console<B>,
    visitor: &Visitor,
    back: &str,
    outcome: Result<Flash, AdminError>,
) -> Response {
    let flash = outcome.unwrap_or_else(|e| Flash::failed(failure_text(&e)));
    console.sessions.flash(visitor, flash);
    see_other(back)
}

pub async fn not_found() -> Response {
    let body = html! {
        main.narrow {
            h1 { "Not found" }
            p { "There is no such console page." }
            p { a href="/console" { "Back to the overview" } }
        }
    };
    (StatusCode::NOT_FOUND, layout::bare("Not found", body)).into_response()
}

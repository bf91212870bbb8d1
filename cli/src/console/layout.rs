//! The page shell (head, navigation, the session's messages) and the small pieces every page
//! uses: times, the CSRF field, redirects, and what an `AdminError` becomes on a page.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};
use shared::admin::AdminError;
use tracing::error;

use super::session::{Flash, Visitor};
use super::{Backend, Console};

/// Which part of the console a page is, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    SetUp,
    Push,
    Deliveries,
    DeadLetters,
    /// A page of its own (a job's), under no tab.
    Elsewhere,
}

/// A page's frame: its title, where it is, and the tenant it is about.
pub struct Frame<'a> {
    pub title: &'a str,
    pub section: Section,
    pub tenant: Option<&'a str>,
    /// Reload the page every second (a job's progress).
    pub refresh: bool,
}

fn head(title: &str, refresh: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            @if refresh { meta http-equiv="refresh" content="1"; }
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · RMS Notify console" }
            link rel="icon" href="/console/assets/favicon.svg";
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/console.js" defer {}
        }
    }
}

/// A page without navigation: sign-in, refusals.
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, false))
            body {
                header.top { span.brand { "RMS Notify" } }
                (body)
            }
        }
    }
}

/// A console page: navigation, the session's waiting messages (each shown once), the body.
pub fn page<B: Backend>(
    console: &Console<B>,
    visitor: &Visitor,
    frame: Frame<'_>,
    body: Markup,
) -> Response {
    let flash = console.sessions.take_flash(visitor);
    let tab = |section: Section, href: String, label: &str| {
        html! {
            a.active[frame.section == section] href=(href) { (label) }
        }
    };
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(frame.title, frame.refresh))
            body {
                header.top {
                    a.brand href="/console" { "RMS Notify" }
                    nav {
                        (tab(Section::Overview, "/console".into(), "Overview"))
                        (tab(Section::DeadLetters, "/console/dead-letters".into(), "Dead letters"))
                    }
                    @if console.gate.signs_in() {
                        form.sign-out method="post" action="/console/sign-out" {
                            (csrf(visitor))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                @if let Some(tenant) = frame.tenant {
                    nav.tenant aria-label="Tenant" {
                        span.tenant-name { "Tenant " strong { (tenant) } }
                        (tab(Section::SetUp, format!("/console/tenants/{}", path(tenant)), "Keys and carrier set-up"))
                        (tab(Section::Push, format!("/console/tenants/{}/push", path(tenant)), "Push Config"))
                        (tab(Section::Deliveries, format!("/console/tenants/{}/deliveries", path(tenant)), "Deliveries"))
                    }
                }
                main {
                    @for message in &flash {
                        (flash_box(message))
                    }
                    (body)
                }
            }
        }
    };
    markup.into_response()
}

fn flash_box(flash: &Flash) -> Markup {
    html! {
        div.flash.ok[flash.ok].failed[!flash.ok] role=(if flash.ok { "status" } else { "alert" }) {
            p { (flash.text) }
            @if let Some(secret) = &flash.secret {
                p.secret-line {
                    code.secret #shown-secret { (secret) }
                    button.copy type="button" data-copy="#shown-secret" { "Copy" }
                }
                p.hint { "Shown this once: RMS keeps only what it needs to check it. Copy it now." }
            }
            @if let Some(detail) = &flash.detail {
                pre.detail { (detail) }
            }
        }
    }
}

/// The hidden field that proves a form came from this session's page.
pub fn csrf(visitor: &Visitor) -> Markup {
    html! { input type="hidden" name="csrf" value=(visitor.csrf); }
}

/// A path segment: a tenant id or a carrier name is made of URL-safe characters already
/// (`TenantId`), but a name taken from the address bar may not be.
pub fn path(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

/// 303 to `location`: the answer to a form, so that a reload does not send it again.
pub fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

/// A time as people read it: `14:02 UTC` today, `27 Nov 14:02 UTC` another day, the full time
/// on hover.
pub fn at(time: DateTime<Utc>) -> Markup {
    let now = Utc::now();
    let text = if time.date_naive() == now.date_naive() {
        time.format("%H:%M UTC").to_string()
    } else {
        time.format("%-d %b %H:%M UTC").to_string()
    };
    html! {
        time datetime=(time.to_rfc3339()) title=(time.format("%Y-%m-%d %H:%M:%S UTC").to_string()) { (text) }
    }
}

/// What a failed admin operation says to the operator: the API's own words.
pub fn failure_text(e: &AdminError) -> String {
    match e {
        AdminError::Unavailable(cause) => {
            error!(error = %cause, "console operation failed: store unavailable");
            "A store is unavailable; try again shortly.".to_owned()
        }
        other => other.to_string(),
    }
}

/// A page that could not be shown: 404 for an unknown tenant, 503 for a store that failed.
pub fn error_page(e: &AdminError) -> Response {
    let status = match e {
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Invalid { .. } => StatusCode::BAD_REQUEST,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let text = failure_text(e);
    let body = html! {
        main.narrow {
            h1 { (status.canonical_reason().unwrap_or("Error")) }
            p { (text) }
            p { a href="/console" { "Back to the overview" } }
        }
    };
    (status, bare("Error", body)).into_response()
}

//! Deliveries: a tenant's delivery log by AWB (a shipment's timeline: each event with its status,
//! each attempt with its outcome, HTTP status and latency) or by time range; and replay of what
//! was found, as a job with progress.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use maud::html;
use serde::Deserialize;
use shared::admin::{AdminError, AttemptView, Selection};

use super::super::layout::{
    at, csrf, error_page, failure_text, page, path, see_other, Frame, Section,
};
use super::super::session::{Posted, Visitor};
use super::super::{Backend, ConsoleState};

/// The time range shown when none is asked for.
const DEFAULT_HOURS: i64 = 24;

#[derive(Deserialize, Default)]
pub struct Search {
    awb: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// A time as a `datetime-local` field sends it (`2026-11-27T14:02`, read as UTC) or RFC 3339.
fn parse_time(field: &str, text: &str) -> Result<DateTime<Utc>, AdminError> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            AdminError::invalid(
                field,
                format!("{text:?} is not a time; use 2026-11-27T14:02 (UTC) or RFC 3339"),
            )
        })
}

/// What the search asks for: an AWB, a time range, or (nothing given) the last 24 hours.
fn selection(search: &Search, now: DateTime<Utc>) -> Result<Selection, AdminError> {
    if let Some(awb) = search.awb.as_deref().filter(|a| !a.trim().is_empty()) {
        return Ok(Selection::Awb(awb.trim().to_owned()));
    }
    fn given(value: &Option<String>) -> Option<&str> {
        value.as_deref().filter(|v| !v.trim().is_empty())
    }
    let from = match given(&search.from) {
        Some(text) => parse_time("from", text)?,
        None => now - chrono::Duration::hours(DEFAULT_HOURS),
    };
    let to = match given(&search.to) {
        Some(text) => parse_time("to", text)?,
        None => now,
    };
    Ok(Selection::Between { from, to })
}

/// The attempts grouped by event, in the order of each event's first attempt.
fn by_event(attempts: &[AttemptView]) -> Vec<Vec<&AttemptView>> {
    let mut events: Vec<Vec<&AttemptView>> = Vec::new();
    for attempt in attempts {
        match events
            .iter_mut()
            .find(|e| e[0].event_id == attempt.event_id)
        {
            Some(event) => event.push(attempt),
            None => events.push(vec![attempt]),
        }
    }
    events
}

fn local(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M").to_string()
}

pub async fn show<B: Backend>(
    State(console): ConsoleState<B>,
    Extension(visitor): Extension<Visitor>,
    Path(tenant): Path<String>,
    Query(search): Query<Search>,
) -> Response {
    let admin = console.admin.admin();
    let found = match admin.tenant(&tenant).await {
        Ok(found) => found,
        Err(e) => return error_page(&e),
    };
    let id = found.id.as_str();
    let now = Utc::now();
    let asked = selection(&search, now);
    let result = match &asked {
        Ok(selection) => admin.deliveries(id, selection).await,
        Err(_) => Ok(Vec::new()),
    };
    let problem = match (&asked, &result) {
        (Err(e), _) | (_, Err(e)) => Some(failure_text(e)),
        _ => None,
    };
    let attempts = result.unwrap_or_default();
    let events = by_event(&attempts);
    let (range_from, range_to) = match &asked {
        Ok(Selection::Between { from, to }) => (local(*from), local(*to)),
        _ => (
            local(now - chrono::Duration::hours(DEFAULT_HOURS)),
            local(now),
        ),
    };
    let base = format!("/console/tenants/{}", path(id));
    let body = html! {
        h1 { "Deliveries of " (id) }
        div.searches {
            form.inline.card method="get" action=(format!("{base}/deliveries")) {
                label for="awb" { "AWB" }
                input #awb type="search" name="awb" value=(search.awb.as_deref().unwrap_or_default()) placeholder="81125552141";
                button type="submit" { "Show its timeline" }
            }
            form.inline.card method="get" action=(format!("{base}/deliveries")) {
                label for="from" { "From (UTC)" }
                input #from type="datetime-local" name="from" value=(range_from);
                label for="to" { "to" }
                input #to type="datetime-local" name="to" value=(range_to);
                button type="submit" { "Show the range" }
            }
        }
        @if let Some(problem) = &problem {
            p.field-error role="alert" { (problem) }
        }
        @if let Ok(selection) = &asked {
            @if problem.is_none() {
                p.summary {
                    @match selection {
                        Selection::Awb(awb) => { "AWB " code { (awb) } ": " }
                        Selection::Between { from, to } => { "From " (at(*from)) " to " (at(*to)) ": " }
                    }
                    (events.len()) " event(s), " (attempts.len()) " attempt(s)"
                }
                @if !events.is_empty() {
                    form.inline method="post" action=(format!("{base}/replay")) {
                        (csrf(&visitor))
                        @match selection {
                            Selection::Awb(awb) => { input type="hidden" name="awb" value=(awb); }
                            Selection::Between { from, to } => {
                                input type="hidden" name="from" value=(from.to_rfc3339_opts(SecondsFormat::Secs, true));
                                input type="hidden" name="to" value=(to.to_rfc3339_opts(SecondsFormat::Secs, true));
                            }
                        }
                        button type="submit" data-confirm="Push these events to the client again, even those it got?" { "Replay these " (events.len()) " event(s)" }
                        span.hint { " pushed again even if delivered, with the same webhook-id" }
                    }
                }
                ol.timeline {
                    @for event in &events {
                        @let first = event[0];
                        li.event {
                            div.event-head {
                                span.status { (first.status.as_str()) }
                                " AWB " code.awb { (first.awb) }
                                " · event " code { (first.event_id) }
                            }
                            ol.attempts {
                                @for attempt in event {
                                    li.attempt {
                                        (at(attempt.at))
                                        " · attempt " (attempt.attempt) " · "
                                        span class=(format!("outcome {}", attempt.outcome)) { (attempt.outcome.replace('_', " ")) }
                                        @if let Some(status) = attempt.http_status { " · HTTP " (status) }
                                        " · " (attempt.latency_ms) " ms"
                                        @if let Some(error) = &attempt.error { " · " span.error { (error) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let mut response = page(
        &console,
        &visitor,
        Frame {
            title: &format!("Deliveries of {id}"),
            section: Section::Deliveries,
            tenant: Some(id),
            refresh: false,
        },
        body,
    );
    if problem.is_some() {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    response.into_response()
}

/// Starts a replay of an AWB or a time range; answers with the job's page.
pub async fn replay<B: Backend>(
    State(console): ConsoleState<B>,
    Path(tenant): Path<String>,
    posted: Posted,
) -> Response {
    let search = Search {
        awb: posted.form.one("awb").map(str::to_owned),
        from: posted.form.one("from").map(str::to_owned),
        to: posted.form.one("to").map(str::to_owned),
    };
    let back = format!("/console/tenants/{}/deliveries", path(&tenant));
    let selection = match selection(&search, Utc::now()) {
        Ok(selection) => selection,
        Err(e) => return super::after(&console, &posted.visitor, &back, Err(e)),
    };
    let title = match &selection {
        Selection::Awb(awb) => format!("Replay of AWB {awb} for {tenant}"),
        Selection::Between { from, to } => format!(
            "Replay of {tenant}'s events from {} to {}",
            from.to_rfc3339_opts(SecondsFormat::Secs, true),
            to.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
    };
    let backend = Arc::clone(&console.admin);
    let id = console
        .jobs
        .start(posted.visitor.session, title, back, move |job| async move {
            let progress = |done: usize, of: usize| job.progress(done, of);
            match backend.admin().replay(&tenant, &selection, &progress).await {
                Ok(n) => Ok(format!(
                    "{n} event(s) queued again: the client gets each once more."
                )),
                Err(e) => Err(failure_text(&e)),
            }
        });
    see_other(&format!("/console/jobs/{id}"))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_search_is_an_awb_a_range_or_the_last_day() {
        let now = Utc.with_ymd_and_hms(2026, 11, 27, 14, 2, 0).unwrap();
        let awb = Search {
            awb: Some(" 81125552141 ".into()),
            ..Search::default()
        };
        assert_eq!(
            selection(&awb, now).unwrap(),
            Selection::Awb("81125552141".into())
        );
        let range = Search {
            from: Some("2026-11-27T10:00".into()),
            to: Some("2026-11-27T12:30:00+05:30".into()),
            ..Search::default()
        };
        assert_eq!(
            selection(&range, now).unwrap(),
            Selection::Between {
                from: Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap(),
                to: Utc.with_ymd_and_hms(2026, 11, 27, 7, 0, 0).unwrap(),
            }
        );
        assert_eq!(
            selection(&Search::default(), now).unwrap(),
            Selection::Between {
                from: now - chrono::Duration::hours(24),
                to: now
            }
        );
        let bad = Search {
            to: Some("yesterday".into()),
            ..Search::default()
        };
        assert!(
            matches!(selection(&bad, now), Err(AdminError::Invalid { field, .. }) if field == "to")
        );
    }
}

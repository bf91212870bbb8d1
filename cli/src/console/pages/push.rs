//! The Push Config: where a tenant's events go (URL), with which credential headers (write-only:
//! names shown, values never), for which statuses, how long to wait, whether to sign (a secret
//! generated and shown once), and every event or the latest state; and the test push, with the
//! answer's status, latency and first bytes. A refused field is shown at the field, in the API's
//! words (`AdminError::Invalid`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::Utc;
use maud::{html, Markup};
use shared::admin::{AdminError, PushUpdate, PushView, SecretAction, Tenant};
use shared::push::{Delivery, PushTimeout};
use shared::Status;

use super::super::form::Form;
use super::super::layout::{csrf, error_page, page, path, Frame, Section};
use super::super::session::{Flash, Posted, Visitor};
use super::super::{Backend, Console, ConsoleState};
use super::after;

/// Empty header rows offered for new or replaced headers (more can be given through the API).
const HEADER_ROWS: usize = 3;

/// What the form shows: the stored Push Config, or what was just sent and refused.
struct Draft {
    url: String,
    /// The stored headers' names (values are never shown).
    header_names: Vec<String>,
    /// Names typed in the header rows of a refused form (their values are not sent back).
    typed_names: Vec<String>,
    statuses: Vec<String>,
    timeout_ms: String,
    enabled: bool,
    signing_secret: bool,
    delivery: String,
}

impl Draft {
    fn of(view: Option<&PushView>) -> Draft {
        match view {
            Some(v) => Draft {
                url: v.url.clone(),
                header_names: v.headers.clone(),
                typed_names: Vec::new(),
                statuses: v.statuses.iter().map(|s| s.as_str().to_owned()).collect(),
                timeout_ms: v.timeout_ms.to_string(),
                enabled: v.enabled,
                signing_secret: v.signing_secret,
                delivery: v.delivery.as_str().to_owned(),
            },
            None => Draft {
                url: String::new(),
                header_names: Vec::new(),
                typed_names: Vec::new(),
                statuses: Vec::new(),
                timeout_ms: PushTimeout::DEFAULT.as_millis().to_string(),
                enabled: true,
                signing_secret: false,
                delivery: Delivery::default().as_str().to_owned(),
            },
        }
    }

    /// A refused form as it was sent, over the stored config (for what the form does not carry).
    fn resent(form: &Form, stored: Option<&PushView>) -> Draft {
        let stored = Draft::of(stored);
        Draft {
            url: form.one("url").unwrap_or_default().to_owned(),
            typed_names: form
                .all("header_name")
                .into_iter()
                .map(str::to_owned)
                .collect(),
            statuses: form
                .all("statuses")
                .into_iter()
                .map(str::to_owned)
                .collect(),
            timeout_ms: form.one("timeout_ms").unwrap_or_default().to_owned(),
            enabled: form.ticked("enabled"),
            delivery: form.one("delivery").unwrap_or_default().to_owned(),
            ..stored
        }
    }
}

/// The update a submitted form asks for. Only the form's own shape is checked here (a header
/// value without a name, a timeout that is not a number); every rule is the use-case's.
fn update_from(form: &Form) -> Result<PushUpdate, AdminError> {
    let names = form.all("header_name");
    let values = form.all("header_value");
    let mut headers = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let name = name.trim();
        let value = values.get(i).copied().unwrap_or_default();
        match (name.is_empty(), value.is_empty()) {
            (true, true) => {}
            (true, false) => {
                return Err(AdminError::invalid(
                    "headers",
                    "a header value was given without its name",
                ))
            }
            (false, _) => {
                headers.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    let headers = if !headers.is_empty() {
        Some(headers)
    } else if form.ticked("remove_headers") {
        Some(BTreeMap::new())
    } else {
        // Values are write-only: leaving the rows empty keeps the stored headers.
        None
    };
    let timeout_ms = match form.text("timeout_ms") {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            AdminError::invalid(
                "timeout_ms",
                format!("{text:?} is not a number of milliseconds; use 1000 to 30000"),
            )
        })?),
    };
    Ok(PushUpdate {
        url: form.text("url").unwrap_or_default().to_owned(),
        headers,
        statuses: form
            .all("statuses")
            .into_iter()
            .map(str::to_owned)
            .collect(),
        timeout_ms,
        enabled: Some(form.ticked("enabled")),
        signing_secret: match form.one("signing_secret") {
            Some("generate") => Some(SecretAction::Generate),
            Some("remove") => Some(SecretAction::Remove),
            _ => None,
        },
        delivery: form.text("delivery").map(str::to_owned),
    })
}

/// The stored Push Config, if the tenant has one.
async fn stored<B: Backend>(backend: &B, tenant: &str) -> Result<Option<PushView>, AdminError> {
    match backend.admin().push(tenant).await {
        Ok(view) => Ok(Some(view)),
        // The tenant exists (checked first) but has no Push Config yet.
        Err(AdminError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn show<B: Backend>(
    State(console): ConsoleState<B>,
    Extension(visitor): Extension<Visitor>,
    Path(tenant): Path<String>,
) -> Response {
    let admin = console.admin.admin();
    let found = match admin.tenant(&tenant).await {
        Ok(found) => found,
        Err(e) => return error_page(&e),
    };
    match stored(console.admin.as_ref(), &tenant).await {
        Ok(view) => render(
            &console,
            &visitor,
            &found,
            view.is_some(),
            &Draft::of(view.as_ref()),
            None,
        ),
        Err(e) => error_page(&e),
    }
}

pub async fn save<B: Backend>(
    State(console): ConsoleState<B>,
    Path(tenant): Path<String>,
    posted: Posted,
) -> Response {
    let back = format!("/console/tenants/{}/push", path(&tenant));
    let saved = match update_from(&posted.form) {
        Ok(update) => console.admin.admin().set_push(&tenant, &update).await,
        Err(e) => Err(e),
    };
    match saved {
        Ok(saved) => {
            let flash = match saved.signing_secret_value {
                Some(secret) => Flash {
                    secret: Some(secret),
                    ..Flash::done(
                        "Push Config saved, with a new signing secret. Give it to the client: it \
                         verifies each push's webhook-signature with it.",
                    )
                },
                None => Flash::done("Push Config saved."),
            };
            after(&console, &posted.visitor, &back, Ok(flash))
        }
        Err(AdminError::Invalid { field, message }) => {
            // Shown again at the field, with what was sent (header values excepted).
            let admin = console.admin.admin();
            let found = match admin.tenant(&tenant).await {
                Ok(found) => found,
                Err(e) => return error_page(&e),
            };
            let view = match stored(console.admin.as_ref(), &tenant).await {
                Ok(view) => view,
                Err(e) => return error_page(&e),
            };
            let draft = Draft::resent(&posted.form, view.as_ref());
            let problem = Problem {
                text: AdminError::Invalid {
                    field: field.clone(),
                    message,
                }
                .to_string(),
                field,
            };
            let mut response = render(
                &console,
                &posted.visitor,
                &found,
                view.is_some(),
                &draft,
                Some(&problem),
            );
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        }
        Err(e) => after(&console, &posted.visitor, &back, Err(e)),
    }
}

pub async fn test<B: Backend>(
    State(console): ConsoleState<B>,
    Path(tenant): Path<String>,
    posted: Posted,
) -> Response {
    let status = posted.form.text("status").unwrap_or("delivered");
    let outcome = console
        .admin
        .admin()
        .test_push(&tenant, status, Utc::now())
        .await
        .map(|result| {
            let answer = match (result.http_status, &result.error) {
                (Some(code), _) => format!("HTTP {code}"),
                (None, Some(error)) => error.clone(),
                (None, None) => "no answer".to_owned(),
            };
            let text = format!(
                "Test push {}: {answer} in {} ms (sample event {}).",
                result.outcome.replace('_', " "),
                result.latency_ms,
                result.event_id
            );
            Flash {
                ok: result.outcome == "delivered",
                detail: (!result.body_prefix.is_empty())
                    .then(|| format!("The answer began:\n{}", result.body_prefix)),
                ..Flash::done(text)
            }
        });
    let back = format!("/console/tenants/{}/push", path(&tenant));
    after(&console, &posted.visitor, &back, outcome)
}

/// A refused field and the API's words for it.
struct Problem {
    field: String,
    text: String,
}

impl Problem {
    /// The message, if it is about this field (`headers.X-Token` is about `headers`).
    fn at(problem: Option<&Problem>, field: &str) -> Markup {
        html! {
            @if let Some(p) = problem.filter(|p| p.field == field || p.field.starts_with(&format!("{field}."))) {
                p.field-error role="alert" id=(format!("error-{field}")) { (p.text) }
            }
        }
    }
}

fn render<B: Backend>(
    console: &Console<B>,
    visitor: &Visitor,
    tenant: &Tenant,
    exists: bool,
    draft: &Draft,
    problem: Option<&Problem>,
) -> Response {
    let id = tenant.id.as_str();
    let base = format!("/console/tenants/{}/push", path(id));
    let error_at = |field: &str| Problem::at(problem, field);
    let body = html! {
        h1 { "Push Config of " (id) }
        @if tenant.file_managed {
            p.notice { "Defined in rms.toml: changes here are refused. Edit rms.toml and restart rms serve." }
        }
        @if let Some(p) = problem.filter(|p| !["url", "headers", "statuses", "timeout_ms", "delivery"].iter().any(|f| p.field == *f || p.field.starts_with(&format!("{f}.")))) {
            p.flash.failed role="alert" { (p.text) }
        }
        @if problem.is_some() {
            p.flash.failed role="alert" { "Nothing was saved: correct the field marked below." }
        }
        form.push method="post" action=(base) {
            (csrf(visitor))
            section.card {
                h2 { "Endpoint" }
                label for="url" { "URL" }
                input #url type="url" name="url" value=(draft.url) required placeholder="https://client.example/rms/webhook";
                (error_at("url"))
                label.check { input type="checkbox" name="enabled" checked[draft.enabled]; " enabled (unticked: events wait in the queue)" }
                label for="timeout_ms" { "Timeout (ms)" }
                input #timeout_ms type="number" name="timeout_ms" value=(draft.timeout_ms) min="1000" max="30000" step="500";
                (error_at("timeout_ms"))
            }
            section.card {
                h2 { "Credential headers" }
                p.hint { "Sent with every push. Values are write-only: RMS never shows them again." }
                @if draft.header_names.is_empty() {
                    p { "No headers set." }
                } @else {
                    p { "Set: " @for (i, name) in draft.header_names.iter().enumerate() { @if i > 0 { ", " } code { (name) } } " (values hidden)" }
                }
                p.hint { "To change them, give all of them below: they replace the set ones. Leave the rows empty to keep them." }
                table.header-rows {
                    thead { tr { th { "Name" } th { "Value" } } }
                    tbody {
                        @for i in 0..HEADER_ROWS {
                            tr {
                                td { input type="text" name="header_name" value=(draft.typed_names.get(i).map(String::as_str).unwrap_or_default()) aria-label=(format!("Header {} name", i + 1)) placeholder=(if i == 0 { "Authorization" } else { "" }); }
                                td { input type="password" name="header_value" autocomplete="new-password" aria-label=(format!("Header {} value", i + 1)); }
                            }
                        }
                    }
                }
                @if !draft.header_names.is_empty() {
                    label.check { input type="checkbox" name="remove_headers"; " remove all headers" }
                }
                (error_at("headers"))
            }
            section.card {
                h2 { "Statuses" }
                p.hint { "The events the client gets. None ticked: every status." }
                div.statuses {
                    @for status in Status::ALL {
                        label.status {
                            input type="checkbox" name="statuses" value=(status.as_str()) checked[draft.statuses.iter().any(|s| s.eq_ignore_ascii_case(status.as_str()))];
                            span.name { (status.as_str()) }
                            span.meaning { (status.meaning()) }
                        }
                    }
                }
                (error_at("statuses"))
            }
            section.card {
                h2 { "Signing and delivery" }
                fieldset {
                    legend { "Signing secret (Standard Webhooks " code { "webhook-signature" } ")" }
                    p { @if draft.signing_secret { "A secret is set (never shown again)." } @else { "No secret: pushes are not signed." } }
                    label.check { input type="radio" name="signing_secret" value="keep" checked; @if draft.signing_secret { " keep it" } @else { " leave unsigned" } }
                    label.check { input type="radio" name="signing_secret" value="generate"; " generate a new one (shown once)" }
                    @if draft.signing_secret {
                        label.check { input type="radio" name="signing_secret" value="remove"; " remove it" }
                    }
                }
                label for="delivery" { "Delivery" }
                select #delivery name="delivery" {
                    @for mode in Delivery::ALL {
                        option value=(mode.as_str()) selected[draft.delivery == mode.as_str()] {
                            @match mode {
                                Delivery::Every => "every: each event of the selected statuses",
                                Delivery::Latest => "latest: a shipment's newest state only (after an outage, one event per shipment)",
                            }
                        }
                    }
                }
                (error_at("delivery"))
            }
            button.primary type="submit" { "Save Push Config" }
        }
        section.card {
            h2 { "Test push" }
            @if exists {
                p.hint { "Sends a sample event (AWB " code { "TEST-…" } ") with the headers and signature above, now; nothing is queued or logged." }
                form.inline method="post" action=(format!("{base}/test")) {
                    (csrf(visitor))
                    label for="test-status" { "Status" }
                    select #test-status name="status" {
                        @for status in Status::ALL {
                            option value=(status.as_str()) selected[*status == Status::Delivered] { (status.as_str()) }
                        }
                    }
                    button type="submit" { "Send test push" }
                }
            } @else {
                p.empty { "Save a Push Config first." }
            }
        }
    };
    page(
        console,
        visitor,
        Frame {
            title: &format!("Push Config of {id}"),
            section: Section::Push,
            tenant: Some(id),
            refresh: false,
        },
        body,
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_header_rows_keep_the_stored_headers_and_the_box_removes_them() {
        let keep = update_from(&Form::parse(
            b"url=https%3A%2F%2Fx&header_name=&header_value=",
        ))
        .unwrap();
        assert_eq!(keep.headers, None);
        let remove = update_from(&Form::parse(b"url=https%3A%2F%2Fx&remove_headers=on")).unwrap();
        assert_eq!(remove.headers, Some(BTreeMap::new()));
        let given = update_from(&Form::parse(
            b"url=u&header_name=X-Client&header_value=acme&header_name=&header_value=&remove_headers=on",
        ))
        .unwrap();
        assert_eq!(given.headers.unwrap()["X-Client"], "acme");
    }

    #[test]
    fn a_form_is_read_into_the_update_the_api_takes() {
        let update = update_from(&Form::parse(
            b"url=+https%3A%2F%2Fclient.example%2Fhook+&statuses=DELIVERED&statuses=RTO_DELIVERED&timeout_ms=5000&enabled=on&signing_secret=generate&delivery=latest",
        ))
        .unwrap();
        assert_eq!(update.url, "https://client.example/hook");
        assert_eq!(update.statuses, ["DELIVERED", "RTO_DELIVERED"]);
        assert_eq!(update.timeout_ms, Some(5000));
        assert_eq!(update.enabled, Some(true));
        assert_eq!(update.signing_secret, Some(SecretAction::Generate));
        assert_eq!(update.delivery.as_deref(), Some("latest"));
        let unticked = update_from(&Form::parse(b"url=u&signing_secret=keep")).unwrap();
        assert_eq!(unticked.enabled, Some(false));
        assert_eq!(unticked.signing_secret, None);
    }

    #[test]
    fn the_forms_own_mistakes_name_their_field() {
        for (body, field) in [
            (&b"url=u&header_name=&header_value=secret"[..], "headers"),
            (&b"url=u&timeout_ms=ten"[..], "timeout_ms"),
        ] {
            match update_from(&Form::parse(body)) {
                Err(AdminError::Invalid { field: f, message }) => {
                    assert_eq!(f, field);
                    assert!(
                        !message.contains("secret"),
                        "a value is never echoed: {message}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

//! A tenant: enable or disable it, its carrier keys (add, the generated one shown once; rotate
//! with two live; revoke), and a set-up card per carrier with its live indicator.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::Utc;
use maud::html;
use shared::admin::{AdminError, KeyView};
use shared::Carrier;

use super::super::layout::{at, csrf, error_page, page, path, Frame, Section};
use super::super::session::{Flash, Posted, Visitor};
use super::super::{Backend, ConsoleState};
use super::after;
use super::setup;

pub async fn show<B: Backend>(
    State(console): ConsoleState<B>,
    Extension(visitor): Extension<Visitor>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let admin = console.admin.admin();
    let loaded = async {
        let found = admin.tenant(&tenant).await?;
        let keys = admin.keys(&tenant).await?;
        let activity = admin.carrier_activity(&tenant).await?;
        Ok::<_, AdminError>((found, keys, activity))
    }
    .await;
    let (found, keys, activity) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => return error_page(&e),
    };
    let id = found.id.as_str();
    let base = format!("/console/tenants/{}", path(id));
    let body = html! {
        h1 { "Tenant " (id) }
        @if found.file_managed {
            p.notice {
                "This tenant is defined in rms.toml: the console shows it, and changes to it are \
                 refused. Edit its [[tenants]] entry in rms.toml and restart rms serve."
            }
        }
        section.card {
            h2 { "State" }
            form.inline method="post" action=(format!("{base}/enabled")) {
                (csrf(&visitor))
                @if found.enabled {
                    p { span.badge.on { "enabled" } " Its carriers' requests are accepted." }
                    input type="hidden" name="enabled" value="false";
                    button.danger type="submit" data-confirm=(format!("Disable {id}? Its carriers will be answered 401.")) { "Disable" }
                } @else {
                    p { span.badge.off { "disabled" } " Its carriers are answered 401 until it is enabled." }
                    input type="hidden" name="enabled" value="true";
                    button type="submit" { "Enable" }
                }
            }
        }
        section.card {
            h2 { "Carrier keys" }
            p.hint {
                "A key identifies this tenant to a carrier; RMS keeps only its digest. To rotate: add \
                 the new key (two are live), have the carrier switch to it, then revoke the old one."
            }
            @if keys.is_empty() {
                p.empty { "No key yet." }
            } @else {
                table.keys {
                    thead { tr { th { "Carrier" } th { "Key id" } th { "Added" } th {} } }
                    tbody {
                        @for key in &keys {
                            tr {
                                td { (key.carrier.spec().title) }
                                td { code { (key.key_id) } }
                                td { (at(key.added_at)) }
                                td {
                                    form method="post" action=(format!("{base}/keys/{}/{}/revoke", key.carrier.as_str(), path(&key.key_id))) {
                                        (csrf(&visitor))
                                        button.danger.small type="submit" data-confirm=(format!("Revoke {} key {}? The carrier's requests with it will be answered 401.", key.carrier.spec().title, key.key_id)) { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form.inline.add-key method="post" action=(format!("{base}/keys")) {
                (csrf(&visitor))
                label for="key-carrier" { "Carrier" }
                select #key-carrier name="carrier" {
                    @for carrier in Carrier::ALL {
                        option value=(carrier.as_str()) { (carrier.spec().title) }
                    }
                }
                label for="key-value" { "Key" }
                input #key-value type="password" name="key" autocomplete="off" placeholder="leave empty: RMS generates one";
                button type="submit" { "Add key" }
            }
        }
        h2 { "Carrier set-up" }
        p.hint { "Paste the notify URL and the key into the carrier's panel, then send its test: the card says when it arrives." }
        div.cards {
            @for carrier in Carrier::ALL {
                @let of_carrier: Vec<&KeyView> = keys.iter().filter(|k| k.carrier == carrier).collect();
                @let seen = activity.iter().find(|a| a.carrier == carrier.as_str()).cloned().unwrap_or_default();
                @let url = setup::notify_url(&console.notify, &headers, carrier);
                (setup::card(id, carrier, url.as_deref(), &seen, &of_carrier))
            }
        }
    };
    page(
        &console,
        &visitor,
        Frame {
            title: &format!("Tenant {id}"),
            section: Section::SetUp,
            tenant: Some(id),
            refresh: false,
        },
        body,
    )
}

/// The live indicator of one carrier's card, alone (the script polls it).
pub async fn carrier_status<B: Backend>(
    State(console): ConsoleState<B>,
    Path((tenant, carrier)): Path<(String, String)>,
) -> Response {
    let admin = console.admin.admin();
    let Ok(carrier) = carrier.parse::<Carrier>() else {
        return super::not_found().await;
    };
    let loaded = async {
        let activity = admin.carrier_activity(&tenant).await?;
        let keys = admin.keys(&tenant).await?;
        Ok::<_, AdminError>((activity, keys))
    }
    .await;
    match loaded {
        Ok((activity, keys)) => {
            let seen = activity
                .into_iter()
                .find(|a| a.carrier == carrier.as_str())
                .unwrap_or_default();
            let live = keys.iter().filter(|k| k.carrier == carrier).count();
            let fragment = setup::indicator(&seen, live);
            (
                [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
                fragment.into_string(),
            )
                .into_response()
        }
        Err(e) => error_page(&e),
    }
}

pub async fn set_enabled<B: Backend>(
    State(console): ConsoleState<B>,
    Path(tenant): Path<String>,
    posted: Posted,
) -> Response {
    let enabled = posted.form.one("enabled") == Some("true");
    let outcome = console
        .admin
        .admin()
        .update_tenant(&tenant, Some(enabled), None)
        .await
        .map(|t| {
            Flash::done(if t.enabled {
                format!("Tenant {} enabled.", t.id)
            } else {
                format!(
                    "Tenant {} disabled: its carriers are answered 401 until it is enabled.",
                    t.id
                )
            })
        });
    let back = format!("/console/tenants/{}", path(&tenant));
    after(&console, &posted.visitor, &back, outcome)
}

pub async fn add_key<B: Backend>(
    State(console): ConsoleState<B>,
    Path(tenant): Path<String>,
    posted: Posted,
) -> Response {
    let carrier = posted.form.text("carrier").unwrap_or_default();
    let given = posted.form.text("key");
    let outcome = console
        .admin
        .admin()
        .add_key(&tenant, carrier, given, Utc::now())
        .await
        .map(|added| {
            let title = added.view.carrier.spec().title;
            match added.key {
                Some(generated) => Flash {
                    secret: Some(generated),
                    ..Flash::done(format!(
                        "{title} key {} generated. Give it to {title} now (see its set-up card).",
                        added.view.key_id
                    ))
                },
                None => Flash::done(format!("{title} key {} added.", added.view.key_id)),
            }
        });
    let back = format!("/console/tenants/{}", path(&tenant));
    after(&console, &posted.visitor, &back, outcome)
}

pub async fn revoke_key<B: Backend>(
    State(console): ConsoleState<B>,
    Path((tenant, carrier, key_id)): Path<(String, String, String)>,
    posted: Posted,
) -> Response {
    let outcome = console
        .admin
        .admin()
        .revoke_key(&tenant, &carrier, &key_id)
        .await
        .map(|()| {
            Flash::done(format!(
                "Key {key_id} revoked: {carrier}'s requests with it are answered 401 from now on."
            ))
        });
    let back = format!("/console/tenants/{}", path(&tenant));
    after(&console, &posted.visitor, &back, outcome)
}

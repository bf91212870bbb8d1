//! The carrier set-up cards: for each carrier, the exact notify URL, where its key goes, the steps
//! in its panel, and a live indicator from the carrier-status view ("waiting for the carrier's
//! test…", "received at 14:02, key matched"). The facts come from the carrier modules
//! (`Carrier::spec()`), never from a copy here.

use axum::http::{header, HeaderMap};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use shared::admin::KeyView;
use shared::carriers::{CarrierSpec, KeySource};
use shared::ports::CarrierActivity;
use shared::Carrier;

use super::super::layout::{at, path};
use super::super::NotifyBase;

/// Where a carrier puts the key, in the order RMS looks, in words.
pub fn key_places(spec: &CarrierSpec) -> Vec<Markup> {
    spec.key_sources
        .iter()
        .map(|source| match source {
            KeySource::Header(name) => html! { "the " code { (name) } " header" },
            KeySource::Authorization => html! {
                "the " code { "Authorization" } " header (the key as is, or " code { "Bearer <key>" } ")"
            },
            KeySource::Query(name) => html! {
                code { "?" (name) "=<key>" } " appended to the notify URL"
            },
            KeySource::BodyField(name) => html! {
                "the body's " code { (name) } " field (registered as the key)"
            },
        })
        .collect()
}

/// Text with `code` spans in backticks (as the carrier modules write their panel steps), with the
/// spans shown as code. Everything is escaped.
pub fn with_code(text: &str) -> Markup {
    html! {
        @for (i, part) in text.split('`').enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}

/// The URL a carrier posts to; `None` when the console does not know the stack's API URL.
pub fn notify_url(base: &NotifyBase, headers: &HeaderMap, carrier: Carrier) -> Option<String> {
    let path = carrier.spec().notify_path;
    match base {
        NotifyBase::Fixed(Some(api)) => Some(format!("{}{path}", api.trim_end_matches('/'))),
        NotifyBase::Fixed(None) => None,
        NotifyBase::RequestHost => {
            // `rms serve` serves the notify paths on the address the console was reached at.
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    !h.is_empty()
                        && h.chars()
                            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
                })?;
            let https = headers
                .get("x-forwarded-proto")
                .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
            Some(format!(
                "{}://{host}{path}",
                if https { "https" } else { "http" }
            ))
        }
    }
}

/// What the carrier-status view says of one carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Nothing received with one of the tenant's keys yet.
    Waiting,
    /// The newest request that authenticated and was taken: the panel's test, or an event.
    Received { at: DateTime<Utc>, test: bool },
}

pub fn signal(activity: &CarrierActivity) -> Signal {
    match (activity.last_test_at, activity.last_accepted_at) {
        (Some(test), Some(event)) if test > event => Signal::Received {
            at: test,
            test: true,
        },
        (_, Some(event)) => Signal::Received {
            at: event,
            test: false,
        },
        (Some(test), None) => Signal::Received {
            at: test,
            test: true,
        },
        (None, None) => Signal::Waiting,
    }
}

/// The live indicator's content (also served alone, for the script to poll).
pub fn indicator(activity: &CarrierActivity, live_keys: usize) -> Markup {
    let rejected_after = |received: Option<DateTime<Utc>>| {
        activity
            .last_rejected_at
            .filter(|r| received.is_none_or(|at| *r > at))
    };
    html! {
        @match signal(activity) {
            Signal::Waiting => {
                @if live_keys == 0 {
                    p.signal.idle { "No key yet: add one above, then give it to the carrier." }
                } @else {
                    p.signal.waiting { span.dot {} "Waiting for the carrier's test… send it from the carrier's panel." }
                }
            }
            Signal::Received { at: when, test } => {
                p.signal.received {
                    span.dot {}
                    "Received at " (at(when)) ", key matched"
                    @if test { " (the panel's test)" } @else { " (an event, accepted)" }
                }
            }
        }
        @let received = match signal(activity) { Signal::Received { at, .. } => Some(at), Signal::Waiting => None };
        @if let Some(rejected) = rejected_after(received) {
            p.signal.rejected {
                span.dot {}
                "Rejected at " (at(rejected)) ": "
                (activity.last_rejected_reason.as_deref().unwrap_or("no reason kept"))
            }
        }
    }
}

/// One carrier's set-up card.
pub fn card(
    tenant: &str,
    carrier: Carrier,
    notify: Option<&str>,
    activity: &CarrierActivity,
    keys: &[&KeyView],
) -> Markup {
    let spec = carrier.spec();
    let id = format!("notify-{}", spec.name);
    html! {
        section.card.setup id=(format!("setup-{}", spec.name)) {
            h3 { (spec.title) }
            dl {
                dt { "Notify URL" }
                dd.url-line {
                    @match notify {
                        Some(url) => {
                            code.notify-url #(id) data-notify-url { (url) }
                            button.copy type="button" data-copy=(format!("#{id}")) { "Copy" }
                        }
                        None => {
                            code.notify-url #(id) { (spec.notify_path) }
                            span.hint { " after the stack's API URL (its " (spec.title) "NotifyUrl output); start rms console with --api-url to see it whole" }
                        }
                    }
                }
                dt { "The key goes in" }
                dd {
                    ul.places {
                        @for (i, place) in key_places(spec).into_iter().enumerate() {
                            li { @if i > 0 { "or " } (place) }
                        }
                    }
                }
                dt { "In " (spec.title) "'s panel" }
                dd { (with_code(spec.panel_steps)) }
                dt { "Keys" }
                dd {
                    @match keys.len() {
                        0 => "none yet",
                        1 => { "1 live key (" code { (keys[0].key_id) } ")" },
                        n => { (n) " live keys: a rotation. Once " (spec.title) " sends the new one, revoke the old one." },
                    }
                }
            }
            div.indicator data-poll=(format!("/console/tenants/{}/carriers/{}/status", path(tenant), spec.name)) aria-live="polite" {
                (indicator(activity, keys.len()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn activity() -> CarrierActivity {
        CarrierActivity {
            carrier: "clickpost".into(),
            ..CarrierActivity::default()
        }
    }

    #[test]
    fn the_newest_of_a_test_and_an_event_is_what_was_received() {
        let early = Utc.with_ymd_and_hms(2026, 11, 27, 14, 2, 0).unwrap();
        let late = early + chrono::Duration::minutes(5);
        assert_eq!(signal(&activity()), Signal::Waiting);
        let tested = CarrierActivity {
            last_test_at: Some(early),
            ..activity()
        };
        assert_eq!(
            signal(&tested),
            Signal::Received {
                at: early,
                test: true
            }
        );
        let both = CarrierActivity {
            last_accepted_at: Some(late),
            ..tested
        };
        assert_eq!(
            signal(&both),
            Signal::Received {
                at: late,
                test: false
            }
        );
    }

    #[test]
    fn a_rejection_after_the_last_success_is_shown_with_its_reason_escaped() {
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 14, 2, 0).unwrap();
        let rejected = CarrierActivity {
            last_rejected_at: Some(at),
            last_rejected_reason: Some("field `waybill`: <b>bad</b>".into()),
            ..activity()
        };
        let html = indicator(&rejected, 1).into_string();
        assert!(html.contains("Waiting for the carrier"), "{html}");
        assert!(html.contains("&lt;b&gt;bad&lt;/b&gt;"), "{html}");
    }

    #[test]
    fn the_notify_url_is_the_stack_api_or_the_address_the_console_was_reached_at() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            notify_url(&NotifyBase::RequestHost, &headers, Carrier::Clickpost).as_deref(),
            Some("http://127.0.0.1:8080/rms/in/api/clickpost/notify")
        );
        let stack = NotifyBase::Fixed(Some(
            "https://abc.execute-api.ap-south-1.amazonaws.com/Prod/".into(),
        ));
        assert_eq!(
            notify_url(&stack, &headers, Carrier::Shiprocket).as_deref(),
            Some("https://abc.execute-api.ap-south-1.amazonaws.com/Prod/rms/in/api/st/notify")
        );
        assert_eq!(
            notify_url(&NotifyBase::Fixed(None), &headers, Carrier::Shipway),
            None
        );
        headers.insert(header::HOST, "evil\"host".parse().unwrap());
        assert_eq!(
            notify_url(&NotifyBase::RequestHost, &headers, Carrier::Clickpost),
            None
        );
    }

    #[test]
    fn panel_steps_show_their_backticked_names_as_code() {
        let html = with_code("the `webhook_key` header <now>").into_string();
        assert_eq!(html, "the <code>webhook_key</code> header &lt;now&gt;");
    }
}

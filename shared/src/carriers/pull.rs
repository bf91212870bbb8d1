//! Pulling from the carriers' tracking APIs, for reconciliation: what the three clients share.
//!
//! Each carrier's client lives in its module (`clickpost::pull`, `shiprocket::pull`,
//! `shipway::pull`), next to the webhook normaliser it feeds: a pulled scan is turned into the
//! normaliser's own input, so that it becomes the very event its webhook would have been (same
//! event id, status and time). The facts and their sources are in docs/carriers.md ("Pull APIs").
//!
//! The clients build requests and read answers; a [`PullTransport`] sends them. The domain never
//! speaks HTTP itself: `adapters::pull_http` (feature `pull`) is the transport on reqwest, and
//! tests give a scripted one.
//!
//! Credentials travel in the query (Clickpost), in a JSON body (Shipway, Shiprocket's login) or
//! as a bearer token (Shiprocket). None of them is ever shown: `Debug` of a request prints the
//! URL as [`PullRequest::shown`] (`key=…`), header names and the body's length; every error
//! message is scrubbed of the account's secrets before it is built.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::model::{CanonicalEvent, Carrier};
use crate::push::{InvalidPushUrl, PushUrl, SecretValue, TargetPolicy};

/// How long one call may take, by default (connect, send, and read the whole answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long to leave an account alone after a 429 that does not say (no `Retry-After`).
pub const DEFAULT_BACK_OFF: Duration = Duration::from_secs(60);

/// The largest answer read (a Shiprocket answer for 50 AWBs with their histories is well under
/// it); a larger one is refused as unparseable rather than buffered.
pub const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// A carrier API's base URL (`https://api.clickpost.in`): checked by the Push Config URL rules
/// ([`PushUrl::parse`] under a [`TargetPolicy`]), so `http://` and loopback or private hosts are
/// taken only where the policy allows private targets (tests, `rms serve` on one machine). It
/// has no query or fragment; a trailing `/` is dropped, paths are appended to it.
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl(url::Url);

impl BaseUrl {
    pub fn parse(text: &str, policy: TargetPolicy) -> Result<BaseUrl, InvalidBaseUrl> {
        let checked = PushUrl::parse(text, policy)?;
        let url = url::Url::parse(checked.as_str())
            .map_err(|e| invalid(&format!("not an absolute URL ({e})")))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                "a base URL has no query or fragment: give the API's root, such as \
                 https://api.clickpost.in",
            ));
        }
        Ok(BaseUrl(url))
    }

    /// A base URL written in this crate (the carriers' documented hosts).
    pub(crate) fn documented(text: &'static str) -> BaseUrl {
        match url::Url::parse(text) {
            Ok(url) => BaseUrl(url),
            // A constant of this crate, checked by a test.
            Err(_) => unreachable!("a documented base URL is a URL"),
        }
    }

    /// The base URL with `path` (starting with `/`) appended.
    pub(crate) fn join(&self, path: &str) -> url::Url {
        let mut url = self.0.clone();
        let joined = format!("{}{path}", self.0.path().trim_end_matches('/'));
        url.set_path(&joined);
        url
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    /// Whether `url` is on this API's origin (scheme, host and port).
    pub(crate) fn same_origin(&self, url: &url::Url) -> bool {
        url.origin() == self.0.origin()
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str().trim_end_matches('/'))
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BaseUrl({self})")
    }
}

fn invalid(message: &str) -> InvalidBaseUrl {
    InvalidBaseUrl(message.to_owned())
}

/// Why a base URL is refused (the Push Config URL rules, or a query in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidBaseUrl(String);

impl From<InvalidPushUrl> for InvalidBaseUrl {
    fn from(e: InvalidPushUrl) -> Self {
        InvalidBaseUrl(e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullMethod {
    Get,
    Post,
}

impl PullMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PullMethod::Get => "GET",
            PullMethod::Post => "POST",
        }
    }
}

/// One call to a carrier's API. The URL (Clickpost's query), a header (Shiprocket's bearer
/// token) and the body (Shipway's licence key, Shiprocket's password) may hold credentials:
/// `Debug` shows [`PullRequest::shown`], header names and the body's length only.
#[derive(Clone)]
pub struct PullRequest {
    pub method: PullMethod,
    /// The whole URL, credentials included: for the transport, never for a log line.
    pub url: url::Url,
    pub headers: Vec<(&'static str, SecretValue)>,
    /// A JSON body (sent with `content-type: application/json`).
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
    /// The URL as logs and errors show it: credentials as `…` (`?username=…&key=…&waybill=A1`).
    pub shown: String,
}

impl fmt::Debug for PullRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("PullRequest")
            .field("method", &self.method)
            .field("url", &self.shown)
            .field("headers", &names)
            .field("body_bytes", &self.body.as_ref().map_or(0, Vec::len))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What the carrier answered (any status: redirects are not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullResponse {
    pub status: u16,
    /// `Retry-After`, as seconds or an HTTP date turned into a wait.
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// The call could not be made or had no answer (refused target, connection, TLS, timeout, an
/// answer too large). `reason` never holds the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct TransportError {
    pub reason: String,
    pub timed_out: bool,
}

/// Sends a [`PullRequest`]: `adapters::pull_http::HttpPullTransport` on reqwest; a scripted
/// fake in tests. A cheap `Clone` handle: the reconciler hands a clone to each carrier's client.
pub trait PullTransport: Clone + Send + Sync {
    fn send(
        &self,
        request: &PullRequest,
    ) -> impl Future<Output = Result<PullResponse, TransportError>> + Send;
}

/// Why a pull failed, with the call (`endpoint`, credentials shown as `…`). Each variant is
/// something the caller does differently:
/// - `Unauthorized`: the account's credentials are wrong (or an IP allow-list refuses us): stop
///   pulling this account and tell its owner;
/// - `RateLimited`: leave this account alone until `until`;
/// - `CarrierError`, `Transport`: try again later (the next round);
/// - `Unparseable`: the answer is not what the carrier documents: retrying will not help until
///   the client is fixed;
/// - `InvalidRequest`: the call was not made (too many AWBs, a window too long): a caller's bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    #[error(
        "{carrier} refused the account's credentials at {endpoint} (HTTP {status}): {message}"
    )]
    Unauthorized {
        carrier: Carrier,
        endpoint: String,
        status: u16,
        message: String,
    },
    #[error(
        "{carrier} is rate limiting this account at {endpoint} (HTTP {status}): back off until \
         {until}{}", if *from_header { " (its Retry-After)" } else { " (no Retry-After given)" }
    )]
    RateLimited {
        carrier: Carrier,
        endpoint: String,
        status: u16,
        /// What the carrier asked for (`Retry-After`), or [`DEFAULT_BACK_OFF`].
        retry_after: Duration,
        /// When to call this account again.
        until: DateTime<Utc>,
        /// Whether `retry_after` came from the carrier's `Retry-After`.
        from_header: bool,
    },
    #[error("{carrier} answered {endpoint} with an error (HTTP {status}): {message}")]
    CarrierError {
        carrier: Carrier,
        endpoint: String,
        /// The HTTP status: a failure reported inside a 200 keeps 200 here and says so.
        status: u16,
        message: String,
    },
    #[error("{carrier} could not be reached at {endpoint}: {reason}")]
    Transport {
        carrier: Carrier,
        endpoint: String,
        reason: String,
        timed_out: bool,
    },
    #[error("{carrier}'s answer from {endpoint} is not what its API documents: {reason}")]
    Unparseable {
        carrier: Carrier,
        endpoint: String,
        reason: String,
    },
    #[error("not sent to {carrier}: {reason}")]
    InvalidRequest { carrier: Carrier, reason: String },
}

impl PullError {
    /// Until when the account should be left alone, if the carrier asked for it.
    pub fn back_off_until(&self) -> Option<DateTime<Utc>> {
        match self {
            PullError::RateLimited { until, .. } => Some(*until),
            _ => None,
        }
    }

    pub fn carrier(&self) -> Carrier {
        match self {
            PullError::Unauthorized { carrier, .. }
            | PullError::RateLimited { carrier, .. }
            | PullError::CarrierError { carrier, .. }
            | PullError::Transport { carrier, .. }
            | PullError::Unparseable { carrier, .. }
            | PullError::InvalidRequest { carrier, .. } => *carrier,
        }
    }
}

/// What a pull found for one requested shipment.
#[derive(Debug, Clone, PartialEq)]
pub struct PulledShipment {
    /// What was asked for: the AWB (Clickpost, Shiprocket) or the order id (Shipway).
    pub requested: String,
    pub outcome: Pulled,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Pulled {
    /// The carrier knows the shipment. `events` are its canonical events, oldest first, as the
    /// webhook normaliser makes them (possibly none: no scan yet). `skipped` names each scan
    /// that could not be normalised and why (the webhook path would have quarantined it).
    Found {
        events: Vec<CanonicalEvent>,
        skipped: Vec<String>,
    },
    /// The carrier does not know it (Clickpost `valid: false`, Shiprocket `track_status: 0` or
    /// an AWB missing from a bulk answer): "no data", which is not "nothing new".
    NotFound { reason: String },
}

/// A failure read from an answer, before the client names the call.
#[derive(Debug)]
pub(crate) enum Fault {
    Unauthorized {
        status: u16,
        message: String,
    },
    RateLimited {
        status: u16,
        retry_after: Option<Duration>,
    },
    Carrier {
        status: u16,
        message: String,
    },
    Unparseable(String),
}

/// One call's identity for its errors and logs: the carrier, the URL as shown, and the secrets
/// no message may contain.
pub(crate) struct CallSite<'a> {
    pub carrier: Carrier,
    pub method: PullMethod,
    pub endpoint: String,
    pub secrets: &'a [&'a str],
}

impl CallSite<'_> {
    pub(crate) fn error(&self, fault: Fault, now: DateTime<Utc>) -> PullError {
        let carrier = self.carrier;
        let endpoint = format!("{} {}", self.method.as_str(), self.endpoint);
        let scrub = |text: String| scrub(&text, self.secrets);
        match fault {
            Fault::Unauthorized { status, message } => PullError::Unauthorized {
                carrier,
                endpoint,
                status,
                message: scrub(message),
            },
            Fault::RateLimited {
                status,
                retry_after,
            } => {
                let wait = retry_after.unwrap_or(DEFAULT_BACK_OFF);
                let until =
                    now + chrono::TimeDelta::from_std(wait).unwrap_or(chrono::TimeDelta::MAX / 2);
                PullError::RateLimited {
                    carrier,
                    endpoint,
                    status,
                    retry_after: wait,
                    until,
                    from_header: retry_after.is_some(),
                }
            }
            Fault::Carrier { status, message } => PullError::CarrierError {
                carrier,
                endpoint,
                status,
                message: scrub(message),
            },
            Fault::Unparseable(reason) => PullError::Unparseable {
                carrier,
                endpoint,
                reason: scrub(reason),
            },
        }
    }

    /// Sends `request` and returns the answer, whatever its status; a call with no answer is a
    /// `Transport` error.
    pub(crate) async fn send<T: PullTransport>(
        &self,
        transport: &T,
        request: &PullRequest,
    ) -> Result<PullResponse, PullError> {
        let started = std::time::Instant::now();
        let answer = transport.send(request).await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match answer {
            Ok(response) => {
                tracing::debug!(
                    carrier = %self.carrier,
                    method = %self.method.as_str(),
                    url = %self.endpoint,
                    status = response.status,
                    latency_ms = elapsed_ms,
                    "carrier API answered"
                );
                Ok(response)
            }
            Err(e) => {
                let reason = scrub(&e.reason, self.secrets);
                tracing::warn!(
                    carrier = %self.carrier,
                    method = %self.method.as_str(),
                    url = %self.endpoint,
                    latency_ms = elapsed_ms,
                    reason = %reason,
                    "carrier API not reached"
                );
                Err(PullError::Transport {
                    carrier: self.carrier,
                    endpoint: format!("{} {}", self.method.as_str(), self.endpoint),
                    reason,
                    timed_out: e.timed_out,
                })
            }
        }
    }

    pub(crate) fn invalid_request(&self, reason: impl Into<String>) -> PullError {
        PullError::InvalidRequest {
            carrier: self.carrier,
            reason: reason.into(),
        }
    }
}

/// The faults an HTTP status says by itself: 401 and 403 (credentials, an IP allow-list), 429,
/// a 503 with `Retry-After` (both: back off), any other non-2xx (the carrier's error).
pub(crate) fn check_status(response: &PullResponse) -> Result<(), Fault> {
    let status = response.status;
    match status {
        200..=299 => Ok(()),
        401 | 403 => Err(Fault::Unauthorized {
            status,
            message: snippet(&response.body),
        }),
        429 => Err(Fault::RateLimited {
            status,
            retry_after: response.retry_after,
        }),
        503 if response.retry_after.is_some() => Err(Fault::RateLimited {
            status,
            retry_after: response.retry_after,
        }),
        _ => Err(Fault::Carrier {
            status,
            message: snippet(&response.body),
        }),
    }
}

/// Parses an answer's body, naming the field that did not fit.
pub(crate) fn parse_answer<T: DeserializeOwned>(body: &[u8]) -> Result<T, Fault> {
    super::wire::parse_json(body).map_err(|e| Fault::Unparseable(e.to_string()))
}

/// Parses one part of an answer (`path` names it in errors), whatever JSON value it is.
pub(crate) fn parse_part<T: DeserializeOwned>(
    raw: &serde_json::value::RawValue,
    path: &str,
) -> Result<T, Fault> {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.path().to_string();
        let at = if inner == "." {
            path.to_owned()
        } else {
            format!("{path}.{inner}")
        };
        Fault::Unparseable(format!("`{at}` is invalid: {}", e.into_inner()))
    })
}

/// The start of an answer's body, on one line, for an error message ("(empty)" if none).
pub(crate) fn snippet(body: &[u8]) -> String {
    const MAX: usize = 300;
    let text = String::from_utf8_lossy(body);
    let one_line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if one_line.is_empty() {
        return "(empty answer)".to_owned();
    }
    match one_line.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

/// `text` with every secret (of four characters or more) replaced by `…`: a carrier's error
/// message may echo what it was sent.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if secret.len() >= 4 {
            out = out.replace(secret, "…");
        }
    }
    out
}

/// `url` as logs and errors show it: the values of the `secret` query parameters as `…`.
pub(crate) fn shown_url(url: &url::Url, secret: &[&str]) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    let mut text = shown.as_str().to_owned();
    let pairs: Vec<String> = url
        .query_pairs()
        .map(|(name, value)| {
            if secret.contains(&name.as_ref()) {
                format!("{name}=…")
            } else {
                format!("{name}={value}")
            }
        })
        .collect();
    if !pairs.is_empty() {
        text.push('?');
        text.push_str(&pairs.join("&"));
    }
    text
}

/// A JSON body for a request (the clients' bodies are small objects that always serialise).
pub(crate) fn json_body(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Refuses a list of shipment ids the carrier's call cannot take.
pub(crate) fn check_ids(site: &CallSite<'_>, ids: &[String], max: usize) -> Result<(), PullError> {
    if ids.is_empty() {
        return Err(site.invalid_request("no shipment ids were given"));
    }
    if ids.len() > max {
        return Err(site.invalid_request(format!(
            "{} shipment ids were given; one call takes at most {max}: split them",
            ids.len()
        )));
    }
    if let Some(bad) = ids
        .iter()
        .find(|id| id.trim().is_empty() || id.contains(',') || id.chars().any(char::is_control))
    {
        return Err(site.invalid_request(format!(
            "{bad:?} is not a shipment id (blank, or holding a comma or a control character)"
        )));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testing {
    //! A scripted transport: answers in order, records every request.

    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A cheap `Clone` handle: its clones share the script and the requests sent.
    #[derive(Clone, Default)]
    pub struct Scripted {
        answers: Arc<Mutex<VecDeque<Result<PullResponse, TransportError>>>>,
        pub sent: Arc<Mutex<Vec<PullRequest>>>,
    }

    impl Scripted {
        pub fn new(answers: Vec<Result<PullResponse, TransportError>>) -> Self {
            Scripted {
                answers: Arc::new(Mutex::new(answers.into())),
                sent: Arc::default(),
            }
        }

        pub fn sent(&self) -> Vec<PullRequest> {
            self.sent.lock().unwrap().clone()
        }
    }

    pub fn answer(status: u16, body: &str) -> Result<PullResponse, TransportError> {
        Ok(PullResponse {
            status,
            retry_after: None,
            body: body.as_bytes().to_vec(),
        })
    }

    impl PullTransport for Scripted {
        async fn send(&self, request: &PullRequest) -> Result<PullResponse, TransportError> {
            self.sent.lock().unwrap().push(request.clone());
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| panic!("no answer scripted for {request:?}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_follows_the_push_url_rules_and_has_no_query() {
        assert!(BaseUrl::parse("https://api.clickpost.in", TargetPolicy::default()).is_ok());
        let refused = |text: &str, policy| BaseUrl::parse(text, policy).unwrap_err().to_string();
        assert!(
            refused("http://127.0.0.1:9000", TargetPolicy::default()).contains("http://"),
            "http needs the local policy"
        );
        assert!(refused(
            "https://127.0.0.1:9000",
            TargetPolicy {
                allow_private: false,
                allow_http: true
            }
        )
        .contains("private targets are not allowed"));
        assert!(BaseUrl::parse("http://127.0.0.1:9000", TargetPolicy::LOCAL).is_ok());
        assert!(
            refused("https://api.clickpost.in/?key=x", TargetPolicy::default())
                .contains("no query")
        );
    }

    #[test]
    fn the_documented_base_urls_pass_the_production_rules() {
        for url in [
            crate::carriers::clickpost::pull::DEFAULT_BASE_URL,
            crate::carriers::shiprocket::pull::DEFAULT_BASE_URL,
            crate::carriers::shipway::pull::DEFAULT_BASE_URL,
        ] {
            let parsed = BaseUrl::parse(url, TargetPolicy::default()).unwrap();
            assert_eq!(parsed, BaseUrl::documented(url), "{url}");
        }
    }

    #[test]
    fn paths_are_appended_to_the_base_path() {
        let base = BaseUrl::parse(
            "https://apiv2.shiprocket.in/v1/external/",
            TargetPolicy::default(),
        )
        .unwrap();
        assert_eq!(
            base.join("/auth/login").as_str(),
            "https://apiv2.shiprocket.in/v1/external/auth/login"
        );
        assert_eq!(base.to_string(), "https://apiv2.shiprocket.in/v1/external");
    }

    #[test]
    fn a_shown_url_hides_the_secret_parameters_and_keeps_the_rest() {
        let url = url::Url::parse(
            "https://api.clickpost.in/api/v2/track-order/?username=acme&key=k-123&waybill=A1,A2&cp_id=4",
        )
        .unwrap();
        assert_eq!(
            shown_url(&url, &["username", "key"]),
            "https://api.clickpost.in/api/v2/track-order/?username=…&key=…&waybill=A1,A2&cp_id=4"
        );
    }

    #[test]
    fn messages_are_scrubbed_and_kept_short_on_one_line() {
        assert_eq!(
            scrub("invalid key k-123 for acme", &["k-123", "acme"]),
            "invalid key … for …"
        );
        assert_eq!(snippet(b"  a\n b\t"), "a b");
        assert_eq!(snippet(b""), "(empty answer)");
        assert_eq!(snippet("x".repeat(400).as_bytes()).chars().count(), 301);
    }

    #[test]
    fn statuses_say_what_to_do() {
        let reply = |status, retry_after| PullResponse {
            status,
            retry_after,
            body: b"{\"message\":\"no\"}".to_vec(),
        };
        assert!(check_status(&reply(200, None)).is_ok());
        assert!(matches!(
            check_status(&reply(401, None)),
            Err(Fault::Unauthorized { status: 401, .. })
        ));
        assert!(matches!(
            check_status(&reply(429, None)),
            Err(Fault::RateLimited {
                retry_after: None,
                ..
            })
        ));
        assert!(matches!(
            check_status(&reply(503, Some(Duration::from_secs(3)))),
            Err(Fault::RateLimited { status: 503, .. })
        ));
        assert!(matches!(
            check_status(&reply(503, None)),
            Err(Fault::Carrier { status: 503, .. })
        ));
        let site = CallSite {
            carrier: Carrier::Shiprocket,
            method: PullMethod::Post,
            endpoint: "https://x.example/track".into(),
            secrets: &[],
        };
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .to_utc();
        let limited = site.error(
            Fault::RateLimited {
                status: 429,
                retry_after: None,
            },
            now,
        );
        assert_eq!(
            limited.back_off_until(),
            Some(now + chrono::TimeDelta::seconds(60))
        );
        assert!(
            limited.to_string().contains("no Retry-After given"),
            "{limited}"
        );
    }
}

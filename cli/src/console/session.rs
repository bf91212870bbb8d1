//! Who may use the console, and the proof that a form came from one of its pages.
//!
//! A session is a random id in an HttpOnly, SameSite=Strict cookie scoped to `/console`; the
//! server keeps its digest, never the id. Each session has a CSRF token that every form carries
//! in a hidden field and every POST must present ([`Posted`]): SameSite keeps the cookie off
//! cross-site requests, and the token would stop a forged form even where a browser sent it.
//!
//! How one signs in depends on the host ([`Gate`]): `rms serve` with `admin_token` takes the
//! token on the sign-in page; `rms serve` on loopback without one opens a session for any page
//! asked for by a loopback name (the admin API is just as open there); `rms console` prints a
//! one-time link whose token is spent at its first use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use shared::auth::{random_token, Credential, CredentialDigest};
use tracing::{info, warn};

use super::form::Form;
use super::layout::{self, see_other};
use super::{Backend, Console, ConsoleState};

/// The session cookie.
const COOKIE: &str = "rms_console";
/// The sign-in form's own CSRF cookie (there is no session yet to hold a token).
const SIGN_IN_COOKIE: &str = "rms_console_sign_in";
/// A session unused this long is forgotten: the operator signs in again.
const IDLE: Duration = Duration::from_secs(8 * 3600);
/// The most sessions kept; the least recently used goes first. (An open console makes one per
/// visitor without a cookie, so this bounds what a loop of requests can make it hold.)
const MAX_SESSIONS: usize = 1000;

/// How one gets a session.
pub enum Gate {
    /// No sign-in: `rms serve` on loopback without `admin_token`. Pages asked for by another
    /// name than a loopback one are refused, so a DNS-rebinding page cannot use the console.
    Open,
    /// `rms serve`'s `admin_token`, typed on the sign-in page.
    Token(CredentialDigest),
    /// `rms console`'s one-time token: spent by its first sign-in.
    OneTime(Mutex<Option<CredentialDigest>>),
}

impl Gate {
    /// `rms serve`'s gate: its admin token if it has one, else open (it listens on loopback).
    pub fn for_admin_token(token: Option<&str>) -> Gate {
        match token {
            Some(token) => Gate::Token(Credential::new(token).digest()),
            None => Gate::Open,
        }
    }

    /// A one-time gate, and its token (to print once).
    pub fn one_time() -> (Gate, String) {
        let token = random_token(24);
        let gate = Gate::OneTime(Mutex::new(Some(Credential::new(token.as_str()).digest())));
        (gate, token)
    }

    /// Whether `token` lets one in (a one-time token only once). Digests are compared, so the
    /// comparison's time says nothing about the token.
    fn admits(&self, token: &str) -> bool {
        let given = Credential::new(token.trim()).digest();
        match self {
            Gate::Open => true,
            Gate::Token(expected) => given == *expected,
            Gate::OneTime(unused) => {
                let mut unused = unused.lock().unwrap_or_else(|e| e.into_inner());
                if *unused == Some(given) {
                    *unused = None;
                    true
                } else {
                    false
                }
            }
        }
    }

    pub fn signs_in(&self) -> bool {
        !matches!(self, Gate::Open)
    }
}

/// A message for the next page the session sees: an action's outcome, with a secret to show
/// once (a generated key or signing secret) or details (a test push's answer).
#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
    pub detail: Option<String>,
    pub secret: Option<String>,
}

impl Flash {
    pub fn done(text: impl Into<String>) -> Flash {
        Flash {
            ok: true,
            text: text.into(),
            detail: None,
            secret: None,
        }
    }

    pub fn failed(text: impl Into<String>) -> Flash {
        Flash {
            ok: false,
            ..Flash::done(text)
        }
    }
}

struct Session {
    csrf: String,
    last_seen: Instant,
    flash: Vec<Flash>,
}

/// The live sessions, by the digest of their cookie.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<CredentialDigest, Session>>);

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CredentialDigest, Session>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session: its cookie value (to set once) and its visitor.
    fn open(&self) -> (String, Visitor) {
        let id = random_token(32);
        let digest = Credential::new(id.as_str()).digest();
        let csrf = random_token(32);
        let mut sessions = self.lock();
        let now = Instant::now();
        sessions.retain(|_, s| now.duration_since(s.last_seen) < IDLE);
        while sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(d, _)| *d);
            match oldest {
                Some(d) => sessions.remove(&d),
                None => break,
            };
        }
        sessions.insert(
            digest,
            Session {
                csrf: csrf.clone(),
                last_seen: now,
                flash: Vec::new(),
            },
        );
        (
            id,
            Visitor {
                session: digest,
                csrf,
            },
        )
    }

    /// The visitor whose cookie this is, if its session is live.
    fn find(&self, cookie: &str) -> Option<Visitor> {
        let digest = Credential::new(cookie).digest();
        let mut sessions = self.lock();
        let session = sessions.get_mut(&digest)?;
        if session.last_seen.elapsed() >= IDLE {
            sessions.remove(&digest);
            return None;
        }
        session.last_seen = Instant::now();
        Some(Visitor {
            session: digest,
            csrf: session.csrf.clone(),
        })
    }

    fn close(&self, visitor: &Visitor) {
        self.lock().remove(&visitor.session);
    }

    pub fn flash(&self, visitor: &Visitor, flash: Flash) {
        if let Some(session) = self.lock().get_mut(&visitor.session) {
            session.flash.push(flash);
        }
    }

    /// The messages waiting for this visitor, removed: each is shown once.
    pub fn take_flash(&self, visitor: &Visitor) -> Vec<Flash> {
        self.lock()
            .get_mut(&visitor.session)
            .map(|s| std::mem::take(&mut s.flash))
            .unwrap_or_default()
    }
}

/// The signed-in visitor of a request (put there by [`admit`]).
#[derive(Debug, Clone)]
pub struct Visitor {
    pub session: CredentialDigest,
    /// The token this session's forms carry.
    pub csrf: String,
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let age = max_age.map_or_else(String::new, |s| format!("; Max-Age={s}"));
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether the request names this machine by a loopback name (`127.0.0.1`, `localhost`,
/// `[::1]`, any port).
fn asked_by_loopback_name(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A POST from another site: its `Origin` names another host than the one asked for (or, behind
/// a proxy that rewrites `Host`, the one it forwarded). Browsers send `Origin` with every POST;
/// SameSite and the CSRF token already stop these, this says so early and plainly.
fn cross_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let named = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|host| host == origin_host)
    };
    !(named(header::HOST) || named(header::HeaderName::from_static("x-forwarded-host")))
}

/// Lets a request with a live session through, with its [`Visitor`]. Without one: an open
/// console opens a session for a page (GET); a signed console sends the browser to the sign-in
/// page; a POST is refused (it cannot carry a token of a session it does not have).
pub async fn admit<B: Backend>(
    State(console): ConsoleState<B>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if matches!(console.gate, Gate::Open) && !asked_by_loopback_name(headers) {
        return refused(
            StatusCode::FORBIDDEN,
            "This console has no sign-in, so it answers on this machine's loopback names only \
             (127.0.0.1, localhost). Set admin_token in rms.toml to reach it by another name.",
        );
    }
    let is_post = request.method() == Method::POST;
    if is_post && cross_origin(headers) {
        return refused(
            StatusCode::FORBIDDEN,
            "This form was sent from another site; the console takes forms from its own pages only.",
        );
    }
    if let Some(visitor) = cookie(headers, COOKIE).and_then(|c| console.sessions.find(c)) {
        request.extensions_mut().insert(visitor);
        return next.run(request).await;
    }
    if is_post {
        return refused(
            StatusCode::FORBIDDEN,
            "Your session has ended (or never began): sign in again, then repeat the action.",
        );
    }
    if console.gate.signs_in() {
        return see_other("/console/sign-in");
    }
    let (id, visitor) = console.sessions.open();
    request.extensions_mut().insert(visitor);
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(COOKIE, &id, None));
    response
}

/// A page that says why a request was refused.
pub fn refused(status: StatusCode, why: &str) -> Response {
    let body = html! {
        main.narrow {
            h1 { "Refused" }
            p { (why) }
            p { a href="/console" { "Back to the console" } }
        }
    };
    (status, layout::bare("Refused", body)).into_response()
}

/// A POSTed form whose CSRF token is the session's. Every state-changing route takes one, so
/// none can forget the check.
pub struct Posted {
    pub visitor: Visitor,
    pub form: Form,
}

impl<B: Backend> FromRequest<std::sync::Arc<Console<B>>> for Posted {
    type Rejection = Response;

    async fn from_request(
        request: Request,
        state: &std::sync::Arc<Console<B>>,
    ) -> Result<Self, Response> {
        let Some(visitor) = request.extensions().get::<Visitor>().cloned() else {
            return Err(refused(StatusCode::FORBIDDEN, "Sign in first."));
        };
        let bytes = Bytes::from_request(request, state).await.map_err(|_| {
            refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form could not be read (it is over 64 KiB, or it stopped arriving).",
            )
        })?;
        let form = Form::parse(&bytes);
        let presented = form.one("csrf").unwrap_or_default();
        if Credential::new(presented).digest() != Credential::new(visitor.csrf.as_str()).digest() {
            warn!("console form refused: missing or wrong CSRF token");
            return Err(refused(
                StatusCode::FORBIDDEN,
                "This form did not come from this console session (its CSRF token is missing or \
                 stale). Reload the page and try again.",
            ));
        }
        Ok(Posted { visitor, form })
    }
}

#[derive(Deserialize)]
pub struct SignInQuery {
    token: Option<String>,
}

/// The sign-in page; with `?token=` (`rms console`'s one-time link) it signs in at once.
pub async fn sign_in_page<B: Backend>(
    State(console): ConsoleState<B>,
    Query(query): Query<SignInQuery>,
    headers: HeaderMap,
) -> Response {
    if !console.gate.signs_in() {
        return see_other("/console");
    }
    // Only a one-time token may come in a URL: the admin token is typed, never linked.
    if let (Some(token), Gate::OneTime(_)) = (query.token, &console.gate) {
        return if console.gate.admits(&token) {
            signed_in(&console)
        } else {
            sign_in_form(
                Some(
                    "This sign-in link was used already or is not this console's. Stop rms \
                     console and start it again for a new link.",
                ),
                &console.gate,
                &headers,
            )
        };
    }
    sign_in_form(None, &console.gate, &headers)
}

/// The sign-in form's answer.
pub async fn sign_in<B: Backend>(
    State(console): ConsoleState<B>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    let presented = form.one("csrf").unwrap_or_default();
    if expected.is_empty()
        || Credential::new(presented).digest() != Credential::new(expected).digest()
    {
        return refused(
            StatusCode::FORBIDDEN,
            "This sign-in form did not come from this console (its CSRF token is missing or \
             stale). Open the sign-in page again.",
        );
    }
    if console.gate.admits(form.one("token").unwrap_or_default()) {
        signed_in(&console)
    } else {
        warn!("console sign-in refused: wrong token");
        // A little time per wrong guess.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut response = sign_in_form(
            Some("That is not the token. Try again."),
            &console.gate,
            &headers,
        );
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response
    }
}

fn signed_in<B: Backend>(console: &Console<B>) -> Response {
    let (id, _) = console.sessions.open();
    info!("console session opened");
    let mut response = see_other("/console");
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, set_cookie(COOKIE, &id, None));
    headers.append(header::SET_COOKIE, set_cookie(SIGN_IN_COOKIE, "", Some(0)));
    response
}

fn sign_in_form(problem: Option<&str>, gate: &Gate, headers: &HeaderMap) -> Response {
    // Double submit: the same random value in a cookie and in the form.
    let token = cookie(headers, SIGN_IN_COOKIE)
        .filter(|t| t.len() == 64)
        .map_or_else(|| random_token(32), str::to_owned);
    let hint = match gate {
        Gate::OneTime(_) => {
            "Open the link rms console printed, or paste the token of that link here. It works \
             once."
        }
        _ => "The admin_token of rms.toml.",
    };
    let body = html! {
        main.narrow {
            h1 { "Sign in" }
            @if let Some(problem) = problem {
                p.flash.failed role="alert" { (problem) }
            }
            form method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(token);
                label for="token" { "Admin token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                p.hint { (hint) }
                button type="submit" { "Sign in" }
            }
        }
    };
    let mut response = layout::bare("Sign in", body).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(SIGN_IN_COOKIE, &token, None));
    response
}

/// Ends the session.
pub async fn sign_out<B: Backend>(State(console): ConsoleState<B>, posted: Posted) -> Response {
    console.sessions.close(&posted.visitor);
    let mut response = see_other(if console.gate.signs_in() {
        "/console/sign-in"
    } else {
        "/console"
    });
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(COOKIE, "", Some(0)));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_loopback_names_reach_an_open_console() {
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "[::1]:8080",
            "127.0.0.1",
        ] {
            assert!(
                asked_by_loopback_name(&headers(&[("host", host)])),
                "{host}"
            );
        }
        for host in [
            "evil.example:8080",
            "rebind.example",
            "10.0.0.5:8080",
            "[fd00::1]:80",
        ] {
            assert!(
                !asked_by_loopback_name(&headers(&[("host", host)])),
                "{host}"
            );
        }
        assert!(!asked_by_loopback_name(&HeaderMap::new()));
    }

    #[test]
    fn a_post_from_another_origin_is_told_apart() {
        let same = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(!cross_origin(&same));
        let other = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
        ]);
        assert!(cross_origin(&other));
        assert!(!cross_origin(&headers(&[("host", "127.0.0.1:8080")])));
        let opaque = headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]);
        assert!(cross_origin(&opaque));
        let proxied = headers(&[
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "console.example"),
            ("origin", "https://console.example"),
        ]);
        assert!(!cross_origin(&proxied));
    }

    #[test]
    fn a_one_time_token_lets_in_once() {
        let (gate, token) = Gate::one_time();
        assert!(!gate.admits("wrong"));
        assert!(gate.admits(&token));
        assert!(!gate.admits(&token));
    }

    #[test]
    fn a_cookie_is_found_among_others() {
        let map = headers(&[("cookie", "a=1; rms_console=abc; b=2")]);
        assert_eq!(cookie(&map, COOKIE), Some("abc"));
        assert_eq!(cookie(&map, SIGN_IN_COOKIE), None);
    }

    #[test]
    fn a_session_has_its_own_csrf_token_and_ends_when_closed() {
        let sessions = Sessions::default();
        let (id, visitor) = sessions.open();
        let (_, other) = sessions.open();
        assert_ne!(visitor.csrf, other.csrf);
        assert_eq!(sessions.find(&id).unwrap().csrf, visitor.csrf);
        sessions.flash(&visitor, Flash::done("saved"));
        assert_eq!(sessions.take_flash(&visitor).len(), 1);
        assert!(sessions.take_flash(&visitor).is_empty(), "shown once");
        sessions.close(&visitor);
        assert!(sessions.find(&id).is_none());
    }
}

//! Shiprocket's pull API (docs/carriers.md "Pull APIs", carrier-pull-apis §2): bulk tracking,
//! `POST /courier/track/awbs` with at most 50 AWBs, behind a JWT from `POST /auth/login`.
//!
//! The token of an API user (email and password) is "valid for 240 hours (10 days)" [V SR-SUP,
//! SR-DOC]; no refresh token exists. The client keeps one per account and logs in again at 216
//! hours (a day's margin), and once when a call answers 401 (an expired or revoked token), as
//! integrators do [C]. Whether a new login revokes older tokens is not documented [?]: a
//! reconciler should keep one client per account (and may persist the token, [`ApiToken`]).
//!
//! A pulled history holds the webhook's scan objects under `shipment_track_activities`, newest
//! first, with the same field names [V]. Every scan that set a status (an `sr-status` code) is
//! made into the webhook body Shiprocket would have sent at that scan (status = the scan's,
//! history cut there) and normalised by the webhook's code; so is the current status when no
//! scan carries it (§2.6). Each event is then the very event its webhook gave.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{to_event, Payload, Scan};
use crate::carriers::pull::{
    check_ids, check_status, json_body, parse_answer, parse_part, snippet, BaseUrl, CallSite,
    Fault, PullError, PullMethod, PullRequest, PullResponse, PullTransport, Pulled, PulledShipment,
    DEFAULT_TIMEOUT,
};
use crate::carriers::wire::{text, Int, Str};
use crate::carriers::NormalizeContext;
use crate::model::{Carrier, Source};
use crate::push::SecretValue;

/// Shiprocket's external API root.
pub const DEFAULT_BASE_URL: &str = "https://apiv2.shiprocket.in/v1/external";

/// "Maximum of 50 AWB codes is supported at a time" [V SR-DOC].
pub const MAX_AWBS_PER_CALL: usize = 50;

/// How long a token is valid: 240 hours [V].
pub const TOKEN_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(240);

/// When the client logs in again: a day before the token expires.
pub const RENEW_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(216);

/// A Shiprocket API user (Settings › API › "Create an API User"; it needs the tracking module):
/// its email and password. Write-only: `Debug` shows the email, never the password.
#[derive(Clone)]
pub struct PullCredentials {
    email: String,
    password: SecretValue,
    base_url: BaseUrl,
}

impl PullCredentials {
    pub fn new(email: impl Into<String>, password: SecretValue) -> Self {
        PullCredentials {
            email: email.into(),
            password,
            base_url: BaseUrl::documented(DEFAULT_BASE_URL),
        }
    }

    /// Calls another host than [`DEFAULT_BASE_URL`] (a local fake in tests).
    /// The account's user (email), as the store keeps it.
    pub fn user(&self) -> &str {
        &self.email
    }

    /// The account's secret (password), as the store keeps it.
    pub fn secret(&self) -> &SecretValue {
        &self.password
    }

    /// Where the account's API is.
    pub fn base_url(&self) -> &BaseUrl {
        &self.base_url
    }

    pub fn with_base_url(mut self, base_url: BaseUrl) -> Self {
        self.base_url = base_url;
        self
    }

    pub fn email(&self) -> &str {
        &self.email
    }
}

impl std::fmt::Debug for PullCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("shiprocket::PullCredentials")
            .field("email", &self.email)
            .field("password", &"…")
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// A token from `/auth/login` and when it was obtained (for its age). Write-only: `Debug`
/// shows its age's start, never the token.
#[derive(Clone)]
pub struct ApiToken {
    token: SecretValue,
    obtained_at: DateTime<Utc>,
}

impl ApiToken {
    /// A token kept elsewhere (a reconciler's store), to spare a login.
    pub fn new(token: SecretValue, obtained_at: DateTime<Utc>) -> Self {
        ApiToken { token, obtained_at }
    }

    pub fn token(&self) -> &SecretValue {
        &self.token
    }

    pub fn obtained_at(&self) -> DateTime<Utc> {
        self.obtained_at
    }

    /// Whether it is due for renewal at `now` ([`RENEW_AFTER`]).
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        now - self.obtained_at >= RENEW_AFTER
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("token", &"…")
            .field("obtained_at", &self.obtained_at)
            .finish()
    }
}

/// The Shiprocket pull client of one account (API user), with its token.
pub struct ShiprocketPull<T> {
    transport: T,
    credentials: PullCredentials,
    timeout: Duration,
    token: Mutex<Option<ApiToken>>,
}

impl<T: PullTransport> ShiprocketPull<T> {
    pub fn new(transport: T, credentials: PullCredentials) -> Self {
        ShiprocketPull {
            transport,
            credentials,
            timeout: DEFAULT_TIMEOUT,
            token: Mutex::new(None),
        }
    }

    /// Each call's timeout (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts with a token obtained earlier (renewed as any other when due or refused).
    pub fn with_token(self, token: ApiToken) -> Self {
        *self.token_slot() = Some(token);
        self
    }

    /// The token in use, if any: what a reconciler may keep between runs.
    pub fn token(&self) -> Option<ApiToken> {
        self.token_slot().clone()
    }

    /// The histories of at most [`MAX_AWBS_PER_CALL`] AWBs, one result per AWB in the order
    /// given: each status change an event as its webhook would have made it (oldest first).
    /// `ctx.received_at` is the time of the pull (events' arrival, the token's age).
    ///
    /// Shiprocket's pull carries no `is_return`: the events are forward unless the caller knows
    /// better (it may set `shipment_type` from the shipment's first webhook).
    pub async fn track_awbs(
        &self,
        awbs: &[String],
        ctx: &NormalizeContext,
    ) -> Result<Vec<PulledShipment>, PullError> {
        let url = self.credentials.base_url.join("/courier/track/awbs");
        let password = self.credentials.password.expose();
        let now = ctx.received_at;
        check_ids(
            &self.site(PullMethod::Post, &url, &[password]),
            awbs,
            MAX_AWBS_PER_CALL,
        )?;
        let (mut token, fresh) = self.current_token(now).await?;
        let secrets = [password, token.expose()];
        let site = self.site(PullMethod::Post, &url, &secrets);
        let body = json_body(&serde_json::json!({ "awbs": awbs }));
        let mut response = site
            .send(&self.transport, &self.track_request(&url, &token, &body))
            .await?;
        if response.status == 401 && !fresh {
            // Expired or revoked before its time: log in once more and retry once.
            self.forget(&token);
            token = self.login(now).await?.token;
            let secrets = [password, token.expose()];
            let site = self.site(PullMethod::Post, &url, &secrets);
            response = site
                .send(&self.transport, &self.track_request(&url, &token, &body))
                .await?;
            return self.read(&site, &response, awbs, ctx);
        }
        self.read(&site, &response, awbs, ctx)
    }

    fn read(
        &self,
        site: &CallSite<'_>,
        response: &PullResponse,
        awbs: &[String],
        ctx: &NormalizeContext,
    ) -> Result<Vec<PulledShipment>, PullError> {
        check_status(response)
            .map_err(ip_allow_list)
            .and_then(|()| read_bulk(&response.body, awbs, ctx))
            .map_err(|fault| site.error(fault, ctx.received_at))
    }

    /// The token to call with, and whether it was obtained just now (a 401 on a fresh token is
    /// the credentials' fault, not the token's).
    async fn current_token(&self, now: DateTime<Utc>) -> Result<(SecretValue, bool), PullError> {
        let cached = self.token_slot().clone();
        match cached {
            Some(t) if !t.is_due(now) => Ok((t.token, false)),
            _ => Ok((self.login(now).await?.token, true)),
        }
    }

    async fn login(&self, now: DateTime<Utc>) -> Result<ApiToken, PullError> {
        let url = self.credentials.base_url.join("/auth/login");
        let password = self.credentials.password.expose();
        let secrets = [password];
        let site = self.site(PullMethod::Post, &url, &secrets);
        let body = json_body(&serde_json::json!({
            "email": self.credentials.email,
            "password": password,
        }));
        let request = PullRequest {
            method: PullMethod::Post,
            url: url.clone(),
            headers: Vec::new(),
            body: Some(body),
            timeout: self.timeout,
            shown: site.endpoint.clone(),
        };
        let response = site.send(&self.transport, &request).await?;
        let token = read_login(&response).map_err(|fault| site.error(fault, now))?;
        let token = ApiToken::new(token, now);
        *self.token_slot() = Some(token.clone());
        tracing::info!(carrier = "shiprocket", email = %self.credentials.email, "logged in to the Shiprocket API");
        Ok(token)
    }

    /// Drops the cached token if it is still `refused` (another call may have renewed it).
    fn forget(&self, refused: &SecretValue) {
        let mut slot = self.token_slot();
        if slot.as_ref().is_some_and(|t| t.token == *refused) {
            *slot = None;
        }
    }

    fn token_slot(&self) -> std::sync::MutexGuard<'_, Option<ApiToken>> {
        self.token
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn site<'a>(&self, method: PullMethod, url: &url::Url, secrets: &'a [&'a str]) -> CallSite<'a> {
        CallSite {
            carrier: Carrier::Shiprocket,
            method,
            endpoint: url.to_string(),
            secrets,
        }
    }

    fn track_request(&self, url: &url::Url, token: &SecretValue, body: &[u8]) -> PullRequest {
        PullRequest {
            method: PullMethod::Post,
            url: url.clone(),
            headers: vec![(
                "authorization",
                SecretValue::new(format!("Bearer {}", token.expose())),
            )],
            body: Some(body.to_vec()),
            timeout: self.timeout,
            shown: url.to_string(),
        }
    }
}

/// A 403 that names the IP allow-list says what to do about it (§2.2: accounts with API IP
/// whitelisting refuse other addresses).
fn ip_allow_list(fault: Fault) -> Fault {
    match fault {
        Fault::Unauthorized { status, message } if message.contains("[IP]") => {
            Fault::Unauthorized {
                status,
                message: format!(
                    "{message} (the account allows API calls from listed IP addresses only: add \
                     the reconciler's fixed egress address in Shiprocket's API settings)"
                ),
            }
        }
        other => other,
    }
}

/// The token of a login answer. A refusal of the email or password (400, 401, 403, 422) is
/// `Unauthorized`.
fn read_login(response: &PullResponse) -> Result<SecretValue, Fault> {
    if matches!(response.status, 400 | 422) {
        return Err(Fault::Unauthorized {
            status: response.status,
            message: snippet(&response.body),
        });
    }
    check_status(response).map_err(ip_allow_list)?;
    #[derive(Deserialize)]
    struct Login {
        token: Option<Str>,
    }
    let login: Login = parse_answer(&response.body)?;
    text(&login.token)
        .map(SecretValue::new)
        .ok_or_else(|| Fault::Unparseable("the login answer has no `token`".to_owned()))
}

#[derive(Deserialize)]
struct TrackingData {
    track_status: Option<Int>,
    shipment_status: Option<Str>,
    shipment_track: Option<Vec<ShipmentTrack>>,
    shipment_track_activities: Option<Vec<Activity>>,
    etd: Option<Str>,
    error: Option<Str>,
}

#[derive(Deserialize)]
struct ShipmentTrack {
    courier_name: Option<Str>,
    current_status: Option<Str>,
}

/// A pulled activity: the webhook's scan fields, plus the status's name.
#[derive(Deserialize)]
struct Activity {
    date: Option<Str>,
    status: Option<Str>,
    activity: Option<Str>,
    location: Option<Str>,
    #[serde(rename = "sr-status")]
    sr_status: Option<Str>,
    #[serde(rename = "sr-status-label")]
    sr_status_label: Option<Str>,
}

impl Activity {
    fn scan(&self) -> Scan {
        Scan {
            date: self.date.clone(),
            status: self.status.clone(),
            activity: self.activity.clone(),
            location: self.location.clone(),
            sr_status: self.sr_status.clone(),
        }
    }

    /// The status code this activity set, if it set one (`sr-status` a number, not "NA").
    fn status_set(&self) -> Option<String> {
        text(&self.sr_status).filter(|c| c.parse::<i64>().is_ok())
    }
}

/// A bulk answer: `{"<awb>": {"tracking_data": {…}}}` as documented, or `{"tracking_data":
/// {"<awb>": {"tracking_data": {…}}}}` as one integrator reads it [?]; both are taken. An AWB
/// Shiprocket does not know is missing (or `track_status: 0`).
fn read_bulk(
    body: &[u8],
    awbs: &[String],
    ctx: &NormalizeContext,
) -> Result<Vec<PulledShipment>, Fault> {
    type Map = std::collections::HashMap<String, Box<RawValue>>;
    let mut top: Map = parse_answer(body)?;
    // Some Shiprocket APIs answer an error inside a 200 (SR-DOC): `{"message", "status_code"}`.
    // No AWB is called `status_code`.
    if let Some(code) = top.get("status_code") {
        let code: Option<Int> = serde_json::from_str(code.get()).ok();
        if code.is_some_and(|c| c.0 >= 400) {
            #[derive(Deserialize)]
            struct Failure {
                message: Option<Str>,
            }
            let message = serde_json::from_slice::<Failure>(body)
                .ok()
                .and_then(|f| text(&f.message))
                .unwrap_or_else(|| snippet(body));
            return Err(Fault::Carrier {
                status: 200,
                message: format!(
                    "status_code {} in the answer: {message}",
                    code.map_or(0, |c| c.0)
                ),
            });
        }
    }
    if let Some(inner) = top.remove("tracking_data") {
        let nested: Map = parse_part(&inner, "tracking_data")?;
        if nested.contains_key("track_status") || nested.contains_key("shipment_track_activities") {
            // A single shipment's answer: it can only be the one AWB asked for.
            match awbs {
                [only] => {
                    top.insert(only.clone(), inner);
                }
                _ => {
                    return Err(Fault::Unparseable(
                        "a single shipment's `tracking_data` answered several AWBs".to_owned(),
                    ))
                }
            }
        } else {
            top.extend(nested);
        }
    }
    awbs.iter()
        .map(|awb| {
            let outcome = match top.get(awb.as_str()) {
                None => Pulled::NotFound {
                    reason: "not in Shiprocket's answer (an AWB it does not know)".to_owned(),
                },
                Some(raw) => shipment(raw, awb, ctx)?,
            };
            Ok(PulledShipment {
                requested: awb.clone(),
                outcome,
            })
        })
        .collect()
}

/// One AWB's answer (`{"tracking_data": {…}}`, or the `tracking_data` itself) as its events.
fn shipment(raw: &RawValue, awb: &str, ctx: &NormalizeContext) -> Result<Pulled, Fault> {
    #[derive(Deserialize)]
    struct Wrapped {
        tracking_data: Option<Box<RawValue>>,
    }
    let wrapped: Wrapped = parse_part(raw, awb)?;
    let (raw, path) = match &wrapped.tracking_data {
        Some(inner) => (&**inner, format!("{awb}.tracking_data")),
        None => (raw, awb.to_owned()),
    };
    let data: TrackingData = parse_part(raw, &path)?;
    if data.track_status.is_some_and(|s| s.0 == 0) {
        return Ok(Pulled::NotFound {
            reason: format!(
                "track_status 0: {}",
                text(&data.error).unwrap_or_else(|| "no activities found".to_owned())
            ),
        });
    }
    let source = ctx
        .include_source
        .then(|| Source::from_json(raw.get()))
        .flatten();
    let track = data.shipment_track.as_deref().and_then(<[_]>::first);
    let courier = track.and_then(|t| t.courier_name.clone());
    let mut activities: Vec<&Activity> = data
        .shipment_track_activities
        .as_deref()
        .unwrap_or_default()
        .iter()
        .collect();
    // Newest first on the wire; oldest first here, by date (the format sorts as text).
    activities.reverse();
    activities.sort_by_key(|a| text(&a.date).unwrap_or_default());

    let payload = |code: String, label: Option<Str>, upto: usize| Payload {
        awb: Some(Str(awb.to_owned())),
        courier_name: courier.clone(),
        shipment_status: label,
        shipment_status_id: Some(Str(code)),
        etd: data.etd.clone(),
        scans: Some(activities[..upto].iter().map(|a| a.scan()).collect()),
        ..Payload::default()
    };
    let mut events = Vec::new();
    let mut skipped = Vec::new();
    for (i, activity) in activities.iter().enumerate() {
        let Some(code) = activity.status_set() else {
            continue;
        };
        let label = activity
            .sr_status_label
            .clone()
            .filter(|l| !l.0.trim().eq_ignore_ascii_case("NA"));
        match to_event(&payload(code, label, i + 1), source.clone(), ctx) {
            Ok(event) => events.push(event),
            Err(e) => skipped.push(format!(
                "shipment_track_activities ({}): {e}",
                activity_name(activity)
            )),
        }
    }
    // The current status, when no activity carries it: the status itself is the event (§2.6).
    if let Some(current) = text(&data.shipment_status) {
        let carried = activities
            .iter()
            .any(|a| a.status_set().as_deref() == Some(current.as_str()));
        if !carried {
            let label = track.and_then(|t| t.current_status.clone());
            match to_event(
                &payload(current, label, activities.len()),
                source.clone(),
                ctx,
            ) {
                Ok(event) => events.push(event),
                Err(e) => skipped.push(format!("shipment_status: {e}")),
            }
        }
    }
    events.sort_by_key(|e| e.event_time);
    events.dedup_by(|a, b| a.event_id == b.event_id);
    Ok(Pulled::Found { events, skipped })
}

fn activity_name(activity: &Activity) -> String {
    format!(
        "{} at {}",
        text(&activity.sr_status).unwrap_or_else(|| "no sr-status".to_owned()),
        text(&activity.date).unwrap_or_else(|| "no date".to_owned())
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::carriers::pull::testing::{answer, Scripted};
    use crate::carriers::pull::TransportError;
    use crate::model::{CanonicalEvent, Status};
    use crate::push::TargetPolicy;

    fn ctx() -> NormalizeContext {
        NormalizeContext::new(
            crate::model::TenantId::parse("acme").unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
        )
    }

    use crate::fixtures::fixture;

    fn client(answers: Vec<Result<PullResponse, TransportError>>) -> ShiprocketPull<Scripted> {
        ShiprocketPull::new(
            Scripted::new(answers),
            PullCredentials::new("api@acme.example", SecretValue::new("pa55-w0rd-secret"))
                .with_base_url(
                    BaseUrl::parse("http://127.0.0.1:1/v1/external", TargetPolicy::LOCAL).unwrap(),
                ),
        )
    }

    const LOGIN: &str = r#"{"id":1,"email":"api@acme.example","token":"eyJ.token-1.sig"}"#;

    fn events(pulled: &PulledShipment) -> &[CanonicalEvent] {
        match &pulled.outcome {
            Pulled::Found { events, skipped } => {
                assert!(skipped.is_empty(), "{skipped:?}");
                events
            }
            other => panic!("{other:?}"),
        }
    }

    fn webhook(name: &str) -> CanonicalEvent {
        crate::carriers::shiprocket::normalize(&fixture(name), &ctx()).unwrap()
    }

    #[tokio::test]
    async fn each_status_change_is_the_webhooks_event_and_a_status_no_scan_carries_too() {
        let body = String::from_utf8(fixture("shiprocket/pull_track_awbs.json")).unwrap();
        let pull = client(vec![answer(200, LOGIN), answer(200, &body)]);
        let awbs =
            ["19041424751540", "77624019385512", "141123221084999", "404"].map(str::to_owned);
        let pulled = pull.track_awbs(&awbs, &ctx()).await.unwrap();

        // In transit: the official webhook sample's event is the pulled 18.
        let in_transit = webhook("shiprocket/in_transit_official.json");
        let all = events(&pulled[0]);
        assert_eq!(
            all.iter().map(|e| e.status).collect::<Vec<_>>(),
            [Status::PickupScheduled, Status::PickedUp, Status::InTransit]
        );
        let twin = all
            .iter()
            .find(|e| e.event_id == in_transit.event_id)
            .unwrap();
        assert_eq!(
            (
                twin.status,
                twin.event_time,
                &twin.carrier_status,
                &twin.location,
                &twin.remark
            ),
            (
                in_transit.status,
                in_transit.event_time,
                &in_transit.carrier_status,
                &in_transit.location,
                &in_transit.remark
            )
        );
        assert!(twin.legacy_ids.contains(&in_transit.legacy_ids[0]));

        // RTO initiated, carried by no scan: the same id as the webhook's (not the same time:
        // the webhook's is its send time, the pull has only the newest scan's).
        let rto = webhook("shiprocket/field_rto_initiated.json");
        let all = events(&pulled[1]);
        let twin = all.iter().find(|e| e.event_id == rto.event_id).unwrap();
        assert_eq!(twin.status, Status::RtoInitiated);
        assert_eq!(twin.legacy_ids[..], rto.legacy_ids[..]);
        assert_eq!((&twin.remark, &twin.location), (&None, &None));
        assert_eq!(all.len(), 5, "5, 42, 18, 17, then the RTO");

        for (i, why) in [(2, "track_status 0"), (3, "not in Shiprocket's answer")] {
            assert!(
                matches!(&pulled[i].outcome, Pulled::NotFound { reason } if reason.contains(why)),
                "{:?}",
                pulled[i]
            );
        }
    }

    #[tokio::test]
    async fn the_token_is_kept_renewed_before_240_hours_and_once_on_a_401() {
        let ok = r#"{}"#;
        let pull = client(vec![
            answer(200, LOGIN),
            answer(200, ok),
            answer(200, ok),
            // 217 hours later: due, renewed first.
            answer(200, r#"{"token":"eyJ.token-2.sig"}"#),
            answer(200, ok),
            // Revoked early: 401, one login, one retry.
            answer(401, r#"{"message":"Token has expired"}"#),
            answer(200, r#"{"token":"eyJ.token-3.sig"}"#),
            answer(200, ok),
        ]);
        let a = ["A1".to_owned()];
        let later = |hours| {
            NormalizeContext::new(
                crate::model::TenantId::parse("acme").unwrap(),
                ctx().received_at + chrono::TimeDelta::hours(hours),
            )
        };
        pull.track_awbs(&a, &ctx()).await.unwrap();
        pull.track_awbs(&a, &later(1)).await.unwrap();
        pull.track_awbs(&a, &later(217)).await.unwrap();
        pull.track_awbs(&a, &later(218)).await.unwrap();
        let paths: Vec<String> = pull
            .transport
            .sent()
            .iter()
            .map(|r| r.url.path().trim_start_matches("/v1/external").to_owned())
            .collect();
        assert_eq!(
            paths,
            [
                "/auth/login",
                "/courier/track/awbs",
                "/courier/track/awbs",
                "/auth/login",
                "/courier/track/awbs",
                "/courier/track/awbs",
                "/auth/login",
                "/courier/track/awbs"
            ]
        );
        let sent = pull.transport.sent();
        let bearer = |i: usize| sent[i].headers[0].1.expose().to_owned();
        assert_eq!(bearer(1), "Bearer eyJ.token-1.sig");
        assert_eq!(bearer(4), "Bearer eyJ.token-2.sig");
        assert_eq!(bearer(7), "Bearer eyJ.token-3.sig");
        assert_eq!(pull.token().unwrap().obtained_at(), later(218).received_at);
        // Nothing of the token or password in what may be logged.
        let shown = format!("{:?} {:?} {:?}", sent[0], sent[1], pull.token());
        assert!(
            !shown.contains("token-") && !shown.contains("pa55"),
            "{shown}"
        );
        let login: serde_json::Value =
            serde_json::from_slice(sent[0].body.as_ref().unwrap()).unwrap();
        assert_eq!(
            login,
            serde_json::json!({"email":"api@acme.example","password":"pa55-w0rd-secret"})
        );
    }

    #[tokio::test]
    async fn a_401_on_a_fresh_token_or_a_refused_login_is_unauthorized_without_a_loop() {
        let pull = client(vec![
            answer(200, LOGIN),
            answer(401, r#"{"message":"Unauthenticated."}"#),
        ]);
        let err = pull
            .track_awbs(&["A1".to_owned()], &ctx())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PullError::Unauthorized { status: 401, .. }),
            "{err:?}"
        );
        assert_eq!(pull.transport.sent().len(), 2);

        let pull = client(vec![answer(
            400,
            r#"{"message":"Invalid email and password combination for pa55-w0rd-secret","status_code":400}"#,
        )]);
        let err = pull
            .track_awbs(&["A1".to_owned()], &ctx())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PullError::Unauthorized { status: 400, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("/auth/login"), "{err}");
        assert!(!err.to_string().contains("pa55"), "{err}");

        let pull = client(vec![
            answer(200, LOGIN),
            answer(
                403,
                r#"{"message":"Unauthorized! You do not have the required permissions[IP]"}"#,
            ),
        ]);
        let err = pull
            .track_awbs(&["A1".to_owned()], &ctx())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("fixed egress address"), "{err}");
    }

    #[tokio::test]
    async fn both_bulk_shapes_and_fifty_awbs_at_most() {
        let nested = r#"{"tracking_data":{"A1":{"tracking_data":{"track_status":1,"shipment_status":42,
            "shipment_track_activities":[{"date":"2024-06-10 17:45:12","activity":"Picked up","sr-status":42}]}}}}"#;
        let pull = client(vec![answer(200, LOGIN), answer(200, nested)]);
        let pulled = pull.track_awbs(&["A1".to_owned()], &ctx()).await.unwrap();
        assert_eq!(events(&pulled[0])[0].status, Status::PickedUp);

        let too_many: Vec<String> = (0..51).map(|i| format!("A{i}")).collect();
        let pull = client(Vec::new());
        let err = pull.track_awbs(&too_many, &ctx()).await.unwrap_err();
        assert!(err.to_string().contains("at most 50"), "{err}");
        assert!(pull.transport.sent().is_empty(), "not even a login");
    }

    #[tokio::test]
    async fn activities_missing_fields_are_taken() {
        // The 2019 bulk sample has `date, activity, location` only: no activity sets a status,
        // so the current status is the event, at the newest activity's time.
        let body = r#"{"A1":{"tracking_data":{"track_status":1,"shipment_status":6,
            "shipment_track":[{"current_status":"SHIPPED"}],
            "shipment_track_activities":[{"date":"2019-07-02 10:00:00","activity":"Bagged","location":"Delhi"},
              {"date":"2019-07-01 18:00:00","activity":"Picked"}]}}}"#;
        let pull = client(vec![answer(200, LOGIN), answer(200, body)]);
        let pulled = pull.track_awbs(&["A1".to_owned()], &ctx()).await.unwrap();
        let all = events(&pulled[0]);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].status, Status::InTransit);
        assert_eq!(all[0].event_time_raw, "2019-07-02 10:00:00");
        assert_eq!(
            all[0].carrier_status.description.as_deref(),
            Some("SHIPPED")
        );
    }

    #[tokio::test]
    async fn a_scan_with_a_bad_date_is_skipped_and_named_and_the_others_kept() {
        let body = r#"{"A1":{"tracking_data":{"track_status":1,"shipment_status":42,
            "shipment_track_activities":[{"date":"02/07/2019","activity":"Out","sr-status":"17"},
              {"date":"2019-07-01 18:00:00","activity":"Picked","sr-status":"42"}]}}}"#;
        let pull = client(vec![answer(200, LOGIN), answer(200, body)]);
        let pulled = pull.track_awbs(&["A1".to_owned()], &ctx()).await.unwrap();
        let Pulled::Found { events, skipped } = &pulled[0].outcome else {
            panic!("{pulled:?}")
        };
        assert_eq!(
            events.iter().map(|e| e.status).collect::<Vec<_>>(),
            [Status::PickedUp]
        );
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].contains("17 at 02/07/2019"), "{skipped:?}");
    }
}

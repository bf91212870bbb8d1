//! Clickpost's pull APIs (docs/carriers.md "Pull APIs", carrier-pull-apis §1): track-order, the
//! scans of at most 5 AWBs of one courier partner, and updated-order, what changed in a window of
//! at most 30 minutes.
//!
//! The account's `username` and `key` travel in the query string of every call, so every URL
//! shown (logs, errors, `Debug`) has `username=…&key=…`, and error messages are scrubbed of both.
//!
//! A track-order scan carries the webhook's scan fields under the same names, with its time
//! written `"2022-10-31 19:56:16"` where the webhook writes `"2022-10-31T19:56:16Z"`. Both are
//! IST wall-clock: the webhook's by the vendor's own word (§1.8, [V], field fact 2026-11-27), the
//! pull's by inference (every sample's scan time is its UTC `created_at` plus 5:30 or less, [I]).
//! Each scan is made into the webhook's [`Payload`] and normalised by the same code, so the
//! event it gives has the webhook's event id, status and time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{status_for_code, to_event, Additional, Latest, Payload, WHY_NO_KEY};
use crate::carriers::pull::{
    check_ids, check_status, parse_answer, parse_part, shown_url, BaseUrl, CallSite, Fault,
    PullError, PullMethod, PullRequest, PullTransport, Pulled, PulledShipment, DEFAULT_TIMEOUT,
};
use crate::carriers::wire::{parse_element, text, Flag, Int, Str};
use crate::carriers::{seal, Identity, NormalizeContext};
use crate::model::{CanonicalEvent, Carrier, Occurrence, Source, Status};
use crate::push::SecretValue;
use crate::time;

/// Clickpost's API host for the pull calls (the old `www.clickpost.in` was to go by Nov 2020).
pub const DEFAULT_BASE_URL: &str = "https://api.clickpost.in";

/// track-order takes at most 5 comma-separated AWBs per call, all of one `cp_id` (current docs;
/// the 2020 docs said 15).
pub const MAX_AWBS_PER_CALL: usize = 5;

/// updated-order's longest window: 1800 s (5 to 10 minutes recommended).
pub const MAX_WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(1800);

/// How many `meta.next` pages one updated-order window may have before the sweep gives up on it.
const MAX_PAGES: usize = 100;

/// The query parameters that are credentials.
const SECRET_PARAMETERS: [&str; 2] = ["username", "key"];

/// A Clickpost enterprise account's API credentials: the enterprise `username` and its API
/// `key`. Write-only: `Debug` shows neither.
#[derive(Clone)]
pub struct PullCredentials {
    username: SecretValue,
    key: SecretValue,
    base_url: BaseUrl,
}

impl PullCredentials {
    pub fn new(username: impl Into<String>, key: SecretValue) -> Self {
        PullCredentials {
            username: SecretValue::new(username),
            key,
            base_url: BaseUrl::documented(DEFAULT_BASE_URL),
        }
    }

    /// Calls another host than [`DEFAULT_BASE_URL`] (a local fake in tests).
    /// The account's user (username), as the store keeps it.
    pub fn user(&self) -> &str {
        self.username.expose()
    }

    /// The account's secret (key), as the store keeps it.
    pub fn secret(&self) -> &SecretValue {
        &self.key
    }

    pub fn with_base_url(mut self, base_url: BaseUrl) -> Self {
        self.base_url = base_url;
        self
    }

    pub fn base_url(&self) -> &BaseUrl {
        &self.base_url
    }

    fn secrets(&self) -> [&str; 2] {
        [self.username.expose(), self.key.expose()]
    }
}

impl std::fmt::Debug for PullCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("clickpost::PullCredentials")
            .field("username", &"…")
            .field("key", &"…")
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// One shipment's latest state in an updated-order window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatedOrder {
    pub waybill: String,
    /// `carrier_partner` (current docs) or `courier_partner` (2019 docs): the `cp_id` that
    /// track-order needs.
    pub cp_id: Option<i64>,
    pub status_code: Option<i64>,
    pub status: Status,
    /// The latest scan's time (`timestamp`, IST wall-clock like every Clickpost scan time).
    pub event_time: Option<DateTime<Utc>>,
    /// When Clickpost updated the record (`updated_at`, UTC).
    pub updated_at: Option<DateTime<Utc>>,
    pub reference_number: Option<String>,
    pub order_id: Option<String>,
}

/// The Clickpost pull client of one account.
pub struct ClickpostPull<T> {
    transport: T,
    credentials: PullCredentials,
    timeout: Duration,
}

impl<T: PullTransport> ClickpostPull<T> {
    pub fn new(transport: T, credentials: PullCredentials) -> Self {
        ClickpostPull {
            transport,
            credentials,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Each call's timeout (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The scans of at most [`MAX_AWBS_PER_CALL`] AWBs of courier partner `cp_id`, one result per
    /// AWB in the order given, each scan an event as its webhook would have made it (oldest
    /// first). `ctx.received_at` is the time of the pull.
    pub async fn track(
        &self,
        cp_id: i64,
        awbs: &[String],
        ctx: &NormalizeContext,
    ) -> Result<Vec<PulledShipment>, PullError> {
        let mut url = self.credentials.base_url.join("/api/v2/track-order/");
        url.query_pairs_mut()
            .append_pair("username", self.credentials.username.expose())
            .append_pair("key", self.credentials.key.expose())
            .append_pair("waybill", &awbs.join(","))
            .append_pair("cp_id", &cp_id.to_string());
        let secrets = self.credentials.secrets();
        let site = self.site(&url, &secrets);
        check_ids(&site, awbs, MAX_AWBS_PER_CALL)?;
        let response = site
            .send(&self.transport, &self.request(url, &site))
            .await?;
        check_status(&response)
            .and_then(|()| read_track_order(&response.body, cp_id, awbs, ctx))
            .map_err(|fault| site.error(fault, ctx.received_at))
    }

    /// The shipments updated from `start` to `end` (at most [`MAX_WINDOW`] apart), following
    /// `meta.next` when Clickpost pages the answer. `ctx` gives the zone of the scan times and,
    /// as `received_at`, the time of the pull (a back-off's start).
    pub async fn updated_orders(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        ctx: &NormalizeContext,
    ) -> Result<Vec<UpdatedOrder>, PullError> {
        let mut url = self.credentials.base_url.join("/api/v1/updated-order");
        url.query_pairs_mut()
            .append_pair("username", self.credentials.username.expose())
            .append_pair("key", self.credentials.key.expose())
            .append_pair("start_date", &start.timestamp().to_string())
            .append_pair("end_date", &end.timestamp().to_string());
        let secrets = self.credentials.secrets();
        let first = self.site(&url, &secrets);
        if end < start || end - start > MAX_WINDOW {
            return Err(first.invalid_request(format!(
                "updated-order takes a window of 0 to 1800 seconds; {start} to {end} is {} s",
                (end - start).num_seconds()
            )));
        }
        let mut records = Vec::new();
        let mut seen = vec![url.clone()];
        let mut next = Some(url);
        while let Some(url) = next.take() {
            let site = self.site(&url, &secrets);
            let response = site
                .send(&self.transport, &self.request(url, &site))
                .await?;
            let page = check_status(&response)
                .and_then(|()| read_updated_orders(&response.body, ctx))
                .map_err(|fault| site.error(fault, ctx.received_at))?;
            records.extend(page.records);
            if let Some(link) = page.next {
                let url = self
                    .next_page(&link)
                    .map_err(|fault| site.error(fault, ctx.received_at))?;
                if seen.contains(&url) {
                    return Err(site.error(
                        Fault::Unparseable("`meta.next` points back to a page already read".into()),
                        ctx.received_at,
                    ));
                }
                if seen.len() == MAX_PAGES {
                    return Err(site.error(
                        Fault::Carrier {
                            status: response.status,
                            message: format!(
                                "`meta.next` still set after {MAX_PAGES} pages; shorten the window"
                            ),
                        },
                        ctx.received_at,
                    ));
                }
                seen.push(url.clone());
                next = Some(url);
            }
        }
        Ok(records)
    }

    /// The URL of the next page: `meta.next` as given (absolute, or relative to the base URL),
    /// on the API's own origin only (the account's key is sent to it), with the credentials added
    /// if Clickpost left them out.
    fn next_page(&self, link: &str) -> Result<url::Url, Fault> {
        let base = self.credentials.base_url.as_url();
        let url = base
            .join(link)
            .map_err(|e| Fault::Unparseable(format!("`meta.next` is not a URL ({e})")))?;
        if !self.credentials.base_url.same_origin(&url) {
            return Err(Fault::Unparseable(format!(
                "`meta.next` points to another host ({}); not followed with the account's key",
                url.origin().ascii_serialization()
            )));
        }
        let has = |name: &str| url.query_pairs().any(|(n, _)| n == name);
        let (has_username, has_key) = (has("username"), has("key"));
        let mut url = url;
        if !has_username || !has_key {
            let mut pairs = url.query_pairs_mut();
            if !has_username {
                pairs.append_pair("username", self.credentials.username.expose());
            }
            if !has_key {
                pairs.append_pair("key", self.credentials.key.expose());
            }
        }
        Ok(url)
    }

    fn site<'a>(&self, url: &url::Url, secrets: &'a [&'a str]) -> CallSite<'a> {
        CallSite {
            carrier: Carrier::Clickpost,
            method: PullMethod::Get,
            endpoint: shown_url(url, &SECRET_PARAMETERS),
            secrets,
        }
    }

    fn request(&self, url: url::Url, site: &CallSite<'_>) -> PullRequest {
        PullRequest {
            method: PullMethod::Get,
            url,
            headers: Vec::new(),
            body: None,
            timeout: self.timeout,
            shown: site.endpoint.clone(),
        }
    }
}

/// The envelope of every Clickpost answer.
#[derive(Deserialize)]
struct Envelope {
    meta: Option<Meta>,
    result: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct Meta {
    status: Option<Int>,
    success: Option<Flag>,
    message: Option<Str>,
    next: Option<Str>,
}

/// A failure Clickpost reports in `meta` (often inside an HTTP 200): its codes 301 ("Invalid
/// Token or API Key") and 401/403 are the credentials, 429 is a rate limit, anything else is the
/// carrier's error.
fn meta_fault(meta: Option<&Meta>, http_status: u16) -> Option<Fault> {
    let meta = meta?;
    let failed = meta.success.is_some_and(|s| !s.0)
        || meta.status.is_some_and(|s| !(200..300).contains(&s.0));
    if !failed {
        return None;
    }
    let code = meta.status.map(|s| s.0);
    let message = format!(
        "meta.success is false{}: {}",
        code.map(|c| format!(", meta.status {c}"))
            .unwrap_or_default(),
        text(&meta.message).unwrap_or_else(|| "(no meta.message)".to_owned())
    );
    Some(match code {
        Some(301 | 401 | 403) => Fault::Unauthorized {
            status: http_status,
            message,
        },
        Some(429) => Fault::RateLimited {
            status: http_status,
            retry_after: None,
        },
        _ => Fault::Carrier {
            status: http_status,
            message,
        },
    })
}

#[derive(Deserialize)]
struct Tracked {
    latest_status: Option<Box<RawValue>>,
    scans: Option<Vec<Box<RawValue>>>,
    valid: Option<Flag>,
    additional: Option<Box<RawValue>>,
}

/// The webhook's scan fields, which a track-order scan shares (plus its own `checkpoint_id`,
/// `created_at` and bucket, unused).
#[derive(Deserialize)]
struct Scan {
    timestamp: Option<Str>,
    status: Option<Str>,
    remark: Option<Str>,
    location: Option<Str>,
    clickpost_status_code: Option<Str>,
    clickpost_status_description: Option<Str>,
}

/// track-order's `additional` carries the NDR as `ndr: {ndr_bucket_code, ndr_description}`
/// where the webhook has `ndr_status_code` and `ndr_status_description` (§1.7).
#[derive(Deserialize, Default)]
struct PullAdditional {
    ndr: Option<PullNdr>,
}

#[derive(Deserialize)]
struct PullNdr {
    ndr_bucket_code: Option<Int>,
    ndr_description: Option<Str>,
}

/// One track-order answer (a 2xx): a result per AWB asked for, in that order. A failure Clickpost
/// reports in `meta` inside it is an error.
fn read_track_order(
    body: &[u8],
    cp_id: i64,
    awbs: &[String],
    ctx: &NormalizeContext,
) -> Result<Vec<PulledShipment>, Fault> {
    let envelope: Envelope = parse_answer(body)?;
    if let Some(fault) = meta_fault(envelope.meta.as_ref(), 200) {
        return Err(fault);
    }
    let result: std::collections::HashMap<String, Box<RawValue>> = match &envelope.result {
        Some(raw) => parse_element(raw, "result").map_err(|e| Fault::Unparseable(e.to_string()))?,
        None => return Err(Fault::Unparseable("there is no `result`".to_owned())),
    };
    awbs.iter()
        .map(|awb| {
            let outcome = match result.get(awb.as_str()) {
                None => Pulled::NotFound {
                    reason: "not in Clickpost's answer".to_owned(),
                },
                Some(raw) => {
                    let path = format!("result.{awb}");
                    let tracked: Tracked =
                        parse_element(raw, &path).map_err(|e| Fault::Unparseable(e.to_string()))?;
                    if tracked.valid.is_some_and(|v| !v.0) {
                        Pulled::NotFound {
                            reason: "`valid` is false: the AWB is wrong or not registered on \
                                     Clickpost for this account"
                                .to_owned(),
                        }
                    } else {
                        shipment_events(&tracked, awb, cp_id, &path, ctx)?
                    }
                }
            };
            Ok(PulledShipment {
                requested: awb.clone(),
                outcome,
            })
        })
        .collect()
}

/// Every scan of one tracked shipment as its webhook's event, oldest first.
fn shipment_events(
    tracked: &Tracked,
    awb: &str,
    cp_id: i64,
    path: &str,
    ctx: &NormalizeContext,
) -> Result<Pulled, Fault> {
    let unparseable = |e: crate::carriers::NormalizeError| Fault::Unparseable(e.to_string());
    let extra: PullAdditional = match &tracked.additional {
        Some(raw) => parse_element(raw, &format!("{path}.additional")).map_err(unparseable)?,
        None => PullAdditional::default(),
    };
    let scans = tracked.scans.as_deref().unwrap_or_default();
    // Scans come newest first (both vendor samples); the NDR block is the latest failure's.
    let newest = newest_scan_index(scans);
    let mut events = Vec::new();
    let mut skipped = Vec::new();
    for (i, raw) in scans.iter().enumerate() {
        let scan_path = format!("{path}.scans[{i}]");
        let made = (|| {
            let scan: Scan = parse_element(raw, &scan_path)?;
            // The webhook's shape: the shipment's `additional` and `latest_status` ride along
            // with every scan, as in each webhook of the shipment.
            let mut additional: Additional = match &tracked.additional {
                Some(raw) => parse_element(raw, &format!("{path}.additional"))?,
                None => Additional::default(),
            };
            additional.latest_status = match &tracked.latest_status {
                Some(raw) => Some(parse_element::<Latest>(
                    raw,
                    &format!("{path}.latest_status"),
                )?),
                None => None,
            };
            let code = text(&scan.clickpost_status_code);
            if Some(i) == newest && code.as_deref() == Some("9") {
                if let Some(ndr) = &extra.ndr {
                    additional.ndr_status_code = ndr.ndr_bucket_code;
                    additional.ndr_status_description = ndr.ndr_description.clone();
                }
            }
            let payload = Payload {
                waybill: Some(Str(awb.to_owned())),
                cp_id: Some(Int(cp_id)),
                status: scan.status,
                remark: scan.remark,
                location: scan.location,
                timestamp: scan.timestamp,
                clickpost_status_code: scan.clickpost_status_code,
                clickpost_status_description: scan.clickpost_status_description,
                additional: Some(additional),
                ..Payload::default()
            };
            let source = ctx
                .include_source
                .then(|| Source::from_json(raw.get()))
                .flatten();
            let event = to_event(payload, source, ctx)?;
            let identity = pulled_identity(&event);
            seal(event, identity, WHY_NO_KEY)
        })();
        match made {
            Ok(event) => events.push(event),
            Err(e) => skipped.push(format!("scans[{i}]: {e}")),
        }
    }
    events.sort_by_key(|e| e.event_time);
    events.dedup_by(|a, b| a.event_id == b.event_id);
    Ok(Pulled::Found { events, skipped })
}

/// The index of the newest scan by its time text (`yyyy-MM-dd HH:mm:ss` sorts as text), the
/// first on a tie: scans come newest first.
fn newest_scan_index(scans: &[Box<RawValue>]) -> Option<usize> {
    #[derive(Deserialize)]
    struct Time {
        timestamp: Option<Str>,
    }
    let mut best: Option<(usize, String)> = None;
    for (i, raw) in scans.iter().enumerate() {
        let Ok(Time { timestamp }) = serde_json::from_str::<Time>(raw.get()) else {
            continue;
        };
        let Some(t) = text(&timestamp) else {
            continue;
        };
        if best.as_ref().is_none_or(|(_, b)| t > *b) {
            best = Some((i, t));
        }
    }
    best.map(|(i, _)| i)
}

/// A pulled scan's identity: its instant (as for a webhook), and the v1 ids the webhook of the
/// same scan may have been claimed under before v2. No pull ran under v1, so only a webhook's
/// claim can be there: its time text (`"…T…Z"`, the pull's digits) with no
/// `notification_event_id` (All Status mode), or with one of the ids Selected Status mode sends
/// for the scan's code (§1.6).
fn pulled_identity(event: &CanonicalEvent) -> Identity {
    let webhook_text = webhook_time_text(&event.event_time_raw);
    let code = event.carrier_status.code.parse::<i64>().ok();
    let mut v1 = vec![(webhook_text.clone(), None)];
    for id in code.map(notification_event_ids).unwrap_or_default() {
        v1.push((webhook_text.clone(), Some(*id)));
    }
    Identity {
        occurrence: Occurrence::At(event.event_time),
        v1,
    }
}

/// The webhook's way of writing a pulled scan's time: `2022-10-31 19:56:16` as
/// `2022-10-31T19:56:16Z` (§1.8; the webhook's `Z` labels an IST wall-clock). A time already
/// written so is kept.
fn webhook_time_text(pulled: &str) -> String {
    let trimmed = pulled.trim();
    let mut text = match trimmed.as_bytes().get(10) {
        Some(b' ') => format!("{}T{}", &trimmed[..10], &trimmed[11..]),
        _ => trimmed.to_owned(),
    };
    if !text.ends_with('Z') && !text.contains('+') {
        text.push('Z');
    }
    text
}

/// The `notification_event_id`s Selected Status mode sends with a `clickpost_status_code`
/// (docs/carriers.md §1.6; 11 was also seen on an RVP Delivered, code 8).
fn notification_event_ids(code: i64) -> &'static [i64] {
    match code {
        25 => &[1],
        4 | 5 | 18 | 19 | 20 => &[2],
        6 => &[3],
        7 | 9 => &[4],
        8 => &[5, 11],
        13 | 15 | 21 | 26 | 27 => &[6],
        10 => &[10],
        14 => &[12],
        1004 => &[13],
        30 | 31 => &[14],
        32 => &[15],
        3 => &[16],
        16 => &[19],
        17 => &[20],
        23 => &[80],
        101 => &[11],
        102 => &[22],
        _ => &[],
    }
}

#[derive(Deserialize)]
struct Record {
    waybill: Option<Str>,
    carrier_partner: Option<Int>,
    courier_partner: Option<Int>,
    clickpost_status_code: Option<Int>,
    timestamp: Option<Str>,
    updated_at: Option<Str>,
    reference_number: Option<Str>,
    order_id: Option<Str>,
}

struct Page {
    records: Vec<UpdatedOrder>,
    next: Option<String>,
}

/// One updated-order page: its records (a record without a waybill is skipped) and `meta.next`.
fn read_updated_orders(body: &[u8], ctx: &NormalizeContext) -> Result<Page, Fault> {
    let envelope: Envelope = parse_answer(body)?;
    if let Some(fault) = meta_fault(envelope.meta.as_ref(), 200) {
        return Err(fault);
    }
    let rows: Vec<Record> = match &envelope.result {
        Some(raw) => parse_part(raw, "result")?,
        None => Vec::new(),
    };
    let records = rows
        .into_iter()
        .filter_map(|row| {
            let waybill = text(&row.waybill)?;
            let status_code = row.clickpost_status_code.map(|c| c.0);
            Some(UpdatedOrder {
                waybill,
                cp_id: row.carrier_partner.or(row.courier_partner).map(|c| c.0),
                status_code,
                status: status_code.map_or(Status::Unknown, status_for_code),
                event_time: text(&row.timestamp).and_then(|t| time::to_utc(&t, ctx.zone).ok()),
                updated_at: text(&row.updated_at).and_then(|t| time::to_utc(&t, time::utc()).ok()),
                reference_number: text(&row.reference_number),
                order_id: text(&row.order_id),
            })
        })
        .collect();
    let next = envelope.meta.as_ref().and_then(|m| text(&m.next));
    Ok(Page { records, next })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::carriers::pull::testing::{answer, Scripted};
    use crate::push::TargetPolicy;

    fn ctx() -> NormalizeContext {
        NormalizeContext::new(
            crate::model::TenantId::parse("acme").unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
        )
    }

    use crate::fixtures::fixture;

    fn client(
        answers: Vec<
            Result<crate::carriers::pull::PullResponse, crate::carriers::pull::TransportError>,
        >,
    ) -> ClickpostPull<Scripted> {
        ClickpostPull::new(
            Scripted::new(answers),
            PullCredentials::new("acme-enterprise", SecretValue::new("k-7e7cc4c4-secret"))
                .with_base_url(BaseUrl::parse("http://127.0.0.1:1", TargetPolicy::LOCAL).unwrap()),
        )
    }

    fn events(pulled: &PulledShipment) -> &[CanonicalEvent] {
        match &pulled.outcome {
            Pulled::Found { events, skipped } => {
                assert!(skipped.is_empty(), "{skipped:?}");
                events
            }
            other => panic!("{other:?}"),
        }
    }

    /// The same scan by webhook (All Status mode) and by track-order: one event id, status and
    /// time, and the pull finds the claim the webhook made under v1.
    #[tokio::test]
    async fn a_pulled_scan_is_the_webhooks_event_for_it() {
        let webhook = crate::carriers::clickpost::normalize(
            &fixture("clickpost/out_for_delivery_all_status.json"),
            &ctx(),
        )
        .unwrap();
        let pull = client(vec![answer(
            200,
            std::str::from_utf8(&fixture("clickpost/pull_track_order.json")).unwrap(),
        )]);
        let awbs = ["SF49245NER".to_owned(), "4210610508757".to_owned()];
        let pulled = pull.track(9, &awbs, &ctx()).await.unwrap();
        assert!(
            matches!(&pulled[1].outcome, Pulled::NotFound { reason } if reason.contains("`valid` is false")),
            "{:?}",
            pulled[1]
        );
        let all = events(&pulled[0]);
        let twin = all
            .iter()
            .find(|e| e.event_id == webhook.event_id)
            .expect("the webhook's scan is among the pulled ones");
        assert_eq!(
            (twin.status, twin.event_time, &twin.carrier_status),
            (webhook.status, webhook.event_time, &webhook.carrier_status)
        );
        assert_eq!(
            (&twin.location, &twin.remark, &twin.courier, &twin.awb),
            (
                &webhook.location,
                &webhook.remark,
                &webhook.courier,
                &webhook.awb
            )
        );
        assert_eq!(
            twin.latest_status
                .as_ref()
                .map(|l| (l.status, l.event_time)),
            webhook
                .latest_status
                .as_ref()
                .map(|l| (l.status, l.event_time))
        );
        assert!(twin.legacy_ids.contains(&webhook.legacy_ids[0]));
        assert_eq!(
            twin.event_time_raw, "2019-05-06 10:04:20",
            "the pull's own text is kept"
        );
        // Oldest first, every scan once, each with its own scan as `source`.
        assert!(all.windows(2).all(|w| w[0].event_time <= w[1].event_time));
        assert_eq!(all.len(), 3);
        assert!(twin
            .source
            .as_ref()
            .unwrap()
            .as_str()
            .contains("7731290044"));
    }

    #[tokio::test]
    async fn a_pulled_scan_finds_the_claim_its_webhook_made_under_v1() {
        // A Selected Status webhook of a Delivered scan (notification event 5), as v1 saw it.
        let webhook = crate::carriers::clickpost::normalize(
            br#"{"waybill":"4210610508756","cp_id":4,"clickpost_status_code":8,"status":"Delivered",
                "timestamp":"2022-11-02T14:05:00Z","additional":{"notification_event_id":5}}"#,
            &ctx(),
        )
        .unwrap();
        let pull = client(vec![answer(
            200,
            r#"{"meta":{"status":200,"success":true,"message":"SUCCESS"},"result":{"4210610508756":{
                "valid":true,"scans":[{"timestamp":"2022-11-02 14:05:00","status":"Delivered",
                "clickpost_status_code":8,"checkpoint_id":1}]}}}"#,
        )]);
        let pulled = pull
            .track(4, &["4210610508756".to_owned()], &ctx())
            .await
            .unwrap();
        let e = &events(&pulled[0])[0];
        assert_eq!(e.event_id, webhook.event_id);
        assert!(
            e.legacy_ids.contains(&webhook.legacy_ids[0]),
            "{:?} holds {:?}",
            e.legacy_ids,
            webhook.legacy_ids
        );
        assert_eq!(e.legacy_ids.len(), 3, "none, 5 and 11");
    }

    #[tokio::test]
    async fn the_call_carries_the_credentials_in_the_query_and_shows_them_as_dots() {
        let pull = client(vec![answer(
            200,
            r#"{"meta":{"status":200,"success":true},"result":{}}"#,
        )]);
        let pulled = pull
            .track(4, &["A1".to_owned(), "A2".to_owned()], &ctx())
            .await
            .unwrap();
        assert!(pulled
            .iter()
            .all(|p| matches!(p.outcome, Pulled::NotFound { .. })));
        let sent = &pull.transport.sent()[0];
        let query: Vec<(String, String)> = sent.url.query_pairs().into_owned().collect();
        assert!(query.contains(&("key".into(), "k-7e7cc4c4-secret".into())));
        assert!(query.contains(&("waybill".into(), "A1,A2".into())));
        assert!(query.contains(&("cp_id".into(), "4".into())));
        assert_eq!(sent.url.path(), "/api/v2/track-order/");
        let shown = format!("{sent:?}");
        assert!(
            shown.contains("username=…&key=…&waybill=A1,A2&cp_id=4"),
            "{shown}"
        );
        assert!(
            !shown.contains("k-7e7cc4c4") && !shown.contains("acme-enterprise"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn a_failure_in_a_200_is_an_error_and_never_shows_the_key() {
        let pull = client(vec![answer(
            200,
            r#"{"meta":{"status":301,"success":false,"message":"Authentication Failed: Invalid Token or API Key k-7e7cc4c4-secret"},"result":null}"#,
        )]);
        let err = pull.track(4, &["A1".to_owned()], &ctx()).await.unwrap_err();
        assert!(
            matches!(err, PullError::Unauthorized { status: 200, .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("meta.status 301") && text.contains("key=…"),
            "{text}"
        );
        assert!(
            !text.contains("k-7e7cc4c4") && !text.contains("acme-enterprise"),
            "{text}"
        );

        let pull = client(vec![answer(
            200,
            r#"{"meta":{"status":330,"success":false,"message":"waybill does not exist"}}"#,
        )]);
        let err = pull.track(4, &["A1".to_owned()], &ctx()).await.unwrap_err();
        assert!(
            matches!(&err, PullError::CarrierError { status: 200, message, .. } if message.contains("waybill does not exist")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn too_many_awbs_or_a_long_window_are_refused_before_any_call() {
        let pull = client(Vec::new());
        let six: Vec<String> = (0..6).map(|i| format!("A{i}")).collect();
        let err = pull.track(4, &six, &ctx()).await.unwrap_err();
        assert!(err.to_string().contains("at most 5"), "{err}");
        let start = ctx().received_at;
        let err = pull
            .updated_orders(start, start + chrono::TimeDelta::seconds(1801), &ctx())
            .await
            .unwrap_err();
        assert!(matches!(err, PullError::InvalidRequest { .. }), "{err}");
        assert!(pull.transport.sent().is_empty());
    }

    #[tokio::test]
    async fn updated_order_pages_are_followed_on_the_apis_own_host_only() {
        let page = |next: &str, awb: &str| {
            format!(
                r#"{{"meta":{{"status":200,"success":true,"next":{next}}},"result":[{{"waybill":"{awb}",
                "carrier_partner":4,"clickpost_status_code":5,"timestamp":"2022-10-24 17:13:14",
                "updated_at":"2022-10-24T11:43:14.420571Z"}}]}}"#
            )
        };
        let pull = client(vec![
            answer(200, &page(r#""/api/v1/updated-order?page=2""#, "W1")),
            answer(200, &page("null", "W2")),
        ]);
        let start = ctx().received_at - chrono::TimeDelta::seconds(600);
        let records = pull
            .updated_orders(start, ctx().received_at, &ctx())
            .await
            .unwrap();
        assert_eq!(
            records
                .iter()
                .map(|r| r.waybill.as_str())
                .collect::<Vec<_>>(),
            ["W1", "W2"]
        );
        assert_eq!(records[0].cp_id, Some(4));
        assert_eq!(records[0].status, Status::InTransit);
        assert_eq!(
            records[0].event_time.map(|t| t.timestamp()),
            records[0].updated_at.map(|t| t.timestamp()),
            "IST wall-clock against UTC: the same second"
        );
        // The second page's URL got the credentials Clickpost's link left out.
        let second = &pull.transport.sent()[1];
        assert!(second
            .url
            .query_pairs()
            .any(|(n, v)| n == "key" && v == "k-7e7cc4c4-secret"));
        assert!(
            second.shown.contains("page=2&username=…&key=…"),
            "{}",
            second.shown
        );

        let pull = client(vec![answer(
            200,
            &page(
                r#""https://elsewhere.example/api/v1/updated-order?page=2""#,
                "W1",
            ),
        )]);
        let err = pull
            .updated_orders(start, ctx().received_at, &ctx())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("another host"), "{err}");
    }

    #[test]
    fn a_pulled_time_is_written_back_as_the_webhook_writes_it() {
        assert_eq!(
            webhook_time_text("2022-10-31 19:56:16"),
            "2022-10-31T19:56:16Z"
        );
        assert_eq!(
            webhook_time_text("2022-10-31T19:56:16Z"),
            "2022-10-31T19:56:16Z"
        );
        assert_eq!(
            webhook_time_text("2019-04-29 07:47:07.161221"),
            "2019-04-29T07:47:07.161221Z"
        );
    }

    #[tokio::test]
    async fn rate_limits_and_transport_failures_are_typed() {
        let mut limited = answer(429, "slow down").unwrap();
        limited.retry_after = Some(Duration::from_secs(30));
        let pull = client(vec![
            Ok(limited),
            Err(crate::carriers::pull::TransportError {
                reason: "connection refused".into(),
                timed_out: false,
            }),
        ]);
        let err = pull.track(4, &["A1".to_owned()], &ctx()).await.unwrap_err();
        assert_eq!(
            err.back_off_until(),
            Some(ctx().received_at + chrono::TimeDelta::seconds(30))
        );
        let err = pull.track(4, &["A1".to_owned()], &ctx()).await.unwrap_err();
        assert!(
            matches!(
                err,
                PullError::Transport {
                    timed_out: false,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("key=…"), "{err}");
    }
}

//! Shipway's classic pull API (docs/carriers.md "Pull APIs", carrier-pull-apis §3):
//! `POST https://shipway.in/api/getOrderShipmentDetails` with `{username, password, order_id}`,
//! the password being the account's licence key [C SW-SDK, SW-CLASSIC, SW-NEST]. No vendor
//! documentation is on record; the shapes come from public callers.
//!
//! The answer is `{"status": "Success", "response": {…}}`; anything else in `status` is a failure
//! even in an HTTP 200 [C]. Its `response` is the shipment with the *code* in
//! `current_status_code` and the courier's narrative in `current_status` (the webhook's
//! `current_status` is the code: a naming trap, §3.2), and scans `scan[]{time, location,
//! status_detail}` that carry no code.
//!
//! So a pull gives one event: the current status, at the newest scan's time (the webhook's
//! `status_time` is that time in every sample, [1]), made into the webhook's [`Shipment`] and
//! normalised by its code, so that it is the event the webhook gave for it. Older scans are not
//! events: without their code they would match no webhook's event and arrive as new UNKNOWN
//! statuses; they stay in the event's `source`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{to_event, ExtraFields, Scan, Scans, Shipment};
use crate::carriers::pull::{
    check_status, json_body, parse_answer, parse_part, snippet, BaseUrl, CallSite, Fault,
    PullError, PullMethod, PullRequest, PullTransport, Pulled, PulledShipment, DEFAULT_TIMEOUT,
};
use crate::carriers::wire::{text, Str};
use crate::carriers::NormalizeContext;
use crate::model::{Carrier, Source};
use crate::push::SecretValue;

/// The classic API's host.
pub const DEFAULT_BASE_URL: &str = "https://shipway.in";

/// A Shipway account's API credentials: the login (`username`) and its licence key. Write-only:
/// `Debug` shows the login, never the key.
#[derive(Clone)]
pub struct PullCredentials {
    username: String,
    licence_key: SecretValue,
    base_url: BaseUrl,
}

impl PullCredentials {
    pub fn new(username: impl Into<String>, licence_key: SecretValue) -> Self {
        PullCredentials {
            username: username.into(),
            licence_key,
            base_url: BaseUrl::documented(DEFAULT_BASE_URL),
        }
    }

    /// Calls another host than [`DEFAULT_BASE_URL`] (a local fake in tests).
    /// The account's user (username), as the store keeps it.
    pub fn user(&self) -> &str {
        &self.username
    }

    /// The account's secret (licence_key), as the store keeps it.
    pub fn secret(&self) -> &SecretValue {
        &self.licence_key
    }

    /// Where the account's API is.
    pub fn base_url(&self) -> &BaseUrl {
        &self.base_url
    }

    pub fn with_base_url(mut self, base_url: BaseUrl) -> Self {
        self.base_url = base_url;
        self
    }
}

impl std::fmt::Debug for PullCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("shipway::PullCredentials")
            .field("username", &self.username)
            .field("licence_key", &"…")
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// The Shipway pull client of one account.
pub struct ShipwayPull<T> {
    transport: T,
    credentials: PullCredentials,
    timeout: Duration,
}

impl<T: PullTransport> ShipwayPull<T> {
    pub fn new(transport: T, credentials: PullCredentials) -> Self {
        ShipwayPull {
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

    /// The order's shipment, as the event of its current status. `ctx.received_at` is the time
    /// of the pull.
    pub async fn order_details(
        &self,
        order_id: &str,
        ctx: &NormalizeContext,
    ) -> Result<PulledShipment, PullError> {
        let url = self
            .credentials
            .base_url
            .join("/api/getOrderShipmentDetails");
        let key = self.credentials.licence_key.expose();
        let secrets = [key];
        let site = CallSite {
            carrier: Carrier::Shipway,
            method: PullMethod::Post,
            endpoint: url.to_string(),
            secrets: &secrets,
        };
        if order_id.trim().is_empty() || order_id.chars().any(char::is_control) {
            return Err(site.invalid_request(format!("{order_id:?} is not an order id")));
        }
        let request = PullRequest {
            method: PullMethod::Post,
            url: url.clone(),
            headers: Vec::new(),
            body: Some(json_body(&serde_json::json!({
                "username": self.credentials.username,
                "password": key,
                "order_id": order_id,
            }))),
            timeout: self.timeout,
            shown: site.endpoint.clone(),
        };
        let response = site.send(&self.transport, &request).await?;
        check_status(&response)
            .and_then(|()| read_order_details(&response.body, order_id, ctx))
            .map_err(|fault| site.error(fault, ctx.received_at))
    }
}

#[derive(Deserialize)]
struct Answer {
    status: Option<Str>,
    message: Option<Str>,
    msg: Option<Str>,
    response: Option<Box<RawValue>>,
}

/// `getOrderShipmentDetails`'s `response`.
#[derive(Deserialize)]
struct Details {
    order_id: Option<Str>,
    awbno: Option<Str>,
    carrier: Option<Str>,
    /// The courier's narrative ("Delivered to consignee").
    current_status: Option<Str>,
    /// The code (`DEL`).
    current_status_code: Option<Str>,
    expected_delivery_date: Option<Str>,
    reverse_tracking_number: Option<Str>,
    extra_fields: Option<ExtraFields>,
    scan: Option<Vec<PulledScan>>,
}

#[derive(Deserialize)]
struct PulledScan {
    time: Option<Str>,
    location: Option<Str>,
    status_detail: Option<Str>,
}

/// One answer: a failure in `status` (even in a 200) is the carrier's error; a shipment is its
/// current status's event.
fn read_order_details(
    body: &[u8],
    order_id: &str,
    ctx: &NormalizeContext,
) -> Result<PulledShipment, Fault> {
    let answer: Answer = parse_answer(body)?;
    let status = text(&answer.status);
    if !status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("success"))
    {
        let why = text(&answer.message)
            .or_else(|| text(&answer.msg))
            .or_else(|| {
                answer
                    .response
                    .as_ref()
                    .map(|r| snippet(r.get().as_bytes()))
            })
            .unwrap_or_else(|| "(no message)".to_owned());
        return Err(Fault::Carrier {
            status: 200,
            message: format!(
                "`status` is {}: {why}",
                status.map_or_else(|| "missing".to_owned(), |s| format!("{s:?}"))
            ),
        });
    }
    let Some(raw) = &answer.response else {
        return Err(Fault::Unparseable(
            "`status` is Success but there is no `response`".into(),
        ));
    };
    let details: Details = parse_part(raw, "response")?;
    let scans: Vec<Scan> = details
        .scan
        .unwrap_or_default()
        .into_iter()
        .map(|s| Scan {
            time: s.time,
            location: s.location,
            status_detail: s.status_detail,
            ..Scan::default()
        })
        .collect();
    if text(&details.awbno).is_none() && scans.is_empty() {
        return Ok(PulledShipment {
            requested: order_id.to_owned(),
            outcome: Pulled::NotFound {
                reason: "Shipway has the order but no AWB or scan for it yet".to_owned(),
            },
        });
    }
    // The newest scan's time is the status's (the webhook's `status_time`); scan times share
    // one format, which sorts as text.
    let status_time = scans.iter().filter_map(|s| text(&s.time)).max();
    let shipment = Shipment {
        order_id: details.order_id.or_else(|| Some(Str(order_id.to_owned()))),
        awbno: details.awbno,
        carrier: details.carrier,
        current_status: details.current_status_code,
        scans_current_status: details.current_status,
        status_time: status_time.map(Str),
        expected_delivery_date: details.expected_delivery_date,
        reverse_tracking_number: details.reverse_tracking_number,
        extra_fields: details.extra_fields,
        scans: Some(Scans(scans)),
        ..Shipment::default()
    };
    let source = ctx
        .include_source
        .then(|| Source::from_json(raw.get()))
        .flatten();
    let outcome = match to_event(&shipment, source, "response.", ctx) {
        Ok(event) => Pulled::Found {
            events: vec![event],
            skipped: Vec::new(),
        },
        Err(e) => Pulled::Found {
            events: Vec::new(),
            skipped: vec![format!("the current status: {e}")],
        },
    };
    Ok(PulledShipment {
        requested: order_id.to_owned(),
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::carriers::pull::testing::{answer, Scripted};
    use crate::model::{CanonicalEvent, Status};
    use crate::push::TargetPolicy;

    fn ctx() -> NormalizeContext {
        NormalizeContext::new(
            crate::model::TenantId::parse("acme").unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
        )
    }

    use crate::fixtures::fixture;

    fn client(body: &str) -> ShipwayPull<Scripted> {
        ShipwayPull::new(
            Scripted::new(vec![answer(200, body)]),
            PullCredentials::new("ops@acme.example", SecretValue::new("d60cdf34-licence"))
                .with_base_url(BaseUrl::parse("http://127.0.0.1:1", TargetPolicy::LOCAL).unwrap()),
        )
    }

    fn event(pulled: &PulledShipment) -> &CanonicalEvent {
        match &pulled.outcome {
            Pulled::Found { events, skipped } if skipped.is_empty() && events.len() == 1 => {
                &events[0]
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn the_current_status_is_the_webhooks_event_for_it() {
        let webhook =
            &crate::carriers::shipway::normalize(&fixture("shipway/panel_delivered.json"), &ctx())
                .unwrap()[0];
        let pull =
            client(std::str::from_utf8(&fixture("shipway/pull_order_details.json")).unwrap());
        let pulled = pull.order_details("99999999", &ctx()).await.unwrap();
        let e = event(&pulled);
        assert_eq!(e.event_id, webhook.event_id);
        assert_eq!(
            (
                e.status,
                e.event_time,
                &e.awb,
                &e.order_id,
                &e.location,
                &e.remark
            ),
            (
                webhook.status,
                webhook.event_time,
                &webhook.awb,
                &webhook.order_id,
                &webhook.location,
                &webhook.remark
            )
        );
        assert_eq!(e.status, Status::Delivered);
        assert_eq!(e.reference_number.as_deref(), Some("999999"));
        assert_eq!(e.legacy_ids[..], webhook.legacy_ids[..]);
        let sent = &pull.transport.sent()[0];
        let body: serde_json::Value = serde_json::from_slice(sent.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"username":"ops@acme.example","password":"d60cdf34-licence","order_id":"99999999"})
        );
        assert!(!format!("{sent:?}").contains("d60cdf34"));
    }

    #[tokio::test]
    async fn a_failure_in_a_200_is_an_error_without_the_licence_key() {
        let pull = client(r#"{"status":"Error","message":"Invalid licence key d60cdf34-licence"}"#);
        let err = pull.order_details("O1", &ctx()).await.unwrap_err();
        assert!(
            matches!(&err, PullError::CarrierError { status: 200, message, .. } if message.contains("\"Error\"")),
            "{err:?}"
        );
        assert!(!err.to_string().contains("d60cdf34"), "{err}");
    }

    #[tokio::test]
    async fn an_order_without_awb_or_scan_is_not_found_yet() {
        let pull = client(r#"{"status":"Success","response":{"order_id":"O1","scan":[]}}"#);
        let pulled = pull.order_details("O1", &ctx()).await.unwrap();
        assert!(
            matches!(pulled.outcome, Pulled::NotFound { .. }),
            "{pulled:?}"
        );
    }
}

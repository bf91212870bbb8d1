//! What the tests of the SQLite store share.

use chrono::{DateTime, TimeZone, Utc};
use sha2::Digest;

use crate::auth::CredentialDigest;
use crate::carriers::{normalize, NormalizeContext};
use crate::model::{CanonicalEvent, Carrier, TenantId};
use crate::ports::Quarantined;
use crate::push::{PushConfig, PushHeaders, PushTimeout, PushUrl};

pub(super) fn scan(awb: &str, time: &str) -> CanonicalEvent {
    scan_for("acme", awb, time)
}

pub(super) fn scan_for(tenant: &str, awb: &str, time: &str) -> CanonicalEvent {
    let body = format!(r#"{{"waybill":"{awb}","clickpost_status_code":8,"timestamp":"{time}"}}"#);
    let ctx = NormalizeContext::new(
        crate::model::TenantId::parse(tenant).unwrap(),
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
    );
    normalize(Carrier::Clickpost, body.as_bytes(), &ctx)
        .unwrap()
        .remove(0)
}

pub(super) fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// A time `hours` before now: what the quarantine's readers show depends on the clock.
pub(super) fn hours_ago(hours: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::hours(hours)
}

pub(super) fn rejected<'a>(
    tenant: &'a TenantId,
    body: &'a [u8],
    reason: &'a str,
    when: &str,
) -> Quarantined<'a> {
    rejected_at(tenant, body, reason, at(when))
}

pub(super) fn rejected_at<'a>(
    tenant: &'a TenantId,
    body: &'a [u8],
    reason: &'a str,
    received_at: DateTime<Utc>,
) -> Quarantined<'a> {
    Quarantined {
        tenant_id: tenant,
        carrier: Carrier::Shipway,
        body_digest: hex::encode(sha2::Sha256::digest(body)),
        body,
        reason,
        received_at,
    }
}

pub(super) fn tenant_id(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

pub(super) fn digest(key: &str) -> CredentialDigest {
    crate::auth::Credential::new(key).digest()
}

pub(super) fn push_to(url: &str) -> PushConfig {
    PushConfig {
        url: PushUrl::parse(url, crate::push::TargetPolicy::LOCAL).unwrap(),
        headers: PushHeaders::default(),
        statuses: vec![],
        signing_secret: None,
        timeout: PushTimeout::DEFAULT,
        enabled: true,
        delivery: crate::push::Delivery::Every,
    }
}

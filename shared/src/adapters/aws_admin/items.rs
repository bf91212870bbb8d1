//! The DynamoDB items the admin store reads and writes, one module per kind: its key, how it is
//! written and how it is read, side by side (the layout table is in `dynamodb.rs`).
//!
//! The config table's tenants, keys and pull accounts are also read and written by ingest's and
//! the reconciler's config store (`DynamoConfigStore`), and the delivery log's attempts written
//! by the dispatcher's `DynamoDeliveryLog`: they use these same functions, so that each layout is
//! written down once. The quarantine and activity items are written by ingest's event store with
//! one UpdateItem each (`DynamoEventStore::quarantine`, `record_activity`), on the keys here.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use crate::adapters::dynamodb::text;

type Item = HashMap<String, AttributeValue>;

fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn time_of(item: &Item, name: &str) -> Option<DateTime<Utc>> {
    text(item, name)
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A tenant's `PROFILE` item, in its `TENANT#<tenant>` partition of the config table (with its
/// keys' index items, its Push Config and its pull accounts).
pub(in crate::adapters) mod tenant {
    use super::*;
    use crate::adapters::dynamodb::{self as db, flag, s};
    use crate::admin::Tenant;
    use crate::model::TenantId;

    /// The sort key of a profile (a Scan for it lists the tenants).
    pub const PROFILE: &str = "PROFILE";
    const PK_PREFIX: &str = "TENANT#";

    /// The partition of everything a tenant owns in the config table.
    pub fn pk(tenant: impl std::fmt::Display) -> String {
        format!("{PK_PREFIX}{tenant}")
    }

    /// The tenant a `TENANT#` item belongs to, from its key.
    pub fn owner(item: &Item) -> Option<TenantId> {
        let pk = text(item, "pk")?;
        TenantId::parse(pk.strip_prefix(PK_PREFIX)?).ok()
    }

    pub fn key(tenant: &TenantId) -> Item {
        db::key(pk(tenant), PROFILE)
    }

    pub fn item(
        tenant: &TenantId,
        include_source: bool,
        enabled: bool,
        created_at: DateTime<Utc>,
    ) -> Item {
        let mut item = key(tenant);
        item.insert("tenant_id".into(), s(tenant.as_str()));
        item.insert(
            "include_source".into(),
            AttributeValue::Bool(include_source),
        );
        item.insert("enabled".into(), AttributeValue::Bool(enabled));
        item.insert("created_at".into(), s(created_at.to_rfc3339()));
        item
    }

    /// Whether a profile's tenant is enabled; profiles written before tenants could be disabled
    /// are enabled.
    pub fn enabled(item: &Item) -> bool {
        flag(item, "enabled").unwrap_or(true)
    }

    /// Whether a tenant's events carry the carrier's payload; the default when unset.
    pub fn include_source(item: &Item) -> bool {
        flag(item, "include_source").unwrap_or(true)
    }

    pub fn from(item: &Item) -> Option<Tenant> {
        Some(Tenant {
            id: TenantId::parse(&text(item, "tenant_id")?).ok()?,
            enabled: enabled(item),
            include_source: include_source(item),
            created_at: time_of(item, "created_at").unwrap_or(DateTime::UNIX_EPOCH),
            // On AWS there is no rms.toml: every tenant is the admin API's.
            file_managed: false,
        })
    }
}

/// A carrier key: its `CREDENTIAL` item (which tenant owns it, looked up by ingest for each
/// request) and its index item in the tenant's partition (`KEY#…`, one Query lists a tenant's
/// keys). Both are written and deleted together.
pub(in crate::adapters) mod credential {
    use super::*;
    use crate::adapters::dynamodb::{key, s};
    use crate::admin::StoredCredential;
    use crate::auth::CredentialDigest;
    use crate::model::{Carrier, TenantId};

    /// The sort key prefix of a tenant's key index items.
    pub const INDEX_PREFIX: &str = "KEY#";

    /// The key of a carrier key's `CREDENTIAL` item.
    pub fn owner_key(carrier: Carrier, digest: &CredentialDigest) -> Item {
        key(
            format!("CREDENTIAL#{carrier}#{}", digest.to_hex()),
            "CREDENTIAL",
        )
    }

    /// The `CREDENTIAL` item of a key: which tenant it belongs to.
    pub fn owner_item(
        carrier: Carrier,
        digest: &CredentialDigest,
        tenant: &TenantId,
        added_at: DateTime<Utc>,
    ) -> Item {
        let mut item = owner_key(carrier, digest);
        item.insert("tenant_id".into(), s(tenant.as_str()));
        item.insert("carrier".into(), s(carrier.as_str()));
        item.insert("key_hint".into(), s(digest.hint()));
        item.insert("added_at".into(), s(added_at.to_rfc3339()));
        item
    }

    /// The tenant a `CREDENTIAL` item names.
    pub fn owner_from(item: &Item) -> Option<TenantId> {
        text(item, "tenant_id").and_then(|t| TenantId::parse(&t).ok())
    }

    /// The key of a tenant's index item for one of its keys.
    pub fn index_key(tenant: &TenantId, carrier: Carrier, digest: &CredentialDigest) -> Item {
        key(
            super::tenant::pk(tenant),
            &format!("{INDEX_PREFIX}{carrier}#{}", digest.to_hex()),
        )
    }

    /// A tenant's index item for one of its keys.
    pub fn index_item(
        carrier: Carrier,
        digest: &CredentialDigest,
        tenant: &TenantId,
        added_at: DateTime<Utc>,
    ) -> Item {
        let mut item = index_key(tenant, carrier, digest);
        item.insert("carrier".into(), s(carrier.as_str()));
        item.insert("added_at".into(), s(added_at.to_rfc3339()));
        item
    }

    /// The key an index item stands for (carrier and digest are in its sort key).
    pub fn from(item: &Item) -> Option<StoredCredential> {
        let sk = text(item, "sk")?;
        let mut parts = sk.strip_prefix(INDEX_PREFIX)?.splitn(2, '#');
        let carrier: Carrier = parts.next()?.parse().ok()?;
        let digest = CredentialDigest::from_hex(parts.next()?)?;
        Some(StoredCredential {
            carrier,
            digest,
            added_at: time_of(item, "added_at").unwrap_or(DateTime::UNIX_EPOCH),
        })
    }
}

/// A tenant's account at a carrier's tracking API, for the reconciler (`PULL#<carrier>`).
pub(in crate::adapters) mod pull_account {
    use super::*;
    use crate::adapters::dynamodb::{self as db, s};
    use crate::model::{Carrier, TenantId};
    use crate::push::SecretValue;
    use crate::reconcile::PullAccountRecord;

    /// The sort key prefix of a tenant's pull accounts.
    pub const PREFIX: &str = "PULL#";

    /// Its key; `tenant` is a `TenantId`, or a tenant id as an event carries it.
    pub fn key(tenant: impl std::fmt::Display, carrier: Carrier) -> Item {
        db::key(super::tenant::pk(tenant), &format!("{PREFIX}{carrier}"))
    }

    pub fn item(tenant: &TenantId, account: &PullAccountRecord) -> Item {
        let mut item = key(tenant, account.carrier);
        item.insert("carrier".into(), s(account.carrier.as_str()));
        item.insert("base_url".into(), s(&account.base_url));
        item.insert("user".into(), s(&account.user));
        item.insert("secret".into(), s(account.secret.expose()));
        item
    }

    /// `None` for one this build cannot read (a carrier it does not know): skipped.
    pub fn from(item: &Item) -> Option<PullAccountRecord> {
        Some(PullAccountRecord {
            carrier: text(item, "carrier")?.parse().ok()?,
            base_url: text(item, "base_url")?,
            user: text(item, "user")?,
            secret: SecretValue::new(text(item, "secret")?),
        })
    }
}

/// One delivery attempt, in its shipment's `DELIVERY#` partition (beside its event's claim),
/// written by the dispatcher's delivery log. A tenant's attempts by time are read from the
/// delivery log's pages (`dynamodb::PageEntry`) and, for attempts written before the pages, from
/// the `by_tenant_day` index.
pub(in crate::adapters) mod attempt {
    use super::*;
    use crate::adapters::dynamodb::{delivery_pk, epoch_after, key, n, s, DELIVERY_LOG_TTL};
    use crate::model::{EventId, Status, TenantId};
    use crate::ports::{Attempt, AttemptOutcome};
    use tracing::warn;

    /// An attempt's sort key: the event first, so that one Query finds an event's attempts
    /// (`delivered`), then the time and the attempt number (a replay's attempts count from 1
    /// again). Attempts written before had `<time>#<event_id>#<attempt>`.
    fn sk(event_id: &EventId, at: &str, attempt: u32) -> String {
        format!("{event_id}#{at}#{attempt:03}")
    }

    pub fn item(attempt: &Attempt) -> Item {
        let at = attempt
            .at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut item = key(
            delivery_pk(attempt.tenant_id.as_str(), &attempt.awb),
            &sk(&attempt.event_id, &at, attempt.attempt),
        );
        item.insert("event_id".into(), s(attempt.event_id.as_str()));
        item.insert("tenant_id".into(), s(attempt.tenant_id.as_str()));
        item.insert("awb".into(), s(&attempt.awb));
        item.insert("status".into(), s(attempt.status.as_str()));
        item.insert("attempt".into(), n(i64::from(attempt.attempt)));
        item.insert("outcome".into(), s(attempt.outcome.as_str()));
        if let Some(code) = attempt.http_status {
            item.insert("http_status".into(), n(i64::from(code)));
        }
        item.insert(
            "latency_ms".into(),
            n(i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX)),
        );
        if let Some(error) = &attempt.error {
            item.insert("error".into(), s(error));
        }
        item.insert("at".into(), s(&at));
        item.insert(
            "expires_at".into(),
            n(epoch_after(attempt.at, DELIVERY_LOG_TTL)),
        );
        item
    }

    pub fn from(item: &Item) -> Option<Attempt> {
        let outcome = AttemptOutcome::parse(&text(item, "outcome")?)?;
        Some(Attempt {
            event_id: EventId::from_stored(text(item, "event_id")?),
            tenant_id: TenantId::parse(&text(item, "tenant_id")?).ok()?,
            awb: text(item, "awb")?,
            status: text(item, "status")?.parse::<Status>().ok()?,
            attempt: number(item, "attempt")?,
            outcome,
            http_status: number(item, "http_status"),
            latency_ms: number(item, "latency_ms").unwrap_or(0),
            error: text(item, "error"),
            at: DateTime::parse_from_rfc3339(&text(item, "at")?)
                .ok()?
                .with_timezone(&Utc),
        })
    }

    /// The attempts of these items; an unreadable one is skipped, with a warning.
    pub fn all_from(items: &[Item]) -> Vec<Attempt> {
        items
            .iter()
            .filter_map(|item| {
                let attempt = from(item);
                if attempt.is_none() {
                    warn!(pk = ?text(item, "pk"), sk = ?text(item, "sk"), "unreadable delivery log item skipped");
                }
                attempt
            })
            .collect()
    }
}

/// A rejected payload, once per tenant and body (`QUARANTINE#<tenant>`, the body's digest).
pub(in crate::adapters) mod quarantine {
    use super::*;
    use crate::adapters::dynamodb as db;
    use crate::admin::{QuarantineView, ReplayNote};
    use crate::model::TenantId;

    const PK_PREFIX: &str = "QUARANTINE#";

    /// The partition of a tenant's quarantine.
    pub fn pk(tenant: &TenantId) -> String {
        format!("{PK_PREFIX}{tenant}")
    }

    pub fn key(tenant: &TenantId, digest: &str) -> Item {
        db::key(pk(tenant), digest)
    }

    /// The attributes a listing reads: everything but the body (up to 256 KiB each; a Query's
    /// page holds 1 MB), through the aliases of [`PROJECTED_NAMES`].
    pub const PROJECTION: &str =
        "pk, sk, #carrier, #reason, #times, #expires, received_at, first_received_at, \
         last_received_at, last_replay_at, last_replay_outcome";
    /// The aliases [`PROJECTION`] uses (DynamoDB reserves these words).
    pub const PROJECTED_NAMES: [(&str, &str); 4] = [
        ("#carrier", "carrier"),
        ("#reason", "reason"),
        ("#times", "times"),
        ("#expires", "expires_at"),
    ];

    /// A quarantine item as a listing shows it; `None` for one that is not readable, or past its
    /// expiry (TTL deletes items some time after they expire).
    pub fn from(item: &Item, now: DateTime<Utc>) -> Option<QuarantineView> {
        if number::<i64>(item, "expires_at").is_some_and(|at| at < now.timestamp()) {
            return None;
        }
        let tenant_id = text(item, "pk")?.strip_prefix(PK_PREFIX)?.to_owned();
        // Items from before the counts have `received_at`, their first arrival.
        let first = time_of(item, "received_at").or_else(|| time_of(item, "first_received_at"))?;
        Some(QuarantineView {
            id: text(item, "sk")?,
            tenant_id,
            carrier: text(item, "carrier")?.parse().ok()?,
            reason: text(item, "reason").unwrap_or_default(),
            first_received_at: first,
            last_received_at: time_of(item, "last_received_at").unwrap_or(first),
            times: number(item, "times").unwrap_or(1),
            last_replay: time_of(item, "last_replay_at")
                .zip(text(item, "last_replay_outcome"))
                .map(|(at, outcome)| ReplayNote { at, outcome }),
        })
    }

    /// The body of a quarantine item read whole.
    pub fn body_from(item: &Item) -> Option<Vec<u8>> {
        Some(item.get("body")?.as_b().ok()?.clone().into_inner())
    }
}

/// The carrier-status view of a tenant, in its `ACTIVITY#<tenant>` partition: one item per
/// carrier (`<carrier>`: the last times) and one per carrier and hour (`<carrier>#<hour>`: the
/// request counts).
pub(in crate::adapters) mod activity {
    use super::*;
    use crate::model::{Carrier, TenantId};
    use crate::ports::{Activity, CarrierActivity, HourlyActivity};

    pub fn pk(tenant: &TenantId) -> String {
        format!("ACTIVITY#{tenant}")
    }

    /// The sort key of a carrier's request counts in one hour, beside its `ACTIVITY#` item:
    /// `<carrier>#<hour>`, the hour as `YYYY-MM-DDTHH` (UTC), so that text order is time order.
    pub fn hourly_sk(carrier: Carrier, hour: DateTime<Utc>) -> String {
        format!("{carrier}#{}", hour.format("%Y-%m-%dT%H"))
    }

    /// Each carrier's activity from the items of its tenant's partition, with its hourly counts
    /// from `since`'s hour on.
    pub fn from(items: &[Item], since: DateTime<Utc>) -> Vec<CarrierActivity> {
        Carrier::ALL
            .into_iter()
            .map(|carrier| {
                let item = items
                    .iter()
                    .find(|item| text(item, "sk").as_deref() == Some(carrier.as_str()));
                CarrierActivity {
                    carrier: carrier.as_str().to_owned(),
                    last_test_at: item.and_then(|i| time_of(i, "last_test_at")),
                    last_accepted_at: item.and_then(|i| time_of(i, "last_accepted_at")),
                    last_rejected_at: item.and_then(|i| time_of(i, "last_rejected_at")),
                    last_rejected_reason: item.and_then(|i| text(i, "last_rejected_reason")),
                    hourly: hourly(items, carrier, since),
                }
            })
            .collect()
    }

    /// A carrier's request counts per hour from `since`'s hour on, oldest first.
    fn hourly(items: &[Item], carrier: Carrier, since: DateTime<Utc>) -> Vec<HourlyActivity> {
        let from = hourly_sk(carrier, HourlyActivity::hour_of(since));
        let prefix = format!("{carrier}#");
        let count = |item: &Item, name: &str| number::<u64>(item, name).unwrap_or(0);
        let mut hours: Vec<HourlyActivity> = items
            .iter()
            .filter_map(|item| {
                let sk = text(item, "sk")?;
                let hour = sk.strip_prefix(&prefix)?;
                if sk < from {
                    return None;
                }
                let hour =
                    chrono::NaiveDateTime::parse_from_str(&format!("{hour}:00"), "%Y-%m-%dT%H:%M")
                        .ok()?
                        .and_utc();
                Some(HourlyActivity {
                    hour,
                    tests: count(item, Activity::PanelTest.as_str()),
                    accepted: count(item, Activity::Accepted.as_str()),
                    rejected: count(item, Activity::Rejected.as_str()),
                })
            })
            .collect();
        hours.sort_by_key(|h| h.hour);
        hours
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::StoredCredential;
    use crate::model::{Carrier, TenantId};

    /// The config table's items as the layout table in `dynamodb.rs` describes them, attribute
    /// by attribute: ingest, the reconciler and the admin API read each other's items.
    #[test]
    fn config_items_are_written_as_the_layout_table_says() {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let tenant_id = TenantId::parse("acme").unwrap();
        let digest = crate::auth::Credential::new("a-key-of-sixteen-chars").digest();
        let hex = digest.to_hex();
        let at = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let profile = tenant::item(&tenant_id, false, true, at);
        assert_eq!(
            profile,
            Item::from([
                ("pk".into(), s("TENANT#acme")),
                ("sk".into(), s("PROFILE")),
                ("tenant_id".into(), s("acme")),
                ("include_source".into(), AttributeValue::Bool(false)),
                ("enabled".into(), AttributeValue::Bool(true)),
                ("created_at".into(), s("2024-05-01T10:00:00+00:00")),
            ])
        );
        assert_eq!(tenant::owner(&profile), Some(tenant_id.clone()));
        let owner = credential::owner_item(Carrier::Shipway, &digest, &tenant_id, at);
        assert_eq!(
            owner,
            Item::from([
                ("pk".into(), s(&format!("CREDENTIAL#shipway#{hex}"))),
                ("sk".into(), s("CREDENTIAL")),
                ("tenant_id".into(), s("acme")),
                ("carrier".into(), s("shipway")),
                ("key_hint".into(), s(&digest.hint())),
                ("added_at".into(), s("2024-05-01T10:00:00+00:00")),
            ])
        );
        assert_eq!(credential::owner_from(&owner), Some(tenant_id.clone()));
        assert_eq!(
            credential::index_item(Carrier::Shipway, &digest, &tenant_id, at),
            Item::from([
                ("pk".into(), s("TENANT#acme")),
                ("sk".into(), s(&format!("KEY#shipway#{hex}"))),
                ("carrier".into(), s("shipway")),
                ("added_at".into(), s("2024-05-01T10:00:00+00:00")),
            ])
        );
        let account = crate::reconcile::PullAccountRecord {
            carrier: Carrier::Shipway,
            base_url: "https://api.example".into(),
            user: "u".into(),
            secret: crate::push::SecretValue::new("p"),
        };
        let pull = pull_account::item(&tenant_id, &account);
        assert_eq!(
            pull,
            Item::from([
                ("pk".into(), s("TENANT#acme")),
                ("sk".into(), s("PULL#shipway")),
                ("carrier".into(), s("shipway")),
                ("base_url".into(), s("https://api.example")),
                ("user".into(), s("u")),
                ("secret".into(), s("p")),
            ])
        );
        let read = pull_account::from(&pull).unwrap();
        assert_eq!(
            (read.carrier, read.base_url, read.user, read.secret.expose()),
            (account.carrier, account.base_url, account.user, "p")
        );
    }

    #[test]
    fn a_key_index_item_reads_back_as_the_stored_credential() {
        let tenant = TenantId::parse("acme").unwrap();
        let digest = crate::auth::Credential::new("a-key-of-sixteen-chars").digest();
        let at = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let item = credential::index_item(Carrier::Shipway, &digest, &tenant, at);
        assert_eq!(
            credential::from(&item),
            Some(StoredCredential {
                carrier: Carrier::Shipway,
                digest,
                added_at: at
            })
        );
    }
}

//! DynamoDB adapters for the config and events tables.
//!
//! Both tables have a string partition key `pk` and a string sort key `sk`; the events table
//! expires items through TTL on `expires_at` (epoch seconds) and has two global secondary indexes,
//! both sparse with all attributes projected: `by_tenant_day` (`tenant_day` / `at_key`) over the
//! delivery log, and `by_quiet` (`open` S / `heard_at` N) over the shipments that are not terminal.
//! Items (the admin adapter reads and writes the same ones; the key, writing and reading of the
//! config items, the attempts, the quarantine and the activity are in `aws_admin/items.rs`, used by
//! both):
//!
//! | table | pk | sk | what |
//! |---|---|---|---|
//! | config | `CREDENTIAL#<carrier>#<sha256 hex>` | `CREDENTIAL` | `tenant_id`: which tenant a key belongs to; `carrier`, `key_hint`, `added_at` (RFC 3339) |
//! | config | `TENANT#<tenant>` | `KEY#<carrier>#<sha256 hex>` | the same key, indexed by tenant (one Query lists a tenant's keys): `carrier`, `added_at`; written and deleted with the `CREDENTIAL` item in one transaction |
//! | config | `TENANT#<tenant>` | `PROFILE` | `tenant_id`, `include_source` (BOOL), `enabled` (BOOL; `false`: its keys are refused), `created_at` (RFC 3339) |
//! | config | `CIRCUIT#<tenant>` | `CIRCUIT` | an open circuit (`circuit.rs`; closed: no item; a partition of its own, so the dispatcher's IAM policy can allow writing these items and no other): `opened_at` (RFC 3339), `failures` (N), `last_error`, `probe_at_ms` (N, epoch ms; the probe is claimed by a conditional update of it) |
//! | config | `TENANT#<tenant>` | `PUSH` | Push Config: `url`, `headers` (M), `statuses` (L), `signing_secret`, `timeout_ms`, `enabled`, `delivery` (`every`/`latest`; absent: `every`) |
//! | config | `TENANT#<tenant>` | `PULL#<carrier>` | the tenant's account at the carrier's tracking API, for the reconciler (`reconcile::PullAccountSource`); written by the admin API and `rms pull set`: `carrier`, `base_url`, `user`, `secret` (all S; the secret is never shown) |
//! | events | `DELIVERY#<tenant>#<shipment key>` | `<event_id>` | the dedup claim, in its shipment's delivery log partition (so that the dispatcher reads it and the event's attempts with one Query): `claim_token` (which queued copy of the event is the accepted one, `ClaimToken`), `tenant_id`, `ev` (B): the event packed (`packed.rs`), what a replay sends; `expires_at` = its write + `DEDUP_WINDOW`. Written once, after the copy is on the queue, by ingest or, for a copy whose request died before it, by the dispatcher |
//! | events | `EVENT#<event_id>` | `CLAIM` | the claims of the code before queue-first (read by replay until they expire) and the v1 claims (read by ingest's bridge, `EventStore::earlier_claim`): `state` RECEIVED (with `claim_token` and `claim_expires_at`: an attempt held it) or QUEUED, `tenant_id`; once queued, `ev` (B), the event packed, or, in claims written before the packing, the canonical JSON in `event` (S) |
//! | events | `SHIPMENT#<tenant>#<shipment key>` | `LATEST` | the shipment's state (`shipment::ShipmentState`), as of its newest accepted event, written by one conditional UpdateItem per accepted event (`is_stale` when the condition fails): `latest_event_time` (N, epoch ms), `latest_event_id`, `last_status`, `terminal` (BOOL), `carrier`, `awb`, `order_id`, `courier_id` (the last three kept when a newer event lacks them), `last_received_at` (N, epoch ms); `expires_at` = last write + `SHIPMENT_STATE_TTL`. For the reconciler's `by_quiet` index (sparse): `open` = `<tenant>#<carrier>` while the last status is not terminal and the tenant has a pull account at the carrier (REMOVEd otherwise: `DynamoEventStore::with_pull_accounts`), `heard_at` (N, epoch ms: the newest arrival, or the last pull), `last_pulled_at` (N, epoch ms: the last reconcile run that asked the carrier). Items written before the state have only `latest_event_time` and `latest_event_id`; items written before the index lack `open`, so they are not reconciled until their next event |
//! | events | `QUARANTINE#<tenant>` | `<sha256 of body>` | a rejected payload, once per tenant and body: `body` (B, scrubbed), `tenant_id`, `carrier`, `reason` (of the last arrival), `first_received_at`, `last_received_at` (RFC 3339 UTC, ms), `times` (N: arrivals), `last_replay_at`, `last_replay_outcome` (the admin's replay); `expires_at` = last arrival + `QUARANTINE_TTL`. Items written before the counts have `received_at` (their first arrival) instead |
//! | events | `ACTIVITY#<tenant>` | `<carrier>` | the carrier-status view: `last_test_at`, `last_accepted_at`, `last_rejected_at` (RFC 3339 UTC, ms: text order is time order), `last_rejected_reason`; each time only moves forward; never expires |
//! | events | `ACTIVITY#<tenant>` | `<carrier>#<YYYY-MM-DDTHH>` | the carrier's requests in that hour (UTC): `test`, `accepted`, `rejected` (N, added to by ingest at most once a minute per kind); `expires_at` = the hour + `HOURLY_TTL` |
//! | events | `DELIVERY#<tenant>#<awb>` | `<event_id>#<time>#<attempt>` | one delivery attempt (beside its event's claim, above): `event_id`, `status`, `attempt`, `outcome`, `http_status`, `latency_ms`, `error`, `at`; attempts written before the pages (`DELIVERIES#`) also had, for `by_tenant_day`, `tenant_day` = `<tenant>#<YYYY-MM-DD>` (UTC day of the attempt) and `at_key` = the sort key. A `delivered` attempt is the event's delivered marker too (the dispatcher finds it, and the claim, with one Query of the event id as the sort-key prefix). Attempts written before had the sort key `<time>#<event_id>#<attempt>` |
//! | events | `DELIVERIES#<tenant>#<YYYY-MM-DD>` | `<time of its first attempt>#<random>` | a page of the tenant's delivery log of one UTC day: `e` (B): the attempts of one dispatcher batch (or one attempt, from elsewhere) as a JSON array of `PageEntry`, compressed (`packed::compress`); what "deliveries between two times" reads |
//! | events | `DELIVERED#<event_id>` | `DELIVERED` | written before the delivered attempt was the marker: the event reached the client. Read only for a message handed out again (`DynamoDeliveryLog::standing`); they expire within the dedup window |

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use super::aws_admin::items::{activity, attempt, credential, pull_account, quarantine, tenant};
use crate::auth::CredentialDigest;
use crate::circuit::{CircuitStore, OpenCircuit};
use crate::model::{CanonicalEvent, Carrier, EventId, Status, TenantId};
use crate::ports::{
    Activity, Attempt, AttemptOutcome, Claim, ClaimToken, ConfigStore, DeliveryLog, EventStore,
    Freshness, HourlyActivity, PushConfigStore, Quarantined, ShipmentStates, Standing, TenantAuth,
    Unavailable,
};
use crate::push::{PushConfig, PushHeaders, PushTimeout, PushUrl, SecretValue, SigningSecret};
use crate::reconcile::{
    quietest, PullAccountRecord, PullAccountSource, QuietRules, QuietShipment, ShipmentIndex,
};
use crate::shipment::ShipmentState;

pub(super) const SERVICE: &str = "DynamoDB";
/// The `state` of a claim of the code before queue-first that was queued (`EVENT#` claims).
const QUEUED: &str = "QUEUED";
/// A claim's attribute naming the accepted copy of its event (`ClaimToken`).
const CLAIM_TOKEN: &str = "claim_token";
/// The claim's attribute holding the queued event, packed (`packed.rs`).
pub(super) const PACKED_EVENT: &str = "ev";

/// How long an event id is remembered, so that a re-send is recognised as a duplicate.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(35 * 24 * 3600);
/// How long a shipment's state is kept after its newest event (for `is_stale`, latest-state
/// delivery and reconciling).
pub const SHIPMENT_STATE_TTL: Duration = Duration::from_secs(180 * 24 * 3600);
/// How long a rejected payload is kept for inspection and replay, from its last arrival.
pub const QUARANTINE_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn epoch_after(now: DateTime<Utc>, ttl: Duration) -> i64 {
    now.timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2)
}

/// A time as the quarantine and activity items keep it: RFC 3339 in UTC with milliseconds, a
/// fixed width, so that DynamoDB's string comparison is time order.
pub(super) fn stamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// How long a carrier's hourly request counts are kept (the view shows the last 24 hours).
const HOURLY_TTL: Duration = Duration::from_secs(2 * 24 * 3600);

/// Whether an SDK error is a failed condition (an expected answer, not an outage).
pub(super) fn condition_failed<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|err| err.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

pub(super) fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(super) fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

/// An unconditional PutItem.
async fn put(
    client: &Client,
    table: &str,
    item: HashMap<String, AttributeValue>,
) -> Result<(), Unavailable> {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| Unavailable::new(SERVICE, "PutItem", e))?;
    Ok(())
}

/// The key of an event's claim: in its shipment's delivery log partition, under the bare event id
/// (its attempts' sort keys start with it and a `#`).
pub(super) fn claim_key(
    tenant: &str,
    shipment_key: &str,
    event_id: &EventId,
) -> HashMap<String, AttributeValue> {
    key(delivery_pk(tenant, shipment_key), event_id.as_str())
}

/// Whether an item of a delivery log partition is a claim rather than an attempt.
pub(super) fn is_claim(item: &HashMap<String, AttributeValue>) -> bool {
    text(item, "sk").is_some_and(|sk| !sk.contains('#'))
}

/// The key of a claim of the code before queue-first, and of a v1 claim.
pub(super) fn legacy_claim_key(event_id: &EventId) -> HashMap<String, AttributeValue> {
    key(format!("EVENT#{event_id}"), "CLAIM")
}

/// Writes the event's claim for its queued copy `token`, the event packed for replay: one
/// conditional PutItem, never get-then-put. `Claimed` if there was no claim or it is this token's
/// own (an earlier try whose answer was lost had landed); `AlreadyQueued` if another copy's claim
/// is there. Ingest writes it after queueing the copy; the dispatcher, for a copy that has none.
async fn put_claim(
    client: &Client,
    table: &str,
    event: &CanonicalEvent,
    token: &ClaimToken,
    now: DateTime<Utc>,
) -> Result<Claim, Unavailable> {
    let packed = super::packed::pack(event).map_err(|e| Unavailable::new(SERVICE, "PutItem", e))?;
    let mut item = claim_key(
        event.tenant_id.as_str(),
        event.shipment_key(),
        &event.event_id,
    );
    item.insert(CLAIM_TOKEN.into(), s(token.as_str()));
    item.insert("tenant_id".into(), s(event.tenant_id.as_str()));
    // The event rides on its claim for the dedup window: what `replay` sends again. Packed
    // (`packed.rs`), so that the claim stays under 1 KB, one write unit.
    item.insert(
        PACKED_EVENT.into(),
        AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(packed)),
    );
    item.insert("expires_at".into(), n(epoch_after(now, DEDUP_WINDOW)));
    let put = client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk) OR #token = :token")
        .expression_attribute_names("#token", CLAIM_TOKEN)
        .expression_attribute_values(":token", s(token.as_str()))
        .send()
        .await;
    match put {
        Ok(_) => Ok(Claim::Claimed),
        Err(e) if condition_failed(&e) => Ok(Claim::AlreadyQueued),
        Err(e) => Err(Unavailable::new(SERVICE, "PutItem", e)),
    }
}

fn shipment_item_key(tenant: &str, shipment_key: &str) -> HashMap<String, AttributeValue> {
    key(format!("SHIPMENT#{tenant}#{shipment_key}"), "LATEST")
}

/// The events table's index of the shipments that are not terminal (`ShipmentIndex`).
pub const BY_QUIET: &str = "by_quiet";
/// Its partition key: `<tenant>#<carrier>`, on a `SHIPMENT#` item while its last status is not
/// terminal.
const OPEN: &str = "open";

fn open_key(tenant: &str, carrier: &str) -> String {
    format!("{tenant}#{carrier}")
}

/// The config table: tenants and their carrier credentials.
#[derive(Clone)]
pub struct DynamoConfigStore {
    client: Client,
    table: String,
}

impl DynamoConfigStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoConfigStore {
            client,
            table: table.into(),
        }
    }

    /// Registers a carrier credential (by its digest) for a tenant: `false`, and nothing
    /// written, if it is another tenant's (a key never moves between tenants); registering it
    /// again for its own tenant is harmless.
    pub async fn put_credential(
        &self,
        carrier: Carrier,
        digest: &CredentialDigest,
        tenant: &TenantId,
    ) -> Result<bool, Unavailable> {
        let now = Utc::now();
        let owner = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(credential::owner_item(carrier, digest, tenant, now)))
            .condition_expression("attribute_not_exists(pk) OR tenant_id = :tenant")
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .send()
            .await;
        match owner {
            Ok(_) => {}
            Err(e) if condition_failed(&e) => return Ok(false),
            Err(e) => return Err(Unavailable::new(SERVICE, "PutItem", e)),
        }
        // With its tenant index item, so that the admin API lists it too.
        put(
            &self.client,
            &self.table,
            credential::index_item(carrier, digest, tenant, now),
        )
        .await?;
        Ok(true)
    }

    /// Creates or replaces a tenant's profile (enabled, created now).
    pub async fn put_tenant(
        &self,
        tenant: &TenantId,
        include_source: bool,
    ) -> Result<(), Unavailable> {
        put(
            &self.client,
            &self.table,
            tenant::item(tenant, include_source, true, Utc::now()),
        )
        .await?;
        Ok(())
    }
}

pub(super) fn flag(item: &HashMap<String, AttributeValue>, name: &str) -> Option<bool> {
    item.get(name).and_then(|v| v.as_bool().ok()).copied()
}

impl ConfigStore for DynamoConfigStore {
    async fn tenant_by_credential(
        &self,
        carrier: Carrier,
        digest: &CredentialDigest,
    ) -> Result<Option<TenantAuth>, Unavailable> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(credential::owner_key(carrier, digest)))
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "GetItem", e))?;
        let Some(tenant_id) = found.item().and_then(credential::owner_from) else {
            return Ok(None);
        };
        let profile = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(tenant::key(&tenant_id)))
            .projection_expression("include_source, enabled")
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "GetItem", e))?;
        // No profile: as a profile with neither setting.
        let profile = profile.item();
        Ok(Some(TenantAuth {
            tenant_id,
            include_source: profile.is_none_or(tenant::include_source),
            // A disabled tenant's keys are refused (401, saying so) until it is enabled again.
            enabled: profile.is_none_or(tenant::enabled),
        }))
    }
}

impl PullAccountSource for DynamoConfigStore {
    async fn pull_accounts(
        &self,
        tenant: Option<&TenantId>,
        carrier: Option<Carrier>,
    ) -> Result<Vec<(TenantId, PullAccountRecord)>, Unavailable> {
        // One Scan for the accounts and the profiles (whether their tenant is enabled): fine for
        // the few tenants we have, and read once per run. With many tenants, a sparse index on
        // the `PULL#` items would replace it.
        let mut accounts = Vec::new();
        let mut disabled = std::collections::HashSet::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(sk, :pull) OR sk = :profile")
                .expression_attribute_values(":pull", s(pull_account::PREFIX))
                .expression_attribute_values(":profile", s(tenant::PROFILE))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| Unavailable::new(SERVICE, "Scan", e))?;
            for item in page.items() {
                // An item this build cannot read (a carrier it does not know) is skipped.
                let Some(owner) = tenant::owner(item) else {
                    continue;
                };
                if text(item, "sk").as_deref() == Some(tenant::PROFILE) {
                    if !tenant::enabled(item) {
                        disabled.insert(owner);
                    }
                    continue;
                }
                if let Some(record) = pull_account::from(item) {
                    accounts.push((owner, record));
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        // As for their keys, a tenant is enabled unless its profile says otherwise.
        accounts.retain(|(owner, record)| {
            !disabled.contains(owner)
                && tenant.is_none_or(|t| t == owner)
                && carrier.is_none_or(|c| c == record.carrier)
        });
        accounts.sort_by(|a, b| {
            (a.0.as_str(), a.1.carrier.as_str()).cmp(&(b.0.as_str(), b.1.carrier.as_str()))
        });
        Ok(accounts)
    }
}

impl DynamoConfigStore {
    /// Creates or replaces a tenant's pull account at its carrier (the admin API writes the same
    /// item).
    pub async fn put_pull_account(
        &self,
        tenant: &TenantId,
        account: &PullAccountRecord,
    ) -> Result<(), Unavailable> {
        put(
            &self.client,
            &self.table,
            pull_account::item(tenant, account),
        )
        .await
    }
}

pub(super) fn push_key(tenant: &TenantId) -> HashMap<String, AttributeValue> {
    key(tenant::pk(tenant), "PUSH")
}

impl DynamoConfigStore {
    /// Creates or replaces a tenant's Push Config.
    pub async fn put_push_config(
        &self,
        tenant: &TenantId,
        config: &PushConfig,
    ) -> Result<(), Unavailable> {
        let mut item = push_key(tenant);
        item.insert("url".into(), s(config.url.as_str()));
        let headers = config
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), s(value.expose())))
            .collect();
        item.insert("headers".into(), AttributeValue::M(headers));
        let statuses = config.statuses.iter().map(|st| s(st.as_str())).collect();
        item.insert("statuses".into(), AttributeValue::L(statuses));
        if let Some(secret) = &config.signing_secret {
            item.insert("signing_secret".into(), s(secret.expose()));
        }
        let timeout_ms = i64::try_from(config.timeout.as_millis()).unwrap_or(i64::MAX);
        item.insert("timeout_ms".into(), n(timeout_ms));
        item.insert("enabled".into(), AttributeValue::Bool(config.enabled));
        item.insert("delivery".into(), s(config.delivery.as_str()));
        put(&self.client, &self.table, item).await?;
        Ok(())
    }
}

impl PushConfigStore for DynamoConfigStore {
    async fn push_config(&self, tenant: &TenantId) -> Result<Option<PushConfig>, Unavailable> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(push_key(tenant)))
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "GetItem", e))?;
        let Some(item) = found.item() else {
            return Ok(None);
        };
        let headers = item
            .get("headers")
            .and_then(|v| v.as_m().ok())
            .map(|m| {
                let mut pairs: Vec<(String, SecretValue)> = m
                    .iter()
                    .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), SecretValue::new(v))))
                    .collect();
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                pairs
            })
            .unwrap_or_default();
        // A status name this build does not know (written by a newer one) is skipped, not fatal.
        let statuses = item
            .get("statuses")
            .and_then(|v| v.as_l().ok())
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_s().ok())
                    .filter_map(|name| name.parse::<Status>().ok())
                    .collect()
            })
            .unwrap_or_default();
        let timeout = item
            .get("timeout_ms")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(PushTimeout::DEFAULT, |ms| {
                PushTimeout::clamped(Duration::from_millis(ms))
            });
        // Read as written: a rule made stricter since does not make the tenant unreadable.
        Ok(Some(PushConfig {
            url: PushUrl::stored(text(item, "url").unwrap_or_default()),
            headers: PushHeaders::stored(headers),
            statuses,
            signing_secret: text(item, "signing_secret")
                .and_then(|t| SigningSecret::parse(&t).ok()),
            timeout,
            enabled: item
                .get("enabled")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(true),
            // Absent (written before the setting), or a mode this build does not know: every
            // event, which loses nothing.
            delivery: text(item, "delivery")
                .and_then(|d| d.parse().ok())
                .unwrap_or_default(),
        }))
    }
}

pub(super) fn circuit_key(tenant: &TenantId) -> HashMap<String, AttributeValue> {
    key(format!("CIRCUIT#{tenant}"), "CIRCUIT")
}

impl CircuitStore for DynamoConfigStore {
    async fn open_circuit(&self, tenant: &TenantId) -> Result<Option<OpenCircuit>, Unavailable> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(circuit_key(tenant)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "GetItem", e))?;
        let Some(item) = found.item() else {
            return Ok(None);
        };
        let number = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        Ok(Some(OpenCircuit {
            opened_at: text(item, "opened_at")
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map_or_else(Utc::now, |t| t.with_timezone(&Utc)),
            failures: u32::try_from(number("failures")).unwrap_or(0),
            last_error: text(item, "last_error").unwrap_or_default(),
            probe_at: DateTime::from_timestamp_millis(number("probe_at_ms")).unwrap_or_default(),
        }))
    }

    async fn save_open_circuit(
        &self,
        tenant: &TenantId,
        circuit: &OpenCircuit,
    ) -> Result<(), Unavailable> {
        let mut item = circuit_key(tenant);
        item.insert("opened_at".into(), s(circuit.opened_at.to_rfc3339()));
        item.insert("failures".into(), n(i64::from(circuit.failures)));
        item.insert("last_error".into(), s(&circuit.last_error));
        item.insert("probe_at_ms".into(), n(circuit.probe_at.timestamp_millis()));
        put(&self.client, &self.table, item).await
    }

    async fn claim_probe(
        &self,
        tenant: &TenantId,
        seen: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<bool, Unavailable> {
        let claimed = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(circuit_key(tenant)))
            .update_expression("SET probe_at_ms = :next")
            .condition_expression("probe_at_ms = :seen")
            .expression_attribute_values(":seen", n(seen.timestamp_millis()))
            .expression_attribute_values(":next", n(next.timestamp_millis()))
            .send()
            .await;
        match claimed {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(Unavailable::new(SERVICE, "UpdateItem", e)),
        }
    }

    async fn close_circuit(&self, tenant: &TenantId) -> Result<(), Unavailable> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(circuit_key(tenant)))
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "DeleteItem", e))?;
        Ok(())
    }
}

/// How long delivery attempts are kept in the log.
pub const DELIVERY_LOG_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// The delivery log, in the events table.
#[derive(Clone)]
pub struct DynamoDeliveryLog {
    client: Client,
    table: String,
    /// Attempts of the batch not yet on a page (`batched`); `None`: each attempt's page is
    /// written with it.
    page: Option<std::sync::Arc<std::sync::Mutex<Vec<PageEntry>>>>,
}

impl DynamoDeliveryLog {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDeliveryLog {
            client,
            table: table.into(),
            page: None,
        }
    }

    /// Gathers the attempts' page entries until `flush` (the dispatcher: once per batch), so that
    /// a batch of ten attempts is one page write, not ten.
    pub fn batched(mut self) -> Self {
        self.page = Some(Default::default());
        self
    }

    /// Writes the entries as pages: one item per tenant and UTC day.
    async fn write_pages(&self, entries: Vec<PageEntry>) -> Result<(), Unavailable> {
        let mut pages: std::collections::BTreeMap<(TenantId, chrono::NaiveDate), Vec<PageEntry>> =
            Default::default();
        for entry in entries {
            let day = entry.at().date_naive();
            pages
                .entry((entry.tenant.clone(), day))
                .or_default()
                .push(entry);
        }
        for ((tenant, day), entries) in pages {
            let first = entries.iter().map(|e| e.t).min().unwrap_or_default();
            let first = DateTime::from_timestamp_millis(first).unwrap_or_default();
            let json = serde_json::to_vec(&entries)
                .map_err(|e| Unavailable::new(SERVICE, "PutItem", e))?;
            let packed = super::packed::compress(&json)
                .map_err(|e| Unavailable::new(SERVICE, "PutItem", e))?;
            let mut item = key(
                page_pk(tenant.as_str(), day),
                // The first attempt's time (a Query by time range finds the page), and a random
                // part: two dispatchers write pages of the same millisecond.
                &format!(
                    "{}#{}",
                    first.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    crate::auth::random_token(6)
                ),
            );
            item.insert(
                PAGE_ENTRIES.into(),
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(packed)),
            );
            item.insert("expires_at".into(), n(epoch_after(first, DELIVERY_LOG_TTL)));
            put(&self.client, &self.table, item).await?;
        }
        Ok(())
    }
}

/// The partition of a tenant's delivery log pages of one UTC day.
pub(super) fn page_pk(tenant: &str, day: chrono::NaiveDate) -> String {
    format!("DELIVERIES#{tenant}#{}", day.format("%Y-%m-%d"))
}

/// A page's attribute: its entries (`PageEntry`, a JSON array) compressed (`packed::compress`).
pub(super) const PAGE_ENTRIES: &str = "e";

/// One attempt on a delivery log page, with short names: a page of ten is about 700 bytes
/// compressed, one write unit.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct PageEntry {
    #[serde(rename = "e")]
    pub event_id: String,
    #[serde(rename = "k")]
    pub tenant: TenantId,
    #[serde(rename = "w")]
    pub awb: String,
    #[serde(rename = "s")]
    pub status: String,
    #[serde(rename = "n")]
    pub attempt: u32,
    #[serde(rename = "o")]
    pub outcome: String,
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(rename = "l")]
    pub latency_ms: u64,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Epoch milliseconds.
    pub t: i64,
}

impl PageEntry {
    fn of(attempt: &Attempt) -> PageEntry {
        PageEntry {
            event_id: attempt.event_id.to_string(),
            tenant: attempt.tenant_id.clone(),
            awb: attempt.awb.clone(),
            status: attempt.status.as_str().to_owned(),
            attempt: attempt.attempt,
            outcome: attempt.outcome.as_str().to_owned(),
            http_status: attempt.http_status,
            latency_ms: attempt.latency_ms,
            error: attempt.error.clone(),
            t: attempt.at.timestamp_millis(),
        }
    }

    fn at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.t).unwrap_or_default()
    }

    /// The attempt; `None` for one this build cannot read (a status or outcome it does not know).
    pub(super) fn attempt(&self) -> Option<Attempt> {
        Some(Attempt {
            event_id: EventId::from_stored(self.event_id.clone()),
            tenant_id: self.tenant.clone(),
            awb: self.awb.clone(),
            status: self.status.parse().ok()?,
            attempt: self.attempt,
            outcome: AttemptOutcome::parse(&self.outcome)?,
            http_status: self.http_status,
            latency_ms: self.latency_ms,
            error: self.error.clone(),
            at: self.at(),
        })
    }
}

/// The name of the delivery log's index by tenant and day.
pub const BY_TENANT_DAY: &str = "by_tenant_day";

/// The `by_tenant_day` partition of a tenant's attempts on one UTC day.
pub(super) fn tenant_day(tenant: &str, day: chrono::NaiveDate) -> String {
    format!("{tenant}#{}", day.format("%Y-%m-%d"))
}

fn delivered_key(event_id: &EventId) -> HashMap<String, AttributeValue> {
    key(format!("DELIVERED#{event_id}"), "DELIVERED")
}

/// The partition of a shipment's delivery attempts.
pub(super) fn delivery_pk(tenant: &str, awb: &str) -> String {
    format!("DELIVERY#{tenant}#{awb}")
}

impl DeliveryLog for DynamoDeliveryLog {
    async fn record_attempt(&self, attempt: &Attempt) -> Result<(), Unavailable> {
        // One item per attempt, and a delivered attempt is also the event's delivered marker
        // (`delivered` finds it): one write where there were two.
        put(&self.client, &self.table, attempt::item(attempt)).await?;
        // A tenant's attempts by time ("deliveries between two times") are on pages, one per
        // dispatcher batch, not in an index: an index entry is one more write unit per attempt,
        // a page of ten attempts one write unit for all ten. Attempts written before are in the
        // `by_tenant_day` index (`tenant_day`, `at_key`), read until they expire (90 days).
        let entry = PageEntry::of(attempt);
        match &self.page {
            Some(page) => {
                page.lock().unwrap_or_else(|p| p.into_inner()).push(entry);
                Ok(())
            }
            None => self.write_pages(vec![entry]).await,
        }
    }

    async fn flush(&self) -> Result<(), Unavailable> {
        let Some(page) = &self.page else {
            return Ok(());
        };
        let entries = std::mem::take(&mut *page.lock().unwrap_or_else(|p| p.into_inner()));
        if entries.is_empty() {
            return Ok(());
        }
        self.write_pages(entries).await
    }

    /// Only the markers of the layout before (`DELIVERED#<event_id>`): an attempt is found by
    /// its shipment, which an id alone does not name. The dispatcher asks `standing`.
    async fn was_delivered(&self, event_id: &EventId) -> Result<bool, Unavailable> {
        self.legacy_marker(event_id).await
    }

    async fn standing(
        &self,
        event: &CanonicalEvent,
        token: Option<&ClaimToken>,
        attempt: u32,
    ) -> Result<Standing, Unavailable> {
        // The event's claim and its attempts, side by side in its shipment's partition: one
        // Query, eventually consistent (half a read unit; the claim and a few attempts are well
        // under 4 KB). An attempt that delivered the event was written one receive ago at least,
        // a visibility timeout (minutes) earlier, long after a write is visible everywhere. A
        // claim written a moment ago may not be seen: the copy is then claimed again below, and
        // the conditional write finds the claim, its own or another copy's.
        let id = event.event_id.as_str();
        let found = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :event)")
            .expression_attribute_values(
                ":pk",
                s(delivery_pk(event.tenant_id.as_str(), event.shipment_key())),
            )
            .expression_attribute_values(":event", s(id))
            .projection_expression("sk, #token, outcome")
            .expression_attribute_names("#token", CLAIM_TOKEN)
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "Query", e))?;
        let attempt_prefix = format!("{id}#");
        let mut claimed_by = None;
        let mut delivered = false;
        for item in found.items() {
            let Some(sk) = text(item, "sk") else { continue };
            if sk == id {
                claimed_by = text(item, CLAIM_TOKEN);
            } else if sk.starts_with(&attempt_prefix) {
                delivered |=
                    text(item, "outcome").as_deref() == Some(AttemptOutcome::Delivered.as_str());
            }
        }
        // A message handed out again may have been delivered by the code before this layout,
        // which kept a marker item of its own; a first receive cannot have been. The markers
        // expire 35 days after they were written, and this look-up can go then.
        if delivered || (attempt > 1 && self.legacy_marker(&event.event_id).await?) {
            return Ok(Standing::Delivered);
        }
        let token = token.cloned().unwrap_or_else(ClaimToken::untokened);
        match claimed_by {
            Some(named) if named == token.as_str() => Ok(Standing::Due),
            Some(_) => Ok(Standing::Duplicate),
            // Its request died (or its claim's write failed) after queueing it, or the claim is
            // not visible yet: claimed now, so that the event is neither lost nor pushed twice.
            None => Ok(
                match put_claim(&self.client, &self.table, event, &token, Utc::now()).await? {
                    Claim::Claimed => Standing::Due,
                    Claim::AlreadyQueued | Claim::InFlight => Standing::Duplicate,
                },
            ),
        }
    }
}

impl DynamoDeliveryLog {
    async fn legacy_marker(&self, event_id: &EventId) -> Result<bool, Unavailable> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(delivered_key(event_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "GetItem", e))?;
        Ok(found.item().is_some())
    }
}

/// The events table: claims, shipment state and the quarantine.
#[derive(Clone)]
pub struct DynamoEventStore {
    client: Client,
    table: String,
    /// Which tenants' shipments go into the reconciler's index (`with_pull_accounts`); `None`:
    /// every tenant's.
    pull_accounts: Option<PullAccountCheck>,
}

/// When a tenant's pull account at a carrier was looked up, and whether it has one.
type Looked = (std::time::Instant, bool);

/// Whether a tenant has a pull account at a carrier, read from the config table and cached.
#[derive(Clone)]
struct PullAccountCheck {
    config_table: String,
    ttl: Duration,
    cache: std::sync::Arc<std::sync::Mutex<HashMap<(String, Carrier), Looked>>>,
}

impl DynamoEventStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoEventStore {
            client,
            table: table.into(),
            pull_accounts: None,
        }
    }

    /// Puts a shipment into the reconciler's index (`open`, `heard_at`) only when its tenant has
    /// a pull account at its carrier (a `PULL#<carrier>` item in `config_table`), looked up at most
    /// once per `ttl` per tenant and carrier.
    ///
    /// Why: the index (`by_quiet`) projects every attribute, so every write of a shipment's state
    /// that is in it is also a write to the index, one write unit more, two when `heard_at` moves
    /// (the index entry is deleted and put again), on every event. The reconciler only ever asks
    /// about tenants with a pull account; the others' shipments need not be in the index. A tenant
    /// that adds an account has each of its shipments indexed at its next event (within `ttl`).
    pub fn with_pull_accounts(mut self, config_table: impl Into<String>, ttl: Duration) -> Self {
        self.pull_accounts = Some(PullAccountCheck {
            config_table: config_table.into(),
            ttl,
            cache: Default::default(),
        });
        self
    }

    /// Whether this tenant's shipments at this carrier belong in the reconciler's index.
    async fn reconciled(&self, tenant: &str, carrier: Carrier) -> bool {
        let Some(check) = &self.pull_accounts else {
            return true;
        };
        let cache_key = (tenant.to_owned(), carrier);
        let lock = || check.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, has)) = lock().get(&cache_key) {
            if at.elapsed() < check.ttl {
                return *has;
            }
        }
        let found = self
            .client
            .get_item()
            .table_name(&check.config_table)
            .set_key(Some(pull_account::key(tenant, carrier)))
            // The key only: the item holds the account's secret, which ingest has no use for.
            .projection_expression("pk")
            .send()
            .await;
        match found {
            Ok(found) => {
                let has = found.item().is_some();
                lock().insert(cache_key, (std::time::Instant::now(), has));
                has
            }
            Err(e) => {
                // Indexing a shipment that need not be costs a write unit; leaving out one that
                // should be in loses a reconcile. Not cached: the next event asks again.
                tracing::warn!(tenant_id = tenant, carrier = %carrier, error = %e, "pull account look-up failed; the shipment is indexed for the reconciler");
                true
            }
        }
    }

    /// The token of the copy an event's claim names, if it is claimed, read consistently.
    pub async fn claim_token(&self, event: &CanonicalEvent) -> Result<Option<String>, Unavailable> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(claim_key(
                event.tenant_id.as_str(),
                event.shipment_key(),
                &event.event_id,
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "GetItem", e))?;
        Ok(found.item().and_then(|item| text(item, CLAIM_TOKEN)))
    }
}

impl ShipmentStates for DynamoEventStore {
    async fn shipment(
        &self,
        tenant: &TenantId,
        shipment_key: &str,
    ) -> Result<Option<ShipmentState>, Unavailable> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(shipment_item_key(tenant.as_str(), shipment_key)))
            // Consistent: an event accepted a moment ago supersedes the older ones at once.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "GetItem", e))?;
        Ok(found.item().map(shipment_state))
    }
}

impl DynamoEventStore {
    /// The shipments of `tenant` at `carrier` whose last status is not terminal (the sparse
    /// `by_quiet` index), only those last heard of (news or pull) at or before `heard_before`
    /// when given, in the index's order (the longest quiet first).
    async fn open_shipments(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        heard_before: Option<i64>,
    ) -> Result<Vec<QuietShipment>, Unavailable> {
        let prefix = format!("SHIPMENT#{tenant}#");
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_QUIET)
                .expression_attribute_names("#open", OPEN)
                .expression_attribute_values(
                    ":open",
                    s(open_key(tenant.as_str(), carrier.as_str())),
                )
                .set_exclusive_start_key(start);
            query = match heard_before {
                Some(before) => query
                    .key_condition_expression("#open = :open AND #heard_at <= :before")
                    .expression_attribute_names("#heard_at", "heard_at")
                    .expression_attribute_values(":before", n(before)),
                None => query.key_condition_expression("#open = :open"),
            };
            let page = query
                .send()
                .await
                .map_err(|e| Unavailable::new(SERVICE, "Query", e))?;
            for item in page.items() {
                let Some(shipment_key) =
                    text(item, "pk").and_then(|pk| pk.strip_prefix(&prefix).map(str::to_owned))
                else {
                    continue;
                };
                found.push(QuietShipment {
                    shipment_key,
                    state: shipment_state(item),
                    last_pulled_at: millis(item, "last_pulled_at"),
                });
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(found)
    }

    /// The shipments of `tenant` at `carrier` without news for longer than `rules` allow their
    /// status, pulled since or not (`rms shipments --stale`), the longest without news first.
    /// Pulls move `heard_at`, so this reads every open shipment of the pair: an ops listing,
    /// not a per-run query.
    pub async fn stale_shipments(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        rules: &QuietRules,
        now: DateTime<Utc>,
    ) -> Result<Vec<QuietShipment>, Unavailable> {
        let mut stale: Vec<QuietShipment> = self
            .open_shipments(tenant, carrier, None)
            .await?
            .into_iter()
            .filter(|s| rules.is_quiet(&s.state, None, now))
            .collect();
        stale.sort_by_key(|s| {
            s.state
                .last_received_at
                .unwrap_or(s.state.latest_event_time)
        });
        Ok(stale)
    }
}

impl ShipmentIndex for DynamoEventStore {
    async fn quiet_shipments(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        rules: &QuietRules,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<QuietShipment>, Unavailable> {
        // Every shipment that is not terminal and has been quiet (no arrival, no pull) at least
        // the shortest threshold, the longest quiet first; the status-dependent rule is applied
        // to those (`reconcile::quietest`), as the SQLite store does.
        let before = rules.heard_before_ms(now);
        let found = self.open_shipments(tenant, carrier, Some(before)).await?;
        Ok(quietest(found, rules, now, limit))
    }

    async fn mark_pulled(
        &self,
        tenant: &TenantId,
        shipment_keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), Unavailable> {
        let at = now.timestamp_millis();
        for shipment_key in shipment_keys {
            let marked = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(shipment_item_key(tenant.as_str(), shipment_key)))
                .update_expression("SET #heard_at = :now, #pulled = :now")
                // A shipment that turned terminal meanwhile is left out of the index, and one
                // heard of after `now` keeps its later time.
                .condition_expression("attribute_exists(#open) AND #heard_at <= :now")
                .expression_attribute_names("#open", OPEN)
                .expression_attribute_names("#heard_at", "heard_at")
                .expression_attribute_names("#pulled", "last_pulled_at")
                .expression_attribute_values(":now", n(at))
                .send()
                .await;
            match marked {
                Ok(_) => {}
                Err(e) if condition_failed(&e) => {}
                Err(e) => return Err(Unavailable::new(SERVICE, "UpdateItem", e)),
            }
        }
        Ok(())
    }
}

/// A time kept as epoch milliseconds (N).
fn millis(item: &HashMap<String, AttributeValue>, name: &str) -> Option<DateTime<Utc>> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis)
}

/// A `SHIPMENT#` item as a state; attributes it lacks (written before they were kept) are
/// `None`.
fn shipment_state(item: &HashMap<String, AttributeValue>) -> ShipmentState {
    let millis = |name: &str| millis(item, name);
    ShipmentState {
        latest_event_id: text(item, "latest_event_id").map(EventId::from_stored),
        latest_event_time: millis("latest_event_time").unwrap_or_default(),
        last_status: text(item, "last_status").and_then(|s| s.parse().ok()),
        terminal: flag(item, "terminal").unwrap_or(false),
        carrier: text(item, "carrier").and_then(|c| c.parse().ok()),
        awb: text(item, "awb"),
        order_id: text(item, "order_id"),
        courier_id: text(item, "courier_id"),
        last_received_at: millis("last_received_at"),
    }
}

impl EventStore for DynamoEventStore {
    async fn claim(
        &self,
        event: &CanonicalEvent,
        token: &ClaimToken,
        now: DateTime<Utc>,
    ) -> Result<Claim, Unavailable> {
        put_claim(&self.client, &self.table, event, token, now).await
    }

    async fn is_claimed(&self, event: &CanonicalEvent) -> Result<bool, Unavailable> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(claim_key(
                event.tenant_id.as_str(),
                event.shipment_key(),
                &event.event_id,
            )))
            // The key only (the read is billed by the item's size all the same: half a unit).
            .projection_expression("pk")
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "GetItem", e))?;
        Ok(found.item().is_some())
    }

    async fn earlier_claim(
        &self,
        ids: &[EventId],
        now: DateTime<Utc>,
    ) -> Result<Option<Claim>, Unavailable> {
        // The event's own claim as the code before queue-first wrote it, and its v1 ids' (a
        // webhook has one, a pulled Clickpost scan at most three): one GetItem each (a
        // BatchGetItem would cost the same read units), stopping at the first queued one.
        // Eventually consistent, half a read unit: these claims are written only by the code
        // before, so every one of them was written before this code runs, except for the seconds
        // of the deploy in which both run; a scan accepted by both in the same second then goes
        // out twice.
        let mut in_flight = false;
        for id in ids {
            let found = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(legacy_claim_key(id)))
                .send()
                .await
                .map_err(|e| Unavailable::new(SERVICE, "GetItem", e))?;
            let Some(item) = found.item else {
                continue;
            };
            match text(&item, "state").as_deref() {
                Some(QUEUED) => return Ok(Some(Claim::AlreadyQueued)),
                _ => {
                    let expires_at = item
                        .get("claim_expires_at")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<i64>().ok());
                    // A claim never queued whose attempt died counts for nothing.
                    in_flight |= expires_at.is_some_and(|at| at >= now.timestamp());
                }
            }
        }
        Ok(in_flight.then_some(Claim::InFlight))
    }

    async fn record_shipment_event(
        &self,
        event: &CanonicalEvent,
    ) -> Result<Freshness, Unavailable> {
        let state = ShipmentState::of(event);
        let mut values = vec![
            (
                "latest_event_time",
                n(state.latest_event_time.timestamp_millis()),
            ),
            ("latest_event_id", s(event.event_id.as_str())),
            ("last_status", s(event.status.as_str())),
            ("terminal", AttributeValue::Bool(state.terminal)),
            ("carrier", s(event.carrier.as_str())),
            ("last_received_at", n(event.received_at.timestamp_millis())),
            ("expires_at", n(epoch_after(Utc::now(), SHIPMENT_STATE_TTL))),
        ];
        // An identifier the event lacks keeps its earlier value: it is not written.
        for (name, value) in [
            ("awb", state.awb),
            ("order_id", state.order_id),
            ("courier_id", state.courier_id),
        ] {
            if let Some(value) = value {
                values.push((name, s(value)));
            }
        }
        // The `by_quiet` index (the reconciler's `ShipmentIndex`): a shipment is in it while its
        // last status is not terminal and its tenant has a pull account at its carrier
        // (`with_pull_accounts`), keyed by when it was last heard of.
        values.push(("heard_at", n(event.received_at.timestamp_millis())));
        let indexed = !state.terminal
            && self
                .reconciled(event.tenant_id.as_str(), event.carrier)
                .await;
        if indexed {
            values.push((
                OPEN,
                s(open_key(event.tenant_id.as_str(), event.carrier.as_str())),
            ));
        }
        let assignments: Vec<String> = values
            .iter()
            .map(|(name, _)| format!("#{name} = :{name}"))
            .collect();
        // Removing an attribute the item does not have costs nothing more.
        let remove = if indexed { "" } else { " REMOVE #open" };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(shipment_item_key(
                event.tenant_id.as_str(),
                event.shipment_key(),
            )))
            // One conditional write, the newest event time wins. Equal times are not stale: a
            // retry of the same event must not flag itself.
            .update_expression(format!("SET {}{remove}", assignments.join(", ")))
            .condition_expression(
                "attribute_not_exists(pk) OR #latest_event_time <= :latest_event_time",
            );
        if !indexed {
            update = update.expression_attribute_names("#open", OPEN);
        }
        // Every name through an alias: DynamoDB reserves hundreds of words.
        for (name, value) in values {
            update = update
                .expression_attribute_names(format!("#{name}"), name)
                .expression_attribute_values(format!(":{name}"), value);
        }
        // The item's values before (no read unit: they come with the write's answer) say whether
        // the shipment had an event before this one.
        match update.return_values(ReturnValue::UpdatedOld).send().await {
            Ok(out) if out.attributes().is_none_or(HashMap::is_empty) => Ok(Freshness::First),
            Ok(_) => Ok(Freshness::Latest),
            Err(e) if condition_failed(&e) => Ok(Freshness::Stale),
            Err(e) => Err(Unavailable::new(SERVICE, "UpdateItem", e)),
        }
    }

    async fn quarantine(&self, q: &Quarantined<'_>) -> Result<(), Unavailable> {
        let at = stamp(q.received_at);
        // One UpdateItem, never get-then-put: the body and its first arrival are written once;
        // every arrival counts, moves the last arrival and the expiry.
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(quarantine::key(q.tenant_id, &q.body_digest)))
            // Every name through an alias: DynamoDB reserves hundreds of words.
            .update_expression(
                "ADD #times :one \
                 SET #last = :at, #reason = :reason, #carrier = :carrier, #tenant = :tenant, \
                 #exp = :exp, #body = if_not_exists(#body, :body), \
                 #first = if_not_exists(#first, :at)",
            )
            .expression_attribute_names("#times", "times")
            .expression_attribute_names("#last", "last_received_at")
            .expression_attribute_names("#reason", "reason")
            .expression_attribute_names("#carrier", "carrier")
            .expression_attribute_names("#tenant", "tenant_id")
            .expression_attribute_names("#exp", "expires_at")
            .expression_attribute_names("#body", "body")
            .expression_attribute_names("#first", "first_received_at")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":at", s(at))
            .expression_attribute_values(":reason", s(q.reason))
            .expression_attribute_values(":carrier", s(q.carrier.as_str()))
            .expression_attribute_values(":tenant", s(q.tenant_id.as_str()))
            .expression_attribute_values(":exp", n(epoch_after(q.received_at, QUARANTINE_TTL)))
            .expression_attribute_values(
                ":body",
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(q.body)),
            )
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "UpdateItem", e))?;
        Ok(())
    }

    async fn record_activity(
        &self,
        tenant: &TenantId,
        carrier: Carrier,
        activity: Activity,
        at: DateTime<Utc>,
        detail: Option<&str>,
        count: u32,
    ) -> Result<(), Unavailable> {
        let column = format!("last_{}_at", activity.as_str());
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(activity::pk(tenant), carrier.as_str())))
            .expression_attribute_names("#at", column)
            .expression_attribute_values(":at", s(stamp(at)))
            // The latest time wins: an older report (a slow request) changes nothing.
            .condition_expression("attribute_not_exists(#at) OR #at <= :at");
        update = match (activity, detail) {
            (Activity::Rejected, Some(reason)) => update
                .update_expression("SET #at = :at, #reason = :reason")
                .expression_attribute_names("#reason", "last_rejected_reason")
                .expression_attribute_values(":reason", s(reason)),
            (Activity::Rejected, None) => update
                .update_expression("SET #at = :at REMOVE #reason")
                .expression_attribute_names("#reason", "last_rejected_reason"),
            _ => update.update_expression("SET #at = :at"),
        };
        match update.send().await {
            Ok(_) => {}
            Err(e) if condition_failed(&e) => {}
            Err(e) => return Err(Unavailable::new(SERVICE, "UpdateItem", e)),
        }
        let hour = HourlyActivity::hour_of(at);
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                activity::pk(tenant),
                &activity::hourly_sk(carrier, hour),
            )))
            .update_expression("ADD #count :n SET expires_at = :exp")
            .expression_attribute_names("#count", activity.as_str())
            .expression_attribute_values(":n", n(i64::from(count)))
            .expression_attribute_values(":exp", n(epoch_after(hour, HOURLY_TTL)))
            .send()
            .await
            .map_err(|e| Unavailable::new(SERVICE, "UpdateItem", e))?;
        Ok(())
    }
}

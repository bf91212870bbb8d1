//! Tenants, their carrier keys, Push Config and pull accounts, and the test push.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{parse_carrier, tenant_id, Admin, AdminError, AdminStore};
use crate::auth::{fill_random, random_token, CredentialDigest};
use crate::dispatch::build_request;
use crate::ingest::Reingest;
use crate::model::{CanonicalEvent, Carrier, EventId, Status, TenantId};
use crate::ports::{PushResult, Pusher};
use crate::push::{Delivery, PushConfig, PushHeaders, PushTimeout, PushUrl, SigningSecret};
use crate::reconcile::PullAccountRecord;

/// A tenant: a client of RMS whose carriers push to us and whose endpoint we push to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    /// A disabled tenant's carrier credentials are refused (401) until it is enabled again.
    pub enabled: bool,
    /// Attach the carrier's payload to each event as `source`.
    pub include_source: bool,
    pub created_at: DateTime<Utc>,
    /// Defined in `rms serve`'s configuration file (`rms.toml`), which is stored again at every
    /// start: the file is its only source of truth, and the admin API refuses to change it (409).
    /// Never set on AWS, where there is no such file.
    #[serde(default)]
    pub file_managed: bool,
}

/// A carrier credential as stored: its digest, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    pub carrier: Carrier,
    pub digest: CredentialDigest,
    pub added_at: DateTime<Utc>,
}

/// What a reader sees of a credential: which carrier, an id to revoke it by, when it was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub carrier: Carrier,
    /// The first 12 hex digits of the key's SHA-256: enough to tell keys apart, useless to forge one.
    pub key_id: String,
    pub added_at: DateTime<Utc>,
}

impl From<&StoredCredential> for KeyView {
    fn from(c: &StoredCredential) -> Self {
        KeyView {
            carrier: c.carrier,
            key_id: key_id(&c.digest),
            added_at: c.added_at,
        }
    }
}

fn key_id(digest: &CredentialDigest) -> String {
    digest.to_hex()[..12].to_owned()
}

/// A Push Config as a reader sees it: header names, never their values; whether a signing secret
/// is set, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushView {
    pub url: String,
    pub headers: Vec<String>,
    pub statuses: Vec<Status>,
    pub timeout_ms: u64,
    pub enabled: bool,
    pub signing_secret: bool,
    /// `every` event, or a shipment's `latest` state only.
    #[serde(default)]
    pub delivery: Delivery,
}

impl From<&PushConfig> for PushView {
    fn from(c: &PushConfig) -> Self {
        PushView {
            url: c.url.as_str().to_owned(),
            headers: c.headers.names(),
            statuses: c.statuses.clone(),
            timeout_ms: c.timeout.as_millis(),
            enabled: c.enabled,
            signing_secret: c.signing_secret.is_some(),
            delivery: c.delivery,
        }
    }
}

/// A Push Config change, as the API and `rms push set` take it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushUpdate {
    pub url: String,
    /// Header names and values; absent keeps the current headers (values are write-only, so a
    /// reader cannot send them back), `{}` removes them.
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    /// Status names; absent or empty means every status.
    #[serde(default)]
    pub statuses: Vec<String>,
    pub timeout_ms: Option<u64>,
    pub enabled: Option<bool>,
    /// `generate` (a new secret, returned once), `remove`, or absent to keep the current one.
    pub signing_secret: Option<SecretAction>,
    /// `every` or `latest` (`push::Delivery`); absent keeps the current one (`every` for a first
    /// Push Config).
    pub delivery: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretAction {
    Generate,
    Remove,
}

/// The answer to a Push Config change: the new view, and the signing secret if one was generated.
#[derive(Debug, Clone, Serialize)]
pub struct PushSaved {
    #[serde(flatten)]
    pub view: PushView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret_value: Option<String>,
}

/// A key that was added: its view, and the key itself when RMS generated it (shown once).
#[derive(Debug, Clone, Serialize)]
pub struct KeyAdded {
    #[serde(flatten)]
    pub view: KeyView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A tenant's account at a carrier's tracking API as a reader sees it: the user, never the secret.
/// (For Clickpost the user is the enterprise's API username, not its key.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullView {
    pub carrier: Carrier,
    pub base_url: String,
    pub user: String,
    pub secret_set: bool,
}

impl From<&PullAccountRecord> for PullView {
    fn from(r: &PullAccountRecord) -> Self {
        PullView {
            carrier: r.carrier,
            base_url: r.base_url.trim_end_matches('/').to_owned(),
            user: r.user.clone(),
            secret_set: !r.secret.expose().is_empty(),
        }
    }
}

/// A pull account change, as the API and `rms pull set` take it.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullUpdate {
    /// The carrier API's root; absent keeps the current one (the carrier's documented host for a
    /// new account).
    pub base_url: Option<String>,
    /// Clickpost: the enterprise username; Shiprocket: the API user's email; Shipway: the
    /// username.
    pub user: String,
    /// Clickpost: the API key; Shiprocket and Shipway: the password or licence key. Required for
    /// a new account; absent keeps the current one (it is write-only, so a reader cannot send it
    /// back).
    pub secret: Option<String>,
}

impl std::fmt::Debug for PullUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullUpdate")
            .field("base_url", &self.base_url)
            .field("user", &self.user)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The longest pull user and secret taken.
const MAX_PULL_FIELD: usize = 1024;

/// The carrier API's documented root, for an account that does not name another.
fn default_base_url(carrier: Carrier) -> &'static str {
    match carrier {
        Carrier::Clickpost => crate::carriers::clickpost::pull::DEFAULT_BASE_URL,
        Carrier::Shiprocket => crate::carriers::shiprocket::pull::DEFAULT_BASE_URL,
        Carrier::Shipway => crate::carriers::shipway::pull::DEFAULT_BASE_URL,
    }
}

/// A pull user or secret: not empty, no control characters, not over [`MAX_PULL_FIELD`].
fn pull_field(field: &str, value: &str) -> Result<(), AdminError> {
    if value.trim().is_empty() {
        return Err(AdminError::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_PULL_FIELD {
        return Err(AdminError::invalid(
            field,
            format!("use at most {MAX_PULL_FIELD} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(AdminError::invalid(
            field,
            "control characters (such as a line break) cannot be sent to the carrier's API",
        ));
    }
    Ok(())
}

/// What the test push got back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestPushResult {
    /// `delivered` (2xx), `failed` (any other answer), `timed_out`, `connect_failed`, `refused`.
    pub outcome: &'static str,
    pub http_status: Option<u16>,
    pub latency_ms: u64,
    /// The first bytes of the answer.
    pub body_prefix: String,
    pub error: Option<String>,
    /// The event id of the sample event (it starts with `evt_test_`).
    pub event_id: String,
}

/// The most credentials one tenant has live per carrier: the current one and, during a rotation,
/// the next.
pub const LIVE_KEYS_PER_CARRIER: usize = 2;

/// The answer to a change of a tenant that `rms.toml` defines.
fn managed_by_file(tenant: &TenantId) -> AdminError {
    AdminError::Conflict(format!(
        "tenant {tenant} is managed by rms.toml: it is defined in rms serve's configuration \
         file, which is stored again at every start, so a change made here would be undone; \
         edit its [[tenants]] entry in rms.toml and restart rms serve"
    ))
}

impl<S: AdminStore, P: Pusher, R: Reingest> Admin<S, P, R> {
    pub async fn create_tenant(
        &self,
        id: &str,
        include_source: Option<bool>,
        now: DateTime<Utc>,
    ) -> Result<Tenant, AdminError> {
        let id = TenantId::parse(id).map_err(|e| AdminError::invalid("id", e.to_string()))?;
        let tenant = Tenant {
            id,
            enabled: true,
            include_source: include_source.unwrap_or(true),
            created_at: now,
            file_managed: false,
        };
        if !self.store.create_tenant(&tenant).await? {
            return Err(match self.store.tenant(&tenant.id).await? {
                Some(existing) if existing.file_managed => managed_by_file(&tenant.id),
                _ => AdminError::Conflict(format!("tenant {} exists already", tenant.id)),
            });
        }
        info!(tenant_id = %tenant.id, "tenant created");
        Ok(tenant)
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>, AdminError> {
        Ok(self.store.tenants().await?)
    }

    pub async fn tenant(&self, id: &str) -> Result<Tenant, AdminError> {
        let id = tenant_id(id)?;
        self.store
            .tenant(&id)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("no tenant {id}")))
    }

    /// The tenant, if the admin API may change it: 404 if there is none, 409 if `rms.toml`
    /// defines it.
    async fn changeable(&self, id: &str) -> Result<Tenant, AdminError> {
        let tenant = self.tenant(id).await?;
        if tenant.file_managed {
            return Err(managed_by_file(&tenant.id));
        }
        Ok(tenant)
    }

    /// Enables or disables a tenant, and/or changes whether `source` is attached.
    pub async fn update_tenant(
        &self,
        id: &str,
        enabled: Option<bool>,
        include_source: Option<bool>,
    ) -> Result<Tenant, AdminError> {
        let mut tenant = self.changeable(id).await?;
        tenant.enabled = enabled.unwrap_or(tenant.enabled);
        tenant.include_source = include_source.unwrap_or(tenant.include_source);
        self.store.update_tenant(&tenant).await?;
        info!(tenant_id = %tenant.id, enabled = tenant.enabled, include_source = tenant.include_source, "tenant updated");
        Ok(tenant)
    }

    pub async fn keys(&self, tenant: &str) -> Result<Vec<KeyView>, AdminError> {
        let tenant = self.tenant(tenant).await?;
        let keys = self.store.credentials(&tenant.id).await?;
        Ok(keys.iter().map(KeyView::from).collect())
    }

    /// Adds a carrier key (given, or generated and returned once). The tenant's other key for that
    /// carrier stays live, so a rotation has no gap: add the new key, move the carrier to it,
    /// then revoke the old one.
    pub async fn add_key(
        &self,
        tenant: &str,
        carrier: &str,
        key: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<KeyAdded, AdminError> {
        let carrier: Carrier = carrier.parse().map_err(|e: crate::model::UnknownName| {
            AdminError::invalid("carrier", e.to_string())
        })?;
        let tenant = self.changeable(tenant).await?;
        let generated = key.is_none().then(|| random_token(24));
        let key = key.or(generated.as_deref()).unwrap_or_default();
        let digest = crate::auth::carrier_key(key)
            .map_err(|e| match e {
                crate::auth::KeyRuleError::Length(_) => AdminError::invalid(
                    "key",
                    format!("{e} (or leave it out and RMS generates one)"),
                ),
                crate::auth::KeyRuleError::Characters => AdminError::invalid("key", e.to_string()),
            })?
            .digest();
        let in_use = |owner: Option<TenantId>| {
            AdminError::Conflict(if owner.as_ref() == Some(&tenant.id) {
                format!(
                    "this {carrier} key is already one of tenant {}'s keys",
                    tenant.id
                )
            } else {
                format!("this {carrier} key belongs to another tenant; every tenant needs its own")
            })
        };
        if let Some(owner) = self.store.credential_owner(carrier, &digest).await? {
            return Err(in_use(Some(owner)));
        }
        let live = self
            .store
            .credentials(&tenant.id)
            .await?
            .into_iter()
            .filter(|c| c.carrier == carrier)
            .count();
        if live >= LIVE_KEYS_PER_CARRIER {
            return Err(AdminError::Conflict(format!(
                "tenant {} has {live} live {carrier} keys already; revoke the old one first",
                tenant.id
            )));
        }
        let stored = StoredCredential {
            carrier,
            digest,
            added_at: now,
        };
        // The check above gives the precise answer; this write is what makes it so, when another
        // request registers the same key in between.
        if !self.store.add_credential(&tenant.id, &stored).await? {
            return Err(in_use(self.store.credential_owner(carrier, &digest).await?));
        }
        let view = KeyView::from(&stored);
        info!(tenant_id = %tenant.id, carrier = %carrier, key_id = %view.key_id, "carrier key added");
        Ok(KeyAdded {
            view,
            key: generated,
        })
    }

    /// Revokes a key by its id (from `keys`): from now on the carrier's pushes with it are 401.
    pub async fn revoke_key(
        &self,
        tenant: &str,
        carrier: &str,
        key_id: &str,
    ) -> Result<(), AdminError> {
        let carrier: Carrier = carrier.parse().map_err(|e: crate::model::UnknownName| {
            AdminError::invalid("carrier", e.to_string())
        })?;
        let tenant = self.changeable(tenant).await?;
        let found = self
            .store
            .credentials(&tenant.id)
            .await?
            .into_iter()
            .find(|c| {
                c.carrier == carrier && key_id.len() >= 8 && c.digest.to_hex().starts_with(key_id)
            })
            .ok_or_else(|| {
                AdminError::NotFound(format!(
                    "tenant {} has no {carrier} key {key_id}",
                    tenant.id
                ))
            })?;
        self.store
            .remove_credential(&tenant.id, carrier, &found.digest)
            .await?;
        info!(tenant_id = %tenant.id, carrier = %carrier, key_id, "carrier key revoked");
        Ok(())
    }

    pub async fn push(&self, tenant: &str) -> Result<PushView, AdminError> {
        let tenant = self.tenant(tenant).await?;
        let config = self.store.push_config(&tenant.id).await?.ok_or_else(|| {
            AdminError::NotFound(format!("tenant {} has no Push Config yet", tenant.id))
        })?;
        Ok(PushView::from(&config))
    }

    /// Validates and saves a Push Config.
    pub async fn set_push(
        &self,
        tenant: &str,
        update: &PushUpdate,
    ) -> Result<PushSaved, AdminError> {
        let tenant = self.changeable(tenant).await?;
        let current = self.store.push_config(&tenant.id).await?;
        let url = PushUrl::parse(&update.url, self.policy)
            .map_err(|e| AdminError::invalid("url", e.to_string()))?;
        let headers = match &update.headers {
            Some(given) => PushHeaders::parse(given).map_err(|e| AdminError::Invalid {
                field: e.field,
                message: e.message,
            })?,
            None => current
                .as_ref()
                .map(|c| c.headers.clone())
                .unwrap_or_default(),
        };
        let statuses = update
            .statuses
            .iter()
            .map(|s| {
                s.parse::<Status>()
                    .map_err(|e| AdminError::invalid("statuses", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = match update.timeout_ms {
            Some(ms) => PushTimeout::from_millis(ms)
                .map_err(|e| AdminError::invalid("timeout_ms", e.to_string()))?,
            None => current.as_ref().map_or(PushTimeout::DEFAULT, |c| c.timeout),
        };
        let delivery = match &update.delivery {
            Some(given) => given
                .parse::<Delivery>()
                .map_err(|e| AdminError::invalid("delivery", e.to_string()))?,
            None => current.as_ref().map(|c| c.delivery).unwrap_or_default(),
        };
        let mut shown_secret = None;
        let signing_secret = match update.signing_secret {
            Some(SecretAction::Generate) => {
                let secret = generate_signing_secret();
                shown_secret = Some(secret.expose());
                Some(secret)
            }
            Some(SecretAction::Remove) => None,
            None => current.as_ref().and_then(|c| c.signing_secret.clone()),
        };
        let config = PushConfig {
            url,
            headers,
            statuses,
            signing_secret,
            timeout,
            enabled: update
                .enabled
                .or(current.as_ref().map(|c| c.enabled))
                .unwrap_or(true),
            delivery,
        };
        self.store.put_push_config(&tenant.id, &config).await?;
        // A changed Push Config is a changed endpoint: what opened the circuit no longer says
        // anything about it. (Dispatchers see the change within their circuit cache.)
        self.store.close_circuit(&tenant.id).await?;
        info!(tenant_id = %tenant.id, url = %config.url, headers = config.headers.len(), statuses = config.statuses.len(), delivery = %config.delivery, "push config saved");
        Ok(PushSaved {
            view: PushView::from(&config),
            signing_secret_value: shown_secret,
        })
    }

    /// The tenant's accounts at the carriers' tracking APIs (for the reconciler), without their
    /// secrets.
    pub async fn pull(&self, tenant: &str) -> Result<Vec<PullView>, AdminError> {
        let tenant = self.tenant(tenant).await?;
        let mut accounts = self.store.pull_accounts(&tenant.id).await?;
        accounts.sort_by_key(|a| a.carrier.as_str());
        Ok(accounts.iter().map(PullView::from).collect())
    }

    /// Creates or changes the tenant's account at a carrier's tracking API. The secret is
    /// required for a new account and kept when left out; so is the base URL (the carrier's
    /// documented host for a new account). The base URL follows the Push Config URL rules.
    pub async fn set_pull(
        &self,
        tenant: &str,
        carrier: &str,
        update: &PullUpdate,
    ) -> Result<PullView, AdminError> {
        let carrier = parse_carrier(carrier)?;
        let tenant = self.changeable(tenant).await?;
        pull_field("user", &update.user)?;
        if let Some(secret) = &update.secret {
            pull_field("secret", secret)?;
        }
        let current = self
            .store
            .pull_accounts(&tenant.id)
            .await?
            .into_iter()
            .find(|a| a.carrier == carrier);
        let base_url = match (&update.base_url, &current) {
            (Some(given), _) => given.clone(),
            (None, Some(current)) => current.base_url.clone(),
            (None, None) => default_base_url(carrier).to_owned(),
        };
        let base_url = crate::carriers::pull::BaseUrl::parse(&base_url, self.policy)
            .map_err(|e| AdminError::invalid("base_url", e.to_string()))?;
        let secret = match (&update.secret, current) {
            (Some(given), _) => crate::push::SecretValue::new(given.clone()),
            (None, Some(current)) => current.secret,
            (None, None) => {
                return Err(AdminError::invalid(
                    "secret",
                    format!(
                        "tenant {} has no {carrier} account yet: give its secret ({})",
                        tenant.id,
                        pull_secret_name(carrier)
                    ),
                ))
            }
        };
        let record = PullAccountRecord {
            carrier,
            base_url: base_url.as_url().to_string(),
            user: update.user.clone(),
            secret,
        };
        self.store.put_pull_account(&tenant.id, &record).await?;
        info!(tenant_id = %tenant.id, carrier = %carrier, base_url = %base_url, "pull account saved");
        Ok(PullView::from(&record))
    }

    /// Removes the tenant's account at a carrier's tracking API: the reconciler stops asking
    /// that carrier about the tenant's shipments.
    pub async fn remove_pull(&self, tenant: &str, carrier: &str) -> Result<(), AdminError> {
        let carrier = parse_carrier(carrier)?;
        let tenant = self.changeable(tenant).await?;
        if !self.store.remove_pull_account(&tenant.id, carrier).await? {
            return Err(AdminError::NotFound(format!(
                "tenant {} has no {carrier} pull account",
                tenant.id
            )));
        }
        info!(tenant_id = %tenant.id, carrier = %carrier, "pull account removed");
        Ok(())
    }

    /// Pushes a sample event with this status to the tenant's endpoint now, with its headers and
    /// signature, and reports what came back. Nothing is queued or logged as a delivery.
    pub async fn test_push(
        &self,
        tenant: &str,
        status: &str,
        now: DateTime<Utc>,
    ) -> Result<TestPushResult, AdminError> {
        let status: Status = status
            .parse()
            .map_err(|e: crate::model::UnknownName| AdminError::invalid("status", e.to_string()))?;
        let tenant = self.tenant(tenant).await?;
        let config = self.store.push_config(&tenant.id).await?.ok_or_else(|| {
            AdminError::NotFound(format!("tenant {} has no Push Config yet", tenant.id))
        })?;
        let event = sample_event(&tenant.id, status, now);
        let event_id = event.event_id.to_string();
        let started = Instant::now();
        let result = match build_request(&event, &config, now) {
            Ok(request) => self.pusher.push(&request).await,
            Err(reason) => PushResult::Refused { reason },
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let answer = match result {
            PushResult::Answered {
                status,
                body_prefix,
                latency,
                ..
            } => TestPushResult {
                outcome: if (200..300).contains(&status) {
                    "delivered"
                } else {
                    "failed"
                },
                http_status: Some(status),
                latency_ms: ms(latency),
                body_prefix,
                error: None,
                event_id,
            },
            PushResult::TimedOut { latency } => TestPushResult {
                outcome: "timed_out",
                http_status: None,
                latency_ms: ms(latency),
                body_prefix: String::new(),
                error: Some(format!(
                    "no answer within {} ms",
                    config.timeout.as_millis()
                )),
                event_id,
            },
            PushResult::ConnectFailed { reason, latency } => TestPushResult {
                outcome: "connect_failed",
                http_status: None,
                latency_ms: ms(latency),
                body_prefix: String::new(),
                error: Some(reason),
                event_id,
            },
            PushResult::Refused { reason } => TestPushResult {
                outcome: "refused",
                http_status: None,
                latency_ms: ms(started.elapsed()),
                body_prefix: String::new(),
                error: Some(reason),
                event_id,
            },
        };
        info!(tenant_id = %tenant.id, outcome = answer.outcome, http_status = answer.http_status, "test push");
        Ok(answer)
    }
}

/// What a carrier calls the secret of its tracking API account.
fn pull_secret_name(carrier: Carrier) -> &'static str {
    match carrier {
        Carrier::Clickpost => "the API key",
        Carrier::Shiprocket => "the API user's password",
        Carrier::Shipway => "the licence key",
    }
}

fn generate_signing_secret() -> SigningSecret {
    let mut key = [0u8; 32];
    fill_random(&mut key);
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(key);
    // 32 random bytes always make a valid secret.
    SigningSecret::parse(&text).unwrap_or_else(|_| unreachable!("32 bytes is a valid key"))
}

/// The sample event of a test push: a forward shipment `TEST-<status>` with an id that says so.
pub fn sample_event(tenant: &TenantId, status: Status, now: DateTime<Utc>) -> CanonicalEvent {
    let raw = now.to_rfc3339();
    let mut event = CanonicalEvent {
        schema: crate::model::SCHEMA_ID.to_owned(),
        event_id: EventId::unset(),
        tenant_id: tenant.clone(),
        carrier: Carrier::Clickpost,
        courier: Some("RMS test".to_owned()),
        awb: Some(format!("TEST-{}", status.as_str().to_ascii_uppercase())),
        order_id: Some("TEST-ORDER".to_owned()),
        reference_number: None,
        shipment_type: crate::model::ShipmentType::Forward,
        forward_awb: None,
        forward_reference_number: None,
        status,
        carrier_status: crate::model::CarrierStatus {
            code: "TEST".to_owned(),
            description: Some("RMS Notify test push".to_owned()),
            raw: None,
            notification_event_id: None,
        },
        location: None,
        remark: Some("a test notification sent from the RMS Push Config".to_owned()),
        event_time: now,
        event_time_raw: raw,
        received_at: now,
        latest_status: None,
        is_stale: false,
        ndr: None,
        npr: None,
        edd: None,
        items: Vec::new(),
        source: None,
        legacy_ids: Default::default(),
    };
    event.event_id = EventId::test(now);
    event
}

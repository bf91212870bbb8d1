//! `rms serve`'s configuration file (TOML). Every problem is reported with the field it is in.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use shared::adapters::sqlite::Durability;
use shared::admin::LIVE_KEYS_PER_CARRIER;
use shared::auth::Credential;
use shared::carriers::{self, pull::BaseUrl};
use shared::circuit::BreakerSettings;
use shared::ingest::IngestSettings;
use shared::push::{
    Delivery, PushConfig, PushHeaders, PushTimeout, PushUrl, SecretValue, SigningSecret,
    TargetPolicy,
};
use shared::reconcile::PullAccount;
use shared::{Carrier, Status, TenantId};

use super::server::ServerSettings;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    database: Option<PathBuf>,
    /// `"fsync"` (the default) or `"os"`: see `Durability`.
    durability: Option<String>,
    #[serde(default)]
    allow_private_targets: bool,
    admin_token: Option<String>,
    #[serde(default)]
    ingest: IngestSection,
    #[serde(default)]
    dispatch: DispatchSection,
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    reconcile: ReconcileSection,
    #[serde(default)]
    tenants: Vec<TenantSection>,
}

/// `[reconcile]`: how often the tenants' quiet shipments are pulled, and when a shipment is quiet.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReconcileSection {
    /// How often a run starts (default "15m"; "off": never, `rms reconcile` by hand only).
    every: Option<String>,
    /// A shipment waiting for pickup is pulled after this long without news (default "24h").
    before_pickup: Option<String>,
    /// Any other shipment that is not delivered or closed (default "6h").
    moving: Option<String>,
    /// The most tracking calls one account gets per run (default 100).
    calls_per_account: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct IngestSection {
    /// How far after its arrival an event's time may be (default "1d").
    max_future: Option<String>,
    /// A carrier that pushed before and sends nothing this long is reported (default "3h";
    /// "off" turns the watch off).
    silent_after: Option<String>,
    /// A carrier's zone when it is not the carrier's default (`clickpost = "+05:30"`).
    #[serde(default)]
    zones: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DispatchSection {
    timeout: Option<String>,
    retry_schedule: Option<Vec<String>>,
    max_attempts: Option<u32>,
    concurrency: Option<usize>,
    tenant_concurrency: Option<usize>,
    circuit_failures: Option<u32>,
    circuit_cool_down: Option<String>,
}

/// `[server]`: the HTTP server's timeouts and connection cap (`server::ServerSettings`).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    header_timeout: Option<String>,
    idle_timeout: Option<String>,
    body_timeout: Option<String>,
    max_connections: Option<usize>,
}

impl ServerSection {
    fn settings(&self) -> Result<ServerSettings, ConfigError> {
        let mut settings = ServerSettings::default();
        for (name, text, setting) in [
            (
                "header_timeout",
                &self.header_timeout,
                &mut settings.header_timeout,
            ),
            (
                "idle_timeout",
                &self.idle_timeout,
                &mut settings.idle_timeout,
            ),
            (
                "body_timeout",
                &self.body_timeout,
                &mut settings.body_timeout,
            ),
        ] {
            if let Some(text) = text {
                let field = format!("server.{name}");
                *setting = duration(&field, text)?;
                if setting.is_zero() {
                    return Err(invalid(field, "must be more than 0, e.g. \"10s\""));
                }
            }
        }
        if let Some(max) = self.max_connections {
            if max == 0 {
                return Err(invalid("server.max_connections", "must be at least 1"));
            }
            settings.max_connections = max;
        }
        Ok(settings)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantSection {
    id: String,
    #[serde(default)]
    keys: BTreeMap<String, Keys>,
    push: Option<PushSection>,
    include_source: Option<bool>,
    enabled: Option<bool>,
    /// The tenant's accounts at the carriers' tracking APIs, for the reconciler.
    #[serde(default)]
    pull: PullSection,
}

/// `[tenants.pull.<carrier>]`: each carrier's own names for its credentials.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PullSection {
    clickpost: Option<ClickpostPull>,
    shiprocket: Option<ShiprocketPull>,
    shipway: Option<ShipwayPull>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClickpostPull {
    base_url: Option<String>,
    username: String,
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShiprocketPull {
    base_url: Option<String>,
    email: String,
    password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShipwayPull {
    base_url: Option<String>,
    username: String,
    licence_key: String,
}

/// A carrier's key, or its two live keys during a rotation (`["old", "new"]`).
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a key (a string), or a list of the carrier's two keys during a rotation"
)]
enum Keys {
    One(String),
    Rotating(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushSection {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    statuses: Vec<String>,
    signing_secret: Option<String>,
    timeout: Option<String>,
    #[serde(default = "enabled")]
    enabled: bool,
    /// `every` (the default) or `latest`.
    delivery: Option<String>,
}

fn enabled() -> bool {
    true
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub database: PathBuf,
    /// How far an accepted event is kept before its 200: on stable storage (`fsync`, the
    /// default) or with the operating system (`os`).
    pub durability: Durability,
    /// Loopback and private client URLs (and plain http) are allowed: local receivers.
    pub allow_private_targets: bool,
    /// When set, the admin API needs `Authorization: Bearer <token>`. Required when `listen` is
    /// not a loopback address.
    pub admin_token: Option<SecretValue>,
    /// `[ingest]`: the carriers' zones and how far ahead of its arrival an event may be, as the
    /// notify functions' `<CARRIER>_ZONE` and `MAX_FUTURE_HOURS`.
    pub ingest: IngestSettings,
    /// `[ingest] silent_after`: when a carrier that pushed a tenant's events and went quiet is
    /// reported (`None`: never).
    pub silent_after: Option<Duration>,
    pub timeout: Duration,
    pub retry_schedule: Vec<Duration>,
    pub max_attempts: u32,
    /// Delivery slots: pushes in flight at once.
    pub concurrency: usize,
    /// The most slots one tenant holds while others have messages due.
    pub tenant_concurrency: usize,
    /// `circuit_failures`, `circuit_cool_down`: the per-tenant circuit breaker.
    pub breaker: BreakerSettings,
    /// `[server]`: header, idle and body timeouts, and the connection cap.
    pub server: ServerSettings,
    /// `[reconcile]`: every how long a run starts (`None`: never), and its rules.
    pub reconcile_every: Option<Duration>,
    pub reconcile: shared::reconcile::ReconcileSettings,
    pub tenants: Vec<Tenant>,
    /// The file the configuration was read from: without one, `rms serve` leaves the stored
    /// tenants as they are (those of a file stay the file's).
    pub file: Option<PathBuf>,
}

/// A tenant of the file: the whole truth for that tenant (`rms serve` stores it at every start,
/// and the admin API does not change it).
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Where it is in the file (`tenants[1]`), for messages.
    pub field: String,
    pub id: TenantId,
    pub keys: Vec<Key>,
    pub push: Option<PushConfig>,
    pub include_source: bool,
    pub enabled: bool,
    /// `[tenants.pull.<carrier>]`: the accounts the reconciler pulls with.
    pub pull: Vec<PullAccount>,
}

/// A carrier key of a tenant of the file.
#[derive(Debug, Clone)]
pub struct Key {
    /// Where it is in the file (`tenants[1].keys.clickpost`), for messages.
    pub field: String,
    pub carrier: Carrier,
    pub credential: Credential,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

/// A listen address: an IP address and port (`127.0.0.1:8080`, `[::1]:8080`), or a host name and
/// port (`localhost:8080`: its first IPv4 address, else its first address).
pub fn listen_address(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    let wrong = |why: String| {
        format!("{text:?} is not an address to listen on, such as 127.0.0.1:8080 or localhost:8080 ({why})")
    };
    let found: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| wrong(e.to_string()))?
        .collect();
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or(found.first())
        .copied()
        .ok_or_else(|| wrong("the name has no address".to_owned()))
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn duration(field: &str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text).map_err(|e| {
        invalid(
            field,
            format!("{text:?} is not a duration ({e}); write e.g. \"30s\", \"2m\", \"1h\""),
        )
    })
}

impl Default for ServeConfig {
    fn default() -> Self {
        let defaults = shared::dispatch::DispatchSettings::default();
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database: PathBuf::from("rms.db"),
            durability: Durability::default(),
            allow_private_targets: false,
            admin_token: None,
            ingest: IngestSettings::default(),
            silent_after: Some(Duration::from_secs(3 * 3600)),
            timeout: PushTimeout::DEFAULT.get(),
            retry_schedule: defaults.retry_schedule,
            max_attempts: defaults.max_attempts,
            concurrency: 64,
            tenant_concurrency: 4,
            breaker: BreakerSettings::default(),
            server: ServerSettings::default(),
            reconcile_every: Some(Duration::from_secs(15 * 60)),
            reconcile: shared::reconcile::ReconcileSettings::default(),
            tenants: Vec::new(),
            file: None,
        }
    }
}

impl ServeConfig {
    /// What a Push Config URL may point at, for the file's tenants, the admin API and delivery
    /// alike: with `allow_private_targets`, local receivers (private addresses, plain http).
    pub fn targets(&self) -> TargetPolicy {
        if self.allow_private_targets {
            TargetPolicy::LOCAL
        } else {
            TargetPolicy::default()
        }
    }

    pub fn load(path: &std::path::Path) -> Result<ServeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = ServeConfig::parse(&text).map_err(|e| match e {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        config.file = Some(path.to_owned());
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<ServeConfig, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::new(),
            // toml's message is several lines: the line in error, and a caret under the spot.
            message: e.to_string().trim_end().to_owned(),
        })?;
        let mut config = ServeConfig::default();
        if let Some(listen) = file.listen {
            config.listen =
                listen_address(&listen).map_err(|message| invalid("listen", message))?;
        }
        if let Some(database) = file.database {
            config.database = database;
        }
        if let Some(durability) = &file.durability {
            config.durability = durability.parse().map_err(|e| invalid("durability", e))?;
        }
        config.allow_private_targets = file.allow_private_targets;
        if let Some(token) = file.admin_token {
            if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(
                    "admin_token",
                    "use at least 16 characters, without spaces",
                ));
            }
            config.admin_token = Some(SecretValue::new(token));
        }
        if let Some(after) = &file.ingest.silent_after {
            config.silent_after = match after.trim() {
                "off" => None,
                text => match duration("ingest.silent_after", text)? {
                    zero if zero.is_zero() => {
                        return Err(invalid(
                            "ingest.silent_after",
                            "must be more than 0; write \"off\" to turn the watch off",
                        ))
                    }
                    after => Some(after),
                },
            };
        }
        if let Some(ahead) = &file.ingest.max_future {
            let field = "ingest.max_future";
            config.ingest.max_future = chrono::TimeDelta::from_std(duration(field, ahead)?)
                .map_err(|_| invalid(field, format!("{ahead:?} is too long")))?;
        }
        for (carrier, zone) in &file.ingest.zones {
            let field = format!("ingest.zones.{carrier}");
            let carrier = carrier
                .parse::<Carrier>()
                .map_err(|e| invalid(&field, e.to_string()))?;
            let zone = shared::time::parse_zone(zone).map_err(|e| invalid(&field, e))?;
            config.ingest.zones.set(carrier, zone);
        }
        // The default of the tenants' push timeouts: in the range a tenant's own may take.
        let mut default_timeout = PushTimeout::DEFAULT;
        if let Some(timeout) = &file.dispatch.timeout {
            default_timeout = push_timeout("dispatch.timeout", timeout)?;
            config.timeout = default_timeout.get();
        }
        if let Some(schedule) = &file.dispatch.retry_schedule {
            if schedule.is_empty() {
                return Err(invalid(
                    "dispatch.retry_schedule",
                    "needs at least one wait",
                ));
            }
            config.retry_schedule = schedule
                .iter()
                .enumerate()
                .map(|(i, s)| duration(&format!("dispatch.retry_schedule[{i}]"), s))
                .collect::<Result<_, _>>()?;
        }
        if let Some(max) = file.dispatch.max_attempts {
            if max == 0 {
                return Err(invalid("dispatch.max_attempts", "must be at least 1"));
            }
            config.max_attempts = max;
        }
        if let Some(concurrency) = file.dispatch.concurrency {
            config.concurrency = concurrency.max(1);
        }
        if let Some(per_tenant) = file.dispatch.tenant_concurrency {
            if per_tenant == 0 {
                return Err(invalid(
                    "dispatch.tenant_concurrency",
                    "must be at least 1 (the pushes one tenant may have in flight)",
                ));
            }
            config.tenant_concurrency = per_tenant;
        }
        if let Some(failures) = file.dispatch.circuit_failures {
            if failures == 0 {
                return Err(invalid("dispatch.circuit_failures", "must be at least 1"));
            }
            config.breaker.failures_to_open = failures;
        }
        if let Some(cool_down) = &file.dispatch.circuit_cool_down {
            config.breaker.cool_down = duration("dispatch.circuit_cool_down", cool_down)?;
        }
        let targets = config.targets();
        config.server = file.server.settings()?;
        if let Some(every) = &file.reconcile.every {
            config.reconcile_every = match every.trim() {
                "off" => None,
                text => Some(duration("reconcile.every", text)?).filter(|d| !d.is_zero()),
            };
        }
        if let Some(text) = &file.reconcile.before_pickup {
            config.reconcile.rules.before_pickup = duration("reconcile.before_pickup", text)?;
        }
        if let Some(text) = &file.reconcile.moving {
            config.reconcile.rules.moving = duration("reconcile.moving", text)?;
        }
        if let Some(calls) = file.reconcile.calls_per_account {
            if calls == 0 {
                return Err(invalid("reconcile.calls_per_account", "must be at least 1"));
            }
            config.reconcile.calls_per_account = calls;
        }
        for (i, t) in file.tenants.into_iter().enumerate() {
            let field = format!("tenants[{i}]");
            config
                .tenants
                .push(tenant(field, t, targets, default_timeout)?);
        }
        one_tenant_per_key(&config.tenants)?;
        // Pulled events are normalised as the pushed ones are.
        config.reconcile.zones = config.ingest.zones.clone();
        config.reconcile.max_future = config.ingest.max_future;
        Ok(config)
    }
}

/// A key identifies one tenant: the same key under two tenants (for any carrier) would send one
/// tenant's events to the other, and would let one tenant's carrier account speak for the other.
/// Within a tenant, each key is given once per carrier.
fn one_tenant_per_key(tenants: &[Tenant]) -> Result<(), ConfigError> {
    let mut seen: Vec<(&Tenant, &Key)> = Vec::new();
    for (i, tenant) in tenants.iter().enumerate() {
        if let Some(earlier) = tenants[..i].iter().find(|t| t.id == tenant.id) {
            return Err(invalid(
                format!("{}.id", tenant.field),
                format!(
                    "tenant {} is defined by {} already; define each tenant once",
                    tenant.id, earlier.field
                ),
            ));
        }
        for key in &tenant.keys {
            let same = seen.iter().find(|(t, k)| {
                k.credential == key.credential && (t.id != tenant.id || k.carrier == key.carrier)
            });
            if let Some((_, first)) = same {
                return Err(invalid(
                    &key.field,
                    format!(
                        "the same key as {}; a key identifies one tenant",
                        first.field
                    ),
                ));
            }
            seen.push((tenant, key));
        }
    }
    Ok(())
}

fn tenant(
    field: String,
    t: TenantSection,
    targets: TargetPolicy,
    default_timeout: PushTimeout,
) -> Result<Tenant, ConfigError> {
    let id = TenantId::parse(&t.id).map_err(|e| invalid(format!("{field}.id"), e.to_string()))?;
    let mut keys = Vec::new();
    for (carrier, given) in t.keys {
        let at = format!("{field}.keys.{carrier}");
        let parsed = carrier
            .parse::<Carrier>()
            .map_err(|e| invalid(&at, e.to_string()))?;
        let given: Vec<(String, String)> = match given {
            Keys::One(key) => vec![(at, key)],
            Keys::Rotating(list) if (1..=LIVE_KEYS_PER_CARRIER).contains(&list.len()) => list
                .into_iter()
                .enumerate()
                .map(|(i, key)| (format!("{at}[{i}]"), key))
                .collect(),
            Keys::Rotating(_) => {
                return Err(invalid(
                    at,
                    format!(
                    "give one key, or a list of at most {LIVE_KEYS_PER_CARRIER} during a rotation"
                ),
                ))
            }
        };
        for (at, key) in given {
            let credential =
                shared::auth::carrier_key(&key).map_err(|e| invalid(&at, e.to_string()))?;
            keys.push(Key {
                field: at,
                carrier: parsed,
                credential,
            });
        }
    }
    let push = match t.push {
        None => None,
        Some(p) => Some(push(&format!("{field}.push"), p, targets, default_timeout)?),
    };
    let pull = pull_accounts(&format!("{field}.pull"), t.pull, targets)?;
    Ok(Tenant {
        field,
        id,
        keys,
        push,
        include_source: t.include_source.unwrap_or(true),
        enabled: t.enabled.unwrap_or(true),
        pull,
    })
}

/// The tenant's pull accounts; a base URL by the push targets' rules (loopback only with
/// `allow_private_targets`), each carrier's default when not given.
fn pull_accounts(
    field: &str,
    p: PullSection,
    targets: TargetPolicy,
) -> Result<Vec<PullAccount>, ConfigError> {
    let base = |carrier: &str, given: Option<String>, default: &str| {
        let text = given.unwrap_or_else(|| default.to_owned());
        BaseUrl::parse(&text, targets)
            .map_err(|e| invalid(format!("{field}.{carrier}.base_url"), e.to_string()))
    };
    let secret = |carrier: &str, name: &str, value: String| {
        if value.trim().is_empty() {
            Err(invalid(format!("{field}.{carrier}.{name}"), "is empty"))
        } else {
            Ok(SecretValue::new(value.trim()))
        }
    };
    let mut accounts = Vec::new();
    if let Some(c) = p.clickpost {
        let url = base(
            "clickpost",
            c.base_url,
            carriers::clickpost::pull::DEFAULT_BASE_URL,
        )?;
        accounts.push(PullAccount::Clickpost(
            carriers::clickpost::pull::PullCredentials::new(
                c.username.trim(),
                secret("clickpost", "key", c.key)?,
            )
            .with_base_url(url),
        ));
    }
    if let Some(c) = p.shiprocket {
        let url = base(
            "shiprocket",
            c.base_url,
            carriers::shiprocket::pull::DEFAULT_BASE_URL,
        )?;
        accounts.push(PullAccount::Shiprocket(
            carriers::shiprocket::pull::PullCredentials::new(
                c.email.trim(),
                secret("shiprocket", "password", c.password)?,
            )
            .with_base_url(url),
        ));
    }
    if let Some(c) = p.shipway {
        let url = base(
            "shipway",
            c.base_url,
            carriers::shipway::pull::DEFAULT_BASE_URL,
        )?;
        accounts.push(PullAccount::Shipway(
            carriers::shipway::pull::PullCredentials::new(
                c.username.trim(),
                secret("shipway", "licence_key", c.licence_key)?,
            )
            .with_base_url(url),
        ));
    }
    Ok(accounts)
}

/// A tenant's Push Config, by the same rules as the admin API's (`shared::push`'s types).
fn push(
    field: &str,
    p: PushSection,
    targets: TargetPolicy,
    default_timeout: PushTimeout,
) -> Result<PushConfig, ConfigError> {
    let url = PushUrl::parse(&p.url, targets).map_err(|e| {
        let hint = if targets.allow_private {
            ""
        } else {
            " (local receivers: set allow_private_targets = true)"
        };
        invalid(format!("{field}.url"), format!("{e}{hint}"))
    })?;
    let headers = PushHeaders::parse(&p.headers)
        .map_err(|e| invalid(format!("{field}.{}", e.field), e.message))?;
    let statuses = p
        .statuses
        .iter()
        .map(|s| {
            s.parse::<Status>()
                .map_err(|e| invalid(format!("{field}.statuses"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let signing_secret = match p.signing_secret {
        None => None,
        Some(s) => Some(
            SigningSecret::parse(&s)
                .map_err(|e| invalid(format!("{field}.signing_secret"), e.to_string()))?,
        ),
    };
    let timeout = match &p.timeout {
        None => default_timeout,
        Some(t) => push_timeout(&format!("{field}.timeout"), t)?,
    };
    let delivery = match &p.delivery {
        None => Delivery::default(),
        Some(d) => d
            .parse::<Delivery>()
            .map_err(|e| invalid(format!("{field}.delivery"), e.to_string()))?,
    };
    Ok(PushConfig {
        url,
        headers,
        statuses,
        signing_secret,
        timeout,
        enabled: p.enabled,
        delivery,
    })
}

/// A push timeout: a duration in the range the admin API takes.
fn push_timeout(field: &str, text: &str) -> Result<PushTimeout, ConfigError> {
    PushTimeout::new(duration(field, text)?).map_err(|e| invalid(field, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
listen = "127.0.0.1:8080"
database = "rms.db"
allow_private_targets = true
[dispatch]
timeout = "10s"
retry_schedule = ["30s", "2m", "10m", "30m", "1h", "2h", "4h", "8h", "12h"]
max_attempts = 10
[[tenants]]
id = "acme"
[tenants.keys]
clickpost = "acme-clickpost-key-0001"
shiprocket = "acme-shiprocket-key-001"
shipway = "acme-shipway-key-00001"
[tenants.push]
url = "http://127.0.0.1:9000/hook"
headers = { Authorization = "Bearer x", "X-Client-Id" = "acme" }
statuses = []
signing_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"#;

    #[test]
    fn the_documented_example_loads() {
        let config = ServeConfig::parse(EXAMPLE).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.retry_schedule.len(), 9);
        assert_eq!(config.retry_schedule[1], Duration::from_secs(120));
        let acme = &config.tenants[0];
        assert_eq!(acme.keys.len(), 3);
        let push = acme.push.as_ref().unwrap();
        assert_eq!(push.headers.len(), 2);
        assert!(push.signing_secret.is_some());
        assert_eq!(push.delivery, Delivery::Every, "the default");
        assert_eq!(config.durability, Durability::Fsync, "the default");
    }

    #[test]
    fn durability_is_fsync_unless_the_file_says_os() {
        assert_eq!(ServeConfig::default().durability, Durability::Fsync);
        let os = ServeConfig::parse(&format!("durability = \"os\"\n{EXAMPLE}")).unwrap();
        assert_eq!(os.durability, Durability::Os);
        let fsync = ServeConfig::parse(&format!("durability = \"fsync\"\n{EXAMPLE}")).unwrap();
        assert_eq!(fsync.durability, Durability::Fsync);
    }

    #[test]
    fn a_tenant_can_take_the_latest_state_only() {
        let text = EXAMPLE.replace("statuses = []", "statuses = []\ndelivery = \"latest\"");
        let config = ServeConfig::parse(&text).unwrap();
        let push = config.tenants[0].push.as_ref().unwrap();
        assert_eq!(push.delivery, Delivery::Latest);
    }

    #[test]
    fn mistakes_name_their_field() {
        let cases = [
            (EXAMPLE.replace("\"2m\"", "\"2 fortnights\""), "dispatch.retry_schedule[1]"),
            (EXAMPLE.replace("statuses = []", "statuses = [\"DELIVERD\"]"), "tenants[0].push.statuses: unknown status \"DELIVERD\"; valid values are: ORDER_PLACED"),
            (EXAMPLE.replace("statuses = []", "delivery = \"newest\""), "tenants[0].push.delivery: unknown delivery \"newest\"; valid values are: every, latest"),
            (EXAMPLE.replace("shipway = \"acme-shipway-key-00001\"", "ups = \"k\""), "tenants[0].keys.ups: unknown carrier"),
            (EXAMPLE.replace("\"X-Client-Id\"", "\"X Client\""), "tenants[0].push.headers.X Client: \"X Client\" is not a valid header name"),
            (EXAMPLE.replace("\"X-Client-Id\"", "\"Host\""), "tenants[0].push.headers.Host: Host is set by RMS itself"),
            (EXAMPLE.replace("http://127.0.0.1:9000/hook", "127.0.0.1:9000/hook"), "tenants[0].push.url"),
            (EXAMPLE.replace("id = \"acme\"", "id = \"ac me\""), "tenants[0].id: invalid tenant id"),
            (EXAMPLE.replace("max_attempts = 10", "max_attempts = 10\nmax_retries = 3"), "unknown field `max_retries`"),
            (EXAMPLE.replace("max_attempts = 10", "max_attempts = 10\ntenant_concurrency = 0"), "dispatch.tenant_concurrency: must be at least 1"),
            (EXAMPLE.replace("max_attempts = 10", "max_attempts = 10\ncircuit_cool_down = \"soon\""), "dispatch.circuit_cool_down"),
            (format!("admin_token = \"short\"\n{EXAMPLE}"), "admin_token: use at least 16 characters"),
            (format!("durability = \"full\"\n{EXAMPLE}"), "durability: \"full\" is not a durability: write \"fsync\""),
        ];
        for (text, expected) in cases {
            let err = ServeConfig::parse(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
    }

    #[test]
    fn the_ingest_section_sets_the_future_window_and_carrier_zones() {
        let text = format!(
            "{EXAMPLE}\n[ingest]\nmax_future = \"3d\"\nzones = {{ shipway = \"+00:00\" }}\n"
        );
        let config = ServeConfig::parse(&text).unwrap();
        assert_eq!(config.ingest.max_future, chrono::TimeDelta::days(3));
        assert_eq!(
            config.ingest.zones.for_carrier(Carrier::Shipway),
            shared::time::utc()
        );
        assert_eq!(
            config.ingest.zones.for_carrier(Carrier::Clickpost),
            shared::time::ist()
        );
        for (bad, field) in [
            ("max_future = \"soon\"", "ingest.max_future"),
            ("zones = { dhl = \"+01:00\" }", "ingest.zones.dhl"),
            ("zones = { shipway = \"IST+1\" }", "ingest.zones.shipway"),
        ] {
            let err = ServeConfig::parse(&format!("{EXAMPLE}\n[ingest]\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(field), "{bad}: {err}");
        }
    }

    fn error_of(text: &str) -> String {
        ServeConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn one_key_under_two_tenants_is_refused_naming_both_fields() {
        let second = r#"
[[tenants]]
id = "globex"
[tenants.keys]
shiprocket = "globex-shiprocket-key-1"
clickpost = "acme-clickpost-key-0001"
"#;
        assert_eq!(
            error_of(&format!("{EXAMPLE}{second}")),
            "tenants[1].keys.clickpost: the same key as tenants[0].keys.clickpost; a key \
             identifies one tenant"
        );
        // For another carrier too: one tenant's carrier account would speak for the other.
        let other_carrier = second.replace(
            "clickpost = \"acme-clickpost-key-0001\"",
            "shipway = \"acme-shiprocket-key-001\"",
        );
        assert_eq!(
            error_of(&format!("{EXAMPLE}{other_carrier}")),
            "tenants[1].keys.shipway: the same key as tenants[0].keys.shiprocket; a key \
             identifies one tenant"
        );
        // Within one tenant, one key for two carriers is its own business.
        let own = EXAMPLE.replace(
            "shipway = \"acme-shipway-key-00001\"",
            "shipway = \"acme-shiprocket-key-001\"",
        );
        assert!(ServeConfig::parse(&own).is_ok());
        let twice = format!("{EXAMPLE}\n[[tenants]]\nid = \"acme\"\n");
        assert_eq!(
            error_of(&twice),
            "tenants[1].id: tenant acme is defined by tenants[0] already; define each tenant once"
        );
    }

    #[test]
    fn a_key_in_the_file_follows_the_same_rule_as_the_admin_api() {
        for (key, expected) in [
            ("short", "tenants[0].keys.shipway: a carrier key has 16 to 256 characters; this one has 5"),
            ("a key with spaces in it", "tenants[0].keys.shipway: spaces and control characters cannot be sent in a carrier's header or URL"),
        ] {
            let text = EXAMPLE.replace("acme-shipway-key-00001", key);
            assert_eq!(error_of(&text), expected);
        }
    }

    #[test]
    fn a_rotation_lists_two_keys_for_a_carrier() {
        let rotating = EXAMPLE.replace(
            "clickpost = \"acme-clickpost-key-0001\"",
            "clickpost = [\"acme-clickpost-key-0001\", \"acme-clickpost-key-0002\"]",
        );
        let config = ServeConfig::parse(&rotating).unwrap();
        let fields: Vec<&str> = config.tenants[0]
            .keys
            .iter()
            .map(|k| k.field.as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "tenants[0].keys.clickpost[0]",
                "tenants[0].keys.clickpost[1]",
                "tenants[0].keys.shiprocket",
                "tenants[0].keys.shipway"
            ]
        );
        let wrong = EXAMPLE.replace("clickpost = \"acme-clickpost-key-0001\"", "clickpost = 5");
        assert!(error_of(&wrong).contains("a key (a string), or a list"));
        for (keys, expected) in [
            (
                "[\"a\", \"b\", \"c\"]",
                "tenants[0].keys.clickpost: give one key, or a list of at most 2",
            ),
            (
                "[]",
                "tenants[0].keys.clickpost: give one key, or a list of at most 2",
            ),
            (
                "[\"a-key-of-16-chars\", \"a-key-of-16-chars\"]",
                "tenants[0].keys.clickpost[1]: the same key as tenants[0].keys.clickpost[0]",
            ),
        ] {
            let err = error_of(&EXAMPLE.replace(
                "clickpost = \"acme-clickpost-key-0001\"",
                &format!("clickpost = {keys}"),
            ));
            assert!(err.starts_with(expected), "{keys}: {err}");
        }
    }

    #[test]
    fn push_configs_are_held_to_the_admin_apis_rules() {
        let public = EXAMPLE.replace("allow_private_targets = true\n", "");
        let err = error_of(&public);
        assert_eq!(
            err,
            "tenants[0].push.url: an http:// URL is not allowed: notifications carry the client's \
             credentials; use https:// (local receivers: set allow_private_targets = true)"
        );
        let loopback = public.replace("http://127.0.0.1:9000/hook", "https://127.0.0.1:9000/hook");
        assert!(error_of(&loopback).starts_with(
            "tenants[0].push.url: 127.0.0.1 is a loopback address; private targets are not allowed"
        ));
        let public_ok = public.replace("http://127.0.0.1:9000/hook", "https://client.example/hook");
        assert!(ServeConfig::parse(&public_ok).is_ok());
        for (text, expected) in [
            (
                EXAMPLE.replace("statuses = []", "statuses = []\ntimeout = \"60s\""),
                "tenants[0].push.timeout: 60000 ms is out of range; use 1000 to 30000 ms",
            ),
            (
                EXAMPLE.replace("timeout = \"10s\"", "timeout = \"45s\""),
                "dispatch.timeout: 45000 ms is out of range; use 1000 to 30000 ms",
            ),
            (
                EXAMPLE.replace(
                    "\"X-Client-Id\" = \"acme\"",
                    "\"x-client-id\" = \"a\", \"X-Client-Id\" = \"b\"",
                ),
                "tenants[0].push.headers.x-client-id: X-Client-Id is given too",
            ),
        ] {
            let err = error_of(&text);
            assert!(
                err.starts_with(expected),
                "expected {expected:?}, got {err:?}"
            );
        }
        let disabled = EXAMPLE.replace("id = \"acme\"", "id = \"acme\"\nenabled = false");
        assert!(!ServeConfig::parse(&disabled).unwrap().tenants[0].enabled);
    }
    #[test]
    fn the_server_section_sets_timeouts_and_the_connection_cap() {
        assert_eq!(
            ServeConfig::parse(EXAMPLE).unwrap().server,
            ServerSettings::default()
        );
        let text = format!(
            r#"{EXAMPLE}
[server]
header_timeout = "2s"
idle_timeout = "3s"
body_timeout = "500ms"
max_connections = 64
"#
        );
        let server = ServeConfig::parse(&text).unwrap().server;
        assert_eq!(server.header_timeout, Duration::from_secs(2));
        assert_eq!(server.idle_timeout, Duration::from_secs(3));
        assert_eq!(server.body_timeout, Duration::from_millis(500));
        assert_eq!(server.max_connections, 64);
        for (bad, expected) in [
            (
                "header_timeout = \"soon\"",
                "server.header_timeout: \"soon\" is not a duration",
            ),
            (
                "idle_timeout = \"0s\"",
                "server.idle_timeout: must be more than 0",
            ),
            (
                "body_timeout = 30",
                "invalid type: integer `30`, expected a string",
            ),
            (
                "max_connections = 0",
                "server.max_connections: must be at least 1",
            ),
            ("keepalive = \"1m\"", "unknown field `keepalive`"),
        ] {
            let err = ServeConfig::parse(&format!("{EXAMPLE}\n[server]\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{bad}: {err}");
        }
    }
}

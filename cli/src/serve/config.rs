//! `rms serve`'s configuration file (TOML). Every problem is reported with the field it is in.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use shared::auth::Credential;
use shared::ingest::IngestSettings;
use shared::push::{PushConfig, SecretValue, SigningSecret};
use shared::{Carrier, Status, TenantId};

use super::server::ServerSettings;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    database: Option<PathBuf>,
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
    tenants: Vec<TenantSection>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct IngestSection {
    /// How far after its arrival an event's time may be (default "1d").
    max_future: Option<String>,
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
    keys: BTreeMap<String, String>,
    push: Option<PushSection>,
    include_source: Option<bool>,
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
}

fn enabled() -> bool {
    true
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub database: PathBuf,
    /// Loopback and private client URLs (and plain http) are allowed: local receivers.
    pub allow_private_targets: bool,
    /// When set, the admin API needs `Authorization: Bearer <token>`. Required when `listen` is
    /// not a loopback address.
    pub admin_token: Option<SecretValue>,
    /// `[ingest]`: the carriers' zones and how far ahead of its arrival an event may be, as the
    /// notify functions' `<CARRIER>_ZONE` and `MAX_FUTURE_HOURS`.
    pub ingest: IngestSettings,
    pub timeout: Duration,
    pub retry_schedule: Vec<Duration>,
    pub max_attempts: u32,
    pub concurrency: usize,
    /// `[server]`: header, idle and body timeouts, and the connection cap.
    pub server: ServerSettings,
    pub tenants: Vec<Tenant>,
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub keys: Vec<(Carrier, Credential)>,
    pub push: Option<PushConfig>,
    pub include_source: bool,
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
            allow_private_targets: false,
            admin_token: None,
            ingest: IngestSettings::default(),
            timeout: PushConfig::DEFAULT_TIMEOUT,
            retry_schedule: defaults.retry_schedule,
            max_attempts: 10,
            concurrency: 10,
            server: ServerSettings::default(),
            tenants: Vec::new(),
        }
    }
}

impl ServeConfig {
    pub fn load(path: &std::path::Path) -> Result<ServeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        ServeConfig::parse(&text).map_err(|e| match e {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<ServeConfig, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::new(),
            message: e.to_string().replace('\n', " "),
        })?;
        let mut config = ServeConfig::default();
        if let Some(listen) = file.listen {
            config.listen = listen.parse().map_err(|_| {
                invalid(
                    "listen",
                    format!("{listen:?} is not an address such as 127.0.0.1:8080"),
                )
            })?;
        }
        if let Some(database) = file.database {
            config.database = database;
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
        if let Some(timeout) = &file.dispatch.timeout {
            config.timeout = duration("dispatch.timeout", timeout)?;
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
        config.server = file.server.settings()?;
        for (i, t) in file.tenants.into_iter().enumerate() {
            let field = format!("tenants[{i}]");
            config.tenants.push(tenant(&field, t, config.timeout)?);
        }
        Ok(config)
    }
}

fn tenant(field: &str, t: TenantSection, default_timeout: Duration) -> Result<Tenant, ConfigError> {
    let id = TenantId::parse(&t.id).map_err(|e| invalid(format!("{field}.id"), e.to_string()))?;
    let mut keys = Vec::new();
    for (carrier, key) in t.keys {
        let parsed = carrier
            .parse::<Carrier>()
            .map_err(|e| invalid(format!("{field}.keys.{carrier}"), e.to_string()))?;
        if key.trim().is_empty() {
            return Err(invalid(format!("{field}.keys.{carrier}"), "is empty"));
        }
        keys.push((parsed, Credential::new(key.trim())));
    }
    let push = match t.push {
        None => None,
        Some(p) => Some(push(&format!("{field}.push"), p, default_timeout)?),
    };
    Ok(Tenant {
        id,
        keys,
        push,
        include_source: t.include_source.unwrap_or(true),
    })
}

fn push(field: &str, p: PushSection, default_timeout: Duration) -> Result<PushConfig, ConfigError> {
    let url = reqwest_url(&p.url).map_err(|e| invalid(format!("{field}.url"), e))?;
    // The same rules as the admin API: token names, none RMS sets itself, one-line values.
    let headers = shared::admin::validate_headers(&p.headers).map_err(|e| match e {
        shared::admin::AdminError::Invalid {
            field: name,
            message,
        } => invalid(format!("{field}.{name}"), message),
        other => invalid(format!("{field}.headers"), other.to_string()),
    })?;
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
        Some(t) => duration(&format!("{field}.timeout"), t)?,
    };
    Ok(PushConfig {
        url,
        headers,
        statuses,
        signing_secret,
        timeout,
        enabled: p.enabled,
    })
}

/// The URL, checked to be an absolute http(s) URL.
fn reqwest_url(text: &str) -> Result<String, String> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| format!("{text:?} is not an absolute URL"))?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{text:?} is not an http(s) URL with a host"));
    }
    Ok(text.to_owned())
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
clickpost = "ck"
shiprocket = "sk"
shipway = "wk"
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
    }

    #[test]
    fn mistakes_name_their_field() {
        let cases = [
            (EXAMPLE.replace("\"2m\"", "\"2 fortnights\""), "dispatch.retry_schedule[1]"),
            (EXAMPLE.replace("statuses = []", "statuses = [\"DELIVERD\"]"), "tenants[0].push.statuses: unknown status \"DELIVERD\"; valid values are: ORDER_PLACED"),
            (EXAMPLE.replace("shipway = \"wk\"", "ups = \"k\""), "tenants[0].keys.ups: unknown carrier"),
            (EXAMPLE.replace("\"X-Client-Id\"", "\"X Client\""), "tenants[0].push.headers.X Client: \"X Client\" is not a valid header name"),
            (EXAMPLE.replace("\"X-Client-Id\"", "\"Host\""), "tenants[0].push.headers.Host: Host is set by RMS itself"),
            (EXAMPLE.replace("http://127.0.0.1:9000/hook", "127.0.0.1:9000/hook"), "tenants[0].push.url"),
            (EXAMPLE.replace("id = \"acme\"", "id = \"ac me\""), "tenants[0].id: invalid tenant id"),
            (EXAMPLE.replace("max_attempts = 10", "max_attempts = 10\nmax_retries = 3"), "unknown field `max_retries`"),
            (format!("admin_token = \"short\"\n{EXAMPLE}"), "admin_token: use at least 16 characters"),
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

//! The notify functions' settings, from their environment (set by the SAM template).

use shared::ingest::{IngestSettings, SettingError};

/// A setting that is missing or malformed; the message names the variable and what it expects.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set; the SAM template sets it for every function")]
    Missing(&'static str),
    #[error(transparent)]
    Invalid(#[from] SettingError),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub config_table: String,
    pub events_table: String,
    pub events_queue_url: String,
    /// `MAX_FUTURE_HOURS` (24) and `<CARRIER>_ZONE` (the carrier's own, +05:30 for all three):
    /// `IngestSettings::from_lookup`.
    pub ingest: IngestSettings,
    /// `CONFIG_CACHE_SECONDS` (60): how long a container trusts a key it found, and whether a
    /// tenant has a pull account at a carrier (`shared::ingest::CachedConfig`,
    /// `DynamoEventStore::with_pull_accounts`). 0 reads the config table for every request.
    pub config_cache: std::time::Duration,
}

fn config_cache_seconds(lookup: impl Fn(&str) -> Option<String>) -> Result<u64, SettingError> {
    const NAME: &str = "CONFIG_CACHE_SECONDS";
    match lookup(NAME) {
        None => Ok(60),
        Some(value) => value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= 3600)
            .ok_or_else(|| SettingError {
                name: NAME.to_owned(),
                expected: "a whole number of seconds from 0 to 3600".to_owned(),
                value,
            }),
    }
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        Ok(Config {
            config_table: required("CONFIG_TABLE")?,
            events_table: required("EVENTS_TABLE")?,
            events_queue_url: required("EVENTS_QUEUE_URL")?,
            ingest: IngestSettings::from_lookup(&lookup)?,
            config_cache: std::time::Duration::from_secs(config_cache_seconds(&lookup)?),
        })
    }

    pub fn ingest_settings(&self) -> IngestSettings {
        self.ingest.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::Carrier;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| env.get(name).cloned())
    }

    const BASE: [(&str, &str); 3] = [
        ("CONFIG_TABLE", "config"),
        ("EVENTS_TABLE", "events"),
        ("EVENTS_QUEUE_URL", "http://127.0.0.1:1/q"),
    ];

    #[test]
    fn a_missing_variable_is_named() {
        let err = from(&BASE[..2]).unwrap_err().to_string();
        assert!(
            err.starts_with("environment variable EVENTS_QUEUE_URL is not set"),
            "{err}"
        );
    }

    #[test]
    fn shipway_times_default_to_ist() {
        let config = from(&BASE).unwrap();
        assert_eq!(
            config.ingest.zones.for_carrier(Carrier::Shipway),
            shared::time::ist()
        );
    }

    #[test]
    fn a_malformed_zone_or_limit_says_what_is_expected() {
        let mut env = BASE.to_vec();
        env.push(("SHIPWAY_ZONE", "IST+1"));
        let err = from(&env).unwrap_err().to_string();
        assert!(
            err.contains("SHIPWAY_ZONE is \"IST+1\"") && err.contains("+05:30"),
            "{err}"
        );
        let mut env = BASE.to_vec();
        env.push(("MAX_FUTURE_HOURS", "a day"));
        let err = from(&env).unwrap_err().to_string();
        assert!(err.contains("MAX_FUTURE_HOURS is \"a day\""), "{err}");
    }
}

//! The notify functions' settings, from their environment (set by the SAM template).

use std::time::Duration;

use shared::ingest::{CarrierZones, IngestSettings};

/// A setting that is missing or malformed; the message names the variable and what it expects.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set; the SAM template sets it for every function")]
    Missing(&'static str),
    #[error("environment variable {name} is {value:?}: {expected}")]
    Invalid {
        name: String,
        value: String,
        expected: String,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub config_table: String,
    pub events_table: String,
    pub events_queue_url: String,
    /// `CLAIM_SECONDS`: how long an unqueued claim protects an event (default 15: the function timeout, 10 s, and a margin).
    pub claim_for: Duration,
    /// `<CARRIER>_ZONE` (`CLICKPOST_ZONE`…): the zone of a carrier's times (default: the
    /// carrier's, +05:30 for all three).
    pub zones: CarrierZones,
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
        let zones = CarrierZones::from_lookup(&lookup).map_err(|e| ConfigError::Invalid {
            name: e.name,
            value: e.value,
            expected: e.expected,
        })?;
        let claim_seconds = match lookup("CLAIM_SECONDS") {
            None => 15,
            Some(value) => value
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| ConfigError::Invalid {
                    name: "CLAIM_SECONDS".to_owned(),
                    value,
                    expected: "a whole number of seconds above 0".to_owned(),
                })?,
        };
        Ok(Config {
            config_table: required("CONFIG_TABLE")?,
            events_table: required("EVENTS_TABLE")?,
            events_queue_url: required("EVENTS_QUEUE_URL")?,
            claim_for: Duration::from_secs(claim_seconds),
            zones,
        })
    }

    pub fn ingest_settings(&self) -> IngestSettings {
        IngestSettings {
            claim_for: self.claim_for,
            zones: self.zones.clone(),
            ..IngestSettings::default()
        }
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
    fn defaults_are_ist_and_sixty_seconds() {
        let config = from(&BASE).unwrap();
        assert_eq!(config.claim_for, Duration::from_secs(15));
        assert_eq!(
            config.zones.for_carrier(Carrier::Shipway),
            shared::time::ist()
        );
    }

    #[test]
    fn a_malformed_zone_or_claim_says_what_is_expected() {
        let mut env = BASE.to_vec();
        env.push(("SHIPWAY_ZONE", "IST+1"));
        let err = from(&env).unwrap_err().to_string();
        assert!(
            err.contains("SHIPWAY_ZONE is \"IST+1\"") && err.contains("+05:30"),
            "{err}"
        );
        let mut env = BASE.to_vec();
        env.push(("CLAIM_SECONDS", "0"));
        assert!(from(&env).unwrap_err().to_string().contains("above 0"));
    }
}

//! The dispatcher's settings, from its environment (set by the SAM template).

use std::time::Duration;

use shared::adapters::push::TargetPolicy;
use shared::circuit::BreakerSettings;
use shared::dispatch::DispatchSettings;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set; the SAM template sets it for the dispatcher")]
    Missing(&'static str),
    #[error("environment variable {name} is {value:?}: {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub config_table: String,
    pub events_table: String,
    pub events_queue_url: String,
    pub dead_letter_queue_url: String,
    /// `CONCURRENCY`: records of a batch delivered at once (default 10).
    pub concurrency: usize,
    /// `CONFIG_CACHE_SECONDS`: how long a Push Config is cached (default 60).
    pub config_cache: Duration,
    /// `ALLOW_PRIVATE_TARGETS`, `ALLOW_HTTP_TARGETS` (default false: https and public only).
    pub targets: TargetPolicy,
    /// `CIRCUIT_FAILURES` (default 5: timeouts or connection failures in a row that open a
    /// tenant's circuit) and `CIRCUIT_COOL_DOWN_SECONDS` (default 30: until the next probe).
    pub breaker: BreakerSettings,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let number = |name: &'static str, default: u64| match lookup(name) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse::<u64>()
                .map_err(|_| ConfigError::Invalid {
                    name,
                    value,
                    expected: "a whole number",
                }),
        };
        let flag = |name: &'static str| match lookup(name).as_deref().map(str::trim) {
            None | Some("" | "false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(ConfigError::Invalid {
                name,
                value: other.to_owned(),
                expected: "true or false",
            }),
        };
        let concurrency = number("CONCURRENCY", 10)?;
        if concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: "CONCURRENCY",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        let failures_to_open = number("CIRCUIT_FAILURES", 5)?;
        if failures_to_open == 0 {
            return Err(ConfigError::Invalid {
                name: "CIRCUIT_FAILURES",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        let breaker = BreakerSettings {
            failures_to_open: u32::try_from(failures_to_open).unwrap_or(u32::MAX),
            cool_down: Duration::from_secs(number("CIRCUIT_COOL_DOWN_SECONDS", 30)?),
            ..BreakerSettings::default()
        };
        Ok(Config {
            breaker,
            config_table: required("CONFIG_TABLE")?,
            events_table: required("EVENTS_TABLE")?,
            events_queue_url: required("EVENTS_QUEUE_URL")?,
            dead_letter_queue_url: required("DEAD_LETTER_QUEUE_URL")?,
            concurrency: usize::try_from(concurrency).unwrap_or(usize::MAX),
            config_cache: Duration::from_secs(number("CONFIG_CACHE_SECONDS", 60)?),
            targets: TargetPolicy {
                allow_private: flag("ALLOW_PRIVATE_TARGETS")?,
                allow_http: flag("ALLOW_HTTP_TARGETS")?,
            },
        })
    }

    pub fn dispatch_settings(&self) -> DispatchSettings {
        DispatchSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| env.get(name).cloned())
    }

    const BASE: [(&str, &str); 4] = [
        ("CONFIG_TABLE", "c"),
        ("EVENTS_TABLE", "e"),
        ("EVENTS_QUEUE_URL", "q"),
        ("DEAD_LETTER_QUEUE_URL", "d"),
    ];

    #[test]
    fn defaults_are_safe() {
        let config = from(&BASE).unwrap();
        assert_eq!(
            config.targets,
            TargetPolicy {
                allow_private: false,
                allow_http: false
            }
        );
        assert_eq!(
            (config.concurrency, config.config_cache.as_secs()),
            (10, 60)
        );
        assert_eq!(config.breaker, BreakerSettings::default());
    }

    #[test]
    fn bad_values_are_named() {
        assert!(from(&BASE[..3])
            .unwrap_err()
            .to_string()
            .contains("DEAD_LETTER_QUEUE_URL"));
        let mut env = BASE.to_vec();
        env.push(("ALLOW_PRIVATE_TARGETS", "yes"));
        assert!(from(&env)
            .unwrap_err()
            .to_string()
            .contains("true or false"));
        let mut env = BASE.to_vec();
        env.push(("CONCURRENCY", "0"));
        assert!(from(&env).unwrap_err().to_string().contains("at least 1"));
        let mut env = BASE.to_vec();
        env.push(("CIRCUIT_FAILURES", "0"));
        assert!(from(&env)
            .unwrap_err()
            .to_string()
            .contains("CIRCUIT_FAILURES"));
    }
}

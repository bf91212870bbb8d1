//! The dispatcher's settings, from its environment (set by the SAM template).

use std::time::Duration;

use shared::adapters::push::TargetPolicy;
use shared::circuit::BreakerSettings;
use shared::dispatch::DispatchSettings;

/// What is wrong with the environment.
pub use shared::env::EnvError as ConfigError;

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
    /// `MAX_ATTEMPTS` (default 10): the attempt after which a failed delivery is dead-lettered;
    /// the template sets it and the queue's `maxReceiveCount` from one parameter.
    pub max_attempts: u32,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = shared::env::Env::new(lookup);
        let concurrency = env.positive("CONCURRENCY", 10)?;
        let failures_to_open = env.positive("CIRCUIT_FAILURES", 5)?;
        let breaker = BreakerSettings {
            failures_to_open: u32::try_from(failures_to_open).unwrap_or(u32::MAX),
            cool_down: Duration::from_secs(env.number("CIRCUIT_COOL_DOWN_SECONDS", 30)?),
            ..BreakerSettings::default()
        };
        let defaults = DispatchSettings::default();
        let max_attempts = env.positive("MAX_ATTEMPTS", u64::from(defaults.max_attempts))?;
        Ok(Config {
            breaker,
            max_attempts: u32::try_from(max_attempts).unwrap_or(u32::MAX),
            config_table: env.required("CONFIG_TABLE")?,
            events_table: env.required("EVENTS_TABLE")?,
            events_queue_url: env.required("EVENTS_QUEUE_URL")?,
            dead_letter_queue_url: env.required("DEAD_LETTER_QUEUE_URL")?,
            concurrency: usize::try_from(concurrency).unwrap_or(usize::MAX),
            config_cache: Duration::from_secs(env.number("CONFIG_CACHE_SECONDS", 60)?),
            targets: TargetPolicy {
                allow_private: env.flag("ALLOW_PRIVATE_TARGETS")?,
                allow_http: env.flag("ALLOW_HTTP_TARGETS")?,
            },
        })
    }

    pub fn dispatch_settings(&self) -> DispatchSettings {
        DispatchSettings {
            max_attempts: self.max_attempts,
            ..DispatchSettings::default()
        }
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
        // The template's maxReceiveCount, and the schedule's nine waits plus the first attempt.
        assert_eq!(config.dispatch_settings().max_attempts, 10);
    }

    #[test]
    fn max_attempts_comes_from_the_environment() {
        let mut env = BASE.to_vec();
        env.push(("MAX_ATTEMPTS", "4"));
        assert_eq!(from(&env).unwrap().dispatch_settings().max_attempts, 4);
        let mut env = BASE.to_vec();
        env.push(("MAX_ATTEMPTS", "0"));
        assert!(from(&env).unwrap_err().to_string().contains("MAX_ATTEMPTS"));
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

//! The reconciler's settings, from its environment (set by the SAM template).

use std::time::Duration;

use shared::env::{Env, EnvError};
use shared::ingest::{IngestSettings, SettingError};
use shared::push::TargetPolicy;
use shared::reconcile::{QuietRules, ReconcileSettings};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error(transparent)]
    Ingest(#[from] SettingError),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub config_table: String,
    pub events_table: String,
    pub events_queue_url: String,
    /// `RECONCILE_CALLS_PER_ACCOUNT` (default 100), `QUIET_BEFORE_PICKUP_HOURS` (24) and
    /// `QUIET_MOVING_HOURS` (6); `MAX_FUTURE_HOURS` and `<CARRIER>_ZONE` as
    /// the notify functions read them (the pulled scans are accepted as ingest accepts them).
    pub settings: ReconcileSettings,
    /// `ALLOW_PRIVATE_TARGETS`, `ALLOW_HTTP_TARGETS` (default false: https and public only), for
    /// the pull accounts' base URLs.
    pub targets: TargetPolicy,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env::new(&lookup);
        let hours = |name: &'static str, default: u64| {
            env.number(name, default)
                .map(|h| Duration::from_secs(h.saturating_mul(3600)))
        };
        let calls_per_account = env.positive("RECONCILE_CALLS_PER_ACCOUNT", 100)?;
        let ingest = IngestSettings::from_lookup(&lookup)?;
        let settings = ReconcileSettings {
            rules: QuietRules {
                before_pickup: hours("QUIET_BEFORE_PICKUP_HOURS", 24)?,
                moving: hours("QUIET_MOVING_HOURS", 6)?,
            },
            calls_per_account: usize::try_from(calls_per_account).unwrap_or(usize::MAX),
            zones: ingest.zones,
            max_future: ingest.max_future,
        };
        Ok(Config {
            config_table: env.required("CONFIG_TABLE")?,
            events_table: env.required("EVENTS_TABLE")?,
            events_queue_url: env.required("EVENTS_QUEUE_URL")?,
            settings,
            targets: TargetPolicy {
                allow_private: env.flag("ALLOW_PRIVATE_TARGETS")?,
                allow_http: env.flag("ALLOW_HTTP_TARGETS")?,
            },
        })
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

    const BASE: [(&str, &str); 3] = [
        ("CONFIG_TABLE", "c"),
        ("EVENTS_TABLE", "e"),
        ("EVENTS_QUEUE_URL", "q"),
    ];

    #[test]
    fn defaults_are_the_reconcilers_and_targets_are_public_https_only() {
        let config = from(&BASE).unwrap();
        assert_eq!(config.settings.rules, QuietRules::default());
        assert_eq!(config.settings.calls_per_account, 100);
        assert_eq!(config.targets, TargetPolicy::default());
    }

    #[test]
    fn quiet_hours_may_be_zero_and_bad_values_are_named() {
        let mut env = BASE.to_vec();
        env.extend([
            ("QUIET_BEFORE_PICKUP_HOURS", "0"),
            ("QUIET_MOVING_HOURS", "0"),
        ]);
        let config = from(&env).unwrap();
        assert_eq!(config.settings.rules, QuietRules::uniform(Duration::ZERO));

        assert!(from(&BASE[..2])
            .unwrap_err()
            .to_string()
            .contains("EVENTS_QUEUE_URL"));
        let mut env = BASE.to_vec();
        env.push(("RECONCILE_CALLS_PER_ACCOUNT", "0"));
        assert!(from(&env).unwrap_err().to_string().contains("at least 1"));
        let mut env = BASE.to_vec();
        env.push(("QUIET_MOVING_HOURS", "six"));
        assert!(from(&env)
            .unwrap_err()
            .to_string()
            .contains("QUIET_MOVING_HOURS"));
        let mut env = BASE.to_vec();
        env.push(("CLICKPOST_ZONE", "Mars/Olympus"));
        assert!(from(&env)
            .unwrap_err()
            .to_string()
            .contains("CLICKPOST_ZONE"));
    }
}

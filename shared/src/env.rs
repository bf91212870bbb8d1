//! A function's settings from its environment (set by the SAM template): one reader, one set of
//! rules and messages for every Lambda.

/// What is wrong with one variable.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("environment variable {0} is not set; the SAM template sets it for this function")]
    Missing(&'static str),
    #[error("environment variable {name} is {value:?}: {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Reads variables through `lookup` (`std::env::var` in a Lambda, a map in tests).
pub struct Env<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(lookup: F) -> Self {
        Env { lookup }
    }

    /// A variable that must be set and not blank.
    pub fn required(&self, name: &'static str) -> Result<String, EnvError> {
        (self.lookup)(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or(EnvError::Missing(name))
    }

    /// A whole number, `default` when unset.
    pub fn number(&self, name: &'static str, default: u64) -> Result<u64, EnvError> {
        match (self.lookup)(name) {
            None => Ok(default),
            Some(value) => value.trim().parse().map_err(|_| EnvError::Invalid {
                name,
                value,
                expected: "a whole number",
            }),
        }
    }

    /// A whole number of at least 1, `default` when unset.
    pub fn positive(&self, name: &'static str, default: u64) -> Result<u64, EnvError> {
        match self.number(name, default)? {
            0 => Err(EnvError::Invalid {
                name,
                value: "0".into(),
                expected: "at least 1",
            }),
            n => Ok(n),
        }
    }

    /// `true`/`1` or `false`/`0`/blank; false when unset.
    pub fn flag(&self, name: &'static str) -> Result<bool, EnvError> {
        match (self.lookup)(name).as_deref().map(str::trim) {
            None | Some("" | "false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(EnvError::Invalid {
                name,
                value: other.to_owned(),
                expected: "true or false",
            }),
        }
    }
}

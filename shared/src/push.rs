//! A tenant's Push Config (where and how its notifications are delivered) and the Standard
//! Webhooks signature. Credential header values and the signing secret are write-only: `Debug`
//! never shows them, and nothing here serialises them for a reader.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::model::Status;

/// A header value the client gave us to send: shown to no one.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A Standard Webhooks signing secret: `whsec_` followed by the base64 of the key bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    key: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid signing secret: expected `whsec_` followed by base64 of at least 24 bytes")]
pub struct InvalidSigningSecret;

impl SigningSecret {
    pub fn parse(text: &str) -> Result<Self, InvalidSigningSecret> {
        let encoded = text.strip_prefix("whsec_").unwrap_or(text);
        let key = STANDARD.decode(encoded).map_err(|_| InvalidSigningSecret)?;
        if key.len() < 24 {
            return Err(InvalidSigningSecret);
        }
        Ok(SigningSecret { key })
    }

    /// The secret in its `whsec_` form, for the one moment it is shown to its owner.
    pub fn expose(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.key))
    }

    /// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes keys of any length, so `new_from_slice` cannot fail here.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

/// Where and how a tenant's notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushConfig {
    pub url: String,
    /// The client's credentials, sent as these headers on every push.
    pub headers: Vec<(String, SecretValue)>,
    /// The statuses the client wants; empty means all.
    pub statuses: Vec<Status>,
    pub signing_secret: Option<SigningSecret>,
    pub timeout: Duration,
    /// A disabled tenant's events wait in the queue (with backoff) instead of being dropped.
    pub enabled: bool,
}

impl PushConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The longest push timeout a tenant may have: the dispatcher's lease (`rms serve`) and
    /// Lambda timeout are sized from it.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);

    pub fn wants(&self, status: Status) -> bool {
        self.statuses.is_empty() || self.statuses.contains(&status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's test suite.
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let text = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert_eq!(SigningSecret::parse(text).unwrap().expose(), text);
        assert_eq!(
            SigningSecret::parse("whsec_short"),
            Err(InvalidSigningSecret)
        );
        assert_eq!(SigningSecret::parse("whsec_%%%"), Err(InvalidSigningSecret));
    }

    #[test]
    fn debug_never_shows_header_values_or_the_secret() {
        let config = PushConfig {
            url: "https://client.example/hook".into(),
            headers: vec![("Authorization".into(), SecretValue::new("Bearer hunter2"))],
            statuses: vec![],
            signing_secret: SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").ok(),
            timeout: PushConfig::DEFAULT_TIMEOUT,
            enabled: true,
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("MfKQ9r8"),
            "{shown}"
        );
        assert!(shown.contains("Authorization"));
    }

    #[test]
    fn an_empty_status_list_wants_everything() {
        let mut config = PushConfig {
            url: String::new(),
            headers: vec![],
            statuses: vec![],
            signing_secret: None,
            timeout: PushConfig::DEFAULT_TIMEOUT,
            enabled: true,
        };
        assert!(config.wants(Status::InTransit));
        config.statuses = vec![Status::Delivered];
        assert!(config.wants(Status::Delivered) && !config.wants(Status::InTransit));
    }
}

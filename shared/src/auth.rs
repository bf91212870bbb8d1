//! Carrier credentials: reading the key a request presents from where its carrier puts it (the
//! carrier's `key_sources`), and the SHA-256 digest by which a key is stored and looked up. No plaintext key is kept at rest or
//! logged; `Debug` on these types shows only a short digest prefix.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::carriers::{wire_field, KeySource};
use crate::model::Carrier;

/// A credential as a carrier sent it. Never logged: `Debug` shows only its digest's prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl Credential {
    pub fn new(value: impl Into<String>) -> Self {
        Credential(value.into())
    }

    pub fn digest(&self) -> CredentialDigest {
        CredentialDigest(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The secret itself, for the one place that must hold it (configuration at creation time).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential(digest {}…)", self.digest().hint())
    }
}

/// The rule every tenant's carrier key follows, wherever it is given (rms.toml, `rms key add`,
/// the admin API): 16 to 256 characters, none of them a space or a control character (a carrier
/// sends it in a header, a form field or a URL).
pub fn carrier_key(text: &str) -> Result<Credential, KeyRuleError> {
    let length = text.chars().count();
    if !(CARRIER_KEY_LENGTH.0..=CARRIER_KEY_LENGTH.1).contains(&length) {
        return Err(KeyRuleError::Length(length));
    }
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(KeyRuleError::Characters);
    }
    Ok(Credential::new(text))
}

/// The shortest and longest carrier key, in characters.
pub const CARRIER_KEY_LENGTH: (usize, usize) = (16, 256);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRuleError {
    #[error("a carrier key has 16 to 256 characters; this one has {0}")]
    Length(usize),
    #[error("spaces and control characters cannot be sent in a carrier's header or URL")]
    Characters,
}

/// SHA-256 of a credential: the form in which credentials are stored and looked up.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CredentialDigest([u8; 32]);

impl CredentialDigest {
    /// The full digest in lowercase hex, for storage keys only (never for logs).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(CredentialDigest(bytes))
    }

    /// The first 8 hex digits: enough for ops to tell keys apart in a log, useless to an attacker.
    pub fn hint(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Debug for CredentialDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialDigest({}…)", self.hint())
    }
}

/// The parts of an inbound request a credential can come from.
pub struct CredentialSources<'a> {
    /// Header names in lowercase.
    pub headers: &'a HashMap<String, String>,
    pub query: &'a HashMap<String, String>,
    pub body: &'a [u8],
}

/// The credentials a carrier's request presents, in the order of its carrier's `key_sources`.
/// `Authorization` gives its value as sent and, after `Bearer `, the token alone. Empty and blank
/// values are skipped, so a request without a usable one gives an empty list (401 "missing").
pub fn presented_credentials(carrier: Carrier, from: &CredentialSources<'_>) -> Vec<Credential> {
    let mut presented: Vec<Credential> = Vec::new();
    let mut offer = |value: &str| {
        let value = value.trim();
        if !value.is_empty() && !presented.iter().any(|c| c.0 == value) {
            presented.push(Credential::new(value));
        }
    };
    for source in carrier.spec().key_sources {
        match source {
            KeySource::Header(name) => {
                if let Some(value) = from.headers.get(*name) {
                    offer(value);
                }
            }
            KeySource::Authorization => {
                if let Some(value) = from.headers.get("authorization") {
                    offer(value);
                    // `get` rather than indexing: the value may hold any UTF-8 (found by fuzzing).
                    let trimmed = value.trim();
                    if let Some(token) = trimmed
                        .get(..7)
                        .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                        .and_then(|_| trimmed.get(7..))
                    {
                        offer(token);
                    }
                }
            }
            KeySource::Query(name) => {
                if let Some(value) = from.query.get(*name) {
                    offer(value);
                }
            }
            KeySource::BodyField(name) => {
                if let Some(value) = wire_field(from.body, name) {
                    offer(&value);
                }
            }
        }
    }
    presented
}

/// A random token of `bytes` random bytes, in hex: generated keys, claim tokens, console
/// sessions.
pub fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    fill_random(&mut buffer);
    hex::encode(buffer)
}

pub(crate) fn fill_random(buffer: &mut [u8]) {
    // The OS generator does not fail on the platforms we run on; if it ever did, a key made of
    // zeros must not be handed out.
    if let Err(e) = getrandom::fill(buffer) {
        panic!("the operating system's random generator failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources<'a>(
        headers: &'a HashMap<String, String>,
        query: &'a HashMap<String, String>,
        body: &'a [u8],
    ) -> CredentialSources<'a> {
        CredentialSources {
            headers,
            query,
            body,
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn debug_output_never_shows_the_secret_or_the_full_digest() {
        let key = Credential::new("s3cret-webhook-key");
        let shown = format!("{key:?} {:?}", key.digest());
        assert!(!shown.contains("s3cret"));
        assert!(!shown.contains(&key.digest().to_hex()));
        assert!(shown.contains(&key.digest().hint()));
    }

    #[test]
    fn digests_round_trip_through_hex() {
        let digest = Credential::new("k").digest();
        assert_eq!(CredentialDigest::from_hex(&digest.to_hex()), Some(digest));
        assert_eq!(CredentialDigest::from_hex("zz"), None);
    }

    #[test]
    fn each_carrier_presents_its_documented_credentials_in_order() {
        let none = map(&[]);
        let h = map(&[
            ("webhook_key", "wk"),
            ("authorization", "tok"),
            ("x-api-key", "xk"),
        ]);
        let got = presented_credentials(Carrier::Clickpost, &sources(&h, &none, b""));
        assert_eq!(got, vec![Credential::new("wk"), Credential::new("tok")]);

        let h = map(&[("anx-api-key", "anx")]);
        let got = presented_credentials(Carrier::Shiprocket, &sources(&h, &none, b""));
        assert_eq!(got, vec![Credential::new("anx")]);

        let q = map(&[("key", "qk")]);
        let got = presented_credentials(
            Carrier::Shipway,
            &sources(&none, &q, br#"{"hash":"hh","status_feed":[]}"#),
        );
        assert_eq!(got, vec![Credential::new("qk"), Credential::new("hh")]);
    }

    #[test]
    fn shiprocket_tokens_are_read_from_every_header_seen_in_the_field() {
        // docs/carriers.md §6: `x-api-key` (docs), `x-shiprocket-token` (most receivers),
        // `anx-api-key`, and the raw token or `Bearer <token>` in `Authorization`.
        let none = map(&[]);
        for (header, value) in [
            ("x-api-key", "t0k"),
            ("anx-api-key", "t0k"),
            ("x-shiprocket-token", "t0k"),
            ("authorization", "t0k"),
            ("authorization", "Bearer t0k"),
            ("authorization", "bearer  t0k"),
        ] {
            let h = map(&[(header, value)]);
            let got = presented_credentials(Carrier::Shiprocket, &sources(&h, &none, b""));
            assert!(got.contains(&Credential::new("t0k")), "{header}: {value}");
        }
    }

    #[test]
    fn an_authorization_value_with_multibyte_characters_is_read_without_a_panic() {
        // Found by the ingest_handler fuzz target: byte 7 fell inside a character.
        let none = map(&[]);
        for value in [
            "Bearer\u{fffd}x",
            "abcdef\u{fffd}",
            "Bearer é-token",
            "\u{fffd}",
        ] {
            let h = map(&[("authorization", value)]);
            let got = presented_credentials(Carrier::Shiprocket, &sources(&h, &none, b""));
            assert_eq!(got.first(), Some(&Credential::new(value)), "{value}");
        }
        let h = map(&[("authorization", "Bearer é-token")]);
        let got = presented_credentials(Carrier::Clickpost, &sources(&h, &none, b""));
        assert!(got.contains(&Credential::new("é-token")));
    }

    #[test]
    fn blank_and_repeated_values_are_not_credentials() {
        let none = map(&[]);
        let h = map(&[("webhook_key", "  "), ("authorization", "")]);
        assert!(presented_credentials(Carrier::Clickpost, &sources(&h, &none, b"")).is_empty());
        let h = map(&[("x-api-key", "same")]);
        let q = map(&[("key", "same")]);
        assert_eq!(
            presented_credentials(Carrier::Shipway, &sources(&h, &q, b"")).len(),
            1
        );
    }
}

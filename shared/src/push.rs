//! A tenant's Push Config (where and how its notifications are delivered) and the Standard
//! Webhooks signature. Credential header values and the signing secret are write-only: `Debug`
//! never shows them, and nothing here serialises them for a reader.
//!
//! Each part of a Push Config is checked once, by its type, wherever it comes from (`rms.toml`,
//! the admin API, `rms push set`): [`PushUrl`], [`PushHeaders`], [`PushTimeout`]. What a store
//! gives back was checked when it was written and is read leniently (`stored`, `clamped`), so a
//! rule made stricter later never makes a tenant unreadable; the delivery-time guard
//! (`adapters::push`) applies [`check_target`] again, and checks what a host name resolves to.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
    pub url: PushUrl,
    /// The client's credentials, sent as these headers on every push.
    pub headers: PushHeaders,
    /// The statuses the client wants; empty means all.
    pub statuses: Vec<Status>,
    pub signing_secret: Option<SigningSecret>,
    pub timeout: PushTimeout,
    /// A disabled tenant's events wait in the queue (with backoff) instead of being dropped.
    pub enabled: bool,
    /// Every event, or only a shipment's latest state.
    pub delivery: Delivery,
}

impl PushConfig {
    pub fn wants(&self, status: Status) -> bool {
        self.statuses.is_empty() || self.statuses.contains(&status)
    }
}

/// Which of a shipment's events a tenant is pushed.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Every event (of the selected statuses), as it comes: the default.
    #[default]
    Every,
    /// A shipment's latest state: an event is not pushed when its shipment already has a newer
    /// accepted event (of a selected status) for the tenant; it is logged as superseded. After
    /// an outage the client gets one event per shipment, not its backlog; the milestones in
    /// between are in the delivery log only.
    Latest,
}

impl Delivery {
    pub const ALL: [Delivery; 2] = [Delivery::Every, Delivery::Latest];

    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Every => "every",
            Delivery::Latest => "latest",
        }
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Delivery {
    type Err = crate::model::UnknownName;

    /// `every` or `latest`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Delivery::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| crate::model::UnknownName {
                kind: "delivery",
                given: s.to_owned(),
                valid: Delivery::ALL.iter().map(|d| d.as_str()).collect(),
            })
    }
}

/// What a push target may be. The same policy is given to the write-time check
/// ([`PushUrl::parse`]) and to the delivery-time guard (`adapters::push::HttpPusher`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow private, loopback and link-local addresses and private names (local mode and tests).
    pub allow_private: bool,
    /// Allow `http://` as well as `https://`.
    pub allow_http: bool,
}

impl TargetPolicy {
    /// Local receivers on this machine: `rms serve` with `allow_private_targets`, `rms --local`.
    pub const LOCAL: TargetPolicy = TargetPolicy {
        allow_private: true,
        allow_http: true,
    };
}

/// Why a Push Config URL is refused; the caller names the field (`url`, `tenants[0].push.url`).
/// The message never holds the URL's query (it may carry a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPushUrl(String);

/// A Push Config URL: absolute `https://` (or `http://` where the policy allows it), a host that
/// is not a private address or a private name (unless the policy allows them), no credentials in
/// it, at most [`PushUrl::MAX_BYTES`]. Kept as the URL parser (WHATWG, the `url` crate, which
/// `reqwest` uses too) normalises it, so the text that was checked is the text that is dialled:
/// `http://2130706433/` is kept, and judged, as `http://127.0.0.1/`.
///
/// `Display` and `Debug` show the query and fragment as `?…` and `#…` (a client may put a token
/// there): log the URL with `%url`, never with [`PushUrl::as_str`].
#[derive(Clone, PartialEq, Eq)]
pub struct PushUrl(String);

impl PushUrl {
    /// The longest URL taken, in bytes.
    pub const MAX_BYTES: usize = 2048;

    /// Checks a URL given by a person (`rms.toml`, the admin API, `rms push set`). A host name is
    /// not resolved here: what it resolves to is checked at every delivery.
    pub fn parse(text: &str, policy: TargetPolicy) -> Result<PushUrl, InvalidPushUrl> {
        let invalid = |m: &str| Err(InvalidPushUrl(m.to_owned()));
        let text = text.trim();
        if text.len() > PushUrl::MAX_BYTES {
            return invalid("the URL is longer than 2048 bytes");
        }
        let url = url::Url::parse(text).map_err(|e| {
            InvalidPushUrl(format!(
                "not an absolute URL such as https://client.example/hook ({e})"
            ))
        })?;
        // The parser drops a tab or line break inside the URL without a word.
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid("the URL contains spaces or control characters");
        }
        check_target(policy, &url)?;
        let normalised: String = url.into();
        if normalised.len() > PushUrl::MAX_BYTES {
            return invalid("the URL is longer than 2048 bytes");
        }
        Ok(PushUrl(normalised))
    }

    /// A URL read back from a store: it was checked when it was written, and is not checked
    /// again here, so that a rule made stricter since never makes a tenant unreadable. The
    /// delivery-time guard still refuses it if it is not a valid target.
    pub fn stored(text: impl Into<String>) -> PushUrl {
        PushUrl(text.into())
    }

    /// The whole URL, query included: for the request and the store, never for a log line.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PushUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl fmt::Debug for PushUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PushUrl({:?})", redact_url(&self.0))
    }
}

/// A URL as a log line or a reason may show it: the query as `?…`, the fragment as `#…` and a
/// `user:password@` as `…@`. Works on any text, a URL or not.
pub fn redact_url(text: &str) -> String {
    let (rest, fragment) = match text.split_once('#') {
        Some((rest, _)) => (rest, "#…"),
        None => (text, ""),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, _)) => (rest, "?…"),
        None => (rest, ""),
    };
    let (scheme, after) = match rest.split_once("://") {
        Some((scheme, after)) => (format!("{scheme}://"), after),
        None => (String::new(), rest),
    };
    let authority_end = after.find('/').unwrap_or(after.len());
    let (authority, path) = after.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("…@{host}"),
        None => authority.to_owned(),
    };
    format!("{scheme}{authority}{path}{query}{fragment}")
}

/// Whether a parsed URL may be a push target under `policy`: its scheme, no credentials in it,
/// and a host that is neither a private address ([`forbidden`]) nor a private name
/// ([`private_name`]). The write-time check and the delivery-time guard both call this; the
/// guard also checks every address a host name resolves to.
pub fn check_target(policy: TargetPolicy, url: &url::Url) -> Result<(), InvalidPushUrl> {
    let refuse = |m: String| Err(InvalidPushUrl(m));
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => {
            return refuse(
                "an http:// URL is not allowed: notifications carry the client's credentials; \
                 use https://"
                    .to_owned(),
            )
        }
        other => {
            return refuse(format!(
                "the scheme {other} is not supported; use an https:// URL"
            ))
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse(
            "put credentials in the headers, not in the URL (user:password@)".to_owned(),
        );
    }
    let host = match url.host() {
        Some(host) => host,
        None => return refuse("the URL has no host".to_owned()),
    };
    if policy.allow_private {
        return Ok(());
    }
    let address = |ip: IpAddr| {
        forbidden(ip).map(|kind| {
            let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            format!("{ip} is {article} {kind} address; private targets are not allowed")
        })
    };
    let why = match &host {
        url::Host::Ipv4(ip) => address(IpAddr::V4(*ip)),
        url::Host::Ipv6(ip) => address(IpAddr::V6(*ip)),
        url::Host::Domain(name) => private_name(name)
            .map(|kind| format!("{name} is {kind}; private targets are not allowed")),
    };
    why.map_or(Ok(()), refuse)
}

/// Why a host name may not be a push target whatever DNS answers, or `None`. The list is short
/// on purpose (every other name is judged by the addresses it resolves to, at delivery):
///
/// - `localhost`, `*.localhost` (RFC 6761) and `localhost.localdomain`: this machine;
/// - a name without a dot (`metadata`, `instance-data`, `intranet`): resolved through the
///   machine's search domains, so it names something on the private network;
/// - `*.internal` (reserved for private use; `metadata.google.internal`, `*.ec2.internal`),
///   `*.local` (multicast DNS) and `*.home.arpa` (RFC 8375): private networks.
///
/// The URL parser has lowercased the name already; a trailing dot changes nothing.
pub fn private_name(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name == "localhost" || name.ends_with(".localhost") || name == "localhost.localdomain" {
        Some("a name of this machine (loopback)")
    } else if !name.contains('.') {
        Some("a single-label name (resolved through the local search domains: private)")
    } else if name.ends_with(".internal") {
        Some("a private-use .internal name (cloud metadata services are named so)")
    } else if name.ends_with(".local") || name.ends_with(".home.arpa") {
        Some("a local network name (private)")
    } else {
        None
    }
}

/// Why an address may not be a push target, or `None` if it may.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    // The IPv4 address carried in segments i and i + 1.
    let v4_at = |i: usize| {
        let [a, b] = s[i].to_be_bytes();
        let [c, d] = s[i + 1].to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if s[0] & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if s[0] & 0xffc0 == 0xfec0 {
        Some("site-local (deprecated)")
    } else if s[0] & 0xfe00 == 0xfc00 {
        // Unique local, which includes AWS's IPv6 metadata address fd00:ec2::254.
        Some("private (unique local)")
    } else if s[0] & 0xff00 == 0xff00 {
        Some("multicast")
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        Some("documentation (not routable)")
    } else if s[..6] == [0, 0, 0, 0, 0, 0]
        || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
        || s[..3] == [0x64, 0xff9b, 1]
    {
        // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96, 64:ff9b:1::/48):
        // judged by the IPv4 address in the last 32 bits, which is where the packet goes.
        forbidden_v4(v4_at(6))
    } else if s[0] == 0x2002 {
        // 6to4: the relay delivers to the IPv4 address in bits 16..48.
        forbidden_v4(v4_at(1))
    } else if s[0] == 0x2001 && s[1] == 0 {
        // Teredo: the server's IPv4 address in bits 32..64 and the client's, inverted, in the
        // last 32 bits. Either may be an internal address.
        let client = Ipv4Addr::from(!u32::from(v4_at(6)));
        forbidden_v4(v4_at(2)).or(forbidden_v4(client))
    } else {
        None
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() {
        Some("broadcast or multicast")
    } else if a >= 240 {
        Some("reserved (240.0.0.0/4)")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking (198.18.0.0/15)")
    } else if a == 192 && b == 0 && c == 0 {
        Some("IETF protocol assignment (192.0.0.0/24)")
    } else if (a, b, c) == (192, 0, 2) || (a, b, c) == (198, 51, 100) || (a, b, c) == (203, 0, 113)
    {
        Some("documentation (not routable)")
    } else {
        None
    }
}

/// A Push Config field that is not valid: which one, relative to the Push Config (`headers`,
/// `headers.X-Token`), and why. The value is never echoed (it may be a credential).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidPushField {
    pub field: String,
    pub message: String,
}

/// The client's credential headers, sent on every push: at most [`PushHeaders::MAX`], names are
/// HTTP tokens (RFC 9110), none that RMS sets itself and no name twice (in any case); values fit
/// on one line and are at most 4096 bytes. Values are write-only: `Debug` shows names only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushHeaders(Vec<(String, SecretValue)>);

impl PushHeaders {
    /// The most headers a Push Config has.
    pub const MAX: usize = 20;
    /// Headers RMS sets on every push itself.
    pub const RESERVED: [&'static str; 8] = [
        "content-type",
        "content-length",
        "host",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "transfer-encoding",
    ];

    /// Checks headers given by a person (`rms.toml`, the admin API, `rms push set`).
    pub fn parse(given: &BTreeMap<String, String>) -> Result<PushHeaders, InvalidPushField> {
        let invalid = |field: String, message: String| Err(InvalidPushField { field, message });
        let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if given.len() > PushHeaders::MAX {
            return invalid("headers".to_owned(), "at most 20 headers".to_owned());
        }
        let mut headers: Vec<(String, SecretValue)> = Vec::new();
        for (name, value) in given {
            let field = format!("headers.{name}");
            if name.is_empty() || !name.chars().all(is_tchar) {
                return invalid(
                    field,
                    format!("{name:?} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"),
                );
            }
            if PushHeaders::RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
                return invalid(field, format!("{name} is set by RMS itself"));
            }
            if let Some((other, _)) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                return invalid(
                    field,
                    format!(
                        "{other} is given too; header names are case-insensitive: give it once"
                    ),
                );
            }
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return invalid(
                    field,
                    "the value contains a line break or control character".to_owned(),
                );
            }
            if value.len() > 4096 {
                return invalid(field, "the value is over 4096 bytes".to_owned());
            }
            headers.push((name.clone(), SecretValue::new(value.clone())));
        }
        Ok(PushHeaders(headers))
    }

    /// Headers read back from a store (checked when they were written). The dispatcher refuses
    /// a value it cannot send when it builds the request.
    pub fn stored(headers: Vec<(String, SecretValue)>) -> PushHeaders {
        PushHeaders(headers)
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|(name, _)| name.clone()).collect()
    }
}

impl std::ops::Deref for PushHeaders {
    type Target = [(String, SecretValue)];

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a> IntoIterator for &'a PushHeaders {
    type Item = &'a (String, SecretValue);
    type IntoIter = std::slice::Iter<'a, (String, SecretValue)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// How long a push waits for the client's answer: [`PushTimeout::MIN`] to [`PushTimeout::MAX`].
/// Whatever waits for a push to finish (the dispatcher's lease in `rms serve`, the Lambda's
/// timeout) is sized from `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PushTimeout(Duration);

/// A push timeout out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ms is out of range; use 1000 to 30000 ms (1 s to 30 s)", .0.as_millis())]
pub struct InvalidPushTimeout(Duration);

impl PushTimeout {
    pub const MIN: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(30);
    pub const DEFAULT: PushTimeout = PushTimeout(Duration::from_secs(10));

    pub fn new(timeout: Duration) -> Result<PushTimeout, InvalidPushTimeout> {
        if (PushTimeout::MIN..=PushTimeout::MAX).contains(&timeout) {
            Ok(PushTimeout(timeout))
        } else {
            Err(InvalidPushTimeout(timeout))
        }
    }

    pub fn from_millis(ms: u64) -> Result<PushTimeout, InvalidPushTimeout> {
        PushTimeout::new(Duration::from_millis(ms))
    }

    /// A timeout read back from a store, brought into range: one written before the range was
    /// enforced waits at most `MAX`, which is what the dispatcher's lease allows for.
    pub fn clamped(timeout: Duration) -> PushTimeout {
        PushTimeout(timeout.clamp(PushTimeout::MIN, PushTimeout::MAX))
    }

    pub fn get(self) -> Duration {
        self.0
    }

    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
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
    fn debug_never_shows_header_values_the_secret_or_the_query() {
        let config = PushConfig {
            url: PushUrl::parse(
                "https://client.example/hook?token=q5ecret",
                TargetPolicy::default(),
            )
            .unwrap(),
            headers: PushHeaders::stored(vec![(
                "Authorization".into(),
                SecretValue::new("Bearer hunter2"),
            )]),
            statuses: vec![],
            signing_secret: SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").ok(),
            timeout: PushTimeout::DEFAULT,
            enabled: true,
            delivery: Delivery::Every,
        };
        let shown = format!("{config:?}");
        for secret in ["hunter2", "MfKQ9r8", "q5ecret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("Authorization"));
        assert!(shown.contains("https://client.example/hook?…"), "{shown}");
    }

    #[test]
    fn an_empty_status_list_wants_everything() {
        let mut config = PushConfig {
            url: PushUrl::stored(""),
            headers: PushHeaders::default(),
            statuses: vec![],
            signing_secret: None,
            timeout: PushTimeout::DEFAULT,
            enabled: true,
            delivery: Delivery::Every,
        };
        assert!(config.wants(Status::InTransit));
        config.statuses = vec![Status::Delivered];
        assert!(config.wants(Status::Delivered) && !config.wants(Status::InTransit));
    }

    const DENY: TargetPolicy = TargetPolicy {
        allow_private: false,
        allow_http: true,
    };

    /// Every form of a private target the attack report tried (and more): refused at write time
    /// with a reason, allowed when private targets are.
    #[test]
    fn private_targets_are_refused_at_write_time_in_every_form() {
        for (url, reason) in [
            ("http://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
            ("http://127.1/hook", "127.0.0.1 is a loopback address"),
            ("http://0x7f000001/hook", "127.0.0.1 is a loopback address"),
            ("http://0x7f.1/hook", "127.0.0.1 is a loopback address"),
            ("http://2130706433/hook", "127.0.0.1 is a loopback address"),
            (
                "http://017700000001/hook",
                "127.0.0.1 is a loopback address",
            ),
            ("http://0.0.0.0/hook", "0.0.0.0 is an unspecified address"),
            ("http://[::]/hook", ":: is an unspecified address"),
            ("http://[::1]:8080/hook", "::1 is a loopback address"),
            ("http://[::ffff:127.0.0.1]/hook", "is a loopback address"),
            ("http://[::ffff:7f00:1]/hook", "is a loopback address"),
            ("http://[::127.0.0.1]/hook", "is a loopback address"),
            ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
            ("http://172.16.0.9/hook", "172.16.0.9 is a private address"),
            (
                "http://192.168.1.1/hook",
                "192.168.1.1 is a private address",
            ),
            (
                "http://169.254.169.254/latest/meta-data/",
                "link-local (cloud metadata)",
            ),
            (
                "http://[fd00:ec2::254]/latest",
                "fd00:ec2::254 is a private (unique local)",
            ),
            (
                "http://100.64.0.1/hook",
                "100.64.0.1 is a shared (carrier-grade NAT)",
            ),
            (
                "http://[fc00::1]/hook",
                "fc00::1 is a private (unique local)",
            ),
            ("http://[fe80::1]/hook", "fe80::1 is a link-local address"),
            (
                "http://localhost:9000/hook",
                "localhost is a name of this machine",
            ),
            (
                "http://foo.localhost/hook",
                "foo.localhost is a name of this machine",
            ),
            (
                "http://LOCALHOST/hook",
                "localhost is a name of this machine",
            ),
            ("http://localhost./hook", "is a name of this machine"),
            (
                "http://metadata.google.internal/computeMetadata/v1/",
                "private-use .internal",
            ),
            (
                "http://instance-data/latest",
                "instance-data is a single-label name",
            ),
            (
                "http://metadata/computeMetadata/v1/",
                "metadata is a single-label name",
            ),
            (
                "http://printer.local/hook",
                "printer.local is a local network name",
            ),
        ] {
            let refused = PushUrl::parse(url, DENY).unwrap_err().to_string();
            assert!(refused.contains(reason), "{url}: {refused}");
            assert!(
                refused.ends_with("private targets are not allowed"),
                "{url}: {refused}"
            );
            assert!(
                PushUrl::parse(url, TargetPolicy::LOCAL).is_ok(),
                "{url} is allowed when private targets are"
            );
        }
        for url in [
            "https://client.example/hook",
            "https://93.184.216.34/hook",
            "https://[2606:4700::1111]/hook",
            "https://hooks.localhost.example.com/x",
            "https://internal.example.com/x",
        ] {
            assert!(
                PushUrl::parse(url, TargetPolicy::default()).is_ok(),
                "{url}"
            );
        }
    }

    #[test]
    fn a_url_is_refused_for_its_scheme_credentials_form_or_size() {
        let https_only = TargetPolicy::default();
        for (url, reason) in [
            ("not a url", "not an absolute URL"),
            ("https://client.example/a b", "spaces"),
            ("client.example/hook", "not an absolute URL"),
            ("/hook", "not an absolute URL"),
            (
                "http://client.example/hook",
                "an http:// URL is not allowed",
            ),
            ("ftp://client.example/", "the scheme ftp is not supported"),
            ("file:///etc/passwd", "the scheme file is not supported"),
            (
                "https://user:pw@client.example/hook",
                "credentials in the headers",
            ),
            (
                "https://token@client.example/hook",
                "credentials in the headers",
            ),
            ("https://client.example/ho\nok", "control characters"),
            ("https://client.example:99999/", "not an absolute URL"),
        ] {
            let refused = PushUrl::parse(url, https_only).unwrap_err().to_string();
            assert!(refused.contains(reason), "{url:?}: {refused}");
        }
        let long = format!("https://client.example/{}", "a".repeat(PushUrl::MAX_BYTES));
        assert!(PushUrl::parse(&long, https_only)
            .unwrap_err()
            .to_string()
            .contains("2048"));
        assert!(PushUrl::parse("http://client.example/hook", TargetPolicy::LOCAL).is_ok());
    }

    #[test]
    fn a_url_is_kept_as_the_parser_normalises_it() {
        let url = PushUrl::parse(
            "  HTTPS://Client.Example/hook?a=1  ",
            TargetPolicy::default(),
        )
        .unwrap();
        assert_eq!(url.as_str(), "https://client.example/hook?a=1");
        let url = PushUrl::parse("http://2130706433:9000", TargetPolicy::LOCAL).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9000/");
    }

    #[test]
    fn display_and_debug_redact_the_query_the_fragment_and_credentials() {
        let url = PushUrl::parse(
            "https://client.example/hook?token=s3cret&x=1#frag",
            TargetPolicy::default(),
        )
        .unwrap();
        assert_eq!(url.to_string(), "https://client.example/hook?…#…");
        assert_eq!(
            format!("{url:?}"),
            "PushUrl(\"https://client.example/hook?…#…\")"
        );
        assert_eq!(
            url.as_str(),
            "https://client.example/hook?token=s3cret&x=1#frag"
        );
        // Text that was stored before, or is not a URL at all, is redacted the same way.
        for (text, shown) in [
            (
                "https://u:p@client.example/a?k=v",
                "https://…@client.example/a?…",
            ),
            ("not a url ?token=1", "not a url ?…"),
            ("https://client.example", "https://client.example"),
        ] {
            assert_eq!(PushUrl::stored(text).to_string(), shown);
            assert_eq!(redact_url(text), shown);
        }
    }

    #[test]
    fn headers_are_checked_once_for_the_api_and_the_file() {
        let headers = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect()
        };
        let parsed =
            PushHeaders::parse(&headers(&[("Authorization", "Bearer\tx"), ("X-Id", "a")])).unwrap();
        assert_eq!(parsed.names(), ["Authorization", "X-Id"]);
        for (given, field, reason) in [
            (
                headers(&[("X A", "v")]),
                "headers.X A",
                "not a valid header name",
            ),
            (
                headers(&[("Host", "v")]),
                "headers.Host",
                "set by RMS itself",
            ),
            (
                headers(&[("X-Key", "a\r\nX-Evil: 1")]),
                "headers.X-Key",
                "line break",
            ),
            (
                headers(&[("X-Key", &"v".repeat(4097))]),
                "headers.X-Key",
                "4096",
            ),
            (
                headers(&[("X-Key", "a"), ("x-key", "b")]),
                "headers.x-key",
                "X-Key is given too",
            ),
        ] {
            let refused = PushHeaders::parse(&given).unwrap_err();
            assert_eq!(refused.field, field);
            assert!(refused.message.contains(reason), "{refused}");
            assert!(!refused.message.contains("X-Evil"), "values are not echoed");
        }
        let many: BTreeMap<String, String> = (0..21)
            .map(|i| (format!("X-{i}"), "v".to_owned()))
            .collect();
        assert_eq!(PushHeaders::parse(&many).unwrap_err().field, "headers");
    }

    #[test]
    fn a_timeout_is_one_to_thirty_seconds_and_a_stored_one_is_brought_into_range() {
        assert_eq!(
            PushTimeout::from_millis(1000).unwrap().get(),
            PushTimeout::MIN
        );
        assert_eq!(
            PushTimeout::from_millis(30_000).unwrap().get(),
            PushTimeout::MAX
        );
        for ms in [0, 999, 30_001, u64::MAX] {
            let refused = PushTimeout::from_millis(ms).unwrap_err().to_string();
            assert!(refused.contains("use 1000 to 30000 ms"), "{refused}");
        }
        assert_eq!(
            PushTimeout::clamped(Duration::from_secs(600)).get(),
            PushTimeout::MAX
        );
        assert_eq!(PushTimeout::clamped(Duration::ZERO).get(), PushTimeout::MIN);
        assert_eq!(PushTimeout::DEFAULT.as_millis(), 10_000);
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a00:1",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.170",
            "240.0.0.1",
            "192.0.2.1",
            "fec0::1",
            "2001:db8::1",
            // 6to4 of 127.0.0.1 and of 169.254.169.254
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            // Teredo: a public server, and the client 10.0.0.1 (stored inverted)
            "2001:0:4136:e378:0:0:f5ff:fffe",
            // Teredo: the server 192.168.0.1
            "2001:0:c0a8:1:0:0:f7f7:f7f7",
        ] {
            assert!(
                forbidden(ip.parse().unwrap()).is_some(),
                "{ip} should be forbidden"
            );
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
            "198.20.0.1",
            "192.0.1.1",
            // 6to4 of 8.8.8.8; Teredo with a public server and the client 8.8.8.8
            "2002:808:808::1",
            "2001:0:4136:e378:0:0:f7f7:f7f7",
        ] {
            assert_eq!(
                forbidden(ip.parse().unwrap()),
                None,
                "{ip} should be allowed"
            );
        }
    }
}

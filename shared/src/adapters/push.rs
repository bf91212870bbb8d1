//! The HTTP pusher: `reqwest` with rustls, one client per container (connections are reused),
//! redirects never followed, and the SSRF guard.
//!
//! The guard checks a literal IP in the URL before connecting, and checks every address a host
//! name resolves to inside the client's resolver, so the address that is vetted is the address
//! that is dialled (no window for DNS rebinding). Private, loopback, link-local (cloud metadata
//! included), shared, multicast and unspecified addresses are refused unless allowed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::redirect::Policy;
use reqwest::{Client, Url};

use crate::ports::{PushRequest, PushResult, Pusher};

/// What the guard lets through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow private, loopback and link-local addresses (local mode and tests).
    pub allow_private: bool,
    /// Allow `http://` as well as `https://`.
    pub allow_http: bool,
}

/// How many bytes of an answer are kept (delivery log, test push).
const BODY_PREFIX_BYTES: usize = 512;

#[derive(Clone)]
pub struct HttpPusher {
    client: Client,
    policy: TargetPolicy,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RefusedTarget(String);

impl HttpPusher {
    pub fn new(policy: TargetPolicy) -> Result<Self, reqwest::Error> {
        let client = Client::builder()
            .tls_backend_preconfigured(tls_config())
            .redirect(Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy }))
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent("RMS-Notify/1")
            .build()?;
        Ok(HttpPusher { client, policy })
    }

    /// The reason a URL is refused before any connection, if it is.
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        check_url(self.policy, url)
    }
}

/// TLS for client endpoints: rustls (aws-lc), trusting Mozilla's root programme as compiled in
/// by `webpki-roots`. Nothing is read from disk, so building the pusher costs no cold-start time
/// (the platform's store was ~145 files to read and parse here), and the trust is the same on
/// Lambda and in `rms serve`. HTTP/1.1 only, as the client was built.
fn tls_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports rustls's default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Checks scheme, credentials in the URL, and a literal IP host.
pub fn check_url(policy: TargetPolicy, url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => {
            return Err(format!(
                "{url} is not https; only https endpoints are allowed"
            ))
        }
        other => {
            return Err(format!(
                "{url}: the scheme {other} is not supported; use https"
            ))
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL holds credentials; configure them as headers instead".to_owned());
    }
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
        None => return Err(format!("{url} has no host")),
    };
    if let Some(ip) = literal {
        if !policy.allow_private {
            if let Some(kind) = forbidden(ip) {
                return Err(format!(
                    "{ip} is a {kind} address; private targets are not allowed"
                ));
            }
        }
    }
    Ok(())
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

/// The client's resolver: system DNS, then every address checked.
struct GuardedResolver {
    policy: TargetPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !policy.allow_private {
                if let Some((ip, kind)) = addrs
                    .iter()
                    .find_map(|a| forbidden(a.ip()).map(|k| (a.ip(), k)))
                {
                    let refused = RefusedTarget(format!("{host} resolves to {ip}, a {kind} address; private targets are not allowed"));
                    return Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The refusal inside a reqwest error, if the guard caused it.
fn refusal(error: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<RefusedTarget>() {
            return Some(refused.0.clone());
        }
        source = e.source();
    }
    None
}

/// The innermost cause, for a readable connect failure.
fn root_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

impl Pusher for HttpPusher {
    async fn push(&self, request: &PushRequest) -> PushResult {
        let url = match Url::parse(&request.url) {
            Ok(url) => url,
            Err(e) => {
                return PushResult::Refused {
                    reason: format!("{:?} is not a URL: {e}", request.url),
                }
            }
        };
        if let Err(reason) = self.check_url(&url) {
            return PushResult::Refused { reason };
        }
        let mut builder = self.client.post(url).timeout(request.timeout);
        for (name, value) in &request.headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                // The value is never echoed: it may be a credential.
                return PushResult::Refused {
                    reason: format!("header {name:?} has an invalid name or value"),
                };
            };
            builder = builder.header(name, value);
        }
        let started = Instant::now();
        let response = builder.body(request.body.clone()).send().await;
        let mut response = match response {
            Ok(r) => r,
            Err(e) => {
                let latency = started.elapsed();
                if let Some(reason) = refusal(&e) {
                    return PushResult::Refused { reason };
                }
                return if e.is_timeout() {
                    PushResult::TimedOut { latency }
                } else {
                    PushResult::ConnectFailed {
                        reason: root_cause(&e),
                        latency,
                    }
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response.headers().get(RETRY_AFTER).and_then(retry_after);
        let mut prefix = Vec::new();
        // The first bytes only, within what is left of the timeout; the rest is not awaited.
        let deadline = request.timeout.saturating_sub(started.elapsed());
        let _ = tokio::time::timeout(deadline, async {
            while prefix.len() < BODY_PREFIX_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => prefix.extend_from_slice(&chunk),
                    _ => break,
                }
            }
        })
        .await;
        prefix.truncate(BODY_PREFIX_BYTES);
        PushResult::Answered {
            status,
            retry_after,
            body_prefix: String::from_utf8_lossy(&prefix).into_owned(),
            latency: started.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny() -> TargetPolicy {
        TargetPolicy {
            allow_private: false,
            allow_http: true,
        }
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

    #[test]
    fn urls_are_checked_for_scheme_credentials_and_literal_ips() {
        let https_only = TargetPolicy::default();
        let check = |policy, url: &str| check_url(policy, &Url::parse(url).unwrap());
        assert!(check(https_only, "https://client.example/hook").is_ok());
        assert!(check(https_only, "http://client.example/hook")
            .unwrap_err()
            .contains("not https"));
        assert!(check(https_only, "ftp://client.example/")
            .unwrap_err()
            .contains("scheme ftp"));
        assert!(check(https_only, "https://u:p@client.example/")
            .unwrap_err()
            .contains("credentials"));
        for url in [
            "http://127.0.0.1:9000/h",
            "http://10.0.0.1/h",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/h",
        ] {
            let err = check(deny(), url).unwrap_err();
            assert!(
                err.contains("private targets are not allowed"),
                "{url}: {err}"
            );
            assert!(check(
                TargetPolicy {
                    allow_private: true,
                    allow_http: true
                },
                url
            )
            .is_ok());
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(
            retry_after(&HeaderValue::from_static("120")),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(&HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&HeaderValue::from_static("soon")), None);
    }

    #[tokio::test]
    async fn a_host_name_resolving_to_loopback_is_refused_with_its_address() {
        let pusher = HttpPusher::new(deny()).unwrap();
        let request = PushRequest {
            url: "http://localhost:9/hook".into(),
            headers: vec![],
            body: b"{}".to_vec(),
            timeout: Duration::from_secs(2),
        };
        let PushResult::Refused { reason } = pusher.push(&request).await else {
            panic!("localhost must be refused");
        };
        assert!(
            reason.starts_with("localhost resolves to ") && reason.contains("loopback"),
            "{reason}"
        );
    }
}

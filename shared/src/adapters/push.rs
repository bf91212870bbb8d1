//! The HTTP pusher: `reqwest` with rustls, one client per container (connections are reused),
//! redirects never followed, and the SSRF guard.
//!
//! The guard checks a literal IP in the URL before connecting, and checks every address a host
//! name resolves to inside the client's resolver, so the address that is vetted is the address
//! that is dialled (no window for DNS rebinding). Private, loopback, link-local (cloud metadata
//! included), shared, multicast and unspecified addresses are refused unless allowed.

use std::time::Instant;

use reqwest::header::{HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Url};

use super::outbound::{self, refusal, retry_after};
use crate::ports::{PushRequest, PushResult, Pusher};

pub use crate::push::{forbidden, TargetPolicy};

/// How many bytes of an answer are kept (delivery log, test push).
const BODY_PREFIX_BYTES: usize = 512;

#[derive(Clone)]
pub struct HttpPusher {
    client: Client,
    policy: TargetPolicy,
}

impl HttpPusher {
    pub fn new(policy: TargetPolicy) -> Result<Self, reqwest::Error> {
        let client = outbound::client(policy, "RMS-Notify/1")?;
        Ok(HttpPusher { client, policy })
    }

    /// The reason a URL is refused before any connection, if it is.
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        check_url(self.policy, url)
    }
}

/// Checks scheme, credentials in the URL, and a literal IP host or a private name: the same
/// rules as a Push Config URL's at write time ([`crate::push::check_target`]).
pub fn check_url(policy: TargetPolicy, url: &Url) -> Result<(), String> {
    crate::push::check_target(policy, url).map_err(|e| e.to_string())
}

/// The innermost cause, for a readable connect failure.
fn root_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

impl Pusher for HttpPusher {
    async fn push(&self, request: &PushRequest) -> PushResult {
        let url = match Url::parse(&request.url) {
            Ok(url) => url,
            Err(e) => {
                return PushResult::Refused {
                    reason: format!(
                        "{:?} is not a URL: {e}",
                        crate::push::redact_url(&request.url)
                    ),
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
    use std::time::Duration;

    use reqwest::dns::Resolve;

    use super::*;
    use crate::adapters::outbound::GuardedResolver;

    fn deny() -> TargetPolicy {
        TargetPolicy {
            allow_private: false,
            allow_http: true,
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_credentials_and_literal_ips() {
        let https_only = TargetPolicy::default();
        let check = |policy, url: &str| check_url(policy, &Url::parse(url).unwrap());
        assert!(check(https_only, "https://client.example/hook").is_ok());
        assert!(check(https_only, "http://client.example/hook")
            .unwrap_err()
            .contains("http:// URL is not allowed"));
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

    /// `localhost` is refused by name before any lookup (`crate::push::private_name`); behind
    /// it, the resolver refuses any name whose addresses are private, which is what a public name
    /// pointed at 127.0.0.1 (`*.nip.io`, a rebinding service) meets.
    #[tokio::test]
    async fn a_host_name_resolving_to_loopback_is_refused_with_its_address() {
        let pusher = HttpPusher::new(deny()).unwrap();
        let request = PushRequest {
            url: "http://localhost:9/hook?token=s3cret".into(),
            headers: vec![],
            body: b"{}".to_vec(),
            timeout: Duration::from_secs(2),
        };
        let PushResult::Refused { reason } = pusher.push(&request).await else {
            panic!("localhost must be refused");
        };
        assert!(reason.contains("name of this machine"), "{reason}");
        let resolver = GuardedResolver { policy: deny() };
        let Err(refused) = resolver.resolve("localhost".parse().unwrap()).await else {
            panic!("the resolver must refuse loopback addresses");
        };
        let reason = refused.to_string();
        assert!(
            reason.starts_with("localhost resolves to ") && reason.contains("loopback"),
            "{reason}"
        );
        let allowed = GuardedResolver {
            policy: TargetPolicy::LOCAL,
        };
        assert!(allowed.resolve("localhost".parse().unwrap()).await.is_ok());
    }

    #[tokio::test]
    async fn a_url_that_is_not_one_is_refused_without_its_query() {
        let pusher = HttpPusher::new(deny()).unwrap();
        let request = PushRequest {
            url: "no url?token=s3cret".into(),
            headers: vec![],
            body: b"{}".to_vec(),
            timeout: Duration::from_secs(2),
        };
        let PushResult::Refused { reason } = pusher.push(&request).await else {
            panic!("a text that is not a URL must be refused");
        };
        assert!(
            reason.contains("is not a URL") && !reason.contains("s3cret"),
            "{reason}"
        );
    }
}

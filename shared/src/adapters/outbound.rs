//! What the two outbound HTTP clients share, the pusher (`push.rs`, clients' endpoints) and the
//! pull transport (`pull_http.rs`, carriers' tracking APIs): TLS, the SSRF guard on every address
//! a name resolves to, no redirects, no proxy, and the reading of `Retry-After`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderValue;
use reqwest::redirect::Policy;
use reqwest::Client;

use crate::push::{forbidden, TargetPolicy};

/// A client with the guard: redirects not followed, no proxy, connect timeout 5 s.
pub(crate) fn client(policy: TargetPolicy, user_agent: &str) -> Result<Client, reqwest::Error> {
    Client::builder()
        .tls_backend_preconfigured(tls_config())
        .redirect(Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(user_agent)
        .build()
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RefusedTarget(pub(crate) String);

/// TLS for client endpoints: rustls (aws-lc), trusting Mozilla's root programme as compiled in
/// by `webpki-roots`. Nothing is read from disk, so building the pusher costs no cold-start time
/// (the platform's store was ~145 files to read and parse here), and the trust is the same on
/// Lambda and in `rms serve`. HTTP/1.1 only, as the client was built.
pub(crate) fn tls_config() -> rustls::ClientConfig {
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

/// The client's resolver: system DNS, then every address checked.
pub(crate) struct GuardedResolver {
    pub(crate) policy: TargetPolicy,
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
#[cfg(feature = "push")]
pub(crate) fn refusal(error: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<RefusedTarget>() {
            return Some(refused.0.clone());
        }
        source = e.source();
    }
    None
}

/// `Retry-After` as seconds or as an HTTP date.
pub(crate) fn retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

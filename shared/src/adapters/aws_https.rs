//! The AWS SDK configuration of the Lambdas, built for a short cold start.
//!
//! The SDK's default HTTPS client loads the machine's trusted roots when a client is built. Where
//! the roots are one file each (`/etc/ssl/certs`), that is ~145 files read and parsed, 3–6 ms of
//! every cold start (docs/performance.md, "Cold start"). The functions call two AWS services,
//! DynamoDB and SQS, whose endpoints all present certificates issued by Amazon Trust Services; so
//! their client trusts exactly those roots, compiled in, and reads no file.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_http_client::Builder;

/// Amazon Root CA 1–4 and Starfield Services Root CA G2 (their cross-signing root), as PEM.
pub const AMAZON_ROOTS_PEM: &str = include_str!("amazon-roots.pem");

/// The HTTPS client for AWS service endpoints: rustls with aws-lc, trusting [`AMAZON_ROOTS_PEM`]
/// only. Plain `http://` endpoints (`AWS_ENDPOINT_URL` pointing at moto_server) work too.
pub fn https_client() -> SharedHttpClient {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_ROOTS_PEM.as_bytes());
    Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .expect("a TLS context is plain data: building one cannot fail"),
        )
        .build_https()
}

/// The SDK configuration of a Lambda: the standard chains for region and credentials (on Lambda,
/// the environment), `AWS_ENDPOINT_URL` if set, and [`https_client`].
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_roots_are_the_five_amazon_trust_services_roots() {
        let subjects: Vec<&str> = AMAZON_ROOTS_PEM
            .lines()
            .filter(|line| line.starts_with("# C = US"))
            .collect();
        assert_eq!(subjects.len(), 5, "{subjects:?}");
        assert_eq!(
            AMAZON_ROOTS_PEM
                .matches("-----BEGIN CERTIFICATE-----")
                .count(),
            5
        );
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            assert!(AMAZON_ROOTS_PEM.contains(name), "{name} is missing");
        }
    }
}

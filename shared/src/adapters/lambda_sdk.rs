//! The AWS SDK configuration of the Lambdas, built for a short cold start.
//!
//! Two things the SDK's usual set-up (`aws_config::load_from_env`) does at init cost the
//! functions time and memory they do not need (docs/performance.md, "Cold start"):
//! - its default HTTPS client loads the machine's trusted roots when it is built; where the roots
//!   are one file each (`/etc/ssl/certs`), that is ~145 files read and parsed, 3–6 ms. The
//!   functions call two AWS services, DynamoDB and SQS, whose endpoints all present certificates
//!   issued by Amazon Trust Services; so their client trusts exactly those roots, compiled in.
//! - its provider chains (profile files, SSO, web identity, ECS, IMDS) are built and their code
//!   paged in, while on Lambda the region and the execution role's credentials are always in the
//!   environment. They are read from there, once.
//!
//! It also bounds every call: the SDK's defaults set only a connect timeout, so a store that
//! accepts the connection and never answers would hold a notify invocation until the Lambda
//! timeout (10 s) kills it, and the carrier would get no answer at all.

use std::time::Duration;

use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{
    BehaviorVersion, Credentials, Region, SharedCredentialsProvider, SharedHttpClient,
};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_types::sdk_config::SdkConfig;

/// Amazon Root CA 1–4 and Starfield Services Root CA G2 (their cross-signing root), as PEM.
pub const AMAZON_ROOTS_PEM: &str = include_str!("amazon-roots.pem");

/// A variable the Lambda environment always has is missing.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0} is not set. Lambda sets it for every function; to run a function elsewhere, export \
     AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for \
     temporary credentials)"
)]
pub struct MissingVariable(&'static str);

/// The SDK configuration of a Lambda, from the variables Lambda sets: `AWS_REGION`, and the
/// execution role's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`. Also
/// `AWS_ENDPOINT_URL` when set (a local moto_server). Timeouts are [`timeouts`]; retries and the
/// rest are the SDK's defaults for the latest behaviour version (standard, 3 attempts).
pub fn config_from_env() -> Result<SdkConfig, MissingVariable> {
    config_from(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

fn config_from(var: impl Fn(&str) -> Option<String>) -> Result<SdkConfig, MissingVariable> {
    let required = |name: &'static str| var(name).ok_or(MissingVariable(name));
    // Read once: a process's environment does not change, so the SDK's own environment provider
    // would return these same values for the container's whole life.
    let credentials = Credentials::new(
        required("AWS_ACCESS_KEY_ID")?,
        required("AWS_SECRET_ACCESS_KEY")?,
        var("AWS_SESSION_TOKEN"),
        None,
        "LambdaEnvironment",
    );
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(required("AWS_REGION")?))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(https_client())
        .timeout_config(timeouts());
    if let Some(endpoint) = var("AWS_ENDPOINT_URL") {
        config = config.endpoint_url(endpoint);
    }
    Ok(config.build())
}

/// Per call: connect within 1 s, each attempt within 1.5 s, the call with its retries within 4 s.
/// DynamoDB and SQS answer single-item calls in milliseconds; these bounds only cut off a store
/// that does not answer, so that ingest answers 503 (the carrier retries) and still has time to
/// release its claim within the function's 10 s.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_millis(1500))
        .operation_timeout(Duration::from_secs(4))
        .build()
}

/// The HTTPS client for AWS service endpoints: rustls with aws-lc, trusting [`AMAZON_ROOTS_PEM`]
/// only. Plain `http://` endpoints (moto_server) work too.
pub fn https_client() -> SharedHttpClient {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_ROOTS_PEM.as_bytes());
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .expect("a TLS context is plain data: building one cannot fail"),
        )
        .build_https()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::config::ProvideCredentials;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const LAMBDA: &[(&str, &str)] = &[
        ("AWS_REGION", "ap-south-1"),
        ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
    ];

    #[tokio::test]
    async fn the_lambda_environment_gives_region_session_credentials_and_the_client() {
        let config = config_from(env(LAMBDA)).unwrap();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("ap-south-1"));
        assert_eq!(config.endpoint_url(), None);
        assert!(config.http_client().is_some());
        let timeouts = config.timeout_config().unwrap();
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(4)));
        assert_eq!(timeouts.connect_timeout(), Some(Duration::from_secs(1)));
        let credentials = config
            .credentials_provider()
            .unwrap()
            .provide_credentials()
            .await
            .unwrap();
        assert_eq!(credentials.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(credentials.secret_access_key(), "secret");
        assert_eq!(credentials.session_token(), Some("token"));

        let mut local = LAMBDA.to_vec();
        local.push(("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"));
        let config = config_from(env(&local)).unwrap();
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
    }

    #[test]
    fn a_missing_variable_is_named() {
        for missing in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let pairs: Vec<_> = LAMBDA
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let error = config_from(env(&pairs)).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("{missing} is not set")),
                "{error}"
            );
        }
        // The session token is optional (long-term keys, locally).
        let pairs: Vec<_> = LAMBDA
            .iter()
            .copied()
            .filter(|(k, _)| *k != "AWS_SESSION_TOKEN")
            .collect();
        assert!(config_from(env(&pairs)).is_ok());
    }

    #[test]
    fn the_bundled_roots_are_the_five_amazon_trust_services_roots() {
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

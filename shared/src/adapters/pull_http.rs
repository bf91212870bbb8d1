//! The carriers' pull APIs over HTTP: `reqwest` with rustls, redirects never followed, one client
//! per container (connections are reused), a timeout per call, and an answer read up to
//! [`MAX_ANSWER_BYTES`].
//!
//! The target rules are the Push Config's ([`TargetPolicy`]): a literal private address or name
//! in the URL is refused before connecting, and every address a host name resolves to is checked
//! in the client's resolver, unless the policy allows private targets (tests, one machine). The
//! carriers' hosts are public; the guard keeps a misconfigured base URL from reaching inside.
//!
//! Errors never carry the URL (it may hold Clickpost's key): reqwest's are stripped of it.

use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Client;

use super::outbound::{self, retry_after};
use crate::carriers::pull::{
    PullMethod, PullRequest, PullResponse, PullTransport, TransportError, MAX_ANSWER_BYTES,
};
use crate::push::{check_target, TargetPolicy};

/// The pull transport on reqwest.
#[derive(Clone)]
pub struct HttpPullTransport {
    client: Client,
    policy: TargetPolicy,
}

impl HttpPullTransport {
    pub fn new(policy: TargetPolicy) -> Result<Self, reqwest::Error> {
        let client = outbound::client(policy, "RMS-Notify/1 (reconciliation)")?;
        Ok(HttpPullTransport { client, policy })
    }
}

impl PullTransport for HttpPullTransport {
    async fn send(&self, request: &PullRequest) -> Result<PullResponse, TransportError> {
        if let Err(refused) = check_target(self.policy, &request.url) {
            return Err(failure(format!("not called: {refused}"), false));
        }
        let mut builder = match request.method {
            PullMethod::Get => self.client.get(request.url.clone()),
            PullMethod::Post => self.client.post(request.url.clone()),
        }
        .timeout(request.timeout)
        .header("accept", "application/json");
        for (name, value) in &request.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| failure(format!("{name:?} is not a header name"), false))?;
            let value = HeaderValue::from_str(value.expose()).map_err(|_| {
                failure(
                    format!("the {name} header holds a forbidden character"),
                    false,
                )
            })?;
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let mut response = builder.send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let retry_after = response.headers().get(RETRY_AFTER).and_then(retry_after);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(failure(
                    format!("the answer is larger than {MAX_ANSWER_BYTES} bytes"),
                    false,
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(PullResponse {
            status,
            retry_after,
            body,
        })
    }
}

fn failure(reason: String, timed_out: bool) -> TransportError {
    TransportError { reason, timed_out }
}

/// A reqwest error as a reason without its URL: what failed (timeout, connect, body) and the
/// innermost cause.
fn transport_error(error: reqwest::Error) -> TransportError {
    let timed_out = error.is_timeout();
    let error = error.without_url();
    let what = if timed_out {
        "timed out"
    } else if error.is_connect() {
        "no connection"
    } else if error.is_body() || error.is_decode() {
        "the answer broke off"
    } else {
        "the request failed"
    };
    let mut cause: &dyn std::error::Error = &error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    failure(format!("{what}: {cause}"), timed_out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::push::SecretValue;

    fn request(url: &str) -> PullRequest {
        PullRequest {
            method: PullMethod::Get,
            url: url::Url::parse(url).unwrap(),
            headers: vec![("authorization", SecretValue::new("Bearer t"))],
            body: None,
            timeout: Duration::from_secs(2),
            shown: "shown".into(),
        }
    }

    #[tokio::test]
    async fn a_private_target_is_refused_unless_allowed_and_the_reason_has_no_url() {
        let transport = HttpPullTransport::new(TargetPolicy {
            allow_private: false,
            allow_http: true,
        })
        .unwrap();
        let err = transport
            .send(&request("http://127.0.0.1:9/api?key=s3cret-key"))
            .await
            .unwrap_err();
        assert!(
            err.reason.contains("private targets are not allowed"),
            "{err}"
        );
        assert!(!err.reason.contains("s3cret"), "{err}");
    }

    #[tokio::test]
    async fn a_dead_port_is_a_connection_failure_without_the_url() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let transport = HttpPullTransport::new(TargetPolicy::LOCAL).unwrap();
        let err = transport
            .send(&request(&format!(
                "http://127.0.0.1:{port}/api?key=s3cret-key"
            )))
            .await
            .unwrap_err();
        assert!(err.reason.starts_with("no connection"), "{err}");
        assert!(!err.reason.contains("s3cret") && !err.timed_out, "{err}");
    }
}

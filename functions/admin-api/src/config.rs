//! The admin Lambda's settings, from its environment (set by the SAM template), and the admin
//! use-case built on them.

use axum::Router;
use shared::adapters::aws_admin::{AwsNames, DynamoAdmin};
use shared::adapters::dynamodb::{DynamoConfigStore, DynamoEventStore};
use shared::adapters::emf::EmfMetrics;
use shared::adapters::push::{HttpPusher, TargetPolicy};
use shared::adapters::sqs::SqsEventQueue;
use shared::admin::Admin;
use shared::ingest::{Ingest, IngestSettings, QueueThenClaim, SettingError};

/// Ingest on the stack's tables and queue, as the notify functions run it: what a quarantine
/// replay feeds the bodies through.
pub type AwsReingest =
    Ingest<DynamoConfigStore, QueueThenClaim<DynamoEventStore, SqsEventQueue>, EmfMetrics>;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set; the SAM template sets it for the admin API")]
    Missing(&'static str),
    #[error(transparent)]
    Ingest(#[from] SettingError),
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `CONFIG_TABLE`, `EVENTS_TABLE`, `EVENTS_QUEUE_URL`, `DEAD_LETTER_QUEUE_URL` (the names the
    /// dispatcher reads too).
    pub names: AwsNames,
    /// `API_STAGE`: the HTTP API stage. API Gateway puts it in front of the path (`/live/admin/…`)
    /// and `lambda_http` keeps it there; unset or `$default` for none.
    pub stage: Option<String>,
    /// The notify functions' ingest settings (`IngestSettings::from_lookup`): a quarantine replay
    /// reads a body as a live push is read.
    pub ingest: IngestSettings,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        Ok(Config {
            names: AwsNames {
                config_table: required("CONFIG_TABLE")?,
                events_table: required("EVENTS_TABLE")?,
                queue_url: required("EVENTS_QUEUE_URL")?,
                dlq_url: required("DEAD_LETTER_QUEUE_URL")?,
            },
            stage: lookup("API_STAGE")
                .map(|s| s.trim().trim_matches('/').to_owned())
                .filter(|s| !s.is_empty() && s != "$default"),
            ingest: IngestSettings::from_lookup(&lookup)?,
        })
    }

    /// The admin use-case on DynamoDB and SQS. Test pushes go out under the dispatcher's
    /// production rules (https, public addresses only), and Push Config URLs are held to the
    /// same rules when they are saved.
    /// Quarantine replays go through ingest with the notify functions' settings (the carriers'
    /// zones).
    pub fn admin(
        &self,
        dynamo: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
    ) -> Result<Admin<DynamoAdmin, HttpPusher, AwsReingest>, lambda_http::Error> {
        let targets = TargetPolicy {
            allow_private: false,
            allow_http: false,
        };
        let reingest = Ingest::new(
            DynamoConfigStore::new(dynamo.clone(), &self.names.config_table),
            QueueThenClaim {
                events: DynamoEventStore::new(dynamo.clone(), &self.names.events_table),
                queue: SqsEventQueue::new(sqs.clone(), &self.names.queue_url),
            },
            EmfMetrics::immediate(),
            self.ingest.clone(),
        );
        Ok(Admin {
            store: DynamoAdmin::new(dynamo, sqs, self.names.clone()),
            pusher: HttpPusher::new(targets)?,
            reingest,
            policy: targets,
        })
    }

    /// The admin routes where API Gateway's requests find them: under `/<stage>`.
    pub fn serve(&self, admin: Router) -> Router {
        match &self.stage {
            Some(stage) => Router::new().nest(&format!("/{stage}"), admin),
            None => admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| env.get(name).cloned())
    }

    const BASE: [(&str, &str); 4] = [
        ("CONFIG_TABLE", "c"),
        ("EVENTS_TABLE", "e"),
        ("EVENTS_QUEUE_URL", "q"),
        ("DEAD_LETTER_QUEUE_URL", "d"),
    ];

    #[test]
    fn a_missing_variable_is_named() {
        for i in 0..BASE.len() {
            let mut env = BASE.to_vec();
            let (name, _) = env.remove(i);
            assert!(from(&env).unwrap_err().to_string().contains(name));
        }
        let config = from(&BASE).unwrap();
        assert_eq!(config.names.dlq_url, "d");
        assert_eq!(config.stage, None);
    }

    /// An HTTP API (payload 2.0) request to `/live/admin/tenants` on stage `live`.
    fn apigw_request(stage: &str, raw_path: &str) -> lambda_http::Request {
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "ANY /admin/{proxy+}",
            "rawPath": raw_path,
            "rawQueryString": "",
            "headers": {"host": "abc.execute-api.us-east-1.amazonaws.com"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "abc", "domainName": "abc.execute-api.us-east-1.amazonaws.com",
                "domainPrefix": "abc", "requestId": "r", "routeKey": "ANY /admin/{proxy+}", "stage": stage,
                "time": "01/Jan/2024:00:00:00 +0000", "timeEpoch": 1704067200000_i64,
                "http": {"method": "GET", "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "10.0.0.1", "userAgent": "t"}
            },
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    async fn status(app: Router, request: lambda_http::Request) -> u16 {
        app.oneshot(request).await.unwrap().status().as_u16()
    }

    #[tokio::test]
    async fn routes_are_found_behind_the_stage_api_gateway_puts_in_the_path() {
        let admin = || Router::new().route("/admin/tenants", get(|| async { "[]" }));
        let mut env = BASE.to_vec();
        env.push(("API_STAGE", "live"));
        let staged = from(&env).unwrap();
        assert_eq!(
            status(
                staged.serve(admin()),
                apigw_request("live", "/live/admin/tenants")
            )
            .await,
            200
        );
        let unstaged = from(&BASE).unwrap();
        assert_eq!(
            status(
                unstaged.serve(admin()),
                apigw_request("$default", "/admin/tenants")
            )
            .await,
            200
        );
    }
}

//! The HTTP edge of the three notify Lambdas (`clickpost-notify`, `shiprocket-notify`,
//! `shipway-notify`): an API Gateway (HTTP API, payload v2) request in, the ingest use-case in
//! `shared`, and its answer out. Each function's `main` is one call to [`run`].

pub mod apigw;
mod config;
mod handler;

/// tests/support/fixtures.rs: the fixtures' reader and list, as every crate's tests have them.
#[cfg(test)]
#[path = "../../../tests/support/fixtures.rs"]
mod fixtures;

pub use config::{Config, ConfigError};
pub use handler::handle;

use aws_sdk_dynamodb::Client as DynamoClient;
use aws_sdk_sqs::Client as SqsClient;
use lambda_http::{service_fn, Error, Request};
use shared::adapters::dynamodb::{DynamoConfigStore, DynamoEventStore};
use shared::adapters::emf::EmfMetrics;
use shared::adapters::sqs::SqsEventQueue;
use shared::ingest::{CachedConfig, Ingest, QueueThenClaim};
use shared::ports::Metrics;
use shared::Carrier;

/// How long a notify function gathers its counts before it writes them as EMF.
pub const METRICS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// The ingest use-case on its AWS adapters.
pub type AwsIngest = Ingest<
    CachedConfig<DynamoConfigStore>,
    QueueThenClaim<DynamoEventStore, SqsEventQueue>,
    EmfMetrics,
>;

/// Builds the use-case from the configuration and one client per AWS service.
pub fn aws_ingest(config: &Config, dynamo: DynamoClient, sqs: SqsClient) -> AwsIngest {
    Ingest::new(
        CachedConfig::new(
            DynamoConfigStore::new(dynamo.clone(), &config.config_table),
            config.config_cache,
        ),
        QueueThenClaim {
            events: DynamoEventStore::new(dynamo, &config.events_table)
                .with_pull_accounts(&config.config_table, config.config_cache),
            queue: SqsEventQueue::new(sqs, &config.events_queue_url),
        },
        // A minute's counts per document, not one per request (`EmfMetrics::every`).
        EmfMetrics::default().every(METRICS_INTERVAL),
        config.ingest_settings(),
    )
}

/// The whole life of a notify function: logging, configuration, clients (built once per
/// container, reused by every invocation), then the Lambda runtime loop.
pub async fn run(carrier: Carrier) -> Result<(), Error> {
    shared::logging::init_json_logging();
    let config = Config::from_env()?;
    let aws = shared::adapters::lambda_sdk::config_from_env()?;
    let ingest = aws_ingest(&config, DynamoClient::new(&aws), SqsClient::new(&aws));
    // The counts still gathered when Lambda stops the container (it sends SIGTERM once an
    // extension is registered, which this does: a no-op one).
    let metrics = ingest.metrics.clone();
    lambda_runtime::spawn_graceful_shutdown_handler(move || async move { metrics.flush_all() })
        .await;
    let ingest = &ingest;
    lambda_http::run(service_fn(move |request: Request| async move {
        let response = handle(ingest, carrier, request).await;
        // Writes the gathered counts when they are due (`EmfMetrics::every`).
        ingest.metrics.flush();
        response
    }))
    .await
}

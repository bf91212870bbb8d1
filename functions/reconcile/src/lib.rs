//! The reconcile Lambda: every 15 minutes (an EventBridge schedule), one run of the shared
//! reconciler (`shared::reconcile`) over the enabled tenants' pull accounts: the quiet shipments
//! from the events table's `by_quiet` index, pulled from the carriers' tracking APIs, and the
//! scans no webhook brought accepted as ingest accepts them (claim, queue).

mod config;
mod handler;

pub use config::{Config, ConfigError};
pub use handler::{handle, RunReport};

use lambda_runtime::{service_fn, Error, LambdaEvent};
use shared::adapters::dynamodb::{DynamoConfigStore, DynamoDeliveryLog, DynamoEventStore};
use shared::adapters::emf::EmfMetrics;
use shared::adapters::pull_http::HttpPullTransport;
use shared::adapters::sqs::SqsEventQueue;
use shared::carriers::pull::PullTransport;
use shared::ingest::QueueThenClaim;
use shared::ports::Metrics;
use shared::reconcile::Reconciler;

/// The reconciler on its AWS adapters.
pub type AwsReconciler = Reconciler<
    DynamoEventStore,
    QueueThenClaim<DynamoEventStore, SqsEventQueue>,
    DynamoDeliveryLog,
    HttpPullTransport,
    EmfMetrics,
>;

/// Builds the pull accounts' store and the use-case from the configuration and one client per
/// service. The reconciler lives as long as the container: it keeps Shiprocket's tokens (valid
/// 240 h) and the carriers' `Retry-After` between runs.
pub fn aws_reconciler(
    config: &Config,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
) -> Result<(DynamoConfigStore, AwsReconciler), Error> {
    let transport = HttpPullTransport::new(config.targets)?;
    Ok((
        DynamoConfigStore::new(dynamo.clone(), &config.config_table),
        aws_reconciler_with(config, dynamo, sqs, transport),
    ))
}

/// The use-case on the stack's tables and queue, with `transport` to the carriers (also what
/// `rms reconcile` runs on the stack, without the metrics).
pub fn aws_reconciler_with<T: PullTransport, M: Metrics + Default>(
    config: &Config,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    transport: T,
) -> Reconciler<
    DynamoEventStore,
    QueueThenClaim<DynamoEventStore, SqsEventQueue>,
    DynamoDeliveryLog,
    T,
    M,
> {
    let events = DynamoEventStore::new(dynamo.clone(), &config.events_table);
    Reconciler::new(
        events.clone(),
        QueueThenClaim {
            events,
            queue: SqsEventQueue::new(sqs, &config.events_queue_url),
        },
        // Each event only polling found is marked in the delivery log (`reconciled`).
        DynamoDeliveryLog::new(dynamo, &config.events_table),
        transport,
        M::default(),
        config.settings.clone(),
    )
}

/// Logging, configuration, clients (once per container), then the runtime loop.
pub async fn run() -> Result<(), Error> {
    shared::logging::init_json_logging();
    let config = Config::from_env()?;
    let aws = shared::adapters::lambda_sdk::config_from_env()?;
    let (accounts, reconciler) = aws_reconciler(
        &config,
        aws_sdk_dynamodb::Client::new(&aws),
        aws_sdk_sqs::Client::new(&aws),
    )?;
    let (accounts, reconciler, targets) = (&accounts, &reconciler, config.targets);
    // The schedule's input is not read: every run looks at every account.
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let report = handle(accounts, reconciler, targets, chrono::Utc::now()).await;
            // The run's counts, as one EMF document per set of dimension values.
            reconciler.metrics.flush();
            Ok::<_, Error>(report?)
        },
    ))
    .await
}

//! The dispatcher Lambda: an SQS batch in, each record delivered by the shared dispatch use-case
//! (bounded concurrency), and an `SqsBatchResponse` naming only the records to retry.

mod config;
mod handler;

pub use config::{Config, ConfigError};
pub use handler::handle;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use shared::adapters::dynamodb::{DynamoConfigStore, DynamoDeliveryLog, DynamoEventStore};
use shared::adapters::emf::EmfMetrics;
use shared::adapters::push::HttpPusher;
use shared::adapters::sqs::SqsQueueActions;
use shared::circuit::Breaker;
use shared::dispatch::{CachedPushConfigs, Dispatch};
use shared::ports::Metrics;

/// The dispatch use-case on its AWS adapters.
pub type AwsDispatch = Dispatch<
    CachedPushConfigs<DynamoConfigStore>,
    HttpPusher,
    DynamoDeliveryLog,
    EmfMetrics,
    DynamoConfigStore,
    DynamoEventStore,
>;

/// Builds the use-case and the queue actions from the configuration and one client per service.
pub fn aws_dispatcher(
    config: &Config,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
) -> Result<(AwsDispatch, SqsQueueActions), Error> {
    let dispatch = Dispatch {
        configs: CachedPushConfigs::new(
            DynamoConfigStore::new(dynamo.clone(), &config.config_table),
            config.config_cache,
        ),
        pusher: HttpPusher::new(config.targets)?,
        // One delivery log page per batch (`handle` flushes it).
        log: DynamoDeliveryLog::new(dynamo.clone(), &config.events_table).batched(),
        // The shipments' state (events table), read for latest-state tenants only.
        shipments: DynamoEventStore::new(dynamo.clone(), &config.events_table),
        metrics: EmfMetrics::default(),
        // Open circuits live in the config table: see `shared::circuit` for why.
        breaker: Breaker::new(
            DynamoConfigStore::new(dynamo, &config.config_table),
            config.breaker.clone(),
        ),
        settings: config.dispatch_settings(),
    };
    let actions =
        SqsQueueActions::new(sqs, &config.events_queue_url, &config.dead_letter_queue_url);
    Ok((dispatch, actions))
}

/// Logging, configuration, clients (once per container), then the runtime loop.
pub async fn run() -> Result<(), Error> {
    shared::logging::init_json_logging();
    let config = Config::from_env()?;
    let aws = shared::adapters::lambda_sdk::config_from_env()?;
    let (dispatch, actions) = aws_dispatcher(
        &config,
        aws_sdk_dynamodb::Client::new(&aws),
        aws_sdk_sqs::Client::new(&aws),
    )?;
    let (dispatch, actions, concurrency) = (&dispatch, &actions, config.concurrency);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let response = handle(dispatch, actions, event.payload, concurrency).await;
        // The batch's counts, as one EMF document per tenant.
        dispatch.metrics.flush();
        Ok::<_, Error>(response)
    }))
    .await
}

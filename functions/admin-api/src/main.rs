//! Lambda: the admin API behind an IAM-authorised HTTP API route. The routes are in the library.

mod config;

use std::sync::Arc;

use lambda_http::Error;

// A container runs one invocation at a time and its work is waiting on the network: one thread
// is enough, and that runtime starts with less code and memory (docs/performance.md, "Cold start").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::logging::init_json_logging();
    let config = config::Config::from_env()?;
    let aws = shared::adapters::lambda_sdk::config_from_env()?;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let admin = config.admin(dynamo, aws_sdk_sqs::Client::new(&aws))?;
    lambda_http::run(config.serve(admin_api::router(Arc::new(admin)))).await
}

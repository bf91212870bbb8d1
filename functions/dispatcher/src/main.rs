//! Lambda: the dispatcher, triggered by the SQS events queue. Everything is in the library.

use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    dispatcher::run().await
}

//! Lambda: the dispatcher, triggered by the SQS events queue. Everything is in the library.

use lambda_runtime::Error;

// A container runs one invocation at a time and its work is waiting on the network: one thread
// is enough, and that runtime starts with less code and memory (docs/performance.md, "Cold start").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    dispatcher::run().await
}

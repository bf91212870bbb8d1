//! Lambda: the reconciler, run by an EventBridge schedule. Everything is in the library.

use lambda_runtime::Error;

// One run at a time, waiting on the network: one thread is enough (docs/performance.md, "Cold
// start").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    reconcile::run().await
}

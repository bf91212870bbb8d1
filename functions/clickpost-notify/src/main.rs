//! Lambda: Clickpost tracking webhooks. Everything but the carrier is in `ingest-http`.

use lambda_http::Error;
use shared::Carrier;

// A container runs one invocation at a time and its work is waiting on the network: one thread
// is enough, and that runtime starts with less code and memory (docs/performance.md, "Cold start").
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    ingest_http::run(Carrier::Clickpost).await
}

//! Lambda: Shipway tracking webhooks. Everything but the carrier is in `ingest-http`.

use lambda_http::Error;
use shared::Carrier;

#[tokio::main]
async fn main() -> Result<(), Error> {
    ingest_http::run(Carrier::Shipway).await
}

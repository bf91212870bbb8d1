//! The floor for the cold-start figures: the smallest `lambda_http` function, built with the same
//! profile and the same `#[tokio::main]` runtime as the real ones, doing no set-up of its own (no
//! logging, no configuration, no AWS clients).

use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_: Request| async { Ok::<_, Error>("hello") })).await
}

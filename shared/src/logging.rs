//! The log filter every binary uses: `RUST_LOG` (or a default), except that the AWS SDK and the
//! HTTP stacks are never logged below INFO. At DEBUG and TRACE they print whole requests and
//! responses, config-table items included, and those hold clients' credentials.

use tracing_subscriber::EnvFilter;

const NEVER_BELOW_INFO: [&str; 10] = [
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_sdk_dynamodb",
    "aws_sdk_sqs",
    "aws_config",
    "hyper",
    "hyper_util",
    "reqwest",
    "h2",
];

/// `RUST_LOG` if set, else `default` (e.g. "info"), with the SDK and HTTP stacks capped at INFO.
pub fn filter(default: &str) -> EnvFilter {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    for target in NEVER_BELOW_INFO {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// JSON logs on stdout with `filter("info")`, as the Lambda functions write them (CloudWatch reads
/// stdout; the function's JSON log format keeps the lines as they are).
pub fn init_json_logging() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter("info"))
        .with_target(false)
        .with_current_span(false)
        .try_init();
}

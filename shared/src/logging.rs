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

/// The time of a log line in UTC with milliseconds (`2026-11-27T10:00:00.123Z`): CloudWatch
/// keeps each line's own arrival time besides, and microseconds are three bytes more on every line.
struct MillisUtc;

impl tracing_subscriber::fmt::time::FormatTime for MillisUtc {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

/// The Lambda functions' log lines, written to `writer`: one JSON object per line, with
/// `timestamp`, `level` (Lambda filters application logs by it) and the event's fields at the top
/// (`message`, `tenant_id`…), and no span or target. Log ingestion is billed by the byte: the
/// `fields` wrapper, the target and the span list were about 60 bytes of every line that no query
/// used.
pub fn json_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_timer(MillisUtc)
        .with_env_filter(filter("info"))
        .with_target(false)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(writer)
        .finish()
}

/// JSON logs on stdout with `filter("info")`, as the Lambda functions write them (CloudWatch reads
/// stdout; the function's JSON log format keeps the lines as they are).
pub fn init_json_logging() {
    let _ = tracing::subscriber::set_global_default(json_subscriber(std::io::stdout));
}

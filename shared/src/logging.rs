//! The log filter every binary uses: `RUST_LOG` (or a default), except that the AWS SDK and the
//! HTTP stacks are never logged below INFO. At DEBUG and TRACE they print whole requests and
//! responses, config-table items included, and those hold clients' credentials.

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
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

impl FormatTime for MillisUtc {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

/// The Lambda functions' log lines, written to `writer`: one JSON object per line, with
/// `timestamp`, `level` (Lambda filters application logs by it), then the fields of the spans
/// the line is in (`tenant_id`, `event_id`…, see [`SpanFieldsOnTop`]) and the event's own fields
/// (`message`…), all at the top, with no target and no span list. Log ingestion is billed by the
/// byte: the `fields` wrapper, the target and the span list were about 60 bytes of every line
/// that no query used, and a flat line is what a CloudWatch Logs Insights query filters on.
pub fn json_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .fmt_fields(JsonFields::new())
        .event_format(SpanFieldsOnTop)
        .with_env_filter(filter("info"))
        .with_writer(writer)
        .finish()
}

/// Formats a line as one flat JSON object: `timestamp`, `level`, `message`, then the fields of
/// this crate's spans the line is in, outermost first (`ingest{carrier, tenant_id}`,
/// `event{event_id}`, `delivery{tenant_id, event_id, attempt}`), then the line's own fields.
/// A field the line names itself wins over a span's of the same name, and an inner span's over
/// an outer one's, so a key appears once. Spans of other crates (the Lambda runtime's
/// `requestId`, which the platform adds to its own lines) are left out: their bytes would be on
/// every line.
pub struct SpanFieldsOnTop;

/// Where this crate's spans come from: the use-cases set them where they know the tenant and
/// the event, so that every line logged below carries them without naming them again.
const OWN_SPANS: &str = "shared::";

impl<S, N> FormatEvent<S, N> for SpanFieldsOnTop
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut own = FieldsOf::default();
        event.record(&mut own);
        let mut fields: Vec<(String, Value)> = Vec::new();
        for span in ctx
            .event_scope()
            .into_iter()
            .flat_map(|scope| scope.from_root())
        {
            if !span.metadata().target().starts_with(OWN_SPANS) {
                continue;
            }
            let extensions = span.extensions();
            let Some(recorded) = extensions.get::<FormattedFields<N>>() else {
                continue;
            };
            // `JsonFields` keeps a span's fields as one JSON object.
            let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&recorded.fields) else {
                continue;
            };
            for (name, value) in map {
                if own.0.iter().any(|(n, _)| *n == name) {
                    continue;
                }
                match fields.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = value,
                    None => fields.push((name, value)),
                }
            }
        }
        let (message, own): (Vec<_>, Vec<_>) = own.0.into_iter().partition(|(n, _)| n == "message");
        write!(writer, "{{\"timestamp\":\"")?;
        MillisUtc.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", event.metadata().level())?;
        for (name, value) in message.into_iter().chain(fields).chain(own) {
            let name = serde_json::to_string(&name).map_err(|_| std::fmt::Error)?;
            let value = serde_json::to_string(&value).map_err(|_| std::fmt::Error)?;
            write!(writer, ",{name}:{value}")?;
        }
        writeln!(writer, "}}")
    }
}

/// An event's fields as JSON values, in the order they were written.
#[derive(Default)]
struct FieldsOf(Vec<(String, Value)>);

impl FieldsOf {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.push((field.name().to_owned(), value));
    }
}

impl Visit for FieldsOf {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    // `%value` (Display) and `?value` (Debug) fields, and the message, arrive here.
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

/// JSON logs on stdout with `filter("info")`, as the Lambda functions write them (CloudWatch reads
/// stdout; the function's JSON log format keeps the lines as they are).
pub fn init_json_logging() {
    let _ = tracing::subscriber::set_global_default(json_subscriber(std::io::stdout));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use std::sync::{Arc, Mutex};

    use serde_json::Value;

    /// What `json_subscriber` writes while `log` runs.
    fn text_of(log: impl FnOnce()) -> String {
        let written = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = written.clone();
        let subscriber = super::json_subscriber(move || Sink(sink.clone()));
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        text
    }

    /// The lines `json_subscriber` writes while `log` runs, each parsed.
    fn lines_of(log: impl FnOnce()) -> Vec<Value> {
        text_of(log)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_carries_its_spans_fields_flat_beside_its_own() {
        let text = text_of(|| {
            let ingest = tracing::error_span!(target: "shared::ingest", "ingest", carrier = "clickpost", tenant_id = tracing::field::Empty);
            let _in_ingest = ingest.enter();
            ingest.record("tenant_id", "acme");
            let event = tracing::error_span!(target: "shared::ingest", "event", event_id = "ev_1");
            let _in_event = event.enter();
            tracing::info!(awb = "AWB1", attempt = 2, "event accepted");
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        let keys = [
            "timestamp",
            "level",
            "message",
            "carrier",
            "tenant_id",
            "event_id",
            "awb",
            "attempt",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|key| text.find(&format!("\"{key}\":")).unwrap())
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "the span fields, outermost first, then the line's own: {text}"
        );
        let line: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "event accepted");
        assert_eq!(line["tenant_id"], "acme");
        assert_eq!(line["event_id"], "ev_1");
        assert_eq!(line["attempt"], 2);
    }

    #[test]
    fn a_field_appears_once_the_lines_own_winning_over_a_spans() {
        let lines = lines_of(|| {
            let outer = tracing::error_span!(target: "shared::dispatch", "delivery", tenant_id = "acme", event_id = "outer");
            let _in_outer = outer.enter();
            let inner =
                tracing::error_span!(target: "shared::dispatch", "event", event_id = "inner");
            let _in_inner = inner.enter();
            tracing::warn!("from the inner span");
            tracing::warn!(tenant_id = "named", "naming its own tenant");
        });
        assert_eq!(lines[0]["event_id"], "inner");
        assert_eq!(lines[1]["tenant_id"], "named");
        for line in &lines {
            let text = line.to_string();
            assert_eq!(text.matches("\"tenant_id\"").count(), 1, "{text}");
            assert_eq!(text.matches("\"event_id\"").count(), 1, "{text}");
        }
    }

    #[test]
    fn other_crates_spans_are_left_out() {
        let lines = lines_of(|| {
            let runtime = tracing::error_span!(target: "lambda_runtime", "Lambda runtime invoke", requestId = "req-1");
            let _in_runtime = runtime.enter();
            tracing::info!("inside the runtime's span");
        });
        assert_eq!(lines[0]["message"], "inside the runtime's span");
        assert!(lines[0].get("requestId").is_none(), "{}", lines[0]);
    }
}

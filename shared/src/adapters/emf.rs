//! Metrics in CloudWatch Embedded Metric Format: JSON lines on stdout, which the Lambda log
//! pipeline turns into metrics in the `RMSNotify` namespace without an API call.
//!
//! Counts are added up in memory and written by `flush`, which each function calls once per
//! invocation: one document per set of dimension values (a dispatcher batch of ten deliveries to
//! one tenant is one document, where it was thirty), latencies as arrays of values. The metric
//! definitions are the bulk of a document (about 150 bytes), and log ingestion is billed by the
//! byte, so a document per count cost more than the INFO line it went with.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use crate::ports::Metrics;

pub const NAMESPACE: &str = "RMSNotify";

/// EMF takes at most 100 values of one metric in one document.
const MAX_VALUES: usize = 100;

/// Where the documents go: stdout in the Lambdas, a buffer in tests.
type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// The counts of one invocation so far, by dimension values, then by metric: a sum for a count,
/// every value for a latency (`…Ms`: CloudWatch keeps their distribution).
type Pending = BTreeMap<Dimensions, Values>;
/// Dimension names and values.
type Dimensions = Vec<(&'static str, String)>;
/// What was recorded of each metric.
type Values = BTreeMap<&'static str, Vec<u64>>;

#[derive(Clone)]
pub struct EmfMetrics {
    pending: Arc<Mutex<Pending>>,
    sink: Sink,
    /// Every count written at once (`immediate`).
    unbuffered: bool,
    /// `flush` writes only this often (`every`); `None`: at every flush.
    interval: Option<std::time::Duration>,
    /// When the counts pending began, and when documents were last written.
    times: Arc<Mutex<Times>>,
}

#[derive(Default)]
struct Times {
    first_pending: Option<std::time::Instant>,
    last_written: Option<std::time::Instant>,
}

impl Default for EmfMetrics {
    fn default() -> Self {
        EmfMetrics::with_sink(|line| {
            use std::io::Write;
            // A metric that cannot be written must not fail the request it describes.
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        })
    }
}

impl std::fmt::Debug for EmfMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmfMetrics").finish_non_exhaustive()
    }
}

impl EmfMetrics {
    /// Metrics whose documents are handed to `sink`, one line each.
    pub fn with_sink(sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        EmfMetrics {
            pending: Arc::default(),
            sink: Arc::new(sink),
            unbuffered: false,
            interval: None,
            times: Arc::default(),
        }
    }

    /// Gathers counts across invocations: `flush` writes when the oldest pending count is
    /// `interval` old, or when nothing was written for `interval` (so a quiet function's counts
    /// are not held back), and `flush_all` writes the rest (at shutdown).
    ///
    /// For the notify functions, where an invocation is one carrier request, mostly one event:
    /// one document per invocation would be one per event, about 250 bytes, more than the event's
    /// log line. Counts still pending when a container is stopped without the shutdown signal
    /// (a crash, a timeout) are lost: at most `interval` of that container's.
    pub fn every(self, interval: std::time::Duration) -> Self {
        EmfMetrics {
            interval: Some(interval),
            ..self
        }
    }

    /// Metrics on stdout that write each count at once, for a process that has no invocation to
    /// flush at (the admin API's rare quarantine replays).
    pub fn immediate() -> Self {
        EmfMetrics {
            unbuffered: true,
            ..EmfMetrics::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_latency(name: &str) -> bool {
    name.ends_with("Ms")
}

/// The documents for what was counted, at `timestamp_ms`: one per set of dimension values, the
/// metrics without dimensions in the first.
pub fn documents(pending: &Pending, timestamp_ms: i64) -> Vec<Value> {
    let mut docs: Vec<Value> = Vec::new();
    let undimensioned = pending.get(&Vec::new());
    let mut groups: Vec<(&Dimensions, &Values)> = pending
        .iter()
        .filter(|(dims, _)| !dims.is_empty())
        .collect();
    if groups.is_empty() {
        if let Some(metrics) = undimensioned {
            groups.push((&EMPTY, metrics));
        }
    }
    for (index, (dims, metrics)) in groups.into_iter().enumerate() {
        let mut doc = Map::new();
        let mut directives = vec![directive(dims, metrics)];
        let mut values = Map::new();
        add_values(&mut values, metrics);
        // The undimensioned metrics ride on the first document.
        if index == 0 && !dims.is_empty() {
            if let Some(extra) = undimensioned {
                directives.push(directive(&EMPTY, extra));
                add_values(&mut values, extra);
            }
        }
        doc.insert(
            "_aws".into(),
            json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": directives}),
        );
        for (name, value) in dims.iter() {
            doc.insert((*name).into(), Value::from(value.as_str()));
        }
        doc.extend(values);
        docs.push(Value::Object(doc));
    }
    docs
}

static EMPTY: Vec<(&'static str, String)> = Vec::new();

fn directive(dims: &[(&'static str, String)], metrics: &BTreeMap<&'static str, Vec<u64>>) -> Value {
    let names: Vec<&str> = dims.iter().map(|(d, _)| *d).collect();
    // Per dimension value, and the total over all of them (what alarms watch).
    let sets = if names.is_empty() {
        json!([[]])
    } else {
        json!([names, []])
    };
    // A count has no unit (CloudWatch's `None`; the alarms and the dashboard name none): "Unit":
    // "Count" was 15 bytes of every document for nothing.
    let definitions: Vec<Value> = metrics
        .keys()
        .map(|name| {
            if is_latency(name) {
                json!({"Name": name, "Unit": "Milliseconds"})
            } else {
                json!({"Name": name})
            }
        })
        .collect();
    json!({"Namespace": NAMESPACE, "Dimensions": sets, "Metrics": definitions})
}

fn add_values(values: &mut Map<String, Value>, metrics: &BTreeMap<&'static str, Vec<u64>>) {
    for (name, recorded) in metrics {
        let value = if is_latency(name) && recorded.len() > 1 {
            // At most MAX_VALUES: the rest of a very large batch is left out of the distribution.
            Value::from(
                recorded
                    .iter()
                    .take(MAX_VALUES)
                    .copied()
                    .collect::<Vec<_>>(),
            )
        } else {
            Value::from(recorded.iter().sum::<u64>())
        };
        values.insert((*name).into(), value);
    }
}

impl EmfMetrics {
    /// Writes every pending count now, whatever the interval.
    pub fn flush_all(&self) {
        let pending = std::mem::take(&mut *self.lock());
        {
            let mut times = self.times.lock().unwrap_or_else(|p| p.into_inner());
            times.first_pending = None;
            if !pending.is_empty() {
                times.last_written = Some(std::time::Instant::now());
            }
        }
        if pending.is_empty() {
            return;
        }
        for doc in documents(&pending, chrono::Utc::now().timestamp_millis()) {
            (self.sink)(&doc.to_string());
        }
    }
}

impl Metrics for EmfMetrics {
    fn count(&self, name: &'static str, value: u64, dimensions: &[(&'static str, &str)]) {
        let dims = dimensions
            .iter()
            .map(|(d, v)| (*d, (*v).to_owned()))
            .collect();
        let mut pending = self.lock();
        if pending.is_empty() {
            let mut times = self.times.lock().unwrap_or_else(|p| p.into_inner());
            times.first_pending = Some(std::time::Instant::now());
        }
        let recorded = pending.entry(dims).or_default().entry(name).or_default();
        if is_latency(name) || recorded.is_empty() {
            recorded.push(value);
        } else if let Some(sum) = recorded.first_mut() {
            *sum += value;
        }
        drop(pending);
        if self.unbuffered {
            self.flush();
        }
    }

    fn flush(&self) {
        if let Some(interval) = self.interval {
            let times = self.times.lock().unwrap_or_else(|p| p.into_inner());
            let due = times
                .first_pending
                .is_some_and(|at| at.elapsed() >= interval)
                || times.last_written.is_none_or(|at| at.elapsed() >= interval);
            if !due {
                return;
            }
        }
        self.flush_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> (EmfMetrics, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let metrics = EmfMetrics::with_sink(move |line| sink.lock().unwrap().push(line.to_owned()));
        (metrics, lines)
    }

    #[test]
    fn nothing_is_written_until_a_flush_and_then_one_document_per_dimension_values() {
        let (metrics, lines) = recorded();
        for _ in 0..10 {
            metrics.count("Delivered", 1, &[("Tenant", "acme")]);
            metrics.count("DeliveryLatencyMs", 12, &[]);
        }
        metrics.count("Delivered", 1, &[("Tenant", "globex")]);
        assert!(lines.lock().unwrap().is_empty());
        metrics.flush();
        let docs: Vec<Value> = lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(docs.len(), 2);
        let acme = docs.iter().find(|d| d["Tenant"] == "acme").unwrap();
        assert_eq!(acme["Delivered"], 10);
        assert_eq!(acme["DeliveryLatencyMs"], json!(vec![12; 10]));
        let directives = &acme["_aws"]["CloudWatchMetrics"];
        assert_eq!(directives[0]["Namespace"], "RMSNotify");
        assert_eq!(directives[0]["Dimensions"], json!([["Tenant"], []]));
        assert_eq!(directives[0]["Metrics"][0], json!({"Name": "Delivered"}));
        assert_eq!(directives[1]["Dimensions"], json!([[]]));
        assert_eq!(directives[1]["Metrics"][0]["Unit"], "Milliseconds");
        let globex = docs.iter().find(|d| d["Tenant"] == "globex").unwrap();
        assert_eq!(globex["Delivered"], 1);
        assert!(globex.get("DeliveryLatencyMs").is_none());
        // A flush empties the invocation's counts.
        metrics.flush();
        assert_eq!(lines.lock().unwrap().len(), 2);
    }

    #[test]
    fn counts_with_two_dimensions_keep_them_and_the_total() {
        let (metrics, lines) = recorded();
        metrics.count(
            "Rejected",
            1,
            &[("Carrier", "clickpost"), ("Reason", "TooLarge")],
        );
        metrics.count("Received", 1, &[("Carrier", "clickpost")]);
        metrics.flush();
        let docs: Vec<Value> = lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(docs.len(), 2);
        let rejected = docs.iter().find(|d| d.get("Rejected").is_some()).unwrap();
        assert_eq!(
            rejected["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0],
            json!(["Carrier", "Reason"])
        );
        assert_eq!(
            (rejected["Rejected"].as_u64(), rejected["Reason"].as_str()),
            (Some(1), Some("TooLarge"))
        );
    }

    #[test]
    fn gathered_counts_are_written_at_once_after_a_quiet_interval_then_held_until_due() {
        let (metrics, lines) = recorded();
        let metrics = metrics.every(std::time::Duration::from_secs(3600));
        metrics.count("Received", 1, &[("Carrier", "clickpost")]);
        metrics.flush();
        assert_eq!(
            lines.lock().unwrap().len(),
            1,
            "nothing written yet: at once"
        );
        for _ in 0..5 {
            metrics.count("Received", 1, &[("Carrier", "clickpost")]);
            metrics.flush();
        }
        assert_eq!(lines.lock().unwrap().len(), 1, "held for the interval");
        metrics.flush_all();
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 2);
        let doc: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(doc["Received"], 5);
    }

    #[test]
    fn metrics_without_dimensions_alone_make_one_document() {
        let (metrics, lines) = recorded();
        metrics.count("EndToEndLatencyMs", 40, &[]);
        metrics.flush();
        let doc: Value = serde_json::from_str(&lines.lock().unwrap()[0]).unwrap();
        assert_eq!(doc["EndToEndLatencyMs"], 40);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
    }
}

//! Metrics in CloudWatch Embedded Metric Format: one JSON line on stdout per count, which the
//! Lambda log pipeline turns into metrics in the `RMSNotify` namespace without an API call.

use std::io::Write;

use serde_json::{json, Map, Value};

use crate::ports::Metrics;

pub const NAMESPACE: &str = "RMSNotify";

#[derive(Debug, Clone, Default)]
pub struct EmfMetrics;

/// One EMF document for a count.
pub fn document(name: &str, value: u64, dimensions: &[(&str, &str)], timestamp_ms: i64) -> Value {
    let names: Vec<&str> = dimensions.iter().map(|(d, _)| *d).collect();
    // Per dimension value, and the total over all of them (what alarms watch).
    let sets = if names.is_empty() {
        json!([[]])
    } else {
        json!([names, []])
    };
    let unit = if name.ends_with("Ms") {
        "Milliseconds"
    } else {
        "Count"
    };
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": sets,
                "Metrics": [{"Name": name, "Unit": unit}],
            }],
        }),
    );
    for (d, v) in dimensions {
        doc.insert((*d).into(), Value::from(*v));
    }
    doc.insert(name.into(), Value::from(value));
    Value::Object(doc)
}

impl Metrics for EmfMetrics {
    fn count(&self, name: &'static str, value: u64, dimensions: &[(&'static str, &str)]) {
        let line = document(
            name,
            value,
            dimensions,
            chrono::Utc::now().timestamp_millis(),
        );
        // A metric that cannot be written must not fail the request it describes.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_an_emf_document_with_its_dimensions() {
        let doc = document(
            "Rejected",
            1,
            &[("Carrier", "clickpost"), ("Reason", "TooLarge")],
            7,
        );
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "RMSNotify"
        );
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0],
            json!(["Carrier", "Reason"])
        );
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Count"
        );
        assert_eq!(
            (doc["Rejected"].as_u64(), doc["Reason"].as_str()),
            (Some(1), Some("TooLarge"))
        );
        let latency = document("DeliveryLatencyMs", 12, &[], 7);
        assert_eq!(
            latency["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Milliseconds"
        );
    }
}

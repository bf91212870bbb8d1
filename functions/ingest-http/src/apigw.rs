//! The API Gateway side of a carrier's POST: the HTTP API (payload v2) event a request to a
//! carrier's notify path becomes. Tests and the local tools build requests here, so that they go
//! through lambda_http's own parsing exactly as production requests do.

use base64::Engine;
use lambda_http::Request;
use serde_json::{json, Map, Value};
use shared::Carrier;

/// The HTTP API event for a request to `carrier`'s notify path, parsed by lambda_http. A body that
/// is not UTF-8 travels base64-encoded, as API Gateway sends it.
///
/// # Panics
/// If lambda_http cannot parse the event it built, which would be a bug here.
pub fn notify_request(
    carrier: Carrier,
    method: &str,
    headers: &[(&str, &str)],
    query: &str,
    body: &[u8],
) -> Request {
    let path = carrier.spec().notify_path;
    let mut header_map: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::from(*v)))
        .collect();
    header_map
        .entry("content-type")
        .or_insert_with(|| Value::from("application/json"));
    let query_map: Map<String, Value> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), Value::from(v)))
        .collect();
    let (body, encoded) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let route = format!("{method} {path}");
    let event = json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": query,
        "headers": header_map,
        "queryStringParameters": if query_map.is_empty() { Value::Null } else { Value::Object(query_map) },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "rms-test"},
            "requestId": "local",
            "routeKey": route,
            "stage": "$default",
            "time": "22/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_000_000_000_i64
        },
        "body": if body.is_empty() { Value::Null } else { Value::from(body) },
        "isBase64Encoded": encoded
    });
    #[allow(clippy::expect_used)]
    lambda_http::request::from_str(&event.to_string())
        .expect("lambda_http parses the HTTP API event built here")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::RequestExt;

    #[test]
    fn no_shiprocket_path_holds_a_substring_its_panel_refuses() {
        let path = Carrier::Shiprocket.spec().notify_path;
        for banned in ["shiprocket", "kartrocket", "sr", "kr"] {
            assert!(!path.contains(banned), "{path} contains {banned}");
        }
    }

    #[test]
    fn the_event_carries_method_headers_query_and_body() {
        let req = notify_request(
            Carrier::Shipway,
            "POST",
            &[("X-Api-Key", "k")],
            "key=q",
            b"\xff",
        );
        assert_eq!(req.method(), "POST");
        assert_eq!(req.uri().path(), "/rms/in/api/shipway/notify");
        assert_eq!(req.headers()["x-api-key"], "k");
        assert_eq!(req.query_string_parameters().first("key"), Some("q"));
        assert_eq!(req.body().as_ref(), b"\xff");
    }
}

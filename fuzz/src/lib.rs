//! What the fuzz targets check, shared by the targets in `fuzz_targets/` (one line each).
//!
//! - `normalize_*`: a carrier normaliser never panics, and every event it returns has an
//!   `evt_…` id, a shipment key, the context's tenant, its own carrier, and survives a JSON round
//!   trip unchanged.
//! - `ingest_handler`: an API Gateway request built from the input, through the real handler on
//!   the in-memory stores, never panics and is answered with a status from `shared::http`'s
//!   table (200, 400, 401, 405, 413, 503), a JSON body, and `Retry-After` on 503.

use std::sync::OnceLock;

use arbitrary::Unstructured;
use chrono::{DateTime, NaiveDate, Utc};
use shared::adapters::memory::{MemoryConfig, MemoryEvents, MemoryQueue, RecordingMetrics};
use shared::auth::Credential;
use shared::ingest::{QueueThenClaim, Ingest, IngestSettings};
use shared::ports::TenantAuth;
use shared::{CanonicalEvent, Carrier, NormalizeContext, TenantId};

pub const TENANT: &str = "acme";


/// A fixed receive time, so that a crash replays exactly.
pub fn received_at() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2026, 11, 22)
        .and_then(|d| d.and_hms_opt(10, 0, 0))
        .expect("a valid date")
        .and_utc()
}

/// Normalises `data` as `carrier`'s webhook and checks every event it gives.
pub fn normalize_holds_invariants(carrier: Carrier, data: &[u8]) {
    let ctx = NormalizeContext::new(shared::TenantId::parse(TENANT).unwrap(), received_at());
    let Ok(events) = shared::normalize(carrier, data, &ctx) else {
        return;
    };
    for event in &events {
        let id = event.event_id.as_str();
        assert!(id.starts_with("evt_") && id.len() > 4, "event_id {id:?}");
        assert!(!event.shipment_key().is_empty(), "empty shipment key");
        assert_eq!(event.tenant_id.as_str(), TENANT);
        assert_eq!(event.carrier, carrier);
        let json = serde_json::to_string(event).expect("a canonical event serialises");
        let back: CanonicalEvent = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("the event does not parse back ({e}): {json}"));
        assert_eq!(
            &back, event,
            "the event changed in a JSON round trip: {json}"
        );
    }
}

// ---- ingest_handler ------------------------------------------------------------------------
//
// The input is split with `arbitrary::Unstructured`, one byte per choice, so that seeds can be
// written by hand (fuzz/make-seeds):
//
//   carrier byte        % the number of carriers: Carrier::ALL in order
//   method byte         % 8: METHODS, or (7) a token read as a string
//   header count byte   % 5; then per header:
//     name byte         % 7: HEADER_NAMES, or (6) a name read as a string
//     value byte        0: the carrier's key, 1: another carrier's key, 2: blank, else a string
//   query byte          0: none, 1: `key=` + the Shipway key, else a string
//   the rest            the body
//
// A string is a length byte and that many bytes. Strings are cleaned into what API Gateway can
// deliver (header-name tokens, header values without control characters, a URI query), because
// lambda_http's event parsing rejects anything else before the handler would run.

const METHODS: [&str; 7] = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "post"];
const HEADER_NAMES: [&str; 6] = [
    "webhook_key",
    "authorization",
    "x-api-key",
    "anx-api-key",
    "content-type",
    "user-agent",
];

/// Indexes of METHODS and HEADER_NAMES that fuzz/make-seeds uses.
pub const POST: u8 = 1;
pub const WEBHOOK_KEY: u8 = 0;
pub const X_API_KEY: u8 = 2;

struct Request {
    carrier: Carrier,
    method: String,
    headers: Vec<(String, String)>,
    query: String,
    body: Vec<u8>,
}

/// The key the ingest target's tenant is registered with for `carrier`.
fn key_of(carrier: Carrier) -> String {
    format!("{carrier}-fuzz-key-0042")
}

fn string<'a>(u: &mut Unstructured<'a>) -> arbitrary::Result<&'a [u8]> {
    let len = usize::from(u.arbitrary::<u8>()?);
    u.bytes(len.min(u.len()))
}

fn split(data: &[u8]) -> arbitrary::Result<Request> {
    let mut u = Unstructured::new(data);
    let carrier_index = usize::from(u.arbitrary::<u8>()?) % Carrier::ALL.len();
    let carrier = Carrier::ALL[carrier_index];
    let method = match usize::from(u.arbitrary::<u8>()?) % 8 {
        7 => token(string(&mut u)?, "FUZZ"),
        i => METHODS[i].to_owned(),
    };
    let mut headers = Vec::new();
    for _ in 0..u.arbitrary::<u8>()? % 5 {
        let name = match usize::from(u.arbitrary::<u8>()?) % 7 {
            6 => header_name(string(&mut u)?),
            i => HEADER_NAMES[i].to_owned(),
        };
        let value = match u.arbitrary::<u8>()? {
            0 => key_of(carrier),
            1 => key_of(Carrier::ALL[(carrier_index + 1) % Carrier::ALL.len()]),
            2 => " ".to_owned(),
            _ => header_value(string(&mut u)?),
        };
        headers.push((name, value));
    }
    let query = match u.arbitrary::<u8>()? {
        0 => String::new(),
        1 => format!("key={}", key_of(Carrier::Shipway)),
        _ => query(string(&mut u)?),
    };
    Ok(Request {
        carrier,
        method,
        headers,
        query,
        body: u.take_rest().to_vec(),
    })
}

fn token(bytes: &[u8], empty: &str) -> String {
    let t: String = bytes
        .iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(|&b| char::from(b))
        .collect();
    if t.is_empty() {
        empty.to_owned()
    } else {
        t
    }
}

/// `host` and `x-forwarded-proto` are set by API Gateway, never by the caller.
fn header_name(bytes: &[u8]) -> String {
    let name: String = bytes
        .iter()
        .map(u8::to_ascii_lowercase)
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        .map(char::from)
        .collect();
    match name.as_str() {
        "" | "host" | "x-forwarded-proto" => format!("x-fuzz-{name}"),
        _ => name,
    }
}

fn header_value(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|&c| c == '\t' || (c >= ' ' && c != '\x7f'))
        .collect()
}

fn query(bytes: &[u8]) -> String {
    bytes
        .iter()
        .filter(|&&b| b.is_ascii_alphanumeric() || b"-._~%&=+!$'()*,;:@/?".contains(&b))
        .map(|&b| char::from(b))
        .collect()
}

type MemoryIngest =
    Ingest<MemoryConfig, QueueThenClaim<MemoryEvents, MemoryQueue>, RecordingMetrics>;

/// A fresh world per input (a duplicate answer must not depend on earlier inputs, or crashes
/// would not replay): the three keys registered for `acme`, empty stores.
fn world() -> MemoryIngest {
    let config = MemoryConfig::default();
    let tenant = TenantAuth {
        tenant_id: TenantId::parse(TENANT).expect("a valid tenant id"),
        include_source: true,
        enabled: true,
    };
    for carrier in Carrier::ALL {
        config.add_credential(carrier, &Credential::new(&key_of(carrier)), tenant.clone());
    }
    Ingest::new(
        config,
        QueueThenClaim {
            events: MemoryEvents::default(),
            queue: MemoryQueue::default(),
        },
        RecordingMetrics::default(),
        IngestSettings::default(),
    )
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// `RMS_FUZZ_VERBOSE=1` prints each answer, for replaying an input by hand.
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("RMS_FUZZ_VERBOSE").is_some())
}

/// The statuses `shared::http::reply` can answer.
const ALLOWED: [u16; 7] = [200, 400, 401, 405, 413, 415, 503];

/// Sends the request `data` describes through the handler and checks the answer.
pub fn ingest_answers_from_the_table(data: &[u8]) {
    let Ok(r) = split(data) else { return };
    let headers: Vec<(&str, &str)> = r
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let request =
        ingest_http::apigw::notify_request(r.carrier, &r.method, &headers, &r.query, &r.body);
    let ingest = world();
    let response = runtime()
        .block_on(ingest_http::handle(&ingest, r.carrier, request))
        .expect("the handler answers every request");
    let status = response.status().as_u16();
    if verbose() {
        let body = String::from_utf8_lossy(response.body().as_ref());
        eprintln!("{} {} -> {status} {body}", r.carrier, r.method);
    }
    assert!(ALLOWED.contains(&status), "status {status}");
    let body: serde_json::Value =
        serde_json::from_slice(response.body().as_ref()).expect("the answer is JSON");
    assert!(body.is_object(), "the answer is a JSON object: {body}");
    assert_eq!(
        response.headers().contains_key("retry-after"),
        status == 503,
        "Retry-After goes with 503 and only with it"
    );
}

// ---- deep_nesting --------------------------------------------------------------------------
//
// The input says how deep to nest (two bytes, times 4: up to 262,140 levels), with which brackets
// and keys (the next bytes, cycled), and what to put at the bottom (the rest). A body nested deeper
// than `MAX_DEPTH` must be refused as such by every carrier, and nothing (classifying, scrubbing,
// normalising) may overflow the stack on any depth.

/// Builds the nested body the input describes and runs every carrier's edge over it.
pub fn nesting_is_refused_at_any_depth(data: &[u8]) {
    let [hi, lo, shape_len, rest @ ..] = data else {
        return;
    };
    let depth = usize::from(u16::from_be_bytes([*hi, *lo])) * 4;
    let (shape, bottom) = rest.split_at(usize::from(*shape_len).min(rest.len()));
    let mut body = Vec::with_capacity(depth * 8 + bottom.len());
    let mut closers = Vec::with_capacity(depth);
    for level in 0..depth {
        let pick = shape.get(level % shape.len().max(1)).copied().unwrap_or(0);
        match pick % 4 {
            0 => {
                body.push(b'[');
                closers.push(b']');
            }
            1 => {
                body.extend_from_slice(br#"{"hash":"#);
                closers.push(b'}');
            }
            2 => {
                body.extend_from_slice(br#"{"status_feed":"#);
                closers.push(b'}');
            }
            _ => {
                body.extend_from_slice(br#"{"a":"x","scans":"#);
                closers.push(b'}');
            }
        }
    }
    body.extend_from_slice(if bottom.is_empty() { b"1" } else { bottom });
    body.extend(closers.iter().rev());
    for carrier in Carrier::ALL {
        let spec = carrier.spec();
        let _ = spec.classify(&body);
        let _ = spec.scrub(&body);
        let result = shared::normalize(
            carrier,
            &body,
            &NormalizeContext::new(shared::TenantId::parse(TENANT).unwrap(), received_at()),
        );
        if depth > shared::carriers::MAX_DEPTH {
            assert!(
                matches!(result, Err(shared::NormalizeError::TooDeep { .. })),
                "{carrier}: {depth} levels were not refused as too deep"
            );
        }
    }
}

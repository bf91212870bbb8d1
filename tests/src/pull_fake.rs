//! A local fake of the three carriers' pull APIs, for the pull clients' integration tests: one
//! axum server on 127.0.0.1 and a free port, answering the documented shapes
//! (docs/carriers.md "Pull APIs") from state the test sets, and recording every call.
//!
//! | carrier | route | answers |
//! |---|---|---|
//! | Clickpost | `GET /api/v2/track-order/?username&key&waybill&cp_id` | `{meta, result: {<awb>: …}}`; a wrong key is `meta.status` 301 in a 200; an AWB not set (or of another `cp_id`) is `valid: false`; more than 5 AWBs, `meta.status` 400 |
//! | Clickpost | `GET /api/v1/updated-order?username&key&start_date&end_date[&page]` | the records whose update time is in the window, [`PullFake::clickpost_page_size`] per page, `meta.next` the next page's absolute URL (credentials included); a window over 1800 s, `meta.status` 400 |
//! | Shiprocket | `POST /v1/external/auth/login` | `{token}` for the account's email and password, else 400 |
//! | Shiprocket | `POST /v1/external/courier/track/awbs` | `{<awb>: {tracking_data}}` (or the nested shape) for a live bearer token, else 401; AWBs not set are left out; more than 50, 422 |
//! | Shipway | `POST /api/getOrderShipmentDetails` | `{status: "Success", response}`; wrong credentials or an unknown order, `{status: "Error", message}` in a 200 |
//!
//! On demand, per carrier, for the next call: a 429 or 503 with `Retry-After`, a failure flag in a
//! 200 (Clickpost `meta.success: false`, Shiprocket `{message, status_code}`, Shipway
//! `status: "Error"`), a delay (timeouts). [`PullFake::expire_shiprocket_tokens`] makes every
//! token issued so far answer 401.

#![allow(clippy::unwrap_used)] // a failed set-up is a failed test

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use shared::Carrier;

/// One call the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCall {
    pub carrier: Carrier,
    pub method: &'static str,
    pub path: String,
    /// The query as received (credentials included: the fake is the carrier).
    pub query: String,
    /// Shiprocket's bearer token, if one was sent.
    pub bearer: Option<String>,
    /// The status answered.
    pub status: u16,
}

/// What the next call to a carrier gets instead of its answer.
#[derive(Debug, Clone)]
enum Fault {
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    FailureIn200,
    Delay(Duration),
}

#[derive(Default)]
struct FakeState {
    base_url: String,
    clickpost_accounts: Vec<(String, String)>,
    /// AWB → (cp_id, the result object).
    clickpost_tracks: HashMap<String, (i64, Value)>,
    /// (update time, epoch seconds; the record).
    clickpost_updates: Vec<(i64, Value)>,
    clickpost_page_size: usize,
    shiprocket_accounts: Vec<(String, String)>,
    shiprocket_tokens: HashMap<String, bool>,
    shiprocket_tracks: HashMap<String, Value>,
    shiprocket_nested: bool,
    shipway_accounts: Vec<(String, String)>,
    shipway_orders: HashMap<String, Value>,
    faults: HashMap<Carrier, VecDeque<Fault>>,
    calls: Vec<FakeCall>,
}

type Shared = Arc<Mutex<FakeState>>;

/// The running fake. Stopped when dropped.
pub struct PullFake {
    pub base_url: String,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for PullFake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl PullFake {
    /// Starts the fake on 127.0.0.1 and a free port, on the test's runtime.
    pub async fn start() -> PullFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let state: Shared = Arc::new(Mutex::new(FakeState {
            base_url: base_url.clone(),
            clickpost_page_size: 100,
            ..FakeState::default()
        }));
        let app = Router::new()
            .route("/api/v2/track-order/", get(clickpost_track))
            .route("/api/v1/updated-order", get(clickpost_updated))
            .route("/v1/external/auth/login", post(shiprocket_login))
            .route("/v1/external/courier/track/awbs", post(shiprocket_track))
            .route("/api/getOrderShipmentDetails", post(shipway_details))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        PullFake {
            base_url,
            state,
            server,
        }
    }

    /// The base URL of Shiprocket's API on the fake (`…/v1/external`).
    pub fn shiprocket_base_url(&self) -> String {
        format!("{}/v1/external", self.base_url)
    }

    fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub fn clickpost_account(&self, username: &str, key: &str) {
        self.with(|s| {
            s.clickpost_accounts
                .push((username.to_owned(), key.to_owned()))
        });
    }

    /// What track-order answers for `awb` of courier partner `cp_id`: a result object
    /// (`{latest_status, scans, valid, additional}`).
    pub fn clickpost_track(&self, awb: &str, cp_id: i64, result: Value) {
        self.with(|s| s.clickpost_tracks.insert(awb.to_owned(), (cp_id, result)));
    }

    /// A record updated-order lists when its window holds `updated_at` (epoch seconds).
    pub fn clickpost_update(&self, updated_at: i64, record: Value) {
        self.with(|s| s.clickpost_updates.push((updated_at, record)));
    }

    pub fn clickpost_page_size(&self, size: usize) {
        self.with(|s| s.clickpost_page_size = size.max(1));
    }

    pub fn shiprocket_account(&self, email: &str, password: &str) {
        self.with(|s| {
            s.shiprocket_accounts
                .push((email.to_owned(), password.to_owned()))
        });
    }

    /// What bulk tracking answers for `awb`: `{"tracking_data": …}`.
    pub fn shiprocket_track(&self, awb: &str, answer: Value) {
        self.with(|s| s.shiprocket_tracks.insert(awb.to_owned(), answer));
    }

    /// Answers bulk tracking as `{"tracking_data": {<awb>: …}}` (the shape one integrator reads).
    pub fn shiprocket_nested_shape(&self, nested: bool) {
        self.with(|s| s.shiprocket_nested = nested);
    }

    /// Every token issued so far answers 401 from now on (expired or revoked).
    pub fn expire_shiprocket_tokens(&self) {
        self.with(|s| {
            s.shiprocket_tokens
                .values_mut()
                .for_each(|live| *live = false)
        });
    }

    pub fn shipway_account(&self, username: &str, licence_key: &str) {
        self.with(|s| {
            s.shipway_accounts
                .push((username.to_owned(), licence_key.to_owned()))
        });
    }

    /// What `getOrderShipmentDetails` answers for `order_id`: the `response` object.
    pub fn shipway_order(&self, order_id: &str, response: Value) {
        self.with(|s| s.shipway_orders.insert(order_id.to_owned(), response));
    }

    /// The next call to `carrier` answers `status` (429, 503…) with `Retry-After: seconds`.
    pub fn refuse_next(&self, carrier: Carrier, status: u16, retry_after: Option<u64>) {
        self.push_fault(
            carrier,
            Fault::Status {
                status,
                retry_after,
            },
        );
    }

    /// The next call to `carrier` answers 200 with the carrier's failure flag.
    pub fn fail_next_in_200(&self, carrier: Carrier) {
        self.push_fault(carrier, Fault::FailureIn200);
    }

    /// The next call to `carrier` is answered only after `delay`.
    pub fn delay_next(&self, carrier: Carrier, delay: Duration) {
        self.push_fault(carrier, Fault::Delay(delay));
    }

    fn push_fault(&self, carrier: Carrier, fault: Fault) {
        self.with(|s| s.faults.entry(carrier).or_default().push_back(fault));
    }

    /// Every call received, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.with(|s| s.calls.clone())
    }

    /// How many calls went to `path`.
    pub fn calls_to(&self, path: &str) -> usize {
        self.with(|s| s.calls.iter().filter(|c| c.path == path).count())
    }
}

/// Takes the carrier's next fault, records the call and answers the fault if it is one that
/// replaces the answer (a delay is served first, then the call goes on).
async fn begin(
    state: &Shared,
    carrier: Carrier,
    method: &'static str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
) -> Result<bool, Response> {
    let fault = state
        .lock()
        .unwrap()
        .faults
        .get_mut(&carrier)
        .and_then(VecDeque::pop_front);
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let record = |status: u16| FakeCall {
        carrier,
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        bearer: bearer.clone(),
        status,
    };
    match fault {
        Some(Fault::Status {
            status,
            retry_after,
        }) => {
            state.lock().unwrap().calls.push(record(status));
            let mut response = (StatusCode::from_u16(status).unwrap(), "slow down").into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from(seconds));
            }
            Err(response)
        }
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            Ok(false)
        }
        Some(Fault::FailureIn200) => Ok(true),
        None => Ok(false),
    }
}

fn finish(
    state: &Shared,
    carrier: Carrier,
    method: &'static str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    status: u16,
) {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    state.lock().unwrap().calls.push(FakeCall {
        carrier,
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        bearer,
        status,
    });
}

fn json_response(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn query_map(query: &Option<String>) -> HashMap<String, String> {
    form_urlencoded(query.as_deref().unwrap_or(""))
}

fn form_urlencoded(query: &str) -> HashMap<String, String> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn clickpost_meta(status: i64, success: bool, message: &str) -> Value {
    json!({"status": status, "success": success, "message": message})
}

async fn clickpost_track(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let path = "/api/v2/track-order/";
    let raw = query.clone().unwrap_or_default();
    let fail = match begin(&state, Carrier::Clickpost, "GET", path, &raw, &headers).await {
        Ok(fail) => fail,
        Err(response) => return response,
    };
    let q = query_map(&query);
    let body = {
        let s = state.lock().unwrap();
        let authorised = s
            .clickpost_accounts
            .iter()
            .any(|(u, k)| q.get("username") == Some(u) && q.get("key") == Some(k));
        let waybills: Vec<String> = q
            .get("waybill")
            .map(|w| w.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        let cp_id: Option<i64> = q.get("cp_id").and_then(|c| c.parse().ok());
        if fail {
            json!({"meta": clickpost_meta(330, false, "waybill does not exist"), "result": null})
        } else if !authorised {
            json!({"meta": clickpost_meta(301, false, "Authentication Failed: Invalid Token or API Key"), "result": null})
        } else if waybills.len() > 5 || cp_id.is_none() {
            json!({"meta": clickpost_meta(400, false, "upto 5 waybills of one cp_id"), "result": null})
        } else {
            let result: serde_json::Map<String, Value> = waybills
                .iter()
                .map(|awb| {
                    let found = s
                        .clickpost_tracks
                        .get(awb)
                        .filter(|(cp, _)| Some(*cp) == cp_id)
                        .map(|(_, result)| result.clone())
                        .unwrap_or_else(|| json!({"valid": false, "scans": [], "latest_status": null, "additional": {}}));
                    (awb.clone(), found)
                })
                .collect();
            json!({"meta": clickpost_meta(200, true, "SUCCESS"), "result": result})
        }
    };
    finish(&state, Carrier::Clickpost, "GET", path, &raw, &headers, 200);
    json_response(200, body)
}

async fn clickpost_updated(
    State(state): State<Shared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let path = "/api/v1/updated-order";
    let raw = query.clone().unwrap_or_default();
    let fail = match begin(&state, Carrier::Clickpost, "GET", path, &raw, &headers).await {
        Ok(fail) => fail,
        Err(response) => return response,
    };
    let q = query_map(&query);
    let body = {
        let s = state.lock().unwrap();
        let authorised = s
            .clickpost_accounts
            .iter()
            .any(|(u, k)| q.get("username") == Some(u) && q.get("key") == Some(k));
        let number = |name: &str| q.get(name).and_then(|v| v.parse::<i64>().ok());
        let (start, end) = (number("start_date"), number("end_date"));
        let page = number("page").unwrap_or(1).max(1) as usize;
        if fail {
            json!({"meta": clickpost_meta(500, false, "Internal error, please retry"), "result": []})
        } else if !authorised {
            json!({"meta": clickpost_meta(301, false, "Authentication Failed: Invalid Token or API Key"), "result": []})
        } else {
            match (start, end) {
                (Some(start), Some(end)) if end >= start && end - start <= 1800 => {
                    let records: Vec<&Value> = s
                        .clickpost_updates
                        .iter()
                        .filter(|(at, _)| (start..=end).contains(at))
                        .map(|(_, r)| r)
                        .collect();
                    let size = s.clickpost_page_size;
                    let pages = records.chunks(size).count().max(1);
                    let this: Vec<&Value> = records
                        .chunks(size)
                        .nth(page - 1)
                        .unwrap_or_default()
                        .to_vec();
                    let next = (page < pages).then(|| {
                        format!(
                            "{}{path}?username={}&key={}&start_date={start}&end_date={end}&page={}",
                            s.base_url,
                            q["username"],
                            q["key"],
                            page + 1
                        )
                    });
                    json!({"meta": {"status": 200, "success": true, "message": "SUCCESS", "next": next}, "result": this})
                }
                _ => {
                    json!({"meta": clickpost_meta(400, false, "Difference between start time and end time cannot be greater than 1800 seconds"), "result": []})
                }
            }
        }
    };
    finish(&state, Carrier::Clickpost, "GET", path, &raw, &headers, 200);
    json_response(200, body)
}

async fn shiprocket_login(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = "/v1/external/auth/login";
    if let Err(response) = begin(&state, Carrier::Shiprocket, "POST", path, "", &headers).await {
        return response;
    }
    let given: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, answer) = {
        let mut s = state.lock().unwrap();
        let ok = s.shiprocket_accounts.iter().any(|(e, p)| {
            given["email"].as_str() == Some(e) && given["password"].as_str() == Some(p)
        });
        if ok {
            let token = format!("eyJ.fake-token-{}.sig", s.shiprocket_tokens.len() + 1);
            s.shiprocket_tokens.insert(token.clone(), true);
            (
                200,
                json!({"id": 1, "email": given["email"], "company_id": 7, "token": token}),
            )
        } else {
            (
                400,
                json!({"message": "Invalid email and password combination", "status_code": 400}),
            )
        }
    };
    finish(
        &state,
        Carrier::Shiprocket,
        "POST",
        path,
        "",
        &headers,
        status,
    );
    json_response(status, answer)
}

async fn shiprocket_track(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = "/v1/external/courier/track/awbs";
    let fail = match begin(&state, Carrier::Shiprocket, "POST", path, "", &headers).await {
        Ok(fail) => fail,
        Err(response) => return response,
    };
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    let given: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, answer) = {
        let s = state.lock().unwrap();
        let live = s.shiprocket_tokens.get(&token).copied().unwrap_or(false);
        let awbs: Vec<String> = given["awbs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if !live {
            (
                401,
                json!({"message": "There is some error during validation. You need to check your token or credentials", "status_code": 401}),
            )
        } else if fail {
            (
                200,
                json!({"message": "Something went wrong, please try again", "status_code": 500}),
            )
        } else if awbs.len() > 50 {
            (
                422,
                json!({"message": "Maximum of 50 AWB codes is supported at a time", "status_code": 422}),
            )
        } else {
            let found: serde_json::Map<String, Value> = awbs
                .iter()
                .filter_map(|awb| {
                    s.shiprocket_tracks
                        .get(awb)
                        .map(|t| (awb.clone(), t.clone()))
                })
                .collect();
            let answer = if s.shiprocket_nested {
                json!({"tracking_data": found})
            } else {
                Value::Object(found)
            };
            (200, answer)
        }
    };
    finish(
        &state,
        Carrier::Shiprocket,
        "POST",
        path,
        "",
        &headers,
        status,
    );
    json_response(status, answer)
}

async fn shipway_details(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let path = "/api/getOrderShipmentDetails";
    let fail = match begin(&state, Carrier::Shipway, "POST", path, "", &headers).await {
        Ok(fail) => fail,
        Err(response) => return response,
    };
    let given: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = {
        let s = state.lock().unwrap();
        let ok = s.shipway_accounts.iter().any(|(u, k)| {
            given["username"].as_str() == Some(u) && given["password"].as_str() == Some(k)
        });
        let order = given["order_id"].as_str().unwrap_or("");
        if fail {
            json!({"status": "Error", "message": "Temporary failure, please retry"})
        } else if !ok {
            json!({"status": "Error", "message": "Invalid username or license key"})
        } else {
            match s.shipway_orders.get(order) {
                Some(response) => json!({"status": "Success", "response": response}),
                None => json!({"status": "Error", "message": "Order not found"}),
            }
        }
    };
    finish(&state, Carrier::Shipway, "POST", path, "", &headers, 200);
    json_response(200, answer)
}

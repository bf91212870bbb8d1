//! A fake Lambda Runtime API (the `2018-06-01` interface a function's runtime polls) for one
//! process: it hands out one event, holds every later poll, and reports each step of the
//! function's life to the harness with the instant it saw it. It also answers the Extensions API
//! (`2020-01-01`) as far as an internal extension that subscribes to nothing needs: the notify
//! functions register one (`lambda_runtime::spawn_graceful_shutdown_handler`) so that Lambda sends
//! them SIGTERM before a shutdown, and panic at start if the registration fails.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

/// What the function did, and when the harness saw it.
#[derive(Debug)]
pub enum Step {
    /// Its first `GET …/invocation/next` arrived `at`; the event was ready to go back at
    /// `handed_out`.
    Polled { at: Instant, handed_out: Instant },
    /// Its `POST …/invocation/{id}/response` (or `…/error`), body fully received `at`.
    Answered {
        at: Instant,
        error: bool,
        body: Bytes,
    },
    /// It polled again after answering: the invocation is over, the process idle.
    Idle,
    /// `POST …/init/error`: it gave up before polling.
    InitError(Bytes),
}

/// The request id of the one invocation.
pub const REQUEST_ID: &str = "00000000-0000-4000-8000-00000000c01d";

struct Api {
    event: String,
    polls: AtomicUsize,
    steps: UnboundedSender<Step>,
}

/// The API on a free loopback port; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub steps: UnboundedReceiver<Step>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the API on `127.0.0.1` and a free port, with `event` as the one invocation.
pub async fn serve(event: String) -> std::io::Result<Server> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, steps) = unbounded_channel();
    let api = Arc::new(Api {
        event,
        polls: AtomicUsize::new(0),
        steps: tx,
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(answer))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .route("/2020-01-01/extension/register", post(register_extension))
        .route(
            "/2020-01-01/extension/event/next",
            get(next_extension_event),
        )
        .with_state(api);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Server { addr, steps, task })
}

async fn next(State(api): State<Arc<Api>>) -> Response {
    let at = Instant::now();
    if api.polls.fetch_add(1, Ordering::SeqCst) > 0 {
        let _ = api.steps.send(Step::Idle);
        // The real API holds the poll until there is work; there is none, so hold it until the
        // harness kills the process (which drops the connection and this future).
        std::future::pending::<()>().await;
    }
    // The headers lambda_runtime requires (it panics without the first two).
    let deadline = SystemTime::now() + Duration::from_secs(30);
    let deadline_ms = deadline
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let response = (
        [
            ("lambda-runtime-aws-request-id", REQUEST_ID.to_owned()),
            ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:coldstart".to_owned(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-67000000-000000000000000000000000;Parent=0000000000000000;Sampled=0"
                    .to_owned(),
            ),
            ("content-type", "application/json".to_owned()),
        ],
        api.event.clone(),
    )
        .into_response();
    let _ = api.steps.send(Step::Polled {
        at,
        handed_out: Instant::now(),
    });
    response
}

async fn answer(
    State(api): State<Arc<Api>>,
    Path((_id, kind)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    // `Bytes` is extracted before the handler runs: the whole answer has arrived by now.
    let at = Instant::now();
    let _ = api.steps.send(Step::Answered {
        at,
        error: kind == "error",
        body,
    });
    StatusCode::ACCEPTED
}

/// The Extensions API's answer to a registration: the extension's id in a header, and the
/// function it is registered with.
async fn register_extension() -> Response {
    (
        [
            (
                "lambda-extension-identifier",
                "00000000-0000-4000-8000-0000000e0001",
            ),
            ("content-type", "application/json"),
        ],
        r#"{"functionName":"coldstart","functionVersion":"$LATEST","handler":"bootstrap"}"#,
    )
        .into_response()
}

/// An extension subscribed to no events waits here for ever, as it does on Lambda.
async fn next_extension_event() -> Response {
    std::future::pending::<Response>().await
}

async fn init_error(State(api): State<Arc<Api>>, body: Bytes) -> StatusCode {
    let _ = api.steps.send(Step::InitError(body));
    StatusCode::ACCEPTED
}

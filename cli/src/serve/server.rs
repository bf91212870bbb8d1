//! `rms serve`'s HTTP server: the axum router on hyper's HTTP/1 connections, under an accept loop
//! of our own, because `axum::serve` neither times out nor caps connections. Against peers that
//! open connections and say nothing, or say a request head a byte at a time, it enforces:
//!
//! - a **header timeout**: a request head must be complete within it, counted from the accept
//!   (a new connection owes its first head at once) or from the first byte of a later head;
//! - an **idle timeout**: a keep-alive connection between requests is closed after it;
//! - a **body timeout**: a request body must arrive within it, or the answer is a JSON 408;
//! - a **head size** limit ([`MAX_HEAD_BYTES`]): a larger head is refused (431), and an
//!   unfinished one holds at most about that much memory;
//! - a **connection cap**: at the cap, the connection idle the longest (no request being served,
//!   whether silent or trickling a head) is closed to accept the new one, as nginx reuses its
//!   "reusable" connections. A carrier's new connection is therefore accepted at once, instead of
//!   waiting in the kernel's backlog behind connections that do nothing. A connection serving a
//!   request is never closed by the server.
//!
//! One sweeper task closes the connections past their deadline. The closes for the cap and for
//! the header timeout are logged at most once a second, with how many; accept errors likewise.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Sleep;
use tower::ServiceExt;
use tracing::{debug, error, info, warn};

/// The most a request head (request line and headers) may take: hyper's read buffer. A real
/// carrier's head is well under 4 KiB; API Gateway refuses heads over 10 KiB.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// `[server]` in rms.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// A request head must be complete this long after the connection was accepted, or after the
    /// first byte of a later head. 10 s: a client sends its head in one write, so this only has to
    /// cover a slow network many times over; and it is how long a peer trickling a head a byte at
    /// a time keeps its connection.
    pub header_timeout: Duration,
    /// A keep-alive connection with no request in progress is closed after this. 60 s, as AWS's
    /// load balancers (which carriers' HTTP clients already live with): long enough that a
    /// carrier's connection survives between the updates of a busy hour. Idle connections cost
    /// little here: at the cap, the longest-idle one makes room for a new one.
    pub idle_timeout: Duration,
    /// A request body must have arrived this long after its head, or the answer is 408. 30 s: the
    /// largest body read (1 MiB) at 35 KB/s; a carrier's few KiB take milliseconds.
    pub body_timeout: Duration,
    /// Connections open at once; at most half the open-file limit (see [`connection_cap`]). 512:
    /// half of systemd's default soft limit, so it holds even where the limit cannot be raised;
    /// carriers send over a few connections each.
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_connections: 512,
        }
    }
}

/// Connections the kernel holds for us until they are accepted. The standard library's 128 fill
/// in a few tens of milliseconds of a flood while the accept loop is busy (closing a few hundred
/// timed-out connections, say); a carrier's connection attempt is then dropped and tried again
/// only a second later. The kernel caps it at `net.core.somaxconn` (4,096 by default).
const BACKLOG: u32 = 1024;

/// The listening socket, with a backlog of [`BACKLOG`].
pub fn listen(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As the standard library does: a restart can listen again at once, beside the closed
    // connections of the previous run still waiting out TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

/// Raises the soft limit on open files to the hard one (systemd starts services at 1,024 soft,
/// 524,288 hard), logs it and returns the limit now in force; `None` when it cannot be read.
pub fn raise_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            info!(open_files = limit, "open-file limit");
            Some(limit)
        }
        Err(e) => {
            let current = rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft);
            warn!(error = %e, open_files = ?current, "cannot raise the open-file limit; keeping it");
            current
        }
    }
}

/// The connection cap in force: the configured one, but at most half the open-file limit. The
/// other half is for the database, the pushes to clients (each a connection), the listener and
/// the connections being closed to make room.
pub fn connection_cap(configured: usize, file_limit: Option<u64>) -> usize {
    let Some(limit) = file_limit else {
        return configured;
    };
    let most = usize::try_from(limit / 2).unwrap_or(usize::MAX).max(1);
    if configured > most {
        warn!(
            max_connections = configured,
            open_files = limit,
            serving = most,
            "server.max_connections is more than half the open-file limit: capped; raise the \
             limit (LimitNOFILE= in a systemd unit, ulimit -n in a shell) to serve more"
        );
    }
    configured.min(most)
}

/// Serves `router` on `listener` until `stopped` turns true; then accepts nothing more, closes
/// the connections that are not serving a request, and returns when the others have answered.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServerSettings,
    stopped: watch::Receiver<bool>,
) {
    let settings = Arc::new(settings);
    let open = Arc::new(Connections::default());
    let sweeper = tokio::spawn(sweep(open.clone(), settings.clone()));
    let mut http = http1::Builder::new();
    // The sweeper times heads instead: hyper's own timer would also run while a keep-alive
    // connection waits for its next request, making the idle timeout the header timeout.
    http.header_read_timeout(None);
    // The head limit, twice: `max_header_size` refuses a complete head over it (431);
    // `max_buf_size` caps the read buffer, so that an unfinished head is cut off there.
    http.max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_HEAD_BYTES);

    let mut tasks = JoinSet::new();
    let mut accept_errors = Throttle::default();
    let mut full = Throttle::default();
    let mut until_stopped = stopped.clone();
    let mut next_id = 0;
    'accepting: loop {
        // At the cap with every connection serving a request, nothing may be closed: wait for a
        // request to finish rather than accept.
        while open.len() >= settings.max_connections && !open.any_idle() {
            if let Some(suppressed) = full.allow() {
                warn!(
                    max_connections = settings.max_connections,
                    suppressed, "every connection is serving a request: new connections wait"
                );
            }
            tokio::select! {
                () = open.changed.notified() => {}
                _ = until_stopped.wait_for(|stop| *stop) => break 'accepting,
            }
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = until_stopped.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            // The peer gave up before it was accepted: nothing is wrong here.
            Err(e) if is_peer_gone(&e) => continue,
            Err(e) => {
                // Out of file descriptors or memory: the pending connection stays in the backlog
                // and the next accept fails the same way, so wait a little rather than spin.
                if let Some(suppressed) = accept_errors.allow() {
                    error!(error = %e, suppressed, "cannot accept a connection; retrying in 100 ms");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        next_id += 1;
        let conn = Arc::new(Conn::new(next_id, peer));
        open.insert(conn.clone());
        if open.len() > settings.max_connections {
            open.evict_longest_idle(conn.id);
        }
        let service = RequestService {
            router: router.clone(),
            conn: conn.clone(),
            open: open.clone(),
            body_timeout: settings.body_timeout,
        };
        tasks.spawn(connection(
            http.serve_connection(
                TokioIo::new(Watched {
                    stream,
                    conn: conn.clone(),
                }),
                service,
            ),
            conn,
            open.clone(),
            stopped.clone(),
        ));
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    sweeper.abort();
}

fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// One connection's life: hyper serves it until the peer closes, the server closes it (timeout,
/// eviction) or `rms serve` stops. A connection serving a request is let finish it: hyper's
/// graceful shutdown answers the request, then closes.
async fn connection(
    served: http1::Connection<TokioIo<Watched>, RequestService>,
    conn: Arc<Conn>,
    open: Arc<Connections>,
    mut stopped: watch::Receiver<bool>,
) {
    tokio::pin!(served);
    let mut finishing = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    debug!(peer = %conn.peer, error = %e, "connection ended");
                }
                break;
            }
            () = conn.close.notified(), if !finishing => {}
            _ = stopped.wait_for(|stop| *stop), if !finishing => {}
        }
        if !conn.lock().serving {
            break;
        }
        served.as_mut().graceful_shutdown();
        finishing = true;
    }
    open.remove(conn.id);
}

/// Closes the connections past their deadline, a few times per shortest timeout.
async fn sweep(open: Arc<Connections>, settings: Arc<ServerSettings>) {
    let shortest = settings.header_timeout.min(settings.idle_timeout);
    let mut tick = tokio::time::interval(
        (shortest / 10).clamp(Duration::from_millis(20), Duration::from_secs(1)),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Closed since the last line, for the cap and for unfinished heads.
    let (mut evicted, mut heads) = (0, 0);
    let mut last_line: Option<Instant> = None;
    loop {
        tick.tick().await;
        let (timed_out_heads, idle) = open.close_expired(&settings, Instant::now());
        if idle > 0 {
            debug!(
                closed = idle,
                "idle connections closed (server.idle_timeout)"
            );
        }
        heads += timed_out_heads;
        evicted += open.evicted.swap(0, Ordering::Relaxed);
        if evicted + heads == 0 || last_line.is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            continue;
        }
        if evicted > 0 {
            warn!(
                closed = evicted,
                max_connections = settings.max_connections,
                "at the connection cap: closed the longest-idle connections to accept new ones"
            );
        }
        if heads > 0 {
            warn!(
                closed = heads,
                header_timeout = ?settings.header_timeout,
                "connections closed: no complete request head within server.header_timeout"
            );
        }
        (evicted, heads) = (0, 0);
        last_line = Some(Instant::now());
    }
}

/// The open connections, for the cap and the sweeper.
#[derive(Default)]
struct Connections {
    by_id: Mutex<HashMap<u64, Arc<Conn>>>,
    /// A connection closed or finished a request: room may have been made.
    changed: Notify,
    /// Connections closed to make room, not yet logged.
    evicted: AtomicUsize,
}

impl Connections {
    fn map(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn len(&self) -> usize {
        self.map().len()
    }

    fn insert(&self, conn: Arc<Conn>) {
        self.map().insert(conn.id, conn);
    }

    fn remove(&self, id: u64) {
        self.map().remove(&id);
        self.changed.notify_one();
    }

    fn any_idle(&self) -> bool {
        self.map().values().any(|c| !c.lock().serving)
    }

    /// Closes the connection that has been without a request the longest, other than `keep`;
    /// false when every other one is serving a request. A linear scan: at most `max_connections`
    /// entries, and only at the cap.
    fn evict_longest_idle(&self, keep: u64) -> bool {
        let mut map = self.map();
        let longest = map
            .values()
            .filter(|c| c.id != keep)
            .filter_map(|c| {
                let state = c.lock();
                (!state.serving).then_some((state.idle_since, c.id))
            })
            .min();
        let Some(conn) = longest.and_then(|(_, id)| map.remove(&id)) else {
            return false;
        };
        debug!(peer = %conn.peer, "closed to make room (server.max_connections)");
        conn.close.notify_one();
        self.evicted.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Closes the connections past a deadline; returns how many were closed for an unfinished
    /// head, and how many for being idle.
    fn close_expired(&self, settings: &ServerSettings, now: Instant) -> (usize, usize) {
        let (mut heads, mut idle) = (0, 0);
        self.map().retain(|_, conn| {
            let state = conn.lock();
            let expired = match (state.serving, state.head_since) {
                (true, _) => None,
                (false, Some(since)) => {
                    (now >= since + settings.header_timeout).then_some(&mut heads)
                }
                (false, None) => {
                    (now >= state.idle_since + settings.idle_timeout).then_some(&mut idle)
                }
            };
            drop(state);
            match expired {
                Some(count) => {
                    *count += 1;
                    conn.close.notify_one();
                    false
                }
                None => true,
            }
        });
        (heads, idle)
    }
}

/// One connection, as the cap and the sweeper see it.
struct Conn {
    id: u64,
    peer: SocketAddr,
    state: Mutex<ConnState>,
    /// Told when the server closes the connection.
    close: Notify,
}

#[derive(Debug, Clone, Copy)]
struct ConnState {
    /// From a request's head to the end of its response.
    serving: bool,
    /// When the connection last had no request: accepted, or its last response sent.
    idle_since: Instant,
    /// When the head now due started: the accept, for a new connection; the first byte of the
    /// next head, on a keep-alive one. `None` while serving, or idle between requests.
    head_since: Option<Instant>,
}

impl Conn {
    fn new(id: u64, peer: SocketAddr) -> Conn {
        let now = Instant::now();
        Conn {
            id,
            peer,
            state: Mutex::new(ConnState {
                serving: false,
                idle_since: now,
                head_since: Some(now),
            }),
            close: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bytes_arrived(&self) {
        let mut state = self.lock();
        if !state.serving && state.head_since.is_none() {
            state.head_since = Some(Instant::now());
        }
    }
}

/// The TCP stream, telling its connection when bytes arrive (a head has started).
struct Watched {
    stream: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.conn.bytes_arrived();
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Each request of a connection: marked as being served until its response has been sent, its
/// body under the body timeout, then the router.
#[derive(Clone)]
struct RequestService {
    router: Router,
    conn: Arc<Conn>,
    open: Arc<Connections>,
    body_timeout: Duration,
}

impl hyper::service::Service<hyper::Request<Incoming>> for RequestService {
    type Response = hyper::Response<ServedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let serving = Serving::start(self.conn.clone(), self.open.clone());
        let expired = BodyDeadline::default();
        let deadline = tokio::time::Instant::now() + self.body_timeout;
        let mut request = request.map(|body| TimedBody {
            body,
            deadline,
            sleep: None,
            expired: expired.clone(),
        });
        request.extensions_mut().insert(expired);
        let router = self.router.clone();
        Box::pin(async move {
            let response = router.oneshot(request).await?;
            Ok(response.map(|body| ServedBody {
                body,
                _serving: serving,
            }))
        })
    }
}

/// Marks a connection as serving a request while it lives (in the response body, so until hyper
/// has written it; or until the connection drops the request).
struct Serving {
    conn: Arc<Conn>,
    open: Arc<Connections>,
}

impl Serving {
    fn start(conn: Arc<Conn>, open: Arc<Connections>) -> Serving {
        let mut state = conn.lock();
        state.serving = true;
        state.head_since = None;
        drop(state);
        Serving { conn, open }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let mut state = self.conn.lock();
        state.serving = false;
        state.idle_since = Instant::now();
        drop(state);
        self.open.changed.notify_one();
    }
}

/// A response body that keeps its connection marked as serving until it has been sent.
struct ServedBody {
    body: Body,
    _serving: Serving,
}

impl http_body::Body for ServedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// In a request's extensions: whether its body missed the body timeout. The routes answer such a
/// request 408, whatever the handler made of the failed read.
#[derive(Debug, Clone, Default)]
pub struct BodyDeadline(Arc<AtomicBool>);

impl BodyDeadline {
    pub fn passed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within server.body_timeout")]
struct BodyTimedOut;

/// A request body that fails once its deadline has passed with the body still incomplete.
struct TimedBody {
    body: Incoming,
    deadline: tokio::time::Instant,
    /// Made at the first wait, so that a request whose body is never read costs no timer.
    sleep: Option<Pin<Box<Sleep>>>,
    expired: BodyDeadline,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.expired.0.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// At most one log line a second for an event that can repeat thousands of times a second.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// Whether to log this one; if so, how many since the last line were not logged.
    fn allow(&mut self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_event_is_logged_once_a_second_with_the_count_it_left_out() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        assert_eq!(throttle.allow_at(start), Some(0));
        for ms in [1, 500, 999] {
            assert_eq!(throttle.allow_at(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(throttle.allow_at(start + Duration::from_secs(1)), Some(3));
        assert_eq!(throttle.allow_at(start + Duration::from_millis(1500)), None);
    }

    #[test]
    fn the_cap_keeps_half_the_file_limit_for_the_rest() {
        assert_eq!(connection_cap(512, Some(1024)), 512);
        assert_eq!(connection_cap(2000, Some(1024)), 512);
        assert_eq!(connection_cap(512, Some(524_288)), 512);
        assert_eq!(connection_cap(512, Some(100)), 50);
        assert_eq!(connection_cap(512, None), 512);
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[test]
    fn the_longest_idle_connection_is_evicted_and_one_serving_a_request_never() {
        let open = Connections::default();
        let conns: Vec<Arc<Conn>> = (1..=3).map(|id| Arc::new(Conn::new(id, peer()))).collect();
        for conn in &conns {
            open.insert(conn.clone());
        }
        // 1 is the oldest, but serving a request; 2 is next.
        let serving = Serving::start(conns[0].clone(), Arc::new(Connections::default()));
        conns[1].lock().idle_since = conns[2].lock().idle_since - Duration::from_secs(1);
        assert!(open.evict_longest_idle(3));
        assert_eq!(open.len(), 2);
        assert!(!open.map().contains_key(&2));
        // 3 is the one being accepted; 1 is serving: nothing else to evict.
        assert!(!open.evict_longest_idle(3));
        drop(serving);
        assert!(open.evict_longest_idle(3));
        assert_eq!(open.len(), 1);
    }

    #[test]
    fn deadlines_are_the_header_timeout_for_a_head_and_the_idle_timeout_between_requests() {
        let settings = ServerSettings {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..ServerSettings::default()
        };
        let open = Connections::default();
        let side = Arc::new(Connections::default());
        let fresh = Arc::new(Conn::new(1, peer()));
        let kept_alive = Arc::new(Conn::new(2, peer()));
        let next_head = Arc::new(Conn::new(3, peer()));
        let busy = Arc::new(Conn::new(4, peer()));
        for conn in [&fresh, &kept_alive, &next_head, &busy] {
            open.insert(conn.clone());
        }
        let start = Instant::now();
        for conn in [&kept_alive, &next_head] {
            drop(Serving::start(conn.clone(), side.clone()));
            conn.lock().idle_since = start;
        }
        let _busy = Serving::start(busy.clone(), side);
        // A head that started late on a keep-alive connection (bytes_arrived, at 55 s).
        next_head.bytes_arrived();
        assert!(next_head.lock().head_since.is_some());
        next_head.lock().head_since = Some(start + Duration::from_secs(55));
        // Bytes of a request being served start no head.
        busy.bytes_arrived();
        assert_eq!(busy.lock().head_since, None);

        let at = |s| start + Duration::from_secs(s);
        assert_eq!(open.close_expired(&settings, at(9)), (0, 0));
        // A new connection owes its head from the accept.
        assert_eq!(open.close_expired(&settings, at(11)), (1, 0));
        // Between requests, the idle timeout; a head once started has the header timeout.
        assert_eq!(open.close_expired(&settings, at(59)), (0, 0));
        assert_eq!(open.close_expired(&settings, at(61)), (0, 1));
        assert_eq!(open.close_expired(&settings, at(66)), (1, 0));
        // A connection serving a request has no deadline.
        assert_eq!(open.close_expired(&settings, at(3600)), (0, 0));
        assert_eq!(open.len(), 1);
    }
}

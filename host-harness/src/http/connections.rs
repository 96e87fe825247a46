//! The accept loop: HTTP/1.1 connections, over TLS when configured, with
//! the bounds a server facing the internet needs, and a graceful stop.
//!
//! - A client has [`Limits::header_timeout`] to send a request's headers,
//!   counted from the connection's start or the end of its previous
//!   response: this is also the idle timeout of a kept-alive connection,
//!   so idle sockets cannot pile up (TLS handshakes get the same bound).
//! - A request's body must arrive whole within [`Limits::body_timeout`] of
//!   its headers, plus a second per [`SLOW_LINK`] bytes its Content-Length
//!   declares (a plugin upload of many megabytes): a client trickling a
//!   byte a second would otherwise hold its tenant's slot (`gate`) for as
//!   long as it likes. It is answered 408 and the connection closed.
//! - At most [`Limits::max_connections`] connections are open at once (kept
//!   below the open-file limit); past that, new ones wait in the listen
//!   backlog until one closes.
//! - On shutdown no connection is accepted any more, idle ones close, and
//!   requests in flight finish, for up to [`Limits::shutdown_grace`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tower_service::Service as _;

use super::tls::Tls;

/// Bytes a second of the slowest upload link a body is given time for,
/// beyond [`Limits::body_timeout`].
pub const SLOW_LINK: u64 = 64 * 1024;

/// How long clients get; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes, then lets
/// requests in flight finish. Returns whether they all did within the
/// grace period.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<Tls>>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopping) = watch::channel(false);
    // Every connection holds a sender: the channel closes when the last ends.
    let (open, mut all_closed) = mpsc::channel::<Infallible>(1);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: try again shortly.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let tls = tls.clone();
        let stopping = stopping.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _open = open;
            match tls {
                None => connection(TokioIo::new(stream), peer, router, limits, stopping).await,
                Some(tls) => {
                    let handshake = tls.acceptor().accept(stream);
                    match tokio::time::timeout(limits.header_timeout, handshake).await {
                        Ok(Ok(stream)) => {
                            connection(TokioIo::new(stream), peer, router, limits, stopping).await
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(open);
    tracing::info!("no longer accepting connections; finishing requests in flight");
    tokio::time::timeout(limits.shutdown_grace, all_closed.recv())
        .await
        .is_ok()
}

/// Serves one connection until the client closes it, a timeout ends it, or
/// shutdown (then after the request in flight, if any).
async fn connection<I>(
    io: TokioIo<I>,
    peer: std::net::SocketAddr,
    router: Router,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let body_timeout = limits.body_timeout;
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // The client's address, for the console's sign-in throttle.
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let router = router.clone();
        async move { Ok::<_, Infallible>(request(router, req, body_timeout).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let stop = async move {
        // The guard `wait_for` returns must not be held (it is not `Send`).
        let _ = stopping.wait_for(|stop| *stop).await.is_ok();
    };
    let done = tokio::select! {
        done = conn.as_mut() => done,
        _ = stop => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = done {
        tracing::debug!(error = %e, "connection ended");
    }
}

/// One request through the router, its body under the deadline.
async fn request(
    mut router: Router,
    req: hyper::Request<Incoming>,
    body_timeout: Duration,
) -> Response {
    let scim = req.uri().path().starts_with(super::BASE_PATH);
    let expired = Arc::new(AtomicBool::new(false));
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    let allowed = body_timeout.saturating_add(Duration::from_secs(declared / SLOW_LINK));
    let deadline =
        (!req.body().is_end_stream()).then(|| (Box::pin(tokio::time::sleep(allowed)), allowed));
    let req = req.map(|body| {
        Body::new(Deadline {
            body,
            deadline,
            expired: expired.clone(),
        })
    });
    let response = match router.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    if !expired.load(Ordering::Relaxed) {
        return response;
    }
    if scim {
        // The SCIM handler answered it (408, rendered by the engine); the
        // rest of the body is not worth waiting for.
        let mut response = response;
        response
            .headers_mut()
            .insert("connection", axum::http::HeaderValue::from_static("close"));
        return response;
    }
    too_slow(allowed)
}

/// 408 for a body that did not arrive in time, off the SCIM paths; the
/// connection is closed after it.
fn too_slow(allowed: Duration) -> Response {
    let mut r = Response::new(Body::from(format!("{}\n", BodyTooSlow { allowed })));
    *r.status_mut() = axum::http::StatusCode::REQUEST_TIMEOUT;
    let headers = r.headers_mut();
    headers.insert(
        "content-type",
        axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert("connection", axum::http::HeaderValue::from_static("close"));
    r
}

/// The error a request body's read fails with once its deadline passed
/// (the SCIM handler answers it with 408).
#[derive(Debug)]
pub struct BodyTooSlow {
    allowed: Duration,
}

impl std::fmt::Display for BodyTooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "The request body did not arrive within {} s of its headers; send it without pauses",
            self.allowed.as_secs()
        )
    }
}

impl std::error::Error for BodyTooSlow {}

/// A request body that fails once its deadline passes, and says so in
/// `expired` (the handler's answer to the failed read is replaced by 408).
struct Deadline {
    body: Incoming,
    /// When, and how long it was given; `None` for a request without a body.
    deadline: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
    expired: Arc<AtomicBool>,
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if let Some((deadline, allowed)) = &mut this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            this.expired.store(true, Ordering::Relaxed);
            let allowed = *allowed;
            return Poll::Ready(Some(Err(Box::new(BodyTooSlow { allowed }))));
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

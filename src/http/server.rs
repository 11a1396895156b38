//! Serves the router with the limits a public endpoint needs: a client that sends its headers
//! or its body slowly, or opens connections and says nothing, holds a connection for seconds,
//! not forever, and cannot hold up a shutdown. `axum::serve` sets no timer at all.
use crate::shutdown::Shutdown;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

/// How long each part of a request may take, and how many connections are served at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From a request's first byte (or a new connection) to the end of its headers.
    pub headers: Duration,
    /// Reading the body.
    pub body: Duration,
    /// The whole request, answer included (Slack itself waits 3 s).
    pub request: Duration,
    /// A kept-alive connection with nothing to do is closed after this.
    pub idle: Duration,
    /// More connections than this at once are closed as they arrive.
    pub max_connections: usize,
    /// After a shutdown begins, how long requests in flight may take to finish.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            headers: Duration::from_secs(10),
            body: Duration::from_secs(10),
            request: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            max_connections: 1024,
            drain: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` fires, then lets requests in flight finish
/// within `limits.drain`.
pub async fn serve(listener: TcpListener, router: Router, shutdown: Shutdown, limits: Limits) -> std::io::Result<()> {
    let router = router
        .layer(RequestBodyTimeoutLayer::new(limits.body))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            limits.request,
        ));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.wait() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: wait rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(
                max = limits.max_connections,
                "refused a connection: too many open at once"
            );
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            serve_connection(stream, service, shutdown, limits).await;
            drop(permit);
        });
        // Finished connections are reaped as new ones come, so the set stays small.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.drain, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "requests still in flight after the shutdown grace; closing them"
        );
        connections.abort_all();
    }
    Ok(())
}

async fn serve_connection(stream: TcpStream, service: TowerToHyperService<Router>, shutdown: Shutdown, limits: Limits) {
    let _ = stream.set_nodelay(true);
    let activity = Activity::default();
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.headers)
        .keep_alive(true)
        .serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let mut closing = false;
    let stopping = shutdown.wait();
    let mut stopping = std::pin::pin!(stopping);
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            () = &mut stopping, if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep(limits.idle / 4) => {
                // Closes only between requests: one in flight finishes first.
                if !closing && activity.quiet_for() >= limits.idle {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// When a connection last read or wrote a byte.
#[derive(Clone)]
struct Activity {
    since: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for Activity {
    fn default() -> Activity {
        Activity {
            since: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Activity {
    fn touch(&self) {
        let now = self.since.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.since.elapsed().saturating_sub(last)
    }
}

/// A socket that records its activity.
struct Watched {
    inner: TcpStream,
    activity: Activity,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const QUICK: Limits = Limits {
        headers: Duration::from_millis(600),
        body: Duration::from_millis(600),
        request: Duration::from_secs(5),
        idle: Duration::from_millis(800),
        max_connections: 3,
        drain: Duration::from_millis(800),
    };

    async fn started(
        limits: Limits,
    ) -> (
        String,
        crate::shutdown::Trigger,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let router = Router::new()
            .route(
                "/echo",
                axum::routing::post(|body: axum::body::Bytes| async move { format!("got {} bytes", body.len()) }),
            )
            .route(
                "/stuck",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "too late"
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (trigger, shutdown) = crate::shutdown::channel();
        let server = tokio::spawn(serve(listener, router, shutdown, limits));
        (address, trigger, server)
    }

    /// Reads until the server closes the connection (or 5 s pass); what it said, and when.
    async fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
        let begun = Instant::now();
        let mut said = vec![];
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut said)).await;
        (String::from_utf8_lossy(&said).into_owned(), begun.elapsed())
    }

    async fn ask(address: &str) -> String {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
            .await
            .unwrap();
        until_closed(&mut stream).await.0
    }

    #[tokio::test]
    async fn headers_sent_slowly_or_not_at_all_lose_the_connection() {
        let (address, _trigger, _server) = started(QUICK).await;
        let mut trickle = TcpStream::connect(&address).await.unwrap();
        trickle.write_all(b"POST /echo HTTP/1.1\r\nHo").await.unwrap();
        let mut silent = TcpStream::connect(&address).await.unwrap();
        let (_, waited) = until_closed(&mut trickle).await;
        assert!(waited < Duration::from_secs(2), "closed after {waited:?}");
        let (_, waited) = until_closed(&mut silent).await;
        assert!(
            waited < Duration::from_secs(2),
            "a silent connection closed after {waited:?}"
        );
        assert_eq!(ask(&address).await.lines().last(), Some("got 2 bytes"));
    }

    #[tokio::test]
    async fn a_body_sent_slowly_is_refused_within_the_body_deadline() {
        let (address, _trigger, _server) = started(QUICK).await;
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
            .await
            .unwrap();
        let (said, waited) = until_closed(&mut stream).await;
        // Reading the body fails at the deadline; the handler's extractor answers it (400).
        assert!(said.starts_with("HTTP/1.1 4"), "{said}");
        assert!(said.contains("Failed to buffer the request body"), "{said}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    #[tokio::test]
    async fn a_request_that_takes_too_long_is_answered_408() {
        let limits = Limits {
            request: Duration::from_millis(500),
            ..QUICK
        };
        let (address, _trigger, _server) = started(limits).await;
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"GET /stuck HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (said, waited) = until_closed(&mut stream).await;
        assert!(said.starts_with("HTTP/1.1 408"), "{said}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_closed_and_the_server_recovers() {
        let (address, _trigger, _server) = started(QUICK).await;
        let mut held = vec![];
        for _ in 0..QUICK.max_connections {
            held.push(TcpStream::connect(&address).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut one_more = TcpStream::connect(&address).await.unwrap();
        let (_, waited) = until_closed(&mut one_more).await;
        assert!(
            waited < Duration::from_millis(300),
            "refused at once, not after {waited:?}"
        );
        for stream in &mut held {
            until_closed(stream).await;
        }
        assert_eq!(ask(&address).await.lines().last(), Some("got 2 bytes"));
    }

    #[tokio::test]
    async fn an_idle_kept_alive_connection_is_closed() {
        let limits = Limits {
            headers: Duration::from_secs(30),
            ..QUICK
        };
        let (address, _trigger, _server) = started(limits).await;
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
            .await
            .unwrap();
        let (said, waited) = until_closed(&mut stream).await;
        assert!(said.contains("got 2 bytes"), "{said}");
        assert!(waited < Duration::from_secs(2), "closed after {waited:?} of quiet");
    }

    #[tokio::test]
    async fn a_trickling_client_cannot_hold_up_a_shutdown() {
        let limits = Limits {
            body: Duration::from_secs(30),
            request: Duration::from_secs(30),
            ..QUICK
        };
        let (address, trigger, server) = started(limits).await;
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let begun = Instant::now();
        trigger.fire();
        tokio::time::timeout(Duration::from_secs(3), server)
            .await
            .expect("the server stopped within its drain")
            .unwrap()
            .unwrap();
        assert!(begun.elapsed() < Duration::from_millis(1500), "{:?}", begun.elapsed());
    }
}

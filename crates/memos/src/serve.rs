//! Serving the API over HTTP/1.1 with the limits a hostile client needs
//! and `axum::serve` does not offer: a header read timeout (a connection
//! that sends part of its headers and stops is closed), a cap on open
//! connections (past it, new ones wait in the kernel's backlog instead of
//! taking file descriptors), and a graceful shutdown bounded by a grace
//! period.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The server's limits (the `--header-timeout` and `--max-connections`
/// flags, and the shutdown grace).
#[derive(Clone, Debug)]
pub struct ServeLimits {
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long open connections may take to finish after shutdown.
    pub grace: Duration,
}

impl Default for ServeLimits {
    /// 10 s for headers, 1,024 connections, 5 s of grace.
    fn default() -> Self {
        ServeLimits {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            grace: Duration::from_secs(5),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then gives
/// open connections `limits.grace` to finish (in-flight requests are
/// answered; idle connections close at once).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, say: wait a moment, not a spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.grace) => {
            tracing::warn!(grace = ?limits.grace, "connections still open after the grace period: closing");
        }
    }
}

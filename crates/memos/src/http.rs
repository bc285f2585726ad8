//! The HTTP API: memos, the inspection router, metrics, health, and the
//! browser guard.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use reconciler::{HealthLevel, Status};
use serde::Deserialize;

use crate::app::{App, Desired};
#[cfg(feature = "etcd")]
use crate::etcd;
use crate::memo::{MAX_CONTENT, Memo, validate_name};
use crate::respond::{internal, json, text};
use crate::store::{Store, StoreError};

/// Runs a blocking write of the durable store off the async workers; a
/// failure is the 500 answer.
async fn on_store<R: Send + 'static>(
    app: &App,
    write: impl FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
) -> Result<R, Response> {
    let store = app.store.clone();
    match tokio::task::spawn_blocking(move || write(&store)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(internal(e)),
        Err(e) => Err(internal(e)),
    }
}

/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn put_memo(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Response {
    if let Err(e) = validate_name(&name) {
        return text(StatusCode::BAD_REQUEST, format!("{e}\n"));
    }
    // A body that never finishes would hold the connection (and shutdown).
    let body =
        match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_CONTENT)).await {
            Ok(Ok(b)) => b,
            Ok(Err(_)) => {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("memo content is limited to {MAX_CONTENT} bytes\n"),
                );
            }
            Err(_) => {
                return text(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the request body did not arrive within {BODY_TIMEOUT:?}\n"),
                );
            }
        };
    let content = match String::from_utf8(body.to_vec()) {
        Ok(c) => c,
        Err(_) => return text(StatusCode::BAD_REQUEST, "memo content must be UTF-8\n"),
    };
    let memo = Memo {
        name,
        content,
        status: Status::pending(),
    };
    // One write at a time, from the limit check to the table: the limits
    // hold under parallel requests, and the store and the table see the
    // writes in the same order (a restart reloads what the API showed).
    let _ordered = app.writes.lock().await;
    if let Some(refusal) = over_limits(&app, &memo.name, memo.content.len()) {
        return refusal;
    }
    // Durable before it is accepted: in etcd (every instance's reflector
    // then mirrors it), or in the embedded store and the table.
    #[cfg(feature = "etcd")]
    if let Desired::Etcd {
        writer,
        write_failing,
        ..
    } = &app.desired
    {
        return etcd::put(writer, write_failing, &memo).await;
    }
    let (n, c) = (memo.name.clone(), memo.content.clone());
    if let Err(refusal) = on_store(&app, move |store| store.put_memo(&n, &c)).await {
        return refusal;
    }
    let t = &app.memos.table;
    let result = match app.db.write_txn_async(&[t]).await {
        Ok(mut w) => t.insert(&mut w, memo.clone()).map(|_| {
            w.commit();
        }),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => (StatusCode::ACCEPTED, json(&memo)).into_response(),
        Err(e) => internal(e),
    }
}

/// 507 if storing `bytes` under `name` would pass a limit (logged and
/// counted in `memos_refused_writes_total`). Called under the write gate.
fn over_limits(app: &App, name: &str, bytes: usize) -> Option<Response> {
    let (max_memos, max_bytes) = app.limits;
    let txn = app.db.read_txn();
    let all = app.memos.table.all(&txn).ok()?;
    // One pass: how many memos, and the bytes of all but the one replaced.
    let (mut count, mut others, mut is_new) = (0usize, 0usize, true);
    for (m, _) in all {
        count += 1;
        if m.name == name {
            is_new = false;
        } else {
            others += m.content.len();
        }
    }
    let refuse = |limit: &str, message: String| {
        tracing::info!(name, limit, "write refused: {}", message.trim_end());
        app.refused.with_label_values(&[limit]).inc();
        Some(text(StatusCode::INSUFFICIENT_STORAGE, message))
    };
    if is_new && count >= max_memos {
        return refuse(
            "max_memos",
            format!("full: at most {max_memos} memos (--max-memos)\n"),
        );
    }
    if others + bytes > max_bytes {
        return refuse(
            "max_total_bytes",
            format!("full: at most {max_bytes} bytes of memos in all (--max-total-bytes)\n"),
        );
    }
    None
}

async fn empty_name() -> Response {
    text(StatusCode::BAD_REQUEST, "memo name must not be empty\n")
}

async fn delete_memo(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    if let Err(e) = validate_name(&name) {
        return text(StatusCode::BAD_REQUEST, format!("{e}\n"));
    }
    // Ordered with every other write (see `put_memo`).
    let _ordered = app.writes.lock().await;
    #[cfg(feature = "etcd")]
    if let Desired::Etcd {
        writer,
        write_failing,
        ..
    } = &app.desired
    {
        return etcd::delete(&app, writer, write_failing, &name).await;
    }
    let n = name.clone();
    if let Err(refusal) = on_store(&app, move |store| store.delete_memo(&n)).await {
        return refusal;
    }
    let t = &app.memos.table;
    let result = match app.db.write_txn_async(&[t]).await {
        Ok(mut w) => (|| {
            let Some((memo, _)) = t.get(&w, app.memos.by_name.query(&name))? else {
                return Ok(None);
            };
            let mut memo = (*memo).clone();
            memo.status = Status::pending_delete();
            t.insert(&mut w, memo.clone())?;
            w.commit();
            Ok::<_, statedb::Error>(Some(memo))
        })(),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(Some(memo)) => (StatusCode::ACCEPTED, json(&memo)).into_response(),
        Ok(None) => text(StatusCode::NOT_FOUND, format!("no memo {name:?}\n")),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
struct Page {
    /// Start after this name.
    after: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

/// One page of memos in name order; the `x-next-after` header names the
/// last one when more follow.
async fn list_memos(State(app): State<Arc<App>>, Query(page): Query<Page>) -> Response {
    let limit = page.limit.unwrap_or(100).clamp(1, 1000);
    let txn = app.db.read_txn();
    let t = &app.memos.table;
    let objects = match &page.after {
        Some(after) => t
            .lower_bound(&txn, app.memos.by_name.query(after))
            .map(|(o, _)| o),
        None => t.all(&txn),
    };
    let mut memos: Vec<Memo> = match objects {
        Ok(o) => o
            .filter(|(m, _)| page.after.as_deref() != Some(m.name.as_str()))
            .take(limit + 1)
            .map(|(m, _)| (*m).clone())
            .collect(),
        Err(e) => return internal(e),
    };
    let more = memos.len() > limit;
    memos.truncate(limit);
    let mut resp = json(&memos);
    if more
        && let Some(last) = memos.last()
        && let Ok(v) = axum::http::HeaderValue::from_str(&last.name)
    {
        resp.headers_mut().insert("x-next-after", v);
    }
    resp
}

async fn get_memo(State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    if let Err(e) = validate_name(&name) {
        return text(StatusCode::BAD_REQUEST, format!("{e}\n"));
    }
    match app
        .memos
        .table
        .get(&app.db.read_txn(), app.memos.by_name.query(&name))
    {
        Ok(Some((m, _))) => json(&*m),
        Ok(None) => text(StatusCode::NOT_FOUND, format!("no memo {name:?}\n")),
        Err(e) => internal(e),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut out = String::new();
    match prometheus::TextEncoder::new().encode_utf8(&app.registry.gather(), &mut out) {
        Ok(()) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], out).into_response(),
        Err(e) => internal(e),
    }
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let foreign = app.target.foreign_files();
    let foreign = if foreign.is_empty() {
        String::new()
    } else {
        format!(
            "foreign files kept (not written by memos, never pruned): {}\n",
            foreign.join(", ")
        )
    };
    let (etcd, outage) = match &app.desired {
        Desired::Local => (String::new(), None::<String>),
        #[cfg(feature = "etcd")]
        Desired::Etcd {
            writer,
            stats,
            write_failing,
        } => (
            etcd::health_line(writer, stats),
            etcd::outage(stats, write_failing),
        ),
    };
    // The desired state's source is down: not healthy, whatever the
    // reconciler says (it has nothing new to do).
    if let Some(outage) = outage {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Degraded: {outage}\n{etcd}"),
        );
    }
    match app.health.latest() {
        Some(r) if r.level == HealthLevel::Ok => text(
            StatusCode::OK,
            format!("OK: {}\n{foreign}{etcd}", r.message),
        ),
        Some(r) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{:?}: {}\n{}\n",
                r.level,
                r.message,
                r.error.unwrap_or_default()
            ),
        ),
        None => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
    }
}

async fn reconcile(State(app): State<Arc<App>>) -> Response {
    app.reconciler.trigger_full_reconciliation();
    text(StatusCode::ACCEPTED, "full reconciliation triggered\n")
}

/// The HTTP API, answering only requests addressed to `listen` (see
/// [`browser_guard`]): the memos, `/statedb` (the inspection API of
/// `rstatedb-http`: dump, tables, queries, change streams, and the web
/// view at `/statedb/ui`), metrics, health and a reconcile trigger.
pub fn router(app: Arc<App>, listen: std::net::SocketAddr) -> Router {
    router_with_shutdown(app, listen, statedb::Watch::channel().1)
}

/// [`router`] whose change streams end (with a final line) when `shutdown`
/// closes, so a graceful shutdown does not wait for them.
pub fn router_with_shutdown(
    app: Arc<App>,
    listen: std::net::SocketAddr,
    shutdown: statedb::Watch,
) -> Router {
    let inspect = statedb_http::Api::new(app.db.clone())
        .shutdown(shutdown)
        .max_concurrent_dumps(MAX_CONCURRENT_DUMPS);
    Router::new()
        .route("/memos", get(list_memos))
        .route("/memos/", post(empty_name).delete(empty_name))
        .route(
            "/memos/{name}",
            get(get_memo).post(put_memo).delete(delete_memo),
        )
        .nest("/statedb", inspect.router())
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/reconcile", post(reconcile))
        .layer(DefaultBodyLimit::max(MAX_CONTENT))
        .layer(axum::middleware::from_fn(refuse_large_bodies))
        .layer(axum::middleware::from_fn_with_state(listen, browser_guard))
        .with_state(app)
}

/// Dumps (`GET /statedb`) that may stream at once.
pub const MAX_CONCURRENT_DUMPS: usize = 4;

/// A declared `Content-Length` above the memo limit gets 413 at once,
/// before any of the body is read (not a 408 once the body timeout ends).
async fn refuse_large_bodies(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_CONTENT as u64) {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("memo content is limited to {MAX_CONTENT} bytes\n"),
        );
    }
    next.run(req).await
}

/// Is `authority` (`host[:port]`) this server: a loopback name or address,
/// and, if a port is given, the listening port?
fn is_own_authority(authority: &str, listen: std::net::SocketAddr) -> bool {
    let (host, port) = match authority.rsplit_once(':') {
        // "[::1]:8080", "127.0.0.1:8080", "localhost:8080"; a bare IPv6
        // literal without brackets is not a valid Host.
        Some((h, p)) if !h.is_empty() && !p.contains(']') => (h, Some(p)),
        _ => (authority, None),
    };
    if let Some(p) = port
        && p.parse::<u16>().ok() != Some(listen.port())
    {
        return false;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip == listen.ip())
}

/// GETs that cost more than a page: the memo list, the dump, table
/// queries and change streams (the web view's page and assets are not).
fn is_costly(path: &str) -> bool {
    path == "/memos"
        || path == "/statedb"
        || path == "/statedb/"
        || path.starts_with("/statedb/tables")
}

/// Browser safety. The API listens on loopback, but a web page the user
/// opens can still send it requests: through DNS rebinding (a name of the
/// attacker's that resolves to 127.0.0.1: the `Host` header then carries
/// that name) or as a cross-site form post (the `Origin` header names the
/// other site). So: a `Host` that is not this server's loopback address is
/// refused with 403, and so is a state-changing request (anything but
/// GET/HEAD) whose `Origin` is not this server, and a costly GET (the
/// memo list, the dump, table queries and change streams) with a foreign
/// `Origin` or `Sec-Fetch-Site: cross-site`.
/// Clients that send neither (curl, scripts) are not affected.
pub async fn browser_guard(
    State(listen): State<std::net::SocketAddr>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host_ok = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| is_own_authority(h, listen));
    if !host_ok {
        return text(
            StatusCode::FORBIDDEN,
            "forbidden: the Host header must name this server's loopback address\n",
        );
    }
    let safe = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let foreign_origin = req.headers().get(header::ORIGIN).is_some_and(|origin| {
        !origin
            .to_str()
            .ok()
            .and_then(|o| o.strip_prefix("http://"))
            .is_some_and(|a| is_own_authority(a, listen))
    });
    if !safe && foreign_origin {
        return text(
            StatusCode::FORBIDDEN,
            "forbidden: cross-origin requests may not change memos\n",
        );
    }
    // A web page can make the browser send GETs too: those that cost more
    // than a page (lists, dumps, queries, change streams) must come from
    // this server's own pages, or from clients that are not browsers.
    let cross_site = req
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site" || v == "same-site");
    if safe && (foreign_origin || cross_site) && is_costly(req.uri().path()) {
        return text(
            StatusCode::FORBIDDEN,
            "forbidden: cross-origin requests may not read lists, dumps or change streams\n",
        );
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::is_own_authority;

    #[test]
    fn own_authority_is_a_loopback_name_on_the_listening_port() {
        let listen: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        for ok in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
            "127.0.0.1",
        ] {
            assert!(is_own_authority(ok, listen), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "evil.example",
            "127.0.0.1:9090",
            "localhost:x",
            "10.0.0.1:8080",
            "",
        ] {
            assert!(!is_own_authority(bad, listen), "{bad}");
        }
    }
}

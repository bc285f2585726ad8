//! `memos`: the example application. Memos `{ name, content, status }` live
//! in a statedb table; a reconciler writes each memo to `<dir>/<name>`,
//! retries failures, prunes stray files; an HTTP API edits memos and shows
//! their status, the database, metrics and health.

#[cfg(feature = "etcd")]
mod etcd;
pub mod memo;
pub mod store;
#[cfg(feature = "etcd")]
use etcd::etcd_desired;
pub mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use reconciler::{
    Health, HealthLevel, HealthReporter, Lifecycle, PrometheusMetrics, Reconciler, Status,
};
use serde::Deserialize;
use statedb::Db;

pub use memo::{MAX_CONTENT, Memo, MemoTable, validate_name};
pub use store::{Store, StoreError, default_state_dir};
pub use target::{FileTarget, prepare_directory};

/// Settings of the application (the command-line flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// The directory memos are written to.
    pub directory: PathBuf,
    /// Adopt a non-empty directory without the marker.
    pub force: bool,
    /// Where the durable state lives; `None`: [`default_state_dir`].
    pub state_dir: Option<PathBuf>,
    /// Most memos kept; a new one past it is refused with 507.
    pub max_memos: usize,
    /// Most bytes of memo content in all; a write past it is refused with
    /// 507.
    pub max_total_bytes: usize,
    /// Time between full reconciliations (0 = off).
    pub full_reconciliation_interval: Duration,
    /// First retry delay.
    pub retry_backoff_min: Duration,
    /// Longest retry delay.
    pub retry_backoff_max: Duration,
    /// etcd endpoints: when set, memos live in etcd under
    /// [`Options::etcd_prefix`] (shared by every instance) instead of the
    /// embedded store.
    pub etcd: Vec<String>,
    /// The etcd key prefix of the memos.
    pub etcd_prefix: String,
}

/// Where the desired memos live.
#[derive(Clone, Debug)]
// One per application: the size of the etcd variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Desired {
    /// The embedded store of this instance.
    Local,
    /// etcd, shared by every instance; the table mirrors it.
    #[cfg(feature = "etcd")]
    Etcd {
        /// Writes memos under the prefix.
        writer: statedb_etcd::Writer,
        /// The reflector's stats.
        stats: statedb_etcd::StatsHandle,
    },
}

/// Errors while setting up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The directory cannot be used.
    #[error(transparent)]
    Directory(#[from] target::DirError),
    /// Database setup failed.
    #[error("database: {0}")]
    Db(#[from] statedb::Error),
    /// etcd could not be reached.
    #[cfg(feature = "etcd")]
    #[error("etcd: {0}")]
    Etcd(#[from] statedb_etcd::etcd_client::Error),
    /// `--etcd` was given to a build without etcd support.
    #[error("this build has no etcd support: build memos with `--features etcd` (needs protoc)")]
    NoEtcdSupport,
    /// Invalid reconciler settings.
    #[error("reconciler: {0}")]
    Config(#[from] reconciler::ConfigError),
    /// Metrics registration failed.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The durable store cannot be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another instance runs on this directory.
    #[error("{0} is in use by another memos instance (its marker file is locked)")]
    InUse(PathBuf),
    /// The state directory would be inside the memos directory.
    #[error("the state directory {0} must not be inside the memos directory")]
    StateInsideDirectory(PathBuf),
}

impl From<statedb::TxnError> for SetupError {
    fn from(e: statedb::TxnError) -> Self {
        SetupError::Db(e.into())
    }
}

impl From<statedb::DeclareError> for SetupError {
    fn from(e: statedb::DeclareError) -> Self {
        SetupError::Db(e.into())
    }
}

/// The running application's shared state.
pub struct App {
    /// The database.
    pub db: Db,
    /// The memo table.
    pub memos: MemoTable,
    /// The reconciler's health.
    pub health: Arc<HealthReporter>,
    /// Registry with the reconciler metrics.
    pub registry: prometheus::Registry,
    /// The reconciler handle.
    pub reconciler: Reconciler<Memo>,
    /// The durable record of written files (and, without etcd, the
    /// desired memos).
    pub store: Arc<Store>,
    /// Where the desired memos live.
    pub desired: Desired,
    /// The file target (for its report of foreign files).
    pub target: FileTarget,
    /// Limits: most memos, most content bytes in all.
    pub limits: (usize, usize),
    /// The locked marker file: one instance per directory.
    _lock: std::fs::File,
}

/// Builds the database, the reconciler and its lifecycle (not started).
/// With etcd, connects to it and prepares the reflector that fills the
/// table.
pub async fn build(opts: &Options) -> Result<(Arc<App>, Lifecycle), SetupError> {
    prepare_directory(&opts.directory, opts.force)?;
    // One instance per directory: two would prune each other's files. The
    // lock (flock on the marker) goes with the process, even on kill -9.
    let marker = opts.directory.join(target::MARKER);
    let lock = std::fs::File::open(&marker).map_err(|source| target::DirError::Io {
        path: marker.clone(),
        source,
    })?;
    if lock.try_lock().is_err() {
        return Err(SetupError::InUse(opts.directory.clone()));
    }
    target::remove_stale_temp_files(&opts.directory);
    let state_dir = opts
        .state_dir
        .clone()
        .unwrap_or_else(|| default_state_dir(&opts.directory));
    let dir = std::fs::canonicalize(&opts.directory).ok();
    let state = std::fs::canonicalize(&state_dir)
        .or_else(|_| std::path::absolute(&state_dir))
        .ok();
    if let (Some(dir), Some(state)) = (dir, state)
        && state.starts_with(&dir)
    {
        return Err(SetupError::StateInsideDirectory(state_dir));
    }
    let store = Arc::new(Store::open(&state_dir)?);
    let target = FileTarget::open(&opts.directory, store.clone())?;
    let db = Db::new();
    let memos = MemoTable::new()?;
    db.register_inspectable_rows(&memos.table)?;
    let lifecycle = Lifecycle::new();
    let desired = if opts.etcd.is_empty() {
        fill_from_store(&db, &memos, &store)?;
        Desired::Local
    } else {
        etcd_desired(opts, &db, &memos, &lifecycle).await?
    };
    let registry = prometheus::Registry::new();
    let metrics = Arc::new(PrometheusMetrics::new(&registry)?);
    let health = Arc::new(HealthReporter::new());
    let params = reconciler::Params::new(db.clone(), "memos", lifecycle.clone(), health.clone())
        .with_default_metrics(metrics);
    let reconciler = Reconciler::builder(memos.table.clone(), target.clone())
        .status(|m| &m.status, |m, s| m.status = s)
        .full_reconciliation_interval(opts.full_reconciliation_interval)
        .retry_backoff(opts.retry_backoff_min, opts.retry_backoff_max)
        .incremental_round_size(100)
        .build(params)?;
    Ok((
        Arc::new(App {
            db,
            memos,
            health,
            registry,
            reconciler,
            store,
            desired,
            target,
            limits: (opts.max_memos, opts.max_total_bytes),
            _lock: lock,
        }),
        lifecycle,
    ))
}

/// Without the `etcd` feature, `--etcd` is refused.
#[cfg(not(feature = "etcd"))]
async fn etcd_desired(
    _: &Options,
    _: &Db,
    _: &MemoTable,
    _: &Lifecycle,
) -> Result<Desired, SetupError> {
    Err(SetupError::NoEtcdSupport)
}

/// Fills the table from the embedded store in one transaction, and only
/// then marks it initialized: the reconciler's first prune sees every
/// stored memo.
fn fill_from_store(db: &Db, memos: &MemoTable, store: &Store) -> Result<(), SetupError> {
    let mut w = db.write_txn(&[&memos.table])?;
    let init = memos.table.register_initializer(&mut w, "store")?;
    for (name, content) in store.memos()? {
        let memo = Memo {
            name,
            content,
            status: Status::pending(),
        };
        memos.table.insert(&mut w, memo)?;
    }
    init.done(&mut w)?;
    w.commit();
    Ok(())
}

fn text(code: StatusCode, body: impl Into<String>) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
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
    if let Some(refusal) = over_limits(&app, &name, body.len()) {
        return refusal;
    }
    let content = match String::from_utf8(body.to_vec()) {
        Ok(c) => c,
        Err(_) => return text(StatusCode::BAD_REQUEST, "memo content must be UTF-8\n"),
    };
    let memo = Memo {
        name,
        content,
        status: Status::pending(),
    };
    // Durable before it is accepted: in etcd (every instance's reflector
    // then mirrors it), or in the embedded store and the table.
    #[cfg(feature = "etcd")]
    if let Desired::Etcd { writer, .. } = &app.desired {
        return etcd::put(writer, &memo).await;
    }
    let store = app.store.clone();
    let (n, c) = (memo.name.clone(), memo.content.clone());
    match tokio::task::spawn_blocking(move || store.put_memo(&n, &c)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(e),
    }
    let t = &app.memos.table;
    let result = app
        .db
        .write_txn(&[t])
        .map_err(statedb::Error::from)
        .and_then(|mut w| {
            t.insert(&mut w, memo.clone())?;
            w.commit();
            Ok(())
        });
    match result {
        Ok(()) => (StatusCode::ACCEPTED, json(&memo)).into_response(),
        Err(e) => internal(e),
    }
}

/// 507 if storing `bytes` under `name` would pass a limit.
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
    if is_new && count >= max_memos {
        return Some(text(
            StatusCode::INSUFFICIENT_STORAGE,
            format!("full: at most {max_memos} memos (--max-memos)\n"),
        ));
    }
    if others + bytes > max_bytes {
        return Some(text(
            StatusCode::INSUFFICIENT_STORAGE,
            format!("full: at most {max_bytes} bytes of memos in all (--max-total-bytes)\n"),
        ));
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
    #[cfg(feature = "etcd")]
    if let Desired::Etcd { writer, .. } = &app.desired {
        return etcd::delete(&app, writer, &name).await;
    }
    let store = app.store.clone();
    let n = name.clone();
    match tokio::task::spawn_blocking(move || store.delete_memo(&n)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return internal(e),
        Err(e) => return internal(e),
    }
    let t = &app.memos.table;
    let result = app
        .db
        .write_txn(&[t])
        .map_err(statedb::Error::from)
        .and_then(|mut w| {
            let Some((memo, _)) = t.get(&w, app.memos.by_name.query(&name))? else {
                return Ok(None);
            };
            let mut memo = (*memo).clone();
            memo.status = Status::pending_delete();
            t.insert(&mut w, memo.clone())?;
            w.commit();
            Ok(Some(memo))
        });
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
    let etcd = match &app.desired {
        Desired::Local => String::new(),
        #[cfg(feature = "etcd")]
        Desired::Etcd { writer, stats } => etcd::health_line(writer, stats),
    };
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
    Router::new()
        .route("/memos", get(list_memos))
        .route("/memos/", post(empty_name).delete(empty_name))
        .route(
            "/memos/{name}",
            get(get_memo).post(put_memo).delete(delete_memo),
        )
        .nest("/statedb", statedb_http::router(app.db.clone()))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/reconcile", post(reconcile))
        .layer(DefaultBodyLimit::max(MAX_CONTENT))
        .layer(axum::middleware::from_fn_with_state(listen, browser_guard))
        .with_state(app)
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

/// Browser safety. The API listens on loopback, but a web page the user
/// opens can still send it requests: through DNS rebinding (a name of the
/// attacker's that resolves to 127.0.0.1: the `Host` header then carries
/// that name) or as a cross-site form post (the `Origin` header names the
/// other site). So: a `Host` that is not this server's loopback address is
/// refused with 403, and so is a state-changing request (anything but
/// GET/HEAD) whose `Origin` is not this server. Clients that send no
/// `Origin` (curl, scripts) are not affected.
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
    if !safe && let Some(origin) = req.headers().get(header::ORIGIN) {
        let own = origin
            .to_str()
            .ok()
            .and_then(|o| o.strip_prefix("http://"))
            .is_some_and(|a| is_own_authority(a, listen));
        if !own {
            return text(
                StatusCode::FORBIDDEN,
                "forbidden: cross-origin requests may not change memos\n",
            );
        }
    }
    next.run(req).await
}

/// Reports health as stopped: used on shutdown.
pub fn stopped(app: &App) {
    app.health.stopped("shutting down");
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

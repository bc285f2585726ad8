#![doc = include_str!("../README.md")]

mod ui;

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use statedb::{
    AnyChange, AnyObject, AnyTable, Db, InspectError, QueryOp, TableInfo, TextQuery, Watch,
};

/// The read-only inspection API of `db`, to mount in one's own server
/// (`Router::nest("/statedb", statedb_http::router(db))`; it fits a
/// router of any state):
///
/// - `GET /` (where the router is mounted): every inspectable table's
///   objects, `{"table": [object, …], …}`, or with `?format=table` each
///   table as aligned text under a `# name` line.
/// - `GET /tables`: every table with its indexes, object count, revision,
///   initialized flag and graveyard size.
/// - `GET /tables/{name}`: the objects of a table registered with
///   `Db::register_inspectable`; `?index=…&key=…&op=get|list|prefix|lower_bound`
///   for a query (the key as text), `limit`, `reverse`, and
///   `format=json` (default), `ndjson`, `table` (aligned text) or `rows`
///   (JSON `{"header", "rows", "revisions"}`, the columns of `table`).
/// - `GET /tables/{name}/changes`: upserts and deletes as they happen (or
///   after `?from=REVISION`), as newline-delimited JSON (default) or
///   `format=sse`, with a heartbeat every `heartbeat_ms` (default 15 s);
///   an SSE client reconnecting with `Last-Event-ID` resumes after it.
///   Each object and change carries `key`, its primary key as hex: an
///   identity to track it by.
///   The first line (SSE event `start`) is `{"after": R, "resync": B}`:
///   changes follow with revisions above `R`. A stream that cannot resume
///   after `from` (a delete since, or a revision ahead of the table's)
///   says `"resync": true` and replays the whole table.
///
/// - `GET /ui`: a web view: the tables, and one table as a sortable,
///   filterable grid that follows its changes live (rows flash when they
///   change, deleted rows fade out), the object as JSON on click. The
///   page, script and style are embedded in the binary.
///
/// Errors are JSON `{"error": "…"}`: 404 for an unknown table or index,
/// 400 for a key, operation or format that does not parse.
pub fn router<S: Clone + Send + Sync + 'static>(db: Db) -> Router<S> {
    Api::new(db).router()
}

/// The inspection router with its settings: [`router`] is `Api::new(db)
/// .router()`.
///
/// ```
/// let db = statedb::Db::new();
/// let (stop, stopped) = statedb::Watch::channel();
/// let app: axum::Router = statedb_http::Api::new(db)
///     .shutdown(stopped)
///     .max_concurrent_dumps(2)
///     .router();
/// // On shutdown: every open change stream ends with a final line.
/// stop.close();
/// ```
#[derive(Clone, Debug)]
pub struct Api {
    db: Db,
    shutdown: Watch,
    max_dumps: usize,
}

impl Api {
    /// The API of `db`: no shutdown signal, at most
    /// [`DEFAULT_MAX_CONCURRENT_DUMPS`] dumps at once.
    pub fn new(db: Db) -> Self {
        Api {
            db,
            // Nobody holds its closer: it never closes.
            shutdown: Watch::channel().1,
            max_dumps: DEFAULT_MAX_CONCURRENT_DUMPS,
        }
    }

    /// When `watch` closes, every open change stream sends a final
    /// `{"shutdown": true}` line (SSE: a `shutdown` event) and ends, so a
    /// server's graceful shutdown does not wait for them.
    #[must_use]
    pub fn shutdown(mut self, watch: Watch) -> Self {
        self.shutdown = watch;
        self
    }

    /// How many dumps (`GET /`) may run at once; more get 503. Each streams
    /// in bounded memory.
    #[must_use]
    pub fn max_concurrent_dumps(mut self, n: usize) -> Self {
        self.max_dumps = n.max(1);
        self
    }

    /// The router.
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let shared = Shared {
            db: self.db,
            shutdown: self.shutdown,
            dumps: Arc::new(tokio::sync::Semaphore::new(self.max_dumps)),
            max_dumps: self.max_dumps,
        };
        Router::new()
            .route("/", get(dump))
            .route("/tables", get(list_tables))
            .route("/tables/{name}", get(table_objects))
            .route("/tables/{name}/changes", get(table_changes))
            .route("/ui", get(ui::page))
            .route("/ui/", get(ui::page))
            .route("/ui/app.js", get(ui::script))
            .route("/ui/style.css", get(ui::style))
            .with_state(shared)
    }
}

/// How many dumps may run at once by default.
pub const DEFAULT_MAX_CONCURRENT_DUMPS: usize = 4;

/// What the handlers share.
#[derive(Clone)]
struct Shared {
    db: Db,
    shutdown: Watch,
    dumps: Arc<tokio::sync::Semaphore>,
    max_dumps: usize,
}

impl axum::extract::FromRef<Shared> for Db {
    fn from_ref(s: &Shared) -> Db {
        s.db.clone()
    }
}

#[derive(Serialize)]
struct IndexJson {
    name: &'static str,
    unique: bool,
    primary: bool,
    lpm: bool,
}

#[derive(Serialize)]
struct TableJson {
    name: String,
    indexes: Vec<IndexJson>,
    objects: usize,
    revision: u64,
    initialized: bool,
    graveyard: usize,
    change_iterators: usize,
    /// Who holds the table's lock now (omitted while nobody does).
    #[serde(skip_serializing_if = "Option::is_none")]
    locked_by: Option<LockHolderJson>,
    /// The `TableRow` columns, if the table has its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    columns: Option<Vec<String>>,
}

#[derive(Serialize)]
struct LockHolderJson {
    handle: String,
    held_for_ms: u64,
}

impl TableJson {
    fn new(t: TableInfo, columns: Option<Vec<String>>) -> Self {
        TableJson {
            columns,
            name: t.name,
            indexes: t
                .indexes
                .iter()
                .map(|i| IndexJson {
                    name: i.name,
                    unique: i.unique,
                    primary: i.primary,
                    lpm: i.lpm,
                })
                .collect(),
            objects: t.objects,
            revision: t.revision,
            initialized: t.initialized,
            graveyard: t.graveyard,
            change_iterators: t.change_iterators,
            locked_by: t.locked_by.map(|h| LockHolderJson {
                handle: h.handle,
                held_for_ms: u64::try_from(h.held_for.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }
}

/// A primary key as lower-case hex: an opaque identity of the object.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// axum's `Query`, with a query string that does not parse answered as
/// the documented JSON error (400), not as plain text.
struct JsonQuery<T>(T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S>
    for JsonQuery<T>
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Response> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(JsonQuery(q)),
            Err(e) => Err(error(StatusCode::BAD_REQUEST, e.body_text())),
        }
    }
}

/// An error answered as JSON.
fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({ "error": message.to_string() });
    (status, axum::Json(body)).into_response()
}

fn inspect_error(e: InspectError) -> Response {
    let status = match &e {
        InspectError::UnknownIndex { .. } => StatusCode::NOT_FOUND,
        InspectError::Render { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, e)
}

/// The table called `name`, or the 404 answer.
fn table(db: &Db, name: &str) -> Result<AnyTable, Box<Response>> {
    db.table_by_name(name).ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            format!("no table {name:?} (or it is not registered as inspectable)"),
        ))
    })
}

async fn list_tables(State(db): State<Db>) -> Response {
    let tables: Vec<TableJson> = db
        .tables(&db.read_txn())
        .into_iter()
        .map(|t| {
            let columns = db.table_by_name(&t.name).and_then(|a| a.header());
            TableJson::new(t, columns)
        })
        .collect();
    axum::Json(tables).into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DumpQuery {
    format: Option<String>,
}

/// Streams the dump: written by a blocking task into a small channel, so
/// a request holds a few chunks however large the tables (the table
/// format holds one table's rows at a time, to align its columns).
async fn dump(State(s): State<Shared>, JsonQuery(q): JsonQuery<DumpQuery>) -> Response {
    let format = match q.format.as_deref().unwrap_or("json") {
        "json" => DumpFormat::Json,
        "table" => DumpFormat::Table,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown format {other:?} (json or table)"),
            );
        }
    };
    let Ok(permit) = s.dumps.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("at most {} dumps at once: retry later", s.max_dumps),
        );
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    let db = s.db.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut out = ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let res = write_dump(&db, format, &mut out).and_then(|()| out.flush_chunk());
        if let Err(e) = res
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            // Ends the body with an error: the client sees a cut transfer,
            // never a silently truncated dump.
            let _ = out.tx.blocking_send(Err(e));
        }
    });
    let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let content_type = match format {
        DumpFormat::Json => "application/json",
        DumpFormat::Table => "text/plain; charset=utf-8",
    };
    (
        [(header::CONTENT_TYPE, content_type)],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

#[derive(Clone, Copy)]
enum DumpFormat {
    Json,
    Table,
}

/// Bytes per chunk of a streamed dump.
const CHUNK: usize = 64 * 1024;

/// Writes into a channel of chunks; a gone receiver is `BrokenPipe`.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::ErrorKind::BrokenPipe.into())
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush_chunk()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_chunk()
    }
}

fn write_dump(db: &Db, format: DumpFormat, out: &mut ChunkWriter) -> std::io::Result<()> {
    use std::io::Write;
    let txn = db.read_txn();
    let tables: Vec<AnyTable> = db
        .tables(&txn)
        .into_iter()
        .filter_map(|info| db.table_by_name(&info.name))
        .collect();
    let failed = |e: InspectError| std::io::Error::other(e.to_string());
    match format {
        DumpFormat::Json => {
            out.write_all(b"{")?;
            for (i, t) in tables.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, t.name())?;
                out.write_all(b":[")?;
                let mut first = true;
                let mut io = Ok(());
                t.for_each(&txn, |o| {
                    let mut write = || -> std::io::Result<()> {
                        if !std::mem::take(&mut first) {
                            out.write_all(b",")?;
                        }
                        serde_json::to_writer(&mut *out, &o.json)?;
                        Ok(())
                    };
                    match write() {
                        Ok(()) => std::ops::ControlFlow::Continue(()),
                        Err(e) => {
                            io = Err(e);
                            std::ops::ControlFlow::Break(())
                        }
                    }
                })
                .map_err(failed)?;
                io?;
                out.write_all(b"]")?;
            }
            out.write_all(b"}")
        }
        DumpFormat::Table => {
            for (i, t) in tables.iter().enumerate() {
                if i > 0 {
                    out.write_all(b"\n")?;
                }
                let objects = t.all(&txn).map_err(failed)?;
                let (header_row, rows) = t.rows(&objects);
                drop(objects);
                writeln!(out, "# {}", t.name())?;
                out.write_all(aligned(&header_row, &rows).as_bytes())?;
            }
            Ok(())
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ObjectsQuery {
    index: Option<String>,
    key: Option<String>,
    op: Option<String>,
    limit: Option<usize>,
    reverse: bool,
    format: Option<String>,
}

#[derive(Serialize)]
struct ObjectJson<'a> {
    revision: u64,
    key: String,
    object: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    cells: Option<&'a Vec<String>>,
}

async fn table_objects(
    State(db): State<Db>,
    Path(name): Path<String>,
    JsonQuery(q): JsonQuery<ObjectsQuery>,
) -> Response {
    let t = match table(&db, &name) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let txn = db.read_txn();
    let found = match (&q.key, &q.op) {
        (None, None) if q.index.is_none() => t.all(&txn),
        (None, _) => {
            return error(
                StatusCode::BAD_REQUEST,
                "a query needs `key` (and `op`, default get)",
            );
        }
        (Some(key), op) => {
            let op = match op.as_deref().unwrap_or("get").parse::<QueryOp>() {
                Ok(op) => op,
                Err(e) => return inspect_error(e),
            };
            let query = TextQuery {
                index: q.index.clone(),
                op,
                key: key.clone(),
            };
            t.query(&txn, &query)
        }
    };
    let mut objects = match found {
        Ok(o) => o,
        Err(e) => return inspect_error(e),
    };
    if q.reverse {
        objects.reverse();
    }
    if let Some(limit) = q.limit {
        objects.truncate(limit);
    }
    render(&t, &objects, q.format.as_deref().unwrap_or("json"))
}

fn object_json(o: &AnyObject) -> ObjectJson<'_> {
    ObjectJson {
        revision: o.revision,
        key: hex(&o.key),
        object: &o.json,
        cells: o.cells.as_ref(),
    }
}

fn render(t: &AnyTable, objects: &[AnyObject], format: &str) -> Response {
    let json = object_json;
    match format {
        "json" => axum::Json(objects.iter().map(json).collect::<Vec<_>>()).into_response(),
        "ndjson" => {
            let mut body = String::new();
            for o in objects {
                body.push_str(&serde_json::to_string(&json(o)).unwrap_or_default());
                body.push('\n');
            }
            ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
        }
        "table" => {
            let (header_row, rows) = t.rows(objects);
            (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                aligned(&header_row, &rows),
            )
                .into_response()
        }
        "rows" => {
            let (header_row, rows) = t.rows(objects);
            let revisions: Vec<u64> = objects.iter().map(|o| o.revision).collect();
            axum::Json(serde_json::json!({
                "header": header_row,
                "rows": rows,
                "revisions": revisions,
            }))
            .into_response()
        }
        other => error(
            StatusCode::BAD_REQUEST,
            format!("unknown format {other:?} (json, ndjson, table or rows)"),
        ),
    }
}

/// Columns padded to their widest cell, upper-case header first.
pub fn aligned(header_row: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header_row.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = String>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&mut header_row.iter().map(|h| h.to_uppercase()));
    for row in rows {
        out.push_str(&line(&mut row.iter().cloned()));
    }
    out
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ChangesQuery {
    from: Option<u64>,
    format: Option<String>,
    heartbeat_ms: Option<u64>,
    /// Lowers the bound of deleted objects held back for this stream
    /// (never above [`statedb::DEFAULT_CHANGES_MAX_LAG`]).
    max_lag: Option<usize>,
}

/// The error line of a change stream; `lapped` tells the client to resume
/// from its last revision (the server then replays the table).
fn error_line(e: &InspectError) -> String {
    let lapped = matches!(
        e,
        InspectError::Txn(statedb::TxnError::ChangesLapped { .. })
    );
    serde_json::json!({ "error": e.to_string(), "lapped": lapped }).to_string()
}

#[derive(Serialize)]
struct ChangeJson<'a> {
    revision: u64,
    key: String,
    deleted: bool,
    object: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    cells: Option<&'a Vec<String>>,
}

fn change_line(c: &AnyChange) -> String {
    serde_json::to_string(&ChangeJson {
        revision: c.revision,
        key: hex(&c.key),
        deleted: c.deleted,
        object: &c.json,
        cells: c.cells.as_ref(),
    })
    .unwrap_or_default()
}

/// The first line of a change stream (SSE event `start`): the revision it
/// starts after, and whether it replays the whole table because it could
/// not resume where asked.
fn start_line(c: &statedb::AnyChanges) -> String {
    let mut line = serde_json::json!({ "after": c.after(), "resync": c.resync() });
    if let Some(reason) = c.resync_reason() {
        line["reason"] = reason.as_str().into();
    }
    line.to_string()
}

async fn table_changes(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    JsonQuery(q): JsonQuery<ChangesQuery>,
    headers: axum::http::HeaderMap,
) -> Response {
    let t = match table(&shared.db, &name) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let shutdown = shared.shutdown.clone();
    let heartbeat = Duration::from_millis(q.heartbeat_ms.unwrap_or(15_000).max(10));
    // An EventSource reconnecting says where it was with Last-Event-ID.
    let last_event = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let max_lag = q
        .max_lag
        .unwrap_or(statedb::DEFAULT_CHANGES_MAX_LAG)
        .min(statedb::DEFAULT_CHANGES_MAX_LAG);
    let changes = match t.changes_with_max_lag(last_event.or(q.from), max_lag) {
        Ok(c) => c,
        Err(e) => return inspect_error(e),
    };
    // The stream holds the change iterator; when the client goes away,
    // hyper drops the body (at the latest on the next heartbeat write),
    // and with it the iterator. A client that stays connected but stops
    // reading holds back at most `max_lag` deletes: then the stream says
    // it was lapped and ends.
    let start = start_line(&changes);
    match q.format.as_deref().unwrap_or("ndjson") {
        "ndjson" => {
            // Heartbeats stop when the changes end, so the body ends too.
            let (ended, ended_rx) = futures::channel::oneshot::channel::<()>();
            let mut ended = Some(ended);
            let lines = futures::stream::once(async move { start + "\n" })
                .chain(
                    changes
                        .map(|c| match c {
                            Ok(c) => change_line(&c) + "\n",
                            Err(e) => error_line(&e) + "\n",
                        })
                        .take_until(shutdown.clone().closed()),
                )
                .chain(
                    futures::stream::once(async move {
                        shutdown
                            .is_closed()
                            .then(|| "{\"shutdown\":true}\n".to_string())
                    })
                    .filter_map(std::future::ready),
                )
                .chain(futures::stream::poll_fn(move |_| {
                    drop(ended.take());
                    std::task::Poll::Ready(None)
                }));
            let ticks = futures::stream::unfold((), move |()| async move {
                tokio::time::sleep(heartbeat).await;
                Some(("{\"heartbeat\":true}\n".to_string(), ()))
            })
            .take_until(ended_rx);
            let body = futures::stream::select(lines, ticks).map(Ok::<_, Infallible>);
            (
                [(header::CONTENT_TYPE, "application/x-ndjson")],
                axum::body::Body::from_stream(body),
            )
                .into_response()
        }
        "sse" => {
            let first = Ok::<_, Infallible>(Event::default().event("start").data(start));
            let events = futures::stream::once(async move { first })
                .chain(
                    changes
                        .map(|c| {
                            Ok::<_, Infallible>(match c {
                                Ok(c) => Event::default()
                                    .event(if c.deleted { "delete" } else { "upsert" })
                                    .id(c.revision.to_string())
                                    .data(change_line(&c)),
                                Err(e) => Event::default().event("error").data(error_line(&e)),
                            })
                        })
                        .take_until(shutdown.clone().closed()),
                )
                .chain(
                    futures::stream::once(async move {
                        shutdown.is_closed().then(|| {
                            Ok::<_, Infallible>(Event::default().event("shutdown").data("{}"))
                        })
                    })
                    .filter_map(std::future::ready),
                );
            Sse::new(events)
                .keep_alive(KeepAlive::new().interval(heartbeat))
                .into_response()
        }
        other => error(
            StatusCode::BAD_REQUEST,
            format!("unknown format {other:?} (ndjson or sse)"),
        ),
    }
}

//! Memos in etcd (feature `etcd`): the reflector fills the table, the
//! API writes through the writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use reconciler::{Lifecycle, Status};
use statedb::Db;

use crate::app::{App, Desired, Options, SetupError};
use crate::memo::{MAX_CONTENT, Memo, MemoTable, validate_name};
use crate::respond::{json, text};

/// Connects to etcd and prepares the reflector that fills the table (its
/// loop runs as a job of `lifecycle`; the table is initialized, and the
/// first prune may run, only after the first list).
pub(crate) async fn etcd_desired(
    opts: &Options,
    db: &Db,
    memos: &MemoTable,
    lifecycle: &Lifecycle,
) -> Result<Desired, SetupError> {
    let options = statedb_etcd::etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(10));
    let client = statedb_etcd::etcd_client::Client::connect(&opts.etcd, Some(options)).await?;
    // The table mirrors the prefix; it is initialized (and the first
    // prune may run) only after the first list.
    let reflector = statedb_etcd::Reflector::new(
        client.clone(),
        opts.etcd_prefix.clone(),
        memos.table.clone(),
        decode_memo,
    );
    let (run, stats) = reflector.prepare(db)?;
    lifecycle.add_job("etcd-reflector", move |cancel| run.run(cancel));
    Ok(Desired::Etcd {
        writer: statedb_etcd::Writer::new(client, opts.etcd_prefix.clone()),
        stats,
        write_failing: Arc::default(),
    })
}

/// A memo from etcd: the key (without the prefix) is its name, the value
/// its content. Names and contents the HTTP API would refuse are refused
/// here too (a memo put straight into etcd cannot escape the directory).
fn decode_memo(name: &str, value: &[u8]) -> Result<Memo, statedb_etcd::DecodeError> {
    validate_name(name).map_err(|e| e.to_string())?;
    if value.len() > MAX_CONTENT {
        return Err(format!("content over {MAX_CONTENT} bytes").into());
    }
    let content = String::from_utf8(value.to_vec())?;
    Ok(Memo {
        name: name.to_string(),
        content,
        status: Status::pending(),
    })
}

/// Puts a memo into etcd; 202 once etcd has it.
pub(crate) async fn put(
    writer: &statedb_etcd::Writer,
    failing: &AtomicBool,
    memo: &Memo,
) -> Response {
    let res = writer.put(&memo.name, memo.content.clone()).await;
    failing.store(res.is_err(), Ordering::Relaxed);
    match res {
        Ok(_) => (StatusCode::ACCEPTED, json(memo)).into_response(),
        Err(e) => unavailable(e),
    }
}

/// Deletes a memo from etcd; 202 once etcd no longer has it, 404 if it
/// had none.
pub(crate) async fn delete(
    app: &Arc<App>,
    writer: &statedb_etcd::Writer,
    failing: &AtomicBool,
    name: &str,
) -> Response {
    let current = app
        .memos
        .table
        .get(&app.db.read_txn(), app.memos.by_name.query(name))
        .ok()
        .flatten();
    let res = writer.delete(name).await;
    failing.store(res.is_err(), Ordering::Relaxed);
    match res {
        Ok(true) => {
            let memo = current.map_or_else(
                || Memo {
                    name: name.to_string(),
                    content: String::new(),
                    status: Status::pending_delete(),
                },
                |(m, _)| Memo {
                    status: Status::pending_delete(),
                    ..(*m).clone()
                },
            );
            (StatusCode::ACCEPTED, json(&memo)).into_response()
        }
        Ok(false) => text(StatusCode::NOT_FOUND, format!("no memo {name:?}\n")),
        Err(e) => unavailable(e),
    }
}

/// Why etcd is not usable now, if it is not: the reflector cannot follow
/// it, or the last write failed.
pub(crate) fn outage(stats: &statedb_etcd::StatsHandle, failing: &AtomicBool) -> Option<String> {
    let s = stats.get();
    let last = || s.last_error.clone().unwrap_or_default();
    if !s.connected {
        Some(format!("etcd unreachable (retrying): {}", last()))
    } else if failing.load(Ordering::Relaxed) {
        Some("etcd refused the last write".to_string())
    } else {
        None
    }
}

/// The /healthz line of the reflector.
pub(crate) fn health_line(
    writer: &statedb_etcd::Writer,
    stats: &statedb_etcd::StatsHandle,
) -> String {
    let s = stats.get();
    let error = s
        .last_error
        .map(|e| format!(", last error: {e}"))
        .unwrap_or_default();
    format!(
        "etcd {}: revision {}, {} list(s), {} error(s){error}\n",
        writer.prefix(),
        s.revision,
        s.lists,
        s.errors
    )
}

/// 503 when etcd cannot take a write.
fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "etcd write failed");
    text(StatusCode::SERVICE_UNAVAILABLE, format!("etcd: {e}\n"))
}

//! Building the application: the directory, the store or etcd, the
//! table, the reconciler.

use std::sync::Arc;

use reconciler::{HealthReporter, Lifecycle, PrometheusMetrics, Reconciler, Status};
use statedb::{Db, PrometheusDbMetrics};

use crate::app::{App, Desired, Options, SetupError};
#[cfg(feature = "etcd")]
use crate::etcd::etcd_desired;
use crate::memo::{Memo, MemoTable};
use crate::store::{Store, default_state_dir};
use crate::target::{self, FileTarget, prepare_directory};

/// How long start waits for the directory's lock held by another instance
/// (one that is still exiting) before refusing.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Builds the database, the reconciler and its lifecycle (not started).
/// With etcd, connects to it and prepares the reflector that fills the
/// table.
pub async fn build(opts: &Options) -> Result<(Arc<App>, Lifecycle), SetupError> {
    // Everything about the paths is checked before anything is written,
    // so a bad value leaves nothing behind.
    let directory = target::resolve_directory(&opts.directory)?;
    let state_dir = opts
        .state_dir
        .clone()
        .unwrap_or_else(|| default_state_dir(&directory));
    let state = std::fs::canonicalize(&state_dir)
        .or_else(|_| std::path::absolute(&state_dir))
        .ok();
    if let Some(state) = state
        && state.starts_with(&directory)
    {
        return Err(SetupError::StateInsideDirectory(state_dir));
    }
    let opts = &Options {
        directory,
        ..opts.clone()
    };
    prepare_directory(&opts.directory, opts.force)?;
    // One instance per directory: two would prune each other's files. The
    // lock (flock on the marker) goes with the process, even on kill -9.
    let lock = target::open_marker(&opts.directory)?;
    // A previous instance that was just stopped may still be exiting:
    // give it a moment before calling the directory in use.
    let deadline = tokio::time::Instant::now() + LOCK_WAIT;
    while lock.try_lock().is_err() {
        if tokio::time::Instant::now() >= deadline {
            return Err(SetupError::InUse(opts.directory.clone()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    target::remove_stale_temp_files(&opts.directory);
    let store = Arc::new(Store::open(&state_dir)?);
    let target = FileTarget::open(&opts.directory, store.clone())?;
    let registry = prometheus::Registry::new();
    let db = Db::with_metrics(Arc::new(PrometheusDbMetrics::new(&registry)?)).handle("memos-http");
    let memos = MemoTable::new()?;
    db.register_inspectable_rows(&memos.table)?;
    let lifecycle = Lifecycle::new();
    let desired = if opts.etcd.is_empty() {
        fill_from_store(&db.handle("memos-store"), &memos, &store)?;
        Desired::Local
    } else {
        etcd_desired(opts, &db.handle("memos-etcd"), &memos, &lifecycle).await?
    };
    let metrics = Arc::new(PrometheusMetrics::new(&registry)?);
    let refused = prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "memos_refused_writes_total",
            "Memo writes refused by a limit (--max-memos, --max-total-bytes)",
        ),
        &["limit"],
    )?;
    registry.register(Box::new(refused.clone()))?;
    let health = Arc::new(HealthReporter::new());
    let params = reconciler::Params::new(
        db.handle("memos-reconciler"),
        "memos",
        lifecycle.clone(),
        health.clone(),
    )
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
            writes: tokio::sync::Mutex::new(()),
            refused,
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

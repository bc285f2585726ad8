//! `reconciler`: pushes the desired state kept in a [`statedb`] table into
//! a target (kernel routes, eBPF maps, files, a remote API), retries
//! failures with backoff, reports per-object [`Status`], prunes what no
//! object asks for, and exposes metrics and health.
//!
//! The Rust counterpart of the Go package `cilium/statedb/reconciler`:
//!
//! | Go | here |
//! |---|---|
//! | `OpUpdate`, `OpDelete`, `OpPrune` | [`OP_UPDATE`], [`OP_DELETE`], [`OP_PRUNE`] |
//! | `Status`, `StatusKind`, `StatusPending()`… | [`Status`], [`StatusKind`], [`Status::pending`]… |
//! | `NewStatusIndex` | [`new_status_index`] |
//! | `Config` | [`Reconciler::builder`] → [`Builder`] (each field a setter, validated by [`Builder::build`] with a [`ConfigError`] naming it) |
//! | `Config.GetObjectStatus`, `SetObjectStatus`, `CloneObject` | [`Builder::status`] (closures); `Obj: Clone` |
//! | `Operations`, `BatchOperations`, `BatchEntry` | [`Operations`] (`async fn`, no extra crate; prune returns [`Pruned`]), [`BatchOperations`], [`BatchEntry`] |
//! | `StatusSet`, `NewStatusSet` (several reconcilers per object) | [`StatusSet`], [`new_status_set_index`] |
//! | `Metrics`, `ExpVarMetrics` | [`Metrics`], [`InMemoryMetrics`] (+ [`PrometheusMetrics`]) |
//! | `Params` (lifecycle, jobs, health, metrics) | [`Params`], [`Lifecycle`], [`Health`] / [`HealthReporter`] |
//! | `New`, `Register`, `Reconciler.TriggerFullReconciliation` | [`Builder::build`], [`Builder::register`], [`Reconciler::trigger_full_reconciliation`] (returns a [`FullRound`] to await) |
//! | `WaitForReconciliation` | [`wait_for_reconciliation`], [`wait_for_reconciliation_timeout`], [`wait_for_reconciliation_blocking`] (one [`WaitError`]) |
//! | (new) wait for a revision | [`Reconciler::wait_until_reconciled`] → [`Reconciled`] |
//! | `FullReconciliationInterval`; (new) prune interval | [`Builder::full_reconciliation_interval`], [`Builder::prune_interval`]; one prune always runs once the table is initialized |
//! | (new) hard deletes | a row deleted from the table is deleted from the target ([`Operations::delete`] with its last version), retried until it succeeds |
//! | (new) refresh, concurrency, graceful drain | [`Builder::refresh`] / [`StatusKind::Refreshing`], [`Builder::concurrency`], [`Builder::shutdown_drain`] |
//! | `*rate.Limiter` | [`RateLimiter`] (governor, on tokio's clock: [`tokio_rate_limiter`]) |
//!
//! Time comes from tokio's clock, so tests run on a paused runtime in
//! virtual time.
//!
//! ```
//! use std::sync::Arc;
//! use parking_lot::Mutex;
//! use reconciler::{HealthReporter, Lifecycle, OpError, Operations, Params, Pruned, Reconciler, Status};
//! use statedb::{Db, Index, Objects, ReadTxn, Revision, Table};
//!
//! #[derive(Clone, Debug)]
//! struct Route { prefix: String, status: Status }
//!
//! /// The target: a list standing in for the kernel's routing table.
//! #[derive(Default)]
//! struct Kernel(Mutex<Vec<String>>);
//!
//! impl Operations<Route> for Kernel {
//!     async fn update(&self, _: &ReadTxn, _: Revision, r: &mut Route, _: Option<&mut bool>) -> Result<(), OpError> {
//!         let mut k = self.0.lock();
//!         if !k.contains(&r.prefix) { k.push(r.prefix.clone()); }
//!         Ok(())
//!     }
//!     async fn delete(&self, _: &ReadTxn, _: Revision, r: &Route) -> Result<(), OpError> {
//!         self.0.lock().retain(|p| *p != r.prefix);
//!         Ok(())
//!     }
//!     async fn prune(&self, _: &ReadTxn, want: Objects<Route>) -> Result<Pruned, OpError> {
//!         let want: Vec<String> = want.map(|(r, _)| r.prefix.clone()).collect();
//!         let mut k = self.0.lock();
//!         let gone: Vec<String> = k.iter().filter(|p| !want.contains(p)).cloned().collect();
//!         k.retain(|p| want.contains(p));
//!         Ok(Pruned::removed(gone))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let by_prefix: Index<Route, str> = Index::unique("prefix", |r: &Route, k| k.push(r.prefix.as_str()));
//! let status = reconciler::new_status_index(|r: &Route| &r.status);
//! let routes = Table::builder("routes", &by_prefix).index(&status).build()?;
//! let db = Db::new();
//! db.register_table(&routes)?;
//!
//! let kernel = Arc::new(Kernel::default());
//! let lifecycle = Lifecycle::new();
//! let params = Params::new(db.clone(), "routes-reconciler", lifecycle.clone(), Arc::new(HealthReporter::new()));
//! let _handle = Reconciler::builder(routes.clone(), kernel.clone())
//!     .status(|r| &r.status, |r, s| r.status = s)
//!     .build(params)?;
//! lifecycle.start().await?;
//!
//! let mut w = db.write_txn(&[&routes])?;
//! routes.insert(&mut w, Route { prefix: "10.0.0.0/8".into(), status: Status::pending() })?;
//! w.commit();
//! reconciler::wait_for_reconciliation(&db, &routes, &status).await?;
//! assert_eq!(*kernel.0.lock(), ["10.0.0.0/8"]);
//!
//! // Deleting the row deletes the route.
//! let mut w = db.write_txn(&[&routes])?;
//! routes.delete_all(&mut w)?;
//! let rev = routes.revision(&w.commit())?;
//! _handle.wait_until_reconciled(rev).await?;
//! assert!(kernel.0.lock().is_empty());
//! lifecycle.stop().await;
//! # Ok(())
//! # }
//! ```

mod builder;
mod handle;
mod health;
mod lifecycle;
mod limiter;
mod metrics;
mod ops;
mod params;
mod retries;
mod runner;
mod status;
mod status_set;
mod wait;

pub use builder::{Builder, ConfigError};
pub use handle::{FullRound, Reconciler};
pub use health::{
    Health, HealthLevel, HealthReport, HealthReporter, MAX_JOINED_ERRORS, join_errors,
};
pub use lifecycle::{BoxError, Hook, Lifecycle, LifecycleError};
pub use limiter::{GovernorLimiter, RateLimiter, TokioClock, TokioInstant, tokio_rate_limiter};
pub use metrics::{InMemoryMetrics, Metrics, ModuleMetrics, PrometheusMetrics};
pub use ops::{BatchEntry, BatchOperations, OpError, Operations, Pruned};
pub use params::Params;
pub use status::{OP_DELETE, OP_PRUNE, OP_UPDATE, Status, StatusKind, new_status_index};
pub use status_set::{StatusSet, new_status_set_index};
pub use wait::{
    Reconciled, WaitError, wait_for_reconciliation, wait_for_reconciliation_blocking,
    wait_for_reconciliation_timeout,
};

// The handles users share across tasks are `Send + Sync`.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Reconciler<u32>>();
    send_sync::<Builder<u32>>();
    send_sync::<Params>();
    send_sync::<Lifecycle>();
    send_sync::<StatusSet>();
};

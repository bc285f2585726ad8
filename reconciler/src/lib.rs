#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

// No module circles (xtask/tests/layers.rs checks every crate).
mod builder;
mod config;
mod fast_hash;
#[cfg(feature = "governor")]
mod governor_limiter;
mod handle;
mod health;
mod lifecycle;
mod limiter;
mod metrics;
mod ops;
mod params;
#[cfg(feature = "prometheus")]
mod prometheus_metrics;
mod report;
mod retries;
mod runner;
mod settings;
mod state;
mod status;
mod status_set;
mod time;
mod wait;
mod write_log;

pub use builder::Builder;
pub use config::{Config, ConfigError};
#[cfg(feature = "governor")]
pub use governor_limiter::{GovernorLimiter, TokioClock, TokioInstant, tokio_rate_limiter};
pub use handle::{FullRound, Reconciler};
pub use health::{
    Health, HealthLevel, HealthReport, HealthReporter, MAX_JOINED_ERRORS, join_errors,
};
pub use lifecycle::{BoxError, Hook, Lifecycle, LifecycleError};
pub use limiter::RateLimiter;
pub use metrics::{InMemoryMetrics, Metrics, ModuleMetrics};
pub use ops::{BatchEntry, BatchOperations, OpError, Operations, Pruned};
pub use params::Params;
#[cfg(feature = "prometheus")]
pub use prometheus_metrics::PrometheusMetrics;
pub use report::{Failing, Reconciled};
pub use state::{ReconcilerState, STATE_TABLE, state_table};
pub use status::{OP_DELETE, OP_PRUNE, OP_UPDATE, Status, StatusKind, new_status_index};
pub use status_set::{StatusSet, new_status_set_index};
pub use wait::{
    WaitError, wait_for_reconciliation, wait_for_reconciliation_blocking,
    wait_for_reconciliation_timeout,
};

// The handles users share across tasks are `Send + Sync`.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Reconciler<u32>>();
    send_sync::<Builder<u32>>();
    send_sync::<Config>();
    send_sync::<FullRound>();
    send_sync::<Params>();
    send_sync::<Lifecycle>();
    send_sync::<StatusSet>();
};

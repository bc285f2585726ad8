//! The application's settings, its shared state, and what can go wrong
//! setting it up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reconciler::{Health, HealthReporter, Reconciler};
use statedb::Db;

use crate::memo::{Memo, MemoTable};
use crate::store::{Store, StoreError};
use crate::target::{self, FileTarget};

/// Settings of the application (the command-line flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// The directory memos are written to.
    pub directory: PathBuf,
    /// Adopt a non-empty directory without the marker.
    pub force: bool,
    /// Where the durable state lives; `None`: [`crate::store::default_state_dir`].
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
        /// Set while writes to etcd fail (cleared by the next that works).
        write_failing: Arc<std::sync::atomic::AtomicBool>,
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
    /// Held by each memo write from its limit check to its table write:
    /// the one ordered write path.
    pub writes: tokio::sync::Mutex<()>,
    /// Writes refused by a limit, by limit (`memos_refused_writes_total`).
    pub refused: prometheus::IntCounterVec,
    /// The locked marker file: one instance per directory.
    pub(crate) _lock: std::fs::File,
}

/// Reports health as stopped: used on shutdown.
pub fn stopped(app: &App) {
    app.health.stopped("shutting down");
}

//! What a reconciler needs from the application.

use std::sync::Arc;

use statedb::Db;

use crate::health::Health;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;

/// What a reconciler needs from the application.
#[derive(Clone)]
pub struct Params {
    /// The database holding the table. The reconciler's write
    /// transactions carry this handle's name ([`Db::handle`]), or
    /// `reconciler:<module_id>` when it has none of its own (`"db"`).
    pub db: Db,
    /// Names the reconciler in metrics (`module_id` label) and logs.
    pub module_id: String,
    /// The lifecycle (job group) that starts and stops the reconciler.
    pub lifecycle: Lifecycle,
    /// Where health is reported.
    pub health: Arc<dyn Health>,
    /// Metrics used when [`crate::Builder::metrics`] is not set.
    pub default_metrics: Option<Arc<dyn Metrics>>,
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Params")
            .field("module_id", &self.module_id)
            .field("default_metrics", &self.default_metrics.is_some())
            .finish()
    }
}

impl Params {
    /// Params without default metrics.
    pub fn new(db: Db, module_id: &str, lifecycle: Lifecycle, health: Arc<dyn Health>) -> Self {
        Params {
            db,
            module_id: module_id.to_string(),
            lifecycle,
            health,
            default_metrics: None,
        }
    }

    /// Sets the default metrics.
    #[must_use]
    pub fn with_default_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.default_metrics = Some(metrics);
        self
    }
}

//! What the reconciler loop runs with: the wiring (table, operations,
//! status accessors, metrics) and the validated [`Config`].

use std::sync::Arc;

use statedb::Table;

use crate::config::Config;
use crate::limiter::DynRateLimiter;
use crate::metrics::Metrics;
use crate::ops::{DynBatchOperations, DynOperations};
use crate::status::Status;

pub(crate) type GetStatus<Obj> = Arc<dyn Fn(&Obj) -> &Status + Send + Sync>;
pub(crate) type SetStatus<Obj> = Arc<dyn Fn(&mut Obj, Status) + Send + Sync>;

/// A validated declaration. Cheap to clone (every part is shared): the
/// supervisor builds a fresh loop from it after a panic.
pub(crate) struct Settings<Obj> {
    pub table: Table<Obj>,
    pub operations: Arc<dyn DynOperations<Obj>>,
    pub batch_operations: Option<Arc<dyn DynBatchOperations<Obj>>>,
    pub get_status: GetStatus<Obj>,
    pub set_status: SetStatus<Obj>,
    pub metrics: Option<Arc<dyn Metrics>>,
    pub rate_limiter: Option<Arc<dyn DynRateLimiter>>,
    pub config: Config,
}

impl<Obj> Clone for Settings<Obj> {
    fn clone(&self) -> Self {
        Settings {
            table: self.table.clone(),
            operations: self.operations.clone(),
            batch_operations: self.batch_operations.clone(),
            get_status: self.get_status.clone(),
            set_status: self.set_status.clone(),
            metrics: self.metrics.clone(),
            rate_limiter: self.rate_limiter.clone(),
            config: self.config.clone(),
        }
    }
}

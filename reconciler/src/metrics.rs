//! Reconciler metrics: the [`Metrics`] trait and an in-memory
//! implementation for tests and debugging (the Prometheus one is in
//! `prometheus_metrics.rs`, feature `prometheus`).

use std::collections::BTreeMap;
use std::time::Duration;

use parking_lot::Mutex;

/// Receives what the reconciler measures. `module_id` names the reconciler
/// (see [`crate::Params::module_id`]); `operation` is [`crate::OP_UPDATE`],
/// [`crate::OP_DELETE`] or [`crate::OP_PRUNE`].
pub trait Metrics: Send + Sync {
    /// Duration of one operation during an incremental round.
    fn incremental_reconciliation_duration(
        &self,
        module_id: &str,
        operation: &str,
        duration: Duration,
    );
    /// End of an incremental round, with the errors it produced.
    fn incremental_reconciliation_errors(&self, module_id: &str, errs: &[String]);
    /// A full round found an object out of sync (the update changed it).
    fn full_reconciliation_out_of_sync(&self, module_id: &str);
    /// End of a full round, with the errors it produced.
    fn full_reconciliation_errors(&self, module_id: &str, errs: &[String]);
    /// Duration of one operation during a full round.
    fn full_reconciliation_duration(&self, module_id: &str, operation: &str, duration: Duration);
    /// After each round: objects waiting for a retry. Beyond the Go
    /// library's five methods; the default records nothing.
    fn retry_queue_size(&self, module_id: &str, size: usize) {
        let _ = (module_id, size);
    }
}

/// What [`InMemoryMetrics`] recorded for one module.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ModuleMetrics {
    /// Incremental rounds.
    pub incremental_rounds: u64,
    /// Per operation: (count, total duration) in incremental rounds.
    pub incremental_durations: BTreeMap<String, (u64, Duration)>,
    /// Errors over all incremental rounds.
    pub incremental_total_errors: u64,
    /// Errors of the last incremental round.
    pub incremental_current_errors: u64,
    /// Full rounds.
    pub full_rounds: u64,
    /// Per operation: (count, total duration) in full rounds.
    pub full_durations: BTreeMap<String, (u64, Duration)>,
    /// Errors over all full rounds.
    pub full_total_errors: u64,
    /// Errors of the last full round.
    pub full_current_errors: u64,
    /// Objects found out of sync by full rounds.
    pub full_out_of_sync: u64,
    /// Objects waiting for a retry after the last round.
    pub retry_queue_size: u64,
}

/// Metrics kept in memory and readable at any time: the role of the Go
/// library's expvar metrics.
///
/// ```
/// use reconciler::{InMemoryMetrics, Metrics};
/// let m = InMemoryMetrics::new();
/// m.incremental_reconciliation_errors("mod", &["boom".to_string()]);
/// assert_eq!(m.module("mod").incremental_total_errors, 1);
/// ```
#[derive(Debug, Default)]
pub struct InMemoryMetrics {
    modules: Mutex<BTreeMap<String, ModuleMetrics>>,
}

impl InMemoryMetrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of what was recorded for `module_id` (zeros if nothing).
    pub fn module(&self, module_id: &str) -> ModuleMetrics {
        self.modules
            .lock()
            .get(module_id)
            .cloned()
            .unwrap_or_default()
    }

    fn with(&self, module_id: &str, f: impl FnOnce(&mut ModuleMetrics)) {
        let mut m = self.modules.lock();
        match m.get_mut(module_id) {
            Some(x) => f(x),
            None => f(m.entry(module_id.to_string()).or_default()),
        }
    }
}

fn add_duration(map: &mut BTreeMap<String, (u64, Duration)>, op: &str, d: Duration) {
    let e = match map.get_mut(op) {
        Some(e) => e,
        None => map.entry(op.to_string()).or_default(),
    };
    e.0 += 1;
    e.1 += d;
}

impl Metrics for InMemoryMetrics {
    fn incremental_reconciliation_duration(
        &self,
        module_id: &str,
        operation: &str,
        duration: Duration,
    ) {
        self.with(module_id, |m| {
            add_duration(&mut m.incremental_durations, operation, duration)
        });
    }
    fn incremental_reconciliation_errors(&self, module_id: &str, errs: &[String]) {
        self.with(module_id, |m| {
            m.incremental_rounds += 1;
            m.incremental_total_errors += errs.len() as u64;
            m.incremental_current_errors = errs.len() as u64;
        });
    }
    fn full_reconciliation_out_of_sync(&self, module_id: &str) {
        self.with(module_id, |m| m.full_out_of_sync += 1);
    }
    fn full_reconciliation_errors(&self, module_id: &str, errs: &[String]) {
        self.with(module_id, |m| {
            m.full_rounds += 1;
            m.full_total_errors += errs.len() as u64;
            m.full_current_errors = errs.len() as u64;
        });
    }
    fn full_reconciliation_duration(&self, module_id: &str, operation: &str, duration: Duration) {
        self.with(module_id, |m| {
            add_duration(&mut m.full_durations, operation, duration)
        });
    }
    fn retry_queue_size(&self, module_id: &str, size: usize) {
        self.with(module_id, |m| m.retry_queue_size = size as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_records() {
        let m = InMemoryMetrics::new();
        m.full_reconciliation_duration("a", "update", Duration::from_millis(2));
        m.full_reconciliation_duration("a", "update", Duration::from_millis(3));
        m.full_reconciliation_errors("a", &["x".into(), "y".into()]);
        m.full_reconciliation_errors("a", &[]);
        let a = m.module("a");
        assert_eq!(a.full_durations["update"], (2, Duration::from_millis(5)));
        assert_eq!(
            (a.full_rounds, a.full_total_errors, a.full_current_errors),
            (2, 2, 0)
        );
        assert_eq!(m.module("b"), ModuleMetrics::default());
    }
}

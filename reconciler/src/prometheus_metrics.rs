//! The reconciler's metrics in a Prometheus registry (feature
//! `prometheus`).

use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::metrics::Metrics;

/// Metrics exported to Prometheus, all labelled `module_id`:
///
/// - `reconciler_incremental_reconciliation_total` (counter of rounds)
/// - `reconciler_incremental_reconciliation_duration_seconds` (histogram,
///   label `operation`)
/// - `reconciler_incremental_reconciliation_errors_total` (counter)
/// - `reconciler_incremental_reconciliation_current_errors` (gauge)
/// - the same four with `full` in place of `incremental`
/// - `reconciler_full_reconciliation_out_of_sync_total` (counter)
/// - `reconciler_retry_queue_size` (gauge: objects waiting for a retry)
#[derive(Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub struct PrometheusMetrics {
    incremental_total: IntCounterVec,
    incremental_duration: HistogramVec,
    incremental_errors_total: IntCounterVec,
    incremental_current_errors: IntGaugeVec,
    full_total: IntCounterVec,
    full_duration: HistogramVec,
    full_errors_total: IntCounterVec,
    full_current_errors: IntGaugeVec,
    full_out_of_sync_total: IntCounterVec,
    retry_queue_size: IntGaugeVec,
}

impl std::fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrometheusMetrics")
    }
}

impl PrometheusMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter =
            |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["module_id"]);
        let gauge =
            |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["module_id"]);
        let histogram = |name: &str, help: &str| {
            HistogramVec::new(HistogramOpts::new(name, help), &["module_id", "operation"])
        };
        let m = PrometheusMetrics {
            incremental_total: counter(
                "reconciler_incremental_reconciliation_total",
                "Number of incremental reconciliation rounds performed",
            )?,
            incremental_duration: histogram(
                "reconciler_incremental_reconciliation_duration_seconds",
                "Duration of operations in incremental reconciliation",
            )?,
            incremental_errors_total: counter(
                "reconciler_incremental_reconciliation_errors_total",
                "Number of errors in incremental reconciliation",
            )?,
            incremental_current_errors: gauge(
                "reconciler_incremental_reconciliation_current_errors",
                "Errors of the last incremental reconciliation round",
            )?,
            full_total: counter(
                "reconciler_full_reconciliation_total",
                "Number of full reconciliation rounds performed",
            )?,
            full_duration: histogram(
                "reconciler_full_reconciliation_duration_seconds",
                "Duration of operations in full reconciliation",
            )?,
            full_errors_total: counter(
                "reconciler_full_reconciliation_errors_total",
                "Number of errors in full reconciliation",
            )?,
            full_current_errors: gauge(
                "reconciler_full_reconciliation_current_errors",
                "Errors of the last full reconciliation round",
            )?,
            full_out_of_sync_total: counter(
                "reconciler_full_reconciliation_out_of_sync_total",
                "Number of objects found out of sync in full reconciliation",
            )?,
            retry_queue_size: gauge("reconciler_retry_queue_size", "Objects waiting for a retry")?,
        };
        registry.register(Box::new(m.incremental_total.clone()))?;
        registry.register(Box::new(m.incremental_duration.clone()))?;
        registry.register(Box::new(m.incremental_errors_total.clone()))?;
        registry.register(Box::new(m.incremental_current_errors.clone()))?;
        registry.register(Box::new(m.full_total.clone()))?;
        registry.register(Box::new(m.full_duration.clone()))?;
        registry.register(Box::new(m.full_errors_total.clone()))?;
        registry.register(Box::new(m.full_current_errors.clone()))?;
        registry.register(Box::new(m.full_out_of_sync_total.clone()))?;
        registry.register(Box::new(m.retry_queue_size.clone()))?;
        Ok(m)
    }

    fn histogram(v: &HistogramVec, module_id: &str, op: &str) -> Histogram {
        v.with_label_values(&[module_id, op])
    }
}

impl Metrics for PrometheusMetrics {
    fn incremental_reconciliation_duration(
        &self,
        module_id: &str,
        operation: &str,
        duration: Duration,
    ) {
        Self::histogram(&self.incremental_duration, module_id, operation)
            .observe(duration.as_secs_f64());
    }
    fn incremental_reconciliation_errors(&self, module_id: &str, errs: &[String]) {
        self.incremental_total.with_label_values(&[module_id]).inc();
        self.incremental_errors_total
            .with_label_values(&[module_id])
            .inc_by(errs.len() as u64);
        self.incremental_current_errors
            .with_label_values(&[module_id])
            .set(errs.len() as i64);
    }
    fn full_reconciliation_out_of_sync(&self, module_id: &str) {
        self.full_out_of_sync_total
            .with_label_values(&[module_id])
            .inc();
    }
    fn full_reconciliation_errors(&self, module_id: &str, errs: &[String]) {
        self.full_total.with_label_values(&[module_id]).inc();
        self.full_errors_total
            .with_label_values(&[module_id])
            .inc_by(errs.len() as u64);
        self.full_current_errors
            .with_label_values(&[module_id])
            .set(errs.len() as i64);
    }
    fn full_reconciliation_duration(&self, module_id: &str, operation: &str, duration: Duration) {
        Self::histogram(&self.full_duration, module_id, operation).observe(duration.as_secs_f64());
    }
    fn retry_queue_size(&self, module_id: &str, size: usize) {
        self.retry_queue_size
            .with_label_values(&[module_id])
            .set(size as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Encoder;

    #[test]
    fn prometheus_registers_the_documented_names() {
        let reg = Registry::new();
        let m = PrometheusMetrics::new(&reg).unwrap();
        m.incremental_reconciliation_duration("m", "update", Duration::from_millis(1));
        m.incremental_reconciliation_errors("m", &["e".into()]);
        m.full_reconciliation_duration("m", "prune", Duration::from_millis(1));
        m.full_reconciliation_errors("m", &[]);
        m.full_reconciliation_out_of_sync("m");
        m.retry_queue_size("m", 3);
        let mut buf = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&reg.gather(), &mut buf)
            .unwrap();
        let text = String::from_utf8(buf).unwrap();
        for name in [
            "reconciler_incremental_reconciliation_total{module_id=\"m\"} 1",
            "reconciler_incremental_reconciliation_duration_seconds_count{module_id=\"m\",operation=\"update\"} 1",
            "reconciler_incremental_reconciliation_errors_total{module_id=\"m\"} 1",
            "reconciler_incremental_reconciliation_current_errors{module_id=\"m\"} 1",
            "reconciler_full_reconciliation_total{module_id=\"m\"} 1",
            "reconciler_full_reconciliation_duration_seconds_count{module_id=\"m\",operation=\"prune\"} 1",
            "reconciler_full_reconciliation_errors_total{module_id=\"m\"} 0",
            "reconciler_full_reconciliation_current_errors{module_id=\"m\"} 0",
            "reconciler_full_reconciliation_out_of_sync_total{module_id=\"m\"} 1",
            "reconciler_retry_queue_size{module_id=\"m\"} 3",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
        // Registering twice on one registry is an error, not a panic.
        assert!(PrometheusMetrics::new(&reg).is_err());
    }
}

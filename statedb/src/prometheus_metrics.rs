//! The Db's metrics in a Prometheus registry (feature `prometheus`).

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::Revision;
use crate::metrics::DbMetrics;

/// [`DbMetrics`] registered in a `prometheus::Registry`, labelled by
/// `table` (and by `handle`, the [named handle](crate::Db::handle) of the
/// transaction, where it says so):
///
/// - `statedb_write_txn_duration_seconds` (histogram: from the start of
///   `write_txn`, lock wait included, to the commit, once per table of the
///   transaction)
/// - `statedb_table_lock_wait_seconds` (histogram, by `table` and `handle`)
/// - `statedb_table_lock_hold_seconds` (histogram, by `table` and `handle`:
///   from having every lock to the commit or abort)
/// - `statedb_write_txn_commits_total`, `statedb_write_txn_aborts_total`
///   (counters)
/// - `statedb_table_objects`, `statedb_table_revision`,
///   `statedb_table_graveyard_objects` (gauges, after each commit)
/// - `statedb_change_iterator_lag_revisions` (gauge: how many revisions a
///   change iterator was behind when it last read)
/// - `statedb_change_iterators` (gauge: live change iterators, after each
///   commit)
/// - `statedb_graveyard_cleaning_duration_seconds` (histogram),
///   `statedb_graveyard_collected_objects_total` (counter) and
///   `statedb_graveyard_low_watermark` (gauge: the oldest revision a live
///   change iterator still needs, at the last collection)
///
/// ```
/// use std::sync::Arc;
/// use statedb::{Db, Index, PrometheusDbMetrics, Table};
/// let registry = prometheus::Registry::new();
/// let db = Db::with_metrics(Arc::new(PrometheusDbMetrics::new(&registry)?));
/// let t = Table::new("ids", &Index::<u32, u32>::unique("id", |o: &u32, k| k.push(o)))?;
/// db.register_table(&t)?;
/// let mut w = db.write_txn(&[&t])?;
/// t.insert(&mut w, 1)?;
/// w.commit();
/// let names: Vec<String> = registry.gather().iter().map(|f| f.name().to_string()).collect();
/// assert!(names.contains(&"statedb_table_objects".to_string()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub struct PrometheusDbMetrics {
    txn_duration: HistogramVec,
    lock_wait: HistogramVec,
    commits: IntCounterVec,
    aborts: IntCounterVec,
    objects: IntGaugeVec,
    revision: IntGaugeVec,
    graveyard: IntGaugeVec,
    lag: IntGaugeVec,
    lock_hold: HistogramVec,
    iterators: IntGaugeVec,
    cleaning: HistogramVec,
    collected: IntCounterVec,
    low_watermark: IntGaugeVec,
}

impl std::fmt::Debug for PrometheusDbMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusDbMetrics")
            .finish_non_exhaustive()
    }
}

/// Buckets from 1 µs to about 4 s.
fn buckets() -> Vec<f64> {
    prometheus::exponential_buckets(1e-6, 4.0, 12).unwrap_or_default()
}

impl PrometheusDbMetrics {
    /// Creates the metrics and registers them in `registry`.
    ///
    /// # Errors
    ///
    /// A metric of the same name is already registered there.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let histogram = |name: &str, help: &str| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets()),
                &["table"],
            )
        };
        let by_handle = |name: &str, help: &str| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets()),
                &["table", "handle"],
            )
        };
        let counter =
            |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["table"]);
        let gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["table"]);
        let m = PrometheusDbMetrics {
            txn_duration: histogram(
                "statedb_write_txn_duration_seconds",
                "Write transaction duration, lock wait included",
            )?,
            lock_wait: by_handle(
                "statedb_table_lock_wait_seconds",
                "Time a write transaction waited for a table lock",
            )?,
            commits: counter(
                "statedb_write_txn_commits_total",
                "Committed write transactions",
            )?,
            aborts: counter(
                "statedb_write_txn_aborts_total",
                "Aborted write transactions",
            )?,
            objects: gauge("statedb_table_objects", "Objects in the table")?,
            revision: gauge("statedb_table_revision", "The table's revision")?,
            graveyard: gauge(
                "statedb_table_graveyard_objects",
                "Deleted objects kept for change iterators",
            )?,
            lag: gauge(
                "statedb_change_iterator_lag_revisions",
                "Revisions a change iterator was behind when it last read",
            )?,
            lock_hold: by_handle(
                "statedb_table_lock_hold_seconds",
                "Time a write transaction held a table lock",
            )?,
            iterators: gauge("statedb_change_iterators", "Live change iterators")?,
            cleaning: histogram(
                "statedb_graveyard_cleaning_duration_seconds",
                "Time a commit spent collecting the graveyard",
            )?,
            collected: counter(
                "statedb_graveyard_collected_objects_total",
                "Deleted objects dropped from the graveyard",
            )?,
            low_watermark: gauge(
                "statedb_graveyard_low_watermark",
                "Oldest revision a live change iterator still needs, at the last collection",
            )?,
        };
        registry.register(Box::new(m.txn_duration.clone()))?;
        registry.register(Box::new(m.lock_wait.clone()))?;
        registry.register(Box::new(m.commits.clone()))?;
        registry.register(Box::new(m.aborts.clone()))?;
        registry.register(Box::new(m.objects.clone()))?;
        registry.register(Box::new(m.revision.clone()))?;
        registry.register(Box::new(m.graveyard.clone()))?;
        registry.register(Box::new(m.lag.clone()))?;
        registry.register(Box::new(m.lock_hold.clone()))?;
        registry.register(Box::new(m.iterators.clone()))?;
        registry.register(Box::new(m.cleaning.clone()))?;
        registry.register(Box::new(m.collected.clone()))?;
        registry.register(Box::new(m.low_watermark.clone()))?;
        Ok(m)
    }
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl DbMetrics for PrometheusDbMetrics {
    fn write_txn_duration(&self, tables: &[&str], duration: Duration) {
        for t in tables {
            self.txn_duration
                .with_label_values(&[*t])
                .observe(duration.as_secs_f64());
            self.commits.with_label_values(&[*t]).inc();
        }
    }
    fn handle_lock_wait(&self, handle: &str, table: &str, wait: Duration) {
        self.lock_wait
            .with_label_values(&[table, handle])
            .observe(wait.as_secs_f64());
    }
    fn handle_lock_hold(&self, handle: &str, tables: &[&str], held: Duration) {
        for t in tables {
            self.lock_hold
                .with_label_values(&[*t, handle])
                .observe(held.as_secs_f64());
        }
    }
    fn graveyard_collected(
        &self,
        table: &str,
        collected: usize,
        low_watermark: Revision,
        duration: Duration,
    ) {
        self.cleaning
            .with_label_values(&[table])
            .observe(duration.as_secs_f64());
        self.collected
            .with_label_values(&[table])
            .inc_by(collected as u64);
        self.low_watermark
            .with_label_values(&[table])
            .set(gauge_value(low_watermark));
    }
    fn change_iterators(&self, table: &str, count: usize) {
        self.iterators
            .with_label_values(&[table])
            .set(gauge_value(count as u64));
    }
    fn table_contents(&self, table: &str, objects: usize, graveyard: usize, revision: Revision) {
        self.objects
            .with_label_values(&[table])
            .set(gauge_value(objects as u64));
        self.graveyard
            .with_label_values(&[table])
            .set(gauge_value(graveyard as u64));
        self.revision
            .with_label_values(&[table])
            .set(gauge_value(revision));
    }
    fn write_txn_aborted(&self, tables: &[&str]) {
        for t in tables {
            self.aborts.with_label_values(&[*t]).inc();
        }
    }
    fn change_iterator_lag(&self, table: &str, behind: Revision) {
        self.lag
            .with_label_values(&[table])
            .set(gauge_value(behind));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prometheus::Encoder;

    use super::*;
    use crate::{Db, Index, Table};

    /// Fails unless the registry's text has every line.
    fn assert_lines(registry: &Registry, lines: &[&str]) {
        let mut buf = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut buf)
            .unwrap();
        let text = String::from_utf8(buf).unwrap();
        for line in lines {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn records_commits_aborts_contents_and_iterator_lag() {
        let registry = Registry::new();
        let db = Db::with_metrics(Arc::new(PrometheusDbMetrics::new(&registry).unwrap()))
            .handle("tests");
        let t = Table::new(
            "ids",
            &Index::<u32, u32>::unique("id", |o: &u32, k| k.push(o)),
        )
        .unwrap();
        db.register_table(&t).unwrap();
        let mut w = db.write_txn(&[&t]).unwrap();
        let mut changes = t.changes(&mut w).unwrap();
        for i in 0..3 {
            t.insert(&mut w, i).unwrap();
        }
        w.commit();
        let mut w = db.write_txn(&[&t]).unwrap();
        t.delete(&mut w, &0).unwrap();
        w.commit();
        let w = db.write_txn(&[&t]).unwrap();
        w.abort();
        drop(changes.next(&db.read_txn()).unwrap());
        assert_lines(
            &registry,
            &[
                "statedb_write_txn_commits_total{table=\"ids\"} 2",
                "statedb_write_txn_aborts_total{table=\"ids\"} 1",
                "statedb_table_objects{table=\"ids\"} 2",
                "statedb_table_revision{table=\"ids\"} 4",
                "statedb_table_graveyard_objects{table=\"ids\"} 1",
                "statedb_change_iterator_lag_revisions{table=\"ids\"} 4",
                "statedb_write_txn_duration_seconds_count{table=\"ids\"} 2",
                "statedb_table_lock_wait_seconds_count{handle=\"tests\",table=\"ids\"} 3",
                "statedb_table_lock_hold_seconds_count{handle=\"tests\",table=\"ids\"} 3",
                "statedb_change_iterators{table=\"ids\"} 1",
            ],
        );
        // Once the iterator has seen the delete, a commit collects it.
        let _ = changes.next(&db.read_txn()).unwrap().0.count();
        let mut w = db.write_txn(&[&t]).unwrap();
        t.insert(&mut w, 10).unwrap();
        w.commit();
        assert_lines(
            &registry,
            &[
                "statedb_graveyard_collected_objects_total{table=\"ids\"} 1",
                "statedb_graveyard_cleaning_duration_seconds_count{table=\"ids\"} 1",
                "statedb_graveyard_low_watermark{table=\"ids\"} 4",
                "statedb_table_graveyard_objects{table=\"ids\"} 0",
            ],
        );
        drop(changes);
        assert!(
            PrometheusDbMetrics::new(&registry).is_err(),
            "registered twice"
        );
    }
}

//! The reconciler's bad-input catalogue: every public API fed its bad
//! inputs. Each case must return the documented error (or the documented
//! empty answer) and never panic. (statedb's and part's cases are in
//! `statedb/tests/bad_input.rs`.)

use std::sync::Arc;
use std::time::Duration;

use reconciler::{
    Builder, ConfigError, HealthReporter, Lifecycle, LifecycleError, OpError, Operations, Params,
    Pruned, Reconciler, Status, StatusKind, WaitError,
};
use statedb::{Db, Error, Index, Objects, ReadTxn, Table, TxnError};

#[derive(Clone, Debug, serde::Serialize)]
struct O {
    id: u64,
    status: Status,
}

fn id() -> Index<O, u64> {
    Index::unique("id", |o: &O, k| k.push(&o.id))
}

fn o(id: u64) -> O {
    O {
        id,
        status: Status::pending(),
    }
}

fn registered(name: &str) -> (Db, Table<O>) {
    let t = Table::new(name, &id()).unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    (db, t)
}

struct Nop;

impl Operations<O> for Nop {
    async fn update(
        &self,
        _: &ReadTxn,
        _: statedb::Revision,
        _: &mut O,
        _: Option<&mut bool>,
    ) -> Result<(), OpError> {
        Ok(())
    }
    async fn delete(&self, _: &ReadTxn, _: statedb::Revision, _: &O) -> Result<(), OpError> {
        Ok(())
    }
    async fn prune(&self, _: &ReadTxn, _: Objects<O>) -> Result<Pruned, OpError> {
        Ok(Pruned::default())
    }
}

fn config(t: &Table<O>) -> Builder<O> {
    Reconciler::builder(t.clone(), Nop).status(|o| &o.status, |o, s| o.status = s)
}

fn params(db: &Db, module: &str) -> Params {
    Params::new(
        db.clone(),
        module,
        Lifecycle::new(),
        Arc::new(HealthReporter::new()),
    )
}

// ---- reconciler -----------------------------------------------------------

#[test]
fn c30_zero_round_size() {
    let (db, t) = registered("t");
    let c = config(&t).incremental_round_size(0);
    assert_eq!(
        c.build(params(&db, "m")).unwrap_err(),
        ConfigError::ZeroRoundSize
    );
}

#[test]
fn c40_zero_concurrency() {
    let (db, t) = registered("t");
    let c = config(&t).concurrency(0);
    assert_eq!(
        c.build(params(&db, "m")).unwrap_err(),
        ConfigError::ZeroConcurrency
    );
}

#[test]
fn c31_zero_min_backoff() {
    let (db, t) = registered("t");
    let c = config(&t).retry_backoff(Duration::ZERO, Duration::from_secs(60));
    assert_eq!(
        c.build(params(&db, "m")).unwrap_err(),
        ConfigError::ZeroRetryBackoffMin
    );
}

#[test]
fn c32_max_backoff_below_min() {
    let (db, t) = registered("t");
    let c = config(&t).retry_backoff(Duration::from_secs(2), Duration::from_secs(1));
    assert!(matches!(
        c.build(params(&db, "m")),
        Err(ConfigError::RetryBackoffMaxBelowMin { .. })
    ));
}

#[test]
fn c33_empty_module_id() {
    let (db, t) = registered("t");
    assert_eq!(
        config(&t).register(params(&db, "")).unwrap_err(),
        ConfigError::EmptyModuleId
    );
}

#[test]
fn c34_table_not_registered_with_params_db() {
    let (_, t) = registered("t");
    assert!(matches!(
        config(&t).register(params(&Db::new(), "m")),
        Err(ConfigError::Table { .. })
    ));
}

#[tokio::test]
async fn c35_lifecycle_started_twice() {
    let lc = Lifecycle::new();
    lc.start().await.unwrap();
    assert!(matches!(
        lc.start().await,
        Err(LifecycleError::AlreadyStarted)
    ));
    lc.stop().await;
    // Stopping twice is harmless.
    lc.stop().await;
}

#[tokio::test]
async fn c36_wait_with_an_index_the_table_lacks() {
    let (db, t) = registered("t");
    let status = reconciler::new_status_index(|o: &O| &o.status);
    let r = reconciler::wait_for_reconciliation(&db, &t, &status).await;
    assert!(matches!(
        r,
        Err(WaitError::Db(Error::Txn(TxnError::UnknownIndex { .. })))
    ));
}

#[test]
fn c37_blocking_wait_times_out() {
    let status = reconciler::new_status_index(|o: &O| &o.status);
    let t = Table::builder("t", &id()).index(&status).build().unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    let mut w = db.write_txn(&[&t]).unwrap();
    t.insert(&mut w, o(1)).unwrap();
    w.commit();
    let r =
        reconciler::wait_for_reconciliation_blocking(&db, &t, &status, Duration::from_millis(20));
    assert_eq!(r, Err(WaitError::Timeout));
}

#[test]
fn c38_status_with_bad_timestamp() {
    let bad = r#"{"kind":"done","delete":false,"updated_at":"yesterday","error":null}"#;
    assert!(serde_json::from_str::<Status>(bad).is_err());
    let bad_kind =
        r#"{"kind":"finished","delete":false,"updated_at":"2026-01-01T00:00:00Z","error":null}"#;
    assert!(serde_json::from_str::<Status>(bad_kind).is_err());
    assert_eq!(StatusKind::Error.as_str(), "error");
}

#[cfg(feature = "prometheus")]
#[test]
fn c39_prometheus_metrics_registered_twice() {
    let reg = prometheus::Registry::new();
    reconciler::PrometheusMetrics::new(&reg).unwrap();
    assert!(reconciler::PrometheusMetrics::new(&reg).is_err());
}

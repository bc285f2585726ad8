//! Reconciler behaviour, on a paused tokio clock (virtual time): waits poll
//! with a deadline in virtual time, never sleep on the wall clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use reconciler::{
    BatchEntry, BatchOperations, Builder, ConfigError, HealthLevel, HealthReporter,
    InMemoryMetrics, Lifecycle, OpError, Operations, Params, Pruned, Reconciler, Status,
    StatusKind,
};
use statedb::{Db, Index, Objects, ReadTxn, Table};
use tokio::time::Instant;

#[derive(Clone, Debug)]
struct TObj {
    id: u64,
    value: u32,
    status: Status,
}

fn pending(id: u64, value: u32) -> TObj {
    TObj {
        id,
        value,
        status: Status::pending(),
    }
}

#[derive(Default)]
struct Target {
    state: Mutex<BTreeMap<u64, u32>>,
    fail: Mutex<BTreeSet<u64>>,
    panic: Mutex<BTreeSet<u64>>,
    slow: Mutex<BTreeMap<u64, Duration>>,
    log: Mutex<Vec<(&'static str, u64, u32, Instant)>>,
    prunes: AtomicUsize,
    fail_prune: AtomicBool,
    /// (operation, id, revision handed to it).
    revisions: Mutex<Vec<(&'static str, u64, statedb::Revision)>>,
}

impl Target {
    fn log(&self) -> Vec<(&'static str, u64, u32)> {
        self.log
            .lock()
            .iter()
            .map(|(o, i, v, _)| (*o, *i, *v))
            .collect()
    }
    fn times(&self, id: u64) -> Vec<Instant> {
        self.log
            .lock()
            .iter()
            .filter(|e| e.1 == id)
            .map(|e| e.3)
            .collect()
    }
    async fn enter(&self, op: &'static str, id: u64, value: u32) -> Result<(), OpError> {
        self.log.lock().push((op, id, value, Instant::now()));
        let slow = self.slow.lock().get(&id).copied();
        if let Some(d) = slow {
            tokio::time::sleep(d).await;
        }
        if self.panic.lock().contains(&id) {
            panic!("target exploded on {id}");
        }
        if self.fail.lock().contains(&id) {
            return Err(format!("cannot {op} {id}").into());
        }
        Ok(())
    }
}

impl Operations<TObj> for Target {
    async fn update(
        &self,
        _txn: &ReadTxn,
        revision: statedb::Revision,
        obj: &mut TObj,
        changed: Option<&mut bool>,
    ) -> Result<(), OpError> {
        self.revisions.lock().push(("update", obj.id, revision));
        self.enter("update", obj.id, obj.value).await?;
        let old = self.state.lock().insert(obj.id, obj.value);
        if let Some(c) = changed {
            *c = old != Some(obj.value);
        }
        Ok(())
    }
    async fn delete(
        &self,
        _txn: &ReadTxn,
        revision: statedb::Revision,
        obj: &TObj,
    ) -> Result<(), OpError> {
        self.revisions.lock().push(("delete", obj.id, revision));
        self.enter("delete", obj.id, obj.value).await?;
        self.state.lock().remove(&obj.id);
        Ok(())
    }
    async fn prune(&self, _txn: &ReadTxn, objects: Objects<TObj>) -> Result<Pruned, OpError> {
        self.prunes.fetch_add(1, Ordering::SeqCst);
        if self.fail_prune.load(Ordering::SeqCst) {
            return Err("prune refused".into());
        }
        let desired: BTreeSet<u64> = objects.map(|(o, _)| o.id).collect();
        self.state.lock().retain(|k, _| desired.contains(k));
        Ok(Pruned::default())
    }
}

struct H {
    db: Db,
    table: Table<TObj>,
    by_id: Index<TObj, u64>,
    status: Index<TObj, StatusKind>,
    target: Arc<Target>,
    metrics: Arc<InMemoryMetrics>,
    health: Arc<HealthReporter>,
    lc: Lifecycle,
    rec: Reconciler<TObj>,
}

fn config(table: &Table<TObj>, target: &Arc<Target>) -> Builder<TObj> {
    Reconciler::builder(table.clone(), target.clone())
        .status(|o| &o.status, |o, s| o.status = s)
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(80))
        // Exact gaps in the backoff tests; jitter has its own test.
        .retry_jitter(0.0)
        .incremental_round_size(100)
}

fn tables() -> (Db, Table<TObj>, Index<TObj, u64>, Index<TObj, StatusKind>) {
    let by_id: Index<TObj, u64> = Index::unique("id", |o: &TObj, k| k.push(&o.id));
    let status = reconciler::new_status_index(|o: &TObj| &o.status);
    let table = Table::builder("objs", &by_id)
        .index(&status)
        .build()
        .unwrap();
    let db = Db::new();
    db.register_table(&table).unwrap();
    (db, table, by_id, status)
}

async fn start(
    tweak: impl FnOnce(Builder<TObj>) -> Builder<TObj>,
    before_start: impl FnOnce(&Db, &Table<TObj>),
) -> H {
    let (db, table, by_id, status) = tables();
    let target = Arc::new(Target::default());
    let metrics = Arc::new(InMemoryMetrics::new());
    let health = Arc::new(HealthReporter::new());
    let cfg = tweak(config(&table, &target));
    let lc = Lifecycle::new();
    let params = Params::new(db.clone(), "test", lc.clone(), health.clone())
        .with_default_metrics(metrics.clone());
    let rec = cfg.build(params).unwrap();
    before_start(&db, &table);
    lc.start().await.unwrap();
    H {
        db,
        table,
        by_id,
        status,
        target,
        metrics,
        health,
        lc,
        rec,
    }
}

impl H {
    fn insert(&self, objs: &[TObj]) {
        let mut w = self.db.write_txn(&[&self.table]).unwrap();
        for o in objs {
            self.table.insert(&mut w, o.clone()).unwrap();
        }
        w.commit();
    }
    fn get(&self, id: u64) -> Option<TObj> {
        self.table
            .get(&self.db.read_txn(), self.by_id.query(&id))
            .unwrap()
            .map(|(o, _)| (*o).clone())
    }
    fn kind(&self, id: u64) -> Option<StatusKind> {
        self.get(id).map(|o| o.status.kind)
    }
    /// Polls `cond` in virtual time until it holds; fails after 60 s.
    async fn until(&self, what: &str, cond: impl Fn(&H) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    async fn settled(&self) {
        tokio::time::timeout(
            Duration::from_secs(60),
            reconciler::wait_for_reconciliation(&self.db, &self.table, &self.status),
        )
        .await
        .expect("reconciliation did not settle")
        .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn incremental_in_revision_order_only_pending_bounded_rounds() {
    let h = start(|c| c.incremental_round_size(2), |_, _| {}).await;
    let mut objs: Vec<TObj> = [5u64, 3, 9, 1, 7]
        .iter()
        .map(|&i| pending(i, i as u32))
        .collect();
    objs.push(TObj {
        id: 100,
        value: 0,
        status: Status::done(),
    });
    h.insert(&objs);
    h.settled().await;
    let order: Vec<u64> = h.target.log().iter().map(|e| e.1).collect();
    assert_eq!(
        order,
        [5, 3, 9, 1, 7],
        "revision order, done objects skipped"
    );
    for i in [5, 3, 9, 1, 7] {
        assert_eq!(h.kind(i), Some(StatusKind::Done));
    }
    // 5 pending objects with rounds of 2: at least 3 rounds with work.
    assert!(h.metrics.module("test").incremental_rounds >= 3);
    assert_eq!(
        h.metrics.module("test").incremental_durations["update"].0,
        5
    );
    h.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn operation_gets_clone_and_stale_result_is_dropped() {
    let h = start(|c| c, |_, _| {}).await;
    h.target.slow.lock().insert(1, Duration::from_secs(1));
    h.insert(&[pending(1, 10)]);
    h.until("first update started", |h| !h.target.log().is_empty())
        .await;
    // Changed while the operation is in flight.
    h.insert(&[pending(1, 20)]);
    h.target.slow.lock().clear();
    h.settled().await;
    let obj = h.get(1).unwrap();
    assert_eq!((obj.value, obj.status.kind), (20, StatusKind::Done));
    assert_eq!(h.target.log(), [("update", 1, 10), ("update", 1, 20)]);
    assert_eq!(h.target.state.lock()[&1], 20);
    h.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn soft_delete_removes_on_success_and_keeps_delete_flag_on_error() {
    let h = start(|c| c, |_, _| {}).await;
    h.insert(&[pending(1, 1), pending(2, 2)]);
    h.settled().await;
    h.target.fail.lock().insert(2);
    let del = |id| TObj {
        id,
        value: 0,
        status: Status::pending_delete(),
    };
    h.insert(&[del(1), del(2)]);
    h.until("1 removed", |h| h.get(1).is_none()).await;
    h.until("2 failed", |h| h.kind(2) == Some(StatusKind::Error))
        .await;
    let o2 = h.get(2).unwrap();
    assert!(o2.status.delete, "a failed delete stays a delete");
    assert!(
        o2.status
            .error
            .as_deref()
            .unwrap()
            .contains("cannot delete 2")
    );
    assert!(!h.target.state.lock().contains_key(&1));
    h.target.fail.lock().clear();
    h.until("2 removed after retry", |h| h.get(2).is_none())
        .await;
    assert!(h.target.state.lock().is_empty());
    h.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_exponentially_and_reset_on_change() {
    let h = start(|c| c, |_, _| {}).await;
    h.target.fail.lock().insert(1);
    h.insert(&[pending(1, 1)]);
    h.until("six attempts", |h| h.target.times(1).len() >= 6)
        .await;
    let t = h.target.times(1);
    let gaps: Vec<u64> = t
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis() as u64)
        .collect();
    // min 10 ms doubling to the 80 ms cap.
    for (g, want) in gaps.iter().zip([10u64, 20, 40, 80, 80]) {
        assert!(*g >= want && *g < want + 5, "gaps {gaps:?}");
    }
    assert_eq!(h.kind(1), Some(StatusKind::Error));
    // A new version drops the retry state: its first retry is after min again.
    h.insert(&[pending(1, 2)]);
    h.until("two attempts of v2", |h| {
        h.target.log().iter().filter(|e| e.2 == 2).count() >= 2
    })
    .await;
    let t2: Vec<Instant> = h
        .target
        .log
        .lock()
        .iter()
        .filter(|e| e.2 == 2)
        .map(|e| e.3)
        .collect();
    let g = (t2[1] - t2[0]).as_millis() as u64;
    assert!((10..15).contains(&g), "backoff not reset: {g}");
    // Success clears the error and the retries stop.
    h.target.fail.lock().clear();
    h.settled().await;
    let n = h.target.times(1).len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.target.times(1).len(), n, "retried after success");
    h.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn full_reconciliation_waits_for_init_prunes_then_updates() {
    let init = Arc::new(Mutex::new(None));
    let init2 = init.clone();
    let h = start(
        |c| c.full_reconciliation_interval(Duration::from_secs(10)),
        move |db, table| {
            let mut w = db.write_txn(&[table]).unwrap();
            *init2.lock() = Some(table.register_initializer(&mut w, "sync").unwrap());
            w.commit();
        },
    )
    .await;
    h.insert(&[pending(1, 1), pending(2, 2)]);
    h.settled().await;
    h.rec.trigger_full_reconciliation();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        h.target.prunes.load(Ordering::SeqCst),
        0,
        "pruned before initialized"
    );
    // Initialize; outside drift: a stray object and a changed value.
    {
        let mut w = h.db.write_txn(&[&h.table]).unwrap();
        init.lock().take().unwrap().done(&mut w).unwrap();
        w.commit();
    }
    h.target.state.lock().insert(99, 0);
    h.target.state.lock().insert(2, 777);
    h.until("pruned", |h| h.target.prunes.load(Ordering::SeqCst) >= 1)
        .await;
    h.until("repaired", |h| h.target.state.lock().get(&2) == Some(&2))
        .await;
    assert!(!h.target.state.lock().contains_key(&99), "stray not pruned");
    h.until("out of sync counted", |h| {
        h.metrics.module("test").full_out_of_sync == 1
    })
    .await;
    let m = h.metrics.module("test");
    assert!(m.full_rounds >= 1);
    assert_eq!(m.full_durations["prune"].0, m.full_rounds);
    // Periodic: another round after the interval, without a trigger.
    let rounds = m.full_rounds;
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(h.metrics.module("test").full_rounds > rounds);
    // A failed prune is reported, and not retried before the next round.
    h.target.fail_prune.store(true, Ordering::SeqCst);
    let prunes = h.target.prunes.load(Ordering::SeqCst);
    h.rec.trigger_full_reconciliation();
    h.until("prune failed", |h| {
        h.target.prunes.load(Ordering::SeqCst) == prunes + 1
    })
    .await;
    h.until("degraded", |h| {
        h.health
            .latest()
            .is_some_and(|r| r.level == HealthLevel::Degraded)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        h.target.prunes.load(Ordering::SeqCst),
        prunes + 1,
        "failed prune retried early"
    );
    assert!(h.metrics.module("test").full_total_errors >= 1);
    h.target.fail_prune.store(false, Ordering::SeqCst);
    h.until("healthy again", |h| h.health.is_ok()).await;
    h.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn full_reconciliation_failures_get_error_status_and_retry() {
    let h = start(|c| c, |_, _| {}).await;
    h.insert(&[pending(1, 1)]);
    h.settled().await;
    h.target.fail.lock().insert(1);
    h.rec.trigger_full_reconciliation();
    h.until("error from full round", |h| {
        h.kind(1) == Some(StatusKind::Error)
    })
    .await;
    h.target.fail.lock().clear();
    h.settled().await;
    assert_eq!(h.kind(1), Some(StatusKind::Done));
    h.lc.stop().await;
}

struct Batch {
    target: Arc<Target>,
    calls: Mutex<Vec<(&'static str, Vec<u64>)>>,
}

impl BatchOperations<TObj> for Batch {
    async fn update_batch(&self, txn: &ReadTxn, batch: &mut [BatchEntry<TObj>]) {
        self.calls
            .lock()
            .push(("update", batch.iter().map(|e| e.object.id).collect()));
        for e in batch {
            e.result = self
                .target
                .update(txn, e.revision, &mut e.object, None)
                .await;
        }
    }
    async fn delete_batch(&self, txn: &ReadTxn, batch: &mut [BatchEntry<TObj>]) {
        self.calls
            .lock()
            .push(("delete", batch.iter().map(|e| e.object.id).collect()));
        for e in batch {
            e.result = self.target.delete(txn, e.revision, &e.object).await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn batch_operations_delete_first_and_map_results() {
    let batch = Arc::new(Mutex::new(None::<Arc<Batch>>));
    let b2 = batch.clone();
    let h = start(
        move |c| {
            let b = Arc::new(Batch {
                target: Arc::new(Target::default()),
                calls: Mutex::new(Vec::new()),
            });
            *b2.lock() = Some(b.clone());
            c.batch_operations(b)
        },
        |_, _| {},
    )
    .await;
    let b = batch.lock().clone().unwrap();
    h.insert(&[pending(1, 1), pending(2, 2)]);
    h.settled().await;
    b.target.fail.lock().insert(3);
    h.insert(&[
        pending(3, 3),
        TObj {
            id: 1,
            value: 0,
            status: Status::pending_delete(),
        },
        pending(4, 4),
    ]);
    h.until("3 in error", |h| h.kind(3) == Some(StatusKind::Error))
        .await;
    h.until("1 deleted", |h| h.get(1).is_none()).await;
    assert_eq!(h.kind(4), Some(StatusKind::Done));
    let calls = b.calls.lock().clone();
    assert_eq!(calls[0], ("update", vec![1, 2]));
    assert_eq!(
        calls[1],
        ("delete", vec![1]),
        "deletes come first: {calls:?}"
    );
    assert_eq!(calls[2], ("update", vec![3, 4]));
    // The failed entry is retried through the batch operations.
    b.target.fail.lock().clear();
    h.settled().await;
    assert!(
        h.target.log().is_empty(),
        "plain operations unused in incremental rounds"
    );
    h.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn health_reports_count_or_joined_errors() {
    let h = start(|c| c, |_, _| {}).await;
    h.insert(&[pending(1, 1), pending(2, 2)]);
    h.settled().await;
    h.until("ok", |h| {
        h.health
            .latest()
            .is_some_and(|r| r.message == "OK, 2 object(s)")
    })
    .await;
    let ids: Vec<u64> = (10..22).collect();
    h.target.fail.lock().extend(ids.iter().copied());
    h.insert(&ids.iter().map(|&i| pending(i, 0)).collect::<Vec<_>>());
    h.until("all failed", |h| {
        ids.iter().all(|&i| h.kind(i) == Some(StatusKind::Error))
    })
    .await;
    let r = h.health.latest().unwrap();
    assert_eq!(r.level, HealthLevel::Degraded);
    let err = r.error.unwrap();
    assert_eq!(err.lines().count(), 11, "{err}");
    assert!(err.ends_with("2 further errors omitted"), "{err}");
    h.target.fail.lock().clear();
    h.settled().await;
    h.until("ok again", |h| {
        h.health
            .latest()
            .is_some_and(|r| r.message == "OK, 14 object(s)")
    })
    .await;
    h.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn metrics_record_durations_and_errors() {
    let h = start(|c| c, |_, _| {}).await;
    h.target.slow.lock().insert(1, Duration::from_millis(30));
    h.target.fail.lock().insert(2);
    h.insert(&[pending(1, 1), pending(2, 2)]);
    h.until("2 failed", |h| h.kind(2) == Some(StatusKind::Error))
        .await;
    h.until("retry queued", |h| {
        h.metrics.module("test").retry_queue_size == 1
    })
    .await;
    let m = h.metrics.module("test");
    let (n, total) = m.incremental_durations["update"];
    assert!(n >= 2);
    assert!(
        total >= Duration::from_millis(30),
        "virtual duration of the slow op: {total:?}"
    );
    assert!(m.incremental_total_errors >= 1);
    h.target.fail.lock().clear();
    h.settled().await;
    h.until("retry queue drained", |h| {
        h.metrics.module("test").retry_queue_size == 0
    })
    .await;
    h.lc.stop().await;
}

#[cfg(feature = "governor")]
#[tokio::test(start_paused = true)]
async fn rate_limiter_spaces_rounds() {
    let quota = governor::Quota::per_second(std::num::NonZeroU32::new(1).unwrap());
    let h = start(
        move |c| c.rate_limiter(reconciler::tokio_rate_limiter(quota)),
        |_, _| {},
    )
    .await;
    for i in 0..3 {
        h.insert(&[pending(i, 0)]);
        h.until("processed", |h| h.kind(i) == Some(StatusKind::Done))
            .await;
    }
    let t: Vec<Instant> = h.target.log.lock().iter().map(|e| e.3).collect();
    for w in t.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(990),
            "rounds not spaced: {:?}",
            w[1] - w[0]
        );
    }
    h.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn panicking_operation_becomes_error_and_is_retried() {
    let h = start(|c| c, |_, _| {}).await;
    h.target.panic.lock().insert(1);
    h.insert(&[pending(1, 1), pending(2, 2)]);
    h.until("1 error", |h| h.kind(1) == Some(StatusKind::Error))
        .await;
    let e = h.get(1).unwrap().status.error.unwrap();
    assert!(
        e.contains("panicked") && e.contains("target exploded on 1"),
        "{e}"
    );
    assert_eq!(h.kind(2), Some(StatusKind::Done));
    h.target.panic.lock().clear();
    h.settled().await;
    assert!(h.target.times(1).len() >= 2);
    h.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_slow_operation_is_prompt_and_commits_nothing() {
    // An operation longer than the drain time is cancelled at its end.
    let h = start(|c| c.shutdown_drain(Duration::from_millis(100)), |_, _| {}).await;
    h.target.slow.lock().insert(1, Duration::from_secs(3600));
    h.insert(&[pending(1, 1)]);
    h.until("op started", |h| !h.target.log().is_empty()).await;
    let t0 = Instant::now();
    tokio::time::timeout(Duration::from_secs(1), h.lc.stop())
        .await
        .expect("stop hung");
    assert!(Instant::now() - t0 < Duration::from_secs(1));
    assert_eq!(
        h.kind(1),
        Some(StatusKind::Pending),
        "half-done result committed"
    );
    assert_eq!(h.health.latest().unwrap().level, HealthLevel::Stopped);
}

#[tokio::test(start_paused = true)]
async fn trigger_coalesces() {
    let h = start(|c| c, |_, _| {}).await;
    h.insert(&[pending(1, 1)]);
    h.settled().await;
    for _ in 0..5 {
        h.rec.trigger_full_reconciliation();
    }
    h.until("one full round", |h| {
        h.metrics.module("test").full_rounds >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rounds = h.metrics.module("test").full_rounds;
    assert!(
        (1..=2).contains(&rounds),
        "{rounds} rounds for 5 coalesced triggers"
    );
    h.lc.stop().await;
}

#[test]
fn config_validation_names_the_field() {
    let (db, table, _, _) = tables();
    let target = Arc::new(Target::default());
    let lc = Lifecycle::new();
    let params = || Params::new(db.clone(), "m", lc.clone(), Arc::new(HealthReporter::new()));
    let c = config(&table, &target).incremental_round_size(0);
    assert_eq!(c.build(params()).unwrap_err(), ConfigError::ZeroRoundSize);
    let c = config(&table, &target).retry_backoff(Duration::ZERO, Duration::from_secs(1));
    assert_eq!(
        c.build(params()).unwrap_err(),
        ConfigError::ZeroRetryBackoffMin
    );
    let c =
        config(&table, &target).retry_backoff(Duration::from_millis(10), Duration::from_millis(1));
    let e = c.build(params()).unwrap_err();
    assert!(e.to_string().contains("retry_backoff"), "{e}");
    let c = config(&table, &target).refresh(Duration::from_secs(1), 0);
    let e = c.build(params()).unwrap_err();
    assert_eq!(e, ConfigError::ZeroRefreshPerRound);
    assert!(e.to_string().starts_with("refresh"), "{e}");
    let c = config(&table, &target).concurrency(0);
    assert_eq!(c.build(params()).unwrap_err(), ConfigError::ZeroConcurrency);
    let c = Reconciler::builder(table.clone(), target.clone());
    let e = c.build(params()).unwrap_err();
    assert_eq!(e, ConfigError::MissingStatus);
    assert!(e.to_string().contains("status(get, set)"), "{e}");
    let c = config(&table, &target);
    let mut p = params();
    p.module_id.clear();
    assert_eq!(c.build(p).unwrap_err(), ConfigError::EmptyModuleId);
    let (_, other_table, _, _) = tables();
    let c = config(&other_table, &target);
    assert!(matches!(
        c.register(params()),
        Err(ConfigError::Table { .. })
    ));
    assert!(config(&table, &target).register(params()).is_ok());
}

#[test]
fn blocking_wait_for_reconciliation() {
    let (db, table, _, status) = tables();
    let target = Arc::new(Target::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let lc = Lifecycle::new();
    let params = Params::new(db.clone(), "m", lc.clone(), Arc::new(HealthReporter::new()));
    config(&table, &target).register(params).unwrap();
    rt.block_on(lc.start()).unwrap();
    target.fail.lock().insert(2);
    let mut w = db.write_txn(&[&table]).unwrap();
    table.insert(&mut w, pending(1, 1)).unwrap();
    table.insert(&mut w, pending(2, 2)).unwrap();
    w.commit();
    // Object 2 keeps failing: the wait times out.
    let r = reconciler::wait_for_reconciliation_blocking(
        &db,
        &table,
        &status,
        Duration::from_millis(300),
    );
    assert_eq!(r, Err(reconciler::WaitError::Timeout));
    target.fail.lock().clear();
    reconciler::wait_for_reconciliation_blocking(&db, &table, &status, Duration::from_secs(60))
        .unwrap();
    assert_eq!(target.state.lock().len(), 2);
    rt.block_on(lc.stop());
}

// ---- the promise: target = desired state ---------------------------------

#[tokio::test(start_paused = true)]
async fn hard_deletes_reach_the_target() {
    let h = start(|c| c, |_, _| {}).await;
    let objs: Vec<TObj> = (0..1000).map(|i| pending(i, i as u32)).collect();
    h.insert(&objs);
    h.settled().await;
    assert_eq!(h.target.state.lock().len(), 1000);
    // Table::delete of 100 rows.
    let mut w = h.db.write_txn(&[&h.table]).unwrap();
    for i in 0..100 {
        h.table.delete(&mut w, &pending(i, 0)).unwrap();
    }
    w.commit();
    h.until("100 deleted from the target", |h| {
        h.target.state.lock().len() == 900
    })
    .await;
    // The last version of the object is handed to delete.
    let deletes: Vec<(u64, u32)> = h
        .target
        .log()
        .iter()
        .filter(|e| e.0 == "delete")
        .map(|e| (e.1, e.2))
        .collect();
    assert_eq!(deletes.len(), 100);
    assert!(deletes.iter().all(|(id, v)| *v == *id as u32));
    // compare_and_delete, then delete_all.
    let mut w = h.db.write_txn(&[&h.table]).unwrap();
    let (_, rev) = h.table.get(&w, h.by_id.query(&500)).unwrap().unwrap();
    h.table
        .compare_and_delete(&mut w, rev, &pending(500, 0))
        .unwrap();
    w.commit();
    h.until("cad reached the target", |h| {
        !h.target.state.lock().contains_key(&500)
    })
    .await;
    let mut w = h.db.write_txn(&[&h.table]).unwrap();
    h.table.delete_all(&mut w).unwrap();
    w.commit();
    h.until("target empty", |h| h.target.state.lock().is_empty())
        .await;
    h.settled().await;
    h.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn failed_hard_delete_is_retried_until_it_succeeds_or_the_key_returns() {
    let h = start(|c| c, |_, _| {}).await;
    h.insert(&[pending(1, 1), pending(2, 2)]);
    h.settled().await;
    h.target.fail.lock().extend([1, 2]);
    let mut w = h.db.write_txn(&[&h.table]).unwrap();
    h.table.delete(&mut w, &pending(1, 0)).unwrap();
    h.table.delete(&mut w, &pending(2, 0)).unwrap();
    w.commit();
    h.until("retried with backoff", |h| {
        h.target.log().iter().filter(|e| e.0 == "delete").count() >= 6
    })
    .await;
    // Counted in health and metrics while failing.
    let report = h.health.latest().unwrap();
    assert_eq!(report.level, HealthLevel::Degraded);
    assert!(
        report
            .error
            .as_deref()
            .unwrap_or("")
            .contains("cannot delete 1"),
        "{report:?}"
    );
    assert!(h.metrics.module("test").incremental_total_errors >= 6);
    let times = h.target.times(1);
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.windows(2).all(|g| g[1] >= g[0]),
        "backoff grows: {gaps:?}"
    );
    // Key 2 is inserted again: the insert wins, no further delete of it.
    h.insert(&[pending(2, 22)]);
    h.target.fail.lock().remove(&2);
    h.until("2 updated", |h| h.target.state.lock().get(&2) == Some(&22))
        .await;
    // Key 1 recovers: deleted at the next retry.
    h.target.fail.lock().remove(&1);
    h.until("1 deleted", |h| !h.target.state.lock().contains_key(&1))
        .await;
    h.until("healthy", |h| h.health.is_ok()).await;
    let deletes_of_2_after = h
        .target
        .log()
        .iter()
        .skip_while(|e| !(e.0 == "update" && e.1 == 2 && e.2 == 22))
        .filter(|e| e.0 == "delete" && e.1 == 2)
        .count();
    assert_eq!(deletes_of_2_after, 0, "a stale delete undid the insert");
    assert_eq!(h.target.state.lock().get(&2), Some(&22));
    h.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn soft_delete_calls_delete_once() {
    let h = start(|c| c, |_, _| {}).await;
    h.insert(&[pending(1, 1)]);
    h.settled().await;
    h.insert(&[TObj {
        id: 1,
        value: 1,
        status: Status::pending_delete(),
    }]);
    h.until("row gone", |h| h.get(1).is_none()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let deletes = h.target.log().iter().filter(|e| e.0 == "delete").count();
    assert_eq!(deletes, 1);
    assert!(h.target.state.lock().is_empty());
    h.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn prunes_leftovers_as_soon_as_the_table_is_initialized() {
    // No intervals configured, no initializer: pruned once at start.
    let h = start(
        |c| {
            c.full_reconciliation_interval(Duration::ZERO)
                .prune_interval(Duration::ZERO)
        },
        |_, _| {},
    )
    .await;
    h.target.state.lock().insert(99, 0);
    h.insert(&[pending(1, 1)]);
    h.until("pruned once", |h| {
        h.target.prunes.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        h.target.prunes.load(Ordering::SeqCst),
        1,
        "pruned again without an interval"
    );
    h.lc.stop().await;

    // A restart over a target holding leftovers: a new Db whose table has an
    // initializer; pruned at once when it is done, not an interval later.
    let init = Arc::new(Mutex::new(None));
    let init2 = init.clone();
    let h = start(
        |c| c.full_reconciliation_interval(Duration::from_secs(3600)),
        move |db, table| {
            let mut w = db.write_txn(&[table]).unwrap();
            *init2.lock() = Some(table.register_initializer(&mut w, "restore").unwrap());
            w.commit();
        },
    )
    .await;
    h.target.state.lock().extend([(7, 7), (8, 8)]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        h.target.prunes.load(Ordering::SeqCst),
        0,
        "pruned before initialized"
    );
    {
        let mut w = h.db.write_txn(&[&h.table]).unwrap();
        h.table.insert(&mut w, pending(7, 7)).unwrap();
        init.lock().take().unwrap().done(&mut w).unwrap();
        w.commit();
    }
    let t0 = Instant::now();
    h.until("pruned after init", |h| {
        h.target.prunes.load(Ordering::SeqCst) == 1
    })
    .await;
    assert!(Instant::now() - t0 < Duration::from_secs(1));
    h.settled().await;
    let left: Vec<u64> = h.target.state.lock().keys().copied().collect();
    assert_eq!(left, [7]);
    h.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn full_round_writes_back_a_fresh_done_status() {
    let h = start(|c| c, |_, _| {}).await;
    h.insert(&[pending(1, 1)]);
    h.settled().await;
    let before = h.get(1).unwrap().status.updated_at;
    let rounds = h.metrics.module("test").full_rounds;
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.rec.trigger_full_reconciliation();
    h.until("full round", |h| {
        h.metrics.module("test").full_rounds > rounds
    })
    .await;
    h.until("status rewritten", |h| {
        h.get(1).unwrap().status.updated_at > before
    })
    .await;
    assert_eq!(h.kind(1), Some(StatusKind::Done));
    h.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn wait_until_reconciled_reports_the_revision_and_the_errors() {
    let h = start(|c| c, |_, _| {}).await;
    h.target.fail.lock().insert(2);
    let mut w = h.db.write_txn(&[&h.table]).unwrap();
    for i in 1..=3 {
        h.table.insert(&mut w, pending(i, i as u32)).unwrap();
    }
    let r = w.commit();
    let revision = h.table.revision(&r).unwrap();
    let done = h
        .rec
        .wait_until_reconciled_timeout(revision, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(done.revision >= revision);
    assert_eq!(done.errors, 1);
    assert_eq!(done.error_keys.len(), 1);
    // Every change up to the revision ran: 1 and 3 are in the target.
    assert!(h.target.state.lock().contains_key(&1) && h.target.state.lock().contains_key(&3));
    // Recovery shows in a later revision's report.
    h.target.fail.lock().clear();
    h.until("2 done", |h| h.kind(2) == Some(StatusKind::Done))
        .await;
    let r = h.db.read_txn();
    let done = h
        .rec
        .wait_until_reconciled_timeout(h.table.revision(&r).unwrap(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done.errors, 0);
    // A revision never reached, then the reconciler stops.
    let far = h.table.revision(&r).unwrap() + 1000;
    assert_eq!(
        h.rec
            .wait_until_reconciled_timeout(far, Duration::from_secs(1))
            .await,
        Err(reconciler::WaitError::Timeout)
    );
    h.lc.stop().await;
    assert_eq!(
        h.rec.wait_until_reconciled(far).await,
        Err(reconciler::WaitError::Stopped)
    );
}

#[tokio::test(start_paused = true)]
async fn operations_get_the_objects_revision() {
    let h = start(|c| c, |_, _| {}).await;
    let mut w = h.db.write_txn(&[&h.table]).unwrap();
    h.table.insert(&mut w, pending(1, 1)).unwrap();
    let r = w.commit();
    let inserted = h.table.get(&r, h.by_id.query(&1)).unwrap().unwrap().1;
    h.settled().await;
    let mut w = h.db.write_txn(&[&h.table]).unwrap();
    h.table.delete(&mut w, &pending(1, 0)).unwrap();
    let r = w.commit();
    let deleted = h.table.revision(&r).unwrap();
    h.until("deleted", |h| h.target.state.lock().is_empty())
        .await;
    assert_eq!(
        *h.target.revisions.lock(),
        [("update", 1, inserted), ("delete", 1, deleted)]
    );
    h.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_operations_in_flight_finish_within_the_drain_time() {
    let h = start(|c| c.shutdown_drain(Duration::from_secs(5)), |_, _| {}).await;
    h.target.slow.lock().insert(1, Duration::from_secs(2));
    h.insert(&[pending(1, 1)]);
    h.until("op started", |h| !h.target.log().is_empty()).await;
    let t0 = Instant::now();
    h.lc.stop().await;
    let took = Instant::now() - t0;
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(
        h.kind(1),
        Some(StatusKind::Done),
        "drained result not committed"
    );
    assert_eq!(h.target.state.lock().get(&1), Some(&1));
}

/// A target that records how many operations run at once, overall and per
/// key, with pseudo-random delays.
#[derive(Default)]
struct Concurrent {
    now: Mutex<(usize, BTreeSet<u64>)>,
    max: AtomicUsize,
    overlap: AtomicBool,
    done: Mutex<BTreeMap<u64, u32>>,
}

impl Concurrent {
    async fn op(&self, id: u64, value: u32) {
        {
            let mut now = self.now.lock();
            now.0 += 1;
            if !now.1.insert(id) {
                self.overlap.store(true, Ordering::SeqCst);
            }
            self.max.fetch_max(now.0, Ordering::SeqCst);
        }
        let delay = (id * 7919 + u64::from(value) * 104_729) % 50;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let mut now = self.now.lock();
        now.0 -= 1;
        now.1.remove(&id);
    }
}

impl Operations<TObj> for Concurrent {
    async fn update(
        &self,
        _: &ReadTxn,
        _: statedb::Revision,
        obj: &mut TObj,
        _: Option<&mut bool>,
    ) -> Result<(), OpError> {
        self.op(obj.id, obj.value).await;
        self.done.lock().insert(obj.id, obj.value);
        Ok(())
    }
    async fn delete(&self, _: &ReadTxn, _: statedb::Revision, obj: &TObj) -> Result<(), OpError> {
        self.op(obj.id, obj.value).await;
        self.done.lock().remove(&obj.id);
        Ok(())
    }
    async fn prune(&self, _: &ReadTxn, _: Objects<TObj>) -> Result<Pruned, OpError> {
        Ok(Pruned::default())
    }
}

#[tokio::test(start_paused = true)]
async fn concurrency_bounds_operations_in_flight_and_never_overlaps_a_key() {
    let (db, table, _, status) = tables();
    let target = Arc::new(Concurrent::default());
    let cfg = Reconciler::builder(table.clone(), target.clone())
        .status(|o| &o.status, |o, s| o.status = s)
        .concurrency(4)
        .incremental_round_size(20);
    let lc = Lifecycle::new();
    let params = Params::new(
        db.clone(),
        "conc",
        lc.clone(),
        Arc::new(HealthReporter::new()),
    );
    cfg.register(params).unwrap();
    lc.start().await.unwrap();
    // Waves of updates to overlapping keys while earlier ones still run.
    for wave in 0..5u32 {
        let mut w = db.write_txn(&[&table]).unwrap();
        for id in 0..30u64 {
            if (id + u64::from(wave)) % 3 != 0 {
                table.insert(&mut w, pending(id, wave)).unwrap();
            }
        }
        w.commit();
        tokio::time::sleep(Duration::from_millis(17)).await;
    }
    tokio::time::timeout(
        Duration::from_secs(60),
        reconciler::wait_for_reconciliation(&db, &table, &status),
    )
    .await
    .unwrap()
    .unwrap();
    let max = target.max.load(Ordering::SeqCst);
    assert!(max <= 4, "{max} operations at once");
    assert!(max > 1, "operations never ran concurrently");
    assert!(
        !target.overlap.load(Ordering::SeqCst),
        "two operations on one key at once"
    );
    // The target ends equal to the table.
    let want: BTreeMap<u64, u32> = table
        .all(&db.read_txn())
        .unwrap()
        .map(|(o, _)| (o.id, o.value))
        .collect();
    assert_eq!(*target.done.lock(), want);
    lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn triggered_full_round_can_be_awaited() {
    let init = Arc::new(Mutex::new(None));
    let init2 = init.clone();
    let h = start(
        |c| c,
        move |db, table| {
            let mut w = db.write_txn(&[table]).unwrap();
            *init2.lock() = Some(table.register_initializer(&mut w, "sync").unwrap());
            w.commit();
        },
    )
    .await;
    h.insert(&[pending(1, 1)]);
    let round = h.rec.trigger_full_reconciliation();
    let waiter = tokio::spawn(round.finished());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        !waiter.is_finished(),
        "finished before the table was initialized"
    );
    {
        let mut w = h.db.write_txn(&[&h.table]).unwrap();
        init.lock().take().unwrap().done(&mut w).unwrap();
        w.commit();
    }
    tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(h.metrics.module("test").full_rounds >= 1);
    assert!(h.target.prunes.load(Ordering::SeqCst) >= 1);
    h.lc.stop().await;
    assert_eq!(
        h.rec.trigger_full_reconciliation().finished().await,
        Err(reconciler::WaitError::Stopped)
    );
}

#[tokio::test(start_paused = true)]
async fn refresh_updates_objects_older_than_the_interval_a_few_at_a_time() {
    let h = start(|c| c.refresh(Duration::from_secs(10), 2), |_, _| {}).await;
    h.insert(&(1..=5).map(|i| pending(i, i as u32)).collect::<Vec<_>>());
    h.settled().await;
    let updates = |h: &H| h.target.log().iter().filter(|e| e.0 == "update").count();
    assert_eq!(updates(&h), 5);
    // Younger than the interval: nothing refreshed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(updates(&h), 5);
    // Older: every object is updated once more, never more than two
    // marked at a time.
    let mut most_refreshing = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while updates(&h) < 10 {
        assert!(
            Instant::now() < deadline,
            "not refreshed: {:?}",
            h.target.log()
        );
        let r = h.db.read_txn();
        let n = h
            .table
            .count(&r, h.status.query(&StatusKind::Refreshing))
            .unwrap();
        most_refreshing = most_refreshing.max(n);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(most_refreshing <= 2, "{most_refreshing} refreshing at once");
    h.settled().await;
    let mut per_object: BTreeMap<u64, usize> = BTreeMap::new();
    for e in h.target.log().iter().filter(|e| e.0 == "update") {
        *per_object.entry(e.1).or_default() += 1;
    }
    assert!(per_object.values().all(|&n| n == 2), "{per_object:?}");
    // Two per pass: the five refreshes came in at least three passes, at
    // distinct (virtual) times.
    let mut second: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (op, id, _, at) in h.target.log.lock().iter() {
        if *op == "update" && !seen.insert(*id) {
            second.insert(*id, *at);
        }
    }
    let passes: BTreeSet<Instant> = second.values().copied().collect();
    assert!(
        passes.len() >= 3,
        "refreshed in {} passes: {second:?}",
        passes.len()
    );
    for i in 1..=5 {
        assert_eq!(h.kind(i), Some(StatusKind::Done));
    }
    h.lc.stop().await;
}

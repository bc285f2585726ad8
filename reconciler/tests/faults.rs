//! One regression test per defect of the "converge under every fault"
//! issue, each with the hostile step in it: two reconcilers racing on one
//! row, a user task holding the table's write lock across `.await`, user
//! callbacks that panic or lie, an operation that never returns,
//! `Duration::MAX`, a reconciler built after start, an outage. On a paused
//! tokio clock: every wait has a deadline in virtual time and fails instead
//! of hanging.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use reconciler::{
    BatchEntry, BatchOperations, Builder, HealthLevel, HealthReporter, Lifecycle, OpError,
    Operations, Params, Pruned, RateLimiter, Reconciler, Status, StatusKind, StatusSet, WaitError,
};
use statedb::{Db, Index, Objects, ReadTxn, Revision, Table};
use tokio::time::Instant;

#[derive(Clone, Debug)]
struct Obj {
    id: u64,
    value: u32,
    status: Status,
    statuses: StatusSet,
}

fn obj(id: u64, value: u32) -> Obj {
    Obj {
        id,
        value,
        status: Status::pending(),
        statuses: StatusSet::new(),
    }
}

/// What an operation on a key does instead of succeeding at once.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Fail,
    Hang,
    Panic,
    Slow(Duration),
}

/// A map target. `faults` hold until cleared; `once` are used up one per
/// operation first. It records what ran concurrently.
#[derive(Default)]
struct Target {
    state: Mutex<BTreeMap<u64, u32>>,
    faults: Mutex<BTreeMap<u64, Fault>>,
    once: Mutex<BTreeMap<u64, Vec<Fault>>>,
    updates: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    keys_in_flight: Mutex<BTreeSet<u64>>,
    overlapped: AtomicBool,
    /// Updates of these keys wait until `gate` opens.
    gated: Mutex<BTreeSet<u64>>,
    gate: tokio::sync::Notify,
    /// Every value written, per key, in order.
    history: Mutex<BTreeMap<u64, Vec<u32>>>,
}

/// Decrements the in-flight counts however the operation ends (an
/// operation timed out or cancelled is dropped mid-await).
struct InFlight<'a>(&'a Target, u64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.keys_in_flight.lock().remove(&self.1);
    }
}

impl Target {
    fn fault(&self, id: u64, f: Fault) {
        self.faults.lock().insert(id, f);
    }
    fn heal(&self) {
        self.faults.lock().clear();
    }
    fn has(&self, id: u64) -> Option<u32> {
        self.state.lock().get(&id).copied()
    }
    async fn enter(&self, id: u64) -> Result<InFlight<'_>, OpError> {
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(n, Ordering::SeqCst);
        if !self.keys_in_flight.lock().insert(id) {
            self.overlapped.store(true, Ordering::SeqCst);
        }
        let guard = InFlight(self, id);
        let fault = {
            let mut once = self.once.lock();
            match once.get_mut(&id).filter(|q| !q.is_empty()) {
                Some(q) => Some(q.remove(0)),
                None => self.faults.lock().get(&id).copied(),
            }
        };
        match fault {
            None => {}
            Some(Fault::Fail) => return Err(format!("cannot write {id}").into()),
            Some(Fault::Hang) => std::future::pending::<()>().await,
            Some(Fault::Panic) => panic!("target exploded on {id}"),
            Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        }
        Ok(guard)
    }
}

impl Operations<Obj> for Target {
    async fn update(
        &self,
        _: &ReadTxn,
        _: Revision,
        o: &mut Obj,
        _: Option<&mut bool>,
    ) -> Result<(), OpError> {
        self.updates.fetch_add(1, Ordering::SeqCst);
        if self.gated.lock().contains(&o.id) {
            self.gate.notified().await;
        }
        let _g = self.enter(o.id).await?;
        self.state.lock().insert(o.id, o.value);
        self.history.lock().entry(o.id).or_default().push(o.value);
        Ok(())
    }
    async fn delete(&self, _: &ReadTxn, _: Revision, o: &Obj) -> Result<(), OpError> {
        let _g = self.enter(o.id).await?;
        self.state.lock().remove(&o.id);
        Ok(())
    }
    async fn prune(&self, _: &ReadTxn, want: Objects<Obj>) -> Result<Pruned, OpError> {
        let want: BTreeSet<u64> = want.map(|(o, _)| o.id).collect();
        self.state.lock().retain(|k, _| want.contains(k));
        Ok(Pruned::default())
    }
}

struct Fx {
    db: Db,
    table: Table<Obj>,
    by_id: Index<Obj, u64>,
    status: Index<Obj, StatusKind>,
    lc: Lifecycle,
}

/// A table with a status index: on the single status with no `members`,
/// else on the status set, waiting for every one of `members`.
fn fixture(members: &[&str]) -> Fx {
    fixture_on(Db::new(), members)
}

/// [`fixture`] on a Db of the caller's (one with metrics).
fn fixture_on(db: Db, members: &[&str]) -> Fx {
    let by_id: Index<Obj, u64> = Index::unique("id", |o: &Obj, k| k.push(&o.id));
    let status = if members.is_empty() {
        reconciler::new_status_index(|o: &Obj| &o.status)
    } else {
        reconciler::new_status_set_index(|o: &Obj| &o.statuses, members.to_vec())
    };
    let table = Table::builder("objs", &by_id)
        .index(&status)
        .build()
        .unwrap();
    db.register_table(&table).unwrap();
    Fx {
        db,
        table,
        by_id,
        status,
        lc: Lifecycle::new(),
    }
}

impl Fx {
    fn params(&self, name: &str) -> (Params, Arc<HealthReporter>) {
        let health = Arc::new(HealthReporter::new());
        (
            Params::new(self.db.clone(), name, self.lc.clone(), health.clone()),
            health,
        )
    }
    /// A reconciler with the single status.
    fn single(&self, target: &Arc<Target>) -> Builder<Obj> {
        Reconciler::builder(self.table.clone(), target.clone())
            .status(|o| &o.status, |o, s| o.status = s)
            .retry_backoff(Duration::from_millis(10), Duration::from_millis(100))
    }
    /// A reconciler keeping its status in the set under `name`.
    fn member(&self, name: &'static str, target: &Arc<Target>) -> Builder<Obj> {
        Reconciler::builder(self.table.clone(), target.clone())
            .status(
                move |o: &Obj| o.statuses.get(name),
                move |o: &mut Obj, st| o.statuses = o.statuses.set(name, st),
            )
            .retry_backoff(Duration::from_millis(10), Duration::from_millis(100))
    }
    fn insert(&self, objs: impl IntoIterator<Item = Obj>) -> Revision {
        let mut w = self.db.write_txn(&[&self.table]).unwrap();
        for o in objs {
            self.table.insert(&mut w, o).unwrap();
        }
        self.table.revision(&w.commit()).unwrap()
    }
    fn get(&self, id: u64) -> Obj {
        self.table
            .get(&self.db.read_txn(), self.by_id.query(&id))
            .unwrap()
            .map(|(o, _)| (*o).clone())
            .expect("object missing")
    }
    fn count(&self, index: &Index<Obj, StatusKind>, kind: StatusKind) -> usize {
        self.table
            .list(&self.db.read_txn(), index.query(&kind))
            .unwrap()
            .count()
    }
}

/// Polls `cond` in virtual time; fails after `limit`.
async fn until(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn level(h: &HealthReporter) -> Option<HealthLevel> {
    h.latest().map(|r| r.level)
}

fn message(h: &HealthReporter) -> String {
    h.latest()
        .map(|r| format!("{} {}", r.message, r.error.unwrap_or_default()))
        .unwrap_or_default()
}

const MINUTE: Duration = Duration::from_secs(60);

#[path = "common/watchdog.rs"]
mod watchdog;
use watchdog::Watchdog;

// Defect 1: the write-back of a's successful retry loses its
// compare-and-swap to b's status write. The retry must not be forgotten.
#[tokio::test(start_paused = true)]
async fn d01_a_lost_status_race_keeps_the_retry() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&["a", "b"]);
    let (ta, tb) = (Arc::new(Target::default()), Arc::new(Target::default()));
    // a: fails first, then its retry takes 50 ms; b's first update takes
    // 30 ms, so b writes the row while a's retry is in flight.
    ta.once
        .lock()
        .insert(1, vec![Fault::Fail, Fault::Slow(Duration::from_millis(50))]);
    tb.once
        .lock()
        .insert(1, vec![Fault::Slow(Duration::from_millis(30))]);
    let (pa, ha) = fx.params("a");
    let (pb, _) = fx.params("b");
    let a = fx.member("a", &ta).retry_jitter(0.0).build(pa).unwrap();
    let _b = fx.member("b", &tb).build(pb).unwrap();
    fx.lc.start().await.unwrap();
    let rev = fx.insert([obj(1, 7)]);
    a.wait_until_succeeded_timeout(rev, MINUTE)
        .await
        .expect("a's retry was forgotten");
    until("both members Done", MINUTE, || {
        let o = fx.get(1);
        o.statuses.get("a").kind == StatusKind::Done && o.statuses.get("b").kind == StatusKind::Done
    })
    .await;
    assert_eq!((ta.has(1), tb.has(1)), (Some(7), Some(7)));
    until("a healthy", MINUTE, || level(&ha) == Some(HealthLevel::Ok)).await;
    assert_eq!(a.progress().errors, 0);
    fx.lc.stop().await;
}

// Defect 2: a user task on the same (current-thread) runtime holds the
// table's write transaction across an `.await` while the reconciler
// writes back. The result is kept, health says Degraded meanwhile, and the
// object converges once the lock is released, without running the
// operation again.
#[tokio::test(start_paused = true)]
async fn d02_write_back_outlives_a_user_holding_the_lock_across_await() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&[]);
    let target = Arc::new(Target::default());
    target.gated.lock().insert(1);
    let (p, health) = fx.params("r");
    let rec = fx.single(&target).build(p).unwrap();
    fx.lc.start().await.unwrap();
    let rev = fx.insert([obj(1, 7)]);
    until("update started", MINUTE, || {
        target.updates.load(Ordering::SeqCst) == 1
    })
    .await;
    // The hostile user: takes the lock, then awaits for a second.
    let (db, table) = (fx.db.clone(), fx.table.clone());
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
    let holder = tokio::spawn(async move {
        let w = db.write_txn(&[&table]).unwrap();
        locked_tx.send(()).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(w);
    });
    locked_rx.await.unwrap();
    target.gate.notify_one();
    until("update done in the target", MINUTE, || {
        target.has(1).is_some()
    })
    .await;
    until("health Degraded while the lock is held", MINUTE, || {
        level(&health) == Some(HealthLevel::Degraded)
    })
    .await;
    assert!(!holder.is_finished(), "the lock was released too early");
    assert_eq!(fx.get(1).status.kind, StatusKind::Pending);
    holder.await.unwrap();
    rec.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    until("status Done", MINUTE, || {
        fx.get(1).status.kind == StatusKind::Done
    })
    .await;
    until("health OK", MINUTE, || {
        level(&health) == Some(HealthLevel::Ok)
    })
    .await;
    assert_eq!(
        target.updates.load(Ordering::SeqCst),
        1,
        "the kept outcome was written, not the operation rerun"
    );
    fx.lc.stop().await;
}

// Defect 3: with members {fast, slow}, the set must read Pending until slow
// has reported too; waiting on the set's index returns only then.
#[tokio::test(start_paused = true)]
async fn d03_a_status_set_is_done_only_when_every_member_is() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&["fast", "slow"]);
    let (tf, ts) = (Arc::new(Target::default()), Arc::new(Target::default()));
    ts.fault(1, Fault::Slow(Duration::from_secs(1)));
    let (pf, _) = fx.params("fast");
    let (ps, _) = fx.params("slow");
    let _f = fx.member("fast", &tf).build(pf).unwrap();
    let _s = fx.member("slow", &ts).build(ps).unwrap();
    fx.lc.start().await.unwrap();
    fx.insert([obj(1, 1)]);
    let waiter = {
        let (db, table, set) = (fx.db.clone(), fx.table.clone(), fx.status.clone());
        tokio::spawn(async move {
            reconciler::wait_for_reconciliation(&db, &table, &set)
                .await
                .unwrap();
            Instant::now()
        })
    };
    until("fast Done", MINUTE, || {
        fx.get(1).statuses.get("fast").kind == StatusKind::Done
    })
    .await;
    assert_eq!(fx.count(&fx.status, StatusKind::Pending), 1);
    assert_eq!(fx.count(&fx.status, StatusKind::Done), 0);
    let returned = tokio::time::timeout(MINUTE, waiter).await.unwrap().unwrap();
    assert_eq!(ts.has(1), Some(1), "the wait returned before slow ran");
    assert_eq!(
        fx.get(1).statuses.get("slow").kind,
        StatusKind::Done,
        "returned at {returned:?}"
    );
    fx.lc.stop().await;
}

// Defect 4: under sustained writes, each wait for a revision returns
// shortly after that revision is processed, not only when a round is
// smaller than the round size.
#[tokio::test(start_paused = true)]
async fn d04_waits_return_under_sustained_load() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&[]);
    let target = Arc::new(Target::default());
    let (p, _) = fx.params("r");
    let rec = fx
        .single(&target)
        .incremental_round_size(10)
        .build(p)
        .unwrap();
    fx.lc.start().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, table, stop) = (fx.db.clone(), fx.table.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let mut w = db.write_txn(&[&table]).unwrap();
                for k in 0..5 {
                    table
                        .insert(&mut w, obj(u64::from((i * 5 + k) % 500), i))
                        .unwrap();
                }
                w.commit();
                i += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let rev = fx.table.revision(&fx.db.read_txn()).unwrap();
        rec.wait_until_reconciled_timeout(rev, Duration::from_millis(500))
            .await
            .expect("wait timed out under load");
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    fx.lc.stop().await;
}

// Defect 5: `Duration::MAX` everywhere passes validation and panics
// nowhere; waits with it return when their condition holds.
#[tokio::test(start_paused = true)]
async fn d05_duration_max_everywhere() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&[]);
    let target = Arc::new(Target::default());
    let (p, health) = fx.params("r");
    let max = Duration::MAX;
    let rec = fx
        .single(&target)
        .full_reconciliation_interval(max)
        .prune_interval(max)
        .retry_backoff(max, max)
        .refresh(max, 10)
        .shutdown_drain(max)
        .operation_timeout(max)
        .circuit_breaker(3, max)
        .build(p)
        .unwrap();
    fx.lc.start().await.unwrap();
    target.fault(2, Fault::Fail);
    let rev = fx.insert([obj(1, 1), obj(2, 2)]);
    let report = rec.wait_until_reconciled_timeout(rev, max).await.unwrap();
    assert!(report.processed(rev));
    until("2 failed", MINUTE, || {
        fx.get(2).status.kind == StatusKind::Error
    })
    .await;
    assert_eq!(target.has(1), Some(1));
    // The retry of 2 is due at "never"; nothing panicked meanwhile.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(rec.progress().running, "the loop died");
    assert_eq!(level(&health), Some(HealthLevel::Degraded));
    // Blocking wait with MAX from a plain thread, once 2 is deleted (and
    // the delete reaches the target: the wait waits for that too).
    target.heal();
    let mut w = fx.db.write_txn(&[&fx.table]).unwrap();
    fx.table.delete(&mut w, &fx.get(2)).unwrap();
    w.commit();
    let (db, table, status) = (fx.db.clone(), fx.table.clone(), fx.status.clone());
    tokio::task::spawn_blocking(move || {
        reconciler::wait_for_reconciliation_blocking(&db, &table, &status, max)
    })
    .await
    .unwrap()
    .unwrap();
    reconciler::wait_for_reconciliation_timeout(&fx.db, &fx.table, &fx.status, max)
        .await
        .unwrap();
    let watch = fx.table.initialized(&fx.db.read_txn()).unwrap().1;
    assert!(watch.wait_timeout(max), "initialized watch closes");
    fx.lc.stop().await;
}

// Defect 6: panics in the status getter and setter and in the rate
// limiter are contained: the object gets an error status and a retry,
// health says Degraded with the panic message, the others converge, and
// so does the object once the callback behaves.
#[tokio::test(start_paused = true)]
async fn d06_panicking_status_getter_and_setter_are_contained() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&[]);
    let target = Arc::new(Target::default());
    let bad_get = Arc::new(AtomicBool::new(true));
    let bad_set = Arc::new(AtomicBool::new(true));
    let (p, health) = fx.params("r");
    let (g, s) = (bad_get.clone(), bad_set.clone());
    let rec = Reconciler::builder(fx.table.clone(), target.clone())
        .status(
            move |o: &Obj| {
                assert!(
                    !(o.id == 3 && g.load(Ordering::SeqCst)),
                    "getter panics on 3"
                );
                &o.status
            },
            move |o: &mut Obj, st| {
                assert!(
                    !(o.id == 4 && s.load(Ordering::SeqCst)),
                    "setter panics on 4"
                );
                o.status = st;
            },
        )
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build(p)
        .unwrap();
    fx.lc.start().await.unwrap();
    let rev = fx.insert((1..=5).map(|i| obj(i, i as u32)));
    rec.wait_until_reconciled_timeout(rev, MINUTE)
        .await
        .unwrap();
    until("healthy objects Done", MINUTE, || {
        [1, 2, 5]
            .iter()
            .all(|i| fx.get(*i).status.kind == StatusKind::Done)
    })
    .await;
    until("Degraded naming the panic", MINUTE, || {
        level(&health) == Some(HealthLevel::Degraded) && message(&health).contains("panics on")
    })
    .await;
    assert!(rec.progress().running, "the runner died");
    bad_get.store(false, Ordering::SeqCst);
    bad_set.store(false, Ordering::SeqCst);
    rec.wait_until_succeeded_timeout(rev, MINUTE)
        .await
        .expect("the objects whose callbacks panicked never converged");
    until("all Done", MINUTE, || {
        fx.count(&fx.status, StatusKind::Done) == 5
    })
    .await;
    until("health OK", MINUTE, || {
        level(&health) == Some(HealthLevel::Ok)
    })
    .await;
    fx.lc.stop().await;
}

/// A limiter that panics on its first `n` calls.
struct PanickyLimiter(AtomicUsize);

impl RateLimiter for PanickyLimiter {
    async fn wait(&self) {
        if self.0.load(Ordering::SeqCst) > 0 {
            self.0.fetch_sub(1, Ordering::SeqCst);
            panic!("limiter exploded");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn d06_a_panicking_rate_limiter_is_contained() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&[]);
    let target = Arc::new(Target::default());
    let (p, _health) = fx.params("r");
    let rec = fx
        .single(&target)
        .rate_limiter(PanickyLimiter(AtomicUsize::new(2)))
        .build(p)
        .unwrap();
    fx.lc.start().await.unwrap();
    let rev = fx.insert((1..=3).map(|i| obj(i, 1)));
    rec.wait_until_succeeded_timeout(rev, MINUTE)
        .await
        .expect("a panicking limiter stopped the reconciler");
    assert!(rec.progress().running);
    fx.lc.stop().await;
}

/// Batch operations that sort their slice (so positions change) and fail
/// the keys in `fail`; a panic on key 9.
#[derive(Default)]
struct SortingBatch {
    fail: Mutex<BTreeSet<u64>>,
    panic_on: Mutex<BTreeSet<u64>>,
    state: Mutex<BTreeMap<u64, u32>>,
}

impl BatchOperations<Obj> for SortingBatch {
    async fn update_batch(&self, _: &ReadTxn, batch: &mut [BatchEntry<Obj>]) {
        batch.sort_by_key(|e| std::cmp::Reverse(e.object.id));
        for e in batch.iter_mut() {
            if self.panic_on.lock().contains(&e.object.id) {
                panic!("batch exploded on {}", e.object.id);
            }
            if self.fail.lock().contains(&e.object.id) {
                e.result = Err(format!("cannot write {}", e.object.id).into());
            } else {
                self.state.lock().insert(e.object.id, e.object.value);
            }
        }
    }
    async fn delete_batch(&self, _: &ReadTxn, batch: &mut [BatchEntry<Obj>]) {
        for e in batch.iter_mut() {
            self.state.lock().remove(&e.object.id);
        }
    }
}

// Defects 6 and 10: batch results are matched by key, not by position,
// and a panicking batch is contained.
#[tokio::test(start_paused = true)]
async fn d10_batch_results_are_matched_by_key_and_panics_contained() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&[]);
    let target = Arc::new(Target::default());
    let batch = Arc::new(SortingBatch::default());
    batch.fail.lock().insert(4);
    let (p, health) = fx.params("r");
    let rec = fx
        .single(&target)
        .batch_operations(batch.clone())
        .build(p)
        .unwrap();
    fx.lc.start().await.unwrap();
    let rev = fx.insert((1..=6).map(|i| obj(i, 1)));
    rec.wait_until_reconciled_timeout(rev, MINUTE)
        .await
        .unwrap();
    until("4 Error, the rest Done", MINUTE, || {
        (1..=6).all(|i| {
            let want = if i == 4 {
                StatusKind::Error
            } else {
                StatusKind::Done
            };
            fx.get(i).status.kind == want
        })
    })
    .await;
    // The key as its type prints it (a u64: `4`), not its bytes.
    assert_eq!(rec.progress().error_keys, vec!["4".to_string()]);
    batch.fail.lock().clear();
    rec.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    until("4 Done", MINUTE, || {
        fx.get(4).status.kind == StatusKind::Done
    })
    .await;

    batch.panic_on.lock().insert(9);
    let rev = fx.insert([obj(9, 1)]);
    until("Degraded naming the batch panic", MINUTE, || {
        message(&health).contains("batch exploded")
    })
    .await;
    assert_eq!(fx.get(9).status.kind, StatusKind::Error);
    batch.panic_on.lock().clear();
    rec.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    assert_eq!(batch.state.lock().get(&9), Some(&1));
    fx.lc.stop().await;
}

// Defect 7: with concurrency 8, one update that never returns does not
// keep the other 99 objects out of the target; it times out, is reported
// and retried, and converges once the target answers.
#[tokio::test(start_paused = true)]
async fn d07_one_hung_operation_stalls_no_other_key() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&[]);
    let target = Arc::new(Target::default());
    target.fault(0, Fault::Hang);
    let (p, health) = fx.params("r");
    let rec = fx
        .single(&target)
        .concurrency(8)
        .operation_timeout(Duration::from_secs(5))
        .build(p)
        .unwrap();
    fx.lc.start().await.unwrap();
    let started = Instant::now();
    let rev = fx.insert((0..100).map(|i| obj(i, 1)));
    until(
        "99 healthy objects in the target",
        Duration::from_secs(1),
        || target.state.lock().len() == 99,
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    until("the hung one timed out", MINUTE, || {
        fx.get(0).status.kind == StatusKind::Error
    })
    .await;
    let err = fx.get(0).status.error.unwrap_or_default();
    assert!(err.contains("timed out"), "{err}");
    assert_eq!(level(&health), Some(HealthLevel::Degraded));
    target.heal();
    rec.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    assert_eq!(target.state.lock().len(), 100);
    assert!(!target.overlapped.load(Ordering::SeqCst));
    assert!(target.max_in_flight.load(Ordering::SeqCst) <= 8);
    fx.lc.stop().await;
}

// Defect 8: a status getter that never reads back Done must not make the
// runner update the object over and over, nor starve the runtime.
#[tokio::test(start_paused = true)]
async fn d08_a_lying_status_getter_causes_no_hot_loop() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&[]);
    let target = Arc::new(Target::default());
    let (p, _) = fx.params("r");
    static PENDING: std::sync::LazyLock<Status> = std::sync::LazyLock::new(Status::pending);
    let _rec = Reconciler::builder(fx.table.clone(), target.clone())
        .status(|_: &Obj| &*PENDING, |o: &mut Obj, st| o.status = st)
        .build(p)
        .unwrap();
    fx.lc.start().await.unwrap();
    fx.insert((0..10).map(|i| obj(i, 1)));
    // A ticker on the same runtime keeps its pace.
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            let mut iv = tokio::time::interval(Duration::from_millis(1));
            loop {
                iv.tick().await;
                ticks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    until("all in the target", MINUTE, || {
        target.state.lock().len() == 10
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let updates = target.updates.load(Ordering::SeqCst);
    assert!(updates <= 30, "{updates} updates of 10 objects in 1 s");
    assert!(
        ticks.load(Ordering::SeqCst) >= 900,
        "the runtime was starved"
    );
    ticker.abort();
    fx.lc.stop().await;
}

// Defect 9: full rounds run with `concurrency` operations in flight and do
// not starve incremental work.
#[tokio::test(start_paused = true)]
async fn d09_full_rounds_honour_concurrency() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&[]);
    let target = Arc::new(Target::default());
    for i in 0..64 {
        target.fault(i, Fault::Slow(Duration::from_millis(5)));
    }
    let (p, _) = fx.params("r");
    let rec = fx
        .single(&target)
        .concurrency(16)
        .full_reconciliation_interval(Duration::from_millis(10))
        .build(p)
        .unwrap();
    fx.lc.start().await.unwrap();
    let rev = fx.insert((0..64).map(|i| obj(i, 1)));
    rec.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    target.max_in_flight.store(0, Ordering::SeqCst);
    let full = rec.trigger_full_reconciliation();
    tokio::time::timeout(MINUTE, full.finished())
        .await
        .unwrap()
        .unwrap();
    let peak = target.max_in_flight.load(Ordering::SeqCst);
    assert!((8..=16).contains(&peak), "a full round ran {peak} at once");
    // A new object lands promptly while full rounds keep coming.
    let t0 = Instant::now();
    let rev = fx.insert([obj(100, 1)]);
    rec.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(100),
        "incremental work waited {:?}",
        t0.elapsed()
    );
    assert!(!target.overlapped.load(Ordering::SeqCst));
    fx.lc.stop().await;
}

// Defect 11: refresh ages an object by this reconciler's own status, so
// another member's frequent writes do not keep resetting it.
#[tokio::test(start_paused = true)]
async fn d11_refresh_ages_by_its_own_status_in_a_set() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&["slowpoke", "busy"]);
    let (ta, tb) = (Arc::new(Target::default()), Arc::new(Target::default()));
    let (pa, _) = fx.params("slowpoke");
    let (pb, _) = fx.params("busy");
    let _a = fx
        .member("slowpoke", &ta)
        .refresh(Duration::from_millis(100), 10)
        .build(pa)
        .unwrap();
    // b rewrites every row's status every 20 ms.
    let _b = fx
        .member("busy", &tb)
        .full_reconciliation_interval(Duration::from_millis(20))
        .build(pb)
        .unwrap();
    fx.lc.start().await.unwrap();
    fx.insert([obj(1, 1)]);
    until("a Done", MINUTE, || {
        fx.get(1).statuses.get("slowpoke").kind == StatusKind::Done
    })
    .await;
    // Refresh updates are incremental ones (`changed` is None): count them
    // all; a has no full rounds in this second.
    let before = ta.updates.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let n = ta.updates.load(Ordering::SeqCst) - before;
    assert!(n >= 5, "refreshed {n} times in 1 s at a 100 ms interval");
    fx.lc.stop().await;
}

// Defect 12: a reconciler built after the lifecycle started runs; one
// whose lifecycle never starts answers waits with an error.
#[tokio::test(start_paused = true)]
async fn d12_built_after_start_runs_and_never_started_errs() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&[]);
    let target = Arc::new(Target::default());
    fx.lc.start().await.unwrap();
    let (p, _) = fx.params("late");
    let rec = fx.single(&target).build(p).unwrap();
    let rev = fx.insert([obj(1, 1)]);
    rec.wait_until_succeeded_timeout(rev, MINUTE)
        .await
        .expect("a reconciler built after start never ran");
    assert_eq!(target.has(1), Some(1));

    let other = fixture(&[]);
    let (p, _) = other.params("never");
    let idle = other.single(&Arc::new(Target::default())).build(p).unwrap();
    let rev = other.insert([obj(1, 1)]);
    assert!(matches!(
        idle.wait_until_reconciled(rev).await,
        Err(WaitError::NotStarted)
    ));
    fx.lc.stop().await;
}

// The circuit breaker: under an outage of every object, operations slow to
// probes, health names the breaker, and everything converges once the
// target recovers.
#[tokio::test(start_paused = true)]
async fn breaker_pauses_an_outage_and_recovers() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&[]);
    let target = Arc::new(Target::default());
    for i in 0..50 {
        target.fault(i, Fault::Fail);
    }
    let (p, health) = fx.params("r");
    let rec = fx
        .single(&target)
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(20))
        .circuit_breaker(10, Duration::from_millis(500))
        .build(p)
        .unwrap();
    fx.lc.start().await.unwrap();
    let rev = fx.insert((0..50).map(|i| obj(i, 1)));
    until("breaker open", MINUTE, || {
        message(&health).contains("circuit breaker")
    })
    .await;
    let before = target.updates.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = target.updates.load(Ordering::SeqCst) - before;
    // Without the breaker: 50 objects every 20 ms = 5,000 operations.
    assert!(during <= 50, "{during} operations in 2 s of outage");
    target.heal();
    rec.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    until("health OK", MINUTE, || {
        level(&health) == Some(HealthLevel::Ok)
    })
    .await;
    assert_eq!(target.state.lock().len(), 50);
    fx.lc.stop().await;
}

// A panicking operation in a status set member does not leave the row's
// other member stuck, and the panicking one converges after.
#[tokio::test(start_paused = true)]
async fn panicking_operation_in_a_set_converges() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&["a", "b"]);
    let (ta, tb) = (Arc::new(Target::default()), Arc::new(Target::default()));
    ta.once.lock().insert(1, vec![Fault::Panic, Fault::Panic]);
    let (pa, _) = fx.params("a");
    let (pb, _) = fx.params("b");
    let a = fx.member("a", &ta).build(pa).unwrap();
    let b = fx.member("b", &tb).build(pb).unwrap();
    fx.lc.start().await.unwrap();
    let rev = fx.insert([obj(1, 1)]);
    a.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    b.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    tokio::time::timeout(
        MINUTE,
        reconciler::wait_for_reconciliation(&fx.db, &fx.table, &fx.status),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!((ta.has(1), tb.has(1)), (Some(1), Some(1)));
    fx.lc.stop().await;
}

// Defect 13: a hard delete that keeps failing leaves the row gone from the
// table (and from the status index) but the object in the target:
// `wait_for_reconciliation` must not return until the delete succeeded.
#[tokio::test(start_paused = true)]
async fn d13_wait_for_reconciliation_waits_for_pending_hard_deletes() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&[]);
    let target = Arc::new(Target::default());
    let (p, _) = fx.params("r");
    let rec = fx.single(&target).build(p).unwrap();
    fx.lc.start().await.unwrap();
    let rev = fx.insert([obj(1, 7), obj(2, 7)]);
    rec.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    let wait =
        |limit| reconciler::wait_for_reconciliation_timeout(&fx.db, &fx.table, &fx.status, limit);
    wait(MINUTE).await.unwrap();

    // The hostile step: the target refuses the delete.
    target.fault(1, Fault::Fail);
    let mut w = fx.db.write_txn(&[&fx.table]).unwrap();
    fx.table.delete(&mut w, &obj(1, 7)).unwrap();
    let rev = fx.table.revision(&w.commit()).unwrap();
    assert_eq!(
        wait(Duration::from_secs(5)).await,
        Err(WaitError::Timeout),
        "returned while the delete of 1 was failing"
    );
    assert_eq!(target.has(1), Some(7));
    let blocking = {
        let (db, table, status) = (fx.db.clone(), fx.table.clone(), fx.status.clone());
        std::thread::spawn(move || {
            reconciler::wait_for_reconciliation_blocking(
                &db,
                &table,
                &status,
                Duration::from_millis(50),
            )
        })
    };
    assert_eq!(blocking.join().unwrap(), Err(WaitError::Timeout));

    // The reconciler's own row says why: inspectable in the Db.
    let states = reconciler::state_table(&fx.db).expect("state table registered");
    let row = states
        .all(&fx.db.read_txn())
        .unwrap()
        .map(|(s, _)| s)
        .find(|s| s.module_id == "r")
        .expect("the reconciler's row");
    assert_eq!(row.table, "objs");
    assert_eq!(row.report.pending_hard_deletes, 1);
    let failing = &row.report.failing[0];
    assert_eq!(failing.key, "1");
    assert!(failing.hard_delete && failing.attempts >= 1);
    assert!(
        failing.error.contains("cannot write 1"),
        "{}",
        failing.error
    );
    assert!(!row.report.healthy);
    #[cfg(feature = "inspect")]
    {
        let any = fx
            .db
            .table_by_name(reconciler::STATE_TABLE)
            .expect("inspectable");
        let json = &any.all(&fx.db.read_txn()).unwrap()[0].json;
        assert_eq!(json["failing"][0]["key"], "1");
    }

    target.heal();
    wait(MINUTE).await.unwrap();
    assert_eq!(
        target.has(1),
        None,
        "returned before the delete reached the target"
    );
    rec.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    fx.lc.stop().await;
    // A stopped reconciler's row says so, and holds up no wait.
    until("row not running", MINUTE, || {
        states
            .all(&fx.db.read_txn())
            .unwrap()
            .all(|(s, _)| !s.report.running)
    })
    .await;
}

// The wait sees changes the reconciler has not read yet: a delete written
// just before the wait, of a row whose status index entry is gone at once.
#[tokio::test(start_paused = true)]
async fn d13_a_delete_not_yet_read_holds_the_wait() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&[]);
    let target = Arc::new(Target::default());
    target
        .once
        .lock()
        .insert(1, vec![Fault::Slow(Duration::ZERO)]);
    let (p, _) = fx.params("r");
    let rec = fx.single(&target).build(p).unwrap();
    fx.lc.start().await.unwrap();
    let rev = fx.insert([obj(1, 7)]);
    rec.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    // Deletes take 2 s from now on: the wait must outlast them.
    target.fault(1, Fault::Slow(Duration::from_secs(2)));
    let mut w = fx.db.write_txn(&[&fx.table]).unwrap();
    fx.table.delete(&mut w, &obj(1, 7)).unwrap();
    w.commit();
    let start = Instant::now();
    reconciler::wait_for_reconciliation_timeout(&fx.db, &fx.table, &fx.status, MINUTE)
        .await
        .unwrap();
    assert_eq!(target.has(1), None);
    assert!(start.elapsed() >= Duration::from_secs(2));
    fx.lc.stop().await;
}

// No silent ignore: the natural "clone the row, change a field, insert"
// keeps the old Done status; it is a new version all the same, for a
// single status and for every member of a set, and the members' own
// status writes never make work for each other (no ping-pong).
#[tokio::test(start_paused = true)]
async fn s2_a_clone_with_its_old_done_status_is_reconciled() {
    let _watchdog = Watchdog::arm();
    for members in [&[][..], &["a", "b"][..]] {
        let fx = fixture(members);
        let targets: Vec<Arc<Target>> = (0..members.len().max(1))
            .map(|_| Arc::new(Target::default()))
            .collect();
        let recs: Vec<Reconciler<Obj>> = if members.is_empty() {
            vec![fx.single(&targets[0]).build(fx.params("r").0).unwrap()]
        } else {
            vec![
                fx.member("a", &targets[0]).build(fx.params("a").0).unwrap(),
                fx.member("b", &targets[1]).build(fx.params("b").0).unwrap(),
            ]
        };
        fx.lc.start().await.unwrap();
        let rev = fx.insert([obj(1, 7)]);
        for r in &recs {
            r.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
        }
        reconciler::wait_for_reconciliation_timeout(&fx.db, &fx.table, &fx.status, MINUTE)
            .await
            .unwrap();
        // The hostile step: the stored row, Done status and all, with a new value.
        let mut changed = fx.get(1);
        changed.value = 8;
        let rev = fx.insert([changed]);
        for r in &recs {
            r.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
        }
        for t in &targets {
            assert_eq!(
                t.has(1),
                Some(8),
                "members {members:?}: the new value was ignored"
            );
        }
        // Settled: nobody's status write is work for anyone any more.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let ops: Vec<usize> = targets
            .iter()
            .map(|t| t.updates.load(Ordering::SeqCst))
            .collect();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let later: Vec<usize> = targets
            .iter()
            .map(|t| t.updates.load(Ordering::SeqCst))
            .collect();
        assert_eq!(
            ops, later,
            "members {members:?}: status writes keep making work"
        );
        assert!(
            ops.iter().all(|&n| n == 2),
            "members {members:?}: {ops:?} updates"
        );
        fx.lc.stop().await;
    }
}

// Found by the reconciler stress test (`tests/stress.rs`): a full round is
// fed over time from the snapshot it started on, and an object that the
// incremental work had meanwhile put in the target in a newer version was
// written again as it was in the snapshot: the target went back, while a
// wait had already said the newer version succeeded.
#[tokio::test(start_paused = true)]
async fn a_full_round_never_sets_the_target_back_to_an_older_version() {
    let _watchdog = Watchdog::arm();
    let fx = fixture(&[]);
    let t = Arc::new(Target::default());
    for id in 0..20 {
        t.fault(id, Fault::Slow(Duration::from_millis(5)));
    }
    let (p, _) = fx.params("r");
    // One operation at a time, a few per round: the round is fed slowly.
    let r = fx
        .single(&t)
        .concurrency(1)
        .incremental_round_size(2)
        .build(p)
        .unwrap();
    fx.lc.start().await.unwrap();
    let rev = fx.insert((0..20).map(|i| obj(i, 1)));
    r.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    let round = r.trigger_full_reconciliation();
    tokio::time::sleep(Duration::from_millis(6)).await;
    // Key 19 gets version 2 while the round is still at the first keys.
    let rev = fx.insert([obj(19, 2)]);
    r.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    assert_eq!(t.has(19), Some(2));
    tokio::time::timeout(MINUTE, round.finished())
        .await
        .expect("the round never finished")
        .unwrap();
    let history = t.history.lock().get(&19).cloned().unwrap_or_default();
    let first_2 = history.iter().position(|v| *v == 2).unwrap();
    assert!(
        history[first_2..].iter().all(|v| *v == 2),
        "the target went back to an older version: {history:?}"
    );
    assert_eq!(t.has(19), Some(2));
    fx.lc.stop().await;
}

/// Counts committed write transactions on the objects table.
#[derive(Default)]
struct Commits(AtomicUsize);

impl statedb::DbMetrics for Commits {
    fn write_txn_duration(&self, tables: &[&str], _: Duration) {
        if tables == ["objs"] {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The handles that held the `objs` table, in order.
#[derive(Default)]
struct Holders(parking_lot::Mutex<Vec<String>>);

impl statedb::DbMetrics for Holders {
    fn handle_lock_hold(&self, handle: &str, tables: &[&str], _: Duration) {
        if tables.contains(&"objs") {
            self.0.lock().push(handle.to_string());
        }
    }
}

// A reconciler's status writes are attributed to it: to
// `reconciler:<module id>` on a plain Db, to the application's own name
// on a named handle; two reconcilers on one table keep theirs apart.
#[tokio::test(start_paused = true)]
async fn status_writes_carry_the_reconcilers_handle_name() {
    let _watchdog = Watchdog::arm();
    let holders = Arc::new(Holders::default());
    let fx = fixture_on(Db::with_metrics(holders.clone()), &["a", "b"]);
    let target = Arc::new(Target::default());
    let (pa, _) = fx.params("a");
    let (mut pb, _) = fx.params("b");
    pb.db = pb.db.handle("app-b");
    let ra = fx.member("a", &target).build(pa).unwrap();
    let rb = fx.member("b", &target).build(pb).unwrap();
    fx.lc.start().await.unwrap();
    let rev = fx.insert((0..5).map(|i| obj(i, 1)));
    ra.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    rb.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    fx.lc.stop().await;
    let seen = holders.0.lock().clone();
    assert!(seen.iter().any(|h| h == "reconciler:a"), "{seen:?}");
    assert!(seen.iter().any(|h| h == "app-b"), "{seen:?}");
    assert!(!seen.iter().any(|h| h == "reconciler:b"), "{seen:?}");
    assert!(
        seen.iter().any(|h| h == "db"),
        "the test's own inserts: {seen:?}"
    );
}

// A backlogged reconciler writes the statuses of many finished operations
// in one transaction (one commit per operation cost ~10x the CPU per
// object at concurrency 1); an idle one writes at once, whatever the
// window.
#[tokio::test(start_paused = true)]
async fn the_write_back_window_batches_a_backlog_and_idle_writes_at_once() {
    let _watchdog = Watchdog::arm();
    for (window, most) in [
        (Duration::from_millis(50), 20),
        (Duration::ZERO, usize::MAX),
    ] {
        let counter = Arc::new(Commits::default());
        let fx = fixture_on(Db::with_metrics(counter.clone()), &[]);
        let target = Arc::new(Target::default());
        for i in 0..100 {
            target.fault(i, Fault::Slow(Duration::from_millis(1)));
        }
        let (p, _) = fx.params("r");
        let rec = fx
            .single(&target)
            .write_back_window(window)
            .build(p)
            .unwrap();
        fx.lc.start().await.unwrap();
        let rev = fx.insert((0..100).map(|i| obj(i, 1)));
        let before = counter.0.load(Ordering::SeqCst);
        rec.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
        let commits = counter.0.load(Ordering::SeqCst) - before;
        assert!(
            commits <= most,
            "window {window:?}: {commits} status commits for 100 operations"
        );
        if window.is_zero() {
            assert!(
                commits >= 100,
                "without a window, every outcome at once: {commits}"
            );
        }
        fx.lc.stop().await;
    }
    // Idle: written as soon as the operation is done, even with a window
    // of Duration::MAX.
    let fx = fixture(&[]);
    let target = Arc::new(Target::default());
    let (p, _) = fx.params("r");
    let rec = fx
        .single(&target)
        .write_back_window(Duration::MAX)
        .build(p)
        .unwrap();
    fx.lc.start().await.unwrap();
    target.fault(7, Fault::Slow(Duration::from_millis(3)));
    let t0 = Instant::now();
    let rev = fx.insert([obj(7, 1)]);
    rec.wait_until_succeeded_timeout(rev, MINUTE).await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(10),
        "an idle write-back waited {:?}",
        t0.elapsed()
    );
    fx.lc.stop().await;
}

//! Model-based property test with several reconcilers over one Db: `solo`
//! on the object's single status, `a` and `b` sharing it through a
//! status set, each pushing to its own target. Random steps: fresh
//! inserts, updates of a clone that keeps its old statuses, soft and hard
//! deletes, per-key faults in each target (fail, hang until the operation
//! timeout, panic, slow), a status getter that panics, a user task
//! holding the table's write transaction across an `.await`, full rounds,
//! prunes, waits, and restarts with and without drain.
//!
//! During the run, a wait that returns "succeeded up to R" must be true:
//! every key whose last write is at or below R is in that target as
//! desired. After faults stop: every target equals the desired set, every
//! status reads Done, no target ever saw two operations on one key at
//! once or more than `concurrency` at a time, every wait returns within a
//! bound, and health is OK. Virtual time (a paused tokio runtime), with a
//! wall-clock watchdog per case.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use proptest::prelude::*;
use reconciler::{
    Builder, HealthLevel, HealthReporter, Lifecycle, OpError, Operations, Params, Pruned,
    Reconciler, Status, StatusKind, StatusSet,
};
use statedb::{Db, Index, Objects, ReadTxn, Revision, Table};

#[path = "common/watchdog.rs"]
mod watchdog;
use watchdog::Watchdog;

const MEMBERS: [&str; 2] = ["a", "b"];
const NAMES: [&str; 3] = ["solo", "a", "b"];

#[derive(Clone, Debug)]
struct Obj {
    key: u8,
    value: u8,
    status: Status,
    statuses: StatusSet,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    Fail,
    /// Never returns: the operation timeout turns it into an error.
    Hang,
    Panic,
    /// Slower than usual, within the timeout.
    Slow,
}

#[derive(Default)]
struct ModelTarget {
    state: Mutex<BTreeMap<u8, u8>>,
    faults: Mutex<BTreeMap<u8, Fault>>,
    in_flight: Mutex<BTreeSet<u8>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    overlap: AtomicBool,
}

struct InFlight<'a>(&'a ModelTarget, u8);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.lock().remove(&self.1);
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ModelTarget {
    async fn enter(&self, key: u8, value: u8) -> Result<InFlight<'_>, OpError> {
        if !self.in_flight.lock().insert(key) {
            self.overlap.store(true, Ordering::SeqCst);
        }
        let n = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(n, Ordering::SeqCst);
        let guard = InFlight(self, key);
        let delay = (u64::from(key) * 7 + u64::from(value) * 13) % 20;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let fault = self.faults.lock().get(&key).copied();
        match fault {
            None => {}
            Some(Fault::Fail) => return Err(format!("key {key} refused").into()),
            Some(Fault::Hang) => std::future::pending::<()>().await,
            Some(Fault::Panic) => panic!("target exploded on {key}"),
            Some(Fault::Slow) => tokio::time::sleep(Duration::from_millis(60)).await,
        }
        Ok(guard)
    }
}

impl Operations<Obj> for Arc<ModelTarget> {
    async fn update(
        &self,
        _: &ReadTxn,
        _: Revision,
        o: &mut Obj,
        _: Option<&mut bool>,
    ) -> Result<(), OpError> {
        let _in = self.enter(o.key, o.value).await?;
        self.state.lock().insert(o.key, o.value);
        Ok(())
    }
    async fn delete(&self, _: &ReadTxn, _: Revision, o: &Obj) -> Result<(), OpError> {
        let _in = self.enter(o.key, o.value).await?;
        self.state.lock().remove(&o.key);
        Ok(())
    }
    async fn prune(&self, _: &ReadTxn, want: Objects<Obj>) -> Result<Pruned, OpError> {
        let want: BTreeSet<u8> = want.map(|(o, _)| o.key).collect();
        self.state.lock().retain(|k, _| want.contains(k));
        Ok(Pruned::default())
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// A fresh version: every status pending.
    Upsert(u8, u8),
    /// The stored row, statuses and all, with a new value.
    UpdateClone(u8, u8),
    SoftDelete(u8),
    HardDelete(u8),
    /// Target (0..3) and a bit mask of keys that get `Fault` from now on.
    Faults(usize, u8, Fault),
    /// Keys whose status getter panics in reconciler `a`.
    GetterPanics(u8),
    /// A user task takes the table's write transaction and awaits this
    /// many milliseconds before releasing it.
    HoldLock(u16),
    Advance(u16),
    TriggerFull(usize),
    Prune(usize),
    /// Reconciler (0..3) waits until everything written so far has
    /// succeeded, for up to this many milliseconds.
    Wait(usize, u16),
    /// `wait_for_reconciliation` through the status-set index, for up to
    /// this many milliseconds: if it returns, both members' targets hold
    /// the desired set.
    WaitAll(u16),
    /// Stop and start again, with a drain or without.
    Restart(bool),
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::Fail),
        Just(Fault::Hang),
        Just(Fault::Panic),
        Just(Fault::Slow)
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (0u8..6, any::<u8>()).prop_map(|(k, v)| Step::Upsert(k, v)),
        3 => (0u8..6, any::<u8>()).prop_map(|(k, v)| Step::UpdateClone(k, v)),
        2 => (0u8..6).prop_map(Step::SoftDelete),
        2 => (0u8..6).prop_map(Step::HardDelete),
        3 => (0usize..3, any::<u8>(), fault()).prop_map(|(t, m, f)| Step::Faults(t, m, f)),
        1 => any::<u8>().prop_map(|m| Step::GetterPanics(m & 0b11)),
        1 => (0u16..200).prop_map(Step::HoldLock),
        4 => (0u16..300).prop_map(Step::Advance),
        1 => (0usize..3).prop_map(Step::TriggerFull),
        1 => (0usize..3).prop_map(Step::Prune),
        2 => (0usize..3, 0u16..500).prop_map(|(r, ms)| Step::Wait(r, ms)),
        2 => (0u16..500).prop_map(Step::WaitAll),
        1 => any::<bool>().prop_map(Step::Restart),
    ]
}

/// The table and its status indexes on one Db that outlives restarts.
struct World {
    db: Db,
    table: Table<Obj>,
    by_key: Index<Obj, u8>,
    solo_status: Index<Obj, StatusKind>,
    set_status: Index<Obj, StatusKind>,
    targets: [Arc<ModelTarget>; 3],
    getter_panics: Arc<Mutex<BTreeSet<u8>>>,
    concurrency: usize,
}

/// One incarnation of the reconcilers.
struct Running {
    lc: Lifecycle,
    recs: Vec<Reconciler<Obj>>,
    health: Vec<Arc<HealthReporter>>,
}

impl World {
    fn new(concurrency: usize) -> World {
        let by_key: Index<Obj, u8> = Index::unique("key", |o: &Obj, k| k.push(&o.key));
        let solo_status = reconciler::new_status_index(|o: &Obj| &o.status);
        let set_status: Index<Obj, StatusKind> =
            Index::non_unique("set", |o: &Obj, k| k.push(&o.statuses.kind_of(&MEMBERS)));
        let table = Table::builder("objs", &by_key)
            .index(&solo_status)
            .index(&set_status)
            .build()
            .unwrap();
        let db = Db::new();
        db.register_table(&table).unwrap();
        World {
            db,
            table,
            by_key,
            solo_status,
            set_status,
            targets: Default::default(),
            getter_panics: Arc::default(),
            concurrency,
        }
    }

    fn builder(&self, i: usize) -> Builder<Obj> {
        let b = Reconciler::builder(self.table.clone(), self.targets[i].clone());
        let b = match NAMES[i] {
            "solo" => b.status(|o: &Obj| &o.status, |o: &mut Obj, s| o.status = s),
            "a" => {
                let panics = self.getter_panics.clone();
                b.status(
                    move |o: &Obj| {
                        if panics.lock().contains(&o.key) {
                            panic!("getter exploded on {}", o.key);
                        }
                        o.statuses.get("a")
                    },
                    |o: &mut Obj, s| o.statuses = o.statuses.set("a", s),
                )
            }
            _ => b.status(
                |o: &Obj| o.statuses.get("b"),
                |o: &mut Obj, s| o.statuses = o.statuses.set("b", s),
            ),
        };
        b.retry_backoff(Duration::from_millis(5), Duration::from_millis(200))
            .operation_timeout(Duration::from_millis(100))
            .incremental_round_size(3)
            .concurrency(self.concurrency)
    }

    async fn start(&self, drain: bool) -> Running {
        let lc = Lifecycle::new();
        let mut recs = Vec::new();
        let mut health = Vec::new();
        for (i, name) in NAMES.iter().enumerate() {
            let h = Arc::new(HealthReporter::new());
            let params = Params::new(self.db.clone(), name, lc.clone(), h.clone());
            let drain = if drain {
                Duration::from_millis(200)
            } else {
                Duration::ZERO
            };
            recs.push(self.builder(i).shutdown_drain(drain).build(params).unwrap());
            health.push(h);
        }
        lc.start().await.unwrap();
        Running { lc, recs, health }
    }

    fn get(&self, key: u8) -> Option<Obj> {
        self.table
            .get(&self.db.read_txn(), self.by_key.query(&key))
            .unwrap()
            .map(|(o, _)| (*o).clone())
    }

    /// A user write. A lock holder may be a task on this very thread, so
    /// the write tries the lock and yields until it gets it (blocking the
    /// thread would deadlock the runtime).
    async fn write(&self, f: impl FnOnce(&mut statedb::WriteTxn)) -> Revision {
        let mut w = loop {
            let tried = self.db.try_write_txn(&[&self.table]);
            match tried {
                Ok(w) => break w,
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        };
        f(&mut w);
        self.table.revision(&w.commit()).unwrap()
    }

    fn all_done(&self) -> bool {
        self.table.all(&self.db.read_txn()).unwrap().all(|(o, _)| {
            o.status.kind == StatusKind::Done
                && !o.status.delete
                && o.statuses.kind_of(&MEMBERS) == StatusKind::Done
        })
    }
}

async fn run(steps: Vec<Step>, concurrency: usize) -> Result<(), TestCaseError> {
    let world = World::new(concurrency);
    let mut running = world.start(true).await;
    let mut desired: BTreeMap<u8, u8> = BTreeMap::new();
    // The revision of each key's last write by the user.
    let mut last_write: BTreeMap<u8, Revision> = BTreeMap::new();
    let mut holders = Vec::new();
    for s in steps {
        match s {
            Step::Upsert(key, value) => {
                let obj = Obj {
                    key,
                    value,
                    status: Status::pending(),
                    statuses: StatusSet::new(),
                };
                let rev = world
                    .write(|w| drop(world.table.insert(w, obj).unwrap()))
                    .await;
                desired.insert(key, value);
                last_write.insert(key, rev);
            }
            Step::UpdateClone(key, value) => {
                // Only a row nobody is deleting: a clone of a soft-deleted
                // row keeps its delete.
                if let Some(mut o) = world.get(key).filter(|o| desired.contains_key(&o.key)) {
                    o.value = value;
                    let rev = world
                        .write(|w| drop(world.table.insert(w, o).unwrap()))
                        .await;
                    desired.insert(key, value);
                    last_write.insert(key, rev);
                }
            }
            Step::SoftDelete(key) => {
                if let Some(mut o) = world.get(key) {
                    o.status = Status::pending_delete();
                    o.statuses = MEMBERS
                        .iter()
                        .fold(StatusSet::new(), |s, m| s.set(m, Status::pending_delete()));
                    let rev = world
                        .write(|w| drop(world.table.insert(w, o).unwrap()))
                        .await;
                    desired.remove(&key);
                    last_write.insert(key, rev);
                }
            }
            Step::HardDelete(key) => {
                let probe = Obj {
                    key,
                    value: 0,
                    status: Status::pending(),
                    statuses: StatusSet::new(),
                };
                if world.get(key).is_some() {
                    let rev = world
                        .write(|w| drop(world.table.delete(w, &probe).unwrap()))
                        .await;
                    last_write.insert(key, rev);
                }
                desired.remove(&key);
            }
            Step::Faults(t, mask, f) => {
                *world.targets[t].faults.lock() = (0..6)
                    .filter(|k| mask & (1 << k) != 0)
                    .map(|k| (k, f))
                    .collect();
            }
            Step::GetterPanics(mask) => {
                *world.getter_panics.lock() = (0..6).filter(|k| mask & (1 << k) != 0).collect();
            }
            Step::HoldLock(ms) => {
                let (db, table) = (world.db.clone(), world.table.clone());
                let (tx, rx) = tokio::sync::oneshot::channel();
                holders.push(tokio::spawn(async move {
                    let w = loop {
                        let tried = db.try_write_txn(&[&table]);
                        match tried {
                            Ok(w) => break w,
                            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                        }
                    };
                    let _ = tx.send(());
                    tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
                    drop(w);
                }));
                let _ = rx.await;
            }
            Step::Advance(ms) => tokio::time::sleep(Duration::from_millis(u64::from(ms))).await,
            Step::TriggerFull(r) => drop(running.recs[r].trigger_full_reconciliation()),
            Step::Prune(r) => drop(running.recs[r].prune()),
            Step::Wait(r, ms) => {
                let rev = world.table.revision(&world.db.read_txn()).unwrap();
                let res = running.recs[r]
                    .wait_until_succeeded_timeout(rev, Duration::from_millis(u64::from(ms)))
                    .await;
                if res.is_ok() {
                    // Returned: it must hold for this reconciler's target.
                    let state = world.targets[r].state.lock().clone();
                    for (&key, &at) in &last_write {
                        if at <= rev {
                            prop_assert_eq!(
                                state.get(&key),
                                desired.get(&key),
                                "{} said succeeded up to {} but key {} is off: {:?}",
                                NAMES[r],
                                rev,
                                key,
                                res
                            );
                        }
                    }
                }
            }
            Step::WaitAll(ms) => {
                let res = reconciler::wait_for_reconciliation_timeout(
                    &world.db,
                    &world.table,
                    &world.set_status,
                    Duration::from_millis(u64::from(ms)),
                )
                .await;
                if res.is_ok() {
                    for (i, name) in NAMES.iter().enumerate().skip(1) {
                        let state = world.targets[i].state.lock().clone();
                        prop_assert_eq!(
                            &state,
                            &desired,
                            "wait_for_reconciliation returned but {}'s target is off",
                            name
                        );
                    }
                }
            }
            Step::Restart(drain) => {
                running.lc.stop().await;
                running = world.start(drain).await;
            }
        }
    }

    // Faults stop; the lock holders finish.
    for t in &world.targets {
        t.faults.lock().clear();
    }
    world.getter_panics.lock().clear();
    for h in holders {
        h.await.unwrap();
    }
    // Leftovers a restart left behind (its retry queue is gone) go with a
    // prune; then everything must converge within a bound.
    for r in &running.recs {
        drop(r.prune());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let converged =
            world.targets.iter().all(|t| *t.state.lock() == desired) && world.all_done();
        if converged {
            break;
        }
        prop_assert!(
            tokio::time::Instant::now() < deadline,
            "did not converge: targets {:?}, desired {:?}",
            world
                .targets
                .iter()
                .map(|t| t.state.lock().clone())
                .collect::<Vec<_>>(),
            desired
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Converged: every wait returns, within a bound.
    let rev = world.table.revision(&world.db.read_txn()).unwrap();
    for (r, rec) in running.recs.iter().enumerate() {
        let res = rec
            .wait_until_succeeded_timeout(rev, Duration::from_secs(10))
            .await;
        prop_assert!(
            res.is_ok(),
            "{}: {:?} at {}: {:?}",
            NAMES[r],
            res,
            rev,
            rec.progress()
        );
    }
    for index in [&world.solo_status, &world.set_status] {
        let res = reconciler::wait_for_reconciliation_timeout(
            &world.db,
            &world.table,
            index,
            Duration::from_secs(10),
        )
        .await;
        prop_assert!(res.is_ok(), "wait_for_reconciliation: {:?}", res);
    }
    for (r, h) in running.health.iter().enumerate() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while h.latest().map(|r| r.level) != Some(HealthLevel::Ok) {
            prop_assert!(
                tokio::time::Instant::now() < deadline,
                "{} health: {:?}",
                NAMES[r],
                h.latest()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    running.lc.stop().await;
    for (r, t) in world.targets.iter().enumerate() {
        prop_assert!(
            !t.overlap.load(Ordering::SeqCst),
            "{}: two operations on one key at once",
            NAMES[r]
        );
        let max = t.max_running.load(Ordering::SeqCst);
        prop_assert!(
            max <= concurrency,
            "{}: {} operations at once",
            NAMES[r],
            max
        );
    }
    Ok(())
}

/// Minimal cases the property test found, each a defect fixed: kept as
/// plain tests so that they run every time.
#[test]
fn regressions() {
    let _watchdog = Watchdog::arm();
    use Step::*;
    let cases: Vec<(usize, Vec<Step>)> = vec![
        // A failed update settling after the failed delete of its row (its
        // write-back waited for a user's lock) must not cancel the delete.
        (
            1,
            vec![
                Upsert(1, 161),
                Faults(1, 203, Fault::Fail),
                Wait(1, 468),
                UpdateClone(1, 129),
                Wait(1, 109),
                HoldLock(157),
                HardDelete(1),
                Wait(1, 444),
                HoldLock(186),
                Advance(224),
            ],
        ),
        // A user's write folded under status writes after a read in
        // pieces had passed its revision.
        (
            1,
            vec![
                Advance(72),
                Upsert(2, 6),
                Upsert(3, 42),
                Upsert(0, 96),
                Faults(0, 3, Fault::Slow),
                Wait(1, 104),
                Upsert(1, 25),
                Wait(0, 474),
            ],
        ),
        // A failure lost with a restart: the write log must keep what the
        // failed key's later versions carry until it succeeds.
        (
            4,
            vec![
                Upsert(1, 0),
                Wait(1, 15),
                GetterPanics(2),
                UpdateClone(1, 1),
                Upsert(2, 16),
                Advance(8),
                Faults(0, 20, Fault::Fail),
                Restart(false),
            ],
        ),
        // A restart with drain: a reconciler stopped first must keep its
        // place in the write log while the others drain.
        (
            4,
            vec![
                HardDelete(0),
                Upsert(1, 94),
                Advance(174),
                Advance(110),
                Upsert(0, 9),
                Prune(1),
                Upsert(0, 129),
                TriggerFull(0),
                TriggerFull(1),
                UpdateClone(1, 175),
                Upsert(5, 43),
                UpdateClone(2, 239),
                Restart(true),
            ],
        ),
        // Found by the random explorer (failed about 1 run in 5, by retry
        // jitter): a failed hard delete's retry replaced the retry of the
        // key's new version (its status getter panicked), and that retry,
        // finding the key back in the table, was dropped: the new version
        // never reached the target.
        (
            4,
            vec![
                Faults(1, 199, Fault::Hang),
                Upsert(1, 7),
                Advance(119),
                TriggerFull(1),
                SoftDelete(1),
                Advance(52),
                UpdateClone(2, 94),
                TriggerFull(2),
                GetterPanics(3),
                GetterPanics(3),
                Advance(243),
                Upsert(3, 203),
                Upsert(0, 168),
                Advance(124),
                Advance(195),
                Prune(0),
                Upsert(1, 176),
                Upsert(2, 173),
                HardDelete(5),
                Advance(10),
                Faults(0, 84, Fault::Slow),
                Upsert(2, 99),
                Wait(0, 441),
            ],
        ),
        // Right after a restart, before the new reconcilers had published
        // their state, wait_for_reconciliation saw no running reconciler
        // and a clone carrying old Done statuses: it returned at once.
        (
            1,
            vec![
                Upsert(0, 0),
                Upsert(3, 0),
                Wait(0, 3),
                Restart(false),
                UpdateClone(3, 1),
                WaitAll(0),
            ],
        ),
        // A status getter that panics leaves the clone's old Done: the
        // wait must see the failing work in the reconciler's state.
        (
            1,
            vec![
                Upsert(0, 0),
                Wait(0, 1),
                GetterPanics(1),
                UpdateClone(0, 1),
                Wait(0, 23),
                WaitAll(4),
            ],
        ),
        // A success must not drop a newer retry parked behind it.
        (
            4,
            vec![
                TriggerFull(0),
                SoftDelete(1),
                TriggerFull(0),
                Wait(0, 154),
                Upsert(3, 112),
            ],
        ),
        // A hard delete's success must not drop the retry of a panicking
        // getter on the key inserted again meanwhile.
        (
            1,
            vec![
                Upsert(1, 2),
                SoftDelete(1),
                Wait(0, 14),
                Upsert(1, 0),
                GetterPanics(2),
                Wait(1, 14),
            ],
        ),
        // A panicking getter during a soft delete: no status may be
        // written (an error status would turn the delete into an update).
        (
            1,
            vec![
                Upsert(2, 74),
                Upsert(1, 123),
                HoldLock(153),
                Upsert(0, 0),
                GetterPanics(3),
                Upsert(0, 1),
                Wait(0, 117),
                SoftDelete(0),
                Restart(false),
                GetterPanics(0),
                Wait(1, 14),
            ],
        ),
        // A user's clone folded under another reconciler's status write.
        (
            1,
            vec![
                Upsert(4, 0),
                Advance(25),
                Faults(0, 16, Fault::Hang),
                UpdateClone(4, 5),
                Advance(14),
            ],
        ),
        // A failed key re-queued behind newer versions: the wait must
        // still wait for the version it failed at.
        (
            4,
            vec![
                Faults(0, 70, Fault::Panic),
                Upsert(1, 0),
                Upsert(0, 0),
                Faults(2, 106, Fault::Fail),
                Wait(2, 15),
            ],
        ),
        // A restart right after a clone: the new reconcilers must learn
        // that the versions written since carry it.
        (
            1,
            vec![
                Upsert(1, 0),
                Wait(0, 1),
                Restart(false),
                UpdateClone(1, 1),
                Faults(0, 0, Fault::Fail),
            ],
        ),
        (
            1,
            vec![
                Upsert(0, 0),
                GetterPanics(1),
                HoldLock(0),
                UpdateClone(0, 1),
                Restart(false),
                Wait(0, 1),
            ],
        ),
        // A failed soft delete whose row another member removed.
        (
            1,
            vec![
                Upsert(3, 0),
                Wait(1, 53),
                Faults(1, 89, Fault::Panic),
                SoftDelete(3),
                Wait(1, 3),
            ],
        ),
    ];
    for (concurrency, steps) in cases {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let shown = format!("{steps:?}");
        rt.block_on(run(steps, concurrency))
            .unwrap_or_else(|e| panic!("{shown}: {e}"));
    }
}

proptest! {
    // A fixed seed: CI runs the same cases every time (set MODEL_RANDOM=1
    // to explore with fresh seeds; what they find goes into
    // `regressions`).
    #![proptest_config(ProptestConfig {
        cases: 64,
        rng_seed: if std::env::var_os("MODEL_RANDOM").is_some() {
            proptest::test_runner::RngSeed::Random
        } else {
            proptest::test_runner::RngSeed::Fixed(20_261_207)
        },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn several_reconcilers_converge_under_faults(
        steps in proptest::collection::vec(step(), 1..40),
        concurrency in prop_oneof![Just(1usize), Just(4usize)],
    ) {
        let watchdog = Watchdog::arm();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let res = rt.block_on(run(steps, concurrency));
        drop(watchdog);
        res?;
    }
}

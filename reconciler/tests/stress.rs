//! Reconciler stress (`cargo xtask stress` runs it long): several
//! reconcilers sharing each object through a status set, on a real
//! multi-thread runtime and the wall clock. Writers insert fresh versions,
//! update clones that keep their statuses, soft- and hard-delete; every
//! target fails, panics, is slow or hangs at random (the operation timeout
//! ends a hang); a user task holds the table's write transaction across
//! `.await`s; the reconcilers are stopped and started again, with and
//! without a drain; full rounds are triggered. While it runs, a wait that
//! says "succeeded" must be true. When the faults stop, every target must
//! equal the desired set, every status read Done, health OK, and no
//! target may ever have seen two operations on one key at once or more
//! than `concurrency` in flight. Figures are printed.
//!
//! Short in CI (`STRESS_SECONDS`, default 3); `cargo xtask stress` runs it
//! for 60 s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reconciler::{
    HealthReporter, Lifecycle, OpError, Operations, Params, Pruned, Reconciler, Status, StatusKind,
    StatusSet,
};
use statedb::{Db, Index, Objects, ReadTxn, Revision, Table};

#[path = "common/watchdog.rs"]
mod watchdog;

const MEMBERS: [&str; 4] = ["r0", "r1", "r2", "r3"];
const KEYS: u32 = 200;
const CONCURRENCY: usize = 8;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Debug)]
struct Obj {
    key: u32,
    value: u64,
    statuses: StatusSet,
}

#[derive(Default)]
struct Target {
    state: Mutex<BTreeMap<u32, u64>>,
    faults: AtomicBool,
    rng: Mutex<Option<StdRng>>,
    seed: u64,
    in_flight: Mutex<BTreeSet<u32>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    overlaps: AtomicU64,
    ops: AtomicU64,
    failures: AtomicU64,
    panics: AtomicU64,
    hangs: AtomicU64,
}

struct InFlight<'a>(&'a Target, u32);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.lock().remove(&self.1);
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Target {
    async fn enter(&self, key: u32) -> Result<InFlight<'_>, OpError> {
        self.ops.fetch_add(1, Ordering::Relaxed);
        if !self.in_flight.lock().insert(key) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        let n = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(n, Ordering::SeqCst);
        let guard = InFlight(self, key);
        if !self.faults.load(Ordering::Relaxed) {
            return Ok(guard);
        }
        let roll: u32 = self
            .rng
            .lock()
            .get_or_insert_with(|| StdRng::seed_from_u64(self.seed))
            .random_range(0..1000);
        match roll {
            0..2 => {
                self.hangs.fetch_add(1, Ordering::Relaxed);
                std::future::pending::<()>().await;
            }
            2..7 => {
                self.panics.fetch_add(1, Ordering::Relaxed);
                panic!("injected panic");
            }
            7..17 => tokio::time::sleep(Duration::from_millis(3)).await,
            17..67 => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err("injected failure".into());
            }
            _ => {}
        }
        Ok(guard)
    }
}

impl Operations<Obj> for Arc<Target> {
    async fn update(
        &self,
        _: &ReadTxn,
        _: Revision,
        o: &mut Obj,
        _: Option<&mut bool>,
    ) -> Result<(), OpError> {
        let _in = self.enter(o.key).await?;
        self.state.lock().insert(o.key, o.value);
        Ok(())
    }
    async fn delete(&self, _: &ReadTxn, _: Revision, o: &Obj) -> Result<(), OpError> {
        let _in = self.enter(o.key).await?;
        self.state.lock().remove(&o.key);
        Ok(())
    }
    async fn prune(&self, _: &ReadTxn, want: Objects<Obj>) -> Result<Pruned, OpError> {
        let want: BTreeSet<u32> = want.map(|(o, _)| o.key).collect();
        self.state.lock().retain(|k, _| want.contains(k));
        Ok(Pruned::default())
    }
}

struct World {
    db: Db,
    table: Table<Obj>,
    by_key: Index<Obj, u32>,
    targets: Vec<Arc<Target>>,
}

struct Running {
    lc: Lifecycle,
    recs: Vec<Reconciler<Obj>>,
    health: Vec<Arc<HealthReporter>>,
}

impl World {
    async fn start(&self, drain: bool) -> Running {
        let lc = Lifecycle::new();
        let (mut recs, mut health) = (Vec::new(), Vec::new());
        for (i, member) in MEMBERS.iter().enumerate() {
            let h = Arc::new(HealthReporter::new());
            let params = Params::new(self.db.clone(), member, lc.clone(), h.clone());
            let m = *member;
            let rec = Reconciler::builder(self.table.clone(), self.targets[i].clone())
                .status(
                    move |o: &Obj| o.statuses.get(m),
                    move |o: &mut Obj, s| o.statuses = o.statuses.set(m, s),
                )
                .retry_backoff(Duration::from_millis(2), Duration::from_millis(50))
                .operation_timeout(Duration::from_millis(50))
                .concurrency(CONCURRENCY)
                .incremental_round_size(50)
                .full_reconciliation_interval(Duration::from_millis(700))
                .shutdown_drain(if drain {
                    Duration::from_millis(100)
                } else {
                    Duration::ZERO
                })
                .build(params)
                .unwrap();
            recs.push(rec);
            health.push(h);
        }
        lc.start().await.unwrap();
        Running { lc, recs, health }
    }

    fn desired(&self) -> BTreeMap<u32, u64> {
        self.table
            .all(&self.db.read_txn())
            .unwrap()
            .filter(|(o, _)| !MEMBERS.iter().any(|m| o.statuses.get(m).delete))
            .map(|(o, _)| (o.key, o.value))
            .collect()
    }

    fn all_done(&self) -> bool {
        self.table
            .all(&self.db.read_txn())
            .unwrap()
            .all(|(o, _)| o.statuses.kind_of(&MEMBERS) == StatusKind::Done)
    }
}

#[test]
fn reconcilers_sharing_objects_converge_under_stress() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"injected panic") {
            default_hook(info);
        }
    }));
    let seconds = env("STRESS_SECONDS", 3);
    let _watchdog = watchdog::Watchdog::arm_for(Duration::from_secs(seconds + 240));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let by_key: Index<Obj, u32> = Index::unique("key", |o: &Obj, k| k.push(&o.key));
    let table = Table::new("objs", &by_key).unwrap();
    let db = Db::new();
    db.register_table(&table).unwrap();
    let world = Arc::new(World {
        db,
        table,
        by_key,
        targets: (0..MEMBERS.len() as u64)
            .map(|i| {
                Arc::new(Target {
                    seed: 11 + i,
                    faults: AtomicBool::new(true),
                    ..Target::default()
                })
            })
            .collect(),
    });
    let commits = Arc::new(AtomicU64::new(0));
    // Writers hold it shared; a checked wait holds it alone, so that no
    // newer version reaches a target between the wait and the check.
    let pause = Arc::new(parking_lot::RwLock::new(()));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut running = rt.block_on(world.start(true));

    // Writers on threads of their own.
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let (world, commits, stop) = (world.clone(), commits.clone(), stop.clone());
            let pause = pause.clone();
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(100 + w);
                while !stop.load(Ordering::Relaxed) {
                    let _writing = pause.read();
                    let mut txn = world.db.write_txn(&[&world.table]).unwrap();
                    for _ in 0..rng.random_range(1..20) {
                        let key = rng.random_range(0..KEYS);
                        let found = world
                            .table
                            .get(&txn, world.by_key.query(&key))
                            .unwrap()
                            .map(|(o, _)| (*o).clone());
                        match (rng.random_range(0..10), found) {
                            // A clone that keeps its statuses, new value.
                            (0..3, Some(mut o))
                                if !MEMBERS.iter().any(|m| o.statuses.get(m).delete) =>
                            {
                                o.value = rng.random();
                                world.table.insert(&mut txn, o).unwrap();
                            }
                            (3, Some(mut o)) => {
                                o.statuses = MEMBERS.iter().fold(StatusSet::new(), |s, m| {
                                    s.set(m, Status::pending_delete())
                                });
                                world.table.insert(&mut txn, o).unwrap();
                            }
                            (4, Some(o)) => {
                                world.table.delete(&mut txn, &o).unwrap();
                            }
                            _ => {
                                let o = Obj {
                                    key,
                                    value: rng.random(),
                                    statuses: StatusSet::new(),
                                };
                                world.table.insert(&mut txn, o).unwrap();
                            }
                        }
                    }
                    txn.commit();
                    commits.fetch_add(1, Ordering::Relaxed);
                    drop(_writing);
                    std::thread::sleep(Duration::from_micros(rng.random_range(0..500)));
                }
            })
        })
        .collect();

    // A user task holding the table across awaits, on the runtime.
    let holder = {
        let (world, stop) = (world.clone(), stop.clone());
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let w = world.db.write_txn_async(&[&world.table]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
                drop(w);
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };

    // Restarts, full rounds and checked waits from the test thread.
    let (mut restarts, mut waits_checked) = (0u64, 0u64);
    let mut rng = StdRng::seed_from_u64(7);
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(rng.random_range(50..300)));
        match rng.random_range(0..4) {
            0 => {
                rt.block_on(running.lc.stop());
                running = rt.block_on(world.start(rng.random_bool(0.5)));
                restarts += 1;
            }
            1 => {
                drop(running.recs[rng.random_range(0..MEMBERS.len())].trigger_full_reconciliation())
            }
            _ => {
                // "Succeeded up to R" must be true of that target for every
                // key whose last change is at or below R.
                let r = rng.random_range(0..MEMBERS.len());
                let _alone = pause.write();
                let txn = world.db.read_txn();
                let rev = world.table.revision(&txn).unwrap();
                let waited = rt.block_on(
                    running.recs[r].wait_until_succeeded_timeout(rev, Duration::from_millis(500)),
                );
                if waited.is_ok() {
                    let state = world.targets[r].state.lock().clone();
                    for (o, at) in world.table.all(&txn).unwrap() {
                        let deleting = MEMBERS.iter().any(|m| o.statuses.get(m).delete);
                        if at <= rev && !deleting {
                            assert_eq!(
                                state.get(&o.key),
                                Some(&o.value),
                                "{} said succeeded up to {rev}",
                                MEMBERS[r]
                            );
                        }
                    }
                    waits_checked += 1;
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    rt.block_on(holder).unwrap();
    for t in &world.targets {
        t.faults.store(false, Ordering::Relaxed);
    }
    let write_time = started.elapsed();

    // Convergence.
    let quiet = Instant::now();
    let deadline = quiet + Duration::from_secs(120);
    loop {
        let desired = world.desired();
        let converged = world.all_done()
            && world.targets.iter().all(|t| *t.state.lock() == desired)
            && running.health.iter().all(|h| {
                h.latest()
                    .is_some_and(|r| r.level == reconciler::HealthLevel::Ok)
            });
        if converged {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never converged: done {}, targets equal {:?}, health {:?}",
            world.all_done(),
            world
                .targets
                .iter()
                .map(|t| *t.state.lock() == desired)
                .collect::<Vec<_>>(),
            running
                .health
                .iter()
                .map(|h| h.latest().map(|r| r.level))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
        for r in &running.recs {
            drop(r.trigger_full_reconciliation());
        }
    }
    let converge = quiet.elapsed();
    for (t, m) in world.targets.iter().zip(MEMBERS) {
        assert_eq!(
            t.overlaps.load(Ordering::SeqCst),
            0,
            "{m}: two operations on one key at once"
        );
        let max = t.max_running.load(Ordering::SeqCst);
        assert!(
            max <= CONCURRENCY,
            "{m}: {max} operations in flight, concurrency {CONCURRENCY}"
        );
    }
    let sum = |f: fn(&Target) -> &AtomicU64| -> u64 {
        world
            .targets
            .iter()
            .map(|t| f(t).load(Ordering::Relaxed))
            .sum()
    };
    eprintln!(
        "reconciler stress: {} reconcilers, {KEYS} keys, {write_time:.1?} of writes: {} commits, {} operations, {} failures, {} panics, {} hangs cut by the timeout, {restarts} restarts, {waits_checked} waits checked; converged {converge:.1?} after the faults stopped",
        MEMBERS.len(),
        commits.load(Ordering::Relaxed),
        sum(|t| &t.ops),
        sum(|t| &t.failures),
        sum(|t| &t.panics),
        sum(|t| &t.hangs),
    );
    rt.block_on(running.lc.stop());
}

//! Fault soak: many operations on many objects while operations fail at
//! random (10 %), some panic, some are slow; writers insert, update and
//! soft-delete concurrently; full reconciliations are triggered at random;
//! the target drifts. At quiescence every object must be done, the target
//! must equal the desired state, nothing deleted may remain, no retry may
//! be pending and the graveyard must be empty.
//!
//! Short by default (CI). The long run: `cargo xtask soak`, which sets
//! `SOAK_OBJECTS=100000 SOAK_OPS=2000000`.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{env, memory_mb};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reconciler::{
    HealthReporter, Lifecycle, OpError, Operations, Params, Pruned, Reconciler, Status, StatusKind,
};
use statedb::{Db, Index, Objects, ReadTxn, Table};

#[derive(Clone, Debug)]
struct Obj {
    id: u64,
    value: u64,
    status: Status,
}

#[derive(Default)]
struct Target {
    state: Mutex<BTreeMap<u64, u64>>,
    rng: Mutex<Option<StdRng>>,
    faults: AtomicBool,
    attempts: AtomicU64,
    failures: AtomicU64,
    panics: AtomicU64,
}

impl Target {
    /// 10 % errors, 0.5 % panics, 0.5 % slow, while faults are on.
    async fn fault(&self) -> Result<(), OpError> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        if !self.faults.load(Ordering::Relaxed) {
            return Ok(());
        }
        let roll: u32 = self
            .rng
            .lock()
            .get_or_insert_with(|| StdRng::seed_from_u64(7))
            .random_range(0..1000);
        if roll < 5 {
            self.panics.fetch_add(1, Ordering::Relaxed);
            panic!("injected panic");
        }
        if roll < 10 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if roll < 110 {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err("injected failure".into());
        }
        Ok(())
    }
}

impl Operations<Obj> for Target {
    async fn update(
        &self,
        _: &ReadTxn,
        _: statedb::Revision,
        o: &mut Obj,
        changed: Option<&mut bool>,
    ) -> Result<(), OpError> {
        self.fault().await?;
        let old = self.state.lock().insert(o.id, o.value);
        if let Some(c) = changed {
            *c = old != Some(o.value);
        }
        Ok(())
    }
    async fn delete(&self, _: &ReadTxn, _: statedb::Revision, o: &Obj) -> Result<(), OpError> {
        self.fault().await?;
        self.state.lock().remove(&o.id);
        Ok(())
    }
    async fn prune(&self, _: &ReadTxn, objs: Objects<Obj>) -> Result<Pruned, OpError> {
        self.fault().await?;
        let desired: std::collections::BTreeSet<u64> = objs.map(|(o, _)| o.id).collect();
        self.state.lock().retain(|k, _| desired.contains(k));
        Ok(Pruned::default())
    }
}

#[test]
fn soak_converges_under_faults() {
    // Injected panics are expected: keep their reports out of the log.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"injected panic") {
            default_hook(info);
        }
    }));
    let objects = env("SOAK_OBJECTS", 2_000);
    let ops = env("SOAK_OPS", 20_000);
    let by_id: Index<Obj, u64> = Index::unique("id", |o: &Obj, k| k.push(&o.id));
    let status = reconciler::new_status_index(|o: &Obj| &o.status);
    let table = Table::builder("soak", &by_id)
        .index(&status)
        .build()
        .unwrap();
    let db = Db::new();
    db.register_table(&table).unwrap();
    let target = Arc::new(Target::default());
    target.faults.store(true, Ordering::Relaxed);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = Reconciler::builder(table.clone(), target.clone())
        .status(|o| &o.status, |o, s| o.status = s)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(20))
        .full_reconciliation_interval(Duration::from_millis(500));
    let lc = Lifecycle::new();
    let health = Arc::new(HealthReporter::new());
    let rec = cfg
        .build(Params::new(db.clone(), "soak", lc.clone(), health.clone()))
        .unwrap();
    rt.block_on(lc.start()).unwrap();

    let started = Instant::now();
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let (db, table, target, rec) = (db.clone(), table.clone(), target.clone(), rec.clone());
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(100 + w);
                let mut done = 0;
                while done < ops / 2 {
                    let mut txn = db.write_txn(&[&table]).unwrap();
                    for _ in 0..100 {
                        let id = rng.random_range(0..objects);
                        let o = if rng.random_bool(0.15) {
                            Obj {
                                id,
                                value: 0,
                                status: Status::pending_delete(),
                            }
                        } else {
                            Obj {
                                id,
                                value: rng.random(),
                                status: Status::pending(),
                            }
                        };
                        table.insert(&mut txn, o).unwrap();
                        done += 1;
                    }
                    txn.commit();
                    // Drift: the target changed from outside.
                    if rng.random_bool(0.05) {
                        let mut s = target.state.lock();
                        s.insert(objects + rng.random_range(0..100), 1);
                        if let Some((&k, _)) = s.iter().next() {
                            s.insert(k, u64::MAX);
                        }
                    }
                    if rng.random_bool(0.02) {
                        rec.trigger_full_reconciliation();
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let write_time = started.elapsed();

    // Quiescence: everything done (retries converge despite faults) ...
    reconciler::wait_for_reconciliation_blocking(&db, &table, &status, Duration::from_secs(300))
        .unwrap();
    // ... then repair the drift with a fault-free full round.
    target.faults.store(false, Ordering::Relaxed);
    rec.trigger_full_reconciliation();
    let deadline = Instant::now() + Duration::from_secs(60);
    let desired = || -> BTreeMap<u64, u64> {
        table
            .all(&db.read_txn())
            .unwrap()
            .map(|(o, _)| (o.id, o.value))
            .collect()
    };
    while *target.state.lock() != desired() {
        assert!(Instant::now() < deadline, "target never converged");
        std::thread::sleep(Duration::from_millis(5));
        rec.trigger_full_reconciliation();
    }
    let txn = db.read_txn();
    for (o, _) in table.all(&txn).unwrap() {
        assert_eq!(o.status.kind, StatusKind::Done, "object {} not done", o.id);
        assert!(
            !o.status.delete,
            "deleted object {} left in the table",
            o.id
        );
    }
    while !health.is_ok() || table.graveyard_len(&db.read_txn()).unwrap() != 0 {
        assert!(
            Instant::now() < deadline,
            "retries or graveyard never drained: {:?}",
            health.latest()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    let attempts = target.attempts.load(Ordering::Relaxed);
    eprintln!(
        "soak: {objects} objects, {ops} writes in {write_time:?}; {attempts} operations ({:.0}/s), {} failures, {} panics, peak RSS {:.1} MB",
        attempts as f64 / elapsed.as_secs_f64(),
        target.failures.load(Ordering::Relaxed),
        target.panics.load(Ordering::Relaxed),
        memory_mb("VmHWM")
    );
    rt.block_on(lc.stop());
}

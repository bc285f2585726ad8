//! Model-based property test of the reconciler's promise: random inserts,
//! updates, soft and hard deletes, target faults switched on and off,
//! full rounds and restarts (a new reconciler on a new Db restored from
//! the desired state, over the same target). Once faults stop and the
//! reconciler settles, the target equals the desired set exactly, every
//! status is done, and the target never saw two operations on one key at
//! once. Virtual time (a paused tokio runtime).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use proptest::prelude::*;
use reconciler::{
    HealthReporter, Lifecycle, OpError, Operations, Params, Pruned, Reconciler, Status, StatusKind,
};
use statedb::{Db, Index, Objects, ReadTxn, Revision, Table};

#[derive(Clone, Debug)]
struct Obj {
    key: u8,
    value: u8,
    status: Status,
}

/// The target: key -> value, with faults and an overlap detector.
#[derive(Default)]
struct ModelTarget {
    state: Mutex<BTreeMap<u8, u8>>,
    /// Keys whose updates and deletes fail.
    failing: Mutex<BTreeSet<u8>>,
    fail_prune: AtomicBool,
    in_flight: Mutex<BTreeSet<u8>>,
    overlap: AtomicBool,
}

/// Marks a key in flight for as long as an operation on it runs (also
/// when the operation is dropped at shutdown).
struct InFlight<'a>(&'a ModelTarget, u8);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.lock().remove(&self.1);
    }
}

impl ModelTarget {
    async fn enter(&self, key: u8, value: u8) -> Result<InFlight<'_>, OpError> {
        if !self.in_flight.lock().insert(key) {
            self.overlap.store(true, Ordering::SeqCst);
        }
        let guard = InFlight(self, key);
        let delay = (u64::from(key) * 7 + u64::from(value) * 13) % 20;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if self.failing.lock().contains(&key) {
            return Err(format!("key {key} refused").into());
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
        if self.fail_prune.load(Ordering::SeqCst) {
            return Err("prune refused".into());
        }
        let want: BTreeSet<u8> = want.map(|(o, _)| o.key).collect();
        self.state.lock().retain(|k, _| want.contains(k));
        Ok(Pruned::default())
    }
}

#[derive(Clone, Debug)]
enum Step {
    Upsert(u8, u8),
    SoftDelete(u8),
    HardDelete(u8),
    /// Keys (a bit mask over 0..8) whose operations fail from now on.
    Faults(u8),
    PruneFault(bool),
    Advance(u16),
    TriggerFull,
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..8, any::<u8>()).prop_map(|(k, v)| Step::Upsert(k, v)),
        2 => (0u8..8).prop_map(Step::SoftDelete),
        2 => (0u8..8).prop_map(Step::HardDelete),
        2 => any::<u8>().prop_map(Step::Faults),
        1 => any::<bool>().prop_map(Step::PruneFault),
        4 => (0u16..300).prop_map(Step::Advance),
        1 => Just(Step::TriggerFull),
        1 => Just(Step::Restart),
    ]
}

/// One incarnation of the application: a Db, its table and a reconciler.
struct App {
    db: Db,
    table: Table<Obj>,
    by_key: Index<Obj, u8>,
    lc: Lifecycle,
    rec: Reconciler<Obj>,
}

/// Starts an application whose table is restored from `desired` before
/// its initializer is done (as an app restores from its store).
async fn start(target: &Arc<ModelTarget>, desired: &BTreeMap<u8, u8>, concurrency: usize) -> App {
    let by_key: Index<Obj, u8> = Index::unique("key", |o: &Obj, k| k.push(&o.key));
    let table = Table::new("objs", &by_key).unwrap();
    let db = Db::new();
    db.register_table(&table).unwrap();
    let mut w = db.write_txn(&[&table]).unwrap();
    let init = table.register_initializer(&mut w, "restore").unwrap();
    w.commit();
    let lc = Lifecycle::new();
    let params = Params::new(
        db.clone(),
        "model",
        lc.clone(),
        Arc::new(HealthReporter::new()),
    );
    let rec = Reconciler::builder(table.clone(), target.clone())
        .status(|o: &Obj| &o.status, |o: &mut Obj, s| o.status = s)
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(200))
        .incremental_round_size(3)
        .concurrency(concurrency)
        .shutdown_drain(Duration::from_millis(50))
        .build(params)
        .unwrap();
    lc.start().await.unwrap();
    let mut w = db.write_txn(&[&table]).unwrap();
    for (&key, &value) in desired {
        table
            .insert(
                &mut w,
                Obj {
                    key,
                    value,
                    status: Status::pending(),
                },
            )
            .unwrap();
    }
    init.done(&mut w).unwrap();
    w.commit();
    App {
        db,
        table,
        by_key,
        lc,
        rec,
    }
}

impl App {
    fn get(&self, key: u8) -> Option<Obj> {
        self.table
            .get(&self.db.read_txn(), self.by_key.query(&key))
            .unwrap()
            .map(|(o, _)| (*o).clone())
    }

    /// Every row done (none pending, in error or being deleted).
    fn all_done(&self) -> bool {
        self.table
            .all(&self.db.read_txn())
            .unwrap()
            .all(|(o, _)| o.status.kind == StatusKind::Done && !o.status.delete)
    }
}

async fn run(steps: Vec<Step>, concurrency: usize) -> Result<(), TestCaseError> {
    let target = Arc::new(ModelTarget::default());
    let mut desired: BTreeMap<u8, u8> = BTreeMap::new();
    let mut app = start(&target, &desired, concurrency).await;
    // Leftovers (objects the target holds that no row asks for) can only
    // come from a restart, which loses the retry queue; the prune at
    // initialization removes them unless it fails, and a failed prune
    // waits for the next full round. Without both, hard and soft deletes
    // alone must bring the target to the desired set.
    let (mut restarted, mut prune_faulted) = (false, false);
    for s in steps {
        match s {
            Step::Upsert(key, value) => {
                let mut w = app.db.write_txn(&[&app.table]).unwrap();
                let obj = Obj {
                    key,
                    value,
                    status: Status::pending(),
                };
                app.table.insert(&mut w, obj).unwrap();
                w.commit();
                desired.insert(key, value);
            }
            Step::SoftDelete(key) => {
                if let Some(mut o) = app.get(key) {
                    o.status = Status::pending_delete();
                    let mut w = app.db.write_txn(&[&app.table]).unwrap();
                    app.table.insert(&mut w, o).unwrap();
                    w.commit();
                    desired.remove(&key);
                }
            }
            Step::HardDelete(key) => {
                let mut w = app.db.write_txn(&[&app.table]).unwrap();
                let probe = Obj {
                    key,
                    value: 0,
                    status: Status::pending(),
                };
                app.table.delete(&mut w, &probe).unwrap();
                w.commit();
                desired.remove(&key);
            }
            Step::Faults(mask) => {
                *target.failing.lock() = (0..8).filter(|k| mask & (1 << k) != 0).collect();
            }
            Step::PruneFault(on) => {
                prune_faulted |= on;
                target.fail_prune.store(on, Ordering::SeqCst);
            }
            Step::Advance(ms) => tokio::time::sleep(Duration::from_millis(u64::from(ms))).await,
            Step::TriggerFull => drop(app.rec.trigger_full_reconciliation()),
            Step::Restart => {
                restarted = true;
                app.lc.stop().await;
                app = start(&target, &desired, concurrency).await;
            }
        }
    }
    target.failing.lock().clear();
    target.fail_prune.store(false, Ordering::SeqCst);
    if restarted && prune_faulted {
        drop(app.rec.trigger_full_reconciliation());
    }
    // Settle: the retry backoff is at most 200 ms; a minute of virtual
    // time is ample.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let converged = *target.state.lock() == desired && app.all_done();
        if converged {
            break;
        }
        prop_assert!(
            tokio::time::Instant::now() < deadline,
            "did not converge: target {:?}, desired {:?}",
            target.state.lock(),
            desired
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Rows match the desired values too.
    for (&key, &value) in &desired {
        prop_assert_eq!(app.get(key).map(|o| o.value), Some(value));
    }
    app.lc.stop().await;
    prop_assert!(
        !target.overlap.load(Ordering::SeqCst),
        "two operations on one key at once"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn target_converges_to_the_desired_set(
        steps in proptest::collection::vec(step(), 1..40),
        concurrency in prop_oneof![Just(1usize), Just(3usize)],
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(steps, concurrency))?;
    }
}

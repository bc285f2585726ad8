//! Memory stays bounded when a consumer stalls:
//!
//! - a change iterator that stops advancing while writers churn: the
//!   graveyard holds at most one entry per primary key, so live objects
//!   plus graveyard never exceed the key space, however many writes pass;
//! - a target that is down for a long (virtual) time while writers churn:
//!   the retry queue holds at most one entry per object, and the status
//!   writes replace objects in place.
//!
//! Both check the structural bound at every checkpoint and print resident
//! memory at each, so a long run shows it level off. The outage test
//! writes a twentieth of `BOUNDED_WRITES`, one transaction of 100 per
//! virtual second, so its long run covers hours of outage. Short by default
//! (CI); `cargo xtask soak` runs them long (`BOUNDED_KEYS=100000`,
//! `BOUNDED_WRITES=10000000`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{env, memory_mb};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reconciler::{
    HealthReporter, InMemoryMetrics, Lifecycle, OpError, Operations, Params, Pruned, Reconciler,
    Status,
};
use statedb::{Db, Index, Objects, ReadTxn, Table};

#[derive(Clone, Debug)]
struct Obj {
    id: u64,
    /// Makes each write a new version; never read.
    #[allow(dead_code)]
    value: u64,
    status: Status,
}

fn table() -> (Db, Table<Obj>, Index<Obj, u64>) {
    let by_id: Index<Obj, u64> = Index::unique("id", |o: &Obj, k| k.push(&o.id));
    let status = reconciler::new_status_index(|o: &Obj| &o.status);
    let table = Table::builder("objects", &by_id)
        .index(&status)
        .build()
        .unwrap();
    let db = Db::new();
    db.register_table(&table).unwrap();
    (db, table, by_id)
}

#[test]
fn stalled_change_iterator_keeps_graveyard_bounded() {
    let keys = env("BOUNDED_KEYS", 2_000);
    let writes = env("BOUNDED_WRITES", 200_000);
    let (db, table, _) = table();
    let mut w = db.write_txn(&[&table]).unwrap();
    let mut stalled = table.changes(&mut w).unwrap();
    w.commit();
    let mut rng = StdRng::seed_from_u64(1);
    let mut done = 0;
    let mut checkpoints = Vec::new();
    let mut max_graveyard = 0;
    while done < writes {
        let mut w = db.write_txn(&[&table]).unwrap();
        for _ in 0..100 {
            let id = rng.random_range(0..keys);
            let obj = Obj {
                id,
                value: done,
                status: Status::pending(),
            };
            if rng.random_bool(0.5) {
                table.insert(&mut w, obj).unwrap();
            } else {
                table.delete(&mut w, &obj).unwrap();
            }
            done += 1;
        }
        w.commit();
        if done % (writes / 10).max(100) < 100 {
            let txn = db.read_txn();
            let live = table.num_objects(&txn).unwrap() as u64;
            let dead = table.graveyard_len(&txn).unwrap() as u64;
            assert!(
                live + dead <= keys,
                "{live} live + {dead} graveyard entries exceed {keys} keys"
            );
            max_graveyard = max_graveyard.max(dead);
            checkpoints.push(format!("{done}: {dead} dead, {:.1} MB", memory_mb("VmRSS")));
        }
    }
    // With everything deleted at random, the graveyard holds a real share
    // of the keys: the bound is not met by an empty graveyard.
    assert!(
        max_graveyard > keys / 10,
        "graveyard peaked at {max_graveyard}"
    );
    eprintln!(
        "stalled iterator: {keys} keys, {writes} writes; graveyard and RSS at checkpoints: {}",
        checkpoints.join("; ")
    );
    // The iterator catches up: every delete is reported once, the
    // graveyard is released.
    let txn = db.read_txn();
    let deletes = stalled.next(&txn).unwrap().0.filter(|c| c.deleted).count() as u64;
    assert!(deletes <= keys);
    assert_eq!(table.graveyard_len(&db.read_txn()).unwrap(), 0);
}

/// A target that is down: every operation fails until it comes back.
#[derive(Default)]
struct DownTarget {
    up: AtomicBool,
    attempts: AtomicU64,
}

impl Operations<Obj> for DownTarget {
    async fn update(
        &self,
        _: &ReadTxn,
        _: statedb::Revision,
        _: &mut Obj,
        _: Option<&mut bool>,
    ) -> Result<(), OpError> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        if self.up.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("target down".into())
        }
    }
    async fn delete(&self, _: &ReadTxn, _: statedb::Revision, _: &Obj) -> Result<(), OpError> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        if self.up.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("target down".into())
        }
    }
    async fn prune(&self, _: &ReadTxn, _: Objects<Obj>) -> Result<Pruned, OpError> {
        Ok(Pruned::default())
    }
}

#[tokio::test(start_paused = true)]
async fn long_target_outage_keeps_retry_queue_bounded() {
    let keys = env("BOUNDED_KEYS", 2_000);
    let writes = env("BOUNDED_WRITES", 200_000) / 20;
    let (db, table, _) = table();
    let status = reconciler::new_status_index(|o: &Obj| &o.status);
    let target = Arc::new(DownTarget::default());
    let cfg = Reconciler::builder(table.clone(), target.clone())
        .status(|o| &o.status, |o, s| o.status = s)
        .retry_backoff(Duration::from_millis(10), Duration::from_secs(60))
        // Every object fails and is queued for retry: the bound under test.
        // (With the breaker on, the pause keeps most of them from being
        // tried at all.)
        .circuit_breaker(0, Duration::ZERO);
    let metrics = Arc::new(InMemoryMetrics::new());
    let health = Arc::new(HealthReporter::new());
    let lc = Lifecycle::new();
    let params = Params::new(db.clone(), "outage", lc.clone(), health.clone())
        .with_default_metrics(metrics.clone());
    cfg.register(params).unwrap();
    lc.start().await.unwrap();

    let mut rng = StdRng::seed_from_u64(2);
    let mut done = 0;
    let mut checkpoints = Vec::new();
    let mut max_queue = 0;
    let started = tokio::time::Instant::now();
    while done < writes {
        let mut w = db.write_txn(&[&table]).unwrap();
        for _ in 0..100 {
            let id = rng.random_range(0..keys);
            let status = if rng.random_bool(0.2) {
                Status::pending_delete()
            } else {
                Status::pending()
            };
            table
                .insert(
                    &mut w,
                    Obj {
                        id,
                        value: done,
                        status,
                    },
                )
                .unwrap();
            done += 1;
        }
        w.commit();
        // Virtual time: a long outage costs no wall-clock time.
        tokio::time::sleep(Duration::from_secs(1)).await;
        if done % (writes / 10).max(100) < 100 {
            let queue = metrics.module("outage").retry_queue_size;
            let txn = db.read_txn();
            let (live, dead) = (
                table.num_objects(&txn).unwrap() as u64,
                table.graveyard_len(&txn).unwrap() as u64,
            );
            assert!(queue <= keys, "retry queue {queue} exceeds {keys} objects");
            assert!(
                live + dead <= keys,
                "{live} live + {dead} dead exceed {keys}"
            );
            assert!(!health.is_ok(), "a down target must degrade health");
            max_queue = max_queue.max(queue);
            checkpoints.push(format!(
                "{done}: queue {queue}, {:.1} MB",
                memory_mb("VmRSS")
            ));
        }
    }
    assert!(max_queue > keys / 2, "retry queue peaked at {max_queue}");
    let outage = started.elapsed();
    eprintln!(
        "outage: {keys} objects, {writes} writes over {outage:?} of virtual time, {} failed attempts; retry queue and RSS: {}",
        target.attempts.load(Ordering::Relaxed),
        checkpoints.join("; ")
    );
    // The target recovers: everything converges and the queue drains.
    target.up.store(true, Ordering::Relaxed);
    tokio::time::timeout(
        Duration::from_secs(600),
        reconciler::wait_for_reconciliation(&db, &table, &status),
    )
    .await
    .expect("no convergence after the outage")
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while metrics.module("outage").retry_queue_size != 0 || !health.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "retry queue never drained"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    lc.stop().await;
}

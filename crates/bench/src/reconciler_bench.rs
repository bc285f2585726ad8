//! reconciler_* rows: each runs in a child process so that its peak RSS
//! is its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reconciler::{
    HealthReporter, Lifecycle, OpError, Operations, Params, Pruned, Reconciler, Status, StatusKind,
};
use statedb::{Db, Index, Objects, ReadTxn, Table};

use crate::alloc;
use crate::harness::Row;

#[derive(Clone)]
struct Obj {
    id: u64,
    status: Status,
}

struct Instant0;

impl Operations<Obj> for Instant0 {
    async fn update(
        &self,
        _: &ReadTxn,
        _: statedb::Revision,
        _: &mut Obj,
        changed: Option<&mut bool>,
    ) -> Result<(), OpError> {
        if let Some(c) = changed {
            *c = true;
        }
        Ok(())
    }
    async fn delete(&self, _: &ReadTxn, _: statedb::Revision, _: &Obj) -> Result<(), OpError> {
        Ok(())
    }
    async fn prune(&self, _: &ReadTxn, _: Objects<Obj>) -> Result<Pruned, OpError> {
        Ok(Pruned::default())
    }
}

/// Runs the workload once; returns (objects/sec, the Db and table kept
/// alive by the caller for the live-bytes reading).
fn run_once(
    n: u64,
    status_index: bool,
) -> (f64, Db, Table<Obj>, Lifecycle, tokio::runtime::Runtime) {
    let id: Index<Obj, u64> = Index::unique("id", |o: &Obj, k| k.push(&o.id));
    let mut b = Table::builder("objects", &id);
    if status_index {
        b = b.index(&reconciler::new_status_index(|o: &Obj| &o.status));
    }
    let table = b.build().expect("table");
    let db = Db::new();
    db.register_table(&table).expect("register");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cfg = Reconciler::builder(table.clone(), Instant0)
        .status(|o| &o.status, |o, s| o.status = s)
        .full_reconciliation_interval(Duration::from_secs(3600))
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(10))
        .incremental_round_size(1000);
    let lc = Lifecycle::new();
    let params = Params::new(
        db.clone(),
        "bench",
        lc.clone(),
        Arc::new(HealthReporter::new()),
    );
    cfg.register(params).expect("config");
    rt.block_on(lc.start()).expect("start");
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let mut w = db.write_txn(&[&table]).expect("txn");
        for _ in 0..1000.min(n - i) {
            table
                .insert(
                    &mut w,
                    Obj {
                        id: i,
                        status: Status::pending(),
                    },
                )
                .expect("insert");
            i += 1;
        }
        w.commit();
    }
    let last = n - 1;
    loop {
        let (o, watch) = table
            .get_watch(&db.read_txn(), id.query(&last))
            .expect("get");
        if o.is_some_and(|(o, _)| o.status.kind == StatusKind::Done) {
            break;
        }
        watch.wait_timeout(Duration::from_secs(60));
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    (rate, db, table, lc, rt)
}

/// A target whose update awaits 100 µs of virtual I/O; with `slow`, one
/// object in a hundred waits 400 ms instead.
struct Io100us {
    slow: bool,
}

impl Operations<Obj> for Io100us {
    async fn update(
        &self,
        _: &ReadTxn,
        _: statedb::Revision,
        o: &mut Obj,
        _: Option<&mut bool>,
    ) -> Result<(), OpError> {
        let wait = if self.slow && o.id % 100 == 50 {
            Duration::from_millis(400)
        } else {
            Duration::from_micros(100)
        };
        tokio::time::sleep(wait).await;
        Ok(())
    }
    async fn delete(&self, _: &ReadTxn, _: statedb::Revision, _: &Obj) -> Result<(), OpError> {
        Ok(())
    }
    async fn prune(&self, _: &ReadTxn, _: Objects<Obj>) -> Result<Pruned, OpError> {
        Ok(Pruned::default())
    }
}

/// The reconciler_100k_io_* rows: `n` updates that each await 100 µs of
/// I/O, `concurrency` at a time, on a paused tokio clock (virtual time:
/// the runtime jumps to the next timer when every task waits). Returns
/// (objects per virtual second, wall-clock ns per object).
///
/// tokio's timers have a resolution of 1 ms, so each "100 µs" wait takes
/// 1 ms of virtual time: the virtual rate is at most 1,000/s per
/// operation in flight.
///
/// `slow`: one update in a hundred takes 400 ms. Those hold 400 slot-
/// seconds against the others' 99 (at 1 ms each), so at concurrency 64
/// the best a continuous scheduler can do is 100,000 / (499 / 64) ≈
/// 12,800 objects per virtual second; a scheduler that waits for each
/// round's slowest operation gets a few hundred.
fn run_io(n: u64, concurrency: usize, slow: bool) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let id: Index<Obj, u64> = Index::unique("id", |o: &Obj, k| k.push(&o.id));
        let table = Table::new("objects", &id).expect("table");
        let db = Db::new();
        db.register_table(&table).expect("register");
        let lc = Lifecycle::new();
        let params = Params::new(
            db.clone(),
            "bench-io",
            lc.clone(),
            Arc::new(HealthReporter::new()),
        );
        let reconciler = Reconciler::builder(table.clone(), Io100us { slow })
            .status(|o| &o.status, |o, s| o.status = s)
            .incremental_round_size(1000)
            .concurrency(concurrency)
            .build(params)
            .expect("config");
        lc.start().await.expect("start");
        let (virtual_start, wall_start) = (tokio::time::Instant::now(), Instant::now());
        let mut i = 0;
        while i < n {
            let mut w = db.write_txn(&[&table]).expect("txn");
            for _ in 0..1000.min(n - i) {
                let obj = Obj {
                    id: i,
                    status: Status::pending(),
                };
                table.insert(&mut w, obj).expect("insert");
                i += 1;
            }
            w.commit();
        }
        // Every object, not only the last: a slow one may finish after it.
        let revision = table.revision(&db.read_txn()).expect("revision");
        reconciler
            .wait_until_succeeded(revision)
            .await
            .expect("reconciled");
        let virtual_secs = virtual_start.elapsed().as_secs_f64();
        let wall_ns = wall_start.elapsed().as_nanos() as f64 / n as f64;
        lc.stop().await;
        (n as f64 / virtual_secs, wall_ns)
    })
}

/// The child's work: one throughput run, then one run tracking live heap
/// bytes; prints the row as JSON. The `_io_` rows report objects per
/// virtual second and wall-clock ns per object (see [`run_io`]).
pub fn child(name: &str, n: u64) -> Row {
    if let Some(c) = name.strip_prefix("reconciler_100k_io_c") {
        let (c, slow) = match c.strip_suffix("_slow1pct") {
            Some(c) => (c, true),
            None => (c, false),
        };
        let concurrency = c.parse().expect("concurrency in the row name");
        let (rate, wall_ns) = run_io(n, concurrency, slow);
        return Row {
            name: name.to_string(),
            objects_per_sec: rate,
            ns_per_object: wall_ns,
            peak_rss_bytes: alloc::peak_rss_bytes(),
            ..Row::default()
        };
    }
    let status_index = name.contains("status_index");
    let (rate, db, table, lc, rt) = run_once(n, status_index);
    rt.block_on(lc.stop());
    drop((db, table, rt));
    alloc::track_live();
    let (_, db, table, lc, rt) = run_once(n, status_index);
    rt.block_on(lc.stop());
    drop(rt);
    let live = alloc::live_bytes();
    let row = Row {
        name: name.to_string(),
        objects_per_sec: rate,
        ns_per_object: 1e9 / rate,
        peak_rss_bytes: alloc::peak_rss_bytes(),
        live_bytes_after: Some(live),
        ..Row::default()
    };
    drop((db, table));
    row
}

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

/// The child's work: one throughput run, then one run tracking live heap
/// bytes; prints the row as JSON.
pub fn child(name: &str, n: u64) -> Row {
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

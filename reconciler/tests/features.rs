//! Several reconcilers per object (status sets), the prune interval and
//! what a prune reports; on a paused tokio clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use reconciler::{
    HealthReporter, Lifecycle, OpError, Operations, Params, Pruned, Reconciler, Status, StatusKind,
    StatusSet,
};
use statedb::{Db, Index, Objects, ReadTxn, Revision, Table};

#[derive(Clone, Debug)]
struct Route {
    id: u64,
    value: u32,
    statuses: StatusSet,
}

/// A map target; keys in `fail` fail their updates and deletes.
#[derive(Default)]
struct MapTarget {
    state: Mutex<BTreeMap<u64, u32>>,
    fail: Mutex<BTreeSet<u64>>,
    updates: AtomicUsize,
    prunes: AtomicUsize,
}

impl Operations<Route> for MapTarget {
    async fn update(
        &self,
        _: &ReadTxn,
        _: Revision,
        r: &mut Route,
        _: Option<&mut bool>,
    ) -> Result<(), OpError> {
        self.updates.fetch_add(1, Ordering::SeqCst);
        if self.fail.lock().contains(&r.id) {
            return Err(format!("cannot write {}", r.id).into());
        }
        self.state.lock().insert(r.id, r.value);
        Ok(())
    }
    async fn delete(&self, _: &ReadTxn, _: Revision, r: &Route) -> Result<(), OpError> {
        if self.fail.lock().contains(&r.id) {
            return Err(format!("cannot delete {}", r.id).into());
        }
        self.state.lock().remove(&r.id);
        Ok(())
    }
    async fn prune(&self, _: &ReadTxn, want: Objects<Route>) -> Result<Pruned, OpError> {
        self.prunes.fetch_add(1, Ordering::SeqCst);
        let want: BTreeSet<u64> = want.map(|(r, _)| r.id).collect();
        let mut state = self.state.lock();
        let gone: Vec<String> = state
            .keys()
            .filter(|k| !want.contains(k))
            .map(|k| format!("route {k}"))
            .collect();
        state.retain(|k, _| want.contains(k));
        Ok(Pruned::removed(gone))
    }
}

struct Setup {
    db: Db,
    table: Table<Route>,
    by_id: Index<Route, u64>,
    status: Index<Route, StatusKind>,
    lc: Lifecycle,
}

/// A table whose status index waits for every one of `members`.
fn setup(members: &[&str]) -> Setup {
    let by_id: Index<Route, u64> = Index::unique("id", |r: &Route, k| k.push(&r.id));
    let status = reconciler::new_status_set_index(|r: &Route| &r.statuses, members.to_vec());
    let table = Table::builder("routes", &by_id)
        .index(&status)
        .build()
        .unwrap();
    let db = Db::new();
    db.register_table(&table).unwrap();
    Setup {
        db,
        table,
        by_id,
        status,
        lc: Lifecycle::new(),
    }
}

/// A reconciler of `s.table` named `name`, keeping its status in the
/// object's status set under that name.
fn reconciler_for(s: &Setup, name: &'static str, target: Arc<MapTarget>) -> Reconciler<Route> {
    let params = Params::new(
        s.db.clone(),
        name,
        s.lc.clone(),
        Arc::new(HealthReporter::new()),
    );
    Reconciler::builder(s.table.clone(), target)
        .status(
            move |r: &Route| r.statuses.get(name),
            move |r: &mut Route, st| r.statuses = r.statuses.set(name, st),
        )
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(100))
        .build(params)
        .unwrap()
}

impl Setup {
    fn write(&self, f: impl FnOnce(&mut statedb::WriteTxn, &Table<Route>)) -> Revision {
        let mut w = self.db.write_txn(&[&self.table]).unwrap();
        f(&mut w, &self.table);
        self.table.revision(&w.commit()).unwrap()
    }
    fn get(&self, id: u64) -> Option<Route> {
        self.table
            .get(&self.db.read_txn(), self.by_id.query(&id))
            .unwrap()
            .map(|(r, _)| (*r).clone())
    }
    async fn settled(&self) {
        tokio::time::timeout(
            Duration::from_secs(60),
            reconciler::wait_for_reconciliation(&self.db, &self.table, &self.status),
        )
        .await
        .expect("did not settle")
        .unwrap();
    }
    async fn until(&self, what: &str, cond: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !cond(self) {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn route(id: u64, value: u32) -> Route {
    Route {
        id,
        value,
        statuses: StatusSet::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn two_reconcilers_share_an_object_each_with_its_own_status() {
    let s = setup(&["kernel", "bpf"]);
    let kernel = Arc::new(MapTarget::default());
    let bpf = Arc::new(MapTarget::default());
    let _k = reconciler_for(&s, "kernel", kernel.clone());
    let _b = reconciler_for(&s, "bpf", bpf.clone());
    s.lc.start().await.unwrap();

    s.write(|w, t| {
        for id in 1..=4 {
            t.insert(w, route(id, 1)).unwrap();
        }
    });
    s.settled().await;
    let want: BTreeMap<u64, u32> = (1..=4).map(|id| (id, 1)).collect();
    assert_eq!(*kernel.state.lock(), want);
    assert_eq!(*bpf.state.lock(), want);
    let r = s.get(1).unwrap();
    assert_eq!(r.statuses.len(), 2);
    assert_eq!(r.statuses.get("kernel").kind, StatusKind::Done);
    assert_eq!(r.statuses.get("bpf").kind, StatusKind::Done);

    // A new version of 2 that only the bpf target refuses: the kernel
    // entry is done, the bpf entry in error, the combined kind error.
    bpf.fail.lock().insert(2);
    s.write(|w, t| {
        let mut r = route(2, 2);
        r.statuses = s.get(2).unwrap().statuses.pending();
        t.insert(w, r).unwrap();
    });
    s.until("bpf failed on 2", |s| {
        s.get(2).unwrap().statuses.get("bpf").kind == StatusKind::Error
            && s.get(2).unwrap().statuses.get("kernel").kind == StatusKind::Done
    })
    .await;
    assert_eq!(kernel.state.lock()[&2], 2);
    assert_eq!(bpf.state.lock()[&2], 1);
    let in_error: Vec<u64> = s
        .table
        .list(&s.db.read_txn(), s.status.query(&StatusKind::Error))
        .unwrap()
        .map(|(r, _)| r.id)
        .collect();
    assert_eq!(in_error, [2]);
    bpf.fail.lock().clear();
    s.settled().await;
    assert_eq!(bpf.state.lock()[&2], 2);

    // A hard delete reaches both targets; a soft delete too, and the row
    // goes once both have deleted it.
    s.write(|w, t| {
        t.delete(w, &route(1, 0)).unwrap();
        let mut r = s.get(3).unwrap();
        r.statuses = r.statuses.pending_delete();
        t.insert(w, r).unwrap();
    });
    s.until("1 and 3 gone everywhere", |s| {
        s.get(3).is_none()
            && !kernel.state.lock().contains_key(&1)
            && !bpf.state.lock().contains_key(&1)
            && !kernel.state.lock().contains_key(&3)
            && !bpf.state.lock().contains_key(&3)
    })
    .await;
    s.settled().await;
    let left: Vec<u64> = kernel.state.lock().keys().copied().collect();
    assert_eq!(left, [2, 4]);
    assert_eq!(*kernel.state.lock(), *bpf.state.lock());
    s.lc.stop().await;
}

#[tokio::test(start_paused = true)]
async fn prune_interval_prunes_without_updating_everything() {
    let s = setup(&["k"]);
    let target = Arc::new(MapTarget::default());
    let params = Params::new(
        s.db.clone(),
        "pruner",
        s.lc.clone(),
        Arc::new(HealthReporter::new()),
    );
    Reconciler::builder(s.table.clone(), target.clone())
        .status(
            |r: &Route| r.statuses.get("k"),
            |r: &mut Route, st| r.statuses = r.statuses.set("k", st),
        )
        .prune_interval(Duration::from_secs(10))
        .register(params)
        .unwrap();
    s.lc.start().await.unwrap();
    s.write(|w, t| {
        t.insert(w, route(1, 1)).unwrap();
    });
    s.settled().await;
    s.until("first prune", |_| target.prunes.load(Ordering::SeqCst) == 1)
        .await;
    target.state.lock().insert(50, 5);
    tokio::time::sleep(Duration::from_secs(35)).await;
    let prunes = target.prunes.load(Ordering::SeqCst);
    assert!((4..=5).contains(&prunes), "pruned {prunes} times in 35 s");
    assert!(
        !target.state.lock().contains_key(&50),
        "leftover not pruned"
    );
    assert_eq!(
        target.updates.load(Ordering::SeqCst),
        1,
        "a prune is not a full round"
    );
    s.lc.stop().await;
}

/// Collects what the fmt layer writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_prune_logs_what_the_target_removed() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = setup(&["k"]);
    let target = Arc::new(MapTarget::default());
    target.state.lock().extend([(7, 0), (8, 0)]);
    let _r = reconciler_for(&s, "k", target.clone());
    s.lc.start().await.unwrap();
    s.until("pruned", |_| target.prunes.load(Ordering::SeqCst) >= 1)
        .await;
    s.lc.stop().await;
    let text = String::from_utf8(out.0.lock().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("pruned what no object asks for"))
        .unwrap_or_else(|| panic!("no prune line in:\n{text}"));
    assert!(line.contains("count=2"), "{line}");
    assert!(
        line.contains("route 7") && line.contains("route 8"),
        "{line}"
    );
}

#[test]
fn status_defaults_read_pending_until_written() {
    let r = route(1, 1);
    assert_eq!(r.statuses.get("anyone"), r.statuses.get("other"));
    assert!(r.statuses.get("anyone").is_pending());
    let done = r.statuses.set("anyone", Status::done());
    assert_eq!(done.kind(), StatusKind::Done);
}

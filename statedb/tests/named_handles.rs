//! Named handles: `db.handle("module")` attributes write transactions,
//! lock waits and holds to a module, and `Db::tables` shows who holds
//! each table's lock and for how long.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use statedb::{Db, DbMetrics, Index, Table};

fn table(name: &'static str) -> Table<u32> {
    Table::new(
        name,
        &Index::<u32, u32>::unique("id", |o: &u32, k| k.push(o)),
    )
    .unwrap()
}

fn holder(db: &Db, table: &str) -> Option<String> {
    db.tables(&db.read_txn())
        .into_iter()
        .find(|t| t.name == table)
        .and_then(|t| t.locked_by)
        .map(|h| h.handle)
}

#[test]
fn the_holder_is_the_handle_of_the_open_transaction_until_it_ends() {
    let (a, b) = (table("a"), table("b"));
    let db = Db::new();
    db.register_table(&a).unwrap();
    db.register_table(&b).unwrap();
    assert_eq!(db.handle_name(), "db");
    let routes = db.handle("routes");
    assert_eq!(routes.handle_name(), "routes");
    assert_eq!(
        routes.clone().handle_name(),
        "routes",
        "clones keep the name"
    );
    assert_eq!(routes.handle("other").handle_name(), "other");

    let before = Instant::now();
    let txn = routes.write_txn(&[&a, &b]).unwrap();
    assert_eq!(txn.handle(), "routes");
    assert_eq!(holder(&db, "a").as_deref(), Some("routes"));
    assert_eq!(holder(&db, "b").as_deref(), Some("routes"));
    // The hold time is no more than the time since we asked.
    let info = db.tables(&db.read_txn());
    let held = info[0].locked_by.as_ref().unwrap().held_for;
    assert!(held <= before.elapsed());
    txn.commit();
    assert_eq!(holder(&db, "a"), None, "cleared by the commit");
    assert_eq!(holder(&db, "b"), None);

    // An abort (drop) clears it too, and the default handle is "db".
    let txn = db.write_txn(&[&a]).unwrap();
    assert_eq!(txn.handle(), "db");
    assert_eq!(holder(&db, "a").as_deref(), Some("db"));
    drop(txn);
    assert_eq!(holder(&db, "a"), None);

    // A refused transaction (try, busy) leaves the holder as it was.
    let held = routes.write_txn(&[&a]).unwrap();
    let other = db.handle("other");
    assert!(other.try_write_txn(&[&b, &a]).is_err());
    assert_eq!(holder(&db, "a").as_deref(), Some("routes"));
    assert_eq!(holder(&db, "b"), None, "the try released b again");
    drop(held);
}

#[test]
fn a_waiting_handle_becomes_the_holder_when_the_lock_is_handed_to_it() {
    let t = table("t");
    let db = Db::new();
    db.register_table(&t).unwrap();
    let first = db.handle("first").write_txn(&[&t]).unwrap();
    let second = db.handle("second");
    let waiter = {
        let t = t.clone();
        std::thread::spawn(move || {
            let mut txn = second.write_txn(&[&t]).unwrap();
            t.insert(&mut txn, 1).unwrap();
            let name = txn.handle().to_string();
            txn.commit();
            name
        })
    };
    // The waiter stays queued while `first` holds the lock.
    assert_eq!(holder(&db, "t").as_deref(), Some("first"));
    first.commit();
    assert_eq!(waiter.join().unwrap(), "second");
    assert_eq!(holder(&db, "t"), None);
}

#[tokio::test(flavor = "current_thread")]
async fn an_async_transaction_shows_its_handle_on_each_lock_it_has_taken() {
    let (a, b) = (table("a"), table("b"));
    let db = Db::new();
    db.register_table(&a).unwrap();
    db.register_table(&b).unwrap();
    // A task holds b across an await.
    let holds_b = db.handle("holds-b").write_txn_async(&[&b]).await.unwrap();
    // Another wants a and b: it takes a, then waits for b.
    let both = tokio::spawn({
        let (db, a, b) = (db.handle("wants-both"), a.clone(), b.clone());
        async move {
            let txn = db.write_txn_async(&[&a, &b]).await.unwrap();
            txn.handle().to_string()
        }
    });
    // Poll until it has a (bounded: a watchdog, not a fixed sleep).
    let deadline = Instant::now() + Duration::from_secs(10);
    while holder(&db, "a").is_none() {
        assert!(Instant::now() < deadline, "the waiter never took a");
        tokio::task::yield_now().await;
    }
    assert_eq!(holder(&db, "a").as_deref(), Some("wants-both"));
    assert_eq!(holder(&db, "b").as_deref(), Some("holds-b"));
    holds_b.commit();
    assert_eq!(both.await.unwrap(), "wants-both");
    assert_eq!(holder(&db, "a"), None);
    assert_eq!(holder(&db, "b"), None);
}

#[test]
fn change_iterators_are_counted_per_table() {
    let t = table("t");
    let db = Db::new();
    db.register_table(&t).unwrap();
    let count = |db: &Db| db.tables(&db.read_txn())[0].change_iterators;
    assert_eq!(count(&db), 0);
    let mut w = db.write_txn(&[&t]).unwrap();
    let one = t.changes(&mut w).unwrap();
    let two = t.changes(&mut w).unwrap();
    w.commit();
    assert_eq!(count(&db), 2);
    drop(one);
    assert_eq!(count(&db), 1);
    drop(two);
    assert_eq!(count(&db), 0);
}

#[derive(Default)]
struct Recorded {
    waits: Vec<(String, String)>,
    holds: Vec<(String, Vec<String>)>,
    collections: Vec<(String, usize, u64)>,
    iterators: Vec<(String, usize)>,
}

#[derive(Default)]
struct Recorder(Mutex<Recorded>);

impl DbMetrics for Recorder {
    fn handle_lock_wait(&self, handle: &str, table: &str, _wait: Duration) {
        self.0
            .lock()
            .waits
            .push((handle.to_string(), table.to_string()));
    }
    fn handle_lock_hold(&self, handle: &str, tables: &[&str], _held: Duration) {
        let tables = tables.iter().map(|t| t.to_string()).collect();
        self.0.lock().holds.push((handle.to_string(), tables));
    }
    fn graveyard_collected(&self, table: &str, collected: usize, low: u64, _d: Duration) {
        self.0
            .lock()
            .collections
            .push((table.to_string(), collected, low));
    }
    fn change_iterators(&self, table: &str, count: usize) {
        self.0.lock().iterators.push((table.to_string(), count));
    }
}

#[test]
fn metrics_name_the_handle_of_each_wait_and_hold_and_report_collections() {
    let rec = Arc::new(Recorder::default());
    let db = Db::with_metrics(rec.clone());
    let t = table("t");
    db.register_table(&t).unwrap();
    let routes = db.handle("routes");
    let mut w = routes.write_txn(&[&t]).unwrap();
    let mut changes = t.changes(&mut w).unwrap();
    t.insert(&mut w, 1).unwrap();
    w.commit();
    db.handle("cleaner").write_txn(&[&t]).unwrap().abort();
    let mut w = routes.write_txn(&[&t]).unwrap();
    t.delete(&mut w, &1).unwrap();
    w.commit();
    // The iterator sees the delete; the next commit drops it.
    assert!(changes.next(&db.read_txn()).unwrap().0.count() >= 1);
    let mut w = routes.write_txn(&[&t]).unwrap();
    t.insert(&mut w, 2).unwrap();
    w.commit();

    let r = rec.0.lock();
    let waits: Vec<&str> = r.waits.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(waits, ["routes", "cleaner", "routes", "routes"]);
    assert!(r.waits.iter().all(|(_, t)| t == "t"));
    // Commits and the abort both report the hold, with the handle.
    let holds: Vec<&str> = r.holds.iter().map(|(h, _)| h.as_str()).collect();
    assert_eq!(holds, ["routes", "cleaner", "routes", "routes"]);
    assert!(r.holds.iter().all(|(_, ts)| ts == &["t".to_string()]));
    assert_eq!(r.collections, [("t".to_string(), 1, 2)]);
    assert!(r.iterators.iter().all(|(t, n)| t == "t" && *n == 1));
    drop(r);
    drop(changes);
}

/// An implementation written before handles existed (only
/// `table_lock_wait`) still gets every lock wait.
#[test]
fn the_per_table_lock_wait_still_reaches_old_implementations() {
    #[derive(Default)]
    struct Old(Mutex<Vec<String>>);
    impl DbMetrics for Old {
        fn table_lock_wait(&self, table: &str, _wait: Duration) {
            self.0.lock().push(table.to_string());
        }
    }
    let old = Arc::new(Old::default());
    let db = Db::with_metrics(old.clone()).handle("x");
    let (a, b) = (table("a"), table("b"));
    db.register_table(&a).unwrap();
    db.register_table(&b).unwrap();
    db.write_txn(&[&a, &b]).unwrap().commit();
    assert_eq!(*old.0.lock(), ["a", "b"]);
}

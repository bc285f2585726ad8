//! One test per defect found by review and stress (issues "change-iterator
//! hole" and "statedb at the edges"); each failed before its fix.

mod common;

use std::time::Duration;

use common::*;
use statedb::{Db, Error, Index, Table, TxnError, WatchSet, WriteError};

fn ids<I: Iterator<Item = statedb::Change<Obj>>>(it: I) -> Vec<(u64, bool)> {
    it.map(|c| (c.object.id, c.deleted)).collect()
}

/// A change iterator read through a write transaction that then aborts
/// must not skip the changes committed later with the same revisions.
#[test]
fn change_iterator_through_aborted_write_txn_misses_nothing() {
    let f = fixture("objs");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    let mut changes = f.table.changes(&mut w).unwrap();
    w.commit();

    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(100, &[], 0)).unwrap();
    f.table.insert(&mut w, obj(101, &[], 0)).unwrap();
    // Only committed changes are reported through a write transaction.
    let (batch, _) = changes.next(&w).unwrap();
    assert_eq!(ids(batch), []);
    w.abort();

    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    for i in 1..=3 {
        f.table.insert(&mut w, obj(i, &[], 0)).unwrap();
    }
    w.commit();
    let (batch, _) = changes.next(&f.db.read_txn()).unwrap();
    assert_eq!(ids(batch), [(1, false), (2, false), (3, false)]);

    // Deletes: the same sequence.
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.delete(&mut w, &obj(1, &[], 0)).unwrap();
    let (batch, _) = changes.next(&w).unwrap();
    assert_eq!(ids(batch), []);
    w.abort();
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.delete(&mut w, &obj(2, &[], 0)).unwrap();
    f.table.delete(&mut w, &obj(3, &[], 0)).unwrap();
    w.commit();
    let (batch, _) = changes.next(&f.db.read_txn()).unwrap();
    assert_eq!(ids(batch), [(2, true), (3, true)]);

    // Changes committed before the write transaction began are reported
    // through it.
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(7, &[], 0)).unwrap();
    w.commit();
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(8, &[], 0)).unwrap();
    let (batch, _) = changes.next(&w).unwrap();
    assert_eq!(ids(batch), [(7, false)]);
    w.commit();
    let (batch, _) = changes.next(&f.db.read_txn()).unwrap();
    assert_eq!(ids(batch), [(8, false)]);
}

#[test]
fn compare_and_delete_of_missing_object_deletes_nothing() {
    let f = fixture("objs");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    assert_eq!(
        f.table.compare_and_delete(&mut w, 1, &obj(1, &[], 0)),
        Ok(None)
    );
    f.table.insert(&mut w, obj(1, &[], 0)).unwrap();
    assert!(matches!(
        f.table.compare_and_delete(&mut w, 7, &obj(1, &[], 0)),
        Err(Error::Write(WriteError::RevisionNotEqual {
            expected: 7,
            found: 1
        }))
    ));
    let gone = f.table.compare_and_delete(&mut w, 1, &obj(1, &[], 0));
    assert_eq!(gone.unwrap().unwrap().id, 1);
}

#[derive(Clone, Debug, PartialEq)]
struct Named {
    id: u32,
    name: String,
}

fn named(id: u32, name: &str) -> Named {
    Named {
        id,
        name: name.to_string(),
    }
}

fn named_table() -> (Db, Table<Named>, Index<Named, u32>, Index<Named, str>) {
    let id: Index<Named, u32> = Index::unique("id", |n: &Named, k| k.push(&n.id));
    let name: Index<Named, str> = Index::unique("name", |n: &Named, k| k.push(n.name.as_str()));
    let t = Table::builder("named", &id).index(&name).build().unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    (db, t, id, name)
}

#[test]
fn unique_secondary_index_refuses_a_second_owner() {
    let (db, t, id, name) = named_table();
    let mut w = db.write_txn(&[&t]).unwrap();
    t.insert(&mut w, named(1, "x")).unwrap();
    let err = t.insert(&mut w, named(2, "x")).unwrap_err();
    match &err {
        Error::Write(WriteError::UniqueConflict { table, index, .. }) => {
            assert_eq!(table, "named");
            assert_eq!(index, "name");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("\"x\""), "{err}");
    // The transaction is still usable and unchanged by the refused insert.
    assert_eq!(t.num_objects(&w).unwrap(), 1);
    // The owner may keep or change its own key; a freed key can be taken.
    t.insert(&mut w, named(1, "x")).unwrap();
    t.insert(&mut w, named(1, "y")).unwrap();
    t.insert(&mut w, named(2, "x")).unwrap();
    w.commit();
    let r = db.read_txn();
    assert_eq!(t.get(&r, name.query("x")).unwrap().unwrap().0.id, 2);
    assert_eq!(t.get(&r, name.query("y")).unwrap().unwrap().0.id, 1);
    let mut w = db.write_txn(&[&t]).unwrap();
    t.delete(&mut w, &named(1, "")).unwrap();
    w.commit();
    let r = db.read_txn();
    assert_eq!(t.get(&r, name.query("x")).unwrap().unwrap().0.id, 2);
    assert!(t.get(&r, name.query("y")).unwrap().is_none());
    assert!(t.get(&r, id.query(&1)).unwrap().is_none());
}

#[test]
fn compare_and_swap_checks_unique_secondary_keys_too() {
    let (db, t, _, _) = named_table();
    let mut w = db.write_txn(&[&t]).unwrap();
    t.insert(&mut w, named(1, "x")).unwrap();
    t.insert(&mut w, named(2, "y")).unwrap();
    let rev = t
        .get(&w, t.primary_query(&named(2, "")).unwrap())
        .unwrap()
        .unwrap()
        .1;
    assert!(matches!(
        t.compare_and_swap(&mut w, rev, named(2, "x")),
        Err(Error::Write(WriteError::UniqueConflict { .. }))
    ));
}

#[test]
fn watches_from_an_aborted_write_txn_close_on_the_next_commit() {
    let f = fixture("objs");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(1, &["a"], 0)).unwrap();
    let (_, get_watch) = f.table.get_watch(&w, f.id.query(&1)).unwrap();
    let (_, missing_watch) = f.table.get_watch(&w, f.id.query(&2)).unwrap();
    let (_, list_watch) = f.table.list_watch(&w, f.tags.query("a")).unwrap();
    let table_watch = f.table.watch(&w).unwrap();
    let (_, all_watch) = f.table.all_watch(&w).unwrap();
    w.abort();
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(1, &["a"], 0)).unwrap();
    f.table.insert(&mut w, obj(2, &[], 0)).unwrap();
    w.commit();
    for (what, watch) in [
        ("get", get_watch),
        ("missing", missing_watch),
        ("list", list_watch),
        ("table", table_watch),
        ("all", all_watch),
    ] {
        assert!(watch.wait_timeout(Duration::from_secs(5)), "{what}");
    }
}

#[test]
fn watches_from_a_committed_write_txn_close_on_later_changes() {
    let f = fixture("objs");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(1, &["a"], 0)).unwrap();
    let (found, watch) = f.table.get_watch(&w, f.id.query(&1)).unwrap();
    assert!(found.is_some());
    w.commit();
    let r = f.db.read_txn();
    let (_, fresh) = f.table.get_watch(&r, f.id.query(&1)).unwrap();
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(1, &["b"], 0)).unwrap();
    w.commit();
    assert!(watch.is_closed());
    assert!(fresh.is_closed());
}

#[test]
fn initializer_survives_an_aborted_transaction() {
    let f = fixture("objs");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    let init = f.table.register_initializer(&mut w, "sync").unwrap();
    w.commit();
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    init.done(&mut w).unwrap();
    w.abort();
    assert!(!f.table.initialized(&f.db.read_txn()).unwrap().0);
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    init.done(&mut w).unwrap();
    assert!(matches!(
        init.done(&mut w),
        Err(TxnError::InitializerDone(n)) if n == "sync"
    ));
    w.commit();
    assert!(f.table.initialized(&f.db.read_txn()).unwrap().0);
}

#[test]
fn a_table_can_be_registered_again_once_its_db_is_gone() {
    let t = Table::new("objs", &id_index()).unwrap();
    {
        let db = Db::new();
        db.register_table(&t).unwrap();
        let mut w = db.write_txn(&[&t]).unwrap();
        t.insert(&mut w, obj(1, &[], 0)).unwrap();
        w.commit();
    }
    let db = Db::new();
    db.register_table(&t).unwrap();
    // A fresh, empty table in the new Db.
    assert_eq!(t.num_objects(&db.read_txn()).unwrap(), 0);
    // While a Db is alive, another one is refused, naming the table.
    let other = Db::new();
    let err = other.register_table(&t).unwrap_err();
    assert_eq!(err, TxnError::TableFromOtherDb("objs".into()));
    assert!(db.register_table(&t).is_err());
}

#[test]
fn relocking_a_table_on_the_same_thread_is_an_error_not_a_hang() {
    let f = fixture("objs");
    let w = f.db.write_txn(&[&f.table]).unwrap();
    let err = f.db.write_txn(&[&f.table]).unwrap_err();
    assert!(matches!(&err, TxnError::WouldDeadlock { tables } if tables == &["objs".to_string()]));
    assert!(matches!(
        f.db.try_write_txn(&[&f.table]),
        Err(TxnError::WouldDeadlock { .. })
    ));
    drop(w);
    assert!(f.db.write_txn(&[&f.table]).is_ok());
}

#[test]
fn try_and_timed_write_txns_name_the_busy_tables() {
    let f = fixture("objs");
    let other = Table::new("other", &id_index()).unwrap();
    f.db.register_table(&other).unwrap();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let db = f.db.clone();
    let table = f.table.clone();
    let holder = std::thread::spawn(move || {
        let _w = db.write_txn(&[&table]).unwrap();
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    locked_rx.recv().unwrap();
    let err = f.db.try_write_txn(&[&other, &f.table]).unwrap_err();
    assert!(matches!(&err, TxnError::TablesBusy { tables } if tables == &["objs".to_string()]));
    assert!(err.to_string().contains("objs"));
    let err =
        f.db.write_txn_timeout(&[&f.table, &other], Duration::from_millis(20))
            .unwrap_err();
    assert!(
        matches!(&err, TxnError::LockTimeout { tables, .. } if tables == &["objs".to_string()])
    );
    // The free table was released again.
    assert!(f.db.try_write_txn(&[&other]).is_ok());
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    let w =
        f.db.write_txn_timeout(&[&f.table, &other], Duration::from_secs(10))
            .unwrap();
    assert_eq!(w.table_names(), ["objs", "other"]);
}

#[test]
fn watch_set_of_many_watches_is_linear() {
    // 200k distinct watches took ~5 s when every add scanned the set.
    let f = fixture("objs");
    let r = f.db.read_txn();
    let mut set = WatchSet::new();
    let started = std::time::Instant::now();
    for i in 0..200_000u64 {
        let (_, w) = f.table.get_watch(&r, f.id.query(&i)).unwrap();
        set.add(w);
    }
    // All missing keys of an empty table share the root's watch.
    assert_eq!(set.len(), 1);
    let mut set = WatchSet::new();
    for _ in 0..200_000 {
        let (_closer, w) = statedb::Watch::channel();
        set.add(w.clone());
        set.add(w);
    }
    assert_eq!(set.len(), 200_000);
    // Generous: linear work takes well under a second even in debug.
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn keys_forming_a_deep_prefix_chain_do_not_overflow_the_stack() {
    let by_key: Index<String, str> = Index::unique("k", |s: &String, k| k.push(s.as_str()));
    let t = Table::new("chain", &by_key).unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    // Recursion per level overflowed at a few thousand levels; run on a
    // small stack to show the depth no longer depends on it.
    const DEPTH: usize = 5_000;
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut w = db.write_txn(&[&t]).unwrap();
            for k in 1..=DEPTH {
                t.insert(&mut w, "a".repeat(k)).unwrap();
            }
            let r = w.commit();
            assert_eq!(t.num_objects(&r).unwrap(), DEPTH);
            let mut w = db.write_txn(&[&t]).unwrap();
            for k in 1..=DEPTH {
                t.delete(&mut w, &"a".repeat(k)).unwrap();
            }
            w.commit();
            assert_eq!(t.num_objects(&db.read_txn()).unwrap(), 0);
            drop(r);
            drop(db);
        })
        .unwrap();
    handle.join().unwrap();
}

/// An aborted `register_initializer` re-opened the table's one
/// "initialized" watch, so a reader of a snapshot from before the table
/// was initialized got `(false, watch)` with a watch that never closed.
#[test]
fn initialized_watch_of_an_older_snapshot_closes_after_an_aborted_registration() {
    let f = fixture("objs");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    let first = f.table.register_initializer(&mut w, "first").unwrap();
    w.commit();
    let before = f.db.read_txn();
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    first.done(&mut w).unwrap();
    w.commit();
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    let _aborted = f.table.register_initializer(&mut w, "aborted").unwrap();
    w.abort();
    let (done, watch) = f.table.initialized(&before).unwrap();
    assert!(!done, "the old snapshot was not initialized");
    assert!(
        watch.is_closed(),
        "its period ended: the watch must be closed"
    );
    let (done, watch) = f.table.initialized(&f.db.read_txn()).unwrap();
    assert!(done && watch.is_closed());

    // A registration that commits starts a new period with its own watch;
    // the older snapshot's stays closed.
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    let second = f.table.register_initializer(&mut w, "second").unwrap();
    w.commit();
    let (done, during) = f.table.initialized(&f.db.read_txn()).unwrap();
    assert!(!done && !during.is_closed());
    assert!(f.table.initialized(&before).unwrap().1.is_closed());
    // Another initializer joining the period keeps its watch open.
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    let third = f.table.register_initializer(&mut w, "third").unwrap();
    second.done(&mut w).unwrap();
    w.commit();
    assert!(!during.is_closed(), "still uninitialized: third is pending");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    third.done(&mut w).unwrap();
    w.commit();
    assert!(during.is_closed());
}

/// A panicking `derive` transform killed the derive thread: the output
/// froze while `Derived` looked running and reported nothing.
#[test]
fn a_panicking_derive_transform_is_reported_and_deriving_goes_on() {
    use statedb::{DeriveResult, derive};
    let by_id: Index<u32, u32> = Index::unique("id", |o: &u32, k| k.push(o));
    let by_id2: Index<u64, u64> = Index::unique("id", |o: &u64, k| k.push(o));
    let input = Table::new("input", &by_id).unwrap();
    let output = Table::new("output", &by_id2).unwrap();
    let db = Db::new();
    db.register_table(&input).unwrap();
    db.register_table(&output).unwrap();
    let running = derive(&db, &input, &output, |n: &u32, deleted| {
        assert!(*n != 13, "unlucky {n}");
        if deleted {
            DeriveResult::Delete(u64::from(*n))
        } else {
            DeriveResult::Insert(u64::from(*n))
        }
    })
    .unwrap();
    let insert = |ns: &[u32]| {
        let mut w = db.write_txn(&[&input]).unwrap();
        for n in ns {
            input.insert(&mut w, *n).unwrap();
        }
        w.commit();
    };
    let wait_for = |n: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = db.read_txn();
            let (found, watch) = output.get_watch(&r, by_id2.query(&n)).unwrap();
            if found.is_some() {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{n} never derived");
            watch.wait_timeout(Duration::from_millis(100));
        }
    };
    insert(&[1, 13, 2]);
    wait_for(1);
    wait_for(2);
    let err = running.last_error().expect("the panic is reported");
    assert!(
        matches!(&err, Error::DerivePanicked { table, key, message }
            if table == "input" && key == "13" && message.contains("unlucky 13")),
        "{err}"
    );
    assert!(running.is_running(), "deriving stopped");
    insert(&[3]);
    wait_for(3);
    assert!(
        output
            .get(&db.read_txn(), by_id2.query(&13))
            .unwrap()
            .is_none()
    );
    running.stop();
}

/// A change iterator that stayed registered but stopped reading kept
/// every later delete in the graveyard. Bounded, it is lapped: its deletes
/// are released, it says so, and the other iterators are unaffected.
#[test]
fn a_stalled_bounded_change_iterator_is_lapped_and_holds_nothing() {
    let f = fixture("objs");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    let mut stalled = f.table.changes(&mut w).unwrap().max_lag(50);
    let mut reader = f.table.changes(&mut w).unwrap();
    let mut unbounded_stalled = None;
    w.commit();
    let mut seen_by_reader = 0;
    for i in 0..1_000u64 {
        let mut w = f.db.write_txn(&[&f.table]).unwrap();
        f.table.insert(&mut w, obj(i, &[], 0)).unwrap();
        w.commit();
        let mut w = f.db.write_txn(&[&f.table]).unwrap();
        f.table.delete(&mut w, &obj(i, &[], 0)).unwrap();
        w.commit();
        seen_by_reader += reader
            .next(&f.db.read_txn())
            .unwrap()
            .0
            .filter(|c| c.deleted)
            .count();
        let graveyard = f.db.tables(&f.db.read_txn())[0].graveyard;
        if unbounded_stalled.is_none() {
            assert!(
                graveyard <= 50,
                "{graveyard} deleted objects kept at delete {i}"
            );
        }
        if i == 500 {
            // From here, an unbounded stalled iterator keeps what follows.
            let mut w = f.db.write_txn(&[&f.table]).unwrap();
            unbounded_stalled = Some(f.table.changes(&mut w).unwrap());
            w.commit();
        }
    }
    assert_eq!(seen_by_reader, 1_000, "the reading iterator missed deletes");
    assert!(stalled.is_lapped());
    let err = stalled.next(&f.db.read_txn()).err().expect("lapped");
    assert_eq!(
        err,
        TxnError::ChangesLapped {
            table: "objs".into(),
            max_lag: 50
        }
    );
    assert!(err.to_string().contains("re-list"));
    // Sticky: it stays lapped.
    assert!(stalled.next(&f.db.read_txn()).is_err());
    // The unbounded one kept its 499 deletes (the bound is per iterator).
    assert_eq!(f.db.tables(&f.db.read_txn())[0].graveyard, 499);
    drop(unbounded_stalled);
    drop(stalled);
    assert_eq!(f.db.tables(&f.db.read_txn())[0].graveyard, 0);
}

#[test]
fn a_lapped_observer_ends_and_says_why() {
    let f = fixture("objs");
    let mut observer = f.table.observe(&f.db).unwrap().max_lag(3).blocking();
    for i in 0..2u64 {
        let mut w = f.db.write_txn(&[&f.table]).unwrap();
        f.table.insert(&mut w, obj(i, &[], 0)).unwrap();
        w.commit();
    }
    assert_eq!(observer.next().map(|c| c.object.id), Some(0));
    for i in 0..10u64 {
        let mut w = f.db.write_txn(&[&f.table]).unwrap();
        f.table.delete(&mut w, &obj(i, &[], 0)).unwrap();
        f.table.insert(&mut w, obj(100 + i, &[], 0)).unwrap();
        w.commit();
        let mut w = f.db.write_txn(&[&f.table]).unwrap();
        f.table.delete(&mut w, &obj(100 + i, &[], 0)).unwrap();
        w.commit();
    }
    // What it had read before (object 1) comes, then the end.
    let rest: Vec<u64> = observer.by_ref().map(|c| c.object.id).collect();
    assert_eq!(rest, [1]);
    assert!(matches!(
        observer.error(),
        Some(TxnError::ChangesLapped { max_lag: 3, .. })
    ));
}

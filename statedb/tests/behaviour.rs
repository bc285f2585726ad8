//! Behaviour of tables, transactions, queries, watches and errors.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use statedb::{Db, DbMetrics, DeclareError, Error, Index, Table, TxnError, WatchSet, WriteError};

#[test]
fn insert_get_list_prefix_lower_bound() {
    let f = fixture("objs");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    assert!(
        f.table
            .insert(&mut w, obj(1, &["a", "b"], 1))
            .unwrap()
            .is_none()
    );
    f.table.insert(&mut w, obj(2, &["b"], 2)).unwrap();
    f.table.insert(&mut w, obj(3, &["ab", "c"], 3)).unwrap();
    // Reads in the write txn see its own writes.
    assert_eq!(f.table.num_objects(&w).unwrap(), 3);
    let old = f.table.insert(&mut w, obj(1, &["a"], 10)).unwrap().unwrap();
    assert_eq!(old.value, 1);
    let r = w.commit();
    let (o, rev) = f.table.get(&r, f.id.query(&1)).unwrap().unwrap();
    assert_eq!(o.value, 10);
    assert_eq!(rev, 4);
    assert_eq!(f.table.revision(&r).unwrap(), 4);
    let ids = |it: statedb::Objects<Obj>| it.map(|(o, _)| o.id).collect::<Vec<_>>();
    assert_eq!(ids(f.table.list(&r, f.tags.query("b")).unwrap()), [2]);
    assert_eq!(ids(f.table.list(&r, f.tags.query("a")).unwrap()), [1]);
    assert_eq!(
        ids(f.table.prefix(&r, f.tags.query("a")).unwrap().0),
        [1, 3]
    );
    assert_eq!(
        ids(f.table.lower_bound(&r, f.tags.query("b")).unwrap().0),
        [2, 3]
    );
    assert_eq!(
        ids(f.table.lower_bound(&r, f.id.query(&2)).unwrap().0),
        [2, 3]
    );
    assert_eq!(ids(f.table.all(&r).unwrap()), [1, 2, 3]);
    assert_eq!(f.table.get(&r, f.tags.query("c")).unwrap().unwrap().0.id, 3);
    assert!(f.table.get(&r, f.tags.query("zz")).unwrap().is_none());
    // By revision: in the order they changed.
    assert_eq!(
        ids(f.table.lower_bound_by_revision(&r, 0).unwrap().0),
        [2, 3, 1]
    );
}

#[test]
fn non_unique_keys_with_zero_bytes_and_prefixes_stay_exact() {
    let idx: Index<(u32, Vec<u8>), u32> = Index::unique("id", |o: &(u32, Vec<u8>), k| k.push(&o.0));
    let by_bytes: Index<(u32, Vec<u8>), [u8]> =
        Index::non_unique("bytes", |o: &(u32, Vec<u8>), k| k.push(o.1.as_slice()));
    let t = Table::builder("bytes", &idx)
        .index(&by_bytes)
        .build()
        .unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    let mut w = db.write_txn(&[&t]).unwrap();
    let vals: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0, 0],
        vec![0, 1],
        vec![1],
        vec![0xff, 0],
    ];
    for (i, v) in vals.iter().enumerate() {
        t.insert(&mut w, (i as u32, v.clone())).unwrap();
    }
    let r = w.commit();
    for (i, v) in vals.iter().enumerate() {
        let got: Vec<u32> = t
            .list(&r, by_bytes.query(v.as_slice()))
            .unwrap()
            .map(|(o, _)| o.0)
            .collect();
        assert_eq!(got, [i as u32], "exact lookup of {v:?}");
        let got: Vec<u32> = t
            .prefix(&r, by_bytes.query(v.as_slice()))
            .unwrap()
            .0
            .map(|(o, _)| o.0)
            .collect();
        let want: Vec<u32> = {
            let mut m: Vec<(Vec<u8>, u32)> = vals
                .iter()
                .enumerate()
                .filter(|(_, x)| x.starts_with(v))
                .map(|(j, x)| (x.clone(), j as u32))
                .collect();
            m.sort();
            m.into_iter().map(|(_, j)| j).collect()
        };
        assert_eq!(got, want, "prefix {v:?}");
    }
}

#[test]
fn compare_and_swap_and_delete() {
    let f = fixture("cas");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    assert_eq!(
        f.table.compare_and_swap(&mut w, 1, obj(1, &[], 0)),
        Err(Error::Write(WriteError::ObjectNotFound))
    );
    f.table.insert(&mut w, obj(1, &[], 0)).unwrap();
    assert_eq!(
        f.table.compare_and_swap(&mut w, 7, obj(1, &[], 1)),
        Err(Error::Write(WriteError::RevisionNotEqual {
            expected: 7,
            found: 1
        }))
    );
    f.table.compare_and_swap(&mut w, 1, obj(1, &[], 1)).unwrap();
    assert!(matches!(
        f.table.compare_and_delete(&mut w, 1, &obj(1, &[], 0)),
        Err(Error::Write(WriteError::RevisionNotEqual { .. }))
    ));
    assert_eq!(
        f.table
            .compare_and_delete(&mut w, 2, &obj(1, &[], 0))
            .unwrap()
            .unwrap()
            .value,
        1
    );
    // Gone: nothing to delete, not an error.
    assert_eq!(
        f.table.compare_and_delete(&mut w, 2, &obj(1, &[], 0)),
        Ok(None)
    );
    assert!(f.table.delete(&mut w, &obj(1, &[], 0)).unwrap().is_none());
    // A delete bumps the revision too.
    assert_eq!(f.table.revision(&w).unwrap(), 3);
    w.commit();
}

#[test]
fn declaration_errors() {
    let id = id_index();
    for bad in ["", "A", "1x", "has space", "x".repeat(32).as_str(), "é"] {
        assert!(
            matches!(Table::new(bad, &id), Err(DeclareError::InvalidTableName(_))),
            "{bad:?}"
        );
    }
    assert!(Table::new(&"x".repeat(31), &id).is_ok());
    assert!(Table::new("a-b_c9", &id).is_ok());
    let nu: Index<Obj, u64> = Index::non_unique("id", |o: &Obj, k| k.push(&o.id));
    assert!(matches!(
        Table::new("t", &nu),
        Err(DeclareError::PrimaryIndexNotUnique { .. })
    ));
    assert!(matches!(
        Table::builder("t", &id).index(&id).build(),
        Err(DeclareError::DuplicateIndex { .. })
    ));
    let reserved: Index<Obj, u64> = Index::non_unique("__revision__", |o: &Obj, k| k.push(&o.id));
    assert!(matches!(
        Table::builder("t", &id).index(&reserved).build(),
        Err(DeclareError::ReservedIndexName(_))
    ));
    let empty: Index<Obj, u64> = Index::non_unique("", |o: &Obj, k| k.push(&o.id));
    assert_eq!(
        Table::builder("t", &id).index(&empty).build().unwrap_err(),
        DeclareError::EmptyIndexName
    );
    let db = Db::new();
    let t = Table::new("t", &id).unwrap();
    db.register_table(&t).unwrap();
    assert_eq!(
        db.register_table(&t),
        Err(TxnError::DuplicateTable("t".into()))
    );
    let t2 = Table::new("t", &id).unwrap();
    assert_eq!(
        db.register_table(&t2),
        Err(TxnError::DuplicateTable("t".into()))
    );
    let other = Db::new();
    assert_eq!(
        other.register_table(&t),
        Err(TxnError::TableFromOtherDb("t".into()))
    );
    assert!(matches!(
        other.write_txn(&[&t]),
        Err(TxnError::TableFromOtherDb(_))
    ));
    let unregistered = Table::new("u", &id).unwrap();
    assert!(matches!(
        db.write_txn(&[&unregistered]),
        Err(TxnError::TableNotRegistered(_))
    ));
    assert!(matches!(
        unregistered.all(&db.read_txn()),
        Err(TxnError::TableNotRegistered(_))
    ));
    // Writing a table the txn did not lock.
    let u2 = Table::new("u2", &id).unwrap();
    db.register_table(&u2).unwrap();
    let mut w = db.write_txn(&[&t]).unwrap();
    assert_eq!(
        u2.insert(&mut w, obj(1, &[], 0)).unwrap_err(),
        TxnError::TableNotLocked("u2".into())
    );
    // A query on an index the table does not have.
    let tags = tag_index();
    assert!(matches!(
        t.get(&w, tags.query("x")),
        Err(TxnError::UnknownIndex { .. })
    ));
    // The primary index must yield exactly one key.
    let none: Index<Obj, u64> = Index::unique("none", |_: &Obj, _| {});
    let tn = Table::new("tn", &none).unwrap();
    db.register_table(&tn).unwrap();
    drop(w);
    let mut w = db.write_txn(&[&tn]).unwrap();
    assert_eq!(
        tn.insert(&mut w, obj(1, &[], 0)).unwrap_err(),
        Error::Write(WriteError::PrimaryKeyCount {
            table: "tn".into(),
            count: 0
        })
    );
}

#[test]
fn abort_discards_and_drop_releases_locks() {
    let f = fixture("abort");
    let (_, watch) = f.table.get_watch(&f.db.read_txn(), f.id.query(&1)).unwrap();
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(1, &[], 0)).unwrap();
    w.abort();
    assert!(!watch.is_closed());
    assert_eq!(f.table.num_objects(&f.db.read_txn()).unwrap(), 0);
    {
        let mut w = f.db.write_txn(&[&f.table]).unwrap();
        f.table.insert(&mut w, obj(1, &[], 0)).unwrap();
    }
    // The lock was released by the drop: this does not block.
    let w = f.db.write_txn(&[&f.table]).unwrap();
    w.commit();
    assert!(!watch.is_closed(), "an empty commit changed nothing");
}

#[test]
fn watches_fire_on_relevant_commits_only() {
    let f = fixture("watch");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(1, &["x"], 0)).unwrap();
    f.table.insert(&mut w, obj(2, &["y"], 0)).unwrap();
    w.commit();
    let r = f.db.read_txn();
    let (_, w1) = f.table.get_watch(&r, f.id.query(&1)).unwrap();
    let (_, wx) = f.table.list_watch(&r, f.tags.query("x")).unwrap();
    let (_, wmissing) = f.table.get_watch(&r, f.id.query(&3)).unwrap();
    let (_, wall) = f.table.all_watch(&r).unwrap();
    let wtable = f.table.watch(&r).unwrap();
    let (_, wy) = f.table.prefix(&r, f.tags.query("y")).unwrap();
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(2, &["y"], 1)).unwrap();
    assert!(!wy.is_closed(), "nothing fires before commit");
    w.commit();
    assert!(wy.is_closed(), "prefix y must fire for the object tagged y");
    assert!(!w1.is_closed(), "key 1 must not fire for key 2");
    assert!(!wx.is_closed(), "tag x must not fire for tag y");
    assert!(wall.is_closed() && wtable.is_closed());
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(3, &[], 0)).unwrap();
    w.commit();
    assert!(
        wmissing.is_closed(),
        "watch of a missing key fires when it appears"
    );
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.delete(&mut w, &obj(1, &[], 0)).unwrap();
    w.commit();
    assert!(w1.is_closed() && wx.is_closed());
    // A watch set waits on several at once.
    let r = f.db.read_txn();
    let mut set = WatchSet::new();
    set.add(f.table.get_watch(&r, f.id.query(&2)).unwrap().1);
    set.add(f.table.get_watch(&r, f.id.query(&3)).unwrap().1);
    assert!(set.wait_timeout(Duration::from_millis(1)).is_empty());
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(3, &[], 5)).unwrap();
    w.commit();
    assert_eq!(set.wait_timeout(Duration::from_secs(10)).len(), 1);
}

#[test]
fn watch_fires_after_root_swap() {
    // A woken reader must see the new data.
    let f = fixture("order");
    let r = f.db.read_txn();
    let (_, watch) = f.table.get_watch(&r, f.id.query(&1)).unwrap();
    let db = f.db.clone();
    let table = f.table.clone();
    let id = f.id.clone();
    let reader = std::thread::spawn(move || {
        assert!(watch.wait_timeout(Duration::from_secs(30)));
        table.get(&db.read_txn(), id.query(&1)).unwrap().is_some()
    });
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(1, &[], 0)).unwrap();
    w.commit();
    assert!(reader.join().unwrap());
}

#[tokio::test]
async fn watches_work_in_async_code() {
    let f = fixture("asyncw");
    let watch = f.table.watch(&f.db.read_txn()).unwrap();
    let db = f.db.clone();
    let table = f.table.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut w = db.write_txn(&[&table]).unwrap();
        table.insert(&mut w, obj(1, &[], 0)).unwrap();
        w.commit();
    });
    tokio::time::timeout(Duration::from_secs(30), watch.closed())
        .await
        .unwrap();
    writer.await.unwrap();
}

#[test]
fn multi_table_commit_is_atomic_and_lock_order_prevents_deadlock() {
    let id = id_index();
    let a = Table::new("a", &id).unwrap();
    let b = Table::new("b", &id).unwrap();
    let db = Db::new();
    db.register_table(&a).unwrap();
    db.register_table(&b).unwrap();
    let mut handles = Vec::new();
    for t in 0..4u64 {
        let (db, a, b) = (db.clone(), a.clone(), b.clone());
        handles.push(std::thread::spawn(move || {
            for i in 0..200u64 {
                // Half the writers name the tables in the other order.
                let mut w = if t % 2 == 0 {
                    db.write_txn(&[&a, &b])
                } else {
                    db.write_txn(&[&b, &a])
                }
                .unwrap();
                a.insert(&mut w, obj(i, &[], t as u32)).unwrap();
                b.insert(&mut w, obj(i, &[], t as u32)).unwrap();
                w.commit();
            }
        }));
    }
    let reader = {
        let (db, a, b) = (db.clone(), a.clone(), b.clone());
        std::thread::spawn(move || {
            for _ in 0..2000 {
                let r = db.read_txn();
                assert_eq!(
                    a.revision(&r).unwrap(),
                    b.revision(&r).unwrap(),
                    "torn commit"
                );
            }
        })
    };
    for h in handles {
        h.join().unwrap();
    }
    reader.join().unwrap();
    let r = db.read_txn();
    assert_eq!(a.revision(&r).unwrap(), 800);
    assert_eq!(b.revision(&r).unwrap(), 800);
}

#[test]
fn writers_on_disjoint_tables_run_in_parallel() {
    let id = id_index();
    let a = Table::new("a", &id).unwrap();
    let b = Table::new("b", &id).unwrap();
    let db = Db::new();
    db.register_table(&a).unwrap();
    db.register_table(&b).unwrap();
    let wa = db.write_txn(&[&a]).unwrap();
    // With a's lock held, a writer on b proceeds (it would hang otherwise).
    let (db2, b2) = (db.clone(), b.clone());
    let t = std::thread::spawn(move || {
        let mut wb = db2.write_txn(&[&b2]).unwrap();
        b2.insert(&mut wb, obj(1, &[], 0)).unwrap();
        wb.commit();
    });
    t.join().unwrap();
    wa.commit();
    assert_eq!(b.num_objects(&db.read_txn()).unwrap(), 1);
}

#[test]
fn panic_in_index_function_aborts_and_leaves_db_usable() {
    let id = id_index();
    let bad: Index<Obj, u32> = Index::non_unique("bad", |o: &Obj, k| {
        if o.value == 666 {
            panic!("user key function failed");
        }
        k.push(&o.value);
    });
    let t = Table::builder("p", &id).index(&bad).build().unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    let (db2, t2) = (db.clone(), t.clone());
    let res = std::thread::spawn(move || {
        let mut w = db2.write_txn(&[&t2]).unwrap();
        t2.insert(&mut w, obj(1, &[], 1)).unwrap();
        t2.insert(&mut w, obj(2, &[], 666)).unwrap();
        w.commit();
    })
    .join();
    assert!(res.is_err());
    // Locks released, nothing committed.
    let mut w = db.write_txn(&[&t]).unwrap();
    assert_eq!(t.num_objects(&w).unwrap(), 0);
    t.insert(&mut w, obj(3, &[], 3)).unwrap();
    // A caught panic inside a txn leaves it consistent.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = t.insert(&mut w, obj(3, &[], 666));
    }));
    assert!(caught.is_err());
    let r = w.commit();
    assert_eq!(t.get(&r, bad.query(&3)).unwrap().unwrap().0.value, 3);
    assert_eq!(t.revision(&r).unwrap(), 1);
}

#[test]
fn change_iterator_sees_initial_then_changes_and_gc_runs() {
    let f = fixture("chg");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(1, &[], 0)).unwrap();
    f.table.insert(&mut w, obj(2, &[], 0)).unwrap();
    // Deleted before the iterator exists: never shown.
    f.table.delete(&mut w, &obj(2, &[], 0)).unwrap();
    w.commit();
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    let mut it = f.table.changes(&mut w).unwrap();
    w.commit();
    let (batch, watch) = it.next(&f.db.read_txn()).unwrap();
    let got: Vec<(u64, bool)> = batch.map(|c| (c.object.id, c.deleted)).collect();
    assert_eq!(got, [(1, false)]);
    let (batch, _) = it.next(&f.db.read_txn()).unwrap();
    assert_eq!(batch.count(), 0, "nothing new");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(3, &[], 0)).unwrap(); // created ...
    f.table.insert(&mut w, obj(1, &[], 1)).unwrap();
    f.table.delete(&mut w, &obj(3, &[], 0)).unwrap(); // ... and deleted: delete only
    w.commit();
    assert!(watch.is_closed());
    assert_eq!(f.table.graveyard_len(&f.db.read_txn()).unwrap(), 1);
    let (batch, _) = it.next(&f.db.read_txn()).unwrap();
    let got: Vec<(u64, bool, u64)> = batch
        .map(|c| (c.object.id, c.deleted, c.revision))
        .collect();
    assert_eq!(got, [(1, false, 5), (3, true, 6)]);
    // Seen by the only iterator: collected without any further write.
    assert_eq!(f.table.graveyard_len(&f.db.read_txn()).unwrap(), 0);
    // A second iterator holds deletes until it has seen them.
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    let it2 = f.table.changes(&mut w).unwrap();
    f.table.delete(&mut w, &obj(1, &[], 0)).unwrap();
    w.commit();
    let (b, _) = it.next(&f.db.read_txn()).unwrap();
    assert_eq!(b.count(), 1);
    assert_eq!(
        f.table.graveyard_len(&f.db.read_txn()).unwrap(),
        1,
        "it2 has not seen it"
    );
    drop(it2);
    assert_eq!(
        f.table.graveyard_len(&f.db.read_txn()).unwrap(),
        0,
        "dropping it2 released it"
    );
    drop(it);
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(9, &[], 0)).unwrap();
    f.table.delete(&mut w, &obj(9, &[], 0)).unwrap();
    w.commit();
    assert_eq!(
        f.table.graveyard_len(&f.db.read_txn()).unwrap(),
        0,
        "no iterator: no graveyard"
    );
}

#[test]
fn initializers_gate_initialized() {
    let f = fixture("init");
    let (done, w0) = f.table.initialized(&f.db.read_txn()).unwrap();
    assert!(done && w0.is_closed());
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    let i1 = f.table.register_initializer(&mut w, "one").unwrap();
    let i2 = f.table.register_initializer(&mut w, "two").unwrap();
    w.commit();
    let (done, watch) = f.table.initialized(&f.db.read_txn()).unwrap();
    assert!(!done && !watch.is_closed());
    assert_eq!(
        f.table.pending_initializers(&f.db.read_txn()).unwrap(),
        ["one", "two"]
    );
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    i1.done(&mut w).unwrap();
    w.commit();
    assert!(!watch.is_closed());
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    i2.done(&mut w).unwrap();
    assert!(!watch.is_closed(), "not before commit");
    w.commit();
    assert!(watch.is_closed());
    assert!(f.table.initialized(&f.db.read_txn()).unwrap().0);
}

#[cfg(feature = "json")]
#[test]
fn json_dump() {
    let f = fixture("json");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(2, &["t"], 7)).unwrap();
    f.table.insert(&mut w, obj(1, &[], 0)).unwrap();
    let r = w.commit();
    let mut out = Vec::new();
    f.db.write_json(&r, &[&f.table], &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["json"][0]["id"], 1);
    assert_eq!(v["json"][1]["tags"][0], "t");
}

#[derive(Default)]
struct Recorder {
    commits: parking_lot::Mutex<Vec<(Vec<String>, usize)>>,
}

impl DbMetrics for Recorder {
    fn write_txn_duration(&self, tables: &[&str], _d: Duration) {
        self.commits
            .lock()
            .push((tables.iter().map(|s| s.to_string()).collect(), 0));
    }
    fn table_contents(&self, _table: &str, objects: usize, _g: usize, _r: u64) {
        if let Some(last) = self.commits.lock().last_mut() {
            last.1 = objects;
        }
    }
}

#[test]
fn metrics_hook_is_called() {
    let rec = Arc::new(Recorder::default());
    let db = Db::with_metrics(rec.clone());
    let t = Table::new("m", &id_index()).unwrap();
    db.register_table(&t).unwrap();
    let mut w = db.write_txn(&[&t]).unwrap();
    t.insert(&mut w, obj(1, &[], 0)).unwrap();
    w.commit();
    let commits = rec.commits.lock();
    assert_eq!(commits.len(), 1);
    assert_eq!(commits[0].0, ["m"]);
}

#[test]
fn read_txn_is_send_sync_and_snapshots_are_stable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<statedb::ReadTxn>();
    assert_send_sync::<Db>();
    assert_send_sync::<Table<Obj>>();
    assert_send_sync::<statedb::Objects<Obj>>();
    fn assert_send<T: Send>() {}
    assert_send::<statedb::WriteTxn>();
    let f = fixture("snap");
    let r0 = f.db.read_txn();
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(1, &[], 0)).unwrap();
    let r1 = w.commit();
    let it = f.table.all(&r1).unwrap();
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.delete_all(&mut w).unwrap();
    w.commit();
    assert_eq!(it.count(), 1, "an iterator keeps its snapshot");
    assert_eq!(f.table.num_objects(&r0).unwrap(), 0);
    assert_eq!(f.table.num_objects(&r1).unwrap(), 1);
    assert_eq!(f.table.num_objects(&f.db.read_txn()).unwrap(), 0);
}

#[test]
fn change_iterator_registration_rules() {
    let f = fixture("reg");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(1, &[], 0)).unwrap();
    w.commit();
    let old = f.db.read_txn();
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.delete(&mut w, &obj(1, &[], 0)).unwrap();
    // Registering after a write in the same txn could miss that delete.
    assert_eq!(
        f.table.changes(&mut w).err(),
        Some(TxnError::ChangesAfterWrite("reg".into()))
    );
    w.commit();
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    let mut it = f.table.changes(&mut w).unwrap();
    w.abort();
    // A snapshot older than the registration reports nothing ...
    assert_eq!(it.next(&old).unwrap().0.count(), 0);
    // ... and the current one the current state: object 1 is gone.
    assert_eq!(it.next(&f.db.read_txn()).unwrap().0.count(), 0);
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(2, &[], 0)).unwrap();
    f.table.delete(&mut w, &obj(2, &[], 0)).unwrap();
    w.commit();
    let got: Vec<(u64, bool)> = it
        .next(&f.db.read_txn())
        .unwrap()
        .0
        .map(|c| (c.object.id, c.deleted))
        .collect();
    assert_eq!(
        got,
        [(2, true)],
        "registered in an aborted txn, the iterator still works"
    );
}

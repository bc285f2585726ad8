//! Loom models of the races in `part` and `statedb`.
//!
//! Run with `cargo xtask loom` (it builds this file alone with
//! `RUSTFLAGS="--cfg loom"`, in its own target directory). Each model
//! prints how many interleavings loom explored. The small models run
//! exhaustively; the larger ones have a preemption bound that keeps
//! the whole run short enough for CI. Set
//! `LOOM_MAX_PREEMPTIONS=N` to use N for all, or `LOOM_EXHAUSTIVE=1` to
//! explore without a bound.
#![cfg(loom)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use loom::thread;
use part::{Tree, Watch, WatchSet};
use statedb::{ChangeIterator, Db, Index, Table};

/// Runs `model` under loom and reports the number of interleavings.
fn check(name: &str, default_bound: Option<usize>, model: impl Fn() + Sync + Send + 'static) {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut builder = loom::model::Builder::new();
    let exhaustive = std::env::var_os("LOOM_EXHAUSTIVE").is_some();
    if builder.preemption_bound.is_none() && !exhaustive {
        builder.preemption_bound = default_bound;
    }
    let bound = builder.preemption_bound;
    let counter = runs.clone();
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        model();
    });
    let runs = runs.load(Ordering::Relaxed);
    println!("loom model {name}: {runs} interleavings explored (preemption bound {bound:?})");
    assert!(runs > 1, "{name}: loom explored a single interleaving");
}

type Pair = (u32, u32);

fn pair_index() -> Index<Pair, u32> {
    Index::unique("id", |o: &Pair, k| k.push(&o.0))
}

fn table(name: &str, idx: &Index<Pair, u32>) -> Table<Pair> {
    Table::new(name, idx).expect("valid table")
}

/// A blocked waiter and a closer: the waiter either sees the flag or is
/// registered before `close` takes the waiter list, never neither.
#[test]
fn watch_close_vs_wait() {
    check("watch_close_vs_wait", None, || {
        let (closer, watch) = Watch::channel();
        let waiter = {
            let watch = watch.clone();
            thread::spawn(move || {
                watch.wait();
                assert!(watch.is_closed());
            })
        };
        closer.close();
        waiter.join().unwrap();
    });
}

/// A thread waits on a set of two watches while two others close one
/// each: the waiter wakes, and leaves no registration behind.
#[test]
fn watch_set_close_vs_wait() {
    check("watch_set_close_vs_wait", Some(4), || {
        let (ca, a) = Watch::channel();
        let (cb, b) = Watch::channel();
        let mut set = WatchSet::new();
        set.add(a.clone());
        set.add(b.clone());
        let waiter = thread::spawn(move || {
            let closed = set.wait();
            assert!(!closed.is_empty());
        });
        let other = thread::spawn(move || cb.close());
        ca.close();
        other.join().unwrap();
        waiter.join().unwrap();
        assert!(a.is_closed() && b.is_closed());
    });
}

/// A task awaits a watch (registering its waker) while another thread
/// closes it, and a second task awaits a set of two watches: both
/// complete, whatever the order of registration and close.
#[test]
fn async_wait_vs_close() {
    check("async_wait_vs_close", Some(4), || {
        let (ca, a) = Watch::channel();
        let (cb, b) = Watch::channel();
        let single = {
            let a = a.clone();
            thread::spawn(move || loom::future::block_on(a.closed()))
        };
        let mut set = WatchSet::new();
        set.add(a.clone());
        set.add(b.clone());
        let any = thread::spawn(move || loom::future::block_on(set.wait_async()).len());
        ca.close();
        single.join().unwrap();
        assert!(any.join().unwrap() >= 1);
        drop(cb);
    });
}

/// A reader of an old snapshot asks for a key's watch (created lazily)
/// while a writer replaces that key and seals the old nodes: the watch
/// always closes, and the watch of a key the writer did not touch never
/// does.
#[test]
fn lazy_watch_vs_seal() {
    check("lazy_watch_vs_seal", None, || {
        let tree: Tree<u32> = Tree::new().insert(b"a", 1).insert(b"ab", 2).insert(b"b", 3);
        let old = tree.clone();
        let reader = thread::spawn(move || {
            let (value, key_watch) = old.get_watch(b"a");
            assert_eq!(value, Some(&1));
            let (_, other_watch) = old.get_watch(b"b");
            key_watch.wait();
            other_watch
        });
        let mut txn = tree.txn();
        txn.insert(b"a", 10);
        let (new, watches) = txn.commit();
        watches.close();
        let other_watch = reader.join().unwrap();
        assert!(
            !other_watch.is_closed(),
            "the watch of an untouched key closed"
        );
        assert_eq!(new.get(b"a"), Some(&10));
        assert_eq!(new.get(b"ab"), Some(&2));
    });
}

/// A commit over two tables races a reader: the reader sees both writes
/// or neither, and once its watch closes it sees both.
#[test]
fn root_swap_vs_readers() {
    check("root_swap_vs_readers", None, || {
        let idx = pair_index();
        let (a, b) = (table("a", &idx), table("b", &idx));
        let db = Db::new();
        db.register_table(&a).unwrap();
        db.register_table(&b).unwrap();
        let reader = {
            let (db, a, b, idx) = (db.clone(), a.clone(), b.clone(), idx.clone());
            thread::spawn(move || {
                let snap = db.read_txn();
                let (found, watch) = a.get_watch(&snap, idx.query(&1)).unwrap();
                let in_b = b.get(&snap, idx.query(&1)).unwrap();
                assert_eq!(found.is_some(), in_b.is_some(), "torn commit seen");
                if found.is_none() {
                    watch.wait();
                    let snap = db.read_txn();
                    assert!(a.get(&snap, idx.query(&1)).unwrap().is_some());
                    assert!(b.get(&snap, idx.query(&1)).unwrap().is_some());
                }
            })
        };
        let mut w = db.write_txn(&[&a, &b]).unwrap();
        a.insert(&mut w, (1, 1)).unwrap();
        b.insert(&mut w, (1, 1)).unwrap();
        w.commit();
        reader.join().unwrap();
    });
}

/// Two writers lock overlapping table sets named in opposite orders:
/// no deadlock (loom reports one) and no lost update.
#[test]
fn overlapping_writers() {
    check("overlapping_writers", None, || {
        let idx = pair_index();
        let (a, b, c) = (table("a", &idx), table("b", &idx), table("c", &idx));
        let db = Db::new();
        for t in [&a, &b, &c] {
            db.register_table(t).unwrap();
        }
        fn bump(db: &Db, idx: &Index<Pair, u32>, first: &Table<Pair>, second: &Table<Pair>) {
            let mut w = db.write_txn(&[first, second]).unwrap();
            for t in [first, second] {
                let n = t.get(&w, idx.query(&0)).unwrap().map_or(0, |(o, _)| o.1);
                t.insert(&mut w, (0, n + 1)).unwrap();
            }
            w.commit();
        }
        let other = {
            let (db, idx, b, c) = (db.clone(), idx.clone(), b.clone(), c.clone());
            thread::spawn(move || bump(&db, &idx, &c, &b))
        };
        bump(&db, &idx, &a, &b);
        other.join().unwrap();
        let snap = db.read_txn();
        let count = |t: &Table<Pair>| t.get(&snap, idx.query(&0)).unwrap().map_or(0, |(o, _)| o.1);
        assert_eq!((count(&a), count(&b), count(&c)), (1, 2, 1));
    });
}

/// A writer holds a table while another thread tries it without waiting
/// and the holder itself asks again: the other thread gets `TablesBusy` or,
/// once the lock is free, the table (never a hang, never both at once);
/// the holder gets `WouldDeadlock` for its own table, never a wait. The
/// lock's owner token is set and cleared around the real lock.
#[test]
fn try_lock_vs_holder_and_same_thread_relock() {
    check("try_lock_vs_holder_and_same_thread_relock", None, || {
        let idx = pair_index();
        let a = table("a", &idx);
        let db = Db::new();
        db.register_table(&a).unwrap();
        let other = {
            let (db, idx, a) = (db.clone(), idx.clone(), a.clone());
            thread::spawn(move || match db.try_write_txn(&[&a]) {
                Ok(mut w) => {
                    let n = a.get(&w, idx.query(&0)).unwrap().map_or(0, |(o, _)| o.1);
                    a.insert(&mut w, (0, n + 1)).unwrap();
                    w.commit();
                    true
                }
                Err(statedb::TxnError::TablesBusy { .. }) => false,
                Err(e) => panic!("unexpected {e}"),
            })
        };
        let mut w = db.write_txn(&[&a]).unwrap();
        assert!(matches!(
            db.write_txn(&[&a]),
            Err(statedb::TxnError::WouldDeadlock { .. })
        ));
        let n = a.get(&w, idx.query(&0)).unwrap().map_or(0, |(o, _)| o.1);
        a.insert(&mut w, (0, n + 1)).unwrap();
        w.commit();
        let other_wrote = other.join().unwrap();
        let snap = db.read_txn();
        let count = a.get(&snap, idx.query(&0)).unwrap().map_or(0, |(o, _)| o.1);
        assert_eq!(count, 1 + u32::from(other_wrote));
        // Both released: this thread can lock again.
        assert!(db.try_write_txn(&[&a]).is_ok());
    });
}

/// Adds one to (0, n) in `t` through `w`, then commits.
fn bump_in(w: statedb::WriteTxn, idx: &Index<Pair, u32>, t: &Table<Pair>) {
    let mut w = w;
    let n = t.get(&w, idx.query(&0)).unwrap().map_or(0, |(o, _)| o.1);
    t.insert(&mut w, (0, n + 1)).unwrap();
    w.commit();
}

/// A blocking writer and an async one (a future, woken by the hand-off)
/// race for one table: they exclude each other, neither update is lost,
/// and the waiting one is always woken (loom reports a lost wake-up as a
/// deadlock).
#[test]
fn async_and_blocking_writers() {
    check("async_and_blocking_writers", Some(3), || {
        let idx = pair_index();
        let a = table("a", &idx);
        let db = Db::new();
        db.register_table(&a).unwrap();
        let blocking = {
            let (db, idx, a) = (db.clone(), idx.clone(), a.clone());
            thread::spawn(move || bump_in(db.write_txn(&[&a]).unwrap(), &idx, &a))
        };
        let w = loom::future::block_on(db.write_txn_async(&[&a])).unwrap();
        bump_in(w, &idx, &a);
        blocking.join().unwrap();
        let snap = db.read_txn();
        assert_eq!(
            a.get(&snap, idx.query(&0)).unwrap().map(|(o, _)| o.1),
            Some(2)
        );
    });
}

/// A future queued for a held table is dropped while the holder commits
/// and a blocking writer queues behind it: whether the lock was handed to
/// the future or not, the blocking writer gets it (a lock kept by the
/// dropped future is a deadlock loom reports), and it ends free.
#[test]
fn dropped_async_waiter_vs_release() {
    check("dropped_async_waiter_vs_release", Some(4), || {
        let idx = pair_index();
        let a = table("a", &idx);
        let db = Db::new();
        db.register_table(&a).unwrap();
        let held = db.write_txn(&[&a]).unwrap();
        let mut fut = db.write_txn_async(&[&a]);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::pin::Pin::new(&mut fut).poll(&mut cx).is_pending());
        let releaser = thread::spawn(move || held.commit());
        let behind = {
            let (db, idx, a) = (db.clone(), idx.clone(), a.clone());
            thread::spawn(move || bump_in(db.write_txn(&[&a]).unwrap(), &idx, &a))
        };
        drop(fut);
        releaser.join().unwrap();
        behind.join().unwrap();
        assert!(db.try_write_txn(&[&a]).is_ok(), "the lock leaked");
    });
}

/// A Db with table `t` holding (1, 1), and a change iterator of `t`
/// registered before that insert.
fn tracked_table() -> (Db, Table<Pair>, ChangeIterator<Pair>) {
    let t = table("t", &pair_index());
    let db = Db::new();
    db.register_table(&t).unwrap();
    let mut w = db.write_txn(&[&t]).unwrap();
    let changes = t.changes(&mut w).unwrap();
    t.insert(&mut w, (1, 1)).unwrap();
    w.commit();
    (db, t, changes)
}

/// Deletes (1, 1) from `t` in a transaction of its own.
fn delete_one(db: &Db, t: &Table<Pair>) {
    let mut w = db.write_txn(&[t]).unwrap();
    t.delete(&mut w, &(1, 1)).unwrap();
    w.commit();
}

/// A change iterator is dropped while a writer deletes: once both are
/// done the graveyard is empty, since nobody is left to read it.
#[test]
fn change_iterator_drop_vs_delete() {
    check("change_iterator_drop_vs_delete", Some(5), || {
        let (db, t, mut changes) = tracked_table();
        assert_eq!(changes.next(&db.read_txn()).unwrap().0.count(), 1);
        let writer = {
            let (db, t) = (db.clone(), t.clone());
            thread::spawn(move || delete_one(&db, &t))
        };
        drop(changes);
        writer.join().unwrap();
        assert_eq!(t.graveyard_len(&db.read_txn()).unwrap(), 0);
    });
}

/// A change iterator reads while a writer deletes: it sees the delete
/// exactly once (now or on its next read), and after it has, the
/// graveyard is empty.
#[test]
fn change_iterator_advance_vs_delete() {
    check("change_iterator_advance_vs_delete", Some(4), || {
        let (db, t, mut changes) = tracked_table();
        let reader = {
            let db = db.clone();
            thread::spawn(move || {
                let deletes = changes
                    .next(&db.read_txn())
                    .unwrap()
                    .0
                    .filter(|c| c.deleted)
                    .count();
                (changes, deletes)
            })
        };
        delete_one(&db, &t);
        let (mut changes, mut deletes) = reader.join().unwrap();
        deletes += changes
            .next(&db.read_txn())
            .unwrap()
            .0
            .filter(|c| c.deleted)
            .count();
        assert_eq!(deletes, 1);
        assert_eq!(t.graveyard_len(&db.read_txn()).unwrap(), 0);
        drop(changes);
    });
}

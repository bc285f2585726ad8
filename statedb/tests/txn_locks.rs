//! Table locks belong to transactions, not threads (issue "statedb:
//! transactions that belong to tasks", §1.1): the deadlock check is exact,
//! async code waits without blocking its thread, waiters are served in
//! arrival order, and a dropped future gives everything back. Each test
//! failed on the thread-owned lock.

mod common;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::*;
use statedb::{Table, TxnError};

/// Polls `fut` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    std::pin::Pin::new(fut).poll(&mut cx)
}

/// A write transaction on `tables` held by a thread of its own (polling a
/// future on the holding thread itself would be refused, rightly, as a
/// deadlock), with (0, `v`) inserted, until `commit`.
struct HeldElsewhere {
    commit: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl HeldElsewhere {
    fn new(f: &Fixture, tables: &[&Table<Obj>], v: u32) -> Self {
        let (db, tables): (_, Vec<Table<Obj>>) =
            (f.db.clone(), tables.iter().map(|&t| t.clone()).collect());
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (commit, commit_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let handles: Vec<&dyn statedb::TableHandle> = tables
                .iter()
                .map(|t| t as &dyn statedb::TableHandle)
                .collect();
            let mut w = db.write_txn(&handles).unwrap();
            tables[0].insert(&mut w, obj(0, &[], v)).unwrap();
            held_tx.send(()).unwrap();
            let _ = commit_rx.recv();
            w.commit();
        });
        held_rx.recv().unwrap();
        HeldElsewhere { commit, thread }
    }

    fn commit(self) {
        self.commit.send(()).unwrap();
        self.thread.join().unwrap();
    }
}

fn value(f: &Fixture, id: u64) -> Option<u32> {
    f.table
        .get(&f.db.read_txn(), f.id.query(&id))
        .unwrap()
        .map(|(o, _)| o.value)
}

#[test]
fn a_transaction_moved_to_another_thread_is_that_threads_once_it_writes_there() {
    let f = fixture("objs");
    let w = f.db.write_txn(&[&f.table]).unwrap();
    let (db, table) = (f.db.clone(), f.table.clone());
    let (moved_tx, moved_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || {
        let mut w = w;
        table.insert(&mut w, obj(1, &[], 1)).unwrap();
        // This thread holds it now: asking again is refused at once,
        // not a 10-minute wait for itself.
        let err = db
            .write_txn_timeout(&[&table], Duration::from_secs(600))
            .unwrap_err();
        moved_tx.send(err).unwrap();
        let _ = done_rx.recv();
        w.commit();
    });
    let err = moved_rx.recv().unwrap();
    assert!(
        matches!(&err, TxnError::WouldDeadlock { tables } if tables == &["objs".to_string()]),
        "{err}"
    );
    // The opening thread no longer holds it: it waits (and times out).
    let err =
        f.db.write_txn_timeout(&[&f.table], Duration::from_millis(20))
            .unwrap_err();
    assert!(matches!(err, TxnError::LockTimeout { .. }), "{err}");
    done_tx.send(()).unwrap();
    other.join().unwrap();
    assert_eq!(value(&f, 1), Some(1));
}

#[test]
fn another_task_on_the_same_thread_waits_instead_of_failing() {
    let f = fixture("objs");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let (db, table) = (f.db.clone(), f.table.clone());
        let (held_tx, held_rx) = tokio::sync::oneshot::channel();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let holder = tokio::spawn(async move {
            let mut w = db.write_txn_async(&[&table]).await.unwrap();
            table.insert(&mut w, obj(1, &[], 1)).unwrap();
            held_tx.send(()).unwrap();
            // Held across an await, on the runtime's only thread.
            go_rx.await.unwrap();
            w.commit();
        });
        held_rx.await.unwrap();
        let (db, table) = (f.db.clone(), f.table.clone());
        let waiter = tokio::spawn(async move {
            // Same thread, different task: busy, not a deadlock.
            assert!(matches!(
                db.try_write_txn(&[&table]),
                Err(TxnError::TablesBusy { .. })
            ));
            let mut w = db.write_txn_async(&[&table]).await.unwrap();
            let seen = table.get(&w, id_index().query(&1)).unwrap().is_some();
            table.insert(&mut w, obj(2, &[], 2)).unwrap();
            w.commit();
            seen
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        go_tx.send(()).unwrap();
        holder.await.unwrap();
        assert!(
            waiter.await.unwrap(),
            "the waiter ran before the holder committed"
        );
    });
    assert_eq!((value(&f, 1), value(&f, 2)), (Some(1), Some(2)));
}

#[test]
fn a_task_asking_again_for_what_it_holds_is_refused_on_any_worker() {
    let f = fixture("objs");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let (db, table) = (f.db.clone(), f.table.clone());
    rt.block_on(async move {
        tokio::spawn(async move {
            let mut w = db.write_txn_async(&[&table]).await.unwrap();
            for _ in 0..20 {
                // Each await may resume on another worker.
                tokio::task::yield_now().await;
                let err = db.write_txn_async(&[&table]).await.unwrap_err();
                assert!(matches!(err, TxnError::WouldDeadlock { .. }), "{err}");
                let err = db
                    .write_txn_timeout(&[&table], Duration::from_secs(600))
                    .unwrap_err();
                assert!(matches!(err, TxnError::WouldDeadlock { .. }), "{err}");
            }
            table.insert(&mut w, obj(1, &[], 1)).unwrap();
            w.commit();
        })
        .await
    })
    .unwrap();
    assert_eq!(value(&f, 1), Some(1));
}

#[test]
fn waiters_are_served_in_arrival_order_and_nobody_overtakes() {
    let f = fixture("objs");
    let holder = HeldElsewhere::new(&f, &[&f.table], 0);
    // First in line: a future.
    let mut first = f.db.write_txn_async(&[&f.table]);
    assert!(poll_once(&mut first).is_pending());
    // Second: a blocking thread (it arrives after the future queued).
    let (db, table) = (f.db.clone(), f.table.clone());
    let second = std::thread::spawn(move || {
        let mut w = db.write_txn(&[&table]).unwrap();
        let v = table
            .get(&w, id_index().query(&0))
            .unwrap()
            .unwrap()
            .0
            .value;
        table.insert(&mut w, obj(0, &[], v * 10 + 2)).unwrap();
        w.commit();
    });
    holder.commit();
    // Handed to the future directly: the lock never looked free.
    assert!(matches!(
        f.db.try_write_txn(&[&f.table]),
        Err(TxnError::TablesBusy { .. })
    ));
    let Poll::Ready(Ok(mut w)) = poll_once(&mut first) else {
        panic!("the first in line did not get the lock")
    };
    let v = f.table.get(&w, f.id.query(&0)).unwrap().unwrap().0.value;
    f.table.insert(&mut w, obj(0, &[], v * 10 + 1)).unwrap();
    w.commit();
    second.join().unwrap();
    // 0, then the future's 1, then the thread's 2.
    assert_eq!(value(&f, 0), Some(12));
}

#[test]
fn a_dropped_future_gives_up_its_place_and_any_lock_handed_to_it() {
    let f = fixture("objs");
    let other = Table::new("other", &id_index()).unwrap();
    f.db.register_table(&other).unwrap();

    // Dropped while queued.
    let holder = HeldElsewhere::new(&f, &[&f.table], 0);
    let mut fut = f.db.write_txn_async(&[&f.table]);
    assert!(poll_once(&mut fut).is_pending());
    drop(fut);
    holder.commit();
    assert!(f.db.try_write_txn(&[&f.table]).is_ok());

    // Dropped after the lock was handed to it, before it saw it.
    let holder = HeldElsewhere::new(&f, &[&f.table], 0);
    let mut fut = f.db.write_txn_async(&[&f.table]);
    assert!(poll_once(&mut fut).is_pending());
    holder.commit();
    drop(fut);
    assert!(f.db.try_write_txn(&[&f.table]).is_ok());

    // Dropped holding one table and queued for the next.
    let holder = HeldElsewhere::new(&f, &[&other], 0);
    let mut fut = f.db.write_txn_async(&[&f.table, &other]);
    assert!(poll_once(&mut fut).is_pending());
    assert!(matches!(
        f.db.try_write_txn(&[&f.table]),
        Err(TxnError::TablesBusy { .. })
    ));
    drop(fut);
    assert!(f.db.try_write_txn(&[&f.table]).is_ok());
    holder.commit();
    assert!(f.db.try_write_txn(&[&f.table, &other]).is_ok());

    // A second future behind a dropped one gets the lock.
    let holder = HeldElsewhere::new(&f, &[&f.table], 0);
    let mut dropped = f.db.write_txn_async(&[&f.table]);
    let mut next = f.db.write_txn_async(&[&f.table]);
    assert!(poll_once(&mut dropped).is_pending());
    assert!(poll_once(&mut next).is_pending());
    holder.commit();
    drop(dropped);
    assert!(matches!(poll_once(&mut next), Poll::Ready(Ok(_))));
}

#[test]
fn a_timeout_around_the_future_cancels_it_cleanly() {
    let f = fixture("objs");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let holder = HeldElsewhere::new(&f, &[&f.table], 0);
    rt.block_on(async {
        let r = tokio::time::timeout(Duration::from_millis(10), f.db.write_txn_async(&[&f.table]))
            .await;
        assert!(r.is_err(), "got the lock while it was held");
    });
    holder.commit();
    assert!(f.db.try_write_txn(&[&f.table]).is_ok());
}

#[test]
fn errors_of_the_future_come_when_awaited() {
    let f = fixture("objs");
    let unregistered = Table::new("nowhere", &id_index()).unwrap();
    let mut fut = f.db.write_txn_async(&[&f.table, &unregistered]);
    let Poll::Ready(Err(err)) = poll_once(&mut fut) else {
        panic!("no error")
    };
    assert_eq!(err, TxnError::TableNotRegistered("nowhere".into()));
    // Nothing was locked.
    assert!(f.db.try_write_txn(&[&f.table]).is_ok());
    // Outside any task a future does not block its thread: polled by the
    // thread holding the table, it waits (it is not refused).
    let w = f.db.write_txn(&[&f.table]).unwrap();
    let mut fut = pin!(f.db.write_txn_async(&[&f.table]));
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    w.commit();
    let Poll::Ready(Ok(mut w)) = fut.as_mut().poll(&mut cx) else {
        panic!("not handed the lock")
    };
    // Written here, it is this thread's: asking again is refused.
    f.table.insert(&mut w, obj(5, &[], 5)).unwrap();
    assert!(matches!(
        f.db.try_write_txn(&[&f.table]),
        Err(TxnError::WouldDeadlock { .. })
    ));
}

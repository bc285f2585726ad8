//! The stress probes of `cargo xtask stress` (long, in release mode) and
//! their short variants, run by every `cargo test`:
//!
//! - concurrency: writers on random table subsets in random orders move
//!   value between objects of different tables (the sum is invariant);
//!   readers check the sum in every snapshot; a change iterator per table
//!   replays every change and must end equal to the table;
//! - watch storm: a watch per key, all closed by one commit;
//! - huge transaction: millions of objects in one transaction;
//! - long-lived snapshot: an old snapshot keeps reading exactly its state
//!   through many later writes.
//!
//! Sizes come from the environment (`STRESS_*`); each probe prints its
//! figures.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use statedb::{Db, Index, Table, TableHandle, WatchSet};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size in MB (Linux), for the printed figures.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |pages| pages * 4096.0 / 1e6)
}

#[derive(Clone, Debug, PartialEq)]
struct Account {
    id: u32,
    balance: i64,
}

fn account_table(name: &str) -> Table<Account> {
    let by_id: Index<Account, u32> = Index::unique("id", |a: &Account, k| k.push(&a.id));
    Table::new(name, &by_id).unwrap()
}

/// A Db holding one registered account table.
fn registered_table(name: &str) -> (Db, Table<Account>) {
    let db = Db::new();
    let t = account_table(name);
    db.register_table(&t).unwrap();
    (db, t)
}

/// A tiny deterministic generator (xorshift), one per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn concurrency_invariant_and_change_replay() {
    const TABLES: usize = 6;
    const ACCOUNTS: u32 = 64;
    const START: i64 = 1_000;
    let seconds = env("STRESS_SECONDS", 1);
    let writers = env("STRESS_WRITERS", 4) as usize;
    let readers = env("STRESS_READERS", 2) as usize;
    let db = Db::new();
    let tables: Vec<Table<Account>> = (0..TABLES)
        .map(|i| account_table(&format!("t{i}")))
        .collect();
    for t in &tables {
        db.register_table(t).unwrap();
    }
    let handles: Vec<&dyn TableHandle> = tables.iter().map(|t| t as &dyn TableHandle).collect();
    let mut w = db.write_txn(&handles).unwrap();
    let mut iters = Vec::new();
    for t in &tables {
        iters.push(t.changes(&mut w).unwrap());
        for id in 0..ACCOUNTS {
            t.insert(&mut w, Account { id, balance: START }).unwrap();
        }
    }
    w.commit();
    let total = START * ACCOUNTS as i64 * TABLES as i64;
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let snapshots = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut replicas: Vec<BTreeMap<u32, i64>> = vec![BTreeMap::new(); TABLES];
    let mut replayed = 0u64;
    std::thread::scope(|s| {
        for seed in 0..writers {
            let (db, tables, stop, commits) = (&db, &tables, &stop, &commits);
            s.spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((seed as u64 + 1) * 0x1234_5678));
                while !stop.load(Ordering::Relaxed) {
                    // Two to four tables, named in a random order.
                    let n = 2 + rng.below(3) as usize;
                    let mut pick: Vec<usize> = Vec::new();
                    while pick.len() < n {
                        let t = rng.below(TABLES as u64) as usize;
                        if !pick.contains(&t) {
                            pick.push(t);
                        }
                    }
                    let named: Vec<&dyn TableHandle> = pick
                        .iter()
                        .map(|&t| &tables[t] as &dyn TableHandle)
                        .collect();
                    let mut w = db.write_txn(&named).unwrap();
                    for _ in 0..1 + rng.below(4) {
                        let (a, b) = (pick[0], pick[1 + rng.below(n as u64 - 1) as usize]);
                        let (ia, ib) = (
                            rng.below(ACCOUNTS as u64) as u32,
                            rng.below(ACCOUNTS as u64) as u32,
                        );
                        let amount = rng.below(10) as i64;
                        let get = |t: usize, id: u32, w: &statedb::WriteTxn| {
                            let by_id: Index<Account, u32> =
                                Index::unique("id", |a: &Account, k| k.push(&a.id));
                            (*tables[t].get(w, by_id.query(&id)).unwrap().unwrap().0).clone()
                        };
                        let mut from = get(a, ia, &w);
                        from.balance -= amount;
                        tables[a].insert(&mut w, from).unwrap();
                        let mut to = get(b, ib, &w);
                        to.balance += amount;
                        tables[b].insert(&mut w, to).unwrap();
                    }
                    if rng.below(8) == 0 {
                        w.abort();
                    } else {
                        w.commit();
                        commits.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        for _ in 0..readers {
            let (db, tables, stop, snapshots) = (&db, &tables, &stop, &snapshots);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = db.read_txn();
                    let sum: i64 = tables
                        .iter()
                        .map(|t| t.all(&r).unwrap().map(|(a, _)| a.balance).sum::<i64>())
                        .sum();
                    assert_eq!(sum, total, "torn snapshot");
                    snapshots.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // The change replay runs while the writers write.
        let deadline = started + Duration::from_secs(seconds);
        loop {
            let r = db.read_txn();
            for (it, replica) in iters.iter_mut().zip(replicas.iter_mut()) {
                for c in it.next(&r).unwrap().0 {
                    replayed += 1;
                    apply(replica, &c);
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
    });
    // The writers have stopped: replay the rest; each replica must equal
    // its table.
    let r = db.read_txn();
    for ((t, it), replica) in tables.iter().zip(iters.iter_mut()).zip(replicas.iter_mut()) {
        for c in it.next(&r).unwrap().0 {
            replayed += 1;
            apply(replica, &c);
        }
        let table: BTreeMap<u32, i64> =
            t.all(&r).unwrap().map(|(a, _)| (a.id, a.balance)).collect();
        assert_eq!(*replica, table, "replayed changes of {} differ", t.name());
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "concurrency: {writers} writers, {readers} readers, {:.1} s: {} commits ({:.0}/s), {} snapshots checked, {replayed} changes replayed, RSS {:.1} MB",
        elapsed,
        commits.load(Ordering::Relaxed),
        commits.load(Ordering::Relaxed) as f64 / elapsed,
        snapshots.load(Ordering::Relaxed),
        rss_mb()
    );
    assert!(commits.load(Ordering::Relaxed) > 0);
}

#[test]
fn change_replay_ends_equal_to_the_table() {
    let writes = env("STRESS_REPLAY_WRITES", 20_000);
    let (db, t) = registered_table("replay");
    let mut w = db.write_txn(&[&t]).unwrap();
    let mut it = t.changes(&mut w).unwrap();
    w.commit();
    let mut replica: BTreeMap<u32, i64> = BTreeMap::new();
    let mut rng = Rng(42);
    let mut replayed = 0u64;
    let started = Instant::now();
    let mut done = 0;
    while done < writes {
        let mut w = db.write_txn(&[&t]).unwrap();
        for _ in 0..1 + rng.below(50) {
            random_write(&t, &mut w, &mut rng, 500, 3);
            done += 1;
        }
        // Read through the write transaction at times: only committed
        // changes may show.
        if rng.below(4) == 0 {
            let (changes, _) = it.next(&w).unwrap();
            for c in changes {
                replayed += 1;
                apply(&mut replica, &c);
            }
        }
        if rng.below(5) == 0 {
            w.abort();
        } else {
            w.commit();
        }
        if rng.below(3) == 0 {
            let (changes, _) = it.next(&db.read_txn()).unwrap();
            for c in changes {
                replayed += 1;
                apply(&mut replica, &c);
            }
        }
    }
    let r = db.read_txn();
    for c in it.next(&r).unwrap().0 {
        replayed += 1;
        apply(&mut replica, &c);
    }
    let table: BTreeMap<u32, i64> = t.all(&r).unwrap().map(|(a, _)| (a.id, a.balance)).collect();
    assert_eq!(replica, table, "replayed changes differ from the table");
    println!(
        "change replay: {writes} writes, {replayed} changes replayed in {:.2} s, replica equal to the table",
        started.elapsed().as_secs_f64()
    );
}

/// Deletes (one time in `delete_one_in`) or inserts a random id below
/// `ids`.
fn random_write(
    t: &Table<Account>,
    w: &mut statedb::WriteTxn,
    rng: &mut Rng,
    ids: u64,
    delete_one_in: u64,
) {
    let id = rng.below(ids) as u32;
    if rng.below(delete_one_in) == 0 {
        t.delete(w, &Account { id, balance: 0 }).unwrap();
    } else {
        let balance = rng.below(1000) as i64;
        t.insert(w, Account { id, balance }).unwrap();
    }
}

fn apply(replica: &mut BTreeMap<u32, i64>, c: &statedb::Change<Account>) {
    if c.deleted {
        replica.remove(&c.object.id);
    } else {
        replica.insert(c.object.id, c.object.balance);
    }
}

#[test]
fn watch_storm() {
    let keys = env("STRESS_WATCH_KEYS", 50_000) as u32;
    let (db, t) = registered_table("storm");
    let by_id: Index<Account, u32> = Index::unique("id", |a: &Account, k| k.push(&a.id));
    let mut w = db.write_txn(&[&t]).unwrap();
    for id in 0..keys {
        t.insert(&mut w, Account { id, balance: 0 }).unwrap();
    }
    w.commit();
    let started = Instant::now();
    let r = db.read_txn();
    let mut set = WatchSet::new();
    for id in 0..keys {
        set.add(t.get_watch(&r, by_id.query(&id)).unwrap().1);
    }
    let built = started.elapsed();
    let mut w = db.write_txn(&[&t]).unwrap();
    for id in 0..keys {
        t.insert(&mut w, Account { id, balance: 1 }).unwrap();
    }
    w.commit();
    let closed = set.wait_timeout(Duration::from_secs(60));
    assert_eq!(closed.len(), keys as usize, "every key's watch closes");
    println!(
        "watch storm: {keys} watches in one set built in {:.2} s, all closed by one commit; total {:.2} s, RSS {:.1} MB",
        built.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        rss_mb()
    );
}

#[test]
fn many_waiters_on_one_watch() {
    // Registration and removal were linear per waiter (100k futures: 1.5 s
    // to poll, 0.6 s to drop).
    let waiters = env("STRESS_WAITERS", 50_000) as usize;
    let (closer, watch) = statedb::Watch::channel();
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let started = Instant::now();
    let mut futures: Vec<_> = (0..waiters).map(|_| Box::pin(watch.closed())).collect();
    for f in &mut futures {
        assert!(f.as_mut().poll(&mut cx).is_pending());
    }
    futures.truncate(waiters / 2);
    closer.close();
    for f in &mut futures {
        assert!(f.as_mut().poll(&mut cx).is_ready());
    }
    println!(
        "many waiters: {waiters} futures on one watch polled, half dropped, rest woken in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn huge_transaction() {
    let objects = env("STRESS_HUGE_OBJECTS", 200_000) as u32;
    let (db, t) = registered_table("huge");
    let started = Instant::now();
    let mut w = db.write_txn(&[&t]).unwrap();
    for id in 0..objects {
        t.insert(
            &mut w,
            Account {
                id,
                balance: id as i64,
            },
        )
        .unwrap();
    }
    let r = w.commit();
    assert_eq!(t.num_objects(&r).unwrap(), objects as usize);
    let inserted = started.elapsed();
    let mut w = db.write_txn(&[&t]).unwrap();
    assert_eq!(t.delete_all(&mut w).unwrap(), objects as usize);
    w.commit();
    assert_eq!(t.num_objects(&db.read_txn()).unwrap(), 0);
    assert_eq!(
        t.num_objects(&r).unwrap(),
        objects as usize,
        "old snapshot kept"
    );
    println!(
        "huge transaction: {objects} objects inserted in one transaction in {:.2} s, deleted in another, total {:.2} s, RSS {:.1} MB",
        inserted.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        rss_mb()
    );
}

#[test]
fn long_lived_snapshot_reads_its_own_state() {
    let writes = env("STRESS_SNAPSHOT_WRITES", 100_000);
    let (db, t) = registered_table("snap");
    let mut w = db.write_txn(&[&t]).unwrap();
    for id in 0..1000 {
        t.insert(&mut w, Account { id, balance: 7 }).unwrap();
    }
    let old = w.commit();
    let started = Instant::now();
    let mut rng = Rng(7);
    let mut left = writes;
    while left > 0 {
        let mut w = db.write_txn(&[&t]).unwrap();
        for _ in 0..100.min(left) {
            random_write(&t, &mut w, &mut rng, 2000, 4);
            left -= 1;
        }
        w.commit();
    }
    let all: Vec<(u32, i64)> = t
        .all(&old)
        .unwrap()
        .map(|(a, _)| (a.id, a.balance))
        .collect();
    assert_eq!(all.len(), 1000);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, &(id, b))| id == i as u32 && b == 7)
    );
    println!(
        "long-lived snapshot: {writes} writes after it in {:.2} s; it still reads its 1000 objects exactly; RSS {:.1} MB",
        started.elapsed().as_secs_f64(),
        rss_mb()
    );
}

#[test]
fn ten_thousand_tables_commit_and_register() {
    // A commit cloned the whole list of table states (10,000 tables: 104 µs
    // a one-row commit) and registration was quadratic. Functional check
    // across the root's levels: each commit changes only its own table.
    let n = env("STRESS_TABLES", 3_000) as usize;
    let db = Db::new();
    let tables: Vec<Table<Account>> = (0..n).map(|i| account_table(&format!("t{i}"))).collect();
    let started = Instant::now();
    for t in &tables {
        db.register_table(t).unwrap();
    }
    let registered = started.elapsed();
    let commits = Instant::now();
    for (i, t) in tables.iter().enumerate().step_by(7) {
        let mut w = db.write_txn(&[t]).unwrap();
        t.insert(
            &mut w,
            Account {
                id: i as u32,
                balance: 1,
            },
        )
        .unwrap();
        w.commit();
    }
    let r = db.read_txn();
    for (i, t) in tables.iter().enumerate() {
        assert_eq!(
            t.num_objects(&r).unwrap(),
            usize::from(i % 7 == 0),
            "table {i}"
        );
    }
    println!(
        "{n} tables: registered in {:.3} s, {} one-row commits in {:.3} s",
        registered.as_secs_f64(),
        n.div_ceil(7),
        commits.elapsed().as_secs_f64()
    );
}

//! Readers iterate old snapshots on other threads while a writer commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use part::Tree;

#[test]
fn readers_see_consistent_snapshots_during_writes() {
    // Invariant of every published tree: keys 0..n all map to `generation`.
    let current = Arc::new(RwLock::new(Tree::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let current = current.clone();
        let stop = stop.clone();
        readers.push(std::thread::spawn(move || {
            let mut checks = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let snap = current.read().clone();
                let mut seen = None;
                let mut count = 0;
                for (k, v) in snap.iter() {
                    let g = *seen.get_or_insert(*v);
                    assert_eq!(g, *v, "mixed generations in one snapshot");
                    assert_eq!(k, &(count as u64).to_be_bytes()[..]);
                    count += 1;
                }
                assert_eq!(count, snap.len());
                checks += 1;
            }
            checks
        }));
    }
    let watch_waiter = {
        let w = current.read().root_watch();
        std::thread::spawn(move || w.wait_timeout(Duration::from_secs(60)))
    };
    for generation in 0..200u64 {
        let tree = current.read().clone();
        let mut txn = tree.txn();
        let n = 100 + (generation % 50);
        for k in 0..n {
            txn.insert(&k.to_be_bytes(), generation);
        }
        for k in n..tree.len() as u64 {
            txn.delete(&k.to_be_bytes());
        }
        let (new, closer) = txn.commit();
        *current.write() = new;
        closer.close();
    }
    assert!(watch_waiter.join().unwrap(), "root watch never fired");
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}

//! part_* rows and the map baselines.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::time::Instant;

use part::Tree;
use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::harness::{Body, Case, case, timed};

fn k4(i: u32) -> [u8; 4] {
    i.to_be_bytes()
}
fn k8(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

fn tree8(n: u64, from: u64) -> Tree<u64> {
    let mut txn = Tree::new_root_only_watch().txn();
    for i in from..n + from {
        txn.insert(&k8(i), i);
    }
    txn.commit_and_close()
}

fn insert_case(root_only: bool) -> Body {
    Box::new(move |iters| {
        timed(|| {
            for _ in 0..iters {
                let tree: Tree<u32> = if root_only {
                    Tree::new_root_only_watch()
                } else {
                    Tree::new()
                };
                let mut txn = tree.txn();
                for i in 1000..2000u32 {
                    txn.insert(&k4(i), i);
                }
                black_box(txn.commit_and_close());
            }
            iters * 1000
        })
    })
}

fn txn_case(n: u64) -> Body {
    let mut tree = Tree::<u64>::new_root_only_watch();
    Box::new(move |iters| {
        timed(|| {
            for _ in 0..iters {
                let mut txn = tree.txn();
                for i in 0..n {
                    txn.insert(&k8(i), i);
                }
                tree = txn.commit_and_close();
            }
            iters * n
        })
    })
}

fn txn_delete_case(n: u64) -> Body {
    let tree = tree8(n, 0);
    Box::new(move |iters| {
        timed(|| {
            for _ in 0..iters {
                let mut txn = tree.txn();
                for i in 0..n {
                    txn.delete(&k8(i));
                }
                black_box(txn.len());
            }
            iters * n
        })
    })
}

/// A root-only tree of the 1,000 keys 1000..2000; per round one txn
/// applying `update` to every key, committed as the next round's tree.
fn update_each_case(update: fn(&mut part::Txn<u32>, &[u8])) -> Body {
    let mut txn = Tree::<u32>::new_root_only_watch().txn();
    for i in 1000..2000u32 {
        txn.insert(&k4(i), i);
    }
    let mut tree = txn.commit_and_close();
    Box::new(move |iters| {
        timed(|| {
            for _ in 0..iters {
                let mut txn = tree.txn();
                for i in 1000..2000u32 {
                    update(&mut txn, &k4(i));
                }
                tree = txn.commit_and_close();
            }
            iters * 1000
        })
    })
}

pub fn shuffled(n: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..n).collect();
    v.shuffle(&mut rand::rngs::StdRng::seed_from_u64(42));
    v
}

pub fn cases() -> Vec<Case> {
    let mut v = vec![
        case("part_insert", || insert_case(false)),
        case("part_insert_root_only_watch", || insert_case(true)),
        case("part_modify", || {
            update_each_case(|txn, k| {
                txn.modify(k, |v| v.map_or(0, |v| v + 1));
            })
        }),
        case("part_get_insert", || {
            update_each_case(|txn, k| {
                let v = txn.get(k).copied().unwrap_or(0);
                txn.insert(k, v + 1);
            })
        }),
        case("part_replace", || {
            let mut txn = Tree::<u32>::new_root_only_watch().txn();
            for i in 0..1000u32 {
                txn.insert(&k4(i), i);
            }
            let tree = txn.commit_and_close();
            let mut txn = tree.txn();
            Box::new(move |iters| {
                timed(|| {
                    for i in 0..iters {
                        txn.insert(&k4(0), i as u32);
                    }
                    iters
                })
            })
        }),
    ];
    for (name, n) in [
        ("part_txn_1", 1),
        ("part_txn_10", 10),
        ("part_txn_100", 100),
        ("part_txn_1000", 1000),
    ] {
        v.push(case(name, move || txn_case(n)));
    }
    for (name, n) in [
        ("part_txn_delete_1", 1),
        ("part_txn_delete_10", 10),
        ("part_txn_delete_100", 100),
        ("part_txn_delete_1000", 1000),
    ] {
        v.push(case(name, move || txn_delete_case(n)));
    }
    v.push(case("part_get", || {
        let tree = tree8(1000, 0);
        Box::new(move |iters| {
            timed(|| {
                for _ in 0..iters {
                    for i in 0..1000u64 {
                        black_box(tree.get(&k8(i)));
                    }
                }
                iters * 1000
            })
        })
    }));
    v.push(case("part_iterate_all", || {
        let tree = tree8(1000, 1);
        Box::new(move |iters| {
            timed(|| {
                let mut n = 0;
                for _ in 0..iters {
                    for (_, v) in tree.iter() {
                        n += 1;
                        black_box(v);
                    }
                }
                n
            })
        })
    }));
    v.push(case("part_delete_random", || {
        let tree = tree8(100_000, 0);
        let keys = shuffled(100_000);
        Box::new(move |iters| {
            timed(|| {
                for _ in 0..iters {
                    let mut txn = tree.txn();
                    for &k in &keys {
                        txn.delete(&k8(k));
                    }
                    black_box(txn.len());
                }
                iters * 100_000
            })
        })
    }));
    v.extend(baselines());
    v
}

macro_rules! map_baselines {
    ($v:ident, $prefix:literal, $new:expr, $insert:ident, $remove:ident, $ty:ty) => {
        $v.push(case(concat!($prefix, "_insert"), || {
            Box::new(|iters| {
                timed(|| {
                    for _ in 0..iters {
                        let mut m: $ty = $new;
                        for i in 1000..2000u32 {
                            m.$insert(i, i);
                        }
                        black_box(m);
                    }
                    iters * 1000
                })
            })
        }));
        $v.push(case(concat!($prefix, "_get"), || {
            let mut m: $ty = $new;
            for i in 0..1000u32 {
                m.$insert(i, i);
            }
            Box::new(move |iters| {
                timed(|| {
                    for _ in 0..iters {
                        for i in 0..1000u32 {
                            black_box(m.get(&i));
                        }
                    }
                    iters * 1000
                })
            })
        }));
        $v.push(case(concat!($prefix, "_iterate"), || {
            let mut m: $ty = $new;
            for i in 1..=1000u32 {
                m.$insert(i, i);
            }
            Box::new(move |iters| {
                timed(|| {
                    let mut n = 0;
                    for _ in 0..iters {
                        for e in m.iter() {
                            n += 1;
                            black_box(e);
                        }
                    }
                    n
                })
            })
        }));
        $v.push(case(concat!($prefix, "_delete_random"), || {
            let mut m: $ty = $new;
            for i in 0..100_000u32 {
                m.$insert(i, i);
            }
            let keys: Vec<u32> = shuffled(100_000).into_iter().map(|k| k as u32).collect();
            Box::new(move |iters| {
                let mut spent = std::time::Duration::ZERO;
                for _ in 0..iters {
                    // The copy is not timed: persistent maps copy in O(1),
                    // std maps in O(n), which would swamp the deletes.
                    let mut c = m.clone();
                    let t = Instant::now();
                    for k in &keys {
                        c.$remove(k);
                    }
                    spent += t.elapsed();
                    black_box(c);
                }
                (iters * 100_000, spent)
            })
        }));
    };
}

fn baselines() -> Vec<Case> {
    let mut v = Vec::new();
    map_baselines!(v, "baseline_btreemap", BTreeMap::new(), insert, remove, BTreeMap<u32, u32>);
    map_baselines!(v, "baseline_hashmap", HashMap::new(), insert, remove, HashMap<u32, u32>);
    map_baselines!(v, "baseline_imbl_ordmap", imbl::OrdMap::new(), insert, remove, imbl::OrdMap<u32, u32>);
    map_baselines!(
        v,
        "baseline_rpds_rbt",
        rpds::RedBlackTreeMapSync::new_sync(),
        insert_mut,
        remove_mut,
        rpds::RedBlackTreeMapSync<u32, u32>
    );
    v
}

//! Longest-prefix-match rows: inserting IPv4 prefixes into a table with a
//! prefix index, and looking addresses up by longest match.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use part::{Read, Tree};
use statedb::{BitPrefix, Db, Index, LpmIndex, LpmKey, Table};

use crate::harness::{Case, case, timed};

#[derive(Clone, Debug)]
struct Route {
    id: u32,
    dst: IpNet,
}

/// Deterministic prefixes: lengths 8..=32 spread over 10.0.0.0/8 and
/// beyond, so that they nest.
fn prefixes(n: u32) -> Vec<IpNet> {
    (0..n)
        .map(|i| {
            let h = i.wrapping_mul(2_654_435_761);
            let len = 8 + (h % 25) as u8;
            let addr = Ipv4Addr::from(0x0a00_0000 | (h >> 8));
            IpNet::V4(Ipv4Net::new(addr, len).expect("length").trunc())
        })
        .collect()
}

fn table() -> (Db, Table<Route>, Index<Route, IpNet>) {
    let by_id: Index<Route, u32> = Index::unique("id", |r: &Route, k| k.push(&r.id));
    let by_dst: Index<Route, IpNet> = Index::non_unique("dst", |r: &Route, k| k.push(&r.dst));
    let t = Table::builder("routes", &by_id)
        .index(&by_dst)
        .build()
        .expect("table");
    let db = Db::new();
    db.register_table(&t).expect("register");
    (db, t, by_dst)
}

fn insert_case(n: u32) -> crate::harness::Body {
    let (db, t, _) = table();
    let nets = prefixes(n);
    Box::new(move |iters| {
        timed(|| {
            for _ in 0..iters {
                let mut w = db.write_txn(&[&t]).expect("txn");
                for (i, dst) in nets.iter().enumerate() {
                    t.insert(
                        &mut w,
                        Route {
                            id: i as u32,
                            dst: *dst,
                        },
                    )
                    .expect("insert");
                }
                w.abort();
            }
            iters * u64::from(n)
        })
    })
}

/// The reference's `lpm_index_test.go` object: an id, a prefix on a
/// unique LPM index, and a port range on a second LPM index.
#[derive(Clone, Debug)]
struct LpmObject {
    id: u16,
    prefix: IpNet,
    port: u16,
    port_len: usize,
}

struct LpmTable {
    db: Db,
    t: Table<LpmObject>,
    by_prefix: LpmIndex<LpmObject, IpNet>,
}

/// The reference's `newLPMTestTable`. Its port index is unique, but every
/// benchmark object has the same port key (0/0), which the reference
/// overwrites silently; ours refuses a unique conflict, so the port index
/// here is non-unique: the same one extra index entry per object.
fn lpm_table() -> LpmTable {
    let by_id: Index<LpmObject, u16> = Index::unique("id", |o: &LpmObject, k| k.push(&o.id));
    let by_prefix: LpmIndex<LpmObject, IpNet> =
        LpmIndex::unique("prefix", |o: &LpmObject, k| k.push(&o.prefix));
    let by_port: LpmIndex<LpmObject, BitPrefix> =
        LpmIndex::non_unique("port", |o: &LpmObject, k| {
            if let Ok(bits) = BitPrefix::new(&o.port.to_be_bytes(), o.port_len) {
                k.push(&bits)
            }
        });
    let t = Table::builder("lpm-test", &by_id)
        .lpm_index(&by_prefix)
        .lpm_index(&by_port)
        .build()
        .expect("table");
    let db = Db::new();
    db.register_table(&t).expect("register");
    LpmTable { db, t, by_prefix }
}

fn host(addr: u32) -> IpNet {
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(addr), 32).expect("length"))
}

fn object(id: u16, prefix: IpNet) -> LpmObject {
    LpmObject {
        id,
        prefix,
        port: 0,
        port_len: 0,
    }
}

/// `lpm/trie_test.go`'s `numObjectsToInsert`.
const TRIE_OBJECTS: usize = 1_000;

/// The stored LPM keys of the /32s of `i` in 0..1,000 (`le`: the address
/// from little-endian bytes of `i`, as the insert and delete rows do).
fn trie_keys(le: bool) -> Vec<part::Key> {
    (0..TRIE_OBJECTS as u32)
        .map(|i| {
            let a = if le {
                u32::from_be_bytes(i.to_le_bytes())
            } else {
                i
            };
            host(a).to_bits().lpm_key()
        })
        .collect()
}

fn trie_of(keys: &[part::Key]) -> Tree<usize> {
    let mut txn = Tree::new().txn();
    for (i, k) in keys.iter().enumerate() {
        txn.insert(k, i);
    }
    txn.commit_and_close()
}

/// `Benchmark_txn_insert/batchSize=N`: 1,000 /32s in transactions of
/// `batch`, into one tree kept across iterations.
fn trie_insert(batch: usize) -> crate::harness::Body {
    let keys = trie_keys(true);
    let mut tree: Tree<usize> = Tree::new();
    Box::new(move |iters| {
        timed(|| {
            for _ in 0..iters {
                for (c, chunk) in keys.chunks(batch).enumerate() {
                    let mut txn = tree.txn();
                    for (j, k) in chunk.iter().enumerate() {
                        txn.insert(k, c * batch + j);
                    }
                    tree = txn.commit_and_close();
                }
            }
            iters * TRIE_OBJECTS as u64
        })
    })
}

/// `Benchmark_txn_delete/batchSize=N`: from the full tree, delete in
/// transactions of `batch` that are not committed.
fn trie_delete(batch: usize) -> crate::harness::Body {
    let keys = trie_keys(true);
    let tree = trie_of(&keys);
    Box::new(move |iters| {
        timed(|| {
            for _ in 0..iters {
                for chunk in keys.chunks(batch) {
                    let mut txn = tree.txn();
                    for k in chunk {
                        black_box(txn.delete(k));
                    }
                }
            }
            iters * TRIE_OBJECTS as u64
        })
    })
}

/// Iterates the entries under `key` (`prefix`) or from `key` on, counting
/// them.
fn trie_scan(tree: Tree<usize>, key: part::Key, prefix: bool) -> crate::harness::Body {
    Box::new(move |iters| {
        timed(|| {
            let mut n = 0u64;
            for _ in 0..iters {
                let entries = if prefix {
                    tree.prefix_iter(&key)
                } else {
                    tree.lower_bound(&key)
                };
                for (_, v) in entries {
                    black_box(v);
                    n += 1;
                }
            }
            n
        })
    })
}

pub fn cases() -> Vec<Case> {
    vec![
        case("lpm_txn_insert_1", || trie_insert(1)),
        case("lpm_txn_insert_10", || trie_insert(10)),
        case("lpm_txn_insert_100", || trie_insert(100)),
        case("lpm_txn_delete_1", || trie_delete(1)),
        case("lpm_txn_delete_10", || trie_delete(10)),
        case("lpm_txn_delete_100", || trie_delete(100)),
        // Benchmark_LPM_Lookup: each /32 by longest-prefix match.
        case("lpm_lookup", || {
            let keys = trie_keys(false);
            let tree = trie_of(&keys);
            let paths: Vec<part::Key> = keys.iter().map(|k| k[..k.len() - 1].into()).collect();
            Box::new(move |iters| {
                timed(|| {
                    for _ in 0..iters {
                        for (i, path) in paths.iter().enumerate() {
                            let n = tree.longest_prefix(path).expect("match");
                            let mut key = part::Key::from_slice(&path[..n]);
                            key.push(part::LPM_END);
                            assert_eq!(tree.get(&key), Some(&i), "lookup mismatch");
                        }
                    }
                    iters * TRIE_OBJECTS as u64
                })
            })
        }),
        // Benchmark_LPM_All: every entry.
        case("lpm_all", || {
            trie_scan(trie_of(&trie_keys(false)), part::Key::new(), true)
        }),
        // Benchmark_LPM_Prefix: the entries within 0.0.0.0/16 (all 1,000).
        case("lpm_prefix", || {
            let within = IpNet::V4(Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 16).expect("length"));
            trie_scan(
                trie_of(&trie_keys(false)),
                within.to_bits().lpm_path(),
                true,
            )
        }),
        // Benchmark_LPM_LowerBound: from the 500th key on (500 entries).
        case("lpm_lower_bound", || {
            let keys = trie_keys(false);
            let from = keys[TRIE_OBJECTS / 2].clone();
            trie_scan(trie_of(&keys), from, false)
        }),
        // BenchmarkDB_WriteTxn_1_LPMIndex: one insert per transaction,
        // /32s of little-endian i, ids wrapping at 65,536.
        case("db_write_txn_1_lpm_index", || {
            let lt = lpm_table();
            let mut next = 0u32;
            Box::new(move |iters| {
                timed(|| {
                    for _ in 0..iters {
                        let i = next;
                        next = next.wrapping_add(1);
                        let addr = u32::from_be_bytes(i.to_le_bytes());
                        let mut w = lt.db.write_txn(&[&lt.t]).expect("txn");
                        lt.t.insert(&mut w, object(i as u16, host(addr)))
                            .expect("insert");
                        w.commit();
                    }
                    iters
                })
            })
        }),
        // BenchmarkDB_WriteTxn_100_LPMIndex: batches of 100, as the
        // reference writes them (ids and /32s 0..100 of each batch).
        case("db_write_txn_100_lpm_index", || {
            let lt = lpm_table();
            Box::new(move |iters| {
                timed(|| {
                    let mut n = iters;
                    while n > 0 {
                        let batch = n.min(100);
                        let mut w = lt.db.write_txn(&[&lt.t]).expect("txn");
                        for i in 0..batch {
                            lt.t.insert(&mut w, object(i as u16, host(i as u32)))
                                .expect("insert");
                        }
                        w.commit();
                        n -= batch;
                    }
                    iters
                })
            })
        }),
        // BenchmarkDB_LPMIndex_Get: 10,000 /32s, each looked up by its
        // address.
        case("db_lpm_index_get", || {
            let lt = lpm_table();
            let mut w = lt.db.write_txn(&[&lt.t]).expect("txn");
            let addrs: Vec<IpAddr> = (0..10_000u32)
                .map(|i| IpAddr::V4(Ipv4Addr::from(i)))
                .collect();
            for (i, a) in addrs.iter().enumerate() {
                lt.t.insert(&mut w, object(i as u16, IpNet::from(*a)))
                    .expect("insert");
            }
            w.commit();
            let queries: Vec<_> = addrs.iter().map(|a| lt.by_prefix.query(a)).collect();
            Box::new(move |iters| {
                timed(|| {
                    let r = lt.db.read_txn();
                    for _ in 0..iters {
                        for q in &queries {
                            let hit = lt.t.get(&r, q.clone()).expect("get");
                            assert!(hit.is_some(), "not found");
                            black_box(hit);
                        }
                    }
                    iters * queries.len() as u64
                })
            })
        }),
        case("db_lpm_insert_1k", || insert_case(1_000)),
        case("db_lpm_insert_100k", || insert_case(100_000)),
        case("db_lpm_lookup", || {
            let (db, t, by_dst) = table();
            let mut w = db.write_txn(&[&t]).expect("txn");
            for (i, dst) in prefixes(100_000).into_iter().enumerate() {
                t.insert(&mut w, Route { id: i as u32, dst })
                    .expect("insert");
            }
            w.commit();
            let addrs: Vec<IpAddr> = (0..1000u32)
                .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i.wrapping_mul(40_503))))
                .collect();
            Box::new(move |iters| {
                timed(|| {
                    for _ in 0..iters {
                        let r = db.read_txn();
                        for a in &addrs {
                            let hit = t.longest_prefix_match(&r, &by_dst, *a).expect("lpm");
                            black_box(hit.count());
                        }
                    }
                    iters * 1000
                })
            })
        }),
    ]
}

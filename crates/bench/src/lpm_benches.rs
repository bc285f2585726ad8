//! Longest-prefix-match rows: inserting IPv4 prefixes into a table with a
//! prefix index, and looking addresses up by longest match.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use statedb::{Db, Index, Table};

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

pub fn cases() -> Vec<Case> {
    vec![
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

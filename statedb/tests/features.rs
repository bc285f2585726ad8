//! The reference's current API: modify, insert_watch, observable changes,
//! derived tables, longest-prefix match, composite keys.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use common::*;
use futures_core::Stream;
use ipnet::IpNet;
use proptest::prelude::*;
use statedb::{Db, DeriveResult, Error, Index, Table, WatchSet, WriteError, derive};

#[test]
fn modify_merges_with_the_stored_object() {
    let f = fixture("objs");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    let merge = |old: &Obj, new: &Obj| obj(old.id, &[], old.value + new.value);
    assert!(
        f.table
            .modify(&mut w, obj(1, &[], 5), merge)
            .unwrap()
            .is_none()
    );
    let old = f.table.modify(&mut w, obj(1, &[], 2), merge).unwrap();
    assert_eq!(old.unwrap().value, 5);
    assert_eq!(f.table.get(&w, f.id.query(&1)).unwrap().unwrap().0.value, 7);
    // A merge that changes the primary key is refused; nothing changes.
    let err = f
        .table
        .modify(&mut w, obj(1, &[], 0), |_, _| obj(2, &[], 0))
        .unwrap_err();
    assert_eq!(
        err,
        Error::Write(WriteError::PrimaryKeyChanged("objs".into()))
    );
    assert_eq!(f.table.num_objects(&w).unwrap(), 1);
    assert_eq!(f.table.get(&w, f.id.query(&1)).unwrap().unwrap().0.value, 7);
}

#[test]
fn insert_watch_closes_on_change_delete_or_abort_only() {
    let f = fixture("objs");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    let (_, aborted) = f.table.insert_watch(&mut w, obj(1, &[], 0)).unwrap();
    w.abort();
    assert!(aborted.is_closed(), "an aborted insert's watch stays open");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    let (_, w1) = f.table.insert_watch(&mut w, obj(1, &[], 0)).unwrap();
    let (_, w2) = f.table.insert_watch(&mut w, obj(2, &[], 0)).unwrap();
    w.commit();
    assert!(!w1.is_closed() && !w2.is_closed());
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(3, &[], 0)).unwrap();
    f.table.insert(&mut w, obj(1, &["changed"], 0)).unwrap();
    w.commit();
    assert!(w1.is_closed());
    assert!(!w2.is_closed(), "a neighbour's change closed the watch");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.delete(&mut w, &obj(2, &[], 0)).unwrap();
    w.commit();
    assert!(w2.is_closed());
}

/// Polls a stream once with a no-op waker.
fn poll_once<S: futures_core::Stream + Unpin>(s: &mut S) -> std::task::Poll<Option<S::Item>> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    Pin::new(s).poll_next(&mut cx)
}

#[tokio::test]
async fn observe_streams_every_change_and_releases_the_graveyard() {
    let f = fixture("objs");
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    for i in 0..3 {
        f.table.insert(&mut w, obj(i, &[], 0)).unwrap();
    }
    w.commit();
    let mut stream = f.table.observe(&f.db).unwrap();
    let next = |s: &mut statedb::Observer<Obj>| match poll_once(s) {
        std::task::Poll::Ready(Some(c)) => Some((c.object.id, c.deleted)),
        _ => None,
    };
    assert_eq!(
        (0..3).map(|_| next(&mut stream)).collect::<Vec<_>>(),
        [Some((0, false)), Some((1, false)), Some((2, false))]
    );
    assert!(poll_once(&mut stream).is_pending());
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.delete(&mut w, &obj(1, &[], 0)).unwrap();
    f.table.insert(&mut w, obj(4, &[], 0)).unwrap();
    w.commit();
    // Deleted objects wait in the graveyard for the slow consumer.
    assert_eq!(f.table.graveyard_len(&f.db.read_txn()).unwrap(), 1);
    let task = tokio::spawn(async move {
        let waiter = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx));
        let a = waiter.await.unwrap();
        let b = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx))
            .await
            .unwrap();
        ((a.object.id, a.deleted), (b.object.id, b.deleted), stream)
    });
    let (a, b, stream) = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!([a, b], [(1, true), (4, false)]);
    drop(stream);
    // Dropping the observer lets the next commit drop the graveyard.
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.insert(&mut w, obj(9, &[], 0)).unwrap();
    w.commit();
    assert_eq!(f.table.graveyard_len(&f.db.read_txn()).unwrap(), 0);
}

#[test]
fn blocking_observer_waits_for_changes_from_another_thread() {
    let f = fixture("objs");
    let mut changes = f.table.observe(&f.db).unwrap().blocking();
    let (db, table) = (f.db.clone(), f.table.clone());
    let writer = std::thread::spawn(move || {
        for i in 0..5 {
            let mut w = db.write_txn(&[&table]).unwrap();
            table.insert(&mut w, obj(i, &[], 0)).unwrap();
            w.commit();
        }
    });
    let ids: Vec<u64> = changes.by_ref().take(5).map(|c| c.object.id).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
    writer.join().unwrap();
}

#[derive(Clone, Debug, PartialEq)]
struct Doubled {
    id: u64,
    twice: u32,
}

fn wait_for(what: &str, mut cond: impl FnMut() -> (bool, WatchSet)) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (done, watches) = cond();
        if done {
            return;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "timed out waiting for {what}");
        watches.wait_timeout(left);
    }
}

#[test]
fn derive_keeps_the_output_in_sync_and_propagates_initialization() {
    let f = fixture("input");
    let by_id: Index<Doubled, u64> = Index::unique("id", |d: &Doubled, k| k.push(&d.id));
    let out = Table::new("doubled", &by_id).unwrap();
    f.db.register_table(&out).unwrap();
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    let init = f.table.register_initializer(&mut w, "load").unwrap();
    f.table.insert(&mut w, obj(1, &[], 10)).unwrap();
    f.table.insert(&mut w, obj(2, &["skip"], 20)).unwrap();
    w.commit();
    let running = derive(&f.db, &f.table, &out, |o: &Obj, deleted| {
        let d = Doubled {
            id: o.id,
            twice: o.value * 2,
        };
        if o.tags.iter().any(|t| t == "skip") {
            DeriveResult::Skip
        } else if deleted {
            DeriveResult::Delete(d)
        } else {
            DeriveResult::Insert(d)
        }
    })
    .unwrap();
    let state = |db: &Db| -> (BTreeMap<u64, u32>, bool, WatchSet) {
        let r = db.read_txn();
        let (all, w) = out.all_watch(&r).unwrap();
        let (init, iw) = out.initialized(&r).unwrap();
        let mut set = WatchSet::new();
        set.add(w);
        set.add(iw);
        (all.map(|(d, _)| (d.id, d.twice)).collect(), init, set)
    };
    wait_for("first object derived", || {
        let (m, _, set) = state(&f.db);
        (m.get(&1) == Some(&20), set)
    });
    // Not initialized while the input is not.
    assert!(!state(&f.db).1);
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    init.done(&mut w).unwrap();
    f.table.insert(&mut w, obj(3, &[], 30)).unwrap();
    w.commit();
    wait_for("initialized", || {
        let (m, init, set) = state(&f.db);
        (init && m.contains_key(&3), set)
    });
    let mut w = f.db.write_txn(&[&f.table]).unwrap();
    f.table.delete(&mut w, &obj(1, &[], 0)).unwrap();
    w.commit();
    wait_for("delete derived", || {
        let (m, _, set) = state(&f.db);
        (!m.contains_key(&1), set)
    });
    assert_eq!(state(&f.db).0.into_iter().collect::<Vec<_>>(), [(3, 60)]);
    assert!(running.last_error().is_none());
    running.stop();
}

#[derive(Clone, Debug)]
struct Route {
    id: u32,
    dst: IpNet,
}

fn route_table() -> (Db, Table<Route>, Index<Route, IpNet>) {
    let by_id: Index<Route, u32> = Index::unique("id", |r: &Route, k| k.push(&r.id));
    let by_dst: Index<Route, IpNet> = Index::non_unique("dst", |r: &Route, k| k.push(&r.dst));
    let t = Table::builder("routes", &by_id)
        .index(&by_dst)
        .build()
        .unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    (db, t, by_dst)
}

fn arb_net() -> impl Strategy<Value = IpNet> {
    // A small address space so that prefixes nest and collide.
    prop_oneof![
        (0u8..4, 0u8..4, 0u8..=32).prop_map(|(a, b, len)| {
            IpNet::new(IpAddr::from([10, a, b, 0]), len)
                .unwrap()
                .trunc()
        }),
        (0u16..4, 0u8..=128).prop_map(|(a, len)| {
            IpNet::new(IpAddr::from([0xfd00, a, 0, 0, 0, 0, 0, 1]), len)
                .unwrap()
                .trunc()
        }),
    ]
}

fn arb_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4, 0u8..4, any::<u8>()).prop_map(|(a, b, c)| IpAddr::from([10, a, b, c])),
        (0u16..4, any::<u16>()).prop_map(|(a, z)| IpAddr::from([0xfd00, a, 0, 0, 0, 0, 0, z])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn longest_prefix_match_agrees_with_brute_force(
        nets in prop::collection::vec(arb_net(), 0..40),
        addrs in prop::collection::vec(arb_addr(), 1..20),
        within in arb_net(),
    ) {
        let (db, t, by_dst) = route_table();
        let mut w = db.write_txn(&[&t]).unwrap();
        for (i, dst) in nets.iter().enumerate() {
            t.insert(&mut w, Route { id: i as u32, dst: *dst }).unwrap();
        }
        let r = w.commit();
        for addr in addrs {
            let best = nets.iter().filter(|n| n.contains(&addr)).map(|n| n.prefix_len()).max();
            let mut want: Vec<u32> = nets
                .iter()
                .enumerate()
                .filter(|(_, n)| n.contains(&addr) && Some(n.prefix_len()) == best)
                .map(|(i, _)| i as u32)
                .collect();
            want.sort();
            let mut got: Vec<u32> = t.longest_prefix_match(&r, &by_dst, addr).unwrap().map(|(o, _)| o.id).collect();
            got.sort();
            prop_assert_eq!(got, want, "lpm {}", addr);
        }
        let mut want: Vec<u32> = nets
            .iter()
            .enumerate()
            .filter(|(_, n)| within.contains(*n))
            .map(|(i, _)| i as u32)
            .collect();
        want.sort();
        let mut got: Vec<u32> = t.prefixes_within(&r, &by_dst, within).unwrap().map(|(o, _)| o.id).collect();
        got.sort();
        prop_assert_eq!(got, want, "within {}", within);
        // Exact queries by prefix.
        for (i, n) in nets.iter().enumerate() {
            prop_assert!(t.list(&r, by_dst.query(n)).unwrap().any(|(o, _)| o.id == i as u32));
        }
    }
}

#[test]
fn composite_keys_need_no_hand_written_bytes() {
    #[derive(Clone, Debug)]
    struct Neighbor {
        dev: String,
        addr: IpAddr,
        vlan: u16,
    }
    let by_key: Index<Neighbor, (String, IpAddr)> =
        Index::unique("key", |n: &Neighbor, k| k.push(&(n.dev.clone(), n.addr)));
    let by_dev_vlan: Index<Neighbor, (String, u16, IpAddr)> =
        Index::non_unique("dev-vlan", |n: &Neighbor, k| {
            k.push(&(n.dev.clone(), n.vlan, n.addr))
        });
    let t = Table::builder("neighbors", &by_key)
        .index(&by_dev_vlan)
        .build()
        .unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    let mut w = db.write_txn(&[&t]).unwrap();
    for (dev, last, vlan) in [
        ("eth0", 2, 1),
        ("eth0", 1, 2),
        ("eth", 3, 1),
        ("eth0\0", 4, 1),
    ] {
        t.insert(
            &mut w,
            Neighbor {
                dev: dev.into(),
                addr: IpAddr::from([10, 0, 0, last]),
                vlan,
            },
        )
        .unwrap();
    }
    let r = w.commit();
    let order: Vec<(String, u8)> = t
        .all(&r)
        .unwrap()
        .map(|(n, _)| match n.addr {
            IpAddr::V4(a) => (n.dev.clone(), a.octets()[3]),
            IpAddr::V6(_) => unreachable!(),
        })
        .collect();
    // Tuple order: "eth" < "eth0" < "eth0\0", then by address.
    assert_eq!(
        order,
        [
            ("eth".into(), 3),
            ("eth0".into(), 1),
            ("eth0".into(), 2),
            ("eth0\0".into(), 4)
        ]
    );
    let q = (String::from("eth0"), IpAddr::from([10, 0, 0, 1]));
    assert_eq!(t.get(&r, by_key.query(&q)).unwrap().unwrap().0.vlan, 2);
}

/// `Db::tables` lists every table with its indexes and state;
/// `Index::query_text` queries any index with a key typed as text.
#[test]
fn tables_are_listed_and_queried_by_keys_given_as_text() {
    #[derive(Debug)]
    struct Route {
        net: ipnet::IpNet,
        dev: (String, u16),
    }
    let by_net: Index<Route, ipnet::IpNet> = Index::unique("net", |r: &Route, k| k.push(&r.net));
    let by_dev: Index<Route, (String, u16)> =
        Index::non_unique("dev", |r: &Route, k| k.push(&r.dev));
    let routes = Table::builder("routes", &by_net)
        .index(&by_dev)
        .build()
        .unwrap();
    let other = Table::new(
        "other",
        &Index::<u8, u8>::unique("id", |o: &u8, k| k.push(o)),
    )
    .unwrap();
    let db = Db::new();
    db.register_table(&routes).unwrap();
    db.register_table(&other).unwrap();
    let mut w = db.write_txn(&[&routes, &other]).unwrap();
    let mut changes = routes.changes(&mut w).unwrap();
    let _init = other.register_initializer(&mut w, "later").unwrap();
    for (net, dev, vlan) in [("10.0.0.0/8", "eth0", 1), ("192.168.0.0/16", "eth0", 2)] {
        let r = Route {
            net: net.parse().unwrap(),
            dev: (dev.to_string(), vlan),
        };
        routes.insert(&mut w, r).unwrap();
    }
    w.commit();
    let mut w = db.write_txn(&[&routes]).unwrap();
    routes
        .delete(
            &mut w,
            &Route {
                net: "10.0.0.0/8".parse().unwrap(),
                dev: (String::new(), 0),
            },
        )
        .unwrap();
    let txn = w.commit();

    let info = db.tables(&txn);
    assert_eq!(info.len(), 2);
    let r = &info[0];
    assert_eq!((r.name.as_str(), r.objects, r.revision), ("routes", 1, 3));
    assert!(r.initialized);
    assert_eq!(r.graveyard, 1, "the iterator has not seen the delete");
    let names: Vec<(&str, bool, bool)> = r
        .indexes
        .iter()
        .map(|i| (i.name, i.unique, i.primary))
        .collect();
    assert_eq!(names, [("net", true, true), ("dev", false, false)]);
    assert!(!info[1].initialized);
    drop(changes.next(&txn).unwrap());

    let q = by_net.query_text("192.168.0.0/16").unwrap();
    assert_eq!(routes.get(&txn, q).unwrap().unwrap().0.dev.1, 2);
    let q = by_dev.query_text("eth0,2").unwrap();
    assert_eq!(routes.list(&txn, q).unwrap().count(), 1);
    let e = by_dev.query_text("eth0").unwrap_err();
    assert!(e.to_string().contains("pair"), "{e}");
    assert!(by_net.query_text("10.0.0.0/40").is_err());
}

/// Tables by name, untyped: every query kind with keys given as text, the
/// errors, and only tables registered as inspectable.
#[cfg(feature = "json")]
#[test]
fn inspectable_tables_answer_untyped_queries_by_name() {
    use statedb::{InspectError, QueryOp, TextQuery};

    let (hosts, _, _) = hosts_table();
    let hidden = Table::new(
        "hidden",
        &Index::<u8, u8>::unique("id", |o: &u8, k| k.push(o)),
    )
    .unwrap();
    let db = Db::new();
    db.register_inspectable(&hosts).unwrap();
    db.register_table(&hidden).unwrap();
    let mut w = db.write_txn(&[&hosts]).unwrap();
    for (name, port) in [("alpha", 80), ("beta", 443), ("beta2", 80), ("gamma", 8080)] {
        let h = Host {
            name: name.into(),
            port,
        };
        hosts.insert(&mut w, h).unwrap();
    }
    let txn = w.commit();
    assert!(
        db.table_by_name("hidden").is_none(),
        "not registered as inspectable"
    );
    assert!(db.table_by_name("nope").is_none());
    let t = db.table_by_name("hosts").unwrap();
    assert_eq!(t.info(&txn).unwrap().objects, 4);
    let names = |objs: Vec<statedb::AnyObject>| -> Vec<String> {
        objs.iter()
            .map(|o| o.json["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(t.all(&txn).unwrap()),
        ["alpha", "beta", "beta2", "gamma"]
    );
    let q = |index: Option<&str>, op, key: &str| TextQuery {
        index: index.map(str::to_string),
        op,
        key: key.to_string(),
    };
    assert_eq!(
        names(t.query(&txn, &q(None, QueryOp::Get, "beta")).unwrap()),
        ["beta"]
    );
    assert_eq!(
        names(t.query(&txn, &q(None, QueryOp::Prefix, "beta")).unwrap()),
        ["beta", "beta2"]
    );
    assert_eq!(
        names(
            t.query(&txn, &q(None, QueryOp::LowerBound, "beta2"))
                .unwrap()
        ),
        ["beta2", "gamma"]
    );
    assert_eq!(
        names(
            t.query(&txn, &q(Some("port"), QueryOp::List, "80"))
                .unwrap()
        ),
        ["alpha", "beta2"]
    );
    assert!(
        t.query(&txn, &q(None, QueryOp::Get, "zeta"))
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        t.query(&txn, &q(Some("color"), QueryOp::List, "red")),
        Err(InspectError::UnknownIndex { .. })
    ));
    let e = t
        .query(&txn, &q(Some("port"), QueryOp::List, "http"))
        .unwrap_err();
    assert!(
        matches!(&e, InspectError::BadKey { index, .. } if index == "port"),
        "{e}"
    );
    assert!(e.to_string().contains("u16"), "{e}");
    let (header, rows) = statedb::rows(&t.all(&txn).unwrap());
    assert_eq!(header, ["name", "port"]);
    assert_eq!(rows[3], ["gamma", "8080"]);
}

/// A table registered with its own columns renders them; one registered
/// without renders its JSON fields.
#[cfg(feature = "json")]
#[test]
fn table_rows_use_the_objects_own_columns() {
    #[derive(serde::Serialize)]
    struct Route {
        prefix: String,
        via: String,
        metric: u32,
    }
    impl statedb::TableRow for Route {
        fn table_header() -> Vec<String> {
            vec!["Prefix".into(), "Via (metric)".into()]
        }
        fn table_row(&self) -> Vec<String> {
            vec![
                self.prefix.clone(),
                format!("{} ({})", self.via, self.metric),
            ]
        }
    }
    let by_prefix: Index<Route, str> =
        Index::unique("prefix", |r: &Route, k| k.push(r.prefix.as_str()));
    let routes = Table::new("routes", &by_prefix).unwrap();
    let db = Db::new();
    db.register_inspectable_rows(&routes).unwrap();
    let mut w = db.write_txn(&[&routes]).unwrap();
    let r = Route {
        prefix: "10.0.0.0/8".into(),
        via: "eth0".into(),
        metric: 5,
    };
    routes.insert(&mut w, r).unwrap();
    let txn = w.commit();
    let t = db.table_by_name("routes").unwrap();
    let objects = t.all(&txn).unwrap();
    assert_eq!(
        objects[0].json["metric"], 5,
        "JSON is still the whole object"
    );
    let (header, rows) = t.rows(&objects);
    assert_eq!(header, ["Prefix", "Via (metric)"]);
    assert_eq!(rows, [["10.0.0.0/8", "eth0 (5)"]]);
    assert_eq!(t.header().unwrap().len(), 2);
}

/// `last_delete_revision` moves with deletes only; a change stream asked
/// to resume after a revision resumes exactly when no delete came since,
/// and otherwise replays the whole table and says so.
#[cfg(feature = "json")]
#[tokio::test]
async fn change_streams_resume_or_resync() {
    use futures::StreamExt;

    let by_id: Index<u32, u32> = Index::unique("id", |o: &u32, k| k.push(o));
    let nums = Table::new("nums", &by_id).unwrap();
    let db = Db::new();
    db.register_inspectable(&nums).unwrap();
    let write = |f: &dyn Fn(&mut statedb::WriteTxn)| {
        let mut w = db.write_txn(&[&nums]).unwrap();
        f(&mut w);
        w.commit()
    };
    let txn = write(&|w| {
        for i in 1..=3 {
            nums.insert(w, i).unwrap();
        }
    });
    assert_eq!(nums.last_delete_revision(&txn).unwrap(), 0);
    let seen = nums.revision(&txn).unwrap();
    write(&|w| {
        nums.insert(w, 4).unwrap();
    });
    let t = db.table_by_name("nums").unwrap();

    // Only inserts since `seen`: an exact resume.
    let mut c = t.changes(Some(seen)).unwrap();
    assert!(!c.resync());
    let first = c.next().await.unwrap().unwrap();
    assert_eq!((first.json.clone(), first.deleted), (4.into(), false));
    drop(c);

    // A delete since `seen`: it cannot be replayed, so everything is.
    let txn = write(&|w| {
        nums.delete(w, &2).unwrap();
    });
    assert_eq!(
        nums.last_delete_revision(&txn).unwrap(),
        nums.revision(&txn).unwrap()
    );
    let mut c = t.changes(Some(seen)).unwrap();
    assert!(c.resync());
    assert_eq!(c.after(), 0);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(c.next().await.unwrap().unwrap().json);
    }
    assert_eq!(got, [1, 3, 4].map(serde_json::Value::from));

    // A revision ahead of the table's (another incarnation): resync.
    assert!(t.changes(Some(seen + 100)).unwrap().resync());
    // From now: only what comes next.
    let mut c = t.changes(None).unwrap();
    assert!(!c.resync());
    write(&|w| {
        nums.delete(w, &1).unwrap();
    });
    let next = c.next().await.unwrap().unwrap();
    assert_eq!((next.json, next.deleted), (1.into(), true));
}

/// A prefix given as text on an IP prefix index, unique or not, finds the
/// networks within it.
#[cfg(feature = "json")]
#[test]
fn text_prefix_on_ip_prefix_indexes_finds_networks_within() {
    use statedb::{QueryOp, TextQuery};

    #[derive(serde::Serialize)]
    struct Route {
        id: u32,
        #[serde(skip)]
        dst: IpNet,
    }
    let by_id: Index<Route, u32> = Index::unique("id", |r: &Route, k| k.push(&r.id));
    let by_dst: Index<Route, IpNet> = Index::non_unique("dst", |r: &Route, k| k.push(&r.dst));
    let routes = Table::builder("routes", &by_id)
        .index(&by_dst)
        .build()
        .unwrap();
    let db = Db::new();
    db.register_inspectable(&routes).unwrap();
    let mut w = db.write_txn(&[&routes]).unwrap();
    for (id, dst) in [
        (1, "10.0.0.0/8"),
        (2, "10.1.0.0/16"),
        (3, "10.1.0.0/16"),
        (4, "10.0.0.0/7"),
        (5, "11.0.0.0/8"),
        (6, "2001:db8::/32"),
    ] {
        let r = Route {
            id,
            dst: dst.parse().unwrap(),
        };
        routes.insert(&mut w, r).unwrap();
    }
    let txn = w.commit();
    let t = db.table_by_name("routes").unwrap();
    let ids = |key: &str| -> Vec<u64> {
        let q = TextQuery {
            index: Some("dst".into()),
            op: QueryOp::Prefix,
            key: key.into(),
        };
        let mut v: Vec<u64> = t
            .query(&txn, &q)
            .unwrap()
            .iter()
            .map(|o| o.json["id"].as_u64().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids("10.0.0.0/8"), [1, 2, 3]);
    assert_eq!(ids("10.1.0.0/16"), [2, 3]);
    assert_eq!(ids("8.0.0.0/5"), [1, 2, 3, 4, 5]);
    assert_eq!(ids("2001:db8::/16"), [6]);
    assert!(ids("192.168.0.0/16").is_empty());
    let bad = TextQuery {
        index: Some("dst".into()),
        op: QueryOp::Prefix,
        key: "10.0.0.0/33".into(),
    };
    assert!(t.query(&txn, &bad).is_err());
}

/// The lending queries find exactly what the owning ones find, on a
/// snapshot and in a write transaction (which sees its own writes).
#[test]
fn lending_queries_match_the_owning_ones() {
    let (hosts, by_name, by_port) = hosts_table();
    let db = Db::new();
    db.register_table(&hosts).unwrap();
    let mut w = db.write_txn(&[&hosts]).unwrap();
    for (i, name) in ["a", "ab", "abc", "b", "ba", "c"].iter().enumerate() {
        let h = Host {
            name: name.to_string(),
            port: 80 + (i % 2) as u16,
        };
        hosts.insert(&mut w, h).unwrap();
    }
    let txn = w.commit();
    let mut w = db.write_txn(&[&hosts]).unwrap();
    let h = Host {
        name: "aa".into(),
        port: 80,
    };
    hosts.insert(&mut w, h).unwrap();
    hosts
        .delete(
            &mut w,
            &Host {
                name: "b".into(),
                port: 0,
            },
        )
        .unwrap();

    fn same<'t>(
        owned: statedb::Objects<Host>,
        lent: impl Iterator<Item = (&'t Host, u64)>,
    ) -> usize {
        let owned: Vec<(String, u64)> = owned.map(|(h, r)| (h.name.clone(), r)).collect();
        let lent: Vec<(String, u64)> = lent.map(|(h, r)| (h.name.clone(), r)).collect();
        assert_eq!(owned, lent);
        owned.len()
    }
    macro_rules! check {
        ($txn:expr, $all:expr) => {{
            let t = $txn;
            assert_eq!(same(hosts.all(t).unwrap(), hosts.all_ref(t).unwrap()), $all);
            for port in [80u16, 81, 82] {
                same(
                    hosts.list(t, by_port.query(&port)).unwrap(),
                    hosts.list_ref(t, by_port.query(&port)).unwrap(),
                );
            }
            for key in ["", "a", "ab", "b", "z"] {
                same(
                    hosts.prefix(t, by_name.query(key)).unwrap().0,
                    hosts.prefix_ref(t, by_name.query(key)).unwrap(),
                );
                same(
                    hosts.lower_bound(t, by_name.query(key)).unwrap().0,
                    hosts.lower_bound_ref(t, by_name.query(key)).unwrap(),
                );
                same(
                    hosts.list(t, by_name.query(key)).unwrap(),
                    hosts.list_ref(t, by_name.query(key)).unwrap(),
                );
                let owned = hosts.get(t, by_name.query(key)).unwrap();
                let lent = hosts.get_ref(t, by_name.query(key)).unwrap();
                assert_eq!(
                    owned.map(|(h, r)| (h.name.clone(), r)),
                    lent.map(|(h, r)| (h.name.clone(), r))
                );
            }
            same(
                hosts.prefix(t, by_port.query(&80)).unwrap().0,
                hosts.prefix_ref(t, by_port.query(&80)).unwrap(),
            );
        }};
    }
    check!(&txn, 6);
    check!(&w, 6); // "aa" in, "b" out: its own writes
    assert!(hosts.get_ref(&w, by_name.query("b")).unwrap().is_none());
    assert_eq!(
        hosts
            .get_ref(&w, by_name.query("aa"))
            .unwrap()
            .unwrap()
            .0
            .port,
        80
    );
}

#[derive(Debug, PartialEq, serde::Serialize)]
struct Host {
    name: String,
    port: u16,
}

/// Hosts by name (unique) and by port (non-unique).
fn hosts_table() -> (Table<Host>, Index<Host, str>, Index<Host, u16>) {
    let by_name: Index<Host, str> = Index::unique("name", |h: &Host, k| k.push(h.name.as_str()));
    let by_port: Index<Host, u16> = Index::non_unique("port", |h: &Host, k| k.push(&h.port));
    let hosts = Table::builder("hosts", &by_name)
        .index(&by_port)
        .build()
        .unwrap();
    (hosts, by_name, by_port)
}

/// An object with several prefixes on one index.
#[derive(Clone, Debug)]
struct MultiRoute {
    id: u32,
    dsts: Vec<IpNet>,
}

/// A table of `MultiRoute`s with every prefix on one non-unique index.
fn multi_route_table() -> (Db, Table<MultiRoute>, Index<MultiRoute, IpNet>) {
    let by_id: Index<MultiRoute, u32> = Index::unique("id", |r: &MultiRoute, k| k.push(&r.id));
    let by_dst: Index<MultiRoute, IpNet> = Index::non_unique("dst", |r: &MultiRoute, k| {
        for d in &r.dsts {
            k.push(d);
        }
    });
    let t = Table::builder("routes", &by_id)
        .index(&by_dst)
        .build()
        .unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    (db, t, by_dst)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `prefixes_within` lists each object once, however many of its keys
    /// lie within (it listed one per matching key).
    #[test]
    fn prefixes_within_lists_each_object_once(
        objs in prop::collection::vec(prop::collection::vec(arb_net(), 1..4), 0..30),
        within in arb_net(),
    ) {
        let (db, t, by_dst) = multi_route_table();
        let mut w = db.write_txn(&[&t]).unwrap();
        for (i, dsts) in objs.iter().enumerate() {
            t.insert(&mut w, MultiRoute { id: i as u32, dsts: dsts.clone() }).unwrap();
        }
        let r = w.commit();
        let want: Vec<u32> = objs
            .iter()
            .enumerate()
            .filter(|(_, d)| d.iter().any(|n| within.contains(n)))
            .map(|(i, _)| i as u32)
            .collect();
        let mut got: Vec<u32> = t.prefixes_within(&r, &by_dst, within).unwrap().map(|(o, _)| o.id).collect();
        got.sort();
        prop_assert_eq!(got, want, "within {}", within);
    }
}

#[test]
fn prefixes_within_lists_an_object_with_two_keys_inside_once() {
    let (db, t, by_dst) = multi_route_table();
    let mut w = db.write_txn(&[&t]).unwrap();
    let dsts = vec![
        "10.1.0.0/16".parse().unwrap(),
        "10.2.0.0/16".parse().unwrap(),
    ];
    t.insert(&mut w, MultiRoute { id: 1, dsts }).unwrap();
    let r = w.commit();
    let got: Vec<u32> = t
        .prefixes_within(&r, &by_dst, "10.0.0.0/8".parse().unwrap())
        .unwrap()
        .map(|(o, _)| o.id)
        .collect();
    assert_eq!(got, [1]);
}

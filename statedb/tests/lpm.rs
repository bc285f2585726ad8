//! The longest-prefix-match index against brute force: random prefixes of
//! mixed lengths and families, objects with several keys, unique and
//! non-unique, read from snapshots and from the write transaction that
//! made them, with watches that must close when the answer changes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;
use proptest::prelude::*;
use statedb::{
    BitPrefix, Db, Error, Index, LpmIndex, LpmKey, ReadTxnLike, Table, Watch, WriteError,
};

#[derive(Debug, Clone, PartialEq)]
struct Route {
    id: u8,
    dsts: Vec<IpNet>,
    tag: u32,
}

struct Fixture {
    db: Db,
    t: Table<Route>,
    /// Every destination, non-unique.
    all: LpmIndex<Route, IpNet>,
    /// The first destination, unique.
    first: LpmIndex<Route, IpNet>,
}

fn fixture() -> Fixture {
    let by_id: Index<Route, u8> = Index::unique("id", |r: &Route, k| k.push(&r.id));
    let all: LpmIndex<Route, IpNet> = LpmIndex::non_unique("dst", |r: &Route, k| {
        for d in &r.dsts {
            k.push(d)
        }
    });
    let first: LpmIndex<Route, IpNet> = LpmIndex::unique("first", |r: &Route, k| {
        if let Some(d) = r.dsts.first() {
            k.push(d)
        }
    });
    let t = Table::builder("routes", &by_id)
        .lpm_index(&all)
        .lpm_index(&first)
        .build()
        .unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    Fixture { db, t, all, first }
}

type Model = BTreeMap<u8, Route>;

/// Brute force: the ids whose key (among `keys_of`) is the longest prefix
/// of `addr`, in id order.
fn longest(model: &Model, addr: &BitPrefix, keys_of: impl Fn(&Route) -> Vec<IpNet>) -> Vec<u8> {
    let mut best: Option<usize> = None;
    let mut ids = Vec::new();
    for r in model.values() {
        for k in keys_of(r) {
            let bits = k.to_bits();
            if !bits.contains(addr) {
                continue;
            }
            match best {
                Some(b) if bits.len() < b => {}
                Some(b) if bits.len() == b => {
                    if ids.last() != Some(&r.id) {
                        ids.push(r.id)
                    }
                }
                _ => {
                    best = Some(bits.len());
                    ids = vec![r.id];
                }
            }
        }
    }
    ids
}

fn all_keys(r: &Route) -> Vec<IpNet> {
    r.dsts.clone()
}

fn first_key(r: &Route) -> Vec<IpNet> {
    r.dsts.first().copied().into_iter().collect()
}

fn within(model: &Model, net: &BitPrefix) -> BTreeSet<u8> {
    model
        .values()
        .filter(|r| r.dsts.iter().any(|d| net.contains(&d.to_bits())))
        .map(|r| r.id)
        .collect()
}

/// What the lookups of `addr` answer: ids and tags (a replaced object is
/// a changed answer) of both indexes.
type Answer = (Vec<(u8, u32)>, Option<(u8, u32)>);

fn answer(f: &Fixture, txn: &impl ReadTxnLike, addr: &BitPrefix) -> Answer {
    let list: Vec<(u8, u32)> =
        f.t.list(txn, f.all.query_bits(addr))
            .unwrap()
            .map(|(r, _)| (r.id, r.tag))
            .collect();
    let one =
        f.t.get(txn, f.first.query_bits(addr))
            .unwrap()
            .map(|(r, _)| (r.id, r.tag));
    (list, one)
}

fn model_answer(model: &Model, addr: &BitPrefix) -> Answer {
    let tag = |id: u8| (id, model[&id].tag);
    (
        longest(model, addr, all_keys)
            .into_iter()
            .map(tag)
            .collect(),
        longest(model, addr, first_key).first().copied().map(tag),
    )
}

/// Every read of `addr` and `net` in `txn` against the model.
fn check(
    f: &Fixture,
    txn: &impl ReadTxnLike,
    model: &Model,
    addr: &BitPrefix,
    net: &BitPrefix,
) -> Result<(), TestCaseError> {
    let want = model_answer(model, addr);
    prop_assert_eq!(answer(f, txn, addr), want.clone(), "lookup {}", addr);
    // Every other form of the exact query agrees.
    let q = || f.all.query_bits(addr);
    let first_of_list = want.0.first().map(|x| x.0);
    prop_assert_eq!(f.t.get(txn, q()).unwrap().map(|(r, _)| r.id), first_of_list);
    prop_assert_eq!(
        f.t.get_watch(txn, q()).unwrap().0.map(|(r, _)| r.id),
        first_of_list
    );
    prop_assert_eq!(
        f.t.get_ref(txn, q()).unwrap().map(|(r, _)| r.id),
        first_of_list
    );
    let ids: Vec<u8> = want.0.iter().map(|x| x.0).collect();
    let listed: Vec<u8> =
        f.t.list_watch(txn, q())
            .unwrap()
            .0
            .map(|(r, _)| r.id)
            .collect();
    prop_assert_eq!(&listed, &ids);
    let refs: Vec<u8> = f.t.list_ref(txn, q()).unwrap().map(|(r, _)| r.id).collect();
    prop_assert_eq!(&refs, &ids);
    let mut rev: Vec<u8> = f.t.list_rev(txn, q()).unwrap().map(|(r, _)| r.id).collect();
    rev.reverse();
    prop_assert_eq!(&rev, &ids);
    prop_assert_eq!(f.t.count(txn, q()).unwrap(), ids.len());
    prop_assert_eq!(
        f.t.last(txn, q()).unwrap().map(|(r, _)| r.id),
        ids.last().copied()
    );
    // Within `net`: each object once.
    let want = within(model, net);
    for (name, got) in [
        (
            "prefix",
            f.t.prefix(txn, f.all.query_bits(net))
                .unwrap()
                .0
                .map(|(r, _)| r.id)
                .collect::<Vec<_>>(),
        ),
        (
            "prefix_ref",
            f.t.prefix_ref(txn, f.all.query_bits(net))
                .unwrap()
                .map(|(r, _)| r.id)
                .collect(),
        ),
        (
            "prefix_rev",
            f.t.prefix_rev(txn, f.all.query_bits(net))
                .unwrap()
                .map(|(r, _)| r.id)
                .collect(),
        ),
    ] {
        let set: BTreeSet<u8> = got.iter().copied().collect();
        prop_assert_eq!(
            set.len(),
            got.len(),
            "{} lists an object twice: {:?}",
            name,
            got
        );
        prop_assert_eq!(&set, &want, "{} within {}", name, net);
    }
    Ok(())
}

fn v4() -> impl Strategy<Value = IpNet> {
    // Few distinct octets, so that prefixes nest and collide.
    (
        prop::sample::select(vec![10u8, 11, 192]),
        0u8..3,
        0u8..3,
        0u8..3,
        0u8..=32,
    )
        .prop_map(|(a, b, c, d, len)| {
            IpNet::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), len)
                .unwrap()
                .trunc()
        })
}

fn v6() -> impl Strategy<Value = IpNet> {
    (
        0u16..3,
        0u16..3,
        prop::sample::select(vec![0u8, 1, 16, 32, 33, 48, 64, 127, 128]),
    )
        .prop_map(|(a, b, len)| {
            IpNet::new(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, a, b, 0, 0, 0, 1)),
                len,
            )
            .unwrap()
            .trunc()
        })
}

fn net() -> impl Strategy<Value = IpNet> {
    prop_oneof![3 => v4(), 1 => v6()]
}

fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        3 => (prop::sample::select(vec![10u8, 11, 192]), 0u8..3, 0u8..3, 0u8..3)
            .prop_map(|(a, b, c, d)| IpAddr::V4(Ipv4Addr::new(a, b, c, d))),
        1 => (0u16..3, 0u16..3).prop_map(|(a, b)| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, a, b, 0, 0, 0, 1))),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Insert(Route),
    Delete(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..12, prop::collection::vec(net(), 0..4), 0u32..4)
            .prop_map(|(id, dsts, tag)| Op::Insert(Route { id, dsts, tag })),
        1 => (0u8..12).prop_map(Op::Delete),
    ]
}

/// Applies `op` to the model as the table must: a unique conflict on
/// `first` leaves both unchanged.
fn apply(model: &mut Model, op: &Op) -> bool {
    match op {
        Op::Insert(r) => {
            if let Some(d) = r.dsts.first()
                && model
                    .values()
                    .any(|o| o.id != r.id && o.dsts.first() == Some(d))
            {
                return false;
            }
            model.insert(r.id, r.clone());
        }
        Op::Delete(id) => {
            model.remove(id);
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn lpm_index_agrees_with_brute_force(
        batches in prop::collection::vec(
            (prop::collection::vec(op(), 1..6), prop::collection::vec((addr(), net()), 1..5)),
            1..8,
        ),
    ) {
        let f = fixture();
        let mut model = Model::new();
        for (ops, probes) in batches {
            // Watches of the snapshot before the batch.
            let before = f.db.read_txn();
            let watched: Vec<(BitPrefix, Answer, Watch, Watch)> = probes
                .iter()
                .map(|(a, _)| {
                    let bits = a.to_bits();
                    let (_, list_watch) = f.t.list_watch(&before, f.all.query_bits(&bits)).unwrap();
                    let (_, get_watch) = f.t.get_watch(&before, f.first.query_bits(&bits)).unwrap();
                    (bits.clone(), answer(&f, &before, &bits), list_watch, get_watch)
                })
                .collect();
            let mut w = f.db.write_txn(&[&f.t]).unwrap();
            for op in &ops {
                let ok = apply(&mut model, op);
                let res = match op {
                    Op::Insert(r) => f.t.insert(&mut w, r.clone()).map(|_| ()),
                    Op::Delete(id) => f
                        .t
                        .delete(&mut w, &Route { id: *id, dsts: vec![], tag: 0 })
                        .map(|_| ()),
                };
                match res {
                    Ok(()) => prop_assert!(ok, "{:?} should have conflicted", op),
                    Err(Error::Write(WriteError::UniqueConflict { index, .. })) => {
                        prop_assert!(!ok, "{:?} conflicted unexpectedly", op);
                        prop_assert_eq!(index, "first");
                    }
                    Err(e) => prop_assert!(false, "{:?}: {}", op, e),
                }
            }
            // The write transaction sees its own writes.
            for (a, n) in &probes {
                check(&f, &w, &model, &a.to_bits(), &n.to_bits())?;
            }
            let r = w.commit();
            for (a, n) in &probes {
                check(&f, &r, &model, &a.to_bits(), &n.to_bits())?;
                // An address's own prefixes look up too (exact hits).
                check(&f, &r, &model, &n.to_bits(), &n.to_bits())?;
            }
            for (bits, old, list_watch, get_watch) in watched {
                let new = answer(&f, &r, &bits);
                if new.0 != old.0 {
                    prop_assert!(list_watch.is_closed(), "list of {} changed {:?} -> {:?}, watch open", bits, old.0, new.0);
                }
                if new.1 != old.1 {
                    prop_assert!(get_watch.is_closed(), "get of {} changed {:?} -> {:?}, watch open", bits, old.1, new.1);
                }
            }
        }
    }

    /// Any bit string: 16-bit ports with prefix lengths 0..=16, as the
    /// reference's port-range index, non-unique.
    #[test]
    fn bit_prefix_ports_agree_with_brute_force(
        entries in prop::collection::vec((any::<u16>(), 0usize..=16), 0..24),
        probes in prop::collection::vec(any::<u16>(), 1..16),
    ) {
        #[derive(Debug)]
        struct Rule { id: u16, port: u16, len: usize }
        let by_id: Index<Rule, u16> = Index::unique("id", |r: &Rule, k| k.push(&r.id));
        let by_port: LpmIndex<Rule, BitPrefix> = LpmIndex::non_unique("port", |r: &Rule, k| {
            k.push(&BitPrefix::new(&r.port.to_be_bytes(), r.len).unwrap())
        });
        let t = Table::builder("rules", &by_id).lpm_index(&by_port).build().unwrap();
        let db = Db::new();
        db.register_table(&t).unwrap();
        let mut w = db.write_txn(&[&t]).unwrap();
        for (id, (port, len)) in entries.iter().enumerate() {
            t.insert(&mut w, Rule { id: id as u16, port: *port, len: *len }).unwrap();
        }
        let r = w.commit();
        for p in probes {
            let bits = BitPrefix::new(&p.to_be_bytes(), 16).unwrap();
            let matches = |port: u16, len: usize| BitPrefix::new(&port.to_be_bytes(), len).unwrap().contains(&bits);
            let best = entries.iter().filter(|(port, len)| matches(*port, *len)).map(|e| e.1).max();
            let want: Vec<u16> = entries
                .iter()
                .enumerate()
                .filter(|(_, (port, len))| Some(*len) == best && matches(*port, *len))
                .map(|(id, _)| id as u16)
                .collect();
            let got: Vec<u16> = t.list(&r, by_port.query_bits(&bits)).unwrap().map(|(o, _)| o.id).collect();
            prop_assert_eq!(got, want, "port {:#06x}", p);
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net_(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn route(id: u8, dsts: &[&str]) -> Route {
    Route {
        id,
        dsts: dsts.iter().map(|d| net_(d)).collect(),
        tag: 0,
    }
}

fn insert(f: &Fixture, id: u8, dsts: &[&str]) {
    let mut w = f.db.write_txn(&[&f.t]).unwrap();
    f.t.insert(&mut w, route(id, dsts)).unwrap();
    w.commit();
}

#[test]
fn a_watch_closes_for_its_answer_and_not_for_an_unrelated_prefix() {
    let f = fixture();
    // Neighbours first: in a path-compressed tree a lone key's node is
    // split (replaced, its watch closed) by the first key that branches
    // off it, which is a spurious wake-up, not a changed answer.
    insert(&f, 1, &["10.0.0.0/8"]);
    insert(&f, 6, &["11.0.0.0/8", "192.168.0.0/16"]);
    let r = f.db.read_txn();
    let (found, watch) = f.t.get_watch(&r, f.all.query(&ip("10.1.2.3"))).unwrap();
    assert_eq!(found.unwrap().0.id, 1);
    // Elsewhere in the tree: the answer for 10.1.2.3 cannot change.
    insert(&f, 2, &["192.168.1.0/24"]);
    assert!(!watch.is_closed(), "closed by an unrelated prefix");
    // Less specific than the match: the answer stays.
    insert(&f, 3, &["0.0.0.0/0"]);
    assert!(!watch.is_closed(), "closed by a less specific prefix");
    // More specific, containing the address: the answer changes.
    insert(&f, 4, &["10.1.0.0/16"]);
    assert!(watch.is_closed());
    let r = f.db.read_txn();
    assert_eq!(
        f.t.get(&r, f.all.query(&ip("10.1.2.3")))
            .unwrap()
            .unwrap()
            .0
            .id,
        4
    );
    // No match: a watch that closes when one appears.
    let (none, watch) = f.t.get_watch(&r, f.all.query(&ip("2001:db8::1"))).unwrap();
    assert!(none.is_none());
    insert(&f, 5, &["2001:db8::/32"]);
    assert!(watch.is_closed());
}

#[test]
fn a_watch_from_a_write_txn_closes_when_it_commits_a_new_answer_and_not_when_it_aborts() {
    let f = fixture();
    insert(&f, 1, &["10.0.0.0/8"]);
    let mut w = f.db.write_txn(&[&f.t]).unwrap();
    f.t.insert(&mut w, route(2, &["10.1.0.0/16"])).unwrap();
    let (found, watch) = f.t.get_watch(&w, f.all.query(&ip("10.1.2.3"))).unwrap();
    assert_eq!(found.unwrap().0.id, 2, "the txn sees its own write");
    w.abort();
    assert!(!watch.is_closed(), "nothing changed");
    let r = f.db.read_txn();
    assert_eq!(
        f.t.get(&r, f.all.query(&ip("10.1.2.3")))
            .unwrap()
            .unwrap()
            .0
            .id,
        1
    );
    let mut w = f.db.write_txn(&[&f.t]).unwrap();
    f.t.insert(&mut w, route(2, &["10.1.0.0/16"])).unwrap();
    let (_, watch) = f.t.get_watch(&w, f.all.query(&ip("10.1.2.3"))).unwrap();
    w.commit();
    assert!(watch.is_closed());
}

#[test]
fn ipv4_mapped_ipv6_is_ipv6_unless_made_canonical() {
    let f = fixture();
    insert(&f, 1, &["10.0.0.0/8"]);
    insert(&f, 2, &["::/0"]);
    let r = f.db.read_txn();
    let id = |a: IpAddr| f.t.get(&r, f.all.query(&a)).unwrap().map(|(o, _)| o.id);
    let mapped = ip("::ffff:10.1.2.3");
    assert_eq!(id(mapped), Some(2), "a mapped address is IPv6");
    assert_eq!(id(mapped.to_canonical()), Some(1));
    assert_eq!(
        id(ip("192.0.2.1")),
        None,
        "the IPv6 default does not match IPv4"
    );
    assert_eq!(id(ip("2001:db8::1")), Some(2));
}

#[test]
fn snapshots_do_not_see_later_writes() {
    let f = fixture();
    insert(&f, 1, &["10.0.0.0/8"]);
    let old = f.db.read_txn();
    insert(&f, 2, &["10.1.0.0/16"]);
    let mut w = f.db.write_txn(&[&f.t]).unwrap();
    f.t.insert(&mut w, route(1, &["10.1.1.0/24"])).unwrap();
    let q = || f.all.query(&ip("10.1.1.1"));
    assert_eq!(f.t.get(&old, q()).unwrap().unwrap().0.id, 1);
    assert_eq!(
        f.t.get(&old, q()).unwrap().unwrap().0.dsts,
        [net_("10.0.0.0/8")]
    );
    assert_eq!(f.t.get(&f.db.read_txn(), q()).unwrap().unwrap().0.id, 2);
    assert_eq!(
        f.t.get(&w, q()).unwrap().unwrap().0.dsts,
        [net_("10.1.1.0/24")]
    );
}

#[test]
fn lower_bound_runs_in_prefix_order_and_lists_each_object_once() {
    let f = fixture();
    insert(&f, 1, &["10.0.0.0/8"]);
    insert(&f, 2, &["10.0.0.0/24", "10.0.0.1/32"]);
    insert(&f, 3, &["1.0.0.0/8"]);
    insert(&f, 4, &["192.168.0.0/24"]);
    let r = f.db.read_txn();
    let (found, _) =
        f.t.lower_bound(&r, f.all.query(&net_("10.0.0.0/8")))
            .unwrap();
    let ids: Vec<u8> = found.map(|(o, _)| o.id).collect();
    assert_eq!(ids, [1, 2, 4]);
    let (within, _) = f.t.prefix(&r, f.all.query(&net_("10.0.0.0/8"))).unwrap();
    assert_eq!(within.map(|(o, _)| o.id).collect::<Vec<_>>(), [1, 2]);
    let (within, _) = f.t.prefix(&r, f.all.query(&net_("0.0.0.0/0"))).unwrap();
    assert_eq!(within.count(), 4);
}

#[test]
fn a_unique_conflict_names_the_key_as_text() {
    let f = fixture();
    insert(&f, 1, &["10.0.0.0/8"]);
    let mut w = f.db.write_txn(&[&f.t]).unwrap();
    let e = f.t.insert(&mut w, route(2, &["10.0.0.0/8"])).unwrap_err();
    assert!(e.to_string().contains("10.0.0.0/8"), "{e}");
    // Nothing was written; the transaction goes on.
    assert_eq!(f.t.num_objects(&w).unwrap(), 1);
    f.t.insert(&mut w, route(2, &["10.0.0.0/9"])).unwrap();
    w.commit();
}

#[test]
fn keys_are_given_and_read_as_text() {
    let f = fixture();
    insert(&f, 1, &["10.0.0.0/8", "2001:db8::/32"]);
    let r = f.db.read_txn();
    let by_text = |t: &str| {
        f.t.get(&r, f.all.query_text(t).unwrap())
            .unwrap()
            .map(|(o, _)| o.id)
    };
    assert_eq!(by_text("10.9.9.9"), Some(1), "an address looks up");
    assert_eq!(by_text("10.9.0.0/16"), Some(1), "a network looks up");
    assert_eq!(by_text("2001:db8:1::1"), Some(1));
    assert_eq!(by_text("11.0.0.1"), None);
    let e = f.all.query_text("ten").unwrap_err();
    assert!(e.to_string().contains("ten"), "{e}");
    assert_eq!(
        f.all.object_keys(
            &f.t.get(&r, f.all.query(&ip("10.0.0.1")))
                .unwrap()
                .unwrap()
                .0
        ),
        [
            net_("10.0.0.0/8").to_bits(),
            net_("2001:db8::/32").to_bits()
        ]
    );
    let info = f.db.tables(&r);
    let dst = info[0].indexes.iter().find(|i| i.name == "dst").unwrap();
    assert!(dst.lpm && !dst.unique);
}

/// Two writers race to give one prefix to different objects on a unique
/// LPM index: exactly one wins, the other gets a conflict, and the table
/// holds the winner alone.
#[test]
fn two_writers_racing_for_one_unique_prefix_leave_exactly_one() {
    for _ in 0..20 {
        let f = Arc::new(fixture());
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let writers: Vec<_> = [1u8, 2]
            .into_iter()
            .map(|id| {
                let (f, barrier) = (f.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut w = f.db.write_txn(&[&f.t]).unwrap();
                    let res = f.t.insert(&mut w, route(id, &["10.0.0.0/8"]));
                    w.commit();
                    res.is_ok()
                })
            })
            .collect();
        let wins: Vec<bool> = writers.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
        let r = f.db.read_txn();
        assert_eq!(f.t.num_objects(&r).unwrap(), 1);
        let winner = if wins[0] { 1 } else { 2 };
        let got = f.t.get(&r, f.first.query(&ip("10.1.2.3"))).unwrap();
        assert_eq!(got.unwrap().0.id, winner);
    }
}

/// A reader blocked on a lookup's watch in another thread wakes when a
/// writer commits a more specific prefix; a watchdog fails the test
/// instead of hanging.
#[test]
fn a_reader_waiting_on_a_lookup_wakes_when_another_thread_commits_a_better_match() {
    let f = Arc::new(fixture());
    insert(&f, 1, &["10.0.0.0/8"]);
    let (_, watch) =
        f.t.get_watch(&f.db.read_txn(), f.all.query(&ip("10.1.2.3")))
            .unwrap();
    let reader = std::thread::spawn(move || watch.wait_timeout(std::time::Duration::from_secs(30)));
    let writer = {
        let f = f.clone();
        std::thread::spawn(move || insert(&f, 2, &["10.1.0.0/16"]))
    };
    writer.join().unwrap();
    assert!(
        reader.join().unwrap(),
        "the watch did not close within the watchdog"
    );
    let r = f.db.read_txn();
    assert_eq!(
        f.t.get(&r, f.all.query(&ip("10.1.2.3")))
            .unwrap()
            .unwrap()
            .0
            .id,
        2
    );
}

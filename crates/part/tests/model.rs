//! Property tests: the tree against a `BTreeMap` model, old snapshots
//! included, and the watch rules.

use std::collections::BTreeMap;

use part::{Tree, Watch};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Insert(Vec<u8>, u32),
    Delete(Vec<u8>),
    Modify(Vec<u8>),
    Commit,
    Abort,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    // Small alphabet with 0x00 and 0xff so that keys share prefixes, are
    // prefixes of each other and include the empty key. One in four
    // starts with a long stem (20 or 30 bytes), so that keys and prefixes
    // cross the 21 bytes a node stores inline, split there and merge back.
    let tail = prop::collection::vec(prop::sample::select(vec![0u8, 1, b'a', b'b', 0xff]), 0..5);
    let stem = prop::sample::select(vec![0usize, 0, 0, 20, 30]);
    (stem, tail).prop_map(|(stem, tail)| {
        let mut k: Vec<u8> = (0..stem).map(|i| b'k' + (i % 3) as u8).collect();
        k.extend(tail);
        k
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (key(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => key().prop_map(Op::Delete),
        1 => key().prop_map(Op::Modify),
        1 => Just(Op::Commit),
        1 => Just(Op::Abort),
    ]
}

type Model = BTreeMap<Vec<u8>, u32>;

fn check_tree(t: &Tree<u32>, m: &Model, probes: &[Vec<u8>]) {
    let got: Vec<(Vec<u8>, u32)> = t.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
    let want: Vec<(Vec<u8>, u32)> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
    assert_eq!(got, want, "full iteration");
    let mut it = t.iter();
    let values: Vec<u32> = std::iter::from_fn(|| it.next_value().copied()).collect();
    let want_values: Vec<u32> = m.values().copied().collect();
    assert_eq!(values, want_values, "values without keys");
    assert_eq!(t.len(), m.len(), "len");
    let entry = |e: Option<(&[u8], &u32)>| e.map(|(k, v)| (k.to_vec(), *v));
    let model_entry = |e: Option<(&Vec<u8>, &u32)>| e.map(|(k, v)| (k.clone(), *v));
    assert_eq!(entry(t.first()), model_entry(m.first_key_value()), "first");
    assert_eq!(entry(t.last()), model_entry(m.last_key_value()), "last");
    for p in probes {
        let want = model_entry(
            m.range(p.clone()..)
                .next()
                .filter(|(k, _)| k.starts_with(p)),
        );
        assert_eq!(entry(t.prefix_first(p)), want, "prefix_first {p:?}");
        assert_eq!(t.get(p), m.get(p), "get {p:?}");
        let got: Vec<Vec<u8>> = t.prefix(p).0.map(|(k, _)| k.to_vec()).collect();
        let want: Vec<Vec<u8>> = m.keys().filter(|k| k.starts_with(p)).cloned().collect();
        assert_eq!(got, want, "prefix {p:?}");
        let got: Vec<Vec<u8>> = t.lower_bound(p).map(|(k, _)| k.to_vec()).collect();
        let want: Vec<Vec<u8>> = m.range(p.clone()..).map(|(k, _)| k.clone()).collect();
        assert_eq!(got, want, "lower_bound {p:?}");
        let mut it = t.lower_bound(p);
        let got: Vec<u32> = std::iter::from_fn(|| it.next_value().copied()).collect();
        let want: Vec<u32> = m.range(p.clone()..).map(|(_, v)| *v).collect();
        assert_eq!(got, want, "lower_bound values {p:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tree_matches_model(ops in prop::collection::vec(op(), 1..80), probes in prop::collection::vec(key(), 1..12), root_only: bool) {
        let mut tree: Tree<u32> = if root_only { Tree::new_root_only_watch() } else { Tree::new() };
        let mut committed = Model::new();
        let mut txn = tree.txn();
        let mut pending = committed.clone();
        let mut snapshots: Vec<(Tree<u32>, Model)> = vec![(tree.clone(), committed.clone())];
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    prop_assert_eq!(txn.insert(&k, v), pending.insert(k, v));
                }
                Op::Delete(k) => {
                    prop_assert_eq!(txn.delete(&k), pending.remove(&k));
                }
                Op::Modify(k) => {
                    let old = txn.modify(&k, |o| o.map_or(1, |v| v.wrapping_add(1)));
                    let e = pending.entry(k).or_insert(0);
                    let was = if *e == 0 { None } else { Some(*e) };
                    *e = e.wrapping_add(1);
                    if was.is_none() { *e = 1; }
                    prop_assert_eq!(old, was);
                }
                Op::Commit => {
                    tree = txn.commit_and_close();
                    committed = pending.clone();
                    snapshots.push((tree.clone(), committed.clone()));
                    txn = tree.txn();
                }
                Op::Abort => {
                    drop(txn);
                    pending = committed.clone();
                    txn = tree.txn();
                }
            }
            check_tree(&txn.snapshot(), &pending, &probes);
            for p in &probes {
                let got = txn.prefix_first(p).map(|(k, v)| (k.to_vec(), *v));
                let want = pending.range(p.clone()..).next().filter(|(k, _)| k.starts_with(p)).map(|(k, v)| (k.clone(), *v));
                prop_assert_eq!(got, want, "txn prefix_first {:?}", p);
            }
            for (t, m) in &snapshots {
                check_tree(t, m, &probes);
            }
        }
    }

    /// Every watch handed out before a commit closes iff the commit changed
    /// what it covers; an existing key's watch never closes for other keys.
    #[test]
    fn watches_follow_the_rules(init in prop::collection::btree_map(key(), any::<u32>(), 0..12),
                                ops in prop::collection::vec(op(), 1..10),
                                probes in prop::collection::vec(key(), 1..12)) {
        let mut txn = Tree::new().txn();
        for (k, v) in &init { txn.insert(k, *v); }
        let tree = txn.commit_and_close();
        let key_watches: Vec<(Vec<u8>, bool, Watch)> = probes.iter().map(|p| {
            let (v, w) = tree.get_watch(p);
            (p.clone(), v.is_some(), w)
        }).collect();
        let prefix_watches: Vec<(Vec<u8>, Watch)> = probes.iter().map(|p| (p.clone(), tree.prefix(p).1)).collect();
        let root = tree.root_watch();
        let mut model = init.clone();
        let mut txn = tree.txn();
        for op in ops {
            match op {
                Op::Insert(k, v) => { txn.insert(&k, v); model.insert(k, v); }
                Op::Delete(k) => { txn.delete(&k); model.remove(&k); }
                _ => {}
            }
        }
        let (tree2, closer) = txn.commit();
        for (_, _, w) in &key_watches { prop_assert!(!w.is_closed(), "fired before close"); }
        closer.close();
        let diff: Vec<Vec<u8>> = init.keys().chain(model.keys())
            .filter(|k| init.get(*k) != model.get(*k)).cloned().collect();
        let any_change = !diff.is_empty();
        for (k, _, w) in &key_watches {
            if diff.contains(k) {
                prop_assert!(w.is_closed(), "missed change of {:?}", k);
            }
        }
        for (p, w) in &prefix_watches {
            if diff.iter().any(|k| k.starts_with(p)) {
                prop_assert!(w.is_closed(), "prefix {:?} missed a change", p);
            }
        }
        if any_change { prop_assert!(root.is_closed()); }
        let _ = tree2;
    }

    /// An existing key's watch does not fire when only other keys change.
    #[test]
    fn existing_key_watch_ignores_others(init in prop::collection::btree_map(key(), any::<u32>(), 1..12),
                                         ops in prop::collection::vec((key(), any::<bool>()), 1..10)) {
        let mut txn = Tree::new().txn();
        for (k, v) in &init { txn.insert(k, *v); }
        let tree = txn.commit_and_close();
        let watches: Vec<(Vec<u8>, Watch)> = init.keys().map(|k| (k.clone(), tree.get_watch(k).1)).collect();
        let mut touched = std::collections::BTreeSet::new();
        let mut txn = tree.txn();
        for (k, ins) in ops {
            if ins { txn.insert(&k, 0); } else { txn.delete(&k); }
            touched.insert(k);
        }
        txn.commit_and_close();
        for (k, w) in watches {
            prop_assert_eq!(w.is_closed(), touched.contains(&k), "key {:?}", k);
        }
    }

    /// Deleting keys that are absent changes nothing: not a watch of the
    /// committed tree, nor of a snapshot taken inside the transaction after
    /// its own writes (whose nodes are the transaction's again once the
    /// snapshot is gone).
    #[test]
    fn deleting_missing_keys_closes_nothing(init in prop::collection::btree_map(key(), any::<u32>(), 0..12),
                                            inserts in prop::collection::vec(key(), 0..6),
                                            deletes in prop::collection::vec(key(), 1..10),
                                            probes in prop::collection::vec(key(), 1..12)) {
        let watches_of = |t: &Tree<u32>| -> Vec<(String, Watch)> {
            let mut ws = vec![("root".to_string(), t.root_watch())];
            for p in &probes {
                ws.push((format!("prefix {p:?}"), t.prefix(p).1));
                ws.push((format!("key {p:?}"), t.get_watch(p).1));
            }
            ws
        };
        let mut txn = Tree::new().txn();
        for (k, v) in &init { txn.insert(k, *v); }
        let tree = txn.commit_and_close();
        let missing: Vec<Vec<u8>> = deletes.into_iter()
            .filter(|k| !init.contains_key(k) && !inserts.contains(k)).collect();

        let before = watches_of(&tree);
        let mut txn = tree.txn();
        for k in &missing { prop_assert_eq!(txn.delete(k), None); }
        txn.commit_and_close();
        for (what, w) in &before { prop_assert!(!w.is_closed(), "{} closed", what); }

        let mut txn = tree.txn();
        for k in &inserts { txn.insert(k, 7); }
        let snapshot = txn.snapshot();
        let inside = watches_of(&snapshot);
        drop(snapshot);
        for k in &missing { prop_assert_eq!(txn.delete(k), None); }
        txn.commit_and_close();
        for (what, w) in &inside { prop_assert!(!w.is_closed(), "{} closed (inside)", what); }
    }
}

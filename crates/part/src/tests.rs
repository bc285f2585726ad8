//! Unit tests of node growth and shrink, path compression and watches.

use crate::node::NodeKind;
use crate::{Tree, Watch};

fn insert_all(t: &Tree<u32>, keys: &[Vec<u8>]) -> Tree<u32> {
    let mut txn = t.txn();
    for (i, k) in keys.iter().enumerate() {
        txn.insert(k, i as u32);
    }
    txn.commit_and_close()
}

fn root_kind(t: &Tree<u32>) -> NodeKind {
    t.root.children.kind()
}

#[test]
fn node_grows_and_shrinks_through_every_size() {
    let mut t = Tree::new();
    let mut kinds = vec![root_kind(&t)];
    for b in 0..=255u8 {
        t = t.insert(&[b], b as u32);
        let k = root_kind(&t);
        if kinds.last() != Some(&k) {
            kinds.push(k);
        }
        assert_eq!(t.root.children.len(), b as usize + 1);
    }
    assert_eq!(
        kinds,
        [
            NodeKind::Leaf,
            NodeKind::Node4,
            NodeKind::Node16,
            NodeKind::Node48,
            NodeKind::Node256
        ]
    );
    let all: Vec<u32> = t.iter().map(|(_, v)| *v).collect();
    assert_eq!(all, (0..=255).collect::<Vec<_>>());
    let mut kinds = vec![root_kind(&t)];
    for b in (0..=255u8).rev() {
        t = t.delete(&[b]);
        let k = root_kind(&t);
        if kinds.last() != Some(&k) {
            kinds.push(k);
        }
        // Every remaining key is still found after each shrink.
        for c in 0..b {
            assert_eq!(
                t.get(&[c]),
                Some(&(c as u32)),
                "lost {c} after deleting {b}"
            );
        }
    }
    assert_eq!(
        kinds,
        [
            NodeKind::Node256,
            NodeKind::Node48,
            NodeKind::Node16,
            NodeKind::Node4,
            NodeKind::Leaf
        ]
    );
    assert!(t.is_empty());
}

#[test]
fn growth_keeps_order_with_unordered_inserts() {
    let mut t = Tree::new();
    let order: Vec<u8> = (0..=255u8).map(|i| i.wrapping_mul(167)).collect();
    for &b in &order {
        t = t.insert(&[b], b as u32);
    }
    let keys: Vec<u8> = t.iter().map(|(k, _)| k[0]).collect();
    assert_eq!(keys, (0..=255).collect::<Vec<u8>>());
}

#[test]
fn path_compression_split_and_merge() {
    let t = insert_all(&Tree::new(), &[b"abcdef".to_vec()]);
    // One child of the root, holding the whole rest of the key as prefix.
    let child = t.root.children.get(b'a').unwrap();
    assert_eq!(&child.prefix(), b"bcdef");
    // Splitting inside the compressed prefix.
    let t2 = t.insert(b"abcxyz", 1);
    let child = t2.root.children.get(b'a').unwrap();
    assert_eq!(&child.prefix(), b"bc");
    assert_eq!(child.children.len(), 2);
    assert_eq!(&child.children.get(b'd').unwrap().prefix(), b"ef");
    // A key ending inside the prefix becomes a leaf on the split node.
    let t3 = t2.insert(b"ab", 2);
    assert_eq!(t3.get(b"ab"), Some(&2));
    assert_eq!(t3.get(b"abcdef"), Some(&0));
    assert_eq!(&t3.root.children.get(b'a').unwrap().prefix(), b"b");
    // Deleting merges back: the pass-through node is lifted away.
    let t4 = t3.delete(b"ab").delete(b"abcxyz");
    let child = t4.root.children.get(b'a').unwrap();
    assert_eq!(&child.prefix(), b"bcdef");
    assert!(child.children.is_empty());
    assert_eq!(t4.get(b"abcdef"), Some(&0));
    assert_eq!(t4.len(), 1);
    // The old trees are untouched.
    assert_eq!(t3.len(), 3);
    assert_eq!(t2.get(b"abcxyz"), Some(&1));
}

#[test]
fn edge_keys() {
    let keys: Vec<Vec<u8>> = vec![
        vec![],
        b"a".to_vec(),
        b"ab".to_vec(),
        vec![0],
        vec![0, 0],
        vec![0xff],
        vec![0xff, 0xff, 0],
        b"a\0".to_vec(),
    ];
    let t = insert_all(&Tree::new(), &keys);
    let mut sorted = keys.clone();
    sorted.sort();
    let got: Vec<Vec<u8>> = t.iter().map(|(k, _)| k.to_vec()).collect();
    assert_eq!(got, sorted);
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(t.get(k), Some(&(i as u32)));
    }
    assert_eq!(t.get(b"abc"), None);
    let pre: Vec<Vec<u8>> = t.prefix(b"a").0.map(|(k, _)| k.to_vec()).collect();
    assert_eq!(pre, vec![b"a".to_vec(), b"a\0".to_vec(), b"ab".to_vec()]);
    let lb: Vec<Vec<u8>> = t
        .lower_bound(&[0, 0])
        .map(|(k, _)| k.to_vec())
        .take(2)
        .collect();
    assert_eq!(
        lb,
        vec![vec![0, 0], vec![0xff]]
            .into_iter()
            .take(1)
            .chain([b"a".to_vec()])
            .collect::<Vec<_>>()
    );
    assert_eq!(t.first().map(|(k, _)| k.to_vec()), Some(vec![]));
    assert_eq!(t.last().map(|(k, _)| k.to_vec()), Some(vec![0xff, 0xff, 0]));
    let t2 = t.delete(&[]);
    assert_eq!(t2.get(&[]), None);
    assert_eq!(t2.len(), keys.len() - 1);
}

#[test]
fn key_watch_fires_only_for_its_key() {
    let t = insert_all(
        &Tree::new(),
        &[b"a".to_vec(), b"ab".to_vec(), b"b".to_vec()],
    );
    let (_, wa) = t.get_watch(b"a");
    let (_, wab) = t.get_watch(b"ab");
    let (_, wb) = t.get_watch(b"b");
    let (_, wpre) = t.prefix(b"a");
    let root = t.root_watch();
    // Insert a neighbour below "a" and beside "ab".
    let t2 = t.insert(b"ac", 9);
    assert!(!wa.is_closed(), "key a fired for ac");
    assert!(!wab.is_closed(), "key ab fired for ac");
    assert!(!wb.is_closed());
    assert!(wpre.is_closed(), "prefix a must fire for ac");
    assert!(root.is_closed());
    // Replacing "a" fires its watch only.
    let (_, wac) = t2.get_watch(b"ac");
    let t3 = t2.insert(b"a", 7);
    assert!(wa.is_closed());
    assert!(!wab.is_closed() && !wac.is_closed() && !wb.is_closed());
    // Deleting "ab" fires it; a compressing delete keeps others quiet.
    let (_, wa3) = t3.get_watch(b"a");
    let t4 = t3.delete(b"ab");
    assert!(wab.is_closed());
    assert!(!wa3.is_closed() && !wac.is_closed());
    let t5 = t4.delete(b"a");
    assert!(wa3.is_closed());
    assert!(
        !wac.is_closed(),
        "ac fired when a was deleted and path merged"
    );
    let (_, wac5) = t5.get_watch(b"ac");
    assert!(!wac5.is_closed());
    t5.delete(b"ac");
    assert!(
        wac.is_closed(),
        "a watch carried through a merge must still fire"
    );
}

#[test]
fn missing_key_watch_fires_on_insert() {
    let t = insert_all(&Tree::new(), &[b"abcdef".to_vec()]);
    for probe in [&b"abcxyz"[..], b"ab", b"abcdefg", b"z", b""] {
        let (v, w) = t.get_watch(probe);
        assert!(v.is_none() || probe.is_empty());
        if v.is_some() {
            continue;
        }
        t.insert(probe, 1);
        assert!(w.is_closed(), "watch for missing {probe:?} did not fire");
    }
}

#[test]
fn aborted_txn_fires_nothing_and_commit_waits_for_close() {
    let t = insert_all(&Tree::new(), &[b"x".to_vec()]);
    let (_, w) = t.get_watch(b"x");
    let root = t.root_watch();
    let mut txn = t.txn();
    txn.insert(b"x", 5);
    txn.delete(b"x");
    drop(txn);
    assert!(!w.is_closed() && !root.is_closed());
    let mut txn = t.txn();
    txn.insert(b"x", 5);
    let (t2, closer) = txn.commit();
    assert!(!w.is_closed(), "watch must not fire before close");
    assert_eq!(t2.get(b"x"), Some(&5));
    closer.close();
    assert!(w.is_closed() && root.is_closed());
}

#[test]
fn late_watch_on_replaced_node_is_closed() {
    // A reader of an old snapshot asking after the commit learns at once
    // that its snapshot is stale.
    let t = insert_all(&Tree::new(), &[b"k".to_vec()]);
    let _t2 = t.insert(b"k", 3);
    let (_, w) = t.get_watch(b"k");
    assert!(w.is_closed());
}

#[test]
fn root_only_tree_returns_root_watch() {
    let mut txn = Tree::new_root_only_watch().txn();
    txn.insert(b"a", 1u32);
    txn.insert(b"b", 2);
    let t = txn.commit_and_close();
    let (_, w) = t.get_watch(b"a");
    let (_, p) = t.prefix(b"b");
    assert!(w.same_as(&t.root_watch()) && p.same_as(&w));
    t.insert(b"c", 3);
    assert!(w.is_closed());
}

#[test]
fn private_node_watch_taken_on_in_place_write() {
    // The only handle to a tree goes into a txn that can mutate in place:
    // a watch handed out from that tree must still close.
    let t = insert_all(&Tree::new(), &[b"a".to_vec(), b"b".to_vec()]);
    let (_, w) = t.get_watch(b"a");
    let root = t.root_watch();
    let mut txn = t.txn();
    drop(t);
    txn.insert(b"a", 100);
    txn.commit_and_close();
    assert!(w.is_closed() && root.is_closed());
}

#[test]
fn txn_sees_own_writes_and_snapshot_is_stable() {
    let t: Tree<u32> = Tree::new();
    let mut txn = t.txn();
    txn.insert(b"a", 1);
    let snap = txn.snapshot();
    txn.insert(b"a", 2);
    txn.insert(b"b", 3);
    assert_eq!(txn.get(b"a"), Some(&2));
    assert_eq!(snap.get(b"a"), Some(&1));
    assert_eq!(snap.len(), 1);
    assert_eq!(txn.len(), 2);
    assert_eq!(txn.iter().count(), 2);
    assert_eq!(txn.prefix(b"b").count(), 1);
    assert_eq!(txn.lower_bound(b"a\0").count(), 1);
    txn.clear();
    assert!(txn.is_empty());
    assert_eq!(txn.delete(b"zz"), None);
    let _w: Watch = snap.root_watch();
}

#[test]
fn owned_iterators_match_borrowed() {
    let keys: Vec<Vec<u8>> = (0u32..500)
        .map(|i| (i * 7919 % 1000).to_be_bytes().to_vec())
        .collect();
    let t = insert_all(&Tree::new(), &keys);
    let a: Vec<Vec<u8>> = t.iter().map(|(k, _)| k.to_vec()).collect();
    let b: Vec<Vec<u8>> = t
        .clone()
        .into_owned_iter()
        .map(|(k, _)| k.to_vec())
        .collect();
    assert_eq!(a, b);
    let lb = 300u32.to_be_bytes();
    let a: Vec<u32> = t.lower_bound(&lb).map(|(_, v)| *v).collect();
    let b: Vec<u32> = t.lower_bound_owned(&lb).map(|(_, v)| v).collect();
    assert_eq!(a, b);
    let a: Vec<u32> = t.prefix(&[0, 0, 1]).0.map(|(_, v)| *v).collect();
    let b: Vec<u32> = t.prefix_owned(&[0, 0, 1]).0.map(|(_, v)| v).collect();
    assert_eq!(a, b);
    assert!(!a.is_empty());
}

#[test]
fn trees_watches_and_txns_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Tree<String>>();
    send_sync::<Watch>();
    send_sync::<crate::WatchSet>();
    send_sync::<crate::Map<u32, String>>();
    send_sync::<crate::Set<String>>();
    send::<crate::Txn<String>>();
    send::<crate::OwnedIter<String>>();
    send::<crate::WatchesToClose>();
}

#[test]
fn lower_bound_watch_fires_on_changes_after_the_bound() {
    let t = insert_all(&Tree::new(), &[b"a".to_vec(), b"m".to_vec()]);
    let (it, w) = t.lower_bound_watch(b"b");
    assert_eq!(it.count(), 1);
    t.insert(b"z", 1);
    assert!(w.is_closed());
}

/// Keys forming a prefix chain ("a", "aa", "aaa", ...) make the tree as
/// deep as the longest key: insert, delete, iteration and drop must not
/// recurse per level (this overflowed the stack at a few thousand levels).
#[test]
fn deep_prefix_chain_on_a_small_stack() {
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(|| {
            const DEPTH: usize = 5_000;
            let key = vec![b'a'; DEPTH];
            let mut txn = Tree::new().txn();
            for k in 1..=DEPTH {
                txn.insert(&key[..k], k);
            }
            let tree = txn.commit_and_close();
            assert_eq!(tree.len(), DEPTH);
            assert_eq!(tree.get(&key), Some(&DEPTH));
            assert_eq!(tree.iter().count(), DEPTH);
            let (_, watch) = tree.get_watch(&key[..DEPTH / 2]);
            // Delete every other key from the middle out, then the rest,
            // from a second version so that both trees share nodes.
            let mut txn = tree.txn();
            for k in (1..=DEPTH).step_by(2) {
                assert_eq!(txn.delete(&key[..k]), Some(k));
            }
            let half = txn.commit_and_close();
            assert_eq!(half.len(), DEPTH / 2);
            let mut txn = half.txn();
            for k in (2..=DEPTH).step_by(2) {
                assert_eq!(txn.delete(&key[..k]), Some(k));
            }
            let empty = txn.commit_and_close();
            assert!(empty.is_empty());
            assert!(watch.is_closed());
            drop(tree);
            drop(half);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn reverse_iteration_mirrors_forward_on_every_node_kind() {
    // Keys with shared prefixes, keys that are prefixes of others, and
    // fan-outs through 4/16/48/256 children.
    let mut keys: Vec<Vec<u8>> = vec![vec![], b"a".to_vec(), b"ab".to_vec(), b"abc".to_vec()];
    for n in [3usize, 12, 40, 200] {
        for b in 0..n {
            keys.push(vec![b'x', n as u8, b as u8]);
        }
    }
    let t = insert_all(&Tree::new(), &keys);
    let forward: Vec<Vec<u8>> = t.iter().map(|(k, _)| k.to_vec()).collect();
    let mut backward: Vec<Vec<u8>> = t
        .clone()
        .into_owned_rev_iter()
        .map(|(k, _)| k.to_vec())
        .collect();
    backward.reverse();
    assert_eq!(forward, backward);
    let pre: Vec<Vec<u8>> = t.prefix_owned_rev(b"a").map(|(k, _)| k.to_vec()).collect();
    assert_eq!(pre, [b"abc".to_vec(), b"ab".to_vec(), b"a".to_vec()]);
    assert_eq!(t.prefix_owned_rev(b"zz").count(), 0);
}

#[test]
fn txn_key_watch_closes_on_abort_and_on_later_change() {
    let mut txn = Tree::new().txn();
    txn.insert(b"k", 1u32);
    let aborted = txn.get_watch(b"k").unwrap();
    assert!(txn.get_watch(b"missing").is_none());
    txn.abort();
    assert!(aborted.is_closed());
    let mut txn = Tree::new().txn();
    txn.insert(b"k", 1u32);
    let w = txn.get_watch(b"k").unwrap();
    let t = txn.commit_and_close();
    assert!(!w.is_closed());
    let mut txn = t.txn();
    txn.insert(b"other", 2);
    let t = txn.commit_and_close();
    assert!(!w.is_closed(), "a neighbour's change closed the key watch");
    let mut txn = t.txn();
    txn.insert(b"k", 3);
    txn.commit_and_close();
    assert!(w.is_closed());
}

/// Keys past the inline and the 32-bit-prefix limits of a node's bytes
/// (the latter is 40 bytes in test builds): inserts, splits, deletes and
/// path compression over long shared stems, checked against a model.
#[test]
fn long_keys_match_a_model() {
    use std::collections::BTreeMap;
    let mut model = BTreeMap::new();
    let mut t = Tree::new();
    // A fixed pseudo-random sequence (xorshift), so failures repeat.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..2000u32 {
        let r = next();
        let stem = [0usize, 18, 25, 45, 90][(r % 5) as usize];
        let mut key: Vec<u8> = (0..stem).map(|i| b'a' + (i % 4) as u8).collect();
        let tail = (r >> 8) % 4;
        key.extend((0..tail).map(|i| ((r >> (16 + 4 * i)) % 3) as u8));
        if (r >> 40) % 3 == 0 {
            t = t.delete(&key);
            model.remove(&key);
        } else {
            t = t.insert(&key, round);
            model.insert(key.clone(), round);
        }
        assert_eq!(t.get(&key), model.get(&key), "round {round}");
    }
    let got: Vec<(Vec<u8>, u32)> = t.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
    let want: Vec<(Vec<u8>, u32)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
    assert_eq!(got, want);
    for stem in [18usize, 25, 45, 90] {
        let p: Vec<u8> = (0..stem).map(|i| b'a' + (i % 4) as u8).collect();
        let got: Vec<Vec<u8>> = t.prefix(&p).0.map(|(k, _)| k.to_vec()).collect();
        let want: Vec<Vec<u8>> = model
            .keys()
            .filter(|k| k.starts_with(&p))
            .cloned()
            .collect();
        assert_eq!(got, want, "prefix of {stem} bytes");
    }
    // Deleting everything leaves an empty tree.
    let mut txn = t.txn();
    for k in model.keys() {
        assert!(txn.delete(k).is_some());
    }
    assert!(txn.commit_and_close().is_empty());
}

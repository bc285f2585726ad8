//! `Tree::longest_prefix_watch` against brute force: random bit-string
//! keys (one byte per bit, closed by `LPM_END`, some with a suffix as a
//! non-unique index writes them), random paths, and the watch checked to
//! close whenever a write changes the answer for its path.

use part::{LPM_END, Read, Tree};
use proptest::prelude::*;

/// A bit string as a path: 2 for a 0 bit, 3 for a 1 bit.
fn path(bits: &[bool]) -> Vec<u8> {
    bits.iter().map(|b| if *b { 3 } else { 2 }).collect()
}

/// A stored key: the bits, the end byte, then an optional suffix (the
/// primary key of a non-unique index entry).
fn key(bits: &[bool], suffix: &[u8]) -> Vec<u8> {
    let mut k = path(bits);
    k.push(LPM_END);
    k.extend_from_slice(suffix);
    k
}

/// The answer by brute force: the longest `n` with a key starting with
/// `path[..n]` and the end byte, and the keys under it.
fn brute(keys: &[Vec<u8>], path: &[u8]) -> Option<(usize, Vec<Vec<u8>>)> {
    (0..=path.len()).rev().find_map(|n| {
        let mut under = path[..n].to_vec();
        under.push(LPM_END);
        let mut found: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| k.starts_with(&under))
            .cloned()
            .collect();
        found.sort();
        (!found.is_empty()).then_some((n, found))
    })
}

fn answer(tree: &Tree<u32>, path: &[u8]) -> Option<(usize, Vec<Vec<u8>>)> {
    let n = tree.longest_prefix_watch(path).0?;
    let mut under = path[..n].to_vec();
    under.push(LPM_END);
    let found: Vec<Vec<u8>> = tree.prefix(&under).0.map(|(k, _)| k.to_vec()).collect();
    Some((n, found))
}

fn bits(max: usize) -> impl Strategy<Value = Vec<bool>> {
    prop::collection::vec(any::<bool>(), 0..=max)
}

fn entry() -> impl Strategy<Value = (Vec<bool>, Vec<u8>)> {
    (bits(12), prop::collection::vec(0u8..4, 0..3))
}

#[derive(Debug, Clone)]
enum Op {
    Insert(Vec<bool>, Vec<u8>),
    Delete(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        entry().prop_map(|(b, s)| Op::Insert(b, s)),
        any::<usize>().prop_map(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_longest_match_and_its_watch_agree_with_brute_force(
        initial in prop::collection::vec(entry(), 0..40),
        paths in prop::collection::vec(bits(14), 1..8),
        ops in prop::collection::vec(op(), 1..12),
    ) {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut txn = Tree::new().txn();
        for (b, s) in &initial {
            let k = key(b, s);
            if txn.insert(&k, 0).is_none() {
                keys.push(k);
            }
        }
        let mut tree = txn.commit_and_close();
        for o in ops {
            let paths: Vec<Vec<u8>> = paths.iter().map(|b| path(b)).collect();
            let before: Vec<_> = paths.iter().map(|p| {
                let (_, watch) = tree.longest_prefix_watch(p);
                let found = answer(&tree, p);
                prop_assert_eq!(&found, &brute(&keys, p), "path {:?}", p);
                // The write transaction's reads agree.
                prop_assert_eq!(tree.txn().longest_prefix(p), found.as_ref().map(|f| f.0));
                Ok((found, watch))
            }).collect::<Result<_, TestCaseError>>()?;
            let mut txn = tree.txn();
            match o {
                Op::Insert(b, s) => {
                    let k = key(&b, &s);
                    if txn.insert(&k, 1).is_none() {
                        keys.push(k);
                    }
                }
                Op::Delete(i) if !keys.is_empty() => {
                    let k = keys.swap_remove(i % keys.len());
                    prop_assert!(txn.delete(&k).is_some());
                }
                Op::Delete(_) => {}
            }
            let (next, watches) = txn.commit();
            watches.close();
            tree = next;
            for (p, (found, watch)) in paths.iter().zip(before) {
                let now = brute(&keys, p);
                if now != found {
                    prop_assert!(watch.is_closed(), "answer for {:?} changed from {:?} to {:?}, watch open", p, found, now);
                }
            }
        }
    }
}

#[test]
fn a_match_inside_a_compressed_prefix_and_an_empty_tree() {
    // One key, 1 0 1 then end: its whole path is one node's prefix.
    let tree = Tree::new().insert(&key(&[true, false, true], b""), 7u32);
    let p = path(&[true, false, true, true, false]);
    assert_eq!(tree.longest_prefix_watch(&p).0, Some(3));
    // A shorter path that ends inside the key's bits matches nothing.
    assert_eq!(tree.longest_prefix_watch(&path(&[true, false])).0, None);
    // Diverging inside the prefix: nothing.
    assert_eq!(tree.longest_prefix_watch(&path(&[true, true])).0, None);
    assert_eq!(Tree::<u32>::new().longest_prefix_watch(&p).0, None);
    // The empty bit string (a default route) matches every path.
    let tree = tree.insert(&key(&[], b""), 0);
    assert_eq!(tree.longest_prefix_watch(&path(&[false])).0, Some(0));
    assert_eq!(tree.longest_prefix_watch(&[]).0, Some(0));
}

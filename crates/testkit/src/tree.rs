//! `part` against a `BTreeMap`.

use std::collections::{BTreeMap, BTreeSet};

use part::{Tree, Txn, Watch};

use crate::input::Input;

const ALPHABET: &[u8] = &[0x00, 0x01, b'a', b'b', 0xff];
const MAX_KEY: usize = 4;
const MAX_SNAPSHOTS: usize = 4;

type Model = BTreeMap<Vec<u8>, u32>;

/// A watch taken on the committed tree before the pending transaction.
enum Watched {
    /// The watch of a key that existed: closes exactly when that key is
    /// replaced or deleted.
    Key(Vec<u8>, Watch),
    /// A prefix watch: must close when any key under the prefix changes.
    Prefix(Vec<u8>, Watch),
}

struct State {
    tree: Tree<u32>,
    model: Model,
    txn: Option<(Txn<u32>, Model)>,
    /// Keys the pending transaction replaced, deleted or created.
    touched: BTreeSet<Vec<u8>>,
    watched: Vec<Watched>,
    snapshots: Vec<(Tree<u32>, Model)>,
}

/// Runs the tree program encoded in `data`; panics if `part` disagrees
/// with the model: lookups, iteration, prefix and lower-bound queries,
/// lengths, old snapshots, and the watch rules (a key's watch closes when
/// and only when that key changes, a prefix watch closes when something
/// under it changes, nothing closes before `WatchesToClose::close`).
pub fn tree_program(data: &[u8]) {
    let mut input = Input::new(data);
    let mut s = State {
        tree: Tree::new(),
        model: Model::new(),
        txn: None,
        touched: BTreeSet::new(),
        watched: Vec::new(),
        snapshots: Vec::new(),
    };
    let mut steps = 0;
    while !input.is_empty() && steps < 512 {
        steps += 1;
        match input.below(10) {
            0 => {
                let (k, v) = (input.key(ALPHABET, MAX_KEY), input.byte() as u32);
                let (txn, model) = s.txn_mut();
                assert_eq!(txn.insert(&k, v), model.insert(k.clone(), v), "insert");
                s.touched.insert(k);
            }
            1 => {
                let k = input.key(ALPHABET, MAX_KEY);
                let (txn, model) = s.txn_mut();
                let old = model.remove(&k);
                assert_eq!(txn.delete(&k), old, "delete");
                if old.is_some() {
                    s.touched.insert(k);
                }
            }
            2 => {
                let k = input.key(ALPHABET, MAX_KEY);
                let (txn, model) = s.txn_mut();
                let new = model.get(&k).map_or(0, |v| v.wrapping_add(1));
                let old = model.insert(k.clone(), new);
                assert_eq!(txn.modify(&k, |v| v.map_or(0, |v| v.wrapping_add(1))), old);
                s.touched.insert(k);
            }
            3 => s.commit(),
            4 => {
                // Abort: the committed tree is unchanged, so are watches.
                s.txn = None;
                s.touched.clear();
            }
            5 => {
                if s.snapshots.len() == MAX_SNAPSHOTS {
                    s.snapshots.remove(0);
                }
                s.snapshots.push((s.tree.clone(), s.model.clone()));
            }
            6 => {
                let k = input.key(ALPHABET, MAX_KEY);
                if s.txn.is_none() {
                    let (v, w) = s.tree.get_watch(&k);
                    assert_eq!(v, s.model.get(&k), "get_watch");
                    if v.is_some() {
                        assert!(!w.is_closed(), "a live key's watch is closed");
                        s.watched.push(Watched::Key(k, w));
                    }
                }
            }
            7 => {
                let p = input.key(ALPHABET, MAX_KEY);
                if s.txn.is_none() {
                    let (it, w) = s.tree.prefix(&p);
                    let got: Vec<(Vec<u8>, u32)> = it.map(|(k, v)| (k.to_vec(), *v)).collect();
                    assert_eq!(got, prefix_of(&s.model, &p), "prefix");
                    assert!(!w.is_closed(), "a prefix watch of the live tree is closed");
                    s.watched.push(Watched::Prefix(p, w));
                }
            }
            8 => {
                let k = input.key(ALPHABET, MAX_KEY);
                s.check_queries(&k);
            }
            _ => {
                // Persistent one-shot writes on the tree itself.
                if s.txn.is_none() {
                    let k = input.key(ALPHABET, MAX_KEY);
                    if input.bool() {
                        s.tree = s.tree.insert(&k, 7);
                        s.model.insert(k, 7);
                    } else {
                        s.tree = s.tree.delete(&k);
                        s.model.remove(&k);
                    }
                    // Watches are closed by these writes; forget them.
                    s.watched.clear();
                }
            }
        }
    }
    s.commit();
    s.check_queries(&[]);
    s.check_queries(b"a");
}

impl State {
    fn txn_mut(&mut self) -> (&mut Txn<u32>, &mut Model) {
        let (txn, model) = self
            .txn
            .get_or_insert_with(|| (self.tree.txn(), self.model.clone()));
        (txn, model)
    }

    fn commit(&mut self) {
        let Some((txn, model)) = self.txn.take() else {
            return;
        };
        let (tree, to_close) = txn.commit();
        for w in &self.watched {
            let (Watched::Key(_, w) | Watched::Prefix(_, w)) = w;
            assert!(!w.is_closed(), "a watch closed before the commit's close");
        }
        to_close.close();
        let touched = std::mem::take(&mut self.touched);
        for w in std::mem::take(&mut self.watched) {
            match w {
                Watched::Key(k, w) => assert_eq!(
                    w.is_closed(),
                    touched.contains(&k),
                    "watch of key {k:?} after a commit touching {touched:?}"
                ),
                Watched::Prefix(p, w) => {
                    if touched.iter().any(|k| k.starts_with(&p)) {
                        assert!(w.is_closed(), "prefix watch {p:?} missed {touched:?}");
                    } else if !w.is_closed() {
                        // Still open: it stays valid for the next commit.
                        self.watched.push(Watched::Prefix(p, w));
                    }
                }
            }
        }
        self.tree = tree;
        self.model = model;
        self.check_queries(&[]);
    }

    fn check_queries(&self, k: &[u8]) {
        match &self.txn {
            Some((txn, model)) => {
                assert_eq!(txn.len(), model.len(), "txn len");
                assert_eq!(txn.get(k), model.get(k), "txn get");
                let all: Vec<(Vec<u8>, u32)> = txn.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
                assert_eq!(all, entries(model), "txn iter");
                let pre: Vec<(Vec<u8>, u32)> =
                    txn.prefix(k).map(|(k, v)| (k.to_vec(), *v)).collect();
                assert_eq!(pre, prefix_of(model, k), "txn prefix");
                let lb: Vec<(Vec<u8>, u32)> =
                    txn.lower_bound(k).map(|(k, v)| (k.to_vec(), *v)).collect();
                assert_eq!(lb, lower_bound_of(model, k), "txn lower_bound");
            }
            None => check_tree(&self.tree, &self.model, k),
        }
        for (tree, model) in &self.snapshots {
            check_tree(tree, model, k);
        }
    }
}

fn check_tree(tree: &Tree<u32>, model: &Model, k: &[u8]) {
    assert_eq!(tree.len(), model.len(), "len");
    assert_eq!(tree.get(k), model.get(k), "get");
    let all: Vec<(Vec<u8>, u32)> = tree.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
    assert_eq!(all, entries(model), "iter");
    let (pre, _) = tree.prefix(k);
    let pre: Vec<(Vec<u8>, u32)> = pre.map(|(k, v)| (k.to_vec(), *v)).collect();
    assert_eq!(pre, prefix_of(model, k), "prefix");
    let lb: Vec<(Vec<u8>, u32)> = tree.lower_bound(k).map(|(k, v)| (k.to_vec(), *v)).collect();
    assert_eq!(lb, lower_bound_of(model, k), "lower_bound");
    let first = tree.first().map(|(k, v)| (k.to_vec(), *v));
    assert_eq!(first, model.iter().next().map(|(k, v)| (k.clone(), *v)));
    let last = tree.last().map(|(k, v)| (k.to_vec(), *v));
    assert_eq!(last, model.iter().next_back().map(|(k, v)| (k.clone(), *v)));
}

fn entries(model: &Model) -> Vec<(Vec<u8>, u32)> {
    model.iter().map(|(k, v)| (k.clone(), *v)).collect()
}

fn prefix_of(model: &Model, p: &[u8]) -> Vec<(Vec<u8>, u32)> {
    model
        .range(p.to_vec()..)
        .take_while(|(k, _)| k.starts_with(p))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn lower_bound_of(model: &Model, k: &[u8]) -> Vec<(Vec<u8>, u32)> {
    model
        .range(k.to_vec()..)
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

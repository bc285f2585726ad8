//! Model-based property test: random programs over two tables with a
//! non-unique multi-key secondary index and a unique secondary index,
//! checked after every step against a plain model, including old
//! snapshots and change iterators (read through snapshots and through
//! write transactions that then commit or abort).

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use statedb::{ChangeIterator, Db, Error, ReadTxn, Table, TxnError, WriteError, WriteTxn};

#[derive(Debug, Clone)]
enum Op {
    Insert(usize, u64, Vec<&'static str>, u32),
    Delete(usize, u64),
    Cas(usize, u64, u32, bool),
    Cad(usize, u64, bool),
    DeleteAll(usize),
    Commit,
    Abort,
    NewIterator(usize),
    DropIterator,
    ReadChanges,
    ReadChangesInTxn,
    /// A key's watch taken through the write transaction (which may then
    /// commit or abort): it must close once a commit changes the key.
    WatchInTxn(usize, u64),
    /// Mark t0's initializer done in the write transaction (which may
    /// then commit or abort).
    InitDone,
}

const TAGS: [&str; 5] = ["", "a", "ab", "b", "a\0"];
/// Values are unique per table (a unique secondary index): few enough that
/// inserts conflict now and then.
const VALUES: u32 = 12;

fn value_index() -> statedb::Index<Obj, u32> {
    statedb::Index::unique("value", |o: &Obj, k| k.push(&o.value))
}

/// Would `o` take a value that another object of the table holds?
fn conflicts(m: &TableModel, o: &Obj) -> bool {
    m.objects
        .values()
        .any(|(x, _)| x.value == o.value && x.id != o.id)
}

fn op() -> impl Strategy<Value = Op> {
    let t = 0..2usize;
    let id = 0..8u64;
    prop_oneof![
        6 => (t.clone(), id.clone(), prop::collection::vec(prop::sample::select(TAGS.to_vec()), 0..3), 0..VALUES)
            .prop_map(|(t, i, tags, v)| Op::Insert(t, i, tags, v)),
        3 => (t.clone(), id.clone()).prop_map(|(t, i)| Op::Delete(t, i)),
        2 => (t.clone(), id.clone(), 0..VALUES, any::<bool>()).prop_map(|(t, i, v, r)| Op::Cas(t, i, v, r)),
        2 => (t.clone(), id.clone(), any::<bool>()).prop_map(|(t, i, r)| Op::Cad(t, i, r)),
        1 => t.clone().prop_map(Op::DeleteAll),
        3 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => t.prop_map(Op::NewIterator),
        1 => Just(Op::DropIterator),
        2 => Just(Op::ReadChanges),
        1 => Just(Op::ReadChangesInTxn),
        2 => (0..2usize, 0..8u64).prop_map(|(t, i)| Op::WatchInTxn(t, i)),
        1 => Just(Op::InitDone),
    ]
}

/// The model of one table: id -> (object, revision), and its revision.
#[derive(Clone, Default, Debug)]
struct TableModel {
    objects: BTreeMap<u64, (Obj, u64)>,
    revision: u64,
}

/// A key's watch taken through a write transaction: (table, key, the
/// key's committed object and revision when taken, the watch).
type KeyWatch = (usize, u64, Option<(Obj, u64)>, statedb::Watch);

struct Iter {
    table: usize,
    it: ChangeIterator<Obj>,
    /// The iterator's view: id -> last upserted value, as applied from changes.
    seen: BTreeMap<u64, Obj>,
}

fn check(f: &[Table<Obj>; 2], txn: &impl statedb::ReadTxnLike, model: &[TableModel; 2]) {
    let id = id_index();
    let tags = tag_index();
    for (t, m) in f.iter().zip(model) {
        let all: Vec<(u64, u32, u64)> = t
            .all(txn)
            .unwrap()
            .map(|(o, r)| (o.id, o.value, r))
            .collect();
        let want: Vec<(u64, u32, u64)> = m
            .objects
            .values()
            .map(|(o, r)| (o.id, o.value, *r))
            .collect();
        assert_eq!(all, want, "all");
        let mut all_rev: Vec<(u64, u32, u64)> = t
            .all_rev(txn)
            .unwrap()
            .map(|(o, r)| (o.id, o.value, r))
            .collect();
        all_rev.reverse();
        assert_eq!(all_rev, want, "all_rev");
        assert_eq!(t.num_objects(txn).unwrap(), m.objects.len());
        assert_eq!(t.revision(txn).unwrap(), m.revision);
        for v in 0..VALUES {
            assert_eq!(
                t.get(txn, value_index().query(&v))
                    .unwrap()
                    .map(|(o, _)| o.id),
                m.objects
                    .values()
                    .find(|(o, _)| o.value == v)
                    .map(|(o, _)| o.id),
                "unique value {v}"
            );
        }
        for i in 0..8u64 {
            assert_eq!(
                t.get(txn, id.query(&i))
                    .unwrap()
                    .map(|(o, r)| ((*o).clone(), r)),
                m.objects.get(&i).cloned()
            );
            let lb: Vec<u64> = t
                .lower_bound(txn, id.query(&i))
                .unwrap()
                .0
                .map(|(o, _)| o.id)
                .collect();
            let want: Vec<u64> = m.objects.range(i..).map(|(k, _)| *k).collect();
            assert_eq!(lb, want, "lower_bound id {i}");
            let mut lb_rev: Vec<u64> = t
                .lower_bound_rev(txn, id.query(&i))
                .unwrap()
                .map(|(o, _)| o.id)
                .collect();
            lb_rev.reverse();
            assert_eq!(lb_rev, want, "lower_bound_rev id {i}");
        }
        // By revision: objects in the order they changed.
        let by_rev: Vec<u64> = t
            .lower_bound_by_revision(txn, 0)
            .unwrap()
            .0
            .map(|(_, r)| r)
            .collect();
        let mut want: Vec<u64> = m.objects.values().map(|(_, r)| *r).collect();
        want.sort();
        assert_eq!(by_rev, want, "by revision");
        for tag in TAGS {
            // list: objects having the tag, by primary key.
            let got: Vec<u64> = t
                .list(txn, tags.query(tag))
                .unwrap()
                .map(|(o, _)| o.id)
                .collect();
            let want: Vec<u64> = m
                .objects
                .values()
                .filter(|(o, _)| o.tags.iter().any(|x| x == tag))
                .map(|(o, _)| o.id)
                .collect();
            assert_eq!(got, want, "list tag {tag:?}");
            assert_eq!(
                t.count(txn, tags.query(tag)).unwrap(),
                want.len(),
                "count tag {tag:?}"
            );
            assert_eq!(
                t.last(txn, tags.query(tag)).unwrap().map(|(o, _)| o.id),
                want.last().copied(),
                "last tag {tag:?}"
            );
            let mut rev: Vec<u64> = t
                .list_rev(txn, tags.query(tag))
                .unwrap()
                .map(|(o, _)| o.id)
                .collect();
            rev.reverse();
            assert_eq!(rev, want, "list_rev tag {tag:?}");
            assert_eq!(
                t.get(txn, tags.query(tag)).unwrap().map(|(o, _)| o.id),
                want.first().copied()
            );
            // prefix: one entry per (tag, object) with tag starting with the prefix, in (tag, id) order.
            let got: Vec<(u64,)> = t
                .prefix(txn, tags.query(tag))
                .unwrap()
                .0
                .map(|(o, _)| (o.id,))
                .collect();
            let mut entries: Vec<(String, u64)> = m
                .objects
                .values()
                .flat_map(|(o, _)| {
                    let mut ts = o.tags.clone();
                    ts.sort();
                    ts.dedup();
                    ts.into_iter().map(move |x| (x, o.id))
                })
                .filter(|(x, _)| x.starts_with(tag))
                .collect();
            entries.sort();
            let want: Vec<(u64,)> = entries.iter().map(|(_, i)| (*i,)).collect();
            assert_eq!(got, want, "prefix tag {tag:?}");
            let mut rev: Vec<(u64,)> = t
                .prefix_rev(txn, tags.query(tag))
                .unwrap()
                .map(|(o, _)| (o.id,))
                .collect();
            rev.reverse();
            assert_eq!(rev, want, "prefix_rev tag {tag:?}");
            let got: Vec<u64> = t
                .lower_bound(txn, tags.query(tag))
                .unwrap()
                .0
                .map(|(o, _)| o.id)
                .collect();
            let mut entries: Vec<(String, u64)> = m
                .objects
                .values()
                .flat_map(|(o, _)| {
                    let mut ts = o.tags.clone();
                    ts.sort();
                    ts.dedup();
                    ts.into_iter().map(move |x| (x, o.id))
                })
                .filter(|(x, _)| x.as_str() >= tag)
                .collect();
            entries.sort();
            let want: Vec<u64> = entries.iter().map(|(_, i)| *i).collect();
            assert_eq!(got, want, "lower_bound tag {tag:?}");
            let mut rev: Vec<u64> = t
                .lower_bound_rev(txn, tags.query(tag))
                .unwrap()
                .map(|(o, _)| o.id)
                .collect();
            rev.reverse();
            assert_eq!(rev, want, "lower_bound_rev tag {tag:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn db_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        let id = id_index();
        let tags = tag_index();
        let tables = [
            Table::builder("t0", &id).index(&tags).index(&value_index()).build().unwrap(),
            Table::builder("t1", &id).index(&tags).index(&value_index()).build().unwrap(),
        ];
        let db = Db::new();
        for t in &tables { db.register_table(t).unwrap(); }
        let mut committed: [TableModel; 2] = Default::default();
        let mut pending = committed.clone();
        let mut snapshots: Vec<(ReadTxn, [TableModel; 2])> = vec![(db.read_txn(), committed.clone())];
        let mut w: Option<WriteTxn> = None;
        let mut iters: Vec<Iter> = Vec::new();
        let mut watches: Vec<KeyWatch> = Vec::new();
        let init = {
            let mut w = db.write_txn(&[&tables[0]]).unwrap();
            let init = tables[0].register_initializer(&mut w, "model").unwrap();
            w.commit();
            init
        };
        // t0's initializer: done as committed, and as seen by the txn.
        let (mut init_committed, mut init_pending) = (false, false);
        for op in ops {
            let wtxn = w.get_or_insert_with(|| db.write_txn(&[&tables[0], &tables[1]]).unwrap());
            match op {
                Op::Insert(t, i, tg, v) => {
                    let o = Obj { id: i, tags: tg.iter().map(|s| s.to_string()).collect(), value: v };
                    let res = tables[t].insert(wtxn, o.clone());
                    let m = &mut pending[t];
                    if conflicts(m, &o) {
                        prop_assert!(matches!(res, Err(Error::Write(WriteError::UniqueConflict { .. }))), "expected UniqueConflict");
                        continue;
                    }
                    let old = res.unwrap().map(|o| (*o).clone());
                    m.revision += 1;
                    prop_assert_eq!(old, m.objects.insert(i, (o, m.revision)).map(|x| x.0));
                }
                Op::Delete(t, i) => {
                    let old = tables[t].delete(wtxn, &obj(i, &[], 0)).unwrap().map(|o| (*o).clone());
                    let m = &mut pending[t];
                    let want = m.objects.remove(&i).map(|x| x.0);
                    if want.is_some() { m.revision += 1; }
                    prop_assert_eq!(old, want);
                }
                Op::Cas(t, i, v, right) => {
                    let m = &mut pending[t];
                    let cur = m.objects.get(&i).map(|x| x.1);
                    let rev = if right { cur.unwrap_or(1) } else { cur.unwrap_or(0) + 100 };
                    let o = obj(i, &["a"], v);
                    let res = tables[t].compare_and_swap(wtxn, rev, o.clone());
                    match cur {
                        None => prop_assert_eq!(res.unwrap_err(), Error::Write(WriteError::ObjectNotFound)),
                        Some(c) if c != rev => prop_assert!(matches!(res, Err(Error::Write(WriteError::RevisionNotEqual { .. }))), "expected RevisionNotEqual"),
                        Some(_) if conflicts(m, &o) => prop_assert!(matches!(res, Err(Error::Write(WriteError::UniqueConflict { .. }))), "expected UniqueConflict"),
                        Some(_) => { res.unwrap(); m.revision += 1; m.objects.insert(i, (o, m.revision)); }
                    }
                }
                Op::Cad(t, i, right) => {
                    let m = &mut pending[t];
                    let cur = m.objects.get(&i).map(|x| x.1);
                    let rev = if right { cur.unwrap_or(1) } else { cur.unwrap_or(0) + 100 };
                    let res = tables[t].compare_and_delete(wtxn, rev, &obj(i, &[], 0));
                    match cur {
                        None => prop_assert_eq!(res, Ok(None), "nothing to delete"),
                        Some(c) if c != rev => prop_assert!(matches!(res, Err(Error::Write(WriteError::RevisionNotEqual { .. }))), "expected RevisionNotEqual"),
                        Some(_) => { res.unwrap(); m.revision += 1; m.objects.remove(&i); }
                    }
                }
                Op::DeleteAll(t) => {
                    let n = tables[t].delete_all(wtxn).unwrap();
                    let m = &mut pending[t];
                    prop_assert_eq!(n, m.objects.len());
                    m.revision += n as u64;
                    m.objects.clear();
                }
                Op::Commit => {
                    let r = w.take().unwrap().commit();
                    committed = pending.clone();
                    init_committed = init_pending;
                    snapshots.push((r, committed.clone()));
                    // Watches of keys this commit changed must have closed.
                    let mut kept = Vec::new();
                    for (t, i, was, watch) in watches.drain(..) {
                        if committed[t].objects.get(&i) != was.as_ref() {
                            prop_assert!(watch.is_closed(), "watch of t{} key {} still open after its change", t, i);
                        } else {
                            kept.push((t, i, was, watch));
                        }
                    }
                    watches = kept;
                }
                Op::Abort => {
                    w.take().unwrap().abort();
                    pending = committed.clone();
                    init_pending = init_committed;
                }
                Op::WatchInTxn(t, i) => {
                    let (found, watch) = tables[t].get_watch(wtxn, id.query(&i)).unwrap();
                    prop_assert_eq!(found.map(|(o, _)| o.id), pending[t].objects.get(&i).map(|(o, _)| o.id));
                    watches.push((t, i, committed[t].objects.get(&i).cloned(), watch));
                }
                Op::InitDone => {
                    let res = init.done(wtxn);
                    if init_pending {
                        prop_assert_eq!(res, Err(TxnError::InitializerDone("model".into())));
                    } else {
                        prop_assert_eq!(res, Ok(()));
                        init_pending = true;
                    }
                }
                Op::NewIterator(t) => {
                    if pending[t].revision != committed[t].revision {
                        prop_assert_eq!(tables[t].changes(wtxn).err(), Some(TxnError::ChangesAfterWrite(format!("t{t}"))));
                        continue;
                    }
                    let it = tables[t].changes(wtxn).unwrap();
                    // Registered in the txn: its initial view is the txn's
                    // state, which the first read will deliver on commit.
                    iters.push(Iter { table: t, it, seen: BTreeMap::new() });
                }
                Op::DropIterator => { iters.pop(); }
                Op::ReadChangesInTxn => {
                    // Through a write transaction: only what was committed
                    // before it began, never its own writes (it may abort).
                    for it in iters.iter_mut() {
                        let (changes, _) = it.it.next(&*wtxn).unwrap();
                        for c in changes {
                            if c.deleted { it.seen.remove(&c.object.id); } else { it.seen.insert(c.object.id, (*c.object).clone()); }
                        }
                        let want: BTreeMap<u64, Obj> = committed[it.table].objects.iter().map(|(k, (o, _))| (*k, o.clone())).collect();
                        prop_assert_eq!(&it.seen, &want, "iterator view through a write txn");
                    }
                }
                Op::ReadChanges => {
                    // Read changes of committed state only.
                    let r = db.read_txn();
                    for it in iters.iter_mut() {
                        let (changes, _) = it.it.next(&r).unwrap();
                        let mut last = 0;
                        for c in changes {
                            prop_assert!(c.revision > last, "changes out of order");
                            last = c.revision;
                            if c.deleted { it.seen.remove(&c.object.id); } else { it.seen.insert(c.object.id, (*c.object).clone()); }
                        }
                        let want: BTreeMap<u64, Obj> = committed[it.table].objects.iter().map(|(k, (o, _))| (*k, o.clone())).collect();
                        prop_assert_eq!(&it.seen, &want, "iterator view");
                    }
                }
            }
            prop_assert_eq!(tables[0].initialized(&db.read_txn()).unwrap().0, init_committed, "initialized");
            if let Some(wtxn) = &w {
                check(&tables, wtxn, &pending);
            }
            for (r, m) in &snapshots {
                check(&tables, r, m);
            }
            // Graveyard bound: with no iterator, nothing is kept after a commit.
            if iters.iter().all(|i| i.table != 0) && w.is_none() {
                prop_assert_eq!(tables[0].graveyard_len(&db.read_txn()).unwrap(), 0);
            }
        }
        drop(w);
        drop(iters);
        let r = db.read_txn();
        for t in &tables {
            prop_assert_eq!(t.graveyard_len(&r).unwrap(), 0, "graveyard after dropping all iterators");
        }
    }
}

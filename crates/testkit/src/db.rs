//! `statedb` against a model: two tables, a non-unique multi-key index,
//! write transactions, compare-and-swap, change iterators, the graveyard.

use std::collections::BTreeMap;

use statedb::{ChangeIterator, Db, Error, Index, ReadTxn, Table, TxnError, WriteError, WriteTxn};

use crate::input::Input;

/// Tags are the non-unique index keys: bytes from a small alphabet that
/// includes 0x00 and 0xff, which the index must escape.
const TAG_ALPHABET: &[u8] = &[0x00, 0x01, b'a', 0xfe, 0xff];
const MAX_TAG: usize = 3;
const IDS: u64 = 8;
const MAX_ITERATORS: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Obj {
    id: u64,
    tags: Vec<Vec<u8>>,
    value: u32,
}

/// One table's committed or pending contents: id -> (object, revision).
type Model = BTreeMap<u64, (Obj, u64)>;

struct Iter {
    table: usize,
    it: ChangeIterator<Obj>,
    /// What the iterator's reader knows: id -> object, from the changes.
    view: BTreeMap<u64, Obj>,
}

struct Fixture {
    db: Db,
    tables: [Table<Obj>; 2],
    ids: Index<Obj, u64>,
    tags: Index<Obj, [u8]>,
}

struct State {
    f: Fixture,
    committed: [Model; 2],
    txn: Option<(WriteTxn, [Model; 2], [bool; 2])>,
    iters: Vec<Iter>,
}

/// Runs the database program encoded in `data`; panics if `statedb`
/// disagrees with the model: point, list, prefix and full queries through
/// both indexes, inside a write transaction and on snapshots; the outcome
/// of every compare-and-swap and compare-and-delete; what change
/// iterators report (their reader's view always equals the table once
/// caught up: no lost delete, no stale upsert); and an empty graveyard
/// once every iterator has caught up or none is left.
pub fn db_program(data: &[u8]) {
    let ids: Index<Obj, u64> = Index::unique("id", |o: &Obj, k| k.push(&o.id));
    let tags: Index<Obj, [u8]> = Index::non_unique("tags", |o: &Obj, k| {
        for t in &o.tags {
            k.push(t.as_slice());
        }
    });
    let table = |name: &str| {
        Table::builder(name, &ids)
            .index(&tags)
            .build()
            .expect("valid table")
    };
    let f = Fixture {
        db: Db::new(),
        tables: [table("a"), table("b")],
        ids,
        tags,
    };
    for t in &f.tables {
        f.db.register_table(t).expect("registration");
    }
    let mut s = State {
        f,
        committed: [Model::new(), Model::new()],
        txn: None,
        iters: Vec::new(),
    };
    let mut input = Input::new(data);
    let mut steps = 0;
    while !input.is_empty() && steps < 256 {
        steps += 1;
        let t = input.below(2);
        match input.below(11) {
            0 | 1 => {
                let obj = Obj {
                    id: input.below(IDS as usize) as u64,
                    tags: (0..input.below(3))
                        .map(|_| input.key(TAG_ALPHABET, MAX_TAG))
                        .collect(),
                    value: input.byte() as u32,
                };
                s.insert(t, obj);
            }
            2 => s.delete(t, input.below(IDS as usize) as u64),
            3 => {
                let (id, right, value) =
                    (input.below(IDS as usize) as u64, input.bool(), input.byte());
                s.compare(t, id, right, Some(value as u32));
            }
            4 => {
                let (id, right) = (input.below(IDS as usize) as u64, input.bool());
                s.compare(t, id, right, None);
            }
            5 => s.delete_all(t),
            6 => s.commit(),
            7 => s.txn = None,
            8 => s.new_iterator(t),
            9 => {
                if !s.iters.is_empty() {
                    let i = input.below(s.iters.len());
                    s.iters.remove(i);
                    s.check_graveyards(false);
                }
            }
            _ => {
                let tag = input.key(TAG_ALPHABET, MAX_TAG);
                s.read_changes();
                s.check_queries(&tag);
            }
        }
    }
    s.commit();
    s.read_changes();
    s.check_queries(b"a");
    s.iters.clear();
    s.check_graveyards(false);
}

impl State {
    /// The open write transaction over both tables, begun on demand.
    fn txn(&mut self) -> (&mut WriteTxn, &mut [Model; 2], &mut [bool; 2]) {
        if self.txn.is_none() {
            let w = self
                .f
                .db
                .write_txn(&[&self.f.tables[0], &self.f.tables[1]])
                .expect("write txn");
            self.txn = Some((w, self.committed.clone(), [false; 2]));
        }
        let (w, m, written) = self.txn.as_mut().expect("just begun");
        (w, m, written)
    }

    fn insert(&mut self, t: usize, obj: Obj) {
        let table = self.f.tables[t].clone();
        let (w, m, written) = self.txn();
        let old = table.insert(w, obj.clone()).expect("insert");
        let rev = table.revision(&*w).expect("revision");
        let want = m[t].insert(obj.id, (obj.clone(), rev)).map(|(o, _)| o);
        assert_eq!(
            old.as_deref(),
            want.as_ref(),
            "insert returned the old object"
        );
        written[t] = true;
    }

    fn delete(&mut self, t: usize, id: u64) {
        let table = self.f.tables[t].clone();
        let (w, m, written) = self.txn();
        let old = table.delete(w, &probe(id)).expect("delete");
        let want = m[t].remove(&id).map(|(o, _)| o);
        assert_eq!(
            old.as_deref(),
            want.as_ref(),
            "delete returned the old object"
        );
        written[t] |= old.is_some();
    }

    /// Compare-and-swap (`value` given) or compare-and-delete of `id`,
    /// with the object's revision (`right`) or a wrong one.
    fn compare(&mut self, t: usize, id: u64, right: bool, value: Option<u32>) {
        let table = self.f.tables[t].clone();
        let (w, m, written) = self.txn();
        let current = m[t].get(&id).cloned();
        let revision = match &current {
            Some((_, r)) if right => *r,
            Some((_, r)) => r + 1,
            None => 1,
        };
        // The object a swap writes; none for a delete.
        let new = value.map(|value| Obj {
            id,
            tags: current
                .as_ref()
                .map(|(o, _)| o.tags.clone())
                .unwrap_or_default(),
            value,
        });
        let result = match &new {
            Some(obj) => table.compare_and_swap(w, revision, obj.clone()),
            None => table.compare_and_delete(w, revision, &probe(id)),
        };
        match (&current, right) {
            // Swapping a missing object is an error; deleting one deletes
            // nothing.
            (None, _) if new.is_some() => {
                assert!(
                    matches!(result, Err(Error::Write(WriteError::ObjectNotFound))),
                    "{result:?}"
                )
            }
            (None, _) => assert!(matches!(result, Ok(None)), "{result:?}"),
            (Some(_), false) => assert!(
                matches!(
                    result,
                    Err(Error::Write(WriteError::RevisionNotEqual { .. }))
                ),
                "{result:?}"
            ),
            (Some((old, _)), true) => {
                assert_eq!(result.expect("compare").as_deref(), Some(old));
                match new {
                    Some(obj) => {
                        let rev = table.revision(&*w).expect("revision");
                        m[t].insert(id, (obj, rev))
                    }
                    None => m[t].remove(&id),
                };
                written[t] = true;
            }
        }
    }

    fn delete_all(&mut self, t: usize) {
        let table = self.f.tables[t].clone();
        let (w, m, written) = self.txn();
        let n = table.delete_all(w).expect("delete_all");
        assert_eq!(n, m[t].len(), "delete_all count");
        written[t] |= n > 0;
        m[t].clear();
    }

    fn commit(&mut self) {
        if let Some((w, models, _)) = self.txn.take() {
            let snap = w.commit();
            self.committed = models;
            self.check_snapshot(&snap, &[]);
        }
    }

    fn new_iterator(&mut self, t: usize) {
        if self.iters.len() == MAX_ITERATORS {
            return;
        }
        let table = self.f.tables[t].clone();
        let (w, _, written) = self.txn();
        let was_written = written[t];
        match table.changes(w) {
            Ok(it) => {
                assert!(!was_written, "changes() accepted after a write");
                self.iters.push(Iter {
                    table: t,
                    it,
                    view: BTreeMap::new(),
                });
            }
            Err(TxnError::ChangesAfterWrite(_)) => {
                assert!(was_written, "changes() refused before any write")
            }
            Err(e) => panic!("changes(): {e}"),
        }
    }

    /// Every iterator reads a fresh snapshot of committed state; its view
    /// must then equal the committed table.
    fn read_changes(&mut self) {
        let snap = self.f.db.read_txn();
        for iter in &mut self.iters {
            let (changes, _watch) = iter.it.next(&snap).expect("next");
            let mut last = 0;
            for c in changes {
                assert!(c.revision > last, "changes out of revision order");
                last = c.revision;
                if c.deleted {
                    iter.view.remove(&c.object.id);
                } else {
                    iter.view.insert(c.object.id, (*c.object).clone());
                }
            }
            let want: BTreeMap<u64, Obj> = self.committed[iter.table]
                .iter()
                .map(|(id, (o, _))| (*id, o.clone()))
                .collect();
            assert_eq!(
                iter.view, want,
                "change iterator view of table {}",
                iter.table
            );
        }
        self.check_graveyards(true);
    }

    /// With no write transaction open, a table's graveyard is empty once
    /// every iterator of it has read everything committed (`all_read`), or
    /// when none is left.
    fn check_graveyards(&self, all_read: bool) {
        if self.txn.is_some() {
            return;
        }
        let snap = self.f.db.read_txn();
        for (t, table) in self.f.tables.iter().enumerate() {
            if all_read || self.iters.iter().all(|i| i.table != t) {
                let left = table.graveyard_len(&snap).expect("graveyard_len");
                assert_eq!(left, 0, "graveyard of table {t} not collected");
            }
        }
    }

    fn check_queries(&self, tag: &[u8]) {
        if let Some((w, models, _)) = &self.txn {
            check_view(&self.f, w, models, tag);
        }
        let snap = self.f.db.read_txn();
        check_view(&self.f, &snap, &self.committed, tag);
    }

    fn check_snapshot(&self, snap: &ReadTxn, tag: &[u8]) {
        check_view(&self.f, snap, &self.committed, tag);
    }
}

/// An object with only the primary key set, for deletes.
fn probe(id: u64) -> Obj {
    Obj {
        id,
        tags: Vec::new(),
        value: 0,
    }
}

fn check_view(f: &Fixture, txn: &impl statedb::ReadTxnLike, models: &[Model; 2], tag: &[u8]) {
    for (table, model) in f.tables.iter().zip(models) {
        let all: Vec<(Obj, u64)> = table
            .all(txn)
            .expect("all")
            .map(|(o, r)| ((*o).clone(), r))
            .collect();
        let want: Vec<(Obj, u64)> = model.values().cloned().collect();
        assert_eq!(all, want, "all");
        assert_eq!(table.num_objects(txn).expect("num_objects"), model.len());
        for id in 0..IDS {
            let got = table.get(txn, f.ids.query(&id)).expect("get");
            assert_eq!(
                got.map(|(o, r)| ((*o).clone(), r)),
                model.get(&id).cloned(),
                "get {id}"
            );
        }
        // Exact tag: every object carrying the tag, once, by primary key.
        let exact: Vec<u64> = table
            .list(txn, f.tags.query(tag))
            .expect("list")
            .map(|(o, _)| o.id)
            .collect();
        let want: Vec<u64> = model
            .values()
            .filter(|(o, _)| o.tags.iter().any(|t| t == tag))
            .map(|(o, _)| o.id)
            .collect();
        assert_eq!(exact, want, "list by tag {tag:?}");
        // Prefix: one result per (tag, object) with the tag under the
        // prefix, in tag order.
        let (prefixed, _) = table.prefix(txn, f.tags.query(tag)).expect("prefix");
        let mut got: Vec<u64> = prefixed.map(|(o, _)| o.id).collect();
        let mut want: Vec<u64> = model
            .values()
            .filter(|(o, _)| o.tags.iter().any(|t| t.starts_with(tag)))
            .map(|(o, _)| o.id)
            .collect();
        got.sort_unstable();
        got.dedup();
        want.sort_unstable();
        assert_eq!(got, want, "prefix by tag {tag:?}");
    }
}

//! statedb's and part's bad-input catalogue: every public API fed its bad
//! inputs. Each case must return the documented error (or the documented
//! empty answer) and never panic. (The reconciler's cases are in
//! `reconciler/tests/bad_input.rs`.)

use statedb::{Db, DeclareError, Error, Index, Table, TxnError, WriteError};

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
struct O {
    id: u64,
}

fn id() -> Index<O, u64> {
    Index::unique("id", |o: &O, k| k.push(&o.id))
}

fn o(id: u64) -> O {
    O { id }
}

fn registered(name: &str) -> (Db, Table<O>) {
    let t = Table::new(name, &id()).unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    (db, t)
}

// ---- statedb: declarations ------------------------------------------------

#[test]
fn c01_table_names_outside_the_pattern() {
    for bad in [
        "",
        "Upper",
        "9start",
        "-dash",
        "with space",
        "tab\t",
        "ünï",
        "a/b",
        "a.b",
    ] {
        assert_eq!(
            Table::new(bad, &id()).unwrap_err(),
            DeclareError::InvalidTableName(bad.into()),
            "{bad:?}"
        );
    }
}

#[test]
fn c02_table_name_too_long() {
    let name = "a".repeat(32);
    assert_eq!(
        Table::new(&name, &id()).unwrap_err(),
        DeclareError::InvalidTableName(name)
    );
}

#[test]
fn c03_primary_index_not_unique() {
    let nu: Index<O, u64> = Index::non_unique("id", |o: &O, k| k.push(&o.id));
    assert!(matches!(
        Table::new("t", &nu),
        Err(DeclareError::PrimaryIndexNotUnique { .. })
    ));
}

#[test]
fn c04_duplicate_index_name() {
    let other: Index<O, u64> = Index::non_unique("id", |o: &O, k| k.push(&o.id));
    assert!(matches!(
        Table::builder("t", &id()).index(&other).build(),
        Err(DeclareError::DuplicateIndex { .. })
    ));
}

#[test]
fn c05_reserved_index_name() {
    let r: Index<O, u64> = Index::non_unique("__graveyard__", |o: &O, k| k.push(&o.id));
    assert!(matches!(
        Table::builder("t", &id()).index(&r).build(),
        Err(DeclareError::ReservedIndexName(_))
    ));
}

#[test]
fn c06_empty_index_name() {
    let e: Index<O, u64> = Index::unique("", |o: &O, k| k.push(&o.id));
    assert_eq!(
        Table::new("t", &e).unwrap_err(),
        DeclareError::EmptyIndexName
    );
}

#[test]
fn c07_register_twice() {
    let (db, t) = registered("t");
    assert_eq!(
        db.register_table(&t),
        Err(TxnError::DuplicateTable("t".into()))
    );
}

#[test]
fn c08_register_a_second_table_with_a_taken_name() {
    let (db, _) = registered("t");
    let t2 = Table::new("t", &id()).unwrap();
    assert_eq!(
        db.register_table(&t2),
        Err(TxnError::DuplicateTable("t".into()))
    );
}

#[test]
fn c09_register_with_another_db() {
    // Refused while the first Db is alive; allowed once it is dropped.
    let (db, t) = registered("t");
    assert_eq!(
        Db::new().register_table(&t),
        Err(TxnError::TableFromOtherDb("t".into()))
    );
    drop(db);
    assert_eq!(Db::new().register_table(&t), Ok(()));
}

// ---- statedb: transactions -----------------------------------------------

#[test]
fn c10_write_txn_on_unregistered_table() {
    let t = Table::new("t", &id()).unwrap();
    assert_eq!(
        Db::new().write_txn(&[&t]).unwrap_err(),
        TxnError::TableNotRegistered("t".into())
    );
}

#[test]
fn c11_write_txn_with_table_of_other_db() {
    let (_, t) = registered("t");
    assert_eq!(
        Db::new().write_txn(&[&t]).unwrap_err(),
        TxnError::TableFromOtherDb("t".into())
    );
}

#[test]
fn c12_query_unregistered_table() {
    let t = Table::new("t", &id()).unwrap();
    assert_eq!(
        t.num_objects(&Db::new().read_txn()).unwrap_err(),
        TxnError::TableNotRegistered("t".into())
    );
}

#[test]
fn c13_query_with_read_txn_of_other_db() {
    let (_, t) = registered("t");
    let (other, _) = registered("u");
    assert!(matches!(
        t.all(&other.read_txn()),
        Err(TxnError::TableFromOtherDb(_))
    ));
}

#[test]
fn c14_write_to_table_not_locked() {
    let (db, t) = registered("t");
    let u = Table::new("u", &id()).unwrap();
    db.register_table(&u).unwrap();
    let mut w = db.write_txn(&[&t]).unwrap();
    assert_eq!(
        u.insert(&mut w, o(1)).unwrap_err(),
        TxnError::TableNotLocked("u".into())
    );
    assert_eq!(
        u.delete_all(&mut w).unwrap_err(),
        TxnError::TableNotLocked("u".into())
    );
}

#[test]
fn c15_query_with_index_of_another_table() {
    let (db, t) = registered("t");
    let foreign: Index<O, u64> = Index::unique("other", |o: &O, k| k.push(&o.id));
    assert!(matches!(
        t.get(&db.read_txn(), foreign.query(&1)),
        Err(TxnError::UnknownIndex { .. })
    ));
    assert!(matches!(
        t.prefix(&db.read_txn(), foreign.query(&1)),
        Err(TxnError::UnknownIndex { .. })
    ));
}

#[test]
fn c16_primary_key_yields_no_key() {
    let none: Index<O, u64> = Index::unique("none", |_: &O, _| {});
    let t = Table::new("t", &none).unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    let mut w = db.write_txn(&[&t]).unwrap();
    assert_eq!(
        t.insert(&mut w, o(1)).unwrap_err(),
        Error::Write(WriteError::PrimaryKeyCount {
            table: "t".into(),
            count: 0
        })
    );
}

#[test]
fn c17_primary_key_yields_two_keys() {
    let two: Index<O, u64> = Index::unique("two", |o: &O, k| {
        k.push(&o.id);
        k.push(&(o.id + 1));
    });
    let t = Table::new("t", &two).unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    let mut w = db.write_txn(&[&t]).unwrap();
    assert_eq!(
        t.insert(&mut w, o(1)).unwrap_err(),
        Error::Write(WriteError::PrimaryKeyCount {
            table: "t".into(),
            count: 2
        })
    );
}

#[test]
fn c18_compare_and_swap_on_missing_object() {
    let (db, t) = registered("t");
    let mut w = db.write_txn(&[&t]).unwrap();
    assert_eq!(
        t.compare_and_swap(&mut w, 1, o(1)).unwrap_err(),
        Error::Write(WriteError::ObjectNotFound)
    );
}

#[test]
fn c19_compare_and_swap_with_wrong_revision() {
    let (db, t) = registered("t");
    let mut w = db.write_txn(&[&t]).unwrap();
    t.insert(&mut w, o(1)).unwrap();
    assert_eq!(
        t.compare_and_swap(&mut w, 9, o(1)).unwrap_err(),
        Error::Write(WriteError::RevisionNotEqual {
            expected: 9,
            found: 1
        })
    );
}

#[test]
fn c20_compare_and_delete_on_missing_object() {
    let (db, t) = registered("t");
    let mut w = db.write_txn(&[&t]).unwrap();
    // Nothing to delete: not an error (as the reference).
    assert!(matches!(t.compare_and_delete(&mut w, 1, &o(1)), Ok(None)));
}

#[test]
fn c21_compare_and_delete_with_wrong_revision() {
    let (db, t) = registered("t");
    let mut w = db.write_txn(&[&t]).unwrap();
    t.insert(&mut w, o(1)).unwrap();
    assert_eq!(
        t.compare_and_delete(&mut w, 0, &o(1)).unwrap_err(),
        Error::Write(WriteError::RevisionNotEqual {
            expected: 0,
            found: 1
        })
    );
}

#[test]
fn c22_delete_of_missing_object_is_none() {
    let (db, t) = registered("t");
    let mut w = db.write_txn(&[&t]).unwrap();
    assert_eq!(t.delete(&mut w, &o(42)).unwrap().map(|x| x.id), None);
    assert_eq!(
        t.revision(&w).unwrap(),
        0,
        "a no-op delete takes no revision"
    );
}

#[test]
fn c23_change_iterator_after_write() {
    let (db, t) = registered("t");
    let mut w = db.write_txn(&[&t]).unwrap();
    t.insert(&mut w, o(1)).unwrap();
    assert_eq!(
        t.changes(&mut w).err().map(|e| e.to_string()),
        Some(TxnError::ChangesAfterWrite("t".into()).to_string())
    );
}

#[test]
fn c24_change_iterator_on_table_not_locked() {
    let (db, t) = registered("t");
    let u = Table::new("u", &id()).unwrap();
    db.register_table(&u).unwrap();
    let mut w = db.write_txn(&[&u]).unwrap();
    assert!(matches!(
        t.changes(&mut w),
        Err(TxnError::TableNotLocked(_))
    ));
}

#[test]
fn c25_initializer_on_table_not_locked() {
    let (db, t) = registered("t");
    let u = Table::new("u", &id()).unwrap();
    db.register_table(&u).unwrap();
    let mut wt = db.write_txn(&[&t]).unwrap();
    let init = t.register_initializer(&mut wt, "i").unwrap();
    wt.commit();
    let mut wu = db.write_txn(&[&u]).unwrap();
    // `u` is locked here: registering works; `t` is not.
    assert!(u.register_initializer(&mut wu, "x").is_ok());
    assert!(matches!(
        t.register_initializer(&mut wu, "y"),
        Err(TxnError::TableNotLocked(_))
    ));
    assert_eq!(
        init.done(&mut wu).unwrap_err(),
        TxnError::TableNotLocked("t".into())
    );
}

#[cfg(feature = "json")]
#[test]
fn c26_json_dump_to_failing_writer() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (db, t) = registered("t");
    let err = db.write_json(&db.read_txn(), &[&t], Broken).unwrap_err();
    // The I/O error is kept as the source, not flattened into a string.
    assert!(
        matches!(&err, Error::Io(e) if e.to_string() == "disk full"),
        "{err:?}"
    );
    let source = std::error::Error::source(&err).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("disk full"));
}

#[cfg(feature = "json")]
#[test]
fn c26b_json_dump_of_an_unserializable_object() {
    #[derive(Debug)]
    struct Refuses(u32);
    impl serde::Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("refuses to serialize"))
        }
    }
    let idx: Index<Refuses, u32> = Index::unique("id", |o: &Refuses, k| k.push(&o.0));
    let t = Table::new("r", &idx).unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    let mut w = db.write_txn(&[&t]).unwrap();
    t.insert(&mut w, Refuses(1)).unwrap();
    w.commit();
    let mut out = Vec::new();
    let err = db.write_json(&db.read_txn(), &[&t], &mut out).unwrap_err();
    assert!(matches!(&err, Error::Json(_)), "{err:?}");
    let source = std::error::Error::source(&err).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("refuses to serialize"));
}

// ---- part -----------------------------------------------------------------

#[test]
fn c27_tree_edge_queries_on_empty_and_missing() {
    let t: part::Tree<u32> = part::Tree::new();
    assert!(t.get(b"").is_none());
    assert_eq!(t.prefix(b"\xff\xff").0.count(), 0);
    assert_eq!(t.lower_bound(&[0xff; 64]).count(), 0);
    assert!(t.first().is_none() && t.last().is_none());
    let mut txn = t.txn();
    assert_eq!(txn.delete(b"missing"), None);
    assert_eq!(txn.len(), 0);
}

#[test]
fn c28_map_and_set_removals_of_missing() {
    let mut m: part::Map<u32, u32> = part::Map::new();
    assert_eq!(m.remove_mut(&7), None);
    let mut s: part::Set<String> = part::Set::new();
    assert!(!s.remove_mut(&"x".to_string()));
}

#[cfg(feature = "json")]
#[test]
fn c29_set_and_map_from_bad_json() {
    assert!(serde_json::from_str::<part::Set<u32>>("{\"a\":1}").is_err());
    assert!(serde_json::from_str::<part::Map<String, u32>>("[1,2]").is_err());
    assert!(serde_json::from_str::<part::Set<u8>>("[300]").is_err());
}

//! Untyped writes through `AnyTable`: objects as JSON (and YAML) into a
//! table found by name, all or nothing, with clear errors for bad input.
#![cfg(feature = "json")]

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use statedb::{Db, Index, Table, TxnError, UntypedWriteError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Route {
    prefix: IpNet,
    via: String,
    /// Unique: two routes may not share a name.
    name: String,
}

struct Fx {
    db: Db,
    routes: Table<Route>,
    by_prefix: Index<Route, IpNet>,
}

fn fixture() -> Fx {
    let by_prefix: Index<Route, IpNet> = Index::unique("prefix", |r: &Route, k| k.push(&r.prefix));
    let by_name: Index<Route, str> = Index::unique("name", |r: &Route, k| k.push(r.name.as_str()));
    let routes = Table::builder("routes", &by_prefix)
        .index(&by_name)
        .build()
        .unwrap();
    let db = Db::new();
    db.register_writable(&routes).unwrap();
    Fx {
        db,
        routes,
        by_prefix,
    }
}

impl Fx {
    fn any(&self) -> statedb::AnyTable {
        self.db.table_by_name("routes").unwrap()
    }
    fn names(&self) -> Vec<String> {
        self.routes
            .all(&self.db.read_txn())
            .unwrap()
            .map(|(r, _)| r.name.clone())
            .collect()
    }
    fn revision(&self) -> u64 {
        self.routes.revision(&self.db.read_txn()).unwrap()
    }
}

#[test]
fn json_objects_arrays_and_lines_are_inserted_as_typed_objects() {
    let fx = fixture();
    let t = fx.any();
    assert!(t.is_writable());
    let w = t
        .insert_json(r#"{"prefix": "10.0.0.0/8", "via": "eth0", "name": "a"}"#)
        .unwrap();
    assert_eq!(w.objects, 1);
    assert_eq!(w.revision, fx.revision());
    t.insert_json(
        r#"[{"prefix": "10.1.0.0/16", "via": "eth1", "name": "b"},
            {"prefix": "10.2.0.0/16", "via": "eth2", "name": "c"}]"#,
    )
    .unwrap();
    t.insert_json(
        "{\"prefix\": \"fd00::/8\", \"via\": \"eth3\", \"name\": \"d\"}\n{\"prefix\": \"10.3.0.0/16\", \"via\": \"eth3\", \"name\": \"e\"}\n",
    )
    .unwrap();
    assert_eq!(fx.names(), ["a", "b", "c", "e", "d"]);
    // Replacing by primary key.
    t.insert_json(r#"{"prefix": "10.0.0.0/8", "via": "eth9", "name": "a"}"#)
        .unwrap();
    let (a, _) = fx
        .routes
        .get(
            &fx.db.read_txn(),
            fx.by_prefix.query(&"10.0.0.0/8".parse().unwrap()),
        )
        .unwrap()
        .unwrap();
    assert_eq!(a.via, "eth9");
    // Nothing to write is no error and no change.
    let before = fx.revision();
    assert_eq!(t.insert_json("  ").unwrap().objects, 0);
    assert_eq!(t.insert_json("[]").unwrap().objects, 0);
    assert_eq!(fx.revision(), before);
}

#[test]
fn bad_input_is_named_and_nothing_partial_is_committed() {
    let fx = fixture();
    let t = fx.any();
    t.insert_json(r#"{"prefix": "10.0.0.0/8", "via": "eth0", "name": "a"}"#)
        .unwrap();
    let before = fx.revision();
    // Not JSON at all (after a good object).
    let e = t
        .insert_json(r#"{"prefix": "10.9.0.0/16", "via": "x", "name": "z"} {oops"#)
        .unwrap_err();
    assert!(matches!(e, UntypedWriteError::Parse { .. }), "{e}");
    // The second object is not a route: it is named, the first not written.
    let e = t
        .insert_json(
            r#"[{"prefix": "10.9.0.0/16", "via": "x", "name": "z"},
                {"prefix": "not a prefix", "via": "x", "name": "y"}]"#,
        )
        .unwrap_err();
    match &e {
        UntypedWriteError::BadObject {
            table, position, ..
        } => assert_eq!((table.as_str(), *position), ("routes", 1)),
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("object 1"), "{e}");
    // A missing field.
    let e = t.insert_json(r#"{"prefix": "10.9.0.0/16"}"#).unwrap_err();
    assert!(e.to_string().contains("via"), "{e}");
    // The table refuses the third: its unique name is taken by another
    // route. The first two are not committed either.
    let e = t
        .insert_json(
            r#"[{"prefix": "10.7.0.0/16", "via": "x", "name": "p"},
                {"prefix": "10.8.0.0/16", "via": "x", "name": "q"},
                {"prefix": "10.9.0.0/16", "via": "x", "name": "a"}]"#,
        )
        .unwrap_err();
    match &e {
        UntypedWriteError::Refused {
            position, reason, ..
        } => {
            assert_eq!(*position, 2);
            assert!(reason.contains("name"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(fx.revision(), before);
    assert_eq!(fx.names(), ["a"]);
}

#[test]
fn deletes_by_object_and_by_key_text_are_all_or_nothing() {
    let fx = fixture();
    let t = fx.any();
    t.insert_json(
        r#"[{"prefix": "10.0.0.0/8", "via": "a", "name": "a"},
            {"prefix": "10.1.0.0/16", "via": "b", "name": "b"},
            {"prefix": "fd00::/8", "via": "c", "name": "c"},
            {"prefix": "10.2.0.0/16", "via": "d", "name": "d"}]"#,
    )
    .unwrap();
    // By key text, as queries take it; an absent key deletes nothing.
    let w = t
        .delete_keys(&["10.0.0.0/8", "fd00::/8", "10.99.0.0/16"])
        .unwrap();
    assert_eq!(w.objects, 2);
    assert_eq!(fx.names(), ["b", "d"]);
    // A key that does not parse: named, and the good one before it stays.
    let before = fx.revision();
    let e = t.delete_keys(&["10.1.0.0/16", "10.1.0.0/99"]).unwrap_err();
    match &e {
        UntypedWriteError::BadKey { key, .. } => assert_eq!(key, "10.1.0.0/99"),
        other => panic!("{other}"),
    }
    assert_eq!(fx.revision(), before);
    assert_eq!(fx.names(), ["b", "d"]);
    // By object (its primary key; the other fields need not match).
    let w = t
        .delete_json(r#"{"prefix": "10.1.0.0/16", "via": "other", "name": "other"}"#)
        .unwrap();
    assert_eq!(w.objects, 1);
    assert_eq!(fx.names(), ["d"]);
    // A delete list with a bad object deletes nothing.
    let e = t
        .delete_json(r#"[{"prefix": "10.2.0.0/16", "via": "d", "name": "d"}, {"via": 1}]"#)
        .unwrap_err();
    assert!(
        matches!(e, UntypedWriteError::BadObject { position: 1, .. }),
        "{e}"
    );
    assert_eq!(fx.names(), ["d"]);
}

#[test]
fn a_table_only_inspectable_refuses_writes() {
    let by_id: Index<(u32, String), u32> = Index::unique("id", |o: &(u32, String), k| k.push(&o.0));
    let t = Table::new("ro", &by_id).unwrap();
    let db = Db::new();
    db.register_inspectable(&t).unwrap();
    let any = db.table_by_name("ro").unwrap();
    assert!(!any.is_writable());
    let e = any.insert_json("[1, \"x\"]").unwrap_err();
    assert!(matches!(e, UntypedWriteError::NotWritable { .. }), "{e}");
    assert!(e.to_string().contains("register_writable"), "{e}");
    assert!(matches!(
        any.delete_keys(&["1"]),
        Err(UntypedWriteError::NotWritable { .. })
    ));
}

#[test]
fn a_write_while_this_thread_holds_the_table_fails_instead_of_hanging() {
    let fx = fixture();
    let t = fx.any();
    let held = fx.db.write_txn(&[&fx.routes]).unwrap();
    let e = t
        .insert_json(r#"{"prefix": "10.0.0.0/8", "via": "a", "name": "a"}"#)
        .unwrap_err();
    assert!(
        matches!(e, UntypedWriteError::Txn(TxnError::WouldDeadlock { .. })),
        "{e}"
    );
    drop(held);
    t.insert_json(r#"{"prefix": "10.0.0.0/8", "via": "a", "name": "a"}"#)
        .unwrap();
    assert_eq!(fx.names(), ["a"]);
}

#[cfg(feature = "yaml")]
#[test]
fn yaml_mappings_sequences_and_documents_are_inserted_and_deleted() {
    let fx = fixture();
    let t = fx.any();
    t.insert_yaml(
        "- prefix: 10.0.0.0/8\n  via: eth0\n  name: a\n- prefix: 10.1.0.0/16\n  via: eth1\n  name: b\n",
    )
    .unwrap();
    t.insert_yaml(
        "prefix: fd00::/8\nvia: eth2\nname: c\n---\nprefix: 10.2.0.0/16\nvia: eth3\nname: d\n",
    )
    .unwrap();
    assert_eq!(fx.names(), ["a", "b", "d", "c"]);
    let e = t.insert_yaml("prefix: [unclosed\n").unwrap_err();
    assert!(matches!(e, UntypedWriteError::Parse { .. }), "{e}");
    let e = t.insert_yaml("prefix: 10.5.0.0/16\nvia: 3\n").unwrap_err();
    assert!(
        matches!(e, UntypedWriteError::BadObject { position: 0, .. }),
        "{e}"
    );
    t.delete_yaml("prefix: 10.0.0.0/8\nvia: x\nname: x\n")
        .unwrap();
    assert_eq!(fx.names(), ["b", "d", "c"]);
}

//! Any key type with a text form is queryable by text: a user's enum
//! through `text_key!`, alone and inside a tuple, through `Index::query_text`
//! and the untyped `AnyTable` queries the inspection tools use.
#![cfg(feature = "json")]

use serde::Serialize;
use statedb::{Db, Index, QueryOp, Table, TextQuery};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Tier {
    Web,
    Db,
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tier::Web => "web",
            Tier::Db => "db",
        })
    }
}

impl std::str::FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "web" => Ok(Tier::Web),
            "db" => Ok(Tier::Db),
            other => Err(format!("no tier {other}")),
        }
    }
}

statedb::text_key!(Tier);

#[derive(Debug, Clone, Serialize)]
struct Host {
    name: String,
    tier: Tier,
    slot: u32,
}

#[test]
fn an_enum_and_a_tuple_with_it_are_queried_by_text() {
    let by_name: Index<Host, str> = Index::unique("name", |h: &Host, k| k.push(h.name.as_str()));
    let by_tier: Index<Host, Tier> = Index::non_unique("tier", |h: &Host, k| k.push(&h.tier));
    let by_slot: Index<Host, (Tier, u32)> =
        Index::unique("slot", |h: &Host, k| k.push(&(h.tier, h.slot)));
    let hosts = Table::builder("hosts", &by_name)
        .index(&by_tier)
        .index(&by_slot)
        .build()
        .unwrap();
    let db = Db::new();
    db.register_inspectable(&hosts).unwrap();
    let mut w = db.write_txn(&[&hosts]).unwrap();
    for (name, tier, slot) in [("a", Tier::Web, 1), ("b", Tier::Web, 2), ("c", Tier::Db, 1)] {
        hosts
            .insert(
                &mut w,
                Host {
                    name: name.into(),
                    tier,
                    slot,
                },
            )
            .unwrap();
    }
    w.commit();
    let txn = db.read_txn();
    // Typed, from text.
    let webs: Vec<String> = hosts
        .list(&txn, by_tier.query_text("web").unwrap())
        .unwrap()
        .map(|(h, _)| h.name.clone())
        .collect();
    assert_eq!(webs, ["a", "b"]);
    let e = by_tier.query_text("cache").unwrap_err();
    assert!(e.to_string().contains("Tier"), "{e}");
    // Untyped, as `sdb get hosts -i slot get db,1` asks.
    let any = db.table_by_name("hosts").unwrap();
    let q = |index: &str, op, key: &str| TextQuery {
        index: Some(index.into()),
        op,
        key: key.into(),
    };
    let found = any.query(&txn, &q("slot", QueryOp::Get, "db,1")).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].json["name"], "c");
    let found = any.query(&txn, &q("tier", QueryOp::List, "db")).unwrap();
    assert_eq!(found.len(), 1);
    assert!(
        any.query(&txn, &q("slot", QueryOp::Get, "cache,1"))
            .is_err()
    );
    // Keys print back as text.
    assert_eq!(
        <(Tier, u32) as statedb::KeyEncoding>::format_key(&statedb::KeyEncoding::to_key(&(
            Tier::Web,
            2u32
        )))
        .as_deref(),
        Some("web,2")
    );
}

#[derive(Debug, Clone, Serialize)]
struct Route {
    id: u32,
    dst: ipnet::IpNet,
}

/// An LPM index by text, as `sdb get routes -i dst get 10.1.2.3` asks:
/// `get` and `list` find the longest prefix (an address or a network),
/// `prefix` the networks within, and a key that is neither is an error.
#[test]
fn an_lpm_index_is_queried_by_text() {
    let by_id: Index<Route, u32> = Index::unique("id", |r: &Route, k| k.push(&r.id));
    let by_dst: statedb::LpmIndex<Route, ipnet::IpNet> =
        statedb::LpmIndex::non_unique("dst", |r: &Route, k| k.push(&r.dst));
    let routes = Table::builder("routes", &by_id)
        .lpm_index(&by_dst)
        .build()
        .unwrap();
    let db = Db::new();
    db.register_inspectable(&routes).unwrap();
    let mut w = db.write_txn(&[&routes]).unwrap();
    for (id, dst) in [(1, "0.0.0.0/0"), (2, "10.0.0.0/8"), (3, "10.1.0.0/16")] {
        routes
            .insert(
                &mut w,
                Route {
                    id,
                    dst: dst.parse().unwrap(),
                },
            )
            .unwrap();
    }
    w.commit();
    let txn = db.read_txn();
    let any = db.table_by_name("routes").unwrap();
    let ids = |op, key: &str| -> Vec<u64> {
        let q = TextQuery {
            index: Some("dst".into()),
            op,
            key: key.into(),
        };
        any.query(&txn, &q)
            .unwrap()
            .iter()
            .map(|o| o.json["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(ids(QueryOp::Get, "10.1.2.3"), [3]);
    assert_eq!(ids(QueryOp::List, "10.2.0.0/16"), [2]);
    assert_eq!(ids(QueryOp::Get, "192.0.2.1"), [1]);
    assert_eq!(ids(QueryOp::Prefix, "10.0.0.0/8"), [2, 3]);
    let bad = TextQuery {
        index: Some("dst".into()),
        op: QueryOp::Get,
        key: "ten".into(),
    };
    assert!(any.query(&txn, &bad).is_err());
}

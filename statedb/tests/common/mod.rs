//! Shared fixtures: an object with an id and tags, and its table.
#![allow(dead_code)]

use statedb::{Db, Index, Table};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Obj {
    pub id: u64,
    pub tags: Vec<String>,
    pub value: u32,
}

pub fn obj(id: u64, tags: &[&str], value: u32) -> Obj {
    Obj {
        id,
        tags: tags.iter().map(|s| s.to_string()).collect(),
        value,
    }
}

pub fn id_index() -> Index<Obj, u64> {
    Index::unique("id", |o: &Obj, k| k.push(&o.id))
}

pub fn tag_index() -> Index<Obj, str> {
    Index::non_unique("tags", |o: &Obj, k| {
        for t in &o.tags {
            k.push(t.as_str());
        }
    })
}

pub struct Fixture {
    pub db: Db,
    pub table: Table<Obj>,
    pub id: Index<Obj, u64>,
    pub tags: Index<Obj, str>,
}

pub fn fixture(name: &str) -> Fixture {
    let id = id_index();
    let tags = tag_index();
    let table = Table::builder(name, &id).index(&tags).build().unwrap();
    let db = Db::new();
    db.register_table(&table).unwrap();
    Fixture {
        db,
        table,
        id,
        tags,
    }
}

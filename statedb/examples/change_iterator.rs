//! A change iterator: every upsert and delete of a table in revision
//! order, deletes included, however slowly it is read.
//!
//! Run: `cargo run -p rstatedb --example change_iterator`

use statedb::{Db, Index, Table};

fn main() -> Result<(), statedb::Error> {
    let by_id: Index<(u32, String), u32> = Index::unique("id", |o: &(u32, String), k| k.push(&o.0));
    let names = Table::new("names", &by_id)?;
    let db = Db::new();
    db.register_table(&names)?;

    // Register the iterator in a write transaction, before any write.
    let mut w = db.write_txn(&[&names])?;
    let mut changes = names.changes(&mut w)?;
    names.insert(&mut w, (1, "one".to_string()))?;
    names.insert(&mut w, (2, "two".to_string()))?;
    w.commit();

    let mut w = db.write_txn(&[&names])?;
    names.insert(&mut w, (2, "deux".to_string()))?;
    names.delete(&mut w, &(1, String::new()))?;
    w.commit();

    // One read sees everything committed since the last one.
    let (batch, _watch) = changes.next(&db.read_txn())?;
    let seen: Vec<String> = batch
        .map(|c| {
            let kind = if c.deleted { "delete" } else { "upsert" };
            format!("{kind} {} {} @{}", c.object.0, c.object.1, c.revision)
        })
        .collect();
    for line in &seen {
        println!("{line}");
    }
    // The first insert of 2 was replaced before we looked: it shows as its
    // latest version; the delete of 1 is never lost.
    assert_eq!(seen, ["upsert 2 deux @3", "delete 1 one @4"]);
    // Nothing new since.
    assert_eq!(changes.next(&db.read_txn())?.0.count(), 0);
    Ok(())
}

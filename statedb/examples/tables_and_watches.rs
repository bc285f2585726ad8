//! A table with a unique and a non-unique index, queries, and a watch that
//! wakes a thread when the answer to its query changes.
//!
//! Run: `cargo run -p rstatedb --example tables_and_watches`

use std::time::Duration;

use statedb::{Db, Index, Table};

#[derive(Clone, Debug)]
struct Route {
    prefix: String,
    device: String,
}

fn main() -> Result<(), statedb::Error> {
    let by_prefix: Index<Route, str> =
        Index::unique("prefix", |r: &Route, k| k.push(r.prefix.as_str()));
    let by_device: Index<Route, str> =
        Index::non_unique("device", |r: &Route, k| k.push(r.device.as_str()));
    let routes = Table::builder("routes", &by_prefix)
        .index(&by_device)
        .build()?;
    let db = Db::new();
    db.register_table(&routes)?;

    let mut w = db.write_txn(&[&routes])?;
    for (prefix, device) in [("10.0.0.0/8", "eth0"), ("192.168.0.0/16", "eth1")] {
        let route = Route {
            prefix: prefix.into(),
            device: device.into(),
        };
        routes.insert(&mut w, route)?;
    }
    let snapshot = w.commit();

    // Every route on eth0, and a watch that closes when that set changes.
    let (on_eth0, watch) = routes.list_watch(&snapshot, by_device.query("eth0"))?;
    let on_eth0: Vec<String> = on_eth0.map(|(r, _)| r.prefix.clone()).collect();
    println!("on eth0: {on_eth0:?}");

    // Another thread moves a route to eth0; the watch wakes us.
    let writer = {
        let (db, routes) = (db.clone(), routes.clone());
        std::thread::spawn(move || -> Result<(), statedb::Error> {
            let mut w = db.write_txn(&[&routes])?;
            let route = Route {
                prefix: "192.168.0.0/16".into(),
                device: "eth0".into(),
            };
            routes.insert(&mut w, route)?;
            w.commit();
            Ok(())
        })
    };
    assert!(
        watch.wait_timeout(Duration::from_secs(10)),
        "the watch did not close"
    );
    writer.join().expect("writer thread")?;
    let now = db.read_txn();
    let on_eth0: Vec<String> = routes
        .list(&now, by_device.query("eth0"))?
        .map(|(r, _)| r.prefix.clone())
        .collect();
    println!("on eth0 after the change: {on_eth0:?}");
    assert_eq!(on_eth0, ["10.0.0.0/8", "192.168.0.0/16"]);
    // The old snapshot is unchanged.
    assert_eq!(routes.list(&snapshot, by_device.query("eth0"))?.count(), 1);
    Ok(())
}

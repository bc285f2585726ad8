//! A minimal reconciler: a table of desired routes pushed into a target
//! (a map standing in for the kernel), with an insert, an update and a
//! hard delete reaching the target.
//!
//! Run: `cargo run -p rstatedb-reconciler --example minimal`

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use reconciler::{
    HealthReporter, Lifecycle, OpError, Operations, Params, Pruned, Reconciler, Status,
};
use statedb::{Db, Index, Objects, ReadTxn, Revision, Table};

#[derive(Clone, Debug)]
struct Route {
    prefix: String,
    via: String,
    status: Status,
}

/// The target: prefix -> next hop.
#[derive(Default)]
struct Kernel(Mutex<BTreeMap<String, String>>);

impl Operations<Route> for Kernel {
    async fn update(
        &self,
        _: &ReadTxn,
        _: Revision,
        r: &mut Route,
        changed: Option<&mut bool>,
    ) -> Result<(), OpError> {
        let old = self.0.lock().insert(r.prefix.clone(), r.via.clone());
        if let Some(changed) = changed {
            *changed = old.as_deref() != Some(r.via.as_str());
        }
        Ok(())
    }
    async fn delete(&self, _: &ReadTxn, _: Revision, r: &Route) -> Result<(), OpError> {
        self.0.lock().remove(&r.prefix);
        Ok(())
    }
    async fn prune(&self, _: &ReadTxn, want: Objects<Route>) -> Result<Pruned, OpError> {
        let want: Vec<String> = want.map(|(r, _)| r.prefix.clone()).collect();
        let mut kernel = self.0.lock();
        let stale: Vec<String> = kernel
            .keys()
            .filter(|p| !want.contains(p))
            .cloned()
            .collect();
        kernel.retain(|p, _| want.contains(p));
        Ok(Pruned::removed(stale))
    }
}

fn route(prefix: &str, via: &str) -> Route {
    Route {
        prefix: prefix.into(),
        via: via.into(),
        status: Status::pending(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let by_prefix: Index<Route, str> =
        Index::unique("prefix", |r: &Route, k| k.push(r.prefix.as_str()));
    let routes = Table::new("routes", &by_prefix)?;
    let db = Db::new();
    db.register_table(&routes)?;

    let kernel = Arc::new(Kernel::default());
    let lifecycle = Lifecycle::new();
    let params = Params::new(
        db.clone(),
        "routes",
        lifecycle.clone(),
        Arc::new(HealthReporter::new()),
    );
    let handle = Reconciler::builder(routes.clone(), kernel.clone())
        .status(|r| &r.status, |r, s| r.status = s)
        .build(params)?;
    lifecycle.start().await?;

    let mut w = db.write_txn(&[&routes])?;
    routes.insert(&mut w, route("10.0.0.0/8", "192.0.2.1"))?;
    routes.insert(&mut w, route("198.51.100.0/24", "192.0.2.2"))?;
    let revision = routes.revision(&w.commit())?;
    handle.wait_until_reconciled(revision).await?;
    println!("kernel: {:?}", kernel.0.lock());

    // A new next hop, and a deleted route.
    let mut w = db.write_txn(&[&routes])?;
    routes.insert(&mut w, route("10.0.0.0/8", "192.0.2.9"))?;
    routes.delete(&mut w, &route("198.51.100.0/24", ""))?;
    let revision = routes.revision(&w.commit())?;
    let progress = handle.wait_until_reconciled(revision).await?;
    println!(
        "kernel: {:?} ({} in error)",
        kernel.0.lock(),
        progress.errors
    );
    assert_eq!(
        *kernel.0.lock(),
        BTreeMap::from([("10.0.0.0/8".to_string(), "192.0.2.9".to_string())])
    );
    lifecycle.stop().await;
    Ok(())
}

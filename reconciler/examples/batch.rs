//! A reconciler with batch operations: incremental rounds hand the target
//! every changed object at once (deletes first, then updates), and the
//! target reports a result per object; a failed one is retried alone.
//!
//! Run: `cargo run -p rstatedb-reconciler --example batch`

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use reconciler::{
    BatchEntry, BatchOperations, HealthReporter, Lifecycle, OpError, Operations, Params, Pruned,
    Reconciler, Status,
};
use statedb::{Db, Index, Objects, ReadTxn, Revision, Table};

#[derive(Clone, Debug)]
struct Entry {
    key: u32,
    status: Status,
}

/// A map-like target (an eBPF map, say) that takes writes in batches and
/// refuses key 13 the first time.
#[derive(Default)]
struct BpfMap {
    keys: Mutex<BTreeSet<u32>>,
    batches: Mutex<Vec<(&'static str, usize)>>,
    refused_once: Mutex<bool>,
}

impl BatchOperations<Entry> for BpfMap {
    async fn update_batch(&self, _: &ReadTxn, batch: &mut [BatchEntry<Entry>]) {
        self.batches.lock().push(("update", batch.len()));
        for e in batch {
            let mut refused = self.refused_once.lock();
            if e.object.key == 13 && !*refused {
                *refused = true;
                e.result = Err("map full".into());
                continue;
            }
            self.keys.lock().insert(e.object.key);
        }
    }
    async fn delete_batch(&self, _: &ReadTxn, batch: &mut [BatchEntry<Entry>]) {
        self.batches.lock().push(("delete", batch.len()));
        for e in batch {
            self.keys.lock().remove(&e.object.key);
        }
    }
}

/// Full rounds and prunes use the one-at-a-time operations.
impl Operations<Entry> for BpfMap {
    async fn update(
        &self,
        _: &ReadTxn,
        _: Revision,
        e: &mut Entry,
        _: Option<&mut bool>,
    ) -> Result<(), OpError> {
        self.keys.lock().insert(e.key);
        Ok(())
    }
    async fn delete(&self, _: &ReadTxn, _: Revision, e: &Entry) -> Result<(), OpError> {
        self.keys.lock().remove(&e.key);
        Ok(())
    }
    async fn prune(&self, _: &ReadTxn, want: Objects<Entry>) -> Result<Pruned, OpError> {
        let want: BTreeSet<u32> = want.map(|(e, _)| e.key).collect();
        self.keys.lock().retain(|k| want.contains(k));
        Ok(Pruned::default())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let by_key: Index<Entry, u32> = Index::unique("key", |e: &Entry, k| k.push(&e.key));
    let status = reconciler::new_status_index(|e: &Entry| &e.status);
    let entries = Table::builder("entries", &by_key).index(&status).build()?;
    let db = Db::new();
    db.register_table(&entries)?;

    let map = Arc::new(BpfMap::default());
    let lifecycle = Lifecycle::new();
    let params = Params::new(
        db.clone(),
        "bpf",
        lifecycle.clone(),
        Arc::new(HealthReporter::new()),
    );
    Reconciler::builder(entries.clone(), map.clone())
        .status(|e| &e.status, |e, s| e.status = s)
        .batch_operations(map.clone())
        .retry_backoff(Duration::from_millis(10), Duration::from_secs(1))
        .register(params)?;
    lifecycle.start().await?;

    let mut w = db.write_txn(&[&entries])?;
    for key in 10..20 {
        let entry = Entry {
            key,
            status: Status::pending(),
        };
        entries.insert(&mut w, entry)?;
    }
    w.commit();
    // Waits until nothing is pending or in error: 13 fails once, then its
    // retry succeeds.
    tokio::time::timeout(
        Duration::from_secs(10),
        reconciler::wait_for_reconciliation(&db, &entries, &status),
    )
    .await??;
    println!("batches: {:?}", map.batches.lock());
    println!("keys: {:?}", map.keys.lock());
    assert_eq!(map.keys.lock().len(), 10);
    assert_eq!(map.batches.lock()[0], ("update", 10));
    lifecycle.stop().await;
    Ok(())
}

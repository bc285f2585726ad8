//! Running operations: one object or one batch as a `'static` future
//! that owns what it needs, so the scheduler can keep many in flight.
//! Each operation is timed out, its panic caught, its duration recorded.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use statedb::{Key, Objects, ReadTxn};
use tokio::time::Instant;

use super::work::{Callbacks, Origin, Outcome, Work, panic_message};
use crate::metrics::Metrics;
use crate::ops::{BatchEntry, BoxFuture, DynBatchOperations, DynOperations, OpError, Pruned};
use crate::status::{OP_DELETE, OP_PRUNE, OP_UPDATE};

/// Which metrics an operation's duration goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Round {
    Incremental,
    Full,
}

/// Builds the futures of operations.
pub(super) struct OpRunner<Obj> {
    pub ops: Arc<dyn DynOperations<Obj>>,
    pub batch: Option<Arc<dyn DynBatchOperations<Obj>>>,
    pub metrics: Option<Arc<dyn Metrics>>,
    pub module_id: Arc<str>,
    pub timeout: Duration,
    pub cb: Callbacks<Obj>,
}

pub(super) type Unit<Obj> = BoxFuture<'static, Vec<Outcome<Obj>>>;

impl<Obj: Clone + Send + Sync + 'static> OpRunner<Obj> {
    /// Runs `f` with the timeout, catching a panic; records its duration
    /// when metrics are on (a clock read per operation shows at a million
    /// objects per second, so only then).
    async fn run<T>(
        &self,
        round: Round,
        op: &'static str,
        f: impl Future<Output = Result<T, OpError>>,
    ) -> Result<T, String> {
        let start = self.metrics.as_ref().map(|_| Instant::now());
        let result =
            match tokio::time::timeout(self.timeout, AssertUnwindSafe(f).catch_unwind()).await {
                Err(_) => Err(format!("{op} timed out after {:?}", self.timeout)),
                Ok(Ok(Ok(v))) => Ok(v),
                Ok(Ok(Err(e))) => Err(e.to_string()),
                Ok(Err(p)) => Err(panic_message("operation", p)),
            };
        if let (Some(m), Some(start)) = (&self.metrics, start) {
            let took = start.elapsed();
            match round {
                Round::Incremental => {
                    m.incremental_reconciliation_duration(&self.module_id, op, took)
                }
                Round::Full => m.full_reconciliation_duration(&self.module_id, op, took),
            }
        }
        result
    }

    /// One object: update or delete a clone of it.
    pub fn single(self: &Arc<Self>, w: Work<Obj>) -> Unit<Obj> {
        // One reference count per operation, not one per callback.
        let me = self.clone();
        Box::pin(async move {
            let mut object = match me.cb.clone_obj(&w.object) {
                Ok(o) => o,
                Err(e) => return vec![Outcome::of(w, None, Err(e), false)],
            };
            let full = w.origin == Origin::Full;
            let round = if full {
                Round::Full
            } else {
                Round::Incremental
            };
            let mut changed = false;
            let result = if w.action.is_delete() {
                let delete = me.ops.delete(&w.txn, w.revision, &object);
                me.run(round, OP_DELETE, delete).await
            } else {
                let flag = full.then_some(&mut changed);
                let update = me.ops.update(&w.txn, w.revision, &mut object, flag);
                me.run(round, OP_UPDATE, update).await
            };
            vec![Outcome::of(w, Some(object), result, changed)]
        })
    }

    /// A batch of incremental work: deletes first, then updates. Results
    /// are matched to the objects by primary key, not by position: an
    /// operation may reorder its slice.
    pub fn batch(
        self: &Arc<Self>,
        batch: Arc<dyn DynBatchOperations<Obj>>,
        work: Vec<Work<Obj>>,
    ) -> Unit<Obj> {
        let me = self.clone();
        Box::pin(async move {
            let mut out = Vec::with_capacity(work.len());
            let (deletes, updates): (Vec<_>, Vec<_>) =
                work.into_iter().partition(|w| w.action.is_delete());
            for (delete, work) in [(true, deletes), (false, updates)] {
                if work.is_empty() {
                    continue;
                }
                out.extend(me.one_batch(&*batch, delete, work).await);
            }
            out
        })
    }

    async fn one_batch(
        &self,
        batch_ops: &dyn DynBatchOperations<Obj>,
        delete: bool,
        work: Vec<Work<Obj>>,
    ) -> Vec<Outcome<Obj>> {
        let mut entries = Vec::with_capacity(work.len());
        let mut out = Vec::new();
        let mut by_key: HashMap<Key, Work<Obj>> = HashMap::with_capacity(work.len());
        let txn: ReadTxn = match work.first() {
            Some(w) => w.txn.clone(),
            None => return out,
        };
        for w in work {
            match self.cb.clone_obj(&w.object) {
                Ok(object) => {
                    entries.push(BatchEntry {
                        object,
                        revision: w.revision,
                        result: Ok(()),
                    });
                    by_key.insert(w.pk.clone(), w);
                }
                Err(e) => out.push(Outcome::of(w, None, Err(e), false)),
            }
        }
        let (op, run) = if delete {
            (OP_DELETE, batch_ops.delete_batch(&txn, &mut entries))
        } else {
            (OP_UPDATE, batch_ops.update_batch(&txn, &mut entries))
        };
        // Only a panic or the timeout fails the batch as a whole.
        let whole = self
            .run(Round::Incremental, op, run.map(Ok::<(), OpError>))
            .await
            .err();
        for entry in entries {
            let Some(w) = self
                .cb
                .primary_key(&entry.object)
                .ok()
                .and_then(|k| by_key.remove(&k))
            else {
                continue;
            };
            let result = match &whole {
                Some(msg) => Err(msg.clone()),
                None => entry.result.map_err(|e| e.to_string()),
            };
            out.push(Outcome::of(w, Some(entry.object), result, false));
        }
        // Objects whose entry is gone or now has another key.
        for (_, w) in by_key {
            let err = whole.clone().unwrap_or_else(|| {
                "batch operation changed the object's primary key or dropped its entry".into()
            });
            out.push(Outcome::of(w, None, Err(err), false));
        }
        out
    }

    /// Prune: removes from the target what no object of `objects` asks for.
    pub async fn prune(&self, txn: &ReadTxn, objects: Objects<Obj>) -> Result<Pruned, String> {
        let ops = self.ops.clone();
        self.run(Round::Full, OP_PRUNE, ops.prune(txn, objects))
            .await
    }
}

//! Incremental rounds: the changes since the last round and the retries
//! that are due, each run once (one after another, a bounded number at a
//! time, or as batches).

use futures::FutureExt;
use statedb::{ChangeIterator, ReadTxn};
use tokio::time::Instant;

use super::op::Round;
use super::{Action, Outcome, Runner, Work};
use crate::ops::{BatchEntry, DynBatchOperations, DynOperations, OpError};
use crate::status::{OP_DELETE, OP_UPDATE, StatusKind};

impl<Obj: Clone + Send + Sync + 'static> Runner<Obj> {
    /// One incremental round. Returns true if it stopped at the round size
    /// with changes possibly left, and the watch for further changes.
    pub(super) async fn incremental(
        &mut self,
        txn: &ReadTxn,
        changes: &mut ChangeIterator<Obj>,
    ) -> (bool, Option<statedb::Watch>) {
        let limit = self.cfg.incremental_round_size;
        let mut work: Vec<Work<Obj>> = Vec::new();
        let mut more = false;
        let mut watch = None;
        match changes.next(txn) {
            Ok((mut iter, w)) => {
                watch = Some(w);
                while work.len() < limit {
                    let Some(change) = iter.next() else { break };
                    if change.deleted {
                        let pk = self.primary_key(&change.object);
                        // Earlier failures of the row no longer count.
                        self.retries.remove(&pk);
                        if self.deleted_by_us.remove(&pk) {
                            continue;
                        }
                        work.push(Work {
                            pk,
                            object: change.object,
                            revision: change.revision,
                            action: Action::HardDelete,
                        });
                        continue;
                    }
                    let status = self.status(&change.object);
                    if !matches!(status.kind, StatusKind::Pending | StatusKind::Refreshing) {
                        // Our own status write (or a foreign one): nothing to
                        // do, but a re-inserted key cancels a pending retry
                        // of its hard delete (the insert wins).
                        if !self.deleted_by_us.is_empty() || self.retries.len() > 0 {
                            let pk = self.primary_key(&change.object);
                            self.deleted_by_us.remove(&pk);
                            if self.retries.is_hard_delete(&pk) {
                                self.retries.remove(&pk);
                            }
                        }
                        continue;
                    }
                    let action = if status.delete {
                        Action::SoftDelete
                    } else {
                        Action::Update
                    };
                    let pk = self.primary_key(&change.object);
                    if !self.deleted_by_us.is_empty() {
                        self.deleted_by_us.remove(&pk);
                    }
                    // A new desired version: earlier failures no longer count.
                    self.retries.remove(&pk);
                    work.push(Work {
                        pk,
                        object: change.object,
                        revision: change.revision,
                        action,
                    });
                }
                more = work.len() >= limit;
            }
            Err(e) => {
                tracing::error!(module_id = %self.module_id, error = %e, "reading changes failed")
            }
        }
        // Retries that are due, looked up again in this snapshot.
        let now = Instant::now();
        if work.len() < limit {
            for (pk, obj, hard_delete, deleted_at) in self.retries.due(now, limit - work.len()) {
                if work.iter().any(|w| w.pk == pk) {
                    continue;
                }
                let current = self
                    .cfg
                    .table
                    .primary_query(&obj)
                    .and_then(|q| self.cfg.table.get(txn, q).ok().flatten());
                match current {
                    // The key is back in the table: the insert wins.
                    Some(_) if hard_delete => self.retries.remove(&pk),
                    None if hard_delete => work.push(Work {
                        pk,
                        object: obj,
                        revision: deleted_at,
                        action: Action::HardDelete,
                    }),
                    Some((cur, revision)) if self.status(&cur).kind == StatusKind::Error => {
                        let action = if self.status(&cur).delete {
                            Action::SoftDelete
                        } else {
                            Action::Update
                        };
                        work.push(Work {
                            pk,
                            object: cur,
                            revision,
                            action,
                        });
                    }
                    _ => self.retries.remove(&pk),
                }
            }
        }
        if work.is_empty() {
            return (more, watch);
        }
        let outcomes = match self.cfg.batch_operations.clone() {
            Some(batch) => self.run_batch(txn, &*batch, work).await,
            None => self.run_each(txn, work).await,
        };
        let errs: Vec<String> = outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().err().cloned())
            .collect();
        self.write_back(outcomes);
        if let Some(m) = &self.metrics {
            m.incremental_reconciliation_errors(&self.module_id, &errs);
        }
        (more, watch)
    }

    /// Runs the round's operations: one after another, or up to
    /// `concurrency` at once. A round holds each key at most once (changes
    /// of one snapshot, plus due retries of other keys), so two operations
    /// on one key never overlap.
    async fn run_each(&self, txn: &ReadTxn, work: Vec<Work<Obj>>) -> Vec<Outcome<Obj>> {
        let ops = self.cfg.operations.clone();
        let n = self.cfg.concurrency;
        if n <= 1 {
            let mut out = Vec::with_capacity(work.len());
            for w in work {
                out.push(self.run_one(txn, &*ops, w).await);
            }
            return out;
        }
        use futures::StreamExt;
        futures::stream::iter(work)
            .map(|w| self.run_one(txn, &*ops, w))
            .buffer_unordered(n)
            .collect()
            .await
    }

    /// One operation: clone the object, run update or delete.
    async fn run_one(
        &self,
        txn: &ReadTxn,
        ops: &dyn DynOperations<Obj>,
        w: Work<Obj>,
    ) -> Outcome<Obj> {
        let mut object = Obj::clone(&w.object);
        drop(w.object);
        let result = if w.action.is_delete() {
            let delete = ops.delete(txn, w.revision, &object);
            self.run_op(Round::Incremental, OP_DELETE, delete).await
        } else {
            let update = ops.update(txn, w.revision, &mut object, None);
            self.run_op(Round::Incremental, OP_UPDATE, update).await
        };
        Outcome {
            pk: w.pk,
            object,
            revision: w.revision,
            action: w.action,
            result,
        }
    }

    async fn run_batch(
        &self,
        txn: &ReadTxn,
        batch_ops: &dyn DynBatchOperations<Obj>,
        work: Vec<Work<Obj>>,
    ) -> Vec<Outcome<Obj>> {
        let mut deletes = (Vec::new(), Vec::new());
        let mut updates = (Vec::new(), Vec::new());
        for w in work {
            let entry = BatchEntry {
                object: Obj::clone(&w.object),
                revision: w.revision,
                result: Ok(()),
            };
            let side = if w.action.is_delete() {
                &mut deletes
            } else {
                &mut updates
            };
            side.0.push(entry);
            side.1.push((w.pk, w.action));
        }
        let mut out = Vec::new();
        for (delete, (mut batch, keys)) in [(true, deletes), (false, updates)] {
            if batch.is_empty() {
                continue;
            }
            let (op, run) = if delete {
                (OP_DELETE, batch_ops.delete_batch(txn, &mut batch))
            } else {
                (OP_UPDATE, batch_ops.update_batch(txn, &mut batch))
            };
            // Only a panic fails the batch as a whole.
            let whole = run.map(Ok::<(), OpError>);
            let panicked = self.run_op(Round::Incremental, op, whole).await.err();
            for (entry, (pk, action)) in batch.into_iter().zip(keys) {
                let result = match &panicked {
                    Some(msg) => Err(msg.clone()),
                    None => entry.result.map_err(|e| e.to_string()),
                };
                out.push(Outcome {
                    pk,
                    object: entry.object,
                    revision: entry.revision,
                    action,
                    result,
                });
            }
        }
        out
    }
}

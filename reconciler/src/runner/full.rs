//! Prune, and full reconciliation: prune, then update every object.

use statedb::ReadTxn;

use super::op::Round;
use super::{Action, Outcome, Runner};
use crate::status::{OP_PRUNE, OP_UPDATE, StatusKind};

/// Most pruned items named in one log line.
const MAX_LOGGED_PRUNED: usize = 20;

impl<Obj: Clone + Send + Sync + 'static> Runner<Obj> {
    /// Removes from the target what no object asks for, logging what the
    /// target reports it removed; returns the error. A failed prune is
    /// reported in health until a later prune succeeds.
    pub(super) async fn prune(&mut self, txn: &ReadTxn) -> Option<String> {
        let all = match self.cfg.table.all(txn) {
            Ok(all) => all,
            Err(e) => return Some(format!("prune: {e}")),
        };
        let ops = self.cfg.operations.clone();
        let res = self
            .run_op(Round::Full, OP_PRUNE, ops.prune(txn, all))
            .await;
        match res {
            Ok(pruned) => {
                let items = pruned.items();
                if items.is_empty() {
                    tracing::debug!(module_id = %self.module_id, "pruned");
                } else {
                    let shown = items.len().min(MAX_LOGGED_PRUNED);
                    tracing::info!(
                        module_id = %self.module_id,
                        count = items.len(),
                        removed = ?&items[..shown],
                        "pruned what no object asks for"
                    );
                }
                self.prune_error = None;
                None
            }
            Err(e) => {
                let e = format!("prune: {e}");
                tracing::warn!(module_id = %self.module_id, error = %e, "prune failed");
                self.prune_error = Some(e.clone());
                Some(e)
            }
        }
    }

    /// Full reconciliation: prune, then update every object comparing with
    /// the target. Failures get an error status and join the retry queue.
    pub(super) async fn full(&mut self, txn: &ReadTxn) {
        let ops = self.cfg.operations.clone();
        let table = self.cfg.table.clone();
        let mut errs: Vec<String> = self.prune(txn).await.into_iter().collect();
        let mut outcomes = Vec::new();
        // The iterator owns its snapshot, so it can be held across the
        // operations' awaits; no need to copy every object out first.
        let objects = match table.all(txn) {
            Ok(objects) => objects,
            Err(e) => {
                tracing::error!(module_id = %self.module_id, error = %e, "cannot list objects");
                return;
            }
        };
        for (obj, revision) in objects {
            let status = self.status(&obj);
            // Pending objects and deletes belong to incremental rounds.
            if status.delete || status.kind == StatusKind::Pending {
                continue;
            }
            let mut object = Obj::clone(&obj);
            let mut changed = false;
            let update = ops.update(txn, revision, &mut object, Some(&mut changed));
            let result = self.run_op(Round::Full, OP_UPDATE, update).await;
            if let Some(m) = &self.metrics
                && result.is_ok()
                && changed
            {
                m.full_reconciliation_out_of_sync(&self.module_id);
            }
            if let Err(e) = &result {
                errs.push(e.clone());
            }
            // Every result is written back (compare-and-swap, so a result
            // for an object changed meanwhile is dropped): the object as the
            // update left it, with a fresh done status or the error.
            outcomes.push(Outcome {
                pk: self.primary_key(&obj),
                object,
                revision,
                action: Action::Update,
                result,
            });
        }
        if !outcomes.is_empty() {
            self.write_back(outcomes);
        }
        if let Some(m) = &self.metrics {
            m.full_reconciliation_errors(&self.module_id, &errs);
        }
    }
}

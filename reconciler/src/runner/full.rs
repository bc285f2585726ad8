//! Full reconciliation: after a prune, every object is updated again
//! (comparing with the target) through the scheduler like any other
//! work, so a full round honours `concurrency` and never holds back
//! incremental work: the loop feeds it only what room is left.

use statedb::{Objects, ReadTxn};

use super::scheduler::Scheduler;
use super::work::{Action, Callbacks, Origin, Work};
use crate::ops::Pruned;
use crate::status::StatusKind;

/// Most pruned items named in one log line.
const MAX_LOGGED_PRUNED: usize = 20;

/// A full round in progress.
pub(super) struct FullRound<Obj: Send + Sync + 'static> {
    /// The keys to visit, from the snapshot the round started on.
    objects: Objects<Obj>,
    exhausted: bool,
    /// Its works queued or running.
    pub outstanding: usize,
    pub errors: Vec<String>,
}

impl<Obj: Clone + Send + Sync + 'static> FullRound<Obj> {
    pub fn new(objects: Objects<Obj>, prune_error: Option<String>) -> Self {
        FullRound {
            objects,
            exhausted: false,
            outstanding: 0,
            errors: prune_error.into_iter().collect(),
        }
    }

    /// Queues up to `room` objects of the round. Pending objects and
    /// deletes belong to incremental work; keys with work queued or
    /// running are being reconciled already. Each object is taken as it
    /// is in `latest`, not in the round's snapshot: the round is fed over
    /// time, and a version from the snapshot may be older than one the
    /// incremental work has already put in the target (writing it would
    /// set the target back, while waits report success).
    pub fn feed(
        &mut self,
        cb: &Callbacks<Obj>,
        sched: &mut Scheduler<Obj>,
        room: usize,
        latest: &ReadTxn,
    ) {
        let mut queued = 0;
        // Read at most a bounded slice per call, even when most are skipped.
        let mut read = 0;
        while queued < room && read < room.saturating_mul(4).max(64) {
            let Some((snapshot_obj, _)) = self.objects.next() else {
                self.exhausted = true;
                return;
            };
            read += 1;
            let current = cb
                .table
                .primary_query(&snapshot_obj)
                .and_then(|q| cb.table.get(latest, q).ok().flatten());
            // Gone since the snapshot: its delete is incremental work.
            let Some((obj, revision)) = current else {
                continue;
            };
            let Ok(status) = cb.status(&obj) else {
                continue;
            };
            if status.delete || status.kind == StatusKind::Pending {
                continue;
            }
            let Ok(pk) = cb.primary_key(&obj) else {
                continue;
            };
            if sched.holds(&pk) {
                continue;
            }
            sched.queue(Work {
                pk,
                object: obj,
                revision,
                action: Action::Update,
                origin: Origin::Full,
                since: revision,
                txn: latest.clone(),
            });
            self.outstanding += 1;
            queued += 1;
        }
    }

    pub fn finished(&self) -> bool {
        self.exhausted && self.outstanding == 0
    }
}

/// Logs what a prune removed; returns its error as health shows it.
pub(super) fn log_prune(module_id: &str, res: Result<Pruned, String>) -> Option<String> {
    match res {
        Ok(pruned) => {
            let items = pruned.items();
            if items.is_empty() {
                tracing::debug!(module_id = %module_id, "pruned");
            } else {
                let shown = items.len().min(MAX_LOGGED_PRUNED);
                tracing::info!(
                    module_id = %module_id,
                    count = items.len(),
                    removed = ?&items[..shown],
                    "pruned what no object asks for"
                );
            }
            None
        }
        Err(e) => {
            let e = format!("prune: {e}");
            tracing::warn!(module_id = %module_id, error = %e, "prune failed");
            Some(e)
        }
    }
}

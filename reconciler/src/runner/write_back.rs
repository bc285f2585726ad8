//! Writing results back, and tracking deletes: soft deletes remove the
//! row (and remember it, so its delete event is not deleted again), hard
//! deletes that failed wait in the retry queue.

use std::sync::Arc;

use statedb::Key;
use tokio::time::Instant;

use super::{Action, Outcome, Runner};
use crate::status::Status;

impl<Obj: Clone + Send + Sync + 'static> Runner<Obj> {
    /// Writes statuses back in one short write transaction, each as a
    /// compare-and-swap on the revision the operation saw: a result for an
    /// object that changed meanwhile is dropped, and the newer version is
    /// reconciled in a later round.
    pub(super) fn write_back(&mut self, outcomes: Vec<Outcome<Obj>>) {
        let now = Instant::now();
        // Hard deletes have no row to write: settle them first, and open
        // a write transaction only for the rest.
        let mut rows = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            if o.action != Action::HardDelete {
                rows.push(o);
                continue;
            }
            match o.result {
                Ok(()) => self.retries.remove(&o.pk),
                Err(err) => {
                    self.note_failure(&o.pk, &err);
                    self.retries
                        .add_hard_delete(o.pk, Arc::new(o.object), o.revision, err, now);
                }
            }
        }
        if rows.is_empty() {
            return;
        }
        let table = self.cfg.table.clone();
        let mut wtxn = match self.db.write_txn(&[&table]) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(module_id = %self.module_id, error = %e, "cannot write statuses");
                return;
            }
        };
        // One timestamp for the whole write-back.
        let done = Status::done();
        for mut o in rows {
            match o.result {
                Ok(()) if o.action == Action::SoftDelete => {
                    // Stale (changed or gone) deletes are dropped.
                    if let Ok(Some(_)) = table.compare_and_delete(&mut wtxn, o.revision, &o.object)
                    {
                        self.deleted_by_us.insert(o.pk.clone());
                    }
                    self.retries.remove(&o.pk);
                }
                Ok(()) => {
                    (self.cfg.set_status)(&mut o.object, done.clone());
                    let _ = table.compare_and_swap(&mut wtxn, o.revision, o.object);
                    self.retries.remove(&o.pk);
                }
                Err(err) => {
                    let delete = o.action.is_delete();
                    (self.cfg.set_status)(&mut o.object, Status::error(delete, &err));
                    let object = Arc::new(o.object);
                    if table
                        .compare_and_swap(&mut wtxn, o.revision, object.clone())
                        .is_ok()
                    {
                        self.note_failure(&o.pk, &err);
                        self.retries.add(o.pk, object, err, now);
                    }
                }
            }
        }
        wtxn.commit();
    }

    /// Logs a failure at `warn` once per failure streak of an object (the
    /// first failure after a success or a new version), later ones at
    /// `debug`.
    pub(super) fn note_failure(&self, pk: &Key, err: &str) {
        let key = String::from_utf8_lossy(pk);
        if self.retries.contains(pk) {
            tracing::debug!(module_id = %self.module_id, key = %key, error = %err, "operation failed again");
        } else {
            tracing::warn!(module_id = %self.module_id, key = %key, error = %err, "operation failed; retrying with backoff");
        }
    }
}

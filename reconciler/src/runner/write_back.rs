//! Writing outcomes back: a function of (table, outcomes) in one write
//! transaction, each row as a compare-and-swap on the revision the
//! operation saw. It decides nothing about retries: it says what became
//! of each outcome ([`Settled`]) and the loop acts on that.

use std::sync::Arc;
use std::time::SystemTime;

use statedb::{Key, Revision, Table, WriteError, WriteTxn};

use super::work::{Action, Callbacks, Origin, Outcome};
use crate::status::Status;
use crate::write_log::WriteLog;

/// What became of one outcome.
pub(super) enum Settled<Obj> {
    /// Success written back (a fresh done status at `own`, the revision
    /// this write produced), or a hard delete that reached the target.
    Done { own: Option<Revision> },
    /// A soft delete reached the target and the row was removed.
    SoftDeleted,
    /// The operation failed (or its status could not be written): retry.
    /// `own` is the revision of the error status written, if it was.
    Failed {
        object: Arc<Obj>,
        error: String,
        own: Option<Revision>,
    },
    /// The row changed while the operation ran (a newer version, or
    /// another reconciler's status write): look at the current row again.
    Lost { object: Arc<Obj> },
    /// The row is gone: its delete is handled as a change of its own.
    Gone,
}

/// One settled outcome.
pub(super) struct Written<Obj> {
    pub pk: Key,
    pub action: Action,
    pub origin: Origin,
    pub since: Revision,
    pub changed: bool,
    pub settled: Settled<Obj>,
}

/// Hard deletes need no row: settle one without a transaction.
pub(super) fn settle_hard_delete<Obj>(o: Outcome<Obj>) -> Written<Obj> {
    let settled = match o.result {
        Ok(()) => Settled::Done { own: None },
        Err(error) => Settled::Failed {
            object: o.original,
            error,
            own: None,
        },
    };
    Written {
        pk: o.pk,
        action: o.action,
        origin: o.origin,
        since: o.since,
        changed: false,
        settled,
    }
}

/// A status stamped with the loop's clock and with the revision of the
/// row version it is written into (the next write of the table in
/// `wtxn`), so that every other writer's version is recognised as one.
fn stamped(
    cb_table: &Table<impl Send + Sync + 'static>,
    wtxn: &WriteTxn,
    mut s: Status,
    now: SystemTime,
) -> (Status, Option<Revision>) {
    s.updated_at = now;
    match cb_table.next_revision(wtxn) {
        Ok(next) => (s.written_at(next), Some(next)),
        Err(_) => (s, None),
    }
}

/// Writes the outcomes of rows (not hard deletes) into `wtxn`, each
/// status write recorded in `log` (the transaction always commits).
pub(super) fn write_rows<Obj: Clone + Send + Sync + 'static>(
    cb: &Callbacks<Obj>,
    log: &WriteLog,
    wtxn: &mut WriteTxn,
    outcomes: Vec<Outcome<Obj>>,
    now: SystemTime,
) -> Vec<Written<Obj>> {
    let table = &cb.table;
    let mut out = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        let Outcome {
            pk,
            original,
            object,
            revision,
            action,
            origin,
            since,
            result,
            changed,
        } = o;
        let settled = match result {
            Ok(()) if action == Action::SoftDelete => {
                let obj = object.as_ref().unwrap_or(&*original);
                match table.compare_and_delete(wtxn, revision, obj) {
                    Ok(Some(_)) => Settled::SoftDeleted,
                    Ok(None) => Settled::Gone,
                    Err(e) => cas_failure(e, original),
                }
            }
            // A success always carries its object (only a failed clone
            // leaves none, and that is an error).
            Ok(()) => match object {
                None => Settled::Failed {
                    object: original,
                    error: "the object could not be cloned".into(),
                    own: None,
                },
                Some(mut obj) => {
                    let (status, next) = stamped(table, wtxn, Status::done(), now);
                    match cb.set_status(&mut obj, status) {
                        Err(error) => Settled::Failed {
                            object: original,
                            error,
                            own: None,
                        },
                        Ok(()) => match table.compare_and_swap(wtxn, revision, obj) {
                            Ok(_) => {
                                if let Some(n) = next {
                                    log.record(n, revision);
                                }
                                Settled::Done { own: next }
                            }
                            Err(e) => cas_failure(e, original),
                        },
                    }
                }
            },
            Err(error) => {
                let delete = action.is_delete();
                let obj = match object {
                    Some(o) => Some(o),
                    None => cb.clone_obj(&original).ok(),
                };
                let (status, next) = stamped(table, wtxn, Status::error(delete, &error), now);
                let written = obj.and_then(|mut obj| {
                    cb.set_status(&mut obj, status).ok()?;
                    let obj = Arc::new(obj);
                    table
                        .compare_and_swap(wtxn, revision, obj.clone())
                        .map_err(|e| cas_failure(e, original.clone()))
                        .map(|_| obj)
                        .ok()
                });
                match written {
                    Some(obj) => {
                        if let Some(n) = next {
                            log.record(n, revision);
                        }
                        Settled::Failed {
                            object: obj,
                            error,
                            own: next,
                        }
                    }
                    // Not written (the row changed, or a callback
                    // panicked): the retry still stands.
                    None => Settled::Failed {
                        object: original,
                        error,
                        own: None,
                    },
                }
            }
        };
        out.push(Written {
            pk,
            action,
            origin,
            since,
            changed,
            settled,
        });
    }
    out
}

fn cas_failure<Obj>(e: statedb::Error, original: Arc<Obj>) -> Settled<Obj> {
    match e.as_write() {
        Some(WriteError::ObjectNotFound) => Settled::Gone,
        Some(WriteError::RevisionNotEqual { .. }) => Settled::Lost { object: original },
        _ => Settled::Failed {
            object: original,
            error: format!("writing the status back failed: {e}"),
            own: None,
        },
    }
}

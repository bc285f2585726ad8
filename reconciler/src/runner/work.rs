//! What the loop hands to operations and gets back: [`Work`] and
//! [`Outcome`], and the user callbacks it calls on them, each guarded so
//! that a panic becomes an error instead of killing the loop.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use statedb::{Key, ReadTxn, Revision, Table};

use crate::settings::{GetStatus, SetStatus};
use crate::status::Status;

/// What an operation does with one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Action {
    /// `Operations::update`; the status is written back.
    Update,
    /// A soft delete (`Status::pending_delete`): `Operations::delete`, then
    /// the row is removed.
    SoftDelete,
    /// The row was deleted from the table: `Operations::delete` with its
    /// last version; no row to write back, so failures stay in the retry
    /// queue until the delete succeeds or the key is inserted again.
    HardDelete,
}

impl Action {
    pub fn is_delete(self) -> bool {
        self != Action::Update
    }
}

/// Where a piece of work came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// A change read from the change iterator: its revision counts for
    /// progress until its outcome is settled.
    Change,
    /// A due retry.
    Retry,
    /// A full reconciliation round.
    Full,
}

/// One object to reconcile.
pub(super) struct Work<Obj> {
    pub pk: Key,
    pub object: Arc<Obj>,
    /// The object's revision (a hard delete: the delete's).
    pub revision: Revision,
    pub action: Action,
    pub origin: Origin,
    /// The revision of the desired version this work serves (for the
    /// retry low watermark).
    pub since: Revision,
    /// The snapshot the operation reads.
    pub txn: ReadTxn,
}

/// The outcome of one operation on one object, to be written back.
pub(super) struct Outcome<Obj> {
    pub pk: Key,
    /// The object as given to the operation.
    pub original: Arc<Obj>,
    /// The object as the operation left it; `None` if cloning it panicked.
    pub object: Option<Obj>,
    pub revision: Revision,
    pub action: Action,
    pub origin: Origin,
    pub since: Revision,
    pub result: Result<(), String>,
    /// A full round's update found the target out of sync.
    pub changed: bool,
}

impl<Obj> Outcome<Obj> {
    pub fn of(
        w: Work<Obj>,
        object: Option<Obj>,
        result: Result<(), String>,
        changed: bool,
    ) -> Self {
        Outcome {
            pk: w.pk,
            original: w.object,
            object,
            revision: w.revision,
            action: w.action,
            origin: w.origin,
            since: w.since,
            result,
            changed,
        }
    }
}

/// A panic payload as a message.
pub(super) fn panic_message(what: &str, p: Box<dyn Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("{what} panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("{what} panicked: {s}")
    } else {
        format!("{what} panicked")
    }
}

/// The user's callbacks on objects: status accessors, key and clone.
pub(super) struct Callbacks<Obj> {
    pub table: Table<Obj>,
    get: GetStatus<Obj>,
    set: SetStatus<Obj>,
}

impl<Obj> Clone for Callbacks<Obj> {
    fn clone(&self) -> Self {
        Callbacks {
            table: self.table.clone(),
            get: self.get.clone(),
            set: self.set.clone(),
        }
    }
}

impl<Obj: Clone + Send + Sync + 'static> Callbacks<Obj> {
    pub fn new(table: Table<Obj>, get: GetStatus<Obj>, set: SetStatus<Obj>) -> Self {
        Callbacks { table, get, set }
    }

    /// This reconciler's status of `obj`.
    pub fn status<'a>(&self, obj: &'a Obj) -> Result<&'a Status, String> {
        catch_unwind(AssertUnwindSafe(|| (self.get)(obj)))
            .map_err(|p| panic_message("status getter", p))
    }

    /// Sets this reconciler's status in `obj`.
    pub fn set_status(&self, obj: &mut Obj, status: Status) -> Result<(), String> {
        catch_unwind(AssertUnwindSafe(|| (self.set)(obj, status)))
            .map_err(|p| panic_message("status setter", p))
    }

    /// The primary key of `obj`.
    pub fn primary_key(&self, obj: &Obj) -> Result<Key, String> {
        catch_unwind(AssertUnwindSafe(|| {
            self.table
                .primary_query(obj)
                .map(|q| Key::from_slice(q.key()))
        }))
        .map_err(|p| panic_message("primary key function", p))?
        .ok_or_else(|| "the primary key function gave no key".to_string())
    }

    /// The current row with `obj`'s primary key in `txn`.
    pub fn current(
        &self,
        txn: &ReadTxn,
        obj: &Obj,
    ) -> Result<Option<(Arc<Obj>, Revision)>, String> {
        let q = catch_unwind(AssertUnwindSafe(|| self.table.primary_query(obj)))
            .map_err(|p| panic_message("primary key function", p))?
            .ok_or_else(|| "the primary key function gave no key".to_string())?;
        self.table.get(txn, q).map_err(|e| e.to_string())
    }

    /// A primary key as text for people, as its key type prints it
    /// (`10.0.0.0/24`, `2`): [`Table::primary_key_text`].
    pub fn key_text(&self, key: &[u8]) -> String {
        self.table.primary_key_text(key)
    }

    /// A clone of `obj`.
    pub fn clone_obj(&self, obj: &Obj) -> Result<Obj, String> {
        catch_unwind(AssertUnwindSafe(|| obj.clone())).map_err(|p| panic_message("clone", p))
    }
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn panic_payloads_become_messages() {
        assert_eq!(
            panic_message("operation", Box::new("boom")),
            "operation panicked: boom"
        );
        assert_eq!(
            panic_message("x", Box::new(String::from("bang"))),
            "x panicked: bang"
        );
        assert_eq!(
            panic_message("operation", Box::new(7u8)),
            "operation panicked"
        );
    }
}

//! Several reconcilers on one object: a status per reconciler.

use std::fmt;
use std::sync::LazyLock;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use statedb::Index;

use crate::status::{Status, StatusKind};

/// The status of every reconciler of an object, by reconciler name: embed
/// one in an object that several reconcilers push to different targets,
/// and give each reconciler its own entry with
/// [`StatusSet::get`] / [`StatusSet::set`] in
/// [`crate::Builder::status`]. Each reconciler reads and writes only its
/// own entry; [`StatusSet::kind_of`] combines them over the declared
/// members for indexing ([`new_status_set_index`]).
///
/// A persistent map (`part::Map`): cloning an object clones the set in
/// O(1), and a reconciler's write copies only its own path.
///
/// ```
/// use reconciler::{Status, StatusKind, StatusSet};
/// let members = ["neighbours", "routes"];
/// let set = StatusSet::new();
/// // A reconciler not yet seen in the set reads "pending".
/// assert_eq!(set.get("routes").kind, StatusKind::Pending);
/// let set = set.set("routes", Status::done());
/// // Done only once every member has reported.
/// assert_eq!(set.kind_of(&members), StatusKind::Pending);
/// let set = set.set("neighbours", Status::done());
/// assert_eq!(set.kind_of(&members), StatusKind::Done);
/// let set = set.set("neighbours", Status::error(false, "unreachable"));
/// assert_eq!(set.kind(), StatusKind::Error);
/// // A new version of the object: every reconciler has work again.
/// assert_eq!(set.pending().kind(), StatusKind::Pending);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StatusSet {
    statuses: part::Map<String, Status>,
}

/// What a reconciler without an entry reads: pending (it has never seen
/// the object).
static NOT_YET: LazyLock<Status> = LazyLock::new(|| {
    let mut s = Status::pending();
    s.updated_at = SystemTime::UNIX_EPOCH;
    s
});

impl StatusSet {
    /// An empty set: every reconciler reads pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// The status of reconciler `name`; pending if it has none yet.
    pub fn get(&self, name: &str) -> &Status {
        // Looked up as `str` (encoded like the `String` keys): reading a
        // status, on every change a reconciler sees, allocates nothing.
        self.statuses.get_as(name).unwrap_or(&NOT_YET)
    }

    /// A set with reconciler `name`'s status replaced.
    #[must_use]
    pub fn set(&self, name: &str, status: Status) -> Self {
        StatusSet {
            statuses: self.statuses.insert(name.to_string(), status),
        }
    }

    /// Every entry reset to pending: for a new version of the object, so
    /// that every reconciler updates it (entries not yet present read
    /// pending anyway).
    #[must_use]
    pub fn pending(&self) -> Self {
        self.reset(Status::pending())
    }

    /// Every entry set to pending delete: every reconciler deletes the
    /// object from its target; the first to finish removes the row, and
    /// the others then see a deleted row and delete from their targets
    /// too.
    #[must_use]
    pub fn pending_delete(&self) -> Self {
        self.reset(Status::pending_delete())
    }

    fn reset(&self, status: Status) -> Self {
        StatusSet {
            statuses: self
                .statuses
                .keys()
                .map(|k| (k.clone(), status.clone()))
                .collect(),
        }
    }

    /// The combined kind over `members`, the reconcilers that must all
    /// report: error if any failed, else pending if any is pending,
    /// refreshing or has no entry yet, else done. Entries of reconcilers
    /// not named are ignored. An empty `members` is [`StatusSet::kind`].
    pub fn kind_of<S: AsRef<str>>(&self, members: &[S]) -> StatusKind {
        if members.is_empty() {
            return self.kind();
        }
        let mut kind = StatusKind::Done;
        for m in members {
            match self.get(m.as_ref()).kind {
                StatusKind::Error => return StatusKind::Error,
                StatusKind::Pending | StatusKind::Refreshing => kind = StatusKind::Pending,
                StatusKind::Done => {}
            }
        }
        kind
    }

    /// The combined kind of the entries present: error if any reconciler
    /// failed, else pending if any is pending or refreshing, else done.
    /// An empty set is pending.
    ///
    /// ## Warning
    ///
    /// A reconciler that has not reported yet has no entry, so it does not
    /// count: `{fast: Done}` reads done while a slower reconciler has not
    /// run. To know when *every* reconciler is done, use
    /// [`StatusSet::kind_of`] with the members (as
    /// [`new_status_set_index`] does).
    pub fn kind(&self) -> StatusKind {
        if self.statuses.is_empty() {
            return StatusKind::Pending;
        }
        let mut kind = StatusKind::Done;
        for s in self.statuses.values() {
            match s.kind {
                StatusKind::Error => return StatusKind::Error,
                StatusKind::Pending | StatusKind::Refreshing => kind = StatusKind::Pending,
                StatusKind::Done => {}
            }
        }
        kind
    }

    /// `(reconciler name, status)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Status)> + '_ {
        self.statuses.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of reconcilers with an entry.
    pub fn len(&self) -> usize {
        self.statuses.len()
    }

    /// True if no reconciler has an entry yet.
    pub fn is_empty(&self) -> bool {
        self.statuses.is_empty()
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl fmt::Display for StatusSet {
    /// Like `neighbours: Done (1s ago), routes: Error: unreachable (2s ago)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, status)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}: {status}")?;
        }
        Ok(())
    }
}

/// A non-unique index named `"status"` on the combined kind of a
/// [`StatusSet`] over `members`, the names of every reconciler of the
/// table ([`StatusSet::kind_of`]): an object reads done only once each
/// member has reported done, so [`crate::wait_for_reconciliation`] over
/// it waits for all of them.
///
/// ```
/// use reconciler::{new_status_set_index, StatusSet};
/// #[derive(Clone)]
/// struct Route { id: u32, statuses: StatusSet }
/// let status = new_status_set_index(|r: &Route| &r.statuses, ["fib", "bgp"]);
/// assert_eq!(status.name(), "status");
/// ```
///
/// ## Warning
///
/// With no members, it combines only the entries present (see
/// [`StatusSet::kind`]): it then reads done before a reconciler that has
/// not run yet has reported.
pub fn new_status_set_index<Obj: 'static, S: Into<String>>(
    get_set: impl Fn(&Obj) -> &StatusSet + Send + Sync + 'static,
    members: impl IntoIterator<Item = S>,
) -> Index<Obj, StatusKind> {
    let members: Vec<String> = members.into_iter().map(Into::into).collect();
    Index::non_unique("status", move |o: &Obj, keys| {
        keys.push(&get_set(o).kind_of(&members))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_has_its_own_entry_and_kind_combines_them() {
        let s = StatusSet::new();
        assert!(s.is_empty());
        assert_eq!(s.kind(), StatusKind::Pending);
        let s = s.set("a", Status::done());
        assert_eq!(s.kind(), StatusKind::Done);
        assert_eq!(s.get("b").kind, StatusKind::Pending);
        let s = s.set("b", Status::refreshing());
        assert_eq!(s.kind(), StatusKind::Pending);
        let s = s.set("b", Status::error(false, "x"));
        assert_eq!(s.kind(), StatusKind::Error);
        assert_eq!(s.get("a").kind, StatusKind::Done);
        let p = s.pending_delete();
        assert!(p.get("a").delete && p.get("b").delete);
        assert_eq!(p.len(), 2);
        assert!(s.to_string().starts_with("a: Done"), "{s}");
    }

    /// `{fast: Done}` read done while the slow member had not run.
    #[test]
    fn members_must_all_report_before_done() {
        let members = ["fast", "slow"];
        let s = StatusSet::new().set("fast", Status::done());
        assert_eq!(s.kind(), StatusKind::Done, "entries present only");
        assert_eq!(s.kind_of(&members), StatusKind::Pending);
        let s = s
            .set("slow", Status::done())
            .set("other", Status::error(false, "x"));
        assert_eq!(s.kind_of(&members), StatusKind::Done, "non-members ignored");
        let s = s.set("slow", Status::error(false, "y"));
        assert_eq!(s.kind_of(&members), StatusKind::Error);
        assert_eq!(StatusSet::new().kind_of::<&str>(&[]), StatusKind::Pending);
    }

    #[test]
    fn serde_is_a_map_by_name() {
        let s = StatusSet::new().set("a", Status::done());
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["a"]["kind"], "done");
        let back: StatusSet = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }
}

//! Per-object reconciliation status, embedded in the reconciled objects.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use statedb::{Index, Key, KeyEncoding};

/// Name of the update operation, as used in metric labels.
pub const OP_UPDATE: &str = "update";
/// Name of the delete operation, as used in metric labels.
pub const OP_DELETE: &str = "delete";
/// Name of the prune operation, as used in metric labels.
pub const OP_PRUNE: &str = "prune";

/// The state of an object's reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusKind {
    /// Waiting for the reconciler.
    Pending,
    /// Reconciled.
    Done,
    /// The last attempt failed; it will be retried.
    Error,
    /// Reconciled, and queued to be updated again because its status is
    /// older than the refresh interval ([`crate::Builder::refresh`]).
    Refreshing,
}

impl StatusKind {
    /// The stable string form: `"pending"`, `"done"`, `"error"` or
    /// `"refreshing"`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Pending => "pending",
            StatusKind::Done => "done",
            StatusKind::Error => "error",
            StatusKind::Refreshing => "refreshing",
        }
    }

    /// The key of this kind in the status index (its string form).
    pub fn key(self) -> Key {
        Key::from_slice(self.as_str().as_bytes())
    }
}

impl fmt::Display for StatusKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StatusKind {
    type Err = String;

    /// The string form of [`StatusKind::as_str`].
    fn from_str(s: &str) -> Result<Self, String> {
        [
            StatusKind::Pending,
            StatusKind::Done,
            StatusKind::Error,
            StatusKind::Refreshing,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("{s:?} is not a status kind (pending, done, error or refreshing)"))
    }
}

/// The status index is queryable by text (`sdb get memos -i status list
/// error`): a kind's key is its string form.
impl KeyEncoding for StatusKind {
    fn encode_key(&self, out: &mut Key) {
        out.extend_from_slice(self.as_str().as_bytes());
    }

    fn parse_key(text: &str, out: &mut Key) -> Result<(), statedb::ParseKeyError> {
        let kind: StatusKind = text.trim().parse().map_err(|_| {
            statedb::ParseKeyError::invalid(
                text,
                "status kind (pending, done, error or refreshing)",
            )
        })?;
        kind.encode_key(out);
        Ok(())
    }

    fn format_key(encoded: &[u8]) -> Option<String> {
        let text = std::str::from_utf8(encoded).ok()?;
        text.parse::<StatusKind>()
            .ok()
            .map(|k| k.as_str().to_string())
    }
}

/// Reconciliation status of an object: embed it in the object type and
/// point [`crate::Builder::status`] at it (or, for several reconcilers of
/// one object, use a [`crate::StatusSet`]).
///
/// Deletion is soft: mark the object [`Status::pending_delete`]; the
/// reconciler deletes it from the target, then from the table. This makes
/// failed deletes visible and retryable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Pending, done or error.
    pub kind: StatusKind,
    /// True if the object is to be deleted by the reconciler.
    pub delete: bool,
    /// When the status was set (RFC 3339 in JSON).
    #[serde(with = "rfc3339")]
    pub updated_at: SystemTime,
    /// The error of the last failed attempt, for [`StatusKind::Error`].
    /// A boxed `str`, not a `String`: every object carries a status, and
    /// the spare capacity word made it 8 bytes bigger (see the size test).
    pub error: Option<Box<str>>,
    /// The revision of the row version a reconciler's write-back wrote
    /// this status with (low 48 bits; all zero: not written by one). A
    /// change at any other revision is another writer's, so a new object
    /// version that carries an old `Done` status is still reconciled. It
    /// fills padding: the status stays 40 bytes. Not serialized: a status
    /// read back from elsewhere was not written into this Db.
    #[serde(skip)]
    written: [u8; 6],
}

impl Status {
    fn new(kind: StatusKind, delete: bool, error: Option<Box<str>>) -> Status {
        Status {
            kind,
            delete,
            updated_at: SystemTime::now(),
            error,
            written: [0; 6],
        }
    }

    /// The status as a reconciler's write-back writes it into the row
    /// version at `revision`.
    pub(crate) fn written_at(mut self, revision: statedb::Revision) -> Status {
        self.written = stamp(revision);
        self
    }

    /// Was this status written by a reconciler's write-back into the row
    /// version at `revision`? False for any other writer's version (a
    /// user's insert of a clone that kept the old status, say), which is
    /// work for the reconciler whatever its kind.
    pub fn written_by_reconciler_at(&self, revision: statedb::Revision) -> bool {
        self.written != [0; 6] && self.written == stamp(revision)
    }

    /// The revision a reconciler wrote this status at (its low 48 bits),
    /// if one did.
    pub(crate) fn written(&self) -> Option<statedb::Revision> {
        let w = self.written;
        (w != [0; 6]).then(|| u64::from_be_bytes([0, 0, w[0], w[1], w[2], w[3], w[4], w[5]]))
    }

    /// Marks the object as needing reconciliation (an update).
    pub fn pending() -> Status {
        Self::new(StatusKind::Pending, false, None)
    }

    /// Marks the object for deletion: the reconciler deletes it from the
    /// target and then removes it from the table.
    pub fn pending_delete() -> Status {
        Self::new(StatusKind::Pending, true, None)
    }

    /// Marks the object as reconciled.
    pub fn done() -> Status {
        Self::new(StatusKind::Done, false, None)
    }

    /// Marks the object as failed; `delete` keeps a failed delete a delete.
    pub fn error(delete: bool, err: impl fmt::Display) -> Status {
        Self::new(StatusKind::Error, delete, Some(err.to_string().into()))
    }

    /// Marks a reconciled object for a refresh (an update again).
    pub fn refreshing() -> Status {
        Self::new(StatusKind::Refreshing, false, None)
    }

    /// Is the object waiting for the reconciler?
    pub fn is_pending(&self) -> bool {
        self.kind == StatusKind::Pending
    }
}

impl Default for Status {
    /// A new object is pending.
    fn default() -> Self {
        Status::pending()
    }
}

impl fmt::Display for Status {
    /// Like `Done (1.5s ago)`, `Pending (delete) (3ms ago)` or
    /// `Error: no route (2s ago)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ago = SystemTime::now()
            .duration_since(self.updated_at)
            .unwrap_or(Duration::ZERO);
        let ago = humantime::format_duration(Duration::from_millis(ago.as_millis() as u64));
        let kind = match self.kind {
            StatusKind::Pending => "Pending",
            StatusKind::Done => "Done",
            StatusKind::Error => "Error",
            StatusKind::Refreshing => "Refreshing",
        };
        write!(f, "{kind}")?;
        if self.delete {
            write!(f, " (delete)")?;
        }
        if let Some(e) = &self.error {
            write!(f, ": {e}")?;
        }
        write!(f, " ({ago} ago)")
    }
}

/// The low 48 bits of a revision (2^48 commits: 89 years at 100k/s).
fn stamp(revision: statedb::Revision) -> [u8; 6] {
    let b = revision.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_nanos(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// A non-unique index named `"status"` on the status kind, for
/// [`crate::wait_for_reconciliation`] and for listing pending or failed
/// objects.
pub fn new_status_index<Obj: 'static>(
    get_status: impl Fn(&Obj) -> &Status + Send + Sync + 'static,
) -> Index<Obj, StatusKind> {
    Index::non_unique("status", move |o: &Obj, keys| {
        keys.push(&get_status(o).kind)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_kinds_are_keys_given_as_text() {
        for kind in [
            StatusKind::Pending,
            StatusKind::Done,
            StatusKind::Error,
            StatusKind::Refreshing,
        ] {
            let mut parsed = Key::new();
            StatusKind::parse_key(kind.as_str(), &mut parsed).unwrap();
            assert_eq!(parsed, kind.key());
            assert_eq!(
                StatusKind::format_key(&parsed).as_deref(),
                Some(kind.as_str())
            );
        }
        let mut out = Key::new();
        let err = StatusKind::parse_key("broken", &mut out).unwrap_err();
        assert!(
            err.to_string()
                .contains("pending, done, error or refreshing"),
            "{err}"
        );
    }

    /// Every reconciled object carries one: 40 bytes (the time 16, the
    /// error 16, the kind, the delete flag and the 6-byte write stamp).
    #[test]
    fn status_is_five_words() {
        assert_eq!(std::mem::size_of::<Status>(), 40);
    }

    #[test]
    fn the_stamp_names_the_write_back_revision() {
        let s = Status::done();
        assert!(!s.written_by_reconciler_at(0) && !s.written_by_reconciler_at(7));
        let s = s.written_at(7);
        assert!(s.written_by_reconciler_at(7));
        assert!(!s.written_by_reconciler_at(8));
        assert_eq!(s.written(), Some(7));
        assert_eq!(Status::done().written(), None, "the writer's own word");
        let big = (1u64 << 48) - 1;
        assert!(Status::done().written_at(big).written_by_reconciler_at(big));
        // Not serialized.
        let back: Status = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert!(!back.written_by_reconciler_at(7));
    }

    #[test]
    fn constructors_and_strings() {
        assert_eq!(Status::pending().kind, StatusKind::Pending);
        assert!(!Status::pending().delete);
        assert!(Status::pending_delete().delete);
        assert_eq!(Status::done().kind, StatusKind::Done);
        let e = Status::error(true, "boom");
        assert_eq!(
            (e.kind, e.delete, e.error.as_deref()),
            (StatusKind::Error, true, Some("boom"))
        );
        assert_eq!(StatusKind::Pending.as_str(), "pending");
        assert_eq!(&StatusKind::Done.key()[..], b"done");
        assert_eq!(StatusKind::Error.to_string(), "error");
        let s = e.to_string();
        assert!(s.starts_with("Error (delete): boom ("), "{s}");
        assert!(s.ends_with(" ago)"), "{s}");
        assert!(Status::done().to_string().starts_with("Done ("));
    }

    #[test]
    fn serde_uses_rfc3339_and_lowercase_kinds() {
        let s = Status::error(false, "x");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["kind"], "error");
        let ts = json["updated_at"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(ts).is_ok(), "{ts}");
        let back: Status = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }
}

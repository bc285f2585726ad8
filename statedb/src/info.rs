//! What a Db says about its tables, for inspection: names, indexes,
//! sizes, revisions.

use crate::Revision;

/// One index of a table, as [`TableInfo`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexInfo {
    /// The index name.
    pub name: &'static str,
    /// True for a unique index.
    pub unique: bool,
    /// True for the primary index.
    pub primary: bool,
    /// True for a longest-prefix-match index ([`crate::LpmIndex`]): its
    /// `get` and `list` find the longest stored prefix of the key.
    pub lpm: bool,
}

/// A registered table as one snapshot sees it ([`crate::Db::tables`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableInfo {
    /// The table name.
    pub name: String,
    /// Its indexes, the primary first.
    pub indexes: Vec<IndexInfo>,
    /// Number of objects.
    pub objects: usize,
    /// The table's revision (of its last insert or delete).
    pub revision: Revision,
    /// Whether every registered initializer is done.
    pub initialized: bool,
    /// Deleted objects kept for change iterators that have not seen them.
    pub graveyard: usize,
    /// Change iterators of the table alive now.
    pub change_iterators: usize,
    /// The write transaction holding the table's lock now, if any.
    pub locked_by: Option<LockHolder>,
}

/// Who holds a table's lock ([`TableInfo::locked_by`]): the named handle
/// the write transaction came from ([`crate::Db::handle`]) and for how
/// long, so a table that stays locked can be traced to its module.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockHolder {
    /// The handle's name (`"db"` for a Db not made with a name).
    pub handle: String,
    /// How long the transaction has held the lock.
    pub held_for: std::time::Duration,
}

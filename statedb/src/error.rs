//! Errors of the database API.

/// Everything that can go wrong when declaring tables or using
/// transactions. Each variant names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Table names must match `^[a-z][a-z0-9_-]{0,30}$`.
    #[error("invalid table name {0:?}: must match ^[a-z][a-z0-9_-]{{0,30}}$")]
    InvalidTableName(String),
    /// A table with this name is already registered with the Db.
    #[error("table {0:?} is already registered")]
    DuplicateTable(String),
    /// The table was registered with another Db.
    #[error("table {0:?} belongs to another Db")]
    TableFromOtherDb(String),
    /// The table has not been registered with this Db.
    #[error("table {0:?} is not registered with this Db")]
    TableNotRegistered(String),
    /// The primary index must be unique.
    #[error("primary index {index:?} of table {table:?} is not unique")]
    PrimaryIndexNotUnique {
        /// Table name.
        table: String,
        /// Index name.
        index: String,
    },
    /// Two indexes of a table share a name.
    #[error("table {table:?} has two indexes named {index:?}")]
    DuplicateIndex {
        /// Table name.
        table: String,
        /// Index name.
        index: String,
    },
    /// Index names starting with `__` are reserved for internal indexes.
    #[error("index name {0:?} is reserved (names starting with \"__\")")]
    ReservedIndexName(String),
    /// Index names must not be empty.
    #[error("index name must not be empty")]
    EmptyIndexName,
    /// The query names an index the table does not have.
    #[error("table {table:?} has no index {index:?}")]
    UnknownIndex {
        /// Table name.
        table: String,
        /// Index name.
        index: String,
    },
    /// The write transaction did not lock this table.
    #[error("table {0:?} is not locked by this write transaction")]
    TableNotLocked(String),
    /// The primary index must yield exactly one key per object.
    #[error("primary index of table {table:?} yielded {count} keys for an object (must be 1)")]
    PrimaryKeyCount {
        /// Table name.
        table: String,
        /// Number of keys the primary index yielded.
        count: usize,
    },
    /// Compare-and-swap/delete: the object has another revision now.
    #[error("revision not equal: expected {expected}, found {found}")]
    RevisionNotEqual {
        /// The revision the caller expected.
        expected: u64,
        /// The object's current revision.
        found: u64,
    },
    /// Compare-and-swap/delete: no object with that primary key.
    #[error("object not found")]
    ObjectNotFound,
    /// A change iterator must be registered before the transaction writes
    /// to the table, so that it misses no delete.
    #[error("change iterator on table {0:?} registered after the transaction wrote to it")]
    ChangesAfterWrite(String),
    /// The initializer was already marked done.
    #[error("initializer {0:?} is already done")]
    InitializerDone(String),
    /// Writing the JSON dump failed.
    #[error("json: {0}")]
    Json(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

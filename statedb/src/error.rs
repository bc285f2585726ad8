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
    /// The table is registered with another Db that is still alive (a
    /// table can be registered again once its Db is dropped).
    #[error("table {0:?} is registered with another Db that is still alive")]
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
    /// An insert would give a key of a unique secondary index a second
    /// object. Nothing was changed; the transaction stays usable.
    #[error("unique index {index:?} of table {table:?} already holds key {key} for another object")]
    UniqueConflict {
        /// Table name.
        table: String,
        /// Index name.
        index: String,
        /// The key, as text where it is printable (quoted), else in hex.
        key: String,
    },
    /// The calling thread already holds a write transaction on these
    /// tables: waiting for them would wait forever. Lock every table you
    /// need in one call.
    #[error(
        "this thread already holds a write transaction on {tables:?}: lock every table you need in one write_txn call"
    )]
    WouldDeadlock {
        /// The tables held already.
        tables: Vec<String>,
    },
    /// [`crate::Db::try_write_txn`]: these tables are locked by another
    /// write transaction.
    #[error("tables {tables:?} are locked by another write transaction")]
    TablesBusy {
        /// The tables found locked.
        tables: Vec<String>,
    },
    /// [`crate::Db::write_txn_timeout`]: these tables stayed locked by
    /// another write transaction for the whole timeout.
    #[error("tables {tables:?} stayed locked by another write transaction for {timeout:?}")]
    LockTimeout {
        /// The tables that could not be locked in time.
        tables: Vec<String>,
        /// The timeout given.
        timeout: std::time::Duration,
    },
    /// [`crate::Table::modify`]: the merge function returned an object with
    /// another primary key.
    #[error("modify of table {0:?}: the merged object has another primary key")]
    PrimaryKeyChanged(String),
    /// [`crate::derive`]: its thread could not be started.
    #[error("cannot start the derive thread: {0}")]
    Thread(String),
    /// A Db holds at most 2^24 tables.
    #[error("too many tables: a Db holds at most 16,777,216")]
    TooManyTables,
    /// Writing the JSON dump failed.
    #[error("json: {0}")]
    Json(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Renders key bytes for messages: quoted text when printable, else hex.
pub(crate) fn display_key(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if !s.chars().any(char::is_control) => format!("{s:?}"),
        _ => {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex}")
        }
    }
}

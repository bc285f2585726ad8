//! Errors of the database API: one enum per kind of operation, each
//! convertible into the crate-wide [`Error`].
//!
//! - [`DeclareError`]: declaring a table ([`crate::Table::new`],
//!   [`crate::TableBuilder::build`]).
//! - [`TxnError`]: registering tables, opening write transactions, and
//!   naming a table or index a transaction cannot serve (every query).
//! - [`WriteError`]: a write refused because of what the table holds
//!   (compare-and-swap, unique indexes, primary keys). Nothing was
//!   changed and the transaction stays usable.
//!
//! Writes can fail both ways, so they return [`Error`]; `?` converts each
//! enum into it.

use std::sync::Arc;

/// Declaring a table failed: the declaration is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeclareError {
    /// Table names must match `^[a-z][a-z0-9_-]{0,30}$`.
    #[error("invalid table name {0:?}: must match ^[a-z][a-z0-9_-]{{0,30}}$")]
    InvalidTableName(String),
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
}

/// Registering a table or using a transaction failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxnError {
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
    /// A Db holds at most 2^24 tables.
    #[error("too many tables: a Db holds at most 16,777,216")]
    TooManyTables,
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
    /// The caller (its tokio task, or outside a task its thread) already
    /// holds a write transaction on these tables: waiting for them would
    /// wait forever. Lock every table you need in one call.
    #[error(
        "the caller (this task or thread) already holds a write transaction on {tables:?}: lock every table you need in one write_txn call"
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
    /// A change iterator must be registered before the transaction writes
    /// to the table, so that it misses no delete.
    #[error("change iterator on table {0:?} registered after the transaction wrote to it")]
    ChangesAfterWrite(String),
    /// The initializer was already marked done.
    #[error("initializer {0:?} is already done")]
    InitializerDone(String),
    /// A change iterator fell further behind than its bound (see
    /// `ChangeIterator::max_lag`): deletes it had not read were
    /// released. Re-list the table with a new change iterator.
    #[error(
        "change iterator on table {table:?} lapped: it fell more than {max_lag} deleted objects behind; re-list the table"
    )]
    ChangesLapped {
        /// The table.
        table: String,
        /// The bound it exceeded, in deleted objects.
        max_lag: usize,
    },
}

/// A write was refused because of what the table holds; nothing was
/// changed and the transaction stays usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
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
    /// The primary index must yield exactly one key per object.
    #[error("primary index of table {table:?} yielded {count} keys for an object (must be 1)")]
    PrimaryKeyCount {
        /// Table name.
        table: String,
        /// Number of keys the primary index yielded.
        count: usize,
    },
    /// [`crate::Table::modify`]: the merge function returned an object with
    /// another primary key.
    #[error("modify of table {0:?}: the merged object has another primary key")]
    PrimaryKeyChanged(String),
}

/// Any error of this crate. Each operation's own error converts into it
/// with `?`; match on the wrapped enum for details, or use the
/// `as_*` accessors.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Declaring a table failed.
    #[error(transparent)]
    Declare(#[from] DeclareError),
    /// Registering a table or using a transaction failed.
    #[error(transparent)]
    Txn(#[from] TxnError),
    /// A write was refused.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// [`crate::derive`]: its thread could not be started.
    #[error("cannot start the derive thread")]
    Thread(#[source] Arc<std::io::Error>),
    /// [`crate::derive`]: the transform panicked on a change of the input
    /// object with this primary key; that change was skipped.
    #[error("the derive transform of table {table:?} panicked on key {key}: {message}")]
    DerivePanicked {
        /// The input table.
        table: String,
        /// The input object's primary key, as text.
        key: String,
        /// The panic message.
        message: String,
    },
    /// `Db::write_json`: an object could not be serialized.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    #[error("cannot serialize an object as JSON")]
    Json(#[source] Arc<serde_json::Error>),
    /// `Db::write_json`: the output could not be written.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    #[error("cannot write the JSON dump")]
    Io(#[source] Arc<std::io::Error>),
}

/// Errors are equal when they are the same error; wrapped I/O and JSON
/// errors (which have no equality of their own) compare by their message.
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Error::Declare(a), Error::Declare(b)) => a == b,
            (Error::Txn(a), Error::Txn(b)) => a == b,
            (Error::Write(a), Error::Write(b)) => a == b,
            (Error::Thread(a), Error::Thread(b)) => a.to_string() == b.to_string(),
            (
                Error::DerivePanicked {
                    table: a,
                    key: b,
                    message: c,
                },
                Error::DerivePanicked {
                    table: x,
                    key: y,
                    message: z,
                },
            ) => (a, b, c) == (x, y, z),
            #[cfg(feature = "json")]
            (Error::Io(a), Error::Io(b)) => a.to_string() == b.to_string(),
            #[cfg(feature = "json")]
            (Error::Json(a), Error::Json(b)) => a.to_string() == b.to_string(),
            _ => false,
        }
    }
}

impl Eq for Error {}

/// `err == WriteError::ObjectNotFound` and the like, without wrapping.
macro_rules! eq_wrapped {
    ($kind:ident, $variant:ident) => {
        impl PartialEq<$kind> for Error {
            fn eq(&self, other: &$kind) -> bool {
                matches!(self, Error::$variant(e) if e == other)
            }
        }
    };
}
eq_wrapped!(DeclareError, Declare);
eq_wrapped!(TxnError, Txn);
eq_wrapped!(WriteError, Write);

impl Error {
    /// The declaration error, if this is one.
    pub fn as_declare(&self) -> Option<&DeclareError> {
        match self {
            Error::Declare(e) => Some(e),
            _ => None,
        }
    }

    /// The registration or transaction error, if this is one.
    pub fn as_txn(&self) -> Option<&TxnError> {
        match self {
            Error::Txn(e) => Some(e),
            _ => None,
        }
    }

    /// The write error, if this is one.
    pub fn as_write(&self) -> Option<&WriteError> {
        match self {
            Error::Write(e) => Some(e),
            _ => None,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_converts_into_error_and_keeps_its_message() {
        let e: Error = WriteError::ObjectNotFound.into();
        assert_eq!(e, WriteError::ObjectNotFound);
        assert_eq!(e.to_string(), "object not found");
        assert_eq!(e.as_write(), Some(&WriteError::ObjectNotFound));
        assert!(e.as_txn().is_none() && e.as_declare().is_none());

        let e: Error = TxnError::TableNotLocked("t".into()).into();
        assert_eq!(e, TxnError::TableNotLocked("t".into()));
        assert_ne!(e, TxnError::TableNotLocked("u".into()));
        assert!(e.to_string().contains("not locked"));

        let e: Error = DeclareError::EmptyIndexName.into();
        assert_eq!(e, DeclareError::EmptyIndexName);
        assert_ne!(e, Error::from(WriteError::ObjectNotFound));
    }

    #[test]
    fn wrapped_io_errors_are_the_source() {
        let e = Error::Thread(Arc::new(std::io::Error::other("disk full")));
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("disk full"));
        assert_eq!(e.clone(), e);
    }
}

//! Untyped writes: objects given as JSON (or YAML) inserted into and
//! deleted from a table found by name, for tooling and test scripts (the
//! reference's `db/insert` and `db/delete`). Each call is one write
//! transaction: every object is parsed and checked first, and nothing is
//! committed unless all of them are written.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, TxnError};
use crate::index::Query;
use crate::table::Table;
use crate::txn::WriteTxn;
use crate::{Db, Revision};

/// Errors of untyped writes ([`crate::AnyTable::insert_json`] and the
/// other writes). Nothing was committed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UntypedWriteError {
    /// The table was not made writable ([`Db::register_writable`]).
    #[error(
        "table {table:?} does not take untyped writes (register it with Db::register_writable)"
    )]
    NotWritable {
        /// Table name.
        table: String,
    },
    /// The text is not JSON (or YAML) of one object or a list of objects.
    #[error("table {table:?}: {reason}")]
    Parse {
        /// Table name.
        table: String,
        /// Why, with the position the parser reported.
        reason: String,
    },
    /// Object number `position` (from 0) is not an object of the table's
    /// type.
    #[error("table {table:?}, object {position}: {reason}")]
    BadObject {
        /// Table name.
        table: String,
        /// Which object, from 0, in the order given.
        position: usize,
        /// What serde said.
        reason: String,
    },
    /// The table refused object number `position` (a unique index already
    /// holding its key for another object, a primary key function giving
    /// no key, ...).
    #[error("table {table:?}, object {position}: {reason}")]
    Refused {
        /// Table name.
        table: String,
        /// Which object, from 0.
        position: usize,
        /// The table's error.
        reason: String,
    },
    /// A key given as text does not parse as the primary key type.
    #[error("table {table:?}: bad key {key:?}: {reason}")]
    BadKey {
        /// Table name.
        table: String,
        /// The key text.
        key: String,
        /// Why.
        reason: String,
    },
    /// The write transaction could not be had.
    #[error(transparent)]
    Txn(#[from] TxnError),
}

/// What an untyped write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The table's revision after the commit (unchanged if nothing was
    /// written).
    pub revision: Revision,
    /// Objects inserted or replaced; for deletes, objects deleted (a key
    /// with no object deletes nothing and is not an error).
    pub objects: usize,
}

/// What [`crate::AnyTable`] needs to write a table untyped.
pub(crate) trait UntypedWrite: Send + Sync {
    fn insert(&self, db: &Db, objects: Vec<Value>) -> Result<Written, UntypedWriteError>;
    fn delete(&self, db: &Db, objects: Vec<Value>) -> Result<Written, UntypedWriteError>;
    fn delete_keys(&self, db: &Db, keys: &[&str]) -> Result<Written, UntypedWriteError>;
}

pub(crate) struct Writer<T> {
    pub table: Table<T>,
}

impl<T: DeserializeOwned + Send + Sync + 'static> Writer<T> {
    fn name(&self) -> String {
        self.table.name().to_string()
    }

    /// Every object parsed before anything is written.
    fn parse(&self, objects: Vec<Value>) -> Result<Vec<T>, UntypedWriteError> {
        objects
            .into_iter()
            .enumerate()
            .map(|(position, v)| {
                serde_json::from_value(v).map_err(|e| UntypedWriteError::BadObject {
                    table: self.name(),
                    position,
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    fn refused(&self, position: usize, e: Error) -> UntypedWriteError {
        UntypedWriteError::Refused {
            table: self.name(),
            position,
            reason: e.to_string(),
        }
    }

    /// Runs `write` for each item in one transaction; commits only if all
    /// succeed (dropping the transaction aborts it).
    fn in_txn<I>(
        &self,
        db: &Db,
        items: Vec<I>,
        mut write: impl FnMut(&mut WriteTxn, I) -> Result<bool, Error>,
    ) -> Result<Written, UntypedWriteError> {
        let mut w = db.write_txn(&[&self.table])?;
        let mut objects = 0;
        for (position, item) in items.into_iter().enumerate() {
            let changed = write(&mut w, item).map_err(|e| self.refused(position, e))?;
            objects += usize::from(changed);
        }
        let txn = w.commit();
        Ok(Written {
            revision: self.table.revision(&txn)?,
            objects,
        })
    }
}

impl<T: DeserializeOwned + Send + Sync + 'static> UntypedWrite for Writer<T> {
    fn insert(&self, db: &Db, objects: Vec<Value>) -> Result<Written, UntypedWriteError> {
        let objects = self.parse(objects)?;
        self.in_txn(db, objects, |w, o| {
            self.table.insert(w, Arc::new(o))?;
            Ok(true)
        })
    }

    fn delete(&self, db: &Db, objects: Vec<Value>) -> Result<Written, UntypedWriteError> {
        let objects = self.parse(objects)?;
        self.in_txn(db, objects, |w, o| Ok(self.table.delete(w, &o)?.is_some()))
    }

    fn delete_keys(&self, db: &Db, keys: &[&str]) -> Result<Written, UntypedWriteError> {
        let primary = self
            .table
            .index_named(None)
            .expect("a table has a primary index");
        let queries: Vec<Query<T>> = keys
            .iter()
            .map(|k| {
                primary
                    .parse_key(k)
                    .map(|key| Query::new(primary.name(), key))
                    .map_err(|e| UntypedWriteError::BadKey {
                        table: self.name(),
                        key: (*k).to_string(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?;
        self.in_txn(db, queries, |w, q| {
            Ok(self.table.delete_key(w, q)?.is_some())
        })
    }
}

/// The objects in `text`: a JSON object, a JSON array of objects, or
/// objects one after another (JSON lines).
pub(crate) fn parse_json(table: &str, text: &str) -> Result<Vec<Value>, UntypedWriteError> {
    let parse_error = |e: serde_json::Error| UntypedWriteError::Parse {
        table: table.to_string(),
        reason: format!("not JSON: {e}"),
    };
    let mut values = Vec::new();
    for v in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        values.push(v.map_err(parse_error)?);
    }
    Ok(flatten(values))
}

/// The objects in `text`: a YAML mapping, a sequence of them, or several
/// documents separated by `---`.
#[cfg(feature = "yaml")]
pub(crate) fn parse_yaml(table: &str, text: &str) -> Result<Vec<Value>, UntypedWriteError> {
    use serde::Deserialize;
    let mut values = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).map_err(|e| UntypedWriteError::Parse {
            table: table.to_string(),
            reason: format!("not YAML of objects: {e}"),
        })?;
        if !v.is_null() {
            values.push(v);
        }
    }
    Ok(flatten(values))
}

/// A top-level array stands for its elements.
fn flatten(values: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        match v {
            Value::Array(items) => out.extend(items),
            v => out.push(v),
        }
    }
    out
}

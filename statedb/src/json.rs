//! The JSON dump of tables (feature `json`), for inspection endpoints.

use std::io::Write;

use crate::db::Db;
use crate::erased::TableHandle;
use crate::error::{Error, Result};
use crate::table::Table;
use crate::txn::ReadTxn;

#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
impl Db {
    /// Writes the chosen tables as one JSON object `{"table": [objects]}`
    /// as of `txn`, for inspection endpoints.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] if an object cannot be serialized, [`Error::Io`] if
    /// `out` fails (each with the cause as its source), or a
    /// [`crate::TxnError`] for a table not registered with this Db.
    pub fn write_json(
        &self,
        txn: &ReadTxn,
        tables: &[&dyn JsonTable],
        mut out: impl Write,
    ) -> Result<()> {
        let io = |e: std::io::Error| Error::Io(e.into());
        out.write_all(b"{").map_err(io)?;
        for (i, t) in tables.iter().enumerate() {
            if i > 0 {
                out.write_all(b",").map_err(io)?;
            }
            serde_json::to_writer(&mut out, t.table_name()).map_err(|e| Error::Json(e.into()))?;
            out.write_all(b":").map_err(io)?;
            t.write_objects(txn, &mut out)?;
        }
        out.write_all(b"}").map_err(io)?;
        Ok(())
    }
}

/// A table whose objects can be dumped as JSON; implemented by every
/// [`Table`] of `Serialize` objects.
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub trait JsonTable: TableHandle {
    /// Writes the table's objects as a JSON array.
    ///
    /// # Errors
    ///
    /// As [`Db::write_json`].
    fn write_objects(&self, txn: &ReadTxn, out: &mut dyn Write) -> Result<()>;
}

impl<T: serde::Serialize + Send + Sync + 'static> JsonTable for Table<T> {
    fn write_objects(&self, txn: &ReadTxn, out: &mut dyn Write) -> Result<()> {
        let json = |e: serde_json::Error| Error::Json(e.into());
        let io = |e: std::io::Error| Error::Io(e.into());
        out.write_all(b"[").map_err(io)?;
        for (i, (obj, _)) in self.all(txn)?.enumerate() {
            if i > 0 {
                out.write_all(b",").map_err(io)?;
            }
            serde_json::to_writer(&mut *out, &*obj).map_err(json)?;
        }
        out.write_all(b"]").map_err(io)?;
        Ok(())
    }
}

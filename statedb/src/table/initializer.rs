//! Initializers: a table reports initialized once every registered
//! initializer is done.

use part::Watch;

use super::Table;
use crate::error::{Result, TxnError};
use crate::txn::WriteTxn;
use crate::view::ReadTxnLike;

/// An initializer registered with [`Table::register_initializer`]: the
/// table reports initialized once every initializer is done.
#[derive(Debug)]
#[must_use = "the table stays uninitialized until the initializer is done"]
pub struct Initializer<T> {
    table: Table<T>,
    id: u64,
    name: String,
}

impl<T: Send + Sync + 'static> Initializer<T> {
    /// Marks the initializer done; takes effect when `txn` commits. If
    /// `txn` aborts, the initializer stays pending and can be marked done
    /// again in another transaction.
    ///
    /// # Errors
    ///
    /// [`TxnError::InitializerDone`] if it is done already as seen by `txn`;
    /// [`TxnError::TableNotLocked`] if `txn` does not lock the table.
    pub fn done(&self, txn: &mut WriteTxn) -> Result<(), TxnError> {
        let tt = txn.table_txn_mut(self.table.inner())?;
        let init = tt.initializers_mut();
        let before = init.pending.len();
        init.pending.retain(|(id, _)| *id != self.id);
        if init.pending.len() == before {
            return Err(TxnError::InitializerDone(self.name.clone()));
        }
        if init.pending.is_empty() {
            // The commit closes the period's watch.
            init.period = None;
        }
        Ok(())
    }

    /// The initializer's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<T: Send + Sync + 'static> Table<T> {
    /// Registers an initializer: the table reports uninitialized until
    /// every registered initializer is [done](Initializer::done).
    pub fn register_initializer(
        &self,
        txn: &mut WriteTxn,
        name: &str,
    ) -> Result<Initializer<T>, TxnError> {
        let tt = txn.table_txn_mut(self.inner())?;
        let id = self.inner().next_initializer_id();
        let init = tt.initializers_mut();
        if init.pending.is_empty() {
            // A new uninitialized period, with its own watch: published
            // only if this transaction commits.
            init.period = Some(std::sync::Arc::new(Watch::channel().0));
        }
        init.pending.push((id, name.to_string()));
        Ok(Initializer {
            table: self.clone(),
            id,
            name: name.to_string(),
        })
    }

    /// Whether every registered initializer is done, and a watch that
    /// closes when the table becomes initialized.
    pub fn initialized(&self, txn: &impl ReadTxnLike) -> Result<(bool, Watch), TxnError> {
        let view = self.view(txn)?;
        let done = view.pending_initializers().is_empty();
        let w = match view.init_watch() {
            Some(w) if !done => w,
            _ => Watch::closed_watch(),
        };
        Ok((done, w))
    }

    /// Names of initializers not yet done.
    pub fn pending_initializers(&self, txn: &impl ReadTxnLike) -> Result<Vec<String>, TxnError> {
        Ok(self
            .view(txn)?
            .pending_initializers()
            .iter()
            .map(|(_, n)| n.clone())
            .collect())
    }
}

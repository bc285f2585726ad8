//! Declaring a table: the builder and its validation.

use std::sync::Arc;

use super::Table;
use crate::error::{DeclareError, Result};
use crate::index::{Index, IndexInner};
use crate::lpm::LpmIndex;
use crate::table_inner::TableInner;

/// Builder of a [`Table`]: name, primary index, secondary indexes.
pub struct TableBuilder<T> {
    name: String,
    primary: Arc<IndexInner<T>>,
    secondary: Vec<Arc<IndexInner<T>>>,
}

impl<T: Send + Sync + 'static> TableBuilder<T> {
    /// Adds a secondary index.
    #[must_use]
    pub fn index<K: ?Sized>(mut self, index: &Index<T, K>) -> Self {
        self.secondary.push(index.inner().clone());
        self
    }

    /// Adds a longest-prefix-match index (see [`LpmIndex`]).
    #[must_use]
    pub fn lpm_index<K: ?Sized>(mut self, index: &LpmIndex<T, K>) -> Self {
        self.secondary.push(index.inner().clone());
        self
    }

    /// Validates the declaration and creates the table.
    pub fn build(self) -> Result<Table<T>, DeclareError> {
        if !valid_table_name(&self.name) {
            return Err(DeclareError::InvalidTableName(self.name));
        }
        if !self.primary.is_unique() {
            return Err(DeclareError::PrimaryIndexNotUnique {
                table: self.name,
                index: self.primary.name().to_string(),
            });
        }
        let mut names: Vec<&str> = Vec::new();
        for idx in std::iter::once(&self.primary).chain(&self.secondary) {
            if idx.name().is_empty() {
                return Err(DeclareError::EmptyIndexName);
            }
            if idx.name().starts_with("__") {
                return Err(DeclareError::ReservedIndexName(idx.name().to_string()));
            }
            if names.contains(&idx.name()) {
                return Err(DeclareError::DuplicateIndex {
                    table: self.name,
                    index: idx.name().to_string(),
                });
            }
            names.push(idx.name());
        }
        Ok(Table::from_inner(TableInner::new(
            self.name,
            self.primary,
            self.secondary,
        )))
    }
}

/// `^[a-z][a-z0-9_-]{0,30}$`
pub(crate) fn valid_table_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 31
        && b[0].is_ascii_lowercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

impl<T: Send + Sync + 'static> Table<T> {
    /// Starts declaring a table named `name` with the given primary index.
    pub fn builder<K: ?Sized>(name: &str, primary: &Index<T, K>) -> TableBuilder<T> {
        TableBuilder {
            name: name.to_string(),
            primary: primary.inner().clone(),
            secondary: Vec::new(),
        }
    }

    /// A table with only a primary index.
    pub fn new<K: ?Sized>(name: &str, primary: &Index<T, K>) -> Result<Table<T>, DeclareError> {
        Self::builder(name, primary).build()
    }
}

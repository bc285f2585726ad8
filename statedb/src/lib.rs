#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Modules from the bottom up: each uses only modules declared before it
// (checked by tests/layers.rs; see docs/architecture.md, "Layers"). One
// per paragraph, so that rustfmt keeps the order.

// errors, one enum per kind of operation
mod error;

// the seal of the traits users cannot implement
mod sealed;

// locks and atomics, swapped for loom's in model checks
mod sync;

// the fair table lock, owned by a transaction
mod lock;

// the metrics hook
mod metrics;

// the metrics in a Prometheus registry
#[cfg(feature = "prometheus")]
mod prometheus_metrics;

// what a Db says about its tables
mod info;

// indexes, queries and the query -> tree search mapping
mod index;

// longest-prefix-match indexes: bit-string keys and their encoding
mod lpm;

// an object as stored
mod object;

// query results
mod objects;

// deleted objects kept for change iterators, and their collection
mod graveyard;

// what all handles of one table share
mod table_inner;

// a table's snapshot and a write transaction's copy; the write path
mod state;

// tables with their type erased
mod erased;

// the persistent vector of table states
mod root;

// what all handles of one Db share: root, tables, metrics
mod db_inner;

// a table as one transaction sees it
mod view;

// read and write transactions; every commit starts here
mod txn;

// the typed table API
mod table;

// the Db
mod db;

// the JSON dump of tables
#[cfg(feature = "json")]
mod json;

// change iterators
mod changes;

// reverse, count and longest-prefix queries
mod queries;

// queries that lend objects instead of counting references
mod borrowed;

// changes as a Stream
mod observe;

// tables derived from tables
mod derive;

// a read-only handle on a table
mod read_table;

// tables by name, untyped, for inspection
#[cfg(feature = "json")]
mod untyped_write;

#[cfg(feature = "json")]
mod inspect;

pub use changes::{Change, ChangeIterator, Changes};
pub use db::Db;
pub use derive::{DeriveResult, Derived, derive};
pub use erased::{ErasedRef, TableHandle};
pub use error::{DeclareError, Error, Result, TxnError, WriteError};
pub use index::{Index, KeySet, Query};
pub use info::{IndexInfo, LockHolder, TableInfo};
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub use inspect::{
    AnyChange, AnyChanges, AnyObject, AnyTable, DEFAULT_CHANGES_MAX_LAG, InspectError, QueryOp,
    ResyncReason, TableRow, TextQuery, rows,
};
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub use json::JsonTable;
pub use lpm::{BitPrefix, BitPrefixError, LpmIndex, LpmKey, LpmKeys};
pub use metrics::{DbMetrics, NoopMetrics};
pub use objects::{Found, Objects, Refs};
pub use observe::{BlockingObserver, Observer};
pub use part::{Key, KeyEncoding, ParseKeyError, Watch, WatchSet, text_key};
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use prometheus_metrics::PrometheusDbMetrics;
pub use read_table::ReadTable;
pub use table::{Initializer, Table, TableBuilder};
#[doc(hidden)]
pub use table_inner::TableInner;
pub use txn::{ReadTxn, WriteTxn, WriteTxnFuture};
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub use untyped_write::{UntypedWriteError, Written};
pub use view::{ReadTxnLike, View};

/// Revision of an object: per table, strictly increasing on every insert
/// and delete.
pub type Revision = u64;

// The handles users share across threads and tasks are `Send + Sync`:
// checked at compile time, so a change that loses it fails the build.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Db>();
    send_sync::<ReadTxn>();
    send_sync::<Table<u32>>();
    send_sync::<Watch>();
    send_sync::<WatchSet>();
    send_sync::<Observer<u32>>();
    send_sync::<Derived>();
    send_sync::<Error>();
};
// A write transaction moves between threads (it is `Send`) but is used
// by one at a time.
const _: () = {
    const fn send<T: Send>() {}
    send::<WriteTxn>();
    send::<WriteTxnFuture>();
    send::<ChangeIterator<u32>>();
};

//! Tables by name, untyped (feature `json`): queries with keys given as
//! text and objects rendered as JSON and as rows of columns, for
//! inspection tools. Typed access is unaffected; a table takes part once
//! registered with [`Db::register_inspectable`].

use std::any::Any;
use std::sync::Arc;

use serde_json::Value;

use crate::Revision;
use crate::db::Db;
use crate::error::TxnError;
use crate::index::{IndexInner, Query};
use crate::info::TableInfo;
use crate::objects::Objects;
use crate::table::Table;
use crate::txn::ReadTxn;
#[cfg(feature = "yaml")]
use crate::untyped_write::parse_yaml;
use crate::untyped_write::{UntypedWrite, UntypedWriteError, Writer, Written, parse_json};

/// How an [`AnyTable::query`] searches its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryOp {
    /// The first object with the key.
    Get,
    /// Every object with the key.
    List,
    /// Objects whose key starts with the key; on an IP prefix index, the
    /// networks within the prefix (`10.0.0.0/8` finds `10.1.0.0/16`).
    Prefix,
    /// Objects whose key is at or above the key, in key order.
    LowerBound,
}

impl std::str::FromStr for QueryOp {
    type Err = InspectError;
    /// `get`, `list`, `prefix` or `lower_bound`.
    fn from_str(s: &str) -> Result<Self, InspectError> {
        match s {
            "get" => Ok(QueryOp::Get),
            "list" => Ok(QueryOp::List),
            "prefix" => Ok(QueryOp::Prefix),
            "lower_bound" => Ok(QueryOp::LowerBound),
            other => Err(InspectError::UnknownOp(other.to_string())),
        }
    }
}

/// An untyped query: index (the primary when `None`), operation, key as
/// text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextQuery {
    /// The index name; `None`: the primary index.
    pub index: Option<String>,
    /// The operation.
    pub op: QueryOp,
    /// The key, as text (see [`crate::Index::query_text`]).
    pub key: String,
}

/// Errors of the untyped access.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The table has no index of that name.
    #[error("table {table:?} has no index {index:?}")]
    UnknownIndex {
        /// Table name.
        table: String,
        /// Index name.
        index: String,
    },
    /// The operation is not one of get, list, prefix, lower_bound.
    #[error("unknown query operation {0:?} (get, list, prefix or lower_bound)")]
    UnknownOp(String),
    /// The key text does not parse as the index's key type.
    #[error("bad key for index {index:?}: {reason}")]
    BadKey {
        /// Index name.
        index: String,
        /// Why.
        reason: String,
    },
    /// An object could not be rendered as JSON.
    #[error("object of table {table:?} cannot be rendered as JSON: {reason}")]
    Render {
        /// Table name.
        table: String,
        /// Why.
        reason: String,
    },
    /// The table is not usable with this transaction.
    #[error(transparent)]
    Txn(#[from] TxnError),
}

/// An object's own columns for inspection tools' tables, in place of the
/// default (one column per field of its JSON form, see [`rows`]).
/// Registered with [`Db::register_inspectable_rows`].
///
/// ```
/// use statedb::TableRow;
/// struct Route { prefix: String, via: String, metric: u32 }
/// impl TableRow for Route {
///     fn table_header() -> Vec<String> {
///         vec!["prefix".into(), "via".into(), "metric".into()]
///     }
///     fn table_row(&self) -> Vec<String> {
///         vec![self.prefix.clone(), self.via.clone(), self.metric.to_string()]
///     }
/// }
/// ```
pub trait TableRow {
    /// The column names.
    fn table_header() -> Vec<String>;
    /// One cell per column of [`TableRow::table_header`].
    fn table_row(&self) -> Vec<String>;
}

/// An object as the untyped access hands it out.
#[derive(Debug, Clone, PartialEq)]
pub struct AnyObject {
    /// The object's revision.
    pub revision: Revision,
    /// Its primary key as the index encodes it: an identity for tools
    /// that track objects across changes.
    pub key: Vec<u8>,
    /// The object as JSON.
    pub json: Value,
    /// Its [`TableRow`] cells, if its table was registered with them.
    pub cells: Option<Vec<String>>,
}

/// One change of an object, untyped ([`AnyTable::changes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AnyChange {
    /// Revision of the change.
    pub revision: Revision,
    /// True for a delete (the object as it was).
    pub deleted: bool,
    /// Its primary key as the index encodes it (see [`AnyObject::key`]).
    pub key: Vec<u8>,
    /// The object as JSON.
    pub json: Value,
    /// Its [`TableRow`] cells, if its table was registered with them.
    pub cells: Option<Vec<String>>,
}

/// How many deleted objects an [`AnyTable::changes`] stream may hold back
/// for a consumer that stops reading.
pub const DEFAULT_CHANGES_MAX_LAG: usize = 10_000;

/// The changes of a table as a stream ([`AnyTable::changes`]); dropping it
/// releases its change iterator (and the deleted objects kept for it).
pub struct AnyChanges {
    resync: bool,
    resync_reason: Option<ResyncReason>,
    after: Revision,
    stream:
        std::pin::Pin<Box<dyn futures_core::Stream<Item = Result<AnyChange, InspectError>> + Send>>,
}

impl std::fmt::Debug for AnyChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyChanges")
            .field("resync", &self.resync)
            .field("resync_reason", &self.resync_reason)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl AnyChanges {
    /// True when the stream could not resume where it was asked to (a
    /// delete happened after that revision, or the revision is ahead of
    /// the table's, as after a restart): it replays the whole table
    /// instead, so a consumer that mirrors it must first forget what it
    /// holds.
    pub fn resync(&self) -> bool {
        self.resync
    }

    /// Why the stream replays the table, when it does.
    pub fn resync_reason(&self) -> Option<ResyncReason> {
        self.resync_reason
    }

    /// The revision the stream starts after: changes come with higher
    /// revisions.
    pub fn after(&self) -> Revision {
        self.after
    }
}

/// Why an [`AnyChanges`] stream could not resume where it was asked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResyncReason {
    /// Objects were deleted after that revision: their deletes are gone.
    MissedDeletes,
    /// The revision is ahead of the table's: the table is another
    /// incarnation (the server restarted with a fresh Db).
    Restarted,
}

impl ResyncReason {
    /// `"missed_deletes"` or `"restarted"`, as the HTTP API sends it.
    pub fn as_str(self) -> &'static str {
        match self {
            ResyncReason::MissedDeletes => "missed_deletes",
            ResyncReason::Restarted => "restarted",
        }
    }
}

impl futures_core::Stream for AnyChanges {
    type Item = Result<AnyChange, InspectError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.stream.as_mut().poll_next(cx)
    }
}

/// What the untyped access needs of a table.
trait Inspect: Send + Sync {
    fn name(&self) -> &str;
    fn query(
        &self,
        txn: &ReadTxn,
        query: Option<&TextQuery>,
    ) -> Result<Vec<AnyObject>, InspectError>;
    /// Changes after `after`; `None`: after the table's revision now.
    fn changes(
        &self,
        db: &Db,
        after: Option<Revision>,
        max_lag: usize,
    ) -> Result<AnyChanges, InspectError>;
    /// The [`TableRow`] header, if registered with one.
    fn header(&self) -> Option<Vec<String>>;
    /// Renders every object in `txn`, one at a time, to `f`.
    fn for_each(
        &self,
        txn: &ReadTxn,
        f: &mut dyn FnMut(AnyObject) -> std::ops::ControlFlow<()>,
    ) -> Result<(), InspectError>;
}

struct Inspector<T> {
    table: Table<T>,
    /// [`TableRow`], when registered with it.
    rows: Option<Rows<T>>,
}

struct Rows<T> {
    header: fn() -> Vec<String>,
    cells: fn(&T) -> Vec<String>,
}

impl<T> Clone for Rows<T> {
    fn clone(&self) -> Self {
        Rows {
            header: self.header,
            cells: self.cells,
        }
    }
}

/// Renders objects as JSON (and [`TableRow`] cells).
struct Renderer<T> {
    table: Table<T>,
    rows: Option<Rows<T>>,
}

impl<T: serde::Serialize + Send + Sync + 'static> Renderer<T> {
    fn key(&self, obj: &T) -> Vec<u8> {
        self.table
            .primary_query(obj)
            .map(|q| q.key().to_vec())
            .unwrap_or_default()
    }

    fn json(&self, obj: &T) -> Result<Value, InspectError> {
        serde_json::to_value(obj).map_err(|e| InspectError::Render {
            table: self.table.name().to_string(),
            reason: e.to_string(),
        })
    }

    fn cells(&self, obj: &T) -> Option<Vec<String>> {
        self.rows.as_ref().map(|r| (r.cells)(obj))
    }
}

/// The handle stored in the Db (an `Arc<dyn Inspect>` is sized, so it can
/// go through `Any`), with the writer of a table made writable.
struct Handle {
    inspect: Arc<dyn Inspect>,
    writer: Option<Arc<dyn UntypedWrite>>,
}

impl<T: serde::Serialize + Send + Sync + 'static> Inspector<T> {
    fn renderer(&self) -> Renderer<T> {
        Renderer {
            table: self.table.clone(),
            rows: self.rows.clone(),
        }
    }

    fn render(&self, objects: Objects<T>) -> Result<Vec<AnyObject>, InspectError> {
        let r = self.renderer();
        objects
            .map(|(obj, revision)| {
                Ok(AnyObject {
                    revision,
                    key: r.key(&obj),
                    json: r.json(&obj)?,
                    cells: r.cells(&obj),
                })
            })
            .collect()
    }

    /// The index a query names (the primary when it names none).
    fn index(&self, q: &TextQuery) -> Result<&IndexInner<T>, InspectError> {
        self.table
            .index_named(q.index.as_deref())
            .ok_or_else(|| InspectError::UnknownIndex {
                table: self.table.name().to_string(),
                index: q.index.clone().unwrap_or_default(),
            })
    }

    fn bad_key(index: &IndexInner<T>, e: part::ParseKeyError) -> InspectError {
        InspectError::BadKey {
            index: index.name().to_string(),
            reason: e.to_string(),
        }
    }

    fn text_query(&self, q: &TextQuery) -> Result<Query<T>, InspectError> {
        let index = self.index(q)?;
        let key = index
            .parse_key(&q.key)
            .map_err(|e| Self::bad_key(index, e))?;
        Ok(Query::new(index.name(), key))
    }

    /// A prefix search with a prefix given as text; key types with their
    /// own notion of prefix (an IP prefix: the networks within it) filter
    /// what the byte prefix finds ([`part::KeyEncoding::parse_prefix`]).
    fn text_prefix(&self, txn: &ReadTxn, q: &TextQuery) -> Result<Objects<T>, InspectError> {
        let index = self.index(q)?;
        let (key, filter) = index
            .parse_prefix(&q.key)
            .map_err(|e| Self::bad_key(index, e))?;
        let (found, _) = self.table.prefix(txn, Query::new(index.name(), key))?;
        Ok(match filter {
            None => found,
            Some(keep) => Objects::from_vec(
                found
                    .into_objects()
                    .filter(|o| index.keys_of(&o.data).iter().any(&keep))
                    .collect(),
            ),
        })
    }
}

impl<T: serde::Serialize + Send + Sync + 'static> Inspect for Inspector<T> {
    fn name(&self) -> &str {
        self.table.name()
    }

    fn header(&self) -> Option<Vec<String>> {
        self.rows.as_ref().map(|r| (r.header)())
    }

    fn for_each(
        &self,
        txn: &ReadTxn,
        f: &mut dyn FnMut(AnyObject) -> std::ops::ControlFlow<()>,
    ) -> Result<(), InspectError> {
        let r = self.renderer();
        for (obj, revision) in self.table.all(txn)? {
            let rendered = AnyObject {
                revision,
                key: r.key(&obj),
                json: r.json(&obj)?,
                cells: r.cells(&obj),
            };
            if f(rendered).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn changes(
        &self,
        db: &Db,
        after: Option<Revision>,
        max_lag: usize,
    ) -> Result<AnyChanges, InspectError> {
        // The observer starts and the table is read in one write
        // transaction, so nothing changes in between.
        let mut w = db.write_txn(&[&self.table])?;
        let observer = self.table.observe_in(db, &mut w)?.max_lag(max_lag);
        let now = self.table.revision(&w)?;
        let last_delete = self.table.last_delete_revision(&w)?;
        w.abort();
        let (after, resync_reason) = match after {
            None => (now, None),
            // A revision ahead of the table's was of another incarnation,
            // and a delete after `r` is gone for good: replay everything.
            Some(r) if r > now => (0, Some(ResyncReason::Restarted)),
            Some(r) if last_delete > r => (0, Some(ResyncReason::MissedDeletes)),
            Some(r) => (r, None),
        };
        Ok(AnyChanges {
            resync: resync_reason.is_some(),
            resync_reason,
            after,
            stream: Box::pin(Untyped {
                renderer: self.renderer(),
                observer,
                after,
                ended: false,
            }),
        })
    }

    fn query(
        &self,
        txn: &ReadTxn,
        query: Option<&TextQuery>,
    ) -> Result<Vec<AnyObject>, InspectError> {
        let Some(q) = query else {
            return self.render(self.table.all(txn)?);
        };
        let objects = match q.op {
            QueryOp::Get => Objects::from_found(self.table.get(txn, self.text_query(q)?)?),
            QueryOp::List => self.table.list(txn, self.text_query(q)?)?,
            QueryOp::Prefix => self.text_prefix(txn, q)?,
            QueryOp::LowerBound => self.table.lower_bound(txn, self.text_query(q)?)?.0,
        };
        self.render(objects)
    }
}

/// An [`crate::Observer`] rendering its changes as JSON, skipping those at
/// or below `after`; when the observer ends, the reason comes last.
struct Untyped<T: Send + Sync + 'static> {
    renderer: Renderer<T>,
    observer: crate::observe::Observer<T>,
    after: Revision,
    ended: bool,
}

impl<T: serde::Serialize + Send + Sync + 'static> futures_core::Stream for Untyped<T> {
    type Item = Result<AnyChange, InspectError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            let change = match std::pin::Pin::new(&mut this.observer).poll_next(cx) {
                Poll::Ready(Some(c)) => c,
                Poll::Ready(None) => {
                    this.ended = true;
                    return Poll::Ready(this.observer.error().cloned().map(|e| Err(e.into())));
                }
                Poll::Pending => return Poll::Pending,
            };
            if change.revision <= this.after {
                continue;
            }
            let rendered = this.renderer.json(&change.object).map(|json| AnyChange {
                revision: change.revision,
                deleted: change.deleted,
                key: this.renderer.key(&change.object),
                json,
                cells: this.renderer.cells(&change.object),
            });
            return Poll::Ready(Some(rendered));
        }
    }
}

/// A table found by name: untyped queries, objects as JSON.
#[derive(Clone)]
pub struct AnyTable {
    db: Db,
    inner: Arc<dyn Inspect>,
    writer: Option<Arc<dyn UntypedWrite>>,
}

impl std::fmt::Debug for AnyTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyTable")
            .field("name", &self.inner.name())
            .finish()
    }
}

impl AnyTable {
    /// The table name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    fn writer(&self) -> Result<&dyn UntypedWrite, UntypedWriteError> {
        self.writer
            .as_deref()
            .ok_or_else(|| UntypedWriteError::NotWritable {
                table: self.name().to_string(),
            })
    }

    /// Whether the table takes untyped writes ([`Db::register_writable`]).
    pub fn is_writable(&self) -> bool {
        self.writer.is_some()
    }

    /// Inserts (or replaces, by primary key) the objects in `text`: a JSON
    /// object, an array of objects, or objects one after another (JSON
    /// lines). One write transaction: every object is parsed into the
    /// table's type first, and nothing is committed unless every one is
    /// written. See [`Db::register_writable`] for an example.
    ///
    /// ## Warning
    ///
    /// Waits for the table's lock as [`Db::write_txn`] does, blocking the
    /// thread: not for async code that may hold the lock across an
    /// `.await` on the same thread.
    ///
    /// # Errors
    ///
    /// [`UntypedWriteError::NotWritable`] unless registered with
    /// [`Db::register_writable`]; [`UntypedWriteError::Parse`] for text
    /// that is not JSON; [`UntypedWriteError::BadObject`] for an object
    /// that is not of the table's type; [`UntypedWriteError::Refused`] for
    /// one the table refuses (a unique index conflict);
    /// [`UntypedWriteError::Txn`] if the lock cannot be had.
    pub fn insert_json(&self, text: &str) -> Result<Written, UntypedWriteError> {
        let w = self.writer()?;
        w.insert(&self.db, parse_json(self.name(), text)?)
    }

    /// [`AnyTable::insert_json`] for objects given as values.
    ///
    /// # Errors
    ///
    /// As [`AnyTable::insert_json`].
    pub fn insert_values(&self, objects: Vec<Value>) -> Result<Written, UntypedWriteError> {
        self.writer()?.insert(&self.db, objects)
    }

    /// Deletes the objects with the primary keys of the objects in `text`
    /// (JSON, as [`AnyTable::insert_json`] takes it; each must be a whole
    /// object of the table's type). One transaction, all or nothing; an
    /// object that is not in the table deletes nothing.
    ///
    /// # Errors
    ///
    /// As [`AnyTable::insert_json`].
    pub fn delete_json(&self, text: &str) -> Result<Written, UntypedWriteError> {
        let w = self.writer()?;
        w.delete(&self.db, parse_json(self.name(), text)?)
    }

    /// Deletes the objects with these primary keys, given as text (as
    /// queries take them: `10.0.0.0/8`, `42`, a name). One transaction,
    /// all or nothing; a key with no object deletes nothing.
    ///
    /// # Errors
    ///
    /// [`UntypedWriteError::BadKey`] for a key that does not parse (then
    /// nothing is deleted); otherwise as [`AnyTable::insert_json`].
    pub fn delete_keys(&self, keys: &[&str]) -> Result<Written, UntypedWriteError> {
        self.writer()?.delete_keys(&self.db, keys)
    }

    /// [`AnyTable::insert_json`] for YAML: a mapping, a sequence of
    /// mappings, or several documents separated by `---`.
    ///
    /// # Errors
    ///
    /// As [`AnyTable::insert_json`].
    #[cfg(feature = "yaml")]
    #[cfg_attr(docsrs, doc(cfg(feature = "yaml")))]
    pub fn insert_yaml(&self, text: &str) -> Result<Written, UntypedWriteError> {
        let w = self.writer()?;
        w.insert(&self.db, parse_yaml(self.name(), text)?)
    }

    /// [`AnyTable::delete_json`] for YAML.
    ///
    /// # Errors
    ///
    /// As [`AnyTable::insert_json`].
    #[cfg(feature = "yaml")]
    #[cfg_attr(docsrs, doc(cfg(feature = "yaml")))]
    pub fn delete_yaml(&self, text: &str) -> Result<Written, UntypedWriteError> {
        let w = self.writer()?;
        w.delete(&self.db, parse_yaml(self.name(), text)?)
    }

    /// The table as `txn` sees it: indexes, size, revision.
    pub fn info(&self, txn: &ReadTxn) -> Option<TableInfo> {
        self.db
            .tables(txn)
            .into_iter()
            .find(|t| t.name == self.inner.name())
    }

    /// Every object, in primary key order.
    ///
    /// # Errors
    ///
    /// [`InspectError::Render`] for an object serde cannot render;
    /// [`InspectError::Txn`] for a transaction of another Db.
    pub fn all(&self, txn: &ReadTxn) -> Result<Vec<AnyObject>, InspectError> {
        self.inner.query(txn, None)
    }

    /// The table's changes as a stream: every upsert and delete after
    /// revision `after` (`None`: after the table's revision now, so only
    /// what comes next), in revision order. With `Some(r)`, objects
    /// changed after `r` and still present come first as upserts. If a
    /// delete happened after `r` (it cannot be replayed) or `r` is ahead
    /// of the table, the stream replays the whole table instead and says
    /// so with [`AnyChanges::resync`]. Dropping the stream releases its
    /// change iterator.
    ///
    /// A consumer that stops reading holds back at most
    /// [`DEFAULT_CHANGES_MAX_LAG`] deleted objects: past that, the stream
    /// yields [`TxnError::ChangesLapped`](crate::TxnError::ChangesLapped)
    /// and ends, and the consumer must resume from its last revision
    /// (which then replays the table, with [`AnyChanges::resync`]).
    /// [`AnyTable::changes_with_max_lag`] sets another bound.
    ///
    /// # Errors
    ///
    /// [`InspectError::Txn`] if the table is locked by the caller.
    pub fn changes(&self, after: Option<Revision>) -> Result<AnyChanges, InspectError> {
        self.inner.changes(&self.db, after, DEFAULT_CHANGES_MAX_LAG)
    }

    /// [`AnyTable::changes`] holding back at most `max_lag` deleted objects
    /// for a consumer that stops reading (see
    /// [`ChangeIterator::max_lag`](crate::ChangeIterator::max_lag)).
    ///
    /// # Errors
    ///
    /// As [`AnyTable::changes`].
    pub fn changes_with_max_lag(
        &self,
        after: Option<Revision>,
        max_lag: usize,
    ) -> Result<AnyChanges, InspectError> {
        self.inner.changes(&self.db, after, max_lag)
    }

    /// Every object in `txn`, rendered one at a time and handed to `f`
    /// (constant memory, where [`AnyTable::all`] renders them all first);
    /// stops early when `f` breaks.
    ///
    /// # Errors
    ///
    /// As [`AnyTable::all`] (the objects before the failing one were
    /// handed to `f`).
    pub fn for_each(
        &self,
        txn: &ReadTxn,
        mut f: impl FnMut(AnyObject) -> std::ops::ControlFlow<()>,
    ) -> Result<(), InspectError> {
        self.inner.for_each(txn, &mut f)
    }

    /// The [`TableRow`] column names, if the table was registered with
    /// [`Db::register_inspectable_rows`].
    pub fn header(&self) -> Option<Vec<String>> {
        self.inner.header()
    }

    /// Objects of this table as rows of named columns: its [`TableRow`]
    /// header and cells if registered with them, else [`rows`] (the JSON
    /// fields).
    pub fn rows(&self, objects: &[AnyObject]) -> (Vec<String>, Vec<Vec<String>>) {
        match self.header() {
            Some(header) => {
                let rows = objects
                    .iter()
                    .map(|o| o.cells.clone().unwrap_or_default())
                    .collect();
                (header, rows)
            }
            None => rows(objects),
        }
    }

    /// The objects a query with a key given as text finds.
    ///
    /// # Errors
    ///
    /// [`InspectError::UnknownIndex`], [`InspectError::BadKey`] (the
    /// reason names what the text should have been), and as
    /// [`AnyTable::all`].
    pub fn query(&self, txn: &ReadTxn, query: &TextQuery) -> Result<Vec<AnyObject>, InspectError> {
        self.inner.query(txn, Some(query))
    }
}

/// Objects as rows of named columns: the fields of the JSON objects (in
/// the order first seen), each cell the field's text (strings as they
/// are, anything else as JSON). A non-object value is one column `value`.
pub fn rows(objects: &[AnyObject]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header: Vec<String> = Vec::new();
    for o in objects {
        match &o.json {
            Value::Object(map) => {
                for k in map.keys() {
                    if !header.contains(k) {
                        header.push(k.clone());
                    }
                }
            }
            _ if !header.iter().any(|h| h == "value") => header.push("value".to_string()),
            _ => {}
        }
    }
    let cell = |v: Option<&Value>| match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let rows = objects
        .iter()
        .map(|o| {
            header
                .iter()
                .map(|h| match &o.json {
                    Value::Object(map) => cell(map.get(h)),
                    other if h == "value" => cell(Some(other)),
                    _ => String::new(),
                })
                .collect()
        })
        .collect();
    (header, rows)
}

impl Db {
    /// Registers `table` like [`Db::register_table`] and makes it
    /// available by name, untyped ([`Db::table_by_name`]): its objects are
    /// rendered with `serde`.
    ///
    /// ```
    /// use statedb::{Db, Index, QueryOp, Table, TextQuery};
    /// #[derive(serde::Serialize)]
    /// struct Host { name: String, port: u16 }
    /// let by_name: Index<Host, str> = Index::unique("name", |h: &Host, k| k.push(h.name.as_str()));
    /// let by_port: Index<Host, u16> = Index::non_unique("port", |h: &Host, k| k.push(&h.port));
    /// let hosts = Table::builder("hosts", &by_name).index(&by_port).build()?;
    /// let db = Db::new();
    /// db.register_inspectable(&hosts)?;
    /// let mut w = db.write_txn(&[&hosts])?;
    /// hosts.insert(&mut w, Host { name: "a".into(), port: 80 })?;
    /// let txn = w.commit();
    ///
    /// let t = db.table_by_name("hosts").unwrap();
    /// let q = TextQuery { index: Some("port".into()), op: QueryOp::List, key: "80".into() };
    /// let found = t.query(&txn, &q)?;
    /// assert_eq!(found[0].json["name"], "a");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Db::register_table`].
    pub fn register_inspectable<T: serde::Serialize + Send + Sync + 'static>(
        &self,
        table: &Table<T>,
    ) -> Result<(), TxnError> {
        self.register_with(table, None)
    }

    /// [`Db::register_inspectable`], with the object's own columns
    /// ([`TableRow`]) for tables of text.
    ///
    /// # Errors
    ///
    /// As [`Db::register_table`].
    pub fn register_inspectable_rows<T>(&self, table: &Table<T>) -> Result<(), TxnError>
    where
        T: serde::Serialize + TableRow + Send + Sync + 'static,
    {
        let rows = Rows {
            header: T::table_header,
            cells: T::table_row,
        };
        self.register_with(table, Some(rows))
    }

    fn register_with<T: serde::Serialize + Send + Sync + 'static>(
        &self,
        table: &Table<T>,
        rows: Option<Rows<T>>,
    ) -> Result<(), TxnError> {
        self.register_table(table)?;
        let inspect: Arc<dyn Inspect> = Arc::new(Inspector {
            table: table.clone(),
            rows,
        });
        let handle: Arc<dyn Any + Send + Sync> = Arc::new(Handle {
            inspect,
            writer: None,
        });
        self.inner().set_extension(table.name(), handle);
        Ok(())
    }

    /// [`Db::register_inspectable`], and writable untyped: objects given
    /// as JSON (or YAML, with the `yaml` feature) through
    /// [`AnyTable::insert_json`], [`AnyTable::delete_json`] and
    /// [`AnyTable::delete_keys`], for tooling and test scripts.
    ///
    /// ```
    /// use statedb::{Db, Index, Table};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Route { prefix: String, via: String }
    /// let by_prefix: Index<Route, str> = Index::unique("prefix", |r: &Route, k| k.push(r.prefix.as_str()));
    /// let routes = Table::new("routes", &by_prefix)?;
    /// let db = Db::new();
    /// db.register_writable(&routes)?;
    /// let t = db.table_by_name("routes").unwrap();
    /// let w = t.insert_json(r#"[{"prefix": "10.0.0.0/8", "via": "eth0"},
    ///                          {"prefix": "10.1.0.0/16", "via": "eth1"}]"#)?;
    /// assert_eq!(w.objects, 2);
    /// // Nothing partial: the second object is not a Route, so neither is written.
    /// assert!(t.insert_json(r#"{"prefix": "a", "via": "b"} {"prefix": 3}"#).is_err());
    /// t.delete_keys(&["10.0.0.0/8"])?;
    /// assert_eq!(routes.num_objects(&db.read_txn())?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Db::register_table`].
    pub fn register_writable<T>(&self, table: &Table<T>) -> Result<(), TxnError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        self.register_inspectable(table)?;
        self.allow_untyped_writes(table);
        Ok(())
    }

    /// [`Db::register_writable`] with the object's own columns
    /// ([`TableRow`]), as [`Db::register_inspectable_rows`].
    ///
    /// # Errors
    ///
    /// As [`Db::register_table`].
    pub fn register_writable_rows<T>(&self, table: &Table<T>) -> Result<(), TxnError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + TableRow + Send + Sync + 'static,
    {
        self.register_inspectable_rows(table)?;
        self.allow_untyped_writes(table);
        Ok(())
    }

    fn allow_untyped_writes<T>(&self, table: &Table<T>)
    where
        T: serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let Some(inspect) = self
            .inner()
            .extension(table.name())
            .and_then(|a| a.downcast_ref::<Handle>().map(|h| h.inspect.clone()))
        else {
            return;
        };
        let writer: Arc<dyn UntypedWrite> = Arc::new(Writer {
            table: table.clone(),
        });
        let handle: Arc<dyn Any + Send + Sync> = Arc::new(Handle {
            inspect,
            writer: Some(writer),
        });
        self.inner().set_extension(table.name(), handle);
    }

    /// The table registered as `name` with [`Db::register_inspectable`].
    pub fn table_by_name(&self, name: &str) -> Option<AnyTable> {
        let any = self.inner().extension(name)?;
        let handle = any.downcast_ref::<Handle>()?;
        Some(AnyTable {
            db: self.clone(),
            inner: handle.inspect.clone(),
            writer: handle.writer.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_take_the_fields_in_order_and_render_cells() {
        let objects = vec![
            AnyObject {
                revision: 1,
                key: Vec::new(),
                json: serde_json::json!({"name": "a", "port": 80}),
                cells: None,
            },
            AnyObject {
                revision: 2,
                key: Vec::new(),
                json: serde_json::json!({"name": "b", "tags": ["x"]}),
                cells: None,
            },
        ];
        let (header, rows) = rows(&objects);
        assert_eq!(header, ["name", "port", "tags"]);
        assert_eq!(rows[0], ["a", "80", ""]);
        assert_eq!(rows[1], ["b", "", "[\"x\"]"]);
        let (header, rows) = super::rows(&[AnyObject {
            revision: 1,
            key: Vec::new(),
            json: serde_json::json!(7),
            cells: None,
        }]);
        assert_eq!(
            (header, rows),
            (vec!["value".to_string()], vec![vec!["7".to_string()]])
        );
    }

    #[test]
    fn ops_parse_from_text() {
        assert_eq!(
            "lower_bound".parse::<QueryOp>().unwrap(),
            QueryOp::LowerBound
        );
        assert!(matches!(
            "scan".parse::<QueryOp>(),
            Err(InspectError::UnknownOp(_))
        ));
    }
}

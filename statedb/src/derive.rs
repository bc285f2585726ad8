//! Derived tables: keep an output table in sync with a transformation of
//! an input table, on a thread of its own.

use std::sync::Arc;
use std::thread::JoinHandle;

use part::sync::Mutex;
use part::{Watch, WatchCloser, WatchSet};

use crate::db::Db;
use crate::error::{Error, Result};
use crate::table::Table;

/// What [`derive()`]'s transform makes of one input change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeriveResult<O> {
    /// Insert (or replace) this object in the output table.
    Insert(O),
    /// Delete the object with this object's primary key from the output.
    Delete(O),
    /// Nothing to do.
    Skip,
}

/// A running [`derive()`]: stops (and joins its thread) when dropped or
/// [stopped](Derived::stop).
pub struct Derived {
    stop: WatchCloser,
    thread: Option<JoinHandle<()>>,
    last_error: Arc<Mutex<Option<Error>>>,
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Derived")
            .field("running", &self.is_running())
            .field("last_error", &self.last_error())
            .finish_non_exhaustive()
    }
}

impl Derived {
    /// Stops deriving and waits for the thread to finish its current step.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// The last error met, if any: writing the output failed (for example
    /// a unique conflict in the output table), or the transform panicked
    /// ([`Error::DerivePanicked`], naming the input key). Deriving goes on
    /// after an error; the failed change is not retried.
    pub fn last_error(&self) -> Option<Error> {
        self.last_error.lock().clone()
    }

    /// Whether the derive thread still runs. It stops only when stopped,
    /// or when the input's change iterator fails ([`Derived::last_error`]
    /// says why): never silently.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for Derived {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Keeps `output` in sync with `transform` applied to every change of
/// `input`: `transform(object, deleted)` returns what to do in `output`.
/// Runs on a thread of its own until the returned [`Derived`] is dropped.
///
/// `output` gets an initializer that is done once `input` is initialized
/// and every change up to then is in `output`, so that consumers of
/// `output` (a reconciler's prune, say) wait for a complete table.
///
/// ```
/// use statedb::{derive, DeriveResult, Db, Index, Table};
/// let by_id: Index<u32, u32> = Index::unique("id", |o: &u32, k| k.push(o));
/// let by_id2: Index<u64, u64> = Index::unique("id", |o: &u64, k| k.push(o));
/// let input = Table::new("input", &by_id)?;
/// let doubled = Table::new("doubled", &by_id2)?;
/// let db = Db::new();
/// db.register_table(&input)?;
/// db.register_table(&doubled)?;
/// let running = derive(&db, &input, &doubled, |n: &u32, deleted| {
///     let out = u64::from(*n) * 2;
///     if deleted { DeriveResult::Delete(out) } else { DeriveResult::Insert(out) }
/// })?;
/// let mut w = db.write_txn(&[&input])?;
/// input.insert(&mut w, 21)?;
/// w.commit();
/// // Wait until the output is initialized and holds the derived object.
/// loop {
///     let r = db.read_txn();
///     let (init, watch) = doubled.initialized(&r)?;
///     if init && doubled.get(&r, by_id2.query(&42))?.is_some() { break }
///     let (_, w2) = doubled.all_watch(&r)?;
///     let mut set = statedb::WatchSet::new();
///     set.add(watch);
///     set.add(w2);
///     set.wait_timeout(std::time::Duration::from_secs(5));
/// }
/// running.stop();
/// # Ok::<(), statedb::Error>(())
/// ```
///
/// # Errors
///
/// Either table is not registered with `db`, or this thread holds a write
/// transaction on one of them ([`TxnError::WouldDeadlock`](crate::TxnError::WouldDeadlock)).
pub fn derive<I, O, F>(
    db: &Db,
    input: &Table<I>,
    output: &Table<O>,
    transform: F,
) -> Result<Derived>
where
    I: Send + Sync + 'static,
    O: Send + Sync + 'static,
    F: FnMut(&I, bool) -> DeriveResult<O> + Send + 'static,
{
    let mut w = db.write_txn(&[input, output])?;
    let changes = input.changes(&mut w)?;
    let init = output.register_initializer(&mut w, &format!("derive-from-{}", input.name()))?;
    w.commit();
    let (stop, stopped) = Watch::channel();
    let last_error = Arc::new(Mutex::new(None));
    let run = Run {
        db: db.clone(),
        input: input.clone(),
        output: output.clone(),
        init: Some(init),
        last_error: last_error.clone(),
    };
    let thread = std::thread::Builder::new()
        .name(format!("derive-{}", output.name()))
        .spawn(move || run.run(changes, transform, stopped))
        .map_err(|e| Error::Thread(e.into()))?;
    Ok(Derived {
        stop,
        thread: Some(thread),
        last_error,
    })
}

struct Run<I: Send + Sync + 'static, O: Send + Sync + 'static> {
    db: Db,
    input: Table<I>,
    output: Table<O>,
    init: Option<crate::table::Initializer<O>>,
    last_error: Arc<Mutex<Option<Error>>>,
}

impl<I: Send + Sync + 'static, O: Send + Sync + 'static> Run<I, O> {
    fn run<F>(mut self, mut changes: crate::ChangeIterator<I>, mut transform: F, stopped: Watch)
    where
        F: FnMut(&I, bool) -> DeriveResult<O>,
    {
        while !stopped.is_closed() {
            let txn = self.db.read_txn();
            let (batch, watch) = match changes.next(&txn) {
                Ok(next) => next,
                Err(e) => {
                    *self.last_error.lock() = Some(e.into());
                    return;
                }
            };
            let mut panicked = None;
            let work: Vec<DeriveResult<O>> = batch
                .filter_map(|c| {
                    let run = std::panic::AssertUnwindSafe(|| transform(&c.object, c.deleted));
                    match std::panic::catch_unwind(run) {
                        Ok(DeriveResult::Skip) => None,
                        Ok(r) => Some(r),
                        Err(payload) => {
                            panicked.get_or_insert_with(|| self.panicked(&c.object, &*payload));
                            None
                        }
                    }
                })
                .collect();
            if let Some(e) = panicked {
                *self.last_error.lock() = Some(e);
            }
            let (input_ready, init_watch) = self
                .input
                .initialized(&txn)
                .unwrap_or((false, Watch::closed_watch()));
            let finish_init = input_ready && self.init.is_some();
            if (!work.is_empty() || finish_init)
                && let Err(e) = self.apply(work, finish_init)
            {
                *self.last_error.lock() = Some(e);
            }
            let mut set = WatchSet::new();
            set.add(watch);
            set.add(stopped.clone());
            if !input_ready {
                set.add(init_watch);
            }
            set.wait();
        }
    }

    /// The error of a transform that panicked on `object`.
    fn panicked(&self, object: &I, payload: &(dyn std::any::Any + Send)) -> Error {
        let key = self
            .input
            .primary_query(object)
            .map_or_else(String::new, |q| self.input.primary_key_text(q.key()));
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_string());
        Error::DerivePanicked {
            table: self.input.name().to_string(),
            key,
            message,
        }
    }

    fn apply(&mut self, work: Vec<DeriveResult<O>>, finish_init: bool) -> Result<()> {
        let mut w = self.db.write_txn(&[&self.output])?;
        let mut first_error = None;
        for r in work {
            let res = match r {
                DeriveResult::Insert(o) => self.output.insert(&mut w, o).map(drop),
                DeriveResult::Delete(o) => self.output.delete(&mut w, &o).map(drop),
                DeriveResult::Skip => Ok(()),
            };
            if let Err(e) = res {
                first_error.get_or_insert(e);
            }
        }
        if finish_init && let Some(init) = self.init.take() {
            init.done(&mut w)?;
        }
        w.commit();
        first_error.map_or(Ok(()), Err)
    }
}

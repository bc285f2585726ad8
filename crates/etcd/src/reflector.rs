//! The reflector: an etcd key prefix mirrored into a statedb table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use statedb::{Db, Initializer, Table, WriteTxn};
use tokio_util::sync::CancellationToken;

/// Errors of a decode function.
pub type DecodeError = Box<dyn std::error::Error + Send + Sync>;

type Decode<T> = dyn Fn(&str, &[u8]) -> Result<T, DecodeError> + Send + Sync;

/// What a reflector has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReflectorStats {
    /// Full lists of the prefix (the first, and one after every
    /// disconnect or compaction).
    pub lists: u64,
    /// Watches that ended because the revision they resumed from was
    /// compacted (each followed by a list).
    pub compacted: u64,
    /// etcd errors (lost connections, failed requests), each followed by
    /// a retry with backoff.
    pub errors: u64,
    /// Values the decode function refused (the key is then absent from
    /// the table).
    pub undecodable: u64,
    /// The etcd revision the table reflects.
    pub revision: i64,
    /// The last etcd error, if any.
    pub last_error: Option<String>,
    /// Whether the reflector is following etcd now: true from a
    /// successful list until an error, false while it retries (etcd is
    /// down, unreachable or refusing).
    pub connected: bool,
}

/// Mirrors every key under an etcd prefix into a table.
///
/// - The first list of the prefix fills the table in one transaction, and
///   only then is the table's initializer done: a reconciler on the table
///   never prunes before the whole desired state is in.
/// - Then a watch from the listed revision applies each batch of events
///   in one transaction: a put inserts (or replaces) the decoded object, a
///   delete deletes it.
/// - When the watch ends (etcd restarted, the connection dropped) or its
///   revision was compacted, the reflector lists again (after a backoff
///   for errors) and replaces the table's contents in one transaction:
///   what disappeared meanwhile is deleted, and objects whose key did not
///   change are left alone (no new revision, so no needless
///   reconciliation).
///
/// The reflector owns the table: every object in it comes from etcd.
/// `decode` turns a key (without the prefix) and a value into an object
/// whose primary key is derived from that key; a value it refuses is
/// logged and treated as absent.
pub struct Reflector<T> {
    client: Client,
    prefix: String,
    table: Table<T>,
    decode: Arc<Decode<T>>,
    retry_min: Duration,
    retry_max: Duration,
}

impl<T> std::fmt::Debug for Reflector<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reflector")
            .field("prefix", &self.prefix)
            .field("table", &self.table.name())
            .finish()
    }
}

/// A prepared reflector's loop: run it (spawn it, or add it as a job of a
/// lifecycle) until its token is cancelled.
#[must_use = "the reflector does nothing until its loop runs"]
pub struct ReflectorLoop<T> {
    reflector: Reflector<T>,
    db: Db,
    init: Option<Initializer<T>>,
    stats: Arc<Mutex<ReflectorStats>>,
}

/// Reads a running reflector's [`ReflectorStats`].
#[derive(Clone, Debug)]
pub struct StatsHandle(Arc<Mutex<ReflectorStats>>);

impl StatsHandle {
    /// The stats now.
    pub fn get(&self) -> ReflectorStats {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A spawned reflector: its stats, and a way to stop it.
#[derive(Debug)]
pub struct ReflectorHandle {
    stats: StatsHandle,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl ReflectorHandle {
    /// The stats now.
    pub fn stats(&self) -> ReflectorStats {
        self.stats.get()
    }

    /// Stops the reflector and waits for its task to end.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

impl<T: Send + Sync + 'static> Reflector<T> {
    /// A reflector of the keys under `prefix` into `table`.
    pub fn new(
        client: Client,
        prefix: impl Into<String>,
        table: Table<T>,
        decode: impl Fn(&str, &[u8]) -> Result<T, DecodeError> + Send + Sync + 'static,
    ) -> Self {
        Reflector {
            client,
            prefix: prefix.into(),
            table,
            decode: Arc::new(decode),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
        }
    }

    /// Delay before retrying after an etcd error: `min`, doubling up to
    /// `max`. Default 100 ms to 10 s.
    #[must_use]
    pub fn retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.retry_min = min.max(Duration::from_millis(1));
        self.retry_max = max.max(self.retry_min);
        self
    }

    /// Registers the table's initializer (done after the first list) and
    /// returns the loop to run, with a handle to its stats. Prepare before
    /// starting anything that waits for the table to be initialized.
    ///
    /// # Errors
    ///
    /// The table is not registered with `db`, or is locked by this thread.
    pub fn prepare(self, db: &Db) -> Result<(ReflectorLoop<T>, StatsHandle), statedb::Error> {
        let mut w = db.write_txn(&[&self.table])?;
        let init = self
            .table
            .register_initializer(&mut w, &format!("etcd {}", self.prefix))?;
        w.commit();
        let stats = Arc::new(Mutex::new(ReflectorStats::default()));
        let handle = StatsHandle(stats.clone());
        Ok((
            ReflectorLoop {
                reflector: self,
                db: db.clone(),
                init: Some(init),
                stats,
            },
            handle,
        ))
    }

    /// [`Reflector::prepare`] and spawn the loop on the current tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// As [`Reflector::prepare`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (as `tokio::spawn`).
    pub fn spawn(self, db: &Db) -> Result<ReflectorHandle, statedb::Error> {
        let (run, stats) = self.prepare(db)?;
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run.run(cancel.clone()));
        Ok(ReflectorHandle {
            stats,
            cancel,
            task,
        })
    }
}

/// Why a watch ended.
enum WatchEnd {
    Cancelled,
    Compacted,
    Failed(String),
}

/// An object as reflected: the etcd revision of its last change, and the
/// object.
type Reflected<T> = HashMap<String, (i64, Arc<T>)>;

impl<T: Send + Sync + 'static> ReflectorLoop<T> {
    /// Lists, watches, and lists again after errors and compactions, until
    /// `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut current: Reflected<T> = HashMap::new();
        let mut backoff = self.reflector.retry_min;
        loop {
            let listed = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.list(&mut current) => r,
            };
            let revision = match listed {
                Ok(revision) => revision,
                Err(e) => {
                    self.failed(&e);
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.reflector.retry_max);
                    continue;
                }
            };
            backoff = self.reflector.retry_min;
            let end = tokio::select! {
                _ = cancel.cancelled() => WatchEnd::Cancelled,
                end = self.watch(revision + 1, &mut current) => end,
            };
            match end {
                WatchEnd::Cancelled => return,
                WatchEnd::Compacted => {
                    self.update(|s| s.compacted += 1);
                    tracing::info!(prefix = %self.reflector.prefix, "watch revision compacted; listing again");
                }
                WatchEnd::Failed(e) => {
                    self.failed(&e);
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.reflector.retry_max);
                }
            }
        }
    }

    fn update(&self, f: impl FnOnce(&mut ReflectorStats)) {
        f(&mut self.stats.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn failed(&self, e: &str) {
        tracing::warn!(prefix = %self.reflector.prefix, error = %e, "etcd reflector: retrying");
        self.update(|s| {
            s.errors += 1;
            s.last_error = Some(e.to_string());
            s.connected = false;
        });
    }

    fn decode(&self, key: &[u8], value: &[u8]) -> Option<(String, T)> {
        let key = String::from_utf8_lossy(key);
        let name = key
            .strip_prefix(self.reflector.prefix.as_str())?
            .to_string();
        match (self.reflector.decode)(&name, value) {
            Ok(obj) => Some((name, obj)),
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "etcd reflector: value not decodable; ignored");
                self.update(|s| s.undecodable += 1);
                None
            }
        }
    }

    /// Lists the prefix and makes the table equal to it in one
    /// transaction; marks the initializer done the first time. Returns
    /// the revision listed.
    async fn list(&mut self, current: &mut Reflected<T>) -> Result<i64, String> {
        let mut client = self.reflector.client.clone();
        let resp = client
            .get(
                self.reflector.prefix.as_str(),
                Some(GetOptions::new().with_prefix()),
            )
            .await
            .map_err(|e| e.to_string())?;
        let revision = resp.header().map_or(0, |h| h.revision());
        let mut listed: Reflected<T> = HashMap::with_capacity(resp.kvs().len());
        for kv in resp.kvs() {
            // Unchanged since the last list: keep the object (and its row)
            // without decoding the value again.
            let key = String::from_utf8_lossy(kv.key());
            if let Some(name) = key.strip_prefix(self.reflector.prefix.as_str())
                && let Some((rev, old)) = current.get(name)
                && *rev == kv.mod_revision()
            {
                listed.insert(name.to_string(), (*rev, old.clone()));
                continue;
            }
            let Some((name, obj)) = self.decode(kv.key(), kv.value()) else {
                continue;
            };
            listed.insert(name, (kv.mod_revision(), Arc::new(obj)));
        }
        let table = self.reflector.table.clone();
        let mut w = self.db.write_txn(&[&table]).map_err(|e| e.to_string())?;
        for (name, (_, old)) in current.iter() {
            if !listed.contains_key(name) {
                table.delete(&mut w, old).map_err(|e| e.to_string())?;
            }
        }
        for (name, (rev, obj)) in &listed {
            let unchanged = current.get(name).is_some_and(|(r, _)| r == rev);
            if !unchanged {
                table
                    .insert(&mut w, obj.clone())
                    .map_err(|e| e.to_string())?;
            }
        }
        if let Some(init) = self.init.take() {
            init.done(&mut w).map_err(|e| e.to_string())?;
        }
        w.commit();
        *current = listed;
        self.update(|s| {
            s.lists += 1;
            s.revision = revision;
            s.connected = true;
        });
        tracing::debug!(prefix = %self.reflector.prefix, revision, objects = current.len(), "etcd reflector listed");
        Ok(revision)
    }

    /// Watches from `from` and applies each response in one transaction.
    async fn watch(&mut self, from: i64, current: &mut Reflected<T>) -> WatchEnd {
        let mut client = self.reflector.client.clone();
        let options = WatchOptions::new().with_prefix().with_start_revision(from);
        let mut stream = match client
            .watch(self.reflector.prefix.as_str(), Some(options))
            .await
        {
            Ok(s) => s,
            Err(e) => return WatchEnd::Failed(e.to_string()),
        };
        loop {
            let resp = match stream.message().await {
                Ok(Some(resp)) => resp,
                Ok(None) => return WatchEnd::Failed("the watch stream ended".into()),
                Err(e) => return WatchEnd::Failed(e.to_string()),
            };
            if resp.compact_revision() > 0 {
                return WatchEnd::Compacted;
            }
            if resp.canceled() {
                return WatchEnd::Failed(format!("watch canceled: {}", resp.cancel_reason()));
            }
            if resp.events().is_empty() {
                continue;
            }
            let table = self.reflector.table.clone();
            let mut w = match self.db.write_txn(&[&table]) {
                Ok(w) => w,
                Err(e) => return WatchEnd::Failed(e.to_string()),
            };
            let mut revision = 0;
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                revision = revision.max(kv.mod_revision());
                if let Err(e) = self.apply(&mut w, &table, event.event_type(), kv, current) {
                    return WatchEnd::Failed(e);
                }
            }
            w.commit();
            let revision = resp.header().map_or(revision, |h| h.revision());
            self.update(|s| s.revision = revision);
        }
    }

    fn apply(
        &self,
        w: &mut WriteTxn,
        table: &Table<T>,
        kind: EventType,
        kv: &etcd_client::KeyValue,
        current: &mut Reflected<T>,
    ) -> Result<(), String> {
        let key = String::from_utf8_lossy(kv.key());
        let Some(name) = key.strip_prefix(self.reflector.prefix.as_str()) else {
            return Ok(());
        };
        let decoded = match kind {
            EventType::Put => self.decode(kv.key(), kv.value()),
            EventType::Delete => None,
        };
        match decoded {
            Some((name, obj)) => {
                let obj = Arc::new(obj);
                table.insert(w, obj.clone()).map_err(|e| e.to_string())?;
                current.insert(name, (kv.mod_revision(), obj));
            }
            // Deleted, or put with a value we cannot decode: absent.
            None => {
                if let Some((_, old)) = current.remove(name) {
                    table.delete(w, &old).map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }
}

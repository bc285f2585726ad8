//! A remote table's changes as a stream that reconnects from the last
//! revision it saw.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ClientError;
use crate::table::{RemoteObject, RemoteTable};

/// One item of a [`ChangeStream`].
#[derive(Clone, Debug, PartialEq)]
pub enum Event<T> {
    /// The object was inserted or changed.
    Upsert(RemoteObject<T>),
    /// The object was deleted (as it was when deleted).
    Delete(RemoteObject<T>),
    /// The stream could not resume where it left off: the whole table
    /// follows as upserts. A consumer that mirrors the table must forget
    /// what it holds.
    Resync(ResyncReason),
}

/// Why a [`ChangeStream`] resyncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResyncReason {
    /// Objects were deleted while the stream was away (or too far behind
    /// for the server to keep their deletes).
    MissedDeletes,
    /// The server's table is another incarnation: it restarted.
    Restarted,
    /// A server that does not say why.
    Unknown,
}

/// How a [`ChangeStream`] keeps its connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconnect {
    heartbeat: Duration,
    idle: Duration,
    backoff: Duration,
    max_backoff: Duration,
    max_lag: Option<usize>,
}

impl Default for Reconnect {
    /// Heartbeats every 5 s, reconnect after 15 s of silence, retry after
    /// 100 ms doubling up to 5 s.
    fn default() -> Self {
        Reconnect {
            heartbeat: Duration::from_secs(5),
            idle: Duration::from_secs(15),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_lag: None,
        }
    }
}

impl Reconnect {
    /// How often the server is asked to send a heartbeat.
    #[must_use]
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// After how long without a byte the connection counts as dead; keep
    /// it a few heartbeats long.
    #[must_use]
    pub fn idle(mut self, after: Duration) -> Self {
        self.idle = after;
        self
    }

    /// The wait before the first retry and its cap; it doubles on each
    /// failure in a row.
    #[must_use]
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = first;
        self.max_backoff = max.max(first);
        self
    }

    /// Asks the server to hold back at most this many deleted objects for
    /// the stream while it is not read (the server never holds more than
    /// its own bound). Past it the server lets go, and the stream resumes
    /// with an [`Event::Resync`] and a replay of the table.
    #[must_use]
    pub fn max_lag(mut self, deleted_objects: usize) -> Self {
        self.max_lag = Some(deleted_objects);
        self
    }

    fn wait(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// A remote table's changes: [`Event`]s in revision order, from the
/// revision given to [`RemoteTable::changes`]. When the connection drops
/// or goes silent, the stream reconnects with backoff and resumes after
/// the last revision it saw; if the server cannot resume there, it yields
/// [`Event::Resync`] and replays the table. The same happens when the
/// consumer reads so slowly that the server stops holding deletes for it
/// (the stream was lapped: the server keeps at most its bound of deleted
/// objects for a consumer that does not read).
///
/// Failed attempts are yielded as errors and the stream goes on; it ends
/// after a permanent error ([`ClientError::is_permanent`]: an unknown
/// table, objects that do not decode as `T`). It never ends otherwise;
/// drop it to stop.
pub struct ChangeStream<T> {
    inner: BoxStream<'static, Result<Event<T>, ClientError>>,
    seen: Arc<AtomicU64>,
}

impl<T> std::fmt::Debug for ChangeStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeStream")
            .field("revision", &self.revision())
            .finish_non_exhaustive()
    }
}

impl<T> ChangeStream<T> {
    /// The revision the stream would resume after: that of the last
    /// change it yielded (or where it started).
    pub fn revision(&self) -> u64 {
        self.seen.load(Ordering::Acquire)
    }
}

impl<T> Stream for ChangeStream<T> {
    type Item = Result<Event<T>, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl<T: DeserializeOwned + Send + 'static> RemoteTable<T> {
    /// The table's changes after revision `from` (`None`: from now on,
    /// `Some(0)`: every object first), with the default [`Reconnect`].
    pub fn changes(&self, from: Option<u64>) -> ChangeStream<T> {
        self.changes_with(from, Reconnect::default())
    }

    /// [`RemoteTable::changes`] with its own reconnection settings.
    pub fn changes_with(&self, from: Option<u64>, reconnect: Reconnect) -> ChangeStream<T> {
        let seen = Arc::new(AtomicU64::new(from.unwrap_or(0)));
        let state = Follow {
            table: self.clone(),
            reconnect,
            from,
            body: None,
            buf: Vec::new(),
            ready: VecDeque::new(),
            failures: 0,
            done: false,
            seen: seen.clone(),
        };
        let inner = futures::stream::unfold(state, Follow::step).boxed();
        ChangeStream { inner, seen }
    }
}

/// A change line of the stream.
#[derive(Deserialize)]
struct ChangeLine<T> {
    revision: u64,
    #[serde(default)]
    key: String,
    deleted: bool,
    object: T,
    #[serde(default)]
    cells: Option<Vec<String>>,
}

/// The state of a following stream.
struct Follow<T> {
    table: RemoteTable<T>,
    reconnect: Reconnect,
    /// Where to resume: after this revision (`None`: from now).
    from: Option<u64>,
    body: Option<BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
    buf: Vec<u8>,
    ready: VecDeque<Result<Event<T>, ClientError>>,
    failures: u32,
    done: bool,
    seen: Arc<AtomicU64>,
}

impl<T: DeserializeOwned + Send + 'static> Follow<T> {
    async fn step(mut self) -> Option<(Result<Event<T>, ClientError>, Self)> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some((item, self));
            }
            if self.done {
                return None;
            }
            if self.body.is_none() {
                self.connect().await;
                continue;
            }
            self.read().await;
        }
    }

    fn url(&self) -> reqwest::Url {
        self.table
            .client
            .url(&["tables", &self.table.name, "changes"])
    }

    async fn connect(&mut self) {
        if self.failures > 0 {
            tokio::time::sleep(self.reconnect.wait(self.failures)).await;
        }
        let mut query = vec![(
            "heartbeat_ms",
            self.reconnect.heartbeat.as_millis().to_string(),
        )];
        if let Some(from) = self.from {
            query.push(("from", from.to_string()));
        }
        if let Some(max_lag) = self.reconnect.max_lag {
            query.push(("max_lag", max_lag.to_string()));
        }
        match self.table.client.send(self.url(), &query).await {
            Ok(resp) => {
                self.buf.clear();
                self.body = Some(resp.bytes_stream().boxed());
            }
            Err(e) => {
                self.failures += 1;
                self.done = e.is_permanent();
                self.ready.push_back(Err(e));
            }
        }
    }

    async fn read(&mut self) {
        let Some(body) = self.body.as_mut() else {
            return;
        };
        match tokio::time::timeout(self.reconnect.idle, body.next()).await {
            Ok(Some(Ok(chunk))) => {
                self.buf.extend_from_slice(&chunk);
                while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.buf.drain(..=end).collect();
                    self.line(&line);
                }
            }
            Ok(Some(Err(source))) => {
                self.drop_connection();
                self.ready.push_back(Err(ClientError::Transport {
                    url: self.url().to_string(),
                    source,
                }));
            }
            // The server ended the stream (it restarted or shut down).
            Ok(None) => self.drop_connection(),
            Err(_) => {
                self.drop_connection();
                self.ready.push_back(Err(ClientError::Idle {
                    url: self.url().to_string(),
                    idle_ms: self.reconnect.idle.as_millis(),
                }));
            }
        }
    }

    fn drop_connection(&mut self) {
        self.body = None;
        self.failures += 1;
    }

    fn line(&mut self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let value: serde_json::Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => return self.undecodable(&e.to_string(), line),
        };
        if let Some(after) = value.get("after").and_then(serde_json::Value::as_u64) {
            self.failures = 0;
            self.advance(after);
            if value["resync"].as_bool() == Some(true) {
                let reason = match value["reason"].as_str() {
                    Some("missed_deletes") => ResyncReason::MissedDeletes,
                    Some("restarted") => ResyncReason::Restarted,
                    _ => ResyncReason::Unknown,
                };
                self.ready.push_back(Ok(Event::Resync(reason)));
            }
        } else if value.get("heartbeat").is_some() {
        } else if value["lapped"].as_bool() == Some(true) {
            // We fell too far behind and the server let go of the deletes
            // we had not read: resume from our revision at once; the
            // server then replays the table (`Event::Resync`).
            self.body = None;
            self.buf.clear();
        } else if let Some(error) = value.get("error") {
            let message = error
                .as_str()
                .map_or_else(|| error.to_string(), str::to_string);
            self.ready.push_back(Err(ClientError::Status {
                url: self.url().to_string(),
                status: 500,
                message,
            }));
        } else {
            match serde_json::from_value::<ChangeLine<T>>(value) {
                Ok(c) => {
                    self.advance(c.revision);
                    let o = RemoteObject {
                        revision: c.revision,
                        key: c.key,
                        object: c.object,
                        cells: c.cells,
                    };
                    self.ready.push_back(Ok(if c.deleted {
                        Event::Delete(o)
                    } else {
                        Event::Upsert(o)
                    }));
                }
                Err(e) => self.undecodable(&e.to_string(), line),
            }
        }
    }

    /// A line that is not what this API sends, or an object that is not
    /// a `T`: the stream ends with the error (skipping it would leave a
    /// mirror silently wrong).
    fn undecodable(&mut self, reason: &str, line: &[u8]) {
        self.done = true;
        self.body = None;
        self.ready.push_back(Err(ClientError::Decode {
            url: self.url().to_string(),
            reason: format!("{reason}: {}", String::from_utf8_lossy(line).trim_end()),
        }));
    }

    /// Resumes after `revision` from now on.
    fn advance(&mut self, revision: u64) {
        self.from = Some(revision);
        self.seen.store(revision, Ordering::Release);
    }
}

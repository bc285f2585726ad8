//! The client, the tables it lists, and one-shot queries.

use std::marker::PhantomData;

use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// A client of one database's inspection API, at a base URL such as
/// `http://127.0.0.1:8080/statedb` (where the router is mounted). Cheap
/// to clone.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
}

/// One index of a [`TableSummary`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSummary {
    /// Index name (what `index=` takes).
    pub name: String,
    /// At most one object per key.
    pub unique: bool,
    /// The primary index.
    pub primary: bool,
    /// A longest-prefix-match index: `get` and `list` find the longest
    /// stored prefix of the key (absent from servers before it existed).
    #[serde(default)]
    pub lpm: bool,
}

/// The holder of a table's lock, as [`TableSummary::locked_by`] shows it:
/// the named handle of the write transaction and how long it has held it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolderSummary {
    /// The handle's name (`db.handle("name")` on the server).
    pub handle: String,
    /// How long it had held the lock, in milliseconds.
    pub held_for_ms: u64,
}

/// A table as `GET /tables` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSummary {
    /// Table name.
    pub name: String,
    /// Its indexes, the primary first.
    pub indexes: Vec<IndexSummary>,
    /// Number of objects.
    pub objects: usize,
    /// Revision of its last change.
    pub revision: u64,
    /// Whether all its initializers are done.
    pub initialized: bool,
    /// Deleted objects kept for change iterators.
    pub graveyard: usize,
    /// Live change iterators.
    #[serde(default)]
    pub change_iterators: usize,
    /// Who holds the table's lock, if anyone (when listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_by: Option<LockHolderSummary>,
    /// The table's own columns, if it has them (else the JSON fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
}

/// An object of a remote table with its revision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoteObject<T> {
    /// The object's revision.
    pub revision: u64,
    /// Its primary key, hex-encoded: an identity to track it by across
    /// changes (a mirror keys its map by it).
    #[serde(default)]
    pub key: String,
    /// The object.
    pub object: T,
    /// Its cells under the table's own columns, if it has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cells: Option<Vec<String>>,
}

/// Objects as rows of named columns (`format=rows`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Rows {
    /// Column names.
    pub header: Vec<String>,
    /// One row of cells per object.
    pub rows: Vec<Vec<String>>,
    /// Each row's revision.
    pub revisions: Vec<u64>,
}

/// How a query searches its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// The first object with the key.
    Get,
    /// Every object with the key.
    List,
    /// Objects whose key starts with the key.
    Prefix,
    /// Objects at or above the key, in key order.
    LowerBound,
}

impl Op {
    /// The name the API takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::List => "list",
            Op::Prefix => "prefix",
            Op::LowerBound => "lower_bound",
        }
    }
}

impl std::str::FromStr for Op {
    type Err = String;
    /// `get`, `list`, `prefix` or `lower_bound` (`lower-bound` too).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "get" => Ok(Op::Get),
            "list" => Ok(Op::List),
            "prefix" => Ok(Op::Prefix),
            "lower_bound" | "lower-bound" => Ok(Op::LowerBound),
            other => Err(format!(
                "unknown operation {other:?} (get, list, prefix or lower_bound)"
            )),
        }
    }
}

/// A query: `None` fields are left to the server (all objects, primary
/// index, no limit).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct QueryParams {
    pub index: Option<String>,
    pub op: Option<Op>,
    pub key: Option<String>,
    pub limit: Option<usize>,
}

impl QueryParams {
    fn new(index: Option<&str>, query: Option<(Op, &str)>, limit: Option<usize>) -> Self {
        QueryParams {
            index: index.map(str::to_string),
            op: query.map(|(op, _)| op),
            key: query.map(|(_, k)| k.to_string()),
            limit,
        }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if let Some(i) = &self.index {
            p.push(("index", i.clone()));
        }
        if let Some(op) = self.op {
            p.push(("op", op.as_str().to_string()));
        }
        if let Some(k) = &self.key {
            p.push(("key", k.clone()));
        }
        if let Some(l) = self.limit {
            p.push(("limit", l.to_string()));
        }
        p
    }
}

impl Client {
    /// A client of the API at `base` (`http://host:port/prefix`).
    ///
    /// # Errors
    ///
    /// [`ClientError::Url`] if `base` is not an `http` URL.
    pub fn new(base: &str) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::Url {
            url: base.to_string(),
            reason: reason.to_string(),
        };
        let mut url = Url::parse(base).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "http" {
            return Err(bad("only http:// is supported"));
        }
        if url.cannot_be_a_base() {
            return Err(bad("cannot be a base URL"));
        }
        // A trailing slash makes `join` append instead of replace.
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(Client {
            http: reqwest::Client::new(),
            base: url,
        })
    }

    /// The base URL, with a trailing slash.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The URL of `path` segments under the base.
    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut s) = url.path_segments_mut() {
            s.pop_if_empty();
            s.extend(segments);
        }
        url
    }

    /// Every table with its indexes, size and revision.
    ///
    /// # Errors
    ///
    /// As [`RemoteTable::query`].
    pub async fn tables(&self) -> Result<Vec<TableSummary>, ClientError> {
        self.get_json(self.url(&["tables"]), &[]).await
    }

    /// The table called `name`, its objects decoded as `T`
    /// (`serde_json::Value` for any).
    pub fn table<T: DeserializeOwned>(&self, name: &str) -> RemoteTable<T> {
        RemoteTable {
            client: self.clone(),
            name: name.to_string(),
            _t: PhantomData,
        }
    }

    /// GETs `url` with `query` and decodes the JSON answer.
    pub(crate) async fn get_json<R: DeserializeOwned>(
        &self,
        url: Url,
        query: &[(&'static str, String)],
    ) -> Result<R, ClientError> {
        let resp = self.send(url.clone(), query).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.to_string(),
                source,
            })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            url: url.to_string(),
            reason: e.to_string(),
        })
    }

    /// GETs `url`; a non-success answer becomes [`ClientError::Status`]
    /// with the server's message.
    pub(crate) async fn send(
        &self,
        url: Url,
        query: &[(&'static str, String)],
    ) -> Result<reqwest::Response, ClientError> {
        let resp = self
            .http
            .get(url.clone())
            .query(query)
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.to_string(),
                source,
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(body);
        Err(ClientError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            message,
        })
    }
}

/// A remote table, its objects decoded as `T`: one-shot queries here,
/// changes with [`RemoteTable::changes`].
#[derive(Debug)]
pub struct RemoteTable<T> {
    pub(crate) client: Client,
    pub(crate) name: String,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for RemoteTable<T> {
    fn clone(&self) -> Self {
        RemoteTable {
            client: self.client.clone(),
            name: self.name.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> RemoteTable<T> {
    /// The table name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn fetch(&self, q: &QueryParams) -> Result<Vec<RemoteObject<T>>, ClientError> {
        let url = self.client.url(&["tables", &self.name]);
        self.client.get_json(url, &q.pairs()).await
    }

    /// Every object, in primary key order.
    ///
    /// # Errors
    ///
    /// As [`RemoteTable::query`].
    pub async fn all(&self) -> Result<Vec<RemoteObject<T>>, ClientError> {
        self.fetch(&QueryParams::default()).await
    }

    /// The objects a query finds (all when `query` is `None`), at most
    /// `limit`, cut by the server.
    ///
    /// # Errors
    ///
    /// As [`RemoteTable::query`].
    pub async fn find(
        &self,
        index: Option<&str>,
        query: Option<(Op, &str)>,
        limit: Option<usize>,
    ) -> Result<Vec<RemoteObject<T>>, ClientError> {
        self.fetch(&QueryParams::new(index, query, limit)).await
    }

    /// The objects a query finds: on `index` (`None`: the primary), with
    /// the key given as text, as the server parses it for that index.
    ///
    /// # Errors
    ///
    /// [`ClientError::Status`] 404 for an unknown table or index, 400 for
    /// a key that does not parse (the message says what it should be);
    /// [`ClientError::Transport`] when the server is unreachable;
    /// [`ClientError::Decode`] when objects are not `T`.
    pub async fn query(
        &self,
        index: Option<&str>,
        op: Op,
        key: &str,
    ) -> Result<Vec<RemoteObject<T>>, ClientError> {
        self.find(index, Some((op, key)), None).await
    }

    /// The first object with `key` on `index` (`None`: the primary).
    ///
    /// # Errors
    ///
    /// As [`RemoteTable::query`].
    pub async fn get(
        &self,
        index: Option<&str>,
        key: &str,
    ) -> Result<Option<RemoteObject<T>>, ClientError> {
        Ok(self.query(index, Op::Get, key).await?.into_iter().next())
    }

    /// Every object with `key` on `index`.
    ///
    /// # Errors
    ///
    /// As [`RemoteTable::query`].
    pub async fn list(
        &self,
        index: Option<&str>,
        key: &str,
    ) -> Result<Vec<RemoteObject<T>>, ClientError> {
        self.query(index, Op::List, key).await
    }

    /// Objects whose key on `index` starts with `key`.
    ///
    /// # Errors
    ///
    /// As [`RemoteTable::query`].
    pub async fn prefix(
        &self,
        index: Option<&str>,
        key: &str,
    ) -> Result<Vec<RemoteObject<T>>, ClientError> {
        self.query(index, Op::Prefix, key).await
    }

    /// Objects whose key on `index` is at or above `key`, in key order.
    ///
    /// # Errors
    ///
    /// As [`RemoteTable::query`].
    pub async fn lower_bound(
        &self,
        index: Option<&str>,
        key: &str,
    ) -> Result<Vec<RemoteObject<T>>, ClientError> {
        self.query(index, Op::LowerBound, key).await
    }

    /// The objects a query finds (all when `op` is `None`), as rows of the
    /// table's columns, at most `limit`.
    ///
    /// # Errors
    ///
    /// As [`RemoteTable::query`].
    pub async fn rows(
        &self,
        index: Option<&str>,
        op: Option<(Op, &str)>,
        limit: Option<usize>,
    ) -> Result<Rows, ClientError> {
        let mut pairs = QueryParams::new(index, op, limit).pairs();
        pairs.push(("format", "rows".to_string()));
        let url = self.client.url(&["tables", &self.name]);
        self.client.get_json(url, &pairs).await
    }
}

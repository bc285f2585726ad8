//! Indexes: how objects map to byte keys, and queries against them.

use std::marker::PhantomData;
use std::sync::Arc;

use part::{Key, KeyEncoding, ParseKeyError, Read, Tree, Watch};
use smallvec::SmallVec;

/// The keys an object yields for one index (zero, one or many).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeySet {
    keys: SmallVec<[Key; 1]>,
}

impl KeySet {
    /// An empty key set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds the encoding of `key`.
    pub fn push<K: KeyEncoding + ?Sized>(&mut self, key: &K) {
        self.keys.push(key.to_key());
    }
    /// Adds raw key bytes.
    pub fn push_bytes(&mut self, key: &[u8]) {
        self.keys.push(Key::from_slice(key));
    }
    pub(crate) fn push_key(&mut self, key: Key) {
        self.keys.push(key);
    }
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    /// True if there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    /// The keys.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.iter().map(|k| &k[..])
    }
    pub(crate) fn into_first(self) -> Option<Key> {
        self.keys.into_iter().next()
    }
}

pub(crate) type KeysFn<Obj> = dyn Fn(&Obj, &mut KeySet) + Send + Sync;

pub(crate) struct IndexInner<Obj> {
    name: &'static str,
    unique: bool,
    /// A longest-prefix-match index ([`crate::LpmIndex`]): exact queries
    /// resolve to the longest stored prefix of their key.
    lpm: bool,
    keys: Box<KeysFn<Obj>>,
    /// How a key written as text parses (the key type's
    /// [`KeyEncoding::parse_key`]), for queries typed by a person.
    parse: ParseFn,
    /// How a prefix written as text parses ([`KeyEncoding::parse_prefix`]).
    parse_prefix: ParsePrefixFn,
    /// How an encoded key prints ([`KeyEncoding::format_key`]).
    format: FormatFn,
}

pub(crate) type FormatFn = fn(&[u8]) -> Option<String>;

pub(crate) type ParseFn = fn(&str, &mut Key) -> Result<(), ParseKeyError>;
pub(crate) type ParsePrefixFn =
    fn(&str, &mut Key) -> Result<Option<part::KeyFilter>, ParseKeyError>;

impl<Obj> IndexInner<Obj> {
    /// An LPM index's declaration (see [`crate::lpm`]).
    pub(crate) fn new_lpm(
        name: &'static str,
        unique: bool,
        keys: Box<KeysFn<Obj>>,
        parse: ParseFn,
        parse_prefix: ParsePrefixFn,
        format: FormatFn,
    ) -> Self {
        IndexInner {
            name,
            unique,
            lpm: true,
            keys,
            parse,
            parse_prefix,
            format,
        }
    }

    #[inline]
    pub fn is_lpm(&self) -> bool {
        self.lpm
    }

    #[inline]
    pub fn name(&self) -> &'static str {
        self.name
    }

    #[inline]
    pub fn is_unique(&self) -> bool {
        self.unique
    }

    /// A key written as text, encoded.
    pub fn parse_key(&self, text: &str) -> Result<Key, ParseKeyError> {
        let mut key = Key::new();
        (self.parse)(text, &mut key).map(|()| key)
    }

    /// A prefix written as text: the byte prefix to search, and the
    /// filter the keys found must pass, if the key type has one.
    #[cfg_attr(not(feature = "json"), allow(dead_code))]
    pub fn parse_prefix(
        &self,
        text: &str,
    ) -> Result<(Key, Option<part::KeyFilter>), ParseKeyError> {
        let mut key = Key::new();
        let filter = (self.parse_prefix)(text, &mut key)?;
        Ok((key, filter))
    }

    /// An encoded key as text, as the key type prints it, else as
    /// [`part::format_key_bytes`] does.
    pub fn format_key(&self, key: &[u8]) -> String {
        (self.format)(key).unwrap_or_else(|| part::format_key_bytes(key))
    }

    pub fn keys_of(&self, obj: &Obj) -> KeySet {
        let mut ks = KeySet::new();
        (self.keys)(obj, &mut ks);
        ks
    }
}

/// An index of objects `Obj` queried by keys of type `K`.
///
/// The index maps an object to zero or more keys ([`KeySet`]) and a query
/// key `K` to bytes through [`KeyEncoding`]. A unique index has at most one
/// object per key; a non-unique one stores the key joined with the primary
/// key, encoded so that exact lookups and prefix searches stay exact even
/// when keys contain 0x00 or are prefixes of one another.
///
/// ```
/// use statedb::Index;
/// struct Host { name: String, tags: Vec<String> }
/// let by_name: Index<Host, str> = Index::unique("name", |h: &Host, keys| keys.push(h.name.as_str()));
/// let by_tag: Index<Host, str> = Index::non_unique("tags", |h: &Host, keys| {
///     for t in &h.tags { keys.push(t.as_str()) }
/// });
/// let q = by_tag.query("web");
/// assert_eq!(q.index_name(), "tags");
/// # let _ = by_name;
/// ```
pub struct Index<Obj, K: ?Sized> {
    inner: Arc<IndexInner<Obj>>,
    _key: PhantomData<fn(&K)>,
}

impl<Obj, K: ?Sized> Index<Obj, K> {
    /// The shared declaration tables hold.
    pub(crate) fn inner(&self) -> &Arc<IndexInner<Obj>> {
        &self.inner
    }
}

impl<Obj, K: ?Sized> Clone for Index<Obj, K> {
    fn clone(&self) -> Self {
        Index {
            inner: self.inner.clone(),
            _key: PhantomData,
        }
    }
}

impl<Obj, K: ?Sized> std::fmt::Debug for Index<Obj, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("name", &self.inner.name)
            .field("unique", &self.inner.unique)
            .finish()
    }
}

impl<Obj, K: KeyEncoding + ?Sized> Index<Obj, K> {
    /// An index named `name`; `keys` adds the object's keys to the set.
    pub fn new(
        name: &'static str,
        unique: bool,
        keys: impl Fn(&Obj, &mut KeySet) + Send + Sync + 'static,
    ) -> Self {
        Index {
            inner: Arc::new(IndexInner {
                name,
                unique,
                lpm: false,
                keys: Box::new(keys),
                parse: K::parse_key,
                parse_prefix: K::parse_prefix,
                format: K::format_key,
            }),
            _key: PhantomData,
        }
    }

    /// A unique index (at most one object per key): what a primary index
    /// must be.
    pub fn unique(
        name: &'static str,
        keys: impl Fn(&Obj, &mut KeySet) + Send + Sync + 'static,
    ) -> Self {
        Self::new(name, true, keys)
    }

    /// A non-unique index (many objects may share a key).
    pub fn non_unique(
        name: &'static str,
        keys: impl Fn(&Obj, &mut KeySet) + Send + Sync + 'static,
    ) -> Self {
        Self::new(name, false, keys)
    }

    /// The index name.
    pub fn name(&self) -> &'static str {
        self.inner.name
    }

    /// True if the index is unique.
    pub fn is_unique(&self) -> bool {
        self.inner.unique
    }

    /// The keys `obj` yields for this index.
    pub fn object_keys(&self, obj: &Obj) -> KeySet {
        self.inner.keys_of(obj)
    }

    /// A query for the key written as `text` (`"42"`, `"10.0.0.0/8"`,
    /// `"web,3"` for a pair; see [`KeyEncoding::parse_key`]): for keys
    /// typed by a person, in inspection tools.
    ///
    /// ```
    /// use statedb::Index;
    /// let by_port: Index<(String, u16), u16> = Index::unique("port", |o: &(String, u16), k| k.push(&o.1));
    /// assert_eq!(by_port.query_text("8080")?.key(), by_port.query(&8080).key());
    /// assert!(by_port.query_text("http").is_err());
    /// # Ok::<(), statedb::ParseKeyError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ParseKeyError`] when the text is not a key of the index's type.
    pub fn query_text(&self, text: &str) -> Result<Query<Obj>, ParseKeyError> {
        Ok(Query {
            index: self.inner.name,
            key: self.inner.parse_key(text)?,
            _obj: PhantomData,
        })
    }

    /// A query for objects with `key`.
    pub fn query(&self, key: &K) -> Query<Obj> {
        Query {
            index: self.inner.name,
            key: key.to_key(),
            _obj: PhantomData,
        }
    }

    /// A query for the first key `obj` yields for this index (the object's
    /// own primary key, for a primary index). `None` if it yields none.
    pub fn query_from_object(&self, obj: &Obj) -> Option<Query<Obj>> {
        self.inner.keys_of(obj).into_first().map(|key| Query {
            index: self.inner.name,
            key,
            _obj: PhantomData,
        })
    }
}

/// A query against one index of a table: the index name and encoded key.
pub struct Query<Obj> {
    index: &'static str,
    key: Key,
    _obj: PhantomData<fn(&Obj)>,
}

impl<Obj> Clone for Query<Obj> {
    fn clone(&self) -> Self {
        Query {
            index: self.index,
            key: self.key.clone(),
            _obj: PhantomData,
        }
    }
}

impl<Obj> std::fmt::Debug for Query<Obj> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("index", &self.index)
            .field("key", &&self.key[..])
            .finish()
    }
}

impl<Obj> Query<Obj> {
    pub(crate) fn new(index: &'static str, key: Key) -> Self {
        Query {
            index,
            key,
            _obj: PhantomData,
        }
    }

    /// The encoded key, owned.
    pub(crate) fn into_key(self) -> Key {
        self.key
    }

    /// The index this query searches.
    pub fn index_name(&self) -> &'static str {
        self.index
    }
    /// The encoded key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

/// Encoding of non-unique index keys: the secondary key with 0x00 escaped
/// as 0x00 0x01, then the terminator 0x00 0x00, then the primary key. The
/// escape keeps byte order and makes the secondary part prefix-free, so an
/// exact lookup is a prefix search on `escape(key) 00 00` and a prefix
/// search on `escape(prefix)`.
pub(crate) fn escape_into(key: &[u8], out: &mut Key) {
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(1);
        }
    }
}

pub(crate) fn non_unique_key(secondary: &[u8], primary: &[u8]) -> Key {
    let mut out = Key::new();
    escape_into(secondary, &mut out);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(primary);
    out
}

pub(crate) fn non_unique_exact(secondary: &[u8]) -> Key {
    let mut out = Key::new();
    escape_into(secondary, &mut out);
    out.extend_from_slice(&[0, 0]);
    out
}

pub(crate) fn non_unique_prefix(secondary: &[u8]) -> Key {
    let mut out = Key::new();
    escape_into(secondary, &mut out);
    out
}

/// Which tree of a table an index query searches: the primary tree, or a
/// secondary one by position, with whether that index is unique and
/// whether it is a longest-prefix-match index.
#[derive(Clone, Copy, Debug)]
pub(crate) enum IndexPos {
    Primary,
    Secondary(usize, bool, bool),
}

impl IndexPos {
    #[inline]
    pub(crate) fn unique(self) -> bool {
        match self {
            IndexPos::Primary => true,
            IndexPos::Secondary(_, u, _) => u,
        }
    }

    #[inline]
    pub(crate) fn lpm(self) -> bool {
        match self {
            IndexPos::Primary => false,
            IndexPos::Secondary(_, _, l) => l,
        }
    }
}

// The mapping from a query to a tree search, in one place. A unique
// index stores each key once, as is; a non-unique one stores
// `non_unique_key(key, primary key)`, so its exact matches lie under
// `non_unique_exact(key)` and its prefix matches under
// `non_unique_prefix(key)`.

/// The first object matching `key` exactly.
#[inline]
pub(crate) fn first_exact<'a, V, R: Read<V>>(
    tree: &'a R,
    unique: bool,
    key: &[u8],
) -> Option<&'a V> {
    if unique {
        tree.get(key)
    } else {
        tree.prefix_first(&non_unique_exact(key)).map(|(_, v)| v)
    }
}

/// The key under which every entry matching `key` exactly lies.
pub(crate) fn exact_search_key(unique: bool, key: &[u8]) -> Key {
    if unique {
        Key::from_slice(key)
    } else {
        non_unique_exact(key)
    }
}

/// The key to search with for prefix and lower-bound queries.
pub(crate) fn range_search_key(unique: bool, key: Key) -> Key {
    if unique { key } else { non_unique_prefix(&key) }
}

/// The watch of an exact query: the key's own watch (unique index) or
/// that of the node under which all its entries lie (non-unique).
pub(crate) fn exact_watch<V>(tree: &Tree<V>, unique: bool, key: &[u8]) -> Watch {
    if unique {
        tree.get_watch(key).1
    } else {
        tree.prefix(&non_unique_exact(key)).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn non_unique_encoding_keeps_order_and_exactness(a: Vec<u8>, b: Vec<u8>, pa: Vec<u8>, pb: Vec<u8>) {
            let ka = non_unique_key(&a, &pa);
            let kb = non_unique_key(&b, &pb);
            if a != b {
                prop_assert_eq!(a.cmp(&b), ka.cmp(&kb));
            }
            prop_assert_eq!(kb.starts_with(&non_unique_exact(&a)), a == b);
            prop_assert_eq!(kb.starts_with(&non_unique_prefix(&a)), b.starts_with(&a));
        }
    }
}

//! Longest-prefix-match indexes: keys that are bit strings (IP prefixes,
//! port ranges, any `(bytes, length)`), found by the longest stored prefix
//! of a query through the ordinary `get` / `list` / `get_watch`.
//!
//! A key is stored as a path of one byte per bit (0 → 0x02, 1 → 0x03)
//! closed by [`part::LPM_END`] (0x01): the keys whose bit string is a
//! prefix of a query's are exactly those starting with some prefix of the
//! query's path followed by the end byte, which the tree finds in one
//! descent ([`part::Tree::longest_prefix_watch`]). The end byte sorts
//! below both bits, so a prefix sorts before the prefixes it contains, and
//! no byte is 0x00, so the non-unique encoding leaves paths as they are.

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use part::{Key, LPM_END, ParseKeyError};
use smallvec::SmallVec;

use crate::index::{IndexInner, KeySet, Query};

const BIT0: u8 = 2;
const BIT1: u8 = 3;

/// A string of bits, most significant first: the key of an [`LpmIndex`].
///
/// Written as text as the bytes in hex, `/`, and the length in bits:
/// `ff00/12` is the 12 bits `1111 1111 0000` (bits past the length are
/// zero; they print as the bytes that hold the length, `ff0/12` also
/// parses), `/0` the empty string.
///
/// ```
/// use statedb::BitPrefix;
/// let ports = BitPrefix::new(&0x1200u16.to_be_bytes(), 8)?;
/// assert_eq!(ports.len(), 8);
/// assert_eq!(ports.to_string(), "12/8");
/// assert!(ports.contains(&BitPrefix::new(&0x1234u16.to_be_bytes(), 16)?));
/// assert_eq!("12/8".parse::<BitPrefix>()?, ports);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct BitPrefix {
    /// `len.div_ceil(8)` bytes; the bits past `len` are zero.
    bytes: SmallVec<[u8; 17]>,
    len: usize,
}

/// A [`BitPrefix`] that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BitPrefixError {
    /// More bits asked for than the bytes hold.
    #[error("a prefix of {len} bits does not fit in {bytes} bytes")]
    TooLong {
        /// The length asked for, in bits.
        len: usize,
        /// The bytes given.
        bytes: usize,
    },
    /// Text that is not `hex/length`.
    #[error("{0:?} is not a bit prefix (hex bytes, '/', length in bits: \"ff00/12\")")]
    BadText(String),
}

impl BitPrefix {
    /// The first `len` bits of `bytes`.
    ///
    /// # Errors
    ///
    /// [`BitPrefixError::TooLong`] when `len` exceeds `bytes.len() * 8`.
    pub fn new(bytes: &[u8], len: usize) -> Result<Self, BitPrefixError> {
        if len > bytes.len().saturating_mul(8) {
            return Err(BitPrefixError::TooLong {
                len,
                bytes: bytes.len(),
            });
        }
        let mut out: SmallVec<[u8; 17]> = SmallVec::from_slice(&bytes[..len.div_ceil(8)]);
        if !len.is_multiple_of(8)
            && let Some(last) = out.last_mut()
        {
            *last &= 0xffu8 << (8 - len % 8);
        }
        Ok(BitPrefix { bytes: out, len })
    }

    /// The empty bit string (the prefix of every other).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Bits from an iterator, first the most significant.
    pub fn from_bits(bits: impl IntoIterator<Item = bool>) -> Self {
        let mut out = Self::empty();
        for b in bits {
            out.push(b);
        }
        out
    }

    /// Appends one bit.
    pub fn push(&mut self, bit: bool) {
        if self.len.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 0x80 >> (self.len % 8);
        }
        self.len += 1;
    }

    /// Length in bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes that hold the bits (`len().div_ceil(8)` of them; bits
    /// past the length are zero).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Bit `i` (0: the most significant), `None` past the length.
    pub fn bit(&self, i: usize) -> Option<bool> {
        (i < self.len).then(|| self.bytes[i / 8] & (0x80 >> (i % 8)) != 0)
    }

    /// The bits in order.
    pub fn iter(&self) -> impl Iterator<Item = bool> + '_ {
        (0..self.len).map(|i| self.bytes[i / 8] & (0x80 >> (i % 8)) != 0)
    }

    /// True if `self` is a prefix of `other` (or equal to it).
    pub fn contains(&self, other: &BitPrefix) -> bool {
        self.len <= other.len && (0..self.len).all(|i| self.bit(i) == other.bit(i))
    }

    /// The first `len` bits (all of them when `len` is longer).
    #[must_use]
    pub fn truncated(&self, len: usize) -> Self {
        let len = len.min(self.len);
        Self::new(&self.bytes, len).unwrap_or_default()
    }

    /// The bytes an LPM index stores for this key: one byte per bit
    /// (0 → 0x02, 1 → 0x03) closed by [`part::LPM_END`]; for using a
    /// [`part::Tree`] as a longest-prefix-match trie directly.
    ///
    /// ```
    /// use statedb::BitPrefix;
    /// let tree = part::Tree::new()
    ///     .insert(&BitPrefix::new(&[0x80], 1)?.lpm_key(), "1…")
    ///     .insert(&BitPrefix::empty().lpm_key(), "any");
    /// let path = BitPrefix::new(&[0xc0], 2)?.lpm_path();
    /// assert_eq!(tree.longest_prefix_watch(&path).0, Some(1));
    /// # Ok::<(), statedb::BitPrefixError>(())
    /// ```
    pub fn lpm_key(&self) -> Key {
        stored_key(self)
    }

    /// The search path of this key: [`BitPrefix::lpm_key`] without the
    /// end byte, what [`part::Tree::longest_prefix_watch`] takes.
    pub fn lpm_path(&self) -> Key {
        lookup_key(self)
    }

    /// Appends the bits as a path (without the end byte).
    fn write_path(&self, out: &mut Key) {
        out.reserve(self.len + 1);
        for i in 0..self.len {
            let bit = self.bytes[i / 8] & (0x80 >> (i % 8)) != 0;
            out.push(if bit { BIT1 } else { BIT0 });
        }
    }

    /// The bits of a path (stopping at the end byte), `None` if it holds
    /// another byte.
    fn from_path(path: &[u8]) -> Option<Self> {
        let mut out = Self::empty();
        for &b in path {
            match b {
                BIT0 => out.push(false),
                BIT1 => out.push(true),
                LPM_END => break,
                _ => return None,
            }
        }
        Some(out)
    }
}

impl fmt::Debug for BitPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BitPrefix({self})")
    }
}

impl fmt::Display for BitPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.bytes {
            write!(f, "{b:02x}")?;
        }
        write!(f, "/{}", self.len)
    }
}

impl FromStr for BitPrefix {
    type Err = BitPrefixError;
    fn from_str(s: &str) -> Result<Self, BitPrefixError> {
        let bad = || BitPrefixError::BadText(s.to_string());
        let (hex, len) = s.split_once('/').ok_or_else(bad)?;
        let len: usize = len.parse().map_err(|_| bad())?;
        if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        // Nibbles, padded with a zero nibble to whole bytes.
        let nibbles: Vec<u8> = hex
            .bytes()
            .map(|c| (c as char).to_digit(16).unwrap_or(0) as u8)
            .collect();
        let bytes: Vec<u8> = nibbles
            .chunks(2)
            .map(|c| (c[0] << 4) | c.get(1).copied().unwrap_or(0))
            .collect();
        if len > nibbles.len() * 4 {
            return Err(BitPrefixError::TooLong {
                len,
                bytes: bytes.len(),
            });
        }
        Self::new(&bytes, len)
    }
}

/// A key of an [`LpmIndex`]: a value that is a string of bits.
///
/// The IP types share one encoding, so that any of them looks up an index
/// of any other: the family (`4` or `6`) as 8 bits, then the network bits
/// (all of them for an address). An IPv4 address matches only IPv4
/// prefixes and an IPv6 address only IPv6 ones, **including an
/// IPv4-mapped IPv6 address** (`::ffff:10.1.2.3` is IPv6 and does not
/// match `10.0.0.0/8`): call [`IpAddr::to_canonical`] first to treat it
/// as IPv4. Networks are truncated to their prefix (`10.1.2.3/8` is
/// `10.0.0.0/8`).
///
/// Implement it for your own key types (a port range, a label path) by
/// mapping them to a [`BitPrefix`] and back.
pub trait LpmKey {
    /// The key's bits.
    fn to_bits(&self) -> BitPrefix;

    /// The key whose bits these are, `None` if no key has them.
    fn from_bits(bits: &BitPrefix) -> Option<Self>
    where
        Self: Sized;

    /// Text a person may type to look the index up that is not the key's
    /// own text form (an address for an index of networks); `None` when
    /// there is none.
    fn parse_lookup(text: &str) -> Option<BitPrefix>
    where
        Self: Sized,
    {
        let _ = text;
        None
    }
}

impl LpmKey for BitPrefix {
    fn to_bits(&self) -> BitPrefix {
        self.clone()
    }
    fn from_bits(bits: &BitPrefix) -> Option<Self> {
        Some(bits.clone())
    }
}

const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;

fn ip_bits(family: u8, octets: &[u8], len: u8) -> BitPrefix {
    let mut bytes: SmallVec<[u8; 17]> = SmallVec::new();
    bytes.push(family);
    bytes.extend_from_slice(octets);
    BitPrefix::new(&bytes, 8 + usize::from(len)).unwrap_or_default()
}

/// The family and network of IP bits.
fn ip_of_bits(bits: &BitPrefix) -> Option<IpNet> {
    let len = u8::try_from(bits.len().checked_sub(8)?).ok()?;
    let bytes = bits.bytes();
    match bytes[0] {
        FAMILY_V4 => {
            let mut o = [0u8; 4];
            let rest = &bytes[1..];
            o.get_mut(..rest.len())?.copy_from_slice(rest);
            Ipv4Net::new(Ipv4Addr::from(o), len).ok().map(IpNet::V4)
        }
        FAMILY_V6 => {
            let mut o = [0u8; 16];
            let rest = &bytes[1..];
            o.get_mut(..rest.len())?.copy_from_slice(rest);
            Ipv6Net::new(Ipv6Addr::from(o), len).ok().map(IpNet::V6)
        }
        _ => None,
    }
}

fn parse_ip_lookup(text: &str) -> Option<BitPrefix> {
    text.parse::<IpAddr>().ok().map(|a| a.to_bits())
}

impl LpmKey for Ipv4Net {
    fn to_bits(&self) -> BitPrefix {
        ip_bits(FAMILY_V4, &self.network().octets(), self.prefix_len())
    }
    fn from_bits(bits: &BitPrefix) -> Option<Self> {
        match ip_of_bits(bits)? {
            IpNet::V4(n) => Some(n),
            IpNet::V6(_) => None,
        }
    }
    fn parse_lookup(text: &str) -> Option<BitPrefix> {
        parse_ip_lookup(text)
    }
}

impl LpmKey for Ipv6Net {
    fn to_bits(&self) -> BitPrefix {
        ip_bits(FAMILY_V6, &self.network().octets(), self.prefix_len())
    }
    fn from_bits(bits: &BitPrefix) -> Option<Self> {
        match ip_of_bits(bits)? {
            IpNet::V6(n) => Some(n),
            IpNet::V4(_) => None,
        }
    }
    fn parse_lookup(text: &str) -> Option<BitPrefix> {
        parse_ip_lookup(text)
    }
}

impl LpmKey for IpNet {
    fn to_bits(&self) -> BitPrefix {
        match self {
            IpNet::V4(n) => n.to_bits(),
            IpNet::V6(n) => n.to_bits(),
        }
    }
    fn from_bits(bits: &BitPrefix) -> Option<Self> {
        ip_of_bits(bits)
    }
    fn parse_lookup(text: &str) -> Option<BitPrefix> {
        parse_ip_lookup(text)
    }
}

impl LpmKey for Ipv4Addr {
    fn to_bits(&self) -> BitPrefix {
        ip_bits(FAMILY_V4, &self.octets(), 32)
    }
    fn from_bits(bits: &BitPrefix) -> Option<Self> {
        match ip_of_bits(bits)? {
            IpNet::V4(n) if n.prefix_len() == 32 => Some(n.addr()),
            _ => None,
        }
    }
}

impl LpmKey for Ipv6Addr {
    fn to_bits(&self) -> BitPrefix {
        ip_bits(FAMILY_V6, &self.octets(), 128)
    }
    fn from_bits(bits: &BitPrefix) -> Option<Self> {
        match ip_of_bits(bits)? {
            IpNet::V6(n) if n.prefix_len() == 128 => Some(n.addr()),
            _ => None,
        }
    }
}

impl LpmKey for IpAddr {
    fn to_bits(&self) -> BitPrefix {
        match self {
            IpAddr::V4(a) => a.to_bits(),
            IpAddr::V6(a) => a.to_bits(),
        }
    }
    fn from_bits(bits: &BitPrefix) -> Option<Self> {
        match ip_of_bits(bits)? {
            IpNet::V4(n) if n.prefix_len() == 32 => Some(IpAddr::V4(n.addr())),
            IpNet::V6(n) if n.prefix_len() == 128 => Some(IpAddr::V6(n.addr())),
            _ => None,
        }
    }
}

/// The stored key of `bits`: its path closed by the end byte.
fn stored_key(bits: &BitPrefix) -> Key {
    let mut k = Key::new();
    bits.write_path(&mut k);
    k.push(LPM_END);
    k
}

/// The search key of a lookup: the path without the end byte.
fn lookup_key(bits: &BitPrefix) -> Key {
    let mut k = Key::new();
    bits.write_path(&mut k);
    k
}

/// The exact stored key of the match of length `n` of a lookup path.
pub(crate) fn match_key(path: &[u8], n: usize) -> Key {
    let mut k = Key::from_slice(&path[..n]);
    k.push(LPM_END);
    k
}

/// The keys an object yields for an [`LpmIndex`] (zero, one or many).
pub struct LpmKeys<'a, K: ?Sized> {
    keys: &'a mut KeySet,
    _key: PhantomData<fn(&K)>,
}

impl<K: LpmKey + ?Sized> LpmKeys<'_, K> {
    /// Adds `key`.
    pub fn push(&mut self, key: &K) {
        self.keys.push_key(stored_key(&key.to_bits()));
    }
}

/// A longest-prefix-match index of objects `Obj` over keys `K` (IP
/// networks, [`BitPrefix`]es, or your own [`LpmKey`]): the reference's
/// `LPMIndex` and `NetIPPrefixIndex`.
///
/// Queried through the ordinary reads, with these meanings:
///
/// - [`Table::get`](crate::Table::get), [`list`](crate::Table::list) and
///   their `_watch` and `_ref` forms, [`last`](crate::Table::last),
///   [`count`](crate::Table::count), [`list_rev`](crate::Table::list_rev):
///   the objects whose key is the **longest stored prefix** of the query's
///   (all of them on a non-unique index), nothing if no key is a prefix of
///   it. The watch closes when that answer may change: a key added,
///   replaced or removed at the match or more specific than it (any change
///   of the index when nothing matched).
/// - [`prefix`](crate::Table::prefix): the objects with a key **within**
///   the query's (equal to it or more specific): "every route inside
///   10.0.0.0/8".
/// - [`lower_bound`](crate::Table::lower_bound): keys at or after the
///   query's in the index's order (a prefix first, then the prefixes it
///   contains, in bit order).
///
/// On prefix and lower-bound queries an object with several keys that
/// match comes back once.
///
/// It cannot be a primary index (a primary key is found exactly).
///
/// ```
/// use ipnet::IpNet;
/// use statedb::{Db, Index, LpmIndex, Table};
/// use std::net::IpAddr;
/// #[derive(Debug)]
/// struct Route { id: u32, dst: IpNet, via: &'static str }
/// let by_id: Index<Route, u32> = Index::unique("id", |r: &Route, k| k.push(&r.id));
/// let by_dst: LpmIndex<Route, IpNet> = LpmIndex::unique("dst", |r: &Route, k| k.push(&r.dst));
/// let routes = Table::builder("routes", &by_id).lpm_index(&by_dst).build()?;
/// let db = Db::new();
/// db.register_table(&routes)?;
/// let mut w = db.write_txn(&[&routes])?;
/// routes.insert(&mut w, Route { id: 1, dst: "0.0.0.0/0".parse().unwrap(), via: "gw" })?;
/// routes.insert(&mut w, Route { id: 2, dst: "10.0.0.0/8".parse().unwrap(), via: "vpn" })?;
/// let r = w.commit();
/// let via = |a: &str| {
///     let addr: IpAddr = a.parse().unwrap();
///     routes.get(&r, by_dst.query(&addr)).unwrap().map(|(o, _)| o.via)
/// };
/// assert_eq!(via("10.1.2.3"), Some("vpn"));
/// assert_eq!(via("192.0.2.1"), Some("gw"));
/// assert_eq!(via("::1"), None);
/// // Within 10.0.0.0/8:
/// let net: IpNet = "10.0.0.0/8".parse().unwrap();
/// let (inside, _) = routes.prefix(&r, by_dst.query(&net))?;
/// assert_eq!(inside.count(), 1);
/// # Ok::<(), statedb::Error>(())
/// ```
pub struct LpmIndex<Obj, K: ?Sized> {
    inner: Arc<IndexInner<Obj>>,
    _key: PhantomData<fn(&K)>,
}

impl<Obj, K: ?Sized> Clone for LpmIndex<Obj, K> {
    fn clone(&self) -> Self {
        LpmIndex {
            inner: self.inner.clone(),
            _key: PhantomData,
        }
    }
}

impl<Obj, K: ?Sized> fmt::Debug for LpmIndex<Obj, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LpmIndex")
            .field("name", &self.inner.name())
            .field("unique", &self.inner.is_unique())
            .finish()
    }
}

/// Text of a key of an LPM index: the key type's own form, else a lookup
/// form ([`LpmKey::parse_lookup`]); as a search path.
fn parse_lpm<K: LpmKey + FromStr>(text: &str, out: &mut Key) -> Result<(), ParseKeyError> {
    let bits = match text.parse::<K>() {
        Ok(k) => k.to_bits(),
        Err(_) => K::parse_lookup(text)
            .ok_or_else(|| ParseKeyError::invalid(text, std::any::type_name::<K>()))?,
    };
    bits.write_path(out);
    Ok(())
}

/// A prefix given as text: the same path, searched as a prefix (within).
fn parse_lpm_prefix<K: LpmKey + FromStr>(
    text: &str,
    out: &mut Key,
) -> Result<Option<part::KeyFilter>, ParseKeyError> {
    parse_lpm::<K>(text, out).map(|()| None)
}

fn format_lpm<K: LpmKey + fmt::Display>(stored: &[u8]) -> Option<String> {
    let bits = BitPrefix::from_path(stored)?;
    K::from_bits(&bits).map(|k| k.to_string())
}

impl<Obj, K: LpmKey + FromStr + fmt::Display> LpmIndex<Obj, K> {
    /// An LPM index named `name`; `keys` adds the object's keys.
    pub fn new(
        name: &'static str,
        unique: bool,
        keys: impl Fn(&Obj, &mut LpmKeys<'_, K>) + Send + Sync + 'static,
    ) -> Self {
        let keys = move |obj: &Obj, set: &mut KeySet| {
            keys(
                obj,
                &mut LpmKeys {
                    keys: set,
                    _key: PhantomData,
                },
            )
        };
        LpmIndex {
            inner: Arc::new(IndexInner::new_lpm(
                name,
                unique,
                Box::new(keys),
                parse_lpm::<K>,
                parse_lpm_prefix::<K>,
                format_lpm::<K>,
            )),
            _key: PhantomData,
        }
    }

    /// A unique LPM index: at most one object per key (a second object
    /// with the same key is a [`crate::WriteError::UniqueConflict`]).
    pub fn unique(
        name: &'static str,
        keys: impl Fn(&Obj, &mut LpmKeys<'_, K>) + Send + Sync + 'static,
    ) -> Self {
        Self::new(name, true, keys)
    }

    /// A non-unique LPM index (many objects may share a key).
    pub fn non_unique(
        name: &'static str,
        keys: impl Fn(&Obj, &mut LpmKeys<'_, K>) + Send + Sync + 'static,
    ) -> Self {
        Self::new(name, false, keys)
    }
}

impl<Obj, K: ?Sized> LpmIndex<Obj, K> {
    pub(crate) fn inner(&self) -> &Arc<IndexInner<Obj>> {
        &self.inner
    }

    /// The index name.
    pub fn name(&self) -> &'static str {
        self.inner.name()
    }

    /// True if the index is unique.
    pub fn is_unique(&self) -> bool {
        self.inner.is_unique()
    }

    /// A query for `key`: with `get` / `list`, its longest stored prefix;
    /// with `prefix`, the keys within it (see [`LpmIndex`]). Any key type
    /// of the same encoding looks up (an address in an index of networks).
    pub fn query(&self, key: &(impl LpmKey + ?Sized)) -> Query<Obj> {
        self.query_bits(&key.to_bits())
    }

    /// A query for a key written as text: the key type's own form
    /// (`"10.0.0.0/8"`), or a lookup form such as an address
    /// (`"10.1.2.3"`) for an index of networks.
    ///
    /// # Errors
    ///
    /// [`ParseKeyError`] when the text is neither.
    pub fn query_text(&self, text: &str) -> Result<Query<Obj>, ParseKeyError> {
        Ok(Query::new(self.inner.name(), self.inner.parse_key(text)?))
    }

    /// A query for a bit string (see [`LpmIndex::query`]).
    pub fn query_bits(&self, bits: &BitPrefix) -> Query<Obj> {
        Query::new(self.inner.name(), lookup_key(bits))
    }

    /// The keys `obj` yields for this index, as bit strings.
    pub fn object_keys(&self, obj: &Obj) -> Vec<BitPrefix> {
        self.inner
            .keys_of(obj)
            .iter()
            .filter_map(BitPrefix::from_path)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_public_types_are_send_and_sync() {
        fn send_sync<X: Send + Sync>() {}
        send_sync::<BitPrefix>();
        send_sync::<BitPrefixError>();
        send_sync::<LpmIndex<std::rc::Rc<u8>, IpNet>>();
    }

    #[test]
    fn ip_keys_round_trip_through_bits() {
        for text in [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "10.1.2.3/32",
            "::/0",
            "2001:db8::/32",
            "::1/128",
        ] {
            let net: IpNet = text.parse().unwrap();
            assert_eq!(IpNet::from_bits(&net.to_bits()), Some(net), "{text}");
        }
        let v4: Ipv4Net = "10.0.0.0/8".parse().unwrap();
        assert_eq!(Ipv6Net::from_bits(&v4.to_bits()), None);
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(IpAddr::from_bits(&a.to_bits()), Some(a));
        assert_eq!(IpAddr::from_bits(&v4.to_bits()), None);
        // Networks truncate.
        let loose: IpNet = "10.1.2.3/8".parse().unwrap();
        assert_eq!(
            loose.to_bits(),
            "10.0.0.0/8".parse::<IpNet>().unwrap().to_bits()
        );
        // Garbage decodes to nothing rather than panicking.
        assert_eq!(
            IpNet::from_bits(&BitPrefix::new(&[9, 1], 16).unwrap()),
            None
        );
        assert_eq!(IpNet::from_bits(&BitPrefix::new(&[4], 4).unwrap()), None);
        assert_eq!(BitPrefix::from_path(&[2, 9]), None);
    }

    #[test]
    fn bit_prefix_text_and_errors() {
        assert_eq!("/0".parse::<BitPrefix>().unwrap(), BitPrefix::empty());
        assert_eq!(
            "ff0/12".parse::<BitPrefix>().unwrap().to_string(),
            "ff00/12"
        );
        assert_eq!("ff/3".parse::<BitPrefix>().unwrap().to_string(), "e0/3");
        assert!(matches!(
            "ff/9".parse::<BitPrefix>(),
            Err(BitPrefixError::TooLong { len: 9, .. })
        ));
        for bad in ["", "ff", "zz/4", "ff/x", "ff/-1"] {
            assert!(bad.parse::<BitPrefix>().is_err(), "{bad}");
        }
        assert!(matches!(
            BitPrefix::new(&[1], 9),
            Err(BitPrefixError::TooLong { len: 9, bytes: 1 })
        ));
        assert!(BitPrefix::new(&[], usize::MAX).is_err());
    }

    proptest! {
        #[test]
        fn paths_keep_bits_and_order(
            a in proptest::collection::vec(any::<bool>(), 0..40),
            b in proptest::collection::vec(any::<bool>(), 0..40),
        ) {
            let pa = BitPrefix::from_bits(a.iter().copied());
            let pb = BitPrefix::from_bits(b.iter().copied());
            prop_assert_eq!(pa.iter().collect::<Vec<_>>(), a.clone());
            prop_assert_eq!(BitPrefix::from_path(&stored_key(&pa)), Some(pa.clone()));
            prop_assert_eq!(pa.to_string().parse::<BitPrefix>().unwrap(), pa.clone());
            prop_assert_eq!(pa.contains(&pb), b.starts_with(&a));
            // A prefix sorts first, else bit order.
            prop_assert_eq!(stored_key(&pa).cmp(&stored_key(&pb)), a.cmp(&b));
            prop_assert_eq!(pa.truncated(3).iter().collect::<Vec<_>>(), a[..a.len().min(3)].to_vec());
        }
    }
}

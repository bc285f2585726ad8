//! Tree nodes: adaptive child arrays (4 / 16 / 48 / 256) with a compressed
//! path prefix, an optional leaf, and a lazily created watch cell.

use smallvec::SmallVec;

use crate::bytes::NodeBytes;
use crate::watch::{Seal, Watch};
use crate::watch_cell::NodeWatches;

/// Key bytes; up to 24 bytes are stored inline without allocation.
pub type Key = SmallVec<[u8; 24]>;

/// A counted reference to a node. `triomphe`'s `Arc` has no weak count:
/// checking that a node is private to a transaction is one plain load
/// (std's `Arc::get_mut` is a locked compare-exchange on the weak count),
/// and the header is 8 bytes, not 16.
pub(crate) type Link<V> = triomphe::Arc<Node<V>>;

/// The value stored at the node where its key ends (the key is the
/// node's bytes, see [`NodeBytes`]; its watch is in the node's
/// [`NodeWatches`]).
pub(crate) struct Leaf<V> {
    pub value: V,
}

impl<V> Leaf<V> {
    pub fn new(value: V) -> Self {
        Leaf { value }
    }
}

/// A node of the tree. Its path is the parent's path, the edge byte and
/// its prefix; its leaf, if any, holds the key equal to that path.
pub(crate) struct Node<V> {
    /// The leaf's key when there is a leaf, otherwise the prefix alone;
    /// the prefix is its tail either way.
    bytes: NodeBytes,
    pub leaf: Option<Leaf<V>>,
    pub children: Children<V>,
    /// The node's watch closes when anything at or below it changes; the
    /// leaf's when the key at this node is replaced or deleted. Created on
    /// the first request, so trees nobody watches pay only for the cell.
    pub watches: NodeWatches,
}

impl<V> Node<V> {
    pub fn empty() -> Self {
        Node {
            bytes: NodeBytes::empty(),
            leaf: None,
            children: Children::Empty,
            watches: NodeWatches::new(),
        }
    }

    /// A node without a leaf, with the given prefix.
    pub fn inner(prefix: &[u8]) -> Self {
        Node {
            bytes: NodeBytes::prefix_only(prefix),
            ..Node::empty()
        }
    }

    /// A leaf-only node for `key`, whose last `plen` bytes are its prefix.
    pub fn new_leaf(plen: usize, key: &[u8], value: V) -> Self {
        Node {
            bytes: NodeBytes::new(key, plen),
            leaf: Some(Leaf::new(value)),
            children: Children::Empty,
            watches: NodeWatches::new(),
        }
    }

    /// A leaf-only node with this one's key and prefix and a new value:
    /// the key is cloned from the node rather than rebuilt from a slice,
    /// whose variable-length copy is read back wide (a store-forwarding
    /// stall).
    pub fn leaf_with_value(&self, value: V) -> Self {
        Node {
            bytes: self.bytes.clone(),
            leaf: Some(Leaf::new(value)),
            children: Children::Empty,
            watches: NodeWatches::new(),
        }
    }

    /// The compressed path between the parent's edge byte and this node.
    #[inline]
    pub fn prefix(&self) -> &[u8] {
        self.bytes.prefix()
    }

    /// The prefix's length (cheaper than `prefix().len()`).
    #[inline]
    pub fn prefix_len(&self) -> usize {
        self.bytes.plen()
    }

    /// The leaf's value.
    #[inline]
    pub fn value(&self) -> Option<&V> {
        self.leaf.as_ref().map(|l| &l.value)
    }

    /// The leaf's key and value.
    #[inline]
    pub fn entry(&self) -> Option<(&[u8], &V)> {
        self.leaf.as_ref().map(|l| (self.bytes.all(), &l.value))
    }

    /// Sets the prefix, keeping the keys below: with a leaf, the new
    /// prefix is a tail of its key (the node's path is unchanged), so only
    /// the boundary moves.
    pub fn set_prefix(&mut self, prefix: &[u8]) {
        if self.leaf.is_some() {
            debug_assert!(self.bytes.all().ends_with(prefix));
            self.bytes.set_plen(prefix.len());
        } else {
            self.bytes = NodeBytes::prefix_only(prefix);
        }
    }

    /// Keeps only the last `len` bytes of the prefix (the node moves down
    /// below a new parent; its keys stay the same).
    pub fn shorten_prefix(&mut self, len: usize) {
        debug_assert!(len <= self.bytes.plen());
        self.bytes.set_plen(len);
    }

    /// Gives the node a leaf for `key`, which ends here (so it ends with
    /// the prefix).
    pub fn set_leaf(&mut self, key: &[u8], value: V) {
        debug_assert!(key.ends_with(self.bytes.prefix()));
        self.bytes = NodeBytes::new(key, self.bytes.plen());
        self.leaf = Some(Leaf::new(value));
    }

    /// Takes the leaf out, keeping the prefix.
    pub fn take_leaf(&mut self) -> Option<Leaf<V>> {
        let leaf = self.leaf.take()?;
        self.bytes = NodeBytes::prefix_only(self.bytes.prefix());
        Some(leaf)
    }

    pub fn node_watch(&self) -> Watch {
        self.watches.node()
    }

    pub fn is_empty(&self) -> bool {
        self.leaf.is_none() && self.children.is_empty()
    }
}

impl<V: Clone> Node<V> {
    /// A private copy for a write transaction. The leaf's watch is shared
    /// with the copy if someone holds it already; the bool says so.
    pub fn clone_for_write(&self) -> (Node<V>, bool) {
        let shared_leaf = if self.leaf.is_some() {
            self.watches.peek_leaf()
        } else {
            None
        };
        let leaf_shared = shared_leaf.is_some();
        (
            Node {
                bytes: self.bytes.clone(),
                leaf: self.leaf.as_ref().map(|l| Leaf::new(l.value.clone())),
                children: self.children.clone(),
                watches: NodeWatches::with(None, shared_leaf),
            },
            leaf_shared,
        )
    }

    /// A copy with the same keys (only the prefix will differ), sharing
    /// both watches so that watchers of the old node hear of later changes.
    pub fn clone_same_keys(&self) -> Node<V> {
        let leaf_watch = self.leaf.as_ref().map(|_| self.watches.leaf());
        Node {
            bytes: self.bytes.clone(),
            leaf: self.leaf.as_ref().map(|l| Leaf::new(l.value.clone())),
            children: self.children.clone(),
            watches: NodeWatches::with(Some(self.node_watch()), leaf_watch),
        }
    }
}

impl<V: Send + Sync> Seal for Node<V> {
    fn seal(&self, leaf_shared: bool) {
        // A node nobody watched is marked, so a reader of an old snapshot
        // asking later is told at once that it is stale.
        self.watches.seal(leaf_shared);
    }
}

/// A sorted array of up to N children.
pub(crate) struct Small<V, const N: usize> {
    len: u8,
    keys: [u8; N],
    ptrs: [Option<Link<V>>; N],
}

impl<V, const N: usize> Small<V, N> {
    fn new() -> Self {
        Small {
            len: 0,
            keys: [0; N],
            ptrs: std::array::from_fn(|_| None),
        }
    }
    #[inline]
    fn position(&self, b: u8) -> Result<usize, usize> {
        let keys = &self.keys[..self.len as usize];
        if N <= 4 {
            for (i, &k) in keys.iter().enumerate() {
                if k >= b {
                    return if k == b { Ok(i) } else { Err(i) };
                }
            }
            Err(keys.len())
        } else {
            keys.binary_search(&b)
        }
    }
    fn insert_at(&mut self, pos: usize, b: u8, child: Link<V>) {
        let len = self.len as usize;
        self.keys.copy_within(pos..len, pos + 1);
        self.ptrs[pos..=len].rotate_right(1);
        self.keys[pos] = b;
        self.ptrs[pos] = Some(child);
        self.len += 1;
    }
    fn remove_at(&mut self, pos: usize) -> Option<Link<V>> {
        let len = self.len as usize;
        let out = self.ptrs[pos].take();
        self.keys.copy_within(pos + 1..len, pos);
        self.ptrs[pos..len].rotate_left(1);
        self.len -= 1;
        out
    }
    fn entries(&mut self) -> impl Iterator<Item = (u8, Link<V>)> + '_ {
        let len = self.len as usize;
        self.len = 0;
        self.keys[..len]
            .iter()
            .copied()
            .zip(self.ptrs[..len].iter_mut().filter_map(Option::take))
    }
}

impl<V, const N: usize> Clone for Small<V, N> {
    fn clone(&self) -> Self {
        Small {
            len: self.len,
            keys: self.keys,
            ptrs: self.ptrs.clone(),
        }
    }
}

/// 48 children: a byte-indexed table of slot numbers (0 = none).
pub(crate) struct N48<V> {
    len: u8,
    index: [u8; 256],
    ptrs: [Option<Link<V>>; 48],
}

impl<V> Clone for N48<V> {
    fn clone(&self) -> Self {
        N48 {
            len: self.len,
            index: self.index,
            ptrs: self.ptrs.clone(),
        }
    }
}

/// 256 children indexed directly by byte.
pub(crate) struct N256<V> {
    len: u16,
    ptrs: [Option<Link<V>>; 256],
}

impl<V> Clone for N256<V> {
    fn clone(&self) -> Self {
        N256 {
            len: self.len,
            ptrs: self.ptrs.clone(),
        }
    }
}

/// The children of a node, in the smallest array that holds them.
pub(crate) enum Children<V> {
    Empty,
    N4(Box<Small<V, 4>>),
    N16(Box<Small<V, 16>>),
    N48(Box<N48<V>>),
    N256(Box<N256<V>>),
}

impl<V> Clone for Children<V> {
    fn clone(&self) -> Self {
        match self {
            Children::Empty => Children::Empty,
            Children::N4(s) => Children::N4(s.clone()),
            Children::N16(s) => Children::N16(s.clone()),
            Children::N48(s) => Children::N48(s.clone()),
            Children::N256(s) => Children::N256(s.clone()),
        }
    }
}

/// Node kind, for tests.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// No children.
    Leaf,
    /// Up to 4 children.
    Node4,
    /// Up to 16 children.
    Node16,
    /// Up to 48 children.
    Node48,
    /// Up to 256 children.
    Node256,
}

// Shrink thresholds sit below the growth points so that a node oscillating
// around a boundary does not reallocate on every change.
const SHRINK_256: usize = 40;
const SHRINK_48: usize = 12;
const SHRINK_16: usize = 3;

impl<V> Children<V> {
    #[cfg(test)]
    pub fn kind(&self) -> NodeKind {
        match self {
            Children::Empty => NodeKind::Leaf,
            Children::N4(_) => NodeKind::Node4,
            Children::N16(_) => NodeKind::Node16,
            Children::N48(_) => NodeKind::Node48,
            Children::N256(_) => NodeKind::Node256,
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Children::Empty)
    }

    pub fn len(&self) -> usize {
        match self {
            Children::Empty => 0,
            Children::N4(s) => s.len as usize,
            Children::N16(s) => s.len as usize,
            Children::N48(s) => s.len as usize,
            Children::N256(s) => s.len as usize,
        }
    }

    /// The child of byte `b`. Always inlined: it is the step of every
    /// descent, and as a call its cost moved with the compiler's choices
    /// (`db_random_lookup` by up to 30% between builds).
    #[inline(always)]
    pub fn get(&self, b: u8) -> Option<&Link<V>> {
        match self {
            Children::Empty => None,
            Children::N4(s) => s.position(b).ok().and_then(|i| s.ptrs[i].as_ref()),
            Children::N16(s) => s.position(b).ok().and_then(|i| s.ptrs[i].as_ref()),
            Children::N48(s) => match s.index[b as usize] {
                0 => None,
                i => s.ptrs[i as usize - 1].as_ref(),
            },
            Children::N256(s) => s.ptrs[b as usize].as_ref(),
        }
    }

    /// Where the child of byte `b` is stored, for [`Children::slot_mut`]:
    /// lets a caller look up once, then either insert (absent) or descend
    /// (present) without holding a borrow across both.
    #[inline]
    pub fn slot_of(&self, b: u8) -> Option<usize> {
        match self {
            Children::Empty => None,
            Children::N4(s) => s.position(b).ok(),
            Children::N16(s) => s.position(b).ok(),
            Children::N48(s) => match s.index[b as usize] {
                0 => None,
                i => Some(i as usize - 1),
            },
            Children::N256(s) => s.ptrs[b as usize].as_ref().map(|_| b as usize),
        }
    }

    /// The child at a slot found by [`Children::slot_of`].
    #[inline]
    pub fn slot_mut(&mut self, slot: usize) -> Option<&mut Link<V>> {
        match self {
            Children::Empty => None,
            Children::N4(s) => s.ptrs.get_mut(slot)?.as_mut(),
            Children::N16(s) => s.ptrs.get_mut(slot)?.as_mut(),
            Children::N48(s) => s.ptrs.get_mut(slot)?.as_mut(),
            Children::N256(s) => s.ptrs.get_mut(slot)?.as_mut(),
        }
    }

    #[inline]
    pub fn get_mut(&mut self, b: u8) -> Option<&mut Link<V>> {
        match self {
            Children::Empty => None,
            Children::N4(s) => match s.position(b) {
                Ok(i) => s.ptrs[i].as_mut(),
                Err(_) => None,
            },
            Children::N16(s) => match s.position(b) {
                Ok(i) => s.ptrs[i].as_mut(),
                Err(_) => None,
            },
            Children::N48(s) => match s.index[b as usize] {
                0 => None,
                i => s.ptrs[i as usize - 1].as_mut(),
            },
            Children::N256(s) => s.ptrs[b as usize].as_mut(),
        }
    }

    /// Adds a child for byte `b`, which must not be present; grows the
    /// array when full.
    pub fn insert(&mut self, b: u8, child: Link<V>) {
        match self {
            Children::Empty => {
                let mut s = Box::new(Small::new());
                s.insert_at(0, b, child);
                *self = Children::N4(s);
            }
            Children::N4(s) => {
                if (s.len as usize) < 4 {
                    let pos = s.position(b).unwrap_or_else(|p| p);
                    s.insert_at(pos, b, child);
                } else {
                    let mut big = Box::new(Small::<V, 16>::new());
                    for (i, (k, c)) in s.entries().enumerate() {
                        big.keys[i] = k;
                        big.ptrs[i] = Some(c);
                        big.len += 1;
                    }
                    let pos = big.position(b).unwrap_or_else(|p| p);
                    big.insert_at(pos, b, child);
                    *self = Children::N16(big);
                }
            }
            Children::N16(s) => {
                if (s.len as usize) < 16 {
                    let pos = s.position(b).unwrap_or_else(|p| p);
                    s.insert_at(pos, b, child);
                } else {
                    let mut big = Box::new(N48 {
                        len: 0,
                        index: [0; 256],
                        ptrs: std::array::from_fn(|_| None),
                    });
                    for (i, (k, c)) in s.entries().enumerate() {
                        big.index[k as usize] = i as u8 + 1;
                        big.ptrs[i] = Some(c);
                        big.len += 1;
                    }
                    n48_insert(&mut big, b, child);
                    *self = Children::N48(big);
                }
            }
            Children::N48(s) => {
                if (s.len as usize) < 48 {
                    n48_insert(s, b, child);
                } else {
                    let mut big = Box::new(N256 {
                        len: 0,
                        ptrs: std::array::from_fn(|_| None),
                    });
                    for k in 0..256 {
                        let i = s.index[k];
                        if i != 0 {
                            big.ptrs[k] = s.ptrs[i as usize - 1].take();
                            big.len += 1;
                        }
                    }
                    big.ptrs[b as usize] = Some(child);
                    big.len += 1;
                    *self = Children::N256(big);
                }
            }
            Children::N256(s) => {
                if s.ptrs[b as usize].replace(child).is_none() {
                    s.len += 1;
                }
            }
        }
    }

    /// Removes the child for byte `b`; shrinks the array when sparse.
    pub fn remove(&mut self, b: u8) -> Option<Link<V>> {
        let out = match self {
            Children::Empty => None,
            Children::N4(s) => s.position(b).ok().and_then(|i| s.remove_at(i)),
            Children::N16(s) => s.position(b).ok().and_then(|i| s.remove_at(i)),
            Children::N48(s) => match s.index[b as usize] {
                0 => None,
                i => {
                    s.index[b as usize] = 0;
                    s.len -= 1;
                    s.ptrs[i as usize - 1].take()
                }
            },
            Children::N256(s) => {
                let out = s.ptrs[b as usize].take();
                if out.is_some() {
                    s.len -= 1;
                }
                out
            }
        };
        if out.is_some() {
            self.shrink();
        }
        out
    }

    fn shrink(&mut self) {
        let len = self.len();
        match self {
            Children::N4(_) if len == 0 => *self = Children::Empty,
            Children::N16(s) if len <= SHRINK_16 => {
                let mut small = Box::new(Small::<V, 4>::new());
                for (i, (k, c)) in s.entries().enumerate() {
                    small.keys[i] = k;
                    small.ptrs[i] = Some(c);
                    small.len += 1;
                }
                *self = Children::N4(small);
            }
            Children::N48(s) if len <= SHRINK_48 => {
                let mut small = Box::new(Small::<V, 16>::new());
                for k in 0..256 {
                    let i = s.index[k];
                    if i != 0 {
                        let n = small.len as usize;
                        small.keys[n] = k as u8;
                        small.ptrs[n] = s.ptrs[i as usize - 1].take();
                        small.len += 1;
                    }
                }
                *self = Children::N16(small);
            }
            Children::N256(s) if len <= SHRINK_256 => {
                let mut small = Box::new(N48 {
                    len: 0,
                    index: [0; 256],
                    ptrs: std::array::from_fn(|_| None),
                });
                for k in 0..256 {
                    if let Some(c) = s.ptrs[k].take() {
                        let n = small.len as usize;
                        small.index[k] = n as u8 + 1;
                        small.ptrs[n] = Some(c);
                        small.len += 1;
                    }
                }
                *self = Children::N48(small);
            }
            _ => {}
        }
    }

    /// The edge byte of the only child, when there is exactly one.
    pub fn only_byte(&self) -> Option<u8> {
        if self.len() != 1 {
            return None;
        }
        match self {
            Children::Empty => None,
            Children::N4(s) => Some(s.keys[0]),
            Children::N16(s) => Some(s.keys[0]),
            Children::N48(s) => s.index.iter().position(|&i| i != 0).map(|b| b as u8),
            Children::N256(s) => s.ptrs.iter().position(Option::is_some).map(|b| b as u8),
        }
    }

    /// Ordered cursor: returns (cursor of the child, child) for the first
    /// child at or after `cursor`; the next cursor is the returned one + 1.
    #[inline]
    pub fn cursor_next(&self, cursor: usize) -> Option<(usize, &Link<V>)> {
        match self {
            Children::Empty => None,
            Children::N4(s) => {
                if cursor < s.len as usize {
                    s.ptrs[cursor].as_ref().map(|c| (cursor, c))
                } else {
                    None
                }
            }
            Children::N16(s) => {
                if cursor < s.len as usize {
                    s.ptrs[cursor].as_ref().map(|c| (cursor, c))
                } else {
                    None
                }
            }
            Children::N48(s) => {
                for b in cursor..256 {
                    let i = s.index[b];
                    if i != 0 {
                        return s.ptrs[i as usize - 1].as_ref().map(|c| (b, c));
                    }
                }
                None
            }
            Children::N256(s) => {
                for b in cursor..256 {
                    if let Some(c) = &s.ptrs[b] {
                        return Some((b, c));
                    }
                }
                None
            }
        }
    }

    /// Reverse cursor: the child at the greatest position below `cursor`
    /// (start with `usize::MAX`), with its position, which is the next
    /// call's cursor.
    #[inline]
    pub fn cursor_prev(&self, cursor: usize) -> Option<(usize, &Link<V>)> {
        match self {
            Children::Empty => None,
            Children::N4(s) => small_prev(s, cursor),
            Children::N16(s) => small_prev(s, cursor),
            Children::N48(s) => (0..cursor.min(256))
                .rev()
                .find(|&b| s.index[b] != 0)
                .and_then(|b| s.ptrs[s.index[b] as usize - 1].as_ref().map(|c| (b, c))),
            Children::N256(s) => (0..cursor.min(256))
                .rev()
                .find_map(|b| s.ptrs[b].as_ref().map(|c| (b, c))),
        }
    }

    /// The cursor of the first child whose byte is greater than `b`, and
    /// the child of byte `b` if present.
    pub fn seek(&self, b: u8) -> (usize, Option<&Link<V>>) {
        match self {
            Children::Empty => (0, None),
            Children::N4(s) => match s.position(b) {
                Ok(i) => (i + 1, s.ptrs[i].as_ref()),
                Err(i) => (i, None),
            },
            Children::N16(s) => match s.position(b) {
                Ok(i) => (i + 1, s.ptrs[i].as_ref()),
                Err(i) => (i, None),
            },
            Children::N48(_) | Children::N256(_) => (b as usize + 1, self.get(b)),
        }
    }
}

impl<V> Children<V> {
    /// Moves every child link out and hands each one to `f`; for `Drop`
    /// only (an N48's byte index is left stale: nothing reads it again).
    fn drain(&mut self, mut f: impl FnMut(Link<V>)) {
        match self {
            Children::Empty => {}
            Children::N4(s) => s.entries().for_each(|(_, c)| f(c)),
            Children::N16(s) => s.entries().for_each(|(_, c)| f(c)),
            Children::N48(s) => {
                s.len = 0;
                s.ptrs.iter_mut().filter_map(Option::take).for_each(f);
            }
            Children::N256(s) => {
                s.len = 0;
                s.ptrs.iter_mut().filter_map(Option::take).for_each(f);
            }
        }
    }
}

std::thread_local! {
    /// How many `Children::drop` calls are active on this thread.
    static DROP_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Nesting past which a drop switches from recursion to a heap stack.
const MAX_DROP_RECURSION: u32 = 32;

impl<V> Drop for Children<V> {
    /// Frees the subtree with bounded recursion: a chain of nodes is as
    /// deep as its longest key, and plain recursive drop overflowed the
    /// stack on keys forming a long prefix chain. Up to
    /// `MAX_DROP_RECURSION` nested drops recurse as usual (the fast path);
    /// deeper, children freed here have their own children moved to a heap
    /// stack instead.
    fn drop(&mut self) {
        if matches!(self, Children::Empty) {
            return;
        }
        let depth = DROP_DEPTH.with(std::cell::Cell::get);
        if depth < MAX_DROP_RECURSION {
            DROP_DEPTH.with(|d| d.set(depth + 1));
            self.drain(drop);
            DROP_DEPTH.with(|d| d.set(depth));
            return;
        }
        let mut freed: Vec<Children<V>> = Vec::new();
        self.drain(|link| unlink(link, &mut freed));
        while let Some(mut children) = freed.pop() {
            children.drain(|link| unlink(link, &mut freed));
        }
    }
}

/// Drops one reference to a child; if it was the last, the child's own
/// children go to `freed` instead of being dropped recursively.
fn unlink<V>(link: Link<V>, freed: &mut Vec<Children<V>>) {
    if let Ok(mut node) = triomphe::Arc::try_unwrap(link)
        && !node.children.is_empty()
    {
        freed.push(std::mem::replace(&mut node.children, Children::Empty));
    }
}

fn small_prev<V, const N: usize>(s: &Small<V, N>, cursor: usize) -> Option<(usize, &Link<V>)> {
    let end = cursor.min(s.len as usize);
    let i = end.checked_sub(1)?;
    s.ptrs[i].as_ref().map(|c| (i, c))
}

fn n48_insert<V>(s: &mut N48<V>, b: u8, child: Link<V>) {
    if let Some(slot) = s.ptrs.iter().position(Option::is_none) {
        s.ptrs[slot] = Some(child);
        s.index[b as usize] = slot as u8 + 1;
        s.len += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The node size the memory figures rest on: a value of a revision
    /// and a pointer (statedb's object) makes a 72-byte node.
    #[test]
    fn node_is_nine_words() {
        assert_eq!(std::mem::size_of::<Node<(u64, std::sync::Arc<u8>)>>(), 72);
    }
}

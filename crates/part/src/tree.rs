//! The persistent tree: queries and iterators over an immutable root.

use std::cmp::Ordering;

use crate::bytes::short_eq;
use crate::node::{Link, Node};
use crate::watch::Watch;

/// A persistent adaptive radix tree mapping byte-string keys to `V`.
///
/// Cloning a tree is one reference count: the clone is a snapshot that
/// later transactions never change. Writes go through a [`Txn`](crate::Txn).
///
/// ```
/// let tree = part::Tree::new();
/// let mut txn = tree.txn();
/// txn.insert(b"hello", 1);
/// txn.insert(b"help", 2);
/// let (tree2, watches) = txn.commit();
/// watches.close();
/// assert_eq!(tree2.get(b"hello"), Some(&1));
/// assert_eq!(tree.get(b"hello"), None); // the old root is unchanged
/// let keys: Vec<_> = tree2.prefix(b"hel").0.map(|(k, _)| k.to_vec()).collect();
/// assert_eq!(keys, vec![b"hello".to_vec(), b"help".to_vec()]);
/// ```
pub struct Tree<V> {
    pub(crate) root: Link<V>,
    pub(crate) len: usize,
    pub(crate) root_only_watch: bool,
}

impl<V> Clone for Tree<V> {
    fn clone(&self) -> Self {
        Tree {
            root: self.root.clone(),
            len: self.len,
            root_only_watch: self.root_only_watch,
        }
    }
}

impl<V> Default for Tree<V> {
    fn default() -> Self {
        Tree::new()
    }
}

impl<V> std::fmt::Debug for Tree<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tree")
            .field("len", &self.len)
            .field("root_only_watch", &self.root_only_watch)
            .finish()
    }
}

impl<V> Tree<V> {
    /// An empty tree whose every node can hand out a watch.
    pub fn new() -> Self {
        Tree {
            root: Link::new(Node::empty()),
            len: 0,
            root_only_watch: false,
        }
    }

    /// An empty tree with only a root watch: every query returns the root
    /// watch, which closes on any change. Cheaper to write; meant for
    /// collections inside objects and for indexes nobody watches by key.
    pub fn new_root_only_watch() -> Self {
        Tree {
            root: Link::new(Node::empty()),
            len: 0,
            root_only_watch: true,
        }
    }

    /// True if this tree only has a root watch.
    pub fn is_root_only_watch(&self) -> bool {
        self.root_only_watch
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the tree holds no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The watch that closes on any change of the tree.
    pub fn root_watch(&self) -> Watch {
        self.root.node_watch()
    }

    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        get(&self.root, key).and_then(Node::value)
    }

    /// The value of `key` and a watch that closes when the key is inserted,
    /// replaced or deleted. For a missing key, the watch of the closest node
    /// is returned: it may also close when neighbouring keys change.
    pub fn get_watch(&self, key: &[u8]) -> (Option<&V>, Watch) {
        get_watch(&self.root, key, self.root_only_watch)
    }

    /// Ordered iteration over all keys.
    pub fn iter(&self) -> Iter<'_, V> {
        Iter::whole(&self.root)
    }

    /// Ordered iteration over the keys starting with `prefix`, and a watch
    /// that closes when any key under the prefix changes.
    pub fn prefix(&self, prefix: &[u8]) -> (Iter<'_, V>, Watch) {
        let (node, watch) = prefix_search(&self.root, prefix);
        let iter = match node {
            Some(n) => Iter::whole(n),
            None => Iter::empty(),
        };
        let watch = if self.root_only_watch {
            self.root.node_watch()
        } else {
            watch.node_watch()
        };
        (iter, watch)
    }

    /// Ordered iteration over the keys greater than or equal to `key`.
    pub fn lower_bound(&self, key: &[u8]) -> Iter<'_, V> {
        let mut iter = Iter::empty();
        lower_bound_stack(&self.root, key, &mut iter.stack);
        iter
    }

    /// Like [`Tree::lower_bound`], with a watch that closes when any key
    /// changes (the root watch: a lower bound spans most of the tree).
    pub fn lower_bound_watch(&self, key: &[u8]) -> (Iter<'_, V>, Watch) {
        (self.lower_bound(key), self.root.node_watch())
    }

    /// The first key (in order) and its value. One descent along the
    /// leftmost path; unlike `iter().next()`, it allocates nothing.
    pub fn first(&self) -> Option<(&[u8], &V)> {
        leftmost(&self.root)
    }

    /// The first key (in order) that starts with `prefix`, and its value:
    /// `prefix(prefix).0.next()` without building an iterator.
    ///
    /// ```
    /// let mut txn = part::Tree::new().txn();
    /// txn.insert(b"b2", 2);
    /// txn.insert(b"b1", 1);
    /// txn.insert(b"c", 3);
    /// let tree = txn.commit_and_close();
    /// assert_eq!(tree.prefix_first(b"b"), Some((&b"b1"[..], &1)));
    /// assert_eq!(tree.prefix_first(b"a"), None);
    /// ```
    pub fn prefix_first(&self, prefix: &[u8]) -> Option<(&[u8], &V)> {
        prefix_first(&self.root, prefix)
    }

    /// Longest-prefix match over keys written as a path closed by an end
    /// byte: the greatest `n` such that some key starts with `path[..n]`
    /// followed by `end`, found in one descent along `path`; with a watch
    /// that closes whenever the answer for `path` may change (a key added,
    /// replaced or removed at that match or more specific than it, or any
    /// change when nothing matched). The path must not contain `end`.
    ///
    /// It is the primitive of a longest-prefix-match index: keys are bit
    /// strings, one byte per bit, each followed by `end`, so that the keys
    /// whose bit string is a prefix of `path` are exactly those starting
    /// with some `path[..n]` then `end`.
    ///
    /// ```
    /// use part::Tree;
    /// // Bits as 2 and 3, closed by 1.
    /// let tree = Tree::new().insert(&[1], "default").insert(&[3, 2, 1], "10/2");
    /// assert_eq!(tree.longest_prefix_watch(&[3, 2, 3]).0, Some(2));
    /// assert_eq!(tree.longest_prefix_watch(&[2, 2]).0, Some(0));
    /// let (n, watch) = Tree::<()>::new().longest_prefix_watch(&[3]);
    /// assert_eq!(n, None);
    /// # let _ = watch;
    /// ```
    pub fn longest_prefix_watch(&self, path: &[u8]) -> (Option<usize>, Watch) {
        let (n, node) = longest_prefix(&self.root, path, LPM_END);
        let watch = if self.root_only_watch {
            self.root.node_watch()
        } else {
            node.node_watch()
        };
        (n, watch)
    }

    /// The last key (in order) and its value.
    pub fn last(&self) -> Option<(&[u8], &V)> {
        let mut node: &Node<V> = &self.root;
        loop {
            let mut last = None;
            let mut cursor = 0;
            while let Some((c, child)) = node.children.cursor_next(cursor) {
                last = Some(child);
                cursor = c + 1;
            }
            match last {
                Some(child) => node = child,
                None => return node.entry(),
            }
        }
    }

    /// An iterator that owns a snapshot of the tree (no borrow), yielding
    /// cloned values in key order.
    pub fn into_owned_iter(self) -> OwnedIter<V> {
        OwnedIter::whole(self.root)
    }

    /// Like [`Tree::prefix`], but the iterator owns its snapshot.
    pub fn prefix_owned(&self, prefix: &[u8]) -> (OwnedIter<V>, Watch) {
        let (node, watch) = prefix_search(&self.root, prefix);
        let iter = match node {
            Some(n) => OwnedIter::whole(n.clone()),
            None => OwnedIter::empty(),
        };
        let watch = if self.root_only_watch {
            self.root.node_watch()
        } else {
            watch.node_watch()
        };
        (iter, watch)
    }

    /// An iterator that owns a snapshot of the tree, in descending key
    /// order.
    pub fn into_owned_rev_iter(self) -> OwnedRevIter<V> {
        OwnedRevIter::whole(self.root)
    }

    /// The keys starting with `prefix` in descending order, owning its
    /// snapshot.
    pub fn prefix_owned_rev(&self, prefix: &[u8]) -> OwnedRevIter<V> {
        match prefix_search(&self.root, prefix).0 {
            Some(n) => OwnedRevIter::whole(n.clone()),
            None => OwnedRevIter { stack: Vec::new() },
        }
    }

    /// Like [`Tree::lower_bound`], but the iterator owns its snapshot.
    pub fn lower_bound_owned(&self, key: &[u8]) -> OwnedIter<V> {
        let mut stack = Vec::new();
        lower_bound_stack(&self.root, key, &mut stack);
        OwnedIter {
            stack: stack
                .into_iter()
                .map(|f| Frame {
                    node: f.node.clone(),
                    cursor: f.cursor,
                    leaf_pending: f.leaf_pending,
                })
                .collect(),
        }
    }
}

impl<'a, V> IntoIterator for &'a Tree<V> {
    type Item = (&'a [u8], &'a V);
    type IntoIter = Iter<'a, V>;
    fn into_iter(self) -> Iter<'a, V> {
        self.iter()
    }
}

/// The node whose leaf holds `key`.
#[inline]
pub(crate) fn get<'a, V>(root: &'a Node<V>, key: &[u8]) -> Option<&'a Node<V>> {
    get_below(root, key, 0)
}

/// Like [`get`], from a node whose path is the first `depth` bytes of
/// `key` (the caller matched them).
#[inline]
pub(crate) fn get_below<'a, V>(
    mut node: &'a Node<V>,
    key: &[u8],
    mut d: usize,
) -> Option<&'a Node<V>> {
    loop {
        let p = node.prefix();
        if !p.is_empty() {
            if !short_eq(key.get(d..d + p.len())?, p) {
                return None;
            }
            d += p.len();
        }
        if d == key.len() {
            return node.leaf.as_ref().map(|_| node);
        }
        node = node.children.get(key[d])?;
        d += 1;
    }
}

pub(crate) fn get_watch<'a, V>(
    root: &'a Node<V>,
    key: &[u8],
    root_only: bool,
) -> (Option<&'a V>, Watch) {
    if root_only {
        return (get(root, key).and_then(Node::value), root.node_watch());
    }
    let mut node = root;
    let mut d = 0;
    loop {
        let p = node.prefix();
        if !key.get(d..d + p.len()).is_some_and(|k| short_eq(k, p)) {
            // An insert of `key` would split this node, which replaces it.
            return (None, node.node_watch());
        }
        d += p.len();
        if d == key.len() {
            return match &node.leaf {
                Some(l) => (Some(&l.value), node.watches.leaf()),
                None => (None, node.node_watch()),
            };
        }
        match node.children.get(key[d]) {
            Some(c) => {
                node = c;
                d += 1;
            }
            None => return (None, node.node_watch()),
        }
    }
}

/// The smallest key at or below `node`: a node's own key sorts before
/// its children's (it is their prefix), and the children are in order.
/// Every node but an empty root has a leaf or a child, so the walk ends at
/// a leaf.
pub(crate) fn leftmost<V>(mut node: &Node<V>) -> Option<(&[u8], &V)> {
    loop {
        if let Some(entry) = node.entry() {
            return Some(entry);
        }
        node = node.children.cursor_next(0)?.1;
    }
}

/// The first key under `prefix` below `root`, for `Tree::prefix_first` and
/// `Txn::prefix_first`.
pub(crate) fn prefix_first<'a, V>(root: &'a Link<V>, prefix: &[u8]) -> Option<(&'a [u8], &'a V)> {
    leftmost(prefix_search(root, prefix).0?)
}

/// The end byte of longest-prefix-match keys ([`Tree::longest_prefix_watch`]):
/// the lowest, so that a key sorts before the keys it is a prefix of.
pub const LPM_END: u8 = 1;

/// See [`Tree::longest_prefix_watch`]: the match length, and the node
/// whose watch covers every change that can alter the answer. That is the
/// node at whose boundary the match was found (a more specific key would
/// be added below it, and the match itself lies below it), or the node
/// whose compressed prefix holds the end byte (a more specific key splits
/// it), or the root when nothing matched.
pub(crate) fn longest_prefix<'a, V>(
    root: &'a Node<V>,
    path: &[u8],
    end: u8,
) -> (Option<usize>, &'a Node<V>) {
    let mut best: (Option<usize>, &Node<V>) = (None, root);
    let mut node = root;
    let mut d = 0;
    loop {
        for (i, &b) in node.prefix().iter().enumerate() {
            if path.get(d + i) != Some(&b) {
                // Every key under `node` starts with `path[..d + i]`, then
                // `b`: a match if `b` ends the key, else nothing deeper.
                return if b == end { (Some(d + i), node) } else { best };
            }
        }
        d += node.prefix_len();
        if node.children.get(end).is_some() {
            best = (Some(d), node);
        }
        let Some(&b) = path.get(d) else {
            return best;
        };
        match node.children.get(b) {
            Some(c) => {
                node = c;
                d += 1;
            }
            None => return best,
        }
    }
}

/// The node whose subtree holds exactly the keys with `prefix`, and the
/// node whose watch covers every change under the prefix.
pub(crate) fn prefix_search<'a, V>(
    root: &'a Link<V>,
    prefix: &[u8],
) -> (Option<&'a Link<V>>, &'a Node<V>) {
    let mut node: &Link<V> = root;
    let mut d = 0;
    loop {
        let pre = node.prefix();
        let rest = &prefix[d..];
        if rest.len() <= pre.len() {
            // Ending inside the compressed prefix: a key added under
            // `prefix` but not under this node would split (replace) it.
            return if pre.starts_with(rest) {
                (Some(node), node)
            } else {
                (None, node)
            };
        }
        if !rest.starts_with(pre) {
            return (None, node);
        }
        d += pre.len();
        match node.children.get(prefix[d]) {
            Some(c) => {
                node = c;
                d += 1;
            }
            None => return (None, node),
        }
    }
}

pub(crate) fn lower_bound_stack<'a, V>(
    root: &'a Link<V>,
    key: &[u8],
    stack: &mut Vec<Frame<&'a Link<V>>>,
) {
    let mut node = root;
    let mut d = 0;
    loop {
        let pre = node.prefix();
        let rest = &key[d..];
        let n = pre.len().min(rest.len());
        match pre[..n].cmp(&rest[..n]) {
            Ordering::Greater => {
                stack.push(Frame::whole(node));
                return;
            }
            Ordering::Less => return,
            Ordering::Equal => {
                if rest.len() <= pre.len() {
                    stack.push(Frame::whole(node));
                    return;
                }
                d += pre.len();
                // The leaf here is a proper prefix of `key`, so smaller.
                let (cursor, exact) = node.children.seek(key[d]);
                stack.push(Frame {
                    node,
                    cursor,
                    leaf_pending: false,
                });
                match exact {
                    Some(c) => {
                        node = c;
                        d += 1;
                    }
                    None => return,
                }
            }
        }
    }
}

pub(crate) struct Frame<P> {
    pub node: P,
    pub cursor: usize,
    pub leaf_pending: bool,
}

impl<P> Frame<P> {
    fn whole(node: P) -> Self {
        Frame {
            node,
            cursor: 0,
            leaf_pending: true,
        }
    }
}

/// Borrowing ordered iterator over `(key, value)`.
pub struct Iter<'a, V> {
    pub(crate) stack: Vec<Frame<&'a Link<V>>>,
}

impl<'a, V> Iter<'a, V> {
    pub(crate) fn whole(node: &'a Link<V>) -> Self {
        let mut stack = Vec::with_capacity(8);
        stack.push(Frame::whole(node));
        Iter { stack }
    }
    pub(crate) fn empty() -> Self {
        Iter { stack: Vec::new() }
    }
}

impl<'a, V> Iter<'a, V> {
    /// The next value, without decoding its key: for callers that read
    /// values only (a table scan hands out objects, not index keys).
    /// Advances the same iteration as [`Iterator::next`].
    ///
    /// ```
    /// let tree = part::Tree::new().insert(b"a", 1).insert(b"b", 2);
    /// let mut it = tree.iter();
    /// assert_eq!(it.next_value(), Some(&1));
    /// assert_eq!(it.next(), Some((&b"b"[..], &2)));
    /// assert_eq!(it.next_value(), None);
    /// ```
    #[inline]
    pub fn next_value(&mut self) -> Option<&'a V> {
        self.advance(Node::value)
    }

    /// Walks to the next node with a leaf and hands it to `project`.
    #[inline]
    fn advance<R>(&mut self, project: impl Fn(&'a Node<V>) -> Option<R>) -> Option<R> {
        loop {
            let top = self.stack.last_mut()?;
            let node: &'a Link<V> = top.node;
            if top.leaf_pending {
                top.leaf_pending = false;
                if let Some(e) = project(node) {
                    return Some(e);
                }
            }
            match node.children.cursor_next(top.cursor) {
                Some((c, child)) => {
                    top.cursor = c + 1;
                    if child.children.is_empty() {
                        // Leaf-only child: yield without a frame.
                        if let Some(e) = project(child) {
                            return Some(e);
                        }
                    } else {
                        self.stack.push(Frame::whole(child));
                    }
                }
                None => {
                    self.stack.pop();
                }
            }
        }
    }
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a [u8], &'a V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.advance(Node::entry)
    }
}

/// Ordered iterator that owns its snapshot; yields `(key, value)` clones.
pub struct OwnedIter<V> {
    stack: Vec<Frame<Link<V>>>,
}

impl<V> OwnedIter<V> {
    fn whole(node: Link<V>) -> Self {
        let mut stack = Vec::with_capacity(8);
        stack.push(Frame::whole(node));
        OwnedIter { stack }
    }

    fn empty() -> Self {
        OwnedIter { stack: Vec::new() }
    }

    /// Advances and calls `f` with the next key and value by reference,
    /// sparing the key copy of [`Iterator::next`].
    #[inline]
    pub fn next_with<R>(&mut self, f: impl FnOnce(&[u8], &V) -> R) -> Option<R> {
        loop {
            let top = self.stack.last_mut()?;
            if top.leaf_pending {
                top.leaf_pending = false;
                if let Some((k, v)) = top.node.entry() {
                    return Some(f(k, v));
                }
            }
            match top.node.children.cursor_next(top.cursor) {
                Some((c, child)) => {
                    top.cursor = c + 1;
                    if child.children.is_empty() {
                        if let Some((k, v)) = child.entry() {
                            return Some(f(k, v));
                        }
                    } else {
                        let child = child.clone();
                        self.stack.push(Frame::whole(child));
                    }
                }
                None => {
                    self.stack.pop();
                }
            }
        }
    }
}

impl<V: Clone> Iterator for OwnedIter<V> {
    type Item = (crate::Key, V);
    fn next(&mut self) -> Option<Self::Item> {
        self.next_with(|k, v| (crate::Key::from_slice(k), v.clone()))
    }
}

/// Iterator in descending key order that owns its snapshot.
pub struct OwnedRevIter<V> {
    /// Frames with the exclusive upper child cursor; a node's own leaf
    /// comes after all its children (its key is a prefix of theirs).
    stack: Vec<Frame<Link<V>>>,
}

impl<V> OwnedRevIter<V> {
    fn whole(node: Link<V>) -> Self {
        let mut stack = Vec::with_capacity(8);
        stack.push(Frame {
            node,
            cursor: usize::MAX,
            leaf_pending: true,
        });
        OwnedRevIter { stack }
    }

    /// Advances and calls `f` with the next (smaller) key and its value.
    pub fn next_with<R>(&mut self, f: impl FnOnce(&[u8], &V) -> R) -> Option<R> {
        loop {
            let top = self.stack.last_mut()?;
            match top.node.children.cursor_prev(top.cursor) {
                Some((c, child)) => {
                    top.cursor = c;
                    if child.children.is_empty() {
                        if let Some((k, v)) = child.entry() {
                            return Some(f(k, v));
                        }
                    } else {
                        let child = child.clone();
                        self.stack.push(Frame {
                            node: child,
                            cursor: usize::MAX,
                            leaf_pending: true,
                        });
                    }
                }
                None => {
                    let frame = self.stack.pop()?;
                    if let Some((k, v)) = frame.node.entry() {
                        return Some(f(k, v));
                    }
                }
            }
        }
    }
}

impl<V: Clone> Iterator for OwnedRevIter<V> {
    type Item = (crate::Key, V);
    fn next(&mut self) -> Option<Self::Item> {
        self.next_with(|k, v| (crate::Key::from_slice(k), v.clone()))
    }
}

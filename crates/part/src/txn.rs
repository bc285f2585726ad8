//! Write transactions: batches of changes that copy each path once.

use triomphe::Arc;
use unsize::{CoerceUnsize, Coercion};

use crate::bytes::short_eq;
use crate::node::{Key, Link, Node};
use crate::tree::{self, Iter, OwnedIter, Tree};
use crate::watch::{Seal, Watch, WatchesToClose};

/// A write transaction over a [`Tree`].
///
/// The first change below a shared node copies it; the copy belongs to the
/// transaction and later changes mutate it in place, so a batch of N
/// inserts copies each path at most once. Reads see the transaction's own
/// writes. [`Txn::commit`] returns the new tree; dropping the transaction
/// discards it and fires no watch.
///
/// ```
/// let tree = part::Tree::new();
/// let (_, watch) = tree.get_watch(b"k");
/// let mut txn = tree.txn();
/// txn.insert(b"k", "v");
/// assert_eq!(txn.get(b"k"), Some(&"v"));
/// let (tree, watches) = txn.commit();
/// assert!(!watch.is_closed()); // not yet: publish `tree` first
/// watches.close();
/// assert!(watch.is_closed());
/// assert_eq!(tree.len(), 1);
/// ```
pub struct Txn<V> {
    root: Link<V>,
    len: usize,
    root_only_watch: bool,
    ctx: Ctx,
}

#[derive(Default)]
struct Ctx {
    /// Key watches handed out by [`Txn::get_watch`]: closed on abort.
    handed_out: Vec<Watch>,
    /// Nodes of the original tree this transaction replaced, with whether
    /// the leaf's watch was carried over to the copy.
    retired: crate::watch::Retired,
    /// Watches taken from nodes the transaction changed in place.
    close: Vec<Watch>,
}

impl<V: Clone + Send + Sync + 'static> Txn<V> {
    pub(crate) fn new(tree: &Tree<V>) -> Self {
        Txn {
            root: tree.root.clone(),
            len: tree.len,
            root_only_watch: tree.root_only_watch,
            ctx: Ctx::default(),
        }
    }

    /// The root as of now, for reads shared with [`Tree`].
    pub(crate) fn root(&self) -> &crate::node::Node<V> {
        &self.root
    }

    /// Number of keys, including this transaction's changes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the tree would be empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `key`, seeing this transaction's writes.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        tree::get(&self.root, key).and_then(Node::value)
    }

    /// The watch of `key` as this transaction left it (created on first
    /// request), or `None` if the key is absent. Once committed, it closes
    /// when a later transaction replaces or deletes the key (or this one
    /// writes it again); [`Txn::abort`] closes it, since the value it
    /// watches never comes to be. (Dropping the transaction instead leaves
    /// it open.)
    pub fn get_watch(&mut self, key: &[u8]) -> Option<Watch> {
        let node = tree::get(&self.root, key)?;
        let w = node.watches.leaf();
        self.ctx.handed_out.push(w.clone());
        Some(w)
    }

    /// Discards the transaction and closes the watches handed out by
    /// [`Txn::get_watch`].
    pub fn abort(self) {
        for w in &self.ctx.handed_out {
            w.close();
        }
    }

    /// Ordered iteration over the current contents.
    pub fn iter(&self) -> Iter<'_, V> {
        Iter::whole(&self.root)
    }

    /// Ordered iteration over the keys starting with `prefix`.
    pub fn prefix(&self, prefix: &[u8]) -> Iter<'_, V> {
        match tree::prefix_search(&self.root, prefix).0 {
            Some(n) => Iter::whole(n),
            None => Iter::empty(),
        }
    }

    /// The first key (in order) starting with `prefix`, and its value,
    /// including this transaction's changes; allocates nothing.
    pub fn prefix_first(&self, prefix: &[u8]) -> Option<(&[u8], &V)> {
        tree::prefix_first(&self.root, prefix)
    }

    /// Ordered iteration over the keys greater than or equal to `key`.
    pub fn lower_bound(&self, key: &[u8]) -> Iter<'_, V> {
        let mut iter = Iter::empty();
        tree::lower_bound_stack(&self.root, key, &mut iter.stack);
        iter
    }

    /// A snapshot of the current contents as a tree. Later writes in this
    /// transaction do not change it.
    pub fn snapshot(&self) -> Tree<V> {
        Tree {
            root: self.root.clone(),
            len: self.len,
            root_only_watch: self.root_only_watch,
        }
    }

    /// Iterator owning a snapshot of the current contents.
    pub fn owned_iter(&self) -> OwnedIter<V> {
        self.snapshot().into_owned_iter()
    }

    /// Sets `key` to `value`; returns the previous value.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        self.modify(key, |_| value)
    }

    /// Sets `key` to `f(current value)`; returns the previous value.
    pub fn modify(&mut self, key: &[u8], f: impl FnOnce(Option<&V>) -> V) -> Option<V> {
        let full = !self.root_only_watch;
        let (old, added) = upsert(&mut self.root, key, 0, f, &mut self.ctx, full, true);
        if added {
            self.len += 1;
        }
        old
    }

    /// Removes `key`; returns its value if it was present.
    pub fn delete(&mut self, key: &[u8]) -> Option<V> {
        let full = !self.root_only_watch;
        let old = delete(&mut self.root, key, 0, &mut self.ctx, full, true);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        if self.len == 0 {
            return;
        }
        let keys: Vec<Key> = self.iter().map(|(k, _)| Key::from_slice(k)).collect();
        for k in keys {
            self.delete(&k);
        }
    }

    /// Ends the transaction: the new tree, and the watches its changes
    /// invalidated. Publish the tree first, then [`WatchesToClose::close`].
    pub fn commit(self) -> (Tree<V>, WatchesToClose) {
        let tree = Tree {
            root: self.root,
            len: self.len,
            root_only_watch: self.root_only_watch,
        };
        let watches = WatchesToClose {
            watches: self.ctx.close,
            retired: self.ctx.retired,
        };
        (tree, watches)
    }

    /// Commits and closes the invalidated watches at once: for trees that
    /// are not published anywhere else.
    pub fn commit_and_close(self) -> Tree<V> {
        let (tree, watches) = self.commit();
        watches.close();
        tree
    }
}

// The tree's write entry points live beside the transaction, so that the
// tree module (reads only) needs nothing of this one.
impl<V: Clone + Send + Sync + 'static> Tree<V> {
    /// Starts a write transaction on this tree. The tree itself is not
    /// changed; [`Txn::commit`] returns the new tree.
    pub fn txn(&self) -> Txn<V> {
        Txn::new(self)
    }

    /// Persistent single insert: a new tree with `key` set to `value`.
    /// For more than one change, use a [`Txn`]: it copies each path once.
    pub fn insert(&self, key: &[u8], value: V) -> Tree<V> {
        let mut txn = self.txn();
        txn.insert(key, value);
        txn.commit_and_close()
    }

    /// Persistent single delete: a new tree without `key`.
    pub fn delete(&self, key: &[u8]) -> Tree<V> {
        let mut txn = self.txn();
        txn.delete(key);
        txn.commit_and_close()
    }
}

/// Makes the node in `slot` private to the transaction, copying it if it is
/// shared. The copied original is retired: its watches close on commit.
/// Always inlined, with everything but the common case out of line: every
/// write calls it on each node of its path, and after a transaction's
/// first write there the node is private and unwatched, which two loads
/// tell. (Left to the compiler, it was a call of its own again, a fifth
/// of `part_replace`.)
#[inline(always)]
fn make_mut<'a, V: Clone + Send + Sync + 'static>(
    slot: &'a mut Link<V>,
    ctx: &mut Ctx,
    retire: bool,
) -> &'a mut Node<V> {
    if !(slot.is_unique() && slot.watches.is_unset()) {
        prepare_for_write(slot, ctx, retire);
    }
    Arc::get_mut(slot).expect("node is private after prepare_for_write")
}

/// The uncommon half of [`make_mut`]: copies a shared node, and takes out
/// a watch a private node may still carry (handed out while it was
/// reachable from a snapshot that is gone now), to close on commit.
#[cold]
#[inline(never)]
fn prepare_for_write<V: Clone + Send + Sync + 'static>(
    slot: &mut Link<V>,
    ctx: &mut Ctx,
    retire: bool,
) {
    if !slot.is_unique() {
        let (copy, leaf_shared) = slot.clone_for_write();
        let old = std::mem::replace(slot, Arc::new(copy));
        if retire {
            let old: Arc<dyn Seal> = old.unsize(Coercion!(to dyn Seal));
            ctx.retired.push((old, leaf_shared));
        }
    }
    if let Some(node) = Arc::get_mut(slot)
        && let Some(w) = node.watches.take_node()
    {
        ctx.close.push(w);
    }
}

/// Changes a node's prefix without changing its keys. A shared node is
/// copied with its watches shared, so its watchers are not woken.
fn set_prefix<V: Clone>(link: &mut Link<V>, prefix: &[u8], full: bool) {
    match Arc::get_mut(link) {
        Some(n) => n.set_prefix(prefix),
        None => {
            let mut n = if full {
                link.clone_same_keys()
            } else {
                link.clone_for_write().0
            };
            n.set_prefix(prefix);
            *link = Arc::new(n);
        }
    }
}

/// Takes a leaf-only node out of the tree: its value, with its watches
/// closed on commit (taken if it is private, retired if shared).
fn retire_leaf_node<V: Clone + Send + Sync + 'static>(
    mut old: Link<V>,
    ctx: &mut Ctx,
    full: bool,
) -> Option<V> {
    if let Some(n) = Arc::get_mut(&mut old) {
        if let Some(w) = n.watches.take_node() {
            ctx.close.push(w);
        }
        if let Some(leaf) = n.leaf.take() {
            if let Some(w) = n.watches.take_leaf() {
                ctx.close.push(w);
            }
            return Some(leaf.value);
        }
    }
    let value = old.leaf.as_ref().map(|l| l.value.clone());
    if full {
        let old: Arc<dyn Seal> = old.unsize(Coercion!(to dyn Seal));
        ctx.retired.push((old, false));
    }
    value
}

#[inline]
fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Inserts or modifies `key` below `slot`, whose prefix the caller matched.
/// Returns the old value and whether a key was added. A loop, not
/// recursion: a path is as deep as the longest key's chain of prefixes.
fn upsert<V: Clone + Send + Sync + 'static>(
    mut slot: &mut Link<V>,
    key: &[u8],
    mut depth: usize,
    f: impl FnOnce(Option<&V>) -> V,
    ctx: &mut Ctx,
    full: bool,
    is_root: bool,
) -> (Option<V>, bool) {
    let mut retire = full || is_root;
    loop {
        let node = make_mut(slot, ctx, retire);
        let d = depth + node.prefix_len();
        if d == key.len() {
            return match &mut node.leaf {
                Some(leaf) => {
                    let new = f(Some(&leaf.value));
                    let old = std::mem::replace(&mut leaf.value, new);
                    if let Some(w) = node.watches.take_leaf() {
                        ctx.close.push(w);
                    }
                    (Some(old), false)
                }
                None => {
                    node.set_leaf(key, f(None));
                    (None, true)
                }
            };
        }
        let b = key[d];
        let rest = &key[d + 1..];
        // Looked up by slot: a borrow from `get_mut` held across the insert
        // below is refused when the child becomes the next loop's slot.
        let Some(at) = node.children.slot_of(b) else {
            node.children
                .insert(b, Arc::new(Node::new_leaf(rest.len(), key, f(None))));
            return (None, true);
        };
        let Some(child) = node.children.slot_mut(at) else {
            return (None, false);
        };
        let plen = child.prefix_len();
        let common = if plen == 0 {
            0
        } else {
            common_prefix_len(child.prefix(), rest)
        };
        if common == plen {
            if common == rest.len()
                && child.children.is_empty()
                && child.leaf.is_some()
                && !child.is_unique()
            {
                // Replacing the value of a shared leaf-only node: build the
                // new node directly rather than copy the old one and
                // overwrite it.
                let old = child.leaf.as_ref().map(|l| &l.value);
                let node = child.leaf_with_value(f(old));
                let old = std::mem::replace(child, Arc::new(node));
                return (retire_leaf_node(old, ctx, full), false);
            }
            slot = child;
            depth = d + 1;
            retire = full;
            continue;
        }
        return split_and_insert(child, key, rest, common, f, ctx, full);
    }
}

/// `key` leaves `child`'s compressed path after `common` bytes of `rest`
/// (the key after the edge byte): split the path with a new inner node
/// holding the common part, and add the key there.
fn split_and_insert<V: Clone + Send + Sync + 'static>(
    child: &mut Link<V>,
    key: &[u8],
    rest: &[u8],
    common: usize,
    f: impl FnOnce(Option<&V>) -> V,
    ctx: &mut Ctx,
    full: bool,
) -> (Option<V>, bool) {
    let child_plen = child.prefix().len();
    let edge = child.prefix()[common];
    let inner = Node::inner(&child.prefix()[..common]);
    let mut old = std::mem::replace(child, Arc::new(inner));
    // The split node is replaced (its node watch closes): queries that
    // ended inside its compressed prefix were given that watch. Its new
    // prefix is the tail of its old one after the edge byte.
    make_mut(&mut old, ctx, full).shorten_prefix(child_plen - common - 1);
    let inner = Arc::get_mut(child).expect("new node is private");
    inner.children.insert(edge, old);
    if rest.len() == common {
        inner.set_leaf(key, f(None));
    } else {
        inner.children.insert(
            rest[common],
            Arc::new(Node::new_leaf(rest.len() - common - 1, key, f(None))),
        );
    }
    (None, true)
}

/// Deletes `key` below `slot`, whose path is the first `depth` bytes of
/// the key; `None` if the key is absent.
///
/// One descent, a loop, not recursion. Only the parent of the node that
/// loses the key needs fixing afterwards (a non-root node without a leaf
/// has at least two children, so the removal cannot cascade further up):
/// the loop walks down until the next node is where the key ends, or holds
/// it in a leaf-only child, removes it there and repairs that node in its
/// parent.
///
/// Deleting a missing key must change nothing: no copy, no closed watch.
/// So until the key is known to exist, the walk passes only nodes that are
/// private to the transaction and carry no watch (for those, `make_mut`
/// changes nothing) and matches their prefixes itself; at the first other
/// node it looks the rest of the way down before touching it. In a
/// transaction's later deletes the upper levels are private already, so
/// the look covers the last level or two, which the delete reads anyway.
fn delete<V: Clone + Send + Sync + 'static>(
    mut slot: &mut Link<V>,
    key: &[u8],
    mut depth: usize,
    ctx: &mut Ctx,
    full: bool,
    is_root: bool,
) -> Option<V> {
    let mut retire = full || is_root;
    let mut found = false;
    loop {
        // Not known yet, and a node `make_mut` would change: look first.
        if !(found || (slot.is_unique() && slot.watches.is_unset())) {
            tree::get_below(slot, key, depth)?;
            found = true;
        }
        let node = make_mut(slot, ctx, retire);
        let p = node.prefix();
        if !found
            && !key
                .get(depth..depth + p.len())
                .is_some_and(|k| short_eq(k, p))
        {
            return None;
        }
        let d = depth + p.len();
        if d == key.len() {
            // Only reached at the root: below it, the parent handles the
            // node where the key ends. (No leaf: nothing was changed.)
            return take_leaf(node, ctx);
        }
        let b = key[d];
        let child = node.children.get(b)?;
        if child.children.is_empty() {
            // A leaf-only child holds the key if its prefix is the rest:
            // unlink it whole instead of copying it first.
            if !found && !short_eq(child.prefix(), &key[d + 1..]) {
                return None;
            }
            let old = node.children.remove(b)?;
            return retire_leaf_node(old, ctx, full);
        }
        let cd = d + 1 + child.prefix().len();
        let ends_in_child = cd == key.len()
            || key
                .get(cd)
                .and_then(|gb| child.children.get(*gb))
                .is_none_or(|g| g.children.is_empty());
        if ends_in_child {
            // `delete_in` copies the child: make sure first (the child and
            // its child were just read).
            if !found {
                tree::get_below(child, key, d + 1)?;
            }
            return delete_in(node, b, key, cd, ctx, full);
        }
        slot = node.children.get_mut(b)?;
        depth = d + 1;
        retire = full;
    }
}

/// Removes `key`, which ends in the child `b` of `node` or in a leaf-only
/// child of it (`cd` is the key depth after the child's prefix), then
/// removes or path-compresses that child.
fn delete_in<V: Clone + Send + Sync + 'static>(
    node: &mut Node<V>,
    b: u8,
    key: &[u8],
    cd: usize,
    ctx: &mut Ctx,
    full: bool,
) -> Option<V> {
    let child = node.children.get_mut(b)?;
    let c = make_mut(child, ctx, full);
    let old = if cd == key.len() {
        take_leaf(c, ctx)?
    } else {
        let gb = key[cd];
        let leaf_only = c.children.remove(gb)?;
        retire_leaf_node(leaf_only, ctx, full)?
    };
    if child.is_empty() {
        node.children.remove(b);
    } else if child.leaf.is_none()
        && let Some(gb) = child.children.only_byte()
    {
        // Path compression: the child is now a pass-through; lift its
        // only child into its place with the joined prefix.
        let c = Arc::get_mut(child).expect("child is private after delete");
        if let Some(mut grandchild) = c.children.remove(gb) {
            let mut prefix = Key::from_slice(c.prefix());
            prefix.push(gb);
            prefix.extend_from_slice(grandchild.prefix());
            set_prefix(&mut grandchild, &prefix, full);
            *child = grandchild;
        }
    }
    Some(old)
}

/// Takes the leaf out of a private node; its watch closes on commit.
fn take_leaf<V>(node: &mut Node<V>, ctx: &mut Ctx) -> Option<V> {
    let leaf = node.take_leaf()?;
    if let Some(w) = node.watches.take_leaf() {
        ctx.close.push(w);
    }
    Some(leaf.value)
}

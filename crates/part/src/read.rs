//! The reads a snapshot and a transaction share.

use crate::tree::{Iter, Tree};
use crate::txn::Txn;

/// Reads common to a snapshot ([`Tree`]) and a transaction ([`Txn`], which
/// sees its own writes), so that code which only reads is written once for
/// both.
///
/// ```
/// use part::{Read, Tree};
/// fn count_under<R: Read<u32>>(r: &R, prefix: &[u8]) -> usize {
///     r.prefix_iter(prefix).count()
/// }
/// let mut txn = Tree::new().txn();
/// txn.insert(b"a1", 1);
/// txn.insert(b"a2", 2);
/// txn.insert(b"b1", 3);
/// assert_eq!(count_under(&txn, b"a"), 2);
/// let tree = txn.commit_and_close();
/// assert_eq!(count_under(&tree, b"a"), 2);
/// ```
pub trait Read<V> {
    /// Number of keys.
    fn len(&self) -> usize;

    /// True if there are no keys.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Option<&V>;

    /// Ordered iteration over all keys.
    fn iter(&self) -> Iter<'_, V>;

    /// Ordered iteration over the keys starting with `prefix`.
    fn prefix_iter(&self, prefix: &[u8]) -> Iter<'_, V>;

    /// The first key (in order) starting with `prefix`, and its value:
    /// what `prefix_iter(prefix).next()` yields, without building the
    /// iterator (for [`Tree`] and [`Txn`]: no allocation).
    fn prefix_first(&self, prefix: &[u8]) -> Option<(&[u8], &V)> {
        self.prefix_iter(prefix).next()
    }

    /// Ordered iteration over the keys greater than or equal to `key`.
    fn lower_bound(&self, key: &[u8]) -> Iter<'_, V>;

    /// The longest-prefix match of `path` ([`Tree::longest_prefix_watch`],
    /// keys closed by [`crate::LPM_END`]), without the watch.
    fn longest_prefix(&self, path: &[u8]) -> Option<usize>;

    /// The contents as an immutable tree (for a transaction: as of now;
    /// its later writes do not change it).
    fn snapshot(&self) -> Tree<V>;
}

impl<V> Read<V> for Tree<V> {
    #[inline]
    fn len(&self) -> usize {
        Tree::len(self)
    }
    #[inline]
    fn get(&self, key: &[u8]) -> Option<&V> {
        Tree::get(self, key)
    }
    #[inline]
    fn iter(&self) -> Iter<'_, V> {
        Tree::iter(self)
    }
    #[inline]
    fn prefix_iter(&self, prefix: &[u8]) -> Iter<'_, V> {
        self.prefix(prefix).0
    }
    #[inline]
    fn prefix_first(&self, prefix: &[u8]) -> Option<(&[u8], &V)> {
        Tree::prefix_first(self, prefix)
    }
    #[inline]
    fn lower_bound(&self, key: &[u8]) -> Iter<'_, V> {
        Tree::lower_bound(self, key)
    }
    #[inline]
    fn longest_prefix(&self, path: &[u8]) -> Option<usize> {
        crate::tree::longest_prefix(&self.root, path, crate::LPM_END).0
    }
    #[inline]
    fn snapshot(&self) -> Tree<V> {
        self.clone()
    }
}

impl<V: Clone + Send + Sync + 'static> Read<V> for Txn<V> {
    #[inline]
    fn len(&self) -> usize {
        Txn::len(self)
    }
    #[inline]
    fn get(&self, key: &[u8]) -> Option<&V> {
        Txn::get(self, key)
    }
    #[inline]
    fn iter(&self) -> Iter<'_, V> {
        Txn::iter(self)
    }
    #[inline]
    fn prefix_iter(&self, prefix: &[u8]) -> Iter<'_, V> {
        self.prefix(prefix)
    }
    #[inline]
    fn prefix_first(&self, prefix: &[u8]) -> Option<(&[u8], &V)> {
        Txn::prefix_first(self, prefix)
    }
    #[inline]
    fn lower_bound(&self, key: &[u8]) -> Iter<'_, V> {
        Txn::lower_bound(self, key)
    }
    #[inline]
    fn longest_prefix(&self, path: &[u8]) -> Option<usize> {
        crate::tree::longest_prefix(self.root(), path, crate::LPM_END).0
    }
    #[inline]
    fn snapshot(&self) -> Tree<V> {
        Txn::snapshot(self)
    }
}

#[cfg(test)]
mod tests {
    use super::Read;
    use crate::Tree;

    /// Both implementations answer every read alike for the same contents.
    #[test]
    fn tree_and_txn_read_alike() {
        let mut txn: crate::Txn<u32> = Tree::new().txn();
        for (i, k) in ["", "a", "ab", "abc", "b", "ba"].iter().enumerate() {
            txn.insert(k.as_bytes(), i as u32);
        }
        let tree = txn.snapshot();
        fn answers<R: Read<u32>>(r: &R) -> Vec<Vec<u32>> {
            let vals = |it: crate::Iter<'_, u32>| it.map(|(_, v)| *v).collect::<Vec<_>>();
            vec![
                vec![r.len() as u32, u32::from(r.is_empty())],
                r.get(b"ab").copied().into_iter().collect(),
                r.get(b"zz").copied().into_iter().collect(),
                vals(r.iter()),
                vals(r.prefix_iter(b"a")),
                vals(r.prefix_iter(b"c")),
                r.prefix_first(b"a").map(|(_, v)| *v).into_iter().collect(),
                r.prefix_first(b"c").map(|(_, v)| *v).into_iter().collect(),
                vals(r.lower_bound(b"abd")),
                vals(r.snapshot().iter()),
            ]
        }
        assert_eq!(answers(&tree), answers(&txn));
        assert_eq!(answers(&tree)[4], vec![1, 2, 3]);
        assert_eq!(answers(&tree)[6], vec![1]);
        assert_eq!(answers(&tree)[7], Vec::<u32>::new());
        assert_eq!(answers(&tree)[8], vec![4, 5]);
    }
}

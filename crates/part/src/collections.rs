//! Persistent `Map` and `Set` on the tree, for fields of immutable objects.
//! They use root-only watch trees: cheap to update, compared by content.

use std::fmt;

use crate::{KeyEncoding, Tree};

#[cfg(feature = "serde")]
mod serde_impls;

/// A persistent ordered map. Clones share structure; `insert` and `remove`
/// return a new map and leave `self` unchanged, while the `_mut` forms
/// update in place.
///
/// ```
/// use part::Map;
/// let m = Map::new().insert("b".to_string(), 2).insert("a".to_string(), 1);
/// let m2 = m.remove(&"a".to_string());
/// assert_eq!(m.get(&"a".to_string()), Some(&1));
/// assert_eq!(m2.len(), 1);
/// let keys: Vec<_> = m.iter().map(|(k, _)| k.as_str()).collect();
/// assert_eq!(keys, ["a", "b"]);
/// ```
pub struct Map<K, V> {
    tree: Tree<(K, V)>,
}

impl<K, V> Clone for Map<K, V> {
    fn clone(&self) -> Self {
        Map {
            tree: self.tree.clone(),
        }
    }
}

impl<K, V> Default for Map<K, V> {
    fn default() -> Self {
        Map {
            tree: Tree::new_root_only_watch(),
        }
    }
}

impl<K, V> Map<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.tree.len()
    }
    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.tree.iter().map(|(_, (k, v))| (k, v))
    }
    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.iter().map(|(k, _)| k)
    }
    /// Values in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }
}

impl<K: KeyEncoding, V> Map<K, V> {
    /// The value of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.get_as(key)
    }

    /// The value under a key given as another type that encodes the same
    /// way (a `&str` for a `String` key), so that a lookup need not build
    /// a `K`.
    pub fn get_as<Q: KeyEncoding + ?Sized>(&self, key: &Q) -> Option<&V> {
        self.tree.get(&key.to_key()).map(|(_, v)| v)
    }
    /// True if `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }
    /// Entries with keys greater than or equal to `key`, in order.
    pub fn lower_bound(&self, key: &K) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.tree
            .lower_bound(&key.to_key())
            .map(|(_, (k, v))| (k, v))
    }

    /// Entries whose encoded key starts with the encoding of `prefix`, in
    /// order: for strings and byte strings, the keys that start with it.
    ///
    /// ```
    /// use part::Map;
    /// let m: Map<String, u32> = ["eth0", "eth1", "lo"]
    ///     .iter()
    ///     .enumerate()
    ///     .map(|(i, k)| (k.to_string(), i as u32))
    ///     .collect();
    /// let eth: Vec<&str> = m.prefix("eth").map(|(k, _)| k.as_str()).collect();
    /// assert_eq!(eth, ["eth0", "eth1"]);
    /// ```
    pub fn prefix<Q: KeyEncoding + ?Sized>(
        &self,
        prefix: &Q,
    ) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.tree
            .prefix(&prefix.to_key())
            .0
            .map(|(_, (k, v))| (k, v))
    }
}

impl<K, V> Map<K, V>
where
    K: KeyEncoding + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A new map with `key` set to `value`.
    #[must_use]
    pub fn insert(&self, key: K, value: V) -> Self {
        let mut m = self.clone();
        m.insert_mut(key, value);
        m
    }
    /// Sets `key` to `value` in place; returns the previous value.
    pub fn insert_mut(&mut self, key: K, value: V) -> Option<V> {
        let mut txn = self.tree.txn();
        let old = txn.insert(&key.to_key(), (key, value));
        self.tree = txn.commit_and_close();
        old.map(|(_, v)| v)
    }
    /// A new map without `key`.
    #[must_use]
    pub fn remove(&self, key: &K) -> Self {
        let mut m = self.clone();
        m.remove_mut(key);
        m
    }
    /// Removes `key` in place; returns its value.
    pub fn remove_mut(&mut self, key: &K) -> Option<V> {
        let k = key.to_key();
        self.tree.get(&k)?;
        let mut txn = self.tree.txn();
        let old = txn.delete(&k);
        self.tree = txn.commit_and_close();
        old.map(|(_, v)| v)
    }
}

impl<K: PartialEq, V: PartialEq> PartialEq for Map<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}
impl<K: Eq, V: Eq> Eq for Map<K, V> {}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for Map<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K, V> FromIterator<(K, V)> for Map<K, V>
where
    K: KeyEncoding + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut txn = Tree::new_root_only_watch().txn();
        for (k, v) in iter {
            txn.insert(&k.to_key(), (k, v));
        }
        Map {
            tree: txn.commit_and_close(),
        }
    }
}

/// A persistent ordered set, with [`Set::union`] and [`Set::difference`].
///
/// ```
/// use part::Set;
/// let a: Set<u32> = [1, 2, 3].into_iter().collect();
/// let b: Set<u32> = [3, 4].into_iter().collect();
/// assert_eq!(a.union(&b).iter().copied().collect::<Vec<_>>(), [1, 2, 3, 4]);
/// assert_eq!(a.difference(&b).iter().copied().collect::<Vec<_>>(), [1, 2]);
/// ```
pub struct Set<T> {
    tree: Tree<T>,
}

impl<T> Clone for Set<T> {
    fn clone(&self) -> Self {
        Set {
            tree: self.tree.clone(),
        }
    }
}

impl<T> Default for Set<T> {
    fn default() -> Self {
        Set {
            tree: Tree::new_root_only_watch(),
        }
    }
}

impl<T> Set<T> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of members.
    pub fn len(&self) -> usize {
        self.tree.len()
    }
    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
    /// Members in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.tree.iter().map(|(_, t)| t)
    }
}

impl<T: KeyEncoding> Set<T> {
    /// True if `item` is a member.
    pub fn contains(&self, item: &T) -> bool {
        self.tree.get(&item.to_key()).is_some()
    }
}

impl<T: KeyEncoding + Clone + Send + Sync + 'static> Set<T> {
    /// A new set with `item` added.
    #[must_use]
    pub fn insert(&self, item: T) -> Self {
        let mut s = self.clone();
        s.insert_mut(item);
        s
    }
    /// Adds `item` in place; returns true if it was not present.
    pub fn insert_mut(&mut self, item: T) -> bool {
        let k = item.to_key();
        if self.tree.get(&k).is_some() {
            return false;
        }
        let mut txn = self.tree.txn();
        txn.insert(&k, item);
        self.tree = txn.commit_and_close();
        true
    }
    /// A new set without `item`.
    #[must_use]
    pub fn remove(&self, item: &T) -> Self {
        let mut s = self.clone();
        s.remove_mut(item);
        s
    }
    /// Removes `item` in place; returns true if it was present.
    pub fn remove_mut(&mut self, item: &T) -> bool {
        let k = item.to_key();
        if self.tree.get(&k).is_none() {
            return false;
        }
        let mut txn = self.tree.txn();
        txn.delete(&k);
        self.tree = txn.commit_and_close();
        true
    }
    /// Members of either set.
    #[must_use]
    pub fn union(&self, other: &Set<T>) -> Set<T> {
        let (big, small) = if self.len() >= other.len() {
            (self, other)
        } else {
            (other, self)
        };
        let mut txn = big.tree.txn();
        for (k, t) in small.tree.iter() {
            if txn.get(k).is_none() {
                txn.insert(k, t.clone());
            }
        }
        Set {
            tree: txn.commit_and_close(),
        }
    }
    /// Members of `self` that are not in `other`.
    #[must_use]
    pub fn difference(&self, other: &Set<T>) -> Set<T> {
        let mut txn = self.tree.txn();
        for (k, _) in other.tree.iter() {
            txn.delete(k);
        }
        Set {
            tree: txn.commit_and_close(),
        }
    }
}

impl<T: PartialEq> PartialEq for Set<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}
impl<T: Eq> Eq for Set<T> {}

impl<T: fmt::Debug> fmt::Debug for Set<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<T: KeyEncoding + Clone + Send + Sync + 'static> FromIterator<T> for Set<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut txn = Tree::new_root_only_watch().txn();
        for t in iter {
            txn.insert(&t.to_key(), t);
        }
        Set {
            tree: txn.commit_and_close(),
        }
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;

    #[test]
    fn get_as_looks_up_by_a_key_that_encodes_the_same() {
        let m: Map<String, u32> = Map::new().insert("a".to_string(), 1);
        assert_eq!(m.get_as("a"), Some(&1));
        assert_eq!(m.get_as("b"), None);
        assert_eq!(m.get(&"a".to_string()), Some(&1));
    }

    #[test]
    fn map_persistence_and_serde() {
        let m1: Map<String, u32> = Map::new().insert("x".into(), 1);
        let m2 = m1.insert("y".into(), 2);
        assert_eq!(m1.len(), 1);
        assert_eq!(m2.len(), 2);
        let json = serde_json::to_string(&m2).unwrap();
        assert_eq!(json, r#"{"x":1,"y":2}"#);
        let back: Map<String, u32> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m2);
        let mut m3 = m2.clone();
        assert_eq!(m3.remove_mut(&"x".into()), Some(1));
        assert_eq!(m3.remove_mut(&"x".into()), None);
        assert_eq!(m2.get(&"x".into()), Some(&1));
    }

    #[test]
    fn set_ops_and_serde() {
        let a: Set<i32> = [-5, 0, 7].into_iter().collect();
        let b: Set<i32> = [0, 9].into_iter().collect();
        let u = a.union(&b);
        assert_eq!(u.iter().copied().collect::<Vec<_>>(), [-5, 0, 7, 9]);
        let d = u.difference(&a);
        assert_eq!(d.iter().copied().collect::<Vec<_>>(), [9]);
        assert!(a.contains(&-5) && !a.contains(&9));
        let json = serde_json::to_string(&u).unwrap();
        assert_eq!(json, "[-5,0,7,9]");
        let back: Set<i32> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, u);
        let mut s = Set::new();
        assert!(s.insert_mut("a".to_string()));
        assert!(!s.insert_mut("a".to_string()));
        assert!(s.remove_mut(&"a".to_string()));
        assert!(s.is_empty());
    }
}

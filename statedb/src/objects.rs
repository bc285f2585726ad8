//! Query results: an iterator over `(object, revision)` that owns its
//! snapshot, forward or in reverse.

use std::sync::Arc;

use part::{Key, OwnedIter, OwnedRevIter};

use crate::Revision;
use crate::object::Object;

/// A query's first match: the object and its revision.
pub type Found<T> = Option<(Arc<T>, Revision)>;

/// Iterator over query results: `(object, revision)` in index order (or
/// reverse index order, from the `_rev` queries). Owns its snapshot;
/// borrows nothing from the Db or the transaction. `count()` walks the
/// results without touching the objects.
pub struct Objects<T> {
    inner: ObjectsInner<T>,
    /// The objects met so far, when each is to come back once (queries
    /// where an object with several matching keys would repeat).
    seen: Option<Seen>,
}

/// Objects met, by address: stable while the results hold them.
type Seen = std::collections::HashSet<usize>;

fn addr<T>(o: &Object<T>) -> usize {
    Arc::as_ptr(&o.data) as *const () as usize
}

enum ObjectsInner<T> {
    One(Option<Object<T>>),
    Iter(OwnedIter<Object<T>>),
    /// Descending; stops below `floor` when set.
    Rev(OwnedRevIter<Object<T>>, Option<Key>),
    Vec(std::vec::IntoIter<Object<T>>),
}

impl<T> Objects<T> {
    pub(crate) fn one(o: Option<Object<T>>) -> Self {
        Objects {
            inner: ObjectsInner::One(o),
            seen: None,
        }
    }
    /// A query's first match as results.
    #[cfg(feature = "json")]
    pub(crate) fn from_found(found: Found<T>) -> Self {
        Self::one(found.map(|(data, revision)| Object { data, revision }))
    }

    pub(crate) fn iter(i: OwnedIter<Object<T>>) -> Self {
        Objects {
            inner: ObjectsInner::Iter(i),
            seen: None,
        }
    }
    pub(crate) fn rev(i: OwnedRevIter<Object<T>>, floor: Option<Key>) -> Self {
        Objects {
            inner: ObjectsInner::Rev(i, floor),
            seen: None,
        }
    }
    pub(crate) fn from_vec(v: Vec<Object<T>>) -> Self {
        Objects {
            inner: ObjectsInner::Vec(v.into_iter()),
            seen: None,
        }
    }

    /// The same results with each object once, at its first match.
    pub(crate) fn dedup(mut self) -> Self {
        self.seen = Some(Seen::new());
        self
    }

    /// The remaining results as stored objects.
    pub(crate) fn into_objects(mut self) -> impl Iterator<Item = Object<T>> {
        std::iter::from_fn(move || self.next_with(Object::clone))
    }

    /// Advances, handing the next object to `f` by reference.
    #[inline]
    fn next_with<R>(&mut self, f: impl FnOnce(&Object<T>) -> R) -> Option<R> {
        let Some(seen) = &mut self.seen else {
            return Self::inner_next_with(&mut self.inner, f);
        };
        let mut f = Some(f);
        loop {
            let next = Self::inner_next_with(&mut self.inner, |o| {
                if seen.insert(addr(o)) {
                    f.take().map(|f| f(o))
                } else {
                    None
                }
            });
            match next {
                None => return None,
                Some(Some(r)) => return Some(r),
                Some(None) => {}
            }
        }
    }

    #[inline]
    fn inner_next_with<R>(
        inner: &mut ObjectsInner<T>,
        f: impl FnOnce(&Object<T>) -> R,
    ) -> Option<R> {
        match inner {
            ObjectsInner::One(o) => o.take().map(|o| f(&o)),
            ObjectsInner::Iter(i) => i.next_with(|_, o| f(o)),
            ObjectsInner::Rev(i, floor) => match floor {
                None => i.next_with(|_, o| f(o)),
                Some(floor) => i
                    .next_with(|k, o| (k >= &floor[..]).then(|| f(o)))
                    .flatten(),
            },
            ObjectsInner::Vec(v) => v.next().map(|o| f(&o)),
        }
    }
}

impl<T> Iterator for Objects<T> {
    type Item = (Arc<T>, Revision);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.next_with(|o| (o.data.clone(), o.revision))
    }

    fn count(mut self) -> usize {
        let mut n = 0;
        while self.next_with(|_| ()).is_some() {
            n += 1;
        }
        n
    }
}

/// Iterator over query results that lends `(&T, revision)` for as long as
/// the transaction it reads is borrowed: no reference counting per object
/// (see [`crate::Table::all_ref`]). `.map(|(o, r)| (o.clone(), r))` or the
/// owning queries give owned results.
pub struct Refs<'t, T> {
    inner: RefsInner<'t, T>,
    seen: Option<Seen>,
}

enum RefsInner<'t, T> {
    One(Option<&'t Object<T>>),
    Iter(part::Iter<'t, Object<T>>),
}

impl<'t, T> Refs<'t, T> {
    pub(crate) fn one(o: Option<&'t Object<T>>) -> Self {
        Refs {
            inner: RefsInner::One(o),
            seen: None,
        }
    }

    pub(crate) fn iter(i: part::Iter<'t, Object<T>>) -> Self {
        Refs {
            inner: RefsInner::Iter(i),
            seen: None,
        }
    }

    /// The same results with each object once, at its first match.
    pub(crate) fn dedup(mut self) -> Self {
        self.seen = Some(Seen::new());
        self
    }
}

impl<'t, T> Iterator for Refs<'t, T> {
    type Item = (&'t T, Revision);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let o = match &mut self.inner {
                RefsInner::One(o) => o.take(),
                RefsInner::Iter(i) => i.next_value(),
            }?;
            if self.seen.as_mut().is_none_or(|seen| seen.insert(addr(o))) {
                return Some((&*o.data, o.revision));
            }
        }
    }
}

impl<T> std::fmt::Debug for Refs<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refs").finish_non_exhaustive()
    }
}

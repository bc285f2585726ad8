//! The lazily created watches of a tree node: its own and its leaf key's,
//! in one cell that a retired node seals.

use crate::sync::OnceSlot;
use crate::watch::Watch;

/// A node's or a key's watch, created on the first request. When a commit
/// retires the node, `seal` closes the watch if there is one, and
/// otherwise only marks the slot: a reader of the old snapshot asking
/// later gets a closed watch then. (Filling every unwatched slot with the
/// shared closed watch at commit cost two atomic operations on one global
/// count per retired node, from every writing thread.)
struct WatchSlot(OnceSlot<SlotState>);

enum SlotState {
    Sealed,
    Open(Watch),
}

impl SlotState {
    fn watch(&self) -> Watch {
        match self {
            SlotState::Sealed => Watch::closed_watch(),
            SlotState::Open(w) => w.clone(),
        }
    }
}

impl WatchSlot {
    pub fn new() -> Self {
        WatchSlot(OnceSlot::new())
    }

    pub fn from_watch(w: Watch) -> Self {
        WatchSlot(OnceSlot::from(SlotState::Open(w)))
    }

    /// The watch, created if there is none yet (closed if sealed).
    pub fn get(&self) -> Watch {
        self.0
            .with_or_init(|| SlotState::Open(Watch::new()), SlotState::watch)
    }

    /// The watch if one was handed out (or the slot is sealed).
    pub fn peek(&self) -> Option<Watch> {
        self.0.with(SlotState::watch)
    }

    /// Closes the watch, or marks the slot so that it is born closed.
    pub fn seal(&self) {
        self.0.with_or_init(
            || SlotState::Sealed,
            |s| {
                if let SlotState::Open(w) = s {
                    w.close();
                }
            },
        );
    }

    /// Takes an open watch out (a sealed slot has none to close).
    pub fn take(&mut self) -> Option<Watch> {
        match self.0.take()? {
            SlotState::Open(w) => Some(w),
            SlotState::Sealed => None,
        }
    }
}

/// A node's two watches, the node's own and its leaf key's, in one
/// 16-byte cell: both are created on the first request for either, as a
/// boxed pair. Most nodes are never watched, so they pay one cell instead
/// of two (a node is 72 bytes, not 88). Sealing an unwatched node marks
/// the cell without allocating.
pub(crate) struct NodeWatches(OnceSlot<PairState>);

enum PairState {
    Sealed,
    Open(Box<WatchPair>),
}

struct WatchPair {
    node: WatchSlot,
    leaf: WatchSlot,
}

impl WatchPair {
    fn empty() -> Self {
        WatchPair {
            node: WatchSlot::new(),
            leaf: WatchSlot::new(),
        }
    }
}

impl NodeWatches {
    pub fn new() -> Self {
        NodeWatches(OnceSlot::new())
    }

    /// A cell holding the given watches (`None`: created on request).
    pub fn with(node: Option<Watch>, leaf: Option<Watch>) -> Self {
        if node.is_none() && leaf.is_none() {
            return NodeWatches::new();
        }
        let slot = |w: Option<Watch>| w.map_or_else(WatchSlot::new, WatchSlot::from_watch);
        NodeWatches(OnceSlot::from(PairState::Open(Box::new(WatchPair {
            node: slot(node),
            leaf: slot(leaf),
        }))))
    }

    fn pair<R>(&self, f: impl FnOnce(&WatchPair) -> R) -> Option<R> {
        self.0.with_or_init(
            || PairState::Open(Box::new(WatchPair::empty())),
            |s| match s {
                PairState::Sealed => None,
                PairState::Open(p) => Some(f(p)),
            },
        )
    }

    /// True while no watch was asked for, handed in or sealed: taking
    /// watches out of such a cell would find none.
    #[inline]
    pub fn is_unset(&self) -> bool {
        self.0.with(|_| ()).is_none()
    }

    /// The node's watch, created if there is none yet (closed if sealed).
    pub fn node(&self) -> Watch {
        self.pair(|p| p.node.get())
            .unwrap_or_else(Watch::closed_watch)
    }

    /// The leaf key's watch, created if there is none yet (closed if
    /// sealed).
    pub fn leaf(&self) -> Watch {
        self.pair(|p| p.leaf.get())
            .unwrap_or_else(Watch::closed_watch)
    }

    /// The leaf key's watch if one was handed out (or the node is sealed).
    pub fn peek_leaf(&self) -> Option<Watch> {
        self.0
            .with(|s| match s {
                PairState::Sealed => Some(Watch::closed_watch()),
                PairState::Open(p) => p.leaf.peek(),
            })
            .flatten()
    }

    /// Closes the node's watch, and the leaf's unless it moved to a copy;
    /// a cell nobody asked is only marked.
    pub fn seal(&self, leaf_shared: bool) {
        self.0.with_or_init(
            || PairState::Sealed,
            |s| {
                if let PairState::Open(p) = s {
                    p.node.seal();
                    if !leaf_shared {
                        p.leaf.seal();
                    }
                }
            },
        );
    }

    // Inlined: every write calls these on each node of its path, and
    // most cells are empty.
    #[inline]
    fn take(&mut self, f: impl FnOnce(&mut WatchPair) -> Option<Watch>) -> Option<Watch> {
        self.0
            .with_mut(|s| match s {
                PairState::Open(p) => f(p),
                PairState::Sealed => None,
            })
            .flatten()
    }

    /// Takes the node's open watch out.
    #[inline]
    pub fn take_node(&mut self) -> Option<Watch> {
        self.take(|p| p.node.take())
    }

    /// Takes the leaf key's open watch out.
    #[inline]
    pub fn take_leaf(&mut self) -> Option<Watch> {
        self.take(|p| p.leaf.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_cell_nobody_asked_hands_out_closed_watches() {
        let w = NodeWatches::new();
        w.seal(false);
        assert!(w.node().is_closed());
        assert!(w.leaf().is_closed());
        assert!(w.peek_leaf().is_some_and(|l| l.is_closed()));
    }

    #[test]
    fn sealing_closes_the_handed_out_watches_but_a_shared_leaf() {
        let w = NodeWatches::new();
        let (node, leaf) = (w.node(), w.leaf());
        w.seal(true);
        assert!(node.is_closed());
        assert!(!leaf.is_closed(), "the leaf watch moved to the copy");
        let w = NodeWatches::new();
        let leaf = w.leaf();
        assert!(w.peek_leaf().is_some());
        w.seal(false);
        assert!(leaf.is_closed());
    }

    #[test]
    fn watches_are_created_once_and_taken_apart() {
        let mut w = NodeWatches::new();
        assert!(w.is_unset());
        assert!(w.peek_leaf().is_none());
        assert!(w.take_node().is_none() && w.take_leaf().is_none());
        let leaf = w.leaf();
        assert!(!w.is_unset());
        assert!(w.leaf().same_as(&leaf));
        assert!(
            w.take_node().is_none(),
            "the node watch was never handed out"
        );
        let node = w.node();
        assert!(w.take_node().is_some_and(|t| t.same_as(&node)));
        assert!(w.take_leaf().is_some_and(|t| t.same_as(&leaf)));
        assert!(w.take_leaf().is_none());
        // A copy built with a shared leaf watch hands out that one.
        let copy = NodeWatches::with(None, Some(leaf.clone()));
        assert!(copy.peek_leaf().is_some_and(|t| t.same_as(&leaf)));
        assert!(!copy.node().same_as(&node));
    }
}

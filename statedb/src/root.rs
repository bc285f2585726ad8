//! The Db root: every table's current state, by registration position, in
//! a persistent vector (a 32-way trie over the position).
//!
//! A commit replaces the states of the tables it wrote; with a plain
//! `Vec` it cloned every table's entry, so a one-row commit cost grew with
//! the number of tables (10,000 tables: 104 µs) and registration was
//! quadratic. Here it copies one 32-slot array per level (one level up to
//! 32 tables, two up to 1,024, three up to 32,768), and a lookup with up
//! to 32 tables is a single index, as before.

use std::sync::Arc;

use crate::state::AnyTableState;

const BITS: u32 = 5;
const WIDTH: usize = 1 << BITS;
const MASK: usize = WIDTH - 1;

pub(crate) type State = Arc<dyn AnyTableState>;

#[derive(Clone)]
enum Node {
    Leaf(Vec<State>),
    Inner(Vec<Arc<Node>>),
}

/// An immutable vector of table states; cloning shares everything.
///
/// Up to 32 tables the states sit in `small`, inline in the root: a
/// lookup is one index, as with a plain `Vec` (the root is itself behind
/// the Db's `Arc`), and a commit copies at most 32 entries. Past 32 they
/// move to the trie in `node`.
#[derive(Clone)]
pub(crate) struct Root {
    len: usize,
    small: Vec<State>,
    /// Bits of the position consumed above the leaves.
    shift: u32,
    node: Arc<Node>,
}

impl Root {
    pub fn new() -> Self {
        Root {
            len: 0,
            small: Vec::new(),
            shift: 0,
            node: Arc::new(Node::Leaf(Vec::new())),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn get(&self, pos: usize) -> Option<&State> {
        if self.len <= WIDTH {
            return self.small.get(pos);
        }
        if pos >= self.len {
            return None;
        }
        let mut node = &*self.node;
        let mut shift = self.shift;
        loop {
            match node {
                Node::Leaf(states) => return states.get(pos & MASK),
                Node::Inner(children) => {
                    node = children.get((pos >> shift) & MASK)?;
                    shift = shift.saturating_sub(BITS);
                }
            }
        }
    }

    /// Replaces the state at `pos` (which must exist); copies one array
    /// per level.
    pub fn set(&mut self, pos: usize, state: State) {
        if self.len <= WIDTH {
            if let Some(slot) = self.small.get_mut(pos) {
                *slot = state;
            }
        } else if pos < self.len {
            set_in(&mut self.node, self.shift, pos, state);
        }
    }

    /// Appends a state; returns its position.
    pub fn push(&mut self, state: State) -> usize {
        let pos = self.len;
        if pos < WIDTH {
            self.small.push(state);
            self.len += 1;
            return pos;
        }
        if pos == WIDTH {
            // Growing past the inline room: the first 32 go to the trie's
            // first leaf.
            self.node = Arc::new(Node::Leaf(std::mem::take(&mut self.small)));
        }
        let capacity = WIDTH << self.shift;
        if pos == capacity {
            // Full: a new level on top.
            let old = std::mem::replace(&mut self.node, Arc::new(Node::Inner(Vec::new())));
            self.node = Arc::new(Node::Inner(vec![old]));
            self.shift += BITS;
        }
        push_in(&mut self.node, self.shift, pos, state);
        self.len += 1;
        pos
    }
}

fn set_in(node: &mut Arc<Node>, shift: u32, pos: usize, state: State) {
    match Arc::make_mut(node) {
        Node::Leaf(states) => {
            if let Some(slot) = states.get_mut(pos & MASK) {
                *slot = state;
            }
        }
        Node::Inner(children) => {
            if let Some(child) = children.get_mut((pos >> shift) & MASK) {
                set_in(child, shift - BITS, pos, state);
            }
        }
    }
}

fn push_in(node: &mut Arc<Node>, shift: u32, pos: usize, state: State) {
    match Arc::make_mut(node) {
        Node::Leaf(states) => states.push(state),
        Node::Inner(children) => {
            let i = (pos >> shift) & MASK;
            if i == children.len() {
                let fresh = if shift == BITS {
                    Node::Leaf(Vec::with_capacity(WIDTH))
                } else {
                    Node::Inner(Vec::new())
                };
                children.push(Arc::new(fresh));
            }
            if let Some(child) = children.get_mut(i) {
                push_in(child, shift - BITS, pos, state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::TableState;

    fn state(tag: usize) -> State {
        // The number of secondary indexes tags each state.
        Arc::new(TableState::<u8>::new(tag))
    }

    fn tag(s: &State) -> usize {
        (&**s as &dyn std::any::Any)
            .downcast_ref::<TableState<u8>>()
            .map(|t| t.secondary_count())
            .unwrap_or(usize::MAX)
    }

    #[test]
    fn push_get_set_across_levels_keeps_old_versions() {
        let mut root = Root::new();
        let mut versions = Vec::new();
        for i in 0..1100 {
            assert_eq!(root.push(state(i % 7)), i);
            if i % 97 == 0 {
                versions.push(root.clone());
            }
        }
        assert_eq!(root.len(), 1100);
        for i in 0..1100 {
            assert_eq!(tag(root.get(i).unwrap()), i % 7);
        }
        assert!(root.get(1100).is_none());
        let before = root.clone();
        for i in [0, 31, 32, 1023, 1024, 1099] {
            root.set(i, state(100));
        }
        for i in 0..1100 {
            let want = if [0, 31, 32, 1023, 1024, 1099].contains(&i) {
                100
            } else {
                i % 7
            };
            assert_eq!(tag(root.get(i).unwrap()), want);
            assert_eq!(tag(before.get(i).unwrap()), i % 7);
        }
        for v in versions {
            for i in 0..v.len() {
                assert_eq!(tag(v.get(i).unwrap()), i % 7);
            }
        }
    }
}

//! `part`: a persistent adaptive radix tree with transactions and watches.
//!
//! Keys are byte strings of any length (including the empty key and keys
//! that are prefixes of others); nodes adapt their child arrays (4, 16, 48
//! or 256 children) and compress single-child paths (Leis et al., "The
//! Adaptive Radix Tree", ICDE 2013).
//!
//! - [`Tree`] is an immutable snapshot: cheap to clone, safe to share across
//!   threads, never changed by later writes.
//! - [`Txn`] batches writes: it copies a shared node once and then mutates
//!   its private copy in place. [`Txn::commit`] returns the new tree and the
//!   [`WatchesToClose`], to be closed after the new tree is published.
//! - Every query can return a [`Watch`] that closes when the data it covers
//!   changes; a [`WatchSet`] waits on many. Trees built with
//!   [`Tree::new_root_only_watch`] hand out only the root watch.
//! - [`Map`] and [`Set`] are persistent collections on the tree for fields
//!   of immutable objects, keyed through [`KeyEncoding`].
//!
//! ```
//! use part::Tree;
//! let t0: Tree<u32> = Tree::new();
//! let mut txn = t0.txn();
//! for i in 0u32..100 {
//!     txn.insert(&i.to_be_bytes(), i);
//! }
//! let t1 = txn.commit_and_close();
//! assert_eq!(t1.len(), 100);
//! assert_eq!(t1.lower_bound(&50u32.to_be_bytes()).next().map(|(_, v)| *v), Some(50));
//! assert!(t0.is_empty());
//! ```

mod collections;
mod encoding;
mod node;
mod read;
pub mod sync;
mod tree;
mod txn;
mod watch;

pub use collections::{Map, Set};
pub use encoding::KeyEncoding;
pub use node::Key;
pub use read::Read;
pub use tree::{Iter, OwnedIter, OwnedRevIter, Tree};
pub use txn::Txn;
pub use watch::{Closed, Watch, WatchCloser, WatchSet, WatchesToClose};

// Snapshots, transactions and watches cross threads: checked at compile
// time.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Tree<u32>>();
    send_sync::<Txn<u32>>();
    send_sync::<Watch>();
    send_sync::<WatchSet>();
    send_sync::<Map<u32, u32>>();
    send_sync::<OwnedIter<u32>>();
};

#[cfg(test)]
mod tests;

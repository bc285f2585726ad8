#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
mod bytes;
mod collections;
mod encoding;
mod node;
mod read;
pub mod sync;
mod tree;
mod txn;
mod watch;
mod watch_cell;

pub use collections::{Map, Set};
pub use encoding::{KeyEncoding, KeyFilter, ParseKeyError, format_key_bytes};
pub use node::Key;
pub use read::Read;
pub use tree::{Iter, LPM_END, OwnedIter, OwnedRevIter, Tree};
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

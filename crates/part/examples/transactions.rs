//! The persistent tree: a transaction, snapshots that never change, and a
//! watch that closes when a key changes.
//!
//! Run: `cargo run -p rstatedb-part --example transactions`

use part::Tree;

fn main() {
    let empty: Tree<u32> = Tree::new();
    let mut txn = empty.txn();
    for (i, word) in ["apple", "apricot", "banana"].iter().enumerate() {
        txn.insert(word.as_bytes(), i as u32);
    }
    let (v1, watches) = txn.commit();
    watches.close();

    let (_, watch) = v1.get_watch(b"apple");
    let v2 = v1.delete(b"apple");
    // A new version closes the watches of what it changed; the old
    // snapshot still holds the key.
    println!("watch closed: {}", watch.is_closed());
    assert!(watch.is_closed());
    assert!(v1.get(b"apple").is_some() && v2.get(b"apple").is_none());
    let under_ap: Vec<String> = v1
        .prefix(b"ap")
        .0
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect();
    println!("keys under \"ap\" in v1: {under_ap:?}");
    assert_eq!(under_ap, ["apple", "apricot"]);
    assert_eq!((empty.len(), v1.len(), v2.len()), (0, 3, 2));
}

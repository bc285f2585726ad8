//! Replays the fuzz corpus (`crates/fuzz/corpus/<target>/`) and a batch of
//! pseudo-random programs through the checked programs. A corpus entry
//! that makes a program panic is a regression.
#![cfg(not(loom))]

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut entries: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.expect("directory entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            (path, data)
        })
        .collect();
    entries.sort();
    entries
}

fn replay(target: &str, run: fn(&[u8])) {
    let entries = corpus(target);
    assert!(!entries.is_empty(), "the {target} corpus is empty");
    for (path, data) in &entries {
        let outcome = std::panic::catch_unwind(|| run(data));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
    }
}

/// Deterministic pseudo-random programs (xorshift), so every test run
/// explores beyond the corpus a little.
fn random(run: fn(&[u8]), count: usize, seed: u64) {
    let mut x = seed;
    for _ in 0..count {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 600) as usize;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        run(&data);
    }
}

#[test]
fn tree_corpus() {
    replay("tree_program", testkit::tree_program);
}

#[test]
fn db_corpus() {
    replay("db_program", testkit::db_program);
}

#[test]
fn key_encoding_corpus() {
    replay("key_encoding", testkit::key_encoding);
}

#[test]
fn tree_random() {
    random(testkit::tree_program, 300, 0x9e37_79b9_7f4a_7c15);
}

#[test]
fn db_random() {
    random(testkit::db_program, 200, 0x2545_f491_4f6c_dd1d);
}

#[test]
fn key_encoding_random() {
    random(testkit::key_encoding, 500, 0x1234_5678_9abc_def1);
}

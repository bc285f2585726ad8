//! Allocation counts that must not creep back: they are deterministic
//! (the harness counts every call to the allocator), unlike timings.

mod common;

/// The `allocs` column of one row of a `--smoke` run.
fn allocs_per_object(row: &str) -> f64 {
    let (_, rows) = common::run_with_json(&["--smoke", "--filter", row]);
    rows.iter()
        .find(|r| r["name"] == row)
        .and_then(|r| r["allocs_per_object"].as_f64())
        .unwrap_or_else(|| panic!("no {row} row in {rows:?}"))
}

/// A write transaction replacing one object: the object's own `Arc`, a
/// copied root, its child array and a new leaf in each of the two
/// indexes, the table transaction, the new table state and the new Db
/// root. The per-table lists (tables, locks, transactions) are inline,
/// and the commit finds the graveyard's oldest entry without an
/// iterator. It was 19; with the lists on the heap again it is 18.
#[test]
fn a_one_object_write_transaction_allocates_twelve_times() {
    let allocs = allocs_per_object("db_write_txn_1");
    assert!(allocs <= 12.0, "{allocs} allocations per transaction");
}

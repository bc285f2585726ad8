//! `--scale`: insert, lookup, full iteration and the reconciler at 10k,
//! 100k, 1M and 10M objects (1M at most with `--quick`), in ns per object
//! and bytes per object, to show what grows with size.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use statedb::{Db, Index, Table};

use crate::alloc;
use crate::harness::Row;
use crate::part_benches::shuffled;

/// The object of the db rows: an id and a small payload.
struct Obj {
    id: u64,
    payload: u64,
}

/// The sizes measured: up to `max`.
pub fn sizes(max: u64) -> Vec<u64> {
    [10_000, 100_000, 1_000_000, 10_000_000]
        .into_iter()
        .filter(|n| *n <= max)
        .collect()
}

fn label(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{}m", n / 1_000_000),
        n => format!("{}k", n / 1_000),
    }
}

fn row(name: String, ns: f64, bytes: Option<f64>) -> Row {
    Row {
        name,
        objects_per_sec: 1e9 / ns,
        ns_per_object: ns,
        bytes_per_object: bytes,
        ..Row::default()
    }
}

/// The db rows at size `n`: insert (with live heap bytes per object),
/// random lookup and full iteration, each of these two over at least
/// `visits` objects.
pub fn db_rows(n: u64, visits: u64) -> Vec<Row> {
    let id: Index<Obj, u64> = Index::unique("id", |o: &Obj, k| k.push(&o.id));
    let table = Table::new("scale", &id).expect("table");
    let db = Db::new();
    db.register_table(&table).expect("register");
    alloc::track_live();
    let before = alloc::live_bytes();
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let mut w = db.write_txn(&[&table]).expect("txn");
        for _ in 0..1000.min(n - i) {
            table
                .insert(&mut w, Arc::new(Obj { id: i, payload: i }))
                .expect("insert");
            i += 1;
        }
        w.commit();
    }
    let insert_ns = start.elapsed().as_nanos() as f64 / n as f64;
    let bytes = (alloc::live_bytes() - before) as f64 / n as f64;

    // Lookups and scans visit at least `visits` objects at every size, so
    // that the small sizes are timed over as many operations as the large
    // ones (10k lookups take under a millisecond, too short to time), in
    // repeated passes over the same shuffled keys or the whole table.
    // When the table is larger than `visits`, the probes are drawn from
    // all of it (the first `visits` ids alone would be a tenth of a 10M
    // tree, its upper levels mostly untouched).
    let txn = db.read_txn();
    let keys = if n <= visits {
        shuffled(n)
    } else {
        let mut rng = StdRng::seed_from_u64(42);
        (0..visits).map(|_| rng.random_range(0..n)).collect()
    };
    let passes = visits.div_ceil(keys.len() as u64).max(1);
    let start = Instant::now();
    let mut sum = 0u64;
    for _ in 0..passes {
        for &k in &keys {
            let (o, _) = table
                .get(&txn, id.query(&k))
                .expect("get")
                .expect("present");
            sum = sum.wrapping_add(o.payload);
        }
    }
    black_box(sum);
    let lookup_ns = start.elapsed().as_nanos() as f64 / (passes * keys.len() as u64) as f64;

    let passes = visits.div_ceil(n).max(1);
    let start = Instant::now();
    for _ in 0..passes {
        let mut count = 0u64;
        for (o, _) in table.all(&txn).expect("all") {
            count += 1;
            black_box(o.payload);
        }
        assert_eq!(count, n);
    }
    let iterate_ns = start.elapsed().as_nanos() as f64 / (passes * n) as f64;
    let l = label(n);
    vec![
        row(format!("scale_insert_{l}"), insert_ns, Some(bytes)),
        row(format!("scale_lookup_{l}"), lookup_ns, None),
        row(format!("scale_iterate_{l}"), iterate_ns, None),
    ]
}

/// The reconciler row of size `n` from its child run: ns per object and
/// live heap bytes per object.
pub fn reconciler_row(n: u64, child: &Row) -> Row {
    let ns = 1e9 / child.objects_per_sec;
    let bytes = child.live_bytes_after.map(|b| b as f64 / n as f64);
    Row {
        peak_rss_bytes: child.peak_rss_bytes,
        live_bytes_after: child.live_bytes_after,
        ..row(format!("scale_reconciler_{}", label(n)), ns, bytes)
    }
}

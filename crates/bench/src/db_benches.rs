//! db_* rows.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use part::Set;
use statedb::{Db, Index, Table};

use crate::harness::{Case, Mode, Row, case, percentile, timed};
use crate::part_benches::shuffled;

pub struct TestObject {
    pub id: u64,
    pub tags: Set<String>,
}

fn obj(id: u64, tags: &Set<String>) -> Arc<TestObject> {
    Arc::new(TestObject {
        id,
        tags: tags.clone(),
    })
}

struct Fixture {
    db: Db,
    table: Table<TestObject>,
    id: Index<TestObject, u64>,
}

fn fixture(with_tags: bool) -> Fixture {
    let id: Index<TestObject, u64> = Index::unique("id", |o: &TestObject, k| k.push(&o.id));
    let tags: Index<TestObject, str> = Index::non_unique("tags", |o: &TestObject, k| {
        for t in o.tags.iter() {
            k.push(t.as_str());
        }
    });
    let mut b = Table::builder("test", &id);
    if with_tags {
        b = b.index(&tags);
    }
    let table = b.build().expect("valid table");
    let db = Db::new();
    db.register_table(&table).expect("register");
    Fixture { db, table, id }
}

impl Fixture {
    /// One write txn inserting ids `0..n` with `tags`, committed.
    fn insert_committed(&self, n: u64, tags: &Set<String>) {
        let mut w = self.db.write_txn(&[&self.table]).expect("txn");
        for i in 0..n {
            self.table.insert(&mut w, obj(i, tags)).expect("insert");
        }
        w.commit();
    }

    /// One write txn deleting every object, committed.
    fn delete_all_committed(&self) {
        let mut w = self.db.write_txn(&[&self.table]).expect("txn");
        self.table.delete_all(&mut w).expect("delete_all");
        w.commit();
    }
}

fn filled(n: u64) -> Fixture {
    let f = fixture(false);
    f.insert_committed(n, &Set::new());
    f
}

fn write_txn_case(n: u64, with_tags: bool) -> crate::harness::Body {
    let f = fixture(with_tags);
    let tags = if with_tags {
        Set::new().insert("test".to_string())
    } else {
        Set::new()
    };
    Box::new(move |iters| {
        timed(|| {
            for _ in 0..iters {
                f.insert_committed(n, &tags);
            }
            iters * n
        })
    })
}

/// A table of ids 0..n; one read txn; per round, look up each id in order.
/// Lookups lend the object (`get_ref`), as the reference hands out a
/// pointer; the `_owned` rows take an `Arc` per object (`get`).
fn sequential_lookup_case(n: u64) -> crate::harness::Body {
    let f = filled(n);
    let txn = f.db.read_txn();
    Box::new(move |iters| {
        timed(|| {
            for _ in 0..iters {
                for i in 0..n {
                    black_box(f.table.get_ref(&txn, f.id.query(&i)).expect("get"));
                }
            }
            iters * n
        })
    })
}

fn random_lookup_case(owned: bool) -> crate::harness::Body {
    let f = filled(1000);
    let ids = shuffled(1000);
    Box::new(move |iters| {
        timed(|| {
            for _ in 0..iters {
                let txn = f.db.read_txn();
                for &i in &ids {
                    if owned {
                        black_box(f.table.get(&txn, f.id.query(&i)).expect("get"));
                    } else {
                        black_box(f.table.get_ref(&txn, f.id.query(&i)).expect("get"));
                    }
                }
            }
            iters * 1000
        })
    })
}

fn full_iteration_case(owned: bool) -> crate::harness::Body {
    let f = filled(100_000);
    Box::new(move |iters| {
        timed(|| {
            for _ in 0..iters {
                let txn = f.db.read_txn();
                let mut expect = 0;
                if owned {
                    for (o, _) in f.table.all(&txn).expect("all") {
                        assert_eq!(o.id, expect);
                        expect += 1;
                    }
                } else {
                    for (o, _) in f.table.all_ref(&txn).expect("all") {
                        assert_eq!(o.id, expect);
                        expect += 1;
                    }
                }
                assert_eq!(expect, 100_000);
            }
            iters * 100_000
        })
    })
}

pub fn cases() -> Vec<Case> {
    let mut v = vec![case("db_write_txn_1", || {
        let f = fixture(false);
        let empty = Set::new();
        Box::new(move |iters| {
            timed(|| {
                for _ in 0..iters {
                    let mut w = f.db.write_txn(&[&f.table]).expect("txn");
                    f.table.insert(&mut w, obj(123, &empty)).expect("insert");
                    w.commit();
                }
                iters
            })
        })
    })];
    for (name, n) in [
        ("db_write_txn_10", 10),
        ("db_write_txn_100", 100),
        ("db_write_txn_1000", 1000),
        ("db_write_txn_10000", 10000),
    ] {
        v.push(case(name, move || write_txn_case(n, false)));
    }
    v.push(case("db_write_txn_100_secondary_index", || {
        write_txn_case(100, true)
    }));
    v.push(case("db_random_insert", || {
        let f = fixture(false);
        let ids = shuffled(1000);
        let empty = Set::new();
        Box::new(move |iters| {
            timed(|| {
                for _ in 0..iters {
                    let mut w = f.db.write_txn(&[&f.table]).expect("txn");
                    for &i in &ids {
                        f.table.insert(&mut w, obj(i, &empty)).expect("insert");
                    }
                    w.abort();
                }
                iters * 1000
            })
        })
    }));
    v.push(case("db_random_replace", || {
        let f = fixture(true);
        let odd = Set::new().insert("odd".to_string());
        let even = Set::new().insert("even".to_string());
        let tag = move |i: u64| {
            if i % 2 == 1 {
                odd.clone()
            } else {
                even.clone()
            }
        };
        let mut w = f.db.write_txn(&[&f.table]).expect("txn");
        for i in 0..1000 {
            f.table.insert(&mut w, obj(i, &tag(i))).expect("insert");
        }
        w.commit();
        let ids = shuffled(1000);
        Box::new(move |iters| {
            timed(|| {
                for _ in 0..iters {
                    let mut w = f.db.write_txn(&[&f.table]).expect("txn");
                    for &i in &ids {
                        f.table.insert(&mut w, obj(i, &tag(i))).expect("insert");
                    }
                    w.abort();
                }
                iters * 1000
            })
        })
    }));
    v.push(case("db_sequential_insert", || write_txn_case(1000, false)));
    v.push(case("db_changes_baseline", || {
        let f = fixture(false);
        let empty = Set::new();
        Box::new(move |iters| {
            timed(|| {
                for _ in 0..iters {
                    f.insert_committed(1000, &empty);
                    f.delete_all_committed();
                }
                iters * 1000
            })
        })
    }));
    v.push(case("db_changes", || {
        let f = fixture(false);
        let empty = Set::new();
        let mut w = f.db.write_txn(&[&f.table]).expect("txn");
        let mut changes = Some(f.table.changes(&mut w).expect("changes"));
        w.commit();
        Box::new(move |iters| {
            let it = changes.as_mut().expect("iterator");
            timed(|| {
                for _ in 0..iters {
                    f.insert_committed(1000, &empty);
                    let (batch, watch) = it.next(&f.db.read_txn()).expect("next");
                    let upserts = batch.filter(|c| !c.deleted).count();
                    assert_eq!(upserts, 1000);
                    f.delete_all_committed();
                    assert!(watch.wait_timeout(Duration::from_secs(10)));
                    let (batch, _) = it.next(&f.db.read_txn()).expect("next");
                    let deletes = batch.filter(|c| c.deleted).count();
                    assert_eq!(deletes, 1000);
                }
                iters * 1000
            })
        })
    }));
    v.push(case("db_random_lookup", || random_lookup_case(false)));
    v.push(case("db_random_lookup_owned", || random_lookup_case(true)));
    v.push(case("db_sequential_lookup", || {
        sequential_lookup_case(1000)
    }));
    v.push(case("db_full_iteration_all", || full_iteration_case(false)));
    v.push(case("db_full_iteration_all_owned", || {
        full_iteration_case(true)
    }));
    v.push(case("db_full_iteration_get", || {
        sequential_lookup_case(100_000)
    }));
    v
}

/// The graveyard check of db_changes: dropping the iterator empties it.
pub fn check_changes_graveyard() -> bool {
    let f = fixture(false);
    let empty = Set::new();
    let mut w = f.db.write_txn(&[&f.table]).expect("txn");
    let it = f.table.changes(&mut w).expect("changes");
    for i in 0..1000 {
        f.table.insert(&mut w, obj(i, &empty)).expect("insert");
    }
    w.commit();
    let mut w = f.db.write_txn(&[&f.table]).expect("txn");
    f.table.delete_all(&mut w).expect("delete_all");
    w.commit();
    let before = f.table.graveyard_len(&f.db.read_txn()).expect("len");
    drop(it);
    before == 1000 && f.table.graveyard_len(&f.db.read_txn()).expect("len") == 0
}

/// db_propagation_delay: latency from a write on A to the derived write
/// on B being visible, all in one thread.
pub fn propagation_delay(mode: Mode) -> Row {
    let samples = match mode {
        Mode::Smoke => 100,
        Mode::Quick => 10_000,
        Mode::Full => 50_000,
    };
    let id: Index<TestObject, u64> = Index::unique("id", |o: &TestObject, k| k.push(&o.id));
    let a = Table::new("a", &id).expect("table");
    let b = Table::new("b", &id).expect("table");
    let db = Db::new();
    db.register_table(&a).expect("register");
    db.register_table(&b).expect("register");
    let empty = Set::new();
    let mut last_rev = 0;
    let mut watch_a = a.watch(&db.read_txn()).expect("watch");
    let mut latencies = Vec::with_capacity(samples);
    let started = Instant::now();
    for _ in 0..samples {
        let t0 = Instant::now();
        let mut w = db.write_txn(&[&a]).expect("txn");
        for i in 0..10 {
            a.insert(&mut w, obj(i, &empty)).expect("insert");
        }
        w.commit();
        assert!(watch_a.wait_timeout(Duration::from_secs(10)));
        let txn = db.read_txn();
        let watch_b = b.watch(&txn).expect("watch");
        let (objs, wa) = a
            .lower_bound_by_revision(&txn, last_rev + 1)
            .expect("lower_bound");
        watch_a = wa;
        let mut w = db.write_txn(&[&b]).expect("txn");
        for (o, rev) in objs {
            b.insert(&mut w, o).expect("insert");
            last_rev = rev;
        }
        w.commit();
        assert!(watch_b.wait_timeout(Duration::from_secs(10)));
        latencies.push(t0.elapsed());
    }
    let total = started.elapsed();
    latencies.sort();
    let objects = samples as f64 * 10.0;
    Row {
        name: "db_propagation_delay".into(),
        objects_per_sec: objects / total.as_secs_f64(),
        ns_per_object: total.as_nanos() as f64 / objects,
        p50_us: Some(percentile(&latencies, 0.50)),
        p90_us: Some(percentile(&latencies, 0.90)),
        p99_us: Some(percentile(&latencies, 0.99)),
        ..Row::default()
    }
}

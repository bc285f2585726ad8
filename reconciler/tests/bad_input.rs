//! The bad-input catalogue: every public API fed its bad inputs. Each case
//! must return the documented error (or the documented empty answer) and
//! never panic.

use std::sync::Arc;
use std::time::Duration;

use reconciler::{
    Config, ConfigError, HealthReporter, Lifecycle, LifecycleError, OpError, Operations, Params,
    PrometheusMetrics, Status, StatusKind, WaitError,
};
use statedb::{Db, Error, Index, Objects, ReadTxn, Table};

#[derive(Clone, Debug, serde::Serialize)]
struct O {
    id: u64,
    status: Status,
}

fn id() -> Index<O, u64> {
    Index::unique("id", |o: &O, k| k.push(&o.id))
}

fn o(id: u64) -> O {
    O {
        id,
        status: Status::pending(),
    }
}

fn registered(name: &str) -> (Db, Table<O>) {
    let t = Table::new(name, &id()).unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    (db, t)
}

struct Nop;

#[async_trait::async_trait]
impl Operations<O> for Nop {
    async fn update(&self, _: &ReadTxn, _: &mut O, _: Option<&mut bool>) -> Result<(), OpError> {
        Ok(())
    }
    async fn delete(&self, _: &ReadTxn, _: &O) -> Result<(), OpError> {
        Ok(())
    }
    async fn prune(&self, _: &ReadTxn, _: Objects<O>) -> Result<(), OpError> {
        Ok(())
    }
}

fn config(t: &Table<O>) -> Config<O> {
    Config::new(
        t.clone(),
        |o| &o.status,
        |o, s| o.status = s,
        O::clone,
        Arc::new(Nop),
    )
}

fn params(db: &Db, module: &str) -> Params {
    Params::new(
        db.clone(),
        module,
        Lifecycle::new(),
        Arc::new(HealthReporter::new()),
    )
}

// ---- statedb: declarations ------------------------------------------------

#[test]
fn c01_table_names_outside_the_pattern() {
    for bad in [
        "",
        "Upper",
        "9start",
        "-dash",
        "with space",
        "tab\t",
        "ünï",
        "a/b",
        "a.b",
    ] {
        assert_eq!(
            Table::new(bad, &id()).unwrap_err(),
            Error::InvalidTableName(bad.into()),
            "{bad:?}"
        );
    }
}

#[test]
fn c02_table_name_too_long() {
    let name = "a".repeat(32);
    assert_eq!(
        Table::new(&name, &id()).unwrap_err(),
        Error::InvalidTableName(name)
    );
}

#[test]
fn c03_primary_index_not_unique() {
    let nu: Index<O, u64> = Index::non_unique("id", |o: &O, k| k.push(&o.id));
    assert!(matches!(
        Table::new("t", &nu),
        Err(Error::PrimaryIndexNotUnique { .. })
    ));
}

#[test]
fn c04_duplicate_index_name() {
    let other: Index<O, u64> = Index::non_unique("id", |o: &O, k| k.push(&o.id));
    assert!(matches!(
        Table::builder("t", &id()).index(&other).build(),
        Err(Error::DuplicateIndex { .. })
    ));
}

#[test]
fn c05_reserved_index_name() {
    let r: Index<O, u64> = Index::non_unique("__graveyard__", |o: &O, k| k.push(&o.id));
    assert!(matches!(
        Table::builder("t", &id()).index(&r).build(),
        Err(Error::ReservedIndexName(_))
    ));
}

#[test]
fn c06_empty_index_name() {
    let e: Index<O, u64> = Index::unique("", |o: &O, k| k.push(&o.id));
    assert_eq!(Table::new("t", &e).unwrap_err(), Error::EmptyIndexName);
}

#[test]
fn c07_register_twice() {
    let (db, t) = registered("t");
    assert_eq!(
        db.register_table(&t),
        Err(Error::DuplicateTable("t".into()))
    );
}

#[test]
fn c08_register_a_second_table_with_a_taken_name() {
    let (db, _) = registered("t");
    let t2 = Table::new("t", &id()).unwrap();
    assert_eq!(
        db.register_table(&t2),
        Err(Error::DuplicateTable("t".into()))
    );
}

#[test]
fn c09_register_with_another_db() {
    // Refused while the first Db is alive; allowed once it is dropped.
    let (db, t) = registered("t");
    assert_eq!(
        Db::new().register_table(&t),
        Err(Error::TableFromOtherDb("t".into()))
    );
    drop(db);
    assert_eq!(Db::new().register_table(&t), Ok(()));
}

// ---- statedb: transactions -----------------------------------------------

#[test]
fn c10_write_txn_on_unregistered_table() {
    let t = Table::new("t", &id()).unwrap();
    assert_eq!(
        Db::new().write_txn(&[&t]).unwrap_err(),
        Error::TableNotRegistered("t".into())
    );
}

#[test]
fn c11_write_txn_with_table_of_other_db() {
    let (_, t) = registered("t");
    assert_eq!(
        Db::new().write_txn(&[&t]).unwrap_err(),
        Error::TableFromOtherDb("t".into())
    );
}

#[test]
fn c12_query_unregistered_table() {
    let t = Table::new("t", &id()).unwrap();
    assert_eq!(
        t.num_objects(&Db::new().read_txn()).unwrap_err(),
        Error::TableNotRegistered("t".into())
    );
}

#[test]
fn c13_query_with_read_txn_of_other_db() {
    let (_, t) = registered("t");
    let (other, _) = registered("u");
    assert!(matches!(
        t.all(&other.read_txn()),
        Err(Error::TableFromOtherDb(_))
    ));
}

#[test]
fn c14_write_to_table_not_locked() {
    let (db, t) = registered("t");
    let u = Table::new("u", &id()).unwrap();
    db.register_table(&u).unwrap();
    let mut w = db.write_txn(&[&t]).unwrap();
    assert_eq!(
        u.insert(&mut w, o(1)).unwrap_err(),
        Error::TableNotLocked("u".into())
    );
    assert_eq!(
        u.delete_all(&mut w).unwrap_err(),
        Error::TableNotLocked("u".into())
    );
}

#[test]
fn c15_query_with_index_of_another_table() {
    let (db, t) = registered("t");
    let foreign: Index<O, u64> = Index::unique("other", |o: &O, k| k.push(&o.id));
    assert!(matches!(
        t.get(&db.read_txn(), foreign.query(&1)),
        Err(Error::UnknownIndex { .. })
    ));
    assert!(matches!(
        t.prefix(&db.read_txn(), foreign.query(&1)),
        Err(Error::UnknownIndex { .. })
    ));
}

#[test]
fn c16_primary_key_yields_no_key() {
    let none: Index<O, u64> = Index::unique("none", |_: &O, _| {});
    let t = Table::new("t", &none).unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    let mut w = db.write_txn(&[&t]).unwrap();
    assert_eq!(
        t.insert(&mut w, o(1)).unwrap_err(),
        Error::PrimaryKeyCount {
            table: "t".into(),
            count: 0
        }
    );
}

#[test]
fn c17_primary_key_yields_two_keys() {
    let two: Index<O, u64> = Index::unique("two", |o: &O, k| {
        k.push(&o.id);
        k.push(&(o.id + 1));
    });
    let t = Table::new("t", &two).unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    let mut w = db.write_txn(&[&t]).unwrap();
    assert_eq!(
        t.insert(&mut w, o(1)).unwrap_err(),
        Error::PrimaryKeyCount {
            table: "t".into(),
            count: 2
        }
    );
}

#[test]
fn c18_compare_and_swap_on_missing_object() {
    let (db, t) = registered("t");
    let mut w = db.write_txn(&[&t]).unwrap();
    assert_eq!(
        t.compare_and_swap(&mut w, 1, o(1)).unwrap_err(),
        Error::ObjectNotFound
    );
}

#[test]
fn c19_compare_and_swap_with_wrong_revision() {
    let (db, t) = registered("t");
    let mut w = db.write_txn(&[&t]).unwrap();
    t.insert(&mut w, o(1)).unwrap();
    assert_eq!(
        t.compare_and_swap(&mut w, 9, o(1)).unwrap_err(),
        Error::RevisionNotEqual {
            expected: 9,
            found: 1
        }
    );
}

#[test]
fn c20_compare_and_delete_on_missing_object() {
    let (db, t) = registered("t");
    let mut w = db.write_txn(&[&t]).unwrap();
    // Nothing to delete: not an error (as the reference).
    assert!(matches!(t.compare_and_delete(&mut w, 1, &o(1)), Ok(None)));
}

#[test]
fn c21_compare_and_delete_with_wrong_revision() {
    let (db, t) = registered("t");
    let mut w = db.write_txn(&[&t]).unwrap();
    t.insert(&mut w, o(1)).unwrap();
    assert_eq!(
        t.compare_and_delete(&mut w, 0, &o(1)).unwrap_err(),
        Error::RevisionNotEqual {
            expected: 0,
            found: 1
        }
    );
}

#[test]
fn c22_delete_of_missing_object_is_none() {
    let (db, t) = registered("t");
    let mut w = db.write_txn(&[&t]).unwrap();
    assert_eq!(t.delete(&mut w, &o(42)).unwrap().map(|x| x.id), None);
    assert_eq!(
        t.revision(&w).unwrap(),
        0,
        "a no-op delete takes no revision"
    );
}

#[test]
fn c23_change_iterator_after_write() {
    let (db, t) = registered("t");
    let mut w = db.write_txn(&[&t]).unwrap();
    t.insert(&mut w, o(1)).unwrap();
    assert_eq!(
        t.changes(&mut w).err().map(|e| e.to_string()),
        Some(Error::ChangesAfterWrite("t".into()).to_string())
    );
}

#[test]
fn c24_change_iterator_on_table_not_locked() {
    let (db, t) = registered("t");
    let u = Table::new("u", &id()).unwrap();
    db.register_table(&u).unwrap();
    let mut w = db.write_txn(&[&u]).unwrap();
    assert!(matches!(t.changes(&mut w), Err(Error::TableNotLocked(_))));
}

#[test]
fn c25_initializer_on_table_not_locked() {
    let (db, t) = registered("t");
    let u = Table::new("u", &id()).unwrap();
    db.register_table(&u).unwrap();
    let mut wt = db.write_txn(&[&t]).unwrap();
    let init = t.register_initializer(&mut wt, "i").unwrap();
    wt.commit();
    let mut wu = db.write_txn(&[&u]).unwrap();
    // `u` is locked here: registering works; `t` is not.
    assert!(u.register_initializer(&mut wu, "x").is_ok());
    assert!(matches!(
        t.register_initializer(&mut wu, "y"),
        Err(Error::TableNotLocked(_))
    ));
    assert_eq!(
        init.done(&mut wu).unwrap_err(),
        Error::TableNotLocked("t".into())
    );
}

#[test]
fn c26_json_dump_to_failing_writer() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (db, t) = registered("t");
    assert!(matches!(
        db.write_json(&db.read_txn(), &[&t], Broken),
        Err(Error::Json(_))
    ));
}

// ---- part -----------------------------------------------------------------

#[test]
fn c27_tree_edge_queries_on_empty_and_missing() {
    let t: part::Tree<u32> = part::Tree::new();
    assert!(t.get(b"").is_none());
    assert_eq!(t.prefix(b"\xff\xff").0.count(), 0);
    assert_eq!(t.lower_bound(&[0xff; 64]).count(), 0);
    assert!(t.first().is_none() && t.last().is_none());
    let mut txn = t.txn();
    assert_eq!(txn.delete(b"missing"), None);
    assert_eq!(txn.len(), 0);
}

#[test]
fn c28_map_and_set_removals_of_missing() {
    let mut m: part::Map<u32, u32> = part::Map::new();
    assert_eq!(m.remove_mut(&7), None);
    let mut s: part::Set<String> = part::Set::new();
    assert!(!s.remove_mut(&"x".to_string()));
}

#[test]
fn c29_set_and_map_from_bad_json() {
    assert!(serde_json::from_str::<part::Set<u32>>("{\"a\":1}").is_err());
    assert!(serde_json::from_str::<part::Map<String, u32>>("[1,2]").is_err());
    assert!(serde_json::from_str::<part::Set<u8>>("[300]").is_err());
}

// ---- reconciler -----------------------------------------------------------

#[test]
fn c30_zero_round_size() {
    let (db, t) = registered("t");
    let mut c = config(&t);
    c.incremental_round_size = 0;
    assert_eq!(
        reconciler::new(c, params(&db, "m")).unwrap_err(),
        ConfigError::ZeroRoundSize
    );
}

#[test]
fn c31_zero_min_backoff() {
    let (db, t) = registered("t");
    let mut c = config(&t);
    c.retry_backoff_min_duration = Duration::ZERO;
    assert_eq!(
        reconciler::new(c, params(&db, "m")).unwrap_err(),
        ConfigError::ZeroRetryBackoffMin
    );
}

#[test]
fn c32_max_backoff_below_min() {
    let (db, t) = registered("t");
    let mut c = config(&t);
    c.retry_backoff_min_duration = Duration::from_secs(2);
    c.retry_backoff_max_duration = Duration::from_secs(1);
    assert!(matches!(
        reconciler::new(c, params(&db, "m")),
        Err(ConfigError::RetryBackoffMaxBelowMin { .. })
    ));
}

#[test]
fn c33_empty_module_id() {
    let (db, t) = registered("t");
    assert_eq!(
        reconciler::register(config(&t), params(&db, "")).unwrap_err(),
        ConfigError::EmptyModuleId
    );
}

#[test]
fn c34_table_not_registered_with_params_db() {
    let (_, t) = registered("t");
    assert!(matches!(
        reconciler::register(config(&t), params(&Db::new(), "m")),
        Err(ConfigError::Table { .. })
    ));
}

#[tokio::test]
async fn c35_lifecycle_started_twice() {
    let lc = Lifecycle::new();
    lc.start().await.unwrap();
    assert!(matches!(
        lc.start().await,
        Err(LifecycleError::AlreadyStarted)
    ));
    lc.stop().await;
    // Stopping twice is harmless.
    lc.stop().await;
}

#[tokio::test]
async fn c36_wait_with_an_index_the_table_lacks() {
    let (db, t) = registered("t");
    let status = reconciler::new_status_index(|o: &O| &o.status);
    let r = reconciler::wait_for_reconciliation(&db, &t, &status).await;
    assert!(matches!(r, Err(Error::UnknownIndex { .. })));
}

#[test]
fn c37_blocking_wait_times_out() {
    let status = reconciler::new_status_index(|o: &O| &o.status);
    let t = Table::builder("t", &id()).index(&status).build().unwrap();
    let db = Db::new();
    db.register_table(&t).unwrap();
    let mut w = db.write_txn(&[&t]).unwrap();
    t.insert(&mut w, o(1)).unwrap();
    w.commit();
    let r =
        reconciler::wait_for_reconciliation_blocking(&db, &t, &status, Duration::from_millis(20));
    assert_eq!(r, Err(WaitError::Timeout));
}

#[test]
fn c38_status_with_bad_timestamp() {
    let bad = r#"{"kind":"done","delete":false,"updated_at":"yesterday","error":null}"#;
    assert!(serde_json::from_str::<Status>(bad).is_err());
    let bad_kind =
        r#"{"kind":"finished","delete":false,"updated_at":"2026-01-01T00:00:00Z","error":null}"#;
    assert!(serde_json::from_str::<Status>(bad_kind).is_err());
    assert_eq!(StatusKind::Error.as_str(), "error");
}

#[test]
fn c39_prometheus_metrics_registered_twice() {
    let reg = prometheus::Registry::new();
    PrometheusMetrics::new(&reg).unwrap();
    assert!(PrometheusMetrics::new(&reg).is_err());
}

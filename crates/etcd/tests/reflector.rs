//! The reflector and the writer against a real etcd server: the first
//! list, the watch, undecodable values, an etcd restart, and a compaction
//! of the revision the watch resumes from.

mod etcd_server;

use std::time::{Duration, Instant};

use etcd_server::Etcd;
use statedb::{Db, Index, Table};
use statedb_etcd::etcd_client::{Client, CompactionOptions, GetOptions};
use statedb_etcd::{DecodeError, Reflector, Writer};

#[derive(Clone, Debug, PartialEq)]
struct Item {
    name: String,
    value: String,
}

fn decode(name: &str, value: &[u8]) -> Result<Item, DecodeError> {
    let value = std::str::from_utf8(value)?;
    if value == "bad" {
        return Err("refused".into());
    }
    Ok(Item {
        name: name.to_string(),
        value: value.to_string(),
    })
}

struct Setup {
    db: Db,
    table: Table<Item>,
}

fn setup() -> Setup {
    let by_name: Index<Item, str> = Index::unique("name", |i: &Item, k| k.push(i.name.as_str()));
    let table = Table::new("items", &by_name).unwrap();
    let db = Db::new();
    db.register_table(&table).unwrap();
    Setup { db, table }
}

impl Setup {
    fn items(&self) -> Vec<(String, String)> {
        self.table
            .all(&self.db.read_txn())
            .unwrap()
            .map(|(i, _)| (i.name.clone(), i.value.clone()))
            .collect()
    }
    fn initialized(&self) -> bool {
        self.table.initialized(&self.db.read_txn()).unwrap().0
    }
}

/// Polls `cond` until it holds (etcd runs in real time); fails after 30 s.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_then_watches_and_skips_what_it_cannot_decode() {
    let Some(etcd) = Etcd::start() else { return };
    let client = Client::connect([etcd.endpoint()], None).await.unwrap();
    let writer = Writer::new(client.clone(), "/items/");
    writer.put("a", "1").await.unwrap();
    writer.put("b", "2").await.unwrap();
    writer.put("broken", "bad").await.unwrap();
    // Outside the prefix: never reflected.
    Writer::new(client.clone(), "/other/")
        .put("x", "9")
        .await
        .unwrap();

    let s = setup();
    let reflector = Reflector::new(client.clone(), "/items/", s.table.clone(), decode)
        .spawn(&s.db)
        .unwrap();
    assert!(!s.initialized() || s.items().len() == 2);
    until("initialized after the first list", || s.initialized()).await;
    assert_eq!(s.items(), pairs(&[("a", "1"), ("b", "2")]));
    assert_eq!(reflector.stats().undecodable, 1);

    writer.put("c", "3").await.unwrap();
    writer.put("a", "10").await.unwrap();
    assert!(writer.delete("b").await.unwrap());
    assert!(!writer.delete("nothing").await.unwrap());
    until("watched changes", || {
        s.items() == pairs(&[("a", "10"), ("c", "3")])
    })
    .await;
    // A value that stops being decodable makes the key absent.
    writer.put("c", "bad").await.unwrap();
    until("c gone", || s.items() == pairs(&[("a", "10")])).await;
    let stats = reflector.stats();
    assert_eq!(stats.lists, 1);
    assert_eq!(stats.undecodable, 2);
    reflector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_an_etcd_restart() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let client = Client::connect([etcd.endpoint()], None).await.unwrap();
    let writer = Writer::new(client.clone(), "/items/");
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        writer.put(k, v).await.unwrap();
    }
    let s = setup();
    // A long backoff: the changes below happen while the reflector waits
    // to reconnect, and the list that follows must bring them all.
    let reflector = Reflector::new(client.clone(), "/items/", s.table.clone(), decode)
        .retry_backoff(Duration::from_secs(2), Duration::from_secs(2))
        .spawn(&s.db)
        .unwrap();
    until("first list", || s.items().len() == 3).await;
    let revisions_before: Vec<u64> = s
        .table
        .all(&s.db.read_txn())
        .unwrap()
        .map(|(_, r)| r)
        .collect();

    etcd.restart();
    until("watch failed on restart", || reflector.stats().errors >= 1).await;
    let mut c = Client::connect([etcd.endpoint()], None).await.unwrap();
    c.delete("/items/b", None).await.unwrap();
    c.put("/items/d", "4", None).await.unwrap();
    until("listed again after the restart", || {
        s.items() == pairs(&[("a", "1"), ("c", "3"), ("d", "4")])
    })
    .await;
    let stats = reflector.stats();
    assert!(stats.lists >= 2, "{stats:?}");
    // Unchanged keys kept their rows: the list wrote only what changed.
    let a_and_c: Vec<u64> = s
        .table
        .all(&s.db.read_txn())
        .unwrap()
        .filter(|(i, _)| i.name == "a" || i.name == "c")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(a_and_c, [revisions_before[0], revisions_before[2]]);
    // And it keeps watching.
    writer.put("e", "5").await.unwrap();
    until("watching again", || s.items().len() == 4).await;
    reflector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_watch_revision_makes_it_list_again() {
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};

    let Some(etcd) = Etcd::start() else { return };
    let client = Client::connect([etcd.endpoint()], None).await.unwrap();
    let writer = Writer::new(client.clone(), "/items/");
    writer.put("a", "1").await.unwrap();
    writer.put("gate", "g").await.unwrap();
    // The first time the reflector decodes "gate" (during its first
    // list), it waits while the test writes and compacts past the listed
    // revision: the watch that follows starts from a compacted revision.
    let (at_gate, gate_reached) = mpsc::channel::<()>();
    let (open_gate, gate_opened) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(Some((at_gate, gate_opened))));
    let decode_gated = move |name: &str, value: &[u8]| {
        if name == "gate"
            && let Some((at, opened)) = gate.lock().unwrap().take()
        {
            at.send(()).unwrap();
            // block_in_place: the worker's other tasks (the etcd
            // connection) move to another thread meanwhile.
            tokio::task::block_in_place(|| opened.recv_timeout(Duration::from_secs(30)).unwrap());
        }
        decode(name, value)
    };
    let s = setup();
    let reflector = Reflector::new(client.clone(), "/items/", s.table.clone(), decode_gated)
        .spawn(&s.db)
        .unwrap();
    tokio::task::spawn_blocking(move || gate_reached.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    writer.put("b", "2").await.unwrap();
    assert!(writer.delete("a").await.unwrap());
    let mut c = client.clone();
    let rev = c
        .get("/items/", Some(GetOptions::new().with_prefix()))
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    c.compact(rev, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    open_gate.send(()).unwrap();

    until("listed again after the compaction", || {
        s.items() == pairs(&[("b", "2"), ("gate", "g")])
    })
    .await;
    let stats = reflector.stats();
    assert_eq!(stats.compacted, 1, "{stats:?}");
    assert_eq!(stats.lists, 2, "{stats:?}");
    assert_eq!(stats.errors, 0, "{stats:?}");
    reflector.stop().await;
}

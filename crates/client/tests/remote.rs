//! The remote client against a real server over loopback: listing,
//! queries and their errors, and change streams that reconnect from the
//! last revision they saw, or resync when they cannot.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use statedb::{Db, Index, Table};
use statedb_client::{ChangeStream, Client, ClientError, Event, Op, Reconnect};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
struct Host {
    name: String,
    port: u16,
}

fn host(name: &str, port: u16) -> Host {
    Host {
        name: name.into(),
        port,
    }
}

struct Server {
    db: Db,
    hosts: Table<Host>,
    addr: SocketAddr,
}

impl Server {
    async fn start() -> Server {
        let by_name: Index<Host, str> =
            Index::unique("name", |h: &Host, k| k.push(h.name.as_str()));
        let by_port: Index<Host, u16> = Index::non_unique("port", |h: &Host, k| k.push(&h.port));
        let hosts = Table::builder("hosts", &by_name)
            .index(&by_port)
            .build()
            .unwrap();
        let db = Db::new();
        db.register_inspectable(&hosts).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().nest("/statedb", statedb_http::router(db.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server { db, hosts, addr }
    }

    fn insert(&self, h: Host) {
        let mut w = self.db.write_txn(&[&self.hosts]).unwrap();
        self.hosts.insert(&mut w, h).unwrap();
        w.commit();
    }

    fn delete(&self, name: &str) {
        let mut w = self.db.write_txn(&[&self.hosts]).unwrap();
        self.hosts.delete(&mut w, &host(name, 0)).unwrap();
        w.commit();
    }
}

/// A TCP proxy in front of the server that can cut every connection and
/// refuse new ones, as a network partition or a server restart would.
struct Proxy {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    conns: Arc<parking_lot::Mutex<JoinSet<()>>>,
}

impl Proxy {
    async fn start(to: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(parking_lot::Mutex::new(JoinSet::new()));
        let (o, c) = (open.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                c.lock().spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy { addr, open, conns }
    }

    /// Cuts every connection; refuses new ones until `heal`.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.conns.lock().abort_all();
    }

    fn heal(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

fn fast() -> Reconnect {
    Reconnect::default()
        .heartbeat(Duration::from_millis(50))
        .idle(Duration::from_secs(2))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
}

/// The next event that is not an error (errors are failed reconnection
/// attempts while the proxy refuses); fails after 10 s.
async fn next_event(s: &mut ChangeStream<Host>) -> Event<Host> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let item = tokio::time::timeout_at(deadline, s.next())
            .await
            .expect("no event within 10 s")
            .expect("the stream ended");
        match item {
            Ok(e) => return e,
            Err(e) => assert!(!e.is_permanent(), "{e}"),
        }
    }
}

fn upserted(e: Event<Host>) -> Host {
    match e {
        Event::Upsert(o) => o.object,
        other => panic!("expected an upsert, got {other:?}"),
    }
}

#[tokio::test]
async fn lists_tables_and_queries_objects_by_text_keys() {
    let s = Server::start().await;
    for (n, p) in [("alpha", 80), ("beta", 443), ("beta2", 80)] {
        s.insert(host(n, p));
    }
    let client = Client::new(&format!("http://{}/statedb", s.addr)).unwrap();
    let tables = client.tables().await.unwrap();
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0].name, "hosts");
    assert_eq!(tables[0].objects, 3);
    assert_eq!(tables[0].indexes[1].name, "port");
    assert!(tables[0].indexes[0].primary);

    let hosts = client.table::<Host>("hosts");
    let all = hosts.all().await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].object, host("beta2", 80));
    assert!(all[0].revision < all[2].revision);
    assert_eq!(
        hosts.get(None, "beta").await.unwrap().unwrap().object,
        host("beta", 443)
    );
    assert!(hosts.get(None, "zeta").await.unwrap().is_none());
    let names = |v: Vec<statedb_client::RemoteObject<Host>>| -> Vec<String> {
        v.into_iter().map(|o| o.object.name).collect()
    };
    assert_eq!(
        names(hosts.list(Some("port"), "80").await.unwrap()),
        ["alpha", "beta2"]
    );
    assert_eq!(
        names(hosts.prefix(None, "beta").await.unwrap()),
        ["beta", "beta2"]
    );
    assert_eq!(
        names(hosts.lower_bound(None, "b").await.unwrap()),
        ["beta", "beta2"]
    );
    let first = hosts
        .find(Some("port"), Some((Op::List, "80")), Some(1))
        .await
        .unwrap();
    assert_eq!(names(first), ["alpha"], "the limit is applied");
    let rows = hosts
        .rows(Some("port"), Some((Op::List, "443")), None)
        .await
        .unwrap();
    assert_eq!(rows.header, ["name", "port"]);
    assert_eq!(rows.rows, [["beta", "443"]]);

    // Errors: the server's message, the status, permanence.
    let e = hosts.list(Some("port"), "http").await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Status { status: 400, message, .. } if message.contains("u16")),
        "{e}"
    );
    assert!(e.is_permanent());
    let e = client.table::<Host>("nope").all().await.unwrap_err();
    assert!(matches!(&e, ClientError::Status { status: 404, .. }), "{e}");
    let e = client.table::<u32>("hosts").all().await.unwrap_err();
    assert!(matches!(e, ClientError::Decode { .. }), "{e}");
    assert!(matches!(
        Client::new("ftp://x/"),
        Err(ClientError::Url { .. })
    ));
    assert!(matches!(
        Client::new("not a url"),
        Err(ClientError::Url { .. })
    ));
    let down = Client::new("http://127.0.0.1:1/statedb").unwrap();
    let e = down.tables().await.unwrap_err();
    assert!(
        matches!(e, ClientError::Transport { .. }) && !e.is_permanent(),
        "{e}"
    );
}

#[tokio::test]
async fn change_streams_reconnect_from_the_last_revision_or_resync() {
    let s = Server::start().await;
    s.insert(host("alpha", 80));
    let proxy = Proxy::start(s.addr).await;
    let client = Client::new(&format!("http://{}/statedb", proxy.addr)).unwrap();
    let hosts = client.table::<Host>("hosts");

    // From the start: the existing object, then what comes.
    let mut changes = hosts.changes_with(Some(0), fast());
    assert_eq!(upserted(next_event(&mut changes).await), host("alpha", 80));
    s.insert(host("beta", 443));
    let beta_key = match next_event(&mut changes).await {
        Event::Upsert(o) => {
            assert_eq!(o.object, host("beta", 443));
            o.key
        }
        other => panic!("expected beta, got {other:?}"),
    };
    assert!(!beta_key.is_empty());
    let seen = changes.revision();

    // Cut; only inserts while away: an exact resume, nothing twice.
    proxy.cut();
    s.insert(host("gamma", 22));
    proxy.heal();
    assert_eq!(upserted(next_event(&mut changes).await), host("gamma", 22));
    assert!(changes.revision() > seen);

    // Cut; a delete while away cannot be replayed: resync, then the
    // table as it is (alpha gone).
    proxy.cut();
    s.delete("alpha");
    proxy.heal();
    assert_eq!(
        next_event(&mut changes).await,
        Event::Resync(statedb_client::ResyncReason::MissedDeletes)
    );
    let replay = [
        upserted(next_event(&mut changes).await),
        upserted(next_event(&mut changes).await),
    ];
    assert_eq!(replay, [host("beta", 443), host("gamma", 22)]);

    // And live again: a delete arrives as one.
    s.delete("beta");
    match next_event(&mut changes).await {
        Event::Delete(o) => {
            assert_eq!(o.object.name, "beta");
            assert_eq!(o.key, beta_key, "the same identity as its upsert");
        }
        other => panic!("expected the delete, got {other:?}"),
    }
}

#[tokio::test]
async fn a_change_stream_ends_on_a_permanent_error() {
    let s = Server::start().await;
    let client = Client::new(&format!("http://{}/statedb", s.addr)).unwrap();
    let mut changes = client.table::<Host>("nope").changes_with(None, fast());
    let e = changes.next().await.unwrap().unwrap_err();
    assert!(matches!(e, ClientError::Status { status: 404, .. }), "{e}");
    assert!(changes.next().await.is_none());

    // Objects that are not the type asked for end it too.
    s.insert(host("alpha", 80));
    let mut changes = client.table::<u32>("hosts").changes_with(Some(0), fast());
    let e = changes.next().await.unwrap().unwrap_err();
    assert!(matches!(e, ClientError::Decode { .. }), "{e}");
    assert!(changes.next().await.is_none());
}

/// A consumer that stops reading: the server holds back at most its bound
/// of deletes (it held every one, growing without bound), lets go past it,
/// and the stream, read again, resyncs and ends equal to the table.
#[tokio::test]
async fn a_stalled_change_stream_is_lapped_then_resyncs() {
    let s = Server::start().await;
    let client = Client::new(&format!("http://{}/statedb", s.addr)).unwrap();
    let hosts = client.table::<Host>("hosts");
    let mut changes = hosts.changes_with(Some(0), fast().max_lag(20));
    s.insert(host("first", 1));
    assert_eq!(upserted(next_event(&mut changes).await), host("first", 1));
    // Not read from here on. Big objects fill the socket buffers, so the
    // server stops being able to send, and deletes pile up behind.
    let pad = "x".repeat(32 * 1024);
    let deleted_at_most = |bound: usize| {
        let g = s.db.tables(&s.db.read_txn())[0].graveyard;
        assert!(g <= bound, "{g} deleted objects held for a stalled stream");
    };
    for i in 0..600 {
        s.insert(host(&format!("h{i}-{pad}"), 2));
        s.delete(&format!("h{i}-{pad}"));
        deleted_at_most(20);
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    s.insert(host("last", 3));
    // Read again: whatever was in flight, then a resync and the table as
    // it is.
    let mut mirror: std::collections::BTreeMap<String, Host> = Default::default();
    let mut resynced = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !(resynced && mirror.len() == 2 && mirror.contains_key("last")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never converged: {:?}",
            mirror.keys()
        );
        match next_event(&mut changes).await {
            Event::Resync(_) => {
                resynced = true;
                mirror.clear();
            }
            Event::Upsert(o) => {
                mirror.insert(o.object.name.clone(), o.object);
            }
            Event::Delete(o) => {
                mirror.remove(&o.object.name);
            }
        }
    }
    assert_eq!(
        mirror.into_values().collect::<Vec<_>>(),
        [host("first", 1), host("last", 3)]
    );
}

//! The `sdb` binary against a test server: each command and format, its
//! output compared in full, errors, and `watch` following live changes.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use statedb::{Db, Index, Table, TableRow};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::Command;

#[derive(serde::Serialize)]
struct Host {
    name: String,
    port: u16,
}

#[derive(serde::Serialize)]
struct Route {
    prefix: String,
    via: String,
}

impl TableRow for Route {
    fn table_header() -> Vec<String> {
        vec!["destination".into(), "gateway".into()]
    }
    fn table_row(&self) -> Vec<String> {
        vec![self.prefix.clone(), format!("via {}", self.via)]
    }
}

struct Server {
    db: Db,
    hosts: Table<Host>,
    url: String,
}

async fn server() -> Server {
    let by_name: Index<Host, str> = Index::unique("name", |h: &Host, k| k.push(h.name.as_str()));
    let by_port: Index<Host, u16> = Index::non_unique("port", |h: &Host, k| k.push(&h.port));
    let hosts = Table::builder("hosts", &by_name)
        .index(&by_port)
        .build()
        .unwrap();
    let by_prefix: Index<Route, ipnet::IpNet> = Index::unique("prefix", |r: &Route, k| {
        k.push(&r.prefix.parse::<ipnet::IpNet>().unwrap())
    });
    let routes = Table::new("routes", &by_prefix).unwrap();
    let db = Db::new();
    db.register_inspectable(&hosts).unwrap();
    db.register_inspectable_rows(&routes).unwrap();
    let mut w = db.write_txn(&[&hosts, &routes]).unwrap();
    for (n, p) in [("alpha", 80), ("beta", 443), ("gamma", 80)] {
        let h = Host {
            name: n.into(),
            port: p,
        };
        hosts.insert(&mut w, h).unwrap();
    }
    for (p, v) in [
        ("10.0.0.0/8", "eth0"),
        ("10.1.0.0/16", "eth1"),
        ("192.168.0.0/24", "eth2"),
    ] {
        let r = Route {
            prefix: p.into(),
            via: v.into(),
        };
        routes.insert(&mut w, r).unwrap();
    }
    w.commit();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let app = axum::Router::new().nest("/statedb", statedb_http::router(db.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        db,
        hosts,
        url: format!("http://{addr}/statedb"),
    }
}

/// Runs `sdb --url URL ARGS`; its exit success, stdout and stderr.
async fn sdb(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sdb"))
        .arg("--url")
        .arg(url)
        .args(args)
        .env_remove("STATEDB_URL")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_show_and_get_print_aligned_columns() {
    let s = server().await;
    let (ok, out, err) = sdb(&s.url, &["tables"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "NAME    OBJECTS  REVISION  INITIALIZED  GRAVEYARD  LOCKED BY  INDEXES\n\
         hosts   3        3         true         0          -          name (primary), port\n\
         routes  3        3         true         0          -          prefix (primary)\n"
    );
    // A table held by a write transaction names its handle.
    let held = s.db.handle("importer").write_txn(&[&s.hosts]).unwrap();
    let (ok, out, err) = sdb(&s.url, &["tables"]).await;
    assert!(ok, "{err}");
    let hosts = out.lines().find(|l| l.starts_with("hosts")).unwrap();
    assert!(hosts.contains(" importer ("), "{out}");
    assert!(hosts.contains(" ms) "), "{out}");
    let routes = out.lines().find(|l| l.starts_with("routes")).unwrap();
    assert!(!routes.contains("importer"), "{out}");
    drop(held);

    let (ok, out, err) = sdb(&s.url, &["show", "hosts"]).await;
    assert!(ok, "{err}");
    assert_eq!(out, "NAME   PORT\nalpha  80\nbeta   443\ngamma  80\n");

    // A prefix on an IP-prefix index: the networks within it.
    let (ok, out, err) = sdb(&s.url, &["get", "routes", "prefix", "10.0.0.0/8"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "DESTINATION  GATEWAY\n10.0.0.0/8   via eth0\n10.1.0.0/16  via eth1\n"
    );

    // The routes' own columns; a query on an IP-prefix index.
    let (ok, out, err) = sdb(&s.url, &["get", "routes", "lower_bound", "10.1.0.0/16"]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "DESTINATION     GATEWAY\n10.1.0.0/16     via eth1\n192.168.0.0/24  via eth2\n"
    );
    let (ok, out, _) = sdb(
        &s.url,
        &[
            "get", "hosts", "list", "80", "--index", "port", "--limit", "1",
        ],
    )
    .await;
    assert!(ok);
    assert_eq!(out, "NAME   PORT\nalpha  80\n");

    // A narrow terminal: cells wrap, no line is wider.
    let (ok, out, _) = sdb(&s.url, &["tables", "--width", "40"]).await;
    assert!(ok);
    assert!(out.lines().all(|l| l.chars().count() <= 40), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_yaml_output() {
    let s = server().await;
    let (ok, out, _) = sdb(&s.url, &["get", "hosts", "get", "beta", "-o", "json"]).await;
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v[0]["object"],
        serde_json::json!({"name": "beta", "port": 443})
    );
    assert_eq!(v[0]["revision"], 2);

    let (ok, out, _) = sdb(&s.url, &["show", "hosts", "-o", "yaml", "--limit", "1"]).await;
    assert!(ok);
    assert_eq!(
        out,
        "- revision: 1\n  object:\n    name: alpha\n    port: 80\n"
    );

    let (ok, out, _) = sdb(&s.url, &["tables", "-o", "json"]).await;
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v[1]["columns"],
        serde_json::json!(["destination", "gateway"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_is_wrong_and_exit_non_zero() {
    let s = server().await;
    for (args, says) in [
        (&["show", "nope"][..], "no table"),
        (
            &["get", "hosts", "list", "http", "--index", "port"][..],
            "u16",
        ),
        (&["get", "hosts", "scan", "x"][..], "unknown operation"),
        (
            &["get", "hosts", "get", "x", "--index", "color"][..],
            "no index",
        ),
        (&["watch", "nope"][..], "no table"),
    ] {
        let (ok, out, err) = sdb(&s.url, args).await;
        assert!(!ok, "{args:?}: {out}");
        assert!(
            err.starts_with("sdb: ") && err.contains(says),
            "{args:?}: {err}"
        );
    }
    let (ok, _, err) = sdb("http://127.0.0.1:1/statedb", &["tables"]).await;
    assert!(!ok && err.contains("failed"), "{err}");
    let (ok, _, err) = sdb("ftp://x", &["tables"]).await;
    assert!(!ok && err.contains("http://"), "{err}");
}

/// Reads lines of `child`'s stdout until one contains `text`; fails after
/// 10 s.
async fn read_until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    seen: &mut Vec<String>,
    text: &str,
) {
    while !seen.iter().any(|l| l.contains(text)) {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("never saw {text:?} in {seen:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("sdb ended before {text:?}: {seen:?}"));
        seen.push(line);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_the_table_then_each_change() {
    let s = server().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sdb"))
        .args(["--url", &s.url, "watch", "hosts"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    read_until(&mut lines, &mut seen, "gamma").await;
    assert_eq!(
        seen,
        [
            "REVISION  CHANGE  NAME   PORT",
            "1         upsert  alpha  80",
            "2         upsert  beta   443",
            "3         upsert  gamma  80",
        ]
    );
    let mut w = s.db.write_txn(&[&s.hosts]).unwrap();
    let h = Host {
        name: "delta".into(),
        port: 22,
    };
    s.hosts.insert(&mut w, h).unwrap();
    w.commit();
    let mut w = s.db.write_txn(&[&s.hosts]).unwrap();
    let h = Host {
        name: "alpha".into(),
        port: 0,
    };
    s.hosts.delete(&mut w, &h).unwrap();
    w.commit();
    read_until(&mut lines, &mut seen, "delete").await;
    assert_eq!(
        seen[4..],
        ["4         upsert  delta  22", "5         delete  alpha  80"]
    );
    child.kill().await.unwrap();

    // As JSON lines, from now on only.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sdb"))
        .args(["--url", &s.url, "watch", "hosts", "--new", "-o", "json"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The stream is open once the server holds its change iterator; until
    // then, writes would not be "new" for it. Poll with a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    let mut seen = Vec::new();
    loop {
        let mut w = s.db.write_txn(&[&s.hosts]).unwrap();
        let h = Host {
            name: format!("new{i}"),
            port: 1,
        };
        s.hosts.insert(&mut w, h).unwrap();
        w.commit();
        if let Ok(line) = tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await
        {
            seen.push(line.unwrap().unwrap());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no change printed");
        i += 1;
    }
    let v: serde_json::Value = serde_json::from_str(&seen[0]).unwrap();
    assert_eq!(v["change"], "upsert");
    assert!(v["object"]["name"].as_str().unwrap().starts_with("new"));
    assert!(!seen[0].contains("beta"));
    child.kill().await.unwrap();
}

/// A server on `addr` in a runtime of its own; dropping the runtime
/// closes every connection, as a server process that stops would.
struct Standalone {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Standalone {
    fn start(addr: SocketAddr, db: Db) -> Standalone {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.spawn(async move {
                let listener = TcpListener::bind(addr).await.unwrap();
                let _ = ready_tx.send(());
                let app = axum::Router::new().nest("/statedb", statedb_http::router(db));
                axum::serve(listener, app).await.unwrap();
            });
            let _ = stopped.recv();
            rt.shutdown_background();
        });
        ready.recv().unwrap();
        Standalone {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn hosts_db(names: &[&str]) -> (Db, Table<Host>) {
    let by_name: Index<Host, str> = Index::unique("name", |h: &Host, k| k.push(h.name.as_str()));
    let hosts = Table::new("hosts", &by_name).unwrap();
    let db = Db::new();
    db.register_inspectable(&hosts).unwrap();
    for n in names {
        let mut w = db.write_txn(&[&hosts]).unwrap();
        let h = Host {
            name: (*n).into(),
            port: 1,
        };
        hosts.insert(&mut w, h).unwrap();
        w.commit();
    }
    (db, hosts)
}

/// `sdb watch` through a server restart: one line when the outage starts
/// (it printed one per retry), one when it is back, and the resync said to
/// be a restart, not missed deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_retries_quietly_and_names_a_server_restart() {
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (db, _) = hosts_db(&["a", "b", "c", "d", "e"]);
    let first = Standalone::start(addr, db);
    let url = format!("http://{addr}/statedb");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sdb"))
        .args(["--url", &url, "watch", "hosts"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    read_until(&mut lines, &mut seen, "upsert  e").await;
    drop(first);
    // Several reconnection attempts fail (backoff from 100 ms).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Back, as a fresh process would be: its revisions start again.
    let (db, _) = hosts_db(&["z"]);
    let _second = Standalone::start(addr, db);
    read_until(&mut lines, &mut seen, "upsert  z").await;
    child.kill().await.unwrap();
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut err)
        .await
        .unwrap();
    let count = |s: &str| err.lines().filter(|l| l.contains(s)).count();
    assert_eq!(count("retrying"), 1, "{err}");
    assert_eq!(count("reconnected after"), 1, "{err}");
    assert_eq!(count("server restarted"), 1, "{err}");
    assert_eq!(count("deletes were missed"), 0, "{err}");
}

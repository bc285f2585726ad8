//! The HTTP API over loopback: every endpoint, its formats and errors, the
//! change streams, and the change iterator released when a client goes
//! away.

#[path = "support/chunked.rs"]
mod chunked;
use chunked::body_of;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use statedb::{Db, Index, Table};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(serde::Serialize, Debug)]
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

struct Setup {
    db: Db,
    hosts: Table<Host>,
    addr: SocketAddr,
}

async fn setup() -> Setup {
    let by_name: Index<Host, str> = Index::unique("name", |h: &Host, k| k.push(h.name.as_str()));
    let by_port: Index<Host, u16> = Index::non_unique("port", |h: &Host, k| k.push(&h.port));
    let hosts = Table::builder("hosts", &by_name)
        .index(&by_port)
        .build()
        .unwrap();
    let hidden = Table::new(
        "hidden",
        &Index::<u8, u8>::unique("id", |o: &u8, k| k.push(o)),
    )
    .unwrap();
    let db = Db::new();
    db.register_inspectable(&hosts).unwrap();
    db.register_table(&hidden).unwrap();
    let mut w = db.write_txn(&[&hosts]).unwrap();
    for (n, p) in [("alpha", 80), ("beta", 443), ("gamma", 80)] {
        hosts.insert(&mut w, host(n, p)).unwrap();
    }
    w.commit();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().nest("/statedb", statedb_http::router(db.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Setup { db, hosts, addr }
}

/// GET `path`; the status and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body_of(out.as_bytes()))
}

/// Opens a streaming GET; returns the connection after the headers.
async fn open_stream(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s
}

/// Reads from `s` until `text` has appeared in what was read; fails after
/// 10 s.
async fn read_until(s: &mut TcpStream, seen: &mut String, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !seen.contains(text) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "never saw {text:?} in {seen:?}");
        if let Ok(Ok(n)) = tokio::time::timeout(left, s.read(&mut buf)).await {
            assert!(n > 0, "stream closed before {text:?}: {seen:?}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
}

#[tokio::test]
async fn a_query_string_that_does_not_parse_is_a_json_error() {
    let s = setup().await;
    let mut refused = 0;
    for path in [
        "/statedb/tables/hosts?limit=many",
        "/statedb/tables/hosts/changes?from=yesterday",
        "/statedb?format=json&format=table&format",
        "/statedb/tables/hosts?reverse=perhaps",
    ] {
        let (code, body) = get(s.addr, path).await;
        if code == 200 {
            continue; // (repeated keys may parse: only failures matter)
        }
        assert_eq!(code, 400, "{path}: {body}");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {body}"
        );
        refused += 1;
    }
    assert!(refused >= 3, "only {refused} refused");
}

#[tokio::test]
async fn lists_tables_and_queries_objects_in_every_format() {
    let s = setup().await;
    let (code, body) = get(s.addr, "/statedb/tables").await;
    assert_eq!(code, 200, "{body}");
    let tables: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(tables[0]["name"], "hosts");
    assert_eq!(tables[0]["objects"], 3);
    assert_eq!(tables[0]["indexes"][1]["name"], "port");
    assert_eq!(tables[1]["name"], "hidden");

    let (code, body) = get(s.addr, "/statedb/tables/hosts").await;
    assert_eq!(code, 200);
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(all[0]["object"]["name"], "alpha");
    assert!(all[0]["revision"].as_u64().unwrap() > 0);

    let (_, body) = get(s.addr, "/statedb/tables/hosts?index=port&key=80&op=list").await;
    let found: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["object"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "gamma"]);
    let (_, body) = get(s.addr, "/statedb/tables/hosts?key=beta").await;
    assert!(body.contains("\"port\":443"), "{body}");
    let (_, body) = get(
        s.addr,
        "/statedb/tables/hosts?key=b&op=lower_bound&reverse=true&limit=1",
    )
    .await;
    assert!(body.contains("gamma") && !body.contains("beta"), "{body}");

    let (_, body) = get(s.addr, "/statedb/tables/hosts?format=ndjson").await;
    assert_eq!(body.lines().count(), 3);
    let (code, body) = get(s.addr, "/statedb/tables/hosts?format=table").await;
    assert_eq!(code, 200);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "NAME   PORT");
    assert_eq!(lines[2], "beta   443");
    let (code, body) = get(s.addr, "/statedb/tables/hosts?format=rows&limit=2").await;
    assert_eq!(code, 200);
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rows["header"], serde_json::json!(["name", "port"]));
    assert_eq!(rows["rows"][1], serde_json::json!(["beta", "443"]));
    assert_eq!(rows["revisions"].as_array().unwrap().len(), 2);

    // The dump at the mount point: inspectable tables only.
    let (code, body) = get(s.addr, "/statedb").await;
    assert_eq!(code, 200, "{body}");
    let dump: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        dump["hosts"][1],
        serde_json::json!({"name": "beta", "port": 443})
    );
    assert!(dump.get("hidden").is_none(), "{body}");
    let (code, body) = get(s.addr, "/statedb?format=table").await;
    assert_eq!(code, 200);
    assert!(
        body.starts_with("# hosts\nNAME   PORT\nalpha  80\n"),
        "{body}"
    );
    let (code, _) = get(s.addr, "/statedb?format=xml").await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    let s = setup().await;
    for (path, status, says) in [
        ("/statedb/tables/nope", 404, "no table"),
        ("/statedb/tables/hidden", 404, "inspectable"),
        (
            "/statedb/tables/hosts?index=color&key=red&op=list",
            404,
            "no index",
        ),
        (
            "/statedb/tables/hosts?index=port&key=http&op=list",
            400,
            "u16",
        ),
        ("/statedb/tables/hosts?key=a&op=scan", 400, "operation"),
        ("/statedb/tables/hosts?format=xml", 400, "format"),
        ("/statedb/tables/hosts?index=port", 400, "key"),
        ("/statedb/tables/hosts/changes?format=xml", 400, "format"),
    ] {
        let (code, body) = get(s.addr, path).await;
        assert_eq!(code, status, "{path}: {body}");
        let e: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
        assert!(
            e["error"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn changes_stream_as_ndjson_and_sse() {
    let s = setup().await;
    let mut stream = open_stream(s.addr, "/statedb/tables/hosts/changes").await;
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "\r\n\r\n").await;
    {
        let mut w = s.db.write_txn(&[&s.hosts]).unwrap();
        s.hosts.insert(&mut w, host("delta", 22)).unwrap();
        s.hosts.delete(&mut w, &host("alpha", 0)).unwrap();
        w.commit();
    }
    read_until(&mut stream, &mut seen, "\"deleted\":true").await;
    assert!(seen.contains("\"name\":\"delta\""), "{seen}");
    assert!(
        !seen.contains("\"name\":\"beta\""),
        "from now: no older objects: {seen}"
    );

    // From a revision with only upserts since: what changed after it.
    let txn = s.db.read_txn();
    let now = s.hosts.revision(&txn).unwrap();
    {
        let mut w = s.db.write_txn(&[&s.hosts]).unwrap();
        s.hosts.insert(&mut w, host("epsilon", 7)).unwrap();
        w.commit();
    }
    let mut stream =
        open_stream(s.addr, &format!("/statedb/tables/hosts/changes?from={now}")).await;
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "\"name\":\"epsilon\"").await;
    assert!(
        seen.contains(&format!("{{\"after\":{now},\"resync\":false}}")),
        "{seen}"
    );
    assert!(!seen.contains("delta"), "{seen}");

    // An EventSource reconnecting: Last-Event-ID is where it resumes.
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let req = format!(
        "GET /statedb/tables/hosts/changes?format=sse HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {now}\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "\"name\":\"epsilon\"").await;
    assert!(seen.contains(&format!("\"after\":{now}")), "{seen}");
    assert!(seen.contains("\"key\":\""), "{seen}");

    // From a revision before the delete of alpha: the stream cannot
    // replay that delete, so it says resync and replays the table.
    let mut stream = open_stream(s.addr, "/statedb/tables/hosts/changes?from=2&format=sse").await;
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "event: start").await;
    read_until(&mut stream, &mut seen, "\"resync\":true").await;
    read_until(&mut stream, &mut seen, "event: upsert").await;
    read_until(&mut stream, &mut seen, "\"name\":\"gamma\"").await;
    read_until(&mut stream, &mut seen, "\"name\":\"beta\"").await;
    assert!(!seen.contains("\"name\":\"alpha\""), "{seen}");
    assert!(seen.contains("data: {"), "{seen}");
}

/// Deletes a fresh object; whether the delete was kept in the graveyard
/// right after the commit (it is exactly when a change iterator exists).
fn delete_is_kept(s: &Setup, name: &str) -> bool {
    let mut w = s.db.write_txn(&[&s.hosts]).unwrap();
    s.hosts.insert(&mut w, host(name, 1)).unwrap();
    w.commit();
    let mut w = s.db.write_txn(&[&s.hosts]).unwrap();
    s.hosts.delete(&mut w, &host(name, 0)).unwrap();
    let txn = w.commit();
    s.hosts.graveyard_len(&txn).unwrap() > 0
}

#[tokio::test]
async fn a_client_going_away_releases_the_change_iterator() {
    let s = setup().await;
    assert!(!delete_is_kept(&s, "before"), "no iterator yet");
    let mut stream = open_stream(s.addr, "/statedb/tables/hosts/changes?heartbeat_ms=20").await;
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "heartbeat").await;
    assert!(
        delete_is_kept(&s, "while-connected"),
        "the stream holds an iterator"
    );
    drop(stream);
    // Once the server notices (its next heartbeat write fails), the body
    // and its iterator are dropped: deletes are no longer kept.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    while delete_is_kept(&s, &format!("after-{i}")) {
        assert!(
            Instant::now() < deadline,
            "the change iterator outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        i += 1;
    }
}

#[tokio::test]
async fn the_web_view_is_served_with_its_assets() {
    let s = setup().await;
    let (code, page) = get(s.addr, "/statedb/ui").await;
    assert_eq!(code, 200);
    assert!(page.contains("data-base=\"/statedb/\""), "{page}");
    let (code, script) = get(s.addr, "/statedb/ui/app.js").await;
    assert_eq!(code, 200);
    assert!(script.contains("EventSource"));
    let (code, style) = get(s.addr, "/statedb/ui/style.css").await;
    assert_eq!(code, 200);
    assert!(style.contains("@keyframes"));
}

//! Two memos instances on one etcd, each with its own directory: a memo
//! written through either reaches both directories, a delete through the
//! other removes it from both, a restart relists, and a memo put straight
//! into etcd under a name the API would refuse never reaches the disk.
//! Against a real etcd server (skipped with a reason when none is
//! installed; a failure under CI=true).

#![cfg(feature = "etcd")]

#[path = "../../etcd/tests/etcd_server/mod.rs"]
#[allow(dead_code)]
mod etcd_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_server::Etcd;

struct Instance {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, state: &Path, etcd: &str) -> Instance {
    let mut child = Command::new(env!("CARGO_BIN_EXE_memos"))
        .arg("--directory")
        .arg(dir)
        .arg("--state-dir")
        .arg(state)
        .args(["--listen", "127.0.0.1:0", "--etcd", etcd])
        .args([
            "--retry-backoff-min",
            "10ms",
            "--retry-backoff-max",
            "100ms",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn memos");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read address");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("address");
    Instance { child, addr }
}

/// One HTTP/1.1 request; returns (status, body).
fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

#[test]
fn two_instances_share_the_memos_in_etcd() {
    let Some(etcd) = Etcd::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let (a_state, b_state) = (tmp.path().join("a-state"), tmp.path().join("b-state"));
    let a = start(&a_dir, &a_state, &etcd.endpoint());
    let b = start(&b_dir, &b_state, &etcd.endpoint());

    let (code, _) = request(a.addr, "POST", "/memos/shared", b"from a");
    assert_eq!(code, 202);
    until("the memo in both directories", || {
        read(&a_dir, "shared").as_deref() == Some("from a")
            && read(&b_dir, "shared").as_deref() == Some("from a")
    });
    let (code, _) = request(b.addr, "POST", "/memos/shared", b"from b");
    assert_eq!(code, 202);
    until("the update in both", || {
        read(&a_dir, "shared").as_deref() == Some("from b")
            && read(&b_dir, "shared").as_deref() == Some("from b")
    });
    let (code, body) = request(b.addr, "GET", "/healthz", b"");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("etcd /memos/: revision"), "{body}");

    // Deleting through b removes it from both directories.
    let (code, _) = request(b.addr, "DELETE", "/memos/shared", b"");
    assert_eq!(code, 202);
    until("deleted from both", || {
        read(&a_dir, "shared").is_none() && read(&b_dir, "shared").is_none()
    });
    assert_eq!(request(b.addr, "DELETE", "/memos/shared", b"").0, 404);

    // A restarted instance lists etcd again: memos written meanwhile
    // arrive, and its files of memos deleted meanwhile are pruned.
    request(a.addr, "POST", "/memos/stays", b"1");
    request(a.addr, "POST", "/memos/goes", b"2");
    until("both in b", || {
        read(&b_dir, "goes").is_some() && read(&b_dir, "stays").is_some()
    });
    drop(b);
    request(a.addr, "DELETE", "/memos/goes", b"");
    request(a.addr, "POST", "/memos/new", b"3");
    let b = start(&b_dir, &b_state, &etcd.endpoint());
    until("b caught up after its restart", || {
        read(&b_dir, "goes").is_none()
            && read(&b_dir, "stays").as_deref() == Some("1")
            && read(&b_dir, "new").as_deref() == Some("3")
    });
    let (code, list) = request(b.addr, "GET", "/memos", b"");
    assert_eq!(code, 200);
    assert!(
        list.contains("\"stays\"") && list.contains("\"new\""),
        "{list}"
    );
    drop((a, b));
}

#[test]
fn a_name_the_api_refuses_never_reaches_the_disk_from_etcd() {
    let Some(etcd) = Etcd::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("memos");
    let a = start(&dir, &tmp.path().join("state"), &etcd.endpoint());
    // Written straight into etcd, bypassing the API's checks.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = statedb_etcd::etcd_client::Client::connect([etcd.endpoint()], None)
            .await
            .unwrap();
        let w = statedb_etcd::Writer::new(client, "/memos/");
        w.put("../escape", "x").await.unwrap();
        w.put("fine", "ok").await.unwrap();
    });
    until("the valid memo", || {
        read(&dir, "fine").as_deref() == Some("ok")
    });
    assert!(read(tmp.path(), "escape").is_none());
    let (_, list) = request(a.addr, "GET", "/memos", b"");
    assert!(!list.contains("escape"), "{list}");
}

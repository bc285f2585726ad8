//! The memos binary as tests drive it: started on a temp directory and an
//! ephemeral loopback port, spoken to over HTTP. Waits poll with a
//! deadline; backoffs are short through flags.
#![allow(dead_code)] // each test binary uses part of it

#[path = "../../../http/tests/support/chunked.rs"]
mod chunked;
use chunked::body_of;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn command(dir: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_memos"));
    c.arg("--directory")
        .arg(dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--retry-backoff-min",
            "10ms",
            "--retry-backoff-max",
            "100ms",
        ])
        .args(["--full-reconciliation-interval", "1h"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

pub fn start(dir: &Path) -> Server {
    start_with(dir, &[])
}

pub fn start_with(dir: &Path, extra: &[&str]) -> Server {
    let mut child = command(dir, extra).spawn().expect("spawn memos");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read address");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("address");
    Server {
        child,
        addr,
        dir: dir.to_path_buf(),
    }
}

pub struct Resp {
    pub status: u16,
    pub body: String,
}

pub fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response {text:?}"));
    let body = body_of(&raw);
    Resp { status, body }
}

impl Server {
    pub fn req(&self, method: &str, path: &str, body: &[u8]) -> Resp {
        request(self.addr, method, path, body)
    }
    pub fn status_of(&self, name: &str) -> Option<serde_json::Value> {
        let r = self.req("GET", &format!("/memos/{name}"), b"");
        (r.status == 200)
            .then(|| serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["status"].clone())
    }
    /// True once a full reconciliation (prune, then updates) has run.
    pub fn full_round_ran(&self) -> bool {
        self.req("GET", "/metrics", b"")
            .body
            .lines()
            .any(|l| l.starts_with("reconciler_full_reconciliation_total") && !l.ends_with(" 0"))
    }

    pub fn kind(&self, name: &str) -> Option<String> {
        self.status_of(name)
            .map(|s| s["kind"].as_str().unwrap().to_string())
    }
}

pub fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

//! End-to-end tests: start the real binary on a temp directory and an
//! ephemeral loopback port, drive it over HTTP, check the disk. Waits poll
//! with a deadline; backoffs are short through flags.

mod harness;

use harness::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn create_update_delete_reach_the_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("memos"));
    let created = s.req("POST", "/memos/hello", b"hello world");
    assert_eq!(created.status, 202);
    let created: serde_json::Value = serde_json::from_str(&created.body).unwrap();
    assert_eq!(created["status"]["kind"], "pending");
    until("done", || s.kind("hello").as_deref() == Some("done"));
    let status = s.status_of("hello").unwrap();
    assert!(
        status["updated_at"].as_str().unwrap().contains('T'),
        "RFC 3339 time"
    );
    assert_eq!(
        std::fs::read_to_string(s.dir.join("hello")).unwrap(),
        "hello world"
    );
    assert_eq!(
        s.req("POST", "/memos/hello", "héllo again".as_bytes())
            .status,
        202
    );
    until("updated", || {
        std::fs::read_to_string(s.dir.join("hello")).unwrap() == "héllo again"
    });
    until("done again", || s.kind("hello").as_deref() == Some("done"));
    let list: serde_json::Value = serde_json::from_str(&s.req("GET", "/memos", b"").body).unwrap();
    assert_eq!(list[0]["name"], "hello");
    assert_eq!(s.req("DELETE", "/memos/hello", b"").status, 202);
    until("deleted from table", || {
        s.req("GET", "/memos/hello", b"").status == 404
    });
    assert!(!s.dir.join("hello").exists());
    assert_eq!(s.req("DELETE", "/memos/nothere", b"").status, 404);
    let dump = s.req("GET", "/statedb", b"");
    assert_eq!(dump.status, 200);
    assert!(serde_json::from_str::<serde_json::Value>(&dump.body).unwrap()["memos"].is_array());
    s.req("POST", "/memos/t", b"x");
    until("t done", || s.kind("t").as_deref() == Some("done"));
    let table = s.req("GET", "/statedb?format=table", b"");
    assert!(
        table.body.contains("t ") && table.body.contains("done"),
        "{}",
        table.body
    );
    // The inspection API under /statedb: the memo's own columns, queries
    // by index with text keys.
    assert!(table.body.starts_with("# memos\nNAME"), "{}", table.body);
    let tables: serde_json::Value =
        serde_json::from_str(&s.req("GET", "/statedb/tables", b"").body).unwrap();
    assert_eq!(tables[0]["name"], "memos");
    assert_eq!(tables[0]["columns"][3], "bytes");
    let found = s.req("GET", "/statedb/tables/memos?key=t&format=table", b"");
    assert_eq!(found.status, 200);
    assert!(
        found.body.lines().nth(1).unwrap().starts_with("t "),
        "{}",
        found.body
    );
    assert_eq!(s.req("GET", "/statedb/ui", b"").status, 200);
}

#[test]
fn unwritable_path_errors_retries_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("memos"));
    s.req("POST", "/memos/ok", b"fine");
    until("ok done", || s.kind("ok").as_deref() == Some("done"));
    until("healthy", || s.req("GET", "/healthz", b"").status == 200);
    // A directory in the file's place: fails also for root.
    std::fs::create_dir(s.dir.join("blocked")).unwrap();
    std::fs::write(s.dir.join("blocked").join("inner"), b"keep").unwrap();
    s.req("POST", "/memos/blocked", b"content");
    until("error status", || {
        s.kind("blocked").as_deref() == Some("error")
    });
    // Which memos failed: the status index, queried by text.
    let failed = s.req(
        "GET",
        "/statedb/tables/memos?index=status&key=error&op=list",
        b"",
    );
    assert_eq!(failed.status, 200, "{}", failed.body);
    let failed: serde_json::Value = serde_json::from_str(&failed.body).unwrap();
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(failed[0]["object"]["name"], "blocked", "{failed}");
    let first = s.status_of("blocked").unwrap();
    let err = first["error"].as_str().unwrap().to_string();
    assert!(err.contains("blocked"), "{err}");
    // Retried: each failed attempt writes a fresh error status.
    until("a retry", || {
        s.status_of("blocked")
            .is_some_and(|st| st["kind"] == "error" && st["updated_at"] != first["updated_at"])
    });
    until("unhealthy", || s.req("GET", "/healthz", b"").status == 503);
    let metrics = s.req("GET", "/metrics", b"").body;
    let errors = metrics
        .lines()
        .find(|l| l.starts_with("reconciler_incremental_reconciliation_errors_total{"))
        .unwrap();
    assert!(!errors.ends_with(" 0"), "{errors}");
    // Fix the fault: the retry succeeds.
    std::fs::remove_dir_all(s.dir.join("blocked")).unwrap();
    until("recovered", || s.kind("blocked").as_deref() == Some("done"));
    assert_eq!(
        std::fs::read_to_string(s.dir.join("blocked")).unwrap(),
        "content"
    );
    until("healthy again", || {
        s.req("GET", "/healthz", b"").status == 200
    });
}

#[test]
fn only_our_own_files_are_pruned_and_metrics_are_exposed() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("memos"));
    s.req("POST", "/memos/keep", b"k");
    s.req("POST", "/memos/gone", b"g");
    until("done", || {
        s.kind("keep").as_deref() == Some("done") && s.kind("gone").as_deref() == Some("done")
    });
    // A deleted memo's file goes; foreign files stay.
    assert_eq!(s.req("DELETE", "/memos/gone", b"").status, 202);
    until("gone deleted", || !s.dir.join("gone").exists());
    std::fs::write(s.dir.join("stray"), b"nobody asked").unwrap();
    std::fs::create_dir(s.dir.join("subdir")).unwrap();
    assert_eq!(s.req("POST", "/reconcile", b"").status, 202);
    until("full round", || s.full_round_ran());
    // Foreign files are never pruned.
    assert!(s.dir.join("stray").exists(), "a foreign file was pruned");
    assert!(s.dir.join("keep").exists() && s.dir.join("subdir").is_dir());
    assert!(s.dir.join(".memos-directory").exists(), "marker pruned");
    let metrics = s.req("GET", "/metrics", b"").body;
    for name in [
        "reconciler_incremental_reconciliation_total",
        // The count, not a bucket: a slow operation on a busy machine
        // leaves the smallest buckets at zero.
        "reconciler_incremental_reconciliation_duration_seconds_count",
        "reconciler_full_reconciliation_total",
        "reconciler_full_reconciliation_duration_seconds_count",
    ] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with(name) && l.contains("module_id=\"memos\"") && !l.starts_with('#')
            })
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"));
        assert!(!line.ends_with(" 0"), "{line}");
    }
    // The database's own metrics, lock waits and holds by named handle.
    for prefix in [
        "statedb_table_lock_hold_seconds_count{handle=\"memos-http\",table=\"memos\"}",
        "statedb_table_lock_hold_seconds_count{handle=\"memos-reconciler\",table=\"memos\"}",
        "statedb_table_lock_wait_seconds_count{handle=\"memos-http\",table=\"memos\"}",
        "statedb_write_txn_commits_total{table=\"memos\"}",
        "statedb_graveyard_collected_objects_total{table=\"memos\"}",
        "statedb_change_iterators{table=\"memos\"}",
    ] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix} missing:\n{metrics}"));
        assert!(!line.ends_with(" 0"), "{line}");
    }
}

#[test]
fn bad_input_is_rejected_and_nothing_escapes_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, b"secret").unwrap();
    let s = start(&tmp.path().join("memos"));
    let long = "x".repeat(256);
    for (method, path, body, want) in [
        ("POST", "/memos/", &b"x"[..], 400),
        ("POST", &format!("/memos/{long}")[..], b"x", 400),
        ("POST", "/memos/a%2Fb", b"x", 400),
        ("POST", "/memos/..%2Foutside.txt", b"x", 400),
        ("POST", "/memos/a%5Cb", b"x", 400),
        ("POST", "/memos/a%00b", b"x", 400),
        ("POST", "/memos/%2E", b"x", 400),
        ("POST", "/memos/%2E%2E", b"x", 400),
        ("POST", "/memos/.memos-directory", b"x", 400),
        ("POST", "/memos/bin", &[0xff, 0xfe, 0x00][..], 400),
        ("GET", "/nope", b"", 404),
        ("PUT", "/memos/x", b"x", 405),
        ("PATCH", "/metrics", b"", 405),
        ("GET", "/statedb?format=xml", b"", 400),
    ] {
        let r = s.req(method, path, body);
        assert_eq!(r.status, want, "{method} {path}: {}", r.body);
    }
    // The message shows the character as it is: one backslash.
    let r = s.req("POST", "/memos/a%5Cb", b"x");
    assert!(
        r.body.contains("'\\'") && !r.body.contains("\\\\"),
        "{}",
        r.body
    );
    let big = vec![b'a'; (1 << 20) + 1];
    assert_eq!(s.req("POST", "/memos/big", &big).status, 413);
    let just_fits = vec![b'a'; 1 << 20];
    assert_eq!(s.req("POST", "/memos/fits", &just_fits).status, 202);
    until("fits done", || s.kind("fits").as_deref() == Some("done"));
    assert_eq!(entries(&s.dir), [".memos-directory", "fits"]);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "secret");
    let mut around = entries(tmp.path());
    around.retain(|e| e != "memos");
    // The durable state sits beside the directory.
    assert_eq!(around, [".memos.memos-state", "outside.txt"]);
}

#[test]
fn a_planted_symlink_is_never_followed_nor_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("target.txt");
    std::fs::write(&outside, b"secret").unwrap();
    let s = start(&tmp.path().join("memos"));
    std::os::unix::fs::symlink(&outside, s.dir.join("link")).unwrap();
    s.req("POST", "/memos/link", b"new content");
    // A foreign symlink at the memo's path: the memo stays in error,
    // naming it; neither the link nor its target changes.
    until("error", || s.kind("link").as_deref() == Some("error"));
    let err = s.status_of("link").unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains("link") && err.contains("foreign"), "{err}");
    assert!(
        std::fs::symlink_metadata(s.dir.join("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "secret");
    // Once the link is gone, the retry writes the memo.
    std::fs::remove_file(s.dir.join("link")).unwrap();
    until("done", || s.kind("link").as_deref() == Some("done"));
    assert!(
        std::fs::symlink_metadata(s.dir.join("link"))
            .unwrap()
            .is_file()
    );
    assert_eq!(
        std::fs::read_to_string(s.dir.join("link")).unwrap(),
        "new content"
    );
    // Prune never follows or removes symlinks' targets either.
    std::os::unix::fs::symlink(&outside, s.dir.join("stray-link")).unwrap();
    std::fs::write(s.dir.join("stray"), b"x").unwrap();
    s.req("POST", "/reconcile", b"");
    until("full round", || s.full_round_ran());
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "secret");
    assert!(s.dir.join("stray").exists(), "foreign files are not pruned");
    assert!(
        std::fs::symlink_metadata(s.dir.join("stray-link")).is_ok(),
        "symlinks are not pruned"
    );
}

#[test]
fn marker_guard_refuses_a_foreign_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("precious"), b"data").unwrap();
    let out = command(&dir, &[]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("precious")).unwrap(),
        "data"
    );
    // With --force it adopts the directory.
    let mut child = command(&dir, &["--force"]).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on"), "{line}");
    assert!(dir.join(".memos-directory").exists());
    child.kill().unwrap();
    child.wait().unwrap();
    let out = command(&dir, &["--listen", "0.0.0.0:0"]).output().unwrap();
    assert!(!out.status.success(), "non-loopback listen accepted");
}

#[test]
fn restart_and_kill_9_keep_every_memo_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("memos");
    let mut s = start(&dir);
    for i in 0..20 {
        assert_eq!(s.req("POST", &format!("/memos/m{i}"), b"v").status, 202);
    }
    until("written", || {
        (0..20).all(|i| s.dir.join(format!("m{i}")).exists())
    });
    // kill -9: no chance to flush anything.
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let s = start(&dir);
    for i in 0..20 {
        assert_eq!(s.req("GET", &format!("/memos/m{i}"), b"").status, 200);
    }
    assert_eq!(s.req("POST", "/reconcile", b"").status, 202);
    until("done after restart", || {
        (0..20).all(|i| s.kind(&format!("m{i}")).as_deref() == Some("done"))
    });
    for i in 0..20 {
        assert!(s.dir.join(format!("m{i}")).exists(), "m{i} lost");
    }
    // The state lives beside the directory, not in it.
    assert!(tmp.path().join(".memos.memos-state").is_dir());
    assert!(!entries(&dir).iter().any(|e| e.contains("redb")));
}

/// A raw request with chosen Host and Origin headers.
fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    origin: Option<&str>,
) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{origin}Connection: close\r\nContent-Length: 1\r\n\r\nx"
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn browser_requests_from_other_sites_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("memos"));
    let own = format!("127.0.0.1:{}", s.addr.port());
    // DNS rebinding: another name for 127.0.0.1.
    assert_eq!(
        request_with(s.addr, "GET", "/memos", "evil.example", None),
        403
    );
    assert_eq!(
        request_with(
            s.addr,
            "POST",
            "/memos/a",
            &format!("evil.example:{}", s.addr.port()),
            None
        ),
        403
    );
    // A cross-site form post.
    assert_eq!(
        request_with(
            s.addr,
            "POST",
            "/memos/a",
            &own,
            Some("http://evil.example")
        ),
        403
    );
    assert_eq!(
        request_with(s.addr, "POST", "/reconcile", &own, Some("null")),
        403
    );
    assert!(
        s.req("GET", "/memos/a", b"").status == 404,
        "a refused post wrote"
    );
    // Same origin, and clients without Origin, pass.
    let same = format!("http://{own}");
    assert_eq!(
        request_with(s.addr, "POST", "/memos/a", &own, Some(&same)),
        202
    );
    assert_eq!(
        request_with(
            s.addr,
            "GET",
            "/memos",
            &format!("localhost:{}", s.addr.port()),
            None
        ),
        200
    );
}

#[test]
fn control_characters_in_names_are_rejected_and_temp_files_cleaned_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("memos");
    {
        let _first = start(&dir);
    }
    std::fs::write(dir.join(".memos-tmp-999-1"), b"half written").unwrap();
    let s = start(&dir);
    until("temp file removed", || {
        !dir.join(".memos-tmp-999-1").exists()
    });
    for bad in ["a%0Ab", "a%1Bb", "a%E2%80%AEb", "a%7Fb"] {
        assert_eq!(
            s.req("POST", &format!("/memos/{bad}"), b"x").status,
            400,
            "{bad}"
        );
    }
    assert_eq!(s.req("POST", "/memos/ok-name", b"x").status, 202);
}

#[test]
fn limits_answer_clearly_and_lists_are_paged() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start_with(
        &tmp.path().join("memos"),
        &["--max-memos", "3", "--max-total-bytes", "12"],
    );
    assert_eq!(s.req("POST", "/memos/a", b"aaaa").status, 202);
    assert_eq!(s.req("POST", "/memos/b", b"bbbb").status, 202);
    assert_eq!(s.req("POST", "/memos/c", b"cccc").status, 202);
    let full = s.req("POST", "/memos/d", b"d");
    assert_eq!(full.status, 507);
    assert!(full.body.contains("--max-memos"), "{}", full.body);
    // Replacing counts the new size only.
    let big = s.req("POST", "/memos/a", b"aaaaa");
    assert_eq!(big.status, 507);
    assert!(big.body.contains("--max-total-bytes"), "{}", big.body);
    assert_eq!(s.req("POST", "/memos/a", b"AAAA").status, 202);
    // Pages in name order.
    let page = |q: &str| -> Vec<String> {
        let body = s.req("GET", &format!("/memos{q}"), b"").body;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(page("?limit=2"), ["a", "b"]);
    assert_eq!(page("?limit=2&after=b"), ["c"]);
    assert_eq!(page(""), ["a", "b", "c"]);
}

#[test]
fn a_body_that_never_finishes_is_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("memos"));
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    c.write_all(
        b"POST /memos/slow HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nonly ten b",
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = c.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert_eq!(s.req("GET", "/memos/slow", b"").status, 404);
}

#[test]
fn swapping_the_directory_for_a_symlink_after_start_changes_nothing_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("memos");
    let s = start(&dir);
    s.req("POST", "/memos/a", b"a");
    until("a done", || s.kind("a").as_deref() == Some("done"));
    // The path now leads elsewhere.
    let moved = tmp.path().join("moved");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("a"), b"victim").unwrap();
    std::fs::rename(&dir, &moved).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
    assert_eq!(s.req("POST", "/memos/b", b"b").status, 202);
    assert_eq!(s.req("DELETE", "/memos/a", b"").status, 202);
    until("b written", || moved.join("b").exists());
    until("a deleted", || s.req("GET", "/memos/a", b"").status == 404);
    assert_eq!(s.req("POST", "/reconcile", b"").status, 202);
    until("full round", || s.full_round_ran());
    assert!(!moved.join("a").exists(), "delete went elsewhere");
    assert_eq!(
        std::fs::read_to_string(elsewhere.join("a")).unwrap(),
        "victim"
    );
    assert!(
        !elsewhere.join("b").exists(),
        "write went through the symlink"
    );
}

#[test]
fn a_state_directory_inside_the_memos_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("memos");
    let inside = dir.join("state");
    let out = command(&dir, &["--state-dir", inside.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("must not be inside the memos directory"),
        "{err}"
    );
    assert!(!inside.exists(), "the state directory was created anyway");
}

#[test]
fn a_second_instance_on_the_same_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("memos");
    let _first = start(&dir);
    // Even with a state directory of its own.
    let other_state = tmp.path().join("other-state");
    let out = command(&dir, &["--state-dir", other_state.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another memos instance"), "{err}");
}

#[test]
fn adopting_with_force_keeps_the_files_already_there() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    std::fs::write(dir.join("thesis.tex"), b"also mine").unwrap();
    let mut child = command(&dir, &["--force"]).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .parse()
        .unwrap();
    let s = Server {
        child,
        addr,
        dir: dir.clone(),
    };
    s.req("POST", "/memos/a", b"a");
    until("a done", || s.kind("a").as_deref() == Some("done"));
    assert_eq!(s.req("POST", "/reconcile", b"").status, 202);
    until("full round", || s.full_round_ran());
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("thesis.tex")).unwrap(),
        "also mine"
    );
    // Reported as foreign in the health detail.
    let health = s.req("GET", "/healthz", b"").body;
    assert!(
        health.contains("foreign files kept") && health.contains("notes.txt"),
        "{health}"
    );
}

#[test]
fn sigterm_exits_zero_promptly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = start(&tmp.path().join("memos"));
    s.req("POST", "/memos/a", b"a");
    until("done", || s.kind("a").as_deref() == Some("done"));
    let killed = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    }
}
